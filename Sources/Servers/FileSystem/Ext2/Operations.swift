// The operations that change the volume, and the two rules that make them safe
// under a server that can die between any two device writes.
//
// ── Rule 1: write ordering (a crash with no re-run is preen-clean) ──────────────
//
// Every operation issues its writes so that each prefix leaves only damage that
// `e2fsck -p` repairs silently (problem codes with PR_PREEN_OK in e2fsck's
// problem.c): blocks or inodes marked used but unreferenced, group/superblock
// counts off, link counts too high (or too low), i_size/i_blocks off, directory
// entries naming an inode whose link count is 0 (PR_2_UNUSED_INODE), unattached
// inodes with no blocks (PR_4_ZERO_LEN_INODE). The orderings:
//
//   allocate   bitmap bit (+ group descriptor) before anything references it
//   initialise a new block/inode's contents before the pointer/entry to it
//   grow       data blocks, then indirect blocks bottom-up, then the inode
//   shrink     clear the pointer (block, then inode i_blocks) before freeing bits
//   create     file: bit, inode (links 1, no blocks), entry.
//              mkdir: inode bit, block bit, "."/".." block, entry (to an inode
//              still at links 0: a dangling entry), parent links + 1, inode.
//   unlink     last link: inode links 0 + dtime (entry now dangling), remove
//              entry, free blocks chunk by chunk, free inode bit. Other links:
//              remove entry, then links - 1.
//   rmdir      like unlink of a last link, parent links - 1 after the entry goes.
//   rename     raise the source's link count (file) or the new parent's
//              (directory), delete a replaced target (links 0, its entry now
//              dangling), add/retarget the new entry, fix "..", remove the old
//              entry, lower the counts, free the replaced target.
//
// One window is not preen-clean and cannot be with in-place ext2 metadata: a
// directory moved between two directories briefly has two entries
// (PR_2_LINK_DIR); old Linux ext2 has the same window. A rename inside one
// directory whose new name fits the old record is done in one block write.
//
// ── Rule 2: the intent (a re-run finishes the job exactly once) ───────────────
//
// The server re-runs an interrupted operation with the same arguments and the
// intent last passed to `checkpoint`. Each operation therefore:
//   * records, before its first write, what it cannot rediscover — the inode
//     it allocates or removes and its generation, link-count targets, mkdir's
//     block, and for every chunk of blocks it allocates or frees the block
//     numbers (and, for frees, the range and i_blocks after) — then calls
//     `checkpoint` once. Typical operations checkpoint once; each extra 16
//     blocks allocated or freed costs one more checkpoint.
//   * on the re-run, reads the disk to find where it stopped and makes every
//     step idempotent: bits already in the wanted state are left alone; a
//     directory entry already present (create) or already gone (unlink) is
//     recognised by the recorded inode and the operation finishes and returns
//     what a single run returns; link counts are set to recorded targets, and
//     directory link counts recounted from the entries; a pending chunk's
//     reservation is reused for the positions still missing (blocks of it
//     already linked are found by walking that chunk).
//   * group counts: free-block counts are recomputed from the bitmap whenever
//     a bitmap block is written. Free-inode and used-directory counts move by
//     deltas when *this* run flips a bit, and are reconciled against the
//     bitmap when a re-run finds its bit already flipped (the mismatch tells
//     whether the descriptor write landed). Deltas, not recomputation, so that
//     other operations run before the re-run keep that evidence intact.
//
// An interrupted operation that will never be re-run (the kernel failed its request,
// its client ended, an error ended it part-way) is abandoned, not just forgotten:
// `release(abandoned:)` frees the blocks its unfinished step reserved or had already
// unlinked, which would otherwise stay marked in use until e2fsck.
//
// A request that is two operations — open with O_CREAT|O_TRUNC: create, or else
// truncate — is one here (`openCreating`), so that one intent carries it from the
// first stage to the second and a re-run resumes the stage it was in.
//
// Other clients' operations may run before the re-run. They see a consistent
// volume (rule 1). So that they cannot take a block or inode the interrupted
// intent names (which the re-run would then believe its own), the server adopts
// each interrupted intent after a restart into its `InterruptedUpdates`, the one
// table every volume it mounts consults; allocation skips what adopted intents
// hold until their re-run finishes.
//
// Corruption: everything read is validated (pointers, records, counts) before
// use; a mutation checks what it will change before its first write and
// throws `.corrupt` instead of writing.

