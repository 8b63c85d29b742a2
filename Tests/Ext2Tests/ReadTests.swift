// Reading images mke2fs populated from a host tree: every file's bytes and every
// directory's names must match the host. The tree covers empty to multi-MiB
// files (direct, single-, double-indirect on both block sizes), a sparse file
// whose data needs triple-indirect blocks on 1 KiB blocks, a 320-entry
// (htree-indexed) directory, nesting 6 levels deep and a fast symlink.

import Ext2
import FileSystemCore
import Foundation
import Testing

enum HostTree {
    /// Built once per test process.
    static let root: URL = {
        let root = Tools.scratch.appendingPathComponent("tree")
        try? FileManager.default.removeItem(at: root)
        let manager = FileManager.default
        func file(_ relative: String, _ bytes: [UInt8]) {
            let url = root.appendingPathComponent(relative)
            try? manager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            manager.createFile(atPath: url.path, contents: Data(bytes))
        }
        for index in 0..<320 {
            file(String(format: "big/entry-%03d-with-a-longer-name", index), pattern((index * 37) % 2500, seed: UInt64(index)))
        }
        let sizes = [0, 1, 511, 1023, 1024, 1025, 4095, 4096, 4097, 12 * 1024, 12 * 1024 + 1, 13 * 1024,
                     268 * 1024, 268 * 1024 + 1, 300 * 1024, 1 << 20, 3 << 20, (4 << 20) + 48 * 1024 + 7, 5 << 20]
        for (index, size) in sizes.enumerated() { file("sizes/file-\(size)", pattern(size, seed: 1000 + UInt64(index))) }
        var deep = "a"
        for level in 0..<6 {
            for index in 0..<12 { file("\(deep)/f\(index)", pattern(level * 700 + index * 13, seed: UInt64(level * 100 + index))) }
            deep += "/d\(level)"
        }
        file("\(deep)/bottom.txt", Array("at the bottom\n"))
        for index in 0..<40 { file("misc/m\(index).dat", pattern(index * 333, seed: 5000 + UInt64(index))) }
        // Sparse: data at 0 and past 68 MiB (triple-indirect on 1 KiB blocks).
        let sparse = root.appendingPathComponent("sparse/holes.bin")
        try? manager.createDirectory(at: sparse.deletingLastPathComponent(), withIntermediateDirectories: true)
        _ = manager.createFile(atPath: sparse.path, contents: Data(pattern(3000, seed: 77)))
        if let handle = try? FileHandle(forWritingTo: sparse) {
            try? handle.seek(toOffset: 69 << 20)
            try? handle.write(contentsOf: Data(pattern(5000, seed: 78)))
            try? handle.close()
        }
        try? manager.createSymbolicLink(atPath: root.appendingPathComponent("misc/link").path,
                                        withDestinationPath: "m1.dat")
        return root
    }()

    static let image1K: DiskImage? = try? Tools.makeImage(blockSize: 1024, size: "24M", from: root, indexDirectories: true)
    static let image4K: DiskImage? = try? Tools.makeImage(blockSize: 4096, size: "24M", from: root, indexDirectories: true)

    /// Every file and directory under the tree, relative paths ("" is the root).
    static func walk() -> (files: [String], directories: [String]) {
        var files: [String] = [], directories: [String] = [""]
        let base = root.standardizedFileURL.path
        let enumerator = FileManager.default.enumerator(atPath: base)
        while let relative = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            let full = base + "/" + relative
            let attributes = try? FileManager.default.attributesOfItem(atPath: full)
            if attributes?[.type] as? FileAttributeType == .typeSymbolicLink { continue }
            FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory)
            if isDirectory.boolValue { directories.append(relative) } else { files.append(relative) }
        }
        return (files, directories)
    }
}

@Suite(.enabled(if: Tools.available, "e2fsprogs (mke2fs, e2fsck, debugfs, dumpe2fs) not installed in /usr/sbin"))
struct ReadTests {
    @Test(arguments: [1024, 4096])
    func everyFileAndDirectoryMatchesTheHost(blockSize: Int) throws {
        let image = try #require(blockSize == 1024 ? HostTree.image1K : HostTree.image4K)
        var volume = try mount(image.copy())
        let (files, directories) = HostTree.walk()
        #expect(files.count >= 200)
        for relative in files {
            let inode = try volume.path("/" + relative)
            let host = [UInt8](try Data(contentsOf: HostTree.root.appendingPathComponent(relative)))
            let ours = try volume.contents(inode)
            #expect(ours == host, "contents of \(relative) differ (\(ours.count) vs \(host.count) bytes)")
        }
        for relative in directories {
            let inode = try volume.path("/" + relative + "/")
            var ours = Set(try volume.names(inode))
            #expect(ours.contains(".") && ours.contains(".."))
            ours.subtract([".", "..", "lost+found"])
            let host = Set(try FileManager.default.contentsOfDirectory(atPath: HostTree.root.appendingPathComponent(relative).path))
            #expect(ours == host, "listing of /\(relative) differs")
        }
    }

