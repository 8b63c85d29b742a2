// The shell's line editor: what a person expects at a prompt — a cursor that moves,
// deletion anywhere, the kill keys, history — from keys decoded by `KeyDecoder`.
//
// The editor is a state machine with no I/O: `feed` takes one typed byte, appends to
// `output` the bytes that make the terminal show the new state, and returns an event
// when the shell has to act (a line entered, Ctrl-C, Ctrl-D at an empty line, Tab).
// The shell reads bytes from the console and writes `output` back; the host tests run
// the same machine against a model terminal.
//
// Drawing. The terminal shows the prompt and the line on one row with the cursor at
// `prompt.count + cursor`. Every edit is one replacement of a range of the line, and
// is drawn the same way: move the cursor to where the change starts, write the line
// from there to its end, erase what is left of a longer old line, move back to the
// new cursor. The one invariant — the row shows prompt + line, the terminal's cursor
// is at the editor's — is what the host tests check after every key. Lines wider than
// the terminal wrap and then draw wrongly (a limit shared with linenoise's single-line
// mode); the line is always entered as edited.
//
//   keys                         action
//   ←  →   Ctrl-B  Ctrl-F        one character left, right
//   Alt-B  Alt-F  Ctrl-←  Ctrl-→ one word left, right
//   Home  End  Ctrl-A  Ctrl-E    start, end of the line
//   Backspace  Delete            erase before, under the cursor
//   Ctrl-U  Ctrl-K  Ctrl-W       erase to the start, to the end, the word before the cursor
//   ↑  ↓   Ctrl-P  Ctrl-N        older, newer line from the history
//   Tab                          ask the shell to complete the word before the cursor
//   Enter                        the line (added to the history)
//   Ctrl-C                       abandon the line
//   Ctrl-D                       at an empty line, the end of input; otherwise Delete
//
// History. Entered lines, oldest first, at most `History.capacity`; an empty line or
// a repeat of the newest is not added. Up shows older entries, Down newer ones and
// finally the line that was being typed (the draft), as readline does. Editing a
// recalled line changes the line, not the history.

public enum LineEvent: Equatable, Sendable {
    /// Enter: the line as edited (the editor has moved the terminal to a new row).
    case line([UInt8])
    /// Ctrl-C: the line is abandoned (the terminal shows `^C` and is on a new row).
    case interrupted
    /// Ctrl-D at an empty line.
    case endOfInput
    /// Tab: the shell completes the word before the cursor (`insert` or
    /// `showChoices`), or rings the bell.
    case completionRequested
}

public struct History {
    public static let defaultCapacity = 64

    public let capacity: Int
    public private(set) var entries: [[UInt8]] = []

    public init(capacity: Int = History.defaultCapacity) { self.capacity = capacity }

    public mutating func add(_ line: [UInt8]) {
        guard line.contains(where: { $0 != ASCII.space }), line != entries.last else { return }
        if entries.count == capacity { entries.removeFirst() }
        entries.append(line)
    }
}

public struct LineEditor {
    /// Longer lines are refused a character at a time (the bell rings).
    public static let maxLineBytes = 1024

    public let prompt: [UInt8]
    public private(set) var line: [UInt8] = []
    /// Where the next character goes: 0 ... line.count.
    public private(set) var cursor = 0
    public private(set) var history: History
    private var decoder = KeyDecoder()
    /// The history entry shown, while browsing it; nil while editing the draft.
    private var recalled: Int?
    private var draft: [UInt8] = []

    public init(prompt: [UInt8], historyCapacity: Int = History.defaultCapacity) {
        self.prompt = prompt
        history = History(capacity: historyCapacity)
    }

    /// Starts a new, empty line: shows the prompt.
    public mutating func begin(into output: inout [UInt8]) {
        line = []
        cursor = 0
        recalled = nil
        draft = []
        output += prompt
    }

    /// Takes one typed byte; returns what the shell must act on, if anything.
    public mutating func feed(_ byte: UInt8, into output: inout [UInt8]) -> LineEvent? {
        guard let key = decoder.decode(byte) else { return nil }
        return apply(key, into: &output)
    }

    /// The line up to the cursor: what Tab completes.
    public var textBeforeCursor: ArraySlice<UInt8> { line[0..<cursor] }

    /// Inserts `text` at the cursor, as if typed (a completion).
    public mutating func insert(_ text: [UInt8], into output: inout [UInt8]) {
        replace(cursor..<cursor, with: text, cursorAfter: cursor + text.count, into: &output)
    }

    /// Lists `choices` on the rows below, then draws the prompt and the line again.
    public mutating func showChoices(_ choices: [[UInt8]], into output: inout [UInt8]) {
        output += Terminal.newline
        for (index, choice) in choices.enumerated() {
            if index > 0 { output += [ASCII.space, ASCII.space] }
            output += choice
        }
        output += Terminal.newline
        output += prompt
        output += line
        Terminal.moveLeft(line.count - cursor, into: &output)
    }

