// `make fuzz [SECONDS=S] [SEED=N] [CALLS=N] [INSTANCES=K]`: the syscall fuzzer's host
// driver.
//
// One round boots Curio as `make run` does (same machine, a copy of the disk image,
// so the fuzzers' files never reach the real one), under `-icount shift=0,sleep=on`:
// the guest's clock counts the instructions it executes, so a host busy with other
// work cannot stall a server long enough for the 50 ms watchdog to call it hung,
// while idle time still passes at the host's pace for the disk. The shell script
//
//   1. starts pingserver, reads a file and runs a timer client (every server has
//      served once, so whatever a first request allocates is allocated), says `mem`;
//   2. starts INSTANCES fuzzers at once (`run fuzzer SEED_i CALLS/INSTANCES &`, every
//      other one as `fuzzpeer`, the same program under the name the other may
//      call), the seeds derived from SEED and the round, and meanwhile injects
//      faults into fs, storage and timer (one `timertest` each, whose own timer
//      client checks the timer service through its restarts), one every 1.5 s per
//      server: fewer than the kernel's backoff ever gives up on. The faults rotate
//      with the round: illegal instructions, register bit flips and endless loops
//      (the watchdog) into fs and storage; the timer, whose clients must not
//      notice, gets only the transparent ones, illegal instructions and loops; each
//      strikes at a random moment in even rounds, at the 300th request in odd ones;
//   3. waits for all of them, then asks for the kernel's invariant audit (every
//      frame has one owner, charges add up, every queue and binding names a live
//      partner), `ps` and `ssr`, reads the file again, runs a timer client, and
//      says `mem` again.
//
// The round passes when the kernel did not panic and the machine powered off in
// time; every fuzzer printed its summary without violations and exited 0; the
// audit found nothing; no process was stopped but a server an injected fault had
// just struck, and none was given up; the file read the same before and after; the
// timer clients and timertests passed; no server is left failed; and free memory is
// exactly what it was before the fuzzers. Rounds repeat, each with the next seeds,
// until SECONDS have passed (at least one). The tool prints the seed, each round's
// instance seeds and faults and a verdict, and on a failure the reasons, the
// commands that run the same round and boot the same machine again, and the end of
// the console, with the kernel's trap address symbolized if it panicked; it exits
// non-zero on a failure. QEMU is stopped after --timeout seconds (a hang), by
// SIGKILL if SIGTERM is not enough (a guest in an interrupt storm can keep QEMU
// from acting on it).
//
// A fuzzer instance's calls follow from its seed, so `run fuzzer SEED N` repeats an
// instance (with `trace=K` to print its calls from the Kth); the timing between
// instances and of the injected faults is the host's and does not repeat.
//
// usage: curio-fuzz [--seconds S] [--seed N] [--round R] [--calls N] [--instances K]
//                   [--kernel ELF] [--disk IMAGE] [--timeout S] [--toolchain DIR]
//                   [--no-faults] [--log PREFIX]
//        (--round: start at round R; --log: keep each round's console in PREFIX-round-R.txt)

import Foundation

struct Settings {
    var seconds = 0.0
    var seed = UInt64.random(in: 1...999_999_999)
    var calls = 1_000_000
    var instances = 4
    var kernel = "build/kernel.elf"
    var disk = "build/disk.img"
    var timeout = 900.0
    var toolchain = "/opt/swift/usr/bin"
    var faults = true
    var firstRound = 0
    var log: String?

    init(_ arguments: [String]) {
        var index = 0
        func value() -> String {
            index += 1
            guard index < arguments.count else { fail("\(arguments[index - 1]) needs a value") }
            return arguments[index]
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--seconds": seconds = Double(value()) ?? 0
            case "--seed":
                guard let number = UInt64(value()) else { fail("--seed takes a decimal number") }
                seed = number
            case "--calls":
                guard let number = Int(value()) else { fail("--calls takes a number") }
                calls = number
            case "--instances": instances = max(1, Int(value()) ?? 4)
            case "--kernel": kernel = value()
            case "--disk": disk = value()
            case "--timeout": timeout = Double(value()) ?? timeout
            case "--toolchain": toolchain = value()
            case "--no-faults": faults = false
            case "--round":
                guard let number = Int(value()), number >= 0 else { fail("--round takes a number") }
                firstRound = number
            case "--log": log = value()
            default: fail("unknown argument \(arguments[index])")
            }
            index += 1
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("curio-fuzz: \(message)\n".utf8))
    exit(2)
}

/// splitmix64: the instance seeds of a round, far apart and all from one number.
func derivedSeed(_ seed: UInt64, round: Int, instance: Int) -> UInt64 {
    var mixed = seed &+ UInt64(round) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(instance + 1) &* 0xBF58_476D_1CE4_E5B9
    mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
    mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
    return (mixed ^ (mixed >> 31)) % 1_000_000_000_000
}

