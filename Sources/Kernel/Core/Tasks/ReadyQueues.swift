// Which processes can run, by priority.
//
// Eight priorities (0 most urgent), each a SlotSet over the 320 task slots. Picking
// the next process is a count of trailing zeros in `occupiedLevels`, then one in the
// level's summary byte and one in a word; round-robin within a priority comes from
// starting the search just after the process that ran last. This is the whole
// scheduler: fixed priorities, strict preemption, time slices among equals.

public struct ReadyQueues: Sendable {
    public static let priorities = 8
    public static let maxSlots = SlotSet.capacity

    private var levels: InlineArray<8, SlotSet> = .init(repeating: SlotSet())
    /// Bit p set: `levels[p]` is not empty; makes the most urgent level one instruction.
    public private(set) var occupiedLevels: UInt8 = 0

    public init() {}

    // Every access reaches its level in place through a pointer, even a read (so
    // the queries are `mutating`): reading `levels[p]`, or calling a non-mutating
    // method on the kernel's `ready`, made the compiler copy the whole 384-byte
    // table with memcpy, several times per reschedule.
    @inline(__always) private mutating func withLevel<R>(_ priority: UInt8, _ body: (inout SlotSet) -> R) -> R {
        withUnsafeMutablePointer(to: &levels) { pointer in
            let base = UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: SlotSet.self)
            return body(&base[Int(priority & 7)])
        }
    }

    @inline(__always) public mutating func insert(slot: Int, priority: UInt8) {
        withLevel(priority) { $0.insert(slot) }
        occupiedLevels |= 1 << (priority & 7)
    }

    @inline(__always) public mutating func remove(slot: Int, priority: UInt8) {
        let empty = withLevel(priority) { level -> Bool in
            level.remove(slot)
            return level.isEmpty
        }
        if empty { occupiedLevels &= ~(1 << (priority & 7)) }
    }

    @inline(__always) public mutating func isOnlyReady(slot: Int, priority: UInt8) -> Bool {
        withLevel(priority) { $0.containsOnly(slot) }
    }

    public mutating func contains(slot: Int, priority: UInt8) -> Bool {
        withLevel(priority) { $0.contains(slot) }
    }

    public var isEmpty: Bool { occupiedLevels == 0 }

    /// The most urgent priority with a ready process.
    @inline(__always) public var highestPriority: UInt8? {
        occupiedLevels == 0 ? nil : UInt8(occupiedLevels.trailingZeroBitCount)
    }

    /// The next ready slot of the most urgent priority, searching round-robin from
    /// the slot after `previous`.
    @inline(__always) public mutating func next(after previous: Int) -> Int? {
        guard let level = highestPriority else { return nil }
        return withLevel(level) { ready -> Int? in
            if let alone = ready.onlyMember { return alone }  // alone at its level
            return ready.next(after: previous)
        }
    }
}
