// curio-campaign soak: the fault-injection soak, the mode MINIX 3's DSN'09 study used.
//
// `make soak SERVER=... FAULTS=... BOOTS=...|HOURS=... JOBS=...` runs it. Each boot
// injects one fault kind into one server continuously — up to --injections faults,
// one armed every --every of guest time, each striking at a random instruction of the
// server's own execution — while the server's clients check every answer; then the
// kernel audits itself. The boot's counts (CampaignKit's SoakAnalysis.swift says what
// each means) go to a CSV as it ends, and the report sums them per fault kind, with the
// baseline beside the SSR build. This file is the command line around CampaignKit.

import ArgumentParser
import CampaignKit
import Foundation

/// `--every 1100ms`: a duration on the guest's clock, in ticks (10 MHz), ms or s.
struct TickCount: ExpressibleByArgument {
    var ticks: UInt64

    init?(argument: String) {
        guard let ticks = Ticks.parse(argument) else { return nil }
        self.ticks = ticks
    }

    init(ticks: UInt64) { self.ticks = ticks }
    var defaultValueDescription: String { Ticks.describe(ticks).replacingOccurrences(of: " ", with: "") }
}

struct SoakCommand: ParsableCommand {
    /// The word after `curio-campaign` that selects the soak.
    static let word = "soak"

    static let configuration = CommandConfiguration(
        commandName: "curio-campaign \(word)",
        abstract: "Inject faults into one Curio server continuously, one boot per fault kind, and count what they did.",
        discussion: """
            Every boot runs the server's workload under QEMU (-icount) — timer: timertest's 4 \
            timer clients; fs and storage: fstest stress's 4 streaming clients on a fresh 32 MiB \
            ext2 image, checked with e2fsck -fn afterwards; net: nettest stress's httpd and 4 \
            clients downloading a file from it with fetch, every copy checked byte for byte — which \
            arms up to --injections faults of one kind, one every --every of guest time, each striking \
            at a random instruction within --window of the server's own execution; then the shell runs \
            the kernel's audit. An injection armed before the previous one struck replaces it: \
            "struck" counts the kernel's "[kernel] injected" reports, "armed" the workload's count.

            Per boot: struck, the server's stops, restarts and give-ups; per struck fault, whether it \
            manifested (the server stopped, or a client reported an effect before the next fault \
            struck), was recovered transparently (a restart, no client report), or was client-visible; \
            the clients that failed and how; hang (no power-off by the deadline, or for the timer a \
            console silent for a minute), panic, audit, and \
            e2fsck's verdict. The report sums them per fault kind, SSR beside the baseline, and lists \
            every boot that hung, panicked, gave the server up, failed the audit, gave a client a wrong \
            answer or damaged the image, with the command that boots it again.

            Boots run --boots rounds (a round: every fault kind once on every build), or until --hours \
            have passed, whichever comes first; with --csv an interrupted soak resumes (boots already \
            in the file, same soak seed, are skipped — give a new --csv or --seed when changing \
            --injections, --every or --window). --boots 0 only redraws the report from the file.
            """)

    @Option(help: "The server the faults go into.")
    var server: Server = .timer

    @Option(help: ArgumentHelp("""
        Fault kinds, comma-separated, one boot each per round. A code fault with +persistent is also \
        applied to every later load of the server: in a soak these accumulate.
        """, valueName: "kinds"))
    var faults = FaultList(names: Faults.kinds)

    @Option(help: "Injections armed per boot: the budget of one boot.")
    var injections = 100

    @Option(help: ArgumentHelp("""
        Guest time between two injections being armed: clock ticks (10 MHz), or with ms or s. \
        Restarts less than 1 s apart between which the server answered nobody are the kernel's \
        "quick succession", which backs the server off and gives it up after 8; a server that \
        serves between faults may be struck as often as every 100 ms (give a --window short \
        enough for each to strike before the next).
        """, valueName: "duration"))
    var every = TickCount(ticks: SoakWorkload.defaultEvery)

    @Option(help: ArgumentHelp("""
        Each injection strikes at a random instruction within this much of the server's own \
        execution after it is armed (default: timer 5ms, fs, storage and net 100ms).
        """, valueName: "duration"))
    var window: TickCount?

    @Option(help: "Rounds of boots: each fault kind once per build per round (default 1, or unbounded with --hours).")
    var boots: Int?

    @Option(help: "Start no boot after this many hours (a boot in flight still ends).")
    var hours: Double?

