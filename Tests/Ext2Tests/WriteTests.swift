// Writing through the engine, judged by e2fsck (-fn must be clean), by the
// superblock's free counts (dumpe2fs -h) against what e2fsck counts and what the
// engine reports, and by debugfs reading back exactly the expected tree.

import Ext2
import FileSystemCore
import Foundation
import Testing

func expectClean(_ disk: DiskImage, _ volume: Volume? = nil, _ context: String = "",
                 sourceLocation: SourceLocation = #_sourceLocation) throws {
    let verdict = try judge(disk)
    #expect(verdict.fsckStatus == 0, "e2fsck -fn failed \(context):\n\(verdict.fsckOutput)", sourceLocation: sourceLocation)
    #expect(verdict.countsAgree, "superblock free counts \(verdict.superblockFreeBlocks)/\(verdict.superblockFreeInodes) vs counted \(verdict.totalBlocks - verdict.usedBlocks)/\(verdict.totalInodes - verdict.usedInodes) \(context)", sourceLocation: sourceLocation)
    if let volume {
        #expect(Int(volume.statistics.freeBlocks) == verdict.totalBlocks - verdict.usedBlocks, "engine free blocks \(context)", sourceLocation: sourceLocation)
        #expect(Int(volume.statistics.freeInodes) == verdict.totalInodes - verdict.usedInodes, "engine free inodes \(context)", sourceLocation: sourceLocation)
    }
}

let kib = 1024
let kibBytes: UInt64 = 1024

func mixedScript() -> [Step] {
    [
        .mkdir("/docs"), .mkdir("/docs/sub"), .mkdir("/tmp"),
        .create("/docs/a.txt"), .write("/docs/a.txt", offset: 0, bytes: Array("hello")),
        .write("/docs/a.txt", offset: 5, bytes: Array(", world\n")),          // append
        .write("/docs/a.txt", offset: 2, bytes: Array("LL")),                 // overwrite
        .create("/docs/big"),
        .write("/docs/big", offset: 0, bytes: pattern(300 * kib, seed: 1)),   // double-indirect on 1 KiB
        .truncate("/docs/big", 100 * kibBytes), .truncate("/docs/big", 13 * kibBytes), .truncate("/docs/big", 5000),
        .truncate("/docs/big", 2 << 20),                                       // grow: a hole
        .write("/docs/big", offset: (3 << 19) + 77, bytes: pattern(9000, seed: 2)),
        .create("/docs/sub/x"), .write("/docs/sub/x", offset: 0, bytes: pattern(20 * kib, seed: 3)),
        .create("/docs/sub/y"), .write("/docs/sub/y", offset: 0, bytes: pattern(7 * kib, seed: 4)),
        .rename("/docs/sub/x", "/docs/sub/y"),                                 // file over file
        .mkdir("/docs/sub/deep"), .create("/docs/sub/deep/z"),
        .rename("/docs/sub", "/tmp/moved"),                                    // directory across directories
        .create("/tmp/gone"), .write("/tmp/gone", offset: 0, bytes: pattern(50 * kib, seed: 5)), .unlink("/tmp/gone"),
        .mkdir("/tmp/empty"), .rmdir("/tmp/empty"),
        .rename("/docs/a.txt", "/docs/b.txt"),                                 // in place
        .mkdir("/docs/target"), .rename("/tmp/moved/deep", "/docs/target"),    // directory over empty directory
    ]
}

@Suite(.enabled(if: Tools.available, "e2fsprogs not installed in /usr/sbin"))
struct WriteTests {
    @Test(arguments: [1024, 4096])
    func mixedSequenceLeavesACleanVolumeWithTheExpectedTree(blockSize: Int) throws {
        let disk = try Tools.makeImage(blockSize: blockSize, size: "8M")
        var volume = try mount(disk)
        var model = Model()
        for (index, step) in mixedScript().enumerated() {
            let prepared = try Prepared(step, on: &volume)
            let run = Run(tag: UInt64(index + 1))
            try prepared.run(on: &volume, run: run)
            model.apply(step)
            // Namespace operations checkpoint once or twice; freeing or allocating
            // costs one more checkpoint per 16 blocks (unlink, truncate, write).
            var bulk = false
            switch step { case .write, .truncate, .unlink: bulk = true; default: break }
            #expect(run.checkpoints <= 2 || bulk, "\(step) took \(run.checkpoints) checkpoints")
        }
        try expectClean(disk, volume)
        #expect(try verify(disk, against: model) == [])
    }

