// Ext2Volume: mount, the block cache, inode I/O, validation of everything read
// from disk, and the bitmaps and free counts. The operations live in the other
// files of this module (BlockMap, Directory, Operations); the write ordering and
// the intent protocol they all follow are described in Operations.swift.
//
// Memory. The server has about 1 MiB of heap, so the volume allocates once, at
// mount, a fixed set of block-sized buffers: the cache slots, one scratch
// buffer per role (bitmap, inode table, the three levels of a block-map path,
// file data, directory block, auxiliary) and the group descriptor table. Each
// role's buffer is used by exactly one layer, so a caller's buffer is never
// clobbered by a callee. Nothing else allocates.
//
// Cache. Write-through and never dirty: a block is written to the device first
// and only then copied into its slot, so the cache never holds a block that
// differs from the disk (if the write throws, the slot is dropped). It only
// saves reads: indirect blocks, bitmaps, inode table and directory blocks.
//
// Shape. The geometry (block size, group sizes, ...) and where each group's bitmaps
// and inode table are never change after the mount, and everything else is found
// through them; each request starts by checking both against checks taken at mount
// (`beginRequest`), so that a bit flipped by a fault in the server restarts it rather
// than aim reads and writes at the wrong blocks.
//
// Free counts. The group descriptors and the superblock's totals are kept in
// memory and written at the end of every operation that changed them. Free
// *block* counts are recomputed from the bitmap block each time a group's
// bitmap is written, which makes them self-healing. Free *inode* and used
// directory counts move by deltas when this run flips a bit; when a re-run
// finds its bit already flipped it reconciles the group against the bitmap
// instead (see Operations.swift for why deltas and not recomputation).

import FileSystemCore

/// Which scratch buffer. Each layer owns one or more and no other layer uses them.
enum Scratch: Int {
    case bitmap = 0, inodeTable, path1, path2, path3, data, directory, auxiliary, verify
    static let count = 9
}

/// The buffers a mounted volume owns (a class so that they are freed once).
final class VolumeMemory {
    let superblock: UnsafeMutableRawBufferPointer
    let descriptors: UnsafeMutableRawBufferPointer
    let scratch: UnsafeMutableRawBufferPointer
    let cache: UnsafeMutableRawBufferPointer
    let cacheTags: UnsafeMutableBufferPointer<UInt32>
    let cacheStamps: UnsafeMutableBufferPointer<UInt32>
    /// Each cached block's checksum and its block number, taken when it was filled.
    let cacheChecks: UnsafeMutableBufferPointer<UInt64>
    /// The request in which each slot was last found to match its checksum.
    let cacheVerified: UnsafeMutableBufferPointer<UInt64>
    /// Counts requests (`beginRequest`); 0 until the first, when every use verifies.
    var request: UInt64 = 0
    /// The geometry's check and the descriptors' locations check, taken at mount
    /// (`Geometry.check`, `Ext2Volume.locationsCheck`).
    var geometryCheck: UInt64 = 0
    var locationsCheck: UInt64 = 0
    var clock: UInt32 = 0
    static let noBlock = UInt32.max

    init(blockSize: Int, descriptorBytes: Int, cacheBlocks: Int) {
        superblock = .allocate(byteCount: SuperblockField.size, alignment: 16)
        descriptors = .allocate(byteCount: descriptorBytes, alignment: 16)
        scratch = .allocate(byteCount: Scratch.count * blockSize, alignment: 16)
        cache = .allocate(byteCount: max(cacheBlocks, 1) * blockSize, alignment: 16)
        cacheTags = .allocate(capacity: max(cacheBlocks, 1))
        cacheTags.initialize(repeating: Self.noBlock)
        cacheStamps = .allocate(capacity: max(cacheBlocks, 1))
        cacheStamps.initialize(repeating: 0)
        cacheChecks = .allocate(capacity: max(cacheBlocks, 1))
        cacheChecks.initialize(repeating: 0)
        cacheVerified = .allocate(capacity: max(cacheBlocks, 1))
        cacheVerified.initialize(repeating: 0)
        scratch.zero()
    }

    deinit {
        superblock.deallocate()
        descriptors.deallocate()
        scratch.deallocate()
        cache.deallocate()
        cacheTags.deallocate()
        cacheStamps.deallocate()
        cacheChecks.deallocate()
        cacheVerified.deallocate()
    }
}

/// The fixed shape of the volume, validated once at mount.
struct Geometry {
    var blockSize: Int
    var blockShift: Int
    var blocksCount: UInt32
    var firstDataBlock: UInt32
    var blocksPerGroup: UInt32
    var inodesPerGroup: UInt32
    var inodesCount: UInt32
    var inodeSize: Int
    var firstInode: UInt32
    var groupCount: Int
    var descriptorBlocks: Int
    var reservedDescriptorBlocks: Int
    var inodeTableBlocks: UInt32
    var pointersPerBlock: Int
    var pointerShift: Int
    var sparseSuper: Bool
    var fileType: Bool
    var largeFile: Bool
    /// The features present that Curio cannot write (none: the volume takes writes).
    var preventingWrites: Ext2Features
    /// Logical blocks a block map can address (12 + A + A^2 + A^3).
    var mappableBlocks: UInt64
    var maxFileSize: UInt64

    static let maxGroups = 8192

