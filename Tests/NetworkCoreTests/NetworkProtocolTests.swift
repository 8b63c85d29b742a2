import NetworkCore
import Testing

/// Decodes a message with `payloadBytes` bytes of payload.
func decodeRequest(_ operation: UInt16, _ word0: UInt, _ word1: UInt,
                   payloadBytes: Int = 0) throws(NetworkError) -> NetworkRequest {
    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(payloadBytes, 1), alignment: 8)
    defer { storage.deallocate() }
    let payload = UnsafeRawBufferPointer(start: payloadBytes == 0 ? nil : storage.baseAddress, count: payloadBytes)
    return try NetworkRequest.decode(operation: operation, words: (word0, word1), payload: payload)
}

/// A request's meaning, comparable (the payload by its bytes).
enum RequestSummary: Equatable {
    case open(UInt8)
    case bind(UInt32, UInt16)
    case sendTo(UInt32, UInt32, UInt16, [UInt8])
    case receiveFrom(UInt32, Bool)
    case close(UInt32, Bool)
    case ping(UInt32, UInt16, [UInt8])
    case interface
    case listen(UInt32, Int)
    case accept(UInt32, Bool)
    case connect(UInt32, UInt32, UInt16)
    case send(UInt32, [UInt8])
    case receive(UInt32, Int, Bool, UInt32?)
    case shutdown(UInt32)
    case poll(UInt64, UInt)
    case socketInfo(Int)
    case setOption(UInt32, UInt8, UInt32)
    case sockets

    init(_ request: NetworkRequest) {
        switch request {
        case .open(let kind): self = .open(kind.rawValue)
        case .bind(let socket, let port): self = .bind(socket.rawValue, port)
        case .sendTo(let socket, let endpoint, let data):
            self = .sendTo(socket.rawValue, endpoint.address, endpoint.port, Array(data))
        case .receiveFrom(let socket, let nonblocking): self = .receiveFrom(socket.rawValue, nonblocking)
        case .close(let socket, let abort): self = .close(socket.rawValue, abort)
        case .listen(let socket, let backlog): self = .listen(socket.rawValue, backlog)
        case .accept(let socket, let nonblocking): self = .accept(socket.rawValue, nonblocking)
        case .connect(let socket, let endpoint): self = .connect(socket.rawValue, endpoint.address, endpoint.port)
        case .send(let socket, let data): self = .send(socket.rawValue, Array(data))
        case .receive(let socket, let count, let nonblocking, let expected):
            self = .receive(socket.rawValue, count, nonblocking, expected)
        case .shutdown(let socket): self = .shutdown(socket.rawValue)
        case .poll(let interest, let timeout): self = .poll(interest.rawValue, timeout)
        case .socketInfo(let index): self = .socketInfo(index)
        case .setOption(let socket, let option, let value): self = .setOption(socket.rawValue, option.rawValue, value)
        case .ping(let address, let sequence, let data): self = .ping(address, sequence, Array(data))
        case .interface: self = .interface
        case .sockets: self = .sockets
        }
    }
}

@Suite struct NetworkProtocolTests {
    let data: [UInt8] = (0..<1472).map { UInt8(truncatingIfNeeded: $0 * 13) }

    func roundTrip(_ request: NetworkRequest) throws -> NetworkRequest {
        let message = try request.encode()
        #expect(message.operation == request.operation)
        return try NetworkRequest.decode(operation: message.operation.rawValue, words: message.words,
                                         payload: message.payload)
    }

