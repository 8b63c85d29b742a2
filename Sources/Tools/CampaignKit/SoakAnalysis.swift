// What a soak boot did, counted from its console (and, with a disk, e2fsck).
//
// A soak boot's console is a stream of episodes. Each "[kernel] injected KIND into
// SERVER" line is a fault that struck (the kernel prints it as it strikes) and opens
// an episode, which runs to the next such line; what the console shows within it is
// counted against that fault:
//
//   manifested               the server stopped (a trap, a hang the watchdog caught,
//                            a failure it reported), was given up, or a client
//                            reported an effect
//   recovered transparently  manifested, the server restarted, and no client reported
//                            anything
//   client-visible           a client reported an effect: it was told its state was
//                            lost or a call was refused, read wrong data, or crashed
//
// A fault can also stop another server (a flip in fs made it send storage a request
// that storage failed on): those stops are counted apart, per boot, and a boot with
// any is listed for a look.
//
// Damage that shows only later (a flipped bit read a second later) is counted against
// the fault in whose episode it shows, not the one that did it: the counts say what
// was seen after which fault, not what caused what. A kernel line can land in the
// middle of a client's line on the shared UART, so lines are cut at "[kernel] " and
// the pieces taken in order.
//
// Only reports a client makes at the moment it sees trouble are placed in an episode:
// an fstest stream client prints each failure as it happens, and a timer client
// whose call is refused ends at once with its FAIL line. A timer client that receives
// a wrong expiration counts it and carries on, and reports it only when it ends —
// after every injection — so its FAIL line (it names the wait of the first error, but
// not the fault before it) is not placed in an episode: it counts in the boot's wrong
// answers, a silent failure, beside the fault table. Which lines are of which kind:
// a timer client's FAIL line that accounts for fewer waits than it was asked to do
// ended early, at the refused call it reports — and if its `errors=` counts more than
// that call, it had received wrong expirations before: a wrong answer too, though the
// workload's verdict counts that client as told.
//
// The boot as a whole: the workload's verdict line (how many clients passed, and how
// the others failed), the kernel's audit after the workload, a hang (no power-off by
// the deadline, or a console silent too long), a kernel panic, a give-up, and
// e2fsck's findings on the disk. Those that the paper's claim rules out are the
// boot's problems, each named; the console's tail is kept for them, and for boots in
// which a client failed.

import Foundation

/// What the kernel's audit said after the workload.
public enum AuditResult: String, Sendable {
    case clean, violations, failed, missing
}

/// The counts of one soak boot.
public struct SoakCounts: Sendable, Equatable {
    /// Injections the workload armed (its verdict's `armed=`; nil without a verdict).
    public var armed: Int?
    /// "[kernel] injected ... into SERVER" lines: faults that struck.
    public var struck = 0
    /// "[kernel] SERVER (pid ...) stopped:" lines.
    public var stops = 0
    /// "[kernel] restarted SERVER" lines.
    public var restarts = 0
    /// "[kernel] gave up on SERVER" lines.
    public var giveUps = 0
    /// Stops of other servers: faults in one server that stopped another.
    public var otherStops = 0
    /// Struck faults after which the server stopped or a client reported an effect.
    public var manifested = 0
    /// Manifested faults after which the server restarted and no client reported anything.
    public var recovered = 0
    /// Struck faults after which a client reported an effect.
    public var clientVisible = 0
    public var clients = 0
    /// Clients that did not pass (from the verdict; without one, those with no `ok` line).
    public var clientsFailed = 0
    /// Clients that got a wrong answer, or crashed (the verdict's fail/failed + crashed;
    /// without a verdict, the clients' own reports of wrong answers and the kernel's of
    /// their crashes).
    public var wrongAnswers = 0
    /// Clients told something went wrong (the verdict's lost + error).
    public var clientsTold = 0
    /// Whether the workload printed its verdict line.
    public var verdict = false
    /// The workload's own count of the server's restarts, if it printed it.
    public var workloadRestarts: Int?
    /// Stops of the server, and client reports, before the first injection struck.
    public var stopsBeforeInjection = 0
    public var reportsBeforeInjection = 0
    public var hang = false
    public var panic = false
    public var audit = AuditResult.missing
    /// nil: no disk; false: e2fsck found nothing; true: it found damage.
    public var diskDamaged: Bool?

    public init() {}

    /// What the paper's claim rules out: a hang, a panic, a give-up, ...
    public var systemFailures: [String] {
        var found: [String] = []
        if panic { found.append("kernel panic") }
        if hang { found.append("hang: no power-off") }
        if giveUps > 0 { found.append("the server was given up") }
        if !verdict && !hang && !panic { found.append("no verdict from the workload") }
        if verdict && clientsFailed > wrongAnswers + clientsTold {
            found.append("the verdict accounts for \(clients - clientsFailed + wrongAnswers + clientsTold) of "
                         + "\(clients) clients")
        }
        if audit == .violations || audit == .failed { found.append("audit: \(audit.rawValue)") }
        if audit == .missing && !hang && !panic { found.append("no audit") }
        return found
    }

