// Which processes can run, by priority.
//
// Eight priorities (0 most urgent), each a bitmap over the 64 task slots. Picking
// the next process is a scan of at most eight words plus a count of trailing
// zeros; round-robin within a priority comes from starting the search just after
// the process that ran last. This is the whole scheduler: fixed priorities, strict
// preemption, time slices among equals.

public struct ReadyQueues: Sendable {
    public static let priorities = 8
    public static let maxSlots = 64

    private var levels: InlineArray<8, UInt64> = .init(repeating: 0)
    /// Bit p set: `levels[p]` is not empty; makes the most urgent level one instruction.
    private var occupiedLevels: UInt8 = 0

    public init() {}

    @inline(__always) public mutating func insert(slot: Int, priority: UInt8) {
        levels[Int(priority)] |= 1 << UInt64(slot)
        occupiedLevels |= 1 << priority
    }

    @inline(__always) public mutating func remove(slot: Int, priority: UInt8) {
        levels[Int(priority)] &= ~(1 << UInt64(slot))
        if levels[Int(priority)] == 0 { occupiedLevels &= ~(1 << priority) }
    }

    @inline(__always) public func isOnlyReady(slot: Int, priority: UInt8) -> Bool {
        levels[Int(priority)] == 1 << UInt64(slot)
    }

    public func contains(slot: Int, priority: UInt8) -> Bool {
        levels[Int(priority)] & (1 << UInt64(slot)) != 0
    }

    public var isEmpty: Bool { occupiedLevels == 0 }

    /// The most urgent priority with a ready process.
    @inline(__always) public var highestPriority: UInt8? {
        occupiedLevels == 0 ? nil : UInt8(occupiedLevels.trailingZeroBitCount)
    }

    /// The next ready slot of the most urgent priority, searching round-robin from
    /// the slot after `previous`.
    @inline(__always) public func next(after previous: Int) -> Int? {
        guard let level = highestPriority else { return nil }
        let bits = levels[Int(level)]
        if bits & (bits &- 1) == 0 { return bits.trailingZeroBitCount }  // alone at its level
        let start = UInt64((previous + 1) & 63)
        let rotated = start == 0 ? bits : (bits >> start) | (bits << (64 - start))
        return (Int(start) + rotated.trailingZeroBitCount) & 63
    }
}
