// The soak's pure parts: its workload commands and plan, the counting of a boot's
// console, its CSV, and its report. The consoles are real ones, captured from soak
// boots of the kernels built at the time (SSR and baseline), from the shell's
// command on: a clean SSR boot, the baseline losing its clients at the first
// restart, an SSR boot whose timer client got a wrong expiration it reports only at
// its end, a boot that hung, an SSR boot with a client told of lost state, and the
// fs and storage workloads.

import Foundation
import Testing

@testable import CampaignKit

/// A timer workload of `injections` faults, as the captured boots ran.
/// A timer soak as the recorded consoles below ran it: one timer per client.
func timerSoak(_ injections: Int) -> SoakWorkload {
    var workload = SoakWorkload(server: .timer, injections: injections)
    workload.mixedTimers = false
    return workload
}

enum SoakConsoles {
    static let banner = "OpenSBI v1.2\r\nCurio: an Embedded Swift microkernel with server state regions\r\n"

    static func console(_ body: String) -> String { banner + body.replacingOccurrences(of: "\n", with: "\r\n") }

    /// SSR kernel: three illegal instructions, three restarts, every client correct.
    static let ssrIllegal = console("""
        curio> run timertest 4 100000 430 illegal exec 50000 faults=3 every=11000000 seed=7
        [kernel] injected illegal into timer
        [kernel] timer (pid 3, gen 0) stopped: illegal instruction at 0xffffffff, pc 0x40000550 in TimerQueue.isIntact.getter + 0xe
        [kernel] restarted timer (pid 3, gen 1, restart 1)
        [kernel] injected illegal into timer
        [kernel] timer (pid 3, gen 1) stopped: illegal instruction at 0xffffffff, pc 0x4000056c in TimerQueue.isIntact.getter + 0x2a
        [kernel] restarted timer (pid 3, gen 2, restart 2)
        [kernel] injected illegal into timer
        [kernel] timer (pid 3, gen 2) stopped: illegal instruction at 0xffffffff, pc 0x400009ba in specialized static SSRServer.complete(_:payload:_:) + 0x2d8
        [kernel] restarted timer (pid 3, gen 3, restart 3)
        timerclient ok waits=430 maxskew=919 meanskew=247 errors=0
        timerclient ok waits=430 maxskew=2016 meanskew=284 errors=0
        timerclient ok waits=430 maxskew=2003 meanskew=315 errors=0
        timerclient ok waits=430 maxskew=1923 meanskew=340 errors=0
        timertest ok clients=4 ok=4 fail=0 lost=0 error=0 crashed=0 armed=3 restarts=3
        curio> audit
        audit: clean (483 frames owned by processes)

        """)

    /// Baseline kernel, the same seed: the first restart loses every client's timer.
    static let baselineIllegal = console("""
        curio> run timertest 4 100000 430 illegal exec 50000 faults=3 every=11000000 seed=7
        [kernel] injected illegal into timer
        [kernel] timer (pid 3, gen 0) stopped: illegal instruction at 0xffffffff, pc 0x4000054e in TimerQueue.isIntact.getter + 0xc
        [kernel] restarted timer (pid 3, gen 1, restart 1)
        timerclient FAIL waits=25 maxskew=236 meanskew=235 errors=1 reason=wait 26: no timers
        timerclient FAIL waits=25 maxskew=523 meanskew=522 errors=1 reason=wait 26: no timers
        timerclient FAIL waits=25 maxskew=573 meanskew=572 errors=1 reason=wait 26: no timers
        timerclient FAIL waits=25 maxskew=493 meanskew=396 errors=1 reason=wait 26: no timers
        timertest client 0 pid 8: error 3
        timertest client 1 pid 9: error 3
        timertest client 2 pid 10: error 3
        timertest client 3 pid 11: error 3
        timertest FAIL clients=4 ok=0 fail=0 lost=0 error=4 crashed=0 armed=3 restarts=1
        timertest exited with status 1
        curio> audit
        audit: clean (528 frames owned by processes)

        """)

