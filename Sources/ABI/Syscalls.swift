// The system-call interface between Curio's kernel and its user processes.
//
// A process enters the kernel with `ecall`: the syscall number in a7, up to seven
// arguments in a0...a6. The kernel answers in a0 (a `SyscallStatus`: zero for
// success, otherwise a `SyscallError` code) and a1...a5 (results). Every argument
// is decoded and validated before the kernel changes anything, so a rejected call
// has no effect. The errors each call can return are listed with it
// (`Syscall.possibleErrors`, below).
//
//   call        a0           a1          a2         a3        a4        a5        a6
//   ---------   ----------   ---------   --------   -------   -------   -------   -------
//   send        endpoint|op  word0       word1      sendPtr   sendLen   replyPtr  replyLen
//               -> a1 = response code, a2/a3 = reply words, a4 = reply length
//   receive     bufPtr       bufLen      notifyMask
//               -> a1 = sender TaskID (or kernelSender), a2 = operation or notification
//                  bits, a3/a4 = words, a5 = message length, a6 = request id (nonzero
//                  only for a client bound to the receiver by a server state region)
//   reply       client       code        word0      word1     bufPtr    bufLen
//   replyRecv   client       code|mask   word0      word1     bufPtr    replyLen  bufCapacity
//               replies with buf[0..<replyLen], then receives into buf (as receive);
//               mask = notification mask in the high 32 bits of a1
public enum Syscall: UInt, Sendable, CaseIterable {
    /// End the calling process: a0 = exit code.
    case exit = 0
    /// Give up the rest of the time slice.
    case yield = 1
    /// Call an endpoint and wait for its reply.
    case send = 2
    /// Wait for a message or a notification.
    case receive = 3
    /// Answer a message received earlier; never blocks. A server with state regions
    /// may seal its reply to a bound client: t0 = `RequestSeal.value` over (client,
    /// code, word0, word1, payload length, the request's id). The kernel checks a seal
    /// it is given (t0 ≠ 0) and refuses a reply that does not match it
    /// (`replySealBroken`), so that a fault between the server's checks and the
    /// `ecall` cannot hand the client words the server never meant. A payload the
    /// client's reply buffer cannot take ends the client's call with that error and
    /// returns `replyUndeliverable`.
    case reply = 4
    /// Find the endpoint of a program's running instance: a0/a1 = name pointer/length.
    case lookup = 5
    /// Start a program: a0/a1 = name, a2/a3 = argument string. Needs `manage`.
    case spawn = 6
    /// Stop a process: a0 = TaskID. Needs `manage`.
    case kill = 7
    /// Wait for a child to end: a0 = TaskID. -> a1 = `ExitStatus` raw value.
    case wait = 8
    /// Describe task slot a0 into the `TaskInfo` at a1 (a2 = its size).
    case taskInfo = 9
    /// -> a1 = total pages, a2 = free pages, a3 = kernel pages.
    case memoryInfo = 10
    /// Re-enable interrupt a0 after the owning server has handled it.
    case irqAcknowledge = 11
    /// Post notification bits a1 to the caller when the clock reaches a0 (0 = cancel).
    case setTimer = 12
    /// -> a1 = the clock (`time` CSR ticks; 10 MHz on QEMU virt).
    case clock = 13
    /// Power the machine off with exit code a0. Needs `manage`.
    case powerOff = 14
    /// -> a1 = the caller's own TaskID.
    case whoAmI = 15
    /// A server's loop step in one trap: reply to one client, then receive the next
    /// message (seL4's ReplyRecv). A reply to a client that has died is dropped. The
    /// reply may be sealed in t0, as for `reply`.
    case replyAndReceive = 16

    // Server state regions (see ServerStateRegions.swift).

