// The server's view of every client's byte-range locks, and of the clients waiting
// for one.
//
// Each client's SSR holds its own locks (`FileSystemClientState`); deciding whether
// a request conflicts needs everyone's at once, so the server keeps this table: a
// cache over the SSRs in the paper's sense. After a restart it is rebuilt from them
// (`clear`, then `addHeldLocks` for each client); the waiters are not rebuilt —
// a deferred lock request committed nothing, and the kernel re-delivers it after
// the restart, when the server asks the table again.
//
// Semantics are POSIX record locks between clients: a shared lock overlaps other
// clients' shared locks only, an exclusive lock overlaps no other client's lock, and
// a client's own locks never conflict with each other. Taking or releasing a range
// edits the client's own locks on that file exactly as `applyLock` edits its SSR
// (replace the range, split what sticks out; no merging), so the table always holds
// exactly the locks the SSRs hold — which is what makes `addHeldLocks` a faithful
// rebuild.
//
// Waiters are kept in arrival order. After any release the server calls
// `takeGrantableWaiter` until it returns nil: it hands out, oldest first, each waiter
// whose request no longer conflicts, and the server grants it (`acquire`) before
// asking again, so a waiter granted now blocks the later ones it conflicts with. A
// waiter never blocks an earlier one, and none is skipped for ever unless new
// conflicting locks keep arriving (POSIX promises no more).
//
// Deadlock: before a client waits, the table follows the wait-for graph from the
// holders it would wait for: a holder that is itself waiting waits for the holders
// of its own request, and so on. If the walk comes back to the requesting client,
// waiting would close a cycle and the request fails with `deadlock` instead.
//
// Like the timer's queue this table is the one thing clients depend on that lives
// only in the server, so every entry carries a check word over all its fields and
// the server verifies the table (`isIntact`) before trusting it; a damaged table
// means restart and rebuild. Entries are kept packed ([0, count) in use, the rest
// all zero), and each is 48 bytes with no padding, so every bit is covered:
//
//   offset  size  field
//   0       4     client (TaskID raw value)
//   4       4     inode
//   8       4     inode generation
//   12      4     handle (waiters: the handle of the held request; held locks: 0)
//   16      8     kind (1 shared, 2 exclusive)
//   24      8     start
//   32      8     end (exclusive; UInt64.max = to EOF)
//   40      8     check

/// A client of the filesystem server (its TaskID's raw value: the table needs no
/// system calls, so it does not import the ABI).
public struct ClientID: Hashable, Sendable, BitwiseCopyable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
}

public final class LockTable {
    /// Held locks the table can index.
    public static let capacity = 256
    /// Clients that can wait at once (a client has one request outstanding).
    public static let waiterCapacity = 64

    public struct HeldLock: Equatable, Sendable {
        public var client: ClientID
        public var file: FileKey
        public var range: LockRange
        public var kind: LockKind
    }

    /// A held (deferred) lock request.
    public struct Waiter: Equatable, Sendable {
        public var client: ClientID
        public var handle: FileHandle
        public var file: FileKey
        public var range: LockRange
        public var kind: LockKind

        public init(client: ClientID, handle: FileHandle, file: FileKey, range: LockRange, kind: LockKind) {
            self.client = client
            self.handle = handle
            self.file = file
            self.range = range
            self.kind = kind
        }
    }

    /// Six 8-byte words with no padding (`areUnused` compares them as words).
    struct Entry: Equatable {
        var client: UInt32
        var inode: UInt32
        var generation: UInt32
        var handle: UInt32
        var kind: UInt64
        var start: UInt64
        var end: UInt64
        var check: UInt64

        init(client: UInt32, inode: UInt32, generation: UInt32, handle: UInt32, kind: UInt64, start: UInt64,
             end: UInt64) {
            self.client = client
            self.inode = inode
            self.generation = generation
            self.handle = handle
            self.kind = kind
            self.start = start
            self.end = end
            check = 0
            check = expectedCheck
        }

        init(client: ClientID, file: FileKey, range: LockRange, kind: LockKind, handle: FileHandle? = nil) {
            self.init(client: client.rawValue, inode: file.inode.rawValue, generation: file.generation,
                      handle: handle?.rawValue ?? 0, kind: UInt64(kind.rawValue), start: range.start, end: range.end)
        }

