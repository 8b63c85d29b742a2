// The syscall fuzzer's share of `make test`: a bounded, fixed-seed version of
// `make fuzz` (Sources/Tools/Fuzz), three fuzzer processes at once, 90,000 calls in
// all, while illegal-instruction faults restart fs (at random moments) and timer (at
// its Nth request). Afterwards the kernel must not have panicked, the fuzzers must
// have seen no violation of their oracles (a call that must fail succeeding, a write
// outside the buffers they named), the kernel's invariant audit must find nothing,
// no process but a server struck by an injected fault may have been stopped, the
// shell must still read a file byte for byte and run a timer client, and free
// memory must be exactly what it was before the fuzzers started.
//
// Under -icount (sleep=on, for the disk) a loaded host cannot stall a server into
// the watchdog; each fuzzer's calls follow from its seed alone.

import Foundation
import Testing

@Suite(.serialized)
struct SyscallFuzzTests {
    static let seeds = [1_001, 1_002, 1_003]
    static let callsEach = 30_000
    /// An illegal instruction into fs at a random moment, and into timer at its 100th request.
    static let faults = [(target: "fs", fault: "illegal random 2000000"), (target: "timer", fault: "illegal after 100")]

    static var script: String {
        var commands = ["run pingserver &", "cat /README.txt", "run timerclient 100000 3", "mem"]
        // Every other instance as `fuzzpeer`, the same program under the name the other may call.
        commands += seeds.enumerated().map { "run \($0.offset % 2 == 0 ? "fuzzer" : "fuzzpeer") \($0.element) \(callsEach) &" }
        // Three faults per server, 0.5 s apart: restarts too close to count as quick
        // succession only twice, far from the kernel's backoff.
        commands += faults.map { "run timertest 1 100000 150 \($0.fault) faults=3 every=5000000 target=\($0.target) &" }
        commands += ["wait fuzzer fuzzpeer timertest", "audit", "ps", "cat /README.txt", "run timerclient 100000 3", "mem"]
        return commands.joined(separator: "; ")
    }

    /// The kernel's reports (written straight to the UART, in the middle of another
    /// process's line if need be), and the console's lines without them.
    static func separate(_ console: String) -> (reports: [String], lines: [String]) {
        var reports: [String] = []
        var rest = ""
        var remaining = Substring(console.replacingOccurrences(of: "\0", with: ""))
        while let start = remaining.range(of: "[kernel] ") {
            rest += remaining[..<start.lowerBound]
            let report = remaining[start.lowerBound...].prefix(while: { $0 != "\n" })
            reports.append(String(report))
            remaining = remaining[report.endIndex...].dropFirst()
        }
        rest += remaining
        return (reports, rest.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
    }

    /// How the lines of the programs running in the background begin.
    static let backgroundPrefixes = ["fuzzer seed=", "fuzzer VIOLATION", "timerclient ok", "timerclient FAIL",
                                     "timertest ok", "timertest FAIL", "timertest:"]

    /// What the shell printed for each occurrence of `command`, without background lines.
    static func outputs(of command: String, in lines: [String]) -> [[String]] {
        var outputs: [[String]] = []
        var current: [String]?
        for line in lines {
            if line.hasPrefix("curio> ") {
                if let current { outputs.append(current) }
                current = line == "curio> " + command ? [] : nil
            } else if current != nil, !backgroundPrefixes.contains(where: line.hasPrefix) {
                current!.append(line)
            }
        }
        if let current { outputs.append(current) }
        return outputs
    }

    @Test func fuzzersLeaveNoPanicNoDamageAndEveryPageFree() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("fuzz")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = work.appendingPathComponent("disk.img")
        let files = CurioMachine.packageRoot.appendingPathComponent("disk")
        try DiskTools.makeImage(at: image, from: files, blockSize: 1024, megabytes: 32)

        let run = try CurioMachine.run(commands: Self.script, timeout: .seconds(180),
                                       extra: ["-icount", "shift=0,sleep=on"] + DiskTools.qemuArguments(image))
        let (reports, lines) = Self.separate(run.console)
        let tail = run.console.suffix(4000)
        #expect(!run.timedOut, "the machine hung:\n\(tail)")
        #expect(!reports.contains { $0.hasPrefix("[kernel] PANIC") }, "\(reports)")
        #expect(run.exitStatus == 0, "\(tail)")

        for seed in Self.seeds {
            let summary = lines.first { $0.hasPrefix("fuzzer seed=\(seed) calls=") && $0.contains(" ok=") }
            #expect(summary?.hasPrefix("fuzzer seed=\(seed) calls=\(Self.callsEach) ") == true
                    && summary?.hasSuffix(" violations=0") == true, "\(summary ?? "no summary")\n\(tail)")
        }
        #expect(!lines.contains { $0.hasPrefix("fuzzer VIOLATION") }, "\(lines.filter { $0.hasPrefix("fuzzer VIOLATION") })")
        let waited = try #require(Self.outputs(of: "wait fuzzer fuzzpeer timertest", in: lines).first)
        #expect(waited.count == Self.seeds.count + Self.faults.count
                && waited.allSatisfy { $0.hasSuffix("exited with status 0") }, "\(waited)")

        let audit = Self.outputs(of: "audit", in: lines).first?.first ?? "no output"
        #expect(audit.hasPrefix("audit: clean"), "the kernel's invariant audit: \(audit)")

        // Only the injected faults stop anything (each the first stop of its server
        // after the kernel says it struck); nothing is given up.
        var struck: Set<String> = []
        var unexpected: [String] = []
        for report in reports {
            if report.hasPrefix("[kernel] injected "), let into = report.range(of: " into ") {
                struck.insert(String(report[into.upperBound...]))
            }
            if report.contains(") stopped: "),
               struck.remove(String(report.dropFirst(9).prefix { $0 != " " })) == nil {
                unexpected.append(report)
            }
        }
        #expect(unexpected.isEmpty, "\(unexpected)")
        #expect(!reports.contains { $0.contains("gave up on") }, "\(reports)")
        #expect(reports.contains { $0.hasPrefix("[kernel] restarted ") }, "no fault struck while fuzzing:\n\(tail)")

        // The shell still answers: the file reads as on the host, before and after.
        let readme = try String(contentsOf: files.appendingPathComponent("README.txt"), encoding: .utf8)
        let expected = readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLast()
        let reads = Self.outputs(of: "cat /README.txt", in: lines)
        #expect(reads.count == 2 && reads.allSatisfy { $0 == Array(expected) }, "\(reads)")
        #expect(lines.filter { $0.hasPrefix("timerclient ok") }.count == 2 + Self.faults.count, "\(tail)")
        #expect(!(Self.outputs(of: "ps", in: lines).first ?? []).contains { $0.contains(" failed ") })

        let memory = Self.outputs(of: "mem", in: lines).compactMap { $0.first { $0.hasPrefix("total ") } }
        #expect(memory.count == 2 && memory[0] == memory[1], "memory did not come back: \(memory)")
    }
}
