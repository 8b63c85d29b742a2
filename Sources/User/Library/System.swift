// Curio's system calls as Swift functions: the only way a process talks to the kernel.
//
// Each wrapper is one `ecall`; errors come back as `SyscallError` through typed
// throws, so a caller sees exactly which of the kernel's refusals it got.

@_exported import CurioABI
import UserArch

public enum System {
    @inline(__always)
    /// `call` with a reply's seal in t0 (see `Syscall.reply`).
    static func callSealed(_ syscall: Syscall, seal: UInt64, _ a0: UInt, _ a1: UInt, _ a2: UInt, _ a3: UInt,
                           _ a4: UInt, _ a5: UInt, _ a6: UInt = 0) throws(SyscallError) -> curio_syscall_result {
        let result = curio_syscall_sealed(UInt64(syscall.rawValue), UInt64(a0), UInt64(a1), UInt64(a2), UInt64(a3),
                                          UInt64(a4), UInt64(a5), UInt64(a6), seal)
        if result.status != 0 { throw SyscallError(rawValue: UInt(result.status)) ?? .unknownSyscall }
        return result
    }

    static func call(_ syscall: Syscall, _ a0: UInt = 0, _ a1: UInt = 0, _ a2: UInt = 0, _ a3: UInt = 0,
                     _ a4: UInt = 0, _ a5: UInt = 0, _ a6: UInt = 0) throws(SyscallError) -> curio_syscall_result {
        let result = curio_syscall(UInt64(syscall.rawValue), UInt64(a0), UInt64(a1), UInt64(a2), UInt64(a3),
                                   UInt64(a4), UInt64(a5), UInt64(a6))
        if result.status != 0 { throw SyscallError(rawValue: UInt(result.status)) ?? .unknownSyscall }
        return result
    }

    /// One `ecall` exactly as given: any number (known or not), any register contents,
    /// nothing checked or interpreted on either side. For the syscall fuzzer, which must
    /// be able to say what no wrapper above would; every program else uses those.
    /// Returns a0 (the status) and a1...a7 as the kernel left them.
    public static func syscall(_ number: UInt, _ a0: UInt = 0, _ a1: UInt = 0, _ a2: UInt = 0, _ a3: UInt = 0,
                               _ a4: UInt = 0, _ a5: UInt = 0, _ a6: UInt = 0) -> curio_syscall_result {
        curio_syscall(UInt64(number), UInt64(a0), UInt64(a1), UInt64(a2), UInt64(a3), UInt64(a4), UInt64(a5),
                      UInt64(a6))
    }

    public static func exit(_ code: Int32) -> Never {
        _ = try? call(.exit, UInt(bitPattern: Int(code)))
        while true {}
    }

    public static func yield() { _ = try? call(.yield) }

    /// The clock, in ticks of `ticksPerSecond`.
    public static func clock() -> UInt64 { UInt64((try? call(.clock))?.r1 ?? 0) }
    public static let ticksPerSecond = Clock.ticksPerSecond

    public static func whoAmI() -> TaskID { TaskID(rawValue: UInt32(truncatingIfNeeded: (try? call(.whoAmI))?.r1 ?? 0)) }

    /// Finds the running instance of a program (the endpoint of a server).
    public static func lookup(_ name: StaticString) throws(SyscallError) -> TaskID {
        let result = try call(.lookup, UInt(bitPattern: name.utf8Start), UInt(name.utf8CodeUnitCount))
        return TaskID(rawValue: UInt32(truncatingIfNeeded: result.r1))
    }

    /// Finds the running instance of the program named by `name`'s bytes.
    public static func lookup(_ name: UnsafeRawBufferPointer) throws(SyscallError) -> TaskID {
        let result = try call(.lookup, address(name), UInt(name.count))
        return TaskID(rawValue: UInt32(truncatingIfNeeded: result.r1))
    }

    public static func spawn(_ name: UnsafeRawBufferPointer, arguments: UnsafeRawBufferPointer) throws(SyscallError) -> TaskID {
        let result = try call(.spawn, address(name), UInt(name.count), address(arguments), UInt(arguments.count))
        return TaskID(rawValue: UInt32(truncatingIfNeeded: result.r1))
    }

    public static func kill(_ task: TaskID) throws(SyscallError) { _ = try call(.kill, UInt(task.rawValue)) }

    public static func wait(_ child: TaskID) throws(SyscallError) -> ExitStatus {
        let result = try call(.wait, UInt(child.rawValue))
        return ExitStatus(rawValue: UInt(result.r1)) ?? .killed
    }

