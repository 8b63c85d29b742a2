// The network service's wire protocol, shared by the client library (NetworkAPI) and
// the server: what each operation sends and gets back, and the one decoder the server
// runs over every request.
//
// A message is an operation number, two machine words and up to 4096 payload bytes; a
// reply is a code (0, or a `NetworkError` raw value), two words and a payload. As with
// the filesystem, a request must make sense on its own — the server restarts, and the
// kernel delivers a held request again to the new instance — and a bad one is refused
// with the error the client gets back, never trapped on: `NetworkRequest.decode`
// checks every bit (unused words and bits zero, the payload exactly what the operation
// carries). The client encodes through the same type.
//
// Operations (s = socket; an endpoint is an IPv4 address and a port, packed into one
// word as address << 16 | port):
//
//   op  name         word 0                     word 1                 request payload  reply words               reply payload
//   --  -----------  -------------------------  ---------------------  ---------------  ------------------------  -----------------
//    1  open         kind (1 UDP, 2 TCP)        0                      -                s, 0                      -
//    2  bind         s                          port (0: any free one) -                port, 0                   -
//    3  sendTo       s                          endpoint               data (≤ 1472)    count, local port         -
//    4  receiveFrom  s | nonblocking << 32      0                      -                endpoint, count           data (≤ 1472)
//    5  close        s | abort << 32            0                      -                -                         -
//    6  ping         address                    sequence               data (≤ 1024)    round trip (ticks), 0     -
//    7  interface    0                          0                      -                -                         InterfaceStatus
//    8  listen       s                          backlog (1...16)       -                -                         -
//    9  accept       s | nonblocking << 32      0                      -                new s, peer endpoint      -
//   10  connect      s                          endpoint               -                local port, 0             -
//   11  send         s                          0                      data (1...4096)  count, 0                  -
//   12  receive      s | nonblocking << 32      count | expected << 16 -                count (0: the end), next  count bytes
//   13  shutdown     s                          0                      -                -                         -
//   14  poll         timeout (ms; max: none)    interest               -                ready, 0                  -
//   15  socketInfo   index                      0                      -                next index (0: last), 0   SocketInfo
//   16  setOption    s | option << 32           value                  -                -                         -
//   17  sockets      0                          0                      -                count, 0                  count SocketInfo
//
// TCP. A TCP socket is opened, then either bound and made to listen (accept hands out
// a new socket per connection, with its peer) or connected (which binds it to a free
// port first). send is answered when the peer has acknowledged every byte — so the
// bytes a client was told are sent never live only in the server's memory (see
// TCPConnection.swift on what lives where) —; receive answers with what has arrived,
// up to count bytes, or 0 once the peer has closed its side; shutdown sends FIN
// and is answered when the peer acknowledged it; close shuts down and forgets the
// socket (with `abort`: sends a reset instead). poll's interest word has bit i for
// "socket slot i readable" (data, the end, a connection to accept, an error) and bit
// 32 + i for "writable" (connected, and the peer's window open); it is answered at once
// if one is ready, else when one becomes ready or the timeout passes (ready 0).
//
// sockets lists the caller's own sockets, from its SSR, each with the handle it
// names it by: what a client restarted with its SSRs (system.toml `keep_ssrs`) finds
// still open — a connection goes on where it was, and its peer sees nothing.
//
// Options (`SocketOption`, kept in the socket's SSR record): a receive timeout (a
// receive or receiveFrom waiting longer answers `timedOut`) and a send timeout (a TCP
// send whose bytes the peer has not acknowledged in time — a peer that stopped reading
// and shut its window — answers `connectionTimedOut`, and the connection is reset:
// its bytes can no longer be known to have arrived). In milliseconds; 0: none.
//
// receive's word 1 also carries the sequence number the client expects next (bits
// 16...47, with bit 48 saying it knows one: the `next` of its previous receive's
// reply). A reply the server committed but a crash kept from the client would
// otherwise lose its bytes for good — the server acknowledges bytes to the peer only
// after their reply went out, so the peer still has them, and the server rewinds to
// where the client stands.
//
// sendTo binds an unbound socket to a free port first (like BSD sockets), and answers
// once the datagram is handed to the device or queued behind the ARP resolution of
// its next hop: UDP promises no delivery, and a datagram lost there is lost as on the
// wire. receiveFrom is held until a datagram for the socket arrives (or answers
// `wouldBlock` at once with the nonblocking flag); the datagrams a socket has not
// received yet wait in the server's memory, so a server crash loses them — which to
// the peer is the packet loss UDP users expect. ping sends one ICMP echo request and
// is held until its reply comes (`timedOut` after a second).

