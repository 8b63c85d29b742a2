// Migrating a region to a new version's layout (a live upgrade): cut off after any
// one of its stores, the region reads as the old layout's commit or the new one's,
// holding the same answered request, and is never judged lost; the copies of the two
// layouts never step on each other, whichever copy was active and whichever way the
// state's size changed; and a region of a layout a server does not know is told apart
// from damage.

import SSRFormat
import Testing

/// The old layout: the Sample state (26 bytes, one copy every 88 bytes).
private typealias OldFormat = SSRFormat<Sample, CrashingStorage>

/// A new layout, wider than the old: Sample's fields in another order, and more.
private struct Wide: BitwiseCopyable, Equatable {
    var tail: UInt16
    var flags: UInt8
    var counter: UInt64
    var values: (UInt32, UInt32, UInt32)
    var history: InlineArray<6, UInt64>

    init(migrating old: Sample) {
        tail = old.tail
        flags = old.flags
        counter = old.counter
        values = old.values
        history = InlineArray(repeating: 0)
        history[0] = old.counter &+ 1
    }

    static func == (a: Wide, b: Wide) -> Bool {
        a.tail == b.tail && a.flags == b.flags && a.counter == b.counter && a.values.0 == b.values.0
            && a.values.1 == b.values.1 && a.values.2 == b.values.2 && (0..<6).allSatisfy { a.history[$0] == b.history[$0] }
    }
}

/// A new layout, narrower than the old: only what the new version keeps.
private struct Narrow: BitwiseCopyable, Equatable {
    var counter: UInt64

    init(migrating old: Sample) { counter = old.counter }
}

private let oldVersion: UInt32 = 7
private let newVersion: UInt32 = 8
private let owner: UInt32 = 0x0003_0042

/// A region holding requests 1...count in the old layout; the last one answered.
private func oldRegion(commits count: Int) -> CrashingStorage {
    let storage = CrashingStorage()
    let format = OldFormat(storage: storage, layoutVersion: oldVersion, owner: owner)
    for id in 1...count { format.commit(state: Sample(UInt64(id)), requestID: UInt64(id), reply: reply(for: UInt64(id))) }
    return storage
}

/// Migrates a region whose last commit answered `id` (so L = `id`), cut after every
/// store, and checks what a restarted new version would find at each cut.
private func checkEveryCut<New: BitwiseCopyable & Equatable>(_: New.Type, commits: Int, migrate: (Sample) -> New)
    -> (stores: Int, recommitted: Bool) {
    let lastID = UInt64(commits)
    let clean = oldRegion(commits: commits).snapshot()
    // The uncut run: how many stores a migration takes here.
    let whole = CrashingStorage()
    whole.restore(clean)
    let total = migrateOnce(whole, New.self, lastID: lastID, migrate: migrate)
    let recommitted = total > SSRFormat<New, CrashingStorage>.storesToWrite(storedBytes: MemoryLayout<New>.size)
    for cut in 0...total {
        let storage = CrashingStorage()
        storage.restore(clean)
        storage.limit = cut
        _ = migrateOnce(storage, New.self, lastID: lastID, migrate: migrate)
        storage.limit = Int.max
        let new = SSRFormat<New, CrashingStorage>(storage: storage, layoutVersion: newVersion, owner: owner)
        let old = OldFormat(storage: storage, layoutVersion: oldVersion, owner: owner)
        if new.isWrittenInThisLayout {
            // The header was switched: the new layout's check finds the migrated record.
            let record: SSRRecord<New>?
            switch new.check(lastCompleted: lastID) {
            case .valid(let valid): record = valid
            case .repairable(.record(let point), _):
                new.repair(to: .record(point))
                record = point
            default: record = nil
            }
            #expect(record?.requestID == lastID && record?.reply == reply(for: lastID), "cut \(cut) of \(total)")
            #expect(record?.state == migrate(Sample(lastID)), "cut \(cut) of \(total)")
            guard case .committed(let commit) = new.loadCommit() else {
                Issue.record("cut \(cut): the repaired region does not load")
                continue
            }
            #expect(new.state(of: commit) == migrate(Sample(lastID)))
        } else {
            // Still the old layout: its answered commit stands, untouched.
            guard case .valid(let record) = old.check(lastCompleted: lastID) else {
                Issue.record("cut \(cut) of \(total): the old layout no longer verifies")
                continue
            }
            expectRecord(record, id: lastID, "cut \(cut) of \(total)")
            // The upgrade's next request migrates it then.
            _ = migrateOnce(storage, New.self, lastID: lastID, migrate: migrate)
            guard case .valid(let migrated) = new.check(lastCompleted: lastID) else {
                Issue.record("cut \(cut): migrating again failed")
                continue
            }
            #expect(migrated.requestID == lastID && migrated.state == migrate(Sample(lastID)))
        }
    }
    return (total, recommitted)
}