    /// Whole blocks move in runs (blocks contiguous on the disk go in one device
    /// request, past the cache). Two files written in turns get interleaved blocks, so
    /// runs break at every length; a block first cached by a partial write is then
    /// overwritten whole by a run. Every read, at every alignment and length, must see
    /// the bytes last written, and debugfs must read the same.
    @Test(arguments: [1024, 4096])
    func runsOfWholeBlocksCarryTheLastBytesWritten(blockSize: Int) throws {
        let disk = try Tools.makeImage(blockSize: blockSize, size: "8M")
        var volume = try mount(disk)
        var model = Model()
        var steps: [Step] = [.create("/a"), .create("/b")]
        for round in 0..<6 {
            let size = (round % 3 + 1) * blockSize
            steps.append(.write("/a", offset: UInt64(round * 3 * blockSize), bytes: pattern(size, seed: UInt64(round))))
            steps.append(.write("/b", offset: UInt64(round * 2 * blockSize), bytes: pattern(2 * blockSize, seed: 100 + UInt64(round))))
        }
        // Positions 6..<9 of /a were written together: a partial write caches the
        // middle one, then a run overwrites all three.
        steps.append(.write("/a", offset: UInt64(7 * blockSize + 5), bytes: pattern(100, seed: 7)))
        steps.append(.write("/a", offset: UInt64(6 * blockSize), bytes: pattern(3 * blockSize, seed: 8)))
        steps.append(.write("/a", offset: 0, bytes: pattern(4 * blockSize, seed: 10)))
        steps.append(.write("/b", offset: UInt64(blockSize) - 10, bytes: pattern(3 * blockSize, seed: 9)))
        for (index, step) in steps.enumerated() {
            try Prepared(step, on: &volume).run(on: &volume, run: Run(tag: UInt64(index + 1)))
            model.apply(step)
        }
        for name in ["/a", "/b"] {
            let inode = try volume.path(name)
            let whole = try volume.contents(inode)
            #expect(whole == model.entries[name]!!, "\(name) read whole")
            for (offset, length) in [(0, 4096), (1, 4096), (blockSize, 4096), (blockSize - 1, 2 * blockSize + 2), (7, 100),
                                     (7 * blockSize + 7, 100), (6 * blockSize, 3 * blockSize)] {
                var piece = [UInt8](repeating: 0xEE, count: length)
                let count = try piece.withUnsafeMutableBytes { try volume.read(inode, at: UInt64(offset), into: $0) }
                let expected = Array(whole.dropFirst(offset).prefix(length))
                #expect(Array(piece.prefix(count)) == expected, "\(name) at \(offset) × \(length)")
            }
        }
        try expectClean(disk, volume)
        #expect(try verify(disk, against: model) == [])
    }

