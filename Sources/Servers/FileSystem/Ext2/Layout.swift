// The on-disk vocabulary of revision 0/1 ext2: where each field lives, and the
// small typed views the engine reads and writes through. Every view works on
// bytes that were read from disk and may be hostile, so views never index past
// their fixed size and callers validate values before trusting them.
//
// All multi-byte fields are little-endian. Both of Curio's targets (x86-64 for
// the tests, riscv64 for the server) are little-endian too, but the accessors
// still go through `littleEndian` so the layout is stated, not assumed.

import FileSystemCore

// MARK: - Byte access

// Fields on disk are aligned to their size, and so are the buffers they are read
// from: an aligned load is one instruction where `loadUnaligned` is a load per byte
// on RISC-V. `load` checks its bounds like `loadUnaligned` does.
extension UnsafeRawBufferPointer {
    @inline(__always) func le16(_ offset: Int) -> UInt16 {
        let aligned = (UInt(bitPattern: baseAddress) &+ UInt(bitPattern: offset)) % 2 == 0
        return UInt16(littleEndian: aligned ? load(fromByteOffset: offset, as: UInt16.self)
                                            : loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) func le32(_ offset: Int) -> UInt32 {
        let aligned = (UInt(bitPattern: baseAddress) &+ UInt(bitPattern: offset)) % 4 == 0
        return UInt32(littleEndian: aligned ? load(fromByteOffset: offset, as: UInt32.self)
                                            : loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always) func le16(_ offset: Int) -> UInt16 { UnsafeRawBufferPointer(self).le16(offset) }
    @inline(__always) func le32(_ offset: Int) -> UInt32 { UnsafeRawBufferPointer(self).le32(offset) }
    @inline(__always) func setLE16(_ offset: Int, _ value: UInt16) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt16.self)
    }
    @inline(__always) func setLE32(_ offset: Int, _ value: UInt32) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
    }
    @inline(__always) func zero() {
        guard let base = baseAddress else { return }
        base.initializeMemory(as: UInt8.self, repeating: 0, count: count)
    }
}

// MARK: - Checks

/// FNV-1a's step over 64-bit words, each multiply followed by a fold of the high half
/// down (as the SSR's RegionChecksum): a product alone carries differences only
/// upwards, and two flips of bit 63 would cancel. The engine's checks of cached
/// blocks, interrupted intents, the geometry and the group locations all use it.
struct WordHash {
    private(set) var value: UInt64

    init(seed: UInt64 = 0) { value = 0xCBF2_9CE4_8422_2325 ^ seed }

    @inline(__always) mutating func add(_ word: UInt64) {
        value = (value ^ word) &* 0x0000_0100_0000_01B3
        value ^= value >> 29
    }
}

// MARK: - Superblock
//
// 1024 bytes at byte 1024 of the volume, whatever the block size.
//
//   off  size  field                     off  size  field
//   ---  ----  ------------------------  ---  ----  ------------------------
//     0   4    s_inodes_count             76   4    s_rev_level
//     4   4    s_blocks_count             84   4    s_first_ino       (rev 1)
//    12   4    s_free_blocks_count        88   2    s_inode_size      (rev 1)
//    16   4    s_free_inodes_count        92   4    s_feature_compat
//    20   4    s_first_data_block         96   4    s_feature_incompat
//    24   4    s_log_block_size          100   4    s_feature_ro_compat
//    32   4    s_blocks_per_group        206   2    s_reserved_gdt_blocks
//    40   4    s_inodes_per_group
//    56   2    s_magic (0xEF53)
enum SuperblockField {
    static let byteOffset: UInt64 = 1024
    static let size = 1024
    static let inodesCount = 0
    static let blocksCount = 4
    static let freeBlocksCount = 12
    static let freeInodesCount = 16
    static let firstDataBlock = 20
    static let logBlockSize = 24
    static let blocksPerGroup = 32
    static let inodesPerGroup = 40
    static let magic = 56
    static let revLevel = 76
    static let firstInode = 84
    static let inodeSize = 88
    static let featureCompat = 92
    static let featureIncompat = 96
    static let featureReadOnlyCompat = 100
    static let reservedGDTBlocks = 206
    static let magicValue: UInt16 = 0xEF53
}

/// The feature bits the engine acts on. Which features it accepts at all, and the
/// names of every bit, are in FileSystemCore's MountStatus.swift (`Ext2Features`).
enum Feature {
    // compat
    static let resizeInode: UInt32 = 0x0010
    // incompat
    static let fileType: UInt32 = 0x0002
    // ro_compat
    static let sparseSuper: UInt32 = 0x0001
    static let largeFile: UInt32 = 0x0002
}

// MARK: - Group descriptor
//
// 32 bytes each, packed in the blocks right after the superblock's block.
//
//   off  size  field
//   ---  ----  ------------------------------------------------------
//     0   4    bg_block_bitmap
//     4   4    bg_inode_bitmap
//     8   4    bg_inode_table (first block)
//    12   2    bg_free_blocks_count
//    14   2    bg_free_inodes_count
//    16   2    bg_used_dirs_count
//    18  14    flags, checksums, itable_unused: kept as found
enum GroupField {
    static let size = 32
    static let blockBitmap = 0
    static let inodeBitmap = 4
    static let inodeTable = 8
    static let freeBlocks = 12
    static let freeInodes = 14
    static let usedDirectories = 16
}

