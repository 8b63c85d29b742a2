// The classic ext2 block map: 12 direct pointers, then single, double and
// triple indirect blocks, each holding blockSize/4 pointers.
//
//   i_block[0..11] ──> data                      positions 0 ..< 12
//   i_block[12] ──> [ptr × A] ──> data            next A positions
//   i_block[13] ──> [ptr × A] ──> [ptr × A] ──>   next A² positions
//   i_block[14] ──> three levels                  next A³ positions
//
// The engine works on the map in *chunks* of logical positions: chunk 0 is the
// 12 direct positions, chunk j >= 1 covers 16 positions starting at
// 12 + 16 (j - 1). Because A is a multiple of 16, a chunk never straddles two
// level-1 indirect blocks, so one chunk needs at most 16 data blocks plus the
// (at most 3) indirect blocks on its single path: 19 blocks, which fit the
// intent's 20-entry reservation. Growing and shrinking both go chunk by chunk,
// so every step of either has one path, one reservation and one checkpoint.
//
// Within a chunk, writes go bottom-up: data blocks, then the level-1 indirect
// block, then level 2, level 3, and the inode last. A pointer therefore never
// becomes reachable before the block it points to has its final contents, and
// a crash leaves at worst allocated-but-unreferenced blocks (which preen frees).
// Shrinking goes the other way: the pointer is cleared (one block write, then
// the inode's i_blocks) before the blocks are freed in the bitmap.
//
// Every pointer read from disk is checked (`isDataBlock`) before it is followed
// or freed, and the walk depth is fixed by the position, so a hostile map can
// make an operation fail with `.corrupt` but never loop or reach outside.

import FileSystemCore

/// Where one logical position sits in the map.
struct MapPath {
    /// 0 for a direct pointer, else how many indirect blocks are on the way.
    var depth: Int
    /// Index into i_block of the first pointer (the direct slot, or 12/13/14).
    var top: Int
    /// Index within the indirect block at each level, top level first.
    var index: (Int, Int, Int)
    /// First logical position covered by the indirect block at each level.
    var start: (UInt64, UInt64, UInt64)

    func indexAt(_ level: Int) -> Int { level == 0 ? index.0 : level == 1 ? index.1 : index.2 }
    func startAt(_ level: Int) -> UInt64 { level == 0 ? start.0 : level == 1 ? start.1 : start.2 }
}

/// Which scratch buffer holds the indirect block at `level` (0 = top).
@inline(__always) func pathScratch(_ level: Int) -> Scratch {
    level == 0 ? .path1 : level == 1 ? .path2 : .path3
}

enum Chunk {
    static let span: UInt64 = 16
    static func index(of position: UInt64) -> UInt64 { position < 12 ? 0 : 1 + (position - 12) / span }
    static func start(_ chunk: UInt64) -> UInt64 { chunk == 0 ? 0 : 12 + (chunk - 1) * span }
    static func end(_ chunk: UInt64) -> UInt64 { chunk == 0 ? 12 : 12 + chunk * span }
}

extension Ext2Volume {
    var sectorsPerBlock: UInt32 { UInt32(geometry.blockSize / 512) }

    func mapPath(_ position: UInt64) -> MapPath {
        let a = UInt64(geometry.pointersPerBlock)
        let shift = UInt64(geometry.pointerShift)
        if position < 12 {
            return MapPath(depth: 0, top: Int(position), index: (0, 0, 0), start: (0, 0, 0))
        }
        var offset = position - 12
        if offset < a {
            return MapPath(depth: 1, top: 12, index: (Int(offset), 0, 0), start: (12, 0, 0))
        }
        offset -= a
        let base2 = 12 + a
        if offset < a * a {
            let level1Start = base2 + (offset >> shift) << shift
            return MapPath(depth: 2, top: 13, index: (Int(offset >> shift), Int(offset & (a - 1)), 0),
                           start: (base2, level1Start, 0))
        }
        offset -= a * a
        let base3 = base2 + a * a
        let level2Start = base3 + (offset >> (2 * shift)) << (2 * shift)
        let level1Start = base3 + (offset >> shift) << shift
        return MapPath(depth: 3, top: 14,
                       index: (Int(offset >> (2 * shift)), Int((offset >> shift) & (a - 1)), Int(offset & (a - 1))),
                       start: (base3, level2Start, level1Start))
    }

