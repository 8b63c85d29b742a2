// One client's SSR state on the host: handles and their generations, access
// checks, offsets, the read replay, POSIX lock edits, the invariant checker (which
// every operation must keep happy and every damage must upset), and the fit of the
// whole state, committed through the real SSR format, in a 4 KiB region.

@testable import FileSystemCore
import SSRFormat
import Testing

let fileA = FileKey(inode: InodeNumber(12), generation: 1)
let fileB = FileKey(inode: InodeNumber(13), generation: 7)

func range(_ start: UInt64, _ end: UInt64) -> LockRange { LockRange(uncheckedStart: start, end: end) }

/// The state's locks as sorted (inode, start, end, kind) tuples.
func lockList(_ state: FileSystemClientState) -> [String] {
    var list: [String] = []
    state.forEachLock { file, range, kind in list.append("\(file.inode.rawValue):\(range.start)-\(range.end):\(kind)") }
    return list.sorted()
}

@Suite struct ClientStateTests {
    @Test func stateIsSmallAndFitsAnSSR() {
        #expect(MemoryLayout<HandleSlot>.size == 24 && MemoryLayout<LockSlot>.size == 24)
        #expect(MemoryLayout<FileSystemClientState>.size == 392)
        #expect(MemoryLayout<FileSystemClientState>.size < 400)
        #expect(SSRFormat<FileSystemClientState, SSRMemory>.requiredBytes <= 4096)
    }

    @Test func aCommittedStateLoadsBackThroughTheSSRFormat() throws {
        let region = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { region.deallocate() }
        region.initializeMemory(as: UInt8.self, repeating: 0)
        let format = SSRFormat<FileSystemClientState, SSRMemory>(storage: SSRMemory(region), layoutVersion: 1,
                                                                 owner: 0x0002_0005)
        var state = FileSystemClientState.initial
        let handle = try state.open(inode: fileA.inode, generation: fileA.generation, flags: .readWrite)
        try state.recordRead(handle, count: 100)
        try state.applyLock(handle, range: range(0, 50), kind: .exclusive)
        format.commit(state: state, requestID: 7, reply: SSRReply(code: 0, word0: 100, word1: 100))
        guard case .committed(let record) = format.load() else {
            Issue.record("the commit should load")
            return
        }
        #expect(record.requestID == 7)
        #expect(record.state.handles[handle.slot] == state.handles[handle.slot])
        #expect(lockList(record.state) == lockList(state))
        #expect(FileSystemClientState.isConsistent(record.state))
    }

    @Test func handlesAreNumberedBySlotAndGeneration() throws {
        var state = FileSystemClientState.initial
        var handles: [FileHandle] = []
        for index in 0..<8 {
            handles.append(try state.open(inode: InodeNumber(UInt32(20 + index)), generation: 1, flags: .read))
        }
        #expect(Set(handles.map(\.slot)) == Set(0..<8))
        #expect(Set(handles.map(\.rawValue)).count == 8 && !handles.contains { $0.rawValue == 0 })
        #expect(throws: FileSystemError.tooManyOpen) { try state.open(inode: InodeNumber(99), generation: 1, flags: .read) }
        let closed = try state.close(handles[3])
        #expect(closed.inode == 23)
        let reused = try state.open(inode: InodeNumber(99), generation: 1, flags: .read)
        #expect(reused.slot == 3 && reused != handles[3])
        #expect(throws: FileSystemError.badHandle) { try state.file(handles[3]) }
        #expect(throws: FileSystemError.badHandle) { try state.close(handles[3]) }
        #expect(throws: FileSystemError.badHandle) { try state.file(FileHandle(rawValue: 0)) }
        #expect(try state.file(reused).inode == 99)
        #expect(FileSystemClientState.isConsistent(state))
    }

    @Test func handleGenerationsWrapWithoutReachingZero() throws {
        var state = FileSystemClientState.initial
        state.handleGeneration = FileHandle.maxGeneration
        let handle = try state.open(inode: fileA.inode, generation: 1, flags: .read)
        #expect(handle.generation == 1 && state.handleGeneration == 1)
        #expect(FileSystemClientState.isConsistent(state))
    }