        static let none = Entry(client: 0, inode: 0, generation: 0, handle: 0, kind: 0, start: 0, end: 0)

        /// Each field enters once at its own rotation: a change confined to one field
        /// (or to the check) never cancels out.
        var expectedCheck: UInt64 {
            func rotate(_ value: UInt64, _ by: UInt64) -> UInt64 { value << by | value >> (64 - by) }
            let identity = UInt64(client) | UInt64(inode) << 32
            let fileAndHandle = UInt64(generation) | UInt64(handle) << 32
            return ~(identity ^ rotate(fileAndHandle, 13) ^ rotate(kind, 29) ^ rotate(start, 37) ^ rotate(end, 51))
        }

        var range: LockRange { LockRange(uncheckedStart: start, end: end) }
        var file: FileKey { FileKey(inode: InodeNumber(inode), generation: generation) }
        var owner: ClientID { ClientID(rawValue: client) }
        var lockKind: LockKind { kind == UInt64(LockKind.exclusive.rawValue) ? .exclusive : .shared }

        var isWellFormed: Bool {
            check == expectedCheck && (kind == UInt64(LockKind.shared.rawValue) || kind == UInt64(LockKind.exclusive.rawValue))
                && range.isWellFormed
        }

        /// Whether a request of `kind` by `client` over `range` of `file` must wait for this lock.
        func blocks(_ client: UInt32, _ file: FileKey, _ range: LockRange, _ kind: LockKind) -> Bool {
            self.client != client && self.file == file && self.range.overlaps(range)
                && (kind == .exclusive || lockKind == .exclusive)
        }
    }

    /// Held locks in [0, heldCount), waiters oldest first in [0, waiterCount); the
    /// rest all `.none`. One allocation each, for the server's life (a struct with
    /// inline storage would be copied whole on every read in the embedded build).
    let held: UnsafeMutableBufferPointer<Entry>
    let waiting: UnsafeMutableBufferPointer<Entry>
    public private(set) var heldCount = 0
    public private(set) var waiterCount = 0

    public init() {
        held = UnsafeMutableBufferPointer<Entry>.allocate(capacity: Self.capacity)
        held.initialize(repeating: .none)
        waiting = UnsafeMutableBufferPointer<Entry>.allocate(capacity: Self.waiterCapacity)
        waiting.initialize(repeating: .none)
    }

    deinit {
        held.deallocate()
        waiting.deallocate()
    }

    public func heldLock(at index: Int) -> HeldLock {
        let entry = held[index]
        return HeldLock(client: entry.owner, file: entry.file, range: entry.range, kind: entry.lockKind)
    }

    public func waiter(at index: Int) -> Waiter {
        let entry = waiting[index]
        return Waiter(client: entry.owner, handle: FileHandle(rawValue: entry.handle), file: entry.file,
                      range: entry.range, kind: entry.lockKind)
    }

    // MARK: Held locks

    /// Another client whose lock the request must wait for; nil if it can be granted
    /// now (always for `.unlock`).
    public func conflictingHolder(client: ClientID, file: FileKey, range: LockRange, kind: LockKind) -> ClientID? {
        guard kind != .unlock else { return nil }
        for index in 0..<heldCount where held[index].blocks(client.rawValue, file, range, kind) {
            return held[index].owner
        }
        return nil
    }

    /// Takes (or, for `.unlock`, releases) the range for `client`, replacing its own
    /// locks there. `wouldBlock` if another client's lock conflicts; `tooManyOpen` if
    /// the table has no room for the result. Either way nothing changes.
    public func acquire(client: ClientID, file: FileKey, range: LockRange, kind: LockKind) throws(FileSystemError) {
        guard range.isWellFormed else { throw .invalidArgument }
        guard conflictingHolder(client: client, file: file, range: range, kind: kind) == nil else { throw .wouldBlock }
        try replace(client: client, file: file, range: range, with: kind == .unlock ? nil : kind)
    }