    @inline(__always) func entry(_ level: Int, _ index: Int) -> UInt32 { buffer(pathScratch(level)).le32(index * 4) }
    @inline(__always) func setEntry(_ level: Int, _ index: Int, _ value: UInt32) {
        buffer(pathScratch(level)).setLE32(index * 4, value)
    }

    /// The physical block at a logical position, 0 for a hole.
    mutating func mapBlock(_ inode: Inode, _ position: UInt64) throws(FileSystemError) -> UInt32 {
        guard position < geometry.mappableBlocks else { return 0 }
        let path = mapPath(position)
        var block = inode.pointer(path.top)
        for level in 0..<path.depth {
            if block == 0 { return 0 }
            try checkDataBlock(block)
            try readBlock(block, into: .path1)
            block = buffer(.path1).le32(path.indexAt(level) * 4)
        }
        if block != 0 { try checkDataBlock(block) }
        return block
    }

    /// One past the last position the map can hold anything at, judged from
    /// the top-level pointers alone (walks then skip holes level by level).
    func mapEnd(_ inode: Inode) -> UInt64 {
        let a = UInt64(geometry.pointersPerBlock)
        if inode.pointer(14) != 0 { return geometry.mappableBlocks }
        if inode.pointer(13) != 0 { return 12 + a + a * a }
        if inode.pointer(12) != 0 { return 12 + a }
        return 12
    }

    /// Data blocks an inode's i_blocks may count besides the map: its xattr block.
    func extendedAttributeSectors(_ inode: Inode) -> UInt32 {
        inode.extendedAttributeBlock != 0 ? sectorsPerBlock : 0
    }

    // MARK: Reading

