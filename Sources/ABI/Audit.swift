// What the kernel's invariant audit can find wrong, shared by the kernel and the
// shell's `audit` command.

/// The kinds of inconsistency the kernel's invariant audit looks for
/// (Kernel+Audit.swift); the `audit` syscall reports the first one it found.
public enum AuditViolation: UInt8, Sendable {
    case none = 0
    case frameFoundTwice = 1
    case frameFoundFree = 2
    case chargeMismatch = 3
    case unownedFrames = 4
    case staleSenderBit = 5
    case senderNotQueued = 6
    case partnerNotLive = 7
    case badBinding = 8
    case windowMismatch = 9
    case orphanNotAnnounced = 10
    case noMemoryForAudit = 11
    case dmaGrantNotOwned = 12

    public var name: StaticString {
        switch self {
        case .none: "none"
        case .frameFoundTwice: "a frame has two owners"
        case .frameFoundFree: "an owned frame is free"
        case .chargeMismatch: "a process's charge differs from its frames"
        case .unownedFrames: "allocated frames that nobody owns"
        case .staleSenderBit: "a waiting-sender bit names no sender"
        case .senderNotQueued: "a sending process is in no queue"
        case .partnerNotLive: "a blocked process waits on a process that is gone"
        case .badBinding: "a binding names no SSR server"
        case .windowMismatch: "an SSR window shows the wrong pages"
        case .orphanNotAnnounced: "an orphan its server will never hear of"
        case .noMemoryForAudit: "no memory to audit with"
        case .dmaGrantNotOwned: "a device may reach a frame its driver does not own"
        }
    }
}
