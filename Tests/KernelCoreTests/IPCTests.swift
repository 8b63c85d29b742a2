// Tests of message passing and notifications: rendezvous in either order, replies,
// the checks that refuse a message, which queued sender goes first, and what happens
// to IDs and blocked partners when a process ends (stale generations).
import CurioABI
import Testing
@testable import KernelCore

@Suite struct IPCTests {
    typealias Program = StandardProgram

    /// A server in slot 0 and a client in slot 1.
    private func serverAndClient() throws -> KernelHarness {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)
        try harness.spawn(Program.client)
        return harness
    }

    // MARK: Rendezvous

    @Test func sendToAWaitingReceiverDelivers() throws {
        let harness = try serverAndClient()
        let payload = Array("hello, server".utf8)
        harness.receive(0, capacity: 256)
        #expect(harness.state(0) == .receiving)

        try harness.send(from: 1, to: harness.id(0), operation: 7, words: (0x1111, 0x2222), payload: payload)
        #expect(harness.state(1) == .awaitingReply)
        #expect(harness.task(1).partner == 0)
        #expect(harness.state(0) == .runnable)
        #expect(harness.error(0) == nil)
        #expect(harness.result(0, 1) == UInt(harness.id(1).rawValue))
        #expect(harness.result(0, 2) == 7)
        #expect(harness.result(0, 3) == 0x1111)
        #expect(harness.result(0, 4) == 0x2222)
        #expect(harness.result(0, 5) == UInt(payload.count))
        #expect(try harness.read(payload.count, at: ProcessLayout.heap, in: 0) == payload)
        #expect(try harness.read(1, at: ProcessLayout.heap + UInt64(payload.count), in: 0) == [0],
                "nothing past the payload is written")
    }

    @Test func sendBeforeReceiveQueuesTheSender() throws {
        let harness = try serverAndClient()
        let payload = testPattern(600)
        try harness.send(from: 1, to: harness.id(0), operation: 3, words: (5, 6), payload: payload)
        #expect(harness.state(1) == .sending)
        #expect(harness.task(1).partner == 0)
        #expect(harness.task(0).sendersWaiting == SlotSet([1]))
        #expect(harness.state(0) == .runnable)
        let call = EndpointCall(endpoint: harness.id(0), operation: 3).rawValue
        let arguments = (0..<7).map { harness.result(1, $0) }
        #expect(arguments == [call, 5, 6, UInt(ProcessLayout.heap), 600, UInt(ProcessLayout.heap + 0x1000), 0x1000],
                "a blocked sender's arguments wait in place, a0 included")

        harness.receive(0, capacity: 1024)
        #expect(harness.state(0) == .runnable, "a queued message is taken at once")
        #expect(harness.error(0) == nil)
        #expect(harness.result(0, 1) == UInt(harness.id(1).rawValue))
        #expect(harness.result(0, 2) == 3)
        #expect(harness.result(0, 3) == 5)
        #expect(harness.result(0, 4) == 6)
        #expect(harness.result(0, 5) == 600)
        #expect(try harness.read(600, at: ProcessLayout.heap, in: 0) == payload)
        #expect(harness.state(1) == .awaitingReply)
        #expect(harness.task(1).partner == 0)
        #expect(harness.task(0).sendersWaiting.isEmpty)
    }

    @Test func replyCopiesThePayloadAndWakesTheClient() throws {
        let harness = try serverAndClient()
        harness.receive(0)
        try harness.send(from: 1, to: harness.id(0), payload: [9], replyCapacity: 64)
        let answer = Array("the answer".utf8)
        try harness.reply(from: 0, to: harness.id(1), code: 0x55, words: (0xAAA, 0xBBB), payload: answer)
        #expect(harness.error(0) == nil)
        #expect(harness.state(0) == .runnable)
        #expect(harness.state(1) == .runnable)
        #expect(harness.error(1) == nil)
        #expect(harness.result(1, 1) == 0x55)
        #expect(harness.result(1, 2) == 0xAAA)
        #expect(harness.result(1, 3) == 0xBBB)
        #expect(harness.result(1, 4) == UInt(answer.count))
        #expect(try harness.read(answer.count, at: ProcessLayout.heap + 0x1000, in: 1) == answer)

        // A second reply finds nobody waiting.
        try harness.reply(from: 0, to: harness.id(1), code: 1)
        #expect(harness.error(0) == .notWaitingForReply)
        #expect(harness.result(1, 1) == 0x55, "the client's results are untouched")
    }

    @Test func aFullPagePayloadCrossesPagesBothWays() throws {
        let harness = try serverAndClient()
        // Unaligned buffers, so every copy spans two pages on each side.
        harness.receive(0, buffer: ProcessLayout.heap + 0x10, capacity: 4096)
        let payload = testPattern(4096, seed: 5)
        try harness.send(from: 1, to: harness.id(0), payload: payload, payloadAddress: ProcessLayout.heap + 0x20,
                         replyBuffer: ProcessLayout.stackBase + 0x30, replyCapacity: 4096)
        #expect(try harness.read(4096, at: ProcessLayout.heap + 0x10, in: 0) == payload)
        let answer = testPattern(4096, seed: 9)
        try harness.reply(from: 0, to: harness.id(1), payload: answer, payloadAddress: ProcessLayout.heap + 0x40)
        #expect(harness.error(0) == nil)
        #expect(harness.result(1, 4) == 4096)
        #expect(try harness.read(4096, at: ProcessLayout.stackBase + 0x30, in: 1) == answer)
    }

    @Test func replyToATaskNotWaitingIsRefused() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // 0
        try harness.spawn(Program.client)  // 1
        try harness.spawn(Program.peer)  // 2, another "server" the client does not call
        try harness.reply(from: 0, to: harness.id(1), code: 1)
        #expect(harness.error(0) == .notWaitingForReply, "the client is running")

        harness.receive(0)
        try harness.send(from: 1, to: harness.id(0))
        #expect(harness.state(1) == .awaitingReply)
        try harness.reply(from: 2, to: harness.id(1), code: 1)
        #expect(harness.error(2) == .notWaitingForReply, "it awaits the server's reply, not the peer's")
        #expect(harness.state(1) == .awaitingReply)

        // A client still queued (message not taken) cannot be replied to either.
        let other = try harness.spawn(Program.client)  // 3
        try harness.send(from: other.index, to: harness.id(0))
        #expect(harness.state(3) == .sending)
        try harness.reply(from: 0, to: other, code: 1)
        #expect(harness.error(0) == .notWaitingForReply)
        #expect(harness.state(3) == .sending)
    }

    @Test func replyAndReceiveAnswersOneClientAndTakesTheNext() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // 0
        try harness.spawn(Program.client)  // 1
        try harness.spawn(Program.client)  // 2
        harness.receive(0)
        try harness.send(from: 1, to: harness.id(0), payload: [1], replyCapacity: 16)
        try harness.send(from: 2, to: harness.id(0), operation: 22, payload: [2, 2])
        #expect(harness.state(2) == .sending)

        let heap = UInt(ProcessLayout.heap)
        try harness.write("ok", at: ProcessLayout.heap, in: 0)
        harness.syscall(0, .replyAndReceive, UInt(harness.id(1).rawValue), 7 | 0b100 << 32, 0xA, 0xB, heap, 2, 64)
        #expect(harness.state(1) == .runnable)
        #expect(harness.error(1) == nil)
        #expect(harness.result(1, 1) == 7)
        #expect(harness.result(1, 2) == 0xA)
        #expect(harness.result(1, 3) == 0xB)
        #expect(harness.result(1, 4) == 2)
        #expect(try harness.read(2, at: ProcessLayout.heap + 0x1000, in: 1) == Array("ok".utf8))
        #expect(harness.state(0) == .runnable, "the queued message is taken at once")
        #expect(harness.error(0) == nil)
        #expect(harness.result(0, 1) == UInt(harness.id(2).rawValue))
        #expect(harness.result(0, 2) == 22)
        #expect(harness.result(0, 5) == 2)
        #expect(try harness.read(2, at: ProcessLayout.heap, in: 0) == [2, 2])
        #expect(harness.state(2) == .awaitingReply)

        // Nobody queued: the server blocks, with the notification mask from a1's high half.
        harness.syscall(0, .replyAndReceive, UInt(harness.id(2).rawValue), 0 | 0b100 << 32, 0, 0, heap, 0, 64)
        #expect(harness.state(2) == .runnable)
        #expect(harness.state(0) == .receiving)
        harness.kernel.notify(0, bits: 0b110)
        #expect(harness.state(0) == .runnable)
        #expect(harness.result(0, 1) == UInt(TaskID.kernel.rawValue))
        #expect(harness.result(0, 2) == 0b100)
    }

    @Test func replyAndReceiveDropsTheReplyToADeadClient() throws {
        let harness = try serverAndClient()
        harness.receive(0)
        try harness.send(from: 1, to: harness.id(0))
        let client = harness.id(1)
        harness.kernel.fault(1, cause: .breakpoint, address: 0)
        harness.syscall(0, .replyAndReceive, UInt(client.rawValue), 0, 0, 0, UInt(ProcessLayout.heap), 0, 64)
        #expect(harness.state(0) == .receiving, "on to the next message, no error")
    }

    // MARK: Refusals

    @Test func aPayloadLargerThanTheReceiverBufferFailsTheSender() throws {
        let harness = try serverAndClient()
        harness.receive(0, capacity: 8)
        let serverBefore = harness.snapshot(0)
        try harness.send(from: 1, to: harness.id(0), payload: testPattern(16))
        #expect(harness.error(1) == .messageTooLarge)
        #expect(harness.state(1) == .runnable)
        #expect(harness.state(0) == .receiving, "the receiver keeps waiting")
        #expect(harness.snapshot(0) == serverBefore)
        #expect(try harness.read(16, at: ProcessLayout.heap, in: 0) == [UInt8](repeating: 0, count: 16))

        // The same when the sender was queued first: the receiver skips it and waits.
        let queued = try serverAndClient()
        try queued.send(from: 1, to: queued.id(0), payload: testPattern(16))
        #expect(queued.state(1) == .sending)
        queued.receive(0, capacity: 8)
        #expect(queued.error(1) == .messageTooLarge)
        #expect(queued.state(1) == .runnable)
        #expect(queued.state(0) == .receiving)
        #expect(queued.task(0).sendersWaiting.isEmpty)
    }

    /// Servers do not retry a refused reply, so a client left waiting for one that
    /// fits would wait for ever (the syscall fuzzer found it): the client's call ends
    /// with the error, and the server learns that its reply is over.
    @Test func aReplyLargerThanTheClientBufferFailsBothSides() throws {
        let harness = try serverAndClient()
        harness.receive(0)
        try harness.send(from: 1, to: harness.id(0), replyCapacity: 4)
        try harness.reply(from: 0, to: harness.id(1), code: 1, payload: [1, 2, 3, 4, 5])
        #expect(harness.error(0) == .replyUndeliverable)
        #expect(harness.state(1) == .runnable)
        #expect(harness.error(1) == .messageTooLarge)
        try harness.reply(from: 0, to: harness.id(1), code: 2, payload: [1, 2, 3, 4])
        #expect(harness.error(0) == .notWaitingForReply, "the call is over")
    }

    @Test func sendingNeedsTheSendMask() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // 0
        try harness.spawn(Program.peer)  // 1: may send to nobody
        harness.receive(0)
        let before = harness.snapshot(0)
        try harness.send(from: 1, to: harness.id(0), payload: [1])
        #expect(harness.error(1) == .notPermitted)
        #expect(harness.state(1) == .runnable)
        #expect(harness.state(0) == .receiving)
        #expect(harness.snapshot(0) == before)
    }

    @Test func sendingToYourselfIsABadArgument() throws {
        let harness = try serverAndClient()
        // The client's send mask includes its own program, so only the self check refuses it.
        try harness.send(from: 1, to: harness.id(1))
        #expect(harness.error(1) == .badArgument)
        #expect(harness.state(1) == .runnable)
        #expect(harness.task(1).sendersWaiting.isEmpty)
    }

    @Test func sendingToAnotherInstanceOfYourOwnProgramWorks() throws {
        let harness = try serverAndClient()
        let twin = try harness.spawn(Program.client)  // slot 2
        harness.receive(twin.index)
        try harness.send(from: 1, to: twin, operation: 4)
        #expect(harness.error(1) == nil)
        #expect(harness.state(1) == .awaitingReply)
        #expect(harness.result(twin.index, 2) == 4)
    }

    @Test func sendingToANameThatWasNeverLiveIsADeadEndpoint() throws {
        let harness = try serverAndClient()
        try harness.send(from: 1, to: TaskID(index: 40, generation: 0))
        #expect(harness.error(1) == .deadEndpoint, "a free slot")
        try harness.send(from: 1, to: TaskID(index: 0, generation: 1))
        #expect(harness.error(1) == .deadEndpoint, "a generation from the future")
        try harness.send(from: 1, to: TaskID.kernel)
        #expect(harness.error(1) == .deadEndpoint)
        #expect(harness.state(1) == .runnable)
    }

    // MARK: Notifications

    @Test func notifyWakesAMatchingReceiver() throws {
        let harness = try serverAndClient()
        harness.receive(0, mask: 0b110)
        harness.kernel.notify(0, bits: 0b011)
        #expect(harness.state(0) == .runnable)
        #expect(harness.error(0) == nil)
        #expect(harness.result(0, 1) == UInt(TaskID.kernel.rawValue))
        #expect(harness.result(0, 2) == 0b010, "only the bits it asked for")
        #expect(harness.result(0, 3) == 0)
        #expect(harness.result(0, 4) == 0)
        #expect(harness.result(0, 5) == 0)
        #expect(harness.task(0).notificationsPending == 0b001, "the rest stay pending")
    }

    @Test func pendingBitsAreDeliveredByTheNextReceive() throws {
        let harness = try serverAndClient()
        harness.kernel.notify(0, bits: 0b100)
        harness.kernel.notify(0, bits: 0b001)
        #expect(harness.state(0) == .runnable)
        #expect(harness.task(0).notificationsPending == 0b101)
        harness.receive(0, mask: 0b111)
        #expect(harness.state(0) == .runnable, "no blocking")
        #expect(harness.error(0) == nil)
        #expect(harness.result(0, 1) == UInt(TaskID.kernel.rawValue))
        #expect(harness.result(0, 2) == 0b101)
        #expect(harness.task(0).notificationsPending == 0)
    }

    @Test func nonMatchingBitsStayPending() throws {
        let harness = try serverAndClient()
        harness.receive(0, mask: 0b001)
        harness.kernel.notify(0, bits: 0b100)
        #expect(harness.state(0) == .receiving)
        #expect(harness.task(0).notificationsPending == 0b100)

        // A message still gets through, and the bit waits for a receive that wants it.
        try harness.send(from: 1, to: harness.id(0), operation: 2)
        #expect(harness.state(0) == .runnable)
        #expect(harness.result(0, 1) == UInt(harness.id(1).rawValue))
        try harness.reply(from: 0, to: harness.id(1))
        harness.receive(0, mask: 0b100)
        #expect(harness.state(0) == .runnable)
        #expect(harness.result(0, 2) == 0b100)
    }

    @Test func pendingNotificationsComeBeforeQueuedMessages() throws {
        let harness = try serverAndClient()
        try harness.send(from: 1, to: harness.id(0))
        harness.kernel.notify(0, bits: 1)
        harness.receive(0, mask: 1)
        #expect(harness.result(0, 1) == UInt(TaskID.kernel.rawValue))
        #expect(harness.state(1) == .sending, "the message stays queued")
        harness.receive(0, mask: 1)
        #expect(harness.result(0, 1) == UInt(harness.id(1).rawValue))
        #expect(harness.state(1) == .awaitingReply)
    }

    @Test func interruptsNotifyTheirOwnerAndStayMaskedUntilAcknowledged() throws {
        let harness = try KernelHarness()
        let driver = try harness.spawn(Program.driver).index
        #expect(harness.kernel.platform.interruptChanges == [
            InterruptChange(irq: 10, enabled: true), InterruptChange(irq: 11, enabled: true),
        ])
        harness.receive(driver, mask: 0b10)
        harness.kernel.interrupt(11)
        #expect(harness.state(driver) == .runnable)
        #expect(harness.result(driver, 1) == UInt(TaskID.kernel.rawValue))
        #expect(harness.result(driver, 2) == 0b10, "the second interrupt it owns is bit 1")
        #expect(harness.kernel.platform.interruptChanges.last == InterruptChange(irq: 11, enabled: false))

        harness.syscall(driver, .irqAcknowledge, 1)
        #expect(harness.error(driver) == nil)
        #expect(harness.kernel.platform.interruptChanges.last == InterruptChange(irq: 11, enabled: true))
        harness.syscall(driver, .irqAcknowledge, 2)
        #expect(harness.error(driver) == .badArgument, "it owns two interrupts")

        harness.kernel.interrupt(99)
        #expect(harness.kernel.platform.interruptChanges.last == InterruptChange(irq: 99, enabled: false),
                "nobody owns it: masked")

        // The device window is mapped read-write, user, not owned.
        let window = try #require(harness.task(driver).addressSpace?.translate(
            VirtualAddress(KernelHarness.TestKernel.deviceWindow), memory: harness.ram))
        #expect(window.0 == PhysicalAddress(0x1000_0000))
        #expect(window.1.contains([.read, .write, .user]))
        #expect(!window.1.contains(.owned))
    }

    @Test func onlyDriversLearnPhysicalAddressesOfTheirOwnWritableMemory() throws {
        let harness = try KernelHarness()
        let driver = try harness.spawn(Program.driver).index
        let other = try harness.spawn(Program.peer).index
        let heap = UInt(ProcessLayout.heap) + 0x123
        harness.syscall(driver, .physicalAddress, heap)
        #expect(harness.error(driver) == nil)
        let expected = try #require(harness.task(driver).addressSpace?.translate(
            VirtualAddress(UInt64(heap)), memory: harness.ram))
        #expect(harness.result(driver, 1) == UInt(expected.0.rawValue), "the frame behind the address, offset kept")

        harness.syscall(other, .physicalAddress, heap)
        #expect(harness.error(other) == .notPermitted, "a program without devices does no DMA")
        harness.syscall(driver, .physicalAddress, 0x1000)
        #expect(harness.error(driver) == .badAddress, "unmapped")
        harness.syscall(driver, .physicalAddress, UInt(ProcessLayout.text))
        #expect(harness.error(driver) == .badAddress, "code is not writable")
    }

    @Test func timersPostTheirBitsWhenDue() throws {
        let harness = try serverAndClient()
        harness.syscall(0, .setTimer, 500, UInt(KernelNotification.timerBit))
        #expect(harness.error(0) == nil)
        #expect(harness.kernel.nextTimerDeadline == 500)
        harness.syscall(1, .setTimer, 300, 1)
        #expect(harness.kernel.nextTimerDeadline == 300)
        harness.receive(0, mask: UInt(KernelNotification.timerBit))

        harness.kernel.expireTimers(now: 299)
        #expect(harness.kernel.nextTimerDeadline == 300)
        harness.kernel.expireTimers(now: 300)
        #expect(harness.task(1).notificationsPending == 1)
        #expect(harness.state(0) == .receiving)
        #expect(harness.kernel.nextTimerDeadline == 500)
        harness.kernel.expireTimers(now: 500)
        #expect(harness.state(0) == .runnable)
        #expect(harness.result(0, 2) == UInt(KernelNotification.timerBit))
        #expect(harness.kernel.nextTimerDeadline == nil)
    }

    // MARK: Queued senders

    @Test func theMostUrgentWaitingSenderIsTakenFirst() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // 0, priority 3
        try harness.spawn(Program.lazy)  // 1, priority 6
        try harness.spawn(Program.client)  // 2, priority 4
        try harness.spawn(Program.urgent)  // 3, priority 1
        try harness.spawn(Program.client)  // 4, priority 4
        for slot in [1, 2, 3, 4] {
            try harness.send(from: slot, to: harness.id(0), operation: UInt16(slot))
            #expect(harness.state(slot) == .sending)
        }
        #expect(harness.task(0).sendersWaiting == SlotSet([1, 2, 3, 4]))

        var order: [Int] = []
        for _ in 0..<4 {
            harness.receive(0)
            let sender = TaskID(rawValue: UInt32(harness.result(0, 1)))
            #expect(harness.result(0, 2) == UInt(sender.index))
            order.append(sender.index)
            try harness.reply(from: 0, to: sender)
            #expect(harness.state(sender.index) == .runnable)
        }
        #expect(order == [3, 2, 4, 1], "by priority; equals by slot")
        harness.receive(0)
        #expect(harness.state(0) == .receiving)
    }

    // MARK: Stale generations and dying partners

    @Test func staleIDsAreDeadEndpointsAfterTheSlotIsReused() throws {
        let harness = try KernelHarness()
        let oldServer = try harness.spawn(Program.server)  // slot 0
        try harness.spawn(Program.client)  // slot 1
        let manager = try harness.spawn(Program.manager).index  // slot 2
        harness.syscall(oldServer.index, .exit, 0)
        #expect(harness.state(0) == .free)
        let newServer = try harness.spawn(Program.server)
        #expect(newServer.index == oldServer.index)
        #expect(newServer.generation == oldServer.generation &+ 1)

        try harness.send(from: 1, to: oldServer)
        #expect(harness.error(1) == .deadEndpoint)
        #expect(harness.state(1) == .runnable)
        #expect(harness.task(0).sendersWaiting.isEmpty, "nothing was queued on the new incarnation")

        harness.syscall(manager, .kill, UInt(oldServer.rawValue))
        #expect(harness.error(manager) == .deadEndpoint)
        #expect(harness.state(newServer.index) == .runnable, "the new incarnation lives on")

        try harness.send(from: 1, to: newServer)
        #expect(harness.state(1) == .sending, "the current ID works")
    }

    @Test func replyingToAStaleClientIsADeadEndpoint() throws {
        let harness = try serverAndClient()
        let oldClient = harness.id(1)
        harness.receive(0)
        try harness.send(from: 1, to: harness.id(0))
        #expect(harness.state(1) == .awaitingReply)
        harness.kernel.fault(1, cause: .illegalInstruction, address: 0)
        #expect(harness.state(1) == .free)

        try harness.reply(from: 0, to: oldClient, code: 1)
        #expect(harness.error(0) == .deadEndpoint, "the client is gone")

        let newClient = try harness.spawn(Program.client)
        #expect(newClient.index == 1)
        let before = harness.snapshot(1)
        try harness.reply(from: 0, to: oldClient, code: 1)
        #expect(harness.error(0) == .deadEndpoint, "and its slot now holds someone else")
        #expect(harness.snapshot(1) == before)
        #expect(harness.state(1) == .runnable)
    }

    @Test func sendersQueuedOnADyingProcessGetDeadEndpoint() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // 0
        try harness.spawn(Program.client)  // 1
        try harness.spawn(Program.lazy)  // 2
        try harness.send(from: 1, to: harness.id(0))
        try harness.send(from: 2, to: harness.id(0))
        #expect(harness.state(1) == .sending)
        #expect(harness.state(2) == .sending)

        harness.syscall(0, .exit, 3)
        for slot in [1, 2] {
            #expect(harness.state(slot) == .runnable)
            #expect(harness.error(slot) == .deadEndpoint)
            #expect(harness.task(slot).partner == -1)
        }
    }

    @Test func aClientAwaitingAReplyFromADyingServerGetsDeadEndpoint() throws {
        let harness = try serverAndClient()
        harness.receive(0)
        try harness.send(from: 1, to: harness.id(0))
        #expect(harness.state(1) == .awaitingReply)
        harness.kernel.fault(0, cause: .loadPageFault, address: 0x10)
        #expect(harness.state(1) == .runnable)
        #expect(harness.error(1) == .deadEndpoint)
        #expect(harness.freeFrames == harness.baselineFreeFrames - ProcessLayout.standardPages)
    }

    @Test func aQueuedSenderThatDiesLeavesTheQueue() throws {
        let harness = try serverAndClient()
        try harness.send(from: 1, to: harness.id(0))
        #expect(harness.task(0).sendersWaiting == SlotSet([1]))
        harness.kernel.fault(1, cause: .breakpoint, address: 0)
        #expect(harness.task(0).sendersWaiting.isEmpty)
        harness.receive(0)
        #expect(harness.state(0) == .receiving, "nobody is left to receive from")
    }

    @Test func aNewIncarnationInheritsNothing() throws {
        let harness = try serverAndClient()
        harness.syscall(0, .setTimer, 1_000, 1)
        harness.kernel.notify(0, bits: 0b1000)
        try harness.send(from: 1, to: harness.id(0))
        harness.syscall(0, .exit, 0)
        #expect(harness.error(1) == .deadEndpoint)

        let reborn = try harness.spawn(Program.server)
        #expect(reborn == TaskID(index: 0, generation: 1))
        #expect(harness.task(0).notificationsPending == 0)
        #expect(harness.task(0).timerDeadline == 0)
        #expect(harness.task(0).sendersWaiting.isEmpty)
        harness.kernel.expireTimers(now: 2_000)
        #expect(harness.task(0).notificationsPending == 0, "the old timer died with its owner")
        harness.receive(0, mask: .max)
        #expect(harness.state(0) == .receiving)
    }

    @Test func aReceiverThatDiesWakesNobody() throws {
        let harness = try serverAndClient()
        harness.receive(0)
        harness.kernel.fault(0, cause: .breakpoint, address: 0)
        #expect(harness.state(1) == .runnable)
        #expect(harness.state(0) == .free)
        try harness.send(from: 1, to: TaskID(index: 0, generation: 0))
        #expect(harness.error(1) == .deadEndpoint)
    }
}
