// curio-campaign: the fault-injection campaign, the instrument behind the paper's claim.
//
// `make campaign SERVER=... FAULTS=... RUNS=... JOBS=...` runs it. For one server it
// boots Curio once per run, each run one fault of one kind on one trigger with its
// own seed, while the server's clients check every answer they get; it judges each
// run from the console (CampaignKit's Outcome.swift has the vocabulary), appends a
// record to a CSV, and draws the report: a Markdown table and an SVG chart comparing
// the SSR build with the baseline, where the same faults at the same moments hit
// servers that keep their clients' state themselves. The plan, the seeds, the
// judgement and the report are in CampaignKit, where they are unit-tested; this file
// is the command line around them.

import ArgumentParser
import CampaignKit
import Foundation

extension Server: ExpressibleByArgument {}

/// `--faults reg-flip,loop`: fault kinds by the kernel's names.
struct FaultList: ExpressibleByArgument {
    var names: [String]

    init?(argument: String) {
        let names = argument.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty, names.allSatisfy(Faults.all.contains) else { return nil }
        self.names = names
    }

    init(names: [String]) { self.names = names }
    static var allValueStrings: [String] { Faults.all }
    var defaultValueDescription: String { names == Faults.all ? "all" : names.joined(separator: ",") }
}

/// `--triggers request,execution`.
struct TriggerList: ExpressibleByArgument {
    var triggers: [Trigger]

    init?(argument: String) {
        let triggers = argument.split(separator: ",").map { Trigger(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
        guard !triggers.isEmpty, !triggers.contains(nil) else { return nil }
        self.triggers = triggers.compactMap(\.self)
    }

    init(triggers: [Trigger]) { self.triggers = triggers }
    static var allValueStrings: [String] { Trigger.allCases.map(\.rawValue) }
    var defaultValueDescription: String { triggers.map(\.rawValue).joined(separator: ",") }
}

@main
struct CurioCampaign: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curio-campaign",
        abstract: "Inject faults into a Curio server, one per boot, and measure what its clients see.",
        discussion: """
            Every run boots Curio under QEMU (-icount) with the server's workload — timer: \
            timertest's 4 timer clients; fs and storage: fstest's 4 streaming clients on a fresh \
            32 MiB ext2 image, checked with e2fsck -fn afterwards; net: nettest's httpd and 4 clients \
            downloading a file from it with fetch over the guest's own address, every copy checked \
            byte for byte — and arms one fault with its own seed, from which the kernel draws the \
            moment and the target. Runs = faults x triggers x \
            --runs, once per build (SSR, and the baseline when --baseline-kernel is given; the \
            baseline run of a place has the same seed and fault as the SSR run).

            Outcomes: not activated (the fault never struck), masked (it struck, no restart, every \
            client correct), recovered transparently (a restart, every client correct), client told \
            (a client got an error: which client and which error are in the evidence), silent \
            failure (a wrong answer, a crashed client, or a damaged image), hang (no end within \
            --timeout), system failure (panic, no boot, or no verdict from the workload). Recovery \
            rate = recovered transparently / manifested, with Wilson 95 % intervals; clients \
            failed = clients that did not pass / clients started.

            With --csv the campaign resumes: runs already in the file (same campaign seed) are \
            skipped, so an interrupted campaign continues when the same command is given again. \
            --runs 0 only redraws the report from the file.

            `curio-campaign soak` is the other mode: one boot per fault kind, injecting \
            continuously (see `curio-campaign soak --help`).
            """)

