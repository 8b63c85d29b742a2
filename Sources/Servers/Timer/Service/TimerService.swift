// The timer server: periodic and one-shot timers for every program, restartable,
// with each client's timers in that client's server state region.
//
// `Timer.wait` is a held request: the server answers at once when an expiration is
// due, and otherwise keeps the client blocked and asks the kernel (`setTimer`) to
// wake it at the earliest held deadline. If the server crashes, the SSRs keep the
// absolute deadlines and sequence numbers; the restarted server rebuilds its queue
// from them, the kernel re-delivers the held waits, and every expiration missed
// meanwhile is delivered — late by at most the time the restart took, once each.
//
// The service is generic over how a client's state is laid out in its SSR
// (TimerLayouts.swift): the `timer` program stores layout 1, `timer-next` layout 2,
// and reads layout 1 when it replaces `timer` in a live upgrade.

import CurioUser
import SSRFormat
import SSRServer
import TimerAPI
import TimerCore

public struct TimerService<Layout: TimerStateLayout>: SSRService {
    public typealias State = Layout
    public typealias PreviousState = Layout.Previous
    typealias Runtime = SSRServer<TimerService<Layout>>

    public static var initialState: Layout { Layout(.initial) }
    public static var notificationMask: UInt32 { UInt32(truncatingIfNeeded: KernelNotification.timerBit) }
    public static func check(_ state: UnsafePointer<Layout>) -> Bool { TimerLogic.isConsistent(state.pointee.state) }

    public init() {}

    let queue = TimerQueue()
    /// The deadline handed to `setTimer` (0: none).
    var armed: UInt64 = 0

    public mutating func rebuild(client: TaskID, state: Layout) {
        queue.update(client, earliest: TimerLogic.earliestDeadline(state.state), waiting: false)
    }

    public mutating func handle(operation: UInt16, words: (UInt, UInt), payload: SSRPayload, client: TaskID,
                                state layout: inout Layout) -> SSROutcome {
        verifyQueue()
        // Two readings: the transition check holds a new timer's deadline to at least
        // a period after the first, whatever a fault does to the second on its way.
        let notBefore = System.clock()
        let now = System.clock()
        guard let committed = Runtime.committedState()?.state else { System.reportFailure() }
        var state = layout.state
        defer { layout = Layout(state) }
        let result: TimerResult
        switch TimerOperation(rawValue: operation) {
        case .start: result = TimerLogic.start(&state, period: UInt64(words.0), repeating: words.1 != 0, now: now)
        case .cancel: result = TimerLogic.cancel(&state, id: UInt16(truncatingIfNeeded: words.0))
        case .wait: result = TimerLogic.wait(&state, now: now)
        case nil: result = .reply(.badOperation, (0, 0))
        }
        switch result {
        case .reply:
            queue.update(client, earliest: TimerLogic.earliestDeadline(state), waiting: false)
        case .wait(let deadline):
            queue.update(client, earliest: deadline, waiting: true)
            // The kernel holds us to it: a fault that makes us forget this wait (a
            // wrong scan, a wake never armed) restarts us rather than strand the client.
            try? System.promiseReply(to: client, by: deadline)
        }
        arm()
        // Checked last, so that the reply leaves for the seal (SSRServer) right after:
        // a failed check restarts us, and the queue is rebuilt from the SSRs.
        guard TimerTransition.isValid(from: committed, to: state, operation: TimerOperation(rawValue: operation),
                                      words: words, result: result, notBefore: notBefore,
                                      clock: { System.clock() }),
              Runtime.isRequestInHand(operation: operation, words: words) else {
            System.reportFailure()
        }
        switch result {
        case .reply(let code, let words): return .reply(code.rawValue, words.0, words.1)
        case .wait: return .deferred
        }
    }

    /// The transition checked again over the sealed reply and the committed state (see
    /// `SSRService.confirms`): soaks saw a wait's expiration with one bit of its timer's
    /// id flipped after `handle`'s check ("timer 0"), and a deadline one bit off in the
    /// state committed beside a right reply, each under a good seal.
    public static var checksCommittedReplies: Bool { true }

    public static func confirms(reply code: UInt32, words: (UInt, UInt),
                                to request: (operation: UInt16, words: (UInt, UInt))?,
                                from old: Layout, to new: Layout) -> Bool {
        guard let replyCode = TimerReplyCode(rawValue: code) else { return false }
        let operation: TimerOperation? = request.map { TimerOperation(rawValue: $0.operation) } ?? .wait
        return TimerTransition.isValid(from: old.state, to: new.state, operation: operation,
                                       words: request?.words ?? (0, 0), result: .reply(replyCode, words),
                                       clock: { System.clock() })
    }

    public mutating func clientEnded(client: TaskID, state: Layout?) {
        queue.remove(client)
        arm()
    }

    /// The kernel's timer fired: answer every held wait that has come due.
    public mutating func notified(bits: UInt) {
        verifyQueue()
        armed = 0  // the kernel's timer is spent
        let now = System.clock()
        var index = 0
        while let due = queue.firstDue(now: now, from: index) {
            index = due + 1
            let client = queue.client(at: due)
            var earliest: UInt64?
            do throws(SyscallError) {
                let replied = try Runtime.complete(client) { layout in
                    guard let committed = Runtime.committedState()?.state else { System.reportFailure() }
                    var state = layout.state
                    defer { layout = Layout(state) }
                    let result = TimerLogic.wait(&state, now: now)
                    guard TimerTransition.isValid(from: committed, to: state, operation: .wait, words: (0, 0),
                                                  result: result, clock: { System.clock() }) else {
                        System.reportFailure()
                    }
                    earliest = TimerLogic.earliestDeadline(state)
                    switch result {
                    case .reply(let code, let words): return .reply(code.rawValue, words.0, words.1)
                    case .wait(let deadline):
                        earliest = deadline
                        return .deferred
                    }
                }
                queue.update(client, earliest: earliest, waiting: !replied)
                if !replied, let earliest { try? System.promiseReply(to: client, by: earliest) }
            } catch {
                // Not waiting for us any more (it ended): the unbind message follows.
                queue.remove(client)
            }
        }
        // Every held wait due by `now` was answered above. One still due means the scan
        // itself is wrong (a fault in this code or in the queue it reads): restart
        // rather than re-arm that deadline and be woken for it again and again,
        // answering nobody (a campaign's code mutation did exactly that).
        if let wake = queue.nextWake, wake <= now { System.reportFailure() }
        arm()
    }

    /// A damaged queue could forget a held client: restart and rebuild it instead.
    func verifyQueue() {
        if !queue.isIntact { System.reportFailure() }
    }

    /// Asks the kernel to wake us at the earliest held deadline.
    mutating func arm() {
        let wake = queue.nextWake ?? 0
        guard wake != armed else { return }
        try? System.setTimer(deadline: wake, bits: KernelNotification.timerBit)
        armed = wake
    }
}
