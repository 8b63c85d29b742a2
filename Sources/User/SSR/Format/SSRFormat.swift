// SSRFormat: how a server lays out one client's state in that client's server state
// region, so that a crash at any instant loses nothing the client was told, and no
// request ever takes effect twice.
//
// Why this works: the exactly-once argument
// -----------------------------------------
// What the kernel guarantees (Kernel+SSR.swift):
//   K1. Every request a client sends to an SSR server carries an id; a client's ids
//       count up from 1, and a client has at most one request outstanding (`send`
//       blocks until the reply).
//   K2. A request the server has not replied to when it fails is delivered again,
//       with the same id, to the restarted server; a replied request never is.
//   K3. The kernel records L, the id of the client's last request the server replied
//       to, and hands it to the restarted server with the SSR.
// What the server does (SSRServer):
//   S1. To answer request r it reads the committed record (state, id R, reply),
//       computes the new state and the reply, commits (new state, r, reply), and only
//       then replies. A deferred request commits nothing until it is answered, and is
//       answered the same way (commit with the held request's id, then reply).
//   S2. A request whose id equals the committed id R is not applied again: the
//       cached reply is sent instead.
// What this file guarantees:
//   F1. A commit is atomic: the region has two copies, the commit writes the
//       inactive one completely, then switches the selector to it with one aligned
//       8-byte store, release-ordered after the copy's stores. Before that store the
//       old record is the committed one, untouched; after it, the new one is. No
//       store of a commit ever touches the active copy, so a crash between any two
//       stores leaves the previous commit intact and checkable, and the half-written
//       copy is never selected.
//   F2. Damage is detected: each copy carries a 64-bit checksum (RegionChecksum, an
//       FNV-like hash over 64-bit words) over all of its bytes (seeded with the layout and the
//       copy's number), and the selector holds the commit number next to its complement.
//
// Now let the server fail while it works on request r of some client. Because the
// server commits before each reply (S1) and the client waits (K1), the committed id
// is L or r. Either the failure came before the selector store of r's commit: the
// committed record has id L and does not contain r, r comes back (K2), and is
// applied once to the state without it. Or after: the committed record has id r and
// contains r, r comes back and is answered from the cache (S2), with the reply that
// one application computed. Or after the reply: r is done and never comes back (K2).
// In every case r takes effect exactly once and its client sees that one result.
// Remembering only the last id suffices because of K1.
//
// Repair. If the active copy (or the selector) is damaged, the other copy holds the
// commit before it. That is an acceptable past exactly when its id equals L: then
// the damaged commit was for the request in flight, which the kernel will deliver
// again, so going back one commit loses nothing the client has seen. If its id is
// older than L, going back would silently undo a request the client already got an
// answer to: the region is corrupt, the verdict is "lost", and the client is told
// (`serverStateLost`) instead of being lied to. When L == 0 nothing was ever
// acknowledged, so any region may start fresh. A valid-looking record whose id is
// below L is refused too: the selector can only point at an older copy through
// damage (two flipped bits), never through a crash.
//
// Verifying on every load. The running server verifies the whole active copy (header,
// selector, checksum over every word) each time it loads a client's state, before
// any byte of the state is used, and only then copies the state out, once
// (`loadCommit`, then `state(of:)`). Remembering per client the commit number and
// checksum last written, and re-hashing only when they differ, would save the hash
// but break F2 where it matters: a bit flipped in the state bytes of the active copy
// leaves both words as remembered, the server would compute on the damaged state,
// and its next commit would seal the damage under a fresh, valid checksum. The
// full check is cheap enough not to need the shortcut: the region is 8-byte aligned,
// so every word is one aligned load, an xor and a multiply (about 100 instructions
// for a 120-byte copy), less than copying the state; what cost more than the
// checksum was reading words with `loadUnaligned` (byte by byte on RISC-V) and
// carrying the state through several by-value records.
//
// Storing only what can be non-zero. A service's state is often a table most of
// whose slots are free (the network server's 32 sockets, of which a client uses one
// or two), and hashing, writing and copying the free ones was most of what an SSR
// cost a request: 2 KiB verified, copied and written again for a 100-byte change. So
// a copy stores a prefix of the state: the service names how many leading bytes can
// be non-zero (`SSRService.significantBytes`), the commit stores that many, rounded
// up to a word, and records the length next to them under the checksum; a load reads
// the rest as zero. Every stored word is still verified on every load, and the bytes
// not stored are not read from the region at all, so nothing unverified reaches the
// server. The hint cannot lose data: the commit checks that the state really is zero
// past it, and stores the whole state if not (a wrong hint, say a fault in computing
// it, costs time, never bytes).
//
// Migrating a region (live upgrade, paper §4). A new version of a server may lay
// its state out differently; the header's layout word says which layout wrote a
// region, and a region of another layout never verifies as this one (the checksums
// are seeded with the layout word), so it is never misread. A version that knows the
// layout of the one it replaced reads such a region in that layout and rewrites it in
// its own (`migrate`), once, in place: the same commit (request id and reply) holding
// the migrated state. (1) If the new copy it is about to write would share bytes with
// the old layout's active copy (the copies sit at other offsets when the state's size
// changed), it first commits the same record again in the old layout, which moves it
// to the other old copy; (2) it writes the new copy completely; (3) it stores the new
// layout word in the header; (4) it publishes the selector. A crash before (3) leaves
// the old layout with its active copy untouched. A crash between (3) and (4) leaves a
// header of the new layout whose selector still names the old copy, which does not
// verify as the new layout: the damage repair above finds the other copy, the new
// one, verified and answering L (the record migrated is an answered one), and loses
// nothing. After (4) the region is simply in the new layout.
//
// What it cannot do: a checksum catches corruption of bytes, not a wrong
// computation committed with a good checksum; the service's own invariant check is
// the second line, and the server runtime rolls back an unacknowledged commit made
// by a server that then failed (its work is redone by a fresh instance). A bit flip
// in the active copy of an acknowledged commit is detected but not repairable (the
// other copy is older): that client loses its state, knowingly. The cached reply is
// the code and two words; a reply payload is not cached.
//
// Layout (little-endian, every field an aligned 8-byte word):
//
//   offset  field
//   0       magic "CurioSSR"
//   8       layout: version (low 32 bits) | state size in bytes (high 32 bits)
//   16      selector: commit number s (low 32) | ~s (high 32); 0 = never committed
//   24      owner: the client's id (low 32) | its complement (high 32)
//   32      copy 0, then copy 1 at 32 + stride, each:
//             0   checksum  RegionChecksum over bytes 8..<stride, seeded (magic, layout, copy)
//             8   commit number (its parity is the copy's number; 0 is never used)
//             16  request id
//             24  reply code       32 reply word 0       40 reply word 1
//             48  n, the state bytes stored (a multiple of 8, at most the padded size)
//             56  the state's first n bytes (its last word zero-padded); the rest
//                 of the copy is not part of it (a load reads those bytes as zero)
//
// The owner word lets the server catch a request that names the wrong client (a
// damaged sender register would otherwise send the reply astray and leave the real
// client waiting forever): a region whose owner is not the sender is damaged.
//
// An all-zero region (what the kernel hands out) reads as unformatted: a fresh
// client. Nothing here allocates; everything works on the host for the tests.

