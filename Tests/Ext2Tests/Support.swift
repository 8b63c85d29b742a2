// Test plumbing: devices (in memory, crashing after N writes), the real
// e2fsprogs tools as oracles, deterministic host trees and images built once.
//
// The engine is exercised through memory-backed devices because the crash
// tests run hundreds of operations; the bytes go to a file only when an
// outside tool has to judge them.

import Ext2
import FileSystemCore
import Foundation

// MARK: - Devices

/// The disk bytes, shared by reference so a test can inspect what an engine wrote.
final class DiskImage: @unchecked Sendable {
    var bytes: [UInt8]
    init(bytes: [UInt8]) { self.bytes = bytes }
    convenience init(file: URL) throws { self.init(bytes: [UInt8](try Data(contentsOf: file))) }
    func copy() -> DiskImage { DiskImage(bytes: bytes) }
    func save(to url: URL) throws { try Data(bytes).write(to: url) }
}

struct MemoryDevice: BlockDevice {
    let disk: DiskImage
    /// Writes accepted so far.
    var writes = 0
    /// Reads made so far.
    var reads = 0
    /// Throw (as a crash would stop the server) instead of performing write number `crashAfter + 1`.
    var crashAfter: Int? = nil

    init(_ disk: DiskImage, crashAfter: Int? = nil) {
        self.disk = disk
        self.crashAfter = crashAfter
    }

    var byteCount: UInt64 { UInt64(disk.bytes.count) }

    mutating func read(at byteOffset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) {
        precondition(byteOffset % 512 == 0 && buffer.count % 512 == 0 && buffer.count <= 4096, "misaligned read")
        guard byteOffset + UInt64(buffer.count) <= byteCount else { throw .ioError }
        reads += 1
        disk.bytes.withUnsafeBytes { all in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[Int(byteOffset)..<(Int(byteOffset) + buffer.count)]))
        }
    }

    mutating func write(at byteOffset: UInt64, from buffer: UnsafeRawBufferPointer) throws(FileSystemError) {
        precondition(byteOffset % 512 == 0 && buffer.count % 512 == 0 && buffer.count <= 4096, "misaligned write")
        guard byteOffset + UInt64(buffer.count) <= byteCount else { throw .ioError }
        if let crashAfter, writes >= crashAfter { throw .unavailable }
        writes += 1
        disk.bytes.withUnsafeMutableBytes { all in
            UnsafeMutableRawBufferPointer(rebasing: all[Int(byteOffset)..<(Int(byteOffset) + buffer.count)])
                .copyMemory(from: buffer)
        }
    }

    mutating func flush() throws(FileSystemError) {}
}

typealias Volume = Ext2Volume<MemoryDevice>

func mount(_ disk: DiskImage, crashAfter: Int? = nil, cache: Int = 16,
           interrupted: InterruptedUpdates = InterruptedUpdates()) throws -> Volume {
    var volume = try Volume(device: MemoryDevice(disk, crashAfter: crashAfter), cacheBlocks: cache,
                            interrupted: interrupted)
    volume.now = 1_700_000_000
    return volume
}

// MARK: - Byte helpers

extension Array where Element == UInt8 {
    init(_ string: String) { self = Array(string.utf8) }
}

func withBytes<R>(_ string: String, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try Array(string.utf8).withUnsafeBytes(body)
}

/// Deterministic pseudo-random bytes (xorshift), so file contents are reproducible.
func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out = [UInt8](repeating: 0, count: count)
    var index = 0
    while index < count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        var word = state
        for _ in 0..<8 where index < count {
            out[index] = UInt8(truncatingIfNeeded: word)
            word >>= 8
            index += 1
        }
    }
    return out
}

// MARK: - Operations with a recording checkpoint

/// Runs one engine operation, remembering the last intent checkpointed.
final class Run {
    var intent: Ext2Intent
    var checkpoints = 0
    init(tag: UInt64) { intent = Ext2Intent(tag: tag) }
    init(intent: Ext2Intent) { self.intent = intent }
}

extension Ext2Volume {
    mutating func path(_ path: String) throws -> InodeNumber {
        try withBytes(path) { try resolve($0) }
    }

    mutating func contents(_ inode: InodeNumber) throws -> [UInt8] {
        let size = Int(try status(inode).size)
        var out = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let count = try out.withUnsafeMutableBytes { buffer in
                try read(inode, at: UInt64(done), into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<min(size, done + 65536)]))
            }
            if count == 0 { break }
            done += count
        }
        return out
    }

    mutating func names(_ directory: InodeNumber) throws -> [String] {
        var result: [String] = []
        var cursor: UInt64 = 0
        var entry = DirectoryEntry()
        var guardCount = 0
        while let next = try readDirectory(directory, cursor: cursor, into: &entry) {
            result.append(entry.withName { String(decoding: $0, as: UTF8.self) })
            cursor = next
            guardCount += 1
            precondition(guardCount < 1_000_000)
        }
        return result
    }

}

// MARK: - Tools

enum Tools {
    static let sbin = "/usr/sbin/"
    static let available: Bool = ["mke2fs", "e2fsck", "debugfs", "dumpe2fs"].allSatisfy {
        FileManager.default.isExecutableFile(atPath: sbin + $0)
    }

