// What the network server keeps in its own memory: caches of the SSRs and packets in
// transit, all of which a restart may lose.
//
// `PortTable` says which socket a datagram for a local port goes to. It is a cache of
// the bound ports in the clients' SSRs: the server fills it as it recovers each SSR
// (`rebuild`), and keeps it in step as clients bind and close. A port claimed by two
// SSRs (which only damage could produce: bind refuses a taken port) goes to the first
// one recovered; the other socket receives nothing until it is closed.
//
// `DatagramPool` holds the datagrams that arrived for a socket before its client asked
// for them: a fixed number of 1472-byte buffers shared by all sockets, each socket
// limited to a few so that one slow reader cannot starve the rest. A datagram that
// finds no room is dropped and counted, as a full socket buffer drops it in any stack;
// per socket, datagrams leave in the order they arrived.

/// A socket, server-wide: its client (a TaskID's raw value) and the slot in its table.
public struct SocketOwner: Equatable, Sendable {
    public var client: UInt32
    public var slot: Int

    public init(client: UInt32, slot: Int) {
        self.client = client
        self.slot = slot
    }
}

public struct PortTable {
    public static let capacity = 128

    struct Entry {
        var port: UInt16
        var owner: SocketOwner
    }

    var entries: [Entry] = []

    public init() { entries.reserveCapacity(Self.capacity) }

    public var count: Int { entries.count }

    public func owner(of port: UInt16) -> SocketOwner? {
        for entry in entries where entry.port == port { return entry.owner }
        return nil
    }

    /// Records `owner` on `port`; false if the port is taken or the table is full.
    public mutating func claim(_ port: UInt16, by owner: SocketOwner) -> Bool {
        guard port != 0, self.owner(of: port) == nil, entries.count < Self.capacity else { return false }
        entries.append(Entry(port: port, owner: owner))
        return true
    }

    public mutating func release(_ port: UInt16, by owner: SocketOwner) {
        entries.removeAll { $0.port == port && $0.owner == owner }
    }

    /// Forgets every port of `client` (it ended).
    public mutating func releaseAll(of client: UInt32) {
        entries.removeAll { $0.owner.client == client }
    }

    /// A free ephemeral port, searched from `hint` on (so successive choices spread).
    public func freeEphemeralPort(hint: UInt16) -> UInt16? {
        let range = NetworkLimits.ephemeralPorts
        let span = Int(range.upperBound) - Int(range.lowerBound) + 1
        let start = Int(hint) % span
        for step in 0..<span {
            let port = UInt16(Int(range.lowerBound) + (start + step) % span)
            if owner(of: port) == nil { return port }
        }
        return nil
    }

    /// The ports and owners, for netstat and the tests.
    public func forEach(_ body: (UInt16, SocketOwner) -> Void) {
        for entry in entries { body(entry.port, entry.owner) }
    }
}

/// A datagram waiting for its socket's client.
public struct QueuedDatagram {
    public var owner: SocketOwner
    public var source: Endpoint
    public var length: Int
    /// Arrival order, server-wide.
    public var sequence: UInt64
}

public final class DatagramPool {
    public static let capacity = 32
    public static let perSocket = 8

    let storage: UnsafeMutableRawPointer
    var slots: [QueuedDatagram?]
    var nextSequence: UInt64 = 0
    public private(set) var dropped: UInt64 = 0

    public init() {
        storage = UnsafeMutableRawPointer.allocate(byteCount: Self.capacity * NetworkLimits.maximumDatagram,
                                                   alignment: 8)
        slots = [QueuedDatagram?](repeating: nil, count: Self.capacity)
    }

    deinit { storage.deallocate() }

    public func count(for owner: SocketOwner) -> Int {
        var count = 0
        for slot in slots where slot?.owner == owner { count += 1 }
        return count
    }

    /// Keeps a copy of `payload` for `owner`; false (and counted) if there is no room.
    public func enqueue(_ payload: UnsafeRawBufferPointer, from source: Endpoint, for owner: SocketOwner) -> Bool {
        guard payload.count <= NetworkLimits.maximumDatagram, count(for: owner) < Self.perSocket,
              let free = slots.firstIndex(where: { $0 == nil }) else {
            dropped &+= 1
            return false
        }
        if payload.count > 0 {
            (storage + free * NetworkLimits.maximumDatagram).copyMemory(from: payload.baseAddress!,
                                                                       byteCount: payload.count)
        }
        slots[free] = QueuedDatagram(owner: owner, source: source, length: payload.count, sequence: nextSequence)
        nextSequence &+= 1
        return true
    }

    /// The oldest datagram for `owner`, lent to `body` and then forgotten; nil if none.
    public func dequeue<Result>(for owner: SocketOwner,
                                _ body: (QueuedDatagram, UnsafeRawBufferPointer) -> Result) -> Result? {
        var oldest: Int?
        for index in slots.indices {
            guard let datagram = slots[index], datagram.owner == owner else { continue }
            if let current = oldest, slots[current]!.sequence <= datagram.sequence { continue }
            oldest = index
        }
        guard let index = oldest, let datagram = slots[index] else { return nil }
        slots[index] = nil
        return body(datagram, UnsafeRawBufferPointer(start: storage + index * NetworkLimits.maximumDatagram,
                                                      count: datagram.length))
    }

    /// Drops every datagram queued for `owner` (its socket closed).
    public func discardAll(for owner: SocketOwner) {
        for index in slots.indices where slots[index]?.owner == owner { slots[index] = nil }
    }

    /// Drops every datagram queued for any socket of `client` (it ended).
    public func discardAll(of client: UInt32) {
        for index in slots.indices where slots[index]?.owner.client == client { slots[index] = nil }
    }
}
