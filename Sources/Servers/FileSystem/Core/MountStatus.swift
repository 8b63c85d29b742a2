// Why a disk is or is not mounted, in a form that travels from the fs server to
// its clients and reads well to the person at the console.
//
// The ext2 family marks what a reader must know in three feature words of the
// superblock (Linux's Documentation/filesystems/ext4/super.rst; names as mke2fs,
// tune2fs and dumpe2fs spell them):
//
//   word        meaning to an implementation that lacks a feature
//   ----------  -------------------------------------------------------------
//   compat      may read and write without it (Curio still writes only when
//               it knows every one present is harmless to its writes)
//   incompat    must not mount at all: the layout itself differs
//   ro_compat   may read, must not write
//
//   bit     compat (0x5C)     incompat (0x60)       ro_compat (0x64)
//   ------  ----------------  --------------------  ----------------
//   0x0001  dir_prealloc      compression           sparse_super  *
//   0x0002  imagic_inodes     filetype  *           large_file  *
//   0x0004  has_journal       needs_recovery        btree_dir
//   0x0008  ext_attr          journal_dev           huge_file
//   0x0010  resize_inode      meta_bg               uninit_bg
//   0x0020  dir_index         -                     dir_nlink
//   0x0040  lazy_bg           extent                extra_isize
//   0x0080  exclude_inode     64bit                 snapshot
//   0x0100  exclude_bitmap    mmp                   quota
//   0x0200  sparse_super2     flex_bg               bigalloc
//   0x0400  fast_commit       ea_inode              metadata_csum
//   0x0800  stable_inodes     -                     replica
//   0x1000  orphan_file       dirdata               read-only
//   0x2000  -                 metadata_csum_seed    project
//   0x4000  -                 large_dir             shared_blocks
//   0x8000  -                 inline_data           verity
//   0x10000 -                 encrypt               orphan_present
//   0x20000 -                 casefold              -
//
// Curio's engine understands the starred ones, and writes alongside the first six
// compat bits, whose structures its writes leave valid (a directory it changes loses
// its hashed-index flag, as old ext2 drivers did; the rest it never touches).
//
// The policy. An image with an incompat bit Curio lacks is refused: its inodes or
// group descriptors mean something else (an `extent` inode's i_block is an extent
// tree, not block pointers; `64bit` doubles the descriptor size; `flex_bg` puts
// bitmaps outside their group). An image whose only unknown bits are ro_compat or
// compat ones is mounted read-only: Linux does the same for ro_compat, and every
// byte Curio reads means what Curio thinks (`metadata_csum` adds checksums Curio
// would not update; `huge_file` changes the unit of i_blocks only for files that
// carry a flag). `mkfs.ext4`'s defaults give both kinds: refused, and the reason
// names every feature in the way, so that one new image fixes everything.
//
// On the wire (operation 18, `mountStatus`, see FileSystemProtocol.swift) a status
// is two words and the three feature words of what is in the way:
//
//   word 0:  state (bits 0-7: 0 writable, 1 read-only, 2 not mounted)
//            | reason << 8 (a `MountFailure.Code` or a `ReadOnlyReason.Code`; 0 when writable)
//   word 1:  the failure's detail (the magic found, the revision, s_log_block_size), else 0
//   payload: compat, incompat, ro_compat (3 × UInt32, little-endian): the features in
//            the way (unsupported ones, or those Curio cannot write), else zeros

/// The three feature words of an ext2 superblock, or a selection of their bits.
public struct Ext2Features: Equatable, Sendable, BitwiseCopyable {
    public var compatible: UInt32
    public var incompatible: UInt32
    public var readOnlyCompatible: UInt32

    public init(compatible: UInt32 = 0, incompatible: UInt32 = 0, readOnlyCompatible: UInt32 = 0) {
        self.compatible = compatible
        self.incompatible = incompatible
        self.readOnlyCompatible = readOnlyCompatible
    }

    public var isEmpty: Bool { compatible == 0 && incompatible == 0 && readOnlyCompatible == 0 }

