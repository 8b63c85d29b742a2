// One client's filesystem state, as the server keeps it in the client's SSR: its
// open files and the byte-range locks it holds. Everything the paper's filesystem
// service puts in an SSR and nothing more, because every request commits all of it
// (twice, for the format's two copies): 392 bytes.
//
// A handle remembers the file by inode and generation, so a handle whose file was
// deleted (and whose inode went to a new file) is recognised as stale rather than
// reading someone else's data. It keeps the offset, the open flags, and the count of
// its last read: if the server crashes after committing a read but before the reply
// reached the client, the kernel re-delivers the request and the server must send
// the same bytes again. Only the last committed request can be replayed, and a
// replayed read is on the handle it names, which nothing has touched since — so the
// read started at `offset - lastReadCount`, and re-reading that range regenerates the
// payload without storing a second offset. Seeks and writes zero the count, which
// keeps `lastReadCount <= offset` an invariant. The handle is not touched, but the
// file may be: other clients' requests re-delivered after the same crash can delete
// it and reuse its inode first, so the replay checks the generation as a read does.
//
// Locks follow POSIX record locks: they belong to the client and the file (not to a
// handle), a client's own locks never conflict with each other, and a new lock or an
// unlock over part of the client's range replaces that part (splitting a range in
// two when it lands in the middle). Adjacent ranges of the same kind are not merged:
// a client that locks piece by piece uses a slot per piece. Each lock records the
// handle it was taken through, only so the checker can insist that every lock is on
// a file the client has open; closing any handle of a file releases all the
// client's locks on that file, as close(2) does.
//
// The server-wide lock table (`LockTable`) is an index over these records, rebuilt
// from them after a restart; the records here are the truth.
//
// Layout (little-endian, as committed by SSRFormat; every free slot is all zero):
//
//   offset  size  field
//   0       192   handles: 8 x HandleSlot
//   192     192   locks:   8 x LockSlot
//   384     4     handleGeneration (generation of the last handle given out)
//   388     4     reserved (0)
//
//   HandleSlot (24 bytes)                  LockSlot (24 bytes)
//   0   4  id (FileHandle; 0 = free)       0   1  kind (0 free, 1 shared, 2 exclusive)
//   4   4  inode                           1   1  handle slot it was taken through
//   8   4  inode generation                2   2  reserved (0)
//   12  2  open flags                      4   4  inode (= that handle's inode)
//   14  2  lastReadCount (<= 4096)         8   8  start
//   16  8  offset                          16  8  end (exclusive; UInt64.max = to EOF)

/// One open file of a client (all zero when free).
public struct HandleSlot: BitwiseCopyable, Sendable, Equatable {
    public var id: UInt32
    public var inode: UInt32
    public var inodeGeneration: UInt32
    public var flags: UInt16
    public var lastReadCount: UInt16
    public var offset: UInt64

    public static let free = HandleSlot(id: 0, inode: 0, inodeGeneration: 0, flags: 0, lastReadCount: 0, offset: 0)

    public var isFree: Bool { id == 0 }
    public var handle: FileHandle { FileHandle(rawValue: id) }
    public var openFlags: OpenFlags { OpenFlags(rawValue: flags) }
    public var file: FileKey { FileKey(inode: InodeNumber(inode), generation: inodeGeneration) }

    /// Whether `status` (of the handle's inode, now) is still the file this handle
    /// opened: the same life of the inode, and not unlinked since. Every use of a
    /// handle asks this first; otherwise the handle is stale.
    public func refersTo(_ status: FileStatus) -> Bool {
        status.inode.rawValue == inode && status.generation == inodeGeneration && status.links > 0
    }
}

/// One lock a client holds (all zero when free).
public struct LockSlot: BitwiseCopyable, Sendable, Equatable {
    public var kind: UInt8
    public var handleSlot: UInt8
    public var reserved: UInt16
    public var inode: UInt32
    public var start: UInt64
    public var end: UInt64

    public static let free = LockSlot(kind: 0, handleSlot: 0, reserved: 0, inode: 0, start: 0, end: 0)

