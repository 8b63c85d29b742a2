// The filesystem's wire protocol, shared by the client library (FileSystemAPI) and
// the server: what each operation sends and gets back, and the one decoder the
// server runs over every request.
//
// A message is an operation number, two machine words and up to 4096 payload bytes;
// a reply is a code (0, or a `FileSystemError` raw value), two words and up to 4096
// payload bytes. Words are 64 bits (riscv64, and every host the tests run on).
// Small scalars ride in the words so the common calls (read, write, seek, close)
// carry no payload but their data; paths always travel in the payload, as raw bytes
// (the shell hands us command-line words, not Strings).
//
// The server is restartable and runs its clients' requests against state in their
// SSRs, so a request must be meaningful on its own, and a bad one must be refused,
// never trapped on: `FileSystemRequest.decode` checks every bit — unused words and
// unused bits must be zero, a payload must be exactly what the operation carries —
// and throws the `FileSystemError` the client gets back. The client encodes through
// the same type, so both sides agree by construction and the tests check the
// round trip.
//
// Operations (h = handle, p = path; "-" = zero words / empty payload):
//
//   op  name           word 0                        word 1          request payload     reply words          reply payload
//   --  -------------  ----------------------------  --------------  ------------------  -------------------  -------------------
//    1  open           OpenFlags                     permissions     p                   h, 0                 -
//    2  close          h                             0               -                   -                    -
//    3  read           h                             count <= 4096   -                   count, new offset    count bytes
//    4  write          h                             0               data (<= 4096)      count, new offset    -
//    5  seek           h | whence << 32              offset (Int64)  -                   new offset, 0        -
//    6  stat           0                             0               p                   -                    FileStatus (48)
//    7  fstat          h                             0               -                   -                    FileStatus (48)
//    8  truncate       size                          0               p                   -                    -
//    9  ftruncate      h                             size            -                   -                    -
//   10  mkdir          permissions                   0               p                   -                    -
//   11  rmdir          0                             0               p                   -                    -
//   12  unlink         0                             0               p                   -                    -
//   13  rename         length of the old path        0               old p ++ new p      -                    -
//   14  readDirectory  cursor (0 = from the start)   0               p                   next cursor, count   count packed entries
//   15  lock           h | kind << 32 | wait << 40   0               start, length (16)  -                    -
//   16  statistics     0                             0               -                   -                    VolumeStatistics (32)
//   17  sync           0                             0               -                   -                    -
//   18  mountStatus    0                             0               -                   state|reason, detail MountStatus (12)
//   19  handles        0                             0               -                   count, 0             count OpenHandle (24 each)
//
// Field rules: a handle is 32 bits (`FileHandle`); permissions are the low 12 mode
// bits; sizes and offsets are at most Int64.max; whence is 0 set, 1 current,
// 2 end; a lock kind is 1 shared, 2 exclusive, 3 unlock, and its wait flag (bit 40)
// is only allowed with 1 and 2; the lock payload is two little-endian UInt64s and
// a length of 0 means "to the end of the file, however long it grows". A path is
// absolute, 1...1024 bytes, with no NUL and no component over 255 bytes.
//
// read replies with the bytes read (fewer than asked only at the end of the file)
// and write with the count written; both advance the handle's offset, and a handle
// opened with `append` writes at the end of the file whatever its offset.
// readDirectory's cursor is the server's own position in the directory (a byte
// offset into it), so it means the same after a server restart and nothing about a
// listing in progress is kept anywhere; the reply holds as many whole entries as fit
// and a next cursor of 0 once the directory is exhausted (a reply with a nonzero
// cursor holds at least one entry, so a listing always makes progress). A lock request that
// conflicts with another client's lock answers `wouldBlock`, or with the wait flag
// is held until it can be granted (`deadlock` if waiting would close a cycle).
// mountStatus tries to mount if nothing is mounted and says why it could not, or
// why the volume is read-only (MountStatus.swift): a client that got `notMounted`
// or `readOnly` asks it to tell a person what to do. handles lists the handles the
// client holds, with their offsets: what a client restarted with its SSRs finds open.