/// The cached answer to the committed request.
public struct SSRReply: Equatable, Sendable {
    public var code: UInt64
    public var word0: UInt64
    public var word1: UInt64

    public init(code: UInt64 = 0, word0: UInt64 = 0, word1: UInt64 = 0) {
        self.code = code
        self.word0 = word0
        self.word1 = word1
    }
}

/// One commit as read back from a copy whose checksum verified.
public struct SSRRecord<State: BitwiseCopyable> {
    /// The commit number (which copy it lives in is its parity).
    public var sequence: UInt32
    /// The request this commit answered.
    public var requestID: UInt64
    public var reply: SSRReply
    public var state: State
}

/// One commit's words as read back from a copy whose checksum verified: everything
/// but the state, which `SSRFormat.state(of:)` copies out of the region when wanted.
public struct SSRCommit: Equatable, Sendable {
    /// The commit number (which copy it lives in is its parity).
    public var sequence: UInt32
    /// The request this commit answered.
    public var requestID: UInt64
    public var reply: SSRReply
    /// How many of the state's leading bytes the copy stores (the rest are zero).
    public var storedStateBytes: Int
}

/// `SSRLoad` without the state (see `SSRFormat.loadCommit()`).
public enum SSRCommitLoad: Equatable, Sendable {
    case unformatted
    case committed(SSRCommit)
    case damaged(SSRDamage)
}

