// The pure parts of the fault-injection campaign: seeds and the plan, the judgement
// of a console, the Wilson interval, the CSV (round trip, resume, a torn last
// record), and the report's tables and chart. The consoles below are shaped like
// real ones (kernel lines, client lines, a verdict), including a kernel line landing
// in the middle of a client's line, as it can on the shared UART.

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

@testable import CampaignKit

@Suite struct PlanTests {
    @Test func runSeedsAreStableNonZeroAndBelowTheLimit() {
        let seed = Seeds.run(campaign: 42, server: .timer, fault: "reg-flip", trigger: .execution, index: 3)
        #expect(seed == Seeds.run(campaign: 42, server: .timer, fault: "reg-flip", trigger: .execution, index: 3))
        #expect(seed != Seeds.run(campaign: 43, server: .timer, fault: "reg-flip", trigger: .execution, index: 3))
        #expect(seed != Seeds.run(campaign: 42, server: .timer, fault: "reg-flip", trigger: .execution, index: 4))
        #expect(seed != Seeds.run(campaign: 42, server: .fs, fault: "reg-flip", trigger: .execution, index: 3))
        var seen = Set<UInt64>()
        for index in 0..<2_000 {
            let derived = Seeds.run(campaign: 7, server: .storage, fault: "loop", trigger: .time, index: index)
            #expect(derived > 0 && derived < Seeds.limit)
            seen.insert(derived)
        }
        #expect(seen.count == 2_000)
    }

    @Test func fingerprintIsFNV1a() {
        // The published FNV-1a 64 test vectors.
        #expect(Seeds.fingerprint("") == 0xCBF2_9CE4_8422_2325)
        #expect(Seeds.fingerprint("a") == 0xAF63_DC4C_8601_EC8C)
        #expect(Seeds.fingerprint("foobar") == 0x8594_4171_F739_67E8)
    }

    @Test func planInterleavesAndPairsBuildsWithOneSeed() {
        let workload = Workload.standard(for: .timer)
        let plan = CampaignPlan.runs(workload: workload, faults: ["reg-flip", "loop"], triggers: [.request, .execution],
                                     runsPerCell: 3, builds: [.ssr, .baseline], campaignSeed: 99)
        #expect(plan.count == 2 * 2 * 3 * 2)
        #expect(Set(plan.map(\.id)).count == plan.count)
        // Index 0 of every cell comes before any index 1.
        #expect(plan.prefix(8).allSatisfy { $0.index == 0 })
        #expect(plan[0].id == "timer/reg-flip/request/0/ssr")
        #expect(plan[1].id == "timer/reg-flip/request/0/baseline")
        for pair in stride(from: 0, to: plan.count, by: 2) {
            #expect(plan[pair].build == .ssr && plan[pair + 1].build == .baseline)
            #expect(plan[pair].seed == plan[pair + 1].seed)
            #expect(plan[pair].command == plan[pair + 1].command)
        }
    }

    @Test func commandsCarryTriggerMomentAndSeed() {
        let timer = Workload.standard(for: .timer)
        let execution = timer.moment(for: .execution, seed: 5)
        #expect(execution.description == "exec \(timer.executionWindow)")
        #expect(timer.command(fault: "pointer-flip", moment: execution, seed: 5)
                == "run timertest 4 100000 82 pointer-flip exec \(timer.executionWindow) mixed seed=5")
        let request = timer.moment(for: .request, seed: 12345)
        #expect(request.trigger == .request && (1...timer.requestWindow).contains(request.argument))
        #expect(request == timer.moment(for: .request, seed: 12345))

