// timerclient PERIOD WAITS [LATE] [mixed]: runs timers and checks every expiration.
//
// Plain, it starts one periodic timer of PERIOD clock ticks. With `mixed` it keeps
// three of the server's four timer slots busy with timers that come and go: A,
// periodic with PERIOD; B, periodic with 3/2 PERIOD, cancelled and started again
// every 7 expirations (alternating with 5/4 PERIOD); and C, a one-shot timer of 1/2,
// 1 or 3/2 PERIOD, started again each time it fires. It waits for WAITS expirations
// in all and checks each against a model of its timers:
//
//   - it is of a timer the client has running (a cancelled or fired one-shot timer
//     never comes back), with that timer's next sequence number (1, 2, 3..., none
//     missing or repeated) and its next deadline (a period after the last, the first
//     where `start` said);
//   - no other running timer was due before it (the server delivers the earliest);
//   - never early, and in time: read on the client's own clock when the wait
//     returns, at most the timer's period plus LATE ticks after the deadline (or
//     after the call, if the deadline had passed when it waited) for each recovery
//     it had to sit out (one, plus every restart of the timer since the last
//     expiration). LATE defaults to 60 ms: the watchdog's 50 ms to notice a hung
//     timer, its restart and recovery, and a margin. A timer that answers days late
//     has not answered.
//
// It measures the skew (delivered - deadline as the server reports it, in ticks)
// and prints one line at the end (and, at once, the first wrong answer it gets:
// `timerclient first error at clock C: ...`):
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
        let mixed = words.contains("mixed")
        let numbers = words.filter { $0 != "mixed" }
        guard numbers.count >= 2, let period = UInt64(numbers[0]), period >= 4 * TimerLimits.minimumPeriod,
              let waits = Int(numbers[1]), waits > 0,
              let lateness = numbers.count > 2 ? UInt64(numbers[2]) : 600_000 else {
            print("timerclient FAIL waits=0 maxskew=0 meanskew=0 errors=1 reason=usage: timerclient PERIOD WAITS [LATE] [mixed]")
            System.exit(1)
        }
        var run = Run(waits: waits)
        var timers = Timers()
        _ = timers.start(period: period, repeating: true, run: &run)
        var changing = mixed ? timers.start(period: period * 3 / 2, repeating: true, run: &run) : nil
        var oneShots = 0
        if mixed { _ = timers.start(period: period / 2, repeating: false, run: &run) }

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
            let arrived = System.clock()
            let restartsNow = restarts(ofSlot: timerSlot)
            let recoveries = 1 + restartsNow - min(restartsSeen, restartsNow)
            restartsSeen = restartsNow
            guard let timer = timers.check(expiration, wait: index + 1, called: called, arrived: arrived,
                                           allowance: lateness * recoveries, run: &run) else {
                continue
            }
            run.record(skew: expiration.skew)
            guard mixed else { continue }
            if !timer.repeating {
                oneShots += 1
                _ = timers.start(period: period * UInt64(1 + oneShots % 3) / 2, repeating: false, run: &run)
            }
            if run.completed % 7 == 0, let current = changing {
                timers.cancel(current, run: &run)
                let next = run.completed % 14 == 0 ? period * 3 / 2 : period * 5 / 4
                changing = timers.start(period: next, repeating: true, run: &run)
            }
        }
        timers.cancelRepeating()
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

/// What the client expects of one of its timers.
struct ExpectedTimer {
    var id: TimerID
    var period: UInt64
    var repeating: Bool
    var nextDeadline: UInt64
    var nextSequence: UInt64
}

/// The client's model of its running timers.
struct Timers {
    private(set) var running: [ExpectedTimer] = []

    /// Starts a timer and checks the first deadline the server set.
    mutating func start(period: UInt64, repeating: Bool, run: inout Run) -> TimerID {
        let before = System.clock()
        let timer: TimerID
        let deadline: UInt64
        do throws(TimerError) {
            (timer, deadline) = try Timer.schedule(period: period, repeating: repeating)
        } catch {
            run.finish(failure: "start: " + error.name, status: TimerClient.status(for: error))
        }
        let after = System.clock()
        if deadline < before + period || deadline > after + period {
            run.error("first deadline \(deadline) outside [\(before + period), \(after + period)]")
        }
        if running.contains(where: { $0.id == timer }) { run.error("start: timer \(timer) is already running") }
        running.append(ExpectedTimer(id: timer, period: period, repeating: repeating, nextDeadline: deadline,
                                     nextSequence: 1))
        return timer
    }

    mutating func cancel(_ timer: TimerID, run: inout Run) {
        do throws(TimerError) {
            try Timer.cancel(timer)
        } catch {
            run.finish(failure: "cancel \(timer): " + error.name, status: TimerClient.status(for: error))
        }
        running.removeAll { $0.id == timer }
    }

    /// At the end: the periodic timers would run on (a one-shot one ends by itself).
    mutating func cancelRepeating() {
        for timer in running where timer.repeating { try? Timer.cancel(timer.id) }
        running.removeAll()
    }

    /// Checks one expiration against the model and advances it; the timer it was of,
    /// or nil if it was of none running.
    mutating func check(_ expiration: Expiration, wait: Int, called: UInt64, arrived: UInt64, allowance: UInt64,
                        run: inout Run) -> ExpectedTimer? {
        guard let index = running.firstIndex(where: { $0.id == expiration.timer }) else {
            run.error("wait \(wait): timer \(expiration.timer), which is not running")
            return nil
        }
        let timer = running[index]
        if expiration.sequence != timer.nextSequence {
            run.error("wait \(wait): timer \(timer.id) sequence \(expiration.sequence), expected \(timer.nextSequence)")
        }
        if expiration.deadline != timer.nextDeadline {
            run.error("wait \(wait): timer \(timer.id) deadline \(expiration.deadline), expected \(timer.nextDeadline)")
        }
        if let earlier = running.first(where: { $0.nextDeadline < expiration.deadline }) {
            run.error("wait \(wait): timer \(timer.id) delivered before timer \(earlier.id), due earlier")
        }
        if expiration.delivered < expiration.deadline {
            run.error("wait \(wait): delivered \(expiration.deadline - expiration.delivered) ticks early")
        }
        // An expiration already due when we asked (we were behind) is owed at once.
        let owed = max(timer.nextDeadline, called)
        let allowed = timer.period + allowance
        if arrived > owed && arrived - owed > allowed {
            run.error("wait \(wait): arrived \(arrived - owed) ticks late (at most \(allowed))")
        }
        // Follow what we got, so one slip is counted once, not at every later wait.
        if timer.repeating {
            running[index].nextSequence = expiration.sequence + 1
            running[index].nextDeadline = expiration.deadline + timer.period
        } else {
            running.remove(at: index)
        }
        return timer
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

    /// Counts a wrong expiration or answer; the first is also printed at once, with
    /// the clock, so that a console shows which fault came just before it.
    mutating func error(_ text: String) {
        errors += 1
        guard firstError == nil else { return }
        firstError = text
        print("timerclient first error at clock \(System.clock()): " + text)
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
