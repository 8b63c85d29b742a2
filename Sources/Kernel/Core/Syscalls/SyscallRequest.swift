// Decoding a system call: registers in, a fully validated request out.
//
// seL4's discipline: decode and check everything first — the syscall number, every
// length against its limit, every user buffer against the caller's page tables —
// and only then perform. A request that fails here has changed nothing, so a
// process cannot leave the kernel half-way through an operation by passing a bad
// pointer.

import CurioABI

/// A range of the calling process's memory, already checked to be accessible.
public struct UserBuffer: Equatable, Sendable {
    public var address: VirtualAddress
    public var count: Int

    public static let empty = UserBuffer(address: VirtualAddress(0), count: 0)
}

public enum SyscallRequest: Equatable, Sendable {
    case exit(code: Int32)
    case yield
    case send(EndpointCall.Raw, send: UserBuffer, reply: UserBuffer)
    case receive(buffer: UserBuffer, notificationMask: UInt)
    case reply(client: TaskID, code: UInt, words: EndpointCall.Words, payload: UserBuffer)
    case replyAndReceive(ReplyAndReceiveArguments)
    case lookup(name: UserBuffer)
    case spawn(name: UserBuffer, arguments: UserBuffer)
    case kill(TaskID)
    case wait(TaskID)
    case taskInfo(slot: Int, destination: UserBuffer)
    case memoryInfo
    case irqAcknowledge(index: Int)
    case setTimer(deadline: UInt64, bits: UInt)
    case clock
    case powerOff(code: Int)
    case whoAmI
    case ssrOpen(client: TaskID)
    case ssrRecoverNext(cursor: Int, verdictOnCurrent: SSRVerdict?)
    case ssrVerdict(client: TaskID, verdict: SSRVerdict)
    case recoveryComplete
    case injectFault(server: UserBuffer, kind: FaultKind, persistent: Bool, trigger: FaultTrigger, argument: UInt,
                     aim: UInt, seed: UInt)
    case ssrInfo(index: Int, destination: UserBuffer)
    case reportFailure
    case physicalAddress(VirtualAddress)
    case audit
    case deviceWrite(window: Int, offset: UInt64, value: UInt32)
    case promiseReply(client: TaskID, deadline: UInt64)
    case upgrade(server: UserBuffer, version: UserBuffer)
}

extension EndpointCall {
    /// The register form of a call, kept raw until the kernel resolves the endpoint.
    public typealias Raw = UInt
    public struct Words: Equatable, Sendable {
        public var first: UInt
        public var second: UInt
        public init(_ first: UInt, _ second: UInt) {
            self.first = first
            self.second = second
        }
    }
}

/// A server's combined reply and receive, validated.
public struct ReplyAndReceiveArguments: Equatable, Sendable {
    public var client: TaskID
    public var code: UInt
    public var words: EndpointCall.Words
    public var payload: UserBuffer
    public var buffer: UserBuffer
    public var notificationMask: UInt
}

extension SyscallRequest {
    /// A user buffer of at most `limit` bytes, checked against the caller's page tables.
    static func userBuffer<M: PhysicalMemory>(_ address: UInt, _ count: UInt, limit: Int, writable: Bool,
                                              space: AddressSpace, memory: M) throws(SyscallError) -> UserBuffer {
        guard count <= UInt(limit) else { throw .messageTooLarge }
        guard count > 0 else { return .empty }
        let start = VirtualAddress(UInt64(address))
        guard space.isUserAccessible(start, count: Int(count), writable: writable, memory: memory) else {
            throw .badAddress
        }
        return UserBuffer(address: start, count: Int(count))
    }

    static func taskID(_ raw: UInt) throws(SyscallError) -> TaskID {
        guard raw <= UInt(UInt32.max) else { throw .badArgument }
        return TaskID(rawValue: UInt32(raw))
    }

    /// `send`'s arguments: the call word, and both buffers checked (they stay in the
    /// registers, to be copied at the rendezvous).
    @inline(__always)
    static func decodeSend<M: PhysicalMemory>(_ registers: RegisterFile, space: AddressSpace,
                                              memory: M) throws(SyscallError) -> SyscallRequest {
        let a = registers.argument
        guard a(0) >> 48 == 0 else { throw .badArgument }
        let limit = SyscallLimits.maxMessageBytes
        let send = try userBuffer(a(3), a(4), limit: limit, writable: false, space: space, memory: memory)
        let reply = try userBuffer(a(5), a(6), limit: limit, writable: true, space: space, memory: memory)
        return .send(a(0), send: send, reply: reply)
    }

    @inline(__always)
    static func decodeReplyAndReceive<M: PhysicalMemory>(_ registers: RegisterFile, space: AddressSpace,
                                                         memory: M) throws(SyscallError) -> ReplyAndReceiveArguments {
        let a = registers.argument
        let limit = SyscallLimits.maxMessageBytes
        let payload = try userBuffer(a(4), a(5), limit: limit, writable: false, space: space, memory: memory)
        let buffer = try userBuffer(a(4), a(6), limit: limit, writable: true, space: space, memory: memory)
        return ReplyAndReceiveArguments(client: try taskID(a(0)), code: a(1) & 0xFFFF_FFFF, words: .init(a(2), a(3)),
                                        payload: payload, buffer: buffer, notificationMask: a(1) >> 32)
    }