    /// Map the SSR of client a0 (which must be awaiting the caller's reply) into the
    /// caller's SSR window. -> a1 = window address, a2 = size in bytes, a3 = request id.
    case ssrOpen = 17
    /// Recovery: map the next SSR bound to the caller, from cursor a0 (0 first). A
    /// nonzero a1 is 1 + the `SSRVerdict` on the SSR mapped now, given in the same trap
    /// (one trap per SSR instead of two).
    /// -> a1 = client TaskID or `TaskID.kernel` when done, a2 = `SSRState`, a3 = next
    /// cursor, a4 = the last request id the kernel saw completed, a5 = window address.
    case ssrRecoverNext = 18
    /// Recovery: the verdict a1 (`SSRVerdict`) on the SSR of client a0.
    case ssrVerdict = 19
    /// Recovery is over: re-deliver the requests that were in flight.
    case recoveryComplete = 20
    /// Inject a fault into program a0/a1 (name): kind a2 (`FaultKind`, or'ed with
    /// `FaultKind.persistentFlag` for a code fault that survives restarts), trigger a3
    /// (`FaultTrigger`), trigger argument a4, aim a5 (0: random; otherwise 1 + the
    /// register number for register faults, 1 + the byte offset in the region for bit
    /// flips), seed a6 (0: go on with the kernel's generator; otherwise the fault's
    /// moment and target follow from the seed alone). Needs `manage`.
    case injectFault = 21
    /// Describe SSR number a0 (over all processes) into the `SSRInfo` at a1 (a2 = size).
    /// -> a1 = 1 if there was one, 0 past the end.
    case ssrInfo = 22
    /// A server found its own state inconsistent: restart it as if it had faulted.
    case reportFailure = 23
    /// For a driver (a program that owns devices): -> a1 = the physical address of
    /// the caller's own writable page at a0, which its devices may reach from now on
    /// (a DMA grant, until the driver ends or restarts). The frame stays the caller's
    /// for its lifetime: user memory is never moved. Device windows and SSR pages are
    /// not the caller's own (`badAddress`).
    case physicalAddress = 24
    /// Check the kernel's invariants (Kernel+Audit.swift). Needs `manage`.
    /// -> a1 = violations found, a2 = the first one's `AuditViolation` code, a3 = its
    /// slot (or all ones), a4 = frames found owned by processes.
    case audit = 25
    /// For a driver: write the 32-bit value a2 to the register at byte offset a1 of its
    /// device range a0 (its index in the program's `devices`). The register pages of DMA-capable (virtio) devices are mapped read-only; the kernel
    /// lets a write through only if the device can then reach nothing but pages the
    /// driver was granted by `physicalAddress` (Kernel/Core/Devices/DMAGuard.swift).
    case deviceWrite = 26
    /// For a restartable server holding the request of client a0 (a TaskID): it will
    /// reply by clock value a1 (0 withdraws the promise). If the server is found idle
    /// in `receive` later than that, with the client still waiting, it has forgotten
    /// the request — a fault that left it running — and is restarted; the request is
    /// delivered again. A new delivery of the client's request clears the promise.
    /// `notWaitingForReply` if the client is not awaiting the caller's reply.
    case promiseReply = 27
    /// Replace the running server program a0/a1 (name) with a2/a3 (name): a version
    /// of it (system.toml `version_of`), or the program itself when it runs a version.
    /// Done only between two requests (else `serverBusy`: try again); the version
    /// starts in recovery, and if that fails the kernel rolls back to the code the
    /// server ran before. Needs `manage`. (Kernel+Upgrade.swift)
    case upgrade = 28
}

/// a0 after a system call.
public enum SyscallError: UInt, Error, Sendable, CaseIterable {
    case unknownSyscall = 1
    /// An argument is out of range (bad length, bad flags, bad slot number).
    case badArgument = 2
    /// A user pointer is not mapped, not user-accessible, or lacks the needed permission.
    case badAddress = 3
    /// The endpoint's process has ended or restarted since the ID was obtained.
    case deadEndpoint = 4
    /// The system description does not allow this call.
    case notPermitted = 5
    /// No such program, task or endpoint.
    case notFound = 6
    /// The memory budget or the machine's memory is exhausted.
    case outOfMemory = 7
    /// A message is larger than the receiver's buffer or `maxMessageBytes`.
    case messageTooLarge = 8
    /// Every task slot is in use.
    case noFreeSlot = 9
    /// `wait` on a process that is not the caller's child.
    case notChild = 10
    /// `reply` to a task that is not waiting for the caller's reply.
    case notWaitingForReply = 11
    /// The server lost this client's state in a crash (its SSR failed the checker).
    /// The client may simply call again: it is bound afresh.
    case serverStateLost = 12
    /// The server kept crashing and was given up.
    case serverFailed = 13
    /// The server crashed twice while handling this very request; it was dropped so
    /// that the server could carry on for its other clients. Calling again is allowed.
    case requestFailed = 14
    /// A second instance of a server with state regions: its clients' SSRs belong to
    /// the one running.
    case alreadyRunning = 15
    /// A device would be told to reach memory outside the pages granted to its driver.
    case dmaNotPermitted = 16
    /// A reply whose words do not match the seal the server gave with them: the server
    /// was damaged between sealing and replying. The client keeps waiting.
    case replySealBroken = 17
    /// To a server: the client's reply buffer could not take the reply (too small,
    /// or no longer writable). The client's call has ended with that error instead
    /// (`messageTooLarge`, `badAddress`), so the reply is over: the client's doing,
    /// not the server's. `replyAndReceive` goes on to receive.
    case replyUndeliverable = 18
    /// The server is handling a request or recovering: an upgrade waits for a request
    /// boundary. Nothing was changed; try again.
    case serverBusy = 19
}

