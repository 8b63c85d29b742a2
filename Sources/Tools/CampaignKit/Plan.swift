// A campaign's plan: which runs, in which order, each with its own seed.
//
// A run is one boot: a workload of clients that check every answer they get, and one
// fault of one kind armed in one server, striking on one kind of trigger. The three
// triggers are the three moments the SWIFI literature distinguishes, and they are
// reported apart because they measure different things:
//
//   request     as the Nth request is delivered (`after N`): the server is about to
//               work, but the kernel's request seal already guards this moment
//   time        after a random 1...T clock ticks (`random T`): wherever the server is
//               then, most often waiting in `receive`
//   execution   after a random 1...T ticks of the server's own execution (`exec T`):
//               a random instruction while the server runs — the moment the paper's
//               claim is about
//
// Every run gets a seed, and the kernel draws the moment and the target of the fault
// (which register, which bit, which byte) from it alone, so a record in the CSV can
// be booted again and do the same thing — exactly for the timer, whose runs are
// deterministic under `-icount sleep=off`; as closely as the disk allows for `fs`,
// `storage` and `net`. Run seeds derive from the campaign's seed and the run's place
// in the plan (server, fault, trigger, index), never from its build: the baseline run of a
// place gets the same seed and so the same fault at the same moment as the SSR run,
// which is what makes the two columns of the report comparable. They stay below 2^53
// so that a spreadsheet opening the CSV does not round them.
//
// The plan interleaves: index 0 of every (fault, trigger, build), then index 1, and
// so on, so a campaign stopped half way has measured every cell half as often rather
// than half the cells fully — and, since the CSV is appended to in that order, it
// resumes where it stopped.

import CurioABI

/// The server a campaign injects faults into.
public enum Server: String, CaseIterable, Sendable {
    case timer, fs, storage, net
}

/// Which kernel a run boots.
public enum Build: String, CaseIterable, Sendable {
    /// Clients' state in server state regions: restart and recovery as Curio does them.
    case ssr
    /// The same binaries packed `--without-ssr fs,storage,timer,net --restart-without-ssr`:
    /// clients' state lives in the server, and a restart (MINIX 3's reincarnation
    /// server) loses it.
    case baseline
}

/// When the fault strikes (see the top of this file).
public enum Trigger: String, CaseIterable, Sendable {
    case request, time, execution

    /// The word the shell, `timertest` and `fstest` take for it.
    public var workloadWord: String {
        switch self {
        case .request: "after"
        case .time: "random"
        case .execution: "exec"
        }
    }
}

/// The faults of a campaign: the kernel's kinds by the names the shell and the
/// workloads take, and the code faults (loop, illegal, mutate) once more as
/// persistent ones — `mutate+persistent`: applied to every later load of the server
/// too, so the restarted server has the same bug, as a programming error would.
public enum Faults {
    public static let persistentSuffix = "+persistent"

    public static var kinds: [String] { FaultKind.allCases.map { "\($0.name)" } }

    static var codeFaults: [String] {
        [FaultKind.endlessLoop, .illegalInstruction, .codeMutation].map { "\($0.name)" }
    }

    public static var all: [String] {
        kinds + kinds.filter(codeFaults.contains).map { $0 + persistentSuffix }
    }

    /// The kernel's name of a campaign fault, and whether it is persistent.
    public static func split(_ fault: String) -> (kind: String, persistent: Bool) {
        fault.hasSuffix(persistentSuffix) ? (String(fault.dropLast(persistentSuffix.count)), true) : (fault, false)
    }
}

/// The moment a fault strikes, as the workload is told it: `after 37`, `exec 20000`.
public struct Moment: Sendable, Hashable, CustomStringConvertible {
    public var trigger: Trigger
    public var argument: UInt64

    public var description: String { "\(trigger.workloadWord) \(argument)" }
}

