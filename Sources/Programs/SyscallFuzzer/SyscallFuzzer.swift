// fuzzer SEED CALLS [trace=N] [exit] [without=N,N...]: random system
// calls against the kernel, from an unprivileged process.
//
// The kernel's promise is that nothing a process puts in its registers can take it
// down, reach memory the process does not own, or cost anyone else their service.
// This program tries to break that from the inside: CALLS system calls, each drawn
// from a xorshift generator seeded with SEED — every syscall number and unknown
// ones, edge values in every register, pointers into the kernel, into windows mapped
// only in servers, across page and address-space boundaries (Vocabulary.swift), and
// sends to the real servers while they are being restarted (Calls.swift). Several
// instances run at once; `make fuzz` boots them with faults injected into the
// servers meanwhile and checks the kernel, the other processes and the free memory
// afterwards (Sources/Tools/Fuzz).
//
// Reproducing: the sequence of calls, and every register of each, follows from the
// seed alone (the generator never looks at results), except the values read from
// the clock for timer deadlines, the servers' endpoints (looked up again after each
// restart), and what concerns the sibling instances' messages: when they arrive,
// they are answered in between, and a planned reply may go to one of them (both
// drawn from a second generator, so the planned calls do not shift). So an instance
// makes the same calls in every run, and under -icount a whole scripted boot
// repeats. `trace=N` prints each call from the Nth on before it is made, which
// names the call that was in flight when the kernel stopped.
//
// The oracles here are what a process can see by itself: a call that must fail
// (see Calls.swift) and does not, an unknown number answered with anything but
// `unknownSyscall`, `whoAmI` naming someone else, the clock running backwards, more
// free memory than there is, and the kernel writing outside the buffers we named
// (canary pages around them). Each is a violation, printed as it happens; the last
// lines are
//
//   fuzzer seed=S calls=N errors=E ok=K skipped=X answers=A violations=V
//   fuzzer seed=S status 0=K 1=... (how often each status came back)
//
// and the exit status is 0 only without violations. `answers` counts the replies to
// sibling instances' messages (see Calls.swift), made besides the CALLS; `skipped`
// counts draws of `exit`, which would end the run; `exit` as an option ends it with
// a raw exit whose a0 is a random word instead. `without=N,...` never draws those
// numbers (for working around a defect that is known while looking for the next).

import ConsoleAPI
import CurioUser
import UserArch

@main
struct SyscallFuzzer {
    static func main() {
        guard let options = parse(String(decoding: System.arguments, as: UTF8.self)) else {
            print("usage: fuzzer SEED CALLS [trace=N] [exit] [without=N,N...]")
            System.exit(2)
        }
        print("fuzzer seed=\(options.seed) calls=\(options.calls) starting")
        var run = Run(options: options)
        run.fuzz()
        let tally = "calls=\(run.issued) errors=\(run.issued - run.succeeded) ok=\(run.succeeded) skipped=\(run.skipped)"
        print("fuzzer seed=\(options.seed) " + tally + " answers=\(run.answered) violations=\(run.violations)")
        var histogram = ""
        for status in 0..<run.statuses.count where run.statuses[status] > 0 {
            histogram += " \(status)=\(run.statuses[status])"
        }
        print("fuzzer seed=\(options.seed) status" + histogram)
        if options.endWithExit {
            let code = run.planner.vocabulary.word()
            print("fuzzer seed=\(options.seed) exit a0=0x" + String(code, radix: 16))
            _ = System.syscall(Syscall.exit.rawValue, code)
        }
        System.exit(run.violations == 0 ? 0 : 1)
    }

    static func parse(_ text: String) -> Options? {
        var options = Options()
        var positional: [Substring] = []
        for word in text.split(separator: " ") {
            if word == "exit" {
                options.endWithExit = true
            } else if word.hasPrefix("trace=") {
                guard let from = Int(word.dropFirst(6)) else { return nil }
                options.traceFrom = from
            } else if word.hasPrefix("without=") {
                for number in word.dropFirst(8).split(separator: ",") {
                    guard let value = UInt(number) else { return nil }
                    options.without.append(value)
                }
            } else {
                positional.append(word)
            }
        }
        guard positional.count == 2, let calls = Int(positional[1]), calls >= 0 else { return nil }
        let seedText = positional[0]
        let seed = seedText.hasPrefix("0x") ? UInt64(seedText.dropFirst(2), radix: 16) : UInt64(seedText)
        guard let seed else { return nil }
        options.seed = seed
        options.calls = calls
        return options
    }
}

/// One run: the calls, the oracles, the tally.
struct Run {
    var planner: Planner
    let options: Options
    var issued = 0
    var succeeded = 0
    var skipped = 0
    var violations = 0
    /// Replies to siblings, made outside the planned calls.
    var answered = 0
    /// How often each status came back (the last entry: any larger one).
    var statuses = [Int](repeating: 0, count: 17)
    var lastClock: UInt64 = 0

