// The network server: IPv4 over a user-mode virtio-net driver for every program,
// restartable, with each client's sockets in that client's server state region
// (paper §3, "Network Service").
//
// Start-up. The server maps virtio-mmio slot 0 and owns its interrupt (system.toml;
// QEMU puts the device there with `bus=virtio-mmio-bus.0`), resets the device (a
// previous instance may have left buffers with it), and brings it up with every
// receive buffer offered. The host's address is QEMU user networking's: 10.0.2.15/24,
// gateway 10.0.2.2.
//
// What lives where:
//
//   client SSRs (survive a crash)          server memory (rebuilt or lost)
//   ------------------------------         ----------------------------------------
//   each socket: kind, bound port,         port table: port -> (client, socket),
//   handle generation, counters            rebuilt from the SSRs at recovery
//                                          datagrams not yet received (lost: the
//                                          peer sees packet loss)
//                                          ARP cache, frames waiting for ARP (lost:
//                                          resolved again)
//                                          held receives and pings (the kernel
//                                          delivers them again after a restart)
//
// A frame's life: interrupt (a notification) -> the driver lends the frame ->
// FrameParser.classify checks every header and says what it is -> ARP is answered and
// learnt, an echo request answered, an echo reply completes the ping that waits for
// it, a UDP datagram goes to the socket bound to its port: straight into the reply of
// a held receive (`SSRServer.complete`), or into the pool until the client asks ->
// the buffer goes back to the device.
//
// Sending: sendTo builds the frame in a transmit buffer when the next hop's MAC is
// known, or keeps a copy while an ARP request goes out (resent every ~300 ms, given
// up after a second: the datagram is lost, as UDP allows), and answers at once.
//
// A device that breaks the virtqueue protocol, or a check of the server's own caches
// that fails, restarts the server: the kernel resets the device, the new instance
// rebuilds its port table from the SSRs, the held receives come again, and no client
// sees more than lost datagrams.

import ConfigAPI
import CurioUser
import NetworkCore
import SSRFormat
import SSRServer
import UserArch
import Virtio

/// The device's registers: read through the read-only mapping, written through the
/// kernel, which checks that the device can reach no memory but our DMA pages.
struct MappedRegisters: VirtioRegisters {
    func read32(_ offset: Int) -> UInt32 {
        curio_mmio_read32(UnsafeMutablePointer<UInt32>(bitPattern: NetworkLayout.deviceWindow + UInt(offset))!)
    }

    func write32(_ offset: Int, _ value: UInt32) {
        do throws(SyscallError) {
            try System.writeDeviceRegister(range: 0, offset: offset, value: value)
        } catch {
            System.reportFailure()
        }
    }
}

struct HartFence: VirtioBarrier {
    func fence() { curio_fence() }
}

typealias NetDriver = VirtioNetDriver<MappedRegisters, HartFence>

enum NetworkLayout {
    /// Where the kernel maps the server's device range (system.toml: slot 0).
    static let deviceWindow: UInt = 0x7000_0000
    static let pageBytes = 4096
}

enum NetworkTiming {
    static let arpRetry = System.ticksPerSecond / 1000 * 300
    static let arpGiveUp = System.ticksPerSecond
    static let pingTimeout = System.ticksPerSecond
    /// How long each promise to a held client runs (`renewPromisesIfDue`), and how
    /// often the promises are renewed.
    static let promiseLease = 5 * System.ticksPerSecond
    static let promiseRenewal = System.ticksPerSecond
}

/// A receive the server holds until a datagram comes, or its deadline.
struct HeldReceive {
    var owner: SocketOwner
    var deadline: UInt64?
}

/// A ping the server holds until its echo reply comes, or its deadline.
struct HeldPing {
    var client: TaskID
    var address: IPv4Address
    var identifier: UInt16
    var sequence: UInt16
    var sentAt: UInt64
    var deadline: UInt64
}

/// A frame that waits for its next hop's MAC address.
struct WaitingFrame {
    var nextHop: IPv4Address
    var firstAsked: UInt64
    var lastAsked: UInt64
    var length: Int
    var bytes: UnsafeMutableRawPointer
}

struct NetworkService: SSRService {
    typealias State = NetworkClientState

    static let layoutVersion: UInt32 = 2
    static var initialState: NetworkClientState { .initial }
    static func significantBytes(of state: UnsafePointer<NetworkClientState>) -> Int {
        NetworkClientState.significantBytes(of: state)
    }
    static var notificationMask: UInt32 { 1 | UInt32(truncatingIfNeeded: KernelNotification.timerBit) }
    static func check(_ state: UnsafePointer<NetworkClientState>) -> Bool { NetworkClientState.isConsistent(state) }
    static func replyLimit(operation: UInt16, words: (UInt, UInt)) -> Int {
        NetworkOperation(rawValue: operation)?.replyLimit(words: words) ?? 0
    }

