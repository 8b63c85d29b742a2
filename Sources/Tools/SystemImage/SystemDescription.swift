// SystemDescription: system.toml, the one place that says what runs in Curio.
//
// Curio decides authority at build time. Which programs exist, in what order,
// at what priority, with how much memory, which may start others or power the
// machine off, who may send to whom, and which interrupts and device pages
// belong to which server: all of it is written down in system.toml, checked
// here, and compiled by `ImageWriter` into the boot image's program table. The
// kernel never reads text; it enforces the table.
//
// The file is a small subset of TOML, small enough to parse in one pass, line
// by line, with an exact line number for every complaint:
//
//   file     := line*
//   line     := space* (table | pair)? space* comment? NEWLINE
//   comment  := '#' any*                    (anywhere outside a string)
//   table    := '[' 'program' '.' NAME ']'  (spaces allowed inside the brackets)
//   pair     := KEY space* '=' space* value
//   value    := integer | string | boolean | array
//   integer  := decimal | '0x' hex          digits may be separated by '_';
//                                           no sign, no leading zeros
//   string   := '"' (any byte but '"', '\' and control bytes)* '"'   (no escapes)
//   boolean  := 'true' | 'false'
//   array    := '[' (scalar (',' scalar)* ','?)? ']'    on one line, one element type
//   KEY      := [A-Za-z0-9_-]+
//   NAME     := 1 to 15 of [a-z0-9_-]       (a Curio program name)
//
// Everything else TOML has (dotted keys, inline tables, floats, dates,
// multi-line strings and arrays, arrays of tables) is refused as a syntax
// error rather than half-understood.
//
// Each `[program.NAME]` table describes one program; the programs' order in
// the file is their index in the image (and the bit number in send masks).
// Keys:
//
//   module          string, required   SwiftPM module; its ELF is <module>.elf
//   priority        integer, required  0 (most urgent) ... 7
//   memory          integer, required  budget in KiB, a multiple of 4, > 0
//   stack           integer, required  KiB, a multiple of 4, > 0
//   heap            integer, required  KiB, a multiple of 4 (0 allowed)
//   start           boolean            started at boot (default false)
//   manage          boolean            may spawn, kill, power off (default false)
//   boot_arguments  boolean            gets the kernel command line (default false)
//   restartable     boolean            restarted from its pristine image when it faults
//                                      (default false: a faulting program is just stopped)
//   ssr             integer            KiB of server state per client, a multiple of 4,
//                                      at most 16 (default 0: no server state regions)
//   reply_limit     integer            ms, 1...65535: a client kept waiting this long for
//                                      the server's reply means the server forgot the
//                                      request; it is restarted (needs restartable;
//                                      default none, for servers that hold requests long)
//   promises        boolean            holds every request it does not answer at once
//                                      to a promised time (`promiseReply`); idle with a
//                                      request held unpromised or past its promise, it
//                                      forgot it and is restarted (needs restartable)
//   keep_ssrs       boolean            a client restarted from its pristine image when it
//                                      faults, keeping its SSRs: what servers hold for it
//                                      (open files, timers) waits for its next incarnation
//                                      (not with restartable)
//   sends           [string]           programs it may send to (default none)
//   interrupts      [integer]          PLIC sources it owns, 1...1023, at most 8
//   devices         [string]           "0xBASE+0xSIZE" MMIO ranges, page-aligned, at most 2
//   version_of      string             the restartable server this program is another
//                                      version of, defined above it: `upgrade` may replace
//                                      the running server with it (Kernel+Upgrade.swift).
//                                      A version has that server's authority: it may not
//                                      set start, manage, boot_arguments, restartable,
//                                      ssr, reply_limit, promises, sends, interrupts or
//                                      devices, and is never started on its own
//
// Beyond each value's own rules, the description must be consistent as a
// whole: stack + heap fit in the budget, `sends` names programs that exist (in
// any order in the file) and not the program itself, no interrupt has two
// owners, no two device ranges overlap, and there are 1 to 64 programs.

import CurioABI
import KernelCore

public struct DeviceRange: Equatable, Sendable {
    public var base: UInt64
    public var size: UInt64

    public init(base: UInt64, size: UInt64) {
        self.base = base
        self.size = size
    }

    func overlaps(_ other: DeviceRange) -> Bool {
        base < other.base + other.size && other.base < base + size
    }
}

