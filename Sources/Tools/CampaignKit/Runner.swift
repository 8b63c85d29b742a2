// Running a campaign: QEMUs in parallel, a record per run, a progress line.
//
// Each run boots the kernel of its build with the run's command on the kernel command
// line, reads the console to the power-off (or kills QEMU at the deadline, or once the
// console has been silent too long if the caller asks: a hang), and for a workload
// with a disk first makes a fresh ext2 image and afterwards lets `e2fsck -fn` judge
// it: a fault can damage metadata no client reads back (a bitmap, another inode),
// which only the checker sees. It counts any problem it would fix, the superblock's
// free counts included, for which `e2fsck -n` still exits 0.
//
// Timer runs use `-icount shift=0,sleep=off`: the guest's clock counts its own
// instructions and skips idle time, so a run is the same on a busy host as on an idle
// one, and a record's seed replays it exactly. Disk runs use `sleep=on`: QEMU
// completes block requests in host time, and skipping idle time would leap the clock
// to the next deadline while the host is still writing (the storage server's reply
// limit would then restart it for nothing); so idle time passes at the host's pace,
// and a replay lands the fault at nearly, not exactly, the same point.
//
// J workers take runs from the plan in its order, skipping those the CSV already
// holds; each record is appended as soon as its run ends, so stopping the campaign at
// any moment loses at most the runs in flight.

import Foundation

/// The machine a run boots, and where its tools are.
public struct Machine: Sendable {
    public var kernels: [Build: String]
    public var qemu = "qemu-system-riscv64"
    /// Seconds before a run counts as a hang; nil: the workload's own.
    public var timeout: Double?
    /// Where fresh disk images are made (a folder of this campaign's own).
    public var scratch: URL

    public init(kernels: [Build: String], timeout: Double? = nil, scratch: URL) {
        self.kernels = kernels
        self.timeout = timeout
        self.scratch = scratch
    }

    /// QEMU's arguments for a run, without the disk.
    public func qemuArguments(kernel: String, command: String, usesDisk: Bool, usesNetwork: Bool = false) -> [String] {
        ["-machine", "virt", "-m", "128M", "-smp", "1", "-nographic", "-bios", "default",
         "-icount", usesDisk ? "shift=0,sleep=on" : "shift=0,sleep=off",
         "-global", "virtio-mmio.force-legacy=false", "-kernel", kernel, "-append", command]
            + (usesNetwork ? Self.networkArguments : [])
    }

    /// The network server's device in virtio-mmio slot 0, on user networking that
    /// reaches nothing outside the guest; no port is forwarded, so any number of runs
    /// share the host.
    static let networkArguments = ["-netdev", "user,id=n0,restrict=on",
                                   "-device", "virtio-net-device,netdev=n0,bus=virtio-mmio-bus.0"]

    /// The shell command that boots a record's run again by hand.
    public func manualCommand(for record: RunRecord) -> String {
        let kernel = kernels[record.build] ?? "KERNEL"
        let workload = Workload.standard(for: record.server)
        var words = [qemu] + qemuArguments(kernel: kernel, command: record.command, usesDisk: workload.usesDisk,
                                           usesNetwork: workload.usesNetwork)
        if workload.usesDisk { words += ["-drive", "file=DISK,format=raw,if=none,id=disk0", "-device", "virtio-blk-device,drive=disk0"] }
        return words.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
    }