/// The operation numbers (they never change meaning).
public enum FileSystemOperation: UInt16, Sendable, CaseIterable {
    case open = 1
    case close = 2
    case read = 3
    case write = 4
    case seek = 5
    case stat = 6
    case fstat = 7
    case truncate = 8
    case ftruncate = 9
    case mkdir = 10
    case rmdir = 11
    case unlink = 12
    case rename = 13
    case readDirectory = 14
    case lock = 15
    case statistics = 16
    case sync = 17
    case mountStatus = 18
    case handles = 19
}

extension FileSystemOperation {
    /// The most payload bytes a reply to this operation carries, given the request's
    /// words: the "reply payload" column above. The client sizes its reply buffer by
    /// it, so a longer reply can only be the server's own damage (SSRService.replyLimit).
    /// An error reply carries no payload.
    public func replyLimit(words: (UInt, UInt)) -> Int {
        switch self {
        case .read: Int(min(words.1, UInt(FileSystemLimits.maxTransfer)))
        case .stat, .fstat: FileStatus.encodedBytes
        case .readDirectory: FileSystemLimits.maxTransfer
        case .statistics: VolumeStatistics.encodedBytes
        case .mountStatus: MountStatus.payloadBytes
        case .handles: FileSystemClientState.handleCount * OpenHandle.encodedBytes
        case .open, .close, .write, .seek, .truncate, .ftruncate, .mkdir, .rmdir, .unlink, .rename, .lock, .sync: 0
        }
    }
}

public enum FileSystemLimits {
    /// The most bytes one read or write message carries (the kernel's message limit).
    public static let maxTransfer = 4096
    /// The longest path, in bytes.
    public static let maxPathBytes = 1024
    /// The longest path component (ext2's name limit).
    public static let maxNameBytes = 255
    /// The largest size or offset (POSIX's off_t is signed).
    public static let maxOffset = UInt64(Int64.max)
    /// Permission bits: the low 12 bits of a mode.
    public static let permissionMask: UInt16 = 0o7777
}

/// An open file of one client: the slot in the client's handle table and a
/// per-client generation, so a closed handle's number never names the file that
/// later reuses its slot. 0 is never a handle.
public struct FileHandle: Hashable, Sendable, BitwiseCopyable {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    static let slotBits: UInt32 = 3

    public init(slot: Int, generation: UInt32) {
        rawValue = UInt32(truncatingIfNeeded: slot) & (1 << Self.slotBits - 1) | generation << Self.slotBits
    }

    public var slot: Int { Int(rawValue & (1 << Self.slotBits - 1)) }
    public var generation: UInt32 { rawValue >> Self.slotBits }
    /// The largest generation a handle carries.
    public static let maxGeneration: UInt32 = UInt32.max >> slotBits
}

/// How a file is opened. `read`/`write` say what the handle may do (at least one);
/// the rest act at open time, except `append`, which makes every write go to the end.
public struct OpenFlags: OptionSet, Sendable, BitwiseCopyable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let read = OpenFlags(rawValue: 1 << 0)
    public static let write = OpenFlags(rawValue: 1 << 1)
    public static let readWrite: OpenFlags = [.read, .write]
    /// Create the file if it does not exist.
    public static let create = OpenFlags(rawValue: 1 << 2)
    /// With `create`: fail with `exists` if it does.
    public static let exclusive = OpenFlags(rawValue: 1 << 3)
    /// Cut the file to zero bytes (needs `write`).
    public static let truncate = OpenFlags(rawValue: 1 << 4)
    /// Every write goes to the end of the file (needs `write`).
    public static let append = OpenFlags(rawValue: 1 << 5)
    /// The path may name a directory (which is then opened for `read` only, for
    /// `fstat`); without it opening a directory fails with `isADirectory`.
    public static let directory = OpenFlags(rawValue: 1 << 6)

    static let known: OpenFlags = [.read, .write, .create, .exclusive, .truncate, .append, .directory]

    /// True if the combination means something: known bits only, some access, and
    /// no modifier without what it modifies.
    public var isValid: Bool {
        guard isSubset(of: Self.known), !isDisjoint(with: .readWrite) else { return false }
        if contains(.exclusive) && !contains(.create) { return false }
        if !isDisjoint(with: [.truncate, .append]) && !contains(.write) { return false }
        if contains(.directory) && contains(.write) { return false }
        return true
    }
}