public struct ProgramDescription: Equatable, Sendable {
    public var name: String
    public var module: String
    public var priority: Int
    public var memoryKiB: Int
    public var stackKiB: Int
    public var heapKiB: Int
    public var startsAtBoot: Bool
    public var mayManage: Bool
    public var receivesBootArguments: Bool
    public var restartable: Bool = false
    public var ssrKiB: Int = 0
    public var replyLimitMilliseconds: Int = 0
    public var promisesReplies: Bool = false
    /// A client restarted when it faults, keeping its SSRs (`keep_ssrs`).
    public var keepsSSRs: Bool = false
    public var sends: [String]
    public var interrupts: [UInt32]
    public var devices: [DeviceRange]
    /// The program this one is a version of (`version_of`), whose authority it has.
    public var versionOf: String?
}

public struct SystemDescription: Equatable, Sendable {
    public static let kibibytesPerPage = 4
    public static let maxInterruptSource: UInt64 = 1023

    public var programs: [ProgramDescription]

    public init(parsing text: String) throws(SystemDescriptionError) {
        var parser = DescriptionParser()
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            try parser.consume(Array(line.utf8), line: lineNumber)
        }
        programs = try parser.finish(lastLine: lineNumber)
    }

    public func index(of name: String) -> Int? {
        programs.firstIndex { $0.name == name }
    }

    /// Bit i set for every program i that `program` may send to.
    public func sendMask(of program: ProgramDescription) -> UInt64 {
        program.sends.reduce(0) { mask, name in mask | 1 << UInt64(index(of: name)!) }
    }
}

public struct SystemDescriptionError: Error, Equatable, CustomStringConvertible {
    public enum Problem: Equatable, Sendable {
        /// The line is not valid in the TOML subset; the text says what was expected.
        case syntax(String)
        /// A table other than `[program.NAME]`.
        case unknownTable(String)
        case invalidProgramName(String)
        case duplicateProgram(String)
        case tooManyPrograms
        case noPrograms
        case keyOutsideProgram(String)
        case unknownKey(String)
        case duplicateKey(String)
        case missingKey(String)
        case badValue(key: String, reason: String)
        /// `sends` names a program the file does not define.
        case undefinedProgram(String)
    }

    public var line: Int
    public var problem: Problem

    public init(line: Int, _ problem: Problem) {
        self.line = line
        self.problem = problem
    }

    public var description: String { "line \(line): \(message)" }

    public var message: String {
        switch problem {
        case .syntax(let expected): "syntax error: \(expected)"
        case .unknownTable(let table): "unknown table [\(table)]; only [program.NAME] tables are allowed"
        case .invalidProgramName(let name):
            "invalid program name '\(name)': 1 to \(ProgramName.maxLength) characters of a-z, 0-9, '-', '_'"
        case .duplicateProgram(let name): "program '\(name)' is defined twice"
        case .tooManyPrograms: "more than \(BootImageFormat.maxPrograms) programs"
        case .noPrograms: "no programs are defined"
        case .keyOutsideProgram(let key): "key '\(key)' outside a [program.NAME] table"
        case .unknownKey(let key): "unknown key '\(key)'"
        case .duplicateKey(let key): "key '\(key)' is set twice"
        case .missingKey(let key): "required key '\(key)' is missing"
        case .badValue(let key, let reason): "bad value for '\(key)': \(reason)"
        case .undefinedProgram(let name): "'sends' names undefined program '\(name)'"
        }
    }
}

// MARK: - Values

private enum Value {
    case integer(UInt64)
    case string(String)
    case boolean(Bool)
    case array([Value])

    var typeName: String {
        switch self {
        case .integer: "an integer"
        case .string: "a string"
        case .boolean: "a boolean"
        case .array: "an array"
        }
    }
}

/// Reads one line's bytes; every failure is a syntax error at that line.
private struct LineScanner {
    let bytes: [UInt8]
    let line: Int
    var position = 0

    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipSpaces() {
        while current == UInt8(ascii: " ") || current == UInt8(ascii: "\t") || current == UInt8(ascii: "\r") {
            position += 1
        }
    }

    /// Only spaces and a comment may follow.
    mutating func expectEndOfLine() throws(SystemDescriptionError) {
        skipSpaces()
        guard current == nil || current == UInt8(ascii: "#") else {
            throw syntax("unexpected '\(rest)'")
        }
    }