    @discardableResult
    static func run(_ tool: String, _ arguments: [String], stdin: Data? = nil) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: sbin + tool)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["E2FSPROGS_FAKE_TIME"] = "1700000100"
        environment["MKE2FS_DETERMINISTIC"] = "1"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let scratch: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ext2tests-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static func temporaryFile(_ name: String) -> URL {
        scratch.appendingPathComponent("\(name)-\(UUID().uuidString)")
    }

    /// A fresh ext2 image from `mke2fs -t ext2` (optionally populated from `directory`).
    /// `indexDirectories` runs `e2fsck -fyD` afterwards, which builds htree indexes.
    static func makeImage(blockSize: Int, size: String, from directory: URL? = nil, extra: [String] = [],
                          indexDirectories: Bool = false, type: String = "ext2") throws -> DiskImage {
        let file = temporaryFile("img")
        defer { try? FileManager.default.removeItem(at: file) }
        var arguments = ["-q", "-F", "-t", type, "-b", "\(blockSize)", "-E", "hash_seed=6ba7b810-9dad-11d1-80b4-00c04fd430c8",
                         "-U", "6ba7b811-9dad-11d1-80b4-00c04fd430c8"] + extra
        if let directory { arguments += ["-d", directory.path] }
        arguments += [file.path, size]
        let result = run("mke2fs", arguments)
        guard result.status == 0 else { throw ToolFailure(message: "mke2fs: \(result.output)") }
        if indexDirectories {
            let fsck = run("e2fsck", ["-fyD", file.path])
            guard fsck.status <= 1 else { throw ToolFailure(message: "e2fsck -D: \(fsck.output)") }
        }
        return try DiskImage(file: file)
    }
}

struct ToolFailure: Error, CustomStringConvertible { var message: String; var description: String { message } }

/// What the outside tools say about an image.
struct Verdict {
    var fsckStatus: Int32
    var fsckOutput: String
    /// Used counts e2fsck computed, from its summary line.
    var usedInodes: Int
    var totalInodes: Int
    var usedBlocks: Int
    var totalBlocks: Int
    /// Free counts the superblock records (dumpe2fs -h).
    var superblockFreeBlocks: Int
    var superblockFreeInodes: Int

    var countsAgree: Bool {
        superblockFreeBlocks == totalBlocks - usedBlocks && superblockFreeInodes == totalInodes - usedInodes
    }
    var clean: Bool { fsckStatus == 0 && countsAgree }
}

func judge(_ disk: DiskImage) throws -> Verdict {
    let file = Tools.temporaryFile("judge")
    defer { try? FileManager.default.removeItem(at: file) }
    try disk.save(to: file)
    let fsck = Tools.run("e2fsck", ["-fn", file.path])
    let header = Tools.run("dumpe2fs", ["-h", file.path])
    func number(after label: String, in text: String) -> Int {
        for line in text.split(separator: "\n") where line.hasPrefix(label) {
            return Int(line.dropFirst(label.count).trimmingCharacters(in: .whitespaces)) ?? -1
        }
        return -1
    }
    // "img: 11/2048 files (0.0% non-contiguous), 1234/8192 blocks"
    var used = (-1, -1, -1, -1)
    for line in fsck.output.split(separator: "\n") where line.contains(" files (") && line.hasSuffix(" blocks") {
        let parts = line.split(separator: " ")
        if let files = parts.first(where: { $0.contains("/") && !$0.hasSuffix(":") }),
           let blocks = parts.dropLast().last {
            let f = files.split(separator: "/"), b = blocks.split(separator: "/")
            used = (Int(f[0]) ?? -1, Int(f[1]) ?? -1, Int(b[0]) ?? -1, Int(b[1]) ?? -1)
        }
    }
    return Verdict(fsckStatus: fsck.status, fsckOutput: fsck.output, usedInodes: used.0, totalInodes: used.1,
                   usedBlocks: used.2, totalBlocks: used.3,
                   superblockFreeBlocks: number(after: "Free blocks:", in: header.output),
                   superblockFreeInodes: number(after: "Free inodes:", in: header.output))
}

/// `e2fsck -fp` on a copy: 0 or 1 means preen fixed everything silently.
func preenStatus(_ disk: DiskImage) throws -> (Int32, String) {
    let file = Tools.temporaryFile("preen")
    defer { try? FileManager.default.removeItem(at: file) }
    try disk.save(to: file)
    let result = Tools.run("e2fsck", ["-fp", file.path])
    return (result.status, result.output)
}

func debugfs(_ disk: DiskImage, _ command: String) throws -> String {
    let file = Tools.temporaryFile("debugfs")
    defer { try? FileManager.default.removeItem(at: file) }
    try disk.save(to: file)
    return Tools.run("debugfs", ["-R", command, file.path]).output
}

func debugfsBytes(_ disk: DiskImage, cat path: String) throws -> [UInt8] {
    let file = Tools.temporaryFile("debugfs")
    defer { try? FileManager.default.removeItem(at: file) }
    try disk.save(to: file)
    let out = Tools.temporaryFile("dump")
    defer { try? FileManager.default.removeItem(at: out) }
    _ = Tools.run("debugfs", ["-R", "dump \(path) \(out.path)", file.path])
    return [UInt8]((try? Data(contentsOf: out)) ?? Data())
}
