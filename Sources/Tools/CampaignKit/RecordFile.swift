// The campaign's CSV: one record per run (or per soak boot), appended as each ends.
//
// The file is the campaign's memory. A campaign that is interrupted (Ctrl-C, a
// session that ends, a machine that reboots) is started again with the same command;
// it reads the file, skips every run whose (campaign seed, run id) is already there,
// and appends the rest — so a 500-runs-per-kind campaign can be done in pieces, and
// the report is always drawn from the file, never from one process's memory.
//
// The format is RFC 4180 CSV with a header line: fields with a comma, a quote or a
// line break are quoted, quotes doubled, so a console tail (many lines) is one field.
// Each record reaches the file in one `write`. A process killed in the middle of one
// can still leave half a record at the end; opening the file finds where the last
// complete record ends and cuts the rest away before appending, so a torn record can
// never swallow the next one (an open quote would otherwise run on into it).

import Foundation

public enum CampaignError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case notACampaignFile(path: String, header: String)
    case malformedRecord(path: String, record: Int, reason: String)
    case unwritable(path: String, reason: String)
    case noSuchRun(id: String, path: String)
    case missingKernel(build: Build)
    case tool(name: String, output: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .notACampaignFile(let path, let header):
            "\(path) is not a campaign CSV of this version (its header is \"\(header)\")"
        case .malformedRecord(let path, let record, let reason): "\(path), record \(record): \(reason)"
        case .unwritable(let path, let reason): "cannot write \(path): \(reason)"
        case .noSuchRun(let id, let path): "no run \(id) in \(path)"
        case .missingKernel(let build): "no kernel given for the \(build.rawValue) build"
        case .tool(let name, let output): "\(name) failed: \(output)"
        }
    }
}

/// A record a campaign's CSV keeps: its columns, and the key under which a resumed
/// campaign finds it done.
public protocol CSVRecord: Sendable, Equatable {
    static var columns: [String] { get }
    var fields: [String] { get }
    /// Reads a record back; the error names the field that does not parse.
    init(fields: [String]) throws(RecordError)
    /// Unique within a file: the campaign's seed and the run's (or boot's) id.
    var key: String { get }
}

/// A record that does not parse, and the field that does not.
public struct RecordError: Error {
    public var reason: String
    init(_ reason: String) { self.reason = reason }
}

/// One run, as the CSV keeps it.
public struct RunRecord: CSVRecord {
    public var runID: String
    public var campaignSeed: UInt64
    public var seed: UInt64
    public var server: Server
    public var build: Build
    public var fault: String
    public var trigger: Trigger
    public var moment: String
    public var outcome: Outcome
    public var struck: Bool
    public var restarts: Int
    public var clients: Int
    public var clientsFailed: Int
    public var seconds: Double
    /// The kernel command line the run booted with: what a replay boots again.
    public var command: String
    public var evidence: String
    /// The end of the console, kept for the bad outcomes only.
    public var consoleTail: String

    public init(runID: String, campaignSeed: UInt64, seed: UInt64, server: Server, build: Build, fault: String,
                trigger: Trigger, moment: String, outcome: Outcome, struck: Bool, restarts: Int, clients: Int,
                clientsFailed: Int, seconds: Double, command: String, evidence: String, consoleTail: String) {
        self.runID = runID
        self.campaignSeed = campaignSeed
        self.seed = seed
        self.server = server
        self.build = build
        self.fault = fault
        self.trigger = trigger
        self.moment = moment
        self.outcome = outcome
        self.struck = struck
        self.restarts = restarts
        self.clients = clients
        self.clientsFailed = clientsFailed
        self.seconds = seconds
        self.command = command
        self.evidence = evidence
        self.consoleTail = consoleTail
    }

    public static let columns = ["run_id", "campaign_seed", "seed", "server", "build", "fault", "trigger", "moment",
                                 "outcome", "struck", "restarts", "clients", "clients_failed", "seconds", "command",
                                 "evidence", "console_tail"]

    public var fields: [String] {
        [runID, String(campaignSeed), String(seed), server.rawValue, build.rawValue, fault, trigger.rawValue, moment,
         outcome.rawValue, struck ? "yes" : "no", String(restarts), String(clients), String(clientsFailed),
         String(format: "%.2f", seconds), command, evidence, consoleTail]
    }