import FileSystemCore

extension Ext2Volume {
    // MARK: Reading

    public mutating func status(_ inode: InodeNumber) throws(FileSystemError) -> FileStatus {
        let node = try liveInode(inode.rawValue)
        return FileStatus(inode: inode, type: node.fileType, permissions: node.mode & 0x0FFF, links: node.links,
                          size: node.byteSize(largeFile: geometry.largeFile), sectors: UInt64(node.sectors),
                          generation: node.generation, modified: node.modified, changed: node.changed,
                          accessed: node.accessed)
    }

    /// Reads up to `buffer.count` bytes; short at end of file; holes read as zeros.
    public mutating func read(_ inode: InodeNumber, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer)
        throws(FileSystemError) -> Int {
        let node = try liveInode(inode.rawValue)
        return try readData(node, at: offset, into: buffer)
    }

    // MARK: Operation frame

    private func checkWritable() throws(FileSystemError) {
        guard geometry.writable else { throw .readOnly }
    }

    /// A re-run passes back its own intent; anything else starts fresh.
    private func prepared(_ intent: Ext2Intent, for kind: OperationKind) -> Ext2Intent {
        if intent.kind == kind { return intent }
        var fresh = Ext2Intent(tag: intent.tag)
        fresh.kind = kind
        return fresh
    }

    /// Ends every mutation: counts to the superblock, the adopted intent dropped.
    private mutating func finish(_ intent: Ext2Intent) throws(FileSystemError) {
        forgetInterrupted(tag: intent.tag)
        try writeSuperblockIfNeeded()
    }

    private mutating func finishAfterError(_ intent: Ext2Intent) {
        forgetInterrupted(tag: intent.tag)
        try? writeSuperblockIfNeeded()
    }

    static func generation(tag: UInt64, inode: UInt32) -> UInt32 {
        var mixed = tag &+ UInt64(inode) &* 0x9E37_79B9_7F4A_7C15
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return UInt32(truncatingIfNeeded: mixed ^ (mixed >> 31)) | 1
    }

    static var linkLimit: UInt16 { 32000 }

    // MARK: write / truncate

    public mutating func write(_ inode: InodeNumber, at offset: UInt64, from buffer: UnsafeRawBufferPointer,
                               intent: inout Ext2Intent, checkpoint: (Ext2Intent) -> Void)
        throws(FileSystemError) -> Int {
        try checkWritable()
        intent = prepared(intent, for: .write)
        do throws(FileSystemError) {
            var node = try liveInode(inode.rawValue)
            guard !node.isDirectory else { throw .isADirectory }
            guard node.fileType == .regular else { throw .invalidArgument }
            let count = try writeRange(inode.rawValue, &node, at: offset, from: buffer, intent: &intent,
                                       checkpoint: checkpoint)
            try finish(intent)
            return count
        } catch {
            finishAfterError(intent)
            throw error
        }
    }

    public mutating func truncate(_ inode: InodeNumber, to size: UInt64, intent: inout Ext2Intent,
                                  checkpoint: (Ext2Intent) -> Void) throws(FileSystemError) {
        try checkWritable()
        intent = prepared(intent, for: .truncate)
        do throws(FileSystemError) {
            var node = try liveInode(inode.rawValue)
            guard !node.isDirectory else { throw .isADirectory }
            guard node.fileType == .regular else { throw .invalidArgument }
            guard size <= geometry.maxFileSize else { throw .fileTooLarge }
            let old = node.byteSize(largeFile: geometry.largeFile)
            let blockSize = UInt64(geometry.blockSize)
            let keep = (size + blockSize - 1) / blockSize
            let pendingFree = intent.reservationKind == .free && intent.reservationInode == inode.rawValue
            if size < old || pendingFree || mapEnd(node) > keep {
                // Bytes past the new end in its last block must read as zeros if the file grows again.
                if size % blockSize != 0 {
                    let block = try mapBlock(node, keep - 1)
                    if block != 0 {
                        try readBlock(block, into: .data)
                        UnsafeMutableRawBufferPointer(rebasing: buffer(.data)[Int(size % blockSize)...]).zero()
                        try writeBlock(block, from: .data)
                    }
                }
                try freeTail(inode.rawValue, &node, keepBlocks: keep, newSize: size, intent: &intent,
                             checkpoint: checkpoint)
            }
            if node.byteSize(largeFile: geometry.largeFile) != size {
                node.setByteSize(size)
                node.modified = now
                node.changed = now
                try writeInode(inode.rawValue, node)
            }
            try finish(intent)
        } catch {
            finishAfterError(intent)
            throw error
        }
    }