/// What is wrong with a region that is not simply valid.
public enum SSRDamage: Equatable, Sendable {
    /// The magic, layout or owner word is wrong (the copies may still be fine).
    case header
    /// The selector is not a commit number next to its complement.
    case selector
    /// Formatted (or partly written) but never committed.
    case noCommit
    /// The copy the selector names fails its checksum or has the wrong commit number.
    case activeCopy
    /// The active commit is older than the last request the kernel saw answered.
    case behindKernel
}

/// A state a damaged region can be returned to.
public enum SSRRestorePoint<State: BitwiseCopyable> {
    /// Nothing was ever acknowledged: start from the initial state.
    case fresh
    /// This (verified) commit holds everything acknowledged.
    case record(SSRRecord<State>)
}

/// The restarted server's view of a region (see `SSRFormat.check(lastCompleted:)`).
public enum SSRCheck<State: BitwiseCopyable> {
    /// All zero: the client never got a commit. Start fresh.
    case unformatted
    case valid(SSRRecord<State>)
    /// Damaged, but `repair(to:)` with this restore point loses nothing acknowledged.
    case repairable(SSRRestorePoint<State>, SSRDamage)
    /// Damaged, and something acknowledged is gone.
    case corrupt(SSRDamage)
}

/// The running server's view of a region: during normal operation there is no crash
/// between commits, so anything but these two means a fault hit the region.
public enum SSRLoad<State: BitwiseCopyable> {
    case unformatted
    case committed(SSRRecord<State>)
    case damaged(SSRDamage)
}

/// Where a format's bytes live. Every write of a commit goes through `store` or
/// `publish` as one aligned 8-byte word, so tests can cut a commit off after any
/// store (a crash) and look at what is left.
public protocol SSRStorage {
    /// The region, for reading.
    var bytes: UnsafeRawBufferPointer { get }
    /// Writes one aligned word.
    func store(_ word: UInt64, at offset: Int)
    /// Writes the selector: one aligned 8-byte store that must not be seen before
    /// any store issued before it.
    func publish(_ word: UInt64, at offset: Int)
}

public enum SSRLayout {
    /// "CurioSSR" in little-endian byte order.
    public static let magic: UInt64 = 0x5253_536F_6972_7543
    public static let magicOffset = 0
    public static let layoutOffset = 8
    public static let selectorOffset = 16
    public static let ownerOffset = 24
    public static let headerBytes = 32

    public static let checksumField = 0
    public static let sequenceField = 8
    public static let requestField = 16
    public static let codeField = 24
    public static let word0Field = 32
    public static let word1Field = 40
    public static let stateLengthField = 48
    public static let stateField = 56

    /// The selector word for commit number `sequence` (never 0).
    @inline(__always)
    public static func selector(for sequence: UInt32) -> UInt64 {
        UInt64(sequence) | UInt64(~sequence) << 32
    }

    /// The owner word for a client id.
    @inline(__always)
    public static func ownerWord(for owner: UInt32) -> UInt64 {
        UInt64(owner) | UInt64(~owner) << 32
    }

    /// The commit number a selector word names, nil if it is damaged or 0.
    @inline(__always)
    public static func sequence(inSelector word: UInt64) -> UInt32? {
        let low = UInt32(truncatingIfNeeded: word)
        let high = UInt32(truncatingIfNeeded: word >> 32)
        return high == ~low && low != 0 ? low : nil
    }
}

/// One client's region, laid out for a state of type `State`.
public struct SSRFormat<State: BitwiseCopyable, Storage: SSRStorage> {
    public let storage: Storage
    /// The server's layout version: a region written under another version (or for a
    /// state of another size) does not verify.
    public let layoutVersion: UInt32
    /// The client the region belongs to (its TaskID's raw value).
    public let owner: UInt32

    public static var stateBytes: Int { MemoryLayout<State>.size }
    public static var paddedStateBytes: Int { (stateBytes + 7) & ~7 }
    /// Bytes per copy.
    public static var copyStride: Int { SSRLayout.stateField + paddedStateBytes }
    /// Bytes of the region the format uses (the rest of the region is never touched).
    public static var requiredBytes: Int { SSRLayout.headerBytes + 2 * copyStride }