    mutating func expect(_ character: Character, _ what: String) throws(SystemDescriptionError) {
        skipSpaces()
        guard current == character.asciiValue else { throw syntax("expected \(what)") }
        position += 1
    }

    /// A run of [A-Za-z0-9_-], possibly empty.
    mutating func bareWord() -> String {
        let start = position
        while let byte = current, isBareKeyByte(byte) {
            position += 1
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    mutating func value() throws(SystemDescriptionError) -> Value {
        skipSpaces()
        guard current == UInt8(ascii: "[") else { return try scalar() }
        position += 1
        var elements: [Value] = []
        while true {
            skipSpaces()
            if current == UInt8(ascii: "]") { break }
            if current == UInt8(ascii: "[") { throw syntax("nested arrays are not supported") }
            let element = try scalar()
            if let first = elements.first, first.typeName != element.typeName {
                throw syntax("array elements must all be of one type")
            }
            elements.append(element)
            skipSpaces()
            if current == UInt8(ascii: ",") {
                position += 1
            } else if current != UInt8(ascii: "]") {
                throw syntax("expected ',' or ']' in array (arrays must fit on one line)")
            }
        }
        position += 1
        return .array(elements)
    }

    private mutating func scalar() throws(SystemDescriptionError) -> Value {
        skipSpaces()
        switch current {
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            throw syntax("signed numbers are not supported")
        case let byte? where isBareKeyByte(byte):
            let word = bareWord()
            if word == "true" { return .boolean(true) }
            if word == "false" { return .boolean(false) }
            guard let first = word.first, first.isNumber else { throw syntax("expected a value, found '\(word)'") }
            return .integer(try integer(word))
        default:
            throw syntax("expected a value")
        }
    }

    private mutating func string() throws(SystemDescriptionError) -> String {
        position += 1
        let start = position
        while let byte = current, byte != UInt8(ascii: "\"") {
            if byte == UInt8(ascii: "\\") { throw syntax("escape sequences are not supported") }
            if byte < 0x20 || byte == 0x7F { throw syntax("control character in string") }
            position += 1
        }
        guard current != nil else { throw syntax("unterminated string") }
        let contents = bytes[start..<position]
        position += 1
        guard let text = String(validating: contents, as: UTF8.self) else { throw syntax("string is not UTF-8") }
        return text
    }

    private func integer(_ word: String) throws(SystemDescriptionError) -> UInt64 {
        let hex = word.hasPrefix("0x")
        let digits = hex ? word.dropFirst(2) : Substring(word)
        guard !digits.isEmpty, digits.first != "_", digits.last != "_", !digits.contains("__") else {
            throw syntax("bad integer '\(word)'")
        }
        guard hex || digits == "0" || digits.first != "0" else {
            throw syntax("leading zeros are not allowed in '\(word)'")
        }
        guard let value = UInt64(digits.filter { $0 != "_" }, radix: hex ? 16 : 10) else {
            throw syntax("bad integer '\(word)'")
        }
        return value
    }

    private var rest: String { String(decoding: bytes[position...], as: UTF8.self) }

    func syntax(_ message: String) -> SystemDescriptionError {
        SystemDescriptionError(line: line, .syntax(message))
    }
}

private func isBareKeyByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
         UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
        true
    default:
        false
    }
}

// MARK: - Programs

/// A program whose table is still being read: every key is optional until the
/// table ends, and remembers its line for the checks that need the whole file.
private struct ProgramDraft {
    let name: String
    let line: Int
    var keyLines: [String: Int] = [:]
    var module: String?
    var priority: Int?
    var memoryKiB: Int?
    var stackKiB: Int?
    var heapKiB: Int?
    var startsAtBoot = false
    var mayManage = false
    var receivesBootArguments = false
    var restartable = false
    var ssrKiB = 0
    var replyLimit = 0
    var promisesReplies = false
    var keepsSSRs = false
    var sends: [String] = []
    var interrupts: [UInt32] = []
    var devices: [DeviceRange] = []
    var versionOf: String?

    /// The keys that grant authority, which a version takes from its program instead.
    static let authorityKeys = ["start", "manage", "boot_arguments", "restartable", "ssr", "reply_limit", "promises",
                                "keep_ssrs", "sends", "interrupts", "devices"]

