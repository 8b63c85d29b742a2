// Fuzz target `ext2`: the ext2 engine mounting a hostile disk and working on it.
//
// The input is a disk image, its trailing zero blocks left out: the device is the
// input followed by zeros, up to whole sectors and at least 256 KiB. The seeds are
// small mke2fs images with 1 KiB and 4 KiB blocks, revision 0 and 1, cut after
// their last non-zero sector (so libFuzzer spends its mutations on what is there).
// Each run mounts a copy and does what the filesystem server does for its clients,
// discovering the names to use from the image itself, so a mutated directory
// steers the rest of the run:
//
//   1. Survey: walk the tree breadth-first from the root with readDirectory (whose
//      cursor must move forward, or a client's listing would never end), look every
//      name up again (lookup, resolve, resolveParent), take the status of every
//      entry, read every file (its first 16 KiB, its last byte, and far past its
//      end: a read answers exactly what the size allows) and call readDirectory
//      on files too.
//   2. Updates, when the volume is writable: writes that land in direct, indirect
//      and double indirect blocks, truncate, create, mkdir, unlink, rmdir and two
//      renames, on the names the survey found.
//   3. Survey again, over what the updates left.
//
// Crashes and re-runs. A restarted server runs an interrupted update again with the
// intent last checkpointed into its client's SSR, on a freshly mounted volume, after
// adopting that intent into its table of interrupted updates. The last 128 bytes of
// the input stand for that: byte i of the first eight is where update i "crashes"
// (the device refuses its Nth write; 0 = it does not), and bytes 8..<128 are XORed
// into the intent the re-run gets, an intent damaged by a fault in the server before
// it was committed. The seeds end with a zero sector: no crash, intact intents.
//
// Every error is an acceptable answer; a trap, an address-sanitizer report, a read
// or write the device contract forbids (misaligned, over 4 KiB) or a hang is not.

import Ext2
import FileSystemCore

/// The image as a block device, refusing writes after a chosen number (a crash).
struct FuzzDevice: BlockDevice {
    let disk: UnsafeMutableRawBufferPointer
    var writesLeft = Int.max

    var byteCount: UInt64 { UInt64(disk.count) }

    private func range(_ byteOffset: UInt64, _ count: Int) throws(FileSystemError) -> Range<Int> {
        precondition(byteOffset % 512 == 0 && count % 512 == 0 && count <= 4096, "the engine broke the device contract")
        guard byteOffset <= byteCount, UInt64(count) <= byteCount - byteOffset else { throw .ioError }
        return Int(byteOffset)..<Int(byteOffset) + count
    }

    mutating func read(at byteOffset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) {
        let bytes = try range(byteOffset, buffer.count)
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: disk[bytes]))
    }

    mutating func write(at byteOffset: UInt64, from buffer: UnsafeRawBufferPointer) throws(FileSystemError) {
        let bytes = try range(byteOffset, buffer.count)
        guard writesLeft > 0 else { throw .unavailable }
        writesLeft -= 1
        UnsafeMutableRawBufferPointer(rebasing: disk[bytes]).copyMemory(from: buffer)
    }

    mutating func flush() throws(FileSystemError) {}
}

typealias FuzzVolume = Ext2Volume<FuzzDevice>

/// A name found in a directory.
struct Entry {
    var parent: InodeNumber
    var name: [UInt8]
    var inode: InodeNumber
    var type: FileType
    var path: [UInt8]
}

enum Limits {
    static let entries = 160
    static let directoryReads = 2000
    static let bytesPerFile = 16 * 1024
}

func mount(_ disk: UnsafeMutableRawBufferPointer, _ interrupted: InterruptedUpdates) -> FuzzVolume? {
    guard var volume = try? FuzzVolume(device: FuzzDevice(disk: disk), cacheBlocks: 8, interrupted: interrupted) else {
        return nil
    }
    volume.now = 1_700_000_000
    return volume
}

func isDot(_ name: [UInt8]) -> Bool { name == [0x2E] || name == [0x2E, 0x2E] }