        let storage = Workload.standard(for: .storage)
        let time = storage.moment(for: .time, seed: 8)
        #expect(storage.command(fault: "wild-write", moment: time, seed: 8)
                == "run fstest stress 4 3 storage=1 every=10000 kind=wild-write trigger=random arg=\(storage.timeWindow) seed=8")

        let net = Workload.standard(for: .net)
        #expect(net.usesDisk && net.usesNetwork && !storage.usesNetwork)
        #expect(net.command(fault: "illegal", moment: net.moment(for: .execution, seed: 6), seed: 6)
                == "run nettest stress 4 3 net=1 every=10000 kind=illegal trigger=exec arg=\(net.executionWindow) seed=6")
    }

    @Test func faultNamesAreTheKernelsAndCodeFaultsComePersistentToo() {
        #expect(Faults.all.first == "wild-write")
        #expect(Faults.all.contains("pointer-flip"))
        #expect(Set(Faults.all).count == Faults.all.count)
        #expect(Faults.all.filter { $0.hasSuffix("+persistent") }.sorted()
                == ["illegal+persistent", "loop+persistent", "mutate+persistent"])
        #expect(Faults.split("mutate+persistent") == ("mutate", true))
        #expect(Faults.split("reg-flip") == ("reg-flip", false))
        let moment = Moment(trigger: .execution, argument: 9)
        #expect(Workload.standard(for: .timer).command(fault: "loop+persistent", moment: moment, seed: 3)
                == "run timertest 4 100000 82 loop exec 9 mixed seed=3 persistent")
        #expect(Workload.standard(for: .fs).command(fault: "illegal+persistent", moment: moment, seed: 3)
                .hasSuffix("kind=illegal trigger=exec arg=9 seed=3 persistent"))
    }
}

@Suite struct ConsoleAnalysisTests {
    static let banner = "OpenSBI v1.2\r\nCurio: an Embedded Swift microkernel with server state regions\r\ncurio> run timertest\r\n"

    static func timer(_ body: String) -> String { banner + body.replacingOccurrences(of: "\n", with: "\r\n") }

    static let okClients = """
        timerclient ok waits=30 maxskew=2059 meanskew=320 errors=0
        timerclient ok waits=30 maxskew=1986 meanskew=361 errors=0
        timerclient ok waits=30 maxskew=1908 meanskew=645 errors=0
        timerclient ok waits=30 maxskew=1830 meanskew=438 errors=0

        """

    @Test func neverStruckIsNotActivated() {
        let console = Self.timer(Self.okClients
            + "timertest ok clients=4 ok=4 fail=0 lost=0 error=0 crashed=0 armed=1 restarts=0\n")
        let verdict = ConsoleAnalysis.judge(console: console, server: .timer, clients: 4, finished: true)
        #expect(verdict.outcome == .notActivated)
        #expect(!verdict.struck && verdict.restarts == 0 && verdict.clientsFailed == 0)
    }

    @Test func struckWithoutEffectIsMasked() {
        let console = Self.timer("[kernel] injected data-flip into timer\n" + Self.okClients
            + "timertest ok clients=4 ok=4 fail=0 lost=0 error=0 crashed=0 armed=1 restarts=0\n")
        let verdict = ConsoleAnalysis.judge(console: console, server: .timer, clients: 4, finished: true)
        #expect(verdict.outcome == .masked && verdict.struck)
        #expect(verdict.evidence.contains("[kernel] injected data-flip into timer"))
    }

    @Test func restartWithEveryClientCorrectIsRecovered() {
        // The kernel's line lands inside a client's line, as it can on the UART.
        let console = Self.timer("""
            timerclient ok waits=30 max[kernel] injected reg-flip into timer
            skew=2059 meanskew=320 errors=0
            [kernel] timer (pid 3, gen 0) stopped: reported failure at 0x0, pc 0x4000147c in SSRServer.serve(_:) + 0x11e
            [kernel] restarted timer (pid 3, gen 1, restart 1)
            timertest ok clients=4 ok=4 fail=0 lost=0 error=0 crashed=0 armed=1 restarts=1

            """)
        let verdict = ConsoleAnalysis.judge(console: console, server: .timer, clients: 4, finished: true)
        #expect(verdict.outcome == .recovered)
        #expect(verdict.struck && verdict.restarts == 1 && verdict.clientsFailed == 0)
        #expect(verdict.evidence.contains("restarted timer"))
    }