    public var isFree: Bool { kind == 0 }
    public var range: LockRange { LockRange(uncheckedStart: start, end: end) }
    public var lockKind: LockKind? { kind == 0 ? nil : LockKind(rawValue: kind) }
}

/// A file as locks see it: the inode and which of its lives.
public struct FileKey: Equatable, Sendable, BitwiseCopyable {
    public var inode: InodeNumber
    public var generation: UInt32

    public init(inode: InodeNumber, generation: UInt32) {
        self.inode = inode
        self.generation = generation
    }
}

public struct FileSystemClientState: BitwiseCopyable, Sendable {
    public static let handleCount = 8
    public static let lockCount = 8

    public var handles: InlineArray<8, HandleSlot>
    public var locks: InlineArray<8, LockSlot>
    public var handleGeneration: UInt32
    public var reserved: UInt32

    public init(handles: InlineArray<8, HandleSlot>, locks: InlineArray<8, LockSlot>, handleGeneration: UInt32,
                reserved: UInt32) {
        self.handles = handles
        self.locks = locks
        self.handleGeneration = handleGeneration
        self.reserved = reserved
    }

    public static var initial: FileSystemClientState {
        FileSystemClientState(handles: InlineArray(repeating: .free), locks: InlineArray(repeating: .free),
                              handleGeneration: 0, reserved: 0)
    }

    // MARK: Handles

    /// Opens a handle on the file (the server has resolved the path and checked the
    /// flags against the file's type). `tooManyOpen` when all 8 are in use.
    public mutating func open(inode: InodeNumber, generation: UInt32, flags: OpenFlags, offset: UInt64 = 0)
        throws(FileSystemError) -> FileHandle {
        guard inode.rawValue != 0, flags.isValid, offset <= FileSystemLimits.maxOffset else { throw .invalidArgument }
        var free: Int?
        for index in 0..<Self.handleCount where handles[index].isFree {
            free = index
            break
        }
        guard let slot = free else { throw .tooManyOpen }
        var next = handleGeneration &+ 1
        if next == 0 || next > FileHandle.maxGeneration { next = 1 }
        handleGeneration = next
        let handle = FileHandle(slot: slot, generation: next)
        handles[slot] = HandleSlot(id: handle.rawValue, inode: inode.rawValue, inodeGeneration: generation,
                                   flags: flags.rawValue, lastReadCount: 0, offset: offset)
        return handle
    }

    /// The slot of an open handle; `badHandle` if it is not one of ours.
    public func slot(of handle: FileHandle) throws(FileSystemError) -> Int {
        let slot = handle.slot
        guard handle.rawValue != 0, handles[slot].id == handle.rawValue else { throw .badHandle }
        return slot
    }

    /// The open handle's record.
    public func file(_ handle: FileHandle) throws(FileSystemError) -> HandleSlot {
        handles[try slot(of: handle)]
    }

    /// The slot of a handle opened with every access in `access` (`.read`, `.write`);
    /// `badHandle` otherwise, as POSIX answers a read on a write-only descriptor.
    public func slot(of handle: FileHandle, allowing access: OpenFlags) throws(FileSystemError) -> Int {
        let slot = try slot(of: handle)
        guard handles[slot].openFlags.isSuperset(of: access) else { throw .badHandle }
        return slot
    }

    /// Closes the handle and releases every lock the client holds on its file.
    /// Returns the closed record (its `file` is what to release in the lock table).
    public mutating func close(_ handle: FileHandle) throws(FileSystemError) -> HandleSlot {
        let slot = try slot(of: handle)
        let closed = handles[slot]
        releaseLocks(on: closed.file)
        handles[slot] = .free
        return closed
    }

    /// A read of `count` bytes at the handle's offset was done: advance past them,
    /// and remember the count in case the reply must be regenerated.
    public mutating func recordRead(_ handle: FileHandle, count: Int) throws(FileSystemError) {
        let slot = try slot(of: handle, allowing: .read)
        guard count >= 0, count <= FileSystemLimits.maxTransfer,
              UInt64(count) <= FileSystemLimits.maxOffset - handles[slot].offset else { throw .invalidArgument }
        handles[slot].offset += UInt64(count)
        handles[slot].lastReadCount = UInt16(count)
    }