/// Walks the tree and reads everything in it; returns what it found.
func survey(_ volume: inout FuzzVolume) -> [Entry] {
    var found: [Entry] = []
    var queue: [(InodeNumber, [UInt8])] = [(.root, [])]
    var visited: Set<UInt32> = [InodeNumber.root.rawValue]
    var reads = 0
    var buffer = [UInt8](repeating: 0, count: 4096)
    while !queue.isEmpty, found.count < Limits.entries {
        let (directory, path) = queue.removeFirst()
        var entry = DirectoryEntry()
        var cursor: UInt64 = 0
        while reads < Limits.directoryReads, found.count < Limits.entries {
            reads += 1
            guard let next = try? volume.readDirectory(directory, cursor: cursor, into: &entry) else { break }
            let name = entry.withName { [UInt8]($0) }
            if !isDot(name) {
                let item = Entry(parent: directory, name: name, inode: entry.inode, type: entry.type,
                                 path: path + [0x2F] + name)
                found.append(item)
                if item.type == .directory || item.type == .unknown, visited.insert(item.inode.rawValue).inserted {
                    queue.append((item.inode, item.path))
                }
            }
            precondition(next > cursor, "readDirectory's cursor did not advance: a listing would never end")
            cursor = next
        }
    }
    for item in found {
        _ = item.name.withUnsafeBytes { try? volume.lookup($0, in: item.parent) }
        _ = item.path.withUnsafeBytes { try? volume.resolve($0) }
        _ = item.path.withUnsafeBytes { try? volume.resolveParent($0) }
        guard let status = try? volume.status(item.inode) else { continue }
        var entry = DirectoryEntry()
        _ = try? volume.readDirectory(item.inode, cursor: 0, into: &entry)
        let size = status.size
        var offset: UInt64 = 0
        while offset < min(size, UInt64(Limits.bytesPerFile)) {
            guard let count = read(&volume, item.inode, at: offset, size: size, into: &buffer), count > 0 else { break }
            offset += UInt64(count)
        }
        for far in [size &- 1, size, size &+ 5000, 1 << 40, UInt64.max - 10] {
            _ = read(&volume, item.inode, at: far, size: size, into: &buffer)
        }
    }
    _ = volume.statistics
    return found
}

/// A read, and its promise: as many bytes as asked for, short only at the end of the
/// file (`size`, from the status just taken), none past it.
func read(_ volume: inout FuzzVolume, _ inode: InodeNumber, at offset: UInt64, size: UInt64,
          into buffer: inout [UInt8]) -> Int? {
    guard let count = buffer.withUnsafeMutableBytes({ try? volume.read(inode, at: offset, into: $0) }) else {
        return nil
    }
    let expected = offset >= size ? 0 : Int(min(UInt64(buffer.count), size - offset))
    precondition(count == expected, "a read returned another count than the file's size allows")
    return count
}

/// Deterministic file contents.
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

/// One update, run the way the server runs a client's request.
enum Update {
    case write(InodeNumber, offset: UInt64, bytes: [UInt8])
    case truncate(InodeNumber, size: UInt64)
    case create(InodeNumber, name: [UInt8], directory: Bool)
    case unlink(InodeNumber, name: [UInt8])
    case removeDirectory(InodeNumber, name: [UInt8])
    case rename(InodeNumber, name: [UInt8], to: InodeNumber, newName: [UInt8])

    func run(on volume: inout FuzzVolume, intent: inout Ext2Intent, checkpoint: (Ext2Intent) -> Void) throws {
        switch self {
        case .write(let inode, let offset, let bytes):
            _ = try bytes.withUnsafeBytes { source in
                try volume.write(inode, at: offset, from: source, intent: &intent, checkpoint: checkpoint)
            }
        case .truncate(let inode, let size):
            try volume.truncate(inode, to: size, intent: &intent, checkpoint: checkpoint)
        case .create(let directory, let name, let isDirectory):
            _ = try name.withUnsafeBytes { name in
                try volume.create(name, in: directory, type: isDirectory ? .directory : .regular, permissions: 0o644,
                                  intent: &intent, checkpoint: checkpoint)
            }
        case .unlink(let directory, let name):
            try name.withUnsafeBytes { name in
                try volume.unlink(name, in: directory, intent: &intent, checkpoint: checkpoint)
            }
        case .removeDirectory(let directory, let name):
            try name.withUnsafeBytes { name in
                try volume.removeDirectory(name, in: directory, intent: &intent, checkpoint: checkpoint)
            }
        case .rename(let from, let name, let to, let newName):
            try name.withUnsafeBytes { old in
                try newName.withUnsafeBytes { new in
                    try volume.rename(old, in: from, to: new, in: to, intent: &intent, checkpoint: checkpoint)
                }
            }
        }
    }
}