    mutating func set(_ key: String, to value: Value, line: Int) throws(SystemDescriptionError) {
        guard keyLines[key] == nil else { throw SystemDescriptionError(line: line, .duplicateKey(key)) }
        func bad(_ reason: String) -> SystemDescriptionError {
            SystemDescriptionError(line: line, .badValue(key: key, reason: reason))
        }
        func kibibytes(allowZero: Bool) throws(SystemDescriptionError) -> Int {
            guard case .integer(let amount) = value else { throw bad("expected an integer, found \(value.typeName)") }
            let kibibytesPerPage = UInt64(SystemDescription.kibibytesPerPage)
            guard amount % kibibytesPerPage == 0 else { throw bad("\(amount) KiB is not a multiple of 4 KiB pages") }
            guard allowZero || amount > 0 else { throw bad("must be more than 0 KiB") }
            guard amount / kibibytesPerPage <= UInt64(UInt32.max) else { throw bad("\(amount) KiB is too large") }
            return Int(amount)
        }
        func boolean() throws(SystemDescriptionError) -> Bool {
            guard case .boolean(let flag) = value else { throw bad("expected true or false, found \(value.typeName)") }
            return flag
        }
        func array() throws(SystemDescriptionError) -> [Value] {
            guard case .array(let elements) = value else { throw bad("expected an array, found \(value.typeName)") }
            return elements
        }

        switch key {
        case "module":
            guard case .string(let module) = value else { throw bad("expected a string, found \(value.typeName)") }
            guard isIdentifier(module) else { throw bad("'\(module)' is not a Swift module name") }
            self.module = module
        case "priority":
            guard case .integer(let priority) = value, priority <= UInt64(BootImageFormat.maxPriority) else {
                throw bad("expected an integer from 0 to \(BootImageFormat.maxPriority)")
            }
            self.priority = Int(priority)
        case "memory":
            memoryKiB = try kibibytes(allowZero: false)
        case "stack":
            stackKiB = try kibibytes(allowZero: false)
        case "heap":
            heapKiB = try kibibytes(allowZero: true)
        case "start":
            startsAtBoot = try boolean()
        case "manage":
            mayManage = try boolean()
        case "boot_arguments":
            receivesBootArguments = try boolean()
        case "restartable":
            restartable = try boolean()
        case "ssr":
            let kibibytes = try kibibytes(allowZero: true)
            guard kibibytes <= SSRWindow.maxPages * SystemDescription.kibibytesPerPage else {
                throw bad("at most \(SSRWindow.maxPages * SystemDescription.kibibytesPerPage) KiB per client")
            }
            ssrKiB = kibibytes
        case "promises":
            promisesReplies = try boolean()
        case "keep_ssrs":
            keepsSSRs = try boolean()
        case "reply_limit":
            guard case .integer(let milliseconds) = value else { throw bad("expected an integer, found \(value.typeName)") }
            guard milliseconds >= 1, milliseconds <= 65535 else { throw bad("\(milliseconds) ms is not in 1...65535") }
            replyLimit = Int(milliseconds)
        case "sends":
            for element in try array() {
                guard case .string(let target) = element else { throw bad("expected program names") }
                guard !sends.contains(target) else { throw bad("'\(target)' is listed twice") }
                guard target != name else { throw bad("a program cannot send to itself") }
                sends.append(target)
            }
        case "interrupts":
            let elements = try array()
            guard elements.count <= BootImageFormat.maxInterrupts else {
                throw bad("at most \(BootImageFormat.maxInterrupts) interrupts")
            }
            for element in elements {
                guard case .integer(let source) = element, (1...SystemDescription.maxInterruptSource).contains(source)
                else { throw bad("interrupts are PLIC sources from 1 to \(SystemDescription.maxInterruptSource)") }
                guard !interrupts.contains(UInt32(source)) else { throw bad("interrupt \(source) is listed twice") }
                interrupts.append(UInt32(source))
            }
        case "devices":
            let elements = try array()
            guard elements.count <= BootImageFormat.maxDevices else {
                throw bad("at most \(BootImageFormat.maxDevices) devices")
            }
            for element in elements {
                guard case .string(let text) = element else { throw bad("expected strings \"0xBASE+0xSIZE\"") }
                let device = try deviceRange(text, line: line, key: key)
                guard !devices.contains(where: device.overlaps) else { throw bad("'\(text)' overlaps another device") }
                devices.append(device)
            }
        case "version_of":
            guard case .string(let target) = value else { throw bad("expected a program name, found \(value.typeName)") }
            guard target != name else { throw bad("a program cannot be a version of itself") }
            versionOf = target
        default:
            throw SystemDescriptionError(line: line, .unknownKey(key))
        }
        keyLines[key] = line
    }

