// The vocabulary every part of the filesystem shares: the on-disk engine (Ext2),
// the server, its wire protocol and the client library. No system calls here, so
// the host tests can use all of it.

/// Why a filesystem operation failed. The raw values travel on the wire as reply
/// codes (0 is success), so they never change meaning.
public enum FileSystemError: UInt32, Error, Sendable, Equatable {
    /// A path component or the named file does not exist.
    case noSuchFile = 1
    /// The name to create is already taken.
    case exists = 2
    /// A path component, or a directory operation's target, is not a directory.
    case notADirectory = 3
    /// A file operation named a directory.
    case isADirectory = 4
    /// `rmdir`, or a rename over a directory, found it not empty.
    case directoryNotEmpty = 5
    /// No free block or inode is left.
    case noSpace = 6
    /// A name longer than 255 bytes, or a path longer than the protocol carries.
    case nameTooLong = 7
    /// The handle is not open (or was opened without the access asked for).
    case badHandle = 8
    /// An argument is out of range: a bad offset, a bad whence, an empty name,
    /// "." or "..", a rename of a directory into itself, ...
    case invalidArgument = 9
    /// Writing past the largest offset the file's block map can reach.
    case fileTooLarge = 10
    /// The image contradicts itself (a pointer outside the disk, a bad directory
    /// record, a loop): the operation stops rather than trust it.
    case corrupt = 11
    /// The storage server reported an error.
    case ioError = 12
    /// The volume is mounted read-only, or has features we do not write.
    case readOnly = 13
    /// The inode's link count would overflow.
    case tooManyLinks = 14
    /// The handle's file was deleted (its inode now belongs to another file).
    case staleHandle = 15
    /// The client has the most handles (or locks) the server keeps for one client.
    case tooManyOpen = 16
    /// A non-blocking lock request conflicts with another client's lock.
    case wouldBlock = 17
    /// No filesystem is mounted (the configuration named no usable disk).
    case notMounted = 18
    /// Not a directory entry operation the server knows.
    case badOperation = 19
    /// The locks of two clients wait for each other.
    case deadlock = 20
    /// The server lost this client's state in a crash (its SSR did not verify):
    /// handles and locks are gone; open files again.
    case stateLost = 21
    /// The call itself failed (server gone for good, ...).
    case unavailable = 22
    /// The engine caught itself about to write a block that contradicts its own
    /// metadata (a fault in the server damaged a block number): the server restarts
    /// instead of answering, so a client never sees this code.
    case internalInconsistency = 23

    public var name: StaticString {
        switch self {
        case .noSuchFile: "no such file or directory"
        case .exists: "file exists"
        case .notADirectory: "not a directory"
        case .isADirectory: "is a directory"
        case .directoryNotEmpty: "directory not empty"
        case .noSpace: "no space left on device"
        case .nameTooLong: "name too long"
        case .badHandle: "bad file handle"
        case .invalidArgument: "invalid argument"
        case .fileTooLarge: "file too large"
        case .corrupt: "filesystem corrupt"
        case .ioError: "I/O error"
        case .readOnly: "read-only filesystem"
        case .tooManyLinks: "too many links"
        case .staleHandle: "stale file handle"
        case .tooManyOpen: "too many open files"
        case .wouldBlock: "resource temporarily unavailable"
        case .notMounted: "no filesystem mounted"
        case .badOperation: "bad operation"
        case .deadlock: "deadlock avoided"
        case .stateLost: "server state lost"
        case .unavailable: "filesystem server unavailable"
        case .internalInconsistency: "internal inconsistency"
        }
    }
}

/// An inode number (ext2 counts from 1; 2 is the root directory).
public struct InodeNumber: RawRepresentable, Hashable, Sendable, BitwiseCopyable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: UInt32) { rawValue = value }
    public static let root = InodeNumber(2)
}

public enum FileType: UInt8, Sendable, BitwiseCopyable {
    case unknown = 0
    case regular = 1
    case directory = 2
    case characterDevice = 3
    case blockDevice = 4
    case fifo = 5
    case socket = 6
    case symbolicLink = 7
}

/// What `stat` reports.
public struct FileStatus: Sendable, BitwiseCopyable, Equatable {
    public var inode: InodeNumber
    public var type: FileType
    /// The permission bits (the low 12 bits of ext2's i_mode).
    public var permissions: UInt16
    public var links: UInt16
    public var size: UInt64
    /// Allocated space in 512-byte sectors (ext2's i_blocks), including indirect blocks.
    public var sectors: UInt64
    /// ext2's i_generation: a new value each time the inode is given to a new file,
    /// so a handle can tell its file from a later one in the same inode.
    public var generation: UInt32
    public var modified: UInt32
    public var changed: UInt32
    public var accessed: UInt32

    public init(inode: InodeNumber, type: FileType, permissions: UInt16, links: UInt16, size: UInt64,
                sectors: UInt64, generation: UInt32, modified: UInt32, changed: UInt32, accessed: UInt32) {
        self.inode = inode
        self.type = type
        self.permissions = permissions
        self.links = links
        self.size = size
        self.sectors = sectors
        self.generation = generation
        self.modified = modified
        self.changed = changed
        self.accessed = accessed
    }
}

/// One handle a client holds, as `handles` reports it: what a client restarted with
/// its SSRs (system.toml `keep_ssrs`) finds open for it.
public struct OpenHandle: Sendable, BitwiseCopyable, Equatable {
    public var handle: FileHandle
    public var flags: OpenFlags
    public var offset: UInt64
    public var inode: InodeNumber

    public init(handle: FileHandle, flags: OpenFlags, offset: UInt64, inode: InodeNumber) {
        self.handle = handle
        self.flags = flags
        self.offset = offset
        self.inode = inode
    }
}

/// What `df` reports.
public struct VolumeStatistics: Sendable, BitwiseCopyable, Equatable {
    public var blockSize: UInt32
    public var totalBlocks: UInt64
    public var freeBlocks: UInt64
    public var totalInodes: UInt32
    public var freeInodes: UInt32

    public init(blockSize: UInt32, totalBlocks: UInt64, freeBlocks: UInt64, totalInodes: UInt32, freeInodes: UInt32) {
        self.blockSize = blockSize
        self.totalBlocks = totalBlocks
        self.freeBlocks = freeBlocks
        self.totalInodes = totalInodes
        self.freeInodes = freeInodes
    }
}

/// One entry of a directory listing.
public struct DirectoryEntry: Sendable, BitwiseCopyable {
    public static let maxNameBytes = 255
    public var inode: InodeNumber
    public var type: FileType
    public var nameLength: UInt8
    /// The name's bytes (`nameLength` of them; no terminator).
    public var name: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                      UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                      UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                      UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    public init() {
        inode = InodeNumber(0)
        type = .unknown
        nameLength = 0
        name = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    }

    /// Calls `body` with the name's bytes.
    public func withName<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeBytes(of: name) { body(UnsafeRawBufferPointer(rebasing: $0[0..<Int(nameLength)])) }
    }

    /// Sets the name (at most 255 bytes; longer names are cut).
    public mutating func setName(_ bytes: UnsafeRawBufferPointer) {
        let count = min(bytes.count, Self.maxNameBytes)
        nameLength = UInt8(count)
        withUnsafeMutableBytes(of: &name) { storage in
            storage.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
        }
    }
}
