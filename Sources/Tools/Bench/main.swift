// `make bench`: boots Curio under `-icount shift=0,sleep=off`, where every retired
// guest instruction advances the clock by exactly one step and runs repeat
// byte-for-byte, runs the in-guest `bench` program and the shell's `uptime`, and
// prints the numbers beside the reference figures they are compared with.
//
// The filesystem benchmarks compare two kernels side by side: KERNEL_ELF, whose `fs`
// and `storage` servers keep their clients' state in SSRs, and NO_SSR_KERNEL_ELF,
// the same binaries packed with `mkimage --without-ssr fs,storage` (the servers keep
// that state in their own memory, and are not restartable). Each boots with a fresh
// 32 MiB ext2 image (mke2fs) and runs `fsbench`; the table gives both and the SSR
// overhead. These phases wait for the disk, and an idle guest under sleep=off makes
// QEMU jump the clock (so `rdinstret` too) to Curio's next 10 ms tick: the guest's
// own brackets would count the tick, not the code. So the counts come from the QEMU
// plugin MARKS_PLUGIN (Sources/Tools/BenchPlugin): instructions executed between
// fsbench's `rdinstret` brackets, less the kernel's idle loop (from each `wfi` to
// the next return to a process). The tool builds nothing: the Makefile hands it the
// kernels and the plugin.
//
// The network benchmarks compare the same two kernels (NO_SSR_KERNEL_ELF is packed
// `--without-ssr fs,storage,net`). Each boots with a virtio-net device on QEMU user
// networking (restrict=on) and runs `netbench`: TCP to a discard sink on Curio's own
// address (loopback: every instruction of both ends is Curio's), and to a sink on
// this host, reached through a guest forward of 10.0.2.100:9 to `dd of=/dev/null`
// (only Curio's side counted). These boots use -icount sleep=on: a guest that waits
// for the host must not see its clock leap ahead and time out its segments. The
// plugin counts instructions either way. A third boot, without -icount, times 4 MiB
// each way for the MiB/s printed for information.
//
// usage: curio-bench [KERNEL_ELF [NO_SSR_KERNEL_ELF MARKS_PLUGIN]]
//        (default build/kernel.elf; without the other two, no filesystem or network
//        comparison)

import Foundation
import ProfileKit

struct Measurement {
    var median: Int
    var p10: Int
    var p90: Int
    var iterations: Int
}

let arguments = Array(CommandLine.arguments.dropFirst())
let kernel = arguments.first ?? "build/kernel.elf"
let noSSRKernel = arguments.dropFirst().first
let marksPlugin = arguments.dropFirst(2).first

/// fsbench's phases, in the order it brackets them in every run.
let fileSystemOperations: [(name: String, title: String, units: Int)] = [
    ("fs-write", "sequential write, 4 MiB file in 4 KiB writes (per KiB)", 4096),
    ("fs-read", "sequential read, 4 MiB file in 4 KiB reads (per KiB)", 4096),
    ("fs-create", "create + write 64 bytes + close, 200 files in one directory (per file)", 200),
    ("fs-delete", "unlink, 200 files (per file)", 200),
]

/// netbench's phases, in the order it brackets them in every run.
let networkOperations: [(name: String, title: String, units: Int)] = [
    ("net-loopback", "TCP send over loopback, 1 MiB in 4 KiB sends, both ends in Curio (per KiB)", 1024),
    ("net-loopback-connect", "TCP connect + close over loopback, both ends in Curio (per connection)", 8),
    ("net-host", "TCP send to a sink on the host, 1 MiB in 4 KiB sends, Curio's side (per KiB)", 1024),
    ("net-host-connect", "TCP connect + close to the host's sink, Curio's side (per connection)", 8),
]

/// QEMU's network for netbench (BenchmarkNetwork.swift).
let networkArguments = BenchmarkNetwork.qemuArguments
let networkCommands = "run netbench sink &; run netbench 5 10.0.2.100"

enum Clock {
    /// -icount shift=0,sleep=off: an idle guest's clock leaps to its next deadline.
    case instructionsLeaping
    /// -icount shift=0,sleep=on: an idle guest's clock follows real time.
    case instructionsSleeping
    /// No -icount.
    case realTime
}

