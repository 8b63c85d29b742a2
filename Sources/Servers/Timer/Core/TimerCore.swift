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

/// The check of one request's effect, before it is committed and answered.
///
/// `isConsistent` judges a state alone; a fault during the request can leave a state
/// that passes it and is still wrong — a register flip in a deadline being advanced,
/// in the sequence number copied into the reply, in which slot a wait takes. Such a
/// state would be committed and answered: a silent failure no restart mends (1 % of
/// transient register faults in the timer's campaigns). So the server also checks the
/// transition, the old state (the committed one) against the new and the reply,
/// with code of its own rather than the code that computed them: exactly the slot
/// the operation names may change, and only as that operation changes it. A
/// transition that fails the check makes the server restart; the kernel delivers the
/// request again, and the re-run starts from the committed state.
public enum TimerTransition {
    /// Whether `result` of `operation` (with the request's `words`), taking `old` to
    /// `new`, is one the operation can produce. `clock` is read only to confirm that a
    /// delivered expiration is really due (a fresh reading, not the one the request used).
    public static func isValid(from old: TimerClientState, to new: TimerClientState, operation: TimerOperation?,
                               words: (UInt, UInt), result: TimerResult, notBefore: UInt64 = 0,
                               clock: () -> UInt64) -> Bool {
        switch result {
        case .wait(let until):
            return operation == .wait && sameSlots(old, new, except: nil) && old.generation == new.generation
                && TimerLogic.earliestDeadline(old) == until
        case .reply(let code, let reply):
            guard code == .ok else {
                return sameSlots(old, new, except: nil) && old.generation == new.generation && reply == (0, 0)
                    && isRightRefusal(code, of: operation, in: old, words: words)
            }
            switch operation {
            case .start: return isStart(from: old, to: new, words: words, reply: reply, notBefore: notBefore, clock: clock)
            case .cancel: return isCancel(from: old, to: new, id: UInt16(truncatingIfNeeded: words.0))
            case .wait: return isDelivery(from: old, to: new, reply: reply, clock: clock)
            case nil: return false
            }
        }
    }

    /// One free slot became the timer the reply names, with the requested period and
    /// kind, its first expiration (numbered 1) at the deadline the reply gives — no
    /// later than a period from a fresh clock reading (a damaged "now" would otherwise
    /// set a deadline days away, consistently in state and reply, and promise it), and
    /// no earlier than a period from `notBefore`, a reading the server took before the
    /// one it computed with (a flipped low bit of "now" made the timer fire early).
    static func isStart(from old: TimerClientState, to new: TimerClientState, words: (UInt, UInt),
                        reply: (UInt, UInt), notBefore: UInt64, clock: () -> UInt64) -> Bool {
        let id = TimerID(rawValue: UInt16(truncatingIfNeeded: reply.0))
        guard reply.0 <= UInt(UInt16.max), old.slots[id.slot].isFree, sameSlots(old, new, except: id.slot),
              new.generation == id.generation else { return false }
        let slot = new.slots[id.slot]
        let flags = words.1 != 0 ? TimerSlot.repeatingFlag : 0
        return slot.id == id.rawValue && slot.period == UInt64(words.0) && slot.flags == flags && slot.reserved == 0
            && slot.nextSequence == 1 && slot.nextDeadline == UInt64(reply.1) && slot.nextDeadline >= slot.period
            && slot.nextDeadline - slot.period >= notBefore && slot.nextDeadline - slot.period <= clock()
    }

    /// A refusal is answered only when the operation really cannot be done: a fault
    /// that misread the request or the state (a cancel of another timer, a full table
    /// that is not) would otherwise tell the client something false and leave it there.
    static func isRightRefusal(_ code: TimerReplyCode, of operation: TimerOperation?, in old: TimerClientState,
                               words: (UInt, UInt)) -> Bool {
        switch (code, operation) {
        case (.badOperation, nil): return true
        case (.badPeriod, .start?):
            return UInt64(words.0) < TimerLimits.minimumPeriod || UInt64(words.0) > TimerLogic.maximumPeriod
        case (.tooManyTimers, .start?):
            return TimerLogic.freeSlot(old) == nil
        case (.noSuchTimer, .cancel?):
            let id = UInt16(truncatingIfNeeded: words.0)
            return id == 0 || old.slots[Int(id & 3)].id != id
        case (.noTimers, .wait?):
            return TimerLogic.next(old) == nil
        default:
            return false
        }
    }

    /// The slot the id names was that timer and is free now; nothing else changed.
    static func isCancel(from old: TimerClientState, to new: TimerClientState, id: UInt16) -> Bool {
        let index = Int(id & 3)
        return id != 0 && old.slots[index].id == id && isBlank(new.slots[index])
            && sameSlots(old, new, except: index) && old.generation == new.generation
    }

    /// The reply is the earliest timer's next expiration, due by now; that timer
    /// moved on by exactly one period and one number (or, one-shot, is free).
    static func isDelivery(from old: TimerClientState, to new: TimerClientState, reply: (UInt, UInt),
                           clock: () -> UInt64) -> Bool {
        let expiration = TimerWire.expiration(from: reply, delivered: 0)
        let index = expiration.timer.slot
        let before = old.slots[index]
        guard TimerLogic.next(old) == index, before.id == expiration.timer.rawValue,
              before.nextDeadline == expiration.deadline, before.nextSequence == expiration.sequence,
              sameSlots(old, new, except: index), old.generation == new.generation else { return false }
        let after = new.slots[index]
        let advanced = before.repeats
            ? after.id == before.id && after.flags == before.flags && after.period == before.period
                && after.nextDeadline == before.nextDeadline + before.period
                && after.nextSequence == before.nextSequence + 1
            : isBlank(after)
        return advanced && expiration.deadline <= clock()
    }

    /// A free slot: every field zero, not only the id.
    static func isBlank(_ slot: TimerSlot) -> Bool {
        slot.id == 0 && slot.flags == 0 && slot.reserved == 0 && slot.period == 0 && slot.nextDeadline == 0
            && slot.nextSequence == 0
    }

    /// Every slot but `except` holds the same timer, field by field.
    static func sameSlots(_ old: TimerClientState, _ new: TimerClientState, except: Int?) -> Bool {
        for index in 0..<TimerLimits.timersPerClient where index != except {
            let a = old.slots[index], b = new.slots[index]
            guard a.id == b.id, a.flags == b.flags, a.reserved == b.reserved, a.period == b.period,
                  a.nextDeadline == b.nextDeadline, a.nextSequence == b.nextSequence else { return false }
        }
        return old.reserved0 == new.reserved0 && old.reserved1 == new.reserved1
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
