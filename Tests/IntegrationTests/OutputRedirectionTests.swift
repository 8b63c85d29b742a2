// `CMD > PATH` and `CMD >> PATH` on a real disk: built-in commands and programs write
// their output to files, which the host then reads with debugfs and checks with
// e2fsck; a bad target stops the command before it prints anything; Ctrl-C stops a
// redirected program as it stops any other.

import Foundation
import Testing

@Suite(.serialized) struct OutputRedirectionTests {
    /// A disk from the repository's disk/ folder plus `/gen`, a directory of files with
    /// long names, so that listing it prints more than twice the most one message carries (4 KiB).
    static func makeDisk(in work: URL) throws -> URL {
        let tree = work.appendingPathComponent("tree")
        try FileManager.default.copyItem(at: CurioMachine.packageRoot.appendingPathComponent("disk"), to: tree)
        let generated = tree.appendingPathComponent("gen")
        try FileManager.default.createDirectory(at: generated, withIntermediateDirectories: true)
        for index in 0..<150 {
            let name = "a-file-with-a-name-long-enough-to-fill-lines-\(index)"
            try GeneratedTree.contents(path: name, size: index * 7).write(to: generated.appendingPathComponent(name))
        }
        let image = work.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: tree, blockSize: 1024, megabytes: 16)
        return image
    }

    static func file(_ path: String, of image: URL, in work: URL) throws -> Data {
        let dumped = work.appendingPathComponent("dumped")
        try? FileManager.default.removeItem(at: dumped)
        _ = try DiskTools.debugfs(image, "dump \(path) \(dumped.path)")
        return (try? Data(contentsOf: dumped)) ?? Data()
    }

    /// The lines a command printed in a script: from its echoed prompt line to the next prompt.
    static func output(of command: String, in console: String) -> String? {
        guard let start = console.range(of: "curio> " + command + "\n") else { return nil }
        let rest = console[start.upperBound...]
        let end = rest.range(of: "curio> ")?.lowerBound ?? rest.endIndex
        return String(rest[..<end])
    }

    @Test func builtInCommandsAndProgramsWriteExactlyTheirOutputToTheFile() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("redirect")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = try Self.makeDisk(in: work)
        let script = [
            "echo hello world > /out", "echo second line >> /out", "ls / >> /out", "run crashme badptr >> /out",
            "cat /out", "run fstest tree /gen", "run fstest tree /gen > /tree", "echo replaced > /tree2",
            "echo again>/tree2", "ls /docs>>/tree2",
        ].joined(separator: "; ")
        let run = try CurioMachine.run(commands: script, timeout: .seconds(120), extra: DiskTools.qemuArguments(image))
        let console = run.console
        #expect(!run.timedOut && run.exitStatus == 0, "\(console.suffix(2000))")

        // What the host finds: the root in directory order (as ls printed it, /out included).
        let root = try DiskTools.debugfs(image, "ls -p /").split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: "/", omittingEmptySubsequences: false)
            guard fields.count >= 6, fields[5] != ".", fields[5] != ".." else { return nil }
            return String(fields[5])
        }
        #expect(root.contains("out") && root.contains("tree"), "\(root)")
        let listing = root.filter { $0 != "tree" && $0 != "tree2" }.map { $0 + "\n" }.joined()
        let expected = "hello world\nsecond line\n" + listing
            + "badptr: refused: bad address\nbadptr: refused: bad address\n"
        #expect(String(decoding: try Self.file("/out", of: image, in: work), as: UTF8.self) == expected)
        #expect(Self.output(of: "cat /out", in: console) == expected, "cat shows what the host reads")
        #expect(!console.contains("curio> echo hello world > /out\nhello world"), "redirected output reached the console")

        // A program's output, many messages long, lands in the file exactly as it printed it unredirected.
        let shown = try #require(Self.output(of: "run fstest tree /gen", in: console))
        #expect(shown.utf8.count > 2 * 4096 && shown.contains("tree files=150 "), "\(shown.prefix(500))")
        #expect(String(decoding: try Self.file("/tree", of: image, in: work), as: UTF8.self) == shown)
        #expect(Self.output(of: "run fstest tree /gen > /tree", in: console) == "", "nothing of it on the console")
        #expect(String(decoding: try Self.file("/tree2", of: image, in: work), as: UTF8.self) == "again\nssr.txt\n",
                "> replaces, >> appends")

        let check = try DiskTools.check(image)
        #expect(check.status == 0, "e2fsck -fn: \(check.output)")
    }

    /// A target that cannot be written — a directory, a missing parent, no filesystem —
    /// is reported and the command is not run, so nothing it would have printed is lost.
    @Test func aBadTargetIsReportedAndTheCommandNotRun() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("badtarget")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = try Self.makeDisk(in: work)
        let before = try Data(contentsOf: image)
        let run = try CurioMachine.run(
            commands: "echo lost > /docs; run crashme badptr > /nowhere/out; ls / >; echo a > /x > /y; echo alive",
            timeout: .seconds(60), extra: DiskTools.qemuArguments(image))
        let console = run.console
        #expect(console.contains("echo: > /docs: is a directory\n"), "\(console)")
        #expect(console.contains("run: > /nowhere/out: no such file or directory\n"), "\(console)")
        #expect(!console.contains("badptr: refused"), "crashme ran:\n\(console)")
        #expect(console.contains("shell: a file name must follow > or >>\n"), "\(console)")
        #expect(console.contains("shell: one > or >> per command\n"), "\(console)")
        #expect(!console.contains("\nlost\n") && console.contains("\nalive\n"), "\(console)")
        #expect(try Data(contentsOf: image) == before, "a refused redirection changed the disk")

        let diskless = try CurioMachine.run(commands: "echo lost > /out; run crashme badptr >> /out", timeout: .seconds(60))
        #expect(diskless.console.contains("echo: no filesystem: the machine has no disk"), "\(diskless.console)")
        #expect(diskless.console.contains("run: no filesystem: the machine has no disk"), "\(diskless.console)")
        #expect(!diskless.console.contains("\nlost\n") && !diskless.console.contains("badptr: refused"), "\(diskless.console)")
    }

    /// A file that fills the disk part-way: what fitted stays in it, the shell says so,
    /// and the rest of the program's output follows on the console, none of it lost.
    @Test func aFullDiskSendsTheRestToTheConsole() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("redirect-full")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = try Self.makeDisk(in: work)
        // Fill all but a few blocks (a 16 MiB image of 1 KiB blocks), found by halving;
        // not with zeros, which debugfs would leave as holes.
        var low = 0
        var high = 16 * 1024
        while high - low > 1 {
            let middle = (low + high) / 2
            let trial = work.appendingPathComponent("trial.img")
            try? FileManager.default.removeItem(at: trial)
            try FileManager.default.copyItem(at: image, to: trial)
            let filler = work.appendingPathComponent("filler")
            try Data(repeating: 0x5A, count: middle * 1024).write(to: filler)
            _ = try DiskTools.run("debugfs", ["-w", "-R", "write \(filler.path) filler", trial.path])
            let free = try DiskTools.superblockCounts(trial).freeBlocks
            let written = try DiskTools.debugfs(trial, "stat /filler").contains("Size: \(middle * 1024)")
            if written && free >= 4 { low = middle } else { high = middle }
        }
        let filler = work.appendingPathComponent("filler")
        try Data(repeating: 0x5A, count: low * 1024).write(to: filler)
        _ = try DiskTools.run("debugfs", ["-w", "-R", "write \(filler.path) filler", image.path])
        let free = try DiskTools.superblockCounts(image).freeBlocks
        #expect(free >= 4 && free < 12, "\(free) blocks free")

        let run = try CurioMachine.run(commands: "run fstest tree /gen; run fstest tree /gen > /tree; echo done",
                                       timeout: .seconds(120), extra: DiskTools.qemuArguments(image))
        let console = run.console
        #expect(!run.timedOut, "\(console.suffix(2000))")
        let shown = try #require(Self.output(of: "run fstest tree /gen", in: console))
        let redirected = try #require(Self.output(of: "run fstest tree /gen > /tree", in: console))
        let notice = "run fstest tree /gen > /tree: no space left on device; the rest of the output follows here\n"
        #expect(redirected.hasPrefix(notice), "\(redirected.prefix(300))")
        let rest = String(redirected.dropFirst(notice.count))
        let kept = String(decoding: try Self.file("/tree", of: image, in: work), as: UTF8.self)
        #expect(!kept.isEmpty && !rest.isEmpty, "the disk filled part-way: \(kept.utf8.count) bytes kept")
        #expect(kept + rest == shown, "every byte is in the file or on the console, in order")
        let check = try DiskTools.check(image)
        #expect(check.status == 0, "e2fsck -fn: \(check.output)")
    }

    /// At the prompt, Ctrl-C stops a program whose output goes to a file (the shell
    /// waits in `collect` then, not in `awaitInterrupt`), and redirection goes on working.
    @Test func ctrlCStopsARedirectedProgram() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("redirect-interrupt")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = try Self.makeDisk(in: work)
        let machine = try ConsoleTests.bootToPrompt(extra: DiskTools.qemuArguments(image))
        machine.type("run crashme loop > /looped")
        #expect(machine.waitFor("run crashme loop > /looped\r\n", timeout: 120))
        machine.press(ConsoleTests.interrupt)
        #expect(machine.waitFor("crashme was interrupted", timeout: 120), "Ctrl-C did not stop it:\n\(machine.transcript)")
        machine.type("run crashme badptr > /looped")
        machine.type("cat /looped")
        #expect(machine.waitFor("cat /looped\r\nbadptr: refused: bad address\r\nbadptr: refused: bad address\r\n", timeout: 120),
                "\(machine.transcript)")
        machine.press(ConsoleTests.endOfInput)
        #expect(machine.waitForExit() == 0)
    }
}