    /// ... a client's wrong answer or crash, or a damaged image ...
    public var silentFailures: [String] {
        var found: [String] = []
        if wrongAnswers > 0 { found.append("\(wrongAnswers) client(s) got a wrong answer or crashed") }
        if diskDamaged == true { found.append("e2fsck -fn found damage") }
        return found
    }

    /// ... and what should not happen at all: the count of anything that disagrees.
    public var anomalies: [String] {
        var found: [String] = []
        if stopsBeforeInjection > 0 { found.append("\(stopsBeforeInjection) stop(s) before any injection") }
        if otherStops > 0 { found.append("\(otherStops) stop(s) of another server") }
        if reportsBeforeInjection > 0 { found.append("\(reportsBeforeInjection) client report(s) before any injection") }
        if let workloadRestarts, workloadRestarts != restarts {
            found.append("restarts: \(restarts) on the console, \(workloadRestarts) by the workload")
        }
        if let armed, struck > armed { found.append("\(struck) struck of \(armed) armed") }
        return found
    }

    public var problems: [String] { systemFailures + silentFailures + anomalies }
}

public enum SoakAnalysis {
    /// Counts a boot. `finished`: QEMU powered off by itself before the deadline;
    /// `diskDamage`: e2fsck's findings (nil: clean, or no disk).
    public static func count(console: String, workload: SoakWorkload, finished: Bool, diskDamage: String?)
        -> SoakCounts {
        let server = workload.server.rawValue
        var counts = SoakCounts()
        counts.hang = !finished
        counts.clients = workload.clients
        if workload.usesDisk { counts.diskDamaged = finished ? diskDamage != nil : nil }

        var episode: Episode?
        var passedLines = 0
        var wrongReports = 0
        var wrongThenTold = 0
        var summary: String?
        func close() {
            guard let ended = episode else { return }
            if ended.manifested { counts.manifested += 1 }
            if ended.manifested && ended.restarted && !ended.clientReported && !ended.gaveUp { counts.recovered += 1 }
            if ended.clientReported { counts.clientVisible += 1 }
        }
        for piece in pieces(of: console) {
            if piece.contains("PANIC") { counts.panic = true }
            if ConsoleAnalysis.injectionTarget(in: piece) == server {
                close()
                episode = Episode()
                counts.struck += 1
            } else if piece.hasPrefix("[kernel] \(server) (pid "), piece.contains(") stopped: ") {
                counts.stops += 1
                if episode == nil { counts.stopsBeforeInjection += 1 }
                episode?.stopped = true
            } else if piece.hasPrefix("[kernel] restarted \(server) (") {
                counts.restarts += 1
                episode?.restarted = true
            } else if piece.hasPrefix("[kernel] gave up on \(server):") {
                counts.giveUps += 1
                episode?.gaveUp = true
            } else if let other = stoppedServer(in: piece), other != server {
                counts.otherStops += 1
            } else if isPromptClientReport(piece, workload: workload) {
                if episode == nil { counts.reportsBeforeInjection += 1 }
                episode?.clientReported = true
            }
            if piece.contains("timerclient ok ") || ConsoleAnalysis.streamPassed(piece) { passedLines += 1 }
            if isWrongAnswerReport(piece, workload: workload) { wrongReports += 1 }
            if isWrongThenTold(piece, workload: workload) { wrongThenTold += 1 }
            if let found = ConsoleAnalysis.verdictLine(in: piece) { summary = found }
            if let found = piece.range(of: "audit: ") {
                let said = piece[found.upperBound...]
                counts.audit = said.hasPrefix("clean") ? .clean : said.contains("violations") ? .violations : .failed
            }
        }
        close()

        if let summary {
            let fields = ConsoleAnalysis.fields(of: summary)
            counts.verdict = true
            counts.armed = fields["armed", default: 0]
            counts.clients = fields["clients", default: workload.clients]
            counts.clientsFailed = max(0, counts.clients - fields["ok", default: 0])
            // A client told of a refused call after wrong expirations counts as wrong.
            counts.wrongAnswers = fields["fail", default: 0] + fields["failed", default: 0] + fields["crashed", default: 0]
                + wrongThenTold
            counts.clientsTold = max(0, fields["lost", default: 0] + fields["error", default: 0] - wrongThenTold)
            counts.workloadRestarts = workload.server == .timer ? fields["restarts"] : fields[server]
        } else {
            counts.clientsFailed = max(0, workload.clients - passedLines)
            counts.wrongAnswers = wrongReports
        }
        return counts
    }

