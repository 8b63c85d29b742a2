// Tests of syscall decoding: registers in, a validated `SyscallRequest` out, and the
// promise that a call refused there changes nothing at all.
import CurioABI
import Testing
@testable import KernelCore

@Suite struct SyscallDecodeTests {
    typealias Program = StandardProgram

    /// A harness with a client in slot 0 whose registers the decoder reads.
    private static func caller() throws -> KernelHarness {
        let harness = try KernelHarness()
        try harness.spawn(Program.client)
        return harness
    }

    private func decode(_ harness: KernelHarness, _ number: UInt64, _ arguments: [UInt])
        -> Result<SyscallRequest, SyscallError> {
        harness.loadArguments(0, rawNumber: number, arguments)
        let space = harness.task(0).addressSpace!
        return Result { () throws(SyscallError) in
            try SyscallRequest.decode(harness.registers(0), space: space, memory: harness.ram)
        }
    }

    private func decode(_ harness: KernelHarness, _ number: Syscall, _ arguments: UInt...)
        -> Result<SyscallRequest, SyscallError> {
        decode(harness, UInt64(number.rawValue), arguments)
    }

    private func buffer(_ address: UInt64, _ count: Int) -> UserBuffer {
        UserBuffer(address: VirtualAddress(address), count: count)
    }

    // MARK: Well-formed calls