    @Test func lostStateIsClientToldWithTheClientNamed() {
        let console = Self.timer("""
            [kernel] injected ssr-flip into timer
            timerclient FAIL waits=12 maxskew=0 meanskew=0 errors=1 reason=wait: serverStateLost
            timertest client 2 pid 7: lost
            timertest FAIL clients=4 ok=3 fail=0 lost=1 error=0 crashed=0 armed=1 restarts=1

            """)
        let verdict = ConsoleAnalysis.judge(console: console, server: .timer, clients: 4, finished: true)
        #expect(verdict.outcome == .clientTold)
        #expect(verdict.clientsFailed == 1)
        #expect(verdict.evidence.contains("timertest client 2 pid 7: lost"))
        #expect(verdict.evidence.contains("reason=wait: serverStateLost"))
    }

    @Test func wrongAnswerOrCrashedClientIsSilentFailure() {
        let wrong = Self.timer("""
            [kernel] injected reg-flip into timer
            timerclient FAIL waits=30 maxskew=0 meanskew=0 errors=1 reason=sequence 5 after 3
            timertest client 0 pid 5: fail
            timertest FAIL clients=4 ok=3 fail=1 lost=0 error=0 crashed=0 armed=1 restarts=0

            """)
        #expect(ConsoleAnalysis.judge(console: wrong, server: .timer, clients: 4, finished: true).outcome == .silentFailure)
        let crashed = Self.timer("""
            timertest client 1 pid 6: crashed
            timertest FAIL clients=4 ok=3 fail=0 lost=0 error=0 crashed=1 armed=1 restarts=1

            """)
        #expect(ConsoleAnalysis.judge(console: crashed, server: .timer, clients: 4, finished: true).outcome
                == .silentFailure)
    }

    @Test func diskDamageIsSilentFailureEvenWhenClientsPassed() {
        let console = Self.banner + """
            [kernel] injected wild-write into fs
            stream 0 ok rounds=3 bytes=1 losses=0
            fstest stress ok clients=4 ok=4 failed=0 lost=0 error=0 crashed=0 armed=1 restarts fs=0 storage=0

            """
        let damage = "e2fsck -fn exited 4:\nPass 5: Checking group summary information\nFree blocks count wrong (1, counted=2).\nFix? no"
        let verdict = ConsoleAnalysis.judge(console: console, server: .fs, clients: 4, finished: true, diskDamage: damage)
        #expect(verdict.outcome == .silentFailure)
        #expect(verdict.evidence.contains("Fix? no"))
        let clean = ConsoleAnalysis.judge(console: console, server: .fs, clients: 4, finished: true)
        #expect(clean.outcome == .masked)
    }

    @Test func fstestRestartsAreCountedForTheTargetServer() {
        let console = Self.banner + """
            [kernel] injected illegal into storage
            [kernel] restarted storage (pid 9, gen 1, restart 1)
            fstest stress ok clients=4 ok=4 failed=0 lost=0 error=0 crashed=0 armed=1 restarts fs=0 storage=1

            """
        let verdict = ConsoleAnalysis.judge(console: console, server: .storage, clients: 4, finished: true)
        #expect(verdict.outcome == .recovered && verdict.restarts == 1)
        let errorConsole = Self.banner + """
            [kernel] injected reg-flip into fs
            stream 3 ERROR round 1: badHandle
            fstest stress FAIL clients=4 ok=3 failed=0 lost=0 error=1 crashed=0 armed=1 restarts fs=1 storage=0

            """
        let told = ConsoleAnalysis.judge(console: errorConsole, server: .fs, clients: 4, finished: true)
        #expect(told.outcome == .clientTold && told.clientsFailed == 1)
        #expect(told.evidence.contains("stream 3 ERROR round 1: badHandle"))
    }

    /// Real consoles of the net workload (SSR and baseline kernels, the same fault).
    @Test func netRestartsAreCountedAndTheBaselinesLostConnectionsAreClientTold() {
        let recovered = Self.banner + """
            [kernel] injected illegal into net
            [kernel] net (pid 7, gen 0) stopped: illegal instruction at 0xffffffff, pc 0x4000a7c4 in specialized SSRFormat.commit(state:requestID:reply:) + 0x80
            [kernel] restarted net (pid 7, gen 1, restart 1)
            stream 0 ok rounds=3 bytes=294912 slowest=126
            nettest stress ok clients=4 ok=4 failed=0 error=0 crashed=0 armed=1 restarts net=1

            """
        let verdict = ConsoleAnalysis.judge(console: recovered, server: .net, clients: 4, finished: true)
        #expect(verdict.outcome == .recovered && verdict.restarts == 1 && verdict.clientsFailed == 0)
        let lost = Self.banner + """
            [kernel] injected illegal into net
            [kernel] net (pid 7, gen 0) stopped: illegal instruction at 0xffffffff, pc 0x4000946a in specialized SSRServer.run() + 0xec
            [kernel] restarted net (pid 7, gen 1, restart 1)
            fetch: network error: bad socket
            fetch: 98304 bytes to /copy-1
            stream 0 ERROR round 0: fetch exited with status 1
            nettest stress FAIL clients=4 ok=0 failed=0 error=4 crashed=0 armed=1 restarts net=1

            """
        let told = ConsoleAnalysis.judge(console: lost, server: .net, clients: 4, finished: true)
        #expect(told.outcome == .clientTold && told.clientsFailed == 4)
        #expect(told.evidence.contains("fetch: network error: bad socket"))
        #expect(!told.evidence.contains("bytes to /copy-1"))
        let wrong = Self.banner + """
            [kernel] injected reg-flip into net
            stream 2 FAIL round 1: byte 4096 of the copy differs
            nettest stress FAIL clients=4 ok=3 failed=1 error=0 crashed=0 armed=1 restarts net=0

            """
        #expect(ConsoleAnalysis.judge(console: wrong, server: .net, clients: 4, finished: true).outcome
                == .silentFailure)
    }

    @Test func unfinishedRunIsAHangAndCountsClientsThatDidNotFinish() {
        let console = Self.timer("""
            [kernel] injected loop into timer
            [kernel] restarted timer (pid 3, gen 1, restart 1)
            timerclient ok waits=30 maxskew=2059 meanskew=320 errors=0

            """)
        let verdict = ConsoleAnalysis.judge(console: console, server: .timer, clients: 4, finished: false)
        #expect(verdict.outcome == .hang)
        #expect(verdict.clientsFailed == 3)
        #expect(verdict.restarts == 1)
    }

    @Test func panicNoBootOrNoVerdictIsSystemFailure() {
        let panic = Self.timer("[kernel] injected reg-flip into timer\n\n[kernel] PANIC: trap in the kernel: scause 0xd\n")
        #expect(ConsoleAnalysis.judge(console: panic, server: .timer, clients: 4, finished: true).outcome == .systemFailure)
        #expect(ConsoleAnalysis.judge(console: panic, server: .timer, clients: 4, finished: false).outcome
                == .systemFailure)
        #expect(ConsoleAnalysis.judge(console: "OpenSBI v1.2\n", server: .timer, clients: 4, finished: true).outcome
                == .systemFailure)
        let silent = Self.timer("[kernel] injected reg-flip into timer\n")
        #expect(ConsoleAnalysis.judge(console: silent, server: .timer, clients: 4, finished: true).outcome
                == .systemFailure)
        // A verdict that accounts for fewer clients than were to start.
        let short = Self.timer("timertest: cannot start timerclient: noMemory\n"
            + "timertest FAIL clients=4 ok=2 fail=0 lost=0 error=0 crashed=0 armed=1 restarts=0\n")
        #expect(ConsoleAnalysis.judge(console: short, server: .timer, clients: 4, finished: true).outcome
                == .systemFailure)
    }

    @Test func injectionIntoAnotherServerDoesNotCountAsStruck() {
        #expect(ConsoleAnalysis.injectionTarget(in: "[kernel] injected reg-flip into fs") == "fs")
        #expect(ConsoleAnalysis.injectionTarget(in: "x [kernel] injected loop into storage, at pc 0x4000") == "storage")
        #expect(ConsoleAnalysis.injectionTarget(in: "[kernel] restarted fs (pid 9)") == nil)
        let console = Self.banner + "[kernel] injected reg-flip into storage\n"
            + "fstest stress ok clients=4 ok=4 failed=0 lost=0 error=0 crashed=0 armed=1 restarts fs=0 storage=0\n"
        #expect(!ConsoleAnalysis.judge(console: console, server: .fs, clients: 4, finished: true).struck)
    }

    @Test func tailStartsAtTheBannerAndKeepsTheLastLines() {
        let console = Self.timer((1...50).map { "line \($0)" }.joined(separator: "\n") + "\n")
        let tail = ConsoleAnalysis.tail(of: console, lines: 3)
        #expect(tail == "line 49\nline 50\n")
        #expect(!ConsoleAnalysis.tail(of: console, lines: 1_000).contains("OpenSBI"))
    }

    /// A soak's bad boot keeps the line that told of the failure even when a hundred
    /// injection lines came after it.
    @Test func evidenceKeepsTheFailureLinesBeforeTheTail() {
        let console = "Curio: a kernel\nstream 3 FAIL round 9: byte 17 differs after the seek\n"
            + (0..<100).map { _ in "[kernel] injected wild-write into fs" }.joined(separator: "\n")
            + "\nfstest stress FAIL clients=4 ok=3 failed=1"
        let kept = ConsoleAnalysis.evidence(of: console, lines: 10)
        #expect(kept.hasPrefix("stream 3 FAIL round 9"))
        #expect(kept.hasSuffix("fstest stress FAIL clients=4 ok=3 failed=1"))
        #expect(kept.split(separator: "\n").count == 12)
        #expect(ConsoleAnalysis.evidence(of: "Curio: a\nb", lines: 10) == "Curio: a\nb")
    }
}