    func finished() throws(SystemDescriptionError) -> ProgramDescription {
        guard let module else { throw SystemDescriptionError(line: line, .missingKey("module")) }
        guard let priority else { throw SystemDescriptionError(line: line, .missingKey("priority")) }
        guard let memoryKiB else { throw SystemDescriptionError(line: line, .missingKey("memory")) }
        guard let stackKiB else { throw SystemDescriptionError(line: line, .missingKey("stack")) }
        guard let heapKiB else { throw SystemDescriptionError(line: line, .missingKey("heap")) }
        guard stackKiB + heapKiB <= memoryKiB else {
            throw SystemDescriptionError(line: keyLines["memory"] ?? line, .badValue(
                key: "memory", reason: "\(memoryKiB) KiB is less than stack + heap (\(stackKiB + heapKiB) KiB)"))
        }
        var program = ProgramDescription(
            name: name, module: module, priority: priority, memoryKiB: memoryKiB, stackKiB: stackKiB,
            heapKiB: heapKiB, startsAtBoot: startsAtBoot, mayManage: mayManage,
            receivesBootArguments: receivesBootArguments, sends: sends, interrupts: interrupts, devices: devices)
        guard replyLimit == 0 || restartable else {
            throw SystemDescriptionError(line: keyLines["reply_limit"] ?? line, .badValue(
                key: "reply_limit", reason: "only a restartable server can be restarted for forgetting a request"))
        }
        guard !promisesReplies || restartable else {
            throw SystemDescriptionError(line: keyLines["promises"] ?? line, .badValue(
                key: "promises", reason: "only a restartable server can be restarted for a broken promise"))
        }
        guard !keepsSSRs || !restartable else {
            throw SystemDescriptionError(line: keyLines["keep_ssrs"] ?? line, .badValue(
                key: "keep_ssrs", reason: "a restartable server keeps its clients' SSRs anyway; this is for clients"))
        }
        program.restartable = restartable
        program.promisesReplies = promisesReplies
        program.keepsSSRs = keepsSSRs
        program.ssrKiB = ssrKiB
        program.replyLimitMilliseconds = replyLimit
        program.versionOf = versionOf
        if versionOf != nil, let key = Self.authorityKeys.first(where: { keyLines[$0] != nil }) {
            throw SystemDescriptionError(line: keyLines[key]!, .badValue(
                key: key, reason: "a version has the authority of the program it is a version of"))
        }
        return program
    }
}

/// "0xBASE+0xSIZE" (either number may also be decimal): whole pages, not wrapping around.
private func deviceRange(_ text: String, line: Int, key: String) throws(SystemDescriptionError) -> DeviceRange {
    func bad(_ reason: String) -> SystemDescriptionError {
        SystemDescriptionError(line: line, .badValue(key: key, reason: reason))
    }
    let parts = text.split(separator: "+", omittingEmptySubsequences: false)
    guard parts.count == 2 else { throw bad("'\(text)' is not of the form \"0xBASE+0xSIZE\"") }
    var numbers: [UInt64] = []
    for part in parts {
        var scanner = LineScanner(bytes: Array(part.utf8), line: line)
        guard case .integer(let number)? = try? scanner.value(), (try? scanner.expectEndOfLine()) != nil else {
            throw bad("'\(text)' is not of the form \"0xBASE+0xSIZE\"")
        }
        numbers.append(number)
    }
    let device = DeviceRange(base: numbers[0], size: numbers[1])
    guard device.size > 0, device.base % BootImageFormat.pageSize == 0, device.size % BootImageFormat.pageSize == 0
    else { throw bad("'\(text)' must be a non-empty range of whole \(BootImageFormat.pageSize)-byte pages") }
    guard device.size <= UInt64.max - device.base else { throw bad("'\(text)' wraps around the address space") }
    return device
}

private func isIdentifier(_ text: String) -> Bool {
    guard let first = text.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
    return text.utf8.allSatisfy { isBareKeyByte($0) && $0 != UInt8(ascii: "-") }
}

private func isProgramName(_ text: String) -> Bool {
    Array(text.utf8).withUnsafeBytes { ProgramName($0) != nil }
}

// MARK: - The file

private struct DescriptionParser {
    var finished: [ProgramDescription] = []
    var keyLines: [[String: Int]] = []
    var current: ProgramDraft?