    // MARK: create

    public mutating func create(_ name: UnsafeRawBufferPointer, in directory: InodeNumber, type: FileType,
                                permissions: UInt16, intent: inout Ext2Intent, checkpoint: (Ext2Intent) -> Void)
        throws(FileSystemError) -> InodeNumber {
        try checkWritable()
        try Self.checkName(name)
        guard type == .regular || type == .directory else { throw .invalidArgument }
        intent = prepared(intent, for: .create)
        do throws(FileSystemError) {
            let created = try createSteps(name, directory.rawValue, type == .directory, permissions & 0x0FFF,
                                          &intent, checkpoint)
            try finish(intent)
            return InodeNumber(created)
        } catch {
            finishAfterError(intent)
            throw error
        }
    }

    /// Open with O_CREAT: the regular file `name` in `directory`, created if missing;
    /// if it is there, refused with `exclusive`, emptied with `truncate`. One update,
    /// whose intent passes from the create stage to the truncate stage. A re-run that
    /// finds its intent in the truncate stage found the file in its first run, and goes
    /// straight back to the truncate: starting the create stage afresh would replace
    /// the truncate's intent, and the blocks an interrupted step had already unlinked
    /// would stay marked in use for good.
    public mutating func openCreating(_ name: UnsafeRawBufferPointer, in directory: InodeNumber,
                                      permissions: UInt16, exclusive: Bool, truncate: Bool,
                                      intent: inout Ext2Intent, checkpoint: (Ext2Intent) -> Void)
        throws(FileSystemError) -> (inode: InodeNumber, created: Bool) {
        if truncate && intent.kind == .truncate, let existing = try? lookup(name, in: directory) {
            try self.truncate(existing, to: 0, intent: &intent, checkpoint: checkpoint)
            return (existing, false)
        }
        do throws(FileSystemError) {
            let created = try create(name, in: directory, type: .regular, permissions: permissions, intent: &intent,
                                     checkpoint: checkpoint)
            return (created, true)
        } catch .exists {
            guard !exclusive else { throw .exists }
        }
        let existing = try lookup(name, in: directory)
        if truncate {
            try self.truncate(existing, to: 0, intent: &intent, checkpoint: checkpoint)
        }
        return (existing, false)
    }

