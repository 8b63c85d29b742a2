// What the network server keeps in each client's SSR: the client's sockets.
//
// The paper's network service keeps "socket state such as ports, addresses and
// sequence numbers" in the owning client's SSR, and in its own memory only what it can
// rebuild. For a UDP socket that state is small: which kind it is, the port it is bound
// to, and its counters. For a TCP connection it is what a restarted server needs to go
// on without the peer noticing (TCPConnection.swift says why that is enough): the
// endpoints, the state, the next sequence number each way, the peer's window, MSS and
// scale. After a crash the restarted server walks the SSRs and rebuilds its port
// tables and connections from them; the datagrams queued for a socket but not yet
// received, and TCP bytes not yet delivered (never acknowledged to the peer), were in
// server memory and are gone, as if the network had lost them.
//
// Fields are plain integers rather than enums: a damaged byte is caught by
// `isConsistent`, which the server runs on every SSR it loads, instead of being
// undefined behaviour when read.
//
//   SocketRecord (64 bytes)
//   offset  field          meaning
//   ------  -------------  ----------------------------------------------------
//   0       kind           SocketKind raw value (0: a free slot)
//   1       flags          bit 0: bound; bit 1: listening (TCP)
//   2       localPort      the bound port (0 while unbound)
//   4       generation     of the handle that names this socket
//   8       sent           UDP: datagrams sent; TCP: bytes acknowledged by the peer
//   16      received       UDP: datagrams received; TCP: bytes delivered
//   24      tcpState       TCPState raw value (0 for UDP and unconnected TCP)
//   25      sendShift      TCP: the shift of the peer's windows (RFC 7323)
//   26      receiveShift   TCP: the shift of ours
//   27      backlog        TCP listener: connections that may wait for accept
//   28      remotePort     TCP: the peer's port
//   30      peerMSS        TCP: the peer's maximum segment size
//   32      remoteAddress  TCP: the peer's address
//   36      sendNext       TCP: every byte before it is acknowledged (TCPRecord)
//   40      receiveNext    TCP: every byte before it was delivered
//   44      sendWindow     TCP: the peer's last window, in bytes
//   48      cookieKey      TCP listener: the key of its SYN cookies (SynCookie.swift)
//   56      receiveTimeout the receive timeout in ms (0: none; SocketOption)
//   60      sendTimeout    the send timeout in ms (0: none)
//
//   NetworkClientState: nextGeneration (u32) and a reserved u32 (0), then 32
//   SocketRecords (2 KiB). Sockets are opened in the first free slot, so a client's
//   sockets sit at the front, and its SSR stores only the slots up to the last one in
//   use (`significantBytes`): a client with one connection commits 72 bytes of state
//   per request, not 2 KiB.

public struct SocketRecord: BitwiseCopyable, Sendable, Equatable {
    public var kind: UInt8
    public var flags: UInt8
    public var localPort: UInt16
    public var generation: UInt32
    public var sent: UInt64
    public var received: UInt64
    public var tcpState: UInt8
    public var sendShift: UInt8
    public var receiveShift: UInt8
    public var backlog: UInt8
    public var remotePort: UInt16
    public var peerMaximumSegmentSize: UInt16
    public var remoteAddress: UInt32
    public var sendNext: UInt32
    public var receiveNext: UInt32
    public var sendWindow: UInt32
    public var cookieKey: UInt64
    public var receiveTimeout: UInt32
    public var sendTimeout: UInt32

    public static let boundFlag: UInt8 = 1
    public static let listeningFlag: UInt8 = 2

    public static var free: SocketRecord { SocketRecord(kind: 0, generation: 0) }

    init(kind: UInt8, generation: UInt32) {
        self.kind = kind
        flags = 0
        localPort = 0
        self.generation = generation
        sent = 0
        received = 0
        tcpState = 0
        sendShift = 0
        receiveShift = 0
        backlog = 0
        remotePort = 0
        peerMaximumSegmentSize = 0
        remoteAddress = 0
        sendNext = 0
        receiveNext = 0
        sendWindow = 0
        cookieKey = 0
        receiveTimeout = 0
        sendTimeout = 0
    }

    public var isFree: Bool { kind == 0 }

    /// Every byte zero, as a free slot must be (a field left behind in one is damage).
    /// Eight word loads: the check runs over every slot twice a request, and comparing
    /// field by field with `.free` was a tenth of a loopback transfer's instructions.
    public var isZero: Bool {
        withUnsafeBytes(of: self) { Self.isZero(at: $0.baseAddress!) }
    }

    /// Whether the record at `record` (8-byte aligned) is all zero.
    @inline(__always)
    public static func isZero(at record: UnsafeRawPointer) -> Bool {
        var bits: UInt64 = 0
        for word in 0..<MemoryLayout<SocketRecord>.size / 8 {
            bits |= record.load(fromByteOffset: 8 * word, as: UInt64.self)
        }
        return bits == 0
    }
    public var isBound: Bool { flags & Self.boundFlag != 0 }
    public var isListening: Bool { flags & Self.listeningFlag != 0 }
    public var socketKind: SocketKind? { SocketKind(rawValue: kind) }
    public var state: TCPState? { TCPState(rawValue: tcpState) }

    /// The connection fields, as the TCP engine takes them up after a restart.
    public var tcpRecord: TCPRecord? {
        guard kind == SocketKind.tcp.rawValue, let state, state.isSynchronized else { return nil }
        return TCPRecord(state: state, localPort: localPort, remote: Endpoint(address: remoteAddress, port: remotePort),
                         sendNext: sendNext, receiveNext: receiveNext, sendWindow: sendWindow,
                         peerMaximumSegmentSize: peerMaximumSegmentSize, sendShift: sendShift,
                         receiveShift: receiveShift)
    }