/// The operation numbers (they never change meaning).
public enum NetworkOperation: UInt16, Sendable, CaseIterable {
    case open = 1
    case bind = 2
    case sendTo = 3
    case receiveFrom = 4
    case close = 5
    case ping = 6
    case interface = 7
    case listen = 8
    case accept = 9
    case connect = 10
    case send = 11
    case receive = 12
    case shutdown = 13
    case poll = 14
    case socketInfo = 15
    case setOption = 16
    case sockets = 17
}

/// What `setOption` sets.
public enum SocketOption: UInt8, Sendable, CaseIterable {
    case receiveTimeout = 1
    case sendTimeout = 2
}

/// What a client is told when a request fails; the raw values are the wire codes.
public enum NetworkError: UInt32, Error, Sendable, Equatable, CaseIterable {
    /// The request breaks the protocol (a bad word, bit or payload length).
    case badRequest = 1
    case badOperation = 2
    /// The socket number names no open socket of this client.
    case badSocket = 3
    /// The client has `NetworkLimits.socketsPerClient` sockets open.
    case tooManySockets = 4
    /// Another socket holds the port.
    case addressInUse = 5
    /// No port is free (bind 0, or sendTo from an unbound socket).
    case noFreePort = 6
    /// A nonblocking receive found no datagram.
    case wouldBlock = 7
    /// A datagram longer than `NetworkLimits.maximumDatagram`.
    case messageTooLarge = 8
    /// The server has no network device (QEMU: -netdev ... -device virtio-net-device).
    case noDevice = 9
    /// A ping got no answer in time.
    case timedOut = 10
    /// Too many requests are waiting in the server (pings, queued datagrams).
    case busy = 11
    /// The destination cannot be sent to (0.0.0.0, a broadcast, port 0).
    case badAddress = 12
    /// The server could not trust this client's region after a crash: its sockets are gone.
    case stateLost = 13
    /// The server cannot be reached.
    case unavailable = 14
    /// The reply broke the protocol.
    case protocolViolation = 15
    /// The operation needs a socket of the other kind, or in another state (accept on
    /// a socket that does not listen, send before connect, listen after connect...).
    case wrongState = 16
    /// The peer answered the connection request with a reset (nobody listens there).
    case connectionRefused = 17
    /// The peer reset the connection.
    case connectionReset = 18
    /// The peer stopped acknowledging: the connection was given up.
    case connectionTimedOut = 19
    /// A send after shutdown or close of the sending side.
    case sendingShutDown = 20
    /// The kernel could not give the server a state region for this program: its
    /// memory budget (system.toml's `memory`) has no room for the SSR (8 KiB).
    case noMemoryForSockets = 21
    /// The destination is off the subnet and there is no gateway, or the interface has
    /// no address yet (DHCP has not leased one).
    case networkUnreachable = 22
}

extension NetworkError {
    /// The error in words, for a person (Embedded Swift cannot print a case's name).
    public var explanation: StaticString {
        switch self {
        case .badRequest: "bad request"
        case .badOperation: "operation not supported by the network server"
        case .badSocket: "bad socket"
        case .tooManySockets: "too many sockets"
        case .addressInUse: "address in use"
        case .noFreePort: "no free port"
        case .wouldBlock: "would block"
        case .messageTooLarge: "message too large"
        case .noDevice: "no network device (QEMU: -netdev user,id=n0,restrict=on -device virtio-net-device,netdev=n0,bus=virtio-mmio-bus.0)"
        case .timedOut: "no answer"
        case .busy: "network server busy"
        case .badAddress: "bad address"
        case .stateLost: "the network server lost this program's sockets"
        case .unavailable: "the network server cannot be reached"
        case .protocolViolation: "protocol violation"
        case .wrongState: "socket in the wrong state"
        case .connectionRefused: "connection refused"
        case .connectionReset: "connection reset"
        case .connectionTimedOut: "connection timed out"
        case .sendingShutDown: "sending side shut down"
        case .noMemoryForSockets: "no room in this program's memory budget for its socket state (8 KiB) at the network server"
        case .networkUnreachable: "network unreachable (no gateway, or no address yet)"
        }
    }
}

