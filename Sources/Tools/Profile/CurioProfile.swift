// `make profile`: where the instructions go. Boots Curio under QEMU with the
// pc-profile plugin (Sources/Tools/BenchPlugin/pc-profile.c), runs shell commands,
// and reports the instructions executed per program (kernel, firmware, each server
// and program) and per function, from the debug information of the unstripped ELF
// files in build/. Counts are of executed guest instructions (under -icount
// shift=0,sleep=off, so repeatable), including the kernel's idle loop and clock
// ticks while the guest waits for the disk.
//
// Two function tables: "code" charges each instruction to the function whose source
// it came from (inlined code to the inlined function: memcpy, a checksum), and
// "callers" to the function it was inlined into (the outermost frame).

import ArgumentParser
import Foundation
import ProfileKit

@main
struct CurioProfile: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curio-profile",
        abstract: "Count the instructions each program and function of Curio executes while shell commands run.",
        discussion: """
            Example: the write phase of the filesystem benchmark on a fresh 32 MiB ext2 image \
            (fsbench brackets its phases with rdinstret: phase 3 is the sequential write, 5 the \
            read, 7 create, 9 unlink):

                curio-profile --commands 'run fsbench 1' --disk 32M --phase 3
            """)

    @Option(help: "Shell commands to run, as for `make run CMDS=...`.")
    var commands: String

    @Option(help: "The kernel (with its boot image) to boot.")
    var kernel = "build/kernel.elf"

    @Option(help: "The directory of the programs' unstripped ELF files.")
    var programs = "build/programs"

    @Option(help: "The pc-profile plugin.")
    var plugin = "build/pc-profile.so"

    @Option(help: "Attach a fresh ext2 disk of this size (mke2fs -b 1024), e.g. 32M.")
    var disk: String?

    @Flag(help: """
        Attach a network device on QEMU user networking (restrict=on), as `make bench` \
        does for netbench (the same guest forward of 10.0.2.100:9 to a discard sink here).
        """)
    var network = false

    @Option(help: ArgumentHelp("""
        Count only from the A-th user `rdinstret` to the next (A), or through the B-th (A-B); \
        phase 0 is everything before the first.
        """, valueName: "A[-B]"))
    var phase: String?

    @Option(help: "Functions to list in each table.")
    var top = 25

    @Option(help: "Where the plugin's raw counts go.")
    var output = "build/profile.out"

    @Option(help: "Seconds before QEMU is stopped.")
    var timeout = 900

    mutating func run() throws {
        let outputPath = URL(fileURLWithPath: output).standardizedFileURL.path
        try? FileManager.default.removeItem(atPath: outputPath)
        var arguments = ["qemu-system-riscv64", "-machine", "virt", "-m", "128M", "-smp", "1", "-nographic",
                         "-bios", "default", "-kernel", kernel, "-append", commands,
                         "-icount", "shift=0,sleep=off",
                         "-plugin", "\(URL(fileURLWithPath: plugin).standardizedFileURL.path),out=\(outputPath)"
                             + (phase.map { ",phase=\($0)" } ?? "")]
        if let disk {
            let image = outputPath + ".disk.img"
            try? FileManager.default.removeItem(atPath: image)
            let made = runTool("/usr/sbin/mke2fs", ["-q", "-F", "-t", "ext2", "-b", "1024", image, disk])
            guard made.status == 0 else { throw ValidationError("mke2fs failed: \(made.output)") }
            arguments += ["-global", "virtio-mmio.force-legacy=false", "-drive", "file=\(image),format=raw,if=none,id=disk0",
                          "-device", "virtio-blk-device,drive=disk0"]
        }
        if network {
            arguments += BenchmarkNetwork.qemuArguments
        }
        let console = runTool("/usr/bin/env", arguments, timeout: timeout)
        guard let text = try? String(contentsOfFile: outputPath, encoding: .utf8) else {
            throw ValidationError("QEMU wrote no profile; its console:\n\(console.output.suffix(3000))")
        }
        let profile = Profile(parsing: text)
        var images: [ProgramImage] = []
        for file in (try? FileManager.default.contentsOfDirectory(atPath: programs)) ?? [] where file.hasSuffix(".elf") {
            if let bytes = FileManager.default.contents(atPath: programs + "/" + file),
               let image = ProgramImage(name: String(file.dropLast(4)), elf: [UInt8](bytes)) {
                images.append(image)
            }
        }
        let attribution = Attribution(profile.samples, programs: images)
        print(report(profile, attribution))
    }

    private func report(_ profile: Profile, _ attribution: Attribution) -> String {
        let total = max(profile.totalInstructions, 1)
        func share(_ count: UInt64) -> String { String(format: "%.1f %%", 100 * Double(count) / Double(total)) }
        var lines = ["Profile of `\(commands)`" + (phase.map { ", phase \($0)" } ?? "")
                     + ": \(grouped(profile.totalInstructions)) instructions executed"
                     + " (\(profile.phaseCount) phases)", "",
                     "| where | instructions | share |", "|---|---:|---:|"]
        for (owner, count) in attribution.totals { lines.append("| \(owner) | \(grouped(count)) | \(share(count)) |") }
        var code: [String: UInt64] = [:]
        var callers: [String: UInt64] = [:]
        for (owner, counts) in attribution.counts where owner != Attribution.firmware && owner != Attribution.unknown {
            let path = owner == Attribution.kernel ? kernel : programs + "/" + owner + ".elf"
            let addresses = Array(counts.keys)
            for (address, frames) in zip(addresses, symbolize(addresses, in: path)) {
                code["\(owner)\t\(frames.innermost)", default: 0] += counts[address]!
                callers["\(owner)\t\(frames.outermost)", default: 0] += counts[address]!
            }
        }
        for (title, table) in [("Functions, by the code itself (inlined code charged to what was inlined)", code),
                               ("Functions, with the code inlined into them", callers)] {
            lines += ["", title, "", "| instructions | share | where | function |", "|---:|---:|---|---|"]
            let best = table.sorted { $0.value > $1.value }.prefix(top)
            let names = demangle(best.map { String($0.key.split(separator: "\t", maxSplits: 1).last ?? "") })
            for ((key, count), name) in zip(best, names) {
                let owner = key.split(separator: "\t", maxSplits: 1).first ?? ""
                lines.append("| \(grouped(count)) | \(share(count)) | \(owner) | \(name.prefix(110)) |")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The innermost and outermost function of each address (llvm-symbolizer, with inlining).
    private func symbolize(_ addresses: [UInt64], in path: String) -> [(innermost: String, outermost: String)] {
        let input = addresses.map { "0x" + String($0, radix: 16) }.joined(separator: "\n") + "\n"
        let result = runTool("/usr/bin/env", ["llvm-symbolizer", "--obj=\(path)", "--inlining", "--no-demangle"],
                             input: input)
        let blocks = result.output.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        return addresses.indices.map { index in
            guard index < blocks.count else { return ("??", "??") }
            let functions = blocks[index].split(separator: "\n").enumerated().filter { $0.offset % 2 == 0 }.map { String($0.element) }
            return (functions.first ?? "??", functions.last ?? "??")
        }
    }

    private func demangle(_ names: [String]) -> [String] {
        let result = runTool("/usr/bin/env", ["swift-demangle", "--simplified"], input: names.joined(separator: "\n") + "\n")
        let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return names.indices.map { $0 < lines.count ? lines[$0] : names[$0] }
    }

    private func grouped(_ value: UInt64) -> String {
        let digits = Array(String(value))
        var text = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { text.append(",") }
            text.append(digit)
        }
        return text
    }
}

/// Runs a tool to completion: its status and its output (stdout and stderr).
func runTool(_ executable: String, _ arguments: [String], input: String? = nil, timeout: Int? = nil)
    -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    let inputPipe = Pipe()
    process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
    do { try process.run() } catch { return (-1, "cannot run \(executable): \(error)") }
    if let input {
        DispatchQueue.global().async {
            inputPipe.fileHandleForWriting.write(Data(input.utf8))
            try? inputPipe.fileHandleForWriting.close()
        }
    }
    if let timeout {
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(timeout)) { if process.isRunning { process.terminate() } }
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