    @Test func bigDirectoryIsIndexedAndSpansBlocks() throws {
        let image = try #require(HostTree.image1K)
        let listing = try debugfs(image, "stat /big")
        #expect(listing.contains("Flags: 0x1000"), "e2fsck -D should index a 320-entry directory")
        var volume = try mount(image.copy())
        let big = try volume.path("/big")
        #expect(try volume.status(big).size > 4 * 1024)
        #expect(try volume.names(big).count == 322)
    }

    @Test func sparseFileReachesTripleIndirectAndReadsHolesAsZero() throws {
        let image = try #require(HostTree.image1K)
        var volume = try mount(image.copy())
        let inode = try volume.path("/sparse/holes.bin")
        let status = try volume.status(inode)
        #expect(status.size == (69 << 20) + 5000)
        // 69 MiB is past 12 + 256 + 65536 blocks of 1 KiB: the triple-indirect region.
        #expect((69 << 20) / 1024 > 12 + 256 + 256 * 256)
        var buffer = [UInt8](repeating: 0xFF, count: 8192)
        let count = try buffer.withUnsafeMutableBytes { try volume.read(inode, at: (69 << 20) - 3192, into: $0) }
        #expect(count == 8192)
        #expect(buffer[0..<3192].allSatisfy { $0 == 0 })
        #expect(Array(buffer[3192...]) == pattern(5000, seed: 78))
        #expect(status.sectors < 64, "the holes must not be allocated")
    }

    @Test func pathsSymlinksAndErrors() throws {
        let image = try #require(HostTree.image4K)
        var volume = try mount(image.copy())
        #expect(try volume.path("/") == .root)
        #expect(try volume.path("//a//d0/") == (try volume.path("/a/d0")))
        #expect(try volume.path("/a/d0/..") == (try volume.path("/a")))
        #expect(try volume.path("/a/./d0/../d0") == (try volume.path("/a/d0")))
        let link = try volume.path("/misc/link")
        #expect(try volume.status(link).type == .symbolicLink)
        #expect(try volume.contents(link) == Array("m1.dat"))
        #expect(throws: FileSystemError.noSuchFile) { try volume.path("/nope") }
        #expect(throws: FileSystemError.notADirectory) { try volume.path("/misc/m1.dat/x") }
        #expect(throws: FileSystemError.invalidArgument) { try volume.path("relative") }
        #expect(throws: FileSystemError.nameTooLong) { try volume.path("/" + String(repeating: "x", count: 256)) }
        let parent = try withBytes("/a/d0/f3/") { try volume.resolveParent($0) }
        #expect(parent.directory == (try volume.path("/a/d0")) && parent.nameStart == 6 && parent.nameCount == 2)
        #expect(try volume.statistics.freeBlocks > 0)
        // Reading at and past the end.
        let file = try volume.path("/sizes/file-1025")
        var buffer = [UInt8](repeating: 0, count: 100)
        #expect(try buffer.withUnsafeMutableBytes { try volume.read(file, at: 1000, into: $0) } == 25)
        #expect(try buffer.withUnsafeMutableBytes { try volume.read(file, at: 1025, into: $0) } == 0)
    }

    @Test func statisticsMatchDumpe2fs() throws {
        let image = try #require(HostTree.image1K)
        let volume = try mount(image.copy())
        let verdict = try judge(image)
        #expect(verdict.clean, "\(verdict.fsckOutput)")
        #expect(Int(volume.statistics.freeBlocks) == verdict.totalBlocks - verdict.usedBlocks)
        #expect(Int(volume.statistics.freeInodes) == verdict.totalInodes - verdict.usedInodes)
    }