    /// SSR kernel, 20 pointer flips: 11 restarts, and one client received an
    /// expiration of the wrong timer, which it reports only when it ends.
    static let ssrPointerFlipWrongAnswer = console("""
        curio> run timertest 4 100000 2300 pointer-flip exec 50000 faults=20 every=11000000 seed=101
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 0) stopped: load page fault at 0x4000e020, pc 0x40002a86 in specialized TimerService.notified(bits:) + 0x74
        [kernel] restarted timer (pid 3, gen 1, restart 1)
        [kernel] injected pointer-flip into timer
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 1) stopped: load page fault at 0x800400042b1, pc 0x40000b46 in specialized SSRServer.run() + 0x180
        [kernel] restarted timer (pid 3, gen 2, restart 2)
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 2) stopped: load page fault at 0x2400042b1, pc 0x40000b46 in specialized SSRServer.run() + 0x180
        [kernel] restarted timer (pid 3, gen 3, restart 3)
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 3) stopped: store page fault at 0x1000000400040f8, pc 0x400017e4 in specialized SSRServer.serve(_:) + 0x392
        [kernel] restarted timer (pid 3, gen 4, restart 4)
        [kernel] injected pointer-flip into timer
        [kernel] injected pointer-flip into timer
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 4) stopped: store page fault at 0x20007ffffdb0, pc 0x40002ac0 in specialized TimerService.notified(bits:) + 0xae
        [kernel] restarted timer (pid 3, gen 5, restart 5)
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 5) stopped: load page fault at 0x42b1, pc 0x40000b46 in specialized SSRServer.run() + 0x180
        [kernel] restarted timer (pid 3, gen 6, restart 6)
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 6) stopped: load page fault at 0x8000007ffffe08, pc 0x40002bc0 in specialized TimerService.notified(bits:) + 0x1ae
        [kernel] restarted timer (pid 3, gen 7, restart 7)
        [kernel] injected pointer-flip into timer
        [kernel] injected pointer-flip into timer
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 7) stopped: instruction page fault at 0x8000000040002a36, pc 0x8000000040002a36 in outlined enum tag store of SSRCheck<TimerClientState> + 0x7ffffffffffffd26
        [kernel] restarted timer (pid 3, gen 8, restart 8)
        [kernel] injected pointer-flip into timer
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 8) stopped: load page fault at 0x40400042b1, pc 0x40000b46 in specialized SSRServer.run() + 0x180
        [kernel] restarted timer (pid 3, gen 9, restart 9)
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 9) stopped: load page fault at 0x40400042b1, pc 0x40000b46 in specialized SSRServer.run() + 0x180
        [kernel] restarted timer (pid 3, gen 10, restart 10)
        [kernel] injected pointer-flip into timer
        [kernel] injected pointer-flip into timer
        [kernel] injected pointer-flip into timer
        [kernel] injected pointer-flip into timer
        [kernel] timer (pid 3, gen 10) stopped: load page fault at 0x420042b1, pc 0x40000b46 in specialized SSRServer.run() + 0x180
        [kernel] restarted timer (pid 3, gen 11, restart 11)
        timerclient FAIL waits=2300 maxskew=56075132 meanskew=24628 errors=5 reason=wait 559: timer 0, expected 4
        timertest client 0 pid 8: fail
        timerclient ok waits=2300 maxskew=2051 meanskew=275 errors=0
        timerclient ok waits=2300 maxskew=2318 meanskew=305 errors=0
        timerclient ok waits=2300 maxskew=2234 meanskew=327 errors=0
        timertest FAIL clients=4 ok=3 fail=1 lost=0 error=0 crashed=0 armed=20 restarts=11
        timertest exited with status 1
        curio> audit
        audit: clean (483 frames owned by processes)

        """)

    /// SSR kernel, 10 register flips: a client's deadline is off by 2^25 ticks (a wrong
    /// answer, reported at its end) and another never finishes: the boot hangs.
    static let ssrRegisterFlipHang = console("""
        curio> run timertest 4 100000 1200 reg-flip exec 50000 faults=10 every=11000000 seed=7193386624089609
        [kernel] injected reg-flip into timer
        [kernel] injected reg-flip into timer
        [kernel] timer (pid 3, gen 0) stopped: load page fault at 0xcc2c2f, pc 0x40000556 in TimerQueue.isIntact.getter + 0x14
        [kernel] restarted timer (pid 3, gen 1, restart 1)
        [kernel] injected reg-flip into timer
        [kernel] timer (pid 3, gen 1) stopped: load page fault at 0x1000040006020, pc 0x40000550 in TimerQueue.isIntact.getter + 0xe
        [kernel] restarted timer (pid 3, gen 2, restart 2)
        [kernel] injected reg-flip into timer
        [kernel] injected reg-flip into timer
        [kernel] injected reg-flip into timer
        [kernel] injected reg-flip into timer
        [kernel] injected reg-flip into timer
        [kernel] injected reg-flip into timer
        [kernel] injected reg-flip into timer
        timerclient ok waits=1200 maxskew=427 meanskew=245 errors=0
        timerclient ok waits=1200 maxskew=1849 meanskew=248 errors=0
        timerclient FAIL waits=1200 maxskew=33554951 meanskew=749682 errors=2 reason=wait 578: deadline 24421102, expected 57975534
        qemu-system-riscv64: terminating on signal 15 from pid 13209 (/work/main/.build/debug/curio-campaign)

        """)

