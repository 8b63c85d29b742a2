// Fuzz target `timer`: the timer server's per-client logic on the state it keeps
// in a client's SSR.
//
// The input is one client's `TimerClientState` (136 bytes, as it lies in the SSR;
// a damaged one whose checksum still verified included), the clock (u64), then a
// script of requests: an operation number (u16, any value, as it arrives) and a
// word for each operation's argument. As TimerServer does, the state is judged
// with `TimerLogic.isConsistent` first (one that fails is lost: the client starts
// fresh); then each request runs through `TimerLogic` as `TimerServer.handle`
// dispatches it, the clock moving on between requests. After each, the state must
// still be one the checker accepts, and what `wait` hands out must be due, in
// sequence, and travel intact in the reply's two words.

import CurioABI
import TimerCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTimer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    var state = input.value(TimerClientState.self)
    if !TimerLogic.isConsistent(state) { state = .initial }
    var now = input.integer(UInt64.self) >> 8
    let queue = TimerQueue()
    let client = TaskID(rawValue: 0x0001_0005)
    queue.update(client, earliest: TimerLogic.earliestDeadline(state), waiting: false)

    var requests = 0
    while !input.isAtEnd, requests < 100 {
        requests += 1
        let operation = input.integer(UInt16.self)
        let word = UInt(input.integer(UInt64.self))
        now &+= UInt64(input.integer(UInt32.self))
        let before = state
        let result: TimerResult
        switch TimerOperation(rawValue: operation) {
        case .start: result = TimerLogic.start(&state, period: UInt64(word >> 1), repeating: word & 1 != 0, now: now)
        case .cancel: result = TimerLogic.cancel(&state, id: UInt16(truncatingIfNeeded: word))
        case .wait: result = TimerLogic.wait(&state, now: now)
        case nil: result = .reply(.badOperation, (0, 0))
        }
        precondition(TimerLogic.isConsistent(state), "the server computed a state it rejects")
        switch result {
        case .reply(let code, let words):
            queue.update(client, earliest: TimerLogic.earliestDeadline(state), waiting: false)
            if TimerOperation(rawValue: operation) == .wait && code == .ok {
                let expiration = TimerWire.expiration(from: words, delivered: now)
                precondition(expiration.deadline <= now, "an expiration handed out before it was due")
                let slot = before.slots[expiration.timer.slot]
                precondition(slot.id == expiration.timer.rawValue && slot.nextDeadline == expiration.deadline
                             && slot.nextSequence == expiration.sequence, "the expiration is not the timer's next")
            }
        case .wait(let deadline):
            precondition(deadline > now, "a wait held for a deadline already past")
            queue.update(client, earliest: deadline, waiting: true)
        }
        precondition(queue.isIntact, "the timer queue is damaged")
    }
    return 0
}