    /// Where a write through this handle goes: its offset, or the end of the file for
    /// a handle opened with `append`.
    public func writePosition(_ handle: FileHandle, fileSize: UInt64) throws(FileSystemError) -> UInt64 {
        let record = handles[try slot(of: handle, allowing: .write)]
        return record.openFlags.contains(.append) ? fileSize : record.offset
    }

    /// `count` bytes were written at `position`: the offset moves past them.
    public mutating func recordWrite(_ handle: FileHandle, at position: UInt64, count: Int) throws(FileSystemError) {
        let slot = try slot(of: handle, allowing: .write)
        guard count >= 0, position <= FileSystemLimits.maxOffset,
              UInt64(count) <= FileSystemLimits.maxOffset - position else { throw .fileTooLarge }
        handles[slot].offset = position + UInt64(count)
        handles[slot].lastReadCount = 0
    }

    /// Moves the offset (`fileSize` is the file's size, for `.end`); returns the new
    /// offset. `invalidArgument` for a target before 0 or past `maxOffset`.
    public mutating func seek(_ handle: FileHandle, offset: Int64, whence: Whence, fileSize: UInt64)
        throws(FileSystemError) -> UInt64 {
        let slot = try slot(of: handle)
        let base: UInt64
        switch whence {
        case .set: base = 0
        case .current: base = handles[slot].offset
        case .end: base = fileSize
        }
        let target: UInt64
        if offset >= 0 {
            guard base <= FileSystemLimits.maxOffset, UInt64(offset) <= FileSystemLimits.maxOffset - base else {
                throw .invalidArgument
            }
            target = base + UInt64(offset)
        } else {
            let back = offset.magnitude
            guard back <= base else { throw .invalidArgument }
            target = base - back
        }
        handles[slot].offset = target
        handles[slot].lastReadCount = 0
        return target
    }

    /// The range a replayed read must re-read: valid when the request being replayed
    /// is a read on this handle (then it was the last thing committed). `file` is the
    /// status of the handle's inode now: `staleHandle` if that is no longer the file
    /// the handle opened, exactly as the read itself would answer now.
    public func readToReplay(_ handle: FileHandle, file: FileStatus) throws(FileSystemError)
        -> (offset: UInt64, count: Int) {
        let record = handles[try slot(of: handle)]
        guard record.refersTo(file) else { throw .staleHandle }
        guard UInt64(record.lastReadCount) <= record.offset else { throw .invalidArgument }
        return (record.offset - UInt64(record.lastReadCount), Int(record.lastReadCount))
    }

    // MARK: Locks

    /// Applies a lock request that the lock table has cleared (no other client's lock
    /// conflicts): the range is replaced by a lock of `kind` (or freed for `.unlock`),
    /// splitting the client's own locks where they stick out of it. Shared locks need
    /// a handle open for reading, exclusive ones for writing (`badHandle`). Throws
    /// `tooManyOpen`, and changes nothing, if the result needs more than 8 slots.
    public mutating func applyLock(_ handle: FileHandle, range: LockRange, kind: LockKind) throws(FileSystemError) {
        guard range.isWellFormed else { throw .invalidArgument }
        let access: OpenFlags = switch kind {
        case .shared: .read
        case .exclusive: .write
        case .unlock: []
        }
        let slot = try slot(of: handle, allowing: access)
        let file = handles[slot].file
        // What the edit needs: a slot per remainder, one for the new lock; it frees
        // the slot of every lock it touches.
        var needed = kind == .unlock ? 0 : 1
        var free = 0
        for index in 0..<Self.lockCount {
            let lock = locks[index]
            if lock.isFree {
                free += 1
            } else if lockFile(lock) == file && lock.range.overlaps(range) {
                let pieces = lock.range.remainders(afterRemoving: range)
                needed += (pieces.before == nil ? 0 : 1) + (pieces.after == nil ? 0 : 1) - 1
            }
        }
        guard needed <= free else { throw .tooManyOpen }
        for index in 0..<Self.lockCount {
            let lock = locks[index]
            guard !lock.isFree, lockFile(lock) == file, lock.range.overlaps(range) else { continue }
            locks[index] = .free
            let pieces = lock.range.remainders(afterRemoving: range)
            if let before = pieces.before { insertLock(LockSlot(lock, range: before)) }
            if let after = pieces.after { insertLock(LockSlot(lock, range: after)) }
        }
        if kind != .unlock {
            insertLock(LockSlot(kind: kind.rawValue, handleSlot: UInt8(slot), reserved: 0, inode: file.inode.rawValue,
                                start: range.start, end: range.end))
        }
    }

