// Crash safety: every mutating operation is cut short after N device writes,
// for every N up to the number of writes it does, and then
//   * re-run on the intact disk with the last checkpointed intent: the volume
//     must end up exactly as after a single run (same tree, bytes, link counts,
//     sector counts and free counts), the re-run must return what a single run
//     returns, and `e2fsck -fn` must be clean with the superblock counts right;
//   * left alone (no re-run): `e2fsck -fp` must fix it silently (exit 0 or 1).
// The only exception is the documented window of a directory moved between
// directories, which briefly has two entries (PR_2_LINK_DIR).

import Ext2
import FileSystemCore
import Foundation
import Testing

struct CrashCase: CustomStringConvertible, Sendable {
    var name: String
    var blockSize = 1024
    var setup: [Step]
    var operation: Step
    var mayLinkDirectoryTwice = false
    /// debugfs -w commands run after `setup` (for what the engine cannot make: hard links).
    var debugfsSetup: [String] = []
    /// A line the single run's digest must contain (proves the setup did what it says).
    var expectedLine: String? = nil
    var description: String { name }
}

extension Step: @unchecked Sendable {}

let longName = String(repeating: "n", count: 96)

let crashCases: [CrashCase] = [
    CrashCase(name: "create", setup: [.mkdir("/d"), .create("/d/a")], operation: .create("/d/new")),
    CrashCase(name: "mkdir", setup: [.mkdir("/d"), .create("/d/a")], operation: .mkdir("/d/sub")),
    CrashCase(name: "mkdir extending a 12-block directory (indirect block)",
              setup: [.mkdir("/full")] + (0..<108).map { .create("/full/\($0 + 1000)" + longName) },
              operation: .mkdir("/full/9999" + longName)),
    CrashCase(name: "write 40 KiB into an empty file", setup: [.mkdir("/d"), .create("/d/f")],
              operation: .write("/d/f", offset: 0, bytes: pattern(40 * 1024, seed: 21))),
    CrashCase(name: "overwrite and extend", setup: [.create("/g"), .write("/g", offset: 0, bytes: pattern(12 * 1024, seed: 22))],
              operation: .write("/g", offset: 10000, bytes: pattern(6000, seed: 23))),
    CrashCase(name: "write into the double-indirect region",
              setup: [.create("/h"), .truncate("/h", 266 * 1024)],
              operation: .write("/h", offset: 266 * 1024 - 100, bytes: pattern(8 * 1024, seed: 24))),
    CrashCase(name: "truncate 300 KiB to 5000 bytes",
              setup: [.create("/big"), .write("/big", offset: 0, bytes: pattern(300 * 1024, seed: 25))],
              operation: .truncate("/big", 5000)),
    CrashCase(name: "truncate grow", setup: [.create("/g"), .write("/g", offset: 0, bytes: pattern(3000, seed: 26))],
              operation: .truncate("/g", 1 << 20)),
    CrashCase(name: "unlink", setup: [.mkdir("/d"), .create("/d/x"), .write("/d/x", offset: 0, bytes: pattern(40 * 1024, seed: 27))],
              operation: .unlink("/d/x")),
    CrashCase(name: "unlink one of two hard links",
              setup: [.mkdir("/d"), .create("/d/x"), .write("/d/x", offset: 0, bytes: pattern(5000, seed: 32))],
              operation: .unlink("/d/x"), debugfsSetup: ["ln /d/x /d/y", "sif /d/x links_count 2"],
              expectedLine: "/d/y size=5000 links=1"),
    CrashCase(name: "rmdir", setup: [.mkdir("/d"), .mkdir("/d/e"), .create("/d/keep")], operation: .rmdir("/d/e")),
    CrashCase(name: "rename file over file",
              setup: [.mkdir("/d"), .create("/d/s"), .write("/d/s", offset: 0, bytes: pattern(3000, seed: 28)),
                      .mkdir("/t"), .create("/t/v"), .write("/t/v", offset: 0, bytes: pattern(30 * 1024, seed: 29))],
              operation: .rename("/d/s", "/t/v")),
    CrashCase(name: "rename in place", setup: [.mkdir("/d"), .create("/d/old-name")], operation: .rename("/d/old-name", "/d/new")),
    CrashCase(name: "rename directory across directories",
              setup: [.mkdir("/a"), .mkdir("/a/m"), .create("/a/m/f"), .mkdir("/a/m/n"), .mkdir("/b")],
              operation: .rename("/a/m", "/b/m2"), mayLinkDirectoryTwice: true),
    CrashCase(name: "rename directory over an empty directory",
              setup: [.mkdir("/a"), .mkdir("/a/m"), .create("/a/m/f"), .mkdir("/b"), .mkdir("/b/empty")],
              operation: .rename("/a/m", "/b/empty"), mayLinkDirectoryTwice: true),
    CrashCase(name: "create and write on 4 KiB blocks", blockSize: 4096, setup: [.create("/w")],
              operation: .write("/w", offset: 5000, bytes: pattern(70 * 1024, seed: 30))),
    CrashCase(name: "unlink on 4 KiB blocks", blockSize: 4096,
              setup: [.mkdir("/d"), .create("/d/x"), .write("/d/x", offset: 0, bytes: pattern(90 * 1024, seed: 31))],
              operation: .unlink("/d/x")),
    // What fstest's streams do each round: a soak of fs crashes leaked the blocks of
    // the interrupted truncate step when the create stage started a fresh intent.
    CrashCase(name: "open O_CREAT|O_TRUNC over a 48 KiB file with an appended tail",
              setup: [.create("/s"), .write("/s", offset: 0, bytes: pattern(48 * 1024 + 100, seed: 33))],
              operation: .openTruncating("/s")),
    CrashCase(name: "open O_CREAT|O_TRUNC of a missing file", setup: [.mkdir("/d")],
              operation: .openTruncating("/d/new")),
]