/// The fuzzer runs as two programs so that its instances can call each other.
let fuzzerPrograms = ["fuzzer", "fuzzpeer"]

/// The servers whose restarts the round provokes, each by its own `timertest`.
let faultTargets = ["fs", "storage", "timer", "net"]
let checkedFile = "/README.txt"

/// The fault each server gets in a round, kind and trigger (see the essay).
func faults(round: Int) -> [String] {
    let kinds = ["illegal", "reg-flip", "loop"]
    let trigger = round % 2 == 0 ? "random 10000000" : "after 300"
    return [kinds[(round + 1) % 3], kinds[round % 3], round % 4 < 2 ? "illegal" : "loop", kinds[(round + 2) % 3]]
        .map { "\($0) \(trigger)" }
}

func script(seeds: [UInt64], callsEach: Int, faults: [String]?) -> String {
    var commands = ["run pingserver &", "cat \(checkedFile)", "run timerclient 100000 3", "mem"]
    commands += seeds.enumerated().map { "run \(fuzzerPrograms[$0.offset % 2]) \($0.element) \(callsEach) &" }
    if let faults {
        // 6 faults 1.5 s apart, each within a second of being armed: restarts stay
        // too far apart for the kernel to give a server up.
        commands += zip(faultTargets, faults).map { target, fault in
            "run timertest 1 100000 800 \(fault) faults=6 every=15000000 target=\(target) &"
        }
    }
    commands += ["wait fuzzer fuzzpeer timertest", "audit", "ps", "ssr", "cat \(checkedFile)", "run timerclient 100000 5",
                 "mem"]
    return commands.joined(separator: "; ")
}

func qemuArguments(settings: Settings, disk: String, commands: String) -> [String] {
    ["qemu-system-riscv64", "-machine", "virt", "-m", "128M", "-smp", "1", "-nographic", "-bios", "default",
     "-icount", "shift=0,sleep=on", "-global", "virtio-mmio.force-legacy=false", "-kernel", settings.kernel,
     "-drive", "file=\(disk),format=raw,if=none,id=disk0", "-device", "virtio-blk-device,drive=disk0",
     "-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-device,netdev=n0,bus=virtio-mmio-bus.0",
     "-append", commands]
}

/// Runs a program to its end or until `timeout`; `finished` is false if it was stopped.
func execute(_ executable: String, _ arguments: [String], timeout: TimeInterval, input: String? = nil)
    -> (output: String, status: Int32, finished: Bool) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let inputPipe = Pipe()
    process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
    guard (try? process.run()) != nil else { return ("cannot start \(executable)", -1, false) }
    if let input {
        inputPipe.fileHandleForWriting.write(Data(input.utf8))
        try? inputPipe.fileHandleForWriting.close()
    }
    let timer = DispatchWorkItem {
        guard process.isRunning else { return }
        process.terminate()
        // A guest in an interrupt storm can keep QEMU from acting on SIGTERM.
        Thread.sleep(forTimeInterval: 5)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    timer.cancel()
    return (String(decoding: data, as: UTF8.self), process.terminationStatus, process.terminationReason == .exit)
}

/// The console from the kernel's banner on, CR LF folded, NUL bytes (which the
/// serial line sometimes carries) dropped.
func consoleText(_ output: String) -> String {
    let text = output.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "")
        .replacingOccurrences(of: "\0", with: "")
    return String(text[(text.range(of: "Curio: ")?.lowerBound ?? text.startIndex)...])
}