    init(options: Options) {
        self.options = options
        planner = Planner(options: options)
        planner.vocabulary.me = UInt32(truncatingIfNeeded: System.syscall(Syscall.whoAmI.rawValue).r1)
        planner.lookUpServers()
    }

    mutating func fuzz() {
        while issued < options.calls {
            if let answer = planner.answer(at: issued) { give(answer) }
            guard let call = planner.plan() else {
                skipped += 1
                continue
            }
            if issued >= options.traceFrom { trace(call) }
            if call.wakeBit != 0 {
                _ = System.syscall(Syscall.setTimer.rawValue, UInt(System.clock() + call.wakeAfter), call.wakeBit)
            }
            let result = System.syscall(call.number, call.registers[0], call.registers[1], call.registers[2],
                                        call.registers[3], call.registers[4], call.registers[5], call.registers[6])
            issued += 1
            judge(call, result)
            planner.note(call, status: result.status, sender: result.r1, at: issued)
            if issued % 512 == 0, let offset = planner.vocabulary.arena.damagedCanary() {
                violation(call, result, "the kernel wrote into a canary page at arena offset \(offset)")
            }
        }
        while let answer = planner.answer(at: issued, all: true) { give(answer) }
        if let offset = planner.vocabulary.arena.damagedCanary() {
            print("fuzzer VIOLATION seed=\(options.seed): the kernel wrote into a canary page at arena offset \(offset)")
            violations += 1
        }
    }

    /// Answers a sibling awaiting our reply. The sibling is waiting and our payload
    /// is in our scratch pages: the kernel may refuse only a payload too large for the
    /// sibling's buffer (`replyUndeliverable`: the sibling's call ends with
    /// `messageTooLarge`) or a sibling that has ended. A sibling an earlier refused reply of ours may have
    /// answered so is no longer waiting.
    mutating func give(_ answer: PlannedCall) {
        let sibling = UInt32(truncatingIfNeeded: answer.registers[0])
        if issued >= options.traceFrom { print("fuzzer seed=\(options.seed) answer: " + describe(answer)) }
        let result = System.syscall(answer.number, answer.registers[0], answer.registers[1], answer.registers[2],
                                    answer.registers[3], answer.registers[4], answer.registers[5])
        answered += 1
        switch UInt(result.status) {
        case 0, SyscallError.deadEndpoint.rawValue:
            break
        case SyscallError.replyUndeliverable.rawValue where answer.registers[5] > 0:
            break
        case SyscallError.notWaitingForReply.rawValue where planner.refusedReplies.contains(sibling):
            break
        default:
            violation(answer, result, "a reply to a sibling awaiting ours was refused")
        }
    }

    mutating func judge(_ call: PlannedCall, _ result: curio_syscall_result) {
        let status = result.status
        statuses[Int(min(status, UInt64(statuses.count - 1)))] += 1
        if status == 0 { succeeded += 1 }
        if let reason = call.mustFail, status == 0 {
            violation(call, result, "succeeded although it must fail: " + String(reason))
        }
        if Syscall(rawValue: call.number) == nil && status != SyscallError.unknownSyscall.rawValue {
            violation(call, result, "an unknown syscall was not answered unknownSyscall")
        }
        switch call.number {
        case Syscall.whoAmI.rawValue:
            if status != 0 || UInt32(truncatingIfNeeded: result.r1) != planner.vocabulary.me {
                violation(call, result, "whoAmI named someone else")
            }
        case Syscall.clock.rawValue:
            if status != 0 || result.r1 < lastClock { violation(call, result, "the clock ran backwards") }
            lastClock = result.r1
        case Syscall.memoryInfo.rawValue:
            if status != 0 || result.r2 > result.r1 { violation(call, result, "more free pages than pages") }
        default:
            break
        }
        // A server restarted since we looked it up: find its new incarnation.
        if let server = call.server, status == SyscallError.deadEndpoint.rawValue {
            planner.lookUp(server)
            planner.vocabulary.servers = ServerRole.all.compactMap {
                planner.endpoints[$0.rawValue] != 0 ? planner.endpoints[$0.rawValue] : nil
            }
        }
    }

    mutating func violation(_ call: PlannedCall, _ result: curio_syscall_result, _ reason: String) {
        violations += 1
        guard violations <= 20 else { return }
        let answer = " -> status \(result.status) r1=0x" + String(result.r1, radix: 16)
        print("fuzzer VIOLATION seed=\(options.seed) call=\(issued - 1): " + reason + "; " + describe(call) + answer)
    }

    func trace(_ call: PlannedCall) {
        print("fuzzer seed=\(options.seed) call=\(issued): " + describe(call))
    }

    func describe(_ call: PlannedCall) -> String {
        var text = "syscall \(call.number)"
        for index in 0..<7 { text += " a\(index)=0x" + String(call.registers[index], radix: 16) }
        return text
    }
}
