// The updates a crash interrupted, held for their re-runs: what no other client may
// take meanwhile.
//
// An interrupted update's intent (Intent.swift) names blocks and inodes it reserved
// or is releasing; its re-run believes them its own. Other clients' requests run
// before that re-run (the kernel re-delivers in its own order), so allocation must
// skip everything such an intent names until the re-run ends (`finish` in
// Operations.swift forgets it) or its client goes away.
//
// Why this table is not the volume's. The server drops its volume and mounts afresh
// whenever an I/O or corruption error may have come from damaged metadata in its
// memory, and recovery finds the interrupted intents in the SSRs before any volume
// is mounted (the mount needs the storage and configuration servers, which may not
// answer yet). A table inside the volume was lost at every fresh mount and never
// filled when recovery could not mount; then another client could allocate a block
// the re-run then linked too, and two files shared it. So the server owns one table
// for its whole life, recovery adopts into it, and every volume it mounts consults
// the same one: there is no copy to lose.
//
// Like the lock table, this is server memory that clients depend on, so each entry
// carries a check word over its bytes and the server asks `isIntact` before each
// request; a damaged table means restart, and recovery adopts again from the SSRs.
// It grows as needed (at most one interrupted update per client): an intent that did
// not fit would be an update nobody protects.

public final class InterruptedUpdates {
    struct Entry {
        var intent: Ext2Intent
        var check: UInt64
    }

    var entries: [Entry] = []

    public init() {}

    /// The updates held now.
    public var count: Int { entries.count }

    /// Holds what an interrupted update's intent names until `forget(tag:)`. Adopting
    /// a tag again replaces its entry; an intent that recorded nothing holds nothing.
    public func adopt(_ intent: Ext2Intent) {
        forget(tag: intent.tag)
        guard intent.kind != .none else { return }
        entries.append(Entry(intent: intent, check: Self.check(intent)))
    }

    /// Drops the update with this tag (its operation finished or was abandoned).
    public func forget(tag: UInt64) {
        entries.removeAll { $0.intent.tag == tag }
    }

    /// Whether every entry still matches its check word.
    public var isIntact: Bool {
        entries.allSatisfy { $0.check == Self.check($0.intent) }
    }

    /// True when an update other than `tag`'s holds `block`.
    func holdsBlock(_ block: UInt32, otherThan tag: UInt64) -> Bool {
        entries.contains { $0.intent.tag != tag && $0.intent.holds(block: block) }
    }

    /// True when an update other than `tag`'s names inode `number`.
    func holdsInode(_ number: UInt32, otherThan tag: UInt64) -> Bool {
        entries.contains { $0.intent.tag != tag && ($0.intent.inode == number || $0.intent.otherInode == number) }
    }

    /// `WordHash` over the intent's words.
    static func check(_ intent: Ext2Intent) -> UInt64 {
        withUnsafeBytes(of: intent) { bytes in
            var hash = WordHash()
            var offset = 0
            while offset + 8 <= bytes.count {
                hash.add(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                offset += 8
            }
            return hash.value
        }
    }
}
