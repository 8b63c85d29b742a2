// A soak: the other way to inject faults, the one MINIX 3's DSN'09 study used.
//
// A campaign boots once per fault and asks what that one fault did. A soak boots once
// per (server, fault kind) and keeps injecting into that one server for the whole
// boot while its clients run and check every answer they get: it asks whether the
// system stays up, and its clients correct, under a stream of faults — thousands of
// them across boots — and how many of those faults a restart hid.
//
// The workload does the injecting (timertest for the timer, fstest stress for fs and
// storage, nettest stress for net): it arms one injection at a time, one every `every` ticks of the guest's
// clock, each with the execution trigger — it strikes at a random instruction within
// the next `window` ticks of the server's own execution. An injection armed before the
// previous one struck replaces it, so the number armed (the workload's count) is an
// upper bound; what the soak counts as injected is what the kernel reports it did, its
// "[kernel] injected KIND into SERVER" lines ("struck").
//
// Why one injection per 1.1 s of guest time by default: the first soaks ran when the
// kernel counted every pair of restarts less than 1 s apart as quick succession
// (held back after 3, given up after 8), and a faster soak measured that policy, not
// recovery. Now only restarts between which the server answered nobody count
// (Kernel+Restart.swift), so a soak may inject much faster (`--every 110ms`, with a
// window short enough to strike before the next is armed: the timer executes about
// 1 ms in 110 ms). The defaults stay comparable with the documented soaks. In 1.1 s
// under timertest's four clients the timer executes about 9 ms, so its window is 5 ms
// of its execution; fs, storage and net execute more, and their window is the 100 ms
// issue 9 suggests. Both numbers are options; the report states the ones it ran with.
//
// Boot seeds derive from the soak's seed and the boot's place (server, fault, index),
// not its build, so the baseline boot of a place injects the same faults at the same
// moments as the SSR boot — until their paths diverge, which in the baseline is at
// the first fault that restarts the server: its clients' state is gone, they fail,
// and the rest of that boot's injections find nothing running to strike. The plan
// interleaves as the campaign's does (index 0 of every fault and build, then index 1),
// so a soak bounded by time has measured every fault kind about equally.

import Foundation

/// What a soak boots for a server, and how hard it injects.
public struct SoakWorkload: Sendable, Equatable {
    public var server: Server
    public var clients = 4
    /// Injections armed per boot: the budget of one boot.
    public var injections: Int
    /// Guest clock ticks (10 MHz) between two injections being armed.
    public var every: UInt64
    /// Each injection strikes within this many ticks of the server's own execution.
    public var window: UInt64
    /// The timer clients' period (timertest only), in ticks.
    public var period: UInt64 = 100_000
    /// Whether each timer client runs three timers that come and go (`TimerWorkload`)
    /// rather than one periodic timer (the workload of soaks before 2026-12-07).
    public var mixedTimers = true

    public static let defaultEvery: UInt64 = 11_000_000

    public init(server: Server, injections: Int = 100, every: UInt64 = Self.defaultEvery, window: UInt64? = nil) {
        self.server = server
        self.injections = injections
        self.every = every
        self.window = window ?? Self.defaultWindow(for: server)
    }

    /// 5 ms of the timer's execution, 100 ms of fs's, storage's or net's (see the top of this file).
    public static func defaultWindow(for server: Server) -> UInt64 {
        server == .timer ? 50_000 : 1_000_000
    }

    public var usesDisk: Bool { server != .timer }

    /// The waits of each timer client: it runs through every injection and 1 s beyond,
    /// for the last one to strike and its recovery to be checked.
    public var timerWaits: Int {
        let periods = (UInt64(injections) * every + 10_000_000 + period - 1) / period
        return mixedTimers ? TimerWorkload.waits(forPeriods: periods) : Int(periods)
    }

    /// The guest time a boot takes, in seconds: the injections and their tail.
    public var guestSeconds: Double { Double(UInt64(injections + 2) * every) / 10_000_000 }