    /// SSR kernel, code mutations: after one restart a client is told its timer is gone
    /// (it ends at once), and the boot later hangs.
    static let ssrMutateClientTold = console("""
        curio> run timertest 4 100000 2300 mutate exec 50000 faults=20 every=11000000 seed=101
        [kernel] mutation: invert-branch at 0x4000054e
        [kernel] injected mutate into timer
        [kernel] timer (pid 3, gen 0) stopped: reported failure at 0x0, pc 0x40002a6e in specialized TimerService.notified(bits:) + 0x5c
        [kernel] restarted timer (pid 3, gen 1, restart 1)
        [kernel] mutation: delete at 0x4000055c
        [kernel] injected mutate into timer
        [kernel] timer (pid 3, gen 1) stopped: reported failure at 0x0, pc 0x40002a6e in specialized TimerService.notified(bits:) + 0x5c
        [kernel] restarted timer (pid 3, gen 2, restart 2)
        [kernel] mutation: invert-branch at 0x400009ba
        [kernel] injected mutate into timer
        [kernel] mutation: delete at 0x4000057e
        [kernel] injected mutate into timer
        [kernel] mutation: delete at 0x40000550
        [kernel] injected mutate into timer
        [kernel] timer (pid 3, gen 2) stopped: load page fault at 0x3, pc 0x40000556 in TimerQueue.isIntact.getter + 0x14
        [kernel] restarted timer (pid 3, gen 3, restart 3)
        [kernel] mutation: delete at 0x4000025a
        [kernel] injected mutate into timer
        [kernel] timer (pid 3, gen 3) stopped: reported failure at 0x0, pc 0x4000099e in specialized static SSRServer.complete(_:payload:_:) + 0x2bc
        [kernel] restarted timer (pid 3, gen 4, restart 4)
        timerclient FAIL waits=558 maxskew=927 meanskew=247 errors=1 reason=wait 559: no timers
        [kernel] mutation: delete at 0x40002b80
        [kernel] injected mutate into timer
        [kernel] timer (pid 3, gen 4) stopped: load page fault at 0x4000a004, pc 0x40002b84 in specialized TimerService.notified(bits:) + 0x172
        [kernel] restarted timer (pid 3, gen 5, restart 5)
        [kernel] mutation: delete at 0x40002aa6
        [kernel] injected mutate into timer
        qemu-system-riscv64: terminating on signal 15 from pid 5288 (timeout)

        """)

    /// Baseline kernel, fs: each restart loses the open handles of the clients.
    static let baselineFileSystemIllegal = console("""
        curio> run fstest stress 4 1 fs=3 every=11000000 kind=illegal trigger=exec arg=1000000 seed=3
        [kernel] injected illegal into fs
        [kernel] fs (pid 6, gen 0) stopped: illegal instruction at 0xffffffff, pc 0x40000cf2 in BlockStorage.read(sector:count:into:priority:) + 0x11a
        [kernel] restarted fs (pid 6, gen 1, restart 1)
        stream 2 ERROR round 8: bad file handle
        stream 0 ERROR round 10: bad file handle
        stream 1 ERROR round 9: bad file handle
        [kernel] injected illegal into fs
        [kernel] fs (pid 6, gen 1) stopped: illegal instruction at 0xffffffff, pc 0x40000270 in memcpy + 0x2e
        [kernel] restarted fs (pid 6, gen 2, restart 2)
        stream 3 ERROR round 19: bad file handle
        fstest stress FAIL clients=4 ok=0 failed=0 lost=0 error=4 crashed=0 armed=3 restarts fs=2 storage=0
        fstest exited with status 1
        curio> audit
        audit: clean (528 frames owned by processes)

        """)

    /// SSR kernel, storage: one flip restarted the driver, two did nothing visible.
    static let ssrStorageRegisterFlip = console("""
        curio> run fstest stress 4 1 storage=3 every=11000000 kind=reg-flip trigger=exec arg=1000000 seed=4
        [kernel] injected reg-flip into storage
        [kernel] storage (pid 5, gen 0) stopped: store page fault at 0x47ffffdcc, pc 0x40005e18 in specialized VirtioBlockDriver.submit(tag:kind:sector:dataPhysical:byteCount:) + 0x300
        [kernel] restarted storage (pid 5, gen 1, restart 1)
        [kernel] injected reg-flip into storage
        [kernel] injected reg-flip into storage
        stream 3 ok rounds=19 bytes=2334283 losses=0
        stream 2 ok rounds=25 bytes=3071425 losses=0
        stream 1 ok rounds=31 bytes=3808567 losses=0
        stream 0 ok rounds=34 bytes=4177138 losses=0
        fstest stress ok clients=4 ok=4 failed=0 lost=0 error=0 crashed=0 armed=3 restarts fs=0 storage=1
        curio> audit
        audit: clean (484 frames owned by processes)

        """)
}