    public init(storage: Storage, layoutVersion: UInt32, owner: UInt32) {
        precondition(storage.bytes.count >= Self.requiredBytes, "the SSR is too small for this state")
        precondition(UInt(bitPattern: storage.bytes.baseAddress) & 7 == 0, "the SSR must be 8-byte aligned")
        self.storage = storage
        self.layoutVersion = layoutVersion
        self.owner = owner
    }

    var layoutWord: UInt64 { UInt64(layoutVersion) | UInt64(UInt32(truncatingIfNeeded: Self.stateBytes)) << 32 }

    @inline(__always)
    func word(at offset: Int) -> UInt64 { storage.bytes.load(fromByteOffset: offset, as: UInt64.self) }

    func copyOffset(_ index: Int) -> Int { SSRLayout.headerBytes + index * Self.copyStride }

    var headerIsValid: Bool {
        word(at: SSRLayout.magicOffset) == SSRLayout.magic && word(at: SSRLayout.layoutOffset) == layoutWord
            && word(at: SSRLayout.ownerOffset) == SSRLayout.ownerWord(for: owner)
    }

    func writeHeader() {
        storage.store(SSRLayout.magic, at: SSRLayout.magicOffset)
        storage.store(layoutWord, at: SSRLayout.layoutOffset)
        storage.store(SSRLayout.ownerWord(for: owner), at: SSRLayout.ownerOffset)
    }

    /// The commit number the selector names, if it is intact and set.
    public var activeSequence: UInt32? { SSRLayout.sequence(inSelector: word(at: SSRLayout.selectorOffset)) }

    /// True if every byte the format uses is zero.
    public var isZero: Bool {
        var offset = 0
        while offset < Self.requiredBytes {
            if word(at: offset) != 0 { return false }
            offset += 8
        }
        return true
    }

    func checksumSeed(copy index: Int) -> RegionChecksum {
        var hash = RegionChecksum()
        hash.add(word: SSRLayout.magic)
        hash.add(word: layoutWord)
        hash.add(word: UInt64(index))
        return hash
    }

    /// The region's first byte; 8-byte aligned (checked in `init`), so every word of
    /// the format is read with one aligned load, never byte by byte.
    @inline(__always)
    var base: UnsafeRawPointer { storage.bytes.baseAddress! }

    /// The commit in copy `index`, if its checksum verifies and its number fits the
    /// copy. Only the commit's words are read; its state stays in the region until
    /// `state(of:)` or `loadState(of:into:)` copies it out.
    public func commit(inCopy index: Int) -> SSRCommit? {
        let start = copyOffset(index)
        // Read before it is verified, only to know how far the checksum goes: a
        // damaged length hashes a different span, and the checksum does not match.
        let stored = word(at: start + SSRLayout.stateLengthField)
        guard stored <= UInt64(Self.paddedStateBytes), stored & 7 == 0 else { return nil }
        var hash = checksumSeed(copy: index)
        // A whole state (what every service without a hint stores) is hashed by a
        // loop of constant length, which the compiler unrolls for a small state.
        if stored == UInt64(Self.paddedStateBytes) {
            hash.add(alignedWords: base + start + 8, count: Self.copyStride / 8 - 1)
        } else {
            hash.add(alignedWords: base + start + 8, count: (SSRLayout.stateField + Int(stored)) / 8 - 1)
        }
        guard hash.value == word(at: start + SSRLayout.checksumField) else { return nil }
        let number = word(at: start + SSRLayout.sequenceField)
        guard number >> 32 == 0, number != 0, Int(number & 1) == index else { return nil }
        return SSRCommit(
            sequence: UInt32(truncatingIfNeeded: number), requestID: word(at: start + SSRLayout.requestField),
            reply: SSRReply(code: word(at: start + SSRLayout.codeField), word0: word(at: start + SSRLayout.word0Field),
                            word1: word(at: start + SSRLayout.word1Field)),
            storedStateBytes: Int(stored))
    }

