// A disk Curio cannot use, as a person meets it: the reason at the interactive boot
// and on every file command, naming what to fix. The images come from mkfs.ext4 and
// mke2fs, and dumpe2fs says which features they carry, so the features Curio must
// name are the host's word, not ours.

import Foundation
import Testing

@Suite(.serialized) struct MountFailureTests {
    /// The features of `image` as dumpe2fs lists them.
    static func features(of image: URL) throws -> [String] {
        let header = try DiskTools.run("dumpe2fs", ["-h", image.path]).output
        let line = try #require(header.split(separator: "\n").first { $0.hasPrefix("Filesystem features:") })
        return line.dropFirst("Filesystem features:".count).split(separator: " ").map(String.init)
    }

    /// What Curio reads and writes (MountStatus.swift); every other feature must be named.
    static let understood: Set = ["dir_prealloc", "imagic_inodes", "has_journal", "ext_attr", "resize_inode",
                                  "dir_index", "filetype", "sparse_super", "large_file"]

    /// Booted with an image as `mkfs.ext4` makes it by default, Curio names every
    /// feature in the way, at boot and on `ls`, with how to make an image it can use;
    /// a write is refused the same way and leaves the image exactly as it was.
    @Test func anExt4ImageIsRefusedNamingItsFeaturesAtBootAndOnEveryFileCommand() throws {
        guard FileSystemTests.requireTools(), DiskTools.path("mkfs.ext4") != nil else {
            Issue.record("mkfs.ext4 (e2fsprogs) is needed: make deps")
            return
        }
        let work = try DiskTools.temporaryDirectory("ext4")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = work.appendingPathComponent("ext4.img")
        let made = try DiskTools.run("mkfs.ext4", ["-q", "-F", image.path, "16M"])
        #expect(made.status == 0, "mkfs.ext4: \(made.output)")
        let inTheWay = try Self.features(of: image).filter { !Self.understood.contains($0) }
        #expect(["extent", "64bit", "flex_bg", "metadata_csum"].allSatisfy(inTheWay.contains), "\(inTheWay)")
        let before = try Data(contentsOf: image)

        // Generous bounds: a host busy with other QEMUs slows each command to seconds.
        let machine = try ConsoleTests.bootToPrompt(extra: DiskTools.qemuArguments(image))
        let boot = machine.transcript.replacingOccurrences(of: "\r\n", with: "\n")
        let reason = "no filesystem: the disk needs ext4 features Curio does not support: "
        let bootLine = try #require(boot.split(separator: "\n").first { $0.hasPrefix("fs: " + reason) },
                                    "no reason at boot:\n\(boot)")
        for feature in inTheWay { #expect(bootLine.contains(feature), "\(feature) not named: \(bootLine)") }
        #expect(bootLine.contains("mke2fs -t ext2"), "no remedy: \(bootLine)")
        machine.type("ls")
        #expect(machine.waitFor("ls: " + reason, timeout: 120), "\(machine.transcript)")
        machine.type("write /new text")
        #expect(machine.waitFor("write: " + reason, timeout: 120), "\(machine.transcript)")
        let transcript = machine.transcript.replacingOccurrences(of: "\r\n", with: "\n")
        let listLine = try #require(transcript.split(separator: "\n").first { $0.hasPrefix("ls: ") })
        #expect(listLine.dropFirst("ls: ".count) == bootLine.dropFirst("fs: ".count), "the same reason each time")
        machine.press(ConsoleTests.endOfInput)
        #expect(machine.waitForExit() == 0)
        #expect(try Data(contentsOf: image) == before, "the refused image was written to")
    }

    /// An image whose only unknown features are ro_compat ones mounts read-only: it is
    /// read, a write says why it is refused, and e2fsck finds it untouched.
    @Test func anImageWithFeaturesCurioCannotWriteIsReadButNotWritten() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("rocompat")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = work.appendingPathComponent("csum.img")
        try? FileManager.default.removeItem(at: image)
        let made = try DiskTools.run("mke2fs", ["-q", "-F", "-t", "ext2", "-b", "1024", "-O", "metadata_csum", "-d",
                                                CurioMachine.packageRoot.appendingPathComponent("disk").path,
                                                image.path, "8M"])
        #expect(made.status == 0, "mke2fs: \(made.output)")
        let before = try Data(contentsOf: image)
        let run = try CurioMachine.run(commands: "cat /etc/motd; write /new text; ls /", timeout: .seconds(60),
                                       extra: DiskTools.qemuArguments(image))
        #expect(!run.timedOut)
        #expect(run.console.contains("servers crash, clients carry on"), "not read:\n\(run.console)")
        #expect(run.console.contains("write: /new: read-only filesystem (mounted read-only: Curio cannot write"
                                     + " ext4 features: metadata_csum)"), "\(run.console)")
        #expect(try Data(contentsOf: image) == before, "a read-only volume was written to")
    }

    /// Without a disk, with a disk that holds no ext2, and with an ext3 image whose
    /// journal was never replayed, the reason says which, and what to do.
    @Test func noDiskNotExt2AndAnUnreplayedJournalAreToldApart() throws {
        let diskless = try CurioMachine.run(commands: "ls", timeout: .seconds(60))
        #expect(diskless.console.contains("ls: no filesystem: the machine has no disk"), "\(diskless.console)")
        let work = try DiskTools.temporaryDirectory("zeros")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = work.appendingPathComponent("zeros.img")
        try Data(count: 4 << 20).write(to: image)
        let zeros = try CurioMachine.run(commands: "cat /etc/motd", timeout: .seconds(60),
                                         extra: DiskTools.qemuArguments(image))
        #expect(zeros.console.contains("cat: no filesystem: the disk holds no ext2 filesystem (superblock magic 0x0000"),
                "\(zeros.console)")
        guard FileSystemTests.requireTools() else { return }
        let journaled = work.appendingPathComponent("ext3.img")
        let made = try DiskTools.run("mke2fs", ["-q", "-F", "-t", "ext3", "-b", "1024", journaled.path, "8M"])
        #expect(made.status == 0, "mke2fs: \(made.output)")
        _ = try DiskTools.run("debugfs", ["-w", "-R", "feature needs_recovery", journaled.path])
        let unreplayed = try CurioMachine.run(commands: "ls", timeout: .seconds(60),
                                              extra: DiskTools.qemuArguments(journaled))
        #expect(unreplayed.console.contains("ls: no filesystem: its journal holds updates not yet written in place"
                                            + " (needs_recovery): run e2fsck -fy IMAGE on it first"),
                "\(unreplayed.console)")
    }
}
