// The kernel's record of one process slot.
//
// Slots are fixed (Hubris-style): the task table is allocated once at boot and a
// process is named by its slot and the slot's generation (TaskID). Everything a
// blocked process is waiting for is recorded here, so the kernel itself never
// blocks: `partner` says whom a sending, replying or waiting process is waiting on,
// and `sendersWaiting` is the set of slots queued to send to this one.

import CurioABI

public struct Task {
    public var generation: UInt16 = 0
    public var state: TaskState = .free
    /// The boot-image program this process is: its name, its authority, the bit
    /// clients send to, the SSRs bound to it.
    public var program: Int = -1
    public var priority: UInt8 = 7
    public var restarts: UInt16 = 0
    /// The process that spawned this one and may `wait` for it.
    public var parent: TaskID?
    /// The root page table, 0 while the slot has no address space. (Stored plain:
    /// Swift packs an Optional's tag beside its payload, and RISC-V then loads the
    /// payload a byte at a time on every trap.)
    var rootTable: UInt64 = 0
    public var addressSpace: AddressSpace? {
        get { rootTable == 0 ? nil : AddressSpace(root: PhysicalAddress(rootTable)) }
        set {
            rootTable = newValue?.root.rawValue ?? 0
            checkedReceiveAddress = 0
            checkedReceiveCount = 0
        }
    }
    /// The last receive buffer the slow path checked against this address space's
    /// page tables (count 0: none), which the IPC fastpath may trust (Kernel+Fastpath.swift).
    var checkedReceiveAddress: UInt64 = 0
    var checkedReceiveCount: UInt64 = 0
    /// Frames this process holds (its pages and its page tables).
    public var pagesUsed: Int = 0
    public var pageBudget: Int = 0
    /// The slot this process is blocked on: the receiver it sends to, the server whose
    /// reply it awaits, or the child it waits for.
    public var partner: Int = -1
    /// The slots blocked sending to this process.
    public var sendersWaiting = SlotSet()
    public var notificationsPending: UInt = 0
    /// The notification bits a blocked `receive` accepts.
    public var receiveMask: UInt = 0
    /// When to post `timerBits` (0: no timer set).
    public var timerDeadline: UInt64 = 0
    public var timerBits: UInt = 0
    /// `ExitStatus.rawValue` once ended.
    public var exitStatus: UInt = 0
    /// From the program's descriptor, kept here because the IPC path checks them on
    /// every call and decoding the descriptor costs hundreds of instructions.
    public var sendMask: UInt64 = 0
    public var mayManage = false
    public var restartable = false
    /// Pages of state this server keeps per client (0: not an SSR server).
    public var ssrPages = 0
    /// Its interrupts and device windows.
    public var hardware = ProgramHardware()

    // As a client: the SSRs this process owns, one per server it has called, and
    // which of them its request in flight uses (found at send, used at delivery).
    public var bindings = InlineArray<4, SSRBinding>(repeating: SSRBinding())
    var requestBinding = 0