    @Test func everyRequestRoundTrips() throws {
        let socket = SocketHandle(slot: 5, generation: 77)
        let top = SocketHandle(slot: 31, generation: SocketHandle.maxGeneration)
        try data.withUnsafeBytes { (data) throws in
            let empty = UnsafeRawBufferPointer(start: nil, count: 0)
            let requests: [NetworkRequest] = [
                .open(.udp),
                .bind(socket, port: 0),
                .bind(top, port: 65535),
                .sendTo(socket, Endpoint(address: 0x0A00_0202, port: 53), data: data),
                .sendTo(socket, Endpoint(address: 0xFFFF_FFFF, port: 65535), data: UnsafeRawBufferPointer(rebasing: data[..<1])),
                .sendTo(top, Endpoint(address: 0, port: 0), data: empty),
                .receiveFrom(socket, nonblocking: false),
                .receiveFrom(top, nonblocking: true),
                .close(socket, abort: false),
                .close(SocketHandle(rawValue: 1), abort: true),
                .ping(address: 0x0A00_0202, sequence: 0xFFFF, data: UnsafeRawBufferPointer(rebasing: data[..<1024])),
                .ping(address: 0xFFFF_FFFF, sequence: 0, data: empty),
                .interface,
                .open(.tcp),
                .listen(socket, backlog: 1),
                .listen(top, backlog: 16),
                .accept(socket, nonblocking: false),
                .accept(top, nonblocking: true),
                .connect(socket, Endpoint(address: 0x0A00_0202, port: 80)),
                .send(socket, data: data),
                .receive(socket, count: 1, nonblocking: false, expected: nil),
                .receive(top, count: 4096, nonblocking: true, expected: 0xFFFF_FFFF),
                .receive(top, count: 7, nonblocking: false, expected: 0),
                .shutdown(socket),
                .poll(interest: PollInterest(rawValue: 1 << 5 | 1 << 37), timeoutMilliseconds: 0),
                .poll(interest: PollInterest(rawValue: UInt64.max), timeoutMilliseconds: NetworkLimits.pollForever),
                .socketInfo(index: 0),
                .socketInfo(index: 1000),
                .sockets,
                .setOption(socket, .receiveTimeout, value: 0),
                .setOption(top, .sendTimeout, value: UInt32.max),
            ]
            for request in requests {
                #expect(try RequestSummary(roundTrip(request)) == RequestSummary(request))
            }
        }
    }

    func words(_ request: NetworkRequest) throws -> [UInt] {
        let message = try request.encode()
        return [message.words.0, message.words.1]
    }