    /// Seconds before a boot counts as a hang. A timer boot's guest time runs about ten
    /// times faster than the host's under `-icount sleep=off` on an idle host, and five
    /// times slower than that on a host busy with other work — and a boot of 1,000
    /// loops is busy for all of its 50 s of watchdog time (a limit of 3 host seconds a
    /// guest second cut four such boots off while they still recovered); disk boots
    /// run at the host's pace or slower (about 2.5 host seconds a guest second
    /// measured). A timer boot that really hangs is caught by `silence` first.
    public var timeout: Double { 120 + 6 * guestSeconds }

    /// Seconds of console silence after which a boot counts as hung: a timer boot's
    /// guest never idles in host time under `-icount sleep=off`, and a healthy soak
    /// prints a line at least at every injection (a tenth of a host second apart), so a
    /// minute of silence is a hang however busy the host — found in a minute rather than
    /// at the deadline. Disk boots idle in host time (the baseline's, once its clients
    /// have failed, for the rest of the boot) and have no such bound.
    public var silence: Double? { usesDisk ? nil : 60 }

    public var description: String {
        let kind: String
        switch server {
        case .timer:
            kind = "timertest: \(clients) timer clients (" + (mixedTimers ? "3 timers each, periodic and one-shot, "
                + "started and cancelled; " : "one timer each, ") + "\(period / 10_000) ms period) checking every expiration"
        case .fs, .storage:
            kind = "fstest stress: \(clients) streaming clients checking every byte, a fresh 32 MiB ext2 image per boot, "
                + "e2fsck -fn afterwards"
        case .net:
            kind = "nettest stress: httpd and \(clients) clients downloading a 96 KiB file with fetch over and over, "
                + "checking every byte of every copy, a fresh 32 MiB ext2 image per boot, e2fsck -fn afterwards"
        }
        return kind + "; up to \(injections) injections a boot into \(server.rawValue), one armed every "
            + "\(Ticks.describe(every)) of guest time, each striking within \(Ticks.describe(window)) of "
            + "\(server.rawValue)'s own execution"
    }

    /// The shell commands of a boot: the workload, then the kernel's audit.
    public func command(fault: String, seed: UInt64) -> String {
        let (kind, persistent) = Faults.split(fault)
        let lasting = persistent ? " persistent" : ""
        let workload: String
        switch server {
        case .timer:
            workload = "run timertest \(clients) \(period) \(timerWaits) \(kind) exec \(window) faults=\(injections)"
                + " every=\(every)" + (mixedTimers ? " mixed" : "") + " seed=\(seed)" + lasting
        case .fs, .storage:
            workload = "run fstest stress \(clients) 1 \(server.rawValue)=\(injections) every=\(every) kind=\(kind)"
                + " trigger=exec arg=\(window) seed=\(seed)" + lasting
        case .net:
            workload = "run nettest stress \(clients) 1 net=\(injections) every=\(every) kind=\(kind)"
                + " trigger=exec arg=\(window) seed=\(seed)" + lasting
        }
        return workload + "; audit"
    }
}

/// Durations on the guest's 10 MHz clock.
public enum Ticks {
    public static let perSecond: UInt64 = 10_000_000

    /// "11000000", "1100ms", "1.1s": ticks, milliseconds or seconds.
    public static func parse(_ text: String) -> UInt64? {
        let scaled: (String, Double)
        if text.hasSuffix("ms") {
            scaled = (String(text.dropLast(2)), Double(perSecond) / 1_000)
        } else if text.hasSuffix("s") {
            scaled = (String(text.dropLast()), Double(perSecond))
        } else {
            return UInt64(text).flatMap { $0 > 0 ? $0 : nil }
        }
        guard let number = Double(scaled.0), number > 0 else { return nil }
        let ticks = (number * scaled.1).rounded()
        return ticks >= 1 && ticks < 1e18 ? UInt64(ticks) : nil
    }

    /// "1.1 s", "5 ms", "250 µs".
    public static func describe(_ ticks: UInt64) -> String {
        let seconds = Double(ticks) / Double(perSecond)
        if seconds >= 1 { return "\(trimmed(seconds)) s" }
        if seconds >= 0.001 { return "\(trimmed(seconds * 1_000)) ms" }
        return "\(trimmed(seconds * 1_000_000)) µs"
    }