    private mutating func createSteps(_ name: UnsafeRawBufferPointer, _ parentNumber: UInt32, _ isDirectory: Bool,
                                      _ permissions: UInt16, _ intent: inout Ext2Intent,
                                      _ checkpoint: (Ext2Intent) -> Void) throws(FileSystemError) -> UInt32 {
        var parent = try liveInode(parentNumber)
        guard parent.isDirectory else { throw .notADirectory }
        let resuming = intent.inode != 0
        if let slot = try findEntry(parent, name) {
            guard resuming && slot.inode == intent.inode else {
                if resuming { try abandonCreate(intent, isDirectory) }
                throw .exists
            }
            // The entry landed: finish what follows it.
            let created = intent.inode
            try commitInodeBit(created, allocate: true, directory: isDirectory)
            if isDirectory {
                let links = try expectedDirectoryLinks(parent)
                if Int(parent.links) != links {
                    parent.links = UInt16(clamping: links)
                    try writeInode(parentNumber, parent)
                }
                let node = try readInode(created)
                if !(node.isInUse && node.isDirectory) {
                    try writeNewInode(created, isDirectory: true, permissions, intent)
                }
            }
            return created
        }
        if !resuming {
            if isDirectory { guard parent.links < Self.linkLimit else { throw .tooManyLinks } }
            let created = try chooseInode(directory: isDirectory, parent: parentNumber, tag: intent.tag)
            intent.inode = created
            intent.generation = Self.generation(tag: intent.tag, inode: created)
            if isDirectory {
                var probe = Ext2Intent(tag: intent.tag)
                let group = Int((created - 1) / geometry.inodesPerGroup)
                try chooseBlocks(1, goal: geometry.groupStart(group), for: created, chunk: 0, intent: &probe)
                intent.directoryBlock = probe.reservedBlock(0)
            }
            checkpoint(intent)
        }
        let created = intent.inode
        try commitInodeBit(created, allocate: true, directory: isDirectory)
        if isDirectory {
            try commitSingleBlock(intent.directoryBlock, allocate: true, tag: intent.tag)
            let block = buffer(.data)
            block.zero()
            block.setLE32(0, created)
            block.setLE16(4, 12)
            block[6] = 1
            block[7] = geometry.fileType ? FileType.directory.rawValue : 0
            block[8] = UInt8(ascii: ".")
            block.setLE32(12, parentNumber)
            block.setLE16(16, UInt16(geometry.blockSize - 12))
            block[18] = 2
            block[19] = geometry.fileType ? FileType.directory.rawValue : 0
            block[20] = UInt8(ascii: ".")
            block[21] = UInt8(ascii: ".")
            try writeBlock(intent.directoryBlock, from: .data)
            try addEntry(parentNumber, &parent, name, target: created, type: .directory, intent: &intent,
                         checkpoint: checkpoint)
            parent = try readInode(parentNumber)
            parent.links &+= 1
            parent.modified = now
            parent.changed = now
            try writeInode(parentNumber, parent)
            try writeNewInode(created, isDirectory: true, permissions, intent)
        } else {
            try writeNewInode(created, isDirectory: false, permissions, intent)
            try addEntry(parentNumber, &parent, name, target: created, type: .regular, intent: &intent,
                         checkpoint: checkpoint)
            parent = try readInode(parentNumber)
            parent.modified = now
            parent.changed = now
            try writeInode(parentNumber, parent)
        }
        return created
    }

    private mutating func writeNewInode(_ number: UInt32, isDirectory: Bool, _ permissions: UInt16,
                                        _ intent: Ext2Intent) throws(FileSystemError) {
        var node = Inode()
        node.mode = Inode.modeBits(for: isDirectory ? .directory : .regular) | permissions
        node.links = isDirectory ? 2 : 1
        node.accessed = now
        node.changed = now
        node.modified = now
        node.generation = intent.generation
        if isDirectory {
            node.sizeLow = UInt32(geometry.blockSize)
            node.sectors = sectorsPerBlock
            node.setPointer(0, intent.directoryBlock)
        }
        try writeInode(number, node, fresh: true)
    }

    private mutating func commitSingleBlock(_ block: UInt32, allocate: Bool, tag: UInt64) throws(FileSystemError) {
        var single = Ext2Intent(tag: tag)
        single.reservationKind = allocate ? .allocate : .free
        single.reservationCount = 1
        single.setReservedBlock(0, block)
        try commitBlockBits(single, allocate: allocate)
    }

    /// A re-run found the name taken by someone else: give back what the first
    /// run allocated (it was never linked).
    private mutating func abandonCreate(_ intent: Ext2Intent, _ isDirectory: Bool) throws(FileSystemError) {
        let number = intent.inode
        let node = try readInode(number)
        guard !node.isInUse || node.generation == intent.generation else { return }
        if try isInodeAllocated(number) {
            if node.isInUse {
                var dead = node
                dead.links = 0
                dead.deleted = now
                try writeInode(number, dead)
            }
            try commitInodeBit(number, allocate: false, directory: isDirectory)
        }
        if isDirectory && intent.directoryBlock != 0 && isDataBlock(intent.directoryBlock) {
            try commitSingleBlock(intent.directoryBlock, allocate: false, tag: intent.tag)
        }
    }

