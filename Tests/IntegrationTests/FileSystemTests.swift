// The storage and filesystem servers on real disks: images made by mke2fs, read and
// written by Curio, then judged by e2fsck, dumpe2fs and debugfs.

import Foundation
import Testing

@Suite(.serialized) struct FileSystemTests {
    /// The lines `fstest tree` printed: path -> (size, crc) for files, and directories.
    struct Listing {
        var files: [String: (size: Int, crc: UInt32)] = [:]
        var directories: Set<String> = []
        var errors: [String] = []

        init(_ console: String) {
            for line in console.split(separator: "\n") {
                let fields = line.split(separator: " ", maxSplits: 3).map(String.init)
                switch fields.first {
                case "F" where fields.count == 4:
                    files[fields[3]] = (Int(fields[2]) ?? -1, UInt32(fields[1], radix: 16) ?? 0)
                case "D" where fields.count == 2: directories.insert(fields[1])
                case "E": errors.append(String(line))
                default: break
                }
            }
        }
    }

    static func requireTools() -> Bool {
        guard DiskTools.available else {
            Issue.record("e2fsprogs (mke2fs, e2fsck, debugfs, dumpe2fs) are needed: make deps")
            return false
        }
        return true
    }

    @Test(arguments: [1024, 4096])
    func curioReadsEveryFileOfAnMke2fsImageByteExactly(blockSize: Int) throws {
        guard Self.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("read\(blockSize)")
        defer { try? FileManager.default.removeItem(at: work) }
        let tree = try GeneratedTree(at: work.appendingPathComponent("tree"))
        #expect(tree.files.count >= 200)
        let image = work.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: tree.root, blockSize: blockSize, megabytes: 40)

        let run = try CurioMachine.run(commands: "run fstest tree /", timeout: .seconds(300),
                                       extra: DiskTools.qemuArguments(image))
        #expect(!run.timedOut)
        let listing = Listing(run.console)
        #expect(listing.errors.isEmpty, "\(listing.errors)")
        for file in tree.files {
            guard let seen = listing.files[file.path] else {
                Issue.record("\(file.path) missing from Curio's listing")
                continue
            }
            #expect(seen.size == file.size, "\(file.path): size")
            #expect(seen.crc == file.crc, "\(file.path): contents")
        }
        #expect(listing.files.count == tree.files.count, "no file Curio saw that the host did not write")
        #expect(listing.directories.isSuperset(of: Set(tree.directories)))
        #expect(run.console.contains("tree files=\(tree.files.count) "))
        #expect(try DiskTools.check(image).status == 0, "reading leaves the image clean")
    }

    /// What `fstest ops` leaves behind, computed on the host.
    static func opsPattern(seed: Int, count: Int) -> Data {
        Data((0..<count).map { offset in UInt8(truncatingIfNeeded: (offset &* 31 &+ seed &* 101) ^ (offset >> 9)) })
    }

    static var expectedOpsFiles: [String: Data] {
        var files: [String: Data] = [:]
        files["/work/big"] = opsPattern(seed: 1, count: 100_000) + Data(count: 50_000)
        files["/work/sub/moved"] = opsPattern(seed: 2, count: 70_000)
        files["/work/sub/target"] = Data("hello\nworld\n".utf8)
        for index in stride(from: 1, to: 40, by: 2) {
            files["/work/many/file-with-a-longer-name-\(index)"] = Data("file \(index)\n".utf8)
        }
        files["/README"] = Data("seed\n".utf8)
        return files
    }

    @Test(arguments: [1024, 4096])
    func updatesLeaveACleanImageWithTheExpectedTree(blockSize: Int) throws {
        guard Self.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("ops\(blockSize)")
        defer { try? FileManager.default.removeItem(at: work) }
        let seed = work.appendingPathComponent("seed")
        try FileManager.default.createDirectory(at: seed, withIntermediateDirectories: true)
        try Data("seed\n".utf8).write(to: seed.appendingPathComponent("README"))
        let image = work.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: seed, blockSize: blockSize, megabytes: 16)

        let run = try CurioMachine.run(commands: "run fstest ops; df", timeout: .seconds(120),
                                       extra: DiskTools.qemuArguments(image))
        #expect(!run.timedOut)
        #expect(run.console.contains("ops ok"), "\(run.console.suffix(1500))")

        let check = try DiskTools.check(image)
        #expect(check.status == 0, "e2fsck -fn: \(check.output)")
        // e2fsck's own count of used inodes and blocks against the superblock's free counts.
        let counts = try DiskTools.superblockCounts(image)
        let summary = check.output.split(separator: "\n").last { $0.contains(" files (") }.map(String.init) ?? ""
        let pattern = try NSRegularExpression(pattern: #"(\d+)/(\d+) files .* (\d+)/(\d+) blocks"#)
        let match = pattern.firstMatch(in: summary, range: NSRange(summary.startIndex..., in: summary))
        let numbers = (1...4).compactMap { group in
            match.flatMap { Range($0.range(at: group), in: summary) }.flatMap { Int(summary[$0]) }
        }
        #expect(numbers.count == 4, "\(summary)")
        if numbers.count >= 4 {
            #expect(counts.freeInodes == numbers[1] - numbers[0], "free inodes: \(summary)")
            #expect(counts.freeBlocks == numbers[3] - numbers[2], "free blocks: \(summary)")
            #expect(run.console.contains("\(counts.freeBlocks) free"), "df agrees with the superblock")
        }

        for (path, contents) in Self.expectedOpsFiles {
            let dumped = work.appendingPathComponent("dump")
            try? FileManager.default.removeItem(at: dumped)
            _ = try DiskTools.debugfs(image, "dump \(path) \(dumped.path)")
            let data = (try? Data(contentsOf: dumped)) ?? Data()
            #expect(data == contents, "\(path): \(data.count) bytes, expected \(contents.count)")
        }
        // Exactly the expected names, nothing more (debugfs ls -p: /inode/mode/uid/gid/name/size/).
        func names(_ directory: String) throws -> Set<String> {
            let listing = try DiskTools.debugfs(image, "ls -p \(directory)")
            return Set(listing.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(separator: "/", omittingEmptySubsequences: false)
                guard fields.count >= 6 else { return nil }
                let name = String(fields[5])
                return name == "." || name == ".." ? nil : name
            })
        }
        #expect(try names("/") == ["lost+found", "README", "work"])
        #expect(try names("/work") == ["big", "sub", "many"])
        #expect(try names("/work/sub") == ["moved", "target"])
        #expect(try names("/work/many") == Set(stride(from: 1, to: 40, by: 2).map { "file-with-a-longer-name-\($0)" }))
        let parent = try DiskTools.debugfs(image, "ls -p /work/many")
        #expect(parent.contains("/..") || parent.contains("/../"), "the moved directory has a parent entry")
    }
}