    // As a server (see Kernel+SSR.swift, Kernel+Restart.swift):
    /// The client whose SSR is mapped in this server's window (-1: none), and which
    /// of its bindings that is.
    public var windowClient = -1
    var windowBinding = 0
    /// How many pages the window holds now (so closing it reads no binding).
    var windowPages = 0
    /// The SSRs mapped for this server's latest requests, newest at `recentCursor - 1`
    /// (a client's TaskID << 8 | binding index, with bit 62 set; 0: empty). When the
    /// server faults they are all suspect, not only the one mapped at the fault: an
    /// error may lie latent for a few requests before it is detected.
    var recentWindows = InlineArray<4, UInt64>(repeating: 0)
    var recentCursor = 0
    /// Where the window's page-table entries live (found once, at spawn), so mapping
    /// an SSR is a few stores rather than a page-table walk per page.
    var windowEntries: UInt64 = 0
    /// The orphaned binding mapped for an unbind message, as slot * bindingsPerTask
    /// + index (-1: none).
    public var windowOrphan = -1
    /// Restarted and not yet done checking its SSRs: takes no messages.
    public var recovering = false
    /// When the request being worked on was delivered, or the server last woke while
    /// working on it (0: none); for the watchdog.
    public var servingSince: UInt64 = 0
    /// Clock ticks this server has run since `servingSince`, as sampled at clock
    /// interrupts: the watchdog's measure, so that a server kept from the processor by
    /// a more urgent one (hung, say) is not taken for hung itself.
    public var servedTicks: UInt64 = 0
    /// When the supervisor first saw this task awaiting its partner's reply (0: not
    /// yet; reset when a request is delivered, so the send path reads no clock).
    public var awaitingReplySince: UInt64 = 0
    /// As a client awaiting a reply: the clock value by which its server promised
    /// it (0: no promise). Cleared whenever a request of this task is delivered.
    public var replyPromisedBy: UInt64 = 0
    /// Clock interrupts past that promise at which its server had had its chance to
    /// answer, and its server's `receiveCount` at the last interrupt (both set when
    /// the promise is made).
    public var promiseOverdueTicks: UInt8 = 0
    public var promiseReceiveMark: UInt32 = 0
    /// As a server: calls of `receive`, wrapping (for `superviseReplyPromises`), and
    /// the notifications they delivered (the rest delivered messages).
    public var receiveCount: UInt32 = 0
    public var notificationsDelivered: UInt32 = 0
    /// As a server: holds no request without a promise (system.toml `promises`).
    public var promisesReplies = false
    /// As a client: restarted when it faults, keeping its SSRs (system.toml `keep_ssrs`).
    public var keepsSSRs = false
    /// As a server: how long (clock ticks) a client may await its reply before this
    /// server is deemed to have forgotten the request (0: no limit).
    public var replyLimit: UInt64 = 0
    /// Restarts in quick succession, for backoff; the time of the last one.
    public var rapidRestarts = 0
    public var lastRestart: UInt64 = 0
    /// A backed-off restart holds the fresh process until this time.
    public var heldUntil: UInt64 = 0
    /// Where its writable data lies, for data bit flips: data and bss, then (after an
    /// unmapped guard page) the heap.
    public var dataStart: UInt64 = 0
    public var dataEnd: UInt64 = 0
    public var heapStart: UInt64 = 0
    public var heapEnd: UInt64 = 0
    /// A fault waiting to strike (see Kernel+FaultInjection.swift).
    public var injection = PendingInjection()
    /// As a restartable server: the request (or recovered SSR) it was working on
    /// when it last crashed, to recognise a poison request (Kernel+Restart.swift).
    public var lastCrash = CrashSite()
    /// The server has answered a request since its last poison request failed (a
    /// poison request's crashes count toward giving up only when this is false: a
    /// server that answers nothing between poison requests is failing for everyone).
    public var repliedSincePoison = true
    /// This incarnation has answered a request: its restart is not "in quick
    /// succession" with the one before, however soon it comes.
    public var repliedSinceRestart = false
    /// As a restartable server: the client whose requests its latest failures were
    /// working on, and how many failures in a row, each soon after a restart, that
    /// is (Kernel+Restart.swift, "a client whose requests kill the server").
    public var streakClient = TaskID(rawValue: 0)
    public var streak: UInt32 = 0
    /// As a restartable server: the instruction its last incarnation failed at (0:
    /// none), to recognise a server that fails at the same step every time.
    public var lastFailurePC: UInt64 = 0
    /// The boot-image program whose code it runs: `program`, or after a live upgrade
    /// a version of it (Kernel+Upgrade.swift).
    public var codeProgram: Int16 = -1
    /// An upgraded server still in its first recovery: the code it ran before, to go
    /// back to if that recovery fails (-1: none).
    public var upgradedFrom: Int16 = -1
    /// Keep the record's size a multiple of 8 (848 bytes). At 834 bytes the compiler
    /// trusted no alignment in a record reached through the task table and loaded
    /// every field a byte at a time: eight loads and fourteen shifts and ors for each
    /// word the IPC path reads (FastpathTests checks the size).
    private var padding16: UInt16 = 0
    private var padding64: UInt64 = 0

    public init() {}

    public var isLive: Bool { state != .free && state != .ended && state != .failed }

    /// Pages held in SSRs this slot owns, orphans included (all charged to it).
    public var bindingPages: Int {
        var pages = 0
        for index in 0..<SSRTable.bindingsPerTask where bindings[index].isUsed { pages += bindings[index].pageCount }
        return pages
    }

    public var hasBindings: Bool {
        for index in 0..<SSRTable.bindingsPerTask where bindings[index].isUsed { return true }
        return false
    }

    public func id(slot: Int) -> TaskID { TaskID(index: slot, generation: generation) }
}

/// What a server was doing for a client when it crashed: that client's request id,
/// or the recovery of its SSR.
public struct CrashSite: Equatable, Sendable {
    public var request: UInt64 = 0
    public var client = TaskID(rawValue: 0)
    /// 1: the server was recovering this client's SSR (a whole UInt32, so that the
    /// record's size is a multiple of 8 and `Task` keeps its fields aligned).
    private var recovering: UInt32 = 0

    public var inRecovery: Bool { recovering != 0 }

    public init() {}

    public init(client: TaskID, request: UInt64, inRecovery: Bool) {
        self.client = client
        self.request = request
        recovering = inRecovery ? 1 : 0
    }
}
