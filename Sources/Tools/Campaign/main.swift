// `make campaign SERVER=timer|fs|storage RUNS=N`: a fault-injection campaign.
//
// For every fault kind, N runs; each run boots Curio under -icount, starts clients
// that check every answer they get, injects ONE fault of that kind into SERVER (at
// the Nth request in even runs, at a pseudo-random tick in odd ones; a different
// moment per run), and classifies what happened, in the vocabulary of the SWIFI
// literature:
//
//   not activated   no restart and every client correct: masked, or never struck
//   recovered       the server restarted and every client carried on, unaware
//   client error    some client was told (server state lost, a failed call)
//   hang            the run did not finish in time
//   silent corr.    some client got a wrong answer and was not told, or (with a
//                   disk) `e2fsck -fn` finds the image damaged afterwards
//   system failure  a kernel panic, or Curio did not come up
//
// The clients: for `timer`, `timertest` with 4 timer clients; for `fs` and
// `storage`, `fstest stress` with 4 streaming clients that rewrite, re-read and
// append to their files and compare every byte, on a fresh 32 MiB ext2 image per
// run. The disk is the one thing a client check cannot see whole: a fault can
// damage metadata no client reads back (a bitmap, another inode), so every disk
// run ends with e2fsck, which counts any problem it would fix — including the
// superblock's free counts, for which `e2fsck -n` still exits 0.
//
// Timer runs repeat exactly under -icount (sleep=off: idle time is skipped). Disk
// runs cannot: QEMU completes block requests in host time, and skipping idle time
// would leap the clock to the next deadline while the host is still writing — the
// storage server's audit would then see a request held "100 ms" and restart. So
// disk runs use sleep=on (idle time passes at the host's pace, the device answers
// in microseconds as it does), a "random tick" lands at a slightly different point
// of the workload each time, and a rerun may classify differently.
//
// The table counts outcomes; after it come the runs whose fault never struck (the
// clients finished first) and, for every hang, silent corruption or system failure,
// the command line and the end of the console, so it can be reproduced.
//
// usage: curio-campaign [SERVER [RUNS [KERNEL_ELF]]]

import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
let server = arguments.count > 0 ? arguments[0] : "timer"
let runs = arguments.count > 1 ? Int(arguments[1]) ?? 20 : 20
let kernel = arguments.count > 2 ? arguments[2] : "build/kernel.elf"
let kinds = ["wild-write", "reg-flip", "data-flip", "stack-flip", "ssr-flip", "loop", "illegal"]

enum Outcome: String, CaseIterable {
    case notActivated = "not activated"
    case recovered = "recovered"
    case clientError = "client error"
    case hang = "hang"
    case silentCorruption = "silent corr."
    case systemFailure = "system failure"
}

/// What a campaign against one server boots, and when its faults strike.
struct Workload {
    /// The Curio command line of one run.
    let commands: (_ kind: String, _ trigger: String, _ run: Int) -> String
    /// Requests the server takes in a run, roughly: "after N" stays below it.
    let requests: Int
    /// Step between the "after" counts of successive runs.
    let afterStep: Int
    /// "random" bounds, in clock ticks (10 MHz): first, and step per run.
    let randomBase: Int
    let randomStep: Int
    let withDisk: Bool
    let description: String

    /// A different moment per run, alternating between the two kinds of moment:
    /// as the Nth request is delivered (the server is about to work), and at a
    /// random clock tick (wherever the server happens to be, often waiting).
    func trigger(run: Int) -> String {
        run % 2 == 0 ? "after \(1 + (run * afterStep) % requests)" : "random \(randomBase + run * randomStep)"
    }
}

func workload(for server: String) -> Workload {
    switch server {
    case "fs", "storage":
        // 4 clients x 3 rounds: about 480 filesystem requests, about eight storage
        // requests for each (1 KiB blocks, write-through metadata), some 170 ms.
        //
        // The kernel's fault generator starts from a fixed seed at every boot, so
        // without an aim every run of a kind would strike the same register or byte
        // (only the moment would differ); each run aims elsewhere instead: a golden-
        // ratio stride walks the registers (x mod 32) and spreads over the regions.
        return Workload(commands: { kind, trigger, run in
                            let parts = trigger.split(separator: " ")
                            let aim = (run * 2_654_435_761) % (1 << 20)
                            return "run fstest stress 4 3 \(server)=1 every=10000 kind=\(kind)"
                                + " trigger=\(parts[0]) arg=\(parts[1]) aim=\(aim)"
                        },
                        requests: server == "fs" ? 450 : 3600, afterStep: server == "fs" ? 23 : 197,
                        randomBase: 20_000, randomStep: 80_000, withDisk: true,
                        description: "4 streaming fstest clients, a fresh 32 MiB ext2 image per run")
    default:
        return Workload(commands: { kind, trigger, _ in "run timertest 4 100000 30 \(kind) \(trigger) target=\(server)" },
                        requests: Int.max, afterStep: 3, randomBase: 20_000, randomStep: 37_000, withDisk: false,
                        description: "4 timer clients")
    }
}