    /// The state committed with `commit` (one that `commit(inCopy:)` or `loadCommit()`
    /// just verified), as a value.
    public func state(of commit: SSRCommit) -> State {
        let offset = copyOffset(Int(commit.sequence & 1)) + SSRLayout.stateField
        // The state field is 8-byte aligned; only a State aligned more strictly needs the slow path.
        var state = MemoryLayout<State>.alignment <= 8 ? base.load(fromByteOffset: offset, as: State.self)
                                                       : base.loadUnaligned(fromByteOffset: offset, as: State.self)
        withUnsafeMutableBytes(of: &state) { bytes in
            Self.zero(bytes.baseAddress!, from: min(commit.storedStateBytes, Self.stateBytes))
        }
        return state
    }

    /// Writes the state committed with `commit` (verified just now) over the
    /// `State` at `destination`: its stored bytes, one copy straight from the
    /// region, and zero for the rest. The server's hot path: no value of the whole
    /// state is made on the way.
    @inline(__always)
    public func loadState(of commit: SSRCommit, into destination: UnsafeMutableRawPointer) {
        let stored = min(commit.storedStateBytes, Self.stateBytes)
        destination.copyMemory(from: base + copyOffset(Int(commit.sequence & 1)) + SSRLayout.stateField,
                               byteCount: stored)
        if stored < Self.stateBytes { Self.zero(destination, from: stored) }
    }

    /// Zeroes the state at `state` from byte `start` to its end (one `memset`).
    static func zero(_ state: UnsafeMutableRawPointer, from start: Int) {
        (state + start).initializeMemory(as: UInt8.self, repeating: 0, count: stateBytes - start)
    }

    /// How many bytes of the state at `state` a commit stores: `significantBytes`
    /// rounded up to a word, if every byte after that is zero; the whole (padded)
    /// state if not.
    static func storedLength(of state: UnsafeRawPointer, significantBytes: Int) -> Int {
        let claimed = (min(max(significantBytes, 0), stateBytes) + 7) & ~7
        var offset = claimed
        var bits: UInt64 = 0
        if UInt(bitPattern: state) & 7 == 0 {
            while offset + 32 <= stateBytes {
                bits |= state.load(fromByteOffset: offset, as: UInt64.self)
                    | state.load(fromByteOffset: offset + 8, as: UInt64.self)
                    | state.load(fromByteOffset: offset + 16, as: UInt64.self)
                    | state.load(fromByteOffset: offset + 24, as: UInt64.self)
                offset += 32
            }
            while offset + 8 <= stateBytes {
                bits |= state.load(fromByteOffset: offset, as: UInt64.self)
                offset += 8
            }
        }
        while offset < stateBytes {
            bits |= UInt64(state.load(fromByteOffset: offset, as: UInt8.self))
            offset += 1
        }
        return bits == 0 ? claimed : paddedStateBytes
    }

    /// The commit in copy `index` with its state, if its checksum verifies and its
    /// number fits the copy.
    public func record(inCopy index: Int) -> SSRRecord<State>? {
        guard let commit = commit(inCopy: index) else { return nil }
        return SSRRecord(sequence: commit.sequence, requestID: commit.requestID, reply: commit.reply,
                         state: state(of: commit))
    }

    /// The commit the selector names, if the header, the selector and that copy verify.
    var activeCommit: SSRCommit? {
        guard headerIsValid, let sequence = activeSequence,
              let commit = commit(inCopy: Int(sequence & 1)), commit.sequence == sequence else { return nil }
        return commit
    }

    /// The commit the selector names, if the header, the selector and that copy verify.
    public var activeRecord: SSRRecord<State>? {
        activeCommit.map { SSRRecord(sequence: $0.sequence, requestID: $0.requestID, reply: $0.reply, state: state(of: $0)) }
    }

    /// What the damage is, for a region whose active record does not verify.
    var damage: SSRDamage {
        let selector = word(at: SSRLayout.selectorOffset)
        guard let sequence = SSRLayout.sequence(inSelector: selector) else {
            return selector == 0 ? .noCommit : .selector
        }
        guard let commit = commit(inCopy: Int(sequence & 1)), commit.sequence == sequence else { return .activeCopy }
        return .header
    }

    // MARK: Normal operation

    /// Reads the committed record, for a request being served.
    public func load() -> SSRLoad<State> {
        switch loadCommit() {
        case .unformatted: return .unformatted
        case .committed(let commit): return .committed(SSRRecord(sequence: commit.sequence, requestID: commit.requestID,
                                                                 reply: commit.reply, state: state(of: commit)))
        case .damaged(let damage): return .damaged(damage)
        }
    }