@Suite struct ProportionTests {
    @Test func wilsonMatchesPublishedValues() throws {
        // Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263 -> 0.2553-0.3662,
        // 15/148 -> 0.0624-0.1605, 0/20 -> 0-0.1611.
        for (successes, trials, low, high) in [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                                               (0, 20, 0.0, 0.1611)] {
            let interval = try #require(Proportion(successes, of: trials).wilson())
            #expect(abs(interval.low - low) < 0.00006, "\(successes)/\(trials) low")
            #expect(abs(interval.high - high) < 0.00006, "\(successes)/\(trials) high")
        }
    }

    @Test func wilsonStaysInsideTheUnitIntervalAndIsNeverEmpty() throws {
        let all = try #require(Proportion(50, of: 50).wilson())
        #expect(all.high == 1 && abs(all.low - 0.9287) < 0.0001)
        for trials in [1, 2, 7, 40, 500] {
            for successes in 0...trials {
                let interval = try #require(Proportion(successes, of: trials).wilson())
                let share = Double(successes) / Double(trials)
                #expect(interval.low >= 0 && interval.high <= 1 && interval.low < interval.high)
                #expect(interval.low <= share + 1e-12 && share <= interval.high + 1e-12)
            }
        }
        #expect(Proportion(0, of: 0).wilson() == nil)
        #expect(Proportion(0, of: 0).summary == "—")
        #expect(Proportion(68, of: 70).summary == "97.1 % [90.2, 99.2] (68/70)")
    }
}

