// Keys from the bytes a terminal sends: one byte for a character or a control key,
// an escape sequence for the arrows, Home, End and Delete.
//
// Terminals disagree on the sequences (xterm sends ESC [ H for Home, the Linux
// console ESC [ 1 ~, rxvt ESC [ 7 ~, xterm in application mode ESC O H), so the
// decoder parses the ECMA-48 grammar rather than matching a list: ESC [, parameter
// bytes (0x30-0x3F), intermediate bytes (0x20-0x2F), one final byte (0x40-0x7E);
// or ESC O and one letter. A sequence it parses but does not know (F-keys, Page Up,
// Insert, a terminal's reply) yields no key at all: escape sequences are interpreted
// or ignored, never inserted into the line. A control character in the middle of a
// sequence ends it and counts as typed, as a VT100 executes it.
//
// Enter is CR (what terminals send) or LF; LF right after CR is the second half of
// one Enter (a pasted CR LF) and yields nothing. Bytes outside printable ASCII
// (UTF-8) are ignored: the editor's cursor arithmetic counts one column per byte.

public enum Key: Equatable, Sendable {
    /// A printable ASCII character.
    case character(UInt8)
    case enter
    case tab
    /// Erase the character before the cursor (Backspace: DEL or BS).
    case backspace
    /// Erase the character under the cursor (the Delete key).
    case delete
    case left, right, home, end
    /// Alt-B / Alt-F, Ctrl- or Alt-arrow: by words.
    case wordLeft, wordRight
    case up, down
    /// Ctrl and a letter, for the letters not named above (`letter` is upper case).
    case control(letter: UInt8)
}

public struct KeyDecoder {
    private enum State {
        case ground
        /// After ESC.
        case escape
        /// After ESC [: the first two numeric parameters so far, and which one is being read.
        case controlSequence(first: Int, second: Int, onSecond: Bool, intermediate: Bool)
        /// After ESC O.
        case singleShift
    }

    private var state = State.ground
    private var previousWasCarriageReturn = false

    public init() {}

    /// The key `byte` completes, if any.
    public mutating func decode(_ byte: UInt8) -> Key? {
        defer { previousWasCarriageReturn = byte == ASCII.carriageReturn }
        switch state {
        case .ground:
            return ground(byte)
        case .escape:
            state = .ground
            switch byte {
            case UInt8(ascii: "["):
                state = .controlSequence(first: 0, second: 0, onSecond: false, intermediate: false)
            case UInt8(ascii: "O"): state = .singleShift
            case UInt8(ascii: "b"): return .wordLeft
            case UInt8(ascii: "f"): return .wordRight
            case ASCII.escape: state = .escape
            case 0..<0x20: return ground(byte)
            default: break
            }
            return nil
        case .controlSequence(var first, var second, var onSecond, var intermediate):
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9") where !intermediate:
                // Clamped: a parameter too long to mean anything must not overflow.
                let digit = Int(byte - UInt8(ascii: "0"))
                if onSecond { second = min(second * 10 + digit, 9999) } else { first = min(first * 10 + digit, 9999) }
            case UInt8(ascii: ";") where !intermediate:
                if onSecond { first = -1 }
                onSecond = true
            case 0x3A...0x3F where !intermediate:
                first = -1
            case 0x20...0x2F:
                intermediate = true
            case 0x40...0x7E:
                state = .ground
                return intermediate || first < 0 ? nil : Self.controlSequenceKey(final: byte, first, second)
            default:
                state = .ground
                return byte < 0x20 ? ground(byte) : nil
            }
            state = .controlSequence(first: first, second: second, onSecond: onSecond, intermediate: intermediate)
            return nil
        case .singleShift:
            state = .ground
            return byte < 0x20 ? ground(byte) : Self.cursorKey(final: byte, modifier: 0)
        }
    }

    private mutating func ground(_ byte: UInt8) -> Key? {
        switch byte {
        case ASCII.escape:
            state = .escape
            return nil
        case ASCII.carriageReturn: return .enter
        case ASCII.lineFeed: return previousWasCarriageReturn ? nil : .enter
        case ASCII.tab: return .tab
        case ASCII.backspace, ASCII.delete: return .backspace
        case 1...26: return .control(letter: byte + 0x40)
        case 0x20..<0x7F: return .character(byte)
        default: return nil
        }
    }

    /// ESC [ first ; second final. `first` is 0 when absent.
    private static func controlSequenceKey(final: UInt8, _ first: Int, _ second: Int) -> Key? {
        guard final == UInt8(ascii: "~") else { return cursorKey(final: final, modifier: second) }
        switch first {
        case 1, 7: return .home
        case 4, 8: return .end
        case 3: return .delete
        default: return nil
        }
    }

    /// The arrows, Home and End; with a Ctrl (5) or Alt (3) modifier, left and right move by words.
    private static func cursorKey(final: UInt8, modifier: Int) -> Key? {
        let byWord = modifier == 3 || modifier == 5
        switch final {
        case UInt8(ascii: "A"): return .up
        case UInt8(ascii: "B"): return .down
        case UInt8(ascii: "C"): return byWord ? .wordRight : .right
        case UInt8(ascii: "D"): return byWord ? .wordLeft : .left
        case UInt8(ascii: "H"): return .home
        case UInt8(ascii: "F"): return .end
        default: return nil
        }
    }
}