/// Where a seek's offset counts from.
public enum Whence: UInt8, Sendable, BitwiseCopyable {
    case set = 0
    case current = 1
    case end = 2
}

/// What a lock request asks for.
public enum LockKind: UInt8, Sendable, BitwiseCopyable {
    /// Many clients may hold overlapping shared locks (a read lock).
    case shared = 1
    /// Overlaps no other client's lock (a write lock).
    case exclusive = 2
    /// Gives up the client's locks over the range.
    case unlock = 3
}

/// A byte range of a file: [start, end). An `end` of `LockRange.toEndOfFile`
/// reaches past any size the file may grow to (a POSIX length of 0).
public struct LockRange: Equatable, Sendable, BitwiseCopyable {
    public let start: UInt64
    public let end: UInt64

    public static let toEndOfFile = UInt64.max

    /// `length` 0: from `start` to the end of the file, however long it grows.
    public init(start: UInt64, length: UInt64) throws(FileSystemError) {
        guard start <= FileSystemLimits.maxOffset, length <= FileSystemLimits.maxOffset - start else {
            throw .invalidArgument
        }
        self.start = start
        end = length == 0 ? Self.toEndOfFile : start + length
    }

    /// A range known to be well formed (start < end).
    init(uncheckedStart start: UInt64, end: UInt64) {
        self.start = start
        self.end = end
    }

    /// Whether `start < end` and the ends are representable on the wire.
    public var isWellFormed: Bool {
        start < end && start <= FileSystemLimits.maxOffset && (end == Self.toEndOfFile || end <= FileSystemLimits.maxOffset)
    }

    /// The POSIX length (0 = to the end of the file).
    public var length: UInt64 { end == Self.toEndOfFile ? 0 : end - start }

    public func overlaps(_ other: LockRange) -> Bool { start < other.end && other.start < end }

    /// What is left of `self` once `cut` is taken out of it: a piece before `cut`
    /// and a piece after it, either possibly absent.
    func remainders(afterRemoving cut: LockRange) -> (before: LockRange?, after: LockRange?) {
        let before = start < cut.start ? LockRange(uncheckedStart: start, end: min(end, cut.start)) : nil
        let after = end > cut.end ? LockRange(uncheckedStart: max(start, cut.end), end: end) : nil
        return (before, after)
    }
}

/// Path rules the whole filesystem relies on; the engine walks paths only after this.
public enum FileSystemPath {
    static let slash = UInt8(ascii: "/")

    /// Absolute, non-empty, at most 1024 bytes, no NUL, no component over 255 bytes.
    /// Throws `nameTooLong` for the lengths, `invalidArgument` for the rest.
    public static func validate(_ path: UnsafeRawBufferPointer) throws(FileSystemError) {
        guard !path.isEmpty, path[0] == slash else { throw .invalidArgument }
        guard path.count <= FileSystemLimits.maxPathBytes else { throw .nameTooLong }
        var componentLength = 0
        for byte in path {
            if byte == 0 { throw .invalidArgument }
            if byte == slash {
                componentLength = 0
            } else {
                componentLength += 1
                if componentLength > FileSystemLimits.maxNameBytes { throw .nameTooLong }
            }
        }
    }
}

/// One message as it goes on the wire. `payload` may borrow the caller's memory
/// (a path, the data of a write) or point into the scratch buffer given to `encode`.
public struct FileSystemMessage {
    public var operation: FileSystemOperation
    public var words: (UInt, UInt)
    public var payload: UnsafeRawBufferPointer
}

