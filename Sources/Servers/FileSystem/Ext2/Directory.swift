// Directories: linear scans over validated record chains. Hashed (htree)
// directories are read linearly too — their index blocks look like empty
// records — and the first change to one clears EXT2_INDEX_FL (written before the
// change), as old Linux kernels did, so the stale index is never trusted again.
//
// Every directory block is validated as a whole before it is used or changed:
// records must be 4-byte aligned, at least 8 bytes, hold their name, stay inside
// the block and chain exactly to its end; live records must name an inode that
// exists. A block that fails makes the operation stop with `.corrupt`, before
// any write. Scans are bounded by the directory's size and by the record count
// a block can hold, so a hostile directory cannot loop.

import FileSystemCore

/// Where a directory record was found. The block's bytes stay in the
/// `.directory` scratch buffer until the next directory operation.
struct DirectorySlot {
    var physical: UInt32
    var offset: Int
    /// Offset of the record before it in the same block, or -1 if it is first.
    var previous: Int
    var inode: UInt32
}

extension Ext2Volume {
    var directoryBuffer: UnsafeMutableRawBufferPointer { buffer(.directory) }

    func recordInode(_ offset: Int) -> UInt32 { directoryBuffer.le32(offset) }
    func recordLength(_ offset: Int) -> Int { Int(directoryBuffer.le16(offset + 4)) }
    func recordNameLength(_ offset: Int) -> Int { Int(directoryBuffer[offset + 6]) }
    func recordType(_ offset: Int) -> UInt8 { geometry.fileType ? directoryBuffer[offset + 7] : 0 }
    func recordName(_ offset: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: directoryBuffer[(offset + 8)..<(offset + 8 + recordNameLength(offset))])
    }

    /// Checks the record chain of the block in `.directory`.
    func validateDirectoryBlock() throws(FileSystemError) {
        let size = geometry.blockSize
        var offset = 0
        while offset < size {
            guard offset + DirectoryRecord.headerSize <= size else { throw .corrupt }
            let length = recordLength(offset)
            let nameLength = recordNameLength(offset)
            guard length >= DirectoryRecord.headerSize, length & 3 == 0, offset + length <= size,
                  DirectoryRecord.headerSize + nameLength <= length else { throw .corrupt }
            if !geometry.fileType && directoryBuffer[offset + 7] != 0 { throw .corrupt }
            let inode = recordInode(offset)
            if inode != 0 { guard inode <= geometry.inodesCount, nameLength > 0 else { throw .corrupt } }
            offset += length
        }
    }

    /// The number of blocks of a directory (its size must be whole blocks).
    func directoryBlockCount(_ inode: Inode) throws(FileSystemError) -> UInt64 {
        let size = UInt64(inode.sizeLow)
        let blocks = size >> UInt64(geometry.blockShift)
        guard size & UInt64(geometry.blockSize - 1) == 0, blocks <= UInt64(geometry.blocksCount) else {
            throw .corrupt
        }
        return blocks
    }

    /// Reads and validates directory block `index` into `.directory`; nil for a hole.
    mutating func loadDirectoryBlock(_ inode: Inode, _ index: UInt64) throws(FileSystemError) -> UInt32? {
        let block = try mapBlock(inode, index)
        guard block != 0 else { return nil }
        try readBlock(block, into: .directory)
        try validateDirectoryBlock()
        return block
    }

    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for index in 0..<a.count where a[index] != b[index] { return false }
        return true
    }

    /// Finds a live record named `name`. Leaves its block in `.directory`.
    mutating func findEntry(_ directory: Inode, _ name: UnsafeRawBufferPointer) throws(FileSystemError) -> DirectorySlot? {
        guard directory.isDirectory else { throw .notADirectory }
        let blocks = try directoryBlockCount(directory)
        var index: UInt64 = 0
        while index < blocks {
            defer { index += 1 }
            guard let physical = try loadDirectoryBlock(directory, index) else { continue }
            var offset = 0
            var previous = -1
            while offset < geometry.blockSize {
                if recordInode(offset) != 0, Self.equal(recordName(offset), name) {
                    return DirectorySlot(physical: physical, offset: offset, previous: previous,
                                         inode: recordInode(offset))
                }
                previous = offset
                offset += recordLength(offset)
            }
        }
        return nil
    }

    /// Rejects names a directory entry cannot hold or that must not be created.
    static func checkName(_ name: UnsafeRawBufferPointer) throws(FileSystemError) {
        guard name.count > 0 else { throw .invalidArgument }
        guard name.count <= DirectoryRecord.maxNameLength else { throw .nameTooLong }
        for byte in name where byte == 0 || byte == UInt8(ascii: "/") { throw .invalidArgument }
        if name.count == 1 && name[0] == UInt8(ascii: ".") { throw .invalidArgument }
        if name.count == 2 && name[0] == UInt8(ascii: ".") && name[1] == UInt8(ascii: ".") { throw .invalidArgument }
    }

    // MARK: Public reading API

    public mutating func lookup(_ name: UnsafeRawBufferPointer, in directory: InodeNumber)
        throws(FileSystemError) -> InodeNumber {
        guard name.count > 0 else { throw .invalidArgument }
        guard name.count <= DirectoryRecord.maxNameLength else { throw .nameTooLong }
        let inode = try liveInode(directory.rawValue)
        guard let slot = try findEntry(inode, name) else { throw .noSuchFile }
        return InodeNumber(slot.inode)
    }

    /// Resolves an absolute path; empty components ("//", a trailing "/") are skipped.
    public mutating func resolve(_ path: UnsafeRawBufferPointer) throws(FileSystemError) -> InodeNumber {
        guard path.count > 0, path[0] == UInt8(ascii: "/") else { throw .invalidArgument }
        return try resolveComponents(path, upTo: path.count)
    }

    private mutating func resolveComponents(_ path: UnsafeRawBufferPointer, upTo end: Int)
        throws(FileSystemError) -> InodeNumber {
        var current = InodeNumber.root
        var start = 0
        while start < end {
            while start < end && path[start] == UInt8(ascii: "/") { start += 1 }
            var stop = start
            while stop < end && path[stop] != UInt8(ascii: "/") { stop += 1 }
            if stop > start {
                current = try lookup(UnsafeRawBufferPointer(rebasing: path[start..<stop]), in: current)
            }
            start = stop
        }
        return current
    }

    /// Resolves all but the last component; returns where the last name lies in `path`.
    public mutating func resolveParent(_ path: UnsafeRawBufferPointer)
        throws(FileSystemError) -> (directory: InodeNumber, nameStart: Int, nameCount: Int) {
        guard path.count > 0, path[0] == UInt8(ascii: "/") else { throw .invalidArgument }
        var end = path.count
        while end > 0 && path[end - 1] == UInt8(ascii: "/") { end -= 1 }
        guard end > 0 else { throw .invalidArgument }
        var start = end
        while start > 0 && path[start - 1] != UInt8(ascii: "/") { start -= 1 }
        guard end - start <= DirectoryRecord.maxNameLength else { throw .nameTooLong }
        let directory = try resolveComponents(path, upTo: start)
        let inode = try liveInode(directory.rawValue)
        guard inode.isDirectory else { throw .notADirectory }
        return (directory, start, end - start)
    }

    /// Returns the entry at or after `cursor` (a byte position in the
    /// directory) and the cursor of the next one, or nil at the end. Empty
    /// records are skipped; a cursor inside a record moves to the next one.
    public mutating func readDirectory(_ directory: InodeNumber, cursor: UInt64, into entry: inout DirectoryEntry)
        throws(FileSystemError) -> UInt64? {
        let inode = try liveInode(directory.rawValue)
        guard inode.isDirectory else { throw .notADirectory }
        let blocks = try directoryBlockCount(inode)
        let shift = UInt64(geometry.blockShift)
        var index = cursor >> shift
        var within = Int(cursor & UInt64(geometry.blockSize - 1))
        while index < blocks {
            defer { index += 1; within = 0 }
            guard try loadDirectoryBlock(inode, index) != nil else { continue }
            var offset = 0
            while offset < geometry.blockSize {
                let length = recordLength(offset)
                let number = recordInode(offset)
                if offset >= within && number != 0 {
                    entry.inode = InodeNumber(number)
                    entry.setName(recordName(offset))
                    let type = recordType(offset)
                    if geometry.fileType, type <= 7, let known = FileType(rawValue: type) {
                        entry.type = known
                    } else {
                        entry.type = .unknown
                    }
                    let next = (index << shift) + UInt64(offset + length)
                    if !geometry.fileType { entry.type = (try? readInode(number))?.fileType ?? .unknown }
                    return next
                }
                offset += length
            }
        }
        return nil
    }

    // MARK: Changing directories

    /// Clears EXT2_INDEX_FL before the first change to a hashed directory.
    mutating func dropIndex(_ number: UInt32, _ inode: inout Inode) throws(FileSystemError) {
        guard inode.flags & Inode.indexedDirectoryFlag != 0 else { return }
        inode.flags &= ~Inode.indexedDirectoryFlag
        try writeInode(number, inode)
    }

    func storeRecord(at offset: Int, inode: UInt32, length: Int, name: UnsafeRawBufferPointer, type: FileType) {
        let buffer = directoryBuffer
        buffer.setLE32(offset, inode)
        buffer.setLE16(offset + 4, UInt16(length))
        buffer[offset + 6] = UInt8(name.count)
        buffer[offset + 7] = geometry.fileType ? type.rawValue : 0
        UnsafeMutableRawBufferPointer(rebasing: buffer[(offset + 8)..<(offset + 8 + name.count)]).copyMemory(from: name)
    }

    /// Adds `name -> target` to a directory (whose entries were checked not to
    /// contain `name`): first fit in an existing block, else a new block holding
    /// only this record, appended through the write path (its own reservation).
    mutating func addEntry(_ number: UInt32, _ directory: inout Inode, _ name: UnsafeRawBufferPointer,
                           target: UInt32, type: FileType, intent: inout Ext2Intent,
                           checkpoint: (Ext2Intent) -> Void) throws(FileSystemError) {
        let needed = DirectoryRecord.footprint(nameLength: name.count)
        let blocks = try directoryBlockCount(directory)
        var index: UInt64 = 0
        while index < blocks {
            defer { index += 1 }
            guard let physical = try loadDirectoryBlock(directory, index) else { continue }
            var offset = 0
            while offset < geometry.blockSize {
                let length = recordLength(offset)
                let inUse = recordInode(offset) != 0
                let used = inUse ? DirectoryRecord.footprint(nameLength: recordNameLength(offset)) : 0
                if length - used >= needed {
                    try dropIndex(number, &directory)
                    if inUse {
                        directoryBuffer.setLE16(offset + 4, UInt16(used))
                        storeRecord(at: offset + used, inode: target, length: length - used, name: name, type: type)
                    } else {
                        storeRecord(at: offset, inode: target, length: length, name: name, type: type)
                    }
                    try writeBlock(physical, from: .directory)
                    return
                }
                offset += length
            }
        }
        try dropIndex(number, &directory)
        directoryBuffer.zero()
        storeRecord(at: 0, inode: target, length: geometry.blockSize, name: name, type: type)
        _ = try writeRange(number, &directory, at: blocks << UInt64(geometry.blockShift),
                           from: UnsafeRawBufferPointer(directoryBuffer), intent: &intent, checkpoint: checkpoint)
    }

    /// Removes the record `slot` describes (its block is still in `.directory`):
    /// merged into the previous record, or emptied if it is the block's first.
    mutating func removeEntry(_ number: UInt32, _ directory: inout Inode, _ slot: DirectorySlot)
        throws(FileSystemError) {
        try dropIndex(number, &directory)
        if slot.previous >= 0 {
            let merged = recordLength(slot.previous) + recordLength(slot.offset)
            directoryBuffer.setLE16(slot.previous + 4, UInt16(merged))
        } else {
            directoryBuffer.setLE32(slot.offset, 0)
        }
        try writeBlock(slot.physical, from: .directory)
    }

    /// Points the record `slot` describes at another inode (rename over a name).
    mutating func retargetEntry(_ number: UInt32, _ directory: inout Inode, _ slot: DirectorySlot,
                                to target: UInt32, type: FileType) throws(FileSystemError) {
        try dropIndex(number, &directory)
        directoryBuffer.setLE32(slot.offset, target)
        if geometry.fileType { directoryBuffer[slot.offset + 7] = type.rawValue }
        try writeBlock(slot.physical, from: .directory)
    }

    /// Whether a directory holds nothing but "." and "..".
    mutating func isEmptyDirectory(_ directory: Inode) throws(FileSystemError) -> Bool {
        let blocks = try directoryBlockCount(directory)
        var index: UInt64 = 0
        while index < blocks {
            defer { index += 1 }
            guard try loadDirectoryBlock(directory, index) != nil else { continue }
            var offset = 0
            while offset < geometry.blockSize {
                if recordInode(offset) != 0 && !isDotName(offset) { return false }
                offset += recordLength(offset)
            }
        }
        return true
    }

    func isDotName(_ offset: Int) -> Bool {
        let name = recordName(offset)
        if name.count == 1 && name[0] == UInt8(ascii: ".") { return true }
        return name.count == 2 && name[0] == UInt8(ascii: ".") && name[1] == UInt8(ascii: ".")
    }

    /// The link count a directory should have: "." + its name + each subdirectory's "..".
    mutating func expectedDirectoryLinks(_ directory: Inode) throws(FileSystemError) -> Int {
        let blocks = try directoryBlockCount(directory)
        var links = 2
        var index: UInt64 = 0
        while index < blocks {
            defer { index += 1 }
            guard try loadDirectoryBlock(directory, index) != nil else { continue }
            var offset = 0
            while offset < geometry.blockSize {
                let number = recordInode(offset)
                if number != 0 && !isDotName(offset) {
                    if geometry.fileType {
                        if recordType(offset) == FileType.directory.rawValue { links += 1 }
                    } else {
                        let length = recordLength(offset)
                        let isDirectory = try readInode(number).isDirectory
                        _ = try loadDirectoryBlock(directory, index)
                        if isDirectory { links += 1 }
                        offset += length
                        continue
                    }
                }
                offset += recordLength(offset)
            }
        }
        return links
    }

    /// Sets the ".." record of a directory (its second record, block 0).
    mutating func setParent(of directory: Inode, to parent: UInt32) throws(FileSystemError) {
        guard let physical = try loadDirectoryBlock(directory, 0) else { throw .corrupt }
        let second = recordLength(0)
        guard second < geometry.blockSize, isDotName(second), recordNameLength(second) == 2 else { throw .corrupt }
        guard recordInode(second) != parent else { return }
        directoryBuffer.setLE32(second, parent)
        try writeBlock(physical, from: .directory)
    }

    mutating func parentOf(_ directory: Inode) throws(FileSystemError) -> UInt32 {
        guard try loadDirectoryBlock(directory, 0) != nil else { throw .corrupt }
        let second = recordLength(0)
        guard second < geometry.blockSize, isDotName(second), recordNameLength(second) == 2 else { throw .corrupt }
        return recordInode(second)
    }
}