/// The kernel writes its reports straight to the UART, in the middle of a line some
/// process is printing if need be: its reports, and the console's lines without them.
func separateKernelReports(_ text: String) -> (reports: [String], lines: [String]) {
    var reports: [String] = []
    var rest = ""
    var remaining = Substring(text)
    while let start = remaining.range(of: "[kernel] ") {
        rest += remaining[..<start.lowerBound]
        let report = remaining[start.lowerBound...].prefix(while: { $0 != "\n" })
        reports.append(String(report))
        remaining = remaining[report.endIndex...].dropFirst()
    }
    rest += remaining
    return (reports, rest.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
}

/// How the lines of programs running in the background begin.
let backgroundPrefixes = ["fuzzer seed=", "fuzzer VIOLATION", "timerclient ok", "timerclient FAIL",
                          "timertest ok", "timertest FAIL", "timertest:"]

/// The lines each shell command printed (its echo `curio> COMMAND` to the next echo),
/// by position in the script. Background programs' lines are left out: they print
/// whenever they run.
func commandOutputs(_ lines: [String]) -> [(command: String, lines: [String])] {
    var outputs: [(command: String, lines: [String])] = []
    for line in lines {
        if line.hasPrefix("curio> ") {
            outputs.append((String(line.dropFirst(7)), []))
        } else if !outputs.isEmpty, !backgroundPrefixes.contains(where: line.hasPrefix) {
            outputs[outputs.count - 1].lines.append(line)
        }
    }
    return outputs
}

func freeMemory(_ lines: [String]) -> Int? {
    guard let line = lines.first(where: { $0.hasPrefix("total ") }),
          let range = line.range(of: "free ") else { return nil }
    return Int(line[range.upperBound...].prefix(while: \.isNumber))
}

/// "pc 0x..." and "ra 0x..." of a kernel panic, named by llvm-symbolizer and swift-demangle.
func symbolizedPanic(_ line: String, settings: Settings) -> [String] {
    var names: [String] = []
    for register in ["pc", "ra"] {
        guard let range = line.range(of: register + " 0x") else { continue }
        let address = "0x" + line[range.upperBound...].prefix(while: \.isHexDigit)
        let symbolizer = execute(settings.toolchain + "/llvm-symbolizer", ["--obj=\(settings.kernel)", address],
                                 timeout: 60)
        let demangled = execute(settings.toolchain + "/swift-demangle", ["--simplified"], timeout: 60,
                                input: symbolizer.output)
        let text = demangled.output.split(separator: "\n").prefix(2).joined(separator: " at ")
        names.append("\(register) \(address): \(text)")
    }
    return names
}

struct Verdict {
    var problems: [String] = []
    var calls = 0
    var restarts = 0

    mutating func check(_ condition: Bool, _ problem: @autoclosure () -> String) {
        if !condition { problems.append(problem()) }
    }
}

func judge(console: String, finished: Bool, status: Int32, seeds: [UInt64], settings: Settings) -> Verdict {
    var verdict = Verdict()
    let (reports, lines) = separateKernelReports(consoleText(console))
    if let panic = reports.first(where: { $0.hasPrefix("[kernel] PANIC") }) {
        verdict.problems.append("kernel panic: " + panic)
        verdict.problems += symbolizedPanic(panic, settings: settings).map { "  " + $0 }
    }
    verdict.check(finished, "hang: the machine did not power off within \(Int(settings.timeout)) s")
    verdict.check(!finished || status == 0, "the shell's last command failed (QEMU exit status \(status))")

    for seed in seeds {
        let prefix = "fuzzer seed=\(seed) calls="
        guard let summary = lines.first(where: { $0.hasPrefix(prefix) && $0.contains(" ok=") }) else {
            verdict.problems.append("fuzzer \(seed) printed no summary")
            continue
        }
        verdict.calls += Int(summary.dropFirst(prefix.count).prefix(while: { $0.isNumber })) ?? 0
        verdict.check(summary.hasSuffix(" violations=0"), "fuzzer \(seed): " + summary)
    }
    for line in lines where line.hasPrefix("fuzzer VIOLATION") { verdict.problems.append(line) }

    // A server an injected fault struck may stop (and be restarted): the first stop
    // after each "injected" report is the fault's. Any other stop is the fuzzers' doing.
    var struck: Set<String> = []
    for line in reports {
        if line.hasPrefix("[kernel] injected "), let into = line.range(of: " into ") {
            struck.insert(String(line[into.upperBound...]))
        }
        if line.contains(") stopped: ") {
            let name = String(line.dropFirst(9).prefix(while: { $0 != " " }))
            if struck.remove(name) == nil { verdict.problems.append("a process was stopped: " + line) }
        }
        if line.contains("gave up on") { verdict.problems.append("a server was given up: " + line) }
        if line.hasPrefix("[kernel] restarted ") { verdict.restarts += 1 }
    }
    for line in lines where line.hasPrefix("timerclient FAIL") || line.hasPrefix("timertest FAIL") {
        verdict.problems.append("a timer check failed: " + line)
    }

    let outputs = commandOutputs(lines)
    func output(of command: String, occurrence: Int) -> [String]? {
        let matching = outputs.filter { $0.command == command }
        return occurrence < matching.count ? matching[occurrence].lines : nil
    }
    if finished {
        let waited = output(of: "wait fuzzer fuzzpeer timertest", occurrence: 0) ?? []
        for line in waited where !line.hasSuffix("exited with status 0") {
            verdict.problems.append("wait: " + line)
        }
        let audit = output(of: "audit", occurrence: 0)?.first ?? "no output"
        verdict.check(audit.hasPrefix("audit: clean"), "the kernel's invariant audit: " + audit)
        let before = output(of: "cat \(checkedFile)", occurrence: 0)
        let after = output(of: "cat \(checkedFile)", occurrence: 1)
        verdict.check(before != nil && !(before ?? []).isEmpty && before == after,
                      "\(checkedFile) read differently after the fuzzers (or not at all)")
        verdict.check(lines.filter { $0.hasPrefix("timerclient ok") }.count == 2 + (settings.faults ? faultTargets.count : 0),
                      "a timer client did not pass")
        for line in output(of: "ps", occurrence: 0) ?? [] where line.contains(" failed ") {
            verdict.problems.append("ps: a server is failed: " + line)
        }
        let memoryBefore = output(of: "mem", occurrence: 0).flatMap(freeMemory)
        let memoryAfter = output(of: "mem", occurrence: 1).flatMap(freeMemory)
        verdict.check(memoryBefore != nil && memoryBefore == memoryAfter,
                      "free memory: \(memoryBefore.map(String.init) ?? "?") KiB before the fuzzers, "
                          + "\(memoryAfter.map(String.init) ?? "?") KiB after")
    }
    return verdict
}

func shellQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

let settings = Settings(Array(CommandLine.arguments.dropFirst()))
guard FileManager.default.fileExists(atPath: settings.kernel) else { fail("no kernel at \(settings.kernel): make build") }
guard FileManager.default.fileExists(atPath: settings.disk) else { fail("no disk image at \(settings.disk)") }
let callsEach = (settings.calls + settings.instances - 1) / settings.instances
print("curio-fuzz: seed \(settings.seed), \(settings.instances) fuzzers x \(callsEach) calls per round"
      + (settings.faults ? ", faults injected into \(faultTargets.joined(separator: ", "))" : "")
      + (settings.seconds > 0 ? ", rounds for \(Int(settings.seconds)) s" : ""))
let started = Date()
var round = settings.firstRound
var rounds = 0
var totalCalls = 0
repeat {
    let seeds = (0..<settings.instances).map { derivedSeed(settings.seed, round: round, instance: $0) }
    let faults = settings.faults ? faults(round: round) : nil
    let commands = script(seeds: seeds, callsEach: callsEach, faults: faults)
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("curio-fuzz-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let disk = folder.appendingPathComponent("disk.img").path
    do {
        try FileManager.default.copyItem(atPath: settings.disk, toPath: disk)
    } catch {
        fail("cannot copy \(settings.disk): \(error)")
    }
    let roundStart = Date()
    let qemu = qemuArguments(settings: settings, disk: disk, commands: commands)
    let run = execute("/usr/bin/env", qemu, timeout: settings.timeout)
    if let log = settings.log { try? run.output.write(toFile: "\(log)-round-\(round).txt", atomically: true, encoding: .utf8) }
    let verdict = judge(console: run.output, finished: run.finished, status: run.status, seeds: seeds,
                        settings: settings)
    totalCalls += verdict.calls
    let seconds = Date().timeIntervalSince(roundStart)
    let injected = faults.map { zip(faultTargets, $0).map { "\($1) into \($0)" }.joined(separator: ", ") } ?? "no faults"
    print("round \(round): seeds \(seeds.map(String.init).joined(separator: " ")), \(injected): \(verdict.calls) calls in "
          + String(format: "%.1f", seconds) + " s, \(verdict.restarts) server restarts: "
          + (verdict.problems.isEmpty ? "ok" : "FAIL"))
    if !verdict.problems.isEmpty {
        let kept = FileManager.default.temporaryDirectory
            .appendingPathComponent("curio-fuzz-seed-\(settings.seed)-round-\(round).img")
        try? FileManager.default.removeItem(at: kept)
        try? FileManager.default.moveItem(atPath: disk, toPath: kept.path)
        try? FileManager.default.removeItem(at: folder)
        for problem in verdict.problems.prefix(40) { print("  " + problem) }
        print("\nTo boot the same machine again (the disk as this round left it is \(kept.path)):")
        let again = qemu.dropLast(2).map { $0.replacingOccurrences(of: disk, with: kept.path) }
        print("  " + again.joined(separator: " ") + " -append " + shellQuoted(commands))
        print("This round again (its timing is the host's, so the outcome may differ):")
        print("  curio-fuzz --seed \(settings.seed) --round \(round) --calls \(settings.calls) --instances \(settings.instances)"
              + (settings.faults ? "" : " --no-faults"))
        print("One instance alone repeats its calls exactly: make run CMDS='run fuzzer SEED \(callsEach) trace=K'")
        print("\nThe console's last lines:")
        let console = consoleText(run.output).split(separator: "\n", omittingEmptySubsequences: false)
        for line in console.suffix(40) { print("  | " + line) }
        print("\ncurio-fuzz: FAIL (seed \(settings.seed), round \(round))")
        exit(1)
    }
    try? FileManager.default.removeItem(at: folder)
    round += 1
    rounds += 1
} while Date().timeIntervalSince(started) < settings.seconds
print("curio-fuzz: PASS (seed \(settings.seed)): \(rounds) round" + (rounds == 1 ? "" : "s") + ", \(totalCalls) calls in "
      + String(format: "%.0f", Date().timeIntervalSince(started))
      + " s; no panic, every check passed, free memory back after each round")
