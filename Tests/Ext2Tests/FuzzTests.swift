// Corruption: a deterministic fuzzer mutates a small image — superblock
// fields, group descriptors, inode fields (block pointers past the disk or onto
// metadata, self-referencing indirect blocks, absurd sizes and modes),
// directory records, raw metadata bytes — and then mounts it and runs every
// kind of operation. Each must return or throw a typed error: a trap would
// kill the test process, a loop would hang it, and the device traps on any
// access outside the volume or misaligned.

import Ext2
import FileSystemCore
import Foundation
import Testing

struct Random {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// Where the interesting structures of the fuzz image are (parsed directly).
struct Layout {
    var blockSize: Int
    var inodeSize: Int
    var inodesPerGroup: Int
    var inodeTable: Int
    var blocksCount: Int

    init(_ bytes: [UInt8]) {
        func le32(_ offset: Int) -> Int { Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24 }
        blockSize = 1024 << le32(1024 + 24)
        inodeSize = Int(bytes[1024 + 88]) | Int(bytes[1024 + 89]) << 8
        inodesPerGroup = le32(1024 + 40)
        blocksCount = le32(1024 + 4)
        let descriptors = (blockSize == 1024 ? 2 : 1) * blockSize
        inodeTable = le32(descriptors + 8)
    }

    func inodeOffset(_ number: Int) -> Int { inodeTable * blockSize + (number - 1) * inodeSize }
}

enum FuzzImage {
    /// A small populated image: nested directories, a 60-entry directory, files
    /// with direct, indirect and double-indirect blocks. Built once.
    static let base: DiskImage? = {
        guard let disk = try? Tools.makeImage(blockSize: 1024, size: "1M") else { return nil }
        guard var volume = try? mount(disk) else { return nil }
        var steps: [Step] = [.mkdir("/a"), .mkdir("/a/b"), .mkdir("/a/b/c"), .create("/a/b/c/leaf"),
                             .write("/a/b/c/leaf", offset: 0, bytes: Array("leaf")),
                             .create("/small"), .write("/small", offset: 0, bytes: pattern(3000, seed: 1)),
                             .create("/medium"), .write("/medium", offset: 0, bytes: pattern(40 * 1024, seed: 2)),
                             .create("/large"), .write("/large", offset: 0, bytes: pattern(280 * 1024, seed: 3)),
                             .mkdir("/many")]
        steps += (0..<60).map { .create("/many/file-with-a-name-\($0)") }
        guard (try? perform(steps, on: &volume)) != nil else { return nil }
        return disk
    }()
}

/// Runs every operation once; every error is acceptable, a trap or hang is not.
func exercise(_ disk: DiskImage) {
    guard var volume = try? mount(disk, cache: 4) else { return }
    var buffer = [UInt8](repeating: 0, count: 5000)
    for path in ["/", "/a/b/c/leaf", "/small", "/medium", "/large", "/many", "/many/file-with-a-name-7", "/a/b/../b/c", "/lost+found"] {
        guard let inode = try? volume.path(path) else { continue }
        _ = try? volume.status(inode)
        for offset: UInt64 in [0, 12 * 1024, 270 * 1024, 1 << 40] {
            _ = try? buffer.withUnsafeMutableBytes { try volume.read(inode, at: offset, into: $0) }
        }
        var entry = DirectoryEntry()
        var cursor: UInt64 = 0
        var count = 0
        while count < 10_000, let next = try? volume.readDirectory(inode, cursor: cursor, into: &entry) {
            cursor = next
            count += 1
        }
    }
    _ = volume.statistics
    var tag: UInt64 = 1
    func attempt(_ step: Step) {
        tag += 1
        guard let prepared = try? Prepared(step, on: &volume) else { return }
        _ = try? prepared.run(on: &volume, run: Run(tag: tag))
    }
    attempt(.write("/small", offset: 100, bytes: pattern(2000, seed: 5)))
    attempt(.write("/large", offset: 300 * 1024, bytes: pattern(3000, seed: 6)))
    attempt(.truncate("/medium", 100))
    attempt(.truncate("/large", 13 * 1024))
    attempt(.create("/many/new-one"))
    attempt(.mkdir("/a/b/c/d"))
    attempt(.unlink("/many/file-with-a-name-3"))
    attempt(.rename("/small", "/a/b/c/leaf"))
    attempt(.rename("/a/b", "/many/moved"))
    attempt(.rmdir("/many/moved/c/d"))
    attempt(.unlink("/large"))
    _ = try? volume.sync()
}

@Suite(.enabled(if: Tools.available, "e2fsprogs not installed in /usr/sbin"))
struct FuzzTests {
    @Test func theUnmutatedImageIsCleanAndEveryOperationWorks() throws {
        let base = try #require(FuzzImage.base)
        try expectClean(base)
        let disk = base.copy()
        exercise(disk)
        try expectClean(disk, nil, "after exercising the intact image")
    }