    /// Refuses what Curio cannot mount, most fundamental reason first, and features
    /// before any other field: an image of a later layout (`64bit`, `flex_bg`) can
    /// look inconsistent by ext2's rules when it is only different.
    init(superblock sb: UnsafeRawBufferPointer, deviceBytes: UInt64) throws(MountFailure) {
        let magic = sb.le16(SuperblockField.magic)
        guard magic == SuperblockField.magicValue else { throw .notExt2(magic: magic) }
        let revision = sb.le32(SuperblockField.revLevel)
        guard revision <= 1 else { throw .unsupportedRevision(revision) }
        let features = revision == 0 ? Ext2Features()
            : Ext2Features(compatible: sb.le32(SuperblockField.featureCompat),
                           incompatible: sb.le32(SuperblockField.featureIncompat),
                           readOnlyCompatible: sb.le32(SuperblockField.featureReadOnlyCompat))
        preventingWrites = features.preventingWrites
        guard features.preventingMount.isEmpty else {
            throw .unsupportedFeatures(features.preventingMount | preventingWrites)
        }
        let logBlockSize = sb.le32(SuperblockField.logBlockSize)
        guard logBlockSize <= 2 else { throw .unsupportedBlockSize(logBlockSize: logBlockSize) }
        blockShift = 10 + Int(logBlockSize)
        blockSize = 1 << blockShift
        blocksCount = sb.le32(SuperblockField.blocksCount)
        firstDataBlock = sb.le32(SuperblockField.firstDataBlock)
        guard firstDataBlock == (blockSize == 1024 ? 1 : 0) else { throw .corrupt }
        guard blocksCount > firstDataBlock + 8,
              UInt64(blocksCount) << UInt64(blockShift) <= deviceBytes else { throw .corrupt }
        blocksPerGroup = sb.le32(SuperblockField.blocksPerGroup)
        inodesPerGroup = sb.le32(SuperblockField.inodesPerGroup)
        guard blocksPerGroup >= 8, blocksPerGroup <= UInt32(8 * blockSize), blocksPerGroup % 8 == 0,
              inodesPerGroup >= 1, inodesPerGroup <= UInt32(8 * blockSize) else { throw .corrupt }
        let groups = (UInt64(blocksCount - firstDataBlock) + UInt64(blocksPerGroup) - 1) / UInt64(blocksPerGroup)
        guard groups >= 1, groups <= UInt64(Self.maxGroups) else { throw .corrupt }
        groupCount = Int(groups)
        inodesCount = sb.le32(SuperblockField.inodesCount)
        guard UInt64(inodesCount) == groups * UInt64(inodesPerGroup) else { throw .corrupt }
        if revision == 0 {
            inodeSize = Inode.size
            firstInode = 11
        } else {
            inodeSize = Int(sb.le16(SuperblockField.inodeSize))
            firstInode = sb.le32(SuperblockField.firstInode)
        }
        guard inodeSize >= Inode.size, inodeSize <= blockSize, inodeSize & (inodeSize - 1) == 0,
              firstInode > 2, firstInode <= inodesCount else { throw .corrupt }
        fileType = features.incompatible & Feature.fileType != 0
        sparseSuper = features.readOnlyCompatible & Feature.sparseSuper != 0
        largeFile = features.readOnlyCompatible & Feature.largeFile != 0
        descriptorBlocks = (groupCount * GroupField.size + blockSize - 1) / blockSize
        reservedDescriptorBlocks = features.compatible & Feature.resizeInode != 0
            ? Int(sb.le16(SuperblockField.reservedGDTBlocks)) : 0
        guard reservedDescriptorBlocks <= blockSize / 4 else { throw .corrupt }
        inodeTableBlocks = UInt32((Int(inodesPerGroup) * inodeSize + blockSize - 1) / blockSize)
        pointersPerBlock = blockSize / 4
        pointerShift = blockShift - 2
        let a = UInt64(pointersPerBlock)
        mappableBlocks = 12 + a + a * a + a * a * a
        // i_blocks is 32 bits of 512-byte sectors; keep well inside it.
        let sectorLimit = (UInt64(UInt32.max) << 9) - UInt64(blockSize) * (4 + a)
        maxFileSize = min(mappableBlocks << UInt64(blockShift), sectorLimit)
        if !largeFile { maxFileSize = min(maxFileSize, UInt64(Int32.max)) }
    }

    var writable: Bool { preventingWrites.isEmpty }

    /// `WordHash` over every field, as `cacheCheck` hashes a block. The geometry is not
    /// where the blocks are: a bit flipped in the server's memory (the volume's state
    /// object, on its heap) can land here and aim every later read and write at the
    /// wrong block. `beginRequest` compares it with the check taken at mount.
    var check: UInt64 {
        var hash = WordHash()
        // Every Int whole: a flip in the high half of one is as harmful as in the low.
        hash.add(UInt64(bitPattern: Int64(blockSize)))
        hash.add(UInt64(bitPattern: Int64(blockShift)))
        hash.add(UInt64(blocksCount) | UInt64(firstDataBlock) << 32)
        hash.add(UInt64(blocksPerGroup) | UInt64(inodesPerGroup) << 32)
        hash.add(UInt64(inodesCount) | UInt64(firstInode) << 32)
        hash.add(UInt64(bitPattern: Int64(inodeSize)))
        hash.add(UInt64(bitPattern: Int64(groupCount)))
        hash.add(UInt64(bitPattern: Int64(descriptorBlocks)))
        hash.add(UInt64(bitPattern: Int64(reservedDescriptorBlocks)))
        hash.add(UInt64(inodeTableBlocks) | UInt64(preventingWrites.compatible) << 32)
        hash.add(UInt64(bitPattern: Int64(pointersPerBlock)))
        hash.add(UInt64(bitPattern: Int64(pointerShift)))
        hash.add(UInt64(preventingWrites.incompatible) | UInt64(preventingWrites.readOnlyCompatible) << 32)
        hash.add((sparseSuper ? 1 : 0) | (fileType ? 2 : 0) | (largeFile ? 4 : 0))
        hash.add(mappableBlocks)
        hash.add(maxFileSize)
        return hash.value
    }

    func groupStart(_ group: Int) -> UInt32 { firstDataBlock + UInt32(group) * blocksPerGroup }
    func blocksInGroup(_ group: Int) -> Int {
        Int(min(blocksPerGroup, blocksCount - groupStart(group)))
    }
    func group(ofBlock block: UInt32) -> Int { Int((block - firstDataBlock) / blocksPerGroup) }

    /// Whether group `group` carries a superblock and descriptor table copy.
    func hasSuperblockCopy(_ group: Int) -> Bool {
        if group <= 1 || !sparseSuper { return true }
        return Self.isPower(group, of: 3) || Self.isPower(group, of: 5) || Self.isPower(group, of: 7)
    }

    private static func isPower(_ value: Int, of base: Int) -> Bool {
        var power = base
        while power < value { power *= base }
        return power == value
    }

    /// Blocks at the start of `group` that hold superblock/descriptor copies.
    func headerBlocks(_ group: Int) -> UInt32 {
        hasSuperblockCopy(group) ? UInt32(1 + descriptorBlocks + reservedDescriptorBlocks) : 0
    }
}

