// The campaign's report: a Markdown table and an SVG chart, drawn from the records.
//
// The headline is the comparison the paper is about: for each fault kind, the same
// faults at the same moments (the same seeds) against Curio with server state regions
// and against the baseline, where the servers keep their clients' state and a
// restart loses it. Two numbers carry it, each with its Wilson 95 % interval:
//
//   recovery rate     recovered transparently / manifested — CuriOS's measure (it
//                     reports 87-100 % per service); "manifested" leaves out the
//                     faults that never struck and those that struck but did no harm
//   clients failed    clients that did not pass / clients started, over every run
//                     of the cell — the measure that does not depend on what counts
//                     as manifested, and the one a MINIX-style restart loses on
//
// The first table pools the three triggers; the second splits them, since a fault at
// request delivery, at a random tick and at a random instruction of the server's own
// execution test different defences. Then every run with an outcome the claim rules
// out (silent failure, hang, system failure) is listed with its seed and the command
// that replays it.
//
// The chart is drawn by hand (a few rectangles and lines; no plotting dependency):
// per server, two panels of grouped bars — the recovery rate and the share of clients
// failed — one bar per build for each fault kind, with the interval as a whisker.

import Foundation

/// The outcomes of a set of runs.
public struct Tally: Sendable, Equatable {
    public var runs = 0
    public var counts: [Outcome: Int] = [:]
    public var clients = 0
    public var clientsFailed = 0

    public init() {}

    public init<Records: Sequence<RunRecord>>(_ records: Records) {
        for record in records { add(record) }
    }

    public mutating func add(_ record: RunRecord) {
        runs += 1
        counts[record.outcome, default: 0] += 1
        clients += record.clients
        clientsFailed += record.clientsFailed
    }

    public subscript(outcome: Outcome) -> Int { counts[outcome, default: 0] }

    public var manifested: Int { Outcome.allCases.filter(\.manifested).reduce(0) { $0 + self[$1] } }
    public var recoveryRate: Proportion { Proportion(self[.recovered], of: manifested) }
    public var clientFailure: Proportion { Proportion(clientsFailed, of: clients) }
}

public enum Report {
    /// The Markdown report of every server in `records`. `replay` turns a run id into
    /// the command that replays it.
    public static func markdown(_ records: [RunRecord], replay: (RunRecord) -> String = { _ in "" }) -> String {
        var text = "# Fault-injection campaign\n"
        for server in Server.allCases {
            let ofServer = records.filter { $0.server == server }
            guard !ofServer.isEmpty else { continue }
            text += "\n" + section(server: server, records: ofServer, replay: replay)
        }
        return text
    }

    static func section(server: Server, records: [RunRecord], replay: (RunRecord) -> String) -> String {
        let workload = Workload.standard(for: server)
        let seeds = Set(records.map(\.campaignSeed)).sorted().map(String.init).joined(separator: ", ")
        let builds = Build.allCases.filter { build in records.contains { $0.build == build } }
        let struckShare = Proportion(records.filter(\.struck).count, of: records.count)
        var text = "## \(server.rawValue)\n\n"
        text += "Workload: \(workload.description). \(records.count) runs (campaign seed \(seeds));"
        text += " the fault struck in \(struckShare.summary) of them.\n\n"

        text += "### Outcomes per fault (request, time and execution triggers together)\n\n"
        let faults = orderedFaults(in: records)
        var rows: [(String, [RunRecord])] = faults.map { fault in (fault, records.filter { $0.fault == fault }) }
        rows.append(("all", records))
        text += table(firstColumn: "fault", rows: rows, builds: builds)

        text += "\n### Outcomes per trigger (every fault together)\n\n"
        let triggers = Trigger.allCases.filter { trigger in records.contains { $0.trigger == trigger } }
        text += table(firstColumn: "trigger",
                      rows: triggers.map { trigger in (trigger.rawValue, records.filter { $0.trigger == trigger }) },
                      builds: builds)

        let bad = records.filter(\.outcome.isBad)
        text += "\n### Runs the claim rules out\n\n"
        if bad.isEmpty {
            text += "None: no silent failure, hang or system failure.\n"
        } else {
            for record in bad.prefix(100) {
                text += "- `\(record.runID)` seed \(record.seed), \(record.moment): **\(record.outcome.rawValue)**"
                let command = replay(record)
                if !command.isEmpty { text += " — replay: `\(command)`" }
                text += "\n  \(escaped(record.evidence))\n"
            }
            if bad.count > 100 { text += "- and \(bad.count - 100) more (see the CSV)\n" }
        }
        return text
    }