    mutating func consume(_ bytes: [UInt8], line: Int) throws(SystemDescriptionError) {
        var scanner = LineScanner(bytes: bytes, line: line)
        scanner.skipSpaces()
        switch scanner.current {
        case nil, UInt8(ascii: "#"):
            return
        case UInt8(ascii: "["):
            scanner.position += 1
            if scanner.current == UInt8(ascii: "[") { throw scanner.syntax("arrays of tables are not supported") }
            scanner.skipSpaces()
            let table = scanner.bareWord()
            scanner.skipSpaces()
            guard table == "program", scanner.current == UInt8(ascii: ".") else {
                throw SystemDescriptionError(line: line, .unknownTable(table))
            }
            scanner.position += 1
            scanner.skipSpaces()
            let name = scanner.bareWord()
            try scanner.expect("]", "']' after the program name")
            try scanner.expectEndOfLine()
            try beginProgram(name, line: line)
        default:
            let key = scanner.bareWord()
            guard !key.isEmpty else { throw scanner.syntax("expected a key or a [table]") }
            try scanner.expect("=", "'=' after '\(key)'")
            let value = try scanner.value()
            try scanner.expectEndOfLine()
            guard current != nil else { throw SystemDescriptionError(line: line, .keyOutsideProgram(key)) }
            try current!.set(key, to: value, line: line)
        }
    }

    mutating func finish(lastLine: Int) throws(SystemDescriptionError) -> [ProgramDescription] {
        try closeProgram()
        guard !finished.isEmpty else { throw SystemDescriptionError(line: lastLine, .noPrograms) }

        var interruptOwners: [UInt32: String] = [:]
        var deviceOwners: [(DeviceRange, String)] = []
        for (index, program) in finished.enumerated() {
            for target in program.sends where !finished.contains(where: { $0.name == target }) {
                throw SystemDescriptionError(line: keyLines[index]["sends"]!, .undefinedProgram(target))
            }
            // A version runs only in its program's place: its hardware is that program's.
            guard program.versionOf == nil else { continue }
            for source in program.interrupts {
                if let owner = interruptOwners[source] {
                    throw SystemDescriptionError(line: keyLines[index]["interrupts"]!, .badValue(
                        key: "interrupts", reason: "interrupt \(source) already belongs to '\(owner)'"))
                }
                interruptOwners[source] = program.name
            }
            for device in program.devices {
                if let (_, owner) = deviceOwners.first(where: { $0.0.overlaps(device) }) {
                    throw SystemDescriptionError(line: keyLines[index]["devices"]!, .badValue(
                        key: "devices", reason: "overlaps a device of '\(owner)'"))
                }
                deviceOwners.append((device, program.name))
            }
        }
        return finished
    }

    private mutating func beginProgram(_ name: String, line: Int) throws(SystemDescriptionError) {
        try closeProgram()
        guard isProgramName(name) else { throw SystemDescriptionError(line: line, .invalidProgramName(name)) }
        guard !finished.contains(where: { $0.name == name }) else {
            throw SystemDescriptionError(line: line, .duplicateProgram(name))
        }
        guard finished.count < BootImageFormat.maxPrograms else {
            throw SystemDescriptionError(line: line, .tooManyPrograms)
        }
        current = ProgramDraft(name: name, line: line)
    }

    private mutating func closeProgram() throws(SystemDescriptionError) {
        guard let draft = current else { return }
        var program = try draft.finished()
        if let target = program.versionOf {
            func bad(_ reason: String) -> SystemDescriptionError {
                SystemDescriptionError(line: draft.keyLines["version_of"]!, .badValue(key: "version_of", reason: reason))
            }
            guard let original = finished.first(where: { $0.name == target }) else {
                throw bad("'\(target)' is not a program defined above")
            }
            guard original.versionOf == nil else { throw bad("'\(target)' is itself a version of another program") }
            guard original.restartable else { throw bad("only a restartable server can be upgraded") }
            program.startsAtBoot = false
            program.mayManage = false
            program.receivesBootArguments = false
            program.restartable = true
            program.ssrKiB = original.ssrKiB
            program.replyLimitMilliseconds = original.replyLimitMilliseconds
            program.promisesReplies = original.promisesReplies
            program.sends = original.sends
            program.interrupts = original.interrupts
            program.devices = original.devices
        }
        finished.append(program)
        keyLines.append(draft.keyLines)
        current = nil
    }
}
