// timertest: runs timer clients, optionally injecting faults into a server while they
// run, and says how they fared. The basis of the fault-injection campaign.
//
//   timertest CLIENTS PERIOD WAITS [FAULT [TRIGGER [ARG]]] [faults=N] [every=TICKS] [target=NAME]
//             [aim=N] [seed=S] [persistent] [mixed]
//
// starts CLIENTS `timerclient PERIOD WAITS` (with `mixed`: each with several timers,
// periodic and one-shot, started and cancelled as it goes). With a FAULT (a FaultKind name:
// wild-write, pointer-flip, reg-flip, data-flip, stack-flip, ssr-flip, loop, illegal)
// it injects it into `target` (default timer) N times (default 1), the first at once
// and then one every TICKS clock ticks (default: spread over the run), each with
// TRIGGER and ARG:
//
//   next          at the next request the target takes (the default)
//   after N       at the Nth request from then (default: one per client)
//   random T      after a pseudo-random 1...T clock ticks, wherever the target is
//                 then (default T: the run's length)
//   exec T        after a pseudo-random 1...T ticks of the target's own execution,
//                 a random instruction while it runs (default T: 10 ms)
//
// `seed=S` seeds the kernel's choice of moment and target: the first injection gets
// S, the next S+1 and so on (0 is skipped: it means "go on with the kernel's own
// sequence", the default), so `inject ... seed=S` in the shell repeats the first.
// `persistent` makes a code fault (loop, illegal, mutate) outlive restarts: every
// later load of the target has the same bug, as a real programming error would.
// Then it waits for every client and prints, for each one that did not pass,
//
//   timertest client I pid P: fail|lost|error N|crashed
//
// (I counts from 0 in start order; P is the pid the kernel's reports name) and then
//
//   timertest ok clients=K ok=K fail=0 lost=0 error=0 crashed=0 armed=F restarts=R
//
// (FAIL instead of ok if any client did not pass) and exits 0 only if all passed.
// The clients' own lines (timerclient ok/FAIL ...) come before it. Client outcomes
// come from their exit status: ok 0, fail 1 (a wrong expiration), lost 2 (the server
// reported their state lost), error 3 (another refused call), crashed (the client
// itself faulted). `armed` counts injections armed; an injection armed while the
// previous one has not struck yet replaces it (the kernel's "[kernel] injected"
// lines say which struck), and `restarts` is how often the target restarted.

import ConsoleAPI
import CurioUser

@main
struct TimerTest {
    static func main() {
        guard let plan = Plan(String(decoding: System.arguments, as: UTF8.self)) else {
            print("usage: timertest CLIENTS PERIOD WAITS [FAULT [next|after N|random T|exec T]] [faults=N] [every=TICKS]"
                  + " [target=NAME] [aim=N] [seed=S] [persistent] [mixed]")
            System.exit(2)
        }
        let restartsBefore = System.restarts(of: plan.target)
        var children: [TaskID] = []
        let arguments = "\(plan.period) \(plan.waits)" + (plan.mixed ? " 600000 mixed" : "")
        for _ in 0..<plan.clients {
            do throws(SyscallError) {
                children.append(try System.spawn("timerclient", arguments: arguments))
            } catch {
                print("timertest: cannot start timerclient: " + String(error.name))
                break
            }
        }

        var injected = 0
        if let fault = plan.fault {
            for number in 0..<plan.faults {
                if number > 0 { System.sleep(ticks: plan.every) }
                do throws(SyscallError) {
                    try inject(plan.target, kind: fault, persistent: plan.persistent, trigger: plan.trigger,
                               argument: plan.argument, aim: plan.aim, seed: plan.seed(ofInjection: number))
                    injected += 1
                } catch {
                    print("timertest: inject " + String(fault.name) + " into " + plan.target + ": " + String(error.name))
                }
            }
        }

        var tally = Tally()
        for (index, child) in children.enumerated() {
            let verdict: String
            switch try? System.wait(child) {
            case .exited(let code)?:
                switch code {
                case 0:
                    tally.ok += 1
                    continue
                case 2:
                    tally.lost += 1
                    verdict = "lost"
                case 1:
                    tally.fail += 1
                    verdict = "fail"
                default:
                    tally.error += 1
                    verdict = "error \(code)"
                }
            case .faulted?, .killed?:
                tally.crashed += 1
                verdict = "crashed"
            case nil:
                tally.error += 1
                verdict = "error wait"
            }
            print("timertest client \(index) pid \(child.index): " + verdict)
        }
        let restartCount = System.restarts(of: plan.target) - restartsBefore
        let passed = tally.ok == plan.clients
        print("timertest " + (passed ? "ok" : "FAIL") + " clients=\(plan.clients) ok=\(tally.ok) fail=\(tally.fail) lost=\(tally.lost) error=\(tally.error) crashed=\(tally.crashed) armed=\(injected) restarts=\(restartCount)")
        System.exit(passed ? 0 : 1)
    }