    @Test func theWireWordsAreAsDocumented() throws {
        let socket = SocketHandle(slot: 2, generation: 9)
        #expect(socket.rawValue == 9 << 5 | 2)
        #expect(socket.slot == 2 && socket.generation == 9)
        #expect(try words(.open(.udp)) == [1, 0])
        #expect(try words(.bind(socket, port: 80)) == [UInt(socket.rawValue), 80])
        #expect(try words(.receiveFrom(socket, nonblocking: true))
                == [UInt(socket.rawValue) | 1 << 32, 0])
        let endpoint = Endpoint(address: 0x0A00_0202, port: 0x1234)
        #expect(endpoint.word == 0x0A00_0202_1234)
        #expect(Endpoint(word: 0xFFFF_FFFF_FFFF) == Endpoint(address: 0xFFFF_FFFF, port: 0xFFFF))
        #expect(try words(.sendTo(socket, endpoint, data: UnsafeRawBufferPointer(start: nil, count: 0)))
                == [UInt(socket.rawValue), 0x0A00_0202_1234])
        #expect(try words(.interface) == [0, 0])
    }

    @Test func encodeRefusesWhatDecodeWould() {
        let big = [UInt8](repeating: 0, count: 1473)
        big.withUnsafeBytes { big in
            let socket = SocketHandle(slot: 0, generation: 1)
            #expect(throws: NetworkError.messageTooLarge) {
                try NetworkRequest.sendTo(socket, Endpoint(address: 1, port: 1), data: big).encode()
            }
            #expect(throws: NetworkError.messageTooLarge) {
                try NetworkRequest.ping(address: 1, sequence: 1, data: UnsafeRawBufferPointer(rebasing: big[..<1025]))
                    .encode()
            }
            #expect(throws: NetworkError.badRequest) {
                try NetworkRequest.close(SocketHandle(rawValue: 0), abort: false).encode()
            }
            #expect(throws: NetworkError.badRequest) {
                try NetworkRequest.bind(SocketHandle(rawValue: 0), port: 1).encode()
            }
        }
    }

    @Test(arguments: [UInt16(0), 18, 19, 100, UInt16.max])
    func anUnknownOperationIsBadOperation(operation: UInt16) {
        #expect(throws: NetworkError.badOperation) { try decodeRequest(operation, 0, 0) }
        #expect(throws: NetworkError.badOperation) { try decodeRequest(operation, 1, 0, payloadBytes: 10) }
    }

    /// Each malformed message, and the error decode answers it with.
    static let malformed: [(String, UInt16, UInt, UInt, Int, NetworkError)] = [
        // open: kind 1 or 2, word 1 zero, no payload.
        ("open kind 0", 1, 0, 0, 0, .badRequest),
        ("open kind 3", 1, 3, 0, 0, .badRequest),
        ("open kind 257", 1, 257, 0, 0, .badRequest),
        ("open word 1", 1, 1, 1, 0, .badRequest),
        ("open payload", 1, 1, 0, 1, .badRequest),
        // bind: a socket, a port.
        ("bind socket 0", 2, 0, 80, 0, .badRequest),
        ("bind socket > UInt32.max", 2, 1 << 32 | 9, 80, 0, .badRequest),
        ("bind port > 65535", 2, 9, 65536, 0, .badRequest),
        ("bind payload", 2, 9, 80, 4, .badRequest),
        // sendTo: a socket, an endpoint, at most 1472 bytes.
        ("sendTo socket 0", 3, 0, 0x0A00_0202_0035, 10, .badRequest),
        ("sendTo socket > UInt32.max", 3, UInt(UInt32.max) + 1, 0x0A00_0202_0035, 10, .badRequest),
        ("sendTo endpoint bit 48", 3, 9, 1 << 48 | 0x0A00_0202_0035, 10, .badRequest),
        ("sendTo endpoint bit 63", 3, 9, 1 << 63, 10, .badRequest),
        ("sendTo 1473 bytes", 3, 9, 0x0A00_0202_0035, 1473, .messageTooLarge),
        ("sendTo 4096 bytes", 3, 9, 0x0A00_0202_0035, 4096, .messageTooLarge),
        // receiveFrom: a socket, only flag bit 32, word 1 zero, no payload.
        ("receiveFrom socket 0", 4, 0, 0, 0, .badRequest),
        ("receiveFrom socket 0, nonblocking", 4, 1 << 32, 0, 0, .badRequest),
        ("receiveFrom flag bit 33", 4, 1 << 33 | 9, 0, 0, .badRequest),
        ("receiveFrom flag bit 63", 4, 1 << 63 | 9, 0, 0, .badRequest),
        ("receiveFrom word 1", 4, 9, 1, 0, .badRequest),
        ("receiveFrom payload", 4, 9, 0, 1, .badRequest),
        // close: a socket, only flag bit 32, word 1 zero, no payload.
        ("close socket 0", 5, 0, 0, 0, .badRequest),
        ("close flag bit 33", 5, 1 << 33 | 9, 0, 0, .badRequest),
        ("close word 1", 5, 9, 1, 0, .badRequest),
        ("close payload", 5, 9, 0, 1, .badRequest),
        // ping: an address, a sequence, at most 1024 bytes.
        ("ping address > UInt32.max", 6, 1 << 32, 1, 0, .badRequest),
        ("ping sequence > 65535", 6, 0x0A00_0202, 65536, 0, .badRequest),
        ("ping 1025 bytes", 6, 0x0A00_0202, 1, 1025, .messageTooLarge),
        // interface: nothing at all.
        ("interface word 0", 7, 1, 0, 0, .badRequest),
        ("interface word 1", 7, 0, 1, 0, .badRequest),
        ("interface payload", 7, 0, 0, 1, .badRequest),
        // listen: a socket, a backlog of 1...16.
        ("listen backlog 0", 8, 9, 0, 0, .badRequest),
        ("listen backlog 17", 8, 9, 17, 0, .badRequest),
        ("listen payload", 8, 9, 1, 1, .badRequest),
        // accept: a socket, only flag bit 32.
        ("accept flag bit 33", 9, 1 << 33 | 9, 0, 0, .badRequest),
        ("accept word 1", 9, 9, 1, 0, .badRequest),
        // connect: a socket, an endpoint, no payload.
        ("connect endpoint bit 48", 10, 9, 1 << 48, 0, .badRequest),
        ("connect payload", 10, 9, 0x0A00_0202_0050, 1, .badRequest),
        // send: a socket, 1...4096 bytes.
        ("send nothing", 11, 9, 0, 0, .badRequest),
        ("send word 1", 11, 9, 1, 10, .badRequest),
        ("send 4097 bytes", 11, 9, 0, 4097, .messageTooLarge),
        // receive: a socket, only flag bit 32, a count of 1...4096.
        ("receive count 0", 12, 9, 0, 0, .badRequest),
        ("receive count 4097", 12, 9, 4097, 0, .badRequest),
        ("receive flag bit 33", 12, 1 << 33 | 9, 1, 0, .badRequest),
        ("receive payload", 12, 9, 1, 1, .badRequest),
        ("receive expectation without its flag", 12, 9, 1 | 5 << 16, 0, .badRequest),
        ("receive bits above the flag", 12, 9, 1 | 1 << 49, 0, .badRequest),
        // shutdown: a socket only.
        ("shutdown word 1", 13, 9, 1, 0, .badRequest),
        ("shutdown socket 0", 13, 0, 0, 0, .badRequest),
        // poll: a timeout up to UInt32.max, any interest, no payload.
        ("poll timeout > UInt32.max", 14, 1 << 32, 1, 0, .badRequest),
        ("poll payload", 14, 0, 1, 1, .badRequest),
        // socketInfo: an index.
        ("socketInfo index > Int32.max", 15, 1 << 31, 0, 0, .badRequest),
        ("socketInfo word 1", 15, 0, 1, 0, .badRequest),
        // setOption: a socket, a known option, a 32-bit value.
        ("setOption option 0", 16, 9, 5, 0, .badRequest),
        ("setOption option 3", 16, 3 << 32 | 9, 5, 0, .badRequest),
        ("setOption value > UInt32.max", 16, 1 << 32 | 9, 1 << 32, 0, .badRequest),
        ("setOption payload", 16, 1 << 32 | 9, 5, 1, .badRequest),
        // sockets: nothing at all.
        ("sockets word 0", 17, 1, 0, 0, .badRequest),
        ("sockets word 1", 17, 0, 1, 0, .badRequest),
        ("sockets payload", 17, 0, 0, 1, .badRequest),
    ]

    @Test(arguments: malformed)
    func decodeRefusesAMalformedMessage(_ name: String, operation: UInt16, word0: UInt, word1: UInt,
                                        payloadBytes: Int, expected: NetworkError) {
        #expect(throws: expected, "\(name)") { try decodeRequest(operation, word0, word1, payloadBytes: payloadBytes) }
    }

    /// The limits themselves are accepted.
    @Test func decodeAcceptsTheLimits() throws {
        #expect(try RequestSummary(decodeRequest(2, UInt(UInt32.max), 65535)) == .bind(UInt32.max, 65535))
        #expect(try RequestSummary(decodeRequest(4, 1 << 32 | UInt(UInt32.max), 0)) == .receiveFrom(UInt32.max, true))
        if case .sendTo(_, let endpoint, let data) = try decodeRequest(3, 9, 0xFFFF_FFFF_FFFF, payloadBytes: 1472) {
            #expect(endpoint == Endpoint(address: 0xFFFF_FFFF, port: 0xFFFF))
            #expect(data.count == 1472)
        } else {
            Issue.record("not a sendTo")
        }
        if case .ping(_, _, let data) = try decodeRequest(6, UInt(UInt32.max), 65535, payloadBytes: 1024) {
            #expect(data.count == 1024)
        } else {
            Issue.record("not a ping")
        }
    }

    @Test func interfaceStatusRoundTrips() {
        var status = InterfaceStatus()
        status.hasDevice = true
        status.mac = 0x5254_0012_3456
        status.address = 0x0A00_020F
        status.prefixLength = 24
        status.gateway = 0x0A00_0202
        status.dnsServer = 0x0A00_0203
        status.leasedByDHCP = true
        status.hasLease = true
        status.framesReceived = 1
        status.framesSent = UInt64.max
        status.framesDropped = 3
        status.datagramsDelivered = 1 << 40
        status.datagramsDropped = 5
        for original in [status, InterfaceStatus()] {
            var buffer = [UInt8](repeating: 0xEE, count: 100)
            let written = buffer.withUnsafeMutableBytes { original.encode(into: $0) }
            #expect(written == InterfaceStatus.encodedBytes)
            #expect(buffer[72...].allSatisfy { $0 == 0xEE }, "nothing past the 72 bytes")
            #expect(buffer[..<72].withUnsafeBytes { InterfaceStatus.decode($0) } == original)
        }
        var small = [UInt8](repeating: 0, count: 71)
        #expect(small.withUnsafeMutableBytes { status.encode(into: $0) } == 0)
    }

    @Test func interfaceStatusDecodeRefusesDamage() {
        var status = InterfaceStatus()
        status.hasDevice = true
        status.prefixLength = 255
        var good = [UInt8](repeating: 0, count: 72)
        _ = good.withUnsafeMutableBytes { status.encode(into: $0) }
        #expect(good.withUnsafeBytes { InterfaceStatus.decode($0) } == status)
        for length in [0, 71, 73, 80] {
            let bytes = [UInt8](repeating: 0, count: length)
            #expect(bytes.withUnsafeBytes { InterfaceStatus.decode($0) } == nil, "length \(length)")
        }
        // An unknown flag in word 0; a bit above the prefix length in word 2.
        for (offset, byte) in [(0, UInt8(8)), (7, 0x80), (8 * 2 + 5, 1), (8 * 2 + 7, 0x80)] {
            var damaged = good
            damaged[offset] = byte
            #expect(damaged.withUnsafeBytes { InterfaceStatus.decode($0) } == nil, "byte \(offset) = \(byte)")
        }
    }

    /// A socket as `sockets` and netstat describe it: the five words, the handle in
    /// the last (0 in netstat's list), anything else there refused.
    @Test func socketInfoRoundTripsWithItsHandle() {
        var info = SocketInfo()
        info.kind = SocketKind.tcp.rawValue
        info.state = 4
        info.localPort = 9000
        info.owner = 0x0003_0008
        info.remote = Endpoint(address: 0x0A00_0202, port: 40000)
        info.bytesSent = 12
        info.bytesReceived = 204_800
        info.socket = SocketHandle(slot: 3, generation: 9)
        var bytes = [UInt8](repeating: 0xEE, count: SocketInfo.encodedBytes)
        #expect(bytes.withUnsafeMutableBytes { info.encode(into: $0) } == 40)
        #expect(bytes.withUnsafeBytes { SocketInfo.decode($0) } == info)
        #expect(Array(bytes[32..<40]) == [3 | 9 << 5, 1, 0, 0, 0, 0, 0, 0])
        var listed = info
        listed.socket = nil
        #expect(bytes.withUnsafeMutableBytes { listed.encode(into: $0) } == 40)
        #expect(bytes.withUnsafeBytes { SocketInfo.decode($0) }?.socket == nil)
        bytes[36] = 1
        #expect(bytes.withUnsafeBytes { SocketInfo.decode($0) } == nil, "the handle is 32 bits")
    }

    @Test func replyLimits() {
        let expected: [NetworkOperation: Int] = [.open: 0, .bind: 0, .sendTo: 0, .receiveFrom: 1472, .close: 0,
                                                 .ping: 0, .interface: 72, .listen: 0, .accept: 0, .connect: 0,
                                                 .send: 0, .receive: 100, .shutdown: 0, .poll: 0, .socketInfo: 40,
                                                 .setOption: 0, .sockets: 32 * 40]
        for operation in NetworkOperation.allCases {
            #expect(operation.replyLimit(words: (9, 100)) == expected[operation])
        }
        #expect(NetworkOperation.receive.replyLimit(words: (9, 5000 | 1 << 48)) == 4096)
        #expect(NetworkOperation.allCases.map(\.rawValue) == Array(1...17))
    }

    @Test func errorCodesAreStable() {
        #expect(NetworkError.allCases.map(\.rawValue) == Array(1...22))
        #expect(NetworkError.badRequest.rawValue == 1 && NetworkError.protocolViolation.rawValue == 15)
    }
}
