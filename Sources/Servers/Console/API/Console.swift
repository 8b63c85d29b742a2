// The console server's client API: write bytes; and, for the shell, read typed
// bytes, watch for Ctrl-C while a command runs, and say who echoes.
//
// Programs normally just call Swift's `print`, which lands in `putchar` below;
// output is buffered per line and sent in one message, so a line from one process
// is never interleaved with another's.
//
// Typed input belongs to the shell: it edits lines itself (ConsoleCore's
// `LineEditor`), so it reads raw bytes, and the console keeps every byte typed until
// the shell takes it (see ConsoleCore's `TypeAhead`). Every other program may only
// write; asking for anything else is refused at once (`ConsoleRefusal`).
//
// Redirection (ConsoleCore's Redirection.swift has the design): the shell diverts a
// program's writes to itself (`divert`, `collect`), and its own output to a file
// before it leaves the process (`divertOutput`); `writeToTerminal` is the way past
// that diversion, for messages about a command rather than from it.

import CurioUser

public enum ConsoleOperation: UInt16, Sendable {
    /// Payload: bytes to write. Reply: nothing.
    case write = 1
    /// word0: the reply buffer's size. Reply payload: typed bytes, at least one, at
    /// most through the first CR, LF or Ctrl-C; held until something is typed.
    case read = 2
    /// word0: milliseconds (1 ... `ConsoleInterruptWatch.longest`). Held until Ctrl-C
    /// is typed (or was, and is still queued) or the time has passed; reply word0: a
    /// `ConsoleInterruptWatch`. A Ctrl-C taken this way takes everything typed before
    /// it too, as a terminal's interrupt flushes its input.
    case awaitInterrupt = 3
    /// word0: 1 the console echoes what is typed as it arrives (while a command runs),
    /// 0 the reader draws it (while the shell edits a line).
    case setEcho = 4
    /// word0: the raw `TaskID` of the process whose writes go to the shell from now on
    /// instead of the terminal (0: none). A write of its that the shell has not taken
    /// all of goes to the terminal when the diversion changes.
    case divert = 5
    /// word0: milliseconds (1 ... `ConsoleInterruptWatch.longest`); word1: 1 if a
    /// Ctrl-C also ends the wait (as `awaitInterrupt`), else 0. Held until the
    /// diverted process writes, or Ctrl-C, or the time has passed; reply word0: a
    /// `ConsoleCollection`, and for `output` the payload holds the bytes (the diverted
    /// write is answered once all of them are taken).
    case collect = 6
}

/// The reply code of a refused request (0 is success); its raw value is the wire code.
public enum ConsoleRefusal: UInt, Sendable {
    /// Typed input belongs to the shell; other programs may only write.
    case notTheShell = 2
    case unknownOperation = 3
    /// A `read` with no room for a byte, an `awaitInterrupt` for no time or for longer
    /// than `ConsoleInterruptWatch.longest`.
    case badArgument = 4
}

/// How a `collect` ended (its reply's word0).
public enum ConsoleCollection: UInt, Sendable {
    case timePassed = 0
    case interrupted = 1
    case output = 2
}

/// What a `collect` brought.
public enum Collected: Equatable, Sendable {
    /// The first `count` bytes of the buffer are what the diverted process wrote.
    case output(count: Int)
    case interrupted
    case timePassed
}

/// How an `awaitInterrupt` ended (its reply's word0).
public enum ConsoleInterruptWatch: UInt, Sendable {
    case timePassed = 0
    case interrupted = 1

    /// The longest watch, in milliseconds.
    public static let longest: UInt = 1000
}

public enum Console {
    nonisolated(unsafe) private static var server = ServerEndpoint("console")

    private static func call(_ operation: ConsoleOperation, words: (UInt, UInt) = (0, 0),
                             payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                             reply: UnsafeMutableRawBufferPointer = UnsafeMutableRawBufferPointer(start: nil, count: 0))
        throws(SyscallError) -> Reply {
        let answer = try server.call(operation: operation.rawValue, words: words, payload: payload, reply: reply)
        guard answer.code == 0 else { throw .notPermitted }
        return answer
    }