    struct Tally {
        var ok = 0
        var fail = 0
        var lost = 0
        var error = 0
        var crashed = 0
    }

    static func inject(_ name: String, kind: FaultKind, persistent: Bool, trigger: FaultTrigger, argument: UInt,
                       aim: UInt, seed: UInt) throws(SyscallError) {
        try withUTF8Bytes(name) { bytes throws(SyscallError) in
            try System.injectFault(into: bytes, kind: kind, persistent: persistent, trigger: trigger,
                                   argument: argument, aim: aim, seed: seed)
        }
    }
}

struct Plan {
    var clients = 4
    var period: UInt64 = 100_000
    var waits = 20
    var fault: FaultKind?
    var trigger = FaultTrigger.nextRequest
    var argument: UInt = 0
    var faults = 1
    var every: UInt64 = 0
    var target = "timer"
    /// `aim=N`: strike register N or byte N of the region (default: at random).
    var aim: UInt = 0
    /// `seed=S`: the first injection's seed (0: the kernel's own sequence).
    var seed: UInt = 0
    /// `persistent`: a code fault stays in the program across its restarts.
    var persistent = false
    /// `mixed`: each client runs several timers that come and go (`timerclient ... mixed`).
    var mixed = false

    /// The seed of injection `number`: S, S+1, ... never 0 (which would mean "none").
    func seed(ofInjection number: Int) -> UInt {
        guard seed != 0 else { return 0 }
        let derived = seed &+ UInt(number)
        return derived == 0 ? 1 : derived
    }

    init?(_ text: String) {
        var positional: [Substring] = []
        var everyGiven = false
        var argumentGiven = false
        for word in text.split(separator: " ") {
            if word == "persistent" {
                persistent = true
            } else if word == "mixed" {
                mixed = true
            } else if let equals = word.firstIndex(of: "=") {
                let key = word[word.startIndex..<equals]
                let value = word[word.index(after: equals)...]
                switch key {
                case "faults": guard let number = Int(value), number >= 0 else { return nil }; faults = number
                case "every": guard let ticks = UInt64(value) else { return nil }; every = ticks; everyGiven = true
                case "target": target = String(value)
                case "aim": guard let offset = UInt(value) else { return nil }; aim = offset + 1
                case "seed": guard let number = UInt(value) else { return nil }; seed = number
                default: return nil
                }
            } else {
                positional.append(word)
            }
        }
        if positional.count > 0 { guard let value = Int(positional[0]), value > 0 else { return nil }; clients = value }
        if positional.count > 1 { guard let value = UInt64(positional[1]), value > 0 else { return nil }; period = value }
        if positional.count > 2 { guard let value = Int(positional[2]), value > 0 else { return nil }; waits = value }
        if positional.count > 3 {
            guard let kind = FaultKind.allCases.first(where: { String($0.name) == positional[3] }) else { return nil }
            fault = kind
        }
        if positional.count > 4 {
            switch positional[4] {
            case "next": trigger = .nextRequest
            case "after": trigger = .afterRequests
            case "random": trigger = .randomTime
            case "exec": trigger = .execution
            default: return nil
            }
        }
        if positional.count > 5 {
            guard let value = UInt(positional[5]) else { return nil }
            argument = value
            argumentGiven = true
        }
        guard positional.count <= 6 else { return nil }
        let runLength = period * UInt64(waits)
        if !argumentGiven {
            switch trigger {
            case .nextRequest: argument = 0
            case .afterRequests: argument = UInt(clients)
            case .randomTime: argument = UInt(runLength)
            case .execution: argument = UInt(System.ticksPerSecond / 100)
            }
        }
        if !everyGiven { every = runLength / UInt64(faults + 1) }
    }
}