/// A mounted volume's state. A class, so that `Ext2Volume` is one reference: the
/// engine's helpers that do not change the volume take `self` borrowed, and a struct
/// of 217 bytes was copied to the stack for each such call (twice per block read,
/// about a seventh of the server's instructions while writing a file).
final class VolumeState<Device: BlockDevice> {
    var device: Device
    var now: UInt32 = 0
    /// A `var` only so that a test can damage it in place (`VolumeIntegrityTests`).
    var geometry: Geometry
    let memory: VolumeMemory
    let interrupted: InterruptedUpdates
    let cacheSlots: Int
    var freeBlocksTotal: UInt64 = 0
    var freeInodesTotal: UInt64 = 0
    var superblockDirty = false

    init(device: Device, geometry: Geometry, memory: VolumeMemory, interrupted: InterruptedUpdates, cacheSlots: Int) {
        self.device = device
        self.geometry = geometry
        self.memory = memory
        self.interrupted = interrupted
        self.cacheSlots = cacheSlots
    }
}

public struct Ext2Volume<Device: BlockDevice> {
    let state: VolumeState<Device>

    public var device: Device {
        get { state.device }
        nonmutating _modify { yield &state.device }
    }
    /// Seconds, for timestamps; the caller keeps it current.
    public var now: UInt32 {
        get { state.now }
        nonmutating set { state.now = newValue }
    }
    var geometry: Geometry { state.geometry }
    var memory: VolumeMemory { state.memory }
    /// The interrupted updates of other clients: the server's, not this mount's.
    var interrupted: InterruptedUpdates { state.interrupted }
    var cacheSlots: Int { state.cacheSlots }
    var freeBlocksTotal: UInt64 {
        get { state.freeBlocksTotal }
        nonmutating set { state.freeBlocksTotal = newValue }
    }
    var freeInodesTotal: UInt64 {
        get { state.freeInodesTotal }
        nonmutating set { state.freeInodesTotal = newValue }
    }
    var superblockDirty: Bool {
        get { state.superblockDirty }
        nonmutating set { state.superblockDirty = newValue }
    }

    /// Mounts: reads and validates the superblock and every group descriptor,
    /// and the root inode. Refuses images needing features this engine lacks, saying
    /// which (MountStatus.swift has the policy); mounts read-only when it cannot
    /// write them safely (`isWritable`, `featuresPreventingWrites`).
    /// `interrupted`: the updates whose re-runs allocation must leave room for; a
    /// server passes the one table it keeps across all its mounts.
    public init(device: Device, cacheBlocks: Int,
                interrupted: InterruptedUpdates = InterruptedUpdates()) throws(MountFailure) {
        var device = device
        let probe = UnsafeMutableRawBufferPointer.allocate(byteCount: SuperblockField.size, alignment: 16)
        defer { probe.deallocate() }
        guard device.byteCount >= 2 * UInt64(SuperblockField.size) + UInt64(SuperblockField.byteOffset) else {
            throw .corrupt
        }
        do throws(FileSystemError) {
            try device.read(at: SuperblockField.byteOffset, into: probe)
        } catch {
            throw Self.mountFailure(error)
        }
        let geometry = try Geometry(superblock: UnsafeRawBufferPointer(probe), deviceBytes: device.byteCount)
        let memory = VolumeMemory(blockSize: geometry.blockSize,
                                  descriptorBytes: geometry.descriptorBlocks * geometry.blockSize,
                                  cacheBlocks: cacheBlocks)
        memory.superblock.copyMemory(from: UnsafeRawBufferPointer(probe))
        memory.geometryCheck = geometry.check
        state = VolumeState(device: device, geometry: geometry, memory: memory, interrupted: interrupted,
                            cacheSlots: max(cacheBlocks, 0))
        do throws(FileSystemError) {
            for index in 0..<geometry.descriptorBlocks {
                let block = geometry.firstDataBlock + 1 + UInt32(index)
                let slice = UnsafeMutableRawBufferPointer(rebasing: memory.descriptors[(index * geometry.blockSize)...]
                    .prefix(geometry.blockSize))
                try self.device.read(at: UInt64(block) << UInt64(geometry.blockShift), into: slice)
            }
            try validateDescriptors()
            memory.locationsCheck = locationsCheck
            let sb = UnsafeRawBufferPointer(memory.superblock)
            superblockDirty = UInt64(sb.le32(SuperblockField.freeBlocksCount)) != freeBlocksTotal
                || UInt64(sb.le32(SuperblockField.freeInodesCount)) != freeInodesTotal
            let root = try readInode(InodeNumber.root.rawValue)
            guard root.isInUse, root.isDirectory else { throw .corrupt }
        } catch {
            throw Self.mountFailure(error)
        }
    }

    /// A mount that stopped on a read: the device failed, or what it holds is damaged.
    static func mountFailure(_ error: FileSystemError) -> MountFailure {
        error == .ioError ? .unreadable : .corrupt
    }

    private mutating func validateDescriptors() throws(FileSystemError) {
        let g = state.geometry
        for group in 0..<g.groupCount {
            let start = g.groupStart(group)
            let end = start + UInt32(g.blocksInGroup(group))
            let header = start + g.headerBlocks(group)
            let blockBitmap = descriptorField(group, GroupField.blockBitmap)
            let inodeBitmap = descriptorField(group, GroupField.inodeBitmap)
            let table = descriptorField(group, GroupField.inodeTable)
            guard blockBitmap >= header, blockBitmap < end, inodeBitmap >= header, inodeBitmap < end,
                  blockBitmap != inodeBitmap,
                  table >= header, table <= end, end - table >= g.inodeTableBlocks,
                  blockBitmap < table || blockBitmap >= table + g.inodeTableBlocks,
                  inodeBitmap < table || inodeBitmap >= table + g.inodeTableBlocks else { throw .corrupt }
            let freeBlocks = descriptorCount(group, GroupField.freeBlocks)
            let freeInodes = descriptorCount(group, GroupField.freeInodes)
            guard freeBlocks <= g.blocksInGroup(group), freeInodes <= Int(g.inodesPerGroup),
                  descriptorCount(group, GroupField.usedDirectories) <= Int(g.inodesPerGroup) else { throw .corrupt }
            freeBlocksTotal += UInt64(freeBlocks)
            freeInodesTotal += UInt64(freeInodes)
        }
    }

    public var statistics: VolumeStatistics {
        VolumeStatistics(blockSize: UInt32(geometry.blockSize), totalBlocks: UInt64(geometry.blocksCount),
                         freeBlocks: freeBlocksTotal, totalInodes: geometry.inodesCount,
                         freeInodes: UInt32(truncatingIfNeeded: freeInodesTotal))
    }