    @Option(help: "QEMUs run at once; the default is one per core.")
    var jobs = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: """
        The soak's seed; each boot's seed is derived from it and stored in the CSV. Default: the seed \
        of the soak the CSV already holds for this server, else a fresh one (printed).
        """)
    var seed: UInt64?

    @Option(help: "The kernel with server state regions.")
    var kernel = "build/kernel.elf"

    @Option(help: "The baseline kernel (make kernel-baseline). Without it only the SSR build runs.")
    var baselineKernel: String?

    @Option(help: "Append one record per boot to this CSV, and resume from it.")
    var csv: String?

    @Option(help: "Write the report (every record of --csv, else of this soak) here.")
    var markdown: String?

    @Option(help: """
        Seconds before a boot counts as a hang (default: 120 + 3 x the boot's guest seconds for the \
        timer, 120 + 6 x for fs, storage and net). A timer boot whose console is silent for a minute \
        counts as hung sooner.
        """)
    var timeout: Double?

    @Option(help: ArgumentHelp("Boot one boot of --csv again (by its boot id) and print its console.",
                               valueName: "boot-id"))
    var replay: String?

    mutating func validate() throws {
        guard injections >= 1 else { throw ValidationError("--injections must be at least 1") }
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
        if let boots, boots < 0 { throw ValidationError("--boots must be 0 or more") }
        if let hours, hours <= 0 { throw ValidationError("--hours must be positive") }
        if replay != nil && csv == nil { throw ValidationError("--replay needs the --csv that holds the boot") }
        if let seed, seed == 0 || seed >= Seeds.limit { throw ValidationError("--seed must be in 1..<2^53") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let machine = try preparedMachine(kernel: kernel, baselineKernel: baselineKernel, timeout: timeout,
                                          scratchName: "curio-soak", csv: csv)
        defer { try? FileManager.default.removeItem(at: machine.scratch) }

        let file = try csv.map { path throws(CampaignError) in try SoakFile(path: path) }
        if let replay, let file {
            try self.replay(replay, from: file, machine: machine)
            return
        }

        let workload = SoakWorkload(server: server, injections: injections, every: every.ticks, window: window?.ticks)
        let soakSeed = seed ?? file?.records.last(where: { $0.server == server })?.soakSeed ?? Seeds.fresh()
        let builds = Build.allCases.filter { machine.kernels[$0] != nil }
        let plan = SoakPlan(workload: workload, faults: faults.names, builds: builds, soakSeed: soakSeed)
        let rounds = boots ?? (hours == nil ? 1 : nil)
        let deadline = hours.map { Date().addingTimeInterval($0 * 3600) }
        let soak = Soak(plan: plan, bootsPerFault: rounds, deadline: deadline, machine: machine, jobs: jobs, file: file)
        let extent = [rounds.map { "\($0) round(s) of \(plan.round) boots" }, hours.map { "for up to \($0) h" }]
            .compactMap(\.self).joined(separator: ", ")
        print("Soak of \(server.rawValue), seed \(soakSeed): \(faults.names.count) fault kinds x \(builds.count) "
              + "builds, \(extent); \(jobs) at a time")
        print("Workload: \(workload.description)")

        let interactive = isatty(STDERR_FILENO) != 0
        var records: [SoakRecord] = []
        if rounds != 0 {
            records = try soak.run { progress in
                let line = progress.line
                FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + line : line + "\n").utf8))
            }
            if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        }

        let reported = file?.records ?? records
        let replayCommand = { (record: SoakRecord) in
            guard let csv else { return machine.manualCommand(for: record) }
            return "make soak-replay BOOT=\(record.bootID) SOAK_CSV=\(csv)"
        }
        print("")
        print(SoakReport.markdown(reported.filter { $0.server == server }, replay: replayCommand))
        if let markdown { try writeReport(SoakReport.markdown(reported, replay: replayCommand), to: markdown) }
    }

    /// Boots one record's boot again and compares the counts.
    func replay(_ id: String, from file: SoakFile, machine: Machine) throws {
        guard let record = file.records.last(where: { $0.bootID == id && (seed == nil || $0.soakSeed == seed) })
        else { throw CampaignError.noSuchRun(id: id, path: file.path) }
        let workload = SoakWorkload(server: record.server, injections: record.injections, every: record.every,
                                    window: record.window)
        print("Replaying \(record.bootID) (seed \(record.seed)); by hand:")
        print("  " + machine.manualCommand(for: record))
        let spec = SoakSpec(server: record.server, build: record.build, fault: record.fault, index: 0,
                            seed: record.seed, command: record.command)
        let (again, console) = try machine.perform(spec, workload: workload, soakSeed: record.soakSeed)
        print(ConsoleAnalysis.tail(of: console, lines: 100_000))
        print("recorded: " + Self.summary(of: record.counts))
        print("now:      " + Self.summary(of: again.counts))
    }

    static func summary(of counts: SoakCounts) -> String {
        let armed = counts.armed.map(String.init) ?? "?"
        var text = "struck \(counts.struck)/\(armed), stops \(counts.stops), restarts \(counts.restarts)"
        text += ", manifested \(counts.manifested), recovered \(counts.recovered)"
        text += ", client-visible \(counts.clientVisible), clients failed \(counts.clientsFailed)/\(counts.clients)"
        if !counts.problems.isEmpty { text += "; " + counts.problems.joined(separator: "; ") }
        return text
    }
}
