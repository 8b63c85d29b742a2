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
// Why three parallel InlineArrays and `entries[i]` reads: the storage server found
// that copying an InlineArray-holding struct in the embedded build copies every
// element; the scans here read one field of one slot at a time, in place.

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
        var slot = index(of: address)
        if slot == nil && count < Self.capacity {
            slot = count
            count += 1
        }
        let chosen = slot ?? leastRecentlyConfirmed()
        addresses[chosen] = address
        macs[chosen] = mac
        confirmedAt[chosen] = now
    }

    /// The MAC of `address`, or nil if it is not known or its entry is more than
    /// `lifetime` ticks old at `now`.
    public func lookup(_ address: IPv4Address, now: UInt64) -> MACAddress? {
        guard let slot = index(of: address) else { return nil }
        let confirmed = confirmedAt[slot]
        // A clock that went backwards makes an entry fresh rather than trapping.
        guard now <= confirmed || now - confirmed <= lifetime else { return nil }
        return macs[slot]
    }

    public mutating func removeAll() {
        count = 0
    }

    func index(of address: IPv4Address) -> Int? {
        for slot in 0..<count where addresses[slot] == address {
            return slot
        }
        return nil
    }

    func leastRecentlyConfirmed() -> Int {
        var oldest = 0
        for slot in 1..<count where confirmedAt[slot] < confirmedAt[oldest] {
            oldest = slot
        }
        return oldest
    }
}