/// The servers under faults, and locks across a restart.
@Suite(.serialized) struct FileSystemRecoveryTests {
    /// A client that keeps its SSRs across its own crash (paper §4, "Robust client
    /// applications"): fcopy crashes after 5 of its 25 chunks; the kernel restarts it
    /// with its SSRs, fs still holds its two files at their offsets, and it finishes the
    /// copy from there. The copy is the original byte for byte, the disk checks clean,
    /// and its SSR and memory are released when it ends.
    @Test func aCopyThatCrashesMidwayFinishesFromItsOpenFiles() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("fcopy")
        defer { try? FileManager.default.removeItem(at: work) }
        let tree = work.appendingPathComponent("tree")
        try FileManager.default.createDirectory(at: tree, withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        let original = Data((0..<100_000).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try original.write(to: tree.appendingPathComponent("big"))
        let image = work.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: tree, blockSize: 1024, megabytes: 16)

        // A copy without a crash first, so that the memory servers keep for good is taken.
        let run = try CurioMachine.run(commands: "run fcopy /big /warm; mem; run fcopy /big /copy crash=5; ssr; mem",
                                       timeout: .seconds(120), extra: DiskTools.qemuArguments(image))
        #expect(!run.timedOut)
        let console = run.console
        #expect(console.contains("fcopy: crashing after 5 chunks"), "\(console)")
        #expect(console.contains("its SSRs kept"))
        #expect(console.contains("fs still holds its files: source at byte 20480, destination at byte 20480"))
        #expect(console.components(separatedBy: "fcopy: copied 100000 bytes").count == 3)
        #expect(console.contains("1 server state region"), "only storage's (fs's own) is left")
        let memory = console.split(separator: "\n").filter { $0.hasPrefix("total ") }
        #expect(memory.count == 2 && memory[0] == memory[1], "memory came back:\n\(memory)")
        #expect(try OutputRedirectionTests.file("/copy", of: image, in: work) == original, "the copy is the original")
        let check = try DiskTools.check(image)
        #expect(check.status == 0, "e2fsck -fn: \(check.output)")
    }