    /// Fewer free blocks than one step of a write may need: a write may stop short.
    public var isNearlyFull: Bool { freeBlocksTotal < UInt64(Ext2Intent.reservationCapacity) }

    /// Whether the volume accepts writes (no unknown ro_compat/compat features).
    public var isWritable: Bool { geometry.writable }

    /// The features that make the volume read-only (empty when it is writable).
    public var featuresPreventingWrites: Ext2Features { geometry.preventingWrites }

    // MARK: Descriptor access

    func descriptorField(_ group: Int, _ field: Int) -> UInt32 {
        UnsafeRawBufferPointer(memory.descriptors).le32(group * GroupField.size + field)
    }
    func descriptorCount(_ group: Int, _ field: Int) -> Int {
        Int(UnsafeRawBufferPointer(memory.descriptors).le16(group * GroupField.size + field))
    }
    func setDescriptorCount(_ group: Int, _ field: Int, _ value: Int) {
        memory.descriptors.setLE16(group * GroupField.size + field, UInt16(clamping: max(value, 0)))
    }

    /// A check over where every group's bitmaps and inode table are, which nothing
    /// changes after the mount (the counts beside them change, and are reconciled
    /// against the bitmaps instead). A flipped bit in one of them would send every
    /// inode read of the group to another block: to the clients, every handle stale,
    /// every directory empty, with the disk itself intact.
    var locationsCheck: UInt64 {
        var hash = WordHash()
        for group in 0..<geometry.groupCount {
            hash.add(UInt64(descriptorField(group, GroupField.blockBitmap))
                     | UInt64(descriptorField(group, GroupField.inodeBitmap)) << 32)
            hash.add(UInt64(descriptorField(group, GroupField.inodeTable)))
        }
        return hash.value
    }

    /// Writes the descriptor-table block that holds `group`'s descriptor.
    mutating func writeDescriptor(of group: Int) throws(FileSystemError) {
        let index = group * GroupField.size / geometry.blockSize
        let slice = UnsafeRawBufferPointer(rebasing: memory.descriptors[(index * geometry.blockSize)...]
            .prefix(geometry.blockSize))
        try writeRaw(geometry.firstDataBlock + 1 + UInt32(index), from: slice)
    }

    // MARK: Block validation

    /// Whether `block` may hold file data, an indirect block or a directory
    /// block: inside the volume and not group metadata.
    func isDataBlock(_ block: UInt32) -> Bool {
        let g = state.geometry
        guard block >= g.firstDataBlock, block < g.blocksCount else { return false }
        let group = g.group(ofBlock: block)
        if block < g.groupStart(group) + g.headerBlocks(group) { return false }
        if block == descriptorField(group, GroupField.blockBitmap)
            || block == descriptorField(group, GroupField.inodeBitmap) { return false }
        let table = descriptorField(group, GroupField.inodeTable)
        return block < table || block >= table + g.inodeTableBlocks
    }

    func checkDataBlock(_ block: UInt32) throws(FileSystemError) {
        guard isDataBlock(block) else { throw .corrupt }
    }

    // MARK: Block I/O through the cache

    func buffer(_ which: Scratch) -> UnsafeMutableRawBufferPointer {
        let size = geometry.blockSize
        return UnsafeMutableRawBufferPointer(rebasing: memory.scratch[(which.rawValue * size)...].prefix(size))
    }

    private func cacheSlot(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        let size = geometry.blockSize
        return UnsafeMutableRawBufferPointer(rebasing: memory.cache[(slot * size)...].prefix(size))
    }

    /// The slot caching `block`, if it is cached and still holds what was cached: a
    /// slot whose bytes no longer match their checksum (a bit flipped in the server's
    /// memory) is dropped, and the block is read from the disk again (writes go
    /// through, so the disk has it right). A slot is verified at its first use in each
    /// request (`beginRequest`), not at every use: a request uses the same bitmap and
    /// indirect blocks again and again, and each check reads the whole block (a fifth
    /// of the server's work). A flip between two uses in one request goes unseen, as
    /// one in a scratch buffer the block was copied to always did.
    private func findCached(_ block: UInt32) -> Int? {
        for slot in 0..<cacheSlots where memory.cacheTags[slot] == block {
            if memory.request != 0 && memory.cacheVerified[slot] == memory.request { return slot }
            if memory.cacheChecks[slot] == cacheCheck(slot, block: block) {
                memory.cacheVerified[slot] = memory.request
                return slot
            }
            memory.cacheTags[slot] = VolumeMemory.noBlock
            return nil
        }
        return nil
    }

    /// Starts a request: every cached block is verified again at its first use, and
    /// the geometry and every group's bitmap and inode table locations now
    /// (`internalInconsistency` if they changed since the mount: the server restarts
    /// and mounts afresh rather than act on them).
    public mutating func beginRequest() throws(FileSystemError) {
        guard geometry.check == memory.geometryCheck, locationsCheck == memory.locationsCheck else {
            throw .internalInconsistency
        }
        memory.request &+= 1
        if memory.request == 0 { memory.request = 1 }
    }

    /// `WordHash` over the slot's words, seeded with the block number.
    private func cacheCheck(_ slot: Int, block: UInt32) -> UInt64 {
        let bytes = UnsafeRawBufferPointer(cacheSlot(slot))
        var hash = WordHash(seed: UInt64(block))
        var offset = 0
        while offset < bytes.count {
            hash.add(bytes.load(fromByteOffset: offset, as: UInt64.self))
            offset += 8
        }
        return hash.value
    }

    private func fill(_ slot: Int, with block: UInt32) {
        memory.cacheVerified[slot] = memory.request
        memory.cacheChecks[slot] = cacheCheck(slot, block: block)
        memory.cacheTags[slot] = block
    }

    private func victimSlot() -> Int {
        var best = 0
        for slot in 0..<cacheSlots {
            if memory.cacheTags[slot] == VolumeMemory.noBlock { return slot }
            if memory.cacheStamps[slot] &- memory.clock < memory.cacheStamps[best] &- memory.clock { best = slot }
        }
        return best
    }

    private func touch(_ slot: Int) {
        memory.clock &+= 1
        memory.cacheStamps[slot] = memory.clock
    }