    public func ringBell(into output: inout [UInt8]) { output.append(ASCII.bell) }

    private mutating func apply(_ key: Key, into output: inout [UInt8]) -> LineEvent? {
        switch key {
        case .character(let byte): insert([byte], into: &output)
        case .enter:
            output += Terminal.newline
            history.add(line)
            return .line(line)
        case .tab: return .completionRequested
        case .backspace:
            if cursor > 0 { replace(cursor - 1..<cursor, with: [], cursorAfter: cursor - 1, into: &output) }
        case .delete: deleteUnderCursor(into: &output)
        case .left: move(to: cursor - 1, into: &output)
        case .right: move(to: cursor + 1, into: &output)
        case .home: move(to: 0, into: &output)
        case .end: move(to: line.count, into: &output)
        case .wordLeft: move(to: startOfWord(before: cursor), into: &output)
        case .wordRight: move(to: endOfWord(after: cursor), into: &output)
        case .up: recall(older: true, into: &output)
        case .down: recall(older: false, into: &output)
        case .control(let letter): return control(letter, into: &output)
        }
        return nil
    }

    private mutating func control(_ letter: UInt8, into output: inout [UInt8]) -> LineEvent? {
        switch letter {
        case UInt8(ascii: "A"): move(to: 0, into: &output)
        case UInt8(ascii: "E"): move(to: line.count, into: &output)
        case UInt8(ascii: "B"): move(to: cursor - 1, into: &output)
        case UInt8(ascii: "F"): move(to: cursor + 1, into: &output)
        case UInt8(ascii: "P"): recall(older: true, into: &output)
        case UInt8(ascii: "N"): recall(older: false, into: &output)
        case UInt8(ascii: "U"): replace(0..<cursor, with: [], cursorAfter: 0, into: &output)
        case UInt8(ascii: "K"): replace(cursor..<line.count, with: [], cursorAfter: cursor, into: &output)
        case UInt8(ascii: "W"):
            let start = startOfWord(before: cursor)
            replace(start..<cursor, with: [], cursorAfter: start, into: &output)
        case UInt8(ascii: "C"):
            output += [UInt8(ascii: "^"), UInt8(ascii: "C")]
            output += Terminal.newline
            line = []
            cursor = 0
            return .interrupted
        case UInt8(ascii: "D"):
            guard !line.isEmpty else { return .endOfInput }
            deleteUnderCursor(into: &output)
        default:
            break
        }
        return nil
    }

    private mutating func deleteUnderCursor(into output: inout [UInt8]) {
        if cursor < line.count { replace(cursor..<cursor + 1, with: [], cursorAfter: cursor, into: &output) }
    }

    private mutating func move(to target: Int, into output: inout [UInt8]) {
        let clamped = max(0, min(target, line.count))
        if clamped < cursor { Terminal.moveLeft(cursor - clamped, into: &output) }
        if clamped > cursor { Terminal.moveRight(clamped - cursor, into: &output) }
        cursor = clamped
    }

    /// Replaces `range` of the line and redraws from its start (see the essay).
    private mutating func replace(_ range: Range<Int>, with text: [UInt8], cursorAfter newCursor: Int,
                                  into output: inout [UInt8]) {
        guard line.count - range.count + text.count <= Self.maxLineBytes else {
            ringBell(into: &output)
            return
        }
        guard !(range.isEmpty && text.isEmpty) else { return }
        let oldCount = line.count
        line.replaceSubrange(range, with: text)
        move(to: range.lowerBound, into: &output)
        output += line[range.lowerBound...]
        if line.count < oldCount { Terminal.eraseToEndOfLine(into: &output) }
        Terminal.moveLeft(line.count - newCursor, into: &output)
        cursor = newCursor
    }

    /// Shows the next older (or newer) history entry in place of the line.
    private mutating func recall(older: Bool, into output: inout [UInt8]) {
        let entries = history.entries
        let target: Int?
        if older {
            guard let current = recalled ?? (entries.isEmpty ? nil : entries.count), current > 0 else {
                ringBell(into: &output)
                return
            }
            if recalled == nil { draft = line }
            target = current - 1
        } else {
            guard let current = recalled else {
                ringBell(into: &output)
                return
            }
            target = current + 1 < entries.count ? current + 1 : nil
        }
        recalled = target
        let shown = target.map { entries[$0] } ?? draft
        replace(0..<line.count, with: shown, cursorAfter: shown.count, into: &output)
    }

    private func startOfWord(before position: Int) -> Int {
        var index = position
        while index > 0 && line[index - 1] == ASCII.space { index -= 1 }
        while index > 0 && line[index - 1] != ASCII.space { index -= 1 }
        return index
    }

    private func endOfWord(after position: Int) -> Int {
        var index = position
        while index < line.count && line[index] == ASCII.space { index += 1 }
        while index < line.count && line[index] != ASCII.space { index += 1 }
        return index
    }
}