    /// `load()` without the state: verifies the header, the selector and the active
    /// copy (every word of it, on every call: see "Verifying on every load" above),
    /// and leaves the state in the region for `state(of:)` to copy out once.
    public func loadCommit() -> SSRCommitLoad {
        if let commit = activeCommit { return .committed(commit) }
        if isZero { return .unformatted }
        return .damaged(damage)
    }

    /// Commits `state` as the result of request `requestID`, answered by `reply`: writes
    /// the inactive copy completely, then switches the selector to it in one store.
    /// The region must be unformatted or hold a valid commit (load it, or repair it,
    /// first): this is the only write of the region in normal operation. Only the
    /// first `significantBytes` of the state are stored if the rest is zero (see
    /// "Storing only what can be non-zero").
    public func commit(state: State, significantBytes: Int = Self.stateBytes, requestID: UInt64, reply: SSRReply) {
        withUnsafeBytes(of: state) { bytes in
            commit(stateAt: bytes.baseAddress!, significantBytes: significantBytes, requestID: requestID, reply: reply)
        }
    }

    /// `commit(state:significantBytes:requestID:reply:)` of the `State` at `state`
    /// (aligned as a `State` is).
    public func commit(stateAt state: UnsafeRawPointer, significantBytes: Int, requestID: UInt64, reply: SSRReply) {
        let length = significantBytes >= Self.stateBytes ? Self.paddedStateBytes
                                                         : Self.storedLength(of: state, significantBytes: significantBytes)
        let next = Self.sequence(after: activeSequence ?? 0)
        if !headerIsValid { writeHeader() }
        writeCopy(Int(next & 1), sequence: next, stateAt: state, length: length, requestID: requestID, reply: reply)
        storage.publish(SSRLayout.selector(for: next), at: SSRLayout.selectorOffset)
    }

    /// The commit number after `sequence`: 0 means "never committed", so it is
    /// skipped, keeping the parity (the copy a number names).
    @inline(__always)
    static func sequence(after sequence: UInt32) -> UInt32 {
        let next = sequence &+ 1
        return next == 0 ? 2 : next
    }

    /// Writes copy `index` completely, as commit number `sequence`: every word of it,
    /// then its checksum. The selector is the caller's to switch.
    @inline(__always)
    func writeCopy(_ index: Int, sequence: UInt32, stateAt state: UnsafeRawPointer, length: Int, requestID: UInt64,
                   reply: SSRReply) {
        let base = copyOffset(index)
        let storage = self.storage
        var hash = checksumSeed(copy: index)
        func put(_ value: UInt64, _ field: Int) {
            hash.add(word: value)
            storage.store(value, at: base + field)
        }
        put(UInt64(sequence), SSRLayout.sequenceField)
        put(requestID, SSRLayout.requestField)
        put(reply.code, SSRLayout.codeField)
        put(reply.word0, SSRLayout.word0Field)
        put(reply.word1, SSRLayout.word1Field)
        put(UInt64(length), SSRLayout.stateLengthField)
        // A state aligned to 8 (every state with a 64-bit field) is read a word at a
        // time; `loadUnaligned` would read it byte by byte on RISC-V. Decided by the
        // type, at compile time: with a run-time test of the address the compiler
        // merged the two loads into the byte-wise one.
        let aligned = MemoryLayout<State>.alignment >= 8
        func putWords(upTo whole: Int) {
            var offset = 0
            while offset < whole {
                let value = aligned ? state.load(fromByteOffset: offset, as: UInt64.self)
                                    : state.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                put(value, SSRLayout.stateField + offset)
                offset += 8
            }
        }
        // A whole state gets a loop of constant length (as its hash on loading does).
        if length == Self.paddedStateBytes { putWords(upTo: Self.stateBytes & ~7) } else { putWords(upTo: length) }
        let offset = min(length, Self.stateBytes) & ~7
        if offset < length {
            var value: UInt64 = 0
            for byte in 0..<(min(length, Self.stateBytes) - offset) {
                value |= UInt64(state.load(fromByteOffset: offset + byte, as: UInt8.self)) << (8 * byte)
            }
            put(value, SSRLayout.stateField + offset)
        }
        storage.store(hash.value, at: base + SSRLayout.checksumField)
    }