public enum NetworkLimits {
    /// The largest UDP payload in one Ethernet frame (1500 - 20 - 8).
    public static let maximumDatagram = 1472
    public static let socketsPerClient = 32
    /// The most bytes one TCP send or receive carries (the kernel's message limit).
    public static let maximumTransfer = 4096
    public static let maximumBacklog = 16
    /// A poll timeout that never ends.
    public static let pollForever: UInt = UInt(UInt32.max)
    /// The most data one ping carries.
    public static let maximumPingData = 1024
    /// Ephemeral ports (RFC 6335): what bind 0 and an unbound sendTo choose from.
    public static let ephemeralPorts: ClosedRange<UInt16> = 49152...65535
}

/// A socket of one client: the slot in the client's socket table and a per-client
/// generation, so a closed socket's number never names the socket that later reuses
/// its slot. 0 is never a socket.
public struct SocketHandle: Hashable, Sendable, BitwiseCopyable {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    static let slotBits: UInt32 = 5

    public init(slot: Int, generation: UInt32) {
        rawValue = UInt32(truncatingIfNeeded: slot) & (1 << Self.slotBits - 1) | generation << Self.slotBits
    }

    public var slot: Int { Int(rawValue & (1 << Self.slotBits - 1)) }
    public var generation: UInt32 { rawValue >> Self.slotBits }
    public static let maxGeneration: UInt32 = UInt32.max >> slotBits
}

/// An IPv4 address and a port, as one word on the wire.
public struct Endpoint: Equatable, Sendable {
    public var address: UInt32
    public var port: UInt16

    public init(address: UInt32, port: UInt16) {
        self.address = address
        self.port = port
    }

    public init?(word: UInt) {
        guard word >> 48 == 0 else { return nil }
        address = UInt32(truncatingIfNeeded: word >> 16)
        port = UInt16(truncatingIfNeeded: word)
    }

    public var word: UInt { UInt(address) << 16 | UInt(port) }
}

public enum SocketKind: UInt8, Sendable {
    case udp = 1
    case tcp = 2
}

/// One request, decoded and checked (the server) or about to be encoded (the client).
public enum NetworkRequest {
    case open(SocketKind)
    case bind(SocketHandle, port: UInt16)
    case sendTo(SocketHandle, Endpoint, data: UnsafeRawBufferPointer)
    case receiveFrom(SocketHandle, nonblocking: Bool)
    case close(SocketHandle, abort: Bool)
    case ping(address: UInt32, sequence: UInt16, data: UnsafeRawBufferPointer)
    case interface
    case listen(SocketHandle, backlog: Int)
    case accept(SocketHandle, nonblocking: Bool)
    case connect(SocketHandle, Endpoint)
    case send(SocketHandle, data: UnsafeRawBufferPointer)
    case receive(SocketHandle, count: Int, nonblocking: Bool, expected: UInt32?)
    case shutdown(SocketHandle)
    case poll(interest: PollInterest, timeoutMilliseconds: UInt)
    case socketInfo(index: Int)
    case setOption(SocketHandle, SocketOption, value: UInt32)
    case sockets

    public var operation: NetworkOperation {
        switch self {
        case .open: .open
        case .bind: .bind
        case .sendTo: .sendTo
        case .receiveFrom: .receiveFrom
        case .close: .close
        case .ping: .ping
        case .interface: .interface
        case .listen: .listen
        case .accept: .accept
        case .connect: .connect
        case .send: .send
        case .receive: .receive
        case .shutdown: .shutdown
        case .poll: .poll
        case .socketInfo: .socketInfo
        case .setOption: .setOption
        case .sockets: .sockets
        }
    }