@Suite struct SoakWorkloadTests {
    @Test func commandsArmOneKindWithTheExecutionTriggerThenAudit() {
        let timer = timerSoak(3)
        #expect(timer.timerWaits == 430)
        #expect(timer.command(fault: "illegal", seed: 7)
                == "run timertest 4 100000 430 illegal exec 50000 faults=3 every=11000000 seed=7; audit")
        #expect(timerSoak(20).timerWaits == 2300)
        let mixed = SoakWorkload(server: .timer, injections: 3)
        #expect(mixed.timerWaits == 1182, "430 periods of three timers")
        #expect(mixed.command(fault: "illegal", seed: 7)
                == "run timertest 4 100000 1182 illegal exec 50000 faults=3 every=11000000 mixed seed=7; audit")
        let fs = SoakWorkload(server: .fs, injections: 3)
        #expect(fs.command(fault: "illegal", seed: 3)
                == "run fstest stress 4 1 fs=3 every=11000000 kind=illegal trigger=exec arg=1000000 seed=3; audit")
        let storage = SoakWorkload(server: .storage, injections: 5, every: 20_000_000, window: 400)
        #expect(storage.command(fault: "mutate+persistent", seed: 9)
                == "run fstest stress 4 1 storage=5 every=20000000 kind=mutate trigger=exec arg=400 seed=9 persistent; audit")
        #expect(storage.usesDisk && !timer.usesDisk)
        let net = SoakWorkload(server: .net, injections: 3)
        #expect(net.usesDisk && net.silence == nil)
        #expect(net.command(fault: "reg-flip", seed: 5)
                == "run nettest stress 4 1 net=3 every=11000000 kind=reg-flip trigger=exec arg=1000000 seed=5; audit")
        // A hang costs the timeout: well beyond the boot's guest time, never below a minute.
        #expect(timerSoak(100).timeout > timerSoak(100).guestSeconds && timerSoak(1).timeout >= 60)
        #expect(timer.description.contains("one armed every 1.1 s of guest time, each striking within 5 ms"))
    }

    @Test func durationsParseInTicksMillisecondsAndSeconds() {
        #expect(Ticks.parse("11000000") == 11_000_000)
        #expect(Ticks.parse("1100ms") == 11_000_000)
        #expect(Ticks.parse("1.1s") == 11_000_000)
        #expect(Ticks.parse("0.5ms") == 5_000)
        for bad in ["", "0", "-3", "ms", "1.5", "fast", "0s", "1e30s"] { #expect(Ticks.parse(bad) == nil, "\(bad)") }
        #expect(Ticks.describe(11_000_000) == "1.1 s")
        #expect(Ticks.describe(50_000) == "5 ms")
        #expect(Ticks.describe(2_500) == "250 µs")
    }

    @Test func planInterleavesFaultsAndBuildsAndPairsBuildsWithOneSeed() {
        let plan = SoakPlan(workload: timerSoak(10), faults: ["reg-flip", "loop"], builds: [.ssr, .baseline],
                            soakSeed: 42)
        #expect(plan.round == 4)
        let boots = (0..<8).map(plan.boot(at:))
        #expect(boots.map(\.id) == [
            "soak/timer/reg-flip/0/ssr", "soak/timer/reg-flip/0/baseline", "soak/timer/loop/0/ssr",
            "soak/timer/loop/0/baseline", "soak/timer/reg-flip/1/ssr", "soak/timer/reg-flip/1/baseline",
            "soak/timer/loop/1/ssr", "soak/timer/loop/1/baseline",
        ])
        for pair in stride(from: 0, to: boots.count, by: 2) {
            #expect(boots[pair].seed == boots[pair + 1].seed && boots[pair].command == boots[pair + 1].command)
        }
        #expect(Set(boots.map(\.seed)).count == 4)
        #expect(boots.allSatisfy { $0.seed > 0 && $0.seed < Seeds.limit && $0.command.contains(" seed=\($0.seed);") })
        // Stable across processes, and not the campaign's seed of the same place.
        #expect(plan.boot(at: 5).seed == Seeds.soak(42, server: .timer, fault: "reg-flip", index: 1))
        #expect(Seeds.soak(42, server: .timer, fault: "loop", index: 0)
                != Seeds.run(campaign: 42, server: .timer, fault: "loop", trigger: .execution, index: 0))
    }
}

@Suite struct SoakAnalysisTests {
    static func count(_ console: String, _ workload: SoakWorkload, finished: Bool = true,
                      diskDamage: String? = nil) -> SoakCounts {
        SoakAnalysis.count(console: console, workload: workload, finished: finished, diskDamage: diskDamage)
    }

    @Test func everyFaultRestartedAndHiddenIsRecoveredTransparently() {
        let counts = Self.count(SoakConsoles.ssrIllegal, timerSoak(3))
        #expect(counts.armed == 3 && counts.struck == 3)
        #expect(counts.stops == 3 && counts.restarts == 3 && counts.giveUps == 0)
        #expect(counts.manifested == 3 && counts.recovered == 3 && counts.clientVisible == 0)
        #expect(counts.clients == 4 && counts.clientsFailed == 0 && counts.wrongAnswers == 0)
        #expect(counts.verdict && counts.workloadRestarts == 3 && counts.audit == .clean)
        #expect(!counts.hang && !counts.panic && counts.diskDamaged == nil)
        #expect(counts.problems.isEmpty)
    }

    @Test func theBaselineLosesEveryClientAtTheFirstRestart() {
        let counts = Self.count(SoakConsoles.baselineIllegal, timerSoak(3))
        #expect(counts.armed == 3 && counts.struck == 1 && counts.stops == 1 && counts.restarts == 1)
        #expect(counts.manifested == 1 && counts.recovered == 0 && counts.clientVisible == 1)
        #expect(counts.clientsFailed == 4 && counts.clientsTold == 4 && counts.wrongAnswers == 0)
        // Clients told of a refused call are what the baseline costs, not a problem of the boot.
        #expect(counts.problems.isEmpty)
    }

