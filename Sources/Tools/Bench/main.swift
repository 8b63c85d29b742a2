// `make bench`: boots Curio under `-icount shift=0,sleep=off`, where every retired
// guest instruction advances the clock by exactly one step and runs repeat
// byte-for-byte, runs the in-guest `bench` program and the shell's `uptime`, and
// prints the numbers beside the reference figures they are compared with.
//
// usage: curio-bench [KERNEL_ELF]   (default build/kernel.elf)

import Foundation

struct Measurement {
    var median: Int
    var p10: Int
    var p90: Int
    var iterations: Int
}

let kernel = CommandLine.arguments.dropFirst().first ?? "build/kernel.elf"

func boot(commands: String, countingInstructions: Bool = true) -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["qemu-system-riscv64", "-machine", "virt", "-m", "128M", "-smp", "1", "-nographic",
                         "-bios", "default", "-kernel", kernel, "-append", commands]
        + (countingInstructions ? ["-icount", "shift=0,sleep=off"] : [])
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

let output = boot(commands: "uptime; run bench")
let realTime = boot(commands: "run bench realtime", countingInstructions: false)
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
    ("null syscall (whoAmI)", cell("syscall"), "seL4 123 · xv6 getpid 1,130", "≤ 300"),
    ("null IPC round trip, cross address space", cell("ipc"), "seL4 fastpath 538 · xv6 pipe ping-pong ≈95,800", "≤ 1,500"),
    ("IPC round trip, 4 KiB each way", cell("ipc-4k"), "—", "—"),
    ("null IPC round trip with an SSR mapped and unmapped", cell("ipc-ssr"), "the null round trip above", "≤ 1.25 × null IPC"),
    ("restart latency, 1 bound client (fault → request served)", cell("restart-1"), "xv6 fork+exec ≈1,560,000", "—"),
    ("restart latency, 16 bound clients", cell("restart-16"), "—", "—"),
    ("restart latency, 64 bound clients", cell("restart-64"), "—", "≤ 200,000"),
    ("restart latency, 256 bound clients (320-slot task table)", cell("restart-256"), "—", "—"),
    ("SSR round trip in real time, no -icount (for information, host-dependent)",
     realTime.map { "\($0) ns" } ?? "missing", "—", "—"),
    ("power-on to shell", bootInstructions.map { "\($0)" } ?? "missing", "—", "—"),
    ("kernel image (text+rodata+data, bytes)", kernelImageSize(kernel).map { "\($0)" } ?? "missing", "—", "—"),
]

let iterations = measurements.values.first?.iterations ?? 0
print("Curio benchmarks: retired instructions under QEMU -icount shift=0, median of \(iterations) iterations")
print("")
print("| measurement | Curio: median (p10, p90) | reference (same QEMU, -icount shift=0) | target |")
print("|---|---|---|---|")
for row in rows { print("| \(row.0) | \(row.1) | \(row.2) | \(row.3) |") }