    @Test func openRefusesNonsense() {
        var state = FileSystemClientState.initial
        #expect(throws: FileSystemError.invalidArgument) { try state.open(inode: InodeNumber(0), generation: 1, flags: .read) }
        #expect(throws: FileSystemError.invalidArgument) { try state.open(inode: fileA.inode, generation: 1, flags: .create) }
        #expect(throws: FileSystemError.invalidArgument) {
            try state.open(inode: fileA.inode, generation: 1, flags: .read, offset: UInt64.max)
        }
    }

    @Test func accessFollowsTheOpenFlags() throws {
        var state = FileSystemClientState.initial
        let reader = try state.open(inode: fileA.inode, generation: 1, flags: .read)
        let writer = try state.open(inode: fileA.inode, generation: 1, flags: .write)
        #expect(throws: FileSystemError.badHandle) { try state.recordRead(writer, count: 1) }
        #expect(throws: FileSystemError.badHandle) { try state.writePosition(reader, fileSize: 0) }
        #expect(throws: FileSystemError.badHandle) { try state.recordWrite(reader, at: 0, count: 1) }
        #expect(throws: FileSystemError.badHandle) { try state.applyLock(writer, range: range(0, 1), kind: .shared) }
        #expect(throws: FileSystemError.badHandle) { try state.applyLock(reader, range: range(0, 1), kind: .exclusive) }
        try state.applyLock(reader, range: range(0, 1), kind: .shared)
        try state.applyLock(writer, range: range(5, 6), kind: .exclusive)
        #expect(FileSystemClientState.isConsistent(state))
    }

    /// The status of `file` as the volume would give it now.
    func status(_ file: FileKey, links: UInt16 = 1) -> FileStatus {
        FileStatus(inode: file.inode, type: .regular, permissions: 0o644, links: links, size: 1 << 20, sectors: 0,
                   generation: file.generation, modified: 0, changed: 0, accessed: 0)
    }

    @Test func readsAdvanceAndCanBeReplayed() throws {
        var state = FileSystemClientState.initial
        let handle = try state.open(inode: fileA.inode, generation: fileA.generation, flags: .read)
        try state.recordRead(handle, count: 4096)
        try state.recordRead(handle, count: 300)
        #expect(try state.file(handle).offset == 4396)
        #expect(try state.readToReplay(handle, file: status(fileA)) == (4096, 300))
        try state.recordRead(handle, count: 0)  // at the end of the file
        #expect(try state.readToReplay(handle, file: status(fileA)) == (4396, 0))
        #expect(throws: FileSystemError.invalidArgument) { try state.recordRead(handle, count: 4097) }
        #expect(throws: FileSystemError.invalidArgument) { try state.recordRead(handle, count: -1) }
        #expect(try state.seek(handle, offset: 10, whence: .set, fileSize: 0) == 10)
        #expect(try state.readToReplay(handle, file: status(fileA)) == (10, 0), "a seek forgets the read")
        #expect(FileSystemClientState.isConsistent(state))
    }

    /// A read answered and committed just before a crash is replayed from the handle;
    /// meanwhile another client may have deleted the file and a third reused its
    /// inode. The replay must then answer what the read would (stale handle), not
    /// regenerate the reply from the new file's bytes.
    @Test func aReplayedReadChecksTheInodeGenerationAsAReadDoes() throws {
        var state = FileSystemClientState.initial
        let handle = try state.open(inode: fileA.inode, generation: fileA.generation, flags: .read)
        try state.recordRead(handle, count: 512)
        let reused = FileKey(inode: fileA.inode, generation: fileA.generation + 1)
        #expect(throws: FileSystemError.staleHandle) { try state.readToReplay(handle, file: status(reused)) }
        #expect(throws: FileSystemError.staleHandle) { try state.readToReplay(handle, file: status(fileA, links: 0)) }
        #expect(throws: FileSystemError.staleHandle) { try state.readToReplay(handle, file: status(fileB)) }
        #expect(try state.readToReplay(handle, file: status(fileA)) == (0, 512))
        let record = try state.file(handle)
        #expect(!record.refersTo(status(reused)) && record.refersTo(status(fileA)))
    }

    @Test func writesGoToTheOffsetOrTheEnd() throws {
        var state = FileSystemClientState.initial
        let plain = try state.open(inode: fileA.inode, generation: 1, flags: .readWrite)
        let appending = try state.open(inode: fileA.inode, generation: 1, flags: [.write, .append])
        try state.recordRead(plain, count: 10)
        #expect(try state.writePosition(plain, fileSize: 500) == 10)
        try state.recordWrite(plain, at: 10, count: 20)
        #expect(try state.file(plain).offset == 30 && state.file(plain).lastReadCount == 0)
        #expect(try state.writePosition(appending, fileSize: 500) == 500)
        try state.recordWrite(appending, at: 500, count: 8)
        #expect(try state.file(appending).offset == 508)
        #expect(throws: FileSystemError.fileTooLarge) {
            try state.recordWrite(plain, at: FileSystemLimits.maxOffset - 2, count: 3)
        }
        #expect(FileSystemClientState.isConsistent(state))
    }

    @Test func seekFromEachOrigin() throws {
        var state = FileSystemClientState.initial
        let handle = try state.open(inode: fileA.inode, generation: 1, flags: .read)
        #expect(try state.seek(handle, offset: 100, whence: .set, fileSize: 50) == 100)
        #expect(try state.seek(handle, offset: -30, whence: .current, fileSize: 50) == 70)
        #expect(try state.seek(handle, offset: -50, whence: .end, fileSize: 50) == 0)
        #expect(try state.seek(handle, offset: 7, whence: .end, fileSize: 50) == 57)
        #expect(throws: FileSystemError.invalidArgument) { try state.seek(handle, offset: -1, whence: .set, fileSize: 50) }
        #expect(throws: FileSystemError.invalidArgument) { try state.seek(handle, offset: -58, whence: .current, fileSize: 0) }
        #expect(throws: FileSystemError.invalidArgument) { try state.seek(handle, offset: Int64.min, whence: .end, fileSize: 5) }
        #expect(throws: FileSystemError.invalidArgument) {
            try state.seek(handle, offset: Int64.max, whence: .current, fileSize: 0)
        }
        #expect(try state.file(handle).offset == 57, "a refused seek leaves the offset")
        #expect(try state.seek(handle, offset: Int64.max, whence: .set, fileSize: 0) == FileSystemLimits.maxOffset)
        #expect(throws: FileSystemError.badHandle) { try state.seek(FileHandle(rawValue: 0x99), offset: 0, whence: .set, fileSize: 0) }
    }

    @Test func locksReplaceAndSplitTheClientsOwnRanges() throws {
        var state = FileSystemClientState.initial
        let handle = try state.open(inode: fileA.inode, generation: fileA.generation, flags: .readWrite)
        try state.applyLock(handle, range: range(0, 100), kind: .shared)
        try state.applyLock(handle, range: range(40, 60), kind: .exclusive)  // upgrade the middle
        #expect(lockList(state) == ["12:0-40:shared", "12:40-60:exclusive", "12:60-100:shared"])
        try state.applyLock(handle, range: range(50, LockRange.toEndOfFile), kind: .unlock)
        #expect(lockList(state) == ["12:0-40:shared", "12:40-50:exclusive"])
        try state.applyLock(handle, range: range(0, 200), kind: .shared)  // covers all: replaces both
        #expect(lockList(state) == ["12:0-200:shared"])
        try state.applyLock(handle, range: range(300, 400), kind: .shared)  // not merged, not touched
        #expect(lockList(state) == ["12:0-200:shared", "12:300-400:shared"])
        try state.applyLock(handle, range: range(0, 1000), kind: .unlock)
        #expect(lockList(state).isEmpty)
        #expect(FileSystemClientState.isConsistent(state))
    }

    @Test func runningOutOfLockSlotsChangesNothing() throws {
        var state = FileSystemClientState.initial
        let handle = try state.open(inode: fileA.inode, generation: 1, flags: .readWrite)
        for index in 0..<8 { try state.applyLock(handle, range: range(UInt64(index) * 10, UInt64(index) * 10 + 5), kind: .shared) }
        #expect(throws: FileSystemError.tooManyOpen) { try state.applyLock(handle, range: range(200, 300), kind: .shared) }
        let before = lockList(state)
        // Splitting [70, 75) in the middle needs a ninth slot.
        #expect(throws: FileSystemError.tooManyOpen) { try state.applyLock(handle, range: range(72, 73), kind: .unlock) }
        #expect(lockList(state) == before)
        // Replacing the whole of one lock needs none.
        try state.applyLock(handle, range: range(70, 75), kind: .exclusive)
        // Covering three locks with one frees two.
        try state.applyLock(handle, range: range(0, 25), kind: .exclusive)
        #expect(state.lockCountHeld == 6)
        #expect(FileSystemClientState.isConsistent(state))
    }

    @Test func closingAnyHandleOfAFileReleasesAllItsLocks() throws {
        var state = FileSystemClientState.initial
        let first = try state.open(inode: fileA.inode, generation: fileA.generation, flags: .readWrite)
        let second = try state.open(inode: fileA.inode, generation: fileA.generation, flags: .read)
        let other = try state.open(inode: fileB.inode, generation: fileB.generation, flags: .read)
        try state.applyLock(first, range: range(0, 10), kind: .exclusive)
        try state.applyLock(second, range: range(20, 30), kind: .shared)
        try state.applyLock(other, range: range(0, 10), kind: .shared)
        #expect(state.lockCountHeld == 3)
        let closed = try state.close(second)
        #expect(closed.file == fileA)
        #expect(lockList(state) == ["13:0-10:shared"])
        #expect(FileSystemClientState.isConsistent(state))
    }

    // MARK: Invariants

    /// A state with two handles and locks, for the damage cases.
    func busyState() throws -> FileSystemClientState {
        var state = FileSystemClientState.initial
        let first = try state.open(inode: fileA.inode, generation: fileA.generation, flags: .readWrite)
        let second = try state.open(inode: fileB.inode, generation: fileB.generation, flags: .read)
        try state.recordRead(second, count: 64)
        try state.applyLock(first, range: range(0, 10), kind: .exclusive)
        try state.applyLock(second, range: range(5, LockRange.toEndOfFile), kind: .shared)
        return state
    }

    @Test func invariantsRejectDamagedStates() throws {
        let good = try busyState()
        #expect(FileSystemClientState.isConsistent(good))
        #expect(FileSystemClientState.isConsistent(.initial))
        let lock0 = (0..<8).first { !good.locks[$0].isFree }!
        let sharedLock = (0..<8).first { good.locks[$0].kind == LockKind.shared.rawValue }!
        #expect(good.handles[Int(good.locks[sharedLock].handleSlot)].openFlags == .read)
        let damage: [(String, (inout FileSystemClientState) -> Void)] = [
            ("reserved", { $0.reserved = 1 }),
            ("generation", { $0.handleGeneration = FileHandle.maxGeneration + 1 }),
            ("free handle with data", { $0.handles[5].offset = 1 }),
            ("handle in the wrong slot", { $0.handles[0].id = FileHandle(slot: 1, generation: 1).rawValue }),
            ("handle of generation 0", { $0.handles[1].id = FileHandle(slot: 1, generation: 0).rawValue }),
            ("handle without inode", { $0.handles[0].inode = 0 }),
            ("bad flags", { $0.handles[0].flags = OpenFlags.create.rawValue }),
            ("unknown flag", { $0.handles[0].flags |= 1 << 9 }),
            ("offset too large", { $0.handles[0].offset = UInt64.max }),
            ("read longer than a message", { $0.handles[1].lastReadCount = 4097; $0.handles[1].offset = 5000 }),
            ("read before the start", { $0.handles[1].lastReadCount = 65 }),
            ("read on a write-only handle", { $0.handles[0].flags = OpenFlags.write.rawValue
                                              $0.handles[0].offset = 5; $0.handles[0].lastReadCount = 5 }),
            ("free lock with data", { $0.locks[7].end = 9 }),
            ("lock kind", { $0.locks[lock0].kind = 3 }),
            ("lock kind unknown", { $0.locks[lock0].kind = 9 }),
            ("lock reserved", { $0.locks[lock0].reserved = 1 }),
            ("lock on a free handle", { $0.locks[lock0].handleSlot = 4 }),
            ("lock past the table", { $0.locks[lock0].handleSlot = 8 }),
            ("lock inode disagrees", { $0.locks[lock0].inode = 77 }),
            ("empty range", { $0.locks[lock0].end = $0.locks[lock0].start }),
            ("range beyond offsets", { $0.locks[lock0].end = UInt64.max - 1 }),
            ("exclusive lock on a read-only handle", { $0.locks[sharedLock].kind = LockKind.exclusive.rawValue }),
            ("own locks overlap", { $0.locks[6] = $0.locks[lock0] }),
        ]
        for (name, change) in damage {
            var broken = good
            change(&broken)
            #expect(!FileSystemClientState.isConsistent(broken), "\(name)")
        }
    }

    @Test func randomOperationsKeepTheInvariants() throws {
        var random: UInt64 = 0x1234_5678_9ABC_DEF1
        func next(_ bound: Int) -> Int {
            random ^= random << 13
            random ^= random >> 7
            random ^= random << 17
            return Int(random % UInt64(bound))
        }
        var state = FileSystemClientState.initial
        var open: [FileHandle] = []
        for _ in 0..<3000 {
            let handle = open.isEmpty ? FileHandle(rawValue: 1) : open[next(open.count)]
            switch next(8) {
            case 0:
                let flags: [OpenFlags] = [.read, .write, .readWrite, [.write, .append]]
                if let opened = try? state.open(inode: InodeNumber(UInt32(10 + next(3))), generation: 1,
                                                flags: flags[next(4)]) { open.append(opened) }
            case 1:
                if (try? state.close(handle)) != nil { open.removeAll { $0 == handle } }
            case 2: _ = try? state.recordRead(handle, count: next(4097))
            case 3: _ = try? state.recordWrite(handle, at: UInt64(next(10000)), count: next(4097))
            case 4: _ = try? state.seek(handle, offset: Int64(next(2000)) - 1000, whence: [.set, .current, .end][next(3)],
                                        fileSize: UInt64(next(5000)))
            default:
                let start = UInt64(next(100))
                let end = next(5) == 0 ? LockRange.toEndOfFile : start + 1 + UInt64(next(50))
                _ = try? state.applyLock(handle, range: range(start, end), kind: [.shared, .exclusive, .unlock][next(3)])
            }
            #expect(FileSystemClientState.isConsistent(state))
        }
    }
}