    @Test func aWrongAnswerReportedAtTheEndIsASilentFailureNotPlacedAgainstAFault() {
        let counts = Self.count(SoakConsoles.ssrPointerFlipWrongAnswer, timerSoak(20))
        #expect(counts.armed == 20 && counts.struck == 20 && counts.stops == 11 && counts.restarts == 11)
        #expect(counts.manifested == 11 && counts.recovered == 11 && counts.clientVisible == 0)
        #expect(counts.clientsFailed == 1 && counts.wrongAnswers == 1 && counts.clientsTold == 0)
        #expect(counts.silentFailures == ["1 client(s) got a wrong answer or crashed"])
        #expect(counts.systemFailures.isEmpty && counts.anomalies.isEmpty)
    }

    @Test func aBootThatNeverPowersOffIsAHangAndItsClientsReportsStillCount() {
        let counts = Self.count(SoakConsoles.ssrRegisterFlipHang, timerSoak(10), finished: false)
        #expect(counts.hang && !counts.verdict && counts.armed == nil)
        #expect(counts.struck == 10 && counts.stops == 2 && counts.manifested == 2 && counts.recovered == 2)
        // Two clients passed; of the other two, one reported a wrong deadline.
        #expect(counts.clientsFailed == 2 && counts.wrongAnswers == 1)
        #expect(counts.systemFailures == ["hang: no power-off"])
        #expect(counts.silentFailures.count == 1)
        // A hang leaves no audit and no verdict: that is the hang, not two more problems.
        #expect(counts.audit == .missing && counts.problems.count == 2)
    }

    @Test func aClientToldAfterWrongExpirationsCountsAsAWrongAnswer() {
        // From an SSR boot of 100 pointer flips (lines of its console: the end of one
        // episode, and the end of the boot). The client was told its state was lost at
        // wait 4769, after three wrong expirations (errors=4, a deadline 47 s late): the
        // verdict counts it as lost, but it got wrong answers first.
        let console = SoakConsoles.console("""
            curio> run timertest 4 100000 11100 pointer-flip exec 50000 faults=100 every=11000000 seed=3335191120387140
            [kernel] injected pointer-flip into timer
            [kernel] timer (pid 3, gen 23) stopped: reported failure at 0x0, pc 0x40001672 in specialized SSRServer.serve(_:) + 0x220
            [kernel] restarted timer (pid 3, gen 24, restart 24)
            timerclient FAIL waits=4768 maxskew=476876067 meanskew=100399 errors=4 reason=wait 4769: server state lost
            [kernel] injected pointer-flip into timer
            timerclient ok waits=11100 maxskew=2327 meanskew=264 errors=0
            timerclient ok waits=11100 maxskew=2245 meanskew=308 errors=0
            timerclient ok waits=11100 maxskew=2298 meanskew=457 errors=0
            timertest client 3 pid 11: lost
            timertest FAIL clients=4 ok=3 fail=0 lost=1 error=0 crashed=0 armed=100 restarts=61
            timertest exited with status 1
            curio> audit
            audit: clean (483 frames owned by processes)

            """)
        let counts = Self.count(console, timerSoak(100))
        #expect(counts.clientVisible == 1 && counts.manifested == 1 && counts.recovered == 0)
        #expect(counts.clientsFailed == 1 && counts.wrongAnswers == 1 && counts.clientsTold == 0)
        #expect(counts.silentFailures == ["1 client(s) got a wrong answer or crashed"])
        // Told at once, with no wrong expiration before: told, not wrong.
        let toldOnly = console.replacingOccurrences(of: "errors=4", with: "errors=1")
        let told = Self.count(toldOnly, timerSoak(100))
        #expect(told.wrongAnswers == 0 && told.clientsTold == 1 && told.silentFailures.isEmpty)
    }

    @Test func aClientToldAtOnceIsPlacedAgainstTheFaultBeforeIt() {
        let counts = Self.count(SoakConsoles.ssrMutateClientTold, timerSoak(20), finished: false)
        #expect(counts.struck == 8 && counts.stops == 5 && counts.restarts == 5)
        // Five faults stopped the timer; after the fourth of them a client was told
        // "no timers" (it ended at wait 558 of 2300, so at once), before the next fault.
        #expect(counts.manifested == 5 && counts.recovered == 4 && counts.clientVisible == 1)
        #expect(counts.wrongAnswers == 0 && counts.clientsFailed == 4)
    }

    @Test func fileSystemBaselineErrorsAreClientVisibleAndDiskDamageIsSilent() {
        let fs = SoakWorkload(server: .fs, injections: 3)
        let damage = "e2fsck -fn exited 4:\nFree blocks count wrong for group #0 (7391, counted=7385).\nFix? no"
        let counts = Self.count(SoakConsoles.baselineFileSystemIllegal, fs, diskDamage: damage)
        #expect(counts.armed == 3 && counts.struck == 2 && counts.stops == 2 && counts.restarts == 2)
        #expect(counts.manifested == 2 && counts.recovered == 0 && counts.clientVisible == 2)
        #expect(counts.clientsFailed == 4 && counts.clientsTold == 4 && counts.workloadRestarts == 2)
        #expect(counts.diskDamaged == true && counts.silentFailures == ["e2fsck -fn found damage"])
        let clean = Self.count(SoakConsoles.baselineFileSystemIllegal, fs)
        #expect(clean.diskDamaged == false && clean.problems.isEmpty)
    }

