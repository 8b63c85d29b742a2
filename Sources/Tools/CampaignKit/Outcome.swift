// What happened in a run, judged from the console alone (and, with a disk, e2fsck).
//
// The vocabulary is the SWIFI literature's (Avizienis et al.; the MINIX 3 and CuriOS
// campaigns), each outcome measured rather than inferred where the console allows:
//
//   not activated            the fault never struck: no "[kernel] injected" line (the
//                            clients finished first, or the server never reached the
//                            trigger); no restart, every client correct
//   masked                   the fault struck, yet no server restarted and every
//                            client was correct: the damage was never read, was
//                            overwritten, or a check repaired it in place
//   recovered transparently  a server restarted and every client was correct, unaware
//   client told              a client was told something went wrong (its state lost,
//                            a refused call) — detected, not hidden, but visible; the
//                            evidence names the client and the error
//   silent failure           a client got a wrong answer and was not told, a client
//                            crashed (it was not told anything it could act on), or
//                            `e2fsck -fn` finds the image damaged afterwards
//   hang                     the run did not end within its time
//   system failure           a kernel panic, Curio did not come up, or the workload
//                            never reported (the shell or the workload's own process
//                            died with the server)
//
// Manifested = everything but "not activated" and "masked": the denominator of the
// recovery rate (recovered transparently / manifested) that CuriOS reports.
//
// The workload's verdict line says how each client fared (`timertest ok|FAIL ...`,
// `fstest stress ok|FAIL ...`, `nettest stress ok|FAIL ...`); the clients' own lines
// and the kernel's say why. A kernel line can land in the middle of a client's line
// on the shared UART, so lines are searched for their markers, not matched from
// their start. A run that never
// printed its verdict (a hang, a crash of everything) still shows which clients
// finished well: their `timerclient ok` or `stream N ok` lines, and every other
// client counts as failed — the measure of the comparison with the baseline, where a
// restart loses the clients' state. A verdict that accounts for fewer clients than
// the workload was to start means it could not start them: that run says nothing
// about the fault, and counts as a system failure to be looked at.

import Foundation

/// The outcome of one run.
public enum Outcome: String, CaseIterable, Sendable {
    case notActivated = "not activated"
    case masked = "masked"
    case recovered = "recovered transparently"
    case clientTold = "client told"
    case silentFailure = "silent failure"
    case hang = "hang"
    case systemFailure = "system failure"

    /// Whether the fault became an error someone could see (the recovery rate's denominator).
    public var manifested: Bool { self != .notActivated && self != .masked }

    /// Outcomes the paper's claim rules out: each needs its console kept and a look.
    public var isBad: Bool { self == .silentFailure || self == .hang || self == .systemFailure }
}

/// The judgement of one run, with the lines it rests on.
public struct Verdict: Sendable, Equatable {
    public var outcome: Outcome
    /// The kernel reported the fault struck ("[kernel] injected ... into SERVER").
    public var struck: Bool
    /// Restarts of the target server (or, where its count is missing, of any server).
    public var restarts: Int
    public var clients: Int
    /// Clients that did not pass: told, wrong, crashed, or never finished.
    public var clientsFailed: Int
    /// The console lines (and e2fsck findings) the verdict rests on, " | "-separated.
    public var evidence: String
}

public enum ConsoleAnalysis {
    /// Judges a run. `finished`: QEMU exited by itself before the deadline.
    /// `diskDamage`: what `e2fsck -fn` found, if anything (nil: clean, or no disk).
    public static func judge(console: String, server: Server, clients: Int, finished: Bool,
                             diskDamage: String? = nil) -> Verdict {
        let lines = normalized(console).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        let struck = lines.contains { injectionTarget(in: $0) == server.rawValue }
        let summary = lines.lazy.compactMap { verdictLine(in: $0) }.last
        let fields = summary.map(Self.fields(of:)) ?? [:]
        let restartLines = lines.filter { $0.contains("[kernel] restarted ") }
        let targetRestarts = restartLines.filter { $0.contains("[kernel] restarted \(server.rawValue) ") }.count
        let restarts: Int
        switch (server, summary) {
        case (.timer, .some): restarts = fields["restarts"] ?? targetRestarts
        case (.fs, .some), (.storage, .some), (.net, .some): restarts = fields[server.rawValue] ?? targetRestarts
        case (_, .none): restarts = targetRestarts
        }

        let clientsPassed: Int
        if summary != nil {
            clientsPassed = fields["ok"] ?? 0
        } else {
            clientsPassed = lines.filter { $0.contains("timerclient ok ") || streamPassed($0) }.count
        }
        let clientsFailed = max(0, clients - clientsPassed)
        var evidence = lines.filter(isEvidence)
        if let diskDamage {
            evidence += diskDamage.split(separator: "\n").filter { $0.hasSuffix("? no") || $0.contains("exited") }
                .prefix(5).map(String.init)
        }
        let verdict = { (outcome: Outcome) in
            Verdict(outcome: outcome, struck: struck, restarts: restarts, clients: clients,
                    clientsFailed: clientsFailed, evidence: Self.evidence(evidence))
        }

        if !console.contains("Curio: ") || console.contains("PANIC") { return verdict(.systemFailure) }
        guard finished else { return verdict(.hang) }
        guard summary != nil else { return verdict(.systemFailure) }
        // timertest says fail= and crashed=; fstest and nettest say failed= and crashed=.
        let wrong = fields["fail", default: 0] + fields["failed", default: 0] + fields["crashed", default: 0]
        let told = fields["lost", default: 0] + fields["error", default: 0]
        guard clientsPassed + wrong + told >= clients else { return verdict(.systemFailure) }
        if wrong > 0 || lines.contains(where: { $0.contains(" FAIL round ") }) || diskDamage != nil {
            return verdict(.silentFailure)
        }
        if told > 0 { return verdict(.clientTold) }
        if restarts > 0 || !restartLines.isEmpty { return verdict(.recovered) }
        return verdict(struck ? .masked : .notActivated)
    }

