// Typed input on its way from the UART to the program that reads it.
//
// Every byte the UART delivers goes into the console server's `TypeAhead` queue, in
// the order typed, and leaves it only in a reply that reached its reader (the server
// copies bytes out, replies, and removes them only if the reply succeeded). Nothing
// is dropped for want of a reader: bytes typed while a command runs, or as the prompt
// appears, wait here for the next read.
//
// A read takes at most one line: it stops after the first carriage return, line
// feed or Ctrl-C. What follows stays queued, so the reader never holds bytes meant
// for after its line ends — where the console's watch for Ctrl-C during a command,
// or the next line, must find them.
//
// Full. The queue holds `TypeAhead.capacity` bytes. When it is full the server stops
// taking bytes from the UART and leaves its receive interrupt masked: the UART's FIFO
// fills, and QEMU's serial device stops reading its host side, so further bytes wait
// in the host (the terminal, a pipe) instead of being lost — the hardware flow
// control of a real serial line. A Ctrl-C typed behind a full queue waits its turn.
//
// Echo. While a command runs, nobody edits what is typed, so the console shows it as
// it arrives (`TypeAheadEcho`), as a terminal in cooked mode does; the shell's editor
// shows it again when it reads it at the next prompt, as bash's readline does. While
// the shell edits a line, the console echoes nothing and the editor draws.

public struct TypeAhead {
    /// Four KiB: more than anyone types ahead; a paste beyond it waits in the host.
    public static let capacity = 4096

    private var storage: [UInt8]
    private var first = 0
    public private(set) var count = 0

    public init(capacity: Int = TypeAhead.capacity) {
        storage = [UInt8](repeating: 0, count: capacity)
    }

    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { count == storage.count }

    /// The `index`th oldest byte.
    public subscript(index: Int) -> UInt8 { storage[(first + index) % storage.count] }

    /// Queues a typed byte; false (and nothing queued) when the queue is full.
    public mutating func append(_ byte: UInt8) -> Bool {
        guard !isFull else { return false }
        storage[(first + count) % storage.count] = byte
        count += 1
        return true
    }

    /// How many of the oldest bytes the next read takes: at most `limit`, and no
    /// further than the first byte that ends a line or interrupts.
    public func readLength(limit: Int) -> Int {
        var length = 0
        while length < min(limit, count) {
            let byte = self[length]
            length += 1
            if byte == ASCII.carriageReturn || byte == ASCII.lineFeed || byte == ASCII.interrupt { break }
        }
        return length
    }

    /// The number of bytes up to and including the oldest Ctrl-C; nil if none is queued.
    public func lengthThroughInterrupt() -> Int? {
        for index in 0..<count where self[index] == ASCII.interrupt { return index + 1 }
        return nil
    }

    /// Copies the oldest `length` bytes to `destination` (which must hold them).
    public func copyOldest(_ length: Int, to destination: UnsafeMutableRawBufferPointer) {
        for index in 0..<length { destination[index] = self[index] }
    }

    public mutating func removeOldest(_ length: Int) {
        let removed = min(length, count)
        first = (first + removed) % storage.count
        count -= removed
    }
}

/// What the console shows of bytes typed while nobody edits them: printable
/// characters as they are, Enter as a new line, Backspace erasing a character typed
/// on the same line (never the programs' output), Ctrl-C as `^C` and a new line, other
/// control characters as `^X` (an arrow key shows as `^[[A`, as on a Unix terminal).
public struct TypeAheadEcho {
    /// Characters this echo has shown since its last new line (what Backspace may erase).
    private var typedOnLine = 0
    private var previousWasCarriageReturn = false

    public init() {}

    public mutating func render(_ byte: UInt8, _ emit: (UInt8) -> Void) {
        defer { previousWasCarriageReturn = byte == ASCII.carriageReturn }
        switch byte {
        case ASCII.carriageReturn, ASCII.lineFeed:
            if byte == ASCII.lineFeed && previousWasCarriageReturn { return }
            newline(emit)
        case ASCII.backspace, ASCII.delete:
            guard typedOnLine > 0 else { return }
            typedOnLine -= 1
            emit(ASCII.backspace)
            emit(ASCII.space)
            emit(ASCII.backspace)
        case ASCII.interrupt:
            emit(UInt8(ascii: "^"))
            emit(UInt8(ascii: "C"))
            newline(emit)
        case 0..<0x20:
            emit(UInt8(ascii: "^"))
            emit(byte + 0x40)
        case 0x20..<0x7F:
            emit(byte)
            typedOnLine += 1
        default:
            break
        }
    }

    private mutating func newline(_ emit: (UInt8) -> Void) {
        emit(ASCII.carriageReturn)
        emit(ASCII.lineFeed)
        typedOnLine = 0
    }
}