    public static func taskInfo(slot: Int) throws(SyscallError) -> TaskInfo {
        var info = TaskInfo(id: TaskID(rawValue: 0), state: .free, priority: 0, restarts: 0, pagesUsed: 0,
                            pageBudget: 0, name: (0, 0))
        try withUnsafeMutableBytes(of: &info) { bytes throws(SyscallError) in
            _ = try call(.taskInfo, UInt(slot), address(UnsafeRawBufferPointer(bytes)), UInt(bytes.count))
        }
        return info
    }

    public struct MemoryInfo: Sendable {
        public var totalPages: Int
        public var freePages: Int
        public var kernelPages: Int
    }

    public static func memoryInfo() -> MemoryInfo {
        let result = try? call(.memoryInfo)
        return MemoryInfo(totalPages: Int(result?.r1 ?? 0), freePages: Int(result?.r2 ?? 0),
                          kernelPages: Int(result?.r3 ?? 0))
    }

    public static func acknowledgeInterrupt(_ index: Int) throws(SyscallError) {
        _ = try call(.irqAcknowledge, UInt(index))
    }

    /// The physical address behind `address` (a writable page of this process's own),
    /// for a driver to hand to a DMA-capable device, which may reach that page from now
    /// on. Needs devices in the system description.
    public static func physicalAddress(of address: UnsafeMutableRawPointer) throws(SyscallError) -> UInt64 {
        UInt64(try call(.physicalAddress, UInt(bitPattern: address)).r1)
    }

    /// Writes a register of a DMA-capable device: `offset` bytes into device range
    /// `range` (its index in the system description's `devices`). The kernel refuses a
    /// write that would let the device reach memory outside the granted pages.
    public static func writeDeviceRegister(range: Int, offset: Int, value: UInt32) throws(SyscallError) {
        _ = try call(.deviceWrite, UInt(range), UInt(offset), UInt(value))
    }

    /// For a restartable server holding `client`'s request: it will reply by the clock
    /// value `deadline`. Found idle past it with the client still waiting, the server
    /// is restarted (it forgot the request) and the request delivered again.
    public static func promiseReply(to client: TaskID, by deadline: UInt64) throws(SyscallError) {
        _ = try call(.promiseReply, UInt(client.rawValue), UInt(deadline))
    }

    /// Posts `bits` to this process when the clock reaches `deadline` (0 cancels).
    public static func setTimer(deadline: UInt64, bits: UInt) throws(SyscallError) {
        _ = try call(.setTimer, UInt(deadline), bits)
    }

    /// Blocks for `ticks` on the kernel's timer (not the timer server, which may be the
    /// server being faulted or measured).
    public static func sleep(ticks: UInt64) {
        guard ticks > 0 else { return }
        let bit = KernelNotification.timerBit
        try? setTimer(deadline: clock() + ticks, bits: bit)
        let nothing = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        while true {
            guard let message = try? IPC.receive(into: nothing, notificationMask: bit) else { continue }
            if message.isNotification { return }
        }
    }

    public static func powerOff(code: Int) throws(SyscallError) -> Never {
        _ = try call(.powerOff, UInt(code))
        while true {}
    }