    /// The last `count` lines of the console, from Curio's banner on.
    public static func tail(of console: String, lines count: Int) -> String {
        var text = normalized(console)
        if let banner = text.range(of: "Curio: ") { text = String(text[banner.lowerBound...]) }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }

    /// What a bad boot's record keeps of its console: every line that tells of a
    /// failure (a client's FAIL or ERROR, a process stopped, lost state), which in a
    /// soak may lie hundreds of injection lines before the end, then the last `lines`.
    public static func evidence(of console: String, lines count: Int) -> String {
        let markers = [" FAIL", " ERROR", "stopped:", "lost its state", "gave up", "PANIC"]
        let all = tail(of: console, lines: Int.max).split(separator: "\n", omittingEmptySubsequences: false)
        let telling = all.dropLast(count).filter { line in markers.contains { line.contains($0) } }.prefix(40)
        let last = all.suffix(count).joined(separator: "\n")
        return telling.isEmpty ? last : telling.joined(separator: "\n") + "\n…\n" + last
    }

    /// The server named by a "[kernel] injected FAULT into SERVER" line, if it is one.
    static func injectionTarget(in line: String) -> String? {
        guard let injected = line.range(of: "[kernel] injected "),
              let into = line.range(of: " into ", range: injected.upperBound..<line.endIndex) else { return nil }
        return line[into.upperBound...].prefix { $0 != " " && $0 != "," && $0 != ":" }.description
    }

    /// The workload's verdict, from its marker to the end of the line.
    static func verdictLine(in line: String) -> String? {
        for marker in ["timertest ok ", "timertest FAIL ", "fstest stress ok ", "fstest stress FAIL ",
                       "nettest stress ok ", "nettest stress FAIL "] {
            if let found = line.range(of: marker) { return String(line[found.lowerBound...]) }
        }
        return nil
    }

    /// `key=value` numbers of a verdict line.
    static func fields(of line: String) -> [String: Int] {
        var fields: [String: Int] = [:]
        for word in line.split(separator: " ") {
            let parts = word.split(separator: "=", maxSplits: 1)
            if parts.count == 2, let value = Int(parts[1]) { fields[String(parts[0])] = value }
        }
        return fields
    }

    /// "stream 3 ok rounds=..." — a streaming client that passed.
    static func streamPassed(_ line: String) -> Bool {
        guard let found = line.range(of: "stream ") else { return false }
        let words = line[found.upperBound...].split(separator: " ")
        return words.count >= 2 && Int(words[0]) != nil && words[1] == "ok"
    }

    static func isEvidence(_ line: String) -> Bool {
        line.contains("[kernel]") || line.contains("timertest client ") || line.contains("timerclient FAIL")
            || line.contains(" FAIL round ") || line.contains(" ERROR round ") || line.contains(" lost its state")
            || line.contains("fstest:") || line.contains("timertest:") || line.contains("nettest:")
            || isFetchFailure(line) || verdictLine(in: line) != nil
    }

    /// fetch's line for a failed download (its success line says "N bytes to PATH").
    static func isFetchFailure(_ line: String) -> Bool {
        line.contains("fetch: ") && !line.contains(" bytes to ")
    }

    static let evidenceLimit = 1_500

    static func evidence(_ lines: [String]) -> String {
        var text = ""
        for line in lines {
            let piece = line.trimmingSpaces
            guard !piece.isEmpty else { continue }
            if text.utf8.count + piece.utf8.count + 3 > evidenceLimit { return text + " | ..." }
            text += text.isEmpty ? piece : " | " + piece
        }
        return text
    }

    /// The serial line's CR LF as LF, stray CRs dropped.
    static func normalized(_ console: String) -> String {
        console.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "")
    }
}

extension String {
    var trimmingSpaces: String {
        let characters = drop { $0 == " " || $0 == "\t" }
        return String(characters.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