    @Test func aFaultInFileSystemThatStopsStorageIsCountedApart() {
        // The fs and storage lines are from an fs soak boot of endless loops, in which the
        // watchdog stopped storage too; the client's crash after them is made up.
        let console = SoakConsoles.console("""
            [kernel] injected loop into fs
            [kernel] fs (pid 6, gen 15) stopped: hang (watchdog) at 0x0, pc 0x40002b8a in LockTable.isIntact.getter + 0x7e
            [kernel] restarted fs (pid 6, gen 16, restart 16)
            [kernel] storage (pid 5, gen 0) stopped: hang (watchdog) at 0x0, pc 0x40006944 in specialized SSRServer.run() + 0x94
            [kernel] restarted storage (pid 5, gen 1, restart 1)
            [kernel] fstest (pid 9, gen 0) stopped: load page fault at 0x0, pc 0x40000a2c

            """)
        let counts = Self.count(console, SoakWorkload(server: .fs, injections: 20), finished: false)
        #expect(counts.stops == 1 && counts.restarts == 1 && counts.otherStops == 1)
        // The client's crash is a wrong answer, not another server's stop.
        #expect(counts.wrongAnswers == 1 && counts.clientVisible == 1 && counts.recovered == 0)
        #expect(SoakAnalysis.stoppedServer(in: "[kernel] storage (pid 5, gen 0) stopped: hang") == "storage")
        #expect(SoakAnalysis.stoppedServer(in: "[kernel] fstest (pid 12, gen 0) stopped: hang") == nil)
        #expect(SoakAnalysis.stoppedServer(in: "[kernel] restarted storage (pid 5, gen 1, restart 1)") == nil)
    }

    @Test func storageRestartsAreCountedForStorageOnly() {
        let storage = SoakWorkload(server: .storage, injections: 3)
        let counts = Self.count(SoakConsoles.ssrStorageRegisterFlip, storage)
        #expect(counts.struck == 3 && counts.stops == 1 && counts.manifested == 1 && counts.recovered == 1)
        #expect(counts.workloadRestarts == 1 && counts.otherStops == 0 && counts.problems.isEmpty)
        // The same console read as an fs soak: nothing struck fs.
        let asFileSystem = Self.count(SoakConsoles.ssrStorageRegisterFlip, SoakWorkload(server: .fs, injections: 3))
        #expect(asFileSystem.struck == 0 && asFileSystem.stops == 0 && asFileSystem.workloadRestarts == 0)
        #expect(asFileSystem.otherStops == 1 && asFileSystem.anomalies == ["1 stop(s) of another server"])
    }

    @Test func aCrashedFetchIsAClientsWrongAnswerNotAnotherServersStop() {
        // A made-up net boot: the second fault made a fetch crash (its client reports
        // it), which is neither a stop of net nor of another server.
        let console = SoakConsoles.console("""
            curio> run nettest stress 4 1 net=2 every=11000000 kind=reg-flip trigger=exec arg=1000000 seed=5
            [kernel] injected reg-flip into net
            [kernel] net (pid 7, gen 0) stopped: load page fault at 0x8, pc 0x40001308 in SocketRecord.isConsistent.getter + 0x2e
            [kernel] restarted net (pid 7, gen 1, restart 1)
            [kernel] injected reg-flip into net
            [kernel] fetch (pid 14, gen 0) stopped: load page fault at 0x0, pc 0x40002000 in HTTPFetch.fetch(url:to:) + 0x10
            stream 1 FAIL round 4: fetch crashed: load page fault
            nettest stress FAIL clients=4 ok=3 failed=1 error=0 crashed=0 armed=2 restarts net=1
            curio> audit
            audit: clean (600 frames owned by processes)

            """)
        let counts = Self.count(console, SoakWorkload(server: .net, injections: 2))
        #expect(counts.struck == 2 && counts.restarts == 1 && counts.workloadRestarts == 1 && counts.otherStops == 0)
        #expect(counts.manifested == 2 && counts.recovered == 1 && counts.clientVisible == 1)
        #expect(counts.clientsFailed == 1 && counts.wrongAnswers == 1 && counts.clientsTold == 0)
        #expect(counts.silentFailures == ["1 client(s) got a wrong answer or crashed"])
    }