/// What one campaign boots for a server: the clients, and the windows the moments
/// are drawn from (each a bound the fault should strike within while the clients
/// still run; the campaign counts the runs whose fault never struck, so a window
/// that is too wide shows as a column of "not activated").
public struct Workload: Sendable {
    public var server: Server
    public var clients: Int
    public var usesDisk: Bool
    /// A virtio-net device on QEMU's user networking, `restrict=on` and no forwards:
    /// the net workload's traffic never leaves the guest.
    public var usesNetwork = false
    /// `after N`: N is drawn from 1...requestWindow.
    public var requestWindow: UInt64
    /// `random T`: clock ticks (10 MHz).
    public var timeWindow: UInt64
    /// `exec T`: clock ticks of the server's own execution (100 instructions each).
    public var executionWindow: UInt64
    /// Seconds a run may take before it counts as a hang: some ten times what a run
    /// takes on two busy cores (timer 0.5-1.5 s, fs and storage 2-5 s), since every
    /// hang costs this much.
    public var timeout: Double
    public var description: String

    /// The workloads of the campaign, with windows measured on the workloads themselves
    /// (the campaign's own "struck" share, window by window): timertest's 4 clients
    /// make about 130 requests over 3.0 M ticks, of which the timer server executes
    /// some 25 k; fstest's 4 clients of 3 rounds make about 450 filesystem and 3,600
    /// storage requests over 4.9 M ticks, of which fs executes some 700 k. The kernel
    /// counts some 10 M ticks of storage's execution in the same run — more than the
    /// run lasts, so its count includes time storage does not run; the window follows
    /// the count, so that its faults still land within the run. nettest's 4 clients of
    /// 3 rounds download 1.1 MiB through httpd in some 4 M ticks, with 1,000 to 1,500
    /// requests to the network server, which executes some 1 M ticks of them.
    public static func standard(for server: Server) -> Workload {
        switch server {
        case .timer:
            Workload(server: .timer, clients: 4, usesDisk: false, requestWindow: 120, timeWindow: 2_700_000,
                     executionWindow: 25_000, timeout: 15,
                     description: "timertest: 4 timer clients, 3 timers each (periodic and one-shot, started and "
                        + "cancelled), \(TimerWorkload.waits(forPeriods: 30)) expirations over 30 periods of 10 ms")
        case .fs:
            Workload(server: .fs, clients: 4, usesDisk: true, requestWindow: 400, timeWindow: 4_500_000,
                     executionWindow: 600_000, timeout: 60,
                     description: "fstest stress: 4 streaming clients, 3 rounds each, a fresh 32 MiB ext2 image per run")
        case .storage:
            Workload(server: .storage, clients: 4, usesDisk: true, requestWindow: 3_000, timeWindow: 4_500_000,
                     executionWindow: 8_000_000, timeout: 60,
                     description: "fstest stress: 4 streaming clients, 3 rounds each, a fresh 32 MiB ext2 image per run")
        case .net:
            Workload(server: .net, clients: 4, usesDisk: true, usesNetwork: true, requestWindow: 1_000,
                     timeWindow: 3_500_000, executionWindow: 800_000, timeout: 60,
                     description: "nettest stress: httpd and 4 clients each downloading a 96 KiB file 3 times with "
                        + "fetch over the guest's own address, every copy checked byte for byte, a fresh 32 MiB ext2 "
                        + "image per run")
        }
    }

    /// The moment of a run: a request number drawn from the seed, or the window for
    /// the kernel to draw a tick from (with the same seed).
    public func moment(for trigger: Trigger, seed: UInt64) -> Moment {
        switch trigger {
        case .request: Moment(trigger: .request, argument: 1 + Seeds.mix(seed ^ 0x5245_5155_4553_5453) % requestWindow)
        case .time: Moment(trigger: .time, argument: timeWindow)
        case .execution: Moment(trigger: .execution, argument: executionWindow)
        }
    }

