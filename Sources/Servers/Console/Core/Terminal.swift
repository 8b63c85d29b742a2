// The bytes a terminal and Curio exchange: the control characters typed at the
// keyboard and the few VT100 sequences the line editor draws with.
//
// Curio's console is a serial line to whatever terminal the user runs QEMU in. Only
// sequences every VT100 descendant understands are sent — cursor left and right by
// N columns and erase to the end of the line — so drawing assumes nothing about the
// terminal's width, and the line being edited is kept on one row.

/// The control characters the console, the shell's editor and the tests name.
public enum ASCII {
    /// Ctrl-C: stops the foreground program, or abandons the line being edited.
    public static let interrupt: UInt8 = 0x03
    /// Ctrl-D: at an empty prompt, the end of the user's input.
    public static let endOfInput: UInt8 = 0x04
    public static let bell: UInt8 = 0x07
    public static let backspace: UInt8 = 0x08
    public static let tab: UInt8 = 0x09
    public static let lineFeed: UInt8 = 0x0A
    public static let carriageReturn: UInt8 = 0x0D
    public static let escape: UInt8 = 0x1B
    public static let space: UInt8 = 0x20
    /// What most terminals send for the Backspace key.
    public static let delete: UInt8 = 0x7F

    /// The control character typed as Ctrl and `letter` (Ctrl-A is 1).
    public static func control(_ letter: Unicode.Scalar) -> UInt8 { UInt8(ascii: letter) & 0x1F }

    public static func isPrintable(_ byte: UInt8) -> Bool { byte >= 0x20 && byte < 0x7F }
}

/// What the console writes to move the terminal's cursor and erase.
public enum Terminal {
    /// A serial terminal moves to the start of the next line only with both.
    public static let newline: [UInt8] = [ASCII.carriageReturn, ASCII.lineFeed]

    public static func moveLeft(_ columns: Int, into output: inout [UInt8]) {
        controlSequence(columns, final: UInt8(ascii: "D"), into: &output)
    }

    public static func moveRight(_ columns: Int, into output: inout [UInt8]) {
        controlSequence(columns, final: UInt8(ascii: "C"), into: &output)
    }

    /// Erases from the cursor to the end of the row; the cursor stays.
    public static func eraseToEndOfLine(into output: inout [UInt8]) {
        output += [ASCII.escape, UInt8(ascii: "["), UInt8(ascii: "K")]
    }

    /// ESC [ count final, nothing for a count of 0 (which a terminal would read as 1).
    private static func controlSequence(_ count: Int, final: UInt8, into output: inout [UInt8]) {
        guard count > 0 else { return }
        output += [ASCII.escape, UInt8(ascii: "[")]
        var digits: [UInt8] = []
        var rest = count
        while rest > 0 {
            digits.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        }
        output += digits.reversed()
        output.append(final)
    }
}
