// The timer server's logic, apart from any system call so the host can test it.
//
// Per client (in its SSR): up to four timers, each with its id, period, the absolute
// deadline of its next undelivered expiration and that expiration's sequence number.
// Deadlines are absolute clock values, so they mean the same to a restarted server:
// nothing has to be re-based on "now" after a crash (the paper's timer loses up to a
// period; this one loses nothing). Delivering an expiration advances exactly that
// timer by exactly one period, so a timer that fell behind hands out each missed
// deadline in order, one per wait, and the sequence numbers stay consecutive.
//
// Server-local (a cache, rebuilt from the SSRs after a restart): for each client, its
// earliest deadline and whether its `wait` is being held.

import CurioABI

/// One timer as stored in a client's SSR (all zero when the slot is free).
public struct TimerSlot: BitwiseCopyable, Sendable {
    public var id: UInt16
    /// Bit 0: repeating.
    public var flags: UInt16
    public var reserved: UInt32
    public var period: UInt64
    /// The deadline of the next expiration not yet delivered.
    public var nextDeadline: UInt64
    /// The sequence number of that expiration (the first is 1).
    public var nextSequence: UInt64

    public static let free = TimerSlot(id: 0, flags: 0, reserved: 0, period: 0, nextDeadline: 0, nextSequence: 0)
    public static let repeatingFlag: UInt16 = 1

    public var isFree: Bool { id == 0 }
    public var repeats: Bool { flags & Self.repeatingFlag != 0 }
}

/// One client's timers: the state the timer server keeps in the client's SSR.
public struct TimerClientState: BitwiseCopyable, Sendable {
    public var slots: InlineArray<4, TimerSlot>
    /// The generation of the last timer id handed out (ids are slot | generation << 2).
    public var generation: UInt16
    public var reserved0: UInt16
    public var reserved1: UInt32

    public static var initial: TimerClientState {
        TimerClientState(slots: InlineArray(repeating: .free), generation: 0, reserved0: 0, reserved1: 0)
    }
}

/// What an operation on a client's timers comes to.
public enum TimerResult: Sendable {
    case reply(TimerReplyCode, (UInt, UInt))
    /// Nothing is due: hold the wait until the clock reaches this deadline.
    case wait(until: UInt64)
}

public enum TimerLogic {
    /// The longest period (about 30 hours at 10 MHz): deadlines never overflow.
    public static let maximumPeriod: UInt64 = 1 << 40
    static let maximumGeneration: UInt16 = 0x3FFF

    public static func start(_ state: inout TimerClientState, period: UInt64, repeating: Bool, now: UInt64)
        -> TimerResult {
        guard period >= TimerLimits.minimumPeriod, period <= maximumPeriod, now < UInt64.max / 2 else {
            return .reply(.badPeriod, (0, 0))
        }
        guard let index = freeSlot(state) else { return .reply(.tooManyTimers, (0, 0)) }
        var generation = state.generation &+ 1
        if generation == 0 || generation > maximumGeneration { generation = 1 }
        state.generation = generation
        let id = TimerID(slot: index, generation: generation)
        let deadline = now + period
        state.slots[index] = TimerSlot(id: id.rawValue, flags: repeating ? TimerSlot.repeatingFlag : 0, reserved: 0,
                                       period: period, nextDeadline: deadline, nextSequence: 1)
        return .reply(.ok, (UInt(id.rawValue), UInt(deadline)))
    }

    static func freeSlot(_ state: TimerClientState) -> Int? {
        let slots = state.slots.span
        for index in 0..<TimerLimits.timersPerClient where slots[index].isFree { return index }
        return nil
    }

    public static func cancel(_ state: inout TimerClientState, id: UInt16) -> TimerResult {
        let index = Int(id & 3)
        guard id != 0, state.slots[index].id == id else { return .reply(.noSuchTimer, (0, 0)) }
        state.slots[index] = .free
        return .reply(.ok, (0, 0))
    }

    /// The timer with the earliest next deadline (the lowest slot on a tie).
    public static func next(_ state: TimerClientState) -> Int? {
        let slots = state.slots.span
        var best: Int?
        for index in 0..<TimerLimits.timersPerClient where !slots[index].isFree {
            if let current = best, slots[current].nextDeadline <= slots[index].nextDeadline { continue }
            best = index
        }
        return best
    }

    public static func earliestDeadline(_ state: TimerClientState) -> UInt64? {
        next(state).map { state.slots[$0].nextDeadline }
    }

    /// A wait at `now`: delivers the next expiration if it is due (and advances that
    /// timer by one period, or frees a one-shot timer), or says how long to hold it.
    public static func wait(_ state: inout TimerClientState, now: UInt64) -> TimerResult {
        guard let index = next(state) else { return .reply(.noTimers, (0, 0)) }
        let slot = state.slots[index]
        guard slot.nextDeadline <= now else { return .wait(until: slot.nextDeadline) }
        let words = TimerWire.expirationWords(timer: TimerID(rawValue: slot.id), deadline: slot.nextDeadline,
                                              sequence: slot.nextSequence)
        if slot.repeats {
            state.slots[index].nextDeadline = slot.nextDeadline + slot.period
            state.slots[index].nextSequence = slot.nextSequence + 1
        } else {
            state.slots[index] = .free
        }
        return .reply(.ok, words)
    }