    /// One row per (label, build): the outcome counts, the recovery rate and the
    /// share of clients failed.
    static func table(firstColumn: String, rows: [(String, [RunRecord])], builds: [Build]) -> String {
        let header = [firstColumn, "build", "runs"] + Outcome.allCases.map(\.rawValue)
            + ["recovery rate, 95 % CI", "clients failed, 95 % CI"]
        var text = "| " + header.joined(separator: " | ") + " |\n"
        text += "|" + (["---", "---"] + Array(repeating: "---:", count: header.count - 2)).joined(separator: "|") + "|\n"
        for (label, records) in rows {
            for (position, build) in builds.enumerated() {
                let tally = Tally(records.filter { $0.build == build })
                guard tally.runs > 0 else { continue }
                let cells = [position == 0 ? label : "", name(of: build), String(tally.runs)]
                    + Outcome.allCases.map { String(tally[$0]) }
                    + [tally.recoveryRate.summary, tally.clientFailure.summary]
                text += "| " + cells.joined(separator: " | ") + " |\n"
            }
        }
        return text
    }

    static func name(of build: Build) -> String {
        switch build {
        case .ssr: "SSR"
        case .baseline: "baseline"
        }
    }

    /// The kernel's order of fault kinds, then any other name the records hold.
    static func orderedFaults(in records: [RunRecord]) -> [String] { ordered(faults: Set(records.map(\.fault))) }

    static func ordered(faults present: Set<String>) -> [String] {
        Faults.all.filter(present.contains) + present.subtracting(Faults.all).sorted()
    }

    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    // MARK: The chart

    static let colours: [Build: String] = [.ssr: "#2b6cb0", .baseline: "#dd6b20"]

    /// An SVG chart of every server in `records`.
    public static func svg(_ records: [RunRecord]) -> String {
        let servers = Server.allCases.filter { server in records.contains { $0.server == server } }
        let panels: [(server: Server, faults: [String], measure: Measure)] = servers.flatMap { server in
            let faults = orderedFaults(in: records.filter { $0.server == server })
            return [(server, faults, Measure.recoveryRate), (server, faults, Measure.clientsFailed)]
        }
        let widest = panels.map(\.faults.count).max() ?? 0
        let chart = Chart(groups: widest)
        var body = ""
        for (number, panel) in panels.enumerated() {
            let ofServer = records.filter { $0.server == panel.server }
            body += chart.panel(at: Double(number) * Chart.panelHeight, title: "\(panel.server.rawValue): \(panel.measure.title)",
                                faults: panel.faults, measure: panel.measure, records: ofServer)
        }
        let height = Double(panels.count) * Chart.panelHeight + Chart.legendHeight
        body += chart.legend(at: height - Chart.legendHeight + 10,
                             builds: Build.allCases.filter { build in records.contains { $0.build == build } })
        return """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(chart.width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(chart.width)) \(Int(height))" font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            \(body)</svg>

            """
    }

    enum Measure {
        case recoveryRate, clientsFailed

        var title: String {
            switch self {
            case .recoveryRate: "recovered transparently / manifested (95 % Wilson interval)"
            case .clientsFailed: "clients failed / clients started (95 % Wilson interval)"
            }
        }

        func proportion(_ tally: Tally) -> Proportion {
            switch self {
            case .recoveryRate: tally.recoveryRate
            case .clientsFailed: tally.clientFailure
            }
        }
    }

    struct Chart {
        static let panelHeight = 260.0
        static let legendHeight = 40.0
        static let left = 60.0
        static let groupWidth = 96.0
        static let plotTop = 34.0
        static let plotHeight = 170.0

        var groups: Int
        /// Wide enough for the groups, and for the legend's two builds and its note.
        var width: Double { max(Self.left + Double(max(groups, 1)) * Self.groupWidth + 20, Self.left + 2 * 280 + 340) }