    mutating func readData(_ inode: Inode, at offset: UInt64, into target: UnsafeMutableRawBufferPointer)
        throws(FileSystemError) -> Int {
        let size = inode.byteSize(largeFile: geometry.largeFile)
        guard offset < size, target.count > 0 else { return 0 }
        let total = Int(min(UInt64(target.count), size - offset))
        if inode.fileType == .symbolicLink, size < UInt64(Inode.inlinePointerBytes),
           inode.sectors == extendedAttributeSectors(inode) {
            inode.withInlineBytes { inline in
                UnsafeMutableRawBufferPointer(rebasing: target[0..<total])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: inline[Int(offset)..<(Int(offset) + total)]))
            }
            return total
        }
        guard size <= geometry.maxFileSize || size <= geometry.mappableBlocks << UInt64(geometry.blockShift) else {
            throw .corrupt
        }
        let blockSize = UInt64(geometry.blockSize)
        var done = 0
        while done < total {
            let position = offset + UInt64(done)
            let within = Int(position & (blockSize - 1))
            let count = min(total - done, geometry.blockSize - within)
            let piece = UnsafeMutableRawBufferPointer(rebasing: target[done..<(done + count)])
            let filePosition = position >> UInt64(geometry.blockShift)
            let block = try mapBlock(inode, filePosition)
            if block == 0 {
                piece.zero()
            } else if within == 0 && count == geometry.blockSize {
                // Whole blocks go from the disk straight into the target, as many as lie
                // one after another on the disk in one request. The disk has every
                // block as last written (writes go through the cache, never around
                // it), and streaming file data through the cache would only push the
                // metadata out.
                var run = 1
                while run < blocksPerTransfer, total - done >= (run + 1) * geometry.blockSize,
                      try mapBlock(inode, filePosition + UInt64(run)) == block &+ UInt32(run) {
                    run += 1
                }
                let bytes = run * geometry.blockSize
                try readBlocksUncached(block, into: UnsafeMutableRawBufferPointer(rebasing: target[done..<(done + bytes)]))
                done += bytes
                continue
            } else {
                try readBlock(block, into: .data)
                piece.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer(.data)[within..<(within + count)]))
            }
            done += count
        }
        return total
    }

    // MARK: Growing (write)

    /// Walks chunk positions `first ..< end` without changing anything: how many
    /// blocks are missing (indirect and data), and which of the pending
    /// reservation's blocks are already linked here (bit i of the mask).
    mutating func surveyChunk(_ inode: Inode, _ first: UInt64, _ end: UInt64, reservation: Ext2Intent?)
        throws(FileSystemError) -> (missing: Int, linked: UInt32) {
        var linked: UInt32 = 0
        func note(_ block: UInt32) {
            guard let reservation else { return }
            for index in 0..<reservation.reservationCount where reservation.reservedBlock(index) == block {
                linked |= 1 << UInt32(index)
            }
        }
        let path = mapPath(first)
        let span = Int(end - first)
        if path.depth == 0 {
            var missing = 0
            for position in first..<end {
                let block = inode.pointer(Int(position))
                if block == 0 { missing += 1 } else { try checkDataBlock(block); note(block) }
            }
            return (missing, linked)
        }
        var block = inode.pointer(path.top)
        for level in 0..<path.depth {
            if block == 0 { return (path.depth - level + span, linked) }
            try checkDataBlock(block)
            note(block)
            try readBlock(block, into: pathScratch(level))
            if level + 1 < path.depth { block = entry(level, path.indexAt(level)) }
        }
        var missing = 0
        let last = path.depth - 1
        for position in first..<end {
            let data = entry(last, path.indexAt(last) + Int(position - first))
            if data == 0 { missing += 1 } else { try checkDataBlock(data); note(data) }
        }
        return (missing, linked)
    }

    /// One pointer `fillChunk` is about to write, read back from the map: it must be a
    /// block this chunk took from the reservation, and not one matched already. Checked
    /// for every new link before any indirect block or the inode goes out, so that a
    /// block number damaged between being taken and being linked (a soak's stack flip
    /// turned 754 into 752, another file's block) never reaches the disk: the reserved
    /// block would leak and two files would share one.
    static func match(_ pointer: UInt32, in reservation: Ext2Intent, unmatched: inout UInt32) throws(FileSystemError) {
        for index in 0..<reservation.reservationCount
        where unmatched & (1 << UInt32(index)) != 0 && reservation.reservedBlock(index) == pointer {
            unmatched &= ~(1 << UInt32(index))
            return
        }
        throw .internalInconsistency
    }

    /// Links every missing block of positions `first ..< end` from the
    /// reservation (taking unlinked entries in order) and writes the data for
    /// those positions from `source` (file bytes `sourceOffset ..<`), bottom-up.
    /// The caller writes the inode afterwards.
    mutating func fillChunk(_ inode: inout Inode, _ first: UInt64, _ end: UInt64, source: UnsafeRawBufferPointer,
                            sourceOffset: UInt64, reservation: Ext2Intent, linked: inout UInt32)
        throws(FileSystemError) {
        func take() throws(FileSystemError) -> UInt32 {
            for index in 0..<reservation.reservationCount where linked & (1 << UInt32(index)) == 0 {
                linked |= 1 << UInt32(index)
                return reservation.reservedBlock(index)
            }
            throw .corrupt
        }
        // Whole blocks that lie one after another on the disk go out in one device
        // write (`run`), still before the indirect blocks and the inode that link them.
        var run = DataRun()
        func put(_ block: UInt32, _ position: UInt64, fresh: Bool) throws(FileSystemError) {
            if isWholeBlock(position, source: source, sourceOffset: sourceOffset) {
                if run.extends(with: block, limit: blocksPerTransfer) { return }
                try writeRun(run, source: source, sourceOffset: sourceOffset)
                run = DataRun(first: block, position: position)
                return
            }
            try writeRun(run, source: source, sourceOffset: sourceOffset)
            run = DataRun()
            try writeData(block, position, fresh: fresh, source: source, sourceOffset: sourceOffset)
        }
        let linkedBefore = linked
        let path = mapPath(first)
        if path.depth == 0 {
            var freshPositions: UInt32 = 0
            for position in first..<end {
                var block = inode.pointer(Int(position))
                let fresh = block == 0
                if fresh { block = try take() }
                try put(block, position, fresh: fresh)
                if fresh {
                    inode.setPointer(Int(position), block)
                    inode.sectors &+= sectorsPerBlock
                    freshPositions |= 1 << UInt32(position - first)
                }
            }
            try writeRun(run, source: source, sourceOffset: sourceOffset)
            var unmatched = linked & ~linkedBefore
            for position in first..<end where freshPositions & (1 << UInt32(position - first)) != 0 {
                try Self.match(inode.pointer(Int(position)), in: reservation, unmatched: &unmatched)
            }
            guard unmatched == 0 else { throw .internalInconsistency }
            return
        }
        var pathBlocks: (UInt32, UInt32, UInt32) = (0, 0, 0)
        var dirty: (Bool, Bool, Bool) = (false, false, false)
        func setPathBlock(_ level: Int, _ block: UInt32) {
            switch level { case 0: pathBlocks.0 = block; case 1: pathBlocks.1 = block; default: pathBlocks.2 = block }
        }
        func markDirty(_ level: Int) {
            switch level { case 0: dirty.0 = true; case 1: dirty.1 = true; default: dirty.2 = true }
        }
        var freshLevels: UInt32 = 0
        for level in 0..<path.depth {
            var block = level == 0 ? inode.pointer(path.top) : entry(level - 1, path.indexAt(level - 1))
            if block == 0 {
                block = try take()
                freshLevels |= 1 << UInt32(level)
                buffer(pathScratch(level)).zero()
                markDirty(level)
                inode.sectors &+= sectorsPerBlock
                if level == 0 { inode.setPointer(path.top, block) } else {
                    setEntry(level - 1, path.indexAt(level - 1), block)
                    markDirty(level - 1)
                }
            } else {
                try checkDataBlock(block)
                try readBlock(block, into: pathScratch(level))
            }
            setPathBlock(level, block)
        }
        let last = path.depth - 1
        var freshPositions: UInt32 = 0
        for position in first..<end {
            let slot = path.indexAt(last) + Int(position - first)
            var block = entry(last, slot)
            let fresh = block == 0
            if fresh { block = try take() }
            try put(block, position, fresh: fresh)
            if fresh {
                setEntry(last, slot, block)
                markDirty(last)
                inode.sectors &+= sectorsPerBlock
                freshPositions |= 1 << UInt32(position - first)
            }
        }
        try writeRun(run, source: source, sourceOffset: sourceOffset)
        var unmatched = linked & ~linkedBefore
        for level in 0..<path.depth where freshLevels & (1 << UInt32(level)) != 0 {
            let pointer = level == 0 ? inode.pointer(path.top) : entry(level - 1, path.indexAt(level - 1))
            try Self.match(pointer, in: reservation, unmatched: &unmatched)
        }
        for position in first..<end where freshPositions & (1 << UInt32(position - first)) != 0 {
            try Self.match(entry(last, path.indexAt(last) + Int(position - first)), in: reservation, unmatched: &unmatched)
        }
        guard unmatched == 0 else { throw .internalInconsistency }
        if path.depth > 2 && dirty.2 { try writeBlock(pathBlocks.2, from: .path3) }
        if path.depth > 1 && dirty.1 { try writeBlock(pathBlocks.1, from: .path2) }
        if dirty.0 { try writeBlock(pathBlocks.0, from: .path1) }
    }

    /// Consecutive disk blocks for consecutive positions, each wholly covered by the
    /// data being written.
    struct DataRun {
        var first: UInt32 = 0
        var position: UInt64 = 0
        var count = 0

        init() {}

        init(first: UInt32, position: UInt64) {
            self.first = first
            self.position = position
            count = 1
        }

        /// Takes `block` as the run's next, if it is that and the run has room.
        mutating func extends(with block: UInt32, limit: Int) -> Bool {
            guard count > 0, count < limit, block == first &+ UInt32(count) else { return false }
            count += 1
            return true
        }
    }

    var blocksPerTransfer: Int { max(Self.maxTransferBytes >> geometry.blockShift, 1) }

    private func isWholeBlock(_ position: UInt64, source: UnsafeRawBufferPointer, sourceOffset: UInt64) -> Bool {
        let blockSize = UInt64(geometry.blockSize)
        return position * blockSize >= sourceOffset
            && position * blockSize + blockSize <= sourceOffset + UInt64(source.count)
    }

    /// Writes a run's blocks from `source` in one device write, each block passing
    /// the role check first (an allocated data block).
    private mutating func writeRun(_ run: DataRun, source: UnsafeRawBufferPointer, sourceOffset: UInt64)
        throws(FileSystemError) {
        guard run.count > 0 else { return }
        try checkDataRun(run.first, count: run.count)
        let start = Int(run.position * UInt64(geometry.blockSize) - sourceOffset)
        try writeRawRun(run.first, from: UnsafeRawBufferPointer(rebasing: source[start..<(start + run.count * geometry.blockSize)]))
    }

    /// Writes the part of `source` that falls in logical block `position` into
    /// physical `block`; the rest of a fresh block is zero, of an old one kept.
    private mutating func writeData(_ block: UInt32, _ position: UInt64, fresh: Bool,
                                    source: UnsafeRawBufferPointer, sourceOffset: UInt64) throws(FileSystemError) {
        let blockSize = UInt64(geometry.blockSize)
        let blockStart = position * blockSize
        let from = max(blockStart, sourceOffset)
        let to = min(blockStart + blockSize, sourceOffset + UInt64(source.count))
        guard from < to else { return }
        let sourceRange = Int(from - sourceOffset)..<Int(to - sourceOffset)
        if to - from == blockSize {
            try checkRole(of: block, writtenFrom: .data)
            try writeRaw(block, from: UnsafeRawBufferPointer(rebasing: source[sourceRange]))
            return
        }
        if fresh { buffer(.data).zero() } else { try readBlock(block, into: .data) }
        UnsafeMutableRawBufferPointer(rebasing: buffer(.data)[Int(from - blockStart)..<Int(to - blockStart)])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[sourceRange]))
        try writeBlock(block, from: .data)
    }

    /// The physical block before `position` in the file, as an allocation goal.
    mutating func allocationGoal(_ number: UInt32, _ inode: Inode, _ position: UInt64) -> UInt32 {
        var probe = position
        var tries = 0
        while probe > 0 && tries < 4 {
            probe -= 1
            tries += 1
            if let block = try? mapBlock(inode, probe), block != 0 { return block + 1 }
        }
        let group = Int((number - 1) / geometry.inodesPerGroup)
        return geometry.groupStart(group) + geometry.headerBlocks(group)
    }

    /// Writes `source` at byte `offset` of inode `number`, chunk by chunk: for a
    /// chunk with missing blocks, reserve them in the intent, checkpoint, mark
    /// them in the bitmap, then fill bottom-up and write the inode. A re-run
    /// finds the chunks already done fully mapped (no reservation needed) and
    /// reuses the pending chunk's reservation for what is still missing.
    mutating func writeRange(_ number: UInt32, _ inode: inout Inode, at offset: UInt64,
                             from source: UnsafeRawBufferPointer, intent: inout Ext2Intent,
                             checkpoint: (Ext2Intent) -> Void) throws(FileSystemError) -> Int {
        guard source.count > 0 else { return 0 }
        let end = offset + UInt64(source.count)
        guard offset < geometry.maxFileSize, end <= geometry.maxFileSize else { throw .fileTooLarge }
        let shift = UInt64(geometry.blockShift)
        let firstPosition = offset >> shift
        let endPosition = (end + UInt64(geometry.blockSize) - 1) >> shift
        var chunk = Chunk.index(of: firstPosition)
        var written: UInt64 = offset
        while Chunk.start(chunk) < endPosition {
            let first = max(firstPosition, Chunk.start(chunk))
            let last = min(endPosition, Chunk.end(chunk))
            let pending = intent.reservationKind == .allocate && intent.reservationInode == number
                && UInt64(intent.reservationFirst) == chunk
            var (missing, linked) = try surveyChunk(inode, first, last, reservation: pending ? intent : nil)
            if pending {
                let unlinked = intent.reservationCount - linked.nonzeroBitCount
                if unlinked != missing {
                    try releaseUnlinked(intent, linked: linked)
                    intent.clearReservation()
                    linked = 0
                }
            }
            let reserved = intent.reservationKind == .allocate && intent.reservationInode == number
                && UInt64(intent.reservationFirst) == chunk
            let chosenNow = missing > 0 && !reserved
            if chosenNow {
                do throws(FileSystemError) {
                    try chooseBlocks(missing, goal: allocationGoal(number, inode, first), for: number,
                                     chunk: UInt32(chunk), intent: &intent)
                } catch {
                    if error == .noSpace && written > offset { return Int(written - offset) }
                    throw error
                }
                linked = 0
                intent.reservationSectors = inode.sectors &+ UInt32(missing) * sectorsPerBlock
                checkpoint(intent)
            }
            if missing > 0 { try commitBlockBits(intent, allocate: true, everyBitFlips: chosenNow) }
            try fillChunk(&inode, first, last, source: source, sourceOffset: offset, reservation: intent,
                          linked: &linked)
            // A re-run may find blocks the first run linked before its inode
            // write was lost: i_blocks takes the value recorded with the plan.
            if missing > 0 || reserved { inode.sectors = intent.reservationSectors }
            written = min(end, last << shift)
            if written > inode.byteSize(largeFile: geometry.largeFile) { inode.setByteSize(written) }
            inode.modified = now
            inode.changed = now
            try writeInode(number, inode)
            // A reservation for a later chunk (pending from an interrupted run) stays.
            if intent.reservationKind == .allocate && UInt64(intent.reservationFirst) == chunk {
                intent.clearReservation()
            }
            chunk += 1
        }
        return source.count
    }

    /// Frees the blocks of an allocation reservation that did not get linked.
    private mutating func releaseUnlinked(_ intent: Ext2Intent, linked: UInt32) throws(FileSystemError) {
        var spare = intent
        var count = 0
        for index in 0..<intent.reservationCount where linked & (1 << UInt32(index)) == 0 {
            spare.setReservedBlock(count, intent.reservedBlock(index))
            count += 1
        }
        spare.reservationCount = count
        if count > 0 { try commitBlockBits(spare, allocate: false) }
    }

    // MARK: Abandoned steps

    /// Lets go of the blocks an interrupted step named when its operation will never
    /// run again (the kernel failed the request, the client ended, or an error ended
    /// it part-way), then forgets the intent: each block the step reserved or was
    /// releasing that the inode's map no longer (or never) links in the step's range
    /// is cleared in the bitmap. Safe because the intent was held since before its
    /// bits were set (`InterruptedUpdates`, or the request in hand), so nobody else
    /// can have taken those blocks; a block still linked stays with its file. An
    /// inode or directory block the operation allocated is left to e2fsck, which
    /// frees an unattached empty inode silently.
    public mutating func release(abandoned intent: Ext2Intent) throws(FileSystemError) {
        defer { forgetInterrupted(tag: intent.tag) }
        guard intent.reservationKind != .none, intent.reservationCount > 0 else { return }
        let number = intent.reservationInode
        guard number >= 1, number <= geometry.inodesCount else { throw .corrupt }
        let first: UInt64, end: UInt64
        if intent.reservationKind == .allocate {
            first = Chunk.start(UInt64(intent.reservationFirst))
            end = min(Chunk.end(UInt64(intent.reservationFirst)), geometry.mappableBlocks)
        } else {
            first = UInt64(intent.reservationFirst)
            end = UInt64(intent.reservationEnd)
        }
        guard first < end, end <= geometry.mappableBlocks else { throw .corrupt }
        // An inode reused since as another kind of file cannot link our blocks, and a
        // fast symlink's block map is text.
        let inode = try readInode(number)
        var linked: UInt32 = 0
        if inode.fileType == .regular || inode.fileType == .directory {
            linked = try surveyChunk(inode, first, end, reservation: intent).linked
        }
        try releaseUnlinked(intent, linked: linked)
        try writeSuperblockIfNeeded()
    }

    // MARK: Shrinking (truncate, delete)

    /// Frees every block at logical positions >= `keepBlocks`, one chunk per
    /// step: record the step (positions, blocks, i_blocks after) in the intent,
    /// checkpoint, clear the pointer (one block or the inode), write the inode,
    /// then clear the bitmap bits. A re-run first finishes the recorded step
    /// (each part is idempotent), then continues from what the map shows.
    mutating func freeTail(_ number: UInt32, _ inode: inout Inode, keepBlocks: UInt64, newSize: UInt64,
                           intent: inout Ext2Intent, checkpoint: (Ext2Intent) -> Void) throws(FileSystemError) {
        if intent.reservationKind == .free && intent.reservationInode == number {
            try executeFreeStep(number, &inode, intent, newSize: newSize)
            intent.clearReservation()
        }
        var end = mapEnd(inode)
        var budget = UInt64(geometry.blocksCount) + 64
        while end > keepBlocks {
            guard budget > 0 else { throw .corrupt }
            budget -= 1
            let path = mapPath(end - 1)
            // Walk down to the first missing level: below it everything up to
            // `end` is a hole and the step frees no data, only emptied parents.
            var present = path.depth
            var block = inode.pointer(path.top)
            for level in 0..<path.depth {
                if block == 0 { present = level; break }
                try checkDataBlock(block)
                try readBlock(block, into: pathScratch(level))
                if level + 1 < path.depth { block = entry(level, path.indexAt(level)) }
            }
            let stepStart = present < path.depth ? max(keepBlocks, path.startAt(present))
                : max(keepBlocks, Chunk.start(Chunk.index(of: end - 1)))
            var step = Ext2Intent(tag: intent.tag)
            var count = 0
            func add(_ block: UInt32) throws(FileSystemError) {
                guard isDataBlock(block), count < Ext2Intent.reservationCapacity else { throw .corrupt }
                for index in 0..<count where step.reservedBlock(index) == block { throw .corrupt }
                step.setReservedBlock(count, block)
                count += 1
            }
            if present == path.depth {
                for position in stepStart..<end {
                    let block = path.depth == 0 ? inode.pointer(Int(position))
                        : entry(path.depth - 1, path.indexAt(path.depth - 1) - Int(end - 1 - position))
                    if block != 0 { try add(block) }
                }
            }
            for level in stride(from: present - 1, through: 0, by: -1) where stepStart <= path.startAt(level) {
                try add(level == 0 ? inode.pointer(path.top) : entry(level - 1, path.indexAt(level - 1)))
            }
            let chunkStart = stepStart
            if count > 0 {
                for index in 0..<count {
                    guard try isBlockAllocated(step.reservedBlock(index)) else { throw .corrupt }
                }
                let sectors = UInt32(count) * sectorsPerBlock
                guard inode.sectors >= sectors else { throw .corrupt }
                intent.clearReservation()
                for index in 0..<count { intent.setReservedBlock(index, step.reservedBlock(index)) }
                intent.reservationKind = .free
                intent.reservationCount = count
                intent.reservationInode = number
                intent.reservationFirst = UInt32(chunkStart)
                intent.reservationEnd = UInt32(end)
                intent.reservationSectors = inode.sectors - sectors
                checkpoint(intent)
                try executeFreeStep(number, &inode, intent, newSize: newSize)
                intent.clearReservation()
            }
            end = chunkStart
        }
    }

    /// Carries out one recorded shrink step; safe to repeat.
    private mutating func executeFreeStep(_ number: UInt32, _ inode: inout Inode, _ step: Ext2Intent,
                                          newSize: UInt64) throws(FileSystemError) {
        let first = UInt64(step.reservationFirst)
        let end = UInt64(step.reservationEnd)
        guard first < end, end <= geometry.mappableBlocks else { throw .corrupt }
        let path = mapPath(end - 1)
        if path.depth == 0 {
            for position in first..<end { inode.setPointer(Int(position), 0) }
        } else {
            // The highest level whose whole block goes away in this step.
            var freedLevel = path.depth
            for level in stride(from: path.depth - 1, through: 0, by: -1) where first <= path.startAt(level) {
                freedLevel = level
            }
            if freedLevel == 0 {
                inode.setPointer(path.top, 0)
            } else {
                // Walk down to the block that keeps living and loses pointers.
                let keeper = freedLevel - 1
                var block = inode.pointer(path.top)
                var reached = true
                for level in 0...keeper {
                    if block == 0 { reached = false; break }
                    try checkDataBlock(block)
                    try readBlock(block, into: pathScratch(level))
                    if level < keeper { block = entry(level, path.indexAt(level)) }
                }
                if reached {
                    var changed = false
                    if freedLevel < path.depth {
                        if entry(keeper, path.indexAt(keeper)) != 0 {
                            setEntry(keeper, path.indexAt(keeper), 0)
                            changed = true
                        }
                    } else {
                        for position in first..<end {
                            let slot = path.indexAt(keeper) - Int(end - 1 - position)
                            if entry(keeper, slot) != 0 { setEntry(keeper, slot, 0); changed = true }
                        }
                    }
                    if changed { try writeBlock(block, from: pathScratch(keeper)) }
                }
            }
        }
        inode.sectors = step.reservationSectors
        let size = inode.byteSize(largeFile: geometry.largeFile)
        let floor = max(newSize, first << UInt64(geometry.blockShift))
        if size > floor { inode.setByteSize(floor) }
        inode.changed = now
        inode.modified = now
        try writeInode(number, inode)
        try commitBlockBits(step, allocate: false)
    }
}
