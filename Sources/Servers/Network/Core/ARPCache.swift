// ARPCache: which MAC answers for which IPv4 address on our link, for a while.
//
// Why sixteen slots and a linear scan: a Curio host talks to a handful of
// neighbours (under QEMU's user networking, the gateway and the DNS proxy), so a
// scan of sixteen 4-byte addresses is cheaper than any hashing and needs no heap,
// no hash seed (`arc4random_buf`) and no rebalancing. The whole cache is a value
// that fits in an SSR if the server wants it to survive a restart; if it is lost,
// the cost is one ARP request per neighbour.
//
// Why entries expire: a mapping is only a claim made at one time. A neighbour that
// changes its MAC (a restarted VM, a replaced NIC) would otherwise be unreachable
// forever. After `lifetime` ticks without being confirmed an entry reads as absent,
// and the server asks again. Time is the caller's `now` (the `time` CSR, 10 MHz
// under QEMU), so the cache has no clock of its own and the tests control it.
//
// Why "least recently confirmed" and not "least recently used": an entry is
// renewed only by what the network says (`insert`), never by our own lookups, so
// eviction removes the claim we have the least evidence for. Expired entries are
// the oldest, so they go first.
//
// Why three parallel InlineArrays scanned through `span`: the storage server found
// that reading an element of an InlineArray held in a struct can copy the whole
// array in the embedded build (DMAPages.swift). Scanning a Span of just the field
// being compared keeps `insert` free of copies. `lookup`, a non-mutating method,
// still starts with one copy of the whole cache (336 bytes; the compiler copies the
// borrowed `self` before taking a span of it, whatever the spelling, as of 6.3):
// acceptable for one lookup per datagram sent, and the price of keeping the cache
// a plain value rather than a class on the heap.

public struct ARPCache: Sendable {
    public static let capacity = 16

    var addresses: InlineArray<16, IPv4Address>
    var macs: InlineArray<16, MACAddress>
    /// When each slot was last confirmed; slots at index `count` and above are free.
    var confirmedAt: InlineArray<16, UInt64>
    /// The number of slots in use; they are the first `count`.
    public private(set) var count: Int
    /// How many ticks an entry stays valid after it was last confirmed (default 60 s
    /// at 10 MHz).
    public var lifetime: UInt64

    public init() {
        addresses = InlineArray(repeating: .any)
        macs = InlineArray(repeating: .zero)
        confirmedAt = InlineArray(repeating: 0)
        count = 0
        lifetime = 600_000_000
    }

    /// Records that `address` is at `mac` as of `now`: updates the address's entry
    /// if there is one, else takes a free slot, else replaces the least recently
    /// confirmed entry.
    public mutating func insert(_ address: IPv4Address, _ mac: MACAddress, now: UInt64) {
        var slot = Self.index(of: address, in: addresses.span, count: count)
        if slot == nil && count < Self.capacity {
            slot = count
            count += 1
        }
        let chosen = slot ?? Self.oldest(in: confirmedAt.span, count: count)
        addresses[chosen] = address
        macs[chosen] = mac
        confirmedAt[chosen] = now
    }

    /// The MAC of `address`, or nil if it is not known or its entry is more than
    /// `lifetime` ticks old at `now`.
    public func lookup(_ address: IPv4Address, now: UInt64) -> MACAddress? {
        guard let slot = Self.index(of: address, in: addresses.span, count: count) else { return nil }
        let confirmed = confirmedAt.span[slot]
        // A clock that went backwards makes an entry fresh rather than trapping.
        let age = now > confirmed ? now - confirmed : 0
        guard age <= lifetime else { return nil }
        return macs.span[slot]
    }

    public mutating func removeAll() {
        count = 0
    }

    static func index(of address: IPv4Address, in addresses: Span<IPv4Address>, count: Int) -> Int? {
        for slot in 0..<count where addresses[slot] == address {
            return slot
        }
        return nil
    }

    /// The slot confirmed longest ago among the first `count` (at least one).
    static func oldest(in confirmedAt: Span<UInt64>, count: Int) -> Int {
        var oldest = 0
        for slot in 1..<count where confirmedAt[slot] < confirmedAt[oldest] {
            oldest = slot
        }
        return oldest
    }
}