        func panel(at top: Double, title: String, faults: [String], measure: Measure, records: [RunRecord]) -> String {
            let plotTop = top + Self.plotTop
            let bottom = plotTop + Self.plotHeight
            func y(_ share: Double) -> Double { bottom - share * Self.plotHeight }
            var text = "<text x=\"\(Self.left)\" y=\"\(format(top + 18))\" font-size=\"13\" font-weight=\"bold\">"
                + "\(xml(title))</text>\n"
            for tick in stride(from: 0.0, through: 1.0, by: 0.25) {
                text += "<line x1=\"\(Self.left)\" x2=\"\(format(width - 20))\" y1=\"\(format(y(tick)))\" "
                    + "y2=\"\(format(y(tick)))\" stroke=\"#ddd\"/>\n"
                text += "<text x=\"\(format(Self.left - 6))\" y=\"\(format(y(tick) + 4))\" text-anchor=\"end\">"
                    + "\(Int(tick * 100)) %</text>\n"
            }
            let builds = Build.allCases.filter { build in records.contains { $0.build == build } }
            let barWidth = (Self.groupWidth - 24) / Double(max(builds.count, 1))
            for (column, fault) in faults.enumerated() {
                let groupLeft = Self.left + Double(column) * Self.groupWidth + 12
                for (slot, build) in builds.enumerated() {
                    let proportion = measure.proportion(Tally(records.filter { $0.fault == fault && $0.build == build }))
                    let x = groupLeft + Double(slot) * barWidth
                    guard let estimate = proportion.estimate, let interval = proportion.wilson() else {
                        text += "<text x=\"\(format(x + barWidth / 2))\" y=\"\(format(bottom - 4))\" "
                            + "text-anchor=\"middle\" fill=\"#999\">—</text>\n"
                        continue
                    }
                    text += "<rect x=\"\(format(x + 1))\" y=\"\(format(y(estimate)))\" width=\"\(format(barWidth - 2))\" "
                        + "height=\"\(format(estimate * Self.plotHeight))\" fill=\"\(colours[build] ?? "#888")\">"
                        + "<title>\(xml(fault)), \(name(of: build)): \(xml(proportion.summary))</title></rect>\n"
                    let middle = format(x + barWidth / 2)
                    text += "<line x1=\"\(middle)\" x2=\"\(middle)\" y1=\"\(format(y(interval.low)))\" "
                        + "y2=\"\(format(y(interval.high)))\" stroke=\"black\"/>\n"
                    for end in [interval.low, interval.high] {
                        text += "<line x1=\"\(format(x + barWidth / 2 - 4))\" x2=\"\(format(x + barWidth / 2 + 4))\" "
                            + "y1=\"\(format(y(end)))\" y2=\"\(format(y(end)))\" stroke=\"black\"/>\n"
                    }
                }
                text += "<text x=\"\(format(groupLeft + (Self.groupWidth - 24) / 2))\" y=\"\(format(bottom + 16))\" "
                    + "text-anchor=\"middle\">\(xml(fault))</text>\n"
            }
            text += "<line x1=\"\(Self.left)\" x2=\"\(format(width - 20))\" y1=\"\(format(bottom))\" "
                + "y2=\"\(format(bottom))\" stroke=\"black\"/>\n"
            return text
        }

        func legend(at y: Double, builds: [Build]) -> String {
            var text = ""
            for (slot, build) in builds.enumerated() {
                let x = Self.left + Double(slot) * 280
                text += "<rect x=\"\(format(x))\" y=\"\(format(y))\" width=\"12\" height=\"12\" "
                    + "fill=\"\(colours[build] ?? "#888")\"/>\n"
                let label = build == .ssr ? "SSR (state in server state regions)"
                    : "baseline (state in the server, lost on restart)"
                text += "<text x=\"\(format(x + 18))\" y=\"\(format(y + 10))\">\(xml(label))</text>\n"
            }
            let note = Self.left + Double(builds.count) * 280
            text += "<text x=\"\(format(note))\" y=\"\(format(y + 10))\" fill=\"#999\">— no run in that cell "
                + "(recovery rate: no manifested fault)</text>\n"
            return text
        }

        func format(_ value: Double) -> String { String(format: "%.1f", value) }
    }

    static func xml(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