/// A request, decoded and checked. Paths and data point into the message payload.
public enum FileSystemRequest {
    case open(path: UnsafeRawBufferPointer, flags: OpenFlags, permissions: UInt16)
    case close(FileHandle)
    case read(FileHandle, count: Int)
    case write(FileHandle, data: UnsafeRawBufferPointer)
    case seek(FileHandle, offset: Int64, whence: Whence)
    case stat(path: UnsafeRawBufferPointer)
    case fstat(FileHandle)
    case truncate(path: UnsafeRawBufferPointer, size: UInt64)
    case ftruncate(FileHandle, size: UInt64)
    case mkdir(path: UnsafeRawBufferPointer, permissions: UInt16)
    case rmdir(path: UnsafeRawBufferPointer)
    case unlink(path: UnsafeRawBufferPointer)
    case rename(from: UnsafeRawBufferPointer, to: UnsafeRawBufferPointer)
    case readDirectory(path: UnsafeRawBufferPointer, cursor: UInt64)
    case lock(FileHandle, range: LockRange, kind: LockKind, wait: Bool)
    case statistics
    case sync
    case mountStatus
    case handles

    /// The scratch `encode` needs for any request: two paths, for rename.
    public static let scratchBytes = 2 * FileSystemLimits.maxPathBytes
    /// The lock payload: start and length, little-endian UInt64s.
    static let lockPayloadBytes = 16
    static let lockKindShift: UInt = 32
    static let lockWaitShift: UInt = 40
    static let seekWhenceShift: UInt = 32

    // MARK: Encoding (the client)