    /// A live upgrade of fs under load (paper §4): fs-next replaces fs while four clients
    /// stream files, each checking every byte it reads back; fs-next migrates each
    /// client's open files, offsets and locks to its layout at the client's next
    /// request. No client sees an error, and the disk checks clean. An upgrade back to
    /// fs is then rolled back: fs cannot read the regions fs-next has migrated.
    @Test func fsIsUpgradedUnderFourStreamingClients() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("upgrade")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = work.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: nil, blockSize: 1024, megabytes: 32)
        let run = try CurioMachine.run(commands: "run fstest stress 4 4 &; sleep 300; upgrade fs fs-next; ps; wait; "
                                           + "ls /; upgrade fs fs; ps",
                                       timeout: .seconds(300), extra: DiskTools.qemuArguments(image))
        #expect(!run.timedOut)
        let console = run.console
        #expect(console.contains("upgrade: fs runs fs-next now"), "\(console)")
        let verdict = console.split(separator: "\n").first { $0.hasPrefix("fstest stress") }.map(String.init) ?? ""
        #expect(verdict.hasPrefix("fstest stress ok clients=4 ok=4 failed=0 lost=0 error=0"), "\(verdict)")
        #expect(console.split(separator: "\n").filter { $0.hasPrefix("stream ") && $0.contains(" ok rounds=4") }.count == 4)
        #expect(console.contains("failed in recovery: rolled back to fs-next"))
        #expect(console.contains("upgrade: fs failed its recovery; fs runs fs-next again"))
        #expect(console.split(separator: "\n").filter { $0.contains(" fs ") && $0.hasSuffix("runs fs-next") }.count == 2)
        let check = try DiskTools.check(image)
        #expect(check.status == 0, "e2fsck -fn after the upgrade: \(check.output)")
    }

    @Test func fourStreamingClientsSurviveFiftyFaultsInEachServer() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("stress")
        defer { try? FileManager.default.removeItem(at: work) }
        let image = work.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: nil, blockSize: 1024, megabytes: 32)

        // One fault every 0.55 s, alternating servers: each server is hit every 1.1 s,
        // outside the kernel's one-second window of restarts in quick succession.
        let run = try CurioMachine.run(commands: "run fstest stress 4 1 fs=50 storage=50 every=5500000; ps",
                                       timeout: .seconds(400), extra: DiskTools.qemuArguments(image))
        #expect(!run.timedOut)
        let console = run.console
        let verdict = console.split(separator: "\n").first { $0.hasPrefix("fstest stress") }.map(String.init) ?? ""
        #expect(verdict.hasPrefix("fstest stress ok"), "\(verdict)\n\(console.suffix(3000))")
        #expect(verdict.contains("armed=100"), "every injection was armed: \(verdict)")
        for kind in ["wild-write", "reg-flip", "data-flip", "stack-flip", "ssr-flip", "loop", "illegal"] {
            #expect(console.contains("injected \(kind) into fs") && console.contains("injected \(kind) into storage"),
                    "\(kind) reached both servers")
        }
        // Both servers restarted many times (many flips are masked) and neither was given up.
        let restarts = verdict.split(separator: " ").filter { $0.hasPrefix("fs=") || $0.hasPrefix("storage=") }
            .compactMap { Int($0.split(separator: "=")[1]) }
        #expect(restarts.count == 2 && restarts.allSatisfy { $0 >= 10 }, "\(verdict)")
        // Every client streamed to the end; a client may have lost its state only to a
        // flip in its own SSR, and then it opened its file again and went on.
        let finished = console.split(separator: "\n").filter { $0.hasPrefix("stream ") && $0.contains(" ok rounds=") }
        #expect(finished.count == 4, "\(finished)")
        #expect(!console.contains("given up"))
        #expect(!console.contains("FAIL round"), "no client saw wrong data")
        let check = try DiskTools.check(image)
        #expect(check.status == 0, "e2fsck -fn after the faults: \(check.output)")
    }

    @Test func locksAndOffsetsSurviveAFileSystemServerRestart() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("locks")
        defer { try? FileManager.default.removeItem(at: work) }
        let seed = work.appendingPathComponent("seed")
        try FileManager.default.createDirectory(at: seed, withIntermediateDirectories: true)
        try GeneratedTree.contents(path: "lockfile", size: 1500).write(to: seed.appendingPathComponent("lockfile"))
        let image = work.appendingPathComponent("disk.img")
        try DiskTools.makeImage(at: image, from: seed, blockSize: 1024, megabytes: 8)

        let run = try CurioMachine.run(commands: "run fstest locks /lockfile", timeout: .seconds(60),
                                       extra: DiskTools.qemuArguments(image))
        #expect(!run.timedOut)
        let console = run.console
        #expect(console.contains("fstest locks ok"), "\(console)")
        func position(_ text: String) -> String.Index? { console.range(of: text)?.lowerBound }
        guard let locked = position("holder: locked"), let waiting = position("waiter: waiting"),
              let restarted = position("restarted fs"), let probe = position("probe: lock still held"),
              let unlocking = position("holder: unlocking"), let granted = position("waiter: locked") else {
            Issue.record("missing steps:\n\(console)")
            return
        }
        #expect(locked < waiting && waiting < restarted, "both clients were in place before the crash")
        #expect(restarted < probe, "after the restart the lock is still held")
        #expect(unlocking < granted, "the waiter got the lock only after the holder let go")
        #expect(console.contains("holder: read 1000 then 500 bytes, offset 1500"), "the offset survived")
    }
}

