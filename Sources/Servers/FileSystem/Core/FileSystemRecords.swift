// The records replies carry in their payloads: a file's status, the volume's
// statistics, pages of directory entries and the handles a client holds.
//
// Each has one fixed little-endian encoding, written field by field rather than by
// copying the Swift struct, so its bytes do not depend on the compiler's layout
// and every reserved byte is defined (zero). The client decodes what a server sent
// with the same care the server decodes requests: a reply is checked before it is
// believed (exact length, known enum values, zero reserved bytes, counts that add
// up), and a bad one is an error, not a trap.
//
// FileStatus (48 bytes):            VolumeStatistics (32 bytes):
//   offset size field                 offset size field
//   0      4    inode                 0      4    block size (a power of two, >= 512)
//   4      1    type (FileType)       4      4    total inodes
//   5      1    reserved (0)          8      8    total blocks
//   6      2    permissions (<=7777o) 16     8    free blocks (<= total)
//   8      2    links                 24     4    free inodes (<= total)
//   10     2    reserved (0)          28     4    reserved (0)
//   12     4    generation
//   16     8    size                Directory entry (6 + n bytes, packed, no padding):
//   24     8    sectors               0      4    inode (not 0)
//   32     4    modified              4      1    type (FileType)
//   36     4    changed               5      1    name length n (1...255)
//   40     4    accessed              6      n    name (no NUL, no "/")
//   44     4    reserved (0)
//
// OpenHandle (24 bytes):
//   0      4    handle (not 0)
//   4      2    open flags (OpenFlags, valid)
//   6      2    reserved (0)
//   8      8    offset (<= Int64.max)
//   16     4    inode (not 0)
//   20     4    reserved (0)

extension FileStatus {
    public static let encodedBytes = 48

    /// Writes the encoding at the start of `buffer` (at least `encodedBytes` long);
    /// returns its length.
    public func encode(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        precondition(buffer.count >= Self.encodedBytes)
        var writer = RecordWriter(buffer)
        writer.put(inode.rawValue)
        writer.put(type.rawValue)
        writer.put(UInt8(0))
        writer.put(permissions)
        writer.put(links)
        writer.put(UInt16(0))
        writer.put(generation)
        writer.put(size)
        writer.put(sectors)
        writer.put(modified)
        writer.put(changed)
        writer.put(accessed)
        writer.put(UInt32(0))
        return writer.position
    }

    /// The status encoded in exactly `bytes`, or `ioError` if they are not one.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(FileSystemError) -> FileStatus {
        guard bytes.count == encodedBytes else { throw .ioError }
        var reader = RecordReader(bytes)
        let inode: UInt32 = reader.take()
        let type = FileType(rawValue: reader.take())
        let reserved0: UInt8 = reader.take()
        let permissions: UInt16 = reader.take()
        let links: UInt16 = reader.take()
        let reserved1: UInt16 = reader.take()
        let generation: UInt32 = reader.take()
        let size: UInt64 = reader.take()
        let sectors: UInt64 = reader.take()
        let modified: UInt32 = reader.take()
        let changed: UInt32 = reader.take()
        let accessed: UInt32 = reader.take()
        let reserved2: UInt32 = reader.take()
        guard let type, inode != 0, reserved0 == 0, reserved1 == 0, reserved2 == 0,
              permissions & ~FileSystemLimits.permissionMask == 0 else { throw .ioError }
        return FileStatus(inode: InodeNumber(inode), type: type, permissions: permissions, links: links, size: size,
                          sectors: sectors, generation: generation, modified: modified, changed: changed,
                          accessed: accessed)
    }
}

extension VolumeStatistics {
    public static let encodedBytes = 32

    public func encode(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        precondition(buffer.count >= Self.encodedBytes)
        var writer = RecordWriter(buffer)
        writer.put(blockSize)
        writer.put(totalInodes)
        writer.put(totalBlocks)
        writer.put(freeBlocks)
        writer.put(freeInodes)
        writer.put(UInt32(0))
        return writer.position
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(FileSystemError) -> VolumeStatistics {
        guard bytes.count == encodedBytes else { throw .ioError }
        var reader = RecordReader(bytes)
        let blockSize: UInt32 = reader.take()
        let totalInodes: UInt32 = reader.take()
        let totalBlocks: UInt64 = reader.take()
        let freeBlocks: UInt64 = reader.take()
        let freeInodes: UInt32 = reader.take()
        let reserved: UInt32 = reader.take()
        guard blockSize >= 512, blockSize & (blockSize - 1) == 0, freeBlocks <= totalBlocks,
              freeInodes <= totalInodes, reserved == 0 else { throw .ioError }
        return VolumeStatistics(blockSize: blockSize, totalBlocks: totalBlocks, freeBlocks: freeBlocks,
                                totalInodes: totalInodes, freeInodes: freeInodes)
    }
}

extension OpenHandle {
    public static let encodedBytes = 24