/// The updates to try on what the survey found.
func updates(_ found: [Entry]) -> [Update] {
    let files = found.filter { $0.type == .regular }
    let directories = found.filter { $0.type == .directory }
    var plan: [Update] = []
    if let file = files.first {
        plan.append(.write(file.inode, offset: 100, bytes: pattern(3000, seed: 1)))
        plan.append(.write(file.inode, offset: 20 * 1024, bytes: pattern(1500, seed: 2)))
        plan.append(.write(file.inode, offset: 300 * 1024, bytes: pattern(700, seed: 3)))
        plan.append(.truncate(file.inode, size: 2000))
    }
    let home = directories.first?.inode ?? .root
    plan.append(.create(.root, name: Array("fuzz-file".utf8), directory: false))
    plan.append(.create(home, name: Array("fuzz-directory".utf8), directory: true))
    if files.count > 1 { plan.append(.unlink(files[1].parent, name: files[1].name)) }
    if let moving = found.last { plan.append(.rename(moving.parent, name: moving.name, to: home, newName: Array("moved".utf8))) }
    if let first = found.first { plan.append(.rename(first.parent, name: first.name, to: first.parent, newName: [0x72])) }
    if let directory = directories.last { plan.append(.removeDirectory(directory.parent, name: directory.name)) }
    return plan
}

/// Runs `update` as request `tag`; if the device "crashes" part-way, mounts the disk
/// again, adopts the (possibly damaged) checkpointed intent and runs the update again.
func perform(_ update: Update, tag: UInt64, crashAfter: Int, damage: UnsafeRawBufferPointer,
             volume: inout FuzzVolume, disk: UnsafeMutableRawBufferPointer, interrupted: InterruptedUpdates) {
    var checkpointed = Ext2Intent(tag: tag)
    var intent = checkpointed
    volume.device.writesLeft = crashAfter == 0 ? Int.max : crashAfter
    do {
        try update.run(on: &volume, intent: &intent, checkpoint: { checkpointed = $0 })
        volume.device.writesLeft = Int.max
        return
    } catch FileSystemError.unavailable {
        // The crash: what follows is the restarted server.
    } catch {
        volume.device.writesLeft = Int.max
        return
    }
    withUnsafeMutableBytes(of: &checkpointed) { bytes in
        for index in 8..<min(bytes.count, damage.count) { bytes[index] ^= damage[index] }
    }
    interrupted.adopt(checkpointed)
    guard let fresh = mount(disk, interrupted) else { return }
    volume = fresh
    intent = checkpointed
    try? update.run(on: &volume, intent: &intent, checkpoint: { _ in })
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzExt2(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let disk = UnsafeMutableRawBufferPointer.allocate(byteCount: max(256 * 1024, (size + 511) & ~511), alignment: 16)
    defer { disk.deallocate() }
    disk.initializeMemory(as: UInt8.self, repeating: 0)
    UnsafeMutableRawBufferPointer(rebasing: disk[0..<size]).copyMemory(from: input)
    let trailer = UnsafeRawBufferPointer(rebasing: input[max(0, size - 128)...])

    // The server's one table of interrupted updates, which every mount consults.
    let interrupted = InterruptedUpdates()
    guard var volume = mount(disk, interrupted) else { return 0 }
    let found = survey(&volume)
    if volume.isWritable {
        for (index, update) in updates(found).enumerated() {
            let crashAfter = index < 8 && index < trailer.count ? Int(trailer[index]) : 0
            perform(update, tag: UInt64(index + 1), crashAfter: crashAfter, damage: trailer, volume: &volume, disk: disk,
                    interrupted: interrupted)
        }
        _ = try? volume.sync()
        _ = survey(&volume)
    }
    return 0
}