extension SyscallError {
    /// How the shell and the kernel's reports name the error.
    public var name: StaticString {
        switch self {
        case .unknownSyscall: "unknown syscall"
        case .badArgument: "bad argument"
        case .badAddress: "bad address"
        case .deadEndpoint: "dead endpoint"
        case .notPermitted: "not permitted"
        case .notFound: "not found"
        case .outOfMemory: "out of memory"
        case .messageTooLarge: "message too large"
        case .noFreeSlot: "no free task slot"
        case .notChild: "not a child"
        case .notWaitingForReply: "not waiting for a reply"
        case .serverStateLost: "server state lost"
        case .serverFailed: "server failed"
        case .requestFailed: "request failed (the server crashed on it twice)"
        case .alreadyRunning: "already running"
        case .dmaNotPermitted: "DMA outside the driver's pages"
        case .replySealBroken: "reply does not match its seal"
        case .replyUndeliverable: "the client could not take the reply"
        case .serverBusy: "server busy (between no two requests)"
        }
    }
}

public enum SyscallLimits {
    /// The largest payload `send` and `reply` copy between address spaces.
    public static let maxMessageBytes = 4096
    /// The longest program name.
    public static let maxNameBytes = 15
    /// The longest startup argument string.
    public static let maxArgumentBytes = 128
}

extension Syscall {
    /// Every error this call can return in a0: its faults, as Hubris lists each
    /// call's. Refusals of malformed arguments (`badArgument`, `badAddress`,
    /// `messageTooLarge`) change nothing; the others say why a well-formed call could
    /// not be done. (KernelCoreTests' `SyscallErrorsTests` makes every call with
    /// random arguments and checks each error against this list.)
    public var possibleErrors: [SyscallError] {
        switch self {
        case .exit, .yield, .memoryInfo, .clock, .whoAmI, .recoveryComplete:
            []
        case .send:
            // deadEndpoint also when the server ends before replying; serverFailed when
            // it stops for good; serverStateLost, requestFailed: see SyscallError.
            [.badArgument, .badAddress, .messageTooLarge, .deadEndpoint, .notPermitted, .outOfMemory,
             .serverFailed, .serverStateLost, .requestFailed, .replyUndeliverable]
        case .receive:
            [.badAddress, .messageTooLarge]
        case .reply:
            [.badArgument, .badAddress, .messageTooLarge, .deadEndpoint, .notWaitingForReply, .replySealBroken,
             .replyUndeliverable]
        case .replyAndReceive:
            // A client that died, or whose buffer could not take the reply, does not
            // stop the receive.
            [.badArgument, .badAddress, .messageTooLarge, .notWaitingForReply, .replySealBroken]
        case .lookup:
            [.badAddress, .messageTooLarge, .notFound, .serverFailed]
        case .spawn:
            [.badAddress, .messageTooLarge, .notPermitted, .notFound, .noFreeSlot, .outOfMemory, .alreadyRunning]
        case .kill:
            [.badArgument, .notPermitted, .deadEndpoint]
        case .wait:
            [.badArgument, .notFound, .notChild]
        case .taskInfo, .ssrInfo:
            [.badArgument, .badAddress]
        case .irqAcknowledge, .setTimer, .ssrRecoverNext:
            [.badArgument]
        case .powerOff:
            [.badArgument, .notPermitted]
        case .ssrOpen:
            [.badArgument, .notWaitingForReply]
        case .ssrVerdict:
            [.badArgument, .notFound]
        case .injectFault:
            [.badArgument, .badAddress, .messageTooLarge, .notPermitted, .notFound]
        case .reportFailure, .audit:
            [.notPermitted]
        case .physicalAddress:
            [.badAddress, .notPermitted, .outOfMemory]
        case .deviceWrite:
            [.badArgument, .notPermitted, .dmaNotPermitted]
        case .promiseReply:
            [.badArgument, .notPermitted, .notWaitingForReply]
        case .upgrade:
            // outOfMemory: the version could not be loaded (the server runs its old code).
            [.badArgument, .badAddress, .messageTooLarge, .notPermitted, .notFound, .serverBusy, .outOfMemory]
        }
    }
}