    /// Reads `block` (validated by the caller to be inside the volume) into a scratch buffer.
    mutating func readBlock(_ block: UInt32, into which: Scratch) throws(FileSystemError) {
        try readBlock(block, into: buffer(which))
    }

    mutating func readBlock(_ block: UInt32, into target: UnsafeMutableRawBufferPointer) throws(FileSystemError) {
        guard block < geometry.blocksCount else { throw .corrupt }
        if let slot = findCached(block) {
            touch(slot)
            target.copyMemory(from: UnsafeRawBufferPointer(cacheSlot(slot)))
            return
        }
        let offset = UInt64(block) << UInt64(geometry.blockShift)
        guard cacheSlots > 0 else {
            try device.read(at: offset, into: target)
            return
        }
        let slot = victimSlot()
        memory.cacheTags[slot] = VolumeMemory.noBlock
        try device.read(at: offset, into: cacheSlot(slot))
        fill(slot, with: block)
        touch(slot)
        target.copyMemory(from: UnsafeRawBufferPointer(cacheSlot(slot)))
    }

    /// The most one device request moves (`BlockDevice`).
    static var maxTransferBytes: Int { 4096 }

    /// Reads the blocks from `first` on, as many as fill `target` (at most
    /// `maxTransferBytes`), straight from the disk in one request, past the cache.
    mutating func readBlocksUncached(_ first: UInt32, into target: UnsafeMutableRawBufferPointer)
        throws(FileSystemError) {
        let count = target.count >> geometry.blockShift
        guard count >= 1, count << geometry.blockShift == target.count, target.count <= Self.maxTransferBytes,
              UInt64(first) + UInt64(count) <= UInt64(geometry.blocksCount) else { throw .corrupt }
        try device.read(at: UInt64(first) << UInt64(geometry.blockShift), into: target)
    }

    mutating func writeBlock(_ block: UInt32, from which: Scratch) throws(FileSystemError) {
        try checkRole(of: block, writtenFrom: which)
        try writeRaw(block, from: UnsafeRawBufferPointer(buffer(which)))
    }

    /// The last look before a block goes to the disk: the buffer it comes from says
    /// what kind of block it is, and the block number must agree — a bitmap buffer goes
    /// to a bitmap block, an inode-table buffer into an inode table, and anything else
    /// (file data, indirect and directory blocks) to a data block that is allocated.
    /// A block number damaged inside the server (a flipped register, a flipped bit in
    /// memory) would otherwise overwrite metadata or a free block without a trace; the
    /// server restarts instead, and the interrupted update is run again.
    mutating func checkRole(of block: UInt32, writtenFrom which: Scratch) throws(FileSystemError) {
        let g = state.geometry
        guard block >= g.firstDataBlock, block < g.blocksCount else { throw .internalInconsistency }
        let group = g.group(ofBlock: block)
        switch which {
        case .bitmap:
            guard block == descriptorField(group, GroupField.blockBitmap)
                || block == descriptorField(group, GroupField.inodeBitmap) else { throw .internalInconsistency }
        case .inodeTable:
            let table = descriptorField(group, GroupField.inodeTable)
            guard block >= table, block < table + g.inodeTableBlocks else { throw .internalInconsistency }
        default:
            guard isDataBlock(block) else { throw .internalInconsistency }
            if which == .path1 || which == .path2 || which == .path3 {
                try checkPointers(UnsafeRawBufferPointer(buffer(which)), count: g.pointersPerBlock)
            }
            try readBlock(descriptorField(group, GroupField.blockBitmap), into: .verify)
            guard Self.testBit(buffer(.verify), Int(block - g.groupStart(group))) else { throw .internalInconsistency }
        }
    }

    /// The role check of `count` data blocks from `first` on, written together: each
    /// an allocated data block, with one bitmap read per group they cross.
    mutating func checkDataRun(_ first: UInt32, count: Int) throws(FileSystemError) {
        let g = state.geometry
        var index = 0
        while index < count {
            let block = first &+ UInt32(index)
            guard block >= g.firstDataBlock, block < g.blocksCount else { throw .internalInconsistency }
            let group = g.group(ofBlock: block)
            try readBlock(descriptorField(group, GroupField.blockBitmap), into: .verify)
            while index < count, first &+ UInt32(index) < g.blocksCount, g.group(ofBlock: first &+ UInt32(index)) == group {
                let next = first &+ UInt32(index)
                guard isDataBlock(next), Self.testBit(buffer(.verify), Int(next - g.groupStart(group))) else {
                    throw .internalInconsistency
                }
                index += 1
            }
        }
    }

    /// The pointers of an indirect block or of an inode about to be written: each a
    /// hole or a data block, and none twice. A wild store into the buffer, or a flipped
    /// register that linked one block at two positions, would otherwise reach the disk
    /// as a file that points into metadata or shares its own blocks.
    /// Duplicates are found by sorting a copy in the `.verify` buffer (free until the
    /// role check reads the bitmap into it): comparing every pair cost an eighth more
    /// per KiB written.
    func checkPointers(_ words: UnsafeRawBufferPointer, count: Int) throws(FileSystemError) {
        let sorted = buffer(.verify)
        var used = 0
        for index in 0..<count {
            let pointer = words.le32(4 * index)
            if pointer == 0 { continue }
            guard isDataBlock(pointer) else { throw .internalInconsistency }
            sorted.storeBytes(of: pointer, toByteOffset: 4 * used, as: UInt32.self)
            used += 1
        }
        let distinct = sorted.withMemoryRebound(to: UInt32.self) { pointers in
            var live = UnsafeMutableBufferPointer(rebasing: pointers[0..<used])
            live.sort()
            for index in live.indices.dropFirst() where live[index] == live[index - 1] { return false }
            return true
        }
        guard distinct else { throw .internalInconsistency }
    }

    /// Write-through: the device first, then the cached copy (if any).
    /// Writes whole blocks from `first` on (at most `maxTransferBytes`) in one
    /// device request; cached copies of them are dropped first.
    mutating func writeRawRun(_ first: UInt32, from source: UnsafeRawBufferPointer) throws(FileSystemError) {
        let count = source.count >> geometry.blockShift
        guard count >= 1, count << geometry.blockShift == source.count, source.count <= Self.maxTransferBytes,
              UInt64(first) + UInt64(count) <= UInt64(geometry.blocksCount) else { throw .corrupt }
        if count == 1 {
            try writeRaw(first, from: source)
            return
        }
        for slot in 0..<cacheSlots where memory.cacheTags[slot] >= first && memory.cacheTags[slot] - first < UInt32(count) {
            memory.cacheTags[slot] = VolumeMemory.noBlock
        }
        try device.write(at: UInt64(first) << UInt64(geometry.blockShift), from: source)
    }