/// Corrupted images: the filesystem server answers errors (or restarts), and nothing
/// else in the system notices.
@Suite(.serialized) struct CorruptImageTests {
    /// Offsets into an image, found with debugfs (which nobody on the team wrote).
    static func blockOf(_ image: URL, _ path: String) throws -> Int {
        let output = try DiskTools.debugfs(image, "bmap \(path) 0")
        return Int(output.split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "") ?? -1
    }

    typealias Damage = (name: String, apply: @Sendable (URL) throws -> Void)

    static func patch(_ image: URL, at offset: Int, bytes: [UInt8]) throws {
        let handle = try FileHandle(forUpdating: image)
        try handle.seek(toOffset: UInt64(offset))
        handle.write(Data(bytes))
        try handle.close()
    }

    static func debugfsWrite(_ image: URL, _ request: String) throws {
        _ = try DiskTools.run("debugfs", ["-w", "-R", request, image.path])
    }

    static let damages: [Damage] = [
        ("superblock magic", { try patch($0, at: 1024 + 56, bytes: [0x00, 0x00]) }),
        ("block size 2^40", { try patch($0, at: 1024 + 24, bytes: [30, 0, 0, 0]) }),
        ("zero blocks per group", { try patch($0, at: 1024 + 32, bytes: [0, 0, 0, 0]) }),
        ("inode table outside the disk", { try debugfsWrite($0, "set_bg 0 inode_table 4000000000") }),
        ("root block pointer outside the disk", { try debugfsWrite($0, "sif <2> block[0] 3999999999") }),
        ("file indirect pointer at the superblock", { try debugfsWrite($0, "sif /docs/ssr.txt block[IND] 1") }),
        ("file double-indirect outside", { try debugfsWrite($0, "sif /docs/ssr.txt block[DIND] 4000000000") }),
        ("directory size 4 GiB", { try debugfsWrite($0, "sif /docs size 4294967295") }),
        ("zero rec_len in the root", { image in
            let block = try blockOf(image, "/")
            try patch(image, at: block * 1024 + 4, bytes: [0, 0])
        }),
        ("name longer than its record", { image in
            let block = try blockOf(image, "/")
            try patch(image, at: block * 1024 + 12 + 6, bytes: [250])
        }),
        ("entry naming inode 4 billion", { image in
            let block = try blockOf(image, "/docs")
            try patch(image, at: block * 1024 + 24, bytes: [0xFF, 0xFF, 0xFF, 0xF0])
        }),
        ("directory loop", { try debugfsWrite($0, "link / /docs/loop") }),
        ("random bytes over the metadata", { image in
            var generator = SeededGenerator(seed: 42)
            for _ in 0..<200 {
                try patch(image, at: 1024 + Int(generator.next() % (64 * 1024)), bytes: [UInt8(truncatingIfNeeded: generator.next())])
            }
        }),
    ]

    @Test func corruptedImagesNeverTakeTheSystemDown() throws {
        guard FileSystemTests.requireTools() else { return }
        let work = try DiskTools.temporaryDirectory("fuzz")
        defer { try? FileManager.default.removeItem(at: work) }
        let pristine = work.appendingPathComponent("pristine.img")
        try DiskTools.makeImage(at: pristine, from: CurioMachine.packageRoot.appendingPathComponent("disk"),
                                blockSize: 1024, megabytes: 8)
        for damage in Self.damages {
            let image = work.appendingPathComponent("damaged.img")
            try? FileManager.default.removeItem(at: image)
            try FileManager.default.copyItem(at: pristine, to: image)
            try damage.apply(image)
            let run = try CurioMachine.run(
                commands: "run fstest tree /; write /new hello; ls /docs; cat /docs/ssr.txt; echo alive; ps",
                timeout: .seconds(60), extra: DiskTools.qemuArguments(image))
            let console = run.console
            #expect(!run.timedOut, "\(damage.name): hung\n\(console.suffix(2000))")
            #expect(run.exitStatus == 0, "\(damage.name): the shell finished its script")
            #expect(console.contains("\nalive\n"), "\(damage.name): the shell carried on")
            #expect(!console.contains("panic"), "\(damage.name): the kernel carried on")
            let stopped = console.split(separator: "\n").filter { $0.contains("stopped:") }
            #expect(stopped.allSatisfy { $0.contains("fs (pid") }, "\(damage.name): only fs may fail: \(stopped)")
            for process in ["console", "shell", "storage", "config", "timer"] {
                #expect(console.contains(" \(process) "), "\(damage.name): \(process) still listed")
            }
        }
    }
}

/// A tiny deterministic generator (xorshift64*), so the random damage is the same every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