    /// Writes a connection's fields (and marks the socket bound to its port).
    public mutating func store(_ record: TCPRecord) {
        tcpState = record.state.rawValue
        localPort = record.localPort
        flags = Self.boundFlag
        remotePort = record.remote.port
        remoteAddress = record.remote.address
        sendNext = record.sendNext
        receiveNext = record.receiveNext
        sendWindow = record.sendWindow
        peerMaximumSegmentSize = record.peerMaximumSegmentSize
        sendShift = record.sendShift
        receiveShift = record.receiveShift
    }

    /// A record that can only have been written by the server: free and all zero, or a
    /// known kind whose fields agree with each other.
    public var isConsistent: Bool {
        if kind == 0 { return isZero }
        guard isListening == (cookieKey != 0) else { return false }
        guard let kind = socketKind else { return false }
        guard generation != 0, generation <= SocketHandle.maxGeneration, flags & ~3 == 0,
              isBound == (localPort != 0) else { return false }
        let connectionFieldsZero = tcpState == 0 && sendShift == 0 && receiveShift == 0 && backlog == 0
            && remotePort == 0 && peerMaximumSegmentSize == 0 && remoteAddress == 0 && sendNext == 0
            && receiveNext == 0 && sendWindow == 0
        switch kind {
        case .udp:
            return !isListening && connectionFieldsZero
        case .tcp:
            guard let state else { return false }
            if isListening {
                return isBound && state == .listen && backlog >= 1 && backlog <= NetworkLimits.maximumBacklog
                    && remotePort == 0 && remoteAddress == 0
            }
            if state == .closed { return connectionFieldsZero }
            return state.isSynchronized && isBound && remotePort != 0 && remoteAddress != 0 && backlog == 0
                && sendShift <= 14 && receiveShift <= 14 && peerMaximumSegmentSize >= 64
        }
    }
}

public struct NetworkClientState: BitwiseCopyable, Sendable {
    /// The generation the next opened socket gets (1 ... SocketHandle.maxGeneration).
    public var nextGeneration: UInt32
    public var reserved: UInt32
    public var sockets: InlineArray<32, SocketRecord>

    public static var initial: NetworkClientState {
        NetworkClientState(nextGeneration: 1, reserved: 0, sockets: InlineArray(repeating: .free))
    }

    /// The bytes up to the end of the last socket in use: every byte after them is zero.
    /// In place: a `NetworkClientState` passed by value is a 2 KiB copy, and its
    /// `sockets` subscripted through a value copies them again, slot by slot.
    public static func significantBytes(of state: UnsafePointer<NetworkClientState>) -> Int {
        var used = NetworkLimits.socketsPerClient
        while used > 0 && state.pointee.sockets[used - 1].isFree { used -= 1 }
        return socketsOffset + used * MemoryLayout<SocketRecord>.stride
    }

    /// Where `sockets` starts (the layout above; a host test holds the compiler to it).
    public static let socketsOffset = 8

    public static func isConsistent(_ state: NetworkClientState) -> Bool {
        withUnsafePointer(to: state) { isConsistent($0) }
    }

    /// `isConsistent`, in place: the server's check of every request, read straight
    /// from the state's bytes (through `sockets`' span the check was a quarter of
    /// what an SSR cost a request). A free slot costs eight loads.
    public static func isConsistent(_ state: UnsafePointer<NetworkClientState>) -> Bool {
        guard state.pointee.reserved == 0, state.pointee.nextGeneration != 0,
              state.pointee.nextGeneration <= SocketHandle.maxGeneration else { return false }
        let records = UnsafeRawPointer(state) + socketsOffset
        let stride = MemoryLayout<SocketRecord>.stride
        for index in 0..<NetworkLimits.socketsPerClient {
            let record = records + index * stride
            if record.load(as: UInt8.self) == 0 {
                guard SocketRecord.isZero(at: record) else { return false }
                continue
            }
            let socket = record.load(as: SocketRecord.self)
            guard socket.isConsistent else { return false }
            guard socket.isBound, socket.kind == SocketKind.udp.rawValue else { continue }
            // One client never holds a UDP port twice (the server refuses it); TCP
            // connections accepted from one listener all share its port.
            for otherIndex in 0..<index {
                let other = (records + otherIndex * stride).load(as: SocketRecord.self)
                if other.isBound && other.kind == socket.kind && other.localPort == socket.localPort { return false }
            }
        }
        return true
    }

    /// The open socket `handle` names, by slot, or nil.
    public func slot(of handle: SocketHandle) -> Int? {
        let slot = handle.slot
        guard slot < NetworkLimits.socketsPerClient, !sockets[slot].isFree,
              sockets[slot].generation == handle.generation else { return nil }
        return slot
    }

    /// Opens a socket of `kind` in the first free slot.
    public mutating func open(_ kind: SocketKind) throws(NetworkError) -> SocketHandle {
        var found: Int?
        for index in 0..<NetworkLimits.socketsPerClient where sockets[index].isFree {
            found = index
            break
        }
        guard let slot = found else { throw .tooManySockets }
        let generation = nextGeneration
        nextGeneration = generation >= SocketHandle.maxGeneration ? 1 : generation + 1
        sockets[slot] = SocketRecord(kind: kind.rawValue, generation: generation)
        return SocketHandle(slot: slot, generation: generation)
    }

    public mutating func bind(slot: Int, port: UInt16) {
        sockets[slot].localPort = port
        sockets[slot].flags |= SocketRecord.boundFlag
    }

    public mutating func close(slot: Int) {
        sockets[slot] = .free
    }
}
