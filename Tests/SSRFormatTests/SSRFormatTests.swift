// The SSR format's promises, checked on the host: a commit cut off after any one of
// its stores leaves the old record or the new one, never a mix, and never a
// half-written copy that checks; damage anywhere in the active copy is detected;
// repair only goes back to a record that holds everything the kernel saw answered.

import SSRFormat
import Testing

/// A state whose size is not a multiple of 8, with padding inside.
struct Sample: BitwiseCopyable, Equatable {
    var counter: UInt64
    var flags: UInt8
    var values: (UInt32, UInt32, UInt32)
    var tail: UInt16

    init(_ seed: UInt64) {
        counter = seed &* 0x9E37_79B9_7F4A_7C15
        flags = UInt8(truncatingIfNeeded: seed)
        values = (UInt32(truncatingIfNeeded: seed &+ 1), UInt32(truncatingIfNeeded: seed &* 3), 0xA5A5_0000 | UInt32(seed & 0xFFFF))
        tail = UInt16(truncatingIfNeeded: seed >> 3)
    }

    static func == (a: Sample, b: Sample) -> Bool {
        a.counter == b.counter && a.flags == b.flags && a.values.0 == b.values.0 && a.values.1 == b.values.1
            && a.values.2 == b.values.2 && a.tail == b.tail
    }
}

/// Storage over a page-sized buffer that counts stores and, once `limit` stores have
/// landed, silently drops the rest: the commit "crashed" after `limit` stores.
final class CrashingStorage: SSRStorage {
    let buffer: UnsafeMutableRawBufferPointer
    var limit = Int.max
    var stores = 0
    var publishes = 0

    init(bytes: Int = 4096) {
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 4096)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { buffer.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(buffer) }

    func store(_ word: UInt64, at offset: Int) {
        #expect(offset & 7 == 0 && offset + 8 <= buffer.count)
        stores += 1
        guard stores <= limit else { return }
        buffer.storeBytes(of: word, toByteOffset: offset, as: UInt64.self)
    }

    func publish(_ word: UInt64, at offset: Int) {
        publishes += 1
        store(word, at: offset)
    }

    func snapshot() -> [UInt8] { Array(buffer) }

    func restore(_ bytes: [UInt8]) {
        for index in bytes.indices { buffer[index] = bytes[index] }
    }

    func flip(bit: Int) { buffer[bit / 8] ^= UInt8(1 << (bit % 8)) }
}

typealias Format = SSRFormat<Sample, CrashingStorage>

func makeFormat(_ storage: CrashingStorage, version: UInt32 = 7, owner: UInt32 = 0x0003_0042) -> Format {
    Format(storage: storage, layoutVersion: version, owner: owner)
}

func reply(for id: UInt64) -> SSRReply { SSRReply(code: id & 3, word0: id &* 11, word1: ~id) }

/// Commits requests 1...count, as a server that replies to each would.
func committed(_ count: Int, storage: CrashingStorage = CrashingStorage()) -> CrashingStorage {
    let format = makeFormat(storage)
    for id in 1...max(count, 1) where count > 0 {
        format.commit(state: Sample(UInt64(id)), requestID: UInt64(id), reply: reply(for: UInt64(id)))
    }
    return storage
}