    /// The incompat features Curio's engine reads and writes: `filetype`.
    public static let understoodIncompatible: UInt32 = 0x0002
    /// The compat features Curio writes alongside (see the essay): dir_prealloc,
    /// imagic_inodes, has_journal, ext_attr, resize_inode, dir_index.
    public static let writableCompatible: UInt32 = 0x003F
    /// The ro_compat features Curio writes: sparse_super, large_file.
    public static let writableReadOnlyCompatible: UInt32 = 0x0003
    /// incompat `needs_recovery`: a journal holds updates not yet written in place.
    public static let needsRecovery: UInt32 = 0x0004

    /// The features present that keep Curio from mounting at all.
    public var preventingMount: Ext2Features {
        Ext2Features(incompatible: incompatible & ~Self.understoodIncompatible)
    }

    /// The features present that keep Curio from writing (it may still read).
    public var preventingWrites: Ext2Features {
        Ext2Features(compatible: compatible & ~Self.writableCompatible,
                     readOnlyCompatible: readOnlyCompatible & ~Self.writableReadOnlyCompatible)
    }

    public static func | (left: Ext2Features, right: Ext2Features) -> Ext2Features {
        Ext2Features(compatible: left.compatible | right.compatible,
                     incompatible: left.incompatible | right.incompatible,
                     readOnlyCompatible: left.readOnlyCompatible | right.readOnlyCompatible)
    }

    static let compatibleNames: [StaticString] = [
        "dir_prealloc", "imagic_inodes", "has_journal", "ext_attr", "resize_inode", "dir_index", "lazy_bg",
        "exclude_inode", "exclude_bitmap", "sparse_super2", "fast_commit", "stable_inodes", "orphan_file",
    ]
    static let incompatibleNames: [StaticString] = [
        "compression", "filetype", "needs_recovery", "journal_dev", "meta_bg", "", "extent", "64bit", "mmp",
        "flex_bg", "ea_inode", "", "dirdata", "metadata_csum_seed", "large_dir", "inline_data", "encrypt",
        "casefold",
    ]
    static let readOnlyCompatibleNames: [StaticString] = [
        "sparse_super", "large_file", "btree_dir", "huge_file", "uninit_bg", "dir_nlink", "extra_isize",
        "snapshot", "quota", "bigalloc", "metadata_csum", "replica", "read-only", "project", "shared_blocks",
        "verity", "orphan_present",
    ]

    /// Every feature set, by name: incompat first (they matter most), then ro_compat,
    /// then compat, each from the lowest bit. A bit without a name is shown as
    /// dumpe2fs shows it (`FEATURE_I31`: word letter C, I or R, and bit number).
    public var names: [String] {
        Self.names(of: incompatible, from: Self.incompatibleNames, letter: "I")
            + Self.names(of: readOnlyCompatible, from: Self.readOnlyCompatibleNames, letter: "R")
            + Self.names(of: compatible, from: Self.compatibleNames, letter: "C")
    }

    static func names(of bits: UInt32, from table: [StaticString], letter: String) -> [String] {
        var names: [String] = []
        for bit in 0..<32 where bits & (1 << UInt32(bit)) != 0 {
            let known = bit < table.count ? table[bit] : ""
            names.append(known.utf8CodeUnitCount > 0
                ? String(decoding: UnsafeBufferPointer(start: known.utf8Start, count: known.utf8CodeUnitCount),
                         as: UTF8.self)
                : "FEATURE_" + letter + String(bit))
        }
        return names
    }
}

/// Why the fs server has no volume mounted.
public enum MountFailure: Equatable, Sendable, Error {
    /// No storage server answers, or it has no device (QEMU was started without a disk).
    case noDisk
    /// The storage server could not read the superblock or group descriptors.
    case unreadable
    /// The superblock does not carry ext2's magic number (this one instead).
    case notExt2(magic: UInt16)
    /// A superblock revision past 1 (dynamic), which Curio does not know.
    case unsupportedRevision(UInt32)
    /// A block size other than 1, 2 or 4 KiB (s_log_block_size, the power of two past 1 KiB).
    case unsupportedBlockSize(logBlockSize: UInt32)
    /// Incompat features Curio lacks; `features` also names those it could not write.
    case unsupportedFeatures(Ext2Features)
    /// The superblock, the group descriptors or the root directory contradict themselves.
    case corrupt

