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
//    1  open         kind (1 = UDP)             0                      -                s, 0                      -
//    2  bind         s                          port (0: any free one) -                port, 0                   -
//    3  sendTo       s                          endpoint               data (≤ 1472)    count, local port         -
//    4  receiveFrom  s | nonblocking << 32      0                      -                endpoint, count           data (≤ 1472)
//    5  close        s                          0                      -                -                         -
//    6  ping         address                    sequence               data (≤ 1024)    round trip (ticks), ttl   -
//    7  interface    0                          0                      -                -                         InterfaceStatus
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
}

public enum NetworkLimits {
    /// The largest UDP payload in one Ethernet frame (1500 - 20 - 8).
    public static let maximumDatagram = 1472
    public static let socketsPerClient = 8
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

    static let slotBits: UInt32 = 3

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
}

/// One request, decoded and checked (the server) or about to be encoded (the client).
public enum NetworkRequest {
    case open(SocketKind)
    case bind(SocketHandle, port: UInt16)
    case sendTo(SocketHandle, Endpoint, data: UnsafeRawBufferPointer)
    case receiveFrom(SocketHandle, nonblocking: Bool)
    case close(SocketHandle)
    case ping(address: UInt32, sequence: UInt16, data: UnsafeRawBufferPointer)
    case interface

    public var operation: NetworkOperation {
        switch self {
        case .open: .open
        case .bind: .bind
        case .sendTo: .sendTo
        case .receiveFrom: .receiveFrom
        case .close: .close
        case .ping: .ping
        case .interface: .interface
        }
    }

    /// The message for this request: operation, words and payload.
    public func encode() throws(NetworkError) -> (operation: NetworkOperation, words: (UInt, UInt),
                                                  payload: UnsafeRawBufferPointer) {
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        let message: (NetworkOperation, (UInt, UInt), UnsafeRawBufferPointer)
        switch self {
        case .open(let kind): message = (.open, (UInt(kind.rawValue), 0), none)
        case .bind(let socket, let port): message = (.bind, (UInt(socket.rawValue), UInt(port)), none)
        case .sendTo(let socket, let endpoint, let data):
            guard data.count <= NetworkLimits.maximumDatagram else { throw .messageTooLarge }
            message = (.sendTo, (UInt(socket.rawValue), endpoint.word), data)
        case .receiveFrom(let socket, let nonblocking):
            message = (.receiveFrom, (UInt(socket.rawValue) | (nonblocking ? 1 << 32 : 0), 0), none)
        case .close(let socket): message = (.close, (UInt(socket.rawValue), 0), none)
        case .ping(let address, let sequence, let data):
            guard data.count <= NetworkLimits.maximumPingData else { throw .messageTooLarge }
            message = (.ping, (UInt(address), UInt(sequence)), data)
        case .interface: message = (.interface, (0, 0), none)
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
            guard words.1 == 0, payload.isEmpty, words.0 >> 33 == 0 else { throw .badRequest }
            return .receiveFrom(try socket(words.0 & 0xFFFF_FFFF), nonblocking: words.0 >> 32 == 1)
        case .close:
            guard words.1 == 0, payload.isEmpty else { throw .badRequest }
            return .close(try socket(words.0))
        case .ping:
            guard words.0 <= UInt(UInt32.max), words.1 <= UInt(UInt16.max) else { throw .badRequest }
            guard payload.count <= NetworkLimits.maximumPingData else { throw .messageTooLarge }
            return .ping(address: UInt32(words.0), sequence: UInt16(words.1), data: payload)
        case .interface:
            guard words.0 == 0, words.1 == 0, payload.isEmpty else { throw .badRequest }
            return .interface
        }
    }
}

extension NetworkOperation {
    /// The most payload bytes a correct reply carries (the "reply payload" column):
    /// the client sizes its buffer by it, so a longer reply is the server's own damage.
    public var replyLimit: Int {
        switch self {
        case .receiveFrom: NetworkLimits.maximumDatagram
        case .interface: InterfaceStatus.encodedBytes
        case .open, .bind, .sendTo, .close, .ping: 0
        }
    }
}

/// What `interface` answers (ifconfig): the configuration and the counters, as
/// little-endian 64-bit words in this order.
public struct InterfaceStatus: Equatable, Sendable {
    public static let encodedBytes = 8 * 9

    public var hasDevice = false
    public var mac: UInt64 = 0
    public var address: UInt32 = 0
    public var prefixLength: UInt8 = 0
    public var gateway: UInt32 = 0
    public var framesReceived: UInt64 = 0
    public var framesSent: UInt64 = 0
    public var framesDropped: UInt64 = 0
    public var datagramsDelivered: UInt64 = 0
    public var datagramsDropped: UInt64 = 0

    public init() {}

    public func encode(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard buffer.count >= Self.encodedBytes else { return 0 }
        let words: InlineArray<9, UInt64> = [hasDevice ? 1 : 0, mac, UInt64(address) | UInt64(prefixLength) << 32,
                                             UInt64(gateway), framesReceived, framesSent, framesDropped,
                                             datagramsDelivered, datagramsDropped]
        for index in words.indices {
            buffer.storeBytes(of: words[index].littleEndian, toByteOffset: 8 * index, as: UInt64.self)
        }
        return Self.encodedBytes
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) -> InterfaceStatus? {
        guard bytes.count == encodedBytes else { return nil }
        func word(_ index: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self)) }
        guard word(0) <= 1, word(2) >> 40 == 0, word(3) >> 32 == 0 else { return nil }
        var status = InterfaceStatus()
        status.hasDevice = word(0) == 1
        status.mac = word(1)
        status.address = UInt32(truncatingIfNeeded: word(2))
        status.prefixLength = UInt8(truncatingIfNeeded: word(2) >> 32)
        status.gateway = UInt32(truncatingIfNeeded: word(3))
        status.framesReceived = word(4)
        status.framesSent = word(5)
        status.framesDropped = word(6)
        status.datagramsDelivered = word(7)
        status.datagramsDropped = word(8)
        return status
    }
}