func record(_ id: String = "timer/reg-flip/execution/0/ssr", seed: UInt64 = 12345, build: Build = .ssr,
            fault: String = "reg-flip", trigger: Trigger = .execution, outcome: Outcome = .recovered,
            clientsFailed: Int = 0, campaignSeed: UInt64 = 77, server: Server = .timer) -> RunRecord {
    RunRecord(runID: id, campaignSeed: campaignSeed, seed: seed, server: server, build: build, fault: fault,
              trigger: trigger, moment: "exec 25000", outcome: outcome, struck: outcome != .notActivated,
              restarts: outcome == .recovered ? 1 : 0, clients: 4, clientsFailed: clientsFailed, seconds: 1.25,
              command: "run timertest 4 100000 30 \(fault) exec 25000 seed=\(seed)",
              evidence: "[kernel] injected \(fault) into timer | timertest ok clients=4, ok=4",
              consoleTail: outcome.isBad ? "line one\n\"quoted\", with a comma\nline three" : "")
}

@Suite struct RecordFileTests {
    func scratchFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("campaign-test-\(UUID().uuidString).csv").path
    }

    @Test func csvQuotingRoundTrips() {
        let fields = ["plain", "with, comma", "with \"quotes\"", "two\nlines", "", "crlf\r\nend"]
        let (records, complete) = CSV.parse(CSV.line(fields) + CSV.line(["a", "b"]))
        #expect(records == [fields, ["a", "b"]])
        #expect(complete == (CSV.line(fields) + CSV.line(["a", "b"])).utf8.count)
    }

    @Test func recordsRoundTripThroughTheFile() throws {
        let path = scratchFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = record()
        let second = record("timer/loop/time/0/baseline", seed: 9, build: .baseline, fault: "loop", trigger: .time,
                            outcome: .hang, clientsFailed: 4)
        do {
            let file = try RecordFile(path: path)
            try file.append(first)
            try file.append(second)
        }
        let reopened = try RecordFile(path: path)
        #expect(reopened.records == [first, second])
        #expect(reopened.contains(runID: second.runID, campaignSeed: 77))
        #expect(!reopened.contains(runID: second.runID, campaignSeed: 78))
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix(RunRecord.columns.joined(separator: ",") + "\n"))
    }

    @Test func aTornLastRecordIsCutAwayBeforeAppending() throws {
        let path = scratchFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let kept = record()
        try (CSV.line(RunRecord.columns) + CSV.line(kept.fields)).write(toFile: path, atomically: true, encoding: .utf8)
        // Killed in the middle of a record, inside a quoted console tail.
        let torn = CSV.line(record("timer/x/time/1/ssr", outcome: .hang).fields)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(torn.utf8.prefix(torn.utf8.count - 30)))
        try handle.close()

        let file = try RecordFile(path: path)
        #expect(file.records == [kept])
        let next = record("timer/loop/request/0/ssr", fault: "loop")
        try file.append(next)
        #expect(try RecordFile(path: path).records == [kept, next])
    }

    @Test func aCampaignResumesWhereItStopped() throws {
        let path = scratchFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let plan = CampaignPlan.runs(workload: .standard(for: .timer), faults: ["illegal", "loop"], triggers: [.time],
                                     runsPerCell: 2, builds: [.ssr], campaignSeed: 5)
        let file = try RecordFile(path: path)
        for spec in plan.prefix(3) {
            try file.append(record(spec.id, seed: spec.seed, fault: spec.fault, trigger: spec.trigger, campaignSeed: 5))
        }
        let machine = Machine(kernels: [.ssr: "/nonexistent"], scratch: FileManager.default.temporaryDirectory)
        let resumed = Campaign(plan: plan, campaignSeed: 5, machine: machine, jobs: 2, file: try RecordFile(path: path))
        #expect(resumed.pending.map(\.id) == [plan[3].id])
        let otherSeed = Campaign(plan: plan, campaignSeed: 6, machine: machine, jobs: 2, file: try RecordFile(path: path))
        #expect(otherSeed.pending.count == plan.count)
    }

    @Test func aForeignFileIsRefused() throws {
        let path = scratchFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "fault,injected,recovered\nloop,10,10\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: CampaignError.self) { try RecordFile(path: path) }
        var fields = record().fields
        fields[8] = "exploded"
        try (CSV.line(RunRecord.columns) + CSV.line(fields)).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: CampaignError.malformedRecord(path: path, record: 1, reason: "outcome \"exploded\"")) {
            try RecordFile(path: path)
        }
    }
}