    /// One boot: the console, whether QEMU ended by itself, and e2fsck's findings.
    /// `silence`: also stop QEMU when its console has been quiet this long (a hang).
    public func boot(command: String, build: Build, workload: Workload, silence: TimeInterval? = nil)
        throws(CampaignError) -> (console: String, finished: Bool, diskDamage: String?) {
        guard let kernel = kernels[build] else { throw .missingKernel(build: build) }
        var arguments = qemuArguments(kernel: kernel, command: command, usesDisk: workload.usesDisk,
                                      usesNetwork: workload.usesNetwork)
        let timeout = self.timeout ?? workload.timeout
        guard workload.usesDisk else {
            let run = execute(qemu, arguments, timeout: timeout, silence: silence)
            return (run.output, run.finished, nil)
        }
        let folder = scratch.appendingPathComponent(UUID().uuidString)
        defer { try? FileManager.default.removeItem(at: folder) }
        let image = folder.appendingPathComponent("disk.img")
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw .unwritable(path: folder.path, reason: "\(error)")
        }
        let made = execute(Self.tool("mke2fs"), ["-q", "-F", "-t", "ext2", "-b", "1024", image.path, "32M"],
                                timeout: 60)
        guard made.status == 0 else { throw .tool(name: "mke2fs", output: made.output) }
        arguments += ["-drive", "file=\(image.path),format=raw,if=none,id=disk0",
                      "-device", "virtio-blk-device,drive=disk0"]
        let run = execute(qemu, arguments, timeout: timeout, silence: silence)
        // A hung or failed system left the disk mid-update: only finished runs are judged.
        let found = run.finished ? damage(of: image) : nil
        return (run.output, run.finished, found)
    }

    /// Runs a spec and makes its record.
    public func perform(_ spec: RunSpec, campaignSeed: UInt64) throws(CampaignError) -> (RunRecord, console: String) {
        let workload = Workload.standard(for: spec.server)
        let started = Date()
        let run = try boot(command: spec.command, build: spec.build, workload: workload)
        let verdict = ConsoleAnalysis.judge(console: run.console, server: spec.server, clients: workload.clients,
                                            finished: run.finished, diskDamage: run.diskDamage)
        var tail = verdict.outcome.isBad ? ConsoleAnalysis.tail(of: run.console, lines: 40) : ""
        if verdict.outcome.isBad, let damage = run.diskDamage { tail += "\n" + damage }
        let record = RunRecord(runID: spec.id, campaignSeed: campaignSeed, seed: spec.seed, server: spec.server,
                               build: spec.build, fault: spec.fault, trigger: spec.trigger,
                               moment: spec.moment.description, outcome: verdict.outcome, struck: verdict.struck,
                               restarts: verdict.restarts, clients: verdict.clients,
                               clientsFailed: verdict.clientsFailed, seconds: Date().timeIntervalSince(started),
                               command: spec.command, evidence: verdict.evidence, consoleTail: tail)
        return (record, run.console)
    }

    /// nil if `e2fsck -fn` finds nothing to fix; otherwise what it found.
    func damage(of image: URL) -> String? {
        let check = execute(Self.tool("e2fsck"), ["-fn", image.path], timeout: 120)
        // Under -n every problem ends in a declined question ("Fix? no", "Clear? no").
        let problems = check.output.split(whereSeparator: \.isNewline).filter { $0.hasSuffix("? no") }
        guard check.status != 0 || !problems.isEmpty else { return nil }
        return "e2fsck -fn exited \(check.status):\n" + check.output
    }

    /// e2fsprogs live in /usr/sbin, which is not on every user's PATH.
    static func tool(_ name: String) -> String {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map { "\($0)/\(name)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) } ?? name
    }

    /// Runs a program to its end or until `timeout`, or until its output has not grown
    /// for `silence` seconds; `finished` is false if it was stopped.
    ///
    /// The output goes to a file, read once the program has ended, not to a pipe read
    /// until its end: with several runs started at once from several threads, a child
    /// can inherit another run's pipe, whose reader then waits for that stranger to
    /// end too — a campaign once stood still that way for good.
    func execute(_ executable: String, _ arguments: [String], timeout: TimeInterval, silence: TimeInterval? = nil)
        -> (output: String, status: Int32, finished: Bool) {
        let log = scratch.appendingPathComponent("output-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: log) }
        guard (try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)) != nil,
              FileManager.default.createFile(atPath: log.path, contents: nil),
              let output = try? FileHandle(forWritingTo: log)
        else { return ("cannot create \(log.path)", -1, true) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        do {
            try process.run()
        } catch {
            try? output.close()
            return ("cannot start \(executable): \(error)", -1, true)
        }
        try? output.close()
        Children.shared.started(process)
        defer { Children.shared.ended(process) }
        var finished = true
        if !waitForExit(exited, log: log, timeout: timeout, silence: silence) {
            finished = false
            process.terminate()
            if exited.wait(timeout: .now() + 10) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                exited.wait()
            }
        }
        let data = FileManager.default.contents(atPath: log.path) ?? Data()
        return (String(decoding: data, as: UTF8.self), process.terminationStatus, finished)
    }

    /// Whether the program exited within `timeout`, its output growing at least every
    /// `silence` seconds (looked at once a second).
    private func waitForExit(_ exited: DispatchSemaphore, log: URL, timeout: TimeInterval,
                             silence: TimeInterval?) -> Bool {
        guard let silence else { return exited.wait(timeout: .now() + timeout) == .success }
        let deadline = Date().addingTimeInterval(timeout)
        var size = -1
        var grew = Date()
        while Date() < deadline {
            if exited.wait(timeout: .now() + 1) == .success { return true }
            let now = (try? FileManager.default.attributesOfItem(atPath: log.path)[.size] as? Int) ?? size
            if now != size {
                size = now
                grew = Date()
            } else if Date().timeIntervalSince(grew) > silence {
                return false
            }
        }
        return exited.wait(timeout: .now()) == .success
    }
}