    /// The shell command of a run (the kernel's command line).
    public func command(fault: String, moment: Moment, seed: UInt64) -> String {
        let (kind, persistent) = Faults.split(fault)
        let lasting = persistent ? " persistent" : ""
        switch server {
        case .timer:
            return "run timertest \(clients) 100000 \(TimerWorkload.waits(forPeriods: 30)) \(kind) \(moment) mixed"
                + " seed=\(seed)" + lasting
        case .fs, .storage:
            return "run fstest stress \(clients) 3 \(server.rawValue)=1 every=10000 kind=\(kind)"
                + " trigger=\(moment.trigger.workloadWord) arg=\(moment.argument) seed=\(seed)" + lasting
        case .net:
            return "run nettest stress \(clients) 3 net=1 every=10000 kind=\(kind)"
                + " trigger=\(moment.trigger.workloadWord) arg=\(moment.argument) seed=\(seed)" + lasting
        }
    }
}

/// The timer clients of campaigns and soaks run `timerclient ... mixed`: three timers
/// each — periodic A (the period), periodic B (3/2 or 5/4 of it, cancelled and started
/// again every 7 expirations) and one-shot C (1/2, 1 or 3/2 of it, started again each
/// time it fires) — about 2.75 expirations per period in all.
public enum TimerWorkload {
    /// The waits that keep a client busy for `periods` periods.
    public static func waits(forPeriods periods: UInt64) -> Int { Int(periods * 11 / 4) }
}

/// Deterministic seeds (Swift's own hashing is seeded afresh in every process).
public enum Seeds {
    /// Seeds are kept below 2^53: exact as a double, in any spreadsheet.
    public static let limit: UInt64 = 1 << 53

    /// SplitMix64's finalizer: every input bit reaches every output bit.
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// FNV-1a: a stable fingerprint of a run's place in the plan.
    public static func fingerprint(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// A run's seed: never 0 (the kernel reads 0 as "no seed").
    public static func run(campaign: UInt64, server: Server, fault: String, trigger: Trigger, index: Int) -> UInt64 {
        let place = fingerprint("\(server.rawValue)/\(fault)/\(trigger.rawValue)/\(index)")
        return max(1, mix(campaign ^ mix(place)) % limit)
    }

    /// A fresh campaign seed, when none is given.
    public static func fresh() -> UInt64 { UInt64.random(in: 1..<limit) }
}

/// One planned run.
public struct RunSpec: Sendable, Hashable {
    public var server: Server
    public var build: Build
    public var fault: String
    public var trigger: Trigger
    public var index: Int
    public var seed: UInt64
    public var moment: Moment
    public var command: String

    /// `timer/reg-flip/execution/7/ssr`: unique within a campaign, and stable across
    /// its resumptions.
    public var id: String { Self.id(server: server, fault: fault, trigger: trigger, index: index, build: build) }

    public static func id(server: Server, fault: String, trigger: Trigger, index: Int, build: Build) -> String {
        "\(server.rawValue)/\(fault)/\(trigger.rawValue)/\(index)/\(build.rawValue)"
    }
}

public enum CampaignPlan {
    /// Every run of a campaign, interleaved (see the top of this file).
    public static func runs(workload: Workload, faults: [String], triggers: [Trigger], runsPerCell: Int,
                            builds: [Build], campaignSeed: UInt64) -> [RunSpec] {
        var plan: [RunSpec] = []
        for index in 0..<runsPerCell {
            for fault in faults {
                for trigger in triggers {
                    let seed = Seeds.run(campaign: campaignSeed, server: workload.server, fault: fault,
                                         trigger: trigger, index: index)
                    let moment = workload.moment(for: trigger, seed: seed)
                    let command = workload.command(fault: fault, moment: moment, seed: seed)
                    for build in builds {
                        plan.append(RunSpec(server: workload.server, build: build, fault: fault, trigger: trigger,
                                            index: index, seed: seed, moment: moment, command: command))
                    }
                }
            }
        }
        return plan
    }
}
