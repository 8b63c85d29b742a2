// The timer service end to end: clients check every expiration they get (sequence
// numbers consecutive, deadlines exactly a period apart, never early) while faults
// are injected into the server. Runs under -icount so a loaded host cannot make the
// watchdog or the skews flaky, and each run repeats exactly.

import Testing

@Suite(.serialized)
struct TimerServiceTests {
    static let icount = ["-icount", "shift=0,sleep=off"]

    /// The `timertest ...` summary line, parsed into its key=value fields.
    static func summary(_ run: MachineRun, sourceLocation: SourceLocation = #_sourceLocation) -> [String: Int]? {
        guard let line = run.console.split(separator: "\n").last(where: {
            $0.hasPrefix("timertest ok ") || $0.hasPrefix("timertest FAIL ")
        }) else {
            Issue.record("no timertest summary (a client or the server hung?):\n\(run.console)",
                         sourceLocation: sourceLocation)
            return nil
        }
        var fields: [String: Int] = [:]
        for field in line.split(separator: " ") {
            let parts = field.split(separator: "=")
            if parts.count == 2, let value = Int(parts[1]) { fields[String(parts[0])] = value }
        }
        return fields
    }

    @Test func periodicTimerDeliversEveryExpirationOnce() throws {
        let run = try CurioMachine.run(commands: "run timerclient 100000 20", extra: Self.icount)
        let line = try #require(run.console.split(separator: "\n").first { $0.hasPrefix("timerclient ") })
        #expect(line.hasPrefix("timerclient ok waits=20 "), "\(line)")
        #expect(line.hasSuffix(" errors=0"))
        #expect(run.exitStatus == 0)
    }

    @Test func clientsEndingFreeTheirStateRegions() throws {
        let run = try CurioMachine.run(commands: "mem; run timertest 4 50000 10; ssr; mem", extra: Self.icount)
        let memory = run.console.split(separator: "\n").filter { $0.hasPrefix("total ") }
        #expect(memory.count == 2 && memory[0] == memory[1], "memory did not come back:\n\(run.console)")
        #expect(run.console.contains("0 server state regions"))
        #expect(Self.summary(run)?["ok"] == 4)
    }

    /// Crashes and hangs are invisible to clients: the server restarts, rebuilds its
    /// queue from the SSRs, and the held waits are answered (late by the recovery).
    @Test(arguments: ["illegal next", "illegal after 5", "loop next", "illegal random 1000000"])
    func crashesAndHangsAreTransparent(fault: String) throws {
        let run = try CurioMachine.run(commands: "run timertest 4 100000 20 \(fault) faults=3", extra: Self.icount)
        let fields = try #require(Self.summary(run))
        #expect(fields["ok"] == 4, "\(run.console)")
        #expect((fields["restarts"] ?? 0) >= 1, "the fault did not strike:\n\(run.console)")
        #expect(run.exitStatus == 0)
    }

    /// Several timers per client — periodic, one-shot, cancelled and started again —
    /// come through crashes in the right order, each expiration once: no cancelled or
    /// fired one-shot timer comes back, no timer's expiration overtakes an earlier one.
    @Test func mixedTimersComeThroughCrashesInOrder() throws {
        let run = try CurioMachine.run(commands: "run timertest 4 100000 90 illegal next faults=4 every=700000 mixed",
                                       extra: Self.icount)
        let fields = try #require(Self.summary(run))
        #expect(fields["ok"] == 4, "\(run.console)")
        #expect((fields["restarts"] ?? 0) >= 4, "the faults did not strike:\n\(run.console)")
        #expect(run.console.split(separator: "\n").filter { $0.hasPrefix("timerclient ok waits=90 ") }.count == 4)
    }