    /// The wire code of each case (never reused).
    public enum Code: UInt8, Sendable {
        case noDisk = 1, unreadable, notExt2, unsupportedRevision, unsupportedBlockSize, unsupportedFeatures, corrupt
    }

    public var code: Code {
        switch self {
        case .noDisk: .noDisk
        case .unreadable: .unreadable
        case .notExt2: .notExt2
        case .unsupportedRevision: .unsupportedRevision
        case .unsupportedBlockSize: .unsupportedBlockSize
        case .unsupportedFeatures: .unsupportedFeatures
        case .corrupt: .corrupt
        }
    }

    /// How to make an image Curio mounts (the Makefile makes `make run`'s this way).
    public static let remedy = "make an image with: mke2fs -t ext2 -b 1024 -d DIRECTORY IMAGE 32M"

    /// The reason, for a person: what is wrong and what to do about it.
    public var explanation: String {
        switch self {
        case .noDisk:
            "the machine has no disk (QEMU: -drive file=IMAGE,format=raw,if=none,id=disk0"
                + " -device virtio-blk-device,drive=disk0)"
        case .unreadable:
            "the disk cannot be read (I/O error)"
        case .notExt2(let magic):
            "the disk holds no ext2 filesystem (superblock magic " + hex(UInt32(magic)) + ", not 0xef53; "
                + Self.remedy + ")"
        case .unsupportedRevision(let revision):
            "the filesystem is revision \(revision); Curio reads revisions 0 and 1 (" + Self.remedy + ")"
        case .unsupportedBlockSize(let logBlockSize):
            "its block size is 2^\(10 + UInt64(logBlockSize)) bytes; Curio supports 1024, 2048 and 4096 ("
                + Self.remedy + ")"
        case .unsupportedFeatures(let features) where features.incompatible == Ext2Features.needsRecovery:
            // Not a feature to do without: the image is ext3's, stopped before its
            // journal was replayed, and e2fsck replays it.
            "its journal holds updates not yet written in place (needs_recovery): run e2fsck -fy IMAGE on it first"
        case .unsupportedFeatures(let features):
            "the disk needs ext4 features Curio does not support: " + features.names.joined(separator: ", ")
                + " (" + Self.remedy + ")"
        case .corrupt:
            "the superblock, group descriptors or root directory are damaged (e2fsck -fn IMAGE says more)"
        }
    }
}

/// Why a mounted volume takes no writes.
public enum ReadOnlyReason: Equatable, Sendable {
    /// The configuration says so (`fs.mount` is "ro").
    case configured
    /// The storage server reports the device read-only.
    case deviceReadOnly
    /// The image has features Curio can read but not write.
    case features(Ext2Features)

    public enum Code: UInt8, Sendable {
        case configured = 1, deviceReadOnly, features
    }

    public var code: Code {
        switch self {
        case .configured: .configured
        case .deviceReadOnly: .deviceReadOnly
        case .features: .features
        }
    }

    public var explanation: String {
        switch self {
        case .configured: "the configuration says so (fs.mount is ro)"
        case .deviceReadOnly: "the disk is read-only"
        case .features(let features):
            "Curio cannot write ext4 features: " + features.names.joined(separator: ", ")
        }
    }
}

/// What `mountStatus` answers.
public enum MountStatus: Equatable, Sendable {
    case writable
    case readOnly(ReadOnlyReason)
    case notMounted(MountFailure)

    static let stateMask: UInt = 0xFF
    static let reasonShift: UInt = 8
    /// The payload: three little-endian UInt32 feature words.
    public static let payloadBytes = 12

    /// One line for the console: what a person needs to know, or nil if all is well.
    public var explanation: String? {
        switch self {
        case .writable: nil
        case .readOnly(let reason): "mounted read-only: " + reason.explanation
        case .notMounted(let failure): "no filesystem: " + failure.explanation
        }
    }