@Suite struct ReportTests {
    static let records: [RunRecord] = {
        var records: [RunRecord] = []
        for index in 0..<10 {
            records.append(record("timer/reg-flip/execution/\(index)/ssr", seed: UInt64(index + 1),
                                  outcome: index < 9 ? .recovered : .clientTold, clientsFailed: index < 9 ? 0 : 1))
            records.append(record("timer/reg-flip/execution/\(index)/baseline", seed: UInt64(index + 1), build: .baseline,
                                  outcome: index < 2 ? .recovered : .clientTold, clientsFailed: index < 2 ? 0 : 4))
        }
        records.append(record("timer/loop/request/0/ssr", fault: "loop", trigger: .request, outcome: .notActivated))
        records.append(record("timer/loop/request/1/ssr", seed: 4242, fault: "loop", trigger: .request,
                              outcome: .silentFailure, clientsFailed: 1))
        return records
    }()

    @Test func tallyCountsManifestedAndClients() {
        let tally = Tally(Self.records.filter { $0.fault == "reg-flip" && $0.build == .ssr })
        #expect(tally.runs == 10 && tally.manifested == 10 && tally[.recovered] == 9)
        #expect(tally.recoveryRate == Proportion(9, of: 10))
        #expect(tally.clientFailure == Proportion(1, of: 40))
        let loop = Tally(Self.records.filter { $0.fault == "loop" })
        #expect(loop.manifested == 1 && loop.recoveryRate == Proportion(0, of: 1))
    }