    // MARK: unlink / rmdir

    public mutating func unlink(_ name: UnsafeRawBufferPointer, in directory: InodeNumber, intent: inout Ext2Intent,
                                checkpoint: (Ext2Intent) -> Void) throws(FileSystemError) {
        try checkWritable()
        try Self.checkName(name)
        intent = prepared(intent, for: .unlink)
        do throws(FileSystemError) {
            try removeSteps(name, directory.rawValue, directoryWanted: false, &intent, checkpoint)
            try finish(intent)
        } catch {
            finishAfterError(intent)
            throw error
        }
    }

    public mutating func removeDirectory(_ name: UnsafeRawBufferPointer, in directory: InodeNumber,
                                         intent: inout Ext2Intent, checkpoint: (Ext2Intent) -> Void)
        throws(FileSystemError) {
        try checkWritable()
        try Self.checkName(name)
        intent = prepared(intent, for: .removeDirectory)
        do throws(FileSystemError) {
            try removeSteps(name, directory.rawValue, directoryWanted: true, &intent, checkpoint)
            try finish(intent)
        } catch {
            finishAfterError(intent)
            throw error
        }
    }

    private mutating func removeSteps(_ name: UnsafeRawBufferPointer, _ parentNumber: UInt32, directoryWanted: Bool,
                                      _ intent: inout Ext2Intent, _ checkpoint: (Ext2Intent) -> Void)
        throws(FileSystemError) {
        var parent = try liveInode(parentNumber)
        guard parent.isDirectory else { throw .notADirectory }
        let resuming = intent.inode != 0
        guard let slot = try findEntry(parent, name) else {
            guard resuming else { throw .noSuchFile }
            // The entry is gone: finish what follows its removal.
            var node = try readInode(intent.inode)
            guard node.generation == intent.generation else { return }
            if intent.linksTarget != 0 {
                if node.links != intent.linksTarget {
                    node.links = intent.linksTarget
                    node.changed = now
                    try writeInode(intent.inode, node)
                }
                return
            }
            if directoryWanted { try recountLinks(parentNumber) }
            try destroyInode(intent.inode, &node, &intent, checkpoint)
            return
        }
        let number = slot.inode
        var node = try readInode(number)
        if !(resuming && number == intent.inode) {
            guard node.isInUse else { throw .corrupt }
            if directoryWanted {
                guard node.isDirectory else { throw .notADirectory }
                guard try isEmptyDirectory(node) else { throw .directoryNotEmpty }
            } else {
                guard !node.isDirectory else { throw .isADirectory }
            }
            intent.inode = number
            intent.generation = node.generation
            intent.linksTarget = !directoryWanted && node.links > 1 ? node.links - 1 : 0
            checkpoint(intent)
            _ = try findEntry(parent, name)
        }
        if intent.linksTarget != 0 {
            try removeEntry(parentNumber, &parent, slot)
            node.links = intent.linksTarget
            node.changed = now
            try writeInode(number, node)
            return
        }
        if node.links != 0 {
            node.links = 0
            node.deleted = now
            node.changed = now
            try writeInode(number, node)
        }
        try removeEntry(parentNumber, &parent, slot)
        parent.modified = now
        parent.changed = now
        if directoryWanted {
            if resuming {
                try writeInode(parentNumber, parent)
                try recountLinks(parentNumber)
            } else {
                parent.links = parent.links > 2 ? parent.links - 1 : parent.links
                try writeInode(parentNumber, parent)
            }
        } else {
            try writeInode(parentNumber, parent)
        }
        try destroyInode(number, &node, &intent, checkpoint)
    }

    /// Sets a directory's link count from its entries (re-runs only).
    private mutating func recountLinks(_ number: UInt32) throws(FileSystemError) {
        let links = try expectedDirectoryLinks(try liveInode(number))
        var node = try readInode(number)
        if Int(node.links) != links {
            node.links = UInt16(clamping: links)
            try writeInode(number, node)
        }
    }