func boot(commands: String, clock: Clock = .instructionsLeaping, kernel: String = kernel, disk: String? = nil,
          network: Bool = false, marks: (plugin: String, output: String)? = nil) -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    let diskArguments = disk.map {
        ["-global", "virtio-mmio.force-legacy=false", "-drive", "file=\($0),format=raw,if=none,id=disk0",
         "-device", "virtio-blk-device,drive=disk0"]
    } ?? []
    let clockArguments = switch clock {
    case .instructionsLeaping: ["-icount", "shift=0,sleep=off"]
    case .instructionsSleeping: ["-icount", "shift=0,sleep=on"]
    case .realTime: [String]()
    }
    process.arguments = ["qemu-system-riscv64", "-machine", "virt", "-m", "128M", "-smp", "1", "-nographic",
                         "-bios", "default", "-kernel", kernel, "-append", commands]
        + clockArguments + diskArguments + (network ? networkArguments : [])
        + (marks.map { ["-plugin", "\($0.plugin),out=\($0.output)"] } ?? [])
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    do {
        try process.run()
    } catch {
        fatalError("curio-bench: cannot start QEMU: \(error)")
    }
    let deadline = DispatchTime.now() + .seconds(300)
    DispatchQueue.global().asyncAfter(deadline: deadline) { if process.isRunning { process.terminate() } }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
}

func parseMeasurements(_ output: String) -> [String: Measurement] {
    var results: [String: Measurement] = [:]
    for line in output.split(separator: "\n") where line.hasPrefix("bench ") {
        let fields = line.split(separator: " ")
        var values: [String: Int] = [:]
        for field in fields.dropFirst(2) {
            let pair = field.split(separator: "=")
            if pair.count == 2, let value = Int(pair[1]) { values[String(pair[0])] = value }
        }
        guard let median = values["median"], let p10 = values["p10"], let p90 = values["p90"],
              let iterations = values["iterations"] else { continue }
        results[String(fields[1])] = Measurement(median: median, p10: p10, p90: p90, iterations: iterations)
    }
    return results
}

/// Bytes of the kernel proper: every allocated section except the packed boot image.
func kernelImageSize(_ path: String) -> Int? {
    guard let data = FileManager.default.contents(atPath: path), data.count > 64 else { return nil }
    func read<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
        data.subdata(in: offset..<offset + MemoryLayout<T>.size).withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }
    let sectionTable = Int(read(0x28, UInt64.self))
    let entrySize = Int(read(0x3A, UInt16.self))
    let count = Int(read(0x3C, UInt16.self))
    let namesIndex = Int(read(0x3E, UInt16.self))
    let namesOffset = Int(read(sectionTable + namesIndex * entrySize + 0x18, UInt64.self))
    var total = 0
    for index in 0..<count {
        let header = sectionTable + index * entrySize
        let flags = read(header + 0x08, UInt64.self)
        let size = Int(read(header + 0x20, UInt64.self))
        let nameOffset = namesOffset + Int(read(header, UInt32.self))
        let name = String(decoding: data[nameOffset...].prefix(while: { $0 != 0 }), as: UTF8.self)
        if flags & 0x2 != 0 && name != ".bootimage" && name != ".bss" { total += size }
    }
    return total
}

/// Runs e2fsprogs' `tool` (in /usr/sbin, often not on PATH); true if it exits 0.
func e2fsprogs(_ tool: String, _ toolArguments: [String]) -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    var environment = ProcessInfo.processInfo.environment
    environment["PATH"] = (environment["PATH"].map { $0 + ":" } ?? "") + "/usr/sbin:/sbin"
    process.environment = environment
    process.arguments = [tool] + toolArguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}

/// Boots `kernel` with a fresh 32 MiB ext2 image and runs `fsbench` under the marks
/// plugin; the instructions per unit of every phase, or the console output if
/// anything is missing (or if e2fsck finds the disk damaged afterwards, which would
/// make the numbers meaningless).
func fileSystemBench(kernel: String, plugin: String, label: String)
    -> Result<[String: Measurement], BenchFailure> {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curio-bench-\(getpid())-\(label)")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let image = directory.appendingPathComponent("disk.img").path
    guard e2fsprogs("mke2fs", ["-q", "-F", "-t", "ext2", "-b", "1024", image, "32M"]) else {
        return .failure(BenchFailure(message: "mke2fs failed for \(image)", output: ""))
    }
    let marksPath = directory.appendingPathComponent("marks").path
    let output = boot(commands: "run fsbench", kernel: kernel, disk: image, marks: (plugin, marksPath))
    let measured = countedPhases(fileSystemOperations, program: "fsbench", output: output, marksPath: marksPath)
    guard case .success = measured else { return measured }
    guard e2fsprogs("e2fsck", ["-fn", image]) else {
        return .failure(BenchFailure(message: "e2fsck finds the disk damaged after fsbench", output: output))
    }
    return measured
}

/// Boots `kernel` with a network and runs `netbench` (a loopback sink, and the host's
/// through the guest forward) under the marks plugin; the instructions per unit of
/// every phase, or the console output if anything is missing.
func networkBench(kernel: String, plugin: String, label: String) -> Result<[String: Measurement], BenchFailure> {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curio-netbench-\(getpid())-\(label)")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let marksPath = directory.appendingPathComponent("marks").path
    let output = boot(commands: networkCommands, clock: .instructionsSleeping, kernel: kernel, network: true,
                      marks: (plugin, marksPath))
    return countedPhases(networkOperations, program: "netbench", output: output, marksPath: marksPath)
}