    /// Reads a record back; the reason names the field that does not parse.
    public init(fields: [String]) throws(RecordError) {
        guard fields.count == Self.columns.count else {
            throw RecordError("\(fields.count) fields, expected \(Self.columns.count)")
        }
        func number<T: FixedWidthInteger>(_ index: Int, as: T.Type) throws(RecordError) -> T {
            guard let value = T(fields[index]) else { throw RecordError("\(Self.columns[index]) \"\(fields[index])\"") }
            return value
        }
        func value<T: RawRepresentable<String>>(_ index: Int, as: T.Type) throws(RecordError) -> T {
            guard let value = T(rawValue: fields[index]) else {
                throw RecordError("\(Self.columns[index]) \"\(fields[index])\"")
            }
            return value
        }
        guard let seconds = Double(fields[13]) else { throw RecordError("seconds \"\(fields[13])\"") }
        self.init(runID: fields[0], campaignSeed: try number(1, as: UInt64.self), seed: try number(2, as: UInt64.self),
                  server: try value(3, as: Server.self), build: try value(4, as: Build.self), fault: fields[5],
                  trigger: try value(6, as: Trigger.self), moment: fields[7], outcome: try value(8, as: Outcome.self),
                  struck: fields[9] == "yes", restarts: try number(10, as: Int.self),
                  clients: try number(11, as: Int.self), clientsFailed: try number(12, as: Int.self),
                  seconds: seconds, command: fields[14], evidence: fields[15], consoleTail: fields[16])
    }

    public var key: String { Self.key(campaignSeed, runID) }

    static func key(_ seed: UInt64, _ runID: String) -> String { "\(seed) \(runID)" }
}

public enum CSV {
    /// One record as a line, with its line break.
    public static func line(_ fields: [String]) -> String {
        fields.map(quoted).joined(separator: ",") + "\n"
    }

    static func quoted(_ field: String) -> String {
        // Bytes, not Characters: "\r\n" is one Character, equal to neither "\r" nor "\n".
        let special: Set<UInt8> = [UInt8(ascii: ","), UInt8(ascii: "\""), UInt8(ascii: "\n"), UInt8(ascii: "\r")]
        guard field.utf8.contains(where: special.contains) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The complete records of `text`, and how many UTF-8 bytes they take: anything
    /// after that is a record cut short (an open quote, or no final line break).
    public static func parse(_ text: String) -> (records: [[String]], completeBytes: Int) {
        var records: [[String]] = []
        var record: [String] = []
        var field: [UInt8] = []
        var quoted = false
        var completeBytes = 0
        let bytes = Array(text.utf8)
        var index = 0
        func endField() {
            record.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
        }
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if index < bytes.count && bytes[index] == UInt8(ascii: "\"") {
                        field.append(byte)
                        index += 1
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(byte)
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): quoted = true
            case UInt8(ascii: ","): endField()
            case UInt8(ascii: "\r"): continue
            case UInt8(ascii: "\n"):
                endField()
                records.append(record)
                record.removeAll()
                completeBytes = index
            default: field.append(byte)
            }
        }
        return (records, completeBytes)
    }
}

/// The CSV of a campaign's runs.
public typealias RecordFile = CSVFile<RunRecord>

/// The CSV of a campaign, opened for resuming and appending. Appends may come from
/// several worker threads at once.
public final class CSVFile<Record: CSVRecord>: @unchecked Sendable {
    public let path: String
    private let lock = NSLock()
    private var stored: [Record]
    private var done: Set<String>

    /// Opens `path`, creating it with its header if it does not exist, and cutting
    /// away a record left incomplete by an interrupted campaign.
    public init(path: String) throws(CampaignError) {
        self.path = path
        let header = CSV.line(Record.columns)
        let manager = FileManager.default
        guard manager.fileExists(atPath: path) else {
            stored = []
            done = []
            guard manager.createFile(atPath: path, contents: Data(header.utf8)) else {
                throw .unwritable(path: path, reason: "cannot create it")
            }
            return
        }
        guard let data = manager.contents(atPath: path) else { throw .unreadable(path: path, reason: "no access") }
        let text = String(decoding: data, as: UTF8.self)
        let (rows, completeBytes) = CSV.parse(text)
        guard let first = rows.first, first == Record.columns else {
            throw .notACampaignFile(path: path, header: String(text.prefix { $0 != "\n" }))
        }
        var records: [Record] = []
        for (number, row) in rows.dropFirst().enumerated() {
            do throws(RecordError) {
                records.append(try Record(fields: row))
            } catch {
                throw .malformedRecord(path: path, record: number + 1, reason: error.reason)
            }
        }
        stored = records
        done = Set(records.map(\.key))
        if completeBytes < data.count {
            do {
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                try handle.truncate(atOffset: UInt64(completeBytes))
                try handle.close()
            } catch {
                throw .unwritable(path: path, reason: "cannot cut the incomplete last record: \(error)")
            }
        }
    }

    /// Every record in the file, oldest first.
    public var records: [Record] {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }

    public func contains(key: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return done.contains(key)
    }

    public func append(_ record: Record) throws(CampaignError) {
        lock.lock()
        defer { lock.unlock() }
        do {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(CSV.line(record.fields).utf8))
        } catch {
            throw .unwritable(path: path, reason: "\(error)")
        }
        stored.append(record)
        done.insert(record.key)
    }
}

extension CSVFile where Record == RunRecord {
    public func contains(runID: String, campaignSeed: UInt64) -> Bool {
        contains(key: RunRecord.key(campaignSeed, runID))
    }
}