/// Runs a program to its end or until `timeout`; `finished` is false if it was stopped.
func execute(_ executable: String, _ arguments: [String], timeout: TimeInterval)
    -> (output: String, status: Int32, finished: Bool) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return ("cannot start \(executable)", -1, false) }
    let timer = DispatchWorkItem { if process.isRunning { process.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    timer.cancel()
    return (String(decoding: data, as: UTF8.self), process.terminationStatus, process.terminationReason == .exit)
}

/// e2fsprogs live in /usr/sbin, which is not on every user's PATH.
func tool(_ name: String) -> String {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map { "\($0)/\(name)" }
        .first { FileManager.default.isExecutableFile(atPath: $0) } ?? name
}

func qemuArguments(_ commands: String, disk: URL?) -> [String] {
    var qemu = ["qemu-system-riscv64", "-machine", "virt", "-m", "128M", "-smp", "1", "-nographic",
                "-bios", "default", "-icount", disk == nil ? "shift=0,sleep=off" : "shift=0,sleep=on",
                "-kernel", kernel, "-append", commands]
    if let disk {
        qemu += ["-global", "virtio-mmio.force-legacy=false",
                 "-drive", "file=\(disk.path),format=raw,if=none,id=disk0", "-device", "virtio-blk-device,drive=disk0"]
    }
    return qemu
}

/// nil if `e2fsck -fn` finds nothing to fix; otherwise the problems it found.
func damage(of image: URL) -> String? {
    let check = execute(tool("e2fsck"), ["-fn", image.path], timeout: 120)
    // Under -n every problem ends in a declined question ("Fix? no", "Clear? no").
    let problems = check.output.split(whereSeparator: \.isNewline).filter { $0.hasSuffix("? no") }
    guard check.status != 0 || !problems.isEmpty else { return nil }
    return "e2fsck -fn exited \(check.status):\n" + check.output
}

func classify(_ output: String, finished: Bool, diskDamage: String?) -> Outcome {
    if output.contains("PANIC") || !output.contains("Curio: ") { return .systemFailure }
    let verdicts = ["timertest ok", "timertest FAIL", "fstest stress ok", "fstest stress FAIL"]
    guard finished, let summary = output.split(whereSeparator: \.isNewline)
        .last(where: { line in verdicts.contains { line.hasPrefix($0) } }) else { return .hang }
    var fields: [String: Int] = [:]
    for field in summary.split(separator: " ") {
        let parts = field.split(separator: "=")
        if parts.count == 2, let value = Int(parts[1]) { fields[String(parts[0])] = value }
    }
    // timertest says fail= and restarts=; fstest says failed= and "restarts fs= storage=".
    let wrongAnswers = fields["fail", default: 0] + fields["failed", default: 0]
    if wrongAnswers > 0 || output.contains("FAIL round") || diskDamage != nil { return .silentCorruption }
    if fields["lost", default: 0] + fields["error", default: 0] + fields["crashed", default: 0] > 0 { return .clientError }
    let restarts = fields["restarts"] ?? (fields["fs", default: 0] + fields["storage", default: 0])
    return restarts > 0 ? .recovered : .notActivated
}

/// One boot: a fresh image if the workload has a disk, the console, the verdict.
func attempt(_ commands: String, workload: Workload) -> (outcome: Outcome, output: String, damage: String?) {
    guard workload.withDisk else {
        let run = execute("/usr/bin/env", qemuArguments(commands, disk: nil), timeout: 120)
        return (classify(run.output, finished: run.finished, diskDamage: nil), run.output, nil)
    }
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("curio-campaign-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    let image = folder.appendingPathComponent("disk.img")
    try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let made = execute(tool("mke2fs"), ["-q", "-F", "-t", "ext2", "-b", "1024", image.path, "32M"], timeout: 60)
    guard made.status == 0 else {
        FileHandle.standardError.write(Data("campaign: mke2fs failed: \(made.output)\n".utf8))
        exit(1)
    }
    let run = execute("/usr/bin/env", qemuArguments(commands, disk: image), timeout: 60)
    // A hung or failed system left the disk mid-update: judge only finished runs.
    let found = run.finished ? damage(of: image) : nil
    return (classify(run.output, finished: run.finished, diskDamage: found), run.output, found)
}

let plan = workload(for: server)
print("Fault-injection campaign: \(runs) runs per fault kind against \(server) (\(plan.description), -icount)")
print("")
let header = ["fault", "injected"] + Outcome.allCases.map(\.rawValue)
print("| " + header.joined(separator: " | ") + " |")
print("|" + String(repeating: "---|", count: header.count))
var totals = [Outcome: Int]()
var neverStruck = 0
var notable: [String] = []
for kind in kinds {
    var counts = [Outcome: Int]()
    for run in 0..<runs {
        let commands = plan.commands(kind, plan.trigger(run: run), run)
        let (outcome, output, found) = attempt(commands, workload: plan)
        counts[outcome, default: 0] += 1
        if !output.contains("[kernel] injected \(kind) into \(server)") { neverStruck += 1 }
        if [.hang, .silentCorruption, .systemFailure].contains(outcome) {
            let console = output.split(whereSeparator: \.isNewline).suffix(25).joined(separator: "\n")
            notable.append("\(outcome.rawValue): -append '\(commands)'\n\(console)" + (found.map { "\n" + $0 } ?? ""))
        }
    }
    for (outcome, count) in counts { totals[outcome, default: 0] += count }
    let cells = [kind, String(runs)] + Outcome.allCases.map { String(counts[$0, default: 0]) }
    print("| " + cells.joined(separator: " | ") + " |")
}
let cells = ["all", String(runs * kinds.count)] + Outcome.allCases.map { String(totals[$0, default: 0]) }
print("| " + cells.joined(separator: " | ") + " |")
print("")
print("\(neverStruck) of \(runs * kinds.count) faults never struck (the clients finished first).")
for run in notable { print("\n" + run) }