/// The base image of a case and what one uninterrupted run gives.
struct Reference {
    var base: DiskImage
    var prepared: Prepared
    var result: String
    var digest: String
    var writes: Int

    init(_ crashCase: CrashCase) throws {
        let base = try Tools.makeImage(blockSize: crashCase.blockSize, size: crashCase.blockSize == 1024 ? "2M" : "8M")
        var volume = try mount(base)
        try perform(crashCase.setup, on: &volume, tag: 100)
        if !crashCase.debugfsSetup.isEmpty {
            let file = Tools.temporaryFile("setup")
            defer { try? FileManager.default.removeItem(at: file) }
            try base.save(to: file)
            for command in crashCase.debugfsSetup { Tools.run("debugfs", ["-w", "-R", command, file.path]) }
            base.bytes = [UInt8](try Data(contentsOf: file))
        }
        self.base = base
        let once = base.copy()
        var single = try mount(once)
        prepared = try Prepared(crashCase.operation, on: &single)
        result = try prepared.run(on: &single, run: Run(tag: 4242))
        writes = single.device.writes
        digest = try Ext2Tests.digest(&single)
        try expectClean(once, single, "after a single run of \(crashCase.name)")
    }
}

@Suite(.enabled(if: Tools.available, "e2fsprogs not installed in /usr/sbin"))
struct CrashTests {
    @Test(arguments: crashCases)
    func everyCrashPointRecovers(_ crashCase: CrashCase) throws {
        let reference = try Reference(crashCase)
        #expect(reference.writes > 0)
        if let line = crashCase.expectedLine { #expect(reference.digest.contains(line), "\(reference.digest)") }
        for crashAfter in 0..<reference.writes {
            let disk = reference.base.copy()
            var crashing = try mount(disk, crashAfter: crashAfter)
            let run = Run(tag: 4242)
            #expect(throws: (any Error).self, "\(crashCase.name) should not finish with \(crashAfter) writes") {
                try reference.prepared.run(on: &crashing, run: run)
            }
            #expect(disk.bytes != reference.base.bytes || crashAfter == 0)

            // No re-run: preen must repair silently.
            let (status, output) = try preenStatus(disk)
            let linkedTwice = crashCase.mayLinkDirectoryTwice && output.contains("is a link to directory")
            #expect(status <= 1 || linkedTwice, "\(crashCase.name), crash after \(crashAfter) writes, e2fsck -p:\n\(output)")

            // Re-run with the last checkpointed intent.
            var again = try mount(disk)
            let result = try reference.prepared.run(on: &again, run: Run(intent: run.intent))
            #expect(result == reference.result, "\(crashCase.name), crash after \(crashAfter): re-run returned \(result)")
            let digest = try Ext2Tests.digest(&again)
            #expect(digest == reference.digest, "\(crashCase.name), crash after \(crashAfter): state differs\n\(digest)\n--- expected\n\(reference.digest)")
            try expectClean(disk, again, "\(crashCase.name), crash after \(crashAfter) and re-run")
        }
    }