/// The QEMUs and tools running now, so an interrupted campaign can stop them.
public final class Children: @unchecked Sendable {
    public static let shared = Children()
    private let lock = NSLock()
    private var running: [ObjectIdentifier: Process] = [:]

    func started(_ process: Process) { lock.withLock { running[ObjectIdentifier(process)] = process } }
    func ended(_ process: Process) { _ = lock.withLock { running.removeValue(forKey: ObjectIdentifier(process)) } }

    /// Terminates every child still running (by its own process id).
    public func terminateAll() {
        for process in lock.withLock({ Array(running.values) }) where process.isRunning { process.terminate() }
    }
}

/// Where a campaign stands, for its progress line.
public struct Progress: Sendable {
    public var done: Int
    public var total: Int
    public var skipped: Int
    public var elapsed: TimeInterval
    public var last: RunRecord

    /// Seconds to go, from the pace of the runs done in this process.
    public var remaining: TimeInterval? {
        let fresh = done - skipped
        guard fresh > 0 else { return nil }
        return elapsed / Double(fresh) * Double(total - done)
    }

    public var line: String {
        let width = String(total).count
        let count = String(repeating: " ", count: max(0, width - String(done).count)) + String(done)
        let percent = String(format: "%5.1f", total > 0 ? Double(done) / Double(total) * 100 : 100)
        let eta = remaining.map(Self.duration) ?? "?"
        return "[\(count)/\(total)] \(percent) %  elapsed \(Self.duration(elapsed))  ETA \(eta)  "
            + "\(last.runID): \(last.outcome.rawValue)"
    }

    public static func duration(_ seconds: TimeInterval) -> String {
        let whole = Int(seconds.rounded())
        if whole >= 3600 { return String(format: "%dh%02dm", whole / 3600, whole / 60 % 60) }
        if whole >= 60 { return String(format: "%dm%02ds", whole / 60, whole % 60) }
        return "\(whole)s"
    }
}

/// A campaign's run loop.
public final class Campaign: @unchecked Sendable {
    public let plan: [RunSpec]
    public let campaignSeed: UInt64
    public let machine: Machine
    public let jobs: Int
    public let file: RecordFile?

    private let lock = NSLock()
    private var next = 0
    private var done = 0
    private var results: [RunRecord] = []
    private var failure: CampaignError?

    public init(plan: [RunSpec], campaignSeed: UInt64, machine: Machine, jobs: Int, file: RecordFile?) {
        self.plan = plan
        self.campaignSeed = campaignSeed
        self.machine = machine
        self.jobs = max(1, jobs)
        self.file = file
    }

    /// The runs the CSV does not hold yet.
    public var pending: [RunSpec] {
        guard let file else { return plan }
        return plan.filter { !file.contains(runID: $0.id, campaignSeed: campaignSeed) }
    }

    /// Runs every pending run, `jobs` at a time; calls `progress` after each (from a
    /// worker thread, one call at a time). Returns this process's records, in plan order.
    public func run(progress: @escaping @Sendable (Progress) -> Void) throws(CampaignError) -> [RunRecord] {
        let work = pending
        let skipped = plan.count - work.count
        let started = Date()
        done = skipped
        DispatchQueue.concurrentPerform(iterations: min(jobs, max(work.count, 1))) { _ in
            while let spec = take(from: work) {
                do throws(CampaignError) {
                    let (record, _) = try machine.perform(spec, campaignSeed: campaignSeed)
                    try file?.append(record)
                    lock.withLock {
                        results.append(record)
                        done += 1
                        progress(Progress(done: done, total: plan.count, skipped: skipped,
                                          elapsed: Date().timeIntervalSince(started), last: record))
                    }
                } catch {
                    lock.withLock { failure = failure ?? error }
                }
            }
        }
        if let failure { throw failure }
        let order = Dictionary(uniqueKeysWithValues: plan.enumerated().map { ($1.id, $0) })
        return results.sorted { order[$0.runID, default: 0] < order[$1.runID, default: 0] }
    }

    private func take(from work: [RunSpec]) -> RunSpec? {
        lock.withLock {
            guard failure == nil, next < work.count else { return nil }
            defer { next += 1 }
            return work[next]
        }
    }
}
