// The timer server's per-client logic on the host: deadlines, catch-up after a
// stall, one-shot timers, ids, invariants, the wake-up queue; and the whole
// exactly-once story modelled with the real SSR format — a server crashing after
// any store of any commit never drops or doubles an expiration.

import SSRFormat
import Testing
import TimerCore
import CurioABI

func expectReply(_ result: TimerResult, _ code: TimerReplyCode, sourceLocation: SourceLocation = #_sourceLocation)
    -> (UInt, UInt) {
    guard case .reply(let got, let words) = result else {
        Issue.record("expected a reply \(code), got \(result)", sourceLocation: sourceLocation)
        return (0, 0)
    }
    #expect(got == code, sourceLocation: sourceLocation)
    return words
}

@Suite struct TimerLogicTests {
    @Test func startSetsAbsoluteDeadlinesAndDistinctIDs() {
        var state = TimerClientState.initial
        let first = expectReply(TimerLogic.start(&state, period: 1000, repeating: true, now: 5000), .ok)
        #expect(first.1 == 6000)
        let second = expectReply(TimerLogic.start(&state, period: 300, repeating: false, now: 5000), .ok)
        #expect(TimerID(rawValue: UInt16(first.0)).slot == 0 && TimerID(rawValue: UInt16(second.0)).slot == 1)
        #expect(first.0 != second.0)
        _ = expectReply(TimerLogic.start(&state, period: 1000, repeating: true, now: 5000), .ok)
        _ = expectReply(TimerLogic.start(&state, period: 1000, repeating: true, now: 5000), .ok)
        _ = expectReply(TimerLogic.start(&state, period: 1000, repeating: true, now: 5000), .tooManyTimers)
        _ = expectReply(TimerLogic.start(&state, period: 1, repeating: true, now: 5000), .badPeriod)
        #expect(TimerLogic.isConsistent(state))
    }

    @Test func waitDeliversInDeadlineOrderAndHoldsUntilDue() {
        var state = TimerClientState.initial
        let slow = expectReply(TimerLogic.start(&state, period: 1000, repeating: true, now: 0), .ok)
        let fast = expectReply(TimerLogic.start(&state, period: 400, repeating: true, now: 0), .ok)
        guard case .wait(until: 400) = TimerLogic.wait(&state, now: 10) else {
            Issue.record("should hold until 400")
            return
        }
        var delivered: [(UInt16, UInt64, UInt64)] = []
        for now: UInt64 in [400, 800, 1000, 1200] {
            let words = expectReply(TimerLogic.wait(&state, now: now), .ok)
            let expiration = TimerWire.expiration(from: words, delivered: now)
            delivered.append((expiration.timer.rawValue, expiration.deadline, expiration.sequence))
        }
        let fastID = UInt16(fast.0)
        let slowID = UInt16(slow.0)
        #expect(delivered.map(\.0) == [fastID, fastID, slowID, fastID])
        #expect(delivered.map(\.1) == [400, 800, 1000, 1200])
        #expect(delivered.map(\.2) == [1, 2, 1, 3])
    }

    @Test func aTimerThatFellBehindDeliversEveryMissedDeadlineOnce() {
        var state = TimerClientState.initial
        _ = expectReply(TimerLogic.start(&state, period: 100, repeating: true, now: 0), .ok)
        // The server was away until 1050: deadlines 100...1000 are all due.
        for sequence: UInt64 in 1...10 {
            let words = expectReply(TimerLogic.wait(&state, now: 1050), .ok)
            let expiration = TimerWire.expiration(from: words, delivered: 1050)
            #expect(expiration.sequence == sequence)
            #expect(expiration.deadline == sequence * 100)
        }
        guard case .wait(until: 1100) = TimerLogic.wait(&state, now: 1050) else {
            Issue.record("caught up: the next one is at 1100")
            return
        }
    }

    @Test func oneShotTimersEndAndCancelledIDsDoNotComeBack() {
        var state = TimerClientState.initial
        let once = expectReply(TimerLogic.start(&state, period: 500, repeating: false, now: 0), .ok)
        _ = expectReply(TimerLogic.wait(&state, now: 600), .ok)
        _ = expectReply(TimerLogic.wait(&state, now: 700), .noTimers)
        _ = expectReply(TimerLogic.cancel(&state, id: UInt16(once.0)), .noSuchTimer)
        let again = expectReply(TimerLogic.start(&state, period: 500, repeating: true, now: 0), .ok)
        #expect(again.0 != once.0, "a reused slot gets a new id")
        _ = expectReply(TimerLogic.cancel(&state, id: UInt16(once.0)), .noSuchTimer)
        _ = expectReply(TimerLogic.cancel(&state, id: UInt16(again.0)), .ok)
        _ = expectReply(TimerLogic.cancel(&state, id: 0), .noSuchTimer)
        #expect(TimerLogic.isConsistent(state))
    }

    @Test func invariantsRejectDamagedStates() {
        var state = TimerClientState.initial
        _ = expectReply(TimerLogic.start(&state, period: 1000, repeating: true, now: 0), .ok)
        #expect(TimerLogic.isConsistent(state))
        var broken = state
        broken.slots[0].period = 0
        #expect(!TimerLogic.isConsistent(broken))
        broken = state
        broken.slots[0].id ^= 1  // wrong slot
        #expect(!TimerLogic.isConsistent(broken))
        broken = state
        broken.slots[2].nextDeadline = 5  // a free slot with data
        #expect(!TimerLogic.isConsistent(broken))
        broken = state
        broken.slots[0].flags = 6
        #expect(!TimerLogic.isConsistent(broken))
    }

    @Test func queueWakesAtTheEarliestHeldDeadline() {
        let queue = TimerQueue()
        let a = TaskID(index: 3, generation: 1)
        let b = TaskID(index: 7, generation: 2)
        queue.update(a, earliest: 500, waiting: true)
        queue.update(b, earliest: 300, waiting: false)
        #expect(queue.nextWake == 500, "b is not waiting")
        queue.update(b, earliest: 300, waiting: true)
        #expect(queue.nextWake == 300)
        #expect(queue.firstDue(now: 299) == nil)
        #expect(queue.firstDue(now: 400) == 7)
        #expect(queue.firstDue(now: 600) == 3)
        #expect(queue.firstDue(now: 600, from: 4) == 7)
        queue.remove(TaskID(index: 7, generation: 1))  // stale: ignored
        #expect(queue.nextWake == 300)
        queue.remove(b)
        #expect(queue.nextWake == 500)
    }

    @Test func aClientInTheLastTaskSlotIsHeldLikeAnyOther() {
        let queue = TimerQueue()
        let last = TaskID(index: TaskID.slotCount - 1, generation: 4)
        queue.update(last, earliest: 900, waiting: true)
        #expect(queue.nextWake == 900)
        #expect(queue.firstDue(now: 1_000) == TaskID.slotCount - 1)
        #expect(queue.client(at: TaskID.slotCount - 1) == last)
    }

    @Test func everyBitOfTheQueueIsGuarded() {
        let queue = TimerQueue()
        queue.update(TaskID(index: 5, generation: 3), earliest: 123_456, waiting: true)
        queue.update(TaskID(index: 9, generation: 1), earliest: 99, waiting: false)
        #expect(queue.isIntact)
        for index in [0, 5, 9] {
            for bit in 0..<(MemoryLayout<TimerQueue.Entry>.size * 8) {
                queue.flip(entry: index, bit: bit)
                #expect(!queue.isIntact, "entry \(index) bit \(bit)")
                queue.flip(entry: index, bit: bit)
                #expect(queue.isIntact)
            }
        }
    }
}

/// Storage that drops every store after `limit`: a server crash mid-commit.
final class CutStorage: SSRStorage {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    var limit = Int.max
    var count = 0

    init() { buffer.initializeMemory(as: UInt8.self, repeating: 0) }
    deinit { buffer.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(buffer) }

    func store(_ word: UInt64, at offset: Int) {
        count += 1
        if count <= limit { buffer.storeBytes(of: word, toByteOffset: offset, as: UInt64.self) }
    }

    func publish(_ word: UInt64, at offset: Int) { store(word, at: offset) }
}

/// The SSRServer protocol, step by step, on the real format and timer logic: a client
/// waits again and again; the server may crash after any store of a commit (and
/// before or after its reply); after each crash it recovers with the kernel's L and
/// the kernel re-delivers the unanswered request. The client must see sequence 1, 2,
/// 3, ... with deadlines a period apart, whatever the crash points.
@Suite struct TimerExactlyOnceModel {
    typealias Format = SSRFormat<TimerClientState, CutStorage>

    struct Kernel {
        var lastIssued: UInt64 = 0
        var lastCompleted: UInt64 = 0
    }

    /// Serves request `id` at `now` like SSRServer.serve; returns the reply words or
    /// nil if the "server" crashed (ran out of stores) before replying.
    static func serve(_ format: Format, storage: CutStorage, id: UInt64, now: UInt64,
                      operation: (inout TimerClientState) -> TimerResult) -> (UInt, UInt)? {
        var state: TimerClientState
        switch format.load() {
        case .unformatted: state = .initial
        case .committed(let record):
            if record.requestID == id { return (UInt(record.reply.word0), UInt(record.reply.word1)) }
            state = record.state
        case .damaged: return nil
        }
        guard case .reply(let code, let words) = operation(&state) else { return nil }
        format.commit(state: state, requestID: id,
                      reply: SSRReply(code: UInt64(code.rawValue), word0: UInt64(words.0), word1: UInt64(words.1)))
        return storage.count <= storage.limit ? words : nil
    }

    static func recover(_ format: Format, lastCompleted: UInt64) {
        switch format.check(lastCompleted: lastCompleted) {
        case .repairable(let point, _): format.repair(to: point)
        case .corrupt: Issue.record("a crash alone must never corrupt the region")
        default: break
        }
    }

    @Test(arguments: 0..<40)
    func crashesAnywhereNeitherDropNorDouble(crashSeed: Int) {
        let storage = CutStorage()
        let format = Format(storage: storage, layoutVersion: 1, owner: 0x0001_0004)
        var kernel = Kernel()
        var crashes = 0
        let period: UInt64 = 1000
        var now: UInt64 = 10
        var random = UInt64(crashSeed) &* 0x9E37_79B9_7F4A_7C15 | 1
        func nextRandom() -> UInt64 {
            random ^= random << 13
            random ^= random >> 7
            random ^= random << 17
            return random
        }

        // Every request goes through this: crash points chosen at random; the kernel
        // re-delivers until the server replies.
        func request(_ operation: (inout TimerClientState) -> TimerResult) -> (UInt, UInt) {
            kernel.lastIssued += 1
            let id = kernel.lastIssued
            while true {
                storage.count = 0
                storage.limit = nextRandom() % 3 == 0 ? Int(nextRandom() % 24) : Int.max
                let reply = Self.serve(format, storage: storage, id: id, now: now, operation: operation)
                storage.limit = Int.max
                if let reply, nextRandom() % 5 != 0 {
                    kernel.lastCompleted = id
                    return reply
                }
                // Crashed (before the reply, or right after committing it): recover.
                crashes += 1
                Self.recover(format, lastCompleted: kernel.lastCompleted)
            }
        }

        let started = request { TimerLogic.start(&$0, period: period, repeating: true, now: now) }
        let timer = UInt16(started.0)
        var expected = UInt64(started.1)
        var expectedSequence: UInt64 = 1
        for sequence: UInt64 in 1...60 {
            now += nextRandom() % 2 == 0 ? 700 : 2600  // sometimes the server falls behind
            let words = request { state in
                switch TimerLogic.wait(&state, now: now) {
                case .reply(let code, let words): return .reply(code, words)
                case .wait: return .reply(.ok, (0, 0))  // not due: model the hold as "ask again"
                }
            }
            if words == (0, 0) {
                continue
            }
            let expiration = TimerWire.expiration(from: words, delivered: now)
            #expect(expiration.timer.rawValue == timer)
            #expect(expiration.deadline == expected, "sequence \(sequence)")
            #expect(expiration.sequence == expectedSequence)
            #expect(expiration.deadline <= now)
            expected += period
            expectedSequence += 1
        }
        #expect(crashes > 10)
        guard case .committed(let record) = format.load() else {
            Issue.record("no committed state at the end")
            return
        }
        let slot = record.state.slots[Int(timer & 3)]
        #expect(slot.nextDeadline == expected, "the committed state agrees with what the client saw")
        #expect(slot.nextSequence == (expected - UInt64(started.1)) / period + 1)
    }
}

/// The transition check the server runs before committing and answering.
@Suite struct TimerTransitionTests {
    /// Three timers, the clock past two of their deadlines.
    static func busyState() -> TimerClientState {
        var state = TimerClientState.initial
        _ = TimerLogic.start(&state, period: 1000, repeating: true, now: 5000)
        _ = TimerLogic.start(&state, period: 700, repeating: false, now: 5000)
        _ = TimerLogic.start(&state, period: 5000, repeating: true, now: 5000)
        return state
    }

    static func isValid(_ old: TimerClientState, _ new: TimerClientState, _ operation: TimerOperation?,
                        words: (UInt, UInt) = (0, 0), _ result: TimerResult, now: UInt64) -> Bool {
        TimerTransition.isValid(from: old, to: new, operation: operation, words: words, result: result,
                                clock: { now })
    }

    @Test func everyRealOperationPassesIt() {
        var state = TimerClientState.initial
        var random: UInt64 = 0x5EED
        var now: UInt64 = 10_000
        for _ in 0..<5_000 {
            random = random &* 6364136223846793005 &+ 1442695040888963407
            let old = state
            let operation: TimerOperation
            let words: (UInt, UInt)
            let result: TimerResult
            switch random >> 61 {
            case 0, 1:
                operation = .start
                words = (UInt(random >> 20 & 0xFFF) * 10, UInt(random >> 40 & 1))
                result = TimerLogic.start(&state, period: UInt64(words.0), repeating: words.1 != 0, now: now)
            case 2:
                operation = .cancel
                words = (UInt(random >> 8 & 0xFFFF), 0)
                result = TimerLogic.cancel(&state, id: UInt16(words.0))
            default:
                operation = .wait
                words = (0, 0)
                result = TimerLogic.wait(&state, now: now)
            }
            #expect(Self.isValid(old, state, operation, words: words, result, now: now), "\(operation) \(result)")
            now += random >> 50 & 0x3FF
        }
    }

    /// A refusal passes only when the operation really cannot be done: a full table,
    /// a timer that is not there, a bad period, no timers.
    @Test func aRefusalThatIsNotTrueIsCaught() {
        let busy = Self.busyState()  // three timers, one slot free
        let running = busy.slots[0].id
        let refusal = TimerResult.reply(.tooManyTimers, (0, 0))
        #expect(!Self.isValid(busy, busy, .start, words: (1000, 1), refusal, now: 6_000), "a slot is free")
        var full = busy
        _ = TimerLogic.start(&full, period: 1000, repeating: true, now: 6_000)
        #expect(Self.isValid(full, full, .start, words: (1000, 1), refusal, now: 6_000))
        #expect(!Self.isValid(busy, busy, .cancel, words: (UInt(running), 0), .reply(.noSuchTimer, (0, 0)), now: 6_000),
                "that timer is running")
        #expect(Self.isValid(busy, busy, .cancel, words: (UInt(running) ^ 4, 0), .reply(.noSuchTimer, (0, 0)), now: 6_000))
        #expect(!Self.isValid(busy, busy, .start, words: (1000, 1), .reply(.badPeriod, (0, 0)), now: 6_000))
        #expect(Self.isValid(busy, busy, .start, words: (1, 1), .reply(.badPeriod, (0, 0)), now: 6_000))
        #expect(!Self.isValid(busy, busy, .wait, .reply(.noTimers, (0, 0)), now: 6_000))
        #expect(Self.isValid(.initial, .initial, .wait, .reply(.noTimers, (0, 0)), now: 6_000))
        #expect(!Self.isValid(busy, busy, .wait, .reply(.badOperation, (0, 0)), now: 6_000), "a known operation")
        #expect(Self.isValid(busy, busy, nil, .reply(.badOperation, (0, 0)), now: 6_000))
    }

    /// A start computed from a "now" whose low bits a fault lowered would fire early:
    /// its deadline is less than a period after a reading the server took before.
    @Test func aStartFromALoweredNowIsCaught() {
        let old = Self.busyState()
        for bit in 0..<20 {
            var new = old
            let now: UInt64 = 1 << 24
            let result = TimerLogic.start(&new, period: 100_000, repeating: false, now: now - (1 << UInt64(bit)))
            #expect(!TimerTransition.isValid(from: old, to: new, operation: .start, words: (100_000, 0), result: result,
                                             notBefore: now, clock: { now + 10 }), "bit \(bit)")
            var honest = old
            let fine = TimerLogic.start(&honest, period: 100_000, repeating: false, now: now)
            #expect(TimerTransition.isValid(from: old, to: honest, operation: .start, words: (100_000, 0), result: fine,
                                            notBefore: now, clock: { now + 10 }))
        }
    }

    /// A flip of any bit of the new state, or of the reply, is caught: the server
    /// restarts instead of committing or answering it.
    @Test func anyFlippedBitOfADeliveryIsCaught() {
        let old = Self.busyState()
        var new = old
        let now: UInt64 = 6_000
        guard case .reply(.ok, let reply) = TimerLogic.wait(&new, now: now) else {
            Issue.record("nothing due")
            return
        }
        #expect(Self.isValid(old, new, .wait, .reply(.ok, reply), now: now))
        #expect(!Self.isValid(old, new, .wait, .reply(.ok, reply), now: 5_699), "not due yet by the clock")

        var caught = 0
        let size = MemoryLayout<TimerClientState>.size
        for bit in 0..<size * 8 {
            var damaged = new
            withUnsafeMutableBytes(of: &damaged) { $0[bit / 8] ^= UInt8(1 << (bit % 8)) }
            if !Self.isValid(old, damaged, .wait, .reply(.ok, reply), now: now) { caught += 1 }
        }
        #expect(caught == size * 8)
        for bit in 0..<128 {
            var words = reply
            if bit < 64 { words.0 ^= 1 << UInt(bit) } else { words.1 ^= 1 << UInt(bit - 64) }
            #expect(!Self.isValid(old, new, .wait, .reply(.ok, words), now: now), "reply bit \(bit)")
        }
    }

    @Test func startsCancelsAndRefusalsAreCheckedToo() {
        let old = Self.busyState()
        var new = old
        let started = TimerLogic.start(&new, period: 400, repeating: false, now: 6_000)
        #expect(Self.isValid(old, new, .start, words: (400, 0), started, now: 6_000))
        #expect(!Self.isValid(old, new, .start, words: (500, 0), started, now: 6_000), "another period")
        #expect(!Self.isValid(old, new, .start, words: (400, 1), started, now: 6_000), "another kind")
        #expect(!Self.isValid(old, new, .start, words: (400, 0), started, now: 5_999), "started after now")
        var early = old
        let far = TimerLogic.start(&early, period: 400, repeating: false, now: 6_000 + 3_000_000_000_000)
        #expect(!Self.isValid(old, early, .start, words: (400, 0), far, now: 6_001), "a damaged now, days ahead")
        var twice = new
        twice.slots[0].nextDeadline += 1
        #expect(!Self.isValid(old, twice, .start, words: (400, 0), started, now: 6_000), "a second slot changed")

        var cancelled = old
        let id = old.slots[1].id
        let cancel = TimerLogic.cancel(&cancelled, id: id)
        #expect(Self.isValid(old, cancelled, .cancel, words: (UInt(id), 0), cancel, now: 6_000))
        #expect(!Self.isValid(old, cancelled, .cancel, words: (UInt(old.slots[0].id), 0), cancel, now: 6_000))

        var refused = old
        let full = TimerLogic.start(&refused, period: 10, repeating: false, now: 6_000)
        #expect(Self.isValid(old, refused, .start, words: (10, 0), full, now: 6_000))
        refused.slots[2].period += 1
        #expect(!Self.isValid(old, refused, .start, words: (10, 0), full, now: 6_000), "a refusal changed state")

        var held = old
        let wait = TimerLogic.wait(&held, now: 5_500)
        #expect(Self.isValid(old, held, .wait, wait, now: 5_500))
        #expect(!Self.isValid(old, held, .wait, .wait(until: 5_800), now: 5_500), "not the earliest deadline")
    }
}
