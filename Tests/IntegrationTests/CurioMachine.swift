// Boots the real kernel image in QEMU for integration tests.
//
// `CurioMachine.run(commands:)` boots with the shell's script on the kernel command
// line (as `make run CMDS=...` does) and returns everything the serial console
// printed plus QEMU's exit status, which is the status the shell powered off with.
// `InteractiveMachine` boots to the prompt and lets a test type, press keys and paste.
// Every run is bounded: QEMU is killed at the deadline and the test fails.

import Foundation
import Testing

struct MachineRun {
    var output: String
    var exitStatus: Int32
    var timedOut: Bool

    /// The console output from the kernel's banner on (OpenSBI's banner dropped),
    /// with the serial line's CR LF turned into LF.
    var console: String {
        let text = output.replacingOccurrences(of: "\r\n", with: "\n")
        guard let start = text.range(of: "Curio: ") else { return text }
        return String(text[start.lowerBound...])
    }
}

enum CurioMachine {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static var kernel: String {
        ProcessInfo.processInfo.environment["CURIO_KERNEL"]
            ?? packageRoot.appendingPathComponent("build/kernel.elf").path
    }

    static func arguments(commands: String?, extra: [String] = [], kernel: String = kernel) -> [String] {
        var arguments = ["-machine", "virt", "-m", "128M", "-smp", "1", "-nographic", "-bios", "default",
                         "-global", "virtio-mmio.force-legacy=false", "-kernel", kernel]
        if let commands { arguments += ["-append", commands] }
        return arguments + extra
    }

    /// Boots, runs `commands` in the shell, and waits for the power-off.
    static func run(commands: String, timeout: Duration = .seconds(60), extra: [String] = [],
                    kernel: String = kernel) throws -> MachineRun {
        #expect(FileManager.default.fileExists(atPath: kernel), "build the kernel first: make build")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["qemu-system-riscv64"] + arguments(commands: commands, extra: extra, kernel: kernel)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let timedOut = terminate(process, after: timeout)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return MachineRun(output: String(decoding: data, as: UTF8.self), exitStatus: process.terminationStatus,
                          timedOut: timedOut.value)
    }

    /// Kills the process if it is still running at the deadline; the box says whether it did.
    private static func terminate(_ process: Process, after timeout: Duration) -> Box {
        let fired = Box()
        let seconds = Double(timeout.components.seconds)
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
            if process.isRunning {
                fired.value = true
                process.terminate()
                // A guest in an interrupt storm can keep QEMU from acting on SIGTERM.
                DispatchQueue.global().asyncAfter(deadline: .now() + 5) {
                    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                }
            }
        }
        return fired
    }

    final class Box: @unchecked Sendable {
        var value = false
    }
}

/// A machine booted to its interactive shell, driven through the serial console.
final class InteractiveMachine: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    /// Guards `received`, which the pipe's reader thread appends to.
    private let lock = NSLock()
    private var received = Data()

    init(extra: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["qemu-system-riscv64"] + CurioMachine.arguments(commands: nil, extra: extra)
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let chunk = handle.availableData
            guard let self else { return }
            self.lock.lock()
            self.received.append(chunk)
            self.lock.unlock()
        }
        try process.run()
    }

    var transcript: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: received, as: UTF8.self)
    }

    /// Waits until the transcript contains `text` `count` times; false at the deadline.
    func waitFor(_ text: String, count: Int = 1, timeout: TimeInterval = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if transcript.components(separatedBy: text).count - 1 >= count { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    /// Waits until the transcript contains `text`, for as long as output keeps coming:
    /// false once nothing new has arrived for `stall` seconds, or at `limit`. For work
    /// whose pace depends on how loaded the host is (a long paste on a busy CI core),
    /// where only a stop, not slowness, means something was lost.
    func waitFor(_ text: String, stall: TimeInterval, limit: TimeInterval = 300) -> Bool {
        let end = Date().addingTimeInterval(limit)
        var lastSize = receivedCount
        var lastProgress = Date()
        while Date() < end {
            if transcript.contains(text) { return true }
            let size = receivedCount
            if size != lastSize {
                lastSize = size
                lastProgress = Date()
            } else if Date().timeIntervalSince(lastProgress) > stall {
                return false
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    private var receivedCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return received.count
    }

    /// Types a line, one byte at a time as a person would.
    func type(_ line: String) {
        press(Array(line.utf8))
        input.fileHandleForWriting.write(Data([13]))
    }

    /// Presses keys: raw bytes (control characters, escape sequences), one at a time.
    /// QEMU's -nographic console takes Ctrl-A for itself: Ctrl-A Ctrl-A sends one.
    func press(_ bytes: [UInt8]) {
        for byte in bytes {
            input.fileHandleForWriting.write(Data([byte]))
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    /// Sends `text` in one write, faster than anyone types: a paste.
    func paste(_ text: String) {
        input.fileHandleForWriting.write(Data(text.utf8))
    }

    /// Waits for QEMU to exit; returns its status, or nil (after killing it) at the deadline.
    func waitForExit(timeout: TimeInterval = 30) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            process.terminate()
            return nil
        }
        return process.terminationStatus
    }

    /// QEMU acts on SIGTERM from its main loop, which a guest flooding the console can
    /// keep busy: it gets two seconds, then SIGKILL, so that no machine outlives its test.
    deinit {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(2)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
