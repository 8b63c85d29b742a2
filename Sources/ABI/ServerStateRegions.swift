// Server State Regions: the types shared by the kernel, servers and tools.
//
// A server declares in the system description how many pages of state it keeps per
// client (`ssr = N`, KiB). The first time a client sends to it, the kernel allocates
// those pages from the client's budget: the client's SSR for that server. The client
// can never map it. The kernel maps it into the server at `SSRWindow.base` while the
// server handles one of that client's requests, and unmaps it (flushing just those
// pages from the TLB) when the server replies or moves on. When the server faults,
// the kernel restarts it from its pristine image; SSRs survive, and the one mapped at
// the moment of the fault is marked suspect. The restarted server walks its SSRs
// (`ssrRecoverNext`), judges each (`ssrVerdict`), rebuilds its caches, and says
// `recoveryComplete`; then the kernel re-delivers the requests that were in flight.
//
// Every request from a bound client carries a request id, assigned by the kernel
// when the client sends and kept across re-delivery, so a server can recognise a
// request it already applied (exactly-once; see SSRFormat).

public enum SSRWindow {
    /// Where a server sees the SSR it may touch right now.
    public static let base: UInt = 0x6000_0000
    /// The largest SSR, in pages.
    public static let maxPages = 4
}

/// What the kernel knows about an SSR.
public enum SSRState: UInt8, Sendable {
    case valid = 0
    /// Mapped into a server when that server faulted: check with extra care.
    case suspect = 1
    /// The server's checker rejected it; its client's requests get `serverStateLost`.
    case lost = 2
    /// Its client has ended; waiting for the server to clean up (the unbind message).
    case orphaned = 3

    public var name: StaticString {
        switch self {
        case .valid: "valid"
        case .suspect: "suspect"
        case .lost: "lost"
        case .orphaned: "orphaned"
        }
    }
}

/// A restarted server's judgement of one SSR.
public enum SSRVerdict: UInt, Sendable {
    case valid = 0
    case repaired = 1
    case lost = 2
}

/// The operation of the message the kernel sends a server when one of its clients
/// has ended: the SSR is mapped; clean up (close, unlock, cancel) and reply, after
/// which the kernel frees the SSR's pages.
public enum SSRMessage {
    public static let unbindOperation: UInt = 0xFFFF
}

/// Faults the kernel can inject into a server (software-implemented fault injection).
public enum FaultKind: UInt, CaseIterable, Sendable {
    /// Store a random value at a random mapped, writable address of the server (a
    /// stray store through a bad pointer that happened to land somewhere valid).
    case wildWrite = 0
    /// Flip one bit of one saved register at a random point of execution.
    case registerBitFlip = 1
    /// Flip one bit of the server's data, bss or heap.
    case dataBitFlip = 2
    /// Flip one bit of the server's live stack.
    case stackBitFlip = 3
    /// Flip one bit of the SSR the server has mapped.
    case ssrBitFlip = 4
    /// Make the server spin forever (the watchdog must catch it).
    case endlessLoop = 5
    /// Replace the next instruction with an illegal one.
    case illegalInstruction = 6
    /// Flip one bit of a register that holds a pointer into the server's memory.
    case pointerFlip = 7
    /// Mutate the instruction about to run, as a programming error would (a deleted
    /// statement, an inverted branch, a wrong register or pointer, a bound off by
    /// one); aim 1...5 picks the mutation.
    case codeMutation = 8

    /// Or'ed into the kind given to `injectFault`: a code fault (mutate, loop,
    /// illegal) is also applied to every later load of the program, so a restarted
    /// server has the same bug.
    public static let persistentFlag: UInt = 0x100

    public var name: StaticString {
        switch self {
        case .wildWrite: "wild-write"
        case .registerBitFlip: "reg-flip"
        case .dataBitFlip: "data-flip"
        case .stackBitFlip: "stack-flip"
        case .ssrBitFlip: "ssr-flip"
        case .endlessLoop: "loop"
        case .illegalInstruction: "illegal"
        case .pointerFlip: "pointer-flip"
        case .codeMutation: "mutate"
        }
    }
}

/// When an injected fault strikes.
public enum FaultTrigger: UInt, Sendable {
    /// When the next request is delivered to the server.
    case nextRequest = 0
    /// When the Nth request from now is delivered (argument: N).
    case afterRequests = 1
    /// After a pseudo-random number of clock ticks below the argument, wherever the
    /// server is then (if it is not running, at the next moment it is).
    case randomTime = 2
    /// After a pseudo-random 1...argument clock ticks of the server's own execution
    /// (time it runs, not time it waits): under `-icount shift=0` a tick is 100
    /// instructions, so this strikes at a random point of the code it executes.
    case execution = 3
}

/// What `ssrInfo` writes: a fixed little-endian layout.
///
///   offset  size  field
///   0       4     owner TaskID
///   4       1     server program index
///   5       1     pages
///   6       1     SSRState
///   7       1     reserved
///   8       8     last request id completed
///   16      16    server name, NUL-padded
public struct SSRInfo: Sendable {
    public static let size = 32
    public var owner: TaskID
    public var serverProgram: UInt8
    public var pages: UInt8
    public var state: SSRState
    public var reserved: UInt8 = 0
    public var lastCompletedRequest: UInt64
    public var serverName: (UInt64, UInt64)

    public init(owner: TaskID, serverProgram: UInt8, pages: UInt8, state: SSRState,
                lastCompletedRequest: UInt64, serverName: (UInt64, UInt64)) {
        self.owner = owner
        self.serverProgram = serverProgram
        self.pages = pages
        self.state = state
        self.lastCompletedRequest = lastCompletedRequest
        self.serverName = serverName
    }
}

/// A seal over a delivered request. The kernel computes it when it delivers a
/// message from a bound client and leaves it in a7; the server recomputes it from the
/// registers it received. A mismatch means the server's own copy was damaged between
/// delivery and use (a fault in the server, not a client sending nonsense), so the
/// server restarts and the kernel delivers the request again from the client's
/// intact registers.
public enum RequestSeal {
    public static func value(sender: UInt32, operation: UInt, word0: UInt, word1: UInt, length: UInt,
                             requestID: UInt64) -> UInt64 {
        var seal: UInt64 = 0x243F_6A88_85A3_08D3 ^ requestID
        seal = mix(seal, UInt64(sender))
        seal = mix(seal, UInt64(operation))
        seal = mix(seal, UInt64(word0))
        seal = mix(seal, UInt64(word1))
        return mix(seal, UInt64(length))
    }

    private static func mix(_ seal: UInt64, _ value: UInt64) -> UInt64 {
        let mixed = (seal ^ value) &* 0x9E37_79B9_7F4A_7C15
        return mixed ^ (mixed >> 29)
    }
}
