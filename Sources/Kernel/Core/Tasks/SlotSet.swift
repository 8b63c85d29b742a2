// A set of task slots: a two-level bitmap, no heap.
//
// Five 64-bit words hold one bit per slot (capacity 320); a summary word has bit w
// set exactly when word w is not empty. The summary keeps the IPC and scheduler
// paths close to what a single word cost: `insert` and `remove` touch one word and
// the summary, `isEmpty` tests the summary, and `first`, `next(after:)` and the
// "only member" test read the summary plus at most two words, with no loop over
// empty words. Slots are trusted kernel indices in 0..<capacity (never -1); the
// word index is derived from them, so the words are accessed without bounds checks.
// The summary is a whole word (not a byte) so that a SlotSet is six aligned words:
// with a 41-byte layout, copies out of an InlineArray of SlotSets went byte by byte.

import CurioABI

public struct SlotSet: Sendable, Equatable {
    public static let capacity = TaskID.slotCount
    static let wordCount = 5

    private var words: InlineArray<5, UInt64> = .init(repeating: 0)
    /// Bit w set: `words[w]` is not zero.
    private var summary: UInt64 = 0

    public init() {}

    /// The set of the given slots (convenience for tests and set-up, not hot paths).
    public init<S: Sequence>(_ slots: S) where S.Element == Int {
        for slot in slots { insert(slot) }
    }

    @inline(__always) private static func word(_ slot: Int) -> Int { slot &>> 6 }
    @inline(__always) private static func bit(_ slot: Int) -> UInt64 { 1 &<< UInt64(slot & 63) }

    @inline(__always) private func load(_ w: Int) -> UInt64 { unsafe words[unchecked: w] }
    @inline(__always) private mutating func store(_ value: UInt64, _ w: Int) { unsafe words[unchecked: w] = value }

    @inline(__always) public mutating func insert(_ slot: Int) {
        assert(UInt(bitPattern: slot) < UInt(Self.capacity), "slot out of range")
        let w = Self.word(slot)
        store(load(w) | Self.bit(slot), w)
        summary |= 1 &<< UInt64(truncatingIfNeeded: w)
    }

    @inline(__always) public mutating func remove(_ slot: Int) {
        assert(UInt(bitPattern: slot) < UInt(Self.capacity), "slot out of range")
        let w = Self.word(slot)
        let remaining = load(w) & ~Self.bit(slot)
        store(remaining, w)
        if remaining == 0 { summary &= ~(1 &<< UInt64(truncatingIfNeeded: w)) }
    }

    @inline(__always) public func contains(_ slot: Int) -> Bool {
        guard UInt(bitPattern: slot) < UInt(Self.capacity) else { return false }
        return load(Self.word(slot)) & Self.bit(slot) != 0
    }

    @inline(__always) public var isEmpty: Bool { summary == 0 }

    /// The lowest member.
    @inline(__always) public var first: Int? {
        guard summary != 0 else { return nil }
        let w = summary.trailingZeroBitCount
        return w &<< 6 | load(w).trailingZeroBitCount
    }

    /// The only member, if the set has exactly one.
    @inline(__always) public var onlyMember: Int? {
        guard summary != 0, summary & (summary &- 1) == 0 else { return nil }
        let w = summary.trailingZeroBitCount
        let bits = load(w)
        guard bits & (bits &- 1) == 0 else { return nil }
        return w &<< 6 | bits.trailingZeroBitCount
    }

    /// Whether `slot` is the one and only member. Mutating only to read the word in
    /// place: indexing the words of a value copied them all to the stack first (the
    /// IPC fastpath asks this on every reply).
    @inline(__always) public mutating func containsOnly(_ slot: Int) -> Bool {
        let w = Self.word(slot)
        guard summary == 1 &<< UInt64(truncatingIfNeeded: w) else { return false }
        let bits = withUnsafeMutablePointer(to: &words) { pointer in
            UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: UInt64.self)[w]
        }
        return bits == Self.bit(slot)
    }

    public var count: Int {
        var total = 0
        for w in 0..<Self.wordCount { total += load(w).nonzeroBitCount }
        return total
    }

    /// The first member after `previous`, wrapping around past the last slot
    /// (round-robin); `previous` may be -1 or any slot, member or not.
    @inline(__always) public func next(after previous: Int) -> Int? {
        guard summary != 0 else { return nil }
        var start = previous &+ 1
        if UInt(bitPattern: start) >= UInt(Self.capacity) { start = 0 }
        let w = Self.word(start)
        let here = load(w) & (~0 &<< UInt64(start & 63))
        if here != 0 { return w &<< 6 | here.trailingZeroBitCount }
        // Words after w, else wrap to the lowest non-empty word (w itself included:
        // its members below `start` come after the wrap).
        let later = summary & (0xFE &<< UInt64(truncatingIfNeeded: w))
        let v = later != 0 ? later.trailingZeroBitCount : summary.trailingZeroBitCount
        return v &<< 6 | load(v).trailingZeroBitCount
    }

    /// Removes and returns the lowest member; iterate with `while let s = set.removeFirst()`.
    @inline(__always) public mutating func removeFirst() -> Int? {
        guard summary != 0 else { return nil }
        let w = summary.trailingZeroBitCount
        let bits = load(w)
        let remaining = bits & (bits &- 1)
        store(remaining, w)
        if remaining == 0 { summary &= ~(1 &<< UInt64(truncatingIfNeeded: w)) }
        return w &<< 6 | bits.trailingZeroBitCount
    }

    public mutating func formUnion(_ other: SlotSet) {
        for w in 0..<Self.wordCount { store(load(w) | other.load(w), w) }
        summary |= other.summary
    }

    public static func == (lhs: SlotSet, rhs: SlotSet) -> Bool {
        guard lhs.summary == rhs.summary else { return false }
        for w in 0..<wordCount where lhs.load(w) != rhs.load(w) { return false }
        return true
    }
}