/// The instructions per unit of each of `operations`, from the marks the plugin wrote:
/// the program's brackets are the last marks (the shell reads the counter once at
/// start), two per phase, the phases in order, run after run. The program's own lines
/// say how many runs it made, and that it finished.
func countedPhases(_ operations: [(name: String, title: String, units: Int)], program: String, output: String,
                   marksPath: String) -> Result<[String: Measurement], BenchFailure> {
    let guestLines = parseMeasurements(output)
    guard operations.allSatisfy({ guestLines[$0.name] != nil }),
          let runs = guestLines[operations[0].name]?.iterations,
          let marks = FileManager.default.contents(atPath: marksPath) else {
        return .failure(BenchFailure(message: "\(program) did not finish", output: output))
    }
    // Each mark: instructions executed, of them in the idle loop, idle waits, address.
    let counts = String(decoding: marks, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("mark ") }
        .map { $0.split(separator: " ").dropFirst().prefix(2).compactMap { Int($0) } }
    let bracketMarks = 2 * operations.count * runs
    guard counts.count >= bracketMarks, counts.allSatisfy({ $0.count == 2 }) else {
        return .failure(BenchFailure(message: "the marks plugin recorded \(counts.count) marks, not \(bracketMarks)",
                                     output: output))
    }
    let brackets = Array(counts.suffix(bracketMarks))
    var measurements: [String: Measurement] = [:]
    for (index, operation) in operations.enumerated() {
        var perUnit: [Int] = []
        for run in 0..<runs {
            let start = brackets[2 * (run * operations.count + index)]
            let end = brackets[2 * (run * operations.count + index) + 1]
            let busy = (end[0] - start[0]) - (end[1] - start[1])
            perUnit.append((busy + operation.units / 2) / operation.units)
        }
        perUnit.sort()
        measurements[operation.name] = Measurement(median: perUnit[runs / 2], p10: perUnit[0], p90: perUnit[runs - 1],
                                                   iterations: runs)
    }
    return .success(measurements)
}

struct BenchFailure: Error {
    var message: String
    var output: String
}

// The filesystem and network boots run beside the kernel benchmarks' first boot:
// under -icount their counts do not depend on what else the host does.
final class PhaseResults: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [String: Result<[String: Measurement], BenchFailure>] = [:]

    subscript(label: String) -> Result<[String: Measurement], BenchFailure>? {
        get { lock.withLock { results[label] } }
        set { lock.withLock { results[label] = newValue } }
    }
}

let phaseResults = PhaseResults()
let phaseGroup = DispatchGroup()
if let noSSRKernel, let marksPlugin {
    for (label, path) in [("ssr", kernel), ("nossr", noSSRKernel)] {
        DispatchQueue.global().async(group: phaseGroup) {
            phaseResults["fs-" + label] = fileSystemBench(kernel: path, plugin: marksPlugin, label: label)
        }
        DispatchQueue.global().async(group: phaseGroup) {
            phaseResults["net-" + label] = networkBench(kernel: path, plugin: marksPlugin, label: label)
        }
    }
}

let output = boot(commands: "uptime; run bench")
phaseGroup.wait()
let realTime = boot(commands: "run bench realtime", clock: .realTime)
    .split(separator: "\n").first { $0.hasPrefix("bench realtime-ipc-ssr ns=") }
    .flatMap { Int($0.split(separator: "=").last ?? "") }
let measurements = parseMeasurements(output)
let bootInstructions = output.split(separator: "\n").first { $0.contains("instructions after power-on") }
    .flatMap { line in line.split(separator: " ").compactMap { Int($0) }.last }

guard !measurements.isEmpty else {
    print(output)
    print("curio-bench: the guest printed no measurements")
    exit(1)
}

func cell(_ name: String) -> String {
    guard let m = measurements[name] else { return "missing" }
    return "\(m.median) (p10 \(m.p10), p90 \(m.p90))"
}