    /// Decodes the syscall in `registers`, validating user buffers against `space`.
    @inline(__always)
    public static func decode<M: PhysicalMemory>(_ registers: RegisterFile, space: AddressSpace,
                                                 memory: M) throws(SyscallError) -> SyscallRequest {
        guard let number = Syscall(rawValue: UInt(registers[.a7])) else { throw .unknownSyscall }
        let a = registers.argument

        func buffer(_ address: UInt, _ count: UInt, limit: Int, writable: Bool) throws(SyscallError) -> UserBuffer {
            try userBuffer(address, count, limit: limit, writable: writable, space: space, memory: memory)
        }

        let maxMessage = SyscallLimits.maxMessageBytes
        switch number {
        case .exit:
            return .exit(code: Int32(truncatingIfNeeded: Int(bitPattern: a(0))))
        case .yield:
            return .yield
        case .send:
            return try decodeSend(registers, space: space, memory: memory)
        case .receive:
            return .receive(buffer: try buffer(a(0), a(1), limit: maxMessage, writable: true),
                            notificationMask: a(2))
        case .reply:
            let payload = try buffer(a(4), a(5), limit: maxMessage, writable: false)
            return .reply(client: try taskID(a(0)), code: a(1), words: .init(a(2), a(3)), payload: payload)
        case .replyAndReceive:
            return .replyAndReceive(try decodeReplyAndReceive(registers, space: space, memory: memory))
        case .lookup:
            return .lookup(name: try buffer(a(0), a(1), limit: SyscallLimits.maxNameBytes, writable: false))
        case .spawn:
            let name = try buffer(a(0), a(1), limit: SyscallLimits.maxNameBytes, writable: false)
            let arguments = try buffer(a(2), a(3), limit: SyscallLimits.maxArgumentBytes, writable: false)
            return .spawn(name: name, arguments: arguments)
        case .kill:
            return .kill(try taskID(a(0)))
        case .wait:
            return .wait(try taskID(a(0)))
        case .taskInfo:
            guard a(0) < UInt(ReadyQueues.maxSlots) else { throw .badArgument }
            guard a(2) >= UInt(TaskInfo.size) else { throw .badArgument }
            let destination = try buffer(a(1), UInt(TaskInfo.size), limit: TaskInfo.size, writable: true)
            return .taskInfo(slot: Int(a(0)), destination: destination)
        case .memoryInfo:
            return .memoryInfo
        case .irqAcknowledge:
            guard a(0) < UInt(BootImageFormat.maxInterrupts) else { throw .badArgument }
            return .irqAcknowledge(index: Int(a(0)))
        case .setTimer:
            guard a(1) != 0 || a(0) == 0 else { throw .badArgument }
            return .setTimer(deadline: UInt64(a(0)), bits: a(1))
        case .clock:
            return .clock
        case .powerOff:
            guard a(0) <= 255 else { throw .badArgument }
            return .powerOff(code: Int(bitPattern: a(0)))
        case .whoAmI:
            return .whoAmI
        case .ssrOpen:
            return .ssrOpen(client: try taskID(a(0)))
        case .ssrRecoverNext:
            guard a(0) <= UInt(ReadyQueues.maxSlots * SSRTable.bindingsPerTask) else { throw .badArgument }
            var verdict: SSRVerdict?
            if a(1) != 0 {
                guard let given = SSRVerdict(rawValue: a(1) - 1) else { throw .badArgument }
                verdict = given
            }
            return .ssrRecoverNext(cursor: Int(a(0)), verdictOnCurrent: verdict)
        case .ssrVerdict:
            guard let verdict = SSRVerdict(rawValue: a(1)) else { throw .badArgument }
            return .ssrVerdict(client: try taskID(a(0)), verdict: verdict)
        case .recoveryComplete:
            return .recoveryComplete
        case .injectFault:
            let name = try buffer(a(0), a(1), limit: SyscallLimits.maxNameBytes, writable: false)
            let persistent = a(2) & FaultKind.persistentFlag != 0
            guard let kind = FaultKind(rawValue: a(2) & ~FaultKind.persistentFlag),
                  let trigger = FaultTrigger(rawValue: a(3)) else { throw .badArgument }
            guard !persistent || kind == .codeMutation || kind == .endlessLoop || kind == .illegalInstruction else {
                throw .badArgument
            }
            return .injectFault(server: name, kind: kind, persistent: persistent, trigger: trigger, argument: a(4),
                                aim: a(5), seed: a(6))
        case .ssrInfo:
            guard a(2) >= UInt(SSRInfo.size) else { throw .badArgument }
            let destination = try buffer(a(1), UInt(SSRInfo.size), limit: SSRInfo.size, writable: true)
            return .ssrInfo(index: Int(min(a(0), UInt(Int.max))), destination: destination)
        case .reportFailure:
            return .reportFailure
        case .physicalAddress:
            return .physicalAddress(try buffer(a(0), 1, limit: 1, writable: true).address)
        case .audit:
            return .audit
        case .deviceWrite:
            guard a(0) < UInt(BootImageFormat.maxDevices), a(1) % 4 == 0, a(2) <= UInt(UInt32.max) else {
                throw .badArgument
            }
            return .deviceWrite(window: Int(a(0)), offset: UInt64(a(1)), value: UInt32(a(2)))
        case .promiseReply:
            return .promiseReply(client: try taskID(a(0)), deadline: UInt64(a(1)))
        case .upgrade:
            return .upgrade(server: try buffer(a(0), a(1), limit: SyscallLimits.maxNameBytes, writable: false),
                            version: try buffer(a(2), a(3), limit: SyscallLimits.maxNameBytes, writable: false))
        }
    }
}