    @Test func refusesUnknownIncompatibleFeaturesAndMountsReadOnlyForUnknownReadOnlyOnes() throws {
        let image = try Tools.makeImage(blockSize: 1024, size: "2M")
        let incompatible = image.copy()
        incompatible.bytes[1024 + 96] |= 0x40 // extents
        #expect(throws: MountFailure.unsupportedFeatures(Ext2Features(incompatible: 0x40))) {
            _ = try mount(incompatible)
        }
        let readOnly = image.copy()
        readOnly.bytes[1024 + 100] |= 0x10 // gdt_csum
        var volume = try mount(readOnly)
        #expect(!volume.isWritable)
        #expect(volume.featuresPreventingWrites == Ext2Features(readOnlyCompatible: 0x10))
        var intent = Ext2Intent(tag: 1)
        #expect(throws: FileSystemError.readOnly) {
            _ = try withBytes("x") { try volume.create($0, in: .root, type: .regular, permissions: 0o644, intent: &intent, checkpoint: { _ in }) }
        }
        let ext4 = try Tools.makeImage(blockSize: 4096, size: "8M", extra: ["-O", "extent"])
        #expect(throws: MountFailure.unsupportedFeatures(Ext2Features(incompatible: 0x40))) { _ = try mount(ext4) }
    }

    /// Each reason a superblock is refused for is told apart, the most fundamental first.
    @Test func aRefusedMountSaysWhy() throws {
        let image = try Tools.makeImage(blockSize: 1024, size: "2M")
        #expect(try mount(image.copy()).featuresPreventingWrites.isEmpty)
        func refusal(_ patch: (DiskImage) -> Void) -> MountFailure? {
            let damaged = image.copy()
            patch(damaged)
            do {
                _ = try mount(damaged)
                return nil
            } catch {
                return error as? MountFailure
            }
        }
        #expect(refusal { $0.bytes[1024 + 56] = 0x34; $0.bytes[1024 + 57] = 0x12 } == .notExt2(magic: 0x1234))
        #expect(refusal { $0.bytes[1024 + 76] = 2 } == .unsupportedRevision(2))
        #expect(refusal { $0.bytes[1024 + 24] = 3 } == .unsupportedBlockSize(logBlockSize: 3))
        // A feature word wins over a field that only looks wrong by ext2's rules.
        #expect(refusal { $0.bytes[1024 + 24] = 3; $0.bytes[1024 + 97] |= 0x02 }
                == .unsupportedFeatures(Ext2Features(incompatible: 0x200)))
        #expect(refusal { $0.bytes[1024 + 32] = 0; $0.bytes[1024 + 33] = 0 } == .corrupt)
        // The root directory's inode, cleared: the superblock is fine, the tree is not.
        #expect(refusal { image in
            let table = Int(image.bytes[1024 + 1024 + 8]) | Int(image.bytes[1024 + 1024 + 9]) << 8
            let inodeSize = Int(image.bytes[1024 + 88]) | Int(image.bytes[1024 + 89]) << 8
            let root = table * 1024 + inodeSize
            for offset in root..<root + inodeSize { image.bytes[offset] = 0 }
        } == .corrupt)
    }

    /// An image as `mkfs.ext4` makes it by default is refused, and the reason names
    /// exactly the features dumpe2fs lists that Curio cannot read or write.
    @Test func anExt4ImageNamesEveryFeatureInTheWay() throws {
        let ext4 = try Tools.makeImage(blockSize: 1024, size: "8M", type: "ext4")
        let file = Tools.temporaryFile("ext4")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(ext4.bytes).write(to: file)
        let header = Tools.run("dumpe2fs", ["-h", file.path]).output
        let line = try #require(header.split(separator: "\n").first { $0.hasPrefix("Filesystem features:") })
        let listed = line.dropFirst("Filesystem features:".count).split(separator: " ").map(String.init)
        let understood: Set = ["dir_prealloc", "imagic_inodes", "has_journal", "ext_attr", "resize_inode",
                               "dir_index", "filetype", "sparse_super", "large_file"]
        let inTheWay = listed.filter { !understood.contains($0) }
        #expect(inTheWay.contains("extent") && inTheWay.contains("64bit") && inTheWay.contains("metadata_csum"))
        do {
            _ = try mount(ext4)
            Issue.record("an ext4 image was mounted")
        } catch let failure as MountFailure {
            guard case .unsupportedFeatures(let features) = failure else {
                Issue.record("refused for another reason: \(failure)")
                return
            }
            #expect(Set(features.names) == Set(inTheWay), "named \(features.names), dumpe2fs: \(listed)")
            #expect(failure.explanation.contains("extent, 64bit, flex_bg"))
            #expect(failure.explanation.contains("mke2fs -t ext2"))
        }
    }
}