    /// How many stores `commit` issues on this region as it is now, storing
    /// `stateBytes` of the state (for tests).
    public func storesPerCommit(storing stateBytes: Int = Self.paddedStateBytes) -> Int {
        (headerIsValid ? 0 : 3) + 6 + stateBytes / 8 + 2
    }

    // MARK: Recovery

    /// Judges the region of a client whose last answered request is `lastCompleted`
    /// (the kernel's L; see the essay above).
    public func check(lastCompleted: UInt64) -> SSRCheck<State> {
        if let record = activeRecord, record.requestID >= lastCompleted { return .valid(record) }
        if isZero { return .unformatted }
        var damage = self.damage
        if let sequence = activeSequence, let record = record(inCopy: Int(sequence & 1)), record.sequence == sequence {
            // Only the header is wrong (the copies' checksums still verify against the
            // expected layout), or the active commit is older than the kernel's L.
            if record.requestID >= lastCompleted { return .repairable(.record(record), .header) }
            damage = .behindKernel
        }
        if lastCompleted != 0, let record = newestRecord(withRequest: lastCompleted) {
            return .repairable(.record(record), damage)
        }
        if lastCompleted == 0 { return .repairable(.fresh, damage) }
        return .corrupt(damage)
    }

    /// The newest verified copy that answered `requestID`.
    func newestRecord(withRequest requestID: UInt64) -> SSRRecord<State>? {
        var best: SSRRecord<State>?
        for index in 0..<2 {
            guard let record = record(inCopy: index), record.requestID == requestID else { continue }
            if let current = best, Int32(bitPattern: record.sequence &- current.sequence) <= 0 { continue }
            best = record
        }
        return best
    }

    /// For a valid region whose active commit was never acknowledged (its id is above
    /// L): the state before it, if that can be had — the other copy when it verifies
    /// and answered L, or a fresh start when L is 0. Used to throw away work done by a
    /// server that then failed; the kernel delivers the request again.
    public func rollbackPoint(lastCompleted: UInt64) -> SSRRestorePoint<State>? {
        guard let active = activeRecord, active.requestID > lastCompleted else { return nil }
        if lastCompleted == 0 { return .fresh }
        let other = 1 - Int(active.sequence & 1)
        guard let record = record(inCopy: other), record.requestID == lastCompleted else { return nil }
        return .record(record)
    }

    /// Makes `point` the committed state: rewrites the header if needed and points the
    /// selector at the record's copy; `.fresh` clears the region (selector first). A
    /// crash part-way leaves a region that checks the same way again.
    public func repair(to point: SSRRestorePoint<State>) {
        switch point {
        case .record(let record):
            if !headerIsValid { writeHeader() }
            storage.publish(SSRLayout.selector(for: record.sequence), at: SSRLayout.selectorOffset)
        case .fresh:
            storage.publish(0, at: SSRLayout.selectorOffset)
            var offset = 0
            while offset < Self.requiredBytes {
                if offset != SSRLayout.selectorOffset && word(at: offset) != 0 { storage.store(0, at: offset) }
                offset += 8
            }
        }
    }
}

// MARK: Migration (live upgrade)

extension SSRFormat {
    /// Whether the region's header names this format's layout (magic, layout word and
    /// owner): says who wrote the region, not that its commit verifies.
    public var isWrittenInThisLayout: Bool { headerIsValid }

    /// Rewrites a region committed in `previous`'s layout (the same region, read as
    /// the version this server replaced wrote it) in this layout: the same commit,
    /// with its request id and reply, holding `state`, the previous state migrated by
    /// the service. See "Migrating a region" above for why a crash after any store
    /// leaves the old record or the new one.
    ///
    /// `commit` must be `previous`'s active commit, verified just now, and answered:
    /// its id the kernel's L (the runtime migrates only before it applies a new
    /// request, when that holds); `previousState` its state as loaded.
    public func migrate<Previous: BitwiseCopyable>(from previous: SSRFormat<Previous, Storage>, commit: SSRCommit,
                                                   previousState: UnsafePointer<Previous>,
                                                   state: UnsafePointer<State>, significantBytes: Int) {
        var active = Int(commit.sequence & 1)
        var sequence = commit.sequence
        if Self.overlaps(copy: 1 - active, previousCopy: active, previousStride: SSRFormat<Previous, Storage>.copyStride) {
            previous.commit(stateAt: UnsafeRawPointer(previousState), significantBytes: Int.max,
                            requestID: commit.requestID, reply: commit.reply)
            sequence = Self.sequence(after: sequence)
            active = 1 - active
        }
        let next = Self.sequence(after: sequence)
        let length = significantBytes >= Self.stateBytes
            ? Self.paddedStateBytes : Self.storedLength(of: UnsafeRawPointer(state), significantBytes: significantBytes)
        writeCopy(1 - active, sequence: next, stateAt: UnsafeRawPointer(state), length: length,
                  requestID: commit.requestID, reply: commit.reply)
        storage.store(layoutWord, at: SSRLayout.layoutOffset)
        storage.publish(SSRLayout.selector(for: next), at: SSRLayout.selectorOffset)
    }

