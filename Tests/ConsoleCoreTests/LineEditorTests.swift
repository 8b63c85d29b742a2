// The shell's line editor against a model terminal: every key edits the line as a
// person expects, and after every byte the terminal shows exactly the prompt and the
// line with the cursor in the right place (EditorSession checks that on each byte).

import ConsoleCore
import Testing

@Suite struct LineEditorTests {
    @Test func typedCharactersAndEnterGiveTheLine() {
        var session = EditorSession()
        session.type("echo hi")
        #expect(session.terminal.currentRow == "curio> echo hi")
        session.type(Keys.enter)
        #expect(session.lines == ["echo hi"])
        #expect(session.terminal.screen == "curio> echo hi\ncurio> ")
    }

    @Test func insertAndDeleteInTheMiddleOfTheLine() {
        var session = EditorSession()
        session.type("ecXho hllo")
        session.type(Keys.home + Keys.right + Keys.right + Keys.right)
        session.type([ASCII.delete])  // Backspace: the X
        #expect(session.line == "echo hllo")
        session.type(Keys.end + Keys.left + Keys.left + Keys.left)
        session.type("e")
        #expect(session.line == "echo hello")
        session.type(Keys.home + Keys.delete)
        #expect(session.line == "cho hello")
        session.type(Keys.enter)
        #expect(session.lines == ["cho hello"])
    }

    @Test func emacsKeysMoveAndKill() {
        var session = EditorSession()
        session.type("cat /etc/motd")
        session.type(Keys.control("A"))
        #expect(session.editor.cursor == 0)
        session.type(Keys.control("E"))
        #expect(session.editor.cursor == 13)
        session.type(Keys.control("W"))
        #expect(session.line == "cat ")
        session.type("/README.txt" + "\u{2}\u{2}\u{2}\u{2}")  // Ctrl-B four times
        session.type(Keys.control("K"))
        #expect(session.line == "cat /README")
        session.type(Keys.control("B") + Keys.control("B") + Keys.control("F"))
        session.type(Keys.control("U"))
        #expect(session.line == "E")
        #expect(session.editor.cursor == 0)
        session.type(Keys.control("D"))
        #expect(session.line == "")
    }

    @Test func ctrlWErasesTheWordAndTheSpacesBeforeTheCursor() {
        var session = EditorSession()
        session.type("ls -l   ")
        session.type(Keys.control("W"))
        #expect(session.line == "ls ")
        session.type(Keys.control("W") + Keys.control("W"))
        #expect(session.line == "")
    }

    @Test func escapeSequencesAreNeverInserted() {
        var session = EditorSession()
        // Arrows, Home/End in four dialects, F1, Page Up, Insert, a cursor report.
        let sequences = ["[A", "[B", "[C", "[D", "OA", "[1~", "[4~", "[7~", "[8~", "OH", "OF", "[1;5C",
                         "[1;3D", "OP", "[5~", "[2~", "[24;80R", "[?1;2c", "[15;2~", "b", "f"]
        session.type("x")
        for sequence in sequences { session.type([ASCII.escape] + Array(sequence.utf8)) }
        session.type(Keys.end + Array("y".utf8))
        // Control keys without a binding, bytes outside ASCII (an é in UTF-8): nothing either.
        session.type([ASCII.control("R"), ASCII.control("G"), 0x1C, 0x80, 0xC3, 0xA9])
        #expect(session.line == "xy")
    }

    @Test func ctrlCAbandonsTheLineAndCtrlDEndsInputOnlyWhenEmpty() {
        var session = EditorSession()
        session.type("rm /important")
        session.type(Keys.control("C"))
        #expect(session.events == [.interrupted])
        #expect(session.terminal.screen == "curio> rm /important^C\ncurio> ")
        session.type("ab" + "\u{1}")
        session.type(Keys.control("D"))
        #expect(session.line == "b")
        #expect(session.events == [.interrupted])
        session.type(Keys.control("D") + Keys.control("D"))
        #expect(session.events == [.interrupted, .endOfInput])
    }