    static func trimmed(_ value: Double) -> String {
        let text = String(format: "%.3f", value)
        return String(text.reversed().drop { $0 == "0" }.drop { $0 == "." }.reversed())
    }
}

/// One planned boot of a soak.
public struct SoakSpec: Sendable, Hashable {
    public var server: Server
    public var build: Build
    public var fault: String
    public var index: Int
    public var seed: UInt64
    public var command: String

    public init(server: Server, build: Build, fault: String, index: Int, seed: UInt64, command: String) {
        self.server = server
        self.build = build
        self.fault = fault
        self.index = index
        self.seed = seed
        self.command = command
    }

    /// `soak/timer/reg-flip/3/ssr`: unique within a soak, stable across its resumptions.
    public var id: String { "soak/\(server.rawValue)/\(fault)/\(index)/\(build.rawValue)" }
}

extension Seeds {
    /// A soak boot's seed: the first injection's; the workload gives the next S+1, S+2...
    public static func soak(_ soakSeed: UInt64, server: Server, fault: String, index: Int) -> UInt64 {
        let place = fingerprint("soak/\(server.rawValue)/\(fault)/\(index)")
        return max(1, mix(soakSeed ^ mix(place)) % limit)
    }
}

/// The boots of a soak, in order: boot `position` of an endless, interleaved plan.
public struct SoakPlan: Sendable {
    public var workload: SoakWorkload
    public var faults: [String]
    public var builds: [Build]
    public var soakSeed: UInt64

    public init(workload: SoakWorkload, faults: [String], builds: [Build], soakSeed: UInt64) {
        self.workload = workload
        self.faults = faults
        self.builds = builds
        self.soakSeed = soakSeed
    }

    /// Boots in one round: every fault kind once on every build.
    public var round: Int { faults.count * builds.count }

    public func boot(at position: Int) -> SoakSpec {
        let index = position / round
        let fault = faults[position % round / builds.count]
        let build = builds[position % builds.count]
        let seed = Seeds.soak(soakSeed, server: workload.server, fault: fault, index: index)
        return SoakSpec(server: workload.server, build: build, fault: fault, index: index, seed: seed,
                        command: workload.command(fault: fault, seed: seed))
    }
}

extension Machine {
    /// Boots a soak's boot and makes its record.
    public func perform(_ spec: SoakSpec, workload: SoakWorkload, soakSeed: UInt64) throws(CampaignError)
        -> (SoakRecord, console: String) {
        var boot = Workload.standard(for: spec.server)
        boot.timeout = workload.timeout
        let started = Date()
        let run = try self.boot(command: spec.command, build: spec.build, workload: boot, silence: workload.silence)
        let counts = SoakAnalysis.count(console: run.console, workload: workload, finished: run.finished,
                                        diskDamage: run.diskDamage)
        var tail = ""
        if !counts.problems.isEmpty || counts.clientsFailed > 0 {
            tail = ConsoleAnalysis.evidence(of: run.console, lines: 60)
            if let damage = run.diskDamage { tail += "\n" + damage }
        }
        let record = SoakRecord(bootID: spec.id, soakSeed: soakSeed, seed: spec.seed, server: spec.server,
                                build: spec.build, fault: spec.fault, injections: workload.injections,
                                every: workload.every, window: workload.window, counts: counts,
                                seconds: Date().timeIntervalSince(started), command: spec.command, consoleTail: tail)
        return (record, run.console)
    }

    /// The QEMU command that boots a soak record again by hand (DISK: a fresh image).
    public func manualCommand(for record: SoakRecord) -> String {
        let kernel = kernels[record.build] ?? "KERNEL"
        let workload = Workload.standard(for: record.server)
        var words = [qemu] + qemuArguments(kernel: kernel, command: record.command, usesDisk: workload.usesDisk,
                                           usesNetwork: workload.usesNetwork)
        if workload.usesDisk { words += ["-drive", "file=DISK,format=raw,if=none,id=disk0", "-device", "virtio-blk-device,drive=disk0"] }
        return words.map { $0.contains(" ") || $0.contains(";") ? "'\($0)'" : $0 }.joined(separator: " ")
    }
}

