// What the network server keeps in each client's SSR: the client's sockets.
//
// The paper's network service keeps "socket state such as ports, addresses and
// sequence numbers" in the owning client's SSR, and in its own memory only what it can
// rebuild. For a UDP socket that state is small: which kind it is, the port it is bound
// to, and its counters. After a crash the restarted server walks the SSRs and rebuilds
// its port table (which socket of which client a datagram for port P goes to) from
// them; the datagrams queued for a socket but not yet received were in server memory
// and are gone, as if the network had lost them.
//
// Fields are plain integers rather than enums: a damaged byte is caught by
// `isConsistent`, which the server runs on every SSR it loads, instead of being
// undefined behaviour when read.
//
//   SocketRecord (32 bytes)
//   offset  field        meaning
//   ------  -----------  ------------------------------------------------------
//   0       kind         SocketKind raw value (0: a free slot)
//   1       flags        bit 0: bound
//   2       localPort    the bound port (0 while unbound)
//   4       generation   of the handle that names this socket
//   8       sent         datagrams handed to the device or the ARP queue
//   16      received     datagrams handed to the client
//   24      reserved     0
//
//   NetworkClientState: 32 SocketRecords (1 KiB), then nextGeneration (u32) and a
//   reserved u32 (0).

public struct SocketRecord: BitwiseCopyable, Sendable, Equatable {
    public var kind: UInt8
    public var flags: UInt8
    public var localPort: UInt16
    public var generation: UInt32
    public var sent: UInt64
    public var received: UInt64
    public var reserved: UInt64

    public static let boundFlag: UInt8 = 1

    public static var free: SocketRecord {
        SocketRecord(kind: 0, flags: 0, localPort: 0, generation: 0, sent: 0, received: 0, reserved: 0)
    }

    public var isFree: Bool { kind == 0 }
    public var isBound: Bool { flags & Self.boundFlag != 0 }

    /// A record that can only have been written by the server: free and all zero, or a
    /// known kind whose port is set exactly when it is bound.
    public var isConsistent: Bool {
        guard reserved == 0 else { return false }
        if kind == 0 { return flags == 0 && localPort == 0 && generation == 0 && sent == 0 && received == 0 }
        guard SocketKind(rawValue: kind) != nil, flags & ~Self.boundFlag == 0,
              generation != 0, generation <= SocketHandle.maxGeneration else { return false }
        return isBound == (localPort != 0)
    }
}

public struct NetworkClientState: BitwiseCopyable, Sendable {
    public var sockets: InlineArray<32, SocketRecord>
    /// The generation the next opened socket gets (1 ... SocketHandle.maxGeneration).
    public var nextGeneration: UInt32
    public var reserved: UInt32

    public static var initial: NetworkClientState {
        NetworkClientState(sockets: InlineArray(repeating: .free), nextGeneration: 1, reserved: 0)
    }

    public static func isConsistent(_ state: NetworkClientState) -> Bool {
        guard state.reserved == 0, state.nextGeneration != 0,
              state.nextGeneration <= SocketHandle.maxGeneration else { return false }
        let sockets = state.sockets.span
        for index in 0..<NetworkLimits.socketsPerClient {
            let socket = sockets[index]
            guard socket.isConsistent else { return false }
            guard socket.isBound else { continue }
            // One client never holds a port twice (the server refuses it).
            for other in 0..<index where sockets[other].isBound && sockets[other].localPort == socket.localPort {
                return false
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
        sockets[slot] = SocketRecord(kind: kind.rawValue, flags: 0, localPort: 0, generation: generation, sent: 0,
                                     received: 0, reserved: 0)
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
