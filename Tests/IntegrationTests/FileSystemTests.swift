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
        let summary = check.output.split(separator: "\n").last { $0.contains(" files, ") } ?? ""
        let numbers = summary.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        #expect(numbers.count >= 4, "\(summary)")
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