    /// The invariants every committed state satisfies; a state that breaks them was
    /// damaged (or computed by a damaged server) and is not trusted.
    public static func isConsistent(_ state: TimerClientState) -> Bool {
        guard state.generation <= maximumGeneration, state.reserved0 == 0, state.reserved1 == 0 else { return false }
        let slots = state.slots.span
        for index in 0..<TimerLimits.timersPerClient {
            let slot = slots[index]
            if slot.isFree {
                guard slot.flags == 0, slot.reserved == 0, slot.period == 0, slot.nextDeadline == 0,
                      slot.nextSequence == 0 else { return false }
                continue
            }
            let id = TimerID(rawValue: slot.id)
            guard id.slot == index, id.generation != 0, id.generation <= maximumGeneration,
                  slot.flags & ~TimerSlot.repeatingFlag == 0, slot.reserved == 0,
                  slot.period >= TimerLimits.minimumPeriod, slot.period <= maximumPeriod,
                  slot.nextSequence >= 1, slot.nextSequence < 1 << UInt64(TimerWire.sequenceBits),
                  slot.nextDeadline >= slot.period, slot.nextDeadline < UInt64.max / 2 else { return false }
            // A one-shot timer is freed when it is delivered.
            if !slot.repeats { guard slot.nextSequence == 1 else { return false } }
        }
        return true
    }
}

/// The server's cache: per client (by task slot), its earliest deadline and whether
/// its `wait` is being held. Rebuilt from the SSRs after a restart; the held waits
/// come back as the kernel re-delivers them.
///
/// The cache is the one thing a held client depends on that lives only in the
/// server: a damaged entry could forget a client, which would then wait for ever.
/// So every entry carries a check word (the complement of its fields, mixed), and
/// the server verifies the whole table before each use (`isIntact`) and restarts
/// itself if it is damaged — the restart rebuilds it from the SSRs and the kernel
/// re-delivers the held waits. Any change confined to one field is detected.
public final class TimerQueue {
    public struct Entry: Sendable {
        public private(set) var client: UInt32
        /// Bit 0: the client's `wait` is held.
        public private(set) var flags: UInt32
        /// 0: no timer.
        public private(set) var earliest: UInt64
        var check: UInt64

        init(client: UInt32, flags: UInt32, earliest: UInt64) {
            self.client = client
            self.flags = flags
            self.earliest = earliest
            check = Self.check(client: client, flags: flags, earliest: earliest)
        }

        static func check(client: UInt32, flags: UInt32, earliest: UInt64) -> UInt64 {
            let identity = UInt64(client) | UInt64(flags) << 32
            return ~(earliest ^ (identity << 29 | identity >> 35))
        }

        static let none = Entry(client: 0, flags: 0, earliest: 0)

        public var isIntact: Bool {
            check == Self.check(client: client, flags: flags, earliest: earliest) && flags & ~1 == 0
        }
        public var task: TaskID { TaskID(rawValue: client) }
        public var waiting: Bool { flags & 1 != 0 }
    }

    /// One entry per task slot, so any client can be held: a smaller table silently
    /// dropped clients in high slots, which then waited for ever.
    public static let capacity = TaskID.slotCount
    /// A class over one buffer allocated for the server's life: as a struct holding
    /// an InlineArray, every read of the table copied all of it in the embedded build.
    let entries: UnsafeMutableBufferPointer<Entry>

    public init() {
        entries = UnsafeMutableBufferPointer<Entry>.allocate(capacity: Self.capacity)
        entries.initialize(repeating: .none)
    }

    deinit { entries.deallocate() }

    public func update(_ client: TaskID, earliest: UInt64?, waiting: Bool) {
        guard client.index < Self.capacity else { return }
        entries[client.index] = Entry(client: client.rawValue, flags: waiting && earliest != nil ? 1 : 0,
                                      earliest: earliest ?? 0)
    }

    public func remove(_ client: TaskID) {
        guard client.index < Self.capacity, entries[client.index].client == client.rawValue else { return }
        entries[client.index] = .none
    }

    /// True if no entry has been damaged since it was written.
    public var isIntact: Bool {
        for index in 0..<Self.capacity where !entries[index].isIntact { return false }
        return true
    }

    /// The first held client, from `start` on, whose deadline has come.
    public func firstDue(now: UInt64, from start: Int = 0) -> Int? {
        var index = start
        while index < Self.capacity {
            if entries[index].waiting && entries[index].earliest <= now { return index }
            index += 1
        }
        return nil
    }

    /// When the server must wake next: the earliest deadline of a held wait.
    public var nextWake: UInt64? {
        var best: UInt64?
        for index in 0..<Self.capacity where entries[index].waiting {
            if best == nil || entries[index].earliest < best! { best = entries[index].earliest }
        }
        return best
    }

    public func entry(at index: Int) -> Entry { entries[index] }

    /// The client of entry `index`.
    public func client(at index: Int) -> TaskID { entries[index].task }

    /// For tests: flips one bit of one entry's storage.
    public func flip(entry index: Int, bit: Int) {
        let bytes = UnsafeMutableRawPointer(entries.baseAddress! + index)
        bytes.storeBytes(of: bytes.load(fromByteOffset: bit / 8, as: UInt8.self) ^ UInt8(1 << (bit % 8)),
                         toByteOffset: bit / 8, as: UInt8.self)
    }
}