    /// The argument string this process was started with.
    public static var arguments: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: curio_arguments(), count: curio_arguments_length())
    }

    // MARK: Server state regions (see CurioABI's ServerStateRegions.swift)

    /// A client's SSR as the kernel mapped it into the calling server's window.
    public struct SSRMapping: Sendable {
        /// The window's address (`SSRWindow.base`).
        public var address: UInt
        public var size: Int
        /// The id of the request of the client's that the server is holding.
        public var requestID: UInt64

        public var window: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: address)! }

        public init(address: UInt, size: Int, requestID: UInt64) {
            self.address = address
            self.size = size
            self.requestID = requestID
        }
    }

    /// Maps the SSR of `client`, whose request the caller holds (a deferred reply),
    /// into the caller's window. The window closes at the reply, the next receive or
    /// the next `ssrOpen`.
    public static func ssrOpen(_ client: TaskID) throws(SyscallError) -> SSRMapping {
        let result = try call(.ssrOpen, UInt(client.rawValue))
        return SSRMapping(address: UInt(result.r1), size: Int(result.r2), requestID: result.r3)
    }

    /// One SSR handed to a restarted server by `ssrRecoverNext`, mapped in its window.
    public struct RecoveredSSR: Sendable {
        public var client: TaskID
        /// `suspect` if it was mapped in the server when the server failed.
        public var state: SSRState
        /// Where the next `ssrRecoverNext` continues.
        public var nextCursor: Int
        /// The id of the client's latest request the server replied to (0: none yet).
        public var lastCompletedRequest: UInt64
        public var address: UInt

        public var window: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: address)! }

        public init(client: TaskID, state: SSRState, nextCursor: Int, lastCompletedRequest: UInt64, address: UInt) {
            self.client = client
            self.state = state
            self.nextCursor = nextCursor
            self.lastCompletedRequest = lastCompletedRequest
            self.address = address
        }
    }

    /// Recovery: maps the next SSR bound to the caller, starting at `cursor` (0 first);
    /// nil when every SSR has been seen. `verdictOnCurrent` judges the SSR mapped now
    /// in the same trap (one trap per SSR rather than two): `lost` fails that client's
    /// pending request with `serverStateLost`, and its next request starts from a
    /// zeroed SSR.
    public static func ssrRecoverNext(cursor: Int, verdictOnCurrent: SSRVerdict? = nil) throws(SyscallError)
        -> RecoveredSSR? {
        let result = try call(.ssrRecoverNext, UInt(cursor), verdictOnCurrent.map { $0.rawValue + 1 } ?? 0)
        let client = TaskID(rawValue: UInt32(truncatingIfNeeded: result.r1))
        guard client != .kernel else { return nil }
        return RecoveredSSR(client: client, state: SSRState(rawValue: UInt8(truncatingIfNeeded: result.r2)) ?? .suspect,
                            nextCursor: Int(result.r3), lastCompletedRequest: result.r4, address: UInt(result.r5))
    }

    /// Recovery is over: the kernel re-delivers the requests that were in flight.
    public static func recoveryComplete() throws(SyscallError) { _ = try call(.recoveryComplete) }

    /// The caller found its own state inconsistent: the kernel restarts it (if it is
    /// restartable) as if it had faulted. Does not return.
    public static func reportFailure() -> Never {
        _ = try? call(.reportFailure)
        while true {}
    }

    /// Describes SSR number `index` over all processes (then orphans); nil past the end.
    public static func ssrInfo(index: Int) throws(SyscallError) -> SSRInfo? {
        var info = SSRInfo(owner: TaskID(rawValue: 0), serverProgram: 0, pages: 0, state: .valid,
                           lastCompletedRequest: 0, serverName: (0, 0))
        let found = try withUnsafeMutableBytes(of: &info) { bytes throws(SyscallError) in
            try call(.ssrInfo, UInt(index), address(UnsafeRawBufferPointer(bytes)), UInt(bytes.count)).r1
        }
        return found != 0 ? info : nil
    }

    /// Runs the kernel's invariant audit (needs `manage`): how many violations, the
    /// first one's `AuditViolation` code and slot (-1: none), frames owned by processes.
    public static func audit() throws(SyscallError) -> (violations: Int, first: UInt8, slot: Int, ownedFrames: Int) {
        let result = try call(.audit)
        return (Int(result.r1), UInt8(truncatingIfNeeded: result.r2), Int(Int64(bitPattern: result.r3)), Int(result.r4))
    }

    // MARK: Fault injection (needs `manage`)

    /// Arms a fault of `kind` in the running instance of the program named `program`,
    /// striking as `trigger` says (`argument`: N for `afterRequests`, a bound in clock
    /// ticks for `randomTime`).
    /// `aim`: 0 strikes at random; otherwise 1 + the register number (register faults)
    /// or 1 + the byte offset in the region (bit flips).
    /// `seed`: 0 goes on with the kernel's generator; any other value makes the moment
    /// and the target of the fault follow from it alone (a run can be replayed).
    /// `persistent` (code faults only): every later load of the program has the same bug.
    public static func injectFault(into program: UnsafeRawBufferPointer, kind: FaultKind, persistent: Bool = false,
                                   trigger: FaultTrigger = .nextRequest, argument: UInt = 0,
                                   aim: UInt = 0, seed: UInt = 0) throws(SyscallError) {
        let kindWord = kind.rawValue | (persistent ? FaultKind.persistentFlag : 0)
        _ = try call(.injectFault, address(program), UInt(program.count), kindWord, trigger.rawValue, argument,
                     aim, seed)
    }

    public static func injectFault(into program: StaticString, kind: FaultKind, trigger: FaultTrigger = .nextRequest,
                                   argument: UInt = 0) throws(SyscallError) {
        try injectFault(into: UnsafeRawBufferPointer(start: program.utf8Start, count: program.utf8CodeUnitCount),
                        kind: kind, trigger: trigger, argument: argument)
    }

    /// Replaces the running server program named by `server`'s bytes with the one
    /// named by `version`'s (a live upgrade; `Syscall.upgrade`).
    public static func upgrade(_ server: UnsafeRawBufferPointer, to version: UnsafeRawBufferPointer)
        throws(SyscallError) {
        _ = try call(.upgrade, address(server), UInt(server.count), address(version), UInt(version.count))
    }

    static func address(_ buffer: UnsafeRawBufferPointer) -> UInt {
        UInt(bitPattern: buffer.baseAddress)
    }
}