    /// Frees a deleted inode's (links 0) blocks, xattr block and inode bit.
    private mutating func destroyInode(_ number: UInt32, _ node: inout Inode, _ intent: inout Ext2Intent,
                                       _ checkpoint: (Ext2Intent) -> Void) throws(FileSystemError) {
        guard node.links == 0 else { return }
        try freeTail(number, &node, keepBlocks: 0, newSize: 0, intent: &intent, checkpoint: checkpoint)
        let attributes = node.extendedAttributeBlock
        if attributes != 0 {
            try checkDataBlock(attributes)
            try readBlock(attributes, into: .auxiliary)
            let header = buffer(.auxiliary)
            let shared = header.le32(0) == 0xEA02_0000 && header.le32(4) > 1
            node.extendedAttributeBlock = 0
            node.sectors = node.sectors >= sectorsPerBlock ? node.sectors - sectorsPerBlock : 0
            try writeInode(number, node)
            if shared {
                header.setLE32(4, header.le32(4) - 1)
                try writeBlock(attributes, from: .auxiliary)
            } else {
                try commitSingleBlock(attributes, allocate: false, tag: intent.tag)
            }
        }
        try commitInodeBit(number, allocate: false, directory: node.isDirectory)
    }

    // MARK: rename

    public mutating func rename(_ name: UnsafeRawBufferPointer, in from: InodeNumber, to newName: UnsafeRawBufferPointer,
                                in to: InodeNumber, intent: inout Ext2Intent, checkpoint: (Ext2Intent) -> Void)
        throws(FileSystemError) {
        try checkWritable()
        try Self.checkName(name)
        try Self.checkName(newName)
        intent = prepared(intent, for: .rename)
        do throws(FileSystemError) {
            try renameSteps(name, from.rawValue, newName, to.rawValue, &intent, checkpoint)
            try finish(intent)
        } catch {
            finishAfterError(intent)
            throw error
        }
    }

