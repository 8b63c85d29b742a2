// Output redirection: `CMD > PATH` and `CMD >> PATH`, for the shell's built-in
// commands and for the programs it runs.
//
// Who writes the file. A program prints through the console server (ConsoleAPI's
// `putchar`); it knows nothing of files, may not even be allowed to send to fs, and
// Curio has no file descriptors to hand it. So its output is diverted where it
// already goes: the shell tells the console "the writes of this process are mine"
// (`divert`), and the console, instead of putting such a write on the UART, holds it
// — the writer stays blocked in its `send`, as with any held request — until the
// shell collects the bytes (`collect`); only then does it release the writer. The
// shell writes what it collected to the file through fs. The console is a pipe of
// one message: it keeps no more than the one write a blocked writer made, a writer
// cannot outrun the disk, and no byte is dropped — when the file cannot take more
// (the disk is full) the shell says so and shows the rest on the console.
//
//   program ──write──▶ console ──(held)──▶ shell: collect ──write──▶ fs ──▶ disk
//            ◀─reply──          ◀─────────  after the bytes are taken
//
// A built-in command runs inside the shell, whose `print` also ends in ConsoleAPI:
// there the shell diverts its own output to the file before the console sees it
// (`Console.divertOutput`). Messages about a command rather than from it — its
// errors, its usage — still go to the console (`Console.writeToTerminal`), as a Unix
// shell's go to stderr; a program has no second stream, so everything it prints goes
// to the file.
//
// The file is opened before anything runs, so a bad target — a directory, a missing
// parent, no filesystem — is reported and the command not run: nothing it would
// have printed is lost. `>` truncates, `>>` appends (O_APPEND, so the file's end is
// where each write lands).
//
// The race. The shell names the child to the console right after `spawn`; a child
// that printed before that would reach the UART. The scheduler runs the most urgent
// runnable process, and the shell (priority 4) is more urgent than every program in
// `system.toml` that it can start and that prints (crashme, fstest, the benchmarks,
// the timer clients, the fuzzer: 5 and 6), so no child runs before the shell next
// blocks, which is in the `divert` call itself, and the console (priority 1) answers
// that at once. A program given a priority above the shell's would need a spawn that
// starts it stopped; the kernel has none today, so the shell says when it runs one.
//
// Not done: `|` (no program reads anything but its arguments; only the shell reads
// the console), and redirection of a program started with `&` (the shell collects
// only while it waits). A shell that died while a diversion stood would leave the
// diverted program blocked in its next write; the shell is not restartable.
//
// Syntax. One `>` or `>>` anywhere in the line (sh's rule: `echo a > f b` writes
// "a b"), with or without spaces around it; the next word is the path. There is no
// quoting in Curio's shell, so a `>` is always an operator. `> PATH` alone creates or
// empties the file.

/// Where a command's output goes.
public struct OutputTarget: Equatable, Sendable {
    public var path: [UInt8]
    /// `>>`: add to the end; `>`: replace the contents.
    public var appends: Bool

    public init(path: [UInt8], appends: Bool) {
        self.path = path
        self.appends = appends
    }
}

/// A command line with its redirection taken out.
public struct RedirectedLine: Equatable, Sendable {
    /// The command and its arguments, as typed but for the redirection.
    public var command: [UInt8]
    public var target: OutputTarget?
}

public enum RedirectionError: Error, Equatable, Sendable {
    /// `>` or `>>` with no word after it.
    case missingPath
    /// More than one redirection, or `>>>`.
    case tooManyTargets

    public var explanation: String {
        switch self {
        case .missingPath: "a file name must follow > or >>"
        case .tooManyTargets: "one > or >> per command"
        }
    }
}

public enum Redirection {
    static let greater = UInt8(ascii: ">")
    static let space = UInt8(ascii: " ")