    /// The reply's words; writes the payload (at least `payloadBytes`) and returns its length.
    public func encode(into payload: UnsafeMutableRawBufferPointer) -> (words: (UInt, UInt), length: Int) {
        var state: UInt = 0
        var reason: UInt = 0
        var detail: UInt = 0
        var features = Ext2Features()
        switch self {
        case .writable:
            break
        case .readOnly(let why):
            state = 1
            reason = UInt(why.code.rawValue)
            if case .features(let set) = why { features = set }
        case .notMounted(let failure):
            state = 2
            reason = UInt(failure.code.rawValue)
            switch failure {
            case .notExt2(let magic): detail = UInt(magic)
            case .unsupportedRevision(let revision): detail = UInt(revision)
            case .unsupportedBlockSize(let logBlockSize): detail = UInt(logBlockSize)
            case .unsupportedFeatures(let set): features = set
            case .noDisk, .unreadable, .corrupt: break
            }
        }
        guard payload.count >= Self.payloadBytes else { return ((state | reason << Self.reasonShift, detail), 0) }
        payload.storeBytes(of: features.compatible.littleEndian, toByteOffset: 0, as: UInt32.self)
        payload.storeBytes(of: features.incompatible.littleEndian, toByteOffset: 4, as: UInt32.self)
        payload.storeBytes(of: features.readOnlyCompatible.littleEndian, toByteOffset: 8, as: UInt32.self)
        return ((state | reason << Self.reasonShift, detail), Self.payloadBytes)
    }

    /// The status a reply carries; anything the encoder would not produce is `ioError`.
    public static func decode(words: (UInt, UInt), payload: UnsafeRawBufferPointer) throws(FileSystemError) -> MountStatus {
        guard payload.count == payloadBytes, words.0 >> (reasonShift + 8) == 0 else { throw .ioError }
        let features = Ext2Features(
            compatible: UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt32.self)),
            incompatible: UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
            readOnlyCompatible: UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        let reason = UInt8(truncatingIfNeeded: words.0 >> reasonShift)
        let detail = words.1
        let decoded: MountStatus
        switch words.0 & stateMask {
        case 0:
            guard reason == 0 else { throw .ioError }
            decoded = .writable
        case 1:
            switch ReadOnlyReason.Code(rawValue: reason) {
            case .configured?: decoded = .readOnly(.configured)
            case .deviceReadOnly?: decoded = .readOnly(.deviceReadOnly)
            case .features?: decoded = .readOnly(.features(features))
            case nil: throw .ioError
            }
        case 2:
            switch MountFailure.Code(rawValue: reason) {
            case .noDisk?: decoded = .notMounted(.noDisk)
            case .unreadable?: decoded = .notMounted(.unreadable)
            case .notExt2?:
                guard detail <= UInt(UInt16.max) else { throw .ioError }
                decoded = .notMounted(.notExt2(magic: UInt16(detail)))
            case .unsupportedRevision?:
                guard detail <= UInt(UInt32.max) else { throw .ioError }
                decoded = .notMounted(.unsupportedRevision(UInt32(detail)))
            case .unsupportedBlockSize?:
                guard detail <= UInt(UInt32.max) else { throw .ioError }
                decoded = .notMounted(.unsupportedBlockSize(logBlockSize: UInt32(detail)))
            case .unsupportedFeatures?: decoded = .notMounted(.unsupportedFeatures(features))
            case .corrupt?: decoded = .notMounted(.corrupt)
            case nil: throw .ioError
            }
        default:
            throw .ioError
        }
        // Every field the status does not use must be zero, as the encoder leaves it.
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: payloadBytes, alignment: 4)
        defer { scratch.deallocate() }
        guard decoded.encode(into: scratch).words == words, scratch.elementsEqual(payload) else { throw .ioError }
        return decoded
    }
}

private func hex(_ value: UInt32) -> String {
    let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"]
    var text = ""
    var shift = 12
    while shift >= 0 {
        text.append(digits[Int(value >> UInt32(shift) & 0xF)])
        shift -= 4
    }
    return "0x" + text
}