    /// The message for this request: operation, words and payload. The client encodes
    /// through the server's own decoder, so a request it could not send is refused here.
    public func encode() throws(NetworkError) -> (operation: NetworkOperation, words: (UInt, UInt),
                                                  payload: UnsafeRawBufferPointer) {
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        func flagged(_ socket: SocketHandle, _ flag: Bool) -> UInt { UInt(socket.rawValue) | (flag ? 1 << 32 : 0) }
        let message: (NetworkOperation, (UInt, UInt), UnsafeRawBufferPointer)
        switch self {
        case .open(let kind): message = (.open, (UInt(kind.rawValue), 0), none)
        case .bind(let socket, let port): message = (.bind, (UInt(socket.rawValue), UInt(port)), none)
        case .sendTo(let socket, let endpoint, let data):
            guard data.count <= NetworkLimits.maximumDatagram else { throw .messageTooLarge }
            message = (.sendTo, (UInt(socket.rawValue), endpoint.word), data)
        case .receiveFrom(let socket, let nonblocking): message = (.receiveFrom, (flagged(socket, nonblocking), 0), none)
        case .close(let socket, let abort): message = (.close, (flagged(socket, abort), 0), none)
        case .ping(let address, let sequence, let data):
            guard data.count <= NetworkLimits.maximumPingData else { throw .messageTooLarge }
            message = (.ping, (UInt(address), UInt(sequence)), data)
        case .interface: message = (.interface, (0, 0), none)
        case .listen(let socket, let backlog):
            guard backlog >= 1 else { throw .badRequest }
            message = (.listen, (UInt(socket.rawValue), UInt(min(backlog, NetworkLimits.maximumBacklog))), none)
        case .accept(let socket, let nonblocking): message = (.accept, (flagged(socket, nonblocking), 0), none)
        case .connect(let socket, let endpoint): message = (.connect, (UInt(socket.rawValue), endpoint.word), none)
        case .send(let socket, let data):
            guard data.count <= NetworkLimits.maximumTransfer else { throw .messageTooLarge }
            message = (.send, (UInt(socket.rawValue), 0), data)
        case .receive(let socket, let count, let nonblocking, let expected):
            guard count >= 1 else { throw .badRequest }
            let expectation = expected.map { UInt($0) << 16 | 1 << 48 } ?? 0
            message = (.receive, (flagged(socket, nonblocking), UInt(min(count, NetworkLimits.maximumTransfer)) | expectation),
                       none)
        case .shutdown(let socket): message = (.shutdown, (UInt(socket.rawValue), 0), none)
        case .poll(let interest, let timeout):
            message = (.poll, (min(timeout, NetworkLimits.pollForever), UInt(interest.rawValue)), none)
        case .socketInfo(let index):
            guard index >= 0 else { throw .badRequest }
            message = (.socketInfo, (UInt(index), 0), none)
        case .setOption(let socket, let option, let value):
            message = (.setOption, (UInt(socket.rawValue) | UInt(option.rawValue) << 32, UInt(value)), none)
        case .sockets:
            message = (.sockets, (0, 0), none)
        }
        let decoded = try Self.decode(operation: message.0.rawValue, words: message.1, payload: message.2)
        guard decoded.operation == message.0 else { throw .badRequest }
        return message
    }