    static let maximumHeldPings = 8
    static let maximumWaitingFrames = 8
    /// Frames to our own address waiting to be taken in (97 KiB at most: the heap also
    /// holds every connection's buffers).
    static let maximumLoopedFrames = 64

    var driver: NetDriver?
    var interface: Interface
    var dnsServer: IPv4Address
    /// With `net.address` = `dhcp`: the client that leases the interface's addresses
    /// (DHCP.swift); until it holds a lease the address is 0.0.0.0.
    var dhcp: DHCPClient?
    var arp = ARPCache()
    var udpPorts = PortTable()
    var tcpPorts = PortTable()
    let pool = DatagramPool()
    /// TCP (TCPService.swift): every connection the server knows, the listening
    /// sockets, held polls, and connections to acknowledge once a reply is out.
    var connections: [ConnectionEntry] = []
    var listeners: [Listener] = []
    var polls: [HeldPoll] = []
    var acknowledgeAfterReply: [TCPConnection] = []
    var tcpConfiguration = TCPConfiguration()
    let sequenceSecret: UInt64
    /// Bytes a receive completed from `notified` is built in (the reply's payload).
    let receiveScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: NetworkLimits.maximumTransfer,
                                                                 alignment: 8)
    var tcpSegmentsDropped: UInt64 = 0
    var receives: [HeldReceive] = []
    var pings: [HeldPing] = []
    var waitingFrames: [WaitingFrame] = []
    /// Frames to our own address, not yet taken in (`loop`).
    var loopedFrames: [(bytes: UnsafeMutableRawPointer, length: Int)] = []
    var drops = InlineArray<32, UInt64>(repeating: 0)
    var datagramsDelivered: UInt64 = 0
    var ipIdentification: UInt16 = 1
    var portHint: UInt16 = 0
    /// The deadline handed to `setTimer` (0: none).
    var armed: UInt64 = 0
    /// When every held request was last promised again (`renewPromisesIfDue`).
    var promisesRenewedAt: UInt64 = 0

    init() {
        let settings = Self.configuredSettings()
        interface = Interface(mac: .zero, address: .any, prefixLength: 0, gateway: .any)
        dnsServer = .any
        portHint = UInt16(truncatingIfNeeded: System.clock())
        sequenceSecret = System.clock() &* 0x9E37_79B9_7F4A_7C15
        tcpConfiguration.ticksPerSecond = System.ticksPerSecond
        tcpConfiguration.timeWaitTicks = 2 * System.ticksPerSecond
        driver = Self.attach()
        // Without a device every request that needs one is answered `noDevice`, which
        // ifconfig turns into the QEMU options that give one.
        if let driver { interface.mac = MACAddress(rawValue: driver.mac) }
        configure(settings)
        if settings == nil && driver != nil {
            dhcp = DHCPClient(transaction: UInt32(truncatingIfNeeded: sequenceSecret >> 16), now: System.clock(),
                              ticksPerSecond: System.ticksPerSecond)
            arm()
        }
    }

    /// The interface's settings from the configuration service (InterfaceSettings.swift),
    /// or the standard ones if a key is missing or the values are refused (said on the
    /// console, with the key and why); nil if the address is to be leased by DHCP.
    static func configuredSettings() -> InterfaceSettings? {
        let values = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 * ConfigLimits.valueBytes, alignment: 8)
        defer { values.deallocate() }
        let program: StaticString = "net"
        let programBytes = UnsafeRawBufferPointer(start: program.utf8Start, count: program.utf8CodeUnitCount)
        func value(_ setting: StaticString, _ index: Int) -> UnsafeRawBufferPointer? {
            let start = index * ConfigLimits.valueBytes
            let slot = UnsafeMutableRawBufferPointer(rebasing: values[start..<start + ConfigLimits.valueBytes])
            guard let length = try? Config.get(program: programBytes, setting: setting, into: slot) else { return nil }
            return UnsafeRawBufferPointer(rebasing: slot[0..<min(length, slot.count)])
        }
        guard let address = value("address", 0), let gateway = value("gateway", 1), let dnsServer = value("dns", 2) else {
            return .standard
        }
        if address.elementsEqual("dhcp".utf8) { return nil }
        do throws(InterfaceSettingsError) {
            return try InterfaceSettings.parse(address: address, gateway: gateway, dnsServer: dnsServer)
        } catch {
            print("net: " + String(error.key) + " refused: " + String(error.explanation) + "; using 10.0.2.15/24")
            return .standard
        }
    }

    /// Brings up the device in slot 0 with a ring page and the buffer pages, each of
    /// whose physical addresses the kernel grants us for DMA.
    static func attach() -> NetDriver? {
        let registers = MappedRegisters()
        guard NetDriver.probe(registers) else { return nil }
        let ringMemory = UnsafeMutableRawPointer.allocate(byteCount: NetworkLayout.pageBytes,
                                                          alignment: NetworkLayout.pageBytes)
        ringMemory.initializeMemory(as: UInt8.self, repeating: 0, count: NetworkLayout.pageBytes)
        let pageCount = NetDriver.bufferPagesNeeded
        let buffers = UnsafeMutableRawPointer.allocate(byteCount: pageCount * NetworkLayout.pageBytes,
                                                       alignment: NetworkLayout.pageBytes)
        var bufferPages = DMAPages()
        for index in 0..<pageCount {
            let page = buffers + index * NetworkLayout.pageBytes
            page.initializeMemory(as: UInt8.self, repeating: 0, count: NetworkLayout.pageBytes)
            guard bufferPages.append(try? System.physicalAddress(of: page)) != nil,
                  bufferPages.address(ofPage: index) != nil else { return nil }
        }
        guard let ringPhysical = try? System.physicalAddress(of: ringMemory) else { return nil }
        do throws(NetworkDeviceError) {
            var driver = try NetDriver(registers: registers,
                                       ring: DMARegion(base: ringMemory, physical: ringPhysical,
                                                       byteCount: NetworkLayout.pageBytes),
                                       buffers: buffers, bufferPages: bufferPages, barrier: HartFence())
            try driver.initialize()
            return driver
        } catch {
            print("net: the network device could not be brought up")
            return nil
        }
    }

    // MARK: Recovery and clients

    mutating func rebuild(client: TaskID, state: NetworkClientState) {
        for slot in 0..<NetworkLimits.socketsPerClient where state.sockets[slot].isBound {
            let owner = SocketOwner(client: client.rawValue, slot: slot)
            let socket = state.sockets[slot]
            if socket.kind == SocketKind.udp.rawValue {
                _ = udpPorts.claim(socket.localPort, by: owner)
            } else {
                rebuildTCP(socket, owner: owner)
            }
        }
    }

    mutating func clientEnded(client: TaskID, state: NetworkClientState?) {
        udpPorts.releaseAll(of: client.rawValue)
        pool.discardAll(of: client.rawValue)
        receives.removeAll { $0.owner.client == client.rawValue }
        pings.removeAll { $0.client == client }
        tcpClientEnded(client)
        arm()
    }

    // MARK: Requests

    mutating func handle(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                         state: inout NetworkClientState) -> SSROutcome {
        let request: NetworkRequest
        do throws(NetworkError) {
            request = try NetworkRequest.decode(operation: operation, words: words, payload: payload.request)
        } catch {
            return .reply(error.rawValue)
        }
        let outcome: SSROutcome
        do throws(NetworkError) {
            outcome = try perform(request, payload: payload, client: client, state: &state)
        } catch {
            return .reply(error.rawValue)
        }
        let now = System.clock()
        if case .deferred = outcome {
            try? System.promiseReply(to: client, by: now &+ NetworkTiming.promiseLease)
        }
        renewPromisesIfDue(now: now)
        return outcome
    }

    mutating func perform(_ request: NetworkRequest, payload: SSRPayload, client: TaskID,
                          state: inout NetworkClientState) throws(NetworkError) -> SSROutcome {
        switch request {
        case .open(let kind):
            let socket = try state.open(kind)
            if kind == .tcp { state.sockets[socket.slot].tcpState = TCPState.closed.rawValue }
            return .reply(0, UInt(socket.rawValue))
        case .bind(let socket, let port):
            guard let slot = state.slot(of: socket) else { throw .badSocket }
            guard !state.sockets[slot].isBound else { throw .badRequest }
            let bound = try bind(slot: slot, port: port, client: client, state: &state)
            return .reply(0, UInt(bound))
        case .sendTo(let socket, let destination, let data):
            guard let slot = state.slot(of: socket) else { throw .badSocket }
            guard state.sockets[slot].kind == SocketKind.udp.rawValue else { throw .wrongState }
            guard driver != nil else { throw .noDevice }
            let address = IPv4Address(rawValue: destination.address)
            guard destination.port != 0, address != .any, address != .broadcast else { throw .badAddress }
            if !state.sockets[slot].isBound { _ = try bind(slot: slot, port: 0, client: client, state: &state) }
            let sourcePort = state.sockets[slot].localPort
            try sendUDP(to: address, port: destination.port, from: sourcePort, payload: data)
            state.sockets[slot].sent &+= 1
            return .reply(0, UInt(data.count), UInt(sourcePort))
        case .receiveFrom(let socket, let nonblocking):
            guard let slot = state.slot(of: socket) else { throw .badSocket }
            guard state.sockets[slot].kind == SocketKind.udp.rawValue else { throw .wrongState }
            guard state.sockets[slot].isBound else { throw .badRequest }
            let owner = SocketOwner(client: client.rawValue, slot: slot)
            if let words = deliverQueued(to: owner, into: payload.replyBuffer) {
                state.sockets[slot].received &+= 1
                return .reply(code: 0, words: words, length: Int(words.1))
            }
            if nonblocking { throw .wouldBlock }
            receives.removeAll { $0.owner == owner }
            receives.append(HeldReceive(owner: owner, deadline: Self.deadline(
                afterMilliseconds: state.sockets[slot].receiveTimeout, now: System.clock())))
            arm()
            return .deferred
        case .close(let socket, let abort):
            guard let slot = state.slot(of: socket) else { throw .badSocket }
            if state.sockets[slot].kind == SocketKind.tcp.rawValue {
                return closeTCP(slot: slot, abort: abort, client: client, state: &state)
            }
            let owner = SocketOwner(client: client.rawValue, slot: slot)
            if state.sockets[slot].isBound { udpPorts.release(state.sockets[slot].localPort, by: owner) }
            pool.discardAll(for: owner)
            receives.removeAll { $0.owner == owner }
            state.close(slot: slot)
            return .reply()
        case .ping(let address, let sequence, let data):
            guard driver != nil else { throw .noDevice }
            let target = IPv4Address(rawValue: address)
            guard target != .any, target != .broadcast else { throw .badAddress }
            pings.removeAll { $0.client == client }
            guard pings.count < Self.maximumHeldPings else { throw .busy }
            let identifier = UInt16(truncatingIfNeeded: client.rawValue)
            let now = System.clock()
            try sendEcho(to: target, identifier: identifier, sequence: sequence, data: data)
            pings.append(HeldPing(client: client, address: target, identifier: identifier, sequence: sequence,
                                  sentAt: now, deadline: now + NetworkTiming.pingTimeout))
            arm()
            return .deferred
        case .interface:
            let length = interfaceStatus().encode(into: payload.replyBuffer)
            return .reply(code: 0, words: (0, 0), length: length)
        case .listen(let socket, let backlog):
            return try listen(socket, backlog: backlog, client: client, state: &state)
        case .accept(let socket, let nonblocking):
            return try accept(socket, nonblocking: nonblocking, client: client, state: &state)
        case .connect(let socket, let destination):
            return try connect(socket, to: destination, client: client, state: &state)
        case .send(let socket, let data):
            return try sendStream(socket, data: data, client: client, state: &state)
        case .receive(let socket, let count, let nonblocking, let expected):
            return try receiveStream(socket, count: count, nonblocking: nonblocking, expected: expected,
                                     into: payload.replyBuffer, client: client, state: &state)
        case .shutdown(let socket):
            return try shutdown(socket, client: client, state: &state)
        case .poll(let interest, let timeout):
            return poll(interest, timeoutMilliseconds: timeout, client: client, state: state)
        case .socketInfo(let index):
            return socketInfo(index, into: payload.replyBuffer)
        case .setOption(let socket, let option, let value):
            return try setOption(socket, option, value: value, state: &state)
        case .sockets:
            let length = Self.encodeSockets(of: state, client: client, into: payload.replyBuffer)
            return .reply(code: 0, words: (UInt(length / SocketInfo.encodedBytes), 0), length: length)
        }
    }

    /// The client's own sockets, from its SSR, each with its handle (`sockets`).
    static func encodeSockets(of state: NetworkClientState, client: TaskID,
                              into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var length = 0
        for slot in 0..<NetworkLimits.socketsPerClient where !state.sockets[slot].isFree {
            let record = state.sockets[slot]
            var info = SocketInfo()
            info.kind = record.kind
            info.state = record.tcpState
            info.localPort = record.localPort
            info.owner = client.rawValue
            info.remote = Endpoint(address: record.remoteAddress, port: record.remotePort)
            info.bytesSent = record.sent
            info.bytesReceived = record.received
            info.socket = SocketHandle(slot: slot, generation: record.generation)
            length += info.encode(into: UnsafeMutableRawBufferPointer(rebasing: buffer[length...]))
        }
        return length
    }

    /// A reply answered and committed before a crash came again: a receive is
    /// handled again (the datagram it carried was in server memory and is lost, as on
    /// the wire); the status is computed afresh; the rest carry no payload.
    mutating func replayPayload(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                                state: NetworkClientState, reply: SSRReply) -> Int? {
        switch NetworkOperation(rawValue: operation) {
        case .receiveFrom: return reply.code == 0 ? nil : 0
        // Its bytes were counted as delivered, then lost with the crash: handled again,
        // the request's expected sequence number rewinds the connection to them.
        case .receive: return reply.code == 0 && reply.word0 > 0 ? nil : 0
        case .interface: return reply.code == 0 ? interfaceStatus().encode(into: payload.replyBuffer) : 0
        case .socketInfo: return reply.code == 0 ? socketInfoPayload(words: words, into: payload.replyBuffer) : 0
        case .sockets: return reply.code == 0 ? Self.encodeSockets(of: state, client: client, into: payload.replyBuffer) : 0
        default: return 0
        }
    }

    mutating func bind(slot: Int, port: UInt16, client: TaskID,
                       state: inout NetworkClientState) throws(NetworkError) -> UInt16 {
        let owner = SocketOwner(client: client.rawValue, slot: slot)
        var chosen = port
        if chosen == 0 {
            guard let free = ports(of: state.sockets[slot]).freeEphemeralPort(hint: portHint) else {
                throw .noFreePort
            }
            chosen = free
            portHint = portHint &+ 1
        }
        let claimed = state.sockets[slot].kind == SocketKind.udp.rawValue ? udpPorts.claim(chosen, by: owner)
            : tcpPorts.claim(chosen, by: owner)
        guard claimed else { throw port == 0 ? .noFreePort : .addressInUse }
        state.bind(slot: slot, port: chosen)
        return chosen
    }

    /// The port table of a socket's kind.
    func ports(of socket: SocketRecord) -> PortTable {
        socket.kind == SocketKind.udp.rawValue ? udpPorts : tcpPorts
    }

    func interfaceStatus() -> InterfaceStatus {
        var status = InterfaceStatus()
        status.hasDevice = driver != nil
        status.mac = interface.mac.rawValue
        status.address = interface.address.rawValue
        status.prefixLength = UInt8(truncatingIfNeeded: interface.prefixLength)
        status.gateway = interface.gateway.rawValue
        status.dnsServer = dnsServer.rawValue
        status.leasedByDHCP = dhcp != nil
        status.hasLease = dhcp?.lease != nil
        if let counters = driver?.counters {
            status.framesReceived = counters.framesReceived
            status.framesSent = counters.framesSent
            status.framesDropped = counters.badLengths &+ counters.transmitBusy
        }
        for index in 0..<DropReason.allCases.count { status.framesDropped &+= drops[index] }
        status.framesDropped &+= tcpSegmentsDropped
        status.datagramsDelivered = datagramsDelivered
        status.datagramsDropped = pool.dropped
        return status
    }

    /// The oldest queued datagram for `owner`, copied into `buffer`: the reply words
    /// (source endpoint, length), or nil if none is queued.
    func deliverQueued(to owner: SocketOwner, into buffer: UnsafeMutableRawBufferPointer) -> (UInt, UInt)? {
        pool.dequeue(for: owner) { datagram, bytes in
            let length = min(bytes.count, buffer.count)
            if length > 0 { buffer.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: length) }
            return (datagram.source.word, UInt(length))
        }
    }

    // MARK: Sending

    mutating func nextIdentification() -> UInt16 {
        ipIdentification = ipIdentification &+ 1
        return ipIdentification
    }

    mutating func sendUDP(to address: IPv4Address, port: UInt16, from sourcePort: UInt16,
                          payload: UnsafeRawBufferPointer) throws(NetworkError) {
        let identification = nextIdentification()
        let interface = interface
        try send(to: address) { frame, mac in
            FrameBuilder.udp(into: frame, from: interface, toMAC: mac, to: address, sourcePort: sourcePort,
                             destinationPort: port, payload: payload, ipIdentification: identification)
        }
    }

    mutating func sendEcho(to address: IPv4Address, identifier: UInt16, sequence: UInt16,
                           data: UnsafeRawBufferPointer) throws(NetworkError) {
        let identification = nextIdentification()
        let interface = interface
        try send(to: address) { frame, mac in
            FrameBuilder.echo(into: frame, from: interface, toMAC: mac, to: address, isReply: false,
                              identifier: identifier, sequence: sequence, data: data,
                              ipIdentification: identification)
        }
    }

    /// Builds a frame for `address` with `build` and sends it to the next hop: at once
    /// if its MAC is known, else after ARP resolves it (the frame waits in a copy,
    /// built with a placeholder MAC that is filled in then).
    mutating func send(to address: IPv4Address,
                       _ build: (UnsafeMutableRawBufferPointer, MACAddress) -> Int?) throws(NetworkError) {
        if address == interface.address {
            let mac = interface.mac
            try loop { frame in build(frame, mac) }
            return
        }
        guard interface.reaches(address) else { throw .networkUnreachable }
        let now = System.clock()
        let nextHop = interface.nextHop(for: address)
        if let mac = arp.lookup(nextHop, now: now) {
            transmit { frame in build(frame, mac) }
            return
        }
        guard waitingFrames.count < Self.maximumWaitingFrames else { throw .busy }
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: NetDriver.maximumFrameBytes, alignment: 8)
        guard let length = build(UnsafeMutableRawBufferPointer(start: bytes, count: NetDriver.maximumFrameBytes),
                                 .zero) else {
            bytes.deallocate()
            throw .messageTooLarge
        }
        waitingFrames.append(WaitingFrame(nextHop: nextHop, firstAsked: now, lastAsked: now, length: length,
                                          bytes: bytes))
        askForMAC(of: nextHop)
        arm()
    }

    /// A frame to our own address: kept, and taken in as if it had arrived, once the
    /// work at hand is done (`takeLoopedFrames`: after the reply, or at the end of a
    /// notification), never from inside a request, where its handling would answer
    /// other clients while this one's SSR is mapped.
    mutating func loop(_ build: (UnsafeMutableRawBufferPointer) -> Int?) throws(NetworkError) {
        guard loopedFrames.count < Self.maximumLoopedFrames else { throw .busy }
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: NetDriver.maximumFrameBytes, alignment: 8)
        guard let length = build(UnsafeMutableRawBufferPointer(start: bytes, count: NetDriver.maximumFrameBytes)) else {
            bytes.deallocate()
            throw .messageTooLarge
        }
        loopedFrames.append((bytes, length))
        SSRServer<NetworkService>.requestFollowUp()
    }

    mutating func takeLoopedFrames() {
        while !loopedFrames.isEmpty {
            let (bytes, length) = loopedFrames.removeFirst()
            process(UnsafeRawBufferPointer(start: bytes, count: length))
            bytes.deallocate()
        }
    }

    mutating func askForMAC(of address: IPv4Address) {
        let interface = interface
        transmit { frame in FrameBuilder.arpRequest(into: frame, from: interface, asking: address) }
    }

    /// Builds a frame in a transmit buffer and sends it; a frame for which no buffer
    /// is free is dropped (the driver counts it). A device that broke the protocol
    /// restarts the server.
    mutating func transmit(_ build: (UnsafeMutableRawBufferPointer) -> Int?) {
        guard driver != nil else { return }
        do throws(NetworkDeviceError) {
            guard let buffer = try driver!.transmitBuffer() else { return }
            guard let length = build(buffer.frame) else { return }
            try driver!.send(buffer, length: length)
        } catch {
            System.reportFailure()
        }
    }

    /// Sends every frame waiting for `address`'s MAC, now that it is known.
    mutating func flushWaitingFrames(for address: IPv4Address, mac: MACAddress) {
        var index = 0
        while index < waitingFrames.count {
            let waiting = waitingFrames[index]
            guard waiting.nextHop == address else {
                index += 1
                continue
            }
            waitingFrames.remove(at: index)
            // The destination MAC is the frame's first six bytes.
            var value = mac.rawValue
            for position in (0..<6).reversed() {
                waiting.bytes.storeBytes(of: UInt8(truncatingIfNeeded: value), toByteOffset: position, as: UInt8.self)
                value >>= 8
            }
            transmit { frame in
                frame.baseAddress!.copyMemory(from: waiting.bytes, byteCount: waiting.length)
                return waiting.length
            }
            waiting.bytes.deallocate()
        }
    }

    // MARK: Receiving

    mutating func notified(bits: UInt) {
        if bits & 1 != 0 { receiveFrames() }
        if bits & KernelNotification.timerBit != 0 {
            armed = 0
            let now = System.clock()
            expire(now: now)
            tcpTimers(now: now)
            runDHCP(now: now)
        }
        takeLoopedFrames()
        renewPromisesIfDue(now: System.clock())
        arm()
    }

    // MARK: Promises

    /// The server promises (system.toml) the reply to every request it holds. A
    /// request may be held for as long as its client waits for a connection, a byte
    /// or a datagram, so the promise is a lease: each deferred request is promised for
    /// `promiseLease`, and every request the tables say is held is promised again each
    /// `promiseRenewal`. A request that a fault made us lose from the tables, while the
    /// server runs on, is no longer renewed: its promise runs out, the kernel restarts
    /// us, and the restarted server, handed the request again, serves it. (A campaign
    /// found such a run: one download stalled for good after a register flip.)
    var heldRequestsExist: Bool {
        !receives.isEmpty || !pings.isEmpty || !polls.isEmpty || listeners.contains { $0.acceptHeld }
            || connections.contains { $0.held != nil && $0.owner != nil }
    }

    mutating func renewPromisesIfDue(now: UInt64) {
        guard now &- promisesRenewedAt >= NetworkTiming.promiseRenewal else { return }
        promisesRenewedAt = now
        let until = now &+ NetworkTiming.promiseLease
        for receive in receives { try? System.promiseReply(to: TaskID(rawValue: receive.owner.client), by: until) }
        for ping in pings { try? System.promiseReply(to: ping.client, by: until) }
        for poll in polls { try? System.promiseReply(to: poll.client, by: until) }
        for listener in listeners where listener.acceptHeld {
            try? System.promiseReply(to: TaskID(rawValue: listener.owner.client), by: until)
        }
        for entry in connections where entry.held != nil {
            if let owner = entry.owner { try? System.promiseReply(to: TaskID(rawValue: owner.client), by: until) }
        }
    }

    /// After a reply went out: acknowledge the TCP bytes it delivered to the peer, and
    /// take in the frames sent to our own address meanwhile.
    mutating func followUp() {
        let due = acknowledgeAfterReply
        acknowledgeAfterReply.removeAll()
        for connection in due { acknowledge(connection) }
        takeLoopedFrames()
        arm()
    }

    mutating func receiveFrames() {
        guard driver != nil else {
            try? System.acknowledgeInterrupt(0)
            return
        }
        driver!.acknowledgeInterrupt()
        do throws(NetworkDeviceError) {
            while let frame = try driver!.nextFrame() {
                process(frame.bytes)
                try driver!.release(frame)
            }
        } catch {
            System.reportFailure()
        }
        try? System.acknowledgeInterrupt(0)
    }

    mutating func process(_ frame: UnsafeRawBufferPointer) {
        let now = System.clock()
        switch FrameParser.classify(frame, for: interface) {
        case .arpRequest(let sender, let senderAddress):
            arp.insert(senderAddress, sender, now: now)
            let interface = interface
            transmit { out in FrameBuilder.arpReply(into: out, from: interface, to: sender, toAddress: senderAddress) }
            flushWaitingFrames(for: senderAddress, mac: sender)
        case .arpReply(let sender, let senderAddress):
            arp.insert(senderAddress, sender, now: now)
            flushWaitingFrames(for: senderAddress, mac: sender)
        case .echoRequest(let from, let source, let identifier, let sequence, let dataOffset, let dataLength):
            let interface = interface
            let identification = nextIdentification()
            let data = UnsafeRawBufferPointer(rebasing: frame[dataOffset..<dataOffset + dataLength])
            transmit { out in
                FrameBuilder.echo(into: out, from: interface, toMAC: from, to: source, isReply: true,
                                  identifier: identifier, sequence: sequence, data: data,
                                  ipIdentification: identification)
            }
        case .echoReply(let source, let identifier, let sequence, _, _):
            answerPing(from: source, identifier: identifier, sequence: sequence, now: now)
        case .udp(_, let source, let sourcePort, let destinationPort, let payloadOffset, let payloadLength):
            let payload = UnsafeRawBufferPointer(rebasing: frame[payloadOffset..<payloadOffset + payloadLength])
            if destinationPort == DHCPMessage.clientPort && sourcePort == DHCPMessage.serverPort && dhcp != nil {
                leaseArrived(payload, now: now)
            } else {
                deliver(payload, from: Endpoint(address: source.rawValue, port: sourcePort), to: destinationPort)
            }
        case .tcp(let from, let source, let destination, let segmentOffset, let segmentLength):
            guard let segment = TCPSegment.parse(frame, offset: segmentOffset, length: segmentLength, source: source,
                                                 destination: destination) else {
                tcpSegmentsDropped &+= 1
                return
            }
            arp.insert(source, from, now: now)
            let data = UnsafeRawBufferPointer(rebasing: frame[segment.dataOffset..<segment.dataOffset + segment.dataLength])
            segmentArrived(segment, data: data, from: source, now: now)
        case .drop(let reason):
            count(reason)
        }
    }

    mutating func count(_ reason: DropReason) {
        if reason.rawValue < drops.count { drops[reason.rawValue] &+= 1 }
    }

    /// A datagram for local port `port`: into the held receive of its socket, if one
    /// waits, else into the pool.
    mutating func deliver(_ payload: UnsafeRawBufferPointer, from source: Endpoint, to port: UInt16) {
        guard let owner = udpPorts.owner(of: port) else {
            count(.unknownProtocol)
            return
        }
        if let index = receives.firstIndex(where: { $0.owner == owner }) {
            let held = receives.remove(at: index)
            let client = TaskID(rawValue: owner.client)
            do throws(SyscallError) {
                let answered = try SSRServer<NetworkService>.complete(client, payload: payload) { state in
                    guard state.sockets[owner.slot].isBound,
                          state.sockets[owner.slot].localPort == port else { return .deferred }
                    state.sockets[owner.slot].received &+= 1
                    return .reply(code: 0, words: (source.word, UInt(payload.count)), length: payload.count)
                }
                if answered {
                    datagramsDelivered &+= 1
                    return
                }
                receives.append(held)
            } catch {
                // The client ended; its unbind follows.
                return
            }
        }
        if pool.enqueue(payload, from: source, for: owner) {
            datagramsDelivered &+= 1
            wakePoll(of: owner.client)
        }
    }

    mutating func answerPing(from source: IPv4Address, identifier: UInt16, sequence: UInt16, now: UInt64) {
        guard let index = pings.firstIndex(where: {
            $0.address == source && $0.identifier == identifier && $0.sequence == sequence
        }) else { return }
        let ping = pings.remove(at: index)
        _ = try? SSRServer<NetworkService>.complete(ping.client) { _ in
            .reply(0, UInt(now &- ping.sentAt), 0)
        }
    }

    /// Gives up on pings and ARP resolutions that ran out of time; asks again for the
    /// MACs still unknown.
    mutating func expire(now: UInt64) {
        var index = 0
        while index < pings.count {
            let ping = pings[index]
            guard ping.deadline <= now else {
                index += 1
                continue
            }
            pings.remove(at: index)
            _ = try? SSRServer<NetworkService>.complete(ping.client) { _ in .reply(NetworkError.timedOut.rawValue) }
        }
        index = 0
        while index < waitingFrames.count {
            let waiting = waitingFrames[index]
            if now &- waiting.firstAsked >= NetworkTiming.arpGiveUp {
                waitingFrames.remove(at: index)
                waiting.bytes.deallocate()
                continue
            }
            if now &- waiting.lastAsked >= NetworkTiming.arpRetry {
                waitingFrames[index].lastAsked = now
                askForMAC(of: waiting.nextHop)
            }
            index += 1
        }
    }

    // MARK: DHCP

    /// Takes `settings` as the interface's addresses; nil: none (no lease yet, or
    /// none any more).
    mutating func configure(_ settings: InterfaceSettings?) {
        interface.address = settings?.address ?? .any
        interface.prefixLength = settings?.prefixLength ?? 0
        interface.gateway = settings?.gateway ?? .any
        dnsServer = settings?.dnsServer ?? .any
    }

    /// A DHCP server's answer: taken in by the client, and a lease it grants becomes
    /// the interface's addresses.
    mutating func leaseArrived(_ payload: UnsafeRawBufferPointer, now: UInt64) {
        guard let client = dhcp, let reply = DHCPMessage.parse(payload, transaction: client.transaction,
                                                               mac: interface.mac) else {
            count(.unknownProtocol)
            return
        }
        let granted = dhcp!.received(reply, now: now)
        if let lease = granted {
            configure(lease.settings)
        }
        runDHCP(now: now)
    }

    /// Sends what the DHCP client's timer says is due, by broadcast.
    mutating func runDHCP(now: UInt64) {
        guard dhcp != nil else { return }
        let hadLease = dhcp!.lease != nil
        guard let message = dhcp!.timerFired(now: now) else { return }
        if hadLease && dhcp!.lease == nil {
            configure(nil)
        }
        let mac = interface.mac
        let interface = interface
        let identification = nextIdentification()
        transmit { frame in
            let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: DHCPMessage.minimumBytes, alignment: 8)
            defer { payload.deallocate() }
            guard let length = DHCPMessage.build(into: payload, type: message.type, transaction: message.transaction,
                                                 mac: mac, client: message.client, requested: message.requested,
                                                 server: message.server) else { return nil }
            return FrameBuilder.udp(into: frame, from: interface, toMAC: .broadcast, to: .broadcast,
                                    sourcePort: DHCPMessage.clientPort, destinationPort: DHCPMessage.serverPort,
                                    payload: UnsafeRawBufferPointer(rebasing: payload[0..<length]),
                                    ipIdentification: identification)
        }
    }

    /// Asks the kernel to wake us at the next ping deadline, ARP retry, TCP or DHCP
    /// timer, or renewal of promises.
    mutating func arm() {
        var wake: UInt64 = tcpNextDeadline ?? 0
        if let deadline = dhcp?.deadline, wake == 0 || deadline < wake { wake = deadline }
        if heldRequestsExist {
            let renewal = promisesRenewedAt &+ NetworkTiming.promiseRenewal
            if wake == 0 || renewal < wake { wake = renewal }
        }
        for ping in pings where wake == 0 || ping.deadline < wake { wake = ping.deadline }
        for waiting in waitingFrames {
            let retry = waiting.lastAsked &+ NetworkTiming.arpRetry
            if wake == 0 || retry < wake { wake = retry }
        }
        guard wake != armed else { return }
        try? System.setTimer(deadline: wake, bits: KernelNotification.timerBit)
        armed = wake
    }
}

@main
struct NetworkServer {
    static func main() {
        var server = SSRServer(service: NetworkService(), regionBytes: 8192)
        server.run()
    }
}