    /// A write or truncate interrupted and never run again (the kernel failed its
    /// request, its client ended) gives back what its unfinished step held: after
    /// `release(abandoned:)` e2fsck finds no block marked in use that nothing links,
    /// and none linked but marked free.
    @Test(arguments: crashCases.filter {
        if case .write = $0.operation { return true }
        if case .truncate = $0.operation { return true }
        if case .openTruncating = $0.operation { return true }
        return false
    })
    func anAbandonedStepGivesBackItsBlocks(_ crashCase: CrashCase) throws {
        let reference = try Reference(crashCase)
        for crashAfter in 0..<reference.writes {
            let disk = reference.base.copy()
            var crashing = try mount(disk, crashAfter: crashAfter)
            let run = Run(tag: 4242)
            _ = try? reference.prepared.run(on: &crashing, run: run)
            var after = try mount(disk)
            try after.release(abandoned: run.intent)
            let verdict = try judge(disk)
            #expect(!verdict.fsckOutput.contains("Block bitmap differences"),
                    "\(crashCase.name), crash after \(crashAfter), released:\n\(verdict.fsckOutput)")
        }
    }

    @Test func theIntentFitsTheServersSlot() {
        #expect(MemoryLayout<Ext2Intent>.size <= 128)
    }

    /// Other clients run before the re-run; the interrupted intent was adopted,
    /// so they cannot take what it names.
    @Test(arguments: [0, 1, 2, 3, 4, 5, 6])
    func othersMayRunBeforeTheRerun(crashAfter: Int) throws {
        try othersRunBeforeTheRerun(crashAfter: crashAfter) { disk, intent in
            let restarted = try mount(disk)
            restarted.adoptInterrupted(intent)
            return restarted
        }
    }

    /// Recovery adopts the interrupted intent before any volume is mounted (the mount
    /// may fail then: storage or configuration not answering yet); the volume mounted
    /// later must honour it.
    @Test(arguments: [0, 1, 2, 3, 4, 5, 6])
    func anIntentAdoptedBeforeTheMountIsHonoured(crashAfter: Int) throws {
        try othersRunBeforeTheRerun(crashAfter: crashAfter) { disk, intent in
            let interrupted = InterruptedUpdates()
            interrupted.adopt(intent)
            return try mount(disk, interrupted: interrupted)
        }
    }

    /// The server drops its volume and mounts afresh to retry an I/O or corruption
    /// error; the intents adopted by the volume it dropped must hold in the new one.
    @Test(arguments: [0, 1, 2, 3, 4, 5, 6])
    func adoptedIntentsSurviveAFreshMount(crashAfter: Int) throws {
        try othersRunBeforeTheRerun(crashAfter: crashAfter) { disk, intent in
            let interrupted = InterruptedUpdates()
            let dropped = try mount(disk, interrupted: interrupted)
            dropped.adoptInterrupted(intent)
            return try mount(disk, interrupted: interrupted)
        }
    }

    /// Crashes a 40 KiB write after `crashAfter` device writes, lets `restart` mount
    /// the volume that the other clients and then the re-run use, and checks that
    /// the re-run finished the write and nobody took what its intent held.
    func othersRunBeforeTheRerun(crashAfter: Int, restart: (DiskImage, Ext2Intent) throws -> Volume) throws {
        let crashCase = crashCases[3] // write 40 KiB into an empty file
        let reference = try Reference(crashCase)
        let disk = reference.base.copy()
        var crashing = try mount(disk, crashAfter: crashAfter)
        let run = Run(tag: 4242)
        _ = try? reference.prepared.run(on: &crashing, run: run)
        var restarted = try restart(disk, run.intent)
        try perform([.create("/d/other"), .write("/d/other", offset: 0, bytes: pattern(30 * 1024, seed: 99)), .mkdir("/d/dir")],
                    on: &restarted, tag: 7000)
        let result = try reference.prepared.run(on: &restarted, run: Run(intent: run.intent))
        #expect(result == reference.result)
        try expectClean(disk, restarted, "others before the re-run, crash after \(crashAfter)")
        var model = Model()
        for step in crashCase.setup + [crashCase.operation, .create("/d/other"),
                                       .write("/d/other", offset: 0, bytes: pattern(30 * 1024, seed: 99)), .mkdir("/d/dir")] {
            model.apply(step)
        }
        #expect(try verify(disk, against: model, useDebugfs: false) == [])
    }
}