    public func encode(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        precondition(buffer.count >= Self.encodedBytes)
        var writer = RecordWriter(buffer)
        writer.put(handle.rawValue)
        writer.put(flags.rawValue)
        writer.put(UInt16(0))
        writer.put(offset)
        writer.put(inode.rawValue)
        writer.put(UInt32(0))
        return writer.position
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(FileSystemError) -> OpenHandle {
        guard bytes.count == encodedBytes else { throw .ioError }
        var reader = RecordReader(bytes)
        let handle: UInt32 = reader.take()
        let flags = OpenFlags(rawValue: reader.take())
        let reserved0: UInt16 = reader.take()
        let offset: UInt64 = reader.take()
        let inode: UInt32 = reader.take()
        let reserved1: UInt32 = reader.take()
        guard handle != 0, inode != 0, flags.isValid, offset <= FileSystemLimits.maxOffset, reserved0 == 0,
              reserved1 == 0 else { throw .ioError }
        return OpenHandle(handle: FileHandle(rawValue: handle), flags: flags, offset: offset, inode: InodeNumber(inode))
    }
}

/// Fills a readDirectory reply payload with whole entries.
public struct DirectoryPageWriter {
    public static let headerBytes = 6
    let buffer: UnsafeMutableRawBufferPointer
    /// Bytes written so far: the reply payload's length.
    public private(set) var length = 0
    /// Entries written so far: the reply's second word.
    public private(set) var count = 0

    public init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    /// Appends `entry` if it fits whole (false if not: it starts the next page). An
    /// entry that could never be decoded (inode 0, empty name) is refused by
    /// `invalidArgument`, so a damaged directory cannot produce an unreadable page.
    public mutating func append(_ entry: DirectoryEntry) throws(FileSystemError) -> Bool {
        let nameLength = Int(entry.nameLength)
        guard entry.inode.rawValue != 0, nameLength >= 1, entry.withName(DirectoryPageReader.isValidName) else {
            throw .invalidArgument
        }
        guard buffer.count - length >= Self.headerBytes + nameLength else { return false }
        var writer = RecordWriter(UnsafeMutableRawBufferPointer(rebasing: buffer[length...]))
        writer.put(entry.inode.rawValue)
        writer.put(entry.type.rawValue)
        writer.put(entry.nameLength)
        entry.withName { writer.put($0) }
        length += writer.position
        count += 1
        return true
    }
}

/// Reads the entries of a readDirectory reply payload, checking each.
public struct DirectoryPageReader {
    let page: UnsafeRawBufferPointer
    var position = 0
    var remaining: Int

    /// `count`: the number of entries the reply says the page holds.
    public init(_ page: UnsafeRawBufferPointer, count: Int) {
        self.page = page
        remaining = count
    }

    /// The next entry; nil after the last. Throws `ioError` when the page is not
    /// `count` well-formed entries with nothing after them.
    public mutating func next() throws(FileSystemError) -> DirectoryEntry? {
        guard remaining > 0 else {
            guard position == page.count else { throw .ioError }
            return nil
        }
        guard page.count - position >= DirectoryPageWriter.headerBytes else { throw .ioError }
        var reader = RecordReader(UnsafeRawBufferPointer(rebasing: page[position...]))
        let inode: UInt32 = reader.take()
        let type = FileType(rawValue: reader.take())
        let nameLength = Int(reader.take() as UInt8)
        let nameStart = position + DirectoryPageWriter.headerBytes
        guard let type, inode != 0, nameLength >= 1, page.count - nameStart >= nameLength else { throw .ioError }
        let name = UnsafeRawBufferPointer(rebasing: page[nameStart..<nameStart + nameLength])
        guard Self.isValidName(name) else { throw .ioError }
        var entry = DirectoryEntry()
        entry.inode = InodeNumber(inode)
        entry.type = type
        entry.setName(name)
        position = nameStart + nameLength
        remaining -= 1
        return entry
    }

    static func isValidName(_ name: UnsafeRawBufferPointer) -> Bool {
        for byte in name where byte == 0 || byte == FileSystemPath.slash { return false }
        return true
    }
}

/// Little-endian stores, field after field; callers check the room first.
struct RecordWriter {
    let buffer: UnsafeMutableRawBufferPointer
    var position = 0

    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    mutating func put<Field: FixedWidthInteger>(_ value: Field) {
        buffer.storeBytes(of: value.littleEndian, toByteOffset: position, as: Field.self)
        position += MemoryLayout<Field>.size
    }

    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        UnsafeMutableRawBufferPointer(rebasing: buffer[position..<position + bytes.count]).copyMemory(from: bytes)
        position += bytes.count
    }
}

/// Little-endian loads, field after field; callers check the length first.
struct RecordReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func take<Field: FixedWidthInteger>() -> Field {
        let value = Field(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: Field.self))
        position += MemoryLayout<Field>.size
        return value
    }
}