    @Test(arguments: 0..<8)
    func mutatedImagesNeverTrapOrHang(batch: Int) throws {
        let base = try #require(FuzzImage.base)
        let layout = Layout(base.bytes)
        var random = Random(seed: UInt64(batch) + 1)
        var probe = try mount(base.copy())
        let files = ["/", "/a/b/c/leaf", "/small", "/medium", "/large", "/many", "/a/b"].compactMap { try? probe.path($0).rawValue }
        for _ in 0..<25 {
            let disk = base.copy()
            func put32(_ offset: Int, _ value: UInt32) {
                for index in 0..<4 { disk.bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
            }
            func put16(_ offset: Int, _ value: UInt16) {
                disk.bytes[offset] = UInt8(truncatingIfNeeded: value); disk.bytes[offset + 1] = UInt8(value >> 8)
            }
            let nasty: [UInt32] = [0, 1, 2, UInt32(layout.inodeTable), UInt32(layout.blocksCount - 1), UInt32(layout.blocksCount),
                                   UInt32(layout.blocksCount + 7), 0xFFFF_FFFF, 0x8000_0000, UInt32(random.below(layout.blocksCount))]
            let value = nasty[random.below(nasty.count)]
            let inode = Int(files[random.below(files.count)])
            let inodeBase = layout.inodeOffset(inode)
            switch random.below(9) {
            case 0: // a superblock field
                let field = [0, 4, 12, 16, 20, 24, 32, 40, 76, 84, 88, 92, 96, 100, 206][random.below(15)]
                put32(1024 + field, field == 88 || field == 206 ? UInt32(random.below(70000)) : value)
            case 1: // a group descriptor field
                let field = [0, 4, 8, 12, 14, 16][random.below(6)]
                if field >= 12 { put16(2 * 1024 + field, UInt16(truncatingIfNeeded: value)) } else { put32(2 * 1024 + field, value) }
            case 2: // a block pointer of a file or directory
                put32(inodeBase + 40 + 4 * random.below(15), value)
            case 3: // size, links, mode, i_blocks, flags
                switch random.below(5) {
                case 0: put32(inodeBase + 4, value); put32(inodeBase + 108, random.below(2) == 0 ? 0 : value)
                case 1: put16(inodeBase + 26, UInt16(truncatingIfNeeded: value))
                case 2: put16(inodeBase, UInt16(truncatingIfNeeded: random.next()))
                case 3: put32(inodeBase + 28, value)
                default: put32(inodeBase + 32, 0x1000)
                }
            case 4: // an indirect block pointing at itself (or its parent)
                let indirect = Int(disk.bytes[inodeBase + 88]) | Int(disk.bytes[inodeBase + 89]) << 8
                let doubly = Int(disk.bytes[inodeBase + 92]) | Int(disk.bytes[inodeBase + 93]) << 8
                for block in [indirect, doubly] where block > 0 && block < layout.blocksCount {
                    let slot = random.below(layout.blockSize / 4)
                    put32(block * layout.blockSize + 4 * slot, UInt32(random.below(2) == 0 ? block : indirect))
                }
            case 5: // a directory record
                let block = Int(disk.bytes[inodeBase + 40]) | Int(disk.bytes[inodeBase + 41]) << 8
                guard block > 0 && block < layout.blocksCount else { continue }
                let offset = block * layout.blockSize + 4 * random.below(layout.blockSize / 4 - 2)
                switch random.below(4) {
                case 0: put16(offset + 4, UInt16(truncatingIfNeeded: random.next()))
                case 1: disk.bytes[offset + 6] = UInt8(truncatingIfNeeded: random.next())
                case 2: put32(offset, value)
                default: put16(offset + 4, 0)
                }
            case 6: // inode number 0 or past the table in a root record
                let block = Int(disk.bytes[layout.inodeOffset(2) + 40]) | Int(disk.bytes[layout.inodeOffset(2) + 41]) << 8
                put32(block * layout.blockSize + 12 * random.below(3), value)
            case 7: // a bitmap full of ones or zeros
                let bitmap = Int(disk.bytes[2 * 1024 + 4 * random.below(2)]) | Int(disk.bytes[2 * 1024 + 1 + 4 * random.below(2)]) << 8
                if bitmap > 0 && bitmap < layout.blocksCount {
                    let fill: UInt8 = random.below(2) == 0 ? 0 : 0xFF
                    for index in 0..<layout.blockSize { disk.bytes[bitmap * layout.blockSize + index] = fill }
                }
            default: // random bytes anywhere in the first 80 blocks
                for _ in 0..<(1 + random.below(16)) {
                    disk.bytes[random.below(80 * layout.blockSize)] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            exercise(disk)
        }
    }

    /// The engine refuses, before writing, to free or follow a pointer onto metadata.
    @Test func writesStopAtCorruptionBeforeWriting() throws {
        let base = try #require(FuzzImage.base)
        let layout = Layout(base.bytes)
        var probe = try mount(base.copy())
        let large = Int(try probe.path("/large").rawValue)
        let disk = base.copy()
        let inodeBase = layout.inodeOffset(large)
        // i_block[13] (double indirect) onto the inode table.
        for index in 0..<4 { disk.bytes[inodeBase + 40 + 4 * 13 + index] = UInt8(truncatingIfNeeded: layout.inodeTable >> (8 * index)) }
        let before = disk.bytes
        var volume = try mount(disk)
        let inode = try volume.path("/large")
        var intent = Ext2Intent(tag: 1)
        #expect(throws: FileSystemError.corrupt) { try volume.truncate(inode, to: 0, intent: &intent, checkpoint: { _ in }) }
        #expect(throws: FileSystemError.corrupt) {
            _ = try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try volume.write(inode, at: 270 * 1024, from: $0, intent: &intent, checkpoint: { _ in }) }
        }
        var buffer = [UInt8](repeating: 0, count: 100)
        #expect(throws: FileSystemError.corrupt) { _ = try buffer.withUnsafeMutableBytes { try volume.read(inode, at: 270 * 1024, into: $0) } }
        #expect(disk.bytes == before, "nothing may be written once corruption is found")
    }
}
