// Tests of server state regions as the kernel keeps them: binding on first send
// (charged to the client), the per-request window in the server (need-to-know, per
// page TLB flushes), request ids, ssrOpen, unbinding when a client ends, ssrInfo.
import CurioABI
import Testing
@testable import KernelCore

@Suite struct SSRTests {
    typealias Program = SSRProgram

    /// fs in slot 0 (recovered unless told otherwise), `clients` clients in slots 1...
    private func fsAndClients(_ clients: Int = 1, recovered: Bool = true) throws -> KernelHarness {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)
        for _ in 0..<clients { try harness.spawn(Program.client) }
        if recovered { harness.recover(0, pages: 2) }
        return harness
    }

    // MARK: Binding

    @Test func anSSRServerPaysOnlyForTheTableUnderItsWindow() throws {
        let harness = try fsAndClients(0, recovered: false)
        #expect(harness.task(0).ssrPages == 2)
        #expect(harness.task(0).restartable)
        #expect(harness.task(0).recovering, "a fresh SSR server starts in recovery")
        #expect(harness.task(0).pagesUsed == SSRLayout.serverPages)
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
    }

    @Test func theFirstSendBindsAndChargesTheClient() throws {
        let harness = try fsAndClients()
        harness.receive(0)
        let freeBefore = harness.freeFrames
        #expect(harness.binding(of: 1, to: Program.fs) == nil)

        try harness.call(1, harness.id(0))
        #expect(harness.state(1) == .awaitingReply)
        let record = try #require(harness.binding(of: 1, to: Program.fs))
        #expect(record.pageCount == 2)
        #expect(record.state == .valid)
        #expect(record.lastIssuedRequest == 1)
        #expect(record.lastCompletedRequest == 0)
        #expect(harness.task(1).pagesUsed == ProcessLayout.standardPages + 2, "the client pays")
        #expect(harness.task(0).pagesUsed == SSRLayout.serverPages, "the server does not")
        #expect(harness.freeFrames == freeBefore - 2)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
        let frames = harness.ssrFrames(of: 1, to: Program.fs)
        #expect(Set(frames).count == 2)
        #expect(frames.allSatisfy { harness.isAllocated($0) })
        #expect(frames.allSatisfy { harness.physical($0).allSatisfy { $0 == 0 } }, "a fresh SSR is zeroed")

        // Later calls reuse the binding.
        try harness.reply(from: 0, to: harness.id(1))
        harness.receive(0)
        try harness.call(1, harness.id(0))
        #expect(harness.ssrFrames(of: 1, to: Program.fs) == frames)
        #expect(harness.bindingCount(of: 1) == 1)
        #expect(harness.task(1).pagesUsed == ProcessLayout.standardPages + 2)
        #expect(harness.freeFrames == freeBefore - 2)
    }

    @Test func aSendThatWaitsInTheQueueBindsToo() throws {
        let harness = try fsAndClients()
        try harness.call(1, harness.id(0))
        #expect(harness.state(1) == .sending)
        #expect(harness.binding(of: 1, to: Program.fs)?.lastIssuedRequest == 1)
        #expect(harness.task(1).pagesUsed == ProcessLayout.standardPages + 2)
    }

    @Test func anOrdinaryServerBindsNothing() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.plain)  // 0
        try harness.spawn(Program.client)  // 1
        #expect(!harness.task(0).recovering)
        #expect(harness.task(0).pagesUsed == ProcessLayout.standardPages, "no window table")
        harness.receive(0)
        try harness.call(1, harness.id(0))
        #expect(harness.error(0) == nil)
        #expect(harness.result(0, 6) == 0, "no request id")
        #expect(harness.bindingCount(of: 1) == 0)
        #expect(harness.task(1).pagesUsed == ProcessLayout.standardPages)
    }

    @Test func aBindOverBudgetFailsAndChangesNothing() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.tight)  // 1: 11 of 12 pages used, an SSR needs 2
        harness.recover(0, pages: 2)
        #expect(harness.task(1).pagesUsed == ProcessLayout.standardPages)

        // The server not receiving: nothing may join its queue.
        let freeBefore = harness.freeFrames
        let pc = harness.registers(1)[.pc]
        try harness.call(1, harness.id(0))
        #expect(harness.error(1) == .outOfMemory)
        #expect(harness.state(1) == .runnable)
        #expect(harness.registers(1)[.pc] == pc + 4)
        #expect(harness.freeFrames == freeBefore)
        #expect(harness.task(1).pagesUsed == ProcessLayout.standardPages)
        #expect(harness.bindingCount(of: 1) == 0)
        #expect(harness.task(0).sendersWaiting.isEmpty)

        // The server receiving: it keeps waiting, its registers untouched.
        harness.receive(0)
        let serverBefore = harness.snapshot(0)
        try harness.call(1, harness.id(0))
        #expect(harness.error(1) == .outOfMemory)
        #expect(harness.state(1) == .runnable)
        #expect(harness.state(0) == .receiving)
        #expect(harness.snapshot(0) == serverBefore)
        #expect(harness.freeFrames == freeBefore)
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
    }

    @Test func aFullBindingTableIsOutOfMemory() throws {
        let harness = try KernelHarness.ssr()
        for program in [Program.fs, Program.disk, Program.fragile, Program.aux1, Program.aux2] {
            try harness.spawn(program)  // slots 0...4
        }
        let client = try harness.spawn(Program.client).index  // 5
        for slot in 0..<5 { harness.syscall(slot, .recoveryComplete) }
        for slot in 0..<4 {
            try harness.call(client, harness.id(slot))
            #expect(harness.state(client) == .sending)
            harness.receive(slot)
            try harness.reply(from: slot, to: harness.id(client))
            #expect(harness.error(client) == nil)
        }
        #expect(harness.bindingCount(of: client) == SSRTable.bindingsPerTask)
        let freeBefore = harness.freeFrames
        let pagesBefore = harness.task(client).pagesUsed
        try harness.call(client, harness.id(4))
        #expect(harness.error(client) == .outOfMemory)
        #expect(harness.state(client) == .runnable)
        #expect(harness.freeFrames == freeBefore)
        #expect(harness.task(client).pagesUsed == pagesBefore)
        #expect(harness.task(4).sendersWaiting.isEmpty)
    }

    // MARK: The window

    @Test func deliveryMapsTheClientsSSRInTheServerOnly() throws {
        let harness = try fsAndClients()
        harness.receive(0)
        try harness.call(1, harness.id(0), operation: 9)
        #expect(harness.error(0) == nil)
        #expect(harness.result(0, 1) == UInt(harness.id(1).rawValue))
        #expect(harness.result(0, 2) == 9)
        #expect(harness.result(0, 6) == 1, "a6: the request id")

        let frames = harness.ssrFrames(of: 1, to: Program.fs)
        #expect(harness.windowFrames(of: 0) == [frames[0], frames[1], nil, nil])
        for page in 0..<2 {
            let flags = try #require(harness.flags(at: SSRLayout.window + UInt64(page * pageSize), in: 0))
            #expect(flags.contains([.read, .write, .user]))
            #expect(!flags.contains(.execute))
            #expect(!flags.contains(.owned), "the server does not own the client's pages")
        }

        // What the server writes through its window lands in the client's SSR.
        try harness.write([0xC0, 0xFF, 0xEE], at: SSRLayout.window + UInt64(pageSize) + 5, in: 0)
        #expect(Array(harness.physical(frames[1])[5..<8]) == [0xC0, 0xFF, 0xEE])

        // The client can reach its SSR nowhere.
        #expect(harness.flags(at: SSRLayout.window, in: 1) == nil)
        let clientMappings = harness.mappings(of: 1)
        #expect(clientMappings.count == 7, "text, 2 data, 2 heap, 2 stack")
        #expect(clientMappings.allSatisfy { !frames.contains($0.frame) })
        // The server reaches it only through the window.
        #expect(harness.mappings(of: 0).filter { frames.contains($0.frame) }.map(\.virtualAddress)
                == [SSRLayout.window, SSRLayout.window + UInt64(pageSize)])
    }

    @Test func requestIDsCountEachClientsRequests() throws {
        let harness = try fsAndClients(2)
        for expected in UInt(1)...3 {
            harness.receive(0)
            try harness.call(1, harness.id(0))
            #expect(harness.result(0, 6) == expected)
            #expect(harness.binding(of: 1, to: Program.fs)?.lastCompletedRequest == UInt64(expected - 1))
            try harness.reply(from: 0, to: harness.id(1))
            #expect(harness.binding(of: 1, to: Program.fs)?.lastCompletedRequest == UInt64(expected))
        }
        harness.receive(0)
        try harness.call(2, harness.id(0))
        #expect(harness.result(0, 6) == 1, "ids are per client")
    }

    @Test func replyClosesTheWindowWithPerPageFlushes() throws {
        let harness = try fsAndClients()
        harness.receive(0)
        try harness.call(1, harness.id(0))
        #expect(harness.windowFrames(of: 0, pages: 2).allSatisfy { $0 != nil })
        let fullFlushes = harness.kernel.platform.flushes.count
        let pageFlushes = harness.pageFlushCount

        try harness.reply(from: 0, to: harness.id(1), code: 3)
        #expect(harness.error(0) == nil)
        #expect(harness.result(1, 1) == 3)
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow)
        #expect(harness.pageFlushes(since: pageFlushes) == harness.windowFlushes(of: 0, pages: 2))
        #expect(harness.kernel.platform.flushes.count == fullFlushes, "no full flush")
        #expect(harness.task(0).windowClient == -1)
        #expect(harness.ssrFrames(of: 1, to: Program.fs).allSatisfy { harness.isAllocated($0) }, "the SSR stays")
    }

    @Test func replyAndReceiveMovesTheWindowToTheNextClient() throws {
        let harness = try fsAndClients(2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.call(2, harness.id(0))
        let pageFlushes = harness.pageFlushCount
        harness.syscall(0, .replyAndReceive, UInt(harness.id(1).rawValue), 0, 0, 0, UInt(ProcessLayout.heap), 0, 64)
        #expect(harness.error(1) == nil)
        #expect(harness.result(0, 1) == UInt(harness.id(2).rawValue))
        #expect(harness.result(0, 6) == 1)
        #expect(harness.windowFrames(of: 0, pages: 2) == harness.ssrWindow(of: 2, to: Program.fs))
        #expect(harness.pageFlushes(since: pageFlushes) == harness.windowFlushes(of: 0, pages: 2))
    }

    @Test func eachRequestMapsOnlyItsOwnClientsSSR() throws {
        let harness = try fsAndClients(2)
        try harness.call(1, harness.id(0))
        try harness.call(2, harness.id(0))
        let first = harness.ssrFrames(of: 1, to: Program.fs)
        let second = harness.ssrFrames(of: 2, to: Program.fs)
        #expect(Set(first).isDisjoint(with: second))

        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(harness.id(1).rawValue))
        #expect(harness.windowFrames(of: 0, pages: 2) == harness.ssrWindow(of: 1, to: Program.fs))

        // The next receive (no reply yet) moves the window to the second client.
        let pageFlushes = harness.pageFlushCount
        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(harness.id(2).rawValue))
        #expect(harness.result(0, 6) == 1)
        #expect(harness.windowFrames(of: 0, pages: 2) == harness.ssrWindow(of: 2, to: Program.fs))
        #expect(harness.mappings(of: 0).allSatisfy { !first.contains($0.frame) }, "the first SSR is gone")
        #expect(harness.pageFlushes(since: pageFlushes) == harness.windowFlushes(of: 0, pages: 2))
        #expect(harness.state(1) == .awaitingReply, "its request is still held")

        // A reply to the client whose SSR is not in the window leaves the window alone.
        try harness.reply(from: 0, to: harness.id(1))
        #expect(harness.error(0) == nil)
        #expect(harness.windowFrames(of: 0, pages: 2) == harness.ssrWindow(of: 2, to: Program.fs))
        #expect(harness.binding(of: 1, to: Program.fs)?.lastCompletedRequest == 1)

        // Receiving again with nobody queued closes the window and blocks.
        harness.receive(0)
        #expect(harness.state(0) == .receiving)
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow)
    }

    @Test func aNotificationClosesTheWindowToo() throws {
        let harness = try fsAndClients()
        harness.receive(0)
        try harness.call(1, harness.id(0))
        harness.kernel.notify(0, bits: 0b10)
        harness.receive(0, mask: 0b10)
        #expect(harness.result(0, 1) == UInt(TaskID.kernel.rawValue))
        #expect(harness.result(0, 6) == 0)
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow)
    }

    // MARK: ssrOpen

    @Test func ssrOpenMapsAHeldRequest() throws {
        let harness = try fsAndClients(2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.reply(from: 0, to: harness.id(1))
        harness.receive(0)
        try harness.call(1, harness.id(0))  // request 2 of client 1
        harness.receive(0)
        try harness.call(2, harness.id(0))  // request 1 of client 2, now in the window
        #expect(harness.windowFrames(of: 0, pages: 2) == harness.ssrWindow(of: 2, to: Program.fs))

        let pageFlushes = harness.pageFlushCount
        let opened = try #require(harness.ssrOpen(0, harness.id(1)))
        #expect(opened.window == SSRWindow.base)
        #expect(opened.size == UInt(2 * pageSize))
        #expect(opened.request == 2)
        #expect(harness.windowFrames(of: 0, pages: 3) == harness.ssrWindow(of: 1, to: Program.fs) + [nil])
        #expect(harness.pageFlushes(since: pageFlushes) == harness.windowFlushes(of: 0, pages: 2),
                "the other client's pages were flushed")
        #expect(harness.task(0).windowClient == 1)

        // Reopening the one already open is harmless.
        #expect(harness.ssrOpen(0, harness.id(1))?.request == 2)
        #expect(harness.windowFrames(of: 0, pages: 2) == harness.ssrWindow(of: 1, to: Program.fs))
        try harness.reply(from: 0, to: harness.id(1))
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow)
        #expect(harness.ssrOpen(0, harness.id(2))?.request == 1)
        #expect(harness.windowFrames(of: 0, pages: 2) == harness.ssrWindow(of: 2, to: Program.fs))
    }

    @Test func ssrOpenNeedsAClientAwaitingTheCallersReply() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.disk)  // 1
        try harness.spawn(Program.client)  // 2: runnable, bound to fs
        try harness.spawn(Program.client)  // 3: queued at fs
        try harness.spawn(Program.client)  // 4: awaiting disk's reply
        try harness.spawn(Program.plain)  // 5
        harness.recover(0, pages: 2)
        harness.recover(1, pages: 1)
        harness.receive(0)
        try harness.call(2, harness.id(0))
        try harness.reply(from: 0, to: harness.id(2))
        try harness.call(3, harness.id(0))
        #expect(harness.state(3) == .sending)
        harness.receive(1)
        try harness.call(4, harness.id(1))
        #expect(harness.state(4) == .awaitingReply)

        let stale = TaskID(index: 2, generation: 7)
        for client in [harness.id(2), harness.id(3), harness.id(4), stale, harness.id(0), TaskID.kernel] {
            #expect(harness.ssrOpen(0, client) == nil)
            #expect(harness.error(0) == .notWaitingForReply, "\(client)")
            #expect(harness.windowFrames(of: 0) == harness.emptyWindow)
        }
        // A server without SSRs has nothing to open, even for its own client.
        harness.receive(5)
        try harness.call(2, harness.id(5))
        #expect(harness.state(2) == .awaitingReply)
        #expect(harness.ssrOpen(5, harness.id(2)) == nil)
        #expect(harness.error(5) == .notWaitingForReply)
    }

    // MARK: Unbinding

    @Test func anEndingClientsSSRGoesToTheServerForCleanup() throws {
        let harness = try fsAndClients(0)
        let freeBefore = harness.freeFrames
        let client = try harness.spawn(Program.client)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.write([7, 7, 7], at: SSRLayout.window, in: 0)
        try harness.reply(from: 0, to: client)
        let frames = harness.ssrFrames(of: 1, to: Program.fs)

        harness.syscall(1, .exit, 0)
        #expect(harness.state(1) == .ended, "the slot lingers while its SSR awaits cleanup")
        #expect(harness.task(1).pagesUsed == 2, "the orphan stays charged to its client")
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
        #expect(frames.allSatisfy { harness.isAllocated($0) }, "kept for the server's cleanup")
        let orphans = harness.orphans()
        #expect(orphans.count == 1)
        #expect(orphans.first?.client == client)
        #expect(orphans.first?.binding.state == .orphaned)

        harness.receive(0)
        #expect(harness.state(0) == .runnable)
        #expect(harness.error(0) == nil)
        #expect(harness.result(0, 1) == UInt(client.rawValue), "from the client's old TaskID")
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
        #expect(harness.result(0, 5) == 0)
        #expect(harness.result(0, 6) == 0)
        #expect(harness.windowFrames(of: 0, pages: 3) == frames.map { $0 } + [nil])
        #expect(try harness.read(3, at: SSRLayout.window, in: 0) == [7, 7, 7])

        let pageFlushes = harness.pageFlushCount
        try harness.reply(from: 0, to: client)
        #expect(harness.error(0) == nil, "the reply to the old TaskID completes the unbind")
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow)
        #expect(harness.pageFlushes(since: pageFlushes) == harness.windowFlushes(of: 0, pages: 2))
        #expect(frames.allSatisfy { !harness.isAllocated($0) })
        #expect(harness.orphans().isEmpty)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
        #expect(harness.freeFrames == freeBefore)
        #expect(harness.state(1) == .free, "freed with its last SSR")

        // Once done, the old TaskID is simply dead.
        try harness.reply(from: 0, to: client)
        #expect(harness.error(0) == .deadEndpoint)
        harness.receive(0)
        #expect(harness.state(0) == .receiving, "no second unbind message")
    }

    @Test func aClientCannotPassForAnUnbindMessage() throws {
        // A live client may send operation 0xFFFF, but its message carries a request
        // id; the kernel's unbind message never does.
        let harness = try fsAndClients()
        harness.receive(0)
        try harness.call(1, harness.id(0), operation: UInt16(SSRMessage.unbindOperation))
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
        #expect(harness.result(0, 6) == 1)
        try harness.reply(from: 0, to: harness.id(1))
        #expect(harness.error(1) == nil)
        #expect(harness.bindingCount(of: 1) == 1, "still bound")
        #expect(harness.orphans().isEmpty)
    }

    @Test func aServerWaitingInReceiveGetsTheUnbindAtOnce() throws {
        let harness = try fsAndClients()
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.reply(from: 0, to: harness.id(1))
        harness.receive(0)
        #expect(harness.state(0) == .receiving)
        let client = harness.id(1)
        harness.kernel.end(1, status: .killed)
        #expect(harness.state(0) == .runnable)
        #expect(harness.result(0, 1) == UInt(client.rawValue))
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
        #expect(harness.windowFrames(of: 0, pages: 2).allSatisfy { $0 != nil })
        try harness.reply(from: 0, to: client)
        #expect(harness.error(0) == nil)
        #expect(harness.orphans().isEmpty)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
    }

    @Test func anUnansweredUnbindComesBackAtTheNextReceive() throws {
        let harness = try fsAndClients()
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.reply(from: 0, to: harness.id(1))
        let client = harness.id(1)
        harness.syscall(1, .exit, 0)
        harness.receive(0)
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(client.rawValue))
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
        try harness.reply(from: 0, to: client)
        #expect(harness.error(0) == nil)
        #expect(harness.orphans().isEmpty)
    }

    @Test func aRecoveringServerGetsNoUnbindUntilItIsDone() throws {
        let harness = try fsAndClients()
        try harness.call(1, harness.id(0))
        harness.receive(0)
        try harness.reply(from: 0, to: harness.id(1))
        harness.kernel.fault(0, cause: .storePageFault, address: 0)
        #expect(harness.task(0).recovering)
        harness.receive(0, mask: 1)
        #expect(harness.state(0) == .receiving)
        harness.kernel.end(1, status: .killed)
        #expect(harness.state(0) == .receiving, "no unbind message during recovery")
        #expect(harness.orphans().count == 1)
        harness.kernel.notify(0, bits: 1)
        let walked = harness.recover(0, pages: 2)
        #expect(walked.isEmpty, "orphans are not walked")
        harness.receive(0)
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
    }

    @Test func bindingAndEndingAThousandTimesLeaksNothing() throws {
        let harness = try fsAndClients(0)
        harness.receive(0)
        let freeBefore = harness.freeFrames
        for cycle in 0..<1000 {
            let client = try harness.spawn(Program.client)
            try harness.call(client.index, harness.id(0))
            try harness.reply(from: 0, to: client)
            if cycle % 2 == 0 {
                harness.syscall(client.index, .exit, 0)
                harness.receive(0)
            } else {
                harness.receive(0)  // waiting in receive when the client ends
                harness.kernel.end(client.index, status: .killed)
            }
            let unbind = harness.result(0, 2) == SSRMessage.unbindOperation
            try harness.reply(from: 0, to: client)
            let replied = harness.error(0) == nil
            harness.receive(0)
            if !unbind || !replied || harness.freeFrames != freeBefore || harness.state(0) != .receiving {
                Issue.record("cycle \(cycle): unbind \(unbind), replied \(replied), \(harness.freeFrames) free")
                break
            }
        }
        #expect(harness.freeFrames == freeBefore)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
        #expect(harness.orphans().isEmpty)
    }

    @Test func withTheServerGoneTheSSRIsFreedAtOnce() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fragile)  // 0
        try harness.spawn(Program.client)  // 1
        harness.syscall(0, .recoveryComplete)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.reply(from: 0, to: harness.id(1))
        let frames = harness.ssrFrames(of: 1, to: Program.fragile)
        harness.kernel.end(0, status: .killed)
        #expect(frames.allSatisfy { harness.isAllocated($0) }, "still the client's")
        #expect(harness.task(1).pagesUsed == ProcessLayout.standardPages + 1)

        harness.syscall(1, .exit, 0)
        #expect(frames.allSatisfy { !harness.isAllocated($0) })
        #expect(harness.orphans().isEmpty)
        #expect(harness.freeFrames == harness.baselineFreeFrames)
    }

    @Test func aServerThatEndsDropsItsOrphans() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fragile)  // 0
        try harness.spawn(Program.client)  // 1
        harness.syscall(0, .recoveryComplete)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.reply(from: 0, to: harness.id(1))
        harness.syscall(1, .exit, 0)
        #expect(harness.orphans().count == 1)
        harness.kernel.end(0, status: .killed)
        #expect(harness.orphans().isEmpty)
        #expect(harness.freeFrames == harness.baselineFreeFrames)
    }

    /// A client killed while the server works on its request: the server keeps its
    /// SSR mapped until it replies (pulling the pages would fault an innocent server),
    /// then gets the unbind message, and only its reply frees the pages.
    @Test func aClientEndingWhileServedKeepsItsSSRInTheWindowUntilTheReply() throws {
        let harness = try fsAndClients()
        harness.receive(0)
        let client = harness.id(1)
        try harness.call(1, harness.id(0))
        let frames = harness.ssrFrames(of: 1, to: Program.fs)
        let pageFlushes = harness.pageFlushCount
        harness.kernel.end(1, status: .killed)
        #expect(harness.windowFrames(of: 0, pages: 2) == frames.map { $0 }, "still mapped")
        #expect(harness.pageFlushCount == pageFlushes)
        try harness.write([9, 9], at: SSRLayout.window + 8, in: 0)

        try harness.reply(from: 0, to: client)
        #expect(harness.error(0) == .deadEndpoint)
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow, "the reply closes the window")
        #expect(frames.allSatisfy { harness.isAllocated($0) }, "kept for the cleanup")
        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(client.rawValue))
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
        #expect(try harness.read(2, at: SSRLayout.window + 8, in: 0) == [9, 9])
        try harness.reply(from: 0, to: client)
        #expect(harness.error(0) == nil)
        #expect(frames.allSatisfy { !harness.isAllocated($0) })
        #expect(harness.state(1) == .free)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
    }

    /// The same, seen from the next client: the window must show its SSR.
    @Test func aClientEndingWhileServedCannotShadowTheNextSSR() throws {
        let harness = try fsAndClients(2)
        harness.receive(0)
        try harness.call(2, harness.id(0))
        harness.receive(0)
        try harness.call(1, harness.id(0))
        #expect(harness.ssrOpen(0, harness.id(2)) != nil)  // the window holds client 2's SSR
        harness.kernel.end(2, status: .killed)
        #expect(harness.ssrOpen(0, harness.id(1))?.request == 1)
        #expect(harness.windowFrames(of: 0, pages: 2) == harness.ssrWindow(of: 1, to: Program.fs))
    }

    /// Orphans have no table to overflow: many clients ending at once each keep their
    /// SSR (charged to their lingering slot) until the server has seen every unbind.
    @Test func manyEndingClientsEachGetTheirUnbind() throws {
        let harness = try fsAndClients(0)
        harness.receive(0)
        let freeBefore = harness.freeFrames
        var gone: [TaskID] = []
        for _ in 0..<40 {
            let client = try harness.spawn(Program.client)
            try harness.call(client.index, harness.id(0))
            try harness.reply(from: 0, to: client)
            harness.receive(0)
            gone.append(client)
        }
        // Ending while the server is busy with one of them: nothing is freed yet.
        try harness.call(gone[0].index, harness.id(0))
        for client in gone { harness.kernel.end(client.index, status: .killed) }
        #expect(harness.orphans().count == 40)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages, "every orphan is charged")
        try harness.reply(from: 0, to: gone[0])
        var cleaned: Set<UInt32> = []
        for _ in 0..<40 {
            harness.receive(0)
            guard harness.result(0, 2) == SSRMessage.unbindOperation else { break }
            let sender = UInt32(harness.result(0, 1))
            cleaned.insert(sender)
            try harness.reply(from: 0, to: TaskID(rawValue: sender))
        }
        #expect(cleaned == Set(gone.map(\.rawValue)))
        harness.receive(0)
        #expect(harness.state(0) == .receiving)
        #expect(harness.orphans().isEmpty)
        #expect(harness.freeFrames == freeBefore)
        #expect(gone.allSatisfy { harness.state($0.index) == .free })
    }

    // MARK: ssrInfo

    @Test func ssrInfoListsBindingsThenOrphans() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.disk)  // 1
        try harness.spawn(Program.manager)  // 2
        try harness.spawn(Program.client)  // 3
        try harness.spawn(Program.client)  // 4
        harness.recover(0, pages: 2)
        harness.recover(1, pages: 1)
        for (client, server) in [(3, 0), (3, 1), (3, 0), (4, 0)] {
            harness.receive(server)
            try harness.call(client, harness.id(server))
            try harness.reply(from: server, to: harness.id(client))
        }
        let gone = harness.id(4)
        harness.syscall(4, .exit, 0)

        #expect(MemoryLayout<SSRInfo>.size == SSRInfo.size)
        let destination = ProcessLayout.heap + 0x100
        func info(_ index: UInt) throws -> [UInt8]? {
            harness.syscall(2, .ssrInfo, index, UInt(destination), UInt(SSRInfo.size))
            #expect(harness.error(2) == nil)
            guard harness.result(2, 1) == 1 else { return nil }
            return try harness.read(SSRInfo.size, at: destination, in: 2)
        }
        func expected(owner: TaskID, program: Int, pages: UInt8, state: SSRState, completed: UInt64,
                      name: String) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: SSRInfo.size)
            storeLittleEndian(owner.rawValue, in: &bytes, at: 0)
            bytes[4] = UInt8(program)
            bytes[5] = pages
            bytes[6] = state.rawValue
            storeLittleEndian(completed, in: &bytes, at: 8)
            bytes.replaceSubrange(16..<16 + name.utf8.count, with: Array(name.utf8))
            return bytes
        }
        #expect(try info(0) == expected(owner: harness.id(3), program: Program.fs, pages: 2, state: .valid,
                                        completed: 2, name: "fs"))
        #expect(try info(1) == expected(owner: harness.id(3), program: Program.disk, pages: 1, state: .valid,
                                        completed: 1, name: "disk"))
        #expect(try info(2) == expected(owner: gone, program: Program.fs, pages: 2, state: .orphaned,
                                        completed: 1, name: "fs"))
        #expect(try info(3) == nil)
        #expect(try info(UInt(Int.max)) == nil)
        #expect(try info(UInt.max) == nil)

        // Once cleaned up, the orphan is no longer listed; a suspect SSR says so.
        harness.receive(0)
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
        try harness.reply(from: 0, to: gone)
        #expect(try info(2) == nil)
        harness.receive(0)
        try harness.call(3, harness.id(0))
        harness.kernel.fault(0, cause: .storePageFault, address: 0)
        #expect(try info(0)?[6] == SSRState.suspect.rawValue)
        #expect(try info(1)?[6] == SSRState.valid.rawValue)

        harness.syscall(2, .ssrInfo, 0, UInt(destination), UInt(SSRInfo.size - 1))
        #expect(harness.error(2) == .badArgument)
        harness.syscall(2, .ssrInfo, 0, UInt(ProcessLayout.heapEnd - 8), UInt(SSRInfo.size))
        #expect(harness.error(2) == .badAddress)
    }
}