    /// The request a message carries, or the error to answer it with.
    public static func decode(operation raw: UInt16, words: (UInt, UInt),
                              payload: UnsafeRawBufferPointer) throws(NetworkError) -> NetworkRequest {
        guard let operation = NetworkOperation(rawValue: raw) else { throw .badOperation }
        func socket(_ word: UInt) throws(NetworkError) -> SocketHandle {
            guard word != 0, word <= UInt(UInt32.max) else { throw .badRequest }
            return SocketHandle(rawValue: UInt32(word))
        }
        /// A socket word with one flag at bit 32.
        func flaggedSocket(_ word: UInt) throws(NetworkError) -> (SocketHandle, Bool) {
            guard word >> 33 == 0 else { throw .badRequest }
            return (try socket(word & 0xFFFF_FFFF), word >> 32 == 1)
        }
        switch operation {
        case .open:
            guard words.1 == 0, payload.isEmpty, words.0 <= UInt(UInt8.max),
                  let kind = SocketKind(rawValue: UInt8(words.0)) else { throw .badRequest }
            return .open(kind)
        case .bind:
            guard payload.isEmpty, words.1 <= UInt(UInt16.max) else { throw .badRequest }
            return .bind(try socket(words.0), port: UInt16(words.1))
        case .sendTo:
            guard let endpoint = Endpoint(word: words.1) else { throw .badRequest }
            guard payload.count <= NetworkLimits.maximumDatagram else { throw .messageTooLarge }
            return .sendTo(try socket(words.0), endpoint, data: payload)
        case .receiveFrom:
            guard words.1 == 0, payload.isEmpty else { throw .badRequest }
            let (handle, nonblocking) = try flaggedSocket(words.0)
            return .receiveFrom(handle, nonblocking: nonblocking)
        case .close:
            guard words.1 == 0, payload.isEmpty else { throw .badRequest }
            let (handle, abort) = try flaggedSocket(words.0)
            return .close(handle, abort: abort)
        case .ping:
            guard words.0 <= UInt(UInt32.max), words.1 <= UInt(UInt16.max) else { throw .badRequest }
            guard payload.count <= NetworkLimits.maximumPingData else { throw .messageTooLarge }
            return .ping(address: UInt32(words.0), sequence: UInt16(words.1), data: payload)
        case .interface:
            guard words.0 == 0, words.1 == 0, payload.isEmpty else { throw .badRequest }
            return .interface
        case .listen:
            guard payload.isEmpty, words.1 >= 1, words.1 <= UInt(NetworkLimits.maximumBacklog) else { throw .badRequest }
            return .listen(try socket(words.0), backlog: Int(words.1))
        case .accept:
            guard words.1 == 0, payload.isEmpty else { throw .badRequest }
            let (handle, nonblocking) = try flaggedSocket(words.0)
            return .accept(handle, nonblocking: nonblocking)
        case .connect:
            guard payload.isEmpty, let endpoint = Endpoint(word: words.1) else { throw .badRequest }
            return .connect(try socket(words.0), endpoint)
        case .send:
            guard words.1 == 0, !payload.isEmpty else { throw .badRequest }
            guard payload.count <= NetworkLimits.maximumTransfer else { throw .messageTooLarge }
            return .send(try socket(words.0), data: payload)
        case .receive:
            let count = words.1 & 0xFFFF
            let known = words.1 >> 48
            guard payload.isEmpty, count >= 1, count <= UInt(NetworkLimits.maximumTransfer), known <= 1,
                  known == 1 || words.1 >> 16 == 0 else {
                throw .badRequest
            }
            let (handle, nonblocking) = try flaggedSocket(words.0)
            return .receive(handle, count: Int(count), nonblocking: nonblocking,
                            expected: known == 1 ? UInt32(truncatingIfNeeded: words.1 >> 16) : nil)
        case .shutdown:
            guard words.1 == 0, payload.isEmpty else { throw .badRequest }
            return .shutdown(try socket(words.0))
        case .poll:
            guard payload.isEmpty, words.0 <= NetworkLimits.pollForever else { throw .badRequest }
            return .poll(interest: PollInterest(rawValue: UInt64(words.1)), timeoutMilliseconds: words.0)
        case .socketInfo:
            guard words.1 == 0, payload.isEmpty, words.0 <= UInt(Int32.max) else { throw .badRequest }
            return .socketInfo(index: Int(words.0))
        case .setOption:
            guard payload.isEmpty, words.0 >> 40 == 0, words.1 <= UInt(UInt32.max),
                  let option = SocketOption(rawValue: UInt8(words.0 >> 32)) else { throw .badRequest }
            return .setOption(try socket(words.0 & 0xFFFF_FFFF), option, value: UInt32(words.1))
        case .sockets:
            guard words == (0, 0), payload.isEmpty else { throw .badRequest }
            return .sockets
        }
    }
}

/// Which sockets a poll waits for, or which are ready: bit i is socket slot i readable,
/// bit 32 + i slot i writable.
public struct PollInterest: Equatable, Sendable {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public init() { rawValue = 0 }

    public mutating func insert(readable socket: SocketHandle) { rawValue |= 1 << UInt64(socket.slot) }
    public mutating func insert(writable socket: SocketHandle) { rawValue |= 1 << UInt64(32 + socket.slot) }
    public func isReadable(_ socket: SocketHandle) -> Bool { rawValue & 1 << UInt64(socket.slot) != 0 }
    public func isWritable(_ socket: SocketHandle) -> Bool { rawValue & 1 << UInt64(32 + socket.slot) != 0 }
    public var isEmpty: Bool { rawValue == 0 }
}

extension NetworkOperation {
    /// The most payload bytes a correct reply carries (the "reply payload" column):
    /// the client sizes its buffer by it, so a longer reply is the server's own damage.
    public func replyLimit(words: (UInt, UInt)) -> Int {
        switch self {
        case .receiveFrom: NetworkLimits.maximumDatagram
        case .interface: InterfaceStatus.encodedBytes
        case .receive: Int(min(words.1 & 0xFFFF, UInt(NetworkLimits.maximumTransfer)))
        case .socketInfo: SocketInfo.encodedBytes
        case .sockets: NetworkLimits.socketsPerClient * SocketInfo.encodedBytes
        case .open, .bind, .sendTo, .close, .ping, .listen, .accept, .connect, .send, .shutdown, .poll, .setOption: 0
        }
    }
}

/// One socket as netstat shows it (the server's view, of every client): little-endian
/// words: kind | state << 8 | local port << 16 | owner (TaskID) << 32, remote endpoint,
/// bytes sent, bytes received, and the socket's handle (0 where netstat lists another
/// client's socket, whose handle the server does not keep outside its SSR).
public struct SocketInfo: Equatable, Sendable {
    public static let encodedBytes = 40