    @Test func aKernelLineInsideAClientLineIsTakenInItsPlace() {
        // The baseline's first client report, with the kernel's next injection landing
        // inside it on the shared UART: the report belongs to the episode before.
        let console = SoakConsoles.console("""
            [kernel] injected illegal into timer
            [kernel] timer (pid 3, gen 0) stopped: illegal instruction at 0xffffffff, pc 0x4000054e in TimerQueue.isIntact.getter + 0xc
            [kernel] restarted timer (pid 3, gen 1, restart 1)
            timerclient FAIL waits=25 maxskew=236 mean[kernel] injected illegal into timer
            skew=235 errors=1 reason=wait 26: no timers

            """)
        let counts = Self.count(console, timerSoak(3), finished: false)
        #expect(counts.struck == 2 && counts.manifested == 1 && counts.clientVisible == 1 && counts.recovered == 0)
        #expect(SoakAnalysis.pieces(of: "a [kernel] b [kernel] c\n[kernel] d") == ["a ", "[kernel] b ", "[kernel] c",
                                                                                      "[kernel] d"])
    }

    @Test func panicsGiveUpsFailedAuditsAndStopsWithoutAFaultAreProblems() {
        let console = SoakConsoles.console("""
            curio> run timertest 4 100000 430 illegal exec 50000 faults=3 every=11000000 seed=7
            [kernel] timer (pid 3, gen 0) stopped: illegal instruction at 0xffffffff, pc 0x4000054e in TimerQueue.isIntact.getter + 0xc
            [kernel] restarted timer (pid 3, gen 1, restart 1)
            [kernel] injected illegal into timer
            [kernel] timer (pid 3, gen 1) stopped: illegal instruction at 0xffffffff, pc 0x4000054e in TimerQueue.isIntact.getter + 0xc
            [kernel] gave up on timer: it kept failing
            timertest FAIL clients=4 ok=0 fail=0 lost=0 error=4 crashed=0 armed=3 restarts=3
            curio> audit
            audit: 2 violations; first: frameOwnedTwice (slot 3)

            """)
        let counts = Self.count(console, timerSoak(3))
        #expect(counts.stopsBeforeInjection == 1 && counts.giveUps == 1 && counts.manifested == 1 && counts.recovered == 0)
        #expect(counts.audit == .violations)
        #expect(counts.systemFailures == ["the server was given up", "audit: violations"])
        #expect(counts.anomalies == ["1 stop(s) before any injection", "restarts: 1 on the console, 3 by the workload"])
        let panic = Self.count(SoakConsoles.console("[kernel] injected loop into timer\n[kernel] PANIC: trap in the kernel\n"),
                               timerSoak(3))
        #expect(panic.panic && panic.systemFailures == ["kernel panic"])
    }
}

func soakRecord(_ fault: String = "illegal", build: Build = .ssr, index: Int = 0, console: String = SoakConsoles.ssrIllegal,
                finished: Bool = true, soakSeed: UInt64 = 42) -> SoakRecord {
    let workload = timerSoak(3)
    let counts = SoakAnalysis.count(console: console, workload: workload, finished: finished, diskDamage: nil)
    return SoakRecord(bootID: "soak/timer/\(fault)/\(index)/\(build.rawValue)", soakSeed: soakSeed, seed: 7,
                      server: .timer, build: build, fault: fault, injections: 3, every: workload.every,
                      window: workload.window, counts: counts, seconds: 1.5,
                      command: workload.command(fault: fault, seed: 7),
                      consoleTail: counts.problems.isEmpty ? "" : ConsoleAnalysis.tail(of: console, lines: 60))
}

@Suite struct SoakFileTests {
    func scratchFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("soak-test-\(UUID().uuidString).csv").path
    }

    @Test func recordsRoundTripThroughTheFileWithEveryCount() throws {
        let path = scratchFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let records = [soakRecord(), soakRecord(build: .baseline, console: SoakConsoles.baselineIllegal),
                       soakRecord("reg-flip", console: SoakConsoles.ssrRegisterFlipHang, finished: false)]
        #expect(records[2].counts.armed == nil && records[2].consoleTail.contains("\n"))
        do {
            let file = try SoakFile(path: path)
            for record in records { try file.append(record) }
        }
        let reopened = try SoakFile(path: path)
        #expect(reopened.records == records)
        #expect(reopened.contains(key: SoakRecord.key(42, "soak/timer/reg-flip/0/ssr")))
        #expect(!reopened.contains(key: SoakRecord.key(43, "soak/timer/reg-flip/0/ssr")))
        // A campaign's CSV is not a soak's, nor the other way round.
        #expect(throws: CampaignError.self) { try RecordFile(path: path) }
    }

    @Test func aSoakResumesWithTheBootsTheFileDoesNotHold() throws {
        let path = scratchFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let plan = SoakPlan(workload: timerSoak(3), faults: ["illegal", "loop"], builds: [.ssr, .baseline], soakSeed: 42)
        let file = try SoakFile(path: path)
        try file.append(soakRecord("illegal"))
        try file.append(soakRecord("loop", build: .baseline))
        let machine = Machine(kernels: [.ssr: "/nonexistent"], scratch: FileManager.default.temporaryDirectory)
        let soak = Soak(plan: plan, bootsPerFault: 2, deadline: nil, machine: machine, jobs: 1, file: file)
        #expect(soak.total == 8)
        #expect(soak.pending().map(\.id) == [
            "soak/timer/illegal/0/baseline", "soak/timer/loop/0/ssr", "soak/timer/illegal/1/ssr",
            "soak/timer/illegal/1/baseline", "soak/timer/loop/1/ssr", "soak/timer/loop/1/baseline",
        ])
        let byTime = Soak(plan: plan, bootsPerFault: nil, deadline: Date(), machine: machine, jobs: 1, file: file)
        #expect(byTime.total == nil && byTime.pending(rounds: 1).count == 2)
        // A deadline already past starts no boot.
        #expect(try byTime.run { _ in }.isEmpty)
    }

    @Test func aMalformedFieldIsNamed() throws {
        let path = scratchFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var fields = soakRecord().fields
        fields[SoakRecord.columns.firstIndex(of: "audit")!] = "dubious"
        try (CSV.line(SoakRecord.columns) + CSV.line(fields)).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: CampaignError.malformedRecord(path: path, record: 1, reason: "audit \"dubious\"")) {
            try SoakFile(path: path)
        }
    }
}

