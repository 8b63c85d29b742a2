// The console as a person at the keyboard meets it, through the serial line: every
// byte typed reaches the shell (during a command, as the prompt appears, a paste),
// the line editor's keys, history and Tab, Ctrl-C and Ctrl-D, and an `uptime` that
// claims instruction counts only under -icount. Each test waits for output, never
// for time, and boots its own machine (about a second).

import Foundation
import Testing

@Suite(.serialized)
struct ConsoleTests {
    static let escape: UInt8 = 0x1B
    static let up = [escape] + Array("[A".utf8)
    static let left = [escape] + Array("[D".utf8)
    static let right = [escape] + Array("[C".utf8)
    static let home = [escape] + Array("[H".utf8)
    static let end = [escape] + Array("[F".utf8)
    static let backspace: [UInt8] = [0x7F]
    static let tab: [UInt8] = [0x09]
    static let enter: [UInt8] = [0x0D]
    static let interrupt: [UInt8] = [0x03]
    static let endOfInput: [UInt8] = [0x04]

    static func bootToPrompt(extra: [String] = []) throws -> InteractiveMachine {
        let machine = try InteractiveMachine(extra: extra)
        #expect(machine.waitFor("curio> "), "no prompt:\n\(machine.transcript)")
        return machine
    }

    /// Lines typed (pasted, all at once) while `sleep` runs are shown as they arrive,
    /// then run in order after it; none is lost.
    @Test func linesTypedWhileACommandRunsAreRunNext() throws {
        let machine = try Self.bootToPrompt()
        machine.type("sleep 2000")
        #expect(machine.waitFor("sleep 2000\r\n"))
        machine.paste("echo typed during\recho and then\r")
        #expect(machine.waitFor("\r\nand then\r\n"), "type-ahead lost:\n\(machine.transcript)")
        let transcript = machine.transcript
        let shownWhileRunning = try #require(transcript.range(of: "sleep 2000\r\necho typed during\r\n"),
                                              "type-ahead not echoed during the command:\n\(transcript)")
        let ranFirst = try #require(transcript.range(of: "\r\ntyped during\r\n"))
        let ranSecond = try #require(transcript.range(of: "\r\nand then\r\n"))
        #expect(shownWhileRunning.upperBound <= ranFirst.lowerBound && ranFirst.upperBound <= ranSecond.lowerBound)
    }

    /// A paste larger than the console's queue (4 KiB) while a command runs: the rest
    /// waits in QEMU and the host until the shell has read enough, and every line runs.
    /// Each line is a word the shell does not know, so that what it prints for the
    /// line ("WORD: unknown command") cannot be mistaken for the echo of what was typed
    /// (which, for bytes arriving while a command runs, may fall between lines). The
    /// shell works through the lines at the pace the host allows (on a loaded CI core,
    /// fewer than 20 a second), so the test waits for as long as they keep coming.
    @Test func aPasteLargerThanTheQueueArrivesWhole() throws {
        let machine = try Self.bootToPrompt()
        machine.type("sleep 1000")
        #expect(machine.waitFor("sleep 1000\r\n"))
        let words = (1000..<1400).map { "pasted-word-\($0)" }
        machine.paste(words.joined(separator: "\r") + "\r")
        #expect(machine.waitFor("pasted-word-1399: unknown command", stall: 20), "\(machine.transcript.suffix(2000))")
        let transcript = machine.transcript
        let missing = words.filter { !transcript.contains("\($0): unknown command") }
        #expect(missing.isEmpty, "lines lost: \(missing)")
        #expect(words.joined(separator: "\r").utf8.count > 4096)
    }

    /// Three lines pasted at an idle prompt: the second and third arrive while the
    /// first runs and as the next prompt appears; all three run, whole.
    @Test func everyLineOfAPasteRuns() throws {
        let machine = try Self.bootToPrompt()
        machine.paste("echo first line\recho second line\recho third line\r")
        #expect(machine.waitFor("\r\nthird line\r\n"), "\(machine.transcript)")
        for line in ["first line", "second line", "third line"] {
            #expect(machine.transcript.contains("\r\n\(line)\r\n"), "\(line) lost:\n\(machine.transcript)")
        }
        #expect(!machine.transcript.contains("unknown command"), "\(machine.transcript)")
    }

    /// Cursor movement and deletion in the middle of the line give the command as shown;
    /// the kill keys and Ctrl-A (sent as Ctrl-A Ctrl-A through QEMU) work; Up recalls.
    @Test func editedLinesRunAsEditedAndHistoryRecallsThem() throws {
        let machine = try Self.bootToPrompt()
        machine.press(Array("ecXho hllo".utf8))
        machine.press(Self.home + Self.right + Self.right + Self.right + Self.backspace)
        machine.press(Self.end + Self.left + Self.left + Self.left + Array("e".utf8) + Self.enter)
        #expect(machine.waitFor("\r\nhello\r\n"), "\(machine.transcript)")
        machine.press(Array("echo junk words".utf8) + [0x17] + [0x17] + Array("kept".utf8) + Self.enter)
        #expect(machine.waitFor("\r\nkept\r\n"), "\(machine.transcript)")
        machine.press(Array("XYZecho at start".utf8) + [0x01, 0x01] + Self.right + Self.right + Self.right)
        machine.press([0x15] + Self.enter)  // Ctrl-U: erase XYZ
        #expect(machine.waitFor("\r\nat start\r\n"), "\(machine.transcript)")
        machine.press(Self.up + Self.up + Self.enter)
        #expect(machine.waitFor("\r\nkept\r\n", count: 2), "Up did not recall:\n\(machine.transcript)")
        machine.press(Self.up + Self.up + Self.up + Self.up + Array(" again".utf8) + Self.enter)
        #expect(machine.waitFor("\r\nhello again\r\n"), "\(machine.transcript)")
        #expect(!machine.transcript.contains("unknown command"), "\(machine.transcript)")
        #expect(!machine.transcript.contains("[A"), "an escape sequence was inserted:\n\(machine.transcript)")
    }

    /// Ctrl-C stops `run crashme loop`, the shell answers and crashme is gone; at the
    /// prompt Ctrl-C abandons the line; Ctrl-D at an empty prompt powers off.
    @Test func ctrlCStopsTheForegroundProgramAndCtrlDPowersOff() throws {
        let machine = try Self.bootToPrompt()
        machine.type("run crashme loop")
        #expect(machine.waitFor("run crashme loop\r\n"))
        machine.press(Self.interrupt)
        #expect(machine.waitFor("crashme was interrupted"), "Ctrl-C did not stop it:\n\(machine.transcript)")
        machine.type("ps")
        #expect(machine.waitFor("RESTARTS"))
        #expect(machine.waitFor("curio> ", count: 3))
        let processes = try #require(machine.transcript.components(separatedBy: "RESTARTS").last)
        #expect(!processes.contains("crashme"), "crashme still listed:\n\(processes)")
        machine.press(Array("echo abandoned".utf8) + Self.interrupt)
        machine.type("echo still answering")
        #expect(machine.waitFor("\r\nstill answering\r\n"), "\(machine.transcript)")
        #expect(!machine.transcript.contains("\r\nabandoned\r\n"), "an abandoned line ran:\n\(machine.transcript)")
        machine.press(Self.endOfInput)
        #expect(machine.waitForExit() == 0, "Ctrl-D did not power off:\n\(machine.transcript)")
    }

    /// Tab completes a command name and, through the filesystem, a directory and a
    /// file; an ambiguous prefix lists the choices.
    @Test func tabCompletesCommandsAndPaths() throws {
        guard DiskTools.available else {
            Issue.record("e2fsprogs are needed: make deps")
            return
        }
        let work = try DiskTools.temporaryDirectory("console")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = work.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: CurioMachine.packageRoot.appendingPathComponent("disk"),
                                blockSize: 1024, megabytes: 8)
        let machine = try Self.bootToPrompt(extra: DiskTools.qemuArguments(image))
        machine.press(Array("ec".utf8) + Self.tab + Array("tab works".utf8) + Self.enter)
        #expect(machine.waitFor("\r\ntab works\r\n"), "\(machine.transcript)")
        machine.press(Array("ca".utf8) + Self.tab + Array("/et".utf8) + Self.tab + Array("mo".utf8) + Self.tab
                      + Self.enter)
        #expect(machine.waitFor("servers crash, clients carry on"), "\(machine.transcript)")
        machine.press(Array("s".utf8) + Self.tab)
        #expect(machine.waitFor("sleep  spawntest  ssr  stat  sync"), "\(machine.transcript)")
    }

    @Test func uptimeCountsInstructionsOnlyUnderIcount() throws {
        let plain = try CurioMachine.run(commands: "uptime")
        #expect(plain.exitStatus == 0, "\(plain.console)")
        #expect(plain.console.contains("instruction counts need QEMU's -icount"), "\(plain.console)")
        #expect(!plain.console.contains("after power-on"), "\(plain.console)")
        let counted = try CurioMachine.run(commands: "uptime", extra: ["-icount", "shift=0,sleep=off"])
        let line = try #require(counted.console.split(separator: "\n").first { $0.hasPrefix("up ") })
        let count = try #require(line.firstMatch(of: /started (\d+) instructions after power-on/).flatMap { Int($0.1) },
                                 "\(line)")
        #expect(count > 1_000_000 && count < 1_000_000_000, "\(line)")
    }
}
