// The kernel's records of server state regions.
//
// Each process carries a small table of bindings, one per server it has called
// (paper §5: "SSR metadata is maintained within the kernel as a table associated
// with process objects"). A binding names the server by *program*, not by slot and
// generation, so it outlives the server's restarts. The SSR's frames belong to the
// client's budget; the kernel maps them into the server's window only while the
// server works for that client.
//
// When a client ends, its bindings become *orphans* in place: the entry keeps its
// frames, still charged to the ended client, whose slot lingers (`ended`) until
// every server has seen its unbind message and replied. There is no separate
// orphan table to fill up, and no SSR is ever freed behind its server's back: a
// server that is gone for good has its orphans freed; one that is merely slow
// keeps them, accounted to the client that owned them. A restarted server's own
// client bindings become orphans of its old incarnation the same way, in the
// binding table of the slot its new incarnation now runs in.

import CurioABI

public enum SSRTable {
    /// Servers one process can be bound to at once (orphans of an earlier
    /// incarnation of a restarted server included).
    public static let bindingsPerTask = 4
    /// How many of a server's latest request windows a fault makes suspect (a power
    /// of two: the ring's cursor wraps with a mask).
    public static let recentWindows = 4
}

public struct SSRBinding: Sendable {
    /// The server program (index in the boot image); -1: this entry is unused.
    public var serverProgram: Int = -1
    public var pageCount: Int = 0
    public var state: SSRState = .valid
    /// For a lost state: whether its client has been told (its call then in progress
    /// failed with `serverStateLost`); if not, its next call is.
    public var lossReported = false
    public var frames = InlineArray<4, UInt64>(repeating: 0)
    /// The id given to the client's latest request; ids start at 1.
    public var lastIssuedRequest: UInt64 = 0
    /// The id of the latest request the server replied to.
    public var lastCompletedRequest: UInt64 = 0
    /// The incarnation that bound: once it has ended (or restarted), the sender its
    /// server's unbind message names.
    public var owner = TaskID(rawValue: 0)
    /// Keeps the size a multiple of 8. Records live in an InlineArray inside `Task`;
    /// with a size of 76 the compiler no longer trusted the alignment of anything in
    /// or after that array and loaded every such field a byte at a time (the SSR round
    /// trip cost 900 instructions more).
    private var padding: UInt32 = 0

    public init() {}

    public var isUsed: Bool { serverProgram >= 0 }
    /// In use by its owner, as opposed to waiting for its server's cleanup.
    public var isActive: Bool { serverProgram >= 0 && state != .orphaned }
}

/// What `issueRequest` did, so a send whose delivery fails can be undone.
struct IssuedRequest {
    /// The binding whose id advanced (-1: the receiver keeps no SSRs).
    var binding: Int
    /// Whether this send created the binding.
    var bound: Bool
}