    /// Frees every lock on `file` (close, or the client going away).
    public mutating func releaseLocks(on file: FileKey) {
        for index in 0..<Self.lockCount where !locks[index].isFree && lockFile(locks[index]) == file {
            locks[index] = .free
        }
    }

    /// Calls `body` with each held lock: its file, range and kind (to rebuild the
    /// lock table from).
    public func forEachLock(_ body: (FileKey, LockRange, LockKind) -> Void) {
        for index in 0..<Self.lockCount {
            let lock = locks[index]
            guard let kind = lock.lockKind else { continue }
            body(lockFile(lock), lock.range, kind)
        }
    }

    /// The number of held locks.
    public var lockCountHeld: Int {
        var count = 0
        for index in 0..<Self.lockCount where !locks[index].isFree { count += 1 }
        return count
    }

    func lockFile(_ lock: LockSlot) -> FileKey { handles[Int(lock.handleSlot) & (Self.handleCount - 1)].file }

    /// Puts a lock in the first free slot (the caller has counted them).
    mutating func insertLock(_ lock: LockSlot) {
        for index in 0..<Self.lockCount where locks[index].isFree {
            locks[index] = lock
            return
        }
    }

    // MARK: Invariants

    /// The invariants every committed state satisfies; a state that breaks them was
    /// damaged (or computed by a damaged server) and is not trusted.
    public static func isConsistent(_ state: FileSystemClientState) -> Bool {
        guard state.reserved == 0, state.handleGeneration <= FileHandle.maxGeneration else { return false }
        // Through spans: subscripting the arrays of a parameter copied each whole array
        // to read one element.
        let handles = state.handles.span
        let locks = state.locks.span
        for index in 0..<handleCount {
            let record = handles[index]
            if record.isFree {
                guard record == .free else { return false }
                continue
            }
            let flags = record.openFlags
            guard record.handle.slot == index, record.handle.generation != 0, record.inode != 0, flags.isValid,
                  record.offset <= FileSystemLimits.maxOffset,
                  Int(record.lastReadCount) <= FileSystemLimits.maxTransfer,
                  UInt64(record.lastReadCount) <= record.offset,
                  record.lastReadCount == 0 || flags.contains(.read) else { return false }
        }
        for index in 0..<lockCount {
            let lock = locks[index]
            if lock.isFree {
                guard lock == .free else { return false }
                continue
            }
            guard let kind = lock.lockKind, kind != .unlock, lock.reserved == 0,
                  Int(lock.handleSlot) < handleCount, lock.range.isWellFormed else { return false }
            let owner = handles[Int(lock.handleSlot)]
            guard !owner.isFree, owner.inode == lock.inode,
                  owner.openFlags.contains(kind == .shared ? .read : .write) else { return false }
            // A client's own locks on one file never overlap: each edit replaces.
            for other in index + 1 ..< lockCount {
                let second = locks[other]
                if !second.isFree, Int(second.handleSlot) < handleCount,
                   state.lockFile(second) == state.lockFile(lock), second.range.overlaps(lock.range) { return false }
            }
        }
        return true
    }
}

extension LockSlot {
    /// `lock` cut down to `range`.
    init(_ lock: LockSlot, range: LockRange) {
        self = lock
        start = range.start
        end = range.end
    }
}
