// The console server's client API: write bytes, read a line.
//
// Programs normally just call Swift's `print`, which lands in `putchar` below;
// output is buffered per line and sent in one message, so a line from one process
// is never interleaved with another's.

import CurioUser

public enum ConsoleOperation: UInt16, Sendable {
    /// Payload: bytes to write. Reply: nothing.
    case write = 1
    /// Reply payload: one line, without its newline; held until a line is typed.
    /// Only the shell reads typed lines: the reply code is `ConsoleReadRefusal`
    /// otherwise.
    case readLine = 2
}

/// Why the console refused a `readLine` (its reply code; 0 is a line).
public enum ConsoleReadRefusal: UInt, Sendable {
    /// Too many readers waiting already.
    case busy = 1
    /// Typed input belongs to the shell; other programs may only write.
    case notTheShell = 2
}

public enum Console {
    nonisolated(unsafe) private static var server = ServerEndpoint("console")

    private static func call(_ operation: ConsoleOperation, payload: UnsafeRawBufferPointer,
                             reply: UnsafeMutableRawBufferPointer) throws(SyscallError) -> Reply {
        try server.call(operation: operation.rawValue, payload: payload, reply: reply)
    }

    public static func write(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let chunk = min(bytes.count - offset, SyscallLimits.maxMessageBytes)
            _ = try? call(.write, payload: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + chunk]),
                          reply: UnsafeMutableRawBufferPointer(start: nil, count: 0))
            offset += chunk
        }
    }

    /// Reads one line into `buffer`; returns its length.
    public static func readLine(into buffer: UnsafeMutableRawBufferPointer) throws(SyscallError) -> Int {
        let reply = try call(.readLine, payload: UnsafeRawBufferPointer(start: nil, count: 0), reply: buffer)
        guard reply.code == 0 else { throw .notPermitted }
        return reply.length
    }
}

nonisolated(unsafe) private var lineBuffer = InlineArray<256, UInt8>(repeating: 0)
nonisolated(unsafe) private var lineLength = 0

private func flushLine() {
    lineBuffer.span.withUnsafeBytes { bytes in
        Console.write(UnsafeRawBufferPointer(rebasing: bytes[0..<lineLength]))
    }
    lineLength = 0
}

/// Where Embedded Swift's `print` sends each byte.
@_cdecl("putchar")
public func putchar(_ character: CInt) -> CInt {
    lineBuffer[lineLength] = UInt8(truncatingIfNeeded: character)
    lineLength += 1
    if character == 10 || lineLength == lineBuffer.count { flushLine() }
    return character
}