    /// `curio-campaign soak ...` is the soak (SoakCommand.swift); anything else is the
    /// campaign. Dispatched here rather than as a subcommand, whose options of the same
    /// names (--kernel, --csv, ...) the parent command would take for its own.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == SoakCommand.word {
            SoakCommand.main(Array(arguments.dropFirst()))
        } else {
            main(arguments)
        }
    }

    @Option(help: "The server the faults go into.")
    var server: Server = .timer

    @Option(help: ArgumentHelp("""
        Fault kinds, comma-separated; a code fault with +persistent is also applied to every \
        later load of the server, so the restarted server has the same bug.
        """, valueName: "kinds"))
    var faults = FaultList(names: Faults.all)

    @Option(help: ArgumentHelp("""
        When faults strike, comma-separated, each measured and reported apart: request (as the Nth \
        request is delivered), time (a random clock tick, wherever the server is), execution (a \
        random tick of the server's own execution: a random instruction while it runs).
        """, valueName: "triggers"))
    var triggers = TriggerList(triggers: Trigger.allCases)

    @Option(help: "Runs per fault kind and trigger (and build).")
    var runs = 10

    @Option(help: "QEMUs run at once; the default is one per core.")
    var jobs = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: """
        The campaign's seed; each run's seed is derived from it and stored in the CSV. Default: \
        the seed of the campaign the CSV already holds for this server, else a fresh one (printed).
        """)
    var seed: UInt64?

    @Option(help: "The kernel with server state regions.")
    var kernel = "build/kernel.elf"

    @Option(help: """
        The baseline kernel (make kernel-baseline: mkimage --without-ssr fs,storage,timer,net \
        --restart-without-ssr, clients' state in the servers, lost on restart). Without it only \
        the SSR build runs.
        """)
    var baselineKernel: String?

    @Option(help: "Append one record per run to this CSV, and resume from it.")
    var csv: String?

    @Option(help: "Write the outcome tables (every record of --csv, else of this campaign) here.")
    var markdown: String?

    @Option(help: "Write the chart (recovery rate and clients failed, SSR vs baseline) here.")
    var svg: String?

    @Option(help: "Seconds before a run counts as a hang (default: timer 15, fs, storage and net 60).")
    var timeout: Double?

    @Option(help: "request trigger: strike at request 1...N (default: timer 120, fs 400, storage 3000, net 1000).")
    var requestWindow: UInt64?

    @Option(help: """
        time trigger: strike within T clock ticks of 100 ns (default: timer 2.7M, fs and storage 4.5M, \
        net 3.5M).
        """)
    var timeWindow: UInt64?

    @Option(help: """
        execution trigger: strike within T ticks of the server's own execution, 100 instructions \
        each (default: timer 25000, fs 600000, storage 8000000, net 800000).
        """)
    var execWindow: UInt64?

    @Option(help: ArgumentHelp("Boot one run of --csv again (by its run id) and print its console.",
                               valueName: "run-id"))
    var replay: String?

    mutating func validate() throws {
        guard runs >= 0 else { throw ValidationError("--runs must be 0 or more") }
        guard jobs >= 1 else { throw ValidationError("--jobs must be at least 1") }
        if replay != nil && csv == nil { throw ValidationError("--replay needs the --csv that holds the run") }
        if let seed, seed == 0 || seed >= Seeds.limit { throw ValidationError("--seed must be in 1..<2^53") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
        for window in [requestWindow, timeWindow, execWindow] {
            if window == 0 { throw ValidationError("a window must be at least 1") }
        }
    }

    func run() throws {
        let machine = try preparedMachine(kernel: kernel, baselineKernel: baselineKernel, timeout: timeout,
                                          scratchName: "curio-campaign", csv: csv)
        defer { try? FileManager.default.removeItem(at: machine.scratch) }

        let file = try csv.map { path throws(CampaignError) in try RecordFile(path: path) }
        if let replay, let file {
            try self.replay(replay, from: file, machine: machine)
            return
        }

        var workload = Workload.standard(for: server)
        if let requestWindow { workload.requestWindow = requestWindow }
        if let timeWindow { workload.timeWindow = timeWindow }
        if let execWindow { workload.executionWindow = execWindow }
        let campaignSeed = seed ?? file?.records.last(where: { $0.server == server })?.campaignSeed ?? Seeds.fresh()
        let builds = Build.allCases.filter { machine.kernels[$0] != nil }
        let plan = CampaignPlan.runs(workload: workload, faults: faults.names, triggers: triggers.triggers,
                                     runsPerCell: runs, builds: builds, campaignSeed: campaignSeed)
        let campaign = Campaign(plan: plan, campaignSeed: campaignSeed, machine: machine, jobs: jobs, file: file)
        let pending = campaign.pending.count
        print("Campaign against \(server.rawValue), seed \(campaignSeed): \(faults.names.count) fault kinds x "
              + "\(triggers.triggers.count) triggers x \(runs) runs x \(builds.count) builds = \(plan.count) runs"
              + (pending < plan.count ? ", \(plan.count - pending) already in \(csv ?? "")" : "")
              + "; \(jobs) at a time")
        print("Workload: \(workload.description)")

        let interactive = isatty(STDERR_FILENO) != 0
        let records = try campaign.run { progress in
            let line = progress.line
            FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + line : line + "\n").utf8))
        }
        if interactive && pending > 0 { FileHandle.standardError.write(Data("\n".utf8)) }

        let reported = file?.records ?? records
        let replayCommand = { (record: RunRecord) in
            guard let csv else { return "" }
            return "make campaign-replay RUN=\(record.runID) CSV=\(csv)"
        }
        print("")
        print(Report.markdown(reported.filter { $0.server == server }, replay: replayCommand))
        if let markdown { try writeReport(Report.markdown(reported, replay: replayCommand), to: markdown) }
        if let svg { try writeReport(Report.svg(reported), to: svg) }
    }

    /// Boots one record's run again and compares the outcome.
    func replay(_ id: String, from file: RecordFile, machine: Machine) throws {
        guard let record = file.records.last(where: { $0.runID == id && (seed == nil || $0.campaignSeed == seed) })
        else { throw CampaignError.noSuchRun(id: id, path: file.path) }
        let workload = Workload.standard(for: record.server)
        print("Replaying \(record.runID) (seed \(record.seed), \(record.moment)); by hand:")
        print("  " + machine.manualCommand(for: record))
        let run = try machine.boot(command: record.command, build: record.build, workload: workload)
        let verdict = ConsoleAnalysis.judge(console: run.console, server: record.server, clients: workload.clients,
                                            finished: run.finished, diskDamage: run.diskDamage)
        print(ConsoleAnalysis.tail(of: run.console, lines: 10_000))
        if let damage = run.diskDamage { print(damage) }
        print("recorded: \(record.outcome.rawValue); now: \(verdict.outcome.rawValue)"
              + (verdict.outcome == record.outcome ? "" : " (differs)"))
        print("evidence: \(verdict.evidence)")
    }
}

