// ServerEndpoint: how a client library reaches a server by name across its restarts.
//
// A TaskID names one incarnation of a server. When the server restarts (a new
// generation) a call to the old id is refused with `deadEndpoint` before it reaches
// anyone, so it is safe to look the name up again and call the new incarnation:
// the request cannot be applied twice. Every client library (console, timer,
// configuration, storage, filesystem) calls through one of these; each maps the
// server's reply codes to its own typed errors.

public struct ServerEndpoint {
    /// How often a call follows a server to its next incarnation before giving up.
    static let restartsFollowed = 8

    var name = InlineArray<16, UInt8>(repeating: 0)
    var nameLength = 0
    var cached: TaskID?

    /// A server's program name (at most `SyscallLimits.maxNameBytes` bytes; nil if longer).
    public init?(_ name: UnsafeRawBufferPointer) {
        guard name.count > 0, name.count <= SyscallLimits.maxNameBytes else { return nil }
        for (index, byte) in name.enumerated() { self.name[index] = byte }
        nameLength = name.count
    }

    public init(_ name: StaticString) {
        self.init(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))!
    }

    /// The current incarnation's id (looked up once, then cached).
    public mutating func id() throws(SyscallError) -> TaskID {
        if let cached { return cached }
        let length = nameLength
        let found = try name.span.withUnsafeBytes { bytes throws(SyscallError) in
            try System.lookup(UnsafeRawBufferPointer(rebasing: bytes[0..<length]))
        }
        cached = found
        return found
    }

    /// `IPC.call` to the server, following it to a new incarnation if it restarted.
    public mutating func call(operation: UInt16, words: (UInt, UInt) = (0, 0),
                              payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                              reply: UnsafeMutableRawBufferPointer = UnsafeMutableRawBufferPointer(start: nil, count: 0))
        throws(SyscallError) -> Reply {
        var restarts = 0
        while true {
            do throws(SyscallError) {
                return try IPC.call(try id(), operation: operation, words: words, payload: payload, reply: reply)
            } catch .deadEndpoint where restarts < Self.restartsFollowed {
                cached = nil
                restarts += 1
            }
        }
    }
}