    /// Whether this layout's copy `index` shares a byte with the previous layout's
    /// copy `previousIndex`, copies of that one being `previousStride` bytes apart.
    static func overlaps(copy index: Int, previousCopy previousIndex: Int, previousStride: Int) -> Bool {
        let start = SSRLayout.headerBytes + index * copyStride
        let previousStart = SSRLayout.headerBytes + previousIndex * previousStride
        return start < previousStart + previousStride && previousStart < start + copyStride
    }

    /// Whether the region holds a commit that verifies under a layout its header
    /// names and this format does not know: a region another version of the server
    /// wrote (a newer one, before a downgrade). That is not damage, and this format
    /// cannot read it: a server finding one must not judge it lost (see SSRServer).
    public var holdsCommitInAnotherLayout: Bool {
        let header = word(at: SSRLayout.layoutOffset)
        guard word(at: SSRLayout.magicOffset) == SSRLayout.magic, header != layoutWord,
              word(at: SSRLayout.ownerOffset) == SSRLayout.ownerWord(for: owner),
              let sequence = activeSequence else { return false }
        let padded = (Int(header >> 32) + 7) & ~7
        let stride = SSRLayout.stateField + padded
        let index = Int(sequence & 1)
        let start = SSRLayout.headerBytes + index * stride
        guard SSRLayout.headerBytes + 2 * stride <= storage.bytes.count else { return false }
        let stored = word(at: start + SSRLayout.stateLengthField)
        guard stored <= UInt64(padded), stored & 7 == 0 else { return false }
        var hash = RegionChecksum()
        hash.add(word: SSRLayout.magic)
        hash.add(word: header)
        hash.add(word: UInt64(index))
        hash.add(alignedWords: base + start + 8, count: (SSRLayout.stateField + Int(stored)) / 8 - 1)
        return hash.value == word(at: start + SSRLayout.checksumField)
            && word(at: start + SSRLayout.sequenceField) == UInt64(sequence)
    }
}

/// The checksum of a region's copy, a 64-bit word at a time: xor the word in,
/// multiply by FNV's odd prime, then fold the high half down (`x ^= x >> 29`).
/// Each of the three is a bijection modulo 2^64, so two inputs that differ in a
/// single word, in particular by any one flipped bit, always hash differently. The
/// fold is what FNV-1a's multiply alone lacks: a product carries differences only
/// upwards, so a flip of bit 63 in two words cancelled exactly and two flipped bits
/// went undetected. A word at a time costs an eighth of byte-wise hashing, and every
/// request a server handles verifies one copy and writes another.
public struct RegionChecksum: Sendable {
    public static let offsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01B3
    static let fold: UInt64 = 29

    public private(set) var value: UInt64 = offsetBasis

    public init() {}

    @inline(__always)
    public mutating func add(word: UInt64) {
        let mixed = (value ^ word) &* Self.prime
        value = mixed ^ (mixed >> Self.fold)
    }

    /// `count` words from 8-byte aligned memory: one load each.
    @inline(__always)
    public mutating func add(alignedWords start: UnsafeRawPointer, count: Int) {
        var offset = 0
        while offset < count * 8 {
            add(word: start.load(fromByteOffset: offset, as: UInt64.self))
            offset += 8
        }
    }

    /// `bytes` as little-endian words (a region's copies are whole words long).
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset + 8 <= bytes.count {
            add(word: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset += 8
        }
        var last: UInt64 = 0
        for index in 0..<(bytes.count - offset) { last |= UInt64(bytes[offset + index]) << UInt64(8 * index) }
        if offset < bytes.count { add(word: last) }
    }
}