func expectRecord(_ record: SSRRecord<Sample>?, id: UInt64, _ comment: Comment? = nil,
                  sourceLocation: SourceLocation = #_sourceLocation) {
    guard let record else {
        Issue.record("no record; expected request \(id). \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
        return
    }
    #expect(record.requestID == id, comment, sourceLocation: sourceLocation)
    #expect(record.state == Sample(id), comment, sourceLocation: sourceLocation)
    #expect(record.reply == reply(for: id), comment, sourceLocation: sourceLocation)
}

extension SSRCheck {
    var validRecord: SSRRecord<State>? {
        if case .valid(let record) = self { return record }
        return nil
    }

    var isUnformatted: Bool {
        if case .unformatted = self { return true }
        return false
    }

    var isCorrupt: Bool {
        if case .corrupt = self { return true }
        return false
    }

    var repairPoint: SSRRestorePoint<State>? {
        if case .repairable(let point, _) = self { return point }
        return nil
    }
}

extension SSRRestorePoint {
    var restored: SSRRecord<State>? {
        if case .record(let record) = self { return record }
        return nil
    }

    var isFresh: Bool {
        if case .fresh = self { return true }
        return false
    }
}

@Suite struct SSRFormatTests {
    static let sampleWords = (0..<40).map { UInt64($0) &* 0x9E37_79B9_7F4A_7C15 }

    func checksum(_ words: [UInt64]) -> UInt64 {
        var hash = RegionChecksum()
        words.withUnsafeBytes { hash.add($0) }
        return hash.value
    }

    @Test func theChecksumCatchesEveryFlippedBit() {
        var words = Self.sampleWords
        let original = checksum(words)
        #expect(original != RegionChecksum().value)
        for index in words.indices {
            for bit in 0..<64 {
                words[index] ^= 1 << UInt64(bit)
                #expect(checksum(words) != original, "word \(index) bit \(bit)")
                words[index] ^= 1 << UInt64(bit)
            }
        }
        // Bytes past the last whole word count too.
        var tail = RegionChecksum()
        [UInt8](repeating: 0, count: 9).withUnsafeBytes { tail.add($0) }
        var flipped = RegionChecksum()
        ([UInt8](repeating: 0, count: 8) + [1]).withUnsafeBytes { flipped.add($0) }
        #expect(tail.value != flipped.value)
    }

    /// Two flipped bits in two words, where a plain multiply hash is weakest: the high
    /// bits (a product carries differences only upwards, so bit 63 of two words
    /// cancelled), in every pair of words, plus other bit pairs spread over all 64.
    @Test func theChecksumCatchesTwoFlipsInTwoWords() {
        var words = Self.sampleWords
        let original = checksum(words)
        var pairs: [(Int, Int, Int, Int)] = []
        for first in words.indices {
            for second in words.indices where second > first {
                for bit in 56..<64 { pairs.append((first, bit, second, bit)) }
                // And 26 more bit pairs, spread over all 64 positions.
                for step in 0..<26 {
                    pairs.append((first, (first * 7 + step * 29) % 64, second, (second * 13 + step * 37) % 64))
                }
            }
        }
        for (first, firstBit, second, secondBit) in pairs {
            words[first] ^= 1 << UInt64(firstBit)
            words[second] ^= 1 << UInt64(secondBit)
            #expect(checksum(words) != original, "words \(first)/\(second), bits \(firstBit)/\(secondBit)")
            words[first] ^= 1 << UInt64(firstBit)
            words[second] ^= 1 << UInt64(secondBit)
        }
    }

    @Test func layoutIsCompactAndAligned() {
        #expect(MemoryLayout<Sample>.size == 26)
        #expect(Format.copyStride == 56 + 32)
        #expect(Format.requiredBytes == 32 + 2 * 88)
        #expect(SSRLayout.sequence(inSelector: 0) == nil)
        #expect(SSRLayout.sequence(inSelector: SSRLayout.selector(for: 5)) == 5)
        for bit in 0..<64 {
            #expect(SSRLayout.sequence(inSelector: SSRLayout.selector(for: 5) ^ (1 << UInt64(bit))) == nil,
                    "a one-bit flip of the selector must be detected (bit \(bit))")
        }
    }

    @Test func zeroRegionIsUnformatted() {
        let format = makeFormat(CrashingStorage())
        #expect(format.isZero)
        guard case .unformatted = format.load() else { Issue.record("zero region not unformatted"); return }
        for lastCompleted: UInt64 in [0, 1, 99] {
            #expect(format.check(lastCompleted: lastCompleted).isUnformatted,
                    "an all-zero region is fresh whatever the kernel's L (the kernel zeroes lost SSRs)")
        }
    }

    @Test func commitsReadBack() {
        let storage = CrashingStorage()
        let format = makeFormat(storage)
        for id: UInt64 in 1...5 {
            format.commit(state: Sample(id), requestID: id, reply: reply(for: id))
            guard case .committed(let record) = format.load() else {
                Issue.record("commit \(id) did not load")
                return
            }
            expectRecord(record, id: id)
            #expect(record.sequence == UInt32(id))
            expectRecord(format.check(lastCompleted: id).validRecord, id: id)
            // Committed but not yet answered: still valid (the cached reply will be sent).
            expectRecord(format.check(lastCompleted: id - 1).validRecord, id: id)
        }
        #expect(storage.publishes == 5, "exactly one selector store per commit")
    }

    @Test func commitNeverTouchesBytesBeyondTheFormat() {
        let storage = committed(3)
        #expect(storage.snapshot()[Format.requiredBytes...].allSatisfy { $0 == 0 })
    }

    /// The heart of it: cut a commit off after every single store.
    @Test(arguments: [0, 1, 2, 3, 4])
    func crashAfterEveryStoreLeavesOldOrNew(previousCommits: Int) {
        let base = committed(previousCommits)
        let before = base.snapshot()
        let oldID = UInt64(previousCommits)
        let newID = oldID + 1
        let total = makeFormat(base).storesPerCommit()
        #expect(total == (previousCommits == 0 ? 3 : 0) + 6 + 4 + 2)

        for cut in 0...total {
            let storage = CrashingStorage()
            storage.restore(before)
            storage.limit = cut
            let format = makeFormat(storage)
            format.commit(state: Sample(newID), requestID: newID, reply: reply(for: newID))
            #expect(storage.stores == total)

            // The kernel has answered oldID at most: L = oldID.
            let verdict = format.check(lastCompleted: oldID)
            if cut == total {
                expectRecord(verdict.validRecord, id: newID, "the complete commit is the committed state")
            } else if previousCommits == 0 {
                // A first commit cut short: nothing was ever acknowledged; fresh.
                let fresh = verdict.isUnformatted || verdict.repairPoint?.isFresh == true
                #expect(fresh, "cut \(cut): \(verdict)")
                if case .committed = format.load() { Issue.record("cut \(cut): a half first commit loaded") }
            } else {
                expectRecord(verdict.validRecord, id: oldID, "cut \(cut) of \(total): the old commit must stand")
                guard case .committed(let record) = format.load() else {
                    Issue.record("cut \(cut): normal load failed")
                    continue
                }
                expectRecord(record, id: oldID)
            }

            // No copy may check unless it is entirely the old or entirely the new commit.
            for index in 0..<2 {
                guard let record = format.record(inCopy: index) else { continue }
                let whole = (record.requestID == newID && record.state == Sample(newID) && record.reply == reply(for: newID))
                    || (record.requestID >= 1 && record.requestID <= oldID && record.state == Sample(record.requestID)
                        && record.reply == reply(for: record.requestID))
                #expect(whole, "cut \(cut): copy \(index) verified with mixed contents")
                if record.requestID == newID { #expect(cut >= total - 1, "a copy verified before its last store") }
            }

            // Recovery then re-delivery of the request: it ends committed exactly once.
            switch verdict {
            case .repairable(let point, _): format.repair(to: point)
            case .corrupt: Issue.record("cut \(cut): corrupt")
            default: break
            }
            storage.limit = Int.max
            if case .committed(let record) = format.load(), record.requestID == newID {
                #expect(cut == total, "only a complete commit is seen as already applied")
            } else {
                format.commit(state: Sample(newID), requestID: newID, reply: reply(for: newID))
            }
            expectRecord(format.check(lastCompleted: newID).validRecord, id: newID, "after re-delivery (cut \(cut))")
        }
    }

    /// A crash in the middle of a repair leaves a region that checks the same way.
    @Test func crashDuringRepairIsHarmless() {
        let base = committed(4)
        // Damage the active copy (request 4) while request 4 is still unanswered (L = 3).
        let format = makeFormat(base)
        let active = Int(format.activeSequence! & 1)
        base.flip(bit: (32 + active * Format.copyStride + 60) * 8 + 2)
        let before = base.snapshot()
        guard case .repairable(let point, let damage) = format.check(lastCompleted: 3) else {
            Issue.record("expected repairable")
            return
        }
        #expect(damage == .activeCopy)
        expectRecord(point.restored, id: 3)
        for cut in 0...1 {
            let storage = CrashingStorage()
            storage.restore(before)
            storage.limit = cut
            let copy = makeFormat(storage)
            copy.repair(to: point)
            let again = copy.check(lastCompleted: 3)
            if cut == 0 {
                expectRecord(again.repairPoint?.restored, id: 3)
            } else {
                expectRecord(again.validRecord, id: 3)
            }
        }
    }

    @Test func bitFlipsAnywhereInTheActiveCopyAreDetected() {
        let storage = committed(6)
        let format = makeFormat(storage)
        let clean = storage.snapshot()
        let active = Int(format.activeSequence! & 1)
        let start = (SSRLayout.headerBytes + active * Format.copyStride) * 8
        var detected = 0
        for bit in start..<(start + Format.copyStride * 8) {
            storage.restore(clean)
            storage.flip(bit: bit)
            // Request 6 was answered: the older copy (5) cannot stand in for it.
            let acknowledged = format.check(lastCompleted: 6)
            #expect(acknowledged.isCorrupt, "bit \(bit): \(acknowledged)")
            if case .committed = format.load() { Issue.record("bit \(bit): damaged copy loaded") }
            if case .committed = format.loadCommit() { Issue.record("bit \(bit): damaged copy verified") }
            // Request 6 committed but unanswered: copy 5 holds everything acknowledged.
            expectRecord(format.check(lastCompleted: 5).repairPoint?.restored, id: 5, "bit \(bit)")
            detected += 1
        }
        #expect(detected == Format.copyStride * 8)
    }

    @Test func bitFlipsElsewhereAreDetectedOrHarmless() {
        let storage = committed(6)
        let format = makeFormat(storage)
        let clean = storage.snapshot()
        let active = Int(format.activeSequence! & 1)
        let inactive = 1 - active
        for bit in 0..<(4096 * 8) {
            let byte = bit / 8
            storage.restore(clean)
            storage.flip(bit: bit)
            let verdict = format.check(lastCompleted: 6)
            let inActive = byte >= 32 + active * Format.copyStride && byte < 32 + (active + 1) * Format.copyStride
            let inInactive = byte >= 32 + inactive * Format.copyStride && byte < 32 + (inactive + 1) * Format.copyStride
            if inActive { continue }  // the test above
            if byte < 16 || (byte >= 24 && byte < 32) {
                // Header (magic, layout, owner): data intact; the header is rewritten.
                #expect(verdict.repairPoint?.restored?.requestID == 6, "header bit \(bit): \(verdict)")
                if case .committed = format.load() { Issue.record("header bit \(bit): loaded") }
            } else if byte >= 16 && byte < 24 {
                // Selector: detected; the copy that answered L is found and re-selected.
                expectRecord(verdict.repairPoint?.restored, id: 6, "selector bit \(bit)")
                if case .committed = format.load() { Issue.record("selector bit \(bit): loaded") }
            } else if inInactive || byte >= Format.requiredBytes {
                expectRecord(verdict.validRecord, id: 6, "bit \(bit) outside the active copy is harmless")
            }
        }
    }

    /// Two flips that turn the selector into the older copy's valid selector (commit 6
    /// -> 5 differ only in their lowest bits) must not roll back an answered request.
    @Test func selectorRolledBackByDamageIsRefused() {
        let storage = committed(7)  // active commit 7 (odd); 7 ^ 1 = 6 is the other copy
        let format = makeFormat(storage)
        storage.store(SSRLayout.selector(for: 6), at: SSRLayout.selectorOffset)
        guard case .repairable(let point, let damage) = format.check(lastCompleted: 7) else {
            Issue.record("rollback by damage accepted")
            return
        }
        #expect(damage == .behindKernel)
        expectRecord(point.restored, id: 7)
        format.repair(to: point)
        expectRecord(format.check(lastCompleted: 7).validRecord, id: 7)
        // If request 7 was never answered, being at 6 is fine: 7 comes again.
        storage.store(SSRLayout.selector(for: 6), at: SSRLayout.selectorOffset)
        expectRecord(format.check(lastCompleted: 6).validRecord, id: 6)
    }

    @Test func wrongLayoutVersionDoesNotVerify() {
        let storage = committed(3)
        let other = makeFormat(storage, version: 8)
        #expect(Format(storage: storage, layoutVersion: 8, owner: 0x0003_0042).check(lastCompleted: 3).isCorrupt)
        #expect(other.check(lastCompleted: 3).isCorrupt)
        #expect(other.check(lastCompleted: 0).repairPoint?.isFresh == true)
        guard case .damaged = other.load() else {
            Issue.record("a region of another layout version loaded")
            return
        }
    }

    /// A request whose sender is not the region's owner (a damaged sender register)
    /// must not be served from it; recovery, which knows the owner, rewrites the header.
    @Test func anotherOwnersRegionDoesNotLoad() {
        let storage = committed(3)
        let stranger = makeFormat(storage, owner: 0x0001_0007)
        guard case .damaged(.header) = stranger.load() else {
            Issue.record("a region loaded for a sender that does not own it")
            return
        }
        #expect(stranger.check(lastCompleted: 3).repairPoint?.restored?.requestID == 3)
        expectRecord(makeFormat(storage).check(lastCompleted: 3).validRecord, id: 3)
    }

    @Test func freshRepairClearsTheRegion() {
        let storage = committed(2)
        let format = makeFormat(storage)
        format.repair(to: .fresh)
        #expect(format.isZero)
        #expect(format.check(lastCompleted: 0).isUnformatted)
    }

    @Test func rollbackPointOnlyForUnansweredCommits() {
        let storage = committed(4)
        let format = makeFormat(storage)
        #expect(format.rollbackPoint(lastCompleted: 4) == nil, "request 4 was answered: nothing to roll back")
        expectRecord(format.rollbackPoint(lastCompleted: 3)?.restored, id: 3)
        #expect(format.rollbackPoint(lastCompleted: 2) == nil, "the other copy answered 3, not 2")
        let first = committed(1)
        #expect(makeFormat(first).rollbackPoint(lastCompleted: 0)?.isFresh == true)
    }

    @Test func commitNumberWrapsKeepingParity() {
        let storage = CrashingStorage()
        let format = makeFormat(storage)
        format.commit(state: Sample(1), requestID: 1, reply: reply(for: 1))
        // Pretend 2^32 - 2 more commits happened: point the selector at a forged copy 1.
        let sequence = UInt32.max
        let copyBase = 32 + Format.copyStride
        var hash = RegionChecksum()
        hash.add(word: SSRLayout.magic)
        hash.add(word: storage.bytes.load(fromByteOffset: 8, as: UInt64.self))
        hash.add(word: 1)
        storage.store(UInt64(sequence), at: copyBase + 8)
        storage.store(UInt64(Format.paddedStateBytes), at: copyBase + SSRLayout.stateLengthField)
        hash.add(UnsafeRawBufferPointer(rebasing: storage.bytes[(copyBase + 8)..<(copyBase + Format.copyStride)]))
        storage.store(hash.value, at: copyBase)
        storage.store(SSRLayout.selector(for: sequence), at: SSRLayout.selectorOffset)
        expectRecord(format.check(lastCompleted: 1).validRecord, id: 1)
        format.commit(state: Sample(2), requestID: 2, reply: reply(for: 2))
        #expect(format.activeSequence == 2, "0 is skipped and copy 0 comes next")
        expectRecord(format.check(lastCompleted: 2).validRecord, id: 2)
    }

    /// The server's path: `loadCommit` verifies, `state(of:)` copies the state out once;
    /// it must agree with `load()` commit after commit, for a state aligned to 8 bytes
    /// (read a word at a time) and for one aligned to 2 (read byte by byte).
    @Test func loadCommitAgreesWithLoad() {
        let storage = CrashingStorage()
        let format = makeFormat(storage)
        guard case .unformatted = format.loadCommit() else {
            Issue.record("a zero region did not read as unformatted")
            return
        }
        for id in UInt64(1)...5 {
            format.commit(state: Sample(id), requestID: id, reply: reply(for: id))
            guard case .committed(let commit) = format.loadCommit(), case .committed(let record) = format.load() else {
                Issue.record("commit \(id) did not load")
                return
            }
            #expect(commit.sequence == UInt32(id) && commit.requestID == id && commit.reply == reply(for: id))
            #expect(format.state(of: commit) == Sample(id) && record.state == Sample(id))
        }

        struct Narrow: BitwiseCopyable, Equatable {
            var a: UInt16, b: UInt16, c: UInt16
        }
        let narrowStorage = CrashingStorage()
        let narrow = SSRFormat<Narrow, CrashingStorage>(storage: narrowStorage, layoutVersion: 1, owner: 9)
        #expect(MemoryLayout<Narrow>.alignment == 2 && MemoryLayout<Narrow>.size == 6)
        narrow.commit(state: Narrow(a: 0x1234, b: 0xBEEF, c: 7), requestID: 3, reply: reply(for: 3))
        guard case .committed(let commit) = narrow.loadCommit() else {
            Issue.record("the narrow state did not load")
            return
        }
        #expect(narrow.state(of: commit) == Narrow(a: 0x1234, b: 0xBEEF, c: 7))
        let stateBit = (SSRLayout.headerBytes + Int(commit.sequence & 1) * SSRFormat<Narrow, CrashingStorage>.copyStride
            + SSRLayout.stateField + 5) * 8
        narrowStorage.flip(bit: stateBit)
        guard case .damaged(.activeCopy) = narrow.loadCommit() else {
            Issue.record("a flipped state bit was not detected")
            return
        }
    }

    /// The aligned-word hash the format verifies with is the same function as the
    /// byte-buffer one (which the commit-wrap test forges copies with).
    @Test func alignedWordsHashLikeBytes() {
        let words = (0..<19).map { UInt64($0) &* 0xD6E8_FEB8_6659_FD93 ^ 0x5555 }
        var fromBytes = RegionChecksum()
        var fromWords = RegionChecksum()
        words.withUnsafeBytes { bytes in
            fromBytes.add(bytes)
            fromWords.add(alignedWords: bytes.baseAddress!, count: words.count)
        }
        #expect(fromBytes.value == fromWords.value && fromWords.value != RegionChecksum().value)
    }

    @Test func memoryStorageWritesWholeWords() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let format = SSRFormat<Sample, SSRMemory>(storage: SSRMemory(buffer), layoutVersion: 1, owner: 5)
        format.commit(state: Sample(9), requestID: 9, reply: reply(for: 9))
        guard case .committed(let record) = format.load() else {
            Issue.record("no commit")
            return
        }
        #expect(record.state == Sample(9) && record.requestID == 9)
    }

    // MARK: Storing only what can be non-zero

    /// A table used from the front, as the network server's sockets are.
    struct Table: BitwiseCopyable, Equatable {
        var words: InlineArray<8, UInt64>

        init(used: Int, seed: UInt64) {
            words = InlineArray(repeating: 0)
            for index in 0..<used { words[index] = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) | 1 }
        }

        var used: Int {
            var count = 8
            while count > 0 && words[count - 1] == 0 { count -= 1 }
            return count
        }

        static func == (a: Table, b: Table) -> Bool { (0..<8).allSatisfy { a.words[$0] == b.words[$0] } }
    }
    typealias TableFormat = SSRFormat<Table, CrashingStorage>

    @Test func aCommitStoresOnlyTheSignificantPrefix() {
        let storage = CrashingStorage()
        let format = TableFormat(storage: storage, layoutVersion: 1, owner: 4)
        let two = Table(used: 2, seed: 1)
        format.commit(state: two, significantBytes: 16, requestID: 1, reply: reply(for: 1))
        #expect(storage.stores == 3 + 6 + 2 + 2, "the header, six words, two state words, checksum and selector")
        guard case .committed(let commit) = format.loadCommit() else {
            Issue.record("the commit did not load")
            return
        }
        #expect(commit.storedStateBytes == 16)
        #expect(format.state(of: commit) == two)
        // A significant size inside a word stores that whole word.
        format.commit(state: two, significantBytes: 9, requestID: 2, reply: reply(for: 2))
        guard case .committed(let rounded) = format.loadCommit() else {
            Issue.record("the second commit did not load")
            return
        }
        #expect(rounded.storedStateBytes == 16 && format.state(of: rounded) == two)
    }

    /// The hint cannot lose data: a state that is not zero past it is stored whole.
    @Test func aWrongHintStoresTheWholeState() {
        let storage = CrashingStorage()
        let format = TableFormat(storage: storage, layoutVersion: 1, owner: 4)
        let five = Table(used: 5, seed: 3)
        for hint in [-8, 0, 8, 32] {
            format.commit(state: five, significantBytes: hint, requestID: UInt64(hint + 100), reply: reply(for: 1))
            guard case .committed(let commit) = format.loadCommit() else {
                Issue.record("hint \(hint): the commit did not load")
                return
            }
            #expect(commit.storedStateBytes == 64, "hint \(hint)")
            #expect(format.state(of: commit) == five, "hint \(hint)")
        }
        format.commit(state: five, significantBytes: Int.max, requestID: 200, reply: reply(for: 1))
        guard case .committed(let commit) = format.loadCommit() else { return }
        #expect(commit.storedStateBytes == 64 && format.state(of: commit) == five)
    }

    /// What an earlier, longer commit left in a copy past the stored prefix is never
    /// read: both ways of loading give zero there.
    @Test func bytesPastThePrefixLoadAsZero() {
        let storage = CrashingStorage()
        let format = TableFormat(storage: storage, layoutVersion: 1, owner: 4)
        for (id, used) in [(1, 8), (2, 8), (3, 1), (4, 1), (5, 0), (6, 3)] {
            let table = Table(used: used, seed: UInt64(id))
            format.commit(state: table, significantBytes: 8 * table.used, requestID: UInt64(id), reply: reply(for: UInt64(id)))
            guard case .committed(let commit) = format.loadCommit() else {
                Issue.record("commit \(id) did not load")
                return
            }
            #expect(commit.storedStateBytes == 8 * used)
            #expect(format.state(of: commit) == table, "commit \(id)")
            var loaded = Table(used: 8, seed: 99)
            withUnsafeMutableBytes(of: &loaded) { format.loadState(of: commit, into: $0.baseAddress!) }
            #expect(loaded == table, "commit \(id), loaded in place over another state")
        }
    }

    /// Every store of a commit that stores less than before, or more, cut off: the
    /// old commit or the new one, never a mix.
    @Test(arguments: [(8, 1), (1, 8), (3, 0), (0, 3)])
    func crashesWhilePrefixesChangeLengthLeaveOldOrNew(lengths: (Int, Int)) {
        let (before, after) = lengths
        let setUp = CrashingStorage()
        let first = TableFormat(storage: setUp, layoutVersion: 1, owner: 4)
        for id in 1...3 {
            let table = Table(used: id == 3 ? before : 8, seed: UInt64(id))
            first.commit(state: table, significantBytes: 8 * table.used, requestID: UInt64(id), reply: reply(for: UInt64(id)))
        }
        let clean = setUp.snapshot()
        let old = Table(used: before, seed: 3)
        let new = Table(used: after, seed: 4)
        let total = first.storesPerCommit(storing: 8 * after)
        for cut in 0...total {
            let storage = CrashingStorage()
            storage.restore(clean)
            storage.limit = cut
            let format = TableFormat(storage: storage, layoutVersion: 1, owner: 4)
            format.commit(state: new, significantBytes: 8 * after, requestID: 4, reply: reply(for: 4))
            #expect(storage.stores == total)
            guard case .valid(let record) = format.check(lastCompleted: 3) else {
                Issue.record("cut \(cut): not valid")
                continue
            }
            if cut == total {
                #expect(record.requestID == 4 && record.state == new, "cut \(cut)")
            } else {
                #expect(record.requestID == 3 && record.state == old, "cut \(cut)")
            }
        }
    }
}
