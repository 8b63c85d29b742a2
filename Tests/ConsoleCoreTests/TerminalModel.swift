// A model of the terminal at the other end of Curio's serial line, just enough of a
// VT100 to check what the line editor draws: printable characters overwrite at the
// cursor, CR, LF, BS, BEL, and ESC [ n C / ESC [ n D / ESC [ K. Anything else fails
// the test, so the editor cannot start sending sequences the model (and maybe a
// user's terminal) does not know without a test noticing.

import ConsoleCore
import Testing

struct TerminalModel {
    /// Every row so far; the cursor is on the last.
    private(set) var rows: [[UInt8]] = [[]]
    private(set) var column = 0
    private(set) var bells = 0
    private var pending: [UInt8] = []

    var currentRow: String { String(decoding: rows[rows.count - 1], as: UTF8.self) }
    var screen: String { rows.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n") }

    mutating func receive(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        for byte in bytes { receive(byte, sourceLocation: sourceLocation) }
    }

    private mutating func receive(_ byte: UInt8, sourceLocation: SourceLocation) {
        if !pending.isEmpty {
            pending.append(byte)
            guard pending.count >= 2, pending[1] == UInt8(ascii: "[") else {
                Issue.record("unexpected escape \(pending)", sourceLocation: sourceLocation)
                pending = []
                return
            }
            guard byte >= 0x40 && byte <= 0x7E, pending.count > 2 else { return }
            let count = Int(String(decoding: pending[2..<(pending.count - 1)], as: UTF8.self)) ?? 1
            switch byte {
            case UInt8(ascii: "C"): column += count
            case UInt8(ascii: "D"): column = max(0, column - count)
            case UInt8(ascii: "K") where pending.count == 3:
                let row = rows.count - 1
                if rows[row].count > column { rows[row].removeLast(rows[row].count - column) }
            default: Issue.record("unexpected sequence \(pending)", sourceLocation: sourceLocation)
            }
            pending = []
            return
        }
        switch byte {
        case ASCII.escape: pending = [byte]
        case ASCII.carriageReturn: column = 0
        case ASCII.lineFeed: rows.append([])
        case ASCII.backspace: column = max(0, column - 1)
        case ASCII.bell: bells += 1
        case 0x20..<0x7F:
            let row = rows.count - 1
            while rows[row].count < column { rows[row].append(ASCII.space) }
            if column < rows[row].count { rows[row][column] = byte } else { rows[row].append(byte) }
            column += 1
        default: Issue.record("unexpected byte \(byte)", sourceLocation: sourceLocation)
        }
    }
}

/// An editor wired to a model terminal: type bytes, see what the user would see.
struct EditorSession {
    var editor: LineEditor
    var terminal = TerminalModel()
    var events: [LineEvent] = []

    init(prompt: String = "curio> ", historyCapacity: Int = History.defaultCapacity) {
        editor = LineEditor(prompt: Array(prompt.utf8), historyCapacity: historyCapacity)
        var output: [UInt8] = []
        editor.begin(into: &output)
        terminal.receive(output)
    }

    var line: String { String(decoding: editor.line, as: UTF8.self) }

    /// Types `bytes`; after each, the row must show the prompt and the line with the
    /// cursor where the editor has it (until a line ends). A line that ends starts
    /// the next one, as the shell does.
    mutating func type(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        for byte in bytes {
            var output: [UInt8] = []
            let event = editor.feed(byte, into: &output)
            terminal.receive(output, sourceLocation: sourceLocation)
            if let event {
                events.append(event)
                switch event {
                case .line, .interrupted:
                    var prompt: [UInt8] = []
                    editor.begin(into: &prompt)
                    terminal.receive(prompt, sourceLocation: sourceLocation)
                case .endOfInput, .completionRequested:
                    break
                }
            }
            expectDrawn(sourceLocation: sourceLocation)
        }
    }

    mutating func type(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        type(Array(text.utf8), sourceLocation: sourceLocation)
    }

    func expectDrawn(sourceLocation: SourceLocation = #_sourceLocation) {
        let expected = String(decoding: editor.prompt + editor.line, as: UTF8.self)
        #expect(terminal.currentRow == expected, sourceLocation: sourceLocation)
        #expect(terminal.column == editor.prompt.count + editor.cursor, sourceLocation: sourceLocation)
    }

    /// The lines entered so far.
    var lines: [String] {
        events.compactMap { event in
            if case .line(let bytes) = event { return String(decoding: bytes, as: UTF8.self) }
            return nil
        }
    }
}

/// The bytes of the keys the tests press.
enum Keys {
    static let up: [UInt8] = [ASCII.escape] + Array("[A".utf8)
    static let down: [UInt8] = [ASCII.escape] + Array("[B".utf8)
    static let right: [UInt8] = [ASCII.escape] + Array("[C".utf8)
    static let left: [UInt8] = [ASCII.escape] + Array("[D".utf8)
    static let home: [UInt8] = [ASCII.escape] + Array("[H".utf8)
    static let end: [UInt8] = [ASCII.escape] + Array("[F".utf8)
    static let delete: [UInt8] = [ASCII.escape] + Array("[3~".utf8)
    static let enter: [UInt8] = [ASCII.carriageReturn]
    static func control(_ letter: Unicode.Scalar) -> [UInt8] { [ASCII.control(letter)] }
}