    struct Episode {
        var stopped = false
        var restarted = false
        var gaveUp = false
        var clientReported = false
        var manifested: Bool { stopped || gaveUp || clientReported }
    }

    /// A client's report of trouble made when it saw the trouble (see the top of this file).
    static func isPromptClientReport(_ piece: String, workload: SoakWorkload) -> Bool {
        if isClientCrash(piece) { return true }
        if let found = piece.range(of: "timerclient FAIL ") {
            let waits = ConsoleAnalysis.fields(of: String(piece[found.upperBound...]))["waits"]
            return waits.map { $0 < workload.timerWaits } ?? true
        }
        guard let stream = piece.range(of: "stream ") else { return false }
        let rest = piece[stream.upperBound...]
        return rest.contains(" FAIL round ") || rest.contains(" ERROR round ") || rest.contains(" lost its state")
    }

    /// The programs whose stops are a client's crash, not a server's.
    static let clientPrograms: Set<String> = ["timerclient", "timertest", "fstest", "nettest", "httpd", "fetch"]

    /// The kernel's report that a workload's client crashed (timertest itself only
    /// counts its clients: its own stop leaves the boot without a verdict).
    static func isClientCrash(_ piece: String) -> Bool {
        ["timerclient", "fstest", "nettest", "httpd", "fetch"].contains { piece.hasPrefix("[kernel] \($0) (pid ") }
            && piece.contains(") stopped: ")
    }

    /// The server a "[kernel] NAME (pid ...) stopped:" line names, unless it names a client.
    static func stoppedServer(in piece: String) -> String? {
        guard piece.hasPrefix("[kernel] "), piece.contains(") stopped: "),
              let pid = piece.range(of: " (pid ") else { return nil }
        let name = String(piece[piece.index(piece.startIndex, offsetBy: 9)..<pid.lowerBound])
        return clientPrograms.contains(name) ? nil : name
    }

    /// A client's report of a wrong answer, or the kernel's of a client's crash.
    static func isWrongAnswerReport(_ piece: String, workload: SoakWorkload) -> Bool {
        if isClientCrash(piece) { return true }
        if let found = piece.range(of: "timerclient FAIL ") {
            // Ended early: at a refused call it was told of; else wrong expirations.
            let waits = ConsoleAnalysis.fields(of: String(piece[found.upperBound...]))["waits"]
            return waits.map { $0 >= workload.timerWaits } ?? false || isWrongThenTold(piece, workload: workload)
        }
        guard let stream = piece.range(of: "stream ") else { return false }
        return piece[stream.upperBound...].contains(" FAIL round ")
    }

    /// A timer client that ended at a refused call (its state lost, say) after it had
    /// received wrong expirations: its `errors=` counts both, the refused call once. The
    /// workload's verdict counts it as told; it got wrong answers first.
    static func isWrongThenTold(_ piece: String, workload: SoakWorkload) -> Bool {
        guard let found = piece.range(of: "timerclient FAIL ") else { return false }
        let fields = ConsoleAnalysis.fields(of: String(piece[found.upperBound...]))
        guard let waits = fields["waits"], let errors = fields["errors"] else { return false }
        return waits < workload.timerWaits && errors > 1
    }

    /// The console's lines, each cut before every "[kernel] " in it.
    static func pieces(of console: String) -> [String] {
        var pieces: [String] = []
        for line in ConsoleAnalysis.normalized(console).split(separator: "\n", omittingEmptySubsequences: true) {
            var rest = Substring(line)
            while let marker = rest.range(of: "[kernel] ", range: rest.index(after: rest.startIndex)..<rest.endIndex) {
                pieces.append(String(rest[..<marker.lowerBound]))
                rest = rest[marker.lowerBound...]
            }
            pieces.append(String(rest))
        }
        return pieces.filter { !$0.isEmpty }
    }
}

/// One soak boot, as the CSV keeps it.
public struct SoakRecord: CSVRecord {
    public var bootID: String
    public var soakSeed: UInt64
    /// The first injection's seed (the workload seeds the next S+1, S+2, ...).
    public var seed: UInt64
    public var server: Server
    public var build: Build
    public var fault: String
    /// The workload's budget: injections armed at most.
    public var injections: Int
    public var every: UInt64
    public var window: UInt64
    public var counts: SoakCounts
    public var seconds: Double
    /// The kernel command line the boot booted with: what a replay boots again.
    public var command: String
    /// The end of the console, kept for boots with problems or a client that failed.
    public var consoleTail: String

    public init(bootID: String, soakSeed: UInt64, seed: UInt64, server: Server, build: Build, fault: String,
                injections: Int, every: UInt64, window: UInt64, counts: SoakCounts, seconds: Double, command: String,
                consoleTail: String) {
        self.bootID = bootID
        self.soakSeed = soakSeed
        self.seed = seed
        self.server = server
        self.build = build
        self.fault = fault
        self.injections = injections
        self.every = every
        self.window = window
        self.counts = counts
        self.seconds = seconds
        self.command = command
        self.consoleTail = consoleTail
    }

