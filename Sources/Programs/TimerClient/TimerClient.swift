// timerclient PERIOD WAITS [LATE]: starts one periodic timer of PERIOD clock ticks,
// waits for WAITS expirations and checks each: the right timer, sequence numbers 1, 2,
// 3... with none missing or repeated, deadlines exactly one period apart starting
// where `start` said, never delivered early, and in time: read on its own clock when
// the wait returns, at most a period plus LATE ticks after the deadline (or after the
// call, if the deadline had passed when it waited) for each
// recovery it had to sit out (one, plus every restart of the timer since the last
// expiration). LATE defaults to 60 ms: the watchdog's 50 ms to notice a hung timer,
// its restart and recovery, and a margin. A timer that answers days late has not
// answered. It measures the skew (delivered - deadline as the server reports it, in
// ticks) and prints one line:
//
//   timerclient ok waits=N maxskew=T meanskew=T errors=0
//   timerclient FAIL waits=N maxskew=T meanskew=T errors=E reason=...
//
// Exit status: 0 ok; 1 wrong expirations (or bad arguments); 2 the server lost this
// client's state (`serverStateLost`: detected and reported, not silent); 3 any other
// failed call (e.g. `serverFailed`).

import ConsoleAPI
import CurioUser
import TimerAPI

@main
struct TimerClient {
    static func main() {
        let words = String(decoding: System.arguments, as: UTF8.self).split(separator: " ")
        guard words.count >= 2, let period = UInt64(words[0]), let waits = Int(words[1]), waits > 0,
              let lateness = words.count > 2 ? UInt64(words[2]) : 600_000 else {
            print("timerclient FAIL waits=0 maxskew=0 meanskew=0 errors=1 reason=usage: timerclient PERIOD WAITS [LATE]")
            System.exit(1)
        }
        var run = Run(waits: waits)
        let before = System.clock()
        let timer: TimerID
        var deadline: UInt64
        do throws(TimerError) {
            (timer, deadline) = try Timer.schedule(period: period, repeating: true)
        } catch {
            run.finish(failure: "start: " + error.name, status: status(for: error))
        }
        let after = System.clock()
        if deadline < before + period || deadline > after + period {
            run.error("first deadline \(deadline) outside [\(before + period), \(after + period)]")
        }
        var sequence: UInt64 = 1
        let timerSlot = (try? System.lookup("timer"))?.index
        var restartsSeen = restarts(ofSlot: timerSlot)
        for index in 0..<waits {
            let expiration: Expiration
            let called = System.clock()
            do throws(TimerError) {
                expiration = try Timer.wait()
            } catch {
                run.finish(failure: "wait \(index + 1): " + error.name, status: status(for: error))
            }
            run.completed += 1
            if expiration.timer != timer { run.error("wait \(index + 1): timer \(expiration.timer), expected \(timer)") }
            if expiration.sequence != sequence {
                run.error("wait \(index + 1): sequence \(expiration.sequence), expected \(sequence)")
            }
            if expiration.deadline != deadline {
                run.error("wait \(index + 1): deadline \(expiration.deadline), expected \(deadline)")
            }
            if expiration.delivered < expiration.deadline {
                run.error("wait \(index + 1): delivered \(expiration.deadline - expiration.delivered) ticks early")
            }
            let arrived = System.clock()
            let restartsNow = restarts(ofSlot: timerSlot)
            let allowed = period + lateness * (1 + restartsNow - min(restartsSeen, restartsNow))
            restartsSeen = restartsNow
            // An expiration already due when we asked (we were behind) is owed at once.
            let owed = max(deadline, called)
            if arrived > owed && arrived - owed > allowed {
                run.error("wait \(index + 1): arrived \(arrived - owed) ticks late (at most \(allowed))")
            }
            run.record(skew: expiration.skew)
            // Follow what we got, so one slip is counted once, not at every later wait.
            sequence = expiration.sequence + 1
            deadline = expiration.deadline + period
        }
        try? Timer.cancel(timer)
        run.finish(failure: nil, status: 0)
    }

    /// How often the timer (its slot, which a restart keeps) has restarted: a client may
    /// read its server's record.
    static func restarts(ofSlot slot: Int?) -> UInt64 {
        guard let slot, let info = try? System.taskInfo(slot: slot) else { return 0 }
        return UInt64(info.restarts)
    }

    static func status(for error: TimerError) -> Int32 {
        error == .system(.serverStateLost) ? 2 : 3
    }
}

struct Run {
    let waits: Int
    var completed = 0
    var errors = 0
    var firstError: String?
    var maxSkew: UInt64 = 0
    var totalSkew: UInt64 = 0

    init(waits: Int) { self.waits = waits }

    mutating func error(_ text: String) {
        errors += 1
        if firstError == nil { firstError = text }
    }

    mutating func record(skew: UInt64) {
        maxSkew = max(maxSkew, skew)
        totalSkew += skew
    }

    func finish(failure: String?, status: Int32) -> Never {
        let mean = completed > 0 ? totalSkew / UInt64(completed) : 0
        let numbers = "waits=\(completed) maxskew=\(maxSkew) meanskew=\(mean)"
        if failure == nil && errors == 0 {
            print("timerclient ok " + numbers + " errors=0")
            System.exit(0)
        }
        let reason = failure ?? firstError ?? ""
        print("timerclient FAIL " + numbers + " errors=\(errors + (failure == nil ? 0 : 1)) reason=" + reason)
        System.exit(failure == nil ? 1 : status)
    }
}