    mutating func writeRaw(_ block: UInt32, from source: UnsafeRawBufferPointer) throws(FileSystemError) {
        guard block < geometry.blocksCount, source.count == geometry.blockSize else { throw .corrupt }
        let slot = findCached(block)
        if let slot { memory.cacheTags[slot] = VolumeMemory.noBlock }
        try device.write(at: UInt64(block) << UInt64(geometry.blockShift), from: source)
        if let slot {
            cacheSlot(slot).copyMemory(from: source)
            fill(slot, with: block)
        }
    }

    // MARK: Inodes

    private func inodeLocation(_ number: UInt32) throws(FileSystemError) -> (block: UInt32, offset: Int) {
        guard number >= 1, number <= geometry.inodesCount else { throw .corrupt }
        let index = Int(number - 1)
        let group = index / Int(geometry.inodesPerGroup)
        let byte = (index % Int(geometry.inodesPerGroup)) * geometry.inodeSize
        let block = descriptorField(group, GroupField.inodeTable) + UInt32(byte >> geometry.blockShift)
        return (block, byte & (geometry.blockSize - 1))
    }

    mutating func readInode(_ number: UInt32) throws(FileSystemError) -> Inode {
        let location = try inodeLocation(number)
        try readBlock(location.block, into: .inodeTable)
        var inode = Inode()
        let source = UnsafeRawBufferPointer(rebasing: buffer(.inodeTable)[location.offset...].prefix(Inode.size))
        withUnsafeMutableBytes(of: &inode.raw) { $0.copyMemory(from: source) }
        return inode
    }

    /// Writes the first 128 bytes of an inode. A `fresh` inode (just allocated)
    /// also gets its large-inode tail zeroed, with i_extra_isize as mke2fs sets it.
    mutating func writeInode(_ number: UInt32, _ inode: Inode, fresh: Bool = false) throws(FileSystemError) {
        // Inodes below s_first_ino other than the root are ext2's reserved ones (bad
        // blocks, journal, resize, ...), which Curio never changes: a write to one is a
        // file's inode number damaged on its way here (a soak's stack flip turned 12
        // into 8 and left file 12's old block map pointing at blocks it had freed).
        guard number == InodeNumber.root.rawValue || number >= geometry.firstInode else {
            throw .internalInconsistency
        }
        let location = try inodeLocation(number)
        try readBlock(location.block, into: .inodeTable)
        let table = buffer(.inodeTable)
        withUnsafeBytes(of: inode.raw) { bytes in
            UnsafeMutableRawBufferPointer(rebasing: table[location.offset...].prefix(Inode.size)).copyMemory(from: bytes)
        }
        if fresh && geometry.inodeSize > Inode.size {
            UnsafeMutableRawBufferPointer(rebasing: table[(location.offset + Inode.size)...]
                .prefix(geometry.inodeSize - Inode.size)).zero()
            if geometry.inodeSize >= Inode.size + 32 { table.setLE16(location.offset + Inode.size, 32) }
        }
        let kind = table.le16(location.offset) & 0xF000
        if kind == 0x8000 || kind == 0x4000 {
            try checkPointers(UnsafeRawBufferPointer(rebasing: table[(location.offset + 40)...].prefix(60)), count: 15)
        }
        // i_faddr: no ext2 ever used fragments, and e2fsck calls any other value damage
        // (a soak's stack flip wrote 16384 there).
        guard table.le32(location.offset + Inode.fragmentAddressOffset) == 0 else { throw .internalInconsistency }
        try checkInodeTableChange(location, inode, fresh: fresh)
        try writeBlock(location.block, from: .inodeTable)
    }