let rows: [(String, String, String, String)] = [
    ("trap round trip (rejected ecall)", cell("trap"), "—", "—"),
    ("null syscall (whoAmI)", cell("syscall"), "seL4 123 · xv6 getpid 1,130", "≤ 100"),
    ("null IPC round trip, cross address space", cell("ipc"), "seL4 fastpath 538 · xv6 pipe ping-pong ≈95,800", "≤ 450"),
    ("IPC round trip, 4 KiB each way", cell("ipc-4k"), "6,696 before the fastpath", "≈ 3,350"),
    ("null IPC round trip with an SSR mapped and unmapped", cell("ipc-ssr"), "the null round trip above", "≤ 1.10 × null IPC"),
    ("restart latency, 1 bound client (fault → request served)", cell("restart-1"), "xv6 fork+exec ≈1,560,000", "—"),
    ("restart latency, 16 bound clients", cell("restart-16"), "—", "—"),
    ("restart latency, 64 bound clients", cell("restart-64"), "—", "≤ 100,000"),
    ("restart latency, 256 bound clients (320-slot task table)", cell("restart-256"), "—", "—"),
    ("SSR round trip in real time, no -icount (for information, host-dependent)",
     realTime.map { "\($0) ns" } ?? "missing", "—", "—"),
    ("power-on to shell", bootInstructions.map { "\($0)" } ?? "missing", "—", "≤ 5,000,000"),
    ("kernel image (text+rodata+data, bytes)", kernelImageSize(kernel).map { "\($0)" } ?? "missing", "—", "—"),
]

let iterations = measurements.values.first?.iterations ?? 0
print("Curio benchmarks: retired instructions under QEMU -icount shift=0, median of \(iterations) iterations")
print("")
print("| measurement | Curio: median (p10, p90) | reference (same QEMU, -icount shift=0) | target |")
print("|---|---|---|---|")
for row in rows { print("| \(row.0) | \(row.1) | \(row.2) | \(row.3) |") }

guard noSSRKernel != nil, marksPlugin != nil else { exit(0) }

func phaseMeasurements(_ label: String) -> [String: Measurement]? {
    switch phaseResults[label] {
    case .success(let measurements): return measurements
    case .failure(let failure):
        print("")
        print(failure.output)
        print("curio-bench: \(label.hasSuffix("-nossr") ? noSSRKernel ?? "" : kernel): \(failure.message)")
        return nil
    case nil: return nil
    }
}

let fileSystemWithSSRs = phaseMeasurements("fs-ssr")
let fileSystemWithoutSSRs = phaseMeasurements("fs-nossr")
let networkWithSSRs = phaseMeasurements("net-ssr")
let networkWithoutSSRs = phaseMeasurements("net-nossr")

/// Percent of `value` over `baseline`, one decimal, signed.
func overhead(_ value: Int, over baseline: Int) -> String {
    guard baseline > 0 else { return "—" }
    let tenths = ((value - baseline) * 1000 + (value >= baseline ? baseline / 2 : -baseline / 2)) / baseline
    let sign = tenths < 0 ? "−" : "+"
    return "\(sign)\(abs(tenths) / 10).\(abs(tenths) % 10) %"
}

func spread(_ m: Measurement) -> String { "\(m.median) (\(m.p10)–\(m.p90))" }

/// The side-by-side table of `operations`, with SSRs and without.
func printComparison(_ heading: String, _ operations: [(name: String, title: String, units: Int)],
                     withSSRs: [String: Measurement], withoutSSRs: [String: Measurement]) {
    print("")
    print("\(heading): instructions executed per unit (idle loop excluded), median of \(withSSRs.values.first?.iterations ?? 0) runs (least–greatest)")
    print("")
    print("| operation | with SSRs | without SSRs (state in server memory) | SSR overhead | target |")
    print("|---|---|---|---|---|")
    for operation in operations {
        guard let ssr = withSSRs[operation.name], let baseline = withoutSSRs[operation.name] else { continue }
        print("| \(operation.title) | \(spread(ssr)) | \(spread(baseline)) | \(overhead(ssr.median, over: baseline.median)) | ≤ 10 % |")
    }
}

if let fileSystemWithSSRs, let fileSystemWithoutSSRs {
    printComparison("Filesystem", fileSystemOperations, withSSRs: fileSystemWithSSRs, withoutSSRs: fileSystemWithoutSSRs)
}
if let networkWithSSRs, let networkWithoutSSRs {
    printComparison("Network (TCP)", networkOperations, withSSRs: networkWithSSRs, withoutSSRs: networkWithoutSSRs)
    // For information: the same transfers timed by the guest's clock without -icount.
    let timed = boot(commands: "run netbench sink &; run netbench realtime 10.0.2.100", clock: .realTime,
                     network: true)
    for line in timed.split(separator: "\n") where line.hasPrefix("bench realtime-net-") {
        let fields = line.split(separator: " ")
        guard fields.count == 3, let rate = Int(fields[2].split(separator: "=").last ?? "") else { continue }
        let tenths = rate * 10 / (1 << 20)
        let what = fields[1] == "realtime-net-loopback" ? "loopback" : "to the host"
        print("")
        print("TCP send \(what), 4 MiB, real time without -icount (host-dependent, for information): \(tenths / 10).\(tenths % 10) MiB/s")
    }
}
guard fileSystemWithSSRs != nil, fileSystemWithoutSSRs != nil, networkWithSSRs != nil, networkWithoutSSRs != nil else {
    exit(1)
}