/// A soak's run loop: boots from the plan, `jobs` at a time, until `bootsPerFault`
/// rounds are done or `deadline` has passed (a boot in flight then still finishes).
public final class Soak: @unchecked Sendable {
    public let plan: SoakPlan
    public let bootsPerFault: Int?
    public let deadline: Date?
    public let machine: Machine
    public let jobs: Int
    public let file: SoakFile?

    private let lock = NSLock()
    private var next = 0
    private var results: [SoakRecord] = []
    private var failure: CampaignError?

    public init(plan: SoakPlan, bootsPerFault: Int?, deadline: Date?, machine: Machine, jobs: Int, file: SoakFile?) {
        self.plan = plan
        self.bootsPerFault = bootsPerFault
        self.deadline = deadline
        self.machine = machine
        self.jobs = max(1, jobs)
        self.file = file
    }

    /// The number of boots planned, if bounded by a count.
    public var total: Int? { bootsPerFault.map { $0 * plan.round } }

    /// The planned boots the CSV does not hold yet (those of the first `rounds`
    /// rounds, when the soak is bounded by time only).
    public func pending(rounds: Int? = nil) -> [SoakSpec] {
        let count = total ?? (rounds ?? 0) * plan.round
        return (0..<count).map(plan.boot(at:)).filter { !isDone($0) }
    }

    private func isDone(_ spec: SoakSpec) -> Bool {
        file?.contains(key: SoakRecord.key(plan.soakSeed, spec.id)) == true
    }

    /// Runs boots until the plan or the time is used up; calls `progress` after each
    /// (one call at a time). Returns this process's records, in plan order.
    public func run(progress: @escaping @Sendable (SoakProgress) -> Void) throws(CampaignError) -> [SoakRecord] {
        let started = Date()
        let alreadyDone = total.map { $0 - pending().count } ?? 0
        DispatchQueue.concurrentPerform(iterations: jobs) { _ in
            while let spec = take() {
                do throws(CampaignError) {
                    let (record, _) = try machine.perform(spec, workload: plan.workload, soakSeed: plan.soakSeed)
                    try file?.append(record)
                    lock.withLock {
                        results.append(record)
                        progress(SoakProgress(done: alreadyDone + results.count, fresh: results.count, total: total,
                                              elapsed: Date().timeIntervalSince(started), deadline: deadline,
                                              last: record))
                    }
                } catch {
                    lock.withLock { failure = failure ?? error }
                }
            }
        }
        if let failure { throw failure }
        return results.sorted { $0.position(in: plan) < $1.position(in: plan) }
    }

    /// The next boot the file does not hold yet, unless the plan or the time is up.
    private func take() -> SoakSpec? {
        lock.withLock {
            while failure == nil {
                if let total, next >= total { return nil }
                if let deadline, Date() >= deadline { return nil }
                let spec = plan.boot(at: next)
                next += 1
                if !isDone(spec) { return spec }
            }
            return nil
        }
    }
}

/// Where a soak stands, for its progress line.
public struct SoakProgress: Sendable {
    /// Boots done, counting those the CSV held before; `fresh`: by this process.
    public var done: Int
    public var fresh: Int
    public var total: Int?
    public var elapsed: TimeInterval
    public var deadline: Date?
    public var last: SoakRecord

    public var line: String {
        let count = total.map { "[\(done)/\($0)]" } ?? "[\(done)]"
        var left = ""
        if let total, fresh > 0 { left = "  ETA " + Progress.duration(elapsed / Double(fresh) * Double(total - done)) }
        if let deadline { left = "  left " + Progress.duration(max(0, deadline.timeIntervalSinceNow)) }
        let counts = last.counts
        let armed = counts.armed.map(String.init) ?? "?"
        let problems = counts.problems.isEmpty ? "" : "  ** " + counts.problems.joined(separator: "; ")
        return "\(count) elapsed \(Progress.duration(elapsed))\(left)  \(last.bootID): struck \(counts.struck)/"
            + "\(armed), manifested \(counts.manifested), recovered \(counts.recovered), client-visible "
            + "\(counts.clientVisible)" + problems
    }
}