    /// The inode-table block in `.inodeTable` about to be written holds `inode` where
    /// it belongs and, everywhere else, what the disk holds (a fresh inode's zeroed tail
    /// aside): a stray store into the buffer would otherwise rewrite another file's inode.
    ///
    /// And the slot is this file's: an update replaces an inode of the same generation,
    /// a fresh inode a free slot (or its own, when an interrupted create runs again).
    /// A damaged inode number would otherwise put one file's inode over another's, and
    /// leave the first file's old block map on the disk.
    mutating func checkInodeTableChange(_ location: (block: UInt32, offset: Int), _ inode: Inode,
                                                fresh: Bool) throws(FileSystemError) {
        try readBlock(location.block, into: .verify)
        let new = buffer(.inodeTable)
        let old = buffer(.verify)
        var previous = Inode()
        withUnsafeMutableBytes(of: &previous.raw) {
            $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: old[location.offset...].prefix(Inode.size)))
        }
        let sameFile = previous.generation == inode.generation
        guard sameFile || (fresh && !previous.isInUse) else { throw .internalInconsistency }
        let mine = location.offset..<(location.offset + (fresh ? geometry.inodeSize : Inode.size))
        var offset = 0
        while offset < new.count {
            if !mine.contains(offset),
               new.load(fromByteOffset: offset, as: UInt64.self) != old.load(fromByteOffset: offset, as: UInt64.self) {
                throw .internalInconsistency
            }
            offset += 8
        }
        let same = withUnsafeBytes(of: inode.raw) { bytes in
            bytes.elementsEqual(UnsafeRawBufferPointer(rebasing: new[location.offset...].prefix(Inode.size)))
        }
        guard same else { throw .internalInconsistency }
    }

    /// Reads an inode that must be a live file (not freed): operations on a
    /// freed inode get `.staleHandle`.
    mutating func liveInode(_ number: UInt32) throws(FileSystemError) -> Inode {
        guard number >= 1, number <= geometry.inodesCount else { throw .noSuchFile }
        let inode = try readInode(number)
        guard inode.isInUse else { throw .staleHandle }
        return inode
    }

    // MARK: Bitmaps and counts

    @inline(__always) static func testBit(_ bitmap: UnsafeMutableRawBufferPointer, _ index: Int) -> Bool {
        bitmap[index >> 3] & (1 << UInt8(index & 7)) != 0
    }
    @inline(__always) static func setBit(_ bitmap: UnsafeMutableRawBufferPointer, _ index: Int, _ value: Bool) {
        if value { bitmap[index >> 3] |= 1 << UInt8(index & 7) } else { bitmap[index >> 3] &= ~(1 << UInt8(index & 7)) }
    }

    /// Clear bits among the first `count` bits of a bitmap block.
    static func countClear(_ bitmap: UnsafeMutableRawBufferPointer, _ count: Int) -> Int {
        var used = 0
        let words = count / 64
        for word in 0..<words {
            used += bitmap.loadUnaligned(fromByteOffset: word * 8, as: UInt64.self).nonzeroBitCount
        }
        for index in (words * 64)..<count where testBit(bitmap, index) { used += 1 }
        return count - used
    }

    /// Sets (allocate) or clears (free) the bits of `blocks`, one bitmap write per
    /// group that changes, and brings each touched group's free-block count in
    /// line with its bitmap. Bits already in the wanted state are left alone, so
    /// a re-run repeats nothing; but blocks this run chose as free (`everyBitFlips`)
    /// must all be free still: one already in use means the reservation was damaged
    /// in memory since (a flipped bit turned a chosen block into another file's).
    mutating func commitBlockBits(_ intent: Ext2Intent, allocate: Bool, everyBitFlips: Bool = false)
        throws(FileSystemError) {
        let count = intent.reservationCount
        for first in 0..<count {
            let anchor = intent.reservedBlock(first)
            guard isDataBlock(anchor) else { throw .corrupt }
            let group = geometry.group(ofBlock: anchor)
            var seenBefore = false
            for earlier in 0..<first where geometry.group(ofBlock: intent.reservedBlock(earlier)) == group {
                seenBefore = true
            }
            if seenBefore { continue }
            let bitmapBlock = descriptorField(group, GroupField.blockBitmap)
            try readBlock(bitmapBlock, into: .bitmap)
            let bitmap = buffer(.bitmap)
            var flipped = InlineArray<20, Int>(repeating: 0)
            var flips = 0
            for index in first..<count {
                let block = intent.reservedBlock(index)
                guard isDataBlock(block), geometry.group(ofBlock: block) == group else { continue }
                let bit = Int(block - geometry.groupStart(group))
                if Self.testBit(bitmap, bit) != allocate {
                    Self.setBit(bitmap, bit, allocate)
                    flipped[flips] = bit
                    flips += 1
                } else if everyBitFlips {
                    throw .internalInconsistency
                }
            }
            if flips > 0 {
                try checkBitmapChange(bitmapBlock, flips: flips) { bit in
                    for index in 0..<flips where flipped[index] == bit { return true }
                    return false
                }
                try writeBlock(bitmapBlock, from: .bitmap)
            }
            try reconcileBlockCount(group)
        }
    }

    /// The bitmap in `.bitmap` about to be written over `block` differs from what the
    /// disk holds in exactly the `flips` bits this step meant to flip (`meant`), and
    /// no other: a bit flipped elsewhere in the buffer by a fault in the server would
    /// mark a free block used for good, or a used one free for the next file to take.
    mutating func checkBitmapChange(_ block: UInt32, flips: Int, meant: (Int) -> Bool) throws(FileSystemError) {
        try readBlock(block, into: .verify)
        let new = buffer(.bitmap)
        let old = buffer(.verify)
        var differing = 0
        var offset = 0
        while offset < new.count {
            var change = new.load(fromByteOffset: offset, as: UInt64.self) ^ old.load(fromByteOffset: offset, as: UInt64.self)
            differing += change.nonzeroBitCount
            while change != 0 {
                let bit = offset * 8 + change.trailingZeroBitCount
                guard meant(bit) else { throw .internalInconsistency }
                change &= change - 1
            }
            offset += 8
        }
        guard differing == flips else { throw .internalInconsistency }
    }

    /// Sets the group's free-block count from its bitmap (in the `.bitmap` buffer).
    mutating func reconcileBlockCount(_ group: Int) throws(FileSystemError) {
        let free = Self.countClear(buffer(.bitmap), geometry.blocksInGroup(group))
        let old = descriptorCount(group, GroupField.freeBlocks)
        guard free != old else { return }
        setDescriptorCount(group, GroupField.freeBlocks, free)
        freeBlocksTotal = Self.adjusted(freeBlocksTotal, from: old, to: free)
        superblockDirty = true
        try writeDescriptor(of: group)
    }

    /// A total after one group's count moved from `old` to `new`.
    static func adjusted(_ total: UInt64, from old: Int, to new: Int) -> UInt64 {
        let raised = total + UInt64(new)
        return raised >= UInt64(old) ? raised - UInt64(old) : 0
    }

    /// Marks inode `number` used or free. If this run flips the bit, the group's
    /// free-inode and directory counts move by one; if the bit is already in the
    /// wanted state (a re-run), the counts are reconciled with the bitmap and the
    /// directory count moves only if the free count had not moved yet.
    mutating func commitInodeBit(_ number: UInt32, allocate: Bool, directory: Bool) throws(FileSystemError) {
        guard number >= 1, number <= geometry.inodesCount else { throw .corrupt }
        let group = Int((number - 1) / geometry.inodesPerGroup)
        let bit = Int((number - 1) % geometry.inodesPerGroup)
        let bitmapBlock = descriptorField(group, GroupField.inodeBitmap)
        try readBlock(bitmapBlock, into: .bitmap)
        let bitmap = buffer(.bitmap)
        let oldFree = descriptorCount(group, GroupField.freeInodes)
        var newFree = oldFree
        if Self.testBit(bitmap, bit) != allocate {
            Self.setBit(bitmap, bit, allocate)
            try checkBitmapChange(bitmapBlock, flips: 1) { $0 == bit }
            try writeBlock(bitmapBlock, from: .bitmap)
            newFree = allocate ? oldFree - 1 : oldFree + 1
            newFree = min(max(newFree, 0), Int(geometry.inodesPerGroup))
        } else {
            newFree = Self.countClear(bitmap, Int(geometry.inodesPerGroup))
        }
        guard newFree != oldFree else { return }
        setDescriptorCount(group, GroupField.freeInodes, newFree)
        if directory {
            let dirs = descriptorCount(group, GroupField.usedDirectories)
            setDescriptorCount(group, GroupField.usedDirectories, allocate ? dirs + 1 : dirs - 1)
        }
        freeInodesTotal = Self.adjusted(freeInodesTotal, from: oldFree, to: newFree)
        superblockDirty = true
        try writeDescriptor(of: group)
    }

    mutating func isInodeAllocated(_ number: UInt32) throws(FileSystemError) -> Bool {
        guard number >= 1, number <= geometry.inodesCount else { throw .corrupt }
        let group = Int((number - 1) / geometry.inodesPerGroup)
        try readBlock(descriptorField(group, GroupField.inodeBitmap), into: .bitmap)
        return Self.testBit(buffer(.bitmap), Int((number - 1) % geometry.inodesPerGroup))
    }

    mutating func isBlockAllocated(_ block: UInt32) throws(FileSystemError) -> Bool {
        try checkDataBlock(block)
        let group = geometry.group(ofBlock: block)
        try readBlock(descriptorField(group, GroupField.blockBitmap), into: .bitmap)
        return Self.testBit(buffer(.bitmap), Int(block - geometry.groupStart(group)))
    }

    // MARK: Interrupted operations of other clients

    /// Tells the volume about an operation that was interrupted by a crash and will
    /// be re-run later: until that re-run ends, nothing else may allocate the blocks
    /// and inodes its intent names. (Without this, a re-run could find "its" block
    /// taken by someone else in between.) Held in the shared `InterruptedUpdates`.
    public func adoptInterrupted(_ intent: Ext2Intent) {
        interrupted.adopt(intent)
    }

    /// Drops an adopted intent (its operation finished or was abandoned).
    public func forgetInterrupted(tag: UInt64) {
        interrupted.forget(tag: tag)
    }

    func isBlockHeldByOthers(_ block: UInt32, tag: UInt64) -> Bool {
        interrupted.holdsBlock(block, otherThan: tag)
    }

    func isInodeHeldByOthers(_ number: UInt32, tag: UInt64) -> Bool {
        interrupted.holdsInode(number, otherThan: tag)
    }

    // MARK: Allocation choices (no writes)

    /// Picks `count` free blocks, starting at `goal`, that no adopted intent
    /// holds, and records them as the intent's allocation reservation.
    mutating func chooseBlocks(_ count: Int, goal: UInt32, for inode: UInt32, chunk: UInt32,
                               intent: inout Ext2Intent) throws(FileSystemError) {
        intent.clearReservation()
        guard count > 0 else { return }
        guard count <= Ext2Intent.reservationCapacity else { throw .corrupt }
        let g = state.geometry
        let goalBlock = goal >= g.firstDataBlock && goal < g.blocksCount ? goal : g.firstDataBlock
        let goalGroup = g.group(ofBlock: goalBlock)
        var found = 0
        for step in 0...g.groupCount {
            let group = (goalGroup + step) % g.groupCount
            let wrapped = step == g.groupCount
            if descriptorCount(group, GroupField.freeBlocks) == 0 { continue }
            try readBlock(descriptorField(group, GroupField.blockBitmap), into: .bitmap)
            let bitmap = buffer(.bitmap)
            let limit = g.blocksInGroup(group)
            let startBit = step == 0 || wrapped ? Int(goalBlock - g.groupStart(goalGroup)) : 0
            let range = wrapped ? 0..<startBit : startBit..<limit
            var bit = range.lowerBound
            while bit < range.upperBound {
                if bit & 63 == 0, bit + 64 <= range.upperBound,
                   bitmap.loadUnaligned(fromByteOffset: bit >> 3, as: UInt64.self) == UInt64.max {
                    bit += 64
                    continue
                }
                let block = g.groupStart(group) + UInt32(bit)
                if !Self.testBit(bitmap, bit), isDataBlock(block), !isBlockHeldByOthers(block, tag: intent.tag) {
                    intent.setReservedBlock(found, block)
                    found += 1
                    if found == count {
                        intent.reservationKind = .allocate
                        intent.reservationCount = count
                        intent.reservationInode = inode
                        intent.reservationFirst = chunk
                        return
                    }
                }
                bit += 1
            }
        }
        throw .noSpace
    }

    /// Picks a free inode: directories go to the group with the most free
    /// inodes (spreading trees), files next to their parent.
    mutating func chooseInode(directory: Bool, parent: UInt32, tag: UInt64) throws(FileSystemError) -> UInt32 {
        let g = state.geometry
        var startGroup = Int((parent - 1) / g.inodesPerGroup)
        if directory {
            var best = -1
            for group in 0..<g.groupCount where best < 0
                || descriptorCount(group, GroupField.freeInodes) > descriptorCount(best, GroupField.freeInodes) {
                best = group
            }
            startGroup = max(best, 0)
        }
        for step in 0..<g.groupCount {
            let group = (startGroup + step) % g.groupCount
            if descriptorCount(group, GroupField.freeInodes) == 0 { continue }
            try readBlock(descriptorField(group, GroupField.inodeBitmap), into: .bitmap)
            let bitmap = buffer(.bitmap)
            for bit in 0..<Int(g.inodesPerGroup) where !Self.testBit(bitmap, bit) {
                let number = UInt32(group) * g.inodesPerGroup + UInt32(bit) + 1
                if number >= g.firstInode && !isInodeHeldByOthers(number, tag: tag) { return number }
            }
        }
        throw .noSpace
    }

    // MARK: Superblock

    /// Writes the superblock's free counts if they changed.
    mutating func writeSuperblockIfNeeded() throws(FileSystemError) {
        guard superblockDirty else { return }
        let sb = memory.superblock
        sb.setLE32(SuperblockField.freeBlocksCount, UInt32(truncatingIfNeeded: freeBlocksTotal))
        sb.setLE32(SuperblockField.freeInodesCount, UInt32(truncatingIfNeeded: freeInodesTotal))
        let containing = UInt32(SuperblockField.byteOffset >> UInt64(geometry.blockShift))
        if let slot = findCached(containing) { memory.cacheTags[slot] = VolumeMemory.noBlock }
        try device.write(at: SuperblockField.byteOffset, from: UnsafeRawBufferPointer(sb))
        superblockDirty = false
    }

    /// Writes the superblock counts if they changed, then flushes the device.
    public mutating func sync() throws(FileSystemError) {
        if geometry.writable { try writeSuperblockIfNeeded() }
        try device.flush()
    }
}