    /// Splits `line` into the command and where its output goes.
    public static func parse(_ line: [UInt8]) throws(RedirectionError) -> RedirectedLine {
        guard let operatorStart = line.firstIndex(of: greater) else { return RedirectedLine(command: line, target: nil) }
        var pathStart = operatorStart + 1
        let appends = pathStart < line.count && line[pathStart] == greater
        if appends { pathStart += 1 }
        while pathStart < line.count && line[pathStart] == space { pathStart += 1 }
        var pathEnd = pathStart
        while pathEnd < line.count && line[pathEnd] != space && line[pathEnd] != greater { pathEnd += 1 }
        guard pathEnd > pathStart else {
            throw pathStart < line.count && line[pathStart] == greater ? .tooManyTargets : .missingPath
        }
        let rest = line[pathEnd...]
        guard !rest.contains(greater) else { throw .tooManyTargets }
        let command = Array(line[..<operatorStart]) + [space] + Array(rest)
        return RedirectedLine(command: trimmed(command), target: OutputTarget(path: Array(line[pathStart..<pathEnd]),
                                                                              appends: appends))
    }

    /// Without leading or trailing spaces, and runs of spaces made one.
    static func trimmed(_ bytes: [UInt8]) -> [UInt8] {
        var result: [UInt8] = []
        for byte in bytes where byte != space || (result.last.map { $0 != space } ?? false) { result.append(byte) }
        if result.last == space { result.removeLast() }
        return result
    }
}

/// The console's side of a diversion: whose writes go to the shell, and the one
/// write held until the shell has taken all of it. Task identities are the raw
/// values of `TaskID`s (0 is never a task), so this stays free of system calls.
public struct DivertedOutput {
    /// The process whose writes are diverted (0: none).
    public private(set) var source: UInt32 = 0
    /// The blocked writer of the held bytes (0: no write is held).
    public private(set) var writer: UInt32 = 0
    private let bytes: UnsafeMutableRawBufferPointer
    private var taken = 0
    private var length = 0

    /// `capacity`: the largest write a client can send (the kernel's message limit).
    public init(capacity: Int) {
        bytes = .allocate(byteCount: capacity, alignment: 8)
    }

    /// Whether a write from `sender` is to be held for the shell.
    public func diverts(_ sender: UInt32) -> Bool { source != 0 && sender == source }

    /// Bytes held and not yet taken.
    public var pendingCount: Int { length - taken }

    /// Starts diverting `source`'s writes (0: stops). What the previous source left
    /// held is handed back, to go to the terminal: `release` is called with the bytes
    /// and then the writer to answer (0 if none).
    public mutating func divert(_ newSource: UInt32, release: (UnsafeRawBufferPointer, UInt32) -> Void) {
        if writer != 0 {
            release(UnsafeRawBufferPointer(rebasing: bytes[taken..<length]), writer)
        }
        source = newSource
        writer = 0
        taken = 0
        length = 0
    }

    /// Holds a diverted write (`diverts(sender)` was true). A source has one thread, so
    /// it cannot write again before it is released; a write that does replaces nothing
    /// and returns false (the caller refuses it).
    public mutating func hold(_ payload: UnsafeRawBufferPointer, from sender: UInt32) -> Bool {
        guard writer == 0, payload.count <= bytes.count else { return false }
        UnsafeMutableRawBufferPointer(rebasing: bytes[0..<payload.count]).copyMemory(from: payload)
        writer = sender
        taken = 0
        length = payload.count
        return true
    }

    /// Copies up to `destination.count` held bytes, oldest first; returns how many.
    /// They stay held until `take` (a reply that fails must not lose them).
    public func peek(into destination: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(pendingCount, destination.count)
        UnsafeMutableRawBufferPointer(rebasing: destination[0..<count])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[taken..<taken + count]))
        return count
    }

    /// Drops `count` delivered bytes; returns the writer to release once none is left (else 0).
    public mutating func take(_ count: Int) -> UInt32 {
        taken = min(taken + count, length)
        guard taken == length, writer != 0 else { return 0 }
        let released = writer
        writer = 0
        taken = 0
        length = 0
        return released
    }
}
