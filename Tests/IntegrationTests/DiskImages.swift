// Disk images for the filesystem tests, made and judged by tools nobody on the team
// wrote: `mke2fs -d` builds an ext2 image from a host directory, `e2fsck -fn`
// checks one, `debugfs` and `dumpe2fs` read one back.
//
// `GeneratedTree` writes a deterministic tree (nested directories, one directory big
// enough to need several blocks, files from 0 bytes to several MiB with sizes on
// every block-map boundary of both block sizes) and remembers each file's CRC-32,
// which the guest's `fscheck` prints the same way.

import Foundation
import Testing

enum DiskTools {
    static let sbin = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]

    static func path(_ tool: String) -> String? {
        sbin.map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var available: Bool { ["mke2fs", "e2fsck", "debugfs", "dumpe2fs"].allSatisfy { path($0) != nil } }

    /// Runs a tool; returns its exit status and combined output.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path(tool) ?? tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// An ext2 image of `megabytes` MiB from the contents of `directory` (nil: empty).
    static func makeImage(at image: URL, from directory: URL?, blockSize: Int, megabytes: Int,
                          inodes: Int? = nil) throws {
        try? FileManager.default.removeItem(at: image)
        var arguments = ["-q", "-F", "-t", "ext2", "-b", "\(blockSize)"]
        if let inodes { arguments += ["-N", "\(inodes)"] }
        if let directory { arguments += ["-d", directory.path] }
        arguments += [image.path, "\(megabytes)M"]
        let result = try run("mke2fs", arguments)
        #expect(result.status == 0, "mke2fs: \(result.output)")
    }

    /// `e2fsck -fn`: exit status 0 means clean.
    static func check(_ image: URL) throws -> (status: Int32, output: String) {
        try run("e2fsck", ["-fn", image.path])
    }

    static func debugfs(_ image: URL, _ request: String) throws -> String {
        try run("debugfs", ["-R", request, image.path]).output
    }

    /// Free blocks and inodes as the superblock says.
    static func superblockCounts(_ image: URL) throws -> (freeBlocks: Int, freeInodes: Int) {
        let output = try run("dumpe2fs", ["-h", image.path]).output
        func field(_ name: String) -> Int {
            for line in output.split(separator: "\n") where line.hasPrefix(name + ":") {
                return Int(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)) ?? -1
            }
            return -1
        }
        return (field("Free blocks"), field("Free inodes"))
    }

    /// QEMU arguments attaching `image` as the machine's virtio block device.
    static func qemuArguments(_ image: URL) -> [String] {
        ["-drive", "file=\(image.path),format=raw,if=none,id=disk0", "-device", "virtio-blk-device,drive=disk0"]
    }

    static func temporaryDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("curio-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// CRC-32 (IEEE), as Curio's `CRC32` computes it.
func crc32(_ data: Data) -> UInt32 {
    var table = [UInt32](repeating: 0, count: 256)
    for index in 0..<256 {
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        table[index] = value
    }
    var value: UInt32 = 0xFFFF_FFFF
    for byte in data { value = table[Int((value ^ UInt32(byte)) & 0xFF)] ^ (value >> 8) }
    return value ^ 0xFFFF_FFFF
}

struct GeneratedTree {
    struct File {
        var path: String
        var size: Int
        var crc: UInt32
    }

    let root: URL
    private(set) var files: [File] = []
    private(set) var directories: [String] = ["/"]

    /// Deterministic bytes for a file (xorshift seeded by its path).
    static func contents(path: String, size: Int) -> Data {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for byte in path.utf8 { state = (state ^ UInt64(byte)) &* 0x100_0000_01B3 }
        var data = Data(count: size)
        data.withUnsafeMutableBytes { (bytes: UnsafeMutableRawBufferPointer) in
            var index = 0
            while index < size {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                withUnsafeBytes(of: state.littleEndian) { word in
                    for byte in word where index < size {
                        bytes[index] = byte
                        index += 1
                    }
                }
            }
        }
        return data
    }

    /// Sizes on and around every boundary of the block map for 1 KiB and 4 KiB blocks.
    static let boundarySizes: [Int] = [
        0, 1, 511, 512, 513, 1023, 1024, 1025, 4095, 4096, 4097,
        12 * 1024, 12 * 1024 + 1,              // 1 KiB blocks: end of the direct blocks
        48 * 1024, 48 * 1024 + 1,              // 4 KiB blocks: end of the direct blocks
        268 * 1024, 268 * 1024 + 1,            // 1 KiB blocks: end of the single-indirect range
        (1024 + 12) * 4096 + 1,                // 4 KiB blocks: past the single-indirect range (~4 MiB)
        3 * 1024 * 1024 + 777,                 // 1 KiB blocks: deep in the double-indirect range
    ]

    init(at root: URL, smallFiles: Int = 230) throws {
        self.root = root
        let deep = "/deep/a/b/c/d"
        for directory in ["/deep", "/deep/a", "/deep/a/b", "/deep/a/b/c", deep, "/big", "/sizes", "/empty"] {
            try FileManager.default.createDirectory(at: url(directory), withIntermediateDirectories: true)
            directories.append(directory)
        }
        for (index, size) in Self.boundarySizes.enumerated() {
            try add("/sizes/file\(index)-\(size)", size: size)
        }
        for index in 0..<smallFiles {
            // A long name fills directory blocks sooner: /big needs several blocks.
            try add("/big/entry-with-a-fairly-long-name-\(index)", size: (index * 37) % 3000)
        }
        try add("\(deep)/bottom.txt", size: 100)
        try add("/deep/a/middle.bin", size: 70_000)
    }

    private func url(_ path: String) -> URL { root.appendingPathComponent(String(path.dropFirst())) }

    private mutating func add(_ path: String, size: Int) throws {
        let data = Self.contents(path: path, size: size)
        try data.write(to: url(path))
        files.append(File(path: path, size: size, crc: crc32(data)))
    }

    var totalBytes: Int { files.reduce(0) { $0 + $1.size } }
}