    @Test func markdownPutsTheBuildsSideBySideAndListsTheBadRuns() {
        let text = Report.markdown(Self.records) { "make campaign-replay RUN=\($0.runID)" }
        #expect(text.contains("## timer"))
        let rows = text.split(separator: "\n").map(String.init)
        let ssr = rows.first { $0.hasPrefix("| reg-flip | SSR | 10 |") }
        let baseline = rows.first { $0.hasPrefix("|  | baseline | 10 |") }
        #expect(ssr?.contains("90.0 % [59.6, 98.2] (9/10)") == true)
        #expect(ssr?.contains("2.5 % [0.4, 12.9] (1/40)") == true)
        #expect(baseline?.contains("20.0 % [5.7, 51.0] (2/10)") == true)
        #expect(baseline?.contains("(32/40)") == true)
        #expect(rows.contains { $0.hasPrefix("| execution | SSR | 10 |") })
        #expect(rows.contains { $0.hasPrefix("| request | SSR | 2 |") })
        #expect(text.contains("`timer/loop/request/1/ssr` seed 4242"))
        #expect(text.contains("make campaign-replay RUN=timer/loop/request/1/ssr"))
        // Every table row has as many cells as its header.
        let header = rows.first { $0.hasPrefix("| fault |") }
        let width = header.map { $0.split(separator: "|", omittingEmptySubsequences: false).count }
        for row in rows where row.hasPrefix("| reg-flip") || row.hasPrefix("|  |") {
            #expect(row.split(separator: "|", omittingEmptySubsequences: false).count == width)
        }
    }

    @Test func markdownSaysSoWhenNothingBadHappened() {
        let text = Report.markdown(Self.records.filter { !$0.outcome.isBad })
        #expect(text.contains("None: no silent failure, hang or system failure."))
    }

    @Test func svgIsWellFormedWithABarPerBuildAndFault() throws {
        let text = Report.svg(Self.records)
        let document = try XMLDocument(data: Data(text.utf8))
        let root = try #require(document.rootElement())
        #expect(root.name == "svg")
        let bars = try root.nodes(forXPath: "//*[local-name()='rect'][*[local-name()='title']]")
        // Two panels (recovery rate, clients failed); reg-flip has both builds, loop only SSR.
        #expect(bars.count == 2 * 3)
        let titles = bars.compactMap { ($0 as? XMLElement)?.elements(forName: "title").first?.stringValue }
        #expect(titles.contains("reg-flip, SSR: 90.0 % [59.6, 98.2] (9/10)"))
        #expect(titles.contains("reg-flip, baseline: 80.0 % [65.2, 89.5] (32/40)"))
        #expect(text.contains("baseline (state in the server, lost on restart)"))
    }
}