    /// The message for this request, checked by the same rules the server applies.
    /// `scratch` holds payloads that are built rather than borrowed (rename's two
    /// paths, lock's range): `scratchBytes` is always enough.
    public func encode(scratch: UnsafeMutableRawBufferPointer) throws(FileSystemError) -> FileSystemMessage {
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        switch self {
        case .open(let path, let flags, let permissions):
            try FileSystemPath.validate(path)
            guard flags.isValid, permissions & ~FileSystemLimits.permissionMask == 0 else { throw .invalidArgument }
            return FileSystemMessage(operation: .open, words: (UInt(flags.rawValue), UInt(permissions)), payload: path)
        case .close(let handle):
            return FileSystemMessage(operation: .close, words: (UInt(handle.rawValue), 0), payload: none)
        case .read(let handle, let count):
            guard count >= 0, count <= FileSystemLimits.maxTransfer else { throw .invalidArgument }
            return FileSystemMessage(operation: .read, words: (UInt(handle.rawValue), UInt(count)), payload: none)
        case .write(let handle, let data):
            guard data.count <= FileSystemLimits.maxTransfer else { throw .invalidArgument }
            return FileSystemMessage(operation: .write, words: (UInt(handle.rawValue), 0), payload: data)
        case .seek(let handle, let offset, let whence):
            let word0 = UInt(handle.rawValue) | UInt(whence.rawValue) << Self.seekWhenceShift
            return FileSystemMessage(operation: .seek, words: (word0, UInt(UInt64(bitPattern: offset))), payload: none)
        case .stat(let path):
            try FileSystemPath.validate(path)
            return FileSystemMessage(operation: .stat, words: (0, 0), payload: path)
        case .fstat(let handle):
            return FileSystemMessage(operation: .fstat, words: (UInt(handle.rawValue), 0), payload: none)
        case .truncate(let path, let size):
            try FileSystemPath.validate(path)
            guard size <= FileSystemLimits.maxOffset else { throw .invalidArgument }
            return FileSystemMessage(operation: .truncate, words: (UInt(size), 0), payload: path)
        case .ftruncate(let handle, let size):
            guard size <= FileSystemLimits.maxOffset else { throw .invalidArgument }
            return FileSystemMessage(operation: .ftruncate, words: (UInt(handle.rawValue), UInt(size)), payload: none)
        case .mkdir(let path, let permissions):
            try FileSystemPath.validate(path)
            guard permissions & ~FileSystemLimits.permissionMask == 0 else { throw .invalidArgument }
            return FileSystemMessage(operation: .mkdir, words: (UInt(permissions), 0), payload: path)
        case .rmdir(let path):
            try FileSystemPath.validate(path)
            return FileSystemMessage(operation: .rmdir, words: (0, 0), payload: path)
        case .unlink(let path):
            try FileSystemPath.validate(path)
            return FileSystemMessage(operation: .unlink, words: (0, 0), payload: path)
        case .rename(let from, let to):
            try FileSystemPath.validate(from)
            try FileSystemPath.validate(to)
            guard scratch.count >= from.count + to.count else { throw .invalidArgument }
            UnsafeMutableRawBufferPointer(rebasing: scratch[0..<from.count]).copyMemory(from: from)
            UnsafeMutableRawBufferPointer(rebasing: scratch[from.count..<from.count + to.count]).copyMemory(from: to)
            return FileSystemMessage(operation: .rename, words: (UInt(from.count), 0),
                                     payload: UnsafeRawBufferPointer(rebasing: scratch[0..<from.count + to.count]))
        case .readDirectory(let path, let cursor):
            try FileSystemPath.validate(path)
            return FileSystemMessage(operation: .readDirectory, words: (UInt(cursor), 0), payload: path)
        case .lock(let handle, let range, let kind, let wait):
            guard range.isWellFormed, !(wait && kind == .unlock),
                  scratch.count >= Self.lockPayloadBytes else { throw .invalidArgument }
            scratch.storeBytes(of: range.start.littleEndian, toByteOffset: 0, as: UInt64.self)
            scratch.storeBytes(of: range.length.littleEndian, toByteOffset: 8, as: UInt64.self)
            let word0 = UInt(handle.rawValue) | UInt(kind.rawValue) << Self.lockKindShift
                | (wait ? 1 : 0) << Self.lockWaitShift
            return FileSystemMessage(operation: .lock, words: (word0, 0),
                                     payload: UnsafeRawBufferPointer(rebasing: scratch[0..<Self.lockPayloadBytes]))
        case .statistics:
            return FileSystemMessage(operation: .statistics, words: (0, 0), payload: none)
        case .sync:
            return FileSystemMessage(operation: .sync, words: (0, 0), payload: none)
        case .mountStatus:
            return FileSystemMessage(operation: .mountStatus, words: (0, 0), payload: none)
        case .handles:
            return FileSystemMessage(operation: .handles, words: (0, 0), payload: none)
        }
    }

    // MARK: Decoding (the server)