    @Test func historyRecallsOlderAndNewerLinesAndTheDraft() {
        var session = EditorSession()
        for line in ["echo one", "echo two", "", "echo two", "echo three"] {
            session.type(line)
            session.type(Keys.enter)
        }
        #expect(session.editor.history.entries.map { String(decoding: $0, as: UTF8.self) }
                == ["echo one", "echo two", "echo three"])
        session.type("draft")
        session.type(Keys.up)
        #expect(session.line == "echo three")
        session.type(Keys.up + Keys.up)
        #expect(session.line == "echo one")
        session.type(Keys.up)
        #expect(session.line == "echo one")
        #expect(session.terminal.bells == 1)
        session.type(Keys.down)
        #expect(session.line == "echo two")
        session.type(Keys.control("N") + Keys.control("N"))
        #expect(session.line == "draft")
        session.type(Keys.down)
        #expect(session.terminal.bells == 2)
        session.type(Keys.control("P") + Array("!".utf8) + Keys.enter)
        #expect(session.lines.last == "echo three!")
    }

    @Test func historyKeepsOnlyTheNewestEntries() {
        var session = EditorSession(historyCapacity: 3)
        for index in 1...5 { session.type("echo \(index)" + "\r") }
        #expect(session.editor.history.entries.count == 3)
        session.type(Keys.up + Keys.up + Keys.up + Keys.up)
        #expect(session.line == "echo 3")
    }

    @Test func aLineFeedAfterACarriageReturnIsOneEnter() {
        var session = EditorSession()
        session.type("echo a\r\necho b\n")
        #expect(session.lines == ["echo a", "echo b"])
    }

    @Test func completionInsertsAtTheCursorAndChoicesRedrawTheLine() {
        var session = EditorSession()
        session.type("cat /e")
        session.type([ASCII.tab])
        #expect(session.events == [.completionRequested])
        #expect(Completion.target(of: session.editor.textBeforeCursor)
                == .path(directory: Array("/".utf8), prefix: Array("e".utf8)))
        var output: [UInt8] = []
        session.editor.insert(Array("tc/".utf8), into: &output)
        session.terminal.receive(output)
        session.expectDrawn()
        output = []
        session.editor.showChoices([Array("motd".utf8), Array("hosts".utf8)], into: &output)
        session.terminal.receive(output)
        session.expectDrawn()
        #expect(session.terminal.screen == "curio> cat /etc/\nmotd  hosts\ncurio> cat /etc/")
    }

    @Test func anOverlongLineIsRefusedWithTheBell() {
        var session = EditorSession()
        session.type(Array(repeating: UInt8(ascii: "a"), count: LineEditor.maxLineBytes + 5))
        #expect(session.editor.line.count == LineEditor.maxLineBytes)
        #expect(session.terminal.bells == 5)
    }

    /// Random keys, thousands of them: the drawing invariant holds after each (checked
    /// inside `type`), and the line is what a plain model of the edits says.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8])
    func randomEditingKeepsTheTerminalInStep(seed: UInt64) {
        var random = SplitMix(seed: seed)
        var session = EditorSession()
        var model: [UInt8] = []
        var cursor = 0
        let keys: [[UInt8]] = [Keys.left, Keys.right, Keys.home, Keys.end, Keys.delete, [ASCII.delete],
                               Keys.control("A"), Keys.control("E"), Keys.control("U"), Keys.control("K"),
                               Keys.control("W"), Array("x".utf8), Array(" ".utf8), Array("ab".utf8)]
        for _ in 0..<3_000 {
            let key = keys[Int(random.next() % UInt64(keys.count))]
            session.type(key)
            switch key {
            case Keys.left, Keys.control("B"): cursor = max(0, cursor - 1)
            case Keys.right: cursor = min(model.count, cursor + 1)
            case Keys.home, Keys.control("A"): cursor = 0
            case Keys.end, Keys.control("E"): cursor = model.count
            case Keys.delete: if cursor < model.count { model.remove(at: cursor) }
            case [ASCII.delete]:
                if cursor > 0 {
                    model.remove(at: cursor - 1)
                    cursor -= 1
                }
            case Keys.control("U"):
                model.removeFirst(cursor)
                cursor = 0
            case Keys.control("K"): model.removeLast(model.count - cursor)
            case Keys.control("W"):
                var start = cursor
                while start > 0 && model[start - 1] == ASCII.space { start -= 1 }
                while start > 0 && model[start - 1] != ASCII.space { start -= 1 }
                model.removeSubrange(start..<cursor)
                cursor = start
            default:
                model.insert(contentsOf: key, at: cursor)
                cursor += key.count
            }
            #expect(session.editor.line == model && session.editor.cursor == cursor)
        }
    }
}

/// A small deterministic generator (SplitMix64), so a failing seed repeats.
struct SplitMix {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}