/// One migration of the region in `storage` (old layout, active commit answering
/// `lastID`), as the runtime does it; returns the stores it issued.
private func migrateOnce<New: BitwiseCopyable>(_ storage: CrashingStorage, _: New.Type, lastID: UInt64,
                                               migrate: (Sample) -> New) -> Int {
    let old = OldFormat(storage: storage, layoutVersion: oldVersion, owner: owner)
    let new = SSRFormat<New, CrashingStorage>(storage: storage, layoutVersion: newVersion, owner: owner)
    guard case .committed(let commit) = old.loadCommit() else {
        Issue.record("the old region does not load")
        return 0
    }
    #expect(commit.requestID == lastID)
    var previous = old.state(of: commit)
    var migrated = migrate(previous)
    let before = storage.stores
    withUnsafePointer(to: &previous) { previousState in
        withUnsafePointer(to: &migrated) { state in
            new.migrate(from: old, commit: commit, previousState: previousState, state: state,
                        significantBytes: MemoryLayout<New>.size)
        }
    }
    return storage.stores - before
}

extension SSRFormat {
    /// Stores a migration takes when no re-commit is needed: the copy's six words and
    /// state, its checksum, the header's layout word and the selector.
    static func storesToWrite(storedBytes: Int) -> Int { 6 + (storedBytes + 7) / 8 + 3 }
}

@Suite struct SSRMigrationTests {
    /// Every parity of the active copy (commits 1 or 2), to a wider and a narrower state:
    /// one of each pair needs the re-commit that moves the old record out of the way.
    @Test(arguments: [1, 2])
    func aMigrationCutAnywhereLeavesTheOldRecordOrTheNew(commits: Int) {
        let wide = checkEveryCut(Wide.self, commits: commits) { Wide(migrating: $0) }
        let narrow = checkEveryCut(Narrow.self, commits: commits) { Narrow(migrating: $0) }
        // Old copies sit at 32 and 120; Wide's at 32 and 168, Narrow's at 32 and 96.
        // Commit 1 lives in old copy 1, commit 2 in old copy 0. Wide must not write its
        // copy 0 over the old copy 1, Narrow its copy 1 over the old copy 0.
        #expect(wide.recommitted == (commits == 1), "wide: the old record in copy 1 is moved first")
        #expect(narrow.recommitted == (commits == 2), "narrow: the old record in copy 0 is moved first")
    }

    @Test func aMigratedRegionCommitsOnInItsNewLayout() {
        let storage = oldRegion(commits: 3)
        _ = migrateOnce(storage, Wide.self, lastID: 3) { Wide(migrating: $0) }
        let new = SSRFormat<Wide, CrashingStorage>(storage: storage, layoutVersion: newVersion, owner: owner)
        for id in UInt64(4)...6 {
            var state = Wide(migrating: Sample(id))
            state.history[5] = id
            new.commit(state: state, requestID: id, reply: reply(for: id))
            guard case .valid(let record) = new.check(lastCompleted: id) else {
                Issue.record("commit \(id) after the migration does not verify")
                return
            }
            #expect(record.state == state && record.requestID == id)
        }
        let old = OldFormat(storage: storage, layoutVersion: oldVersion, owner: owner)
        #expect(!old.isWrittenInThisLayout)
        if case .committed = old.loadCommit() { Issue.record("the old layout still reads a migrated region") }
        #expect(old.holdsCommitInAnotherLayout, "to the old version, a commit it cannot read")
    }

    @Test func onlyAVerifiedCommitOfAnotherLayoutIsTakenForOne() {
        let storage = oldRegion(commits: 2)
        let newer = SSRFormat<Wide, CrashingStorage>(storage: storage, layoutVersion: newVersion, owner: owner)
        #expect(newer.holdsCommitInAnotherLayout)
        #expect(!OldFormat(storage: storage, layoutVersion: oldVersion, owner: owner).holdsCommitInAnotherLayout,
                "its own layout is not another")
        // Someone else's region, or a damaged commit, is damage, not another layout.
        #expect(!SSRFormat<Wide, CrashingStorage>(storage: storage, layoutVersion: newVersion, owner: owner + 1)
            .holdsCommitInAnotherLayout)
        let active = 32 + 88 * 0  // commit 2 lives in copy 0
        storage.flip(bit: (active + SSRLayout.stateField) * 8 + 3)
        #expect(!newer.holdsCommitInAnotherLayout)
        // A layout word naming a state too large for the region is refused before any read.
        let huge = CrashingStorage(bytes: 256)
        let small = OldFormat(storage: huge, layoutVersion: oldVersion, owner: owner)
        small.commit(state: Sample(1), requestID: 1, reply: reply(for: 1))
        huge.store(UInt64(oldVersion) | UInt64(4000) << 32, at: SSRLayout.layoutOffset)
        #expect(!SSRFormat<Narrow, CrashingStorage>(storage: huge, layoutVersion: newVersion, owner: owner)
            .holdsCommitInAnotherLayout)
    }
}