    /// The request a message carries, or the error to answer it with: `badOperation`
    /// for an unknown operation, `badHandle` for a word that cannot be a handle,
    /// `nameTooLong` for an overlong path or name, `invalidArgument` for anything
    /// else malformed.
    public static func decode(operation rawOperation: UInt16, words: (UInt, UInt), payload: UnsafeRawBufferPointer)
        throws(FileSystemError) -> FileSystemRequest {
        guard let operation = FileSystemOperation(rawValue: rawOperation) else { throw .badOperation }
        switch operation {
        case .open:
            let path = try pathPayload(payload)
            guard words.0 <= UInt(UInt16.max), words.1 <= UInt(FileSystemLimits.permissionMask) else {
                throw .invalidArgument
            }
            let flags = OpenFlags(rawValue: UInt16(words.0))
            guard flags.isValid else { throw .invalidArgument }
            return .open(path: path, flags: flags, permissions: UInt16(words.1))
        case .close:
            try expectEmpty(payload, word: words.1)
            return .close(try handle(words.0))
        case .read:
            try expectEmpty(payload)
            guard words.1 <= UInt(FileSystemLimits.maxTransfer) else { throw .invalidArgument }
            return .read(try handle(words.0), count: Int(words.1))
        case .write:
            guard words.1 == 0, payload.count <= FileSystemLimits.maxTransfer else { throw .invalidArgument }
            return .write(try handle(words.0), data: payload)
        case .seek:
            try expectEmpty(payload)
            let whenceBits = words.0 >> seekWhenceShift
            guard whenceBits <= UInt(UInt8.max), let whence = Whence(rawValue: UInt8(whenceBits)) else {
                throw .invalidArgument
            }
            return .seek(try handle(words.0 & UInt(UInt32.max)), offset: Int64(bitPattern: UInt64(words.1)),
                         whence: whence)
        case .stat:
            guard words == (0, 0) else { throw .invalidArgument }
            return .stat(path: try pathPayload(payload))
        case .fstat:
            try expectEmpty(payload, word: words.1)
            return .fstat(try handle(words.0))
        case .truncate:
            guard words.1 == 0, UInt64(words.0) <= FileSystemLimits.maxOffset else { throw .invalidArgument }
            return .truncate(path: try pathPayload(payload), size: UInt64(words.0))
        case .ftruncate:
            try expectEmpty(payload)
            guard UInt64(words.1) <= FileSystemLimits.maxOffset else { throw .invalidArgument }
            return .ftruncate(try handle(words.0), size: UInt64(words.1))
        case .mkdir:
            guard words.0 <= UInt(FileSystemLimits.permissionMask), words.1 == 0 else { throw .invalidArgument }
            return .mkdir(path: try pathPayload(payload), permissions: UInt16(words.0))
        case .rmdir:
            guard words == (0, 0) else { throw .invalidArgument }
            return .rmdir(path: try pathPayload(payload))
        case .unlink:
            guard words == (0, 0) else { throw .invalidArgument }
            return .unlink(path: try pathPayload(payload))
        case .rename:
            guard words.1 == 0, words.0 >= 1, words.0 < UInt(payload.count) else { throw .invalidArgument }
            let split = Int(words.0)
            let from = UnsafeRawBufferPointer(rebasing: payload[0..<split])
            let to = UnsafeRawBufferPointer(rebasing: payload[split..<payload.count])
            try FileSystemPath.validate(from)
            try FileSystemPath.validate(to)
            return .rename(from: from, to: to)
        case .readDirectory:
            guard words.1 == 0 else { throw .invalidArgument }
            return .readDirectory(path: try pathPayload(payload), cursor: UInt64(words.0))
        case .lock:
            guard words.1 == 0, payload.count == lockPayloadBytes,
                  words.0 >> (lockWaitShift + 1) == 0 else { throw .invalidArgument }
            let kindBits = UInt8(truncatingIfNeeded: words.0 >> lockKindShift)
            let wait = words.0 >> lockWaitShift & 1 != 0
            guard let kind = LockKind(rawValue: kindBits), !(wait && kind == .unlock) else { throw .invalidArgument }
            let range = try LockRange(start: UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                                      length: UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            return .lock(try handle(words.0 & UInt(UInt32.max)), range: range, kind: kind, wait: wait)
        case .statistics:
            try expectEmpty(payload, word: words.0 | words.1)
            return .statistics
        case .sync:
            try expectEmpty(payload, word: words.0 | words.1)
            return .sync
        case .mountStatus:
            try expectEmpty(payload, word: words.0 | words.1)
            return .mountStatus
        case .handles:
            try expectEmpty(payload, word: words.0 | words.1)
            return .handles
        }
    }

    static func handle(_ word: UInt) throws(FileSystemError) -> FileHandle {
        guard word != 0, word <= UInt(UInt32.max) else { throw .badHandle }
        return FileHandle(rawValue: UInt32(word))
    }

    static func pathPayload(_ payload: UnsafeRawBufferPointer) throws(FileSystemError) -> UnsafeRawBufferPointer {
        try FileSystemPath.validate(payload)
        return payload
    }

    static func expectEmpty(_ payload: UnsafeRawBufferPointer, word: UInt = 0) throws(FileSystemError) {
        guard payload.isEmpty, word == 0 else { throw .invalidArgument }
    }
}