    /// Where this process's output goes instead, while the shell redirects it.
    nonisolated(unsafe) private static var diversion: ((UnsafeRawBufferPointer) -> Void)?

    /// Sends this process's output (`print`, `write`) to `sink` until called with nil;
    /// what `print` buffered of a line before goes where it was meant to go first.
    public static func divertOutput(to sink: ((UnsafeRawBufferPointer) -> Void)?) {
        flush()
        diversion = sink
    }

    /// Writes `bytes` where this process's output goes (the terminal, unless diverted).
    public static func write(_ bytes: UnsafeRawBufferPointer) {
        if let diversion {
            diversion(bytes)
            return
        }
        writeToTerminal(bytes)
    }

    /// Writes `bytes` to the terminal even while output is diverted (a message about
    /// a command, as stderr carries on Unix).
    public static func writeToTerminal(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let chunk = min(bytes.count - offset, SyscallLimits.maxMessageBytes)
            _ = try? call(.write, payload: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + chunk]))
            offset += chunk
        }
    }

    public static func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Sends what `print` has buffered of an unfinished line.
    public static func flush() {
        flushLine()
    }

    /// From now on `task`'s writes are held for the shell's `collect` (nil: nobody's).
    /// For the shell.
    public static func divert(outputOf task: TaskID?) throws(SyscallError) {
        _ = try call(.divert, words: (UInt(task?.rawValue ?? 0), 0))
    }

    /// Waits at most `milliseconds` for the diverted process's output (into `buffer`,
    /// which should hold `SyscallLimits.maxMessageBytes`), and with
    /// `watchingInterrupt` for Ctrl-C too. For the shell.
    public static func collect(into buffer: UnsafeMutableRawBufferPointer, milliseconds: UInt,
                               watchingInterrupt: Bool) throws(SyscallError) -> Collected {
        let answer = try call(.collect, words: (milliseconds, watchingInterrupt ? 1 : 0), reply: buffer)
        switch ConsoleCollection(rawValue: answer.words.0) {
        case .output?: return .output(count: answer.length)
        case .interrupted?: return .interrupted
        case .timePassed?, nil: return .timePassed
        }
    }

    /// Waits for typed bytes and reads them into `buffer` (at most one line's worth);
    /// returns how many. Only the shell may read (`notPermitted` otherwise).
    public static func read(into buffer: UnsafeMutableRawBufferPointer) throws(SyscallError) -> Int {
        try call(.read, words: (UInt(buffer.count), 0), reply: buffer).length
    }

    /// Waits at most `milliseconds` for Ctrl-C; true if it was typed. For the shell.
    public static func awaitInterrupt(milliseconds: UInt) throws(SyscallError) -> Bool {
        let answer = try call(.awaitInterrupt, words: (milliseconds, 0))
        return ConsoleInterruptWatch(rawValue: answer.words.0) == .interrupted
    }

    /// Whether the console shows typed bytes as they arrive (`true`) or leaves that to
    /// the reader's editor. For the shell.
    public static func setEcho(_ consoleEchoes: Bool) throws(SyscallError) {
        _ = try call(.setEcho, words: (consoleEchoes ? 1 : 0, 0))
    }
}

nonisolated(unsafe) private var lineBuffer = InlineArray<256, UInt8>(repeating: 0)
nonisolated(unsafe) private var lineLength = 0

private func flushLine() {
    guard lineLength > 0 else { return }
    let length = lineLength
    // Emptied first, so that the line is sent once even if a diversion's sink ends up
    // here again (a sink must not print: the bytes it is handed are this buffer).
    lineLength = 0
    lineBuffer.span.withUnsafeBytes { bytes in
        Console.write(UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
    }
}

/// Where Embedded Swift's `print` sends each byte.
@_cdecl("putchar")
public func putchar(_ character: CInt) -> CInt {
    lineBuffer[lineLength] = UInt8(truncatingIfNeeded: character)
    lineLength += 1
    if character == 10 || lineLength == lineBuffer.count { flushLine() }
    return character
}
