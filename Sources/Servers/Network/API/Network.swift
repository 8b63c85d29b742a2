// The network's client library: BSD-socket-like calls over messages to the network
// server.
//
//   let socket = try Network.openUDP()
//   try Network.bind(socket, port: 7)
//   let datagram = try Network.receiveDatagram(on: socket, into: buffer)
//   _ = try Network.sendDatagram(UnsafeRawBufferPointer(rebasing: buffer[0..<datagram.count]),
//                                on: socket, to: datagram.source)
//
//   let listener = try Network.openTCP()
//   try Network.bind(listener, port: 80)
//   try Network.listen(listener, backlog: 8)
//   let (connection, peer) = try Network.accept(listener)
//   let count = try Network.receive(on: connection, into: buffer)   // 0: the peer closed
//   try Network.send(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), on: connection)
//   try Network.close(connection)
//
// The server (`net`) keeps each client's sockets in that client's server state
// region, so a socket survives a crash of the server: a call in flight is delivered
// again to the restarted server and answered once, and the next call finds the old
// endpoint dead, looks the server up again and goes on with the same socket. What a
// crash can lose is what UDP may lose anyway: datagrams that had arrived but were not
// received yet, and datagrams still waiting for their next hop's address. A TCP
// connection loses nothing: a send is answered only once the peer acknowledged its
// bytes, and the server acknowledges bytes to the peer only once they are delivered
// here, so every byte in flight is either in a held request (which the kernel delivers
// again to the restarted server) or still the peer's to send again. Only if the server
// could not trust this client's region does a call fail with `stateLost`.

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
        } catch .outOfMemory {
            throw .noMemoryForSockets
        } catch {
            throw .unavailable
        }
        guard answer.code == 0 else {
            throw NetworkError(rawValue: UInt32(truncatingIfNeeded: answer.code)) ?? .protocolViolation
        }
        guard answer.length >= 0, answer.length <= reply.count else { throw .protocolViolation }
        return answer
    }

    /// Per socket slot: the handle, and the sequence number its next receive expects
    /// (the `next` of the last reply), which lets the server rewind when a reply was
    /// lost to its crash (see NetworkProtocol.swift).
    nonisolated(unsafe) private static var expectations = InlineArray<32, (handle: UInt32, next: UInt32)>(
        repeating: (0, 0))

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
    public static func sendDatagram(_ data: UnsafeRawBufferPointer, on socket: SocketHandle,
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
    public static func receiveDatagram(on socket: SocketHandle, into buffer: UnsafeMutableRawBufferPointer,
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

    /// Closes a socket of either kind. A TCP connection is shut down first (its FIN
    /// acknowledged by the peer, or given up after the retransmission limit); with
    /// `abort`, the peer gets a reset instead and nothing waits.
    public static func close(_ socket: SocketHandle, abort: Bool = false) throws(NetworkError) {
        _ = try call(.close(socket, abort: abort))
    }

    // MARK: TCP

    public static func openTCP() throws(NetworkError) -> SocketHandle {
        try socket(from: try call(.open(.tcp)).words.0)
    }

    /// Makes a bound TCP socket accept connections, at most `backlog` (1...16) of them
    /// waiting for `accept`.
    public static func listen(_ socket: SocketHandle, backlog: Int) throws(NetworkError) {
        _ = try call(.listen(socket, backlog: backlog))
    }

    /// The next connection to a listening socket, as a new socket, with its peer; waits
    /// for one, or with `nonblocking` answers `wouldBlock`.
    public static func accept(_ listener: SocketHandle, nonblocking: Bool = false)
        throws(NetworkError) -> (socket: SocketHandle, peer: Endpoint) {
        let reply = try call(.accept(listener, nonblocking: nonblocking))
        guard let peer = Endpoint(word: reply.words.1) else { throw .protocolViolation }
        return (try socket(from: reply.words.0), peer)
    }

    /// Connects a TCP socket to `destination` (binding it to a free port first if it is
    /// unbound) and returns the local port, once the handshake is done.
    @discardableResult
    public static func connect(_ socket: SocketHandle, to destination: Endpoint) throws(NetworkError) -> UInt16 {
        let reply = try call(.connect(socket, destination))
        guard reply.words.0 != 0, reply.words.0 <= UInt(UInt16.max) else { throw .protocolViolation }
        return UInt16(reply.words.0)
    }

    /// Sends every byte of `data` on a connected socket, 4 KiB per message; returns
    /// once the peer has acknowledged them all.
    public static func send(_ data: UnsafeRawBufferPointer, on socket: SocketHandle) throws(NetworkError) {
        var done = 0
        while done < data.count {
            let count = min(data.count - done, NetworkLimits.maximumTransfer)
            let reply = try call(.send(socket, data: UnsafeRawBufferPointer(rebasing: data[done..<done + count])))
            guard reply.words.0 == UInt(count) else { throw .protocolViolation }
            done += count
        }
    }

    /// Receives what has arrived on a connected socket, up to `buffer.count` bytes (at
    /// most 4 KiB per call); waits for at least one byte, or with `nonblocking` answers
    /// `wouldBlock`. Returns 0 once the peer has closed its side and every byte before
    /// its FIN was received.
    public static func receive(on socket: SocketHandle, into buffer: UnsafeMutableRawBufferPointer,
                               nonblocking: Bool = false) throws(NetworkError) -> Int {
        let count = min(buffer.count, NetworkLimits.maximumTransfer)
        guard count > 0 else { return 0 }
        let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
        let known = expectations[socket.slot]
        let expected = known.handle == socket.rawValue ? known.next : nil
        let reply = try call(.receive(socket, count: count, nonblocking: nonblocking, expected: expected), reply: piece)
        guard reply.words.0 == UInt(reply.length), reply.words.1 <= UInt(UInt32.max) else { throw .protocolViolation }
        expectations[socket.slot] = (socket.rawValue, UInt32(reply.words.1))
        return reply.length
    }

    /// Sends FIN: the peer reads the end of the stream after the bytes sent so far.
    /// Returns once the peer acknowledged it; receiving goes on.
    public static func shutdown(_ socket: SocketHandle) throws(NetworkError) {
        _ = try call(.shutdown(socket))
    }

    /// Waits until one of the sockets in `interest` is ready (see `PollInterest`) or
    /// `timeoutMilliseconds` pass (`NetworkLimits.pollForever`: no timeout); returns
    /// the ready ones (empty after the timeout).
    public static func poll(_ interest: PollInterest, timeoutMilliseconds: UInt) throws(NetworkError) -> PollInterest {
        let reply = try call(.poll(interest: interest, timeoutMilliseconds: timeoutMilliseconds))
        let ready = PollInterest(rawValue: UInt64(reply.words.0))
        guard ready.rawValue & ~interest.rawValue == 0 else { throw .protocolViolation }
        return ready
    }

    /// Sets a socket's option (`SocketOption`): a timeout in milliseconds, 0 for none.
    public static func setOption(_ socket: SocketHandle, _ option: SocketOption, milliseconds: UInt32)
        throws(NetworkError) {
        _ = try call(.setOption(socket, option, value: milliseconds))
    }

    /// This client's own sockets, each with its handle: what a client restarted with its
    /// SSRs (system.toml `keep_ssrs`) finds still open, its connections included.
    public static func sockets() throws(NetworkError) -> [SocketInfo] {
        let limit = NetworkLimits.socketsPerClient * SocketInfo.encodedBytes
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: limit, alignment: 8)
        defer { buffer.deallocate() }
        let reply = try call(.sockets, reply: buffer)
        guard reply.length == Int(reply.words.0) * SocketInfo.encodedBytes else { throw .protocolViolation }
        var sockets: [SocketInfo] = []
        for index in 0..<Int(reply.words.0) {
            let start = index * SocketInfo.encodedBytes
            guard let info = SocketInfo.decode(UnsafeRawBufferPointer(rebasing: buffer[start..<start + SocketInfo.encodedBytes])),
                  info.socket != nil else { throw .protocolViolation }
            sockets.append(info)
        }
        return sockets
    }

    /// The server's sockets, every client's (netstat): the one at `index`, and the
    /// index of the next (nil after the last). Nil altogether past the end.
    public static func socketInfo(at index: Int) throws(NetworkError) -> (info: SocketInfo, next: Int?)? {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SocketInfo.encodedBytes, alignment: 8)
        defer { buffer.deallocate() }
        let reply = try call(.socketInfo(index: index), reply: buffer)
        if reply.length == 0 { return nil }
        guard let info = SocketInfo.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<reply.length])),
              reply.words.0 == 0 || reply.words.0 > UInt(index) else { throw .protocolViolation }
        return (info, reply.words.0 == 0 ? nil : Int(reply.words.0))
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