    /// Gives up `client`'s locks over `range` of `file` (splitting a lock that sticks
    /// out on both sides, which can need a slot: `tooManyOpen`, nothing changed).
    public func release(client: ClientID, file: FileKey, range: LockRange) throws(FileSystemError) {
        guard range.isWellFormed else { throw .invalidArgument }
        try replace(client: client, file: file, range: range, with: nil)
    }

    /// Drops every lock `client` holds on `file` (it closed a handle of the file).
    public func releaseAll(client: ClientID, file: FileKey) {
        removeHeld { $0.client == client.rawValue && $0.file == file }
    }

    /// Drops every lock `client` holds and its waiting request (it ended, or its
    /// state was lost).
    public func forget(client: ClientID) {
        removeHeld { $0.client == client.rawValue }
        _ = removeWaiter(client: client)
    }

    /// Empties the table: the first step of a rebuild.
    public func clear() {
        held.update(repeating: .none)
        waiting.update(repeating: .none)
        heldCount = 0
        waiterCount = 0
    }

    /// Rebuild: adds the locks `state` records for `client` as they are (they were
    /// granted before the restart). `tooManyOpen`, adding none, if they do not fit.
    public func addHeldLocks(of client: ClientID, from state: FileSystemClientState) throws(FileSystemError) {
        guard state.lockCountHeld <= Self.capacity - heldCount else { throw .tooManyOpen }
        state.forEachLock { file, range, kind in
            held[heldCount] = Entry(client: client, file: file, range: range, kind: kind)
            heldCount += 1
        }
    }

    /// The POSIX edit of one client's locks on one file: `range` becomes `kind` (nil:
    /// free), what sticks out of it stays as it was.
    func replace(client: ClientID, file: FileKey, range: LockRange, with kind: LockKind?) throws(FileSystemError) {
        var needed = kind == nil ? 0 : 1
        for index in 0..<heldCount {
            let entry = held[index]
            guard entry.client == client.rawValue, entry.file == file, entry.range.overlaps(range) else { continue }
            let pieces = entry.range.remainders(afterRemoving: range)
            needed += (pieces.before == nil ? 0 : 1) + (pieces.after == nil ? 0 : 1) - 1
        }
        guard needed <= Self.capacity - heldCount else { throw .tooManyOpen }
        var index = 0
        while index < heldCount {
            let entry = held[index]
            guard entry.client == client.rawValue, entry.file == file, entry.range.overlaps(range) else {
                index += 1
                continue
            }
            let pieces = entry.range.remainders(afterRemoving: range)
            switch (pieces.before, pieces.after) {
            case (nil, nil):
                removeHeld(at: index)  // the last entry moved here: look at it next
            case (let piece?, nil), (nil, let piece?):
                held[index] = Entry(client: client, file: file, range: piece, kind: entry.lockKind)
                index += 1
            case (let before?, let after?):
                held[index] = Entry(client: client, file: file, range: before, kind: entry.lockKind)
                held[heldCount] = Entry(client: client, file: file, range: after, kind: entry.lockKind)
                heldCount += 1
                index += 1
            }
        }
        if let kind {
            held[heldCount] = Entry(client: client, file: file, range: range, kind: kind)
            heldCount += 1
        }
    }

    func removeHeld(at index: Int) {
        heldCount -= 1
        held[index] = held[heldCount]
        held[heldCount] = .none
    }

    func removeHeld(where matches: (Entry) -> Bool) {
        var index = 0
        while index < heldCount {
            if matches(held[index]) { removeHeld(at: index) } else { index += 1 }
        }
    }

    // MARK: Waiters

    /// Records a request that must wait. `deadlock` if waiting would close a cycle of
    /// clients waiting for each other, `tooManyOpen` if the list is full; a client's
    /// earlier waiting request (there is at most one) is replaced.
    public func enqueue(_ waiter: Waiter) throws(FileSystemError) {
        guard waiter.kind != .unlock, waiter.range.isWellFormed else { throw .invalidArgument }
        _ = removeWaiter(client: waiter.client)
        guard !wouldDeadlock(waiter) else { throw .deadlock }
        guard waiterCount < Self.waiterCapacity else { throw .tooManyOpen }
        waiting[waiterCount] = Entry(client: waiter.client, file: waiter.file, range: waiter.range, kind: waiter.kind,
                                     handle: waiter.handle)
        waiterCount += 1
    }