    public var kind: UInt8 = 0
    /// TCPState raw value (0 for UDP).
    public var state: UInt8 = 0
    public var localPort: UInt16 = 0
    public var owner: UInt32 = 0
    public var remote = Endpoint(address: 0, port: 0)
    public var bytesSent: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    /// The handle its owner names it by (`sockets`), nil in netstat's list.
    public var socket: SocketHandle?

    public init() {}

    public func encode(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard buffer.count >= Self.encodedBytes else { return 0 }
        let first = UInt64(kind) | UInt64(state) << 8 | UInt64(localPort) << 16 | UInt64(owner) << 32
        let words: InlineArray<5, UInt64> = [first, UInt64(remote.word), bytesSent, bytesReceived,
                                             UInt64(socket?.rawValue ?? 0)]
        for index in words.indices {
            buffer.storeBytes(of: words[index].littleEndian, toByteOffset: 8 * index, as: UInt64.self)
        }
        return Self.encodedBytes
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) -> SocketInfo? {
        guard bytes.count == encodedBytes else { return nil }
        func word(_ index: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self)) }
        guard let remote = Endpoint(word: UInt(word(1))) else { return nil }
        var info = SocketInfo()
        info.kind = UInt8(truncatingIfNeeded: word(0))
        info.state = UInt8(truncatingIfNeeded: word(0) >> 8)
        info.localPort = UInt16(truncatingIfNeeded: word(0) >> 16)
        info.owner = UInt32(truncatingIfNeeded: word(0) >> 32)
        info.remote = remote
        info.bytesSent = word(2)
        info.bytesReceived = word(3)
        guard word(4) >> 32 == 0 else { return nil }
        info.socket = word(4) == 0 ? nil : SocketHandle(rawValue: UInt32(word(4)))
        return info
    }
}

/// What `interface` answers (ifconfig): the configuration and the counters, as
/// little-endian 64-bit words in this order (word 0: has a device | leased by DHCP << 1
/// | holds a lease << 2; word 2: address | prefix length << 32; word 3: gateway | DNS
/// server << 32).
public struct InterfaceStatus: Equatable, Sendable {
    public static let encodedBytes = 8 * 9

    public var hasDevice = false
    /// The addresses are leased by DHCP (`net.address` = dhcp), and a lease is held.
    public var leasedByDHCP = false
    public var hasLease = false
    public var mac: UInt64 = 0
    public var address: UInt32 = 0
    public var prefixLength: UInt8 = 0
    public var gateway: UInt32 = 0
    public var dnsServer: UInt32 = 0
    public var framesReceived: UInt64 = 0
    public var framesSent: UInt64 = 0
    public var framesDropped: UInt64 = 0
    public var datagramsDelivered: UInt64 = 0
    public var datagramsDropped: UInt64 = 0

    public init() {}

    public func encode(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard buffer.count >= Self.encodedBytes else { return 0 }
        let flags: UInt64 = (hasDevice ? 1 : 0) | (leasedByDHCP ? 2 : 0) | (hasLease ? 4 : 0)
        let words: InlineArray<9, UInt64> = [flags, mac, UInt64(address) | UInt64(prefixLength) << 32,
                                             UInt64(gateway) | UInt64(dnsServer) << 32, framesReceived, framesSent, framesDropped,
                                             datagramsDelivered, datagramsDropped]
        for index in words.indices {
            buffer.storeBytes(of: words[index].littleEndian, toByteOffset: 8 * index, as: UInt64.self)
        }
        return Self.encodedBytes
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) -> InterfaceStatus? {
        guard bytes.count == encodedBytes else { return nil }
        func word(_ index: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self)) }
        guard word(0) <= 7, word(2) >> 40 == 0 else { return nil }
        var status = InterfaceStatus()
        status.hasDevice = word(0) & 1 != 0
        status.leasedByDHCP = word(0) & 2 != 0
        status.hasLease = word(0) & 4 != 0
        status.mac = word(1)
        status.address = UInt32(truncatingIfNeeded: word(2))
        status.prefixLength = UInt8(truncatingIfNeeded: word(2) >> 32)
        status.gateway = UInt32(truncatingIfNeeded: word(3))
        status.dnsServer = UInt32(truncatingIfNeeded: word(3) >> 32)
        status.framesReceived = word(4)
        status.framesSent = word(5)
        status.framesDropped = word(6)
        status.datagramsDelivered = word(7)
        status.datagramsDropped = word(8)
        return status
    }
}
