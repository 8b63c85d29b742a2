// The physical pages a driver may hand to its device, and nothing else.
//
// A device takes every address it is given on trust and reads or writes there, in
// whatever memory that is: another process's, the kernel's. So the driver checks
// each physical address before it reaches the device (a descriptor, a queue
// register) against the pages it obtained for DMA when it started — its ring page
// and its data pages, whose physical addresses the kernel told it
// (`physicalAddress`) — and refuses anything outside them. A pointer damaged by a
// fault (a flipped register, a wild write into the driver's state) then stops the
// driver instead of becoming a DMA into memory it does not own.
//
// The list itself is server memory a fault can damage, so it carries a check word
// over all its entries: a damaged list permits nothing (`contains` is false), which
// the server turns into a restart. This check only says that an address is one of
// the driver's own pages; whether it is the right one for a request, and the right
// sector, the server learns after the device completed it, by comparing what the
// ring and the header say the device was asked with the client's SSR record
// (`DeviceRequest`).
//
// Entries are in the order the pages were added, so a server that numbers its data
// pages 0..<n looks up page i's address here; a page whose address the kernel did not
// give stays in the list as `absent` and matches nothing.
//
// The entries live in a buffer allocated once, for the server's life (copies of the
// list share it; the server fills it before handing it to the driver). As an
// InlineArray in the struct, every entry read in the embedded build copied all 384
// bytes of them: a disk request cost the storage server about 100,000 instructions
// of copying.

public struct DMAPages {
    public static let capacity = 48
    public static let pageBytes = 4096
    /// The entry of a page whose physical address is unknown (never page-aligned).
    static let absent = UInt64.max

    let physical: UnsafeMutablePointer<UInt64>
    public private(set) var count: Int
    var check: UInt64

    public init() {
        physical = .allocate(capacity: Self.capacity)
        physical.initialize(repeating: Self.absent, count: Self.capacity)
        count = 0
        check = 0
        check = expectedCheck
    }

    /// Adds the next page and returns its index (nil: the list is full). A page whose
    /// address is unknown (nil), or is not a page's, keeps its index but matches nothing.
    @discardableResult
    public mutating func append(_ address: UInt64?) -> Int? {
        guard count < Self.capacity else { return nil }
        let valid = address.flatMap { $0 % UInt64(Self.pageBytes) == 0 && $0 != 0 ? $0 : nil }
        physical[count] = valid ?? Self.absent
        count += 1
        check = expectedCheck
        return count - 1
    }

    /// Page `index`'s physical address, if it has one and the list is intact.
    public func address(ofPage index: Int) -> UInt64? {
        guard index >= 0, index < count, physical[index] != Self.absent, isIntact else { return nil }
        return physical[index]
    }

    /// Whether `byteCount` bytes at `address` (at least one) lie inside one listed page,
    /// and the list is intact.
    public func contains(_ address: UInt64, byteCount: Int) -> Bool {
        guard byteCount > 0, byteCount <= Self.pageBytes, isIntact else { return false }
        let page = address & ~UInt64(Self.pageBytes - 1)
        guard address - page + UInt64(byteCount) <= UInt64(Self.pageBytes) else { return false }
        for index in 0..<count where physical[index] == page { return true }
        return false
    }

    /// Whether every entry still matches the check word.
    public var isIntact: Bool { check == expectedCheck && count >= 0 && count <= Self.capacity }

    /// FNV-1a's step over the count and the entries in use (nothing reads the others:
    /// the ring's list has two, and it is checked at every request), each multiply
    /// followed by a fold: a product alone carries differences only upwards, and two
    /// flips of bit 63 would cancel.
    var expectedCheck: UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(truncatingIfNeeded: count)
        for index in 0..<min(max(count, 0), Self.capacity) {
            hash = (hash ^ physical[index]) &* 0x0000_0100_0000_01B3
            hash ^= hash >> 29
        }
        return hash
    }
}
