// How a process ended, and what `taskInfo` reports about a running one.

/// Why the hardware or the kernel stopped a process.
public enum FaultCause: UInt8, Sendable {
    case instructionPageFault = 1
    case loadPageFault = 2
    case storePageFault = 3
    case illegalInstruction = 4
    case misalignedAccess = 5
    case breakpoint = 6
    /// The process reported a Swift runtime trap (precondition, overflow, bounds).
    case runtimeTrap = 7
    case instructionAccessFault = 8
    case loadAccessFault = 9
    case storeAccessFault = 10
    /// The watchdog: a server held a request too long without waiting on anyone.
    case hang = 11
    /// The server reported its own state inconsistent.
    case reportedFailure = 12
    /// The server sat idle past the time it promised a held client its reply
    /// (`promiseReply`): it forgot the request.
    case brokenPromise = 13
    /// A restartable server called `exit`: a server is meant to serve for ever, so an
    /// exit is a failure (a flipped syscall number turned a reply into an exit).
    case exited = 14

    public var name: StaticString {
        switch self {
        case .instructionPageFault: "instruction page fault"
        case .loadPageFault: "load page fault"
        case .storePageFault: "store page fault"
        case .illegalInstruction: "illegal instruction"
        case .misalignedAccess: "misaligned access"
        case .breakpoint: "breakpoint"
        case .runtimeTrap: "Swift runtime trap"
        case .instructionAccessFault: "instruction access fault"
        case .loadAccessFault: "load access fault"
        case .storeAccessFault: "store access fault"
        case .hang: "hang (watchdog)"
        case .reportedFailure: "reported failure"
        case .brokenPromise: "held request forgotten (promised reply overdue)"
        case .exited: "exit of a server"
        }
    }
}

/// The result of `wait`, packed in one register:
///
///    63      16 15    8 7      0
///   +----------+-------+--------+
///   |  detail  | cause |  kind  |     kind: 1 exited, 2 faulted, 3 killed
///   +----------+-------+--------+     detail: exit code (exited)
public enum ExitStatus: Equatable, Sendable {
    case exited(code: Int32)
    case faulted(FaultCause)
    case killed

    public var rawValue: UInt {
        switch self {
        case .exited(let code): 1 | UInt(UInt32(bitPattern: code)) << 16
        case .faulted(let cause): 2 | UInt(cause.rawValue) << 8
        case .killed: 3
        }
    }

    public init?(rawValue: UInt) {
        switch rawValue & 0xFF {
        case 1: self = .exited(code: Int32(bitPattern: UInt32(truncatingIfNeeded: rawValue >> 16)))
        case 2:
            guard let cause = FaultCause(rawValue: UInt8(truncatingIfNeeded: rawValue >> 8)) else { return nil }
            self = .faulted(cause)
        case 3: self = .killed
        default: return nil
        }
    }
}

public enum TaskState: UInt8, Sendable {
    case free = 0
    case runnable = 1
    /// Blocked in `send`, waiting for the receiver to take the message.
    case sending = 2
    /// Blocked in `send`, the message taken, waiting for the reply.
    case awaitingReply = 3
    /// Blocked in `receive`.
    case receiving = 4
    /// Blocked in `wait` for a child.
    case waiting = 5
    /// Ended; its slot is kept until its parent collects the status.
    case ended = 6
    /// A restarted server held back (crashing too often) until its backoff ends.
    case held = 7
    /// A server that kept crashing and was given up; its clients get `serverFailed`.
    case failed = 8

    public var name: StaticString {
        switch self {
        case .free: "free"
        case .runnable: "ready"
        case .sending: "send"
        case .awaitingReply: "reply"
        case .receiving: "recv"
        case .waiting: "wait"
        case .ended: "ended"
        case .held: "held"
        case .failed: "failed"
        }
    }
}

/// What `taskInfo` writes to user memory: a fixed little-endian layout.
///
///   offset  size  field
///   0       4     TaskID raw value
///   4       1     TaskState
///   5       1     priority
///   6       2     restart count
///   8       4     pages in use
///   12      4     memory budget, pages
///   16      16    name, NUL-padded
///   32      16    the name of the program whose code it runs: the same, or after a
///                 live upgrade a version of it (Kernel+Upgrade.swift)
public struct TaskInfo: Sendable {
    public static let size = 48
    public var id: TaskID
    public var state: TaskState
    public var priority: UInt8
    public var restarts: UInt16
    public var pagesUsed: UInt32
    public var pageBudget: UInt32
    public var name: (UInt64, UInt64)
    public var codeName: (UInt64, UInt64)

    public init(id: TaskID, state: TaskState, priority: UInt8, restarts: UInt16,
                pagesUsed: UInt32, pageBudget: UInt32, name: (UInt64, UInt64), codeName: (UInt64, UInt64) = (0, 0)) {
        self.id = id
        self.state = state
        self.priority = priority
        self.restarts = restarts
        self.pagesUsed = pagesUsed
        self.pageBudget = pageBudget
        self.name = name
        self.codeName = codeName
    }
}

/// Notification bits the kernel itself posts.
public enum KernelNotification {
    /// The interrupt a server owns has fired (one bit per owned interrupt, from bit 0).
    public static let firstInterruptBit: UInt = 1 << 0
    /// The timer set with `setTimer` has expired, unless the caller chose other bits.
    public static let timerBit: UInt = 1 << 31
}
