// The kernel's records of server state regions.
//
// Each process carries a small table of bindings, one per server it has called
// (paper §5: "SSR metadata is maintained within the kernel as a table associated
// with process objects"). A binding names the server by *program*, not by slot and
// generation, so it outlives the server's restarts. The SSR's frames belong to the
// client's budget; the kernel maps them into the server's window only while the
// server works for that client.
//
// When a client ends, its bindings become orphans: the pages stay alive until the
// server has seen the unbind message and replied (so it can close, unlock, cancel).

import CurioABI

public enum SSRTable {
    /// Servers one process can be bound to at once.
    public static let bindingsPerTask = 4
    /// Orphaned SSRs waiting for their server's cleanup.
    public static let maxOrphans = 16
}

public struct SSRBinding: Sendable {
    /// The server program (index in the boot image); -1: this entry is unused.
    public var serverProgram: Int = -1
    public var pageCount: Int = 0
    public var state: SSRState = .valid
    public var frames = InlineArray<4, UInt64>(repeating: 0)
    /// The id given to the client's latest request; ids start at 1.
    public var lastIssuedRequest: UInt64 = 0
    /// The id of the latest request the server replied to.
    public var lastCompletedRequest: UInt64 = 0

    public init() {}

    public var isUsed: Bool { serverProgram >= 0 }
}

/// An SSR whose client has ended, kept until its server has cleaned up.
public struct OrphanedSSR: Sendable {
    public var binding = SSRBinding()
    /// The ended client's last TaskID: the sender of the unbind message.
    public var client = TaskID(rawValue: 0)

    public init() {}
}