    /// A live upgrade under load (paper §4): timer-next replaces timer while clients
    /// stream waits, reads their timers in timer's layout and migrates each region at
    /// its client's next request; every expiration arrives once, in order, on time.
    /// An upgrade back to timer then fails its recovery (timer cannot read the new
    /// layout of the regions already migrated, the shell's among them), and the
    /// kernel rolls back to timer-next. The clients notice neither.
    @Test func aLiveUpgradeAndARolledBackOneAreInvisibleToClients() throws {
        let run = try CurioMachine.run(commands: "run timerclient 100000 60 mixed &; run timerclient 100000 60 mixed &; "
                                           + "run timerclient 70000 80 &; sleep 100; upgrade timer timer-next; ps; "
                                           + "sleep 100; upgrade timer timer; ps; wait",
                                       extra: Self.icount)
        let console = run.console
        #expect(console.contains("upgrade: timer runs timer-next now"), "\(console)")
        #expect(console.contains("runs timer-next, recovered (upgraded from timer)"))
        #expect(console.contains("failed in recovery: rolled back to timer-next"))
        #expect(console.contains("upgrade: timer failed its recovery; timer runs timer-next again"))
        let lines = console.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("timerclient ok waits=60 ") && $0.hasSuffix(" errors=0") }.count == 2,
                "\(console)")
        #expect(lines.filter { $0.hasPrefix("timerclient ok waits=80 ") && $0.hasSuffix(" errors=0") }.count == 1)
        #expect(lines.filter { $0.contains(" timer ") && $0.hasSuffix("runs timer-next") }.count == 2,
                "ps shows the version running in timer's place")
        #expect(!console.contains("FAIL") && !console.contains("gave up") && !console.contains("PANIC"))
    }

    /// Crashes before and after an upgrade: the old version restarts and recovers as
    /// ever, and the version, restarted from its own image, recovers the regions it
    /// migrated and those it has not yet, side by side.
    @Test func crashesAroundAnUpgradeAreTransparent() throws {
        let run = try CurioMachine.run(commands: "run timertest 4 100000 80 illegal after 30 faults=4 every=500000 mixed &; "
                                           + "sleep 100; upgrade timer timer-next; wait",
                                       extra: Self.icount)
        let fields = try #require(Self.summary(run))
        #expect(fields["ok"] == 4 && fields["restarts"] == 4, "\(run.console)")
        #expect(run.console.contains("runs timer-next, recovered (upgraded from timer)"))
        let after = run.console.components(separatedBy: "upgrade: timer runs timer-next now").last ?? ""
        #expect(after.contains("[kernel] restarted timer"), "a fault struck the version too:\n\(run.console)")
    }

    /// The same upgrade on the baseline, whose timer keeps its clients' timers in its
    /// own memory (as MINIX 3's servers do): the new version starts with none, and the
    /// client waiting on its timer is told "no timers". The paper's point, side by side.
    @Test func withoutSSRsAnUpgradeLosesTheClientsTimers() throws {
        let run = try CurioMachine.run(commands: "run timerclient 100000 20 &; sleep 50; upgrade timer timer-next; wait",
                                       extra: Self.icount, kernel: CampaignSmokeTests.baselineKernel)
        #expect(run.console.contains("runs timer-next now; without SSRs its clients' state is gone"), "\(run.console)")
        #expect(run.console.contains("timerclient FAIL") && run.console.contains("no timers"))
    }

    /// Bit flips and wild pointers may be masked, crash the server, or be caught by its
    /// checks; a client may then be told (state lost, a rejected call) — but no client
    /// may ever get a wrong expiration, and nothing may hang.
    @Test(arguments: ["wild-write next", "reg-flip next", "stack-flip next", "data-flip next", "ssr-flip next",
                      "reg-flip random 300000"])
    func flipsNeverCorruptWhatClientsSee(fault: String) throws {
        let run = try CurioMachine.run(commands: "run timertest 6 100000 30 \(fault) faults=10", extra: Self.icount)
        let fields = try #require(Self.summary(run))
        #expect(fields["fail"] == 0, "a client saw a wrong expiration:\n\(run.console)")
        #expect(fields["crashed"] == 0)
        #expect(!run.console.contains("gave up on timer"))
        #expect(!run.console.contains("PANIC"))
    }

    @Test func shellListsRegionsAndArmsFaults() throws {
        let run = try CurioMachine.run(
            commands: "run timerclient 100000 200 &; run timerclient 100000 200 &; spawntest 100; ssr; "
                + "inject timer bogus; inject nosuch illegal; inject timer illegal; spawntest 500; ps",
            extra: Self.icount)
        #expect(run.console.contains("OWNER  SERVER          PAGES  STATE     LAST REQUEST"))
        #expect(run.console.contains("2 server state regions"), "\(run.console)")
        #expect(run.console.contains("inject: unknown fault 'bogus'"))
        #expect(run.console.contains("inject nosuch: not found"))
        #expect(run.console.contains("armed illegal in timer (next)"))
        #expect(run.console.contains("[kernel] restarted timer"), "\(run.console)")
    }

    /// The issue's acceptance run: 8 clients, 15 faults of every kind (105 in all),
    /// one every 1.1 s (further apart than the kernel's quick-succession window, so
    /// no restart is backed off). Every client must get every expiration exactly once
    /// and in order; none may see an error unless its own SSR was hit; and no
    /// expiration may be later than the worst recovery: a hang is caught by the
    /// watchdog after 50 ms, checked on the 10 ms clock tick, then the restart and
    /// recovery take about 2 ms (620,000 ticks at 10 MHz in all).
    @Test func eightClientsSurviveAHundredFaultsOfEveryKind() throws {
        var armed = 0
        var restarts = 0
        for kind in ["wild-write", "reg-flip", "data-flip", "stack-flip", "ssr-flip", "loop", "illegal"] {
            let run = try CurioMachine.run(
                commands: "run timertest 8 100000 1750 \(kind) next faults=15 every=11000000",
                timeout: .seconds(300), extra: Self.icount)
            let fields = try #require(Self.summary(run), "\(kind)")
            #expect(fields["fail"] == 0, "\(kind): a client saw a wrong, lost or doubled expiration")
            #expect(fields["error"] == 0 && fields["crashed"] == 0, "\(kind):\n\(run.console)")
            if kind == "ssr-flip" {
                #expect(fields["ok", default: 0] + fields["lost", default: 0] == 8, "\(kind)")
            } else {
                #expect(fields["ok"] == 8, "\(kind): a client with an intact SSR was affected:\n\(run.console)")
            }
            for line in run.console.split(separator: "\n") where line.hasPrefix("timerclient ok") {
                let skew = line.split(separator: " ").first { $0.hasPrefix("maxskew=") }
                    .flatMap { Int($0.dropFirst("maxskew=".count)) }
                #expect((skew ?? .max) <= 620_000, "\(kind): \(line)")
            }
            #expect(!run.console.contains("gave up on timer") && !run.console.contains("PANIC"))
            armed += fields["armed", default: 0]
            restarts += fields["restarts", default: 0]
        }
        #expect(armed >= 100)
        #expect(restarts >= 30, "too few faults were activated to mean anything: \(restarts)")
    }

    /// A bit flipped in one client's committed SSR (aimed into its state): the checker
    /// catches it at recovery, that client alone is told `serverStateLost`, and the
    /// other seven carry on.
    @Test func aFlipInOneSSRCostsOnlyThatClient() throws {
        let run = try CurioMachine.run(commands: "run timertest 8 100000 60 ssr-flip after 40 aim=64",
                                       extra: Self.icount)
        let fields = try #require(Self.summary(run))
        #expect(fields["lost"] == 1 && fields["ok"] == 7, "\(run.console)")
        #expect(fields["fail"] == 0 && fields["error"] == 0)
        let lost = run.console.split(separator: "\n").filter { $0.contains("server state lost") }
        #expect(lost.count == 1, "\(lost)")
    }
}
