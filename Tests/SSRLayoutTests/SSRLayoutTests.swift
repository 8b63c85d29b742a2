// The two SSR layouts of the timer and of fs (TimerLayouts.swift,
// FileSystemRecordLayouts.swift): each holds the state the server computes with
// without loss, layout 2 lies where its essay draws it, its commits store only what
// is in use, and a region of layout 1 migrated by SSRFormat reads back as the same
// state in layout 2.

import Ext2
import FileSystemCore
import FileSystemService
import SSRFormat
import Testing
import TimerCore

/// A region of `bytes` for the tests, 8-byte aligned.
final class TestRegion: SSRStorage {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    var stores = 0

    init() { buffer.initializeMemory(as: UInt8.self, repeating: 0) }
    deinit { buffer.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(buffer) }
    func store(_ word: UInt64, at offset: Int) {
        stores += 1
        buffer.storeBytes(of: word, toByteOffset: offset, as: UInt64.self)
    }
    func publish(_ word: UInt64, at offset: Int) { store(word, at: offset) }
}

func bytes<T>(of value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

/// Commits `old` in layout `Old`, migrates the region to `New` as the runtime does, and
/// returns the state layout `New` then reads.
func migrated<Old: SSRStateLayout, New: SSRStateLayout>(_ old: Old, to _: New.Type) -> New.Canonical?
    where New.Previous == Old {
    let region = TestRegion()
    let before = SSRFormat<Old, TestRegion>(storage: region, layoutVersion: Old.layoutVersion, owner: 9)
    before.commit(state: old, requestID: 4, reply: SSRReply(code: 0, word0: 1, word1: 2))
    guard case .committed(let commit) = before.loadCommit(), var migrated = New.migrating(before.state(of: commit))
    else { return nil }
    var previous = before.state(of: commit)
    let after = SSRFormat<New, TestRegion>(storage: region, layoutVersion: New.layoutVersion, owner: 9)
    withUnsafePointer(to: &previous) { previous in
        withUnsafePointer(to: &migrated) { state in
            after.migrate(from: before, commit: commit, previousState: previous, state: state,
                          significantBytes: New.significantBytes(of: state))
        }
    }
    guard case .committed(let result) = after.loadCommit(), result.requestID == 4 else { return nil }
    return after.state(of: result).state
}

@Suite struct TimerLayoutTests {
    /// A client with timers in slots 0 and 2 (as a cancel of slot 1 leaves it).
    static var client: TimerClientState {
        var state = TimerClientState.initial
        _ = TimerLogic.start(&state, period: 10_000, repeating: true, now: 1_000)
        _ = TimerLogic.start(&state, period: 20_000, repeating: false, now: 1_000)
        _ = TimerLogic.start(&state, period: 30_000, repeating: true, now: 2_000)
        _ = TimerLogic.cancel(&state, id: state.slots[1].id)
        return state
    }

    @Test func layoutTwoHoldsTheStateAndLiesAsDrawn() {
        let state = Self.client
        #expect(bytes(of: TimerStateV2(state).state) == bytes(of: state))
        #expect(MemoryLayout<TimerStateV2>.size == MemoryLayout<TimerClientState>.size)
        #expect(MemoryLayout<TimerStateV2>.offset(of: \.slots) == 8)
        #expect(MemoryLayout<TimerClientState>.offset(of: \.generation) == 128)
    }

    @Test func layoutTwoStoresOnlyTheTimersInUse() {
        var state = TimerStateV2(Self.client)
        #expect(TimerStateV2.significantBytes(of: &state) == 8 + 3 * 32, "up to slot 2")
        var empty = TimerStateV2(.initial)
        #expect(TimerStateV2.significantBytes(of: &empty) == 8)
        var one = TimerClientState.initial
        _ = TimerLogic.start(&one, period: 10_000, repeating: true, now: 0)
        var single = TimerStateV2(one)
        #expect(TimerStateV2.significantBytes(of: &single) == 40)
        // The format stores that many, and the state reads back whole.
        let region = TestRegion()
        let format = SSRFormat<TimerStateV2, TestRegion>(storage: region, layoutVersion: 2, owner: 3)
        format.commit(state: single, significantBytes: 40, requestID: 1, reply: SSRReply())
        guard case .committed(let commit) = format.loadCommit() else {
            Issue.record("no commit")
            return
        }
        #expect(commit.storedStateBytes == 40)
        #expect(bytes(of: format.state(of: commit).state) == bytes(of: one))
    }

    @Test func aRegionOfLayoutOneMigratesToTheSameTimers() throws {
        let state = try #require(migrated(Self.client, to: TimerStateV2.self))
        #expect(bytes(of: state) == bytes(of: Self.client))
        #expect(TimerLogic.isConsistent(state))
    }
}

@Suite struct FileSystemLayoutTests {
    /// A client with two files open, the second at offset 4096, and one lock.
    static var client: FileSystemClientRecord {
        var record = FileSystemClientRecord.initial
        let first = try! record.files.open(inode: InodeNumber(12), generation: 1, flags: .read)
        let second = try! record.files.open(inode: InodeNumber(13), generation: 7, flags: [.read, .write])
        try! record.files.recordWrite(second, at: 0, count: 4096)
        try! record.files.applyLock(first, range: try! LockRange(start: 0, length: 100), kind: .shared)
        return record
    }

    @Test func layoutTwoHoldsTheRecordAndLiesAsDrawn() {
        let record = Self.client
        #expect(bytes(of: FileSystemRecordV2(record).state) == bytes(of: record))
        #expect(MemoryLayout<FileSystemRecordV2>.size == MemoryLayout<FileSystemClientRecord>.size)
        #expect(MemoryLayout<FileSystemRecordV2>.offset(of: \.handles) == 8)
        #expect(MemoryLayout<FileSystemRecordV2>.offset(of: \.locks) == 200)
        #expect(MemoryLayout<FileSystemRecordV2>.offset(of: \.appendRequest) == 392)
        #expect(MemoryLayout<FileSystemRecordV2>.offset(of: \.intent) == 408)
        #expect(MemoryLayout<FileSystemClientRecord>.offset(of: \.intent) == 392)
    }

    @Test func layoutTwoStoresOnlyTheHandlesAndLocksInUse() {
        var record = FileSystemRecordV2(Self.client)
        #expect(FileSystemRecordV2.significantBytes(of: &record) == 200 + 24, "up to the one lock")
        var unlocked = Self.client
        unlocked.files.locks[0] = .free
        var handles = FileSystemRecordV2(unlocked)
        #expect(FileSystemRecordV2.significantBytes(of: &handles) == 8 + 2 * 24, "up to the second handle")
        var updating = unlocked
        updating.intent = Ext2Intent(tag: 5)
        var busy = FileSystemRecordV2(updating)
        #expect(FileSystemRecordV2.significantBytes(of: &busy) == MemoryLayout<FileSystemRecordV2>.size,
                "an update in progress stores everything")
    }

    @Test func aRegionOfLayoutOneMigratesToTheSameFilesAndLocks() throws {
        let record = try #require(migrated(Self.client, to: FileSystemRecordV2.self))
        #expect(bytes(of: record) == bytes(of: Self.client))
        #expect(FileSystemClientState.isConsistent(record.files))
    }
}