    public static let columns = [
        "boot_id", "soak_seed", "seed", "server", "build", "fault", "injections", "every", "window", "armed", "struck",
        "stops", "restarts", "give_ups", "other_stops", "manifested", "recovered", "client_visible", "clients",
        "clients_failed", "wrong_answers", "clients_told", "verdict", "workload_restarts", "stops_before_injection",
        "reports_before_injection", "hang", "panic", "audit", "disk", "seconds", "command", "console_tail",
    ]

    public var fields: [String] {
        let disk = counts.diskDamaged.map { $0 ? "damaged" : "clean" } ?? "none"
        return [
            bootID, String(soakSeed), String(seed), server.rawValue, build.rawValue, fault, String(injections),
            String(every), String(window), counts.armed.map(String.init) ?? "", String(counts.struck),
            String(counts.stops),
            String(counts.restarts), String(counts.giveUps), String(counts.otherStops), String(counts.manifested),
            String(counts.recovered),
            String(counts.clientVisible), String(counts.clients), String(counts.clientsFailed),
            String(counts.wrongAnswers), String(counts.clientsTold), counts.verdict ? "yes" : "no",
            counts.workloadRestarts.map(String.init) ?? "", String(counts.stopsBeforeInjection),
            String(counts.reportsBeforeInjection), counts.hang ? "yes" : "no", counts.panic ? "yes" : "no",
            counts.audit.rawValue, disk, String(format: "%.2f", seconds), command, consoleTail,
        ]
    }

    public init(fields: [String]) throws(RecordError) {
        guard fields.count == Self.columns.count else {
            throw RecordError("\(fields.count) fields, expected \(Self.columns.count)")
        }
        var column = 0
        func text() -> String {
            defer { column += 1 }
            return fields[column]
        }
        func failure() -> RecordError { RecordError("\(Self.columns[column - 1]) \"\(fields[column - 1])\"") }
        func number<T: FixedWidthInteger>(_: T.Type = Int.self) throws(RecordError) -> T {
            guard let value = T(text()) else { throw failure() }
            return value
        }
        func value<T: RawRepresentable<String>>(_: T.Type) throws(RecordError) -> T {
            guard let value = T(rawValue: text()) else { throw failure() }
            return value
        }
        func optionalNumber() throws(RecordError) -> Int? {
            let field = text()
            guard !field.isEmpty else { return nil }
            guard let parsed = Int(field) else { throw failure() }
            return parsed
        }
        func flag() throws(RecordError) -> Bool {
            switch text() {
            case "yes": return true
            case "no": return false
            default: throw failure()
            }
        }
        bootID = text()
        soakSeed = try number(UInt64.self)
        seed = try number(UInt64.self)
        server = try value(Server.self)
        build = try value(Build.self)
        fault = text()
        injections = try number()
        every = try number(UInt64.self)
        window = try number(UInt64.self)
        counts = SoakCounts()
        counts.armed = try optionalNumber()
        counts.struck = try number()
        counts.stops = try number()
        counts.restarts = try number()
        counts.giveUps = try number()
        counts.otherStops = try number()
        counts.manifested = try number()
        counts.recovered = try number()
        counts.clientVisible = try number()
        counts.clients = try number()
        counts.clientsFailed = try number()
        counts.wrongAnswers = try number()
        counts.clientsTold = try number()
        counts.verdict = try flag()
        counts.workloadRestarts = try optionalNumber()
        counts.stopsBeforeInjection = try number()
        counts.reportsBeforeInjection = try number()
        counts.hang = try flag()
        counts.panic = try flag()
        counts.audit = try value(AuditResult.self)
        switch text() {
        case "none": counts.diskDamaged = nil
        case "clean": counts.diskDamaged = false
        case "damaged": counts.diskDamaged = true
        default: throw failure()
        }
        guard let parsedSeconds = Double(text()) else { throw failure() }
        seconds = parsedSeconds
        command = text()
        consoleTail = text()
    }

    public var key: String { Self.key(soakSeed, bootID) }

    public static func key(_ soakSeed: UInt64, _ bootID: String) -> String { "\(soakSeed) \(bootID)" }

    /// Where the boot stands in its soak's plan (for sorting a process's records).
    func position(in plan: SoakPlan) -> Int {
        let index = Int(bootID.split(separator: "/").dropLast().last ?? "") ?? 0
        let fault = plan.faults.firstIndex(of: self.fault) ?? 0
        let build = plan.builds.firstIndex(of: self.build) ?? 0
        return (index * plan.faults.count + fault) * plan.builds.count + build
    }
}

/// The CSV of a soak's boots.
public typealias SoakFile = CSVFile<SoakRecord>