/// Writes a report and says where.
func writeReport(_ text: String, to path: String) throws {
    do {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    } catch {
        throw CampaignError.unwritable(path: path, reason: "\(error)")
    }
    print("wrote \(path)")
}

/// The machine of a campaign or a soak: its kernels, which must exist, a scratch
/// folder of this process's own, and ^C or a TERM stopping the QEMUs it starts.
func preparedMachine(kernel: String, baselineKernel: String?, timeout: Double?, scratchName: String,
                     csv: String?) throws -> Machine {
    let scratch = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(scratchName)-\(ProcessInfo.processInfo.processIdentifier)")
    var kernels: [Build: String] = [.ssr: absolutePath(kernel)]
    if let baselineKernel { kernels[.baseline] = absolutePath(baselineKernel) }
    for (build, path) in kernels where !FileManager.default.fileExists(atPath: path) {
        throw ValidationError("no \(build.rawValue) kernel at \(path) (make build; make kernel-baseline)")
    }
    stopOnInterrupt(scratch: scratch, csv: csv)
    return Machine(kernels: kernels, timeout: timeout, scratch: scratch)
}

func absolutePath(_ path: String) -> String {
    URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        .standardizedFileURL.path
}

/// Ctrl-C: stop the QEMUs this campaign (or soak) started, drop its scratch images,
/// and say how to go on. Every finished run is already in the CSV.
func stopOnInterrupt(scratch: URL, csv: String?) {
    let resume = csv.map { " (records so far are in \($0); the same command resumes)" } ?? ""
    for number in [SIGINT, SIGTERM] {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            Children.shared.terminateAll()
            try? FileManager.default.removeItem(at: scratch)
            FileHandle.standardError.write(Data("\ninterrupted\(resume)\n".utf8))
            Foundation.exit(130)
        }
        source.resume()
        Interrupts.sources.append(source)
    }
}

/// Keeps the signal sources alive for the life of the process.
enum Interrupts {
    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []
}