    @Test func errorsOfTheNamespaceOperations() throws {
        let disk = try Tools.makeImage(blockSize: 1024, size: "4M")
        var volume = try mount(disk)
        try perform([.mkdir("/d"), .create("/d/f"), .mkdir("/d/e"), .create("/d/e/g"), .mkdir("/d/e2")], on: &volume)
        func expectError(_ error: FileSystemError, _ step: Step, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(throws: error, "\(step)", sourceLocation: sourceLocation) {
                try Prepared(step, on: &volume).run(on: &volume, run: Run(tag: 99))
            }
        }
        expectError(.exists, .create("/d/f"))
        expectError(.exists, .mkdir("/d/e"))
        expectError(.isADirectory, .unlink("/d/e"))
        expectError(.notADirectory, .rmdir("/d/f"))
        expectError(.directoryNotEmpty, .rmdir("/d/e"))
        expectError(.noSuchFile, .unlink("/d/nothing"))
        expectError(.invalidArgument, .rename("/d", "/d/e/inside"))
        expectError(.invalidArgument, .create("/d/.."))
        expectError(.notADirectory, .rename("/d/e", "/d/f"))
        expectError(.isADirectory, .rename("/d/f", "/d/e"))
        expectError(.directoryNotEmpty, .rename("/d/e2", "/d/e"))
        try expectClean(disk, volume)
        #expect(throws: FileSystemError.isADirectory) {
            var intent = Ext2Intent(tag: 5)
            _ = try [UInt8]("x").withUnsafeBytes { try volume.write(try volume.path("/d"), at: 0, from: $0, intent: &intent, checkpoint: { _ in }) }
        }
        let file = try volume.path("/d/f")
        #expect(throws: FileSystemError.fileTooLarge) {
            var intent = Ext2Intent(tag: 6)
            _ = try [UInt8]("x").withUnsafeBytes { try volume.write(file, at: 1 << 42, from: $0, intent: &intent, checkpoint: { _ in }) }
        }
    }

    @Test func fillingTheDiskStopsWithNoSpaceAndLeaksNothing() throws {
        let disk = try Tools.makeImage(blockSize: 1024, size: "2M")
        var volume = try mount(disk)
        let initial = volume.statistics
        var created: [String] = []
        var sawNoSpace = false
        let chunk = pattern(16 * kib, seed: 9)
        outer: for index in 0..<400 {
            let path = "/f\(index)"
            do {
                try perform([.create(path)], on: &volume, tag: UInt64(1000 + index))
            } catch FileSystemError.noSpace { sawNoSpace = true; break }
            created.append(path)
            var offset: UInt64 = 0
            while true {
                do {
                    let result = try Prepared(.write(path, offset: offset, bytes: chunk), on: &volume)
                        .run(on: &volume, run: Run(tag: UInt64(5000 + index)))
                    let count = UInt64(result.split(separator: " ")[1])!
                    offset += count
                    if count < UInt64(chunk.count) { continue }
                } catch FileSystemError.noSpace { sawNoSpace = true; break outer }
                if offset > 200 * 1024 { break }
            }
        }
        #expect(sawNoSpace)
        #expect(volume.statistics.freeBlocks < 20)
        try expectClean(disk, volume, "when full")
        for path in created { try perform([.unlink(path)], on: &volume, tag: 77) }
        #expect(volume.statistics == initial)
        try expectClean(disk, volume, "after deleting everything")
    }

    @Test func changingAnIndexedDirectoryClearsItsIndexFlag() throws {
        let image = try #require(HostTree.image1K)
        let disk = image.copy()
        var volume = try mount(disk)
        try perform([.create("/big/zz-new"), .unlink("/big/entry-100-with-a-longer-name"),
                     .rename("/big/entry-101-with-a-longer-name", "/big/renamed")], on: &volume)
        #expect(!(try debugfs(disk, "stat /big")).contains("Flags: 0x1000"))
        try expectClean(disk, volume)
        #expect(try volume.names(try volume.path("/big")).count == 322)
    }

    @Test func handPlacedTripleIndirectWriteAndTruncate() throws {
        let disk = try Tools.makeImage(blockSize: 1024, size: "4M")
        var volume = try mount(disk)
        let initial = volume.statistics
        let offset: UInt64 = 70 << 20
        let data = pattern(5000, seed: 11)
        try perform([.create("/far"), .write("/far", offset: offset, bytes: data)], on: &volume)
        let inode = try volume.path("/far")
        var buffer = [UInt8](repeating: 1, count: 5000)
        _ = try buffer.withUnsafeMutableBytes { try volume.read(inode, at: offset, into: $0) }
        #expect(buffer == data)
        #expect(try volume.status(inode).size == offset + 5000)
        try expectClean(disk, volume, "after the far write")
        try perform([.truncate("/far", offset + 100), .truncate("/far", 1), .unlink("/far")], on: &volume)
        #expect(volume.statistics == initial)
        try expectClean(disk, volume, "after truncating it")
    }
}