    private mutating func renameSteps(_ name: UnsafeRawBufferPointer, _ fromNumber: UInt32,
                                      _ newName: UnsafeRawBufferPointer, _ toNumber: UInt32,
                                      _ intent: inout Ext2Intent, _ checkpoint: (Ext2Intent) -> Void)
        throws(FileSystemError) {
        var source = try liveInode(fromNumber)
        guard source.isDirectory else { throw .notADirectory }
        var target = try liveInode(toNumber)
        guard target.isDirectory else { throw .notADirectory }
        let resuming = intent.inode != 0
        var oldSlot = try findEntry(source, name)
        var newSlot = try findEntry(target, newName)
        if !resuming {
            guard let old = oldSlot else { throw .noSuchFile }
            let moving = try readInode(old.inode)
            guard moving.isInUse else { throw .corrupt }
            var replaced: UInt32 = 0
            var replacedLinksAfter: UInt16 = 0
            if let existing = newSlot {
                if existing.inode == old.inode { return }
                let victim = try readInode(existing.inode)
                guard victim.isInUse else { throw .corrupt }
                if moving.isDirectory {
                    guard victim.isDirectory else { throw .notADirectory }
                    guard try isEmptyDirectory(victim) else { throw .directoryNotEmpty }
                } else {
                    guard !victim.isDirectory else { throw .isADirectory }
                    replacedLinksAfter = victim.links > 1 ? victim.links - 1 : 0
                }
                replaced = existing.inode
            }
            if moving.isDirectory {
                if fromNumber != toNumber {
                    // Refuse to move a directory under itself: walk up from the destination.
                    var current = toNumber
                    var hops = 0
                    while current != InodeNumber.root.rawValue {
                        guard current != old.inode else { throw .invalidArgument }
                        guard hops < 4096 else { throw .corrupt }
                        hops += 1
                        current = try parentOf(try liveInode(current))
                    }
                    if replaced == 0 { guard target.links < Self.linkLimit else { throw .tooManyLinks } }
                }
            } else {
                guard moving.links < Self.linkLimit else { throw .tooManyLinks }
            }
            intent.inode = old.inode
            intent.otherInode = replaced
            intent.generation = moving.generation
            intent.linksTarget = moving.links
            intent.otherLinksTarget = replacedLinksAfter
            checkpoint(intent)
            // Same directory, no target, the new name fits the old record: one write.
            if fromNumber == toNumber && replaced == 0 {
                oldSlot = try findEntry(source, name)
                if let slot = oldSlot,
                   DirectoryRecord.footprint(nameLength: newName.count) <= recordLength(slot.offset) {
                    try dropIndex(fromNumber, &source)
                    directoryBuffer[slot.offset + 6] = UInt8(newName.count)
                    UnsafeMutableRawBufferPointer(rebasing: directoryBuffer[(slot.offset + 8)...].prefix(newName.count))
                        .copyMemory(from: newName)
                    try writeBlock(slot.physical, from: .directory)
                    return
                }
            }
        }
        let moved = intent.inode
        let replaced = intent.otherInode
        var node = try readInode(moved)
        guard node.generation == intent.generation else { return }
        let movingDirectory = node.isDirectory
        let oldPresent = oldSlot?.inode == moved
        let newPresent = newSlot?.inode == moved
        if !newPresent {
            if !oldPresent {
                // Both names gone: someone else removed it meanwhile.
                try finishReplaced(replaced, intent, &intent, checkpoint)
                return
            }
            // Raise counts before the second name appears.
            if movingDirectory {
                if fromNumber != toNumber && replaced == 0 && !resuming {
                    target.links &+= 1
                    try writeInode(toNumber, target)
                }
            } else if node.links != intent.linksTarget &+ 1 {
                node.links = intent.linksTarget &+ 1
                node.changed = now
                try writeInode(moved, node)
            }
            if replaced != 0, let existing = newSlot, existing.inode == replaced {
                var victim = try readInode(replaced)
                if intent.otherLinksTarget == 0 && victim.links != 0 {
                    victim.links = 0
                    victim.deleted = now
                    victim.changed = now
                    try writeInode(replaced, victim)
                }
                newSlot = try findEntry(target, newName)
                target = try readInode(toNumber)
                if let slot = newSlot, slot.inode == replaced {
                    try retargetEntry(toNumber, &target, slot, to: moved, type: node.fileType)
                } else {
                    try addEntry(toNumber, &target, newName, target: moved, type: node.fileType, intent: &intent,
                                 checkpoint: checkpoint)
                }
            } else {
                target = try readInode(toNumber)
                try addEntry(toNumber, &target, newName, target: moved, type: node.fileType, intent: &intent,
                             checkpoint: checkpoint)
            }
        }
        if movingDirectory && fromNumber != toNumber { try setParent(of: node, to: toNumber) }
        source = try readInode(fromNumber)
        oldSlot = try findEntry(source, name)
        if let slot = oldSlot, slot.inode == moved {
            try removeEntry(fromNumber, &source, slot)
        }
        node = try readInode(moved)
        if !movingDirectory && node.links != intent.linksTarget {
            node.links = intent.linksTarget
            node.changed = now
            try writeInode(moved, node)
        }
        var replacedDirectory = false
        if replaced != 0 { replacedDirectory = try readInode(replaced).isDirectory }
        if movingDirectory || replacedDirectory {
            try recountLinks(fromNumber)
            if toNumber != fromNumber { try recountLinks(toNumber) }
        }
        for number in [fromNumber, toNumber] {
            var directory = try readInode(number)
            if directory.modified != now || directory.changed != now {
                directory.modified = now
                directory.changed = now
                try writeInode(number, directory)
            }
        }
        try finishReplaced(replaced, intent, &intent, checkpoint)
    }

    /// The replaced target: drop its link, and free it if that was its last.
    private mutating func finishReplaced(_ replaced: UInt32, _ recorded: Ext2Intent, _ intent: inout Ext2Intent,
                                         _ checkpoint: (Ext2Intent) -> Void) throws(FileSystemError) {
        guard replaced != 0 else { return }
        var victim = try readInode(replaced)
        if recorded.otherLinksTarget != 0 {
            if victim.links != recorded.otherLinksTarget {
                victim.links = recorded.otherLinksTarget
                victim.changed = now
                try writeInode(replaced, victim)
            }
            return
        }
        guard victim.links == 0 else { return }
        try destroyInode(replaced, &victim, &intent, checkpoint)
    }
}
