// The network's client library: BSD-socket-like calls over messages to the network
// server.
//
//   let socket = try Network.openUDP()
//   try Network.bind(socket, port: 7)
//   let datagram = try Network.receive(on: socket, into: buffer)
//   _ = try Network.send(UnsafeRawBufferPointer(rebasing: buffer[0..<datagram.count]),
//                        on: socket, to: datagram.source)
//
// The server (`net`) keeps each client's sockets in that client's server state
// region, so a socket survives a crash of the server: a call in flight is delivered
// again to the restarted server and answered once, and the next call finds the old
// endpoint dead, looks the server up again and goes on with the same socket. What a
// crash can lose is what UDP may lose anyway: datagrams that had arrived but were not
// received yet, and datagrams still waiting for their next hop's address. Only if the
// server could not trust this client's region does a call fail with `stateLost`.

@_exported import NetworkCore
import CurioUser

public enum Network {
    nonisolated(unsafe) private static var server = ServerEndpoint("net")

    private static var noReply: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: nil, count: 0) }

    /// Sends `request` and returns the reply (code 0), following the server across
    /// restarts (`ServerEndpoint`).
    private static func call(_ request: NetworkRequest, reply: UnsafeMutableRawBufferPointer = noReply)
        throws(NetworkError) -> Reply {
        let message = try request.encode()
        let answer: Reply
        do throws(SyscallError) {
            answer = try server.call(operation: message.operation.rawValue, words: message.words,
                                     payload: message.payload, reply: reply)
        } catch .serverStateLost {
            throw .stateLost
        } catch {
            throw .unavailable
        }
        guard answer.code == 0 else {
            throw NetworkError(rawValue: UInt32(truncatingIfNeeded: answer.code)) ?? .protocolViolation
        }
        guard answer.length >= 0, answer.length <= reply.count else { throw .protocolViolation }
        return answer
    }

    private static func socket(from word: UInt) throws(NetworkError) -> SocketHandle {
        guard word != 0, word <= UInt(UInt32.max) else { throw .protocolViolation }
        return SocketHandle(rawValue: UInt32(word))
    }

    // MARK: UDP

    public static func openUDP() throws(NetworkError) -> SocketHandle {
        try socket(from: try call(.open(.udp)).words.0)
    }

    /// Binds the socket to `port` (0: a free ephemeral port) and returns the port.
    @discardableResult
    public static func bind(_ socket: SocketHandle, port: UInt16) throws(NetworkError) -> UInt16 {
        let reply = try call(.bind(socket, port: port))
        guard reply.words.0 != 0, reply.words.0 <= UInt(UInt16.max), port == 0 || reply.words.0 == UInt(port) else {
            throw .protocolViolation
        }
        return UInt16(reply.words.0)
    }

    /// Sends one datagram (at most `NetworkLimits.maximumDatagram` bytes) to
    /// `destination`, binding the socket to a free port first if it is unbound.
    @discardableResult
    public static func send(_ data: UnsafeRawBufferPointer, on socket: SocketHandle,
                            to destination: Endpoint) throws(NetworkError) -> Int {
        let reply = try call(.sendTo(socket, destination, data: data))
        guard reply.words.0 == UInt(data.count) else { throw .protocolViolation }
        return data.count
    }

    /// One received datagram: who sent it and how many bytes of it are in the buffer.
    public struct Datagram: Sendable {
        public var source: Endpoint
        public var count: Int
    }

    /// Waits for the next datagram on the socket (or with `nonblocking` answers
    /// `wouldBlock` when none is queued) and copies it into `buffer`, which should hold
    /// `NetworkLimits.maximumDatagram` bytes: a longer datagram does not fit the reply.
    public static func receive(on socket: SocketHandle, into buffer: UnsafeMutableRawBufferPointer,
                               nonblocking: Bool = false) throws(NetworkError) -> Datagram {
        while true {
            let reply = try call(.receiveFrom(socket, nonblocking: nonblocking), reply: buffer)
            guard let source = Endpoint(word: reply.words.0) else { throw .protocolViolation }
            // A receive answered just before a server crash is answered again without
            // its payload (the datagram was in the server's memory): that datagram is
            // lost, as the network could have lost it; wait for the next.
            if reply.words.1 != UInt(reply.length) { continue }
            return Datagram(source: source, count: reply.length)
        }
    }

    public static func close(_ socket: SocketHandle) throws(NetworkError) {
        _ = try call(.close(socket))
    }

    // MARK: ICMP and the interface

    /// Sends one ICMP echo request to `address` and waits for its reply (a second at
    /// most); returns the round trip in clock ticks.
    public static func ping(_ address: IPv4Address, sequence: UInt16,
                            data: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0))
        throws(NetworkError) -> UInt64 {
        UInt64(try call(.ping(address: address.rawValue, sequence: sequence, data: data)).words.0)
    }

    public static func interface() throws(NetworkError) -> InterfaceStatus {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: InterfaceStatus.encodedBytes, alignment: 8)
        defer { buffer.deallocate() }
        let reply = try call(.interface, reply: buffer)
        guard let status = InterfaceStatus.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<reply.length])) else {
            throw .protocolViolation
        }
        return status
    }
}