@Suite struct SoakReportTests {
    static let records = [
        soakRecord(), soakRecord(build: .baseline, console: SoakConsoles.baselineIllegal),
        soakRecord(index: 1), soakRecord(build: .baseline, index: 1, console: SoakConsoles.baselineIllegal),
        soakRecord("pointer-flip", console: SoakConsoles.ssrPointerFlipWrongAnswer),
        soakRecord("reg-flip", console: SoakConsoles.ssrRegisterFlipHang, finished: false),
    ]

    @Test func tallySumsCountsAndCountsBadBootsOnce() {
        let ssr = SoakTally(Self.records.filter { $0.build == .ssr })
        #expect(ssr.boots == 4 && ssr.struck == 3 + 3 + 20 + 10 && ssr.armed == 3 + 3 + 20 && ssr.armedUnknown == 1)
        #expect(ssr.manifested == 3 + 3 + 11 + 2 && ssr.recovered == ssr.manifested)
        #expect(ssr.silentFailures == 2 && ssr.systemFailures == 1)
        #expect(ssr.armedSummary == "26 + ?")
        #expect(SoakTally(Self.records.filter { $0.fault == "reg-flip" }).armedSummary == "?")
        let baseline = SoakTally(Self.records.filter { $0.build == .baseline })
        #expect(baseline.struck == 2 && baseline.manifested == 2 && baseline.recovered == 0)
        #expect(baseline.clientVisible == 2 && baseline.clientsFailed == 8 && baseline.clients == 8)
        #expect(baseline.recoveryRate == Proportion(0, of: 2))
    }

    @Test func markdownPutsTheBuildsSideBySideAndListsTheBadBoots() {
        let text = SoakReport.markdown(Self.records) { "make soak-replay BOOT=\($0.bootID)" }
        let rows = text.split(separator: "\n").map(String.init)
        #expect(text.contains("## timer") && text.contains("one armed every 1.1 s of guest time"))
        #expect(text.contains("38 faults struck of 32 armed and an unknown number in 1 boots that ended without"))
        #expect(rows.contains("| illegal | SSR | 2 | 6 | 6 | 6 | 6 | 100.0 % [61.0, 100.0] (6/6) | 0 | 0/8 | 0 | 0 |"))
        #expect(rows.contains("|  | baseline | 2 | 6 | 2 | 2 | 0 | 0.0 % [0.0, 65.8] (0/2) | 2 | 8/8 | 0 | 0 |"))
        #expect(rows.contains { $0.hasPrefix("| all | SSR | 4 | 26 + ? | 36 | 19 | 19 |") })
        #expect(text.contains("`soak/timer/reg-flip/0/ssr` seed 7: **hang: no power-off; "
                              + "1 client(s) got a wrong answer or crashed** (struck 10 of ? armed)"))
        #expect(text.contains("make soak-replay BOOT=soak/timer/pointer-flip/0/ssr"))
        #expect(!text.contains("soak/timer/illegal/0/ssr`"))
        let header = rows.first { $0.hasPrefix("| fault |") }
        let width = header.map { $0.split(separator: "|", omittingEmptySubsequences: false).count }
        for row in rows where row.hasPrefix("| ") && row != header {
            #expect(row.split(separator: "|", omittingEmptySubsequences: false).count == width, "\(row)")
        }
    }

    @Test func markdownSaysSoWhenNoBootWasBad() {
        let text = SoakReport.markdown(Self.records.filter { $0.counts.problems.isEmpty })
        #expect(text.contains("None: no hang, panic, give-up, failed audit, wrong answer or damaged image."))
    }
}

@Suite struct SilenceTests {
    let machine = Machine(kernels: [:], scratch: FileManager.default.temporaryDirectory
        .appendingPathComponent("silence-test-\(UUID().uuidString)"))

    @Test func aProgramThatStopsPrintingCountsAsStoppedLongBeforeItsDeadline() {
        // Quiet after its first line, it is stopped after 1 s of silence and counts as
        // not finished, though it would end by itself (with status 0) at 4 s — when it
        // does here, since the test runner's threads block SIGTERM for their children.
        // (exec: no grandchild, which Foundation would wait for before reporting the end.)
        let started = Date()
        let run = machine.execute("sh", ["-c", "echo started; exec sleep 4"], timeout: 60, silence: 1)
        #expect(!run.finished && run.output == "started\n")
        #expect(Date().timeIntervalSince(started) < 15)
    }

    @Test func aProgramThatKeepsPrintingRunsToItsEnd() {
        let run = machine.execute("sh", ["-c", "for i in 1 2 3 4; do echo $i; sleep 1; done"], timeout: 60, silence: 3)
        #expect(run.finished && run.status == 0 && run.output == "1\n2\n3\n4\n")
    }
}