// MARK: - Inode
//
// The first 128 bytes of every inode (larger inodes keep their tail untouched,
// except that a freshly allocated inode gets a zeroed tail).
//
//   off  size  field               off  size  field
//   ---  ----  ------------------  ---  ----  --------------------------------
//     0   2    i_mode               28   4    i_blocks (512-byte sectors)
//     2   2    i_uid                32   4    i_flags
//     4   4    i_size (low)         40  60    i_block[15]: 12 direct, single,
//     8   4    i_atime                              double, triple indirect
//    12   4    i_ctime             100   4    i_generation
//    16   4    i_mtime             104   4    i_file_acl (xattr block)
//    20   4    i_dtime             108   4    i_size_high (regular files)
//    24   2    i_gid               116..127   osd2: blocks_hi, uid/gid high...
//    26   2    i_links_count
struct Inode: BitwiseCopyable {
    static let size = 128
    static let indexedDirectoryFlag: UInt32 = 0x1000
    static let inlinePointerBytes = 60
    /// i_faddr, the obsolete fragment address: always zero.
    static let fragmentAddressOffset = 112

    var raw: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
              UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    init() { raw = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }

    /// Fields are read from their word of `raw`: `withUnsafeBytes(of: raw)` copied all
    /// 128 bytes to the stack to read one. Every field lies within one word (ext2
    /// aligns each to its size).
    private func word(_ index: Int) -> UInt64 {
        let value: UInt64 = switch index {
        case 0: raw.0
        case 1: raw.1
        case 2: raw.2
        case 3: raw.3
        case 4: raw.4
        case 5: raw.5
        case 6: raw.6
        case 7: raw.7
        case 8: raw.8
        case 9: raw.9
        case 10: raw.10
        case 11: raw.11
        case 12: raw.12
        case 13: raw.13
        case 14: raw.14
        default: raw.15
        }
        return UInt64(littleEndian: value)
    }
    private func get16(_ offset: Int) -> UInt16 {
        UInt16(truncatingIfNeeded: word(offset >> 3) >> UInt64((offset & 7) * 8))
    }
    private func get32(_ offset: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: word(offset >> 3) >> UInt64((offset & 7) * 8))
    }
    private mutating func set16(_ offset: Int, _ value: UInt16) { withUnsafeMutableBytes(of: &raw) { $0.setLE16(offset, value) } }
    private mutating func set32(_ offset: Int, _ value: UInt32) { withUnsafeMutableBytes(of: &raw) { $0.setLE32(offset, value) } }

    var mode: UInt16 { get { get16(0) } set { set16(0, newValue) } }
    var sizeLow: UInt32 { get { get32(4) } set { set32(4, newValue) } }
    var accessed: UInt32 { get { get32(8) } set { set32(8, newValue) } }
    var changed: UInt32 { get { get32(12) } set { set32(12, newValue) } }
    var modified: UInt32 { get { get32(16) } set { set32(16, newValue) } }
    var deleted: UInt32 { get { get32(20) } set { set32(20, newValue) } }
    var links: UInt16 { get { get16(26) } set { set16(26, newValue) } }
    var sectors: UInt32 { get { get32(28) } set { set32(28, newValue) } }
    var flags: UInt32 { get { get32(32) } set { set32(32, newValue) } }
    var generation: UInt32 { get { get32(100) } set { set32(100, newValue) } }
    var extendedAttributeBlock: UInt32 { get { get32(104) } set { set32(104, newValue) } }
    var sizeHigh: UInt32 { get { get32(108) } set { set32(108, newValue) } }

    func pointer(_ index: Int) -> UInt32 { get32(40 + 4 * index) }
    mutating func setPointer(_ index: Int, _ value: UInt32) { set32(40 + 4 * index, value) }

    var fileType: FileType {
        switch mode & 0xF000 {
        case 0x8000: .regular
        case 0x4000: .directory
        case 0xA000: .symbolicLink
        case 0x2000: .characterDevice
        case 0x6000: .blockDevice
        case 0x1000: .fifo
        case 0xC000: .socket
        default: .unknown
        }
    }

    static func modeBits(for type: FileType) -> UInt16 {
        switch type {
        case .regular: 0x8000
        case .directory: 0x4000
        case .symbolicLink: 0xA000
        case .characterDevice: 0x2000
        case .blockDevice: 0x6000
        case .fifo: 0x1000
        case .socket: 0xC000
        case .unknown: 0
        }
    }

    var isDirectory: Bool { mode & 0xF000 == 0x4000 }
    var isInUse: Bool { links != 0 && mode != 0 }

    /// Regular files keep the high half of the size in i_size_high (large_file);
    /// for other types that word is i_dir_acl and not part of the size.
    func byteSize(largeFile: Bool) -> UInt64 {
        if largeFile && fileType == .regular { return UInt64(sizeHigh) << 32 | UInt64(sizeLow) }
        return UInt64(sizeLow)
    }

    mutating func setByteSize(_ size: UInt64) {
        sizeLow = UInt32(truncatingIfNeeded: size)
        if fileType == .regular { sizeHigh = UInt32(truncatingIfNeeded: size >> 32) }
    }

    /// The 60 bytes of i_block, where a fast symbolic link keeps its target.
    func withInlineBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeBytes(of: raw) { body(UnsafeRawBufferPointer(rebasing: $0[40..<100])) }
    }
}

// MARK: - Directory records
//
// A directory is a sequence of blocks, each a chain of variable-length records
// that exactly fills the block:
//
//   off  size  field
//   ---  ----  -------------------------------------------------------------
//     0   4    inode (0 = unused record)
//     4   2    rec_len: bytes to the next record (multiple of 4)
//     6   1    name_len
//     7   1    file_type (filetype feature; otherwise the high byte of a
//              16-bit name_len, always 0 for names of <= 255 bytes)
//     8   n    name (no terminator), padded to a multiple of 4
enum DirectoryRecord {
    static let headerSize = 8
    static let maxNameLength = 255

    /// The space a record with a name of `nameLength` bytes needs.
    @inline(__always) static func footprint(nameLength: Int) -> Int { (headerSize + nameLength + 3) & ~3 }
}
