// A soak's report: per server and fault kind, what struck and what came of it, the
// SSR build beside the baseline, and every boot the paper's claim rules out.
//
// The columns, each a sum over the boots of the cell (SoakAnalysis.swift defines the
// per-fault ones):
//
//   boots, armed, struck     boots, injections the workloads armed, and injections the
//                            kernel reported striking — "injected" means struck
//   manifested               struck faults after which the server stopped or a client
//                            reported an effect
//   recovered transparently  manifested faults hidden by a restart; the recovery rate
//                            (recovered / manifested) with its Wilson 95 % interval
//   client-visible           struck faults after which a client reported an effect
//   clients failed           clients that did not pass / clients started
//   silent failures          boots in which a client got a wrong answer or crashed, or
//                            e2fsck found the image damaged
//   system failures          boots that panicked, hung, gave the server up, ended
//                            without the workload's verdict, or failed the audit
//
// The baseline's boots end their useful life at the first fault that restarts the
// server (its clients' state is gone with it, and they stop), so it strikes far fewer
// faults per boot: compare the rates, not the totals.

import Foundation

/// The sums of a set of soak boots.
public struct SoakTally: Sendable, Equatable {
    public var boots = 0
    /// Injections armed, over the boots whose workload said (`armedUnknown`: the others).
    public var armed = 0
    public var armedUnknown = 0
    public var struck = 0
    public var manifested = 0
    public var recovered = 0
    public var clientVisible = 0
    public var clients = 0
    public var clientsFailed = 0
    public var silentFailures = 0
    public var systemFailures = 0
    public var seconds = 0.0

    public init() {}

    public init<Records: Sequence<SoakRecord>>(_ records: Records) {
        for record in records { add(record) }
    }

    public mutating func add(_ record: SoakRecord) {
        let counts = record.counts
        boots += 1
        if let armed = counts.armed { self.armed += armed } else { armedUnknown += 1 }
        struck += counts.struck
        manifested += counts.manifested
        recovered += counts.recovered
        clientVisible += counts.clientVisible
        clients += counts.clients
        clientsFailed += counts.clientsFailed
        if !counts.silentFailures.isEmpty { silentFailures += 1 }
        if !counts.systemFailures.isEmpty { systemFailures += 1 }
        seconds += record.seconds
    }

    public var recoveryRate: Proportion { Proportion(recovered, of: manifested) }

    /// "200", "190 + ?" when some boots ended without saying how many they armed, "?" when none said.
    public var armedSummary: String {
        armedUnknown == 0 ? String(armed) : armedUnknown == boots ? "?" : "\(armed) + ?"
    }
}

public enum SoakReport {
    /// The Markdown report of every server in `records`; `replay` gives the command
    /// that boots a record again.
    public static func markdown(_ records: [SoakRecord], replay: (SoakRecord) -> String = { _ in "" }) -> String {
        var text = "# Fault-injection soak\n\n" + legend
        for server in Server.allCases {
            let ofServer = records.filter { $0.server == server }
            guard !ofServer.isEmpty else { continue }
            text += "\n" + section(server: server, records: ofServer, replay: replay)
        }
        return text
    }

    static let legend = """
        Struck: faults the kernel reported striking ("[kernel] injected"); armed: faults the \
        workload armed (one armed before the previous struck replaces it). Per struck fault, \
        from what the console shows before the next one strikes: manifested — the server \
        stopped or a client reported an effect; recovered transparently — manifested, the \
        server restarted, and no client reported anything; client-visible — a client reported \
        an effect. A timer client reports wrong expirations only when it ends: those count in \
        the boot's silent failures, not against a fault. Clients failed: clients that did not \
        pass / clients started. Silent failures: boots in which a client got a wrong answer or \
        crashed, or e2fsck found the image damaged. System failures: boots that panicked, hung, \
        gave the server up, ended without the workload's verdict, or failed the kernel's audit.

        """

    static func section(server: Server, records: [SoakRecord], replay: (SoakRecord) -> String) -> String {
        let seeds = Set(records.map(\.soakSeed)).sorted().map(String.init).joined(separator: ", ")
        let all = SoakTally(records)
        var text = "## \(server.rawValue)\n\n"
        for setting in settings(of: records) {
            text += "Workload: \(setting.description).\n"
        }
        text += "\n\(all.boots) boots (soak seed \(seeds)), \(Progress.duration(all.seconds)) of QEMU time; "
        text += "\(all.struck) faults struck of \(all.armed) armed"
        if all.armedUnknown > 0 { text += " and an unknown number in \(all.armedUnknown) boots that ended without the workload's count" }
        text += ".\n\n"

        let builds = Build.allCases.filter { build in records.contains { $0.build == build } }
        let faults = Report.ordered(faults: Set(records.map(\.fault)))
        var rows: [(String, [SoakRecord])] = faults.map { fault in (fault, records.filter { $0.fault == fault }) }
        rows.append(("all", records))
        text += table(rows: rows, builds: builds)

        let bad = records.filter { !$0.counts.problems.isEmpty }
        text += "\n### Boots the claim rules out\n\n"
        if bad.isEmpty {
            text += "None: no hang, panic, give-up, failed audit, wrong answer or damaged image.\n"
        } else {
            for record in bad.prefix(100) {
                text += "- `\(record.bootID)` seed \(record.seed): **"
                    + Report.escaped(record.counts.problems.joined(separator: "; ")) + "**"
                    + " (struck \(record.counts.struck) of \(record.counts.armed.map(String.init) ?? "?") armed)"
                let command = replay(record)
                if !command.isEmpty { text += " — replay: `\(command)`" }
                text += "\n"
            }
            if bad.count > 100 { text += "- and \(bad.count - 100) more (see the CSV)\n" }
        }
        return text
    }

    /// The distinct workload settings among the records (one, unless soaks were mixed).
    static func settings(of records: [SoakRecord]) -> [SoakWorkload] {
        var seen: [SoakWorkload] = []
        for record in records {
            let setting = SoakWorkload(server: record.server, injections: record.injections, every: record.every,
                                       window: record.window)
            if !seen.contains(setting) { seen.append(setting) }
        }
        return seen
    }

    static let header = ["fault", "build", "boots", "armed", "struck", "manifested", "recovered transparently",
                         "recovery rate, 95 % CI", "client-visible", "clients failed", "silent failures",
                         "system failures"]

    static func table(rows: [(String, [SoakRecord])], builds: [Build]) -> String {
        var text = "| " + header.joined(separator: " | ") + " |\n"
        text += "|" + (["---", "---"] + Array(repeating: "---:", count: header.count - 2)).joined(separator: "|") + "|\n"
        for (label, records) in rows {
            for (position, build) in builds.enumerated() {
                let tally = SoakTally(records.filter { $0.build == build })
                guard tally.boots > 0 else { continue }
                let cells = [position == 0 ? label : "", Report.name(of: build), String(tally.boots),
                             tally.armedSummary, String(tally.struck), String(tally.manifested),
                             String(tally.recovered), tally.recoveryRate.summary, String(tally.clientVisible),
                             "\(tally.clientsFailed)/\(tally.clients)", String(tally.silentFailures),
                             String(tally.systemFailures)]
                text += "| " + cells.joined(separator: " | ") + " |\n"
            }
        }
        return text
    }
}