    /// Whether `request`, waiting, would wait (through other waiting clients) for
    /// its own client.
    public func wouldDeadlock(_ request: Waiter) -> Bool {
        // Waiters reached by the walk, and those whose blockers were followed: one bit
        // per waiter slot.
        var reached: UInt64 = 0
        var followed: UInt64 = 0
        func follow(client: UInt32, file: FileKey, range: LockRange, kind: LockKind) -> Bool {
            for index in 0..<heldCount where held[index].blocks(client, file, range, kind) {
                let holder = held[index].client
                if holder == request.client.rawValue { return true }
                if let waiter = waiterIndex(of: holder) { reached |= 1 << UInt64(waiter) }
            }
            return false
        }
        if follow(client: request.client.rawValue, file: request.file, range: request.range, kind: request.kind) {
            return true
        }
        while reached & ~followed != 0 {
            let next = (reached & ~followed).trailingZeroBitCount
            followed |= 1 << UInt64(next)
            let entry = waiting[next]
            if follow(client: entry.client, file: entry.file, range: entry.range, kind: entry.lockKind) { return true }
        }
        return false
    }

    func waiterIndex(of client: UInt32) -> Int? {
        for index in 0..<waiterCount where waiting[index].client == client { return index }
        return nil
    }

    /// Removes and returns the oldest waiter whose request no longer conflicts; the
    /// server grants it (`acquire`) before asking for the next.
    public func takeGrantableWaiter() -> Waiter? {
        for index in 0..<waiterCount {
            let entry = waiting[index]
            guard conflictingHolder(client: entry.owner, file: entry.file, range: entry.range, kind: entry.lockKind) == nil
            else { continue }
            let granted = waiter(at: index)
            removeWaiter(at: index)
            return granted
        }
        return nil
    }

    /// Removes `client`'s waiting request, if it has one.
    public func removeWaiter(client: ClientID) -> Waiter? {
        guard let index = waiterIndex(of: client.rawValue) else { return nil }
        let removed = waiter(at: index)
        removeWaiter(at: index)
        return removed
    }

    /// Keeps arrival order: the later waiters move up one.
    func removeWaiter(at index: Int) {
        for position in index ..< waiterCount - 1 { waiting[position] = waiting[position + 1] }
        waiterCount -= 1
        waiting[waiterCount] = .none
    }

    // MARK: Integrity

    /// True if no entry has been damaged since it was written: counts in range, every
    /// entry in use well formed and matching its check word, every other one zero.
    public var isIntact: Bool {
        guard heldCount >= 0, heldCount <= Self.capacity, waiterCount >= 0, waiterCount <= Self.waiterCapacity else {
            return false
        }
        for index in 0..<heldCount {
            guard held[index].isWellFormed, held[index].handle == 0 else { return false }
        }
        for index in 0..<waiterCount {
            guard waiting[index].isWellFormed, waiting[index].handle != 0 else { return false }
        }
        return Self.areUnused(UnsafeMutableBufferPointer(rebasing: held[heldCount...]))
            && Self.areUnused(UnsafeMutableBufferPointer(rebasing: waiting[waiterCount...]))
    }

    /// Whether every entry is `.none`, compared a word at a time: this runs before
    /// every request, over some 300 unused entries, and comparing them field by field
    /// (with `.none` fetched through its lazy initialiser each time) cost about 12,000
    /// instructions a request.
    private static func areUnused(_ entries: UnsafeMutableBufferPointer<Entry>) -> Bool {
        guard let base = entries.baseAddress else { return true }
        var none = Entry.none
        return withUnsafeBytes(of: &none) { expected in
            let raw = UnsafeRawPointer(base)
            for index in 0..<entries.count {
                let entry = raw + index * MemoryLayout<Entry>.stride
                for offset in stride(from: 0, to: MemoryLayout<Entry>.size, by: 8)
                where entry.load(fromByteOffset: offset, as: UInt64.self) != expected.load(fromByteOffset: offset, as: UInt64.self) {
                    return false
                }
            }
            return true
        }
    }
}