    @Test func wellFormedCallsDecode() throws {
        let harness = try Self.caller()
        let heap = UInt(ProcessLayout.heap)
        #expect(decode(harness, .exit, UInt(bitPattern: -3)) == .success(.exit(code: -3)))
        #expect(decode(harness, .exit, 0x1_0000_0007) == .success(.exit(code: 7)), "the code is 32 bits")
        #expect(decode(harness, .yield) == .success(.yield))
        let call = EndpointCall(endpoint: TaskID(index: 3, generation: 2), operation: 9).rawValue
        #expect(decode(harness, .send, call, 1, 2, heap, 100, heap + 0x1000, 200)
                == .success(.send(call, send: buffer(ProcessLayout.heap, 100),
                                  reply: buffer(ProcessLayout.heap + 0x1000, 200))))
        #expect(decode(harness, .send, call, 0, 0, UInt(ProcessLayout.text), 16, 0, 0)
                == .success(.send(call, send: buffer(ProcessLayout.text, 16), reply: .empty)),
                "read-only text is fine for a payload the kernel only reads")
        #expect(decode(harness, .receive, heap, 4096, 0b101)
                == .success(.receive(buffer: buffer(ProcessLayout.heap, 4096), notificationMask: 0b101)))
        #expect(decode(harness, .reply, 0x0002_0003, 5, 6, 7, heap, 10)
                == .success(.reply(client: TaskID(index: 3, generation: 2), code: 5,
                                   words: .init(6, 7), payload: buffer(ProcessLayout.heap, 10))))
        #expect(decode(harness, .lookup, heap, 15) == .success(.lookup(name: buffer(ProcessLayout.heap, 15))))
        #expect(decode(harness, .spawn, heap, 6, heap + 16, 128)
                == .success(.spawn(name: buffer(ProcessLayout.heap, 6),
                                   arguments: buffer(ProcessLayout.heap + 16, 128))))
        #expect(decode(harness, .kill, 0x0001_0002) == .success(.kill(TaskID(index: 2, generation: 1))))
        #expect(decode(harness, .wait, 0x0001_0002) == .success(.wait(TaskID(index: 2, generation: 1))))
        #expect(decode(harness, .taskInfo, 319, heap, 48)
                == .success(.taskInfo(slot: 319, destination: buffer(ProcessLayout.heap, 48))))
        #expect(decode(harness, .taskInfo, 0, heap, 1000)
                == .success(.taskInfo(slot: 0, destination: buffer(ProcessLayout.heap, 48))))
        #expect(decode(harness, .memoryInfo) == .success(.memoryInfo))
        #expect(decode(harness, .irqAcknowledge, 3) == .success(.irqAcknowledge(index: 3)))
        #expect(decode(harness, .setTimer, 1234, 1) == .success(.setTimer(deadline: 1234, bits: 1)))
        #expect(decode(harness, .setTimer, 0, 0) == .success(.setTimer(deadline: 0, bits: 0)), "cancel")
        #expect(decode(harness, .clock) == .success(.clock))
        #expect(decode(harness, .powerOff, 255) == .success(.powerOff(code: 255)))
        #expect(decode(harness, .whoAmI) == .success(.whoAmI))
    }

    @Test func emptyBuffersAreNeverChecked() throws {
        let harness = try Self.caller()
        let call = EndpointCall(endpoint: TaskID(index: 1, generation: 0), operation: 0).rawValue
        #expect(decode(harness, .send, call, 0, 0, 0x8020_0000, 0, UInt.max, 0)
                == .success(.send(call, send: .empty, reply: .empty)))
        #expect(decode(harness, .receive, 0xDEAD_0000, 0, 1) == .success(.receive(buffer: .empty, notificationMask: 1)))
    }

    // MARK: Refusals

    @Test func unknownNumbersAreRefused() throws {
        let harness = try Self.caller()
        let firstUnused = try #require((0..<UInt64(1_000)).first { Syscall(rawValue: UInt($0)) == nil })
        for number: UInt64 in [firstUnused, 999, 0x1_0000_0000, UInt64.max] {
            #expect(decode(harness, number, []) == .failure(.unknownSyscall), "number \(number)")
        }
    }

    @Test func buffersInKernelMemoryAreBadAddresses() throws {
        let harness = try Self.caller()
        let call = EndpointCall(endpoint: TaskID(index: 1, generation: 0), operation: 0).rawValue
        let kernel: UInt = 0x8020_0000
        #expect(decode(harness, .send, call, 0, 0, kernel, 16, 0, 0) == .failure(.badAddress))
        #expect(decode(harness, .send, call, 0, 0, 0, 0, kernel, 16) == .failure(.badAddress))
        #expect(decode(harness, .receive, kernel, 64, 0) == .failure(.badAddress))
        #expect(decode(harness, .reply, 0, 0, 0, 0, kernel, 8) == .failure(.badAddress))
        #expect(decode(harness, .lookup, kernel, 6) == .failure(.badAddress))
        #expect(decode(harness, .spawn, kernel, 6, 0, 0) == .failure(.badAddress))
        #expect(decode(harness, .taskInfo, 0, kernel, 48) == .failure(.badAddress))
        #expect(decode(harness, .receive, 0x1000_0000, 8, 0) == .failure(.badAddress), "the MMIO gigapage")
        #expect(decode(harness, .receive, 0x40_0000_0000 - 8, 8, 0) == .failure(.badAddress),
                "past the low half of Sv39")
    }

    @Test func unmappedUserMemoryIsABadAddress() throws {
        let harness = try Self.caller()
        for address: UInt64 in [0, ProcessLayout.guardPage, ProcessLayout.heapEnd, 0x5000_0000,
                                ProcessLayout.stackBase - 8, 0x7000_0000] {
            #expect(decode(harness, .receive, UInt(address), 8, 0) == .failure(.badAddress), "at \(address)")
            #expect(decode(harness, .lookup, UInt(address), 4) == .failure(.badAddress), "at \(address)")
        }
    }

    @Test func readOnlyMemoryIsNotWritable() throws {
        let harness = try Self.caller()
        let text = UInt(ProcessLayout.text)
        let call = EndpointCall(endpoint: TaskID(index: 1, generation: 0), operation: 0).rawValue
        #expect(decode(harness, .receive, text, 16, 0) == .failure(.badAddress))
        #expect(decode(harness, .send, call, 0, 0, 0, 0, text, 16) == .failure(.badAddress), "a reply buffer")
        #expect(decode(harness, .taskInfo, 0, text + 64, 48) == .failure(.badAddress))
        #expect(decode(harness, .reply, 0, 0, 0, 0, text, 16) != .failure(.badAddress), "reading text is fine")
        #expect(decode(harness, .receive, UInt(ProcessLayout.data), 16, 0) != .failure(.badAddress),
                "data is writable")
    }

    @Test func rangesThatWrapOrRunIntoUnmappedPagesAreBadAddresses() throws {
        let harness = try Self.caller()
        #expect(decode(harness, .receive, UInt.max - 15, 32, 0) == .failure(.badAddress), "wraps around zero")
        #expect(decode(harness, .lookup, UInt.max, 2) == .failure(.badAddress))
        #expect(decode(harness, .receive, UInt(ProcessLayout.heapEnd - 8), 16, 0) == .failure(.badAddress),
                "the heap's last page then the unmapped one above it")
        #expect(decode(harness, .receive, UInt(ProcessLayout.heapEnd - 8), 8, 0) != .failure(.badAddress),
                "the last eight bytes alone are fine")
        #expect(decode(harness, .receive, UInt(ProcessLayout.stackTop - 8), 16, 0) == .failure(.badAddress),
                "off the top of the stack")
        #expect(decode(harness, .receive, UInt(ProcessLayout.data + 0x1FF8), 16, 0) == .failure(.badAddress),
                "from data into the guard page")
        #expect(decode(harness, .receive, UInt(ProcessLayout.heap - 8), 16, 0) == .failure(.badAddress),
                "from the guard page into the heap")
        let call = EndpointCall(endpoint: TaskID(index: 1, generation: 0), operation: 0).rawValue
        #expect(decode(harness, .send, call, 0, 0, UInt(ProcessLayout.heapEnd - 100), 200, 0, 0)
                == .failure(.badAddress))
    }

    @Test func oversizeLengthsAreTooLarge() throws {
        let harness = try Self.caller()
        let heap = UInt(ProcessLayout.heap)
        let call = EndpointCall(endpoint: TaskID(index: 1, generation: 0), operation: 0).rawValue
        let tooBig = UInt(SyscallLimits.maxMessageBytes + 1)
        #expect(decode(harness, .send, call, 0, 0, heap, tooBig, 0, 0) == .failure(.messageTooLarge))
        #expect(decode(harness, .send, call, 0, 0, 0, 0, heap, tooBig) == .failure(.messageTooLarge))
        #expect(decode(harness, .receive, heap, tooBig, 0) == .failure(.messageTooLarge))
        #expect(decode(harness, .receive, heap, UInt.max, 0) == .failure(.messageTooLarge))
        #expect(decode(harness, .reply, 0, 0, 0, 0, heap, tooBig) == .failure(.messageTooLarge))
        #expect(decode(harness, .lookup, heap, 16) == .failure(.messageTooLarge))
        #expect(decode(harness, .spawn, heap, 16, 0, 0) == .failure(.messageTooLarge))
        #expect(decode(harness, .spawn, heap, 6, heap, 129) == .failure(.messageTooLarge))
        // The length is checked before the address: a huge length at a bad address is too large.
        #expect(decode(harness, .receive, 0x8020_0000, tooBig, 0) == .failure(.messageTooLarge))
    }

    @Test func outOfRangeArgumentsAreBadArguments() throws {
        let harness = try Self.caller()
        let heap = UInt(ProcessLayout.heap)
        #expect(decode(harness, .taskInfo, 320, heap, 32) == .failure(.badArgument))
        #expect(decode(harness, .taskInfo, UInt.max, heap, 32) == .failure(.badArgument))
        #expect(decode(harness, .taskInfo, 0, heap, 47) == .failure(.badArgument), "room for a TaskInfo")
        #expect(decode(harness, .send, 1 << 48, 0, 0, 0, 0, 0, 0) == .failure(.badArgument))
        #expect(decode(harness, .reply, 1 << 32, 0, 0, 0, 0, 0) == .failure(.badArgument))
        #expect(decode(harness, .kill, 1 << 32) == .failure(.badArgument))
        #expect(decode(harness, .wait, UInt.max) == .failure(.badArgument))
        #expect(decode(harness, .irqAcknowledge, 8) == .failure(.badArgument))
        #expect(decode(harness, .powerOff, 256) == .failure(.badArgument))
        #expect(decode(harness, .setTimer, 100, 0) == .failure(.badArgument), "a timer that posts nothing")
    }

    // MARK: A refused call changes nothing

    /// Everything a refused call could have touched.
    private struct KernelState: Equatable {
        var registers: [[UInt64]]
        var states: [TaskState]
        var partners: [Int]
        var sendersWaiting: [SlotSet]
        var pending: [UInt]
        var pagesUsed: [Int]
        var generations: [UInt16]
        var freeFrames: Int
        var current: Int?

        init(_ harness: KernelHarness) {
            let slots = 0..<KernelHarness.TestKernel.maxTasks
            registers = slots.map { harness.snapshot($0) }
            states = slots.map { harness.state($0) }
            partners = slots.map { harness.task($0).partner }
            sendersWaiting = slots.map { harness.task($0).sendersWaiting }
            pending = slots.map { harness.task($0).notificationsPending }
            pagesUsed = slots.map { harness.task($0).pagesUsed }
            generations = slots.map { harness.task($0).generation }
            freeFrames = harness.freeFrames
            current = harness.kernel.current
        }
    }

    /// Makes the call from `slot` and checks that only a0 (the error) and the pc
    /// (stepped past `ecall`) changed, anywhere.
    private func expectNoEffect(_ harness: KernelHarness, slot: Int, _ number: UInt64, _ arguments: [UInt],
                                fails error: SyscallError, _ comment: Comment,
                                sourceLocation: SourceLocation = #_sourceLocation) throws {
        harness.loadArguments(slot, rawNumber: number, arguments)
        let before = KernelState(harness)
        let memoryBefore = try harness.read(0x2000, at: ProcessLayout.heap, in: slot)
        let output = harness.output
        harness.kernel.syscall(from: slot)
        #expect(harness.error(slot) == error, comment, sourceLocation: sourceLocation)
        var expected = before
        expected.registers[slot][0] &+= 4
        expected.registers[slot][Register.a0.rawValue] = UInt64(error.rawValue)
        let after = KernelState(harness)
        #expect(after == expected, comment, sourceLocation: sourceLocation)
        #expect(try harness.read(0x2000, at: ProcessLayout.heap, in: slot) == memoryBefore, comment,
                sourceLocation: sourceLocation)
        #expect(harness.output == output, sourceLocation: sourceLocation)
    }

    @Test func aRefusedCallChangesNothing() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // 0
        try harness.spawn(Program.client)  // 1
        try harness.spawn(Program.manager)  // 2
        try harness.spawn(Program.client)  // 3
        harness.kernel.reschedule()
        // The client in slot 3 is queued on the server; the other client is running.
        try harness.send(from: 3, to: harness.id(0), payload: [1, 2, 3])
        #expect(harness.state(3) == .sending)
        try harness.write(testPattern(0x2000), at: ProcessLayout.heap, in: 0)
        try harness.write(testPattern(0x2000, seed: 2), at: ProcessLayout.heap, in: 1)
        try harness.write("client", at: ProcessLayout.heap, in: 2)
        let heap = UInt(ProcessLayout.heap)
        let text = UInt(ProcessLayout.text)
        let server = harness.id(0)
        let send = UInt64(Syscall.send.rawValue)
        let receive = UInt64(Syscall.receive.rawValue)

        try expectNoEffect(harness, slot: 1, 77, [1, 2, 3, 4, 5, 6, 7], fails: .unknownSyscall, "unknown")
        try expectNoEffect(harness, slot: 0, receive, [text, 16, 0], fails: .badAddress,
                           "a receive into text must not take the queued message")
        try expectNoEffect(harness, slot: 0, receive, [heap, 4097, 0], fails: .messageTooLarge, "receive length")
        try expectNoEffect(harness, slot: 1, send,
                           [EndpointCall(endpoint: server, operation: 1).rawValue, 0, 0, 0x8020_0000, 8, 0, 0],
                           fails: .badAddress, "send from kernel memory")
        try expectNoEffect(harness, slot: 1, send,
                           [EndpointCall(endpoint: server, operation: 1).rawValue, 0, 0, heap, 8, text, 8],
                           fails: .badAddress, "reply buffer in text")
        try expectNoEffect(harness, slot: 1, send,
                           [EndpointCall(endpoint: server, operation: 1).rawValue, 0, 0, heap + 0x1FFC, 8, 0, 0],
                           fails: .badAddress, "payload running off the heap")
        try expectNoEffect(harness, slot: 0, UInt64(Syscall.reply.rawValue),
                           [UInt(harness.id(3).rawValue), 1, 2, 3, heap, 5000], fails: .messageTooLarge,
                           "reply payload")
        try expectNoEffect(harness, slot: 1, UInt64(Syscall.taskInfo.rawValue), [320, heap, 48],
                           fails: .badArgument, "task slot 320 (one past the table)")
        try expectNoEffect(harness, slot: 1, UInt64(Syscall.taskInfo.rawValue), [0, text, 48],
                           fails: .badAddress, "task info into text")
        try expectNoEffect(harness, slot: 2, UInt64(Syscall.spawn.rawValue), [heap, 6, 0x8020_0000, 4],
                           fails: .badAddress, "spawn with arguments in kernel memory")
        try expectNoEffect(harness, slot: 2, UInt64(Syscall.spawn.rawValue), [heap, 16, 0, 0],
                           fails: .messageTooLarge, "spawn with an overlong name")
        try expectNoEffect(harness, slot: 2, UInt64(Syscall.kill.rawValue), [1 << 40],
                           fails: .badArgument, "kill a non-ID")
        try expectNoEffect(harness, slot: 2, UInt64(Syscall.powerOff.rawValue), [1000],
                           fails: .badArgument, "power-off code")
        #expect(harness.kernel.platform.powerOffRequests.isEmpty)
    }

    @Test func refusalsAfterDecodingChangeNothingEither() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // 0
        try harness.spawn(Program.peer)  // 1
        try harness.spawn(Program.client)  // 2
        harness.receive(0, capacity: 4)
        try harness.write("nosuch", at: ProcessLayout.heap, in: 1)
        try harness.write("server", at: ProcessLayout.heap, in: 2)
        let heap = UInt(ProcessLayout.heap)
        let toServer = EndpointCall(endpoint: harness.id(0), operation: 1).rawValue
        let send = UInt64(Syscall.send.rawValue)

        try expectNoEffect(harness, slot: 1, send, [toServer, 0, 0, heap, 8, 0, 0],
                           fails: .notPermitted, "send mask")
        try expectNoEffect(harness, slot: 2, send, [toServer, 0, 0, heap, 8, 0, 0],
                           fails: .messageTooLarge, "bigger than the receiver's buffer")
        try expectNoEffect(harness, slot: 2, send,
                           [EndpointCall(endpoint: harness.id(2), operation: 1).rawValue, 0, 0, 0, 0, 0, 0],
                           fails: .badArgument, "send to self")
        try expectNoEffect(harness, slot: 2, send,
                           [EndpointCall(endpoint: TaskID(index: 0, generation: 9), operation: 1).rawValue,
                            0, 0, 0, 0, 0, 0],
                           fails: .deadEndpoint, "another generation")
        try expectNoEffect(harness, slot: 1, UInt64(Syscall.spawn.rawValue), [heap, 6, 0, 0],
                           fails: .notPermitted, "spawn without manage")
        try expectNoEffect(harness, slot: 1, UInt64(Syscall.kill.rawValue), [UInt(harness.id(0).rawValue)],
                           fails: .notPermitted, "kill without manage")
        try expectNoEffect(harness, slot: 1, UInt64(Syscall.powerOff.rawValue), [0],
                           fails: .notPermitted, "power off without manage")
        try expectNoEffect(harness, slot: 1, UInt64(Syscall.lookup.rawValue), [heap, 6],
                           fails: .notFound, "no such program")
        try expectNoEffect(harness, slot: 2, UInt64(Syscall.wait.rawValue), [UInt(harness.id(0).rawValue)],
                           fails: .notChild, "not a child")
        try expectNoEffect(harness, slot: 2, UInt64(Syscall.reply.rawValue),
                           [UInt(harness.id(1).rawValue), 0, 0, 0, 0, 0],
                           fails: .notWaitingForReply, "nobody waits")
        try expectNoEffect(harness, slot: 2, UInt64(Syscall.replyAndReceive.rawValue),
                           [UInt(harness.id(1).rawValue), 0, 0, 0, heap, 0, 64],
                           fails: .notWaitingForReply, "a failed reply does not go on to receive")
        try expectNoEffect(harness, slot: 2, UInt64(Syscall.irqAcknowledge.rawValue), [0],
                           fails: .badArgument, "owns no interrupt")
        #expect(harness.kernel.platform.powerOffRequests.isEmpty)
        #expect(harness.kernel.platform.interruptChanges.isEmpty)
    }
}
