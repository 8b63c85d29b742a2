// Regression tests for the holes an attacker's review found in the kernel's
// dependability core (issue "No process and no faulting server can take Curio
// down"): each one failed, or crashed the kernel, before its fix.
//
//   restart while blocked in send     the fresh incarnation never made that call
//   user registers                    no saved register, however changed, traps the kernel
//   one SSR server instance           a second one would map and free SSRs the first uses
//   poison requests                   the second crash on one request fails it alone
//   refused sends                     leave no binding, charge or request id behind
//   generations                       a slot whose generation is exhausted is retired
//   given-up servers                  a waiting parent learns of it
//   taskInfo                          only what a process may know
//
// and tests of the kernel invariant audit itself: it finds each kind of damage.
import CurioABI
import Testing
@testable import KernelCore

@Suite struct HardeningTests {
    typealias Program = SSRProgram
    typealias TestKernel = KernelHarness.TestKernel

    /// fs in slot 0 (recovered), `clients` clients from slot 1.
    private func fsAndClients(_ clients: Int = 1) throws -> KernelHarness {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)
        for _ in 0..<clients { try harness.spawn(Program.client) }
        harness.recover(0, pages: 2)
        return harness
    }

    // MARK: Sealed replies

    /// A server with state regions may seal its reply (t0): the kernel lets it through
    /// only if the words match the seal over the client's request in flight; otherwise
    /// the client keeps waiting for the answer the server meant. No seal, no check.
    @Test func aReplyThatDoesNotMatchItsSealIsRefusedAndTheClientKeepsWaiting() throws {
        let harness = try fsAndClients(1)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        let request = UInt64(harness.result(0, 6))
        #expect(request != 0)
        let client = harness.id(1)
        let sealed = RequestSeal.value(sender: client.rawValue, operation: 7, word0: 11, word1: 12, length: 0,
                                       requestID: request)
        harness.registers(0)[.t0] = sealed
        try harness.reply(from: 0, to: client, code: 7, words: (11, 13))  // a word the seal does not cover
        #expect(harness.error(0) == .replySealBroken)
        #expect(harness.state(1) == .awaitingReply, "the client still waits")
        harness.registers(0)[.t0] = RequestSeal.value(sender: client.rawValue, operation: 7, word0: 11, word1: 12,
                                                      length: 0, requestID: request &+ 1)
        try harness.reply(from: 0, to: client, code: 7, words: (11, 12))
        #expect(harness.error(0) == .replySealBroken, "sealed for another request")
        harness.registers(0)[.t0] = sealed
        try harness.reply(from: 0, to: client, code: 7, words: (11, 12))
        #expect(harness.error(0) == nil && harness.error(1) == nil)
        #expect(harness.result(1, 1) == 7 && harness.result(1, 2) == 11 && harness.result(1, 3) == 12)

        harness.receive(0)
        try harness.call(1, harness.id(0))
        harness.registers(0)[.t0] = 0
        try harness.reply(from: 0, to: client, code: 1, words: (2, 3))
        #expect(harness.error(0) == nil && harness.result(1, 1) == 1, "an unsealed reply is not checked")
    }

    // MARK: Restart while blocked in send

    @Test func aServerRestartedWhileSendingLeavesItsPartnersQueue() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.disk)  // 0
        try harness.spawn(Program.fs)  // 1
        harness.recover(0, pages: 1)
        harness.recover(1, pages: 2)
        try harness.call(1, harness.id(0))
        #expect(harness.state(1) == .sending)
        #expect(harness.task(0).sendersWaiting.contains(1))

        harness.kernel.fault(1, cause: .hang, address: 0)
        #expect(!harness.task(0).sendersWaiting.contains(1), "the fresh fs never called disk")
        harness.receive(0)
        let unbind = harness.result(0, 2) == SSRMessage.unbindOperation
        #expect(unbind, "disk hears only that the old fs is gone")
        let oldFS = TaskID(rawValue: UInt32(harness.result(0, 1)))
        try harness.reply(from: 0, to: oldFS)
        harness.receive(0)
        #expect(harness.state(0) == .receiving, "no message from the new incarnation")
        #expect(harness.task(1).recovering)
        #expect(harness.kernel.audit() == AuditReport(ownedFrames: harness.ownedFrames))
    }

    // MARK: User registers never trap the kernel

    /// A queued sender whose saved length and pointer changed while it waited (a fault
    /// injected into it) gets an error when the server receives; the kernel goes on.
    @Test func aQueuedSendersChangedRegistersAreCheckedAgainAtDelivery() throws {
        let harness = try fsAndClients(2)
        try harness.call(1, harness.id(0))
        try harness.call(2, harness.id(0))
        harness.registers(1)[.a4] = 1 << 63
        harness.registers(1)[.a3] = 0x8020_0000
        let issuedBefore = harness.binding(of: 1, to: Program.fs)?.lastIssuedRequest
        harness.receive(0)
        #expect(harness.error(1) == .messageTooLarge)
        #expect(harness.binding(of: 1, to: Program.fs)?.lastIssuedRequest == issuedBefore.map { $0 - 1 },
                "the refused request's id is taken back")
        #expect(harness.result(0, 1) == UInt(harness.id(2).rawValue), "the next sender is served")
    }

    @Test func aReplyChecksTheClientsChangedReplyCapacity() throws {
        let harness = try fsAndClients(2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        harness.registers(1)[.a6] = 1 << 63
        harness.registers(1)[.a5] = 0x8020_0000
        try harness.reply(from: 0, to: harness.id(1), payload: [1, 2, 3])
        #expect(harness.error(0) == .replyUndeliverable)
        #expect(harness.state(1) == .runnable, "the client is not left waiting")
        #expect(harness.error(1) == .badAddress)

        harness.receive(0)
        try harness.call(2, harness.id(0))
        harness.registers(2)[.a6] = UInt64.max
        harness.registers(2)[.a5] = ProcessLayout.heap
        try harness.reply(from: 0, to: harness.id(2), payload: [1, 2, 3])
        #expect(harness.error(0) == nil)
        #expect(try harness.read(3, at: ProcessLayout.heap, in: 2) == [1, 2, 3])
    }

    /// A reply larger than the client's reply buffer used to leave the client waiting
    /// for ever: the server got an error, and nothing answered the client.
    @Test func aReplyThatCannotFitEndsTheClientsCallToo() throws {
        let harness = try fsAndClients()
        harness.receive(0)
        try harness.send(from: 1, to: harness.id(0), replyCapacity: 2)
        try harness.reply(from: 0, to: harness.id(1), payload: [1, 2, 3])
        #expect(harness.error(0) == .replyUndeliverable, "the server is not told the client's error")
        #expect(harness.state(1) == .runnable)
        #expect(harness.error(1) == .messageTooLarge)
        #expect(harness.binding(of: 1, to: Program.fs)?.lastCompletedRequest == 1, "the request is over")
        #expect(harness.kernel.audit().isClean)
    }

    /// The same reply from `replyAndReceive` is over as far as the server is concerned:
    /// it goes on to receive, as after a reply to a client that has ended. A client
    /// could otherwise make an SSR server restart at will with a small reply buffer.
    @Test func aReplyThatCannotFitLetsReplyAndReceiveGoOn() throws {
        let harness = try fsAndClients(2)
        harness.receive(0)
        try harness.send(from: 1, to: harness.id(0), replyCapacity: 2)
        try harness.write([1, 2, 3], at: ProcessLayout.heap + 0x800, in: 0)
        harness.syscall(0, .replyAndReceive, UInt(harness.id(1).rawValue), 0, 0, 0,
                        UInt(ProcessLayout.heap + 0x800), 3, 0x800)
        #expect(harness.state(1) == .runnable)
        #expect(harness.error(1) == .messageTooLarge)
        #expect(harness.state(0) == .receiving, "the server receives")
        try harness.send(from: 2, to: harness.id(0), words: (7, 8))
        #expect(harness.error(0) == nil)
        #expect(harness.result(0, 1) == UInt(harness.id(2).rawValue))
        #expect(harness.result(0, 3) == 7)
        #expect(harness.kernel.audit().isClean)
    }

    @Test func aServersChangedReceiveCapacityIsCheckedAgain() throws {
        let harness = try fsAndClients()
        harness.receive(0)
        harness.registers(0)[.a1] = 1 << 63
        try harness.send(from: 1, to: harness.id(0), payload: [UInt8](repeating: 1, count: 8))
        #expect(harness.error(1) == nil)
        #expect(harness.result(0, 5) == 8)
    }

    // MARK: One live instance per SSR server

    @Test func aSecondInstanceOfAnSSRServerIsRefused() throws {
        let harness = try fsAndClients()
        let manager = try harness.spawn(Program.manager)
        let (name, length) = try harness.name("fs", in: manager.index)
        harness.syscall(manager.index, .spawn, name, length, 0, 0)
        #expect(harness.error(manager.index) == .alreadyRunning)
        #expect(throws: SyscallError.alreadyRunning) { try harness.spawn(Program.fs) }
        // An ordinary server may run twice.
        try harness.spawn(Program.plain)
        try harness.spawn(Program.plain)

        // Once the first instance is gone for good, another may start, and finds the SSRs.
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.reply(from: 0, to: harness.id(1))
        harness.kernel.end(0, status: .killed)
        let second = try harness.spawn(Program.fs)
        let walked = harness.recover(second.index, pages: 2)
        #expect(walked.map(\.client) == [harness.id(1)])
    }

    // MARK: Poison requests

    /// fs crashes twice on client 1's request; client 2's queued request must not pay.
    @Test func theSecondCrashOnOneRequestFailsThatRequestAlone() throws {
        let harness = try fsAndClients(2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.call(2, harness.id(0))
        let poison = try #require(harness.binding(of: 1, to: Program.fs)?.lastIssuedRequest)

        harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
        harness.recover(0, pages: 2)
        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(harness.id(1).rawValue), "re-delivered once")
        #expect(harness.result(0, 6) == UInt(poison))
        harness.tick(by: 10)
        harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
        #expect(harness.state(1) == .runnable)
        #expect(harness.error(1) == .requestFailed)
        #expect(harness.binding(of: 1, to: Program.fs)?.state == .suspect, "its SSR is judged by recovery")
        #expect(harness.output.contains("fs crashed twice on a request of one client"))

        let walked = harness.recover(0, pages: 2)
        #expect(walked.contains { $0.client == harness.id(1) && $0.state == .suspect })
        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(harness.id(2).rawValue), "the other client is served")
        try harness.reply(from: 0, to: harness.id(2))
        #expect(harness.error(2) == nil)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        #expect(harness.result(0, 6) == UInt(poison + 1), "the client may call again")
        #expect(harness.state(0) != .failed)
        #expect(harness.kernel.audit().isClean)
    }

    /// Client 1 keeps sending requests that crash fs while fs answers client 2 in
    /// between: each poison request fails alone, twice as many restarts as the give-up
    /// limit come in quick succession, and fs still serves.
    @Test func poisonRequestsInQuickSuccessionDoNotGetTheServerGivenUp() throws {
        let harness = try fsAndClients(2)
        harness.receive(0)
        for _ in 0..<TestKernel.restartsBeforeGivingUp {
            try crashTwice(on: 1, harness)
            #expect(harness.error(1) == .requestFailed)
            try harness.call(2, harness.id(0))
            try harness.reply(from: 0, to: harness.id(2))
            #expect(harness.error(2) == nil, "the other client is served")
            harness.receive(0)
        }
        #expect(harness.state(0) == .receiving, "not given up, not held back")
        #expect(!harness.output.contains("gave up"))
    }

    /// A bug every request hits: fs answers nobody between poison requests, so their
    /// crashes count, and fs is given up as any server failing for everyone is.
    @Test func poisonRequestsWithNothingAnsweredBetweenGetTheServerGivenUp() throws {
        let harness = try fsAndClients(2)
        harness.receive(0)
        for _ in 0..<TestKernel.restartsBeforeGivingUp {
            guard harness.state(0) != .failed else { break }
            try crashTwice(on: 1, harness)
        }
        #expect(harness.output.contains("gave up on fs"))
    }

    /// Client `client` calls fs, fs crashes on the request, recovers, gets it again and
    /// crashes again; fs then recovers and waits in receive. A backoff hold is waited
    /// out to the tick, so the restarts still come in quick succession.
    private func crashTwice(on client: Int, _ harness: KernelHarness) throws {
        try harness.call(client, harness.id(0))
        for crash in 0..<2 {
            harness.kernel.fault(0, cause: .storePageFault, address: 0x7FFF_7FF8)
            guard harness.state(0) != .failed else { return }
            if harness.state(0) == .held { harness.tick(by: harness.task(0).heldUntil - harness.clock) }
            harness.recover(0, pages: 2)
            harness.receive(0)
            if crash == 0 { harness.tick(by: 10) }
        }
    }

    @Test func twoCrashesOnDifferentRequestsAreNotPoison() throws {
        let harness = try fsAndClients(2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.call(2, harness.id(0))
        harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
        harness.recover(0, pages: 2)
        harness.receive(0)
        try harness.reply(from: 0, to: harness.id(1))
        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(harness.id(2).rawValue))
        harness.tick(by: 10)
        harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
        #expect(harness.state(2) == .sending, "re-queued, not failed")
    }

    @Test func anSSRThatCrashesRecoveryTwiceIsJudgedLost() throws {
        let harness = try fsAndClients(2)
        for client in [1, 2] {
            harness.receive(0)
            try harness.call(client, harness.id(0))
            try harness.reply(from: 0, to: harness.id(client))
        }
        harness.receive(0)
        try harness.call(1, harness.id(0))
        harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
        for _ in 0..<2 {
            harness.syscall(0, .ssrRecoverNext, 0, 0)
            #expect(harness.result(0, 1) == UInt(harness.id(1).rawValue))
            harness.tick(by: 10)
            harness.kernel.fault(0, cause: .loadPageFault, address: 0)
        }
        #expect(harness.binding(of: 1, to: Program.fs)?.state == .lost)
        #expect(harness.error(1) == .serverStateLost)
        #expect(harness.state(1) == .runnable)
        let walked = harness.recover(0, pages: 2)
        #expect(walked.map(\.client) == [harness.id(2)], "the lost SSR is not walked again")
    }

    @Test func anUnbindThatCrashesTwiceIsFreedWithoutCleanup() throws {
        let harness = try fsAndClients()
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.reply(from: 0, to: harness.id(1))
        let freeBefore = harness.freeFrames
        harness.syscall(1, .exit, 0)
        for _ in 0..<2 {
            harness.receive(0)
            #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
            harness.tick(by: 10)
            harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
            harness.recover(0, pages: 2)
        }
        #expect(harness.orphans().isEmpty)
        #expect(harness.state(1) == .free)
        #expect(harness.freeFrames == freeBefore + ProcessLayout.standardPages + 2)
        harness.receive(0)
        #expect(harness.state(0) == .receiving)
        #expect(harness.kernel.audit().isClean)
    }

    // MARK: Refused sends leave nothing behind

    @Test func aSendRefusedAtDeliveryNeitherBindsNorCharges() throws {
        let harness = try fsAndClients()
        harness.receive(0, capacity: 4)
        let pages = harness.task(1).pagesUsed
        let free = harness.freeFrames
        try harness.send(from: 1, to: harness.id(0), payload: [UInt8](repeating: 1, count: 64))
        #expect(harness.error(1) == .messageTooLarge)
        #expect(harness.bindingCount(of: 1) == 0)
        #expect(harness.task(1).pagesUsed == pages)
        #expect(harness.freeFrames == free)
        #expect(harness.state(0) == .receiving)

        try harness.send(from: 1, to: harness.id(0), payload: [1, 2])
        #expect(harness.binding(of: 1, to: Program.fs)?.lastIssuedRequest == 1, "ids start at 1 still")
    }

    // MARK: Generations

    @Test func aSlotWhoseGenerationIsExhaustedIsRetired() throws {
        let harness = try KernelHarness.ssr()
        let first = try harness.spawn(Program.client)
        harness.kernel.tasks[first.index].generation = UInt16.max - 1
        let last = harness.id(first.index)
        harness.syscall(first.index, .exit, 0)
        #expect(harness.task(first.index).generation == .max)
        let next = try harness.spawn(Program.client)
        #expect(next.index != first.index, "never reused: its next TaskID would wrap")
        #expect(harness.kernel.liveSlot(last) == nil)
        #expect(harness.kernel.liveSlot(TaskID(index: first.index, generation: 0)) == nil)
    }

    // MARK: Given-up servers

    @Test func aParentWaitingForAServerThatIsGivenUpIsWoken() throws {
        let harness = try KernelHarness.ssr()
        let manager = try harness.spawn(Program.manager)
        let fs = try harness.spawn(Program.fs, parent: manager)
        harness.recover(fs.index, pages: 2)
        harness.syscall(manager.index, .wait, UInt(fs.rawValue))
        #expect(harness.state(manager.index) == .waiting)
        for _ in 0...TestKernel.restartsBeforeGivingUp {
            if harness.state(fs.index) == .held {
                harness.tick(by: harness.task(fs.index).heldUntil - harness.clock)
            }
            harness.kernel.fault(fs.index, cause: .storePageFault, address: 0)
            harness.tick(by: 10)
        }
        #expect(harness.state(fs.index) == .failed)
        #expect(harness.state(manager.index) == .runnable)
        #expect(harness.error(manager.index) == nil)
        #expect(ExitStatus(rawValue: harness.result(manager.index, 1)) == .faulted(.storePageFault))
    }

    // MARK: taskInfo

    @Test func taskInfoShowsOnlyWhatAProcessMayKnow() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.manager)  // 0
        try harness.spawn(Program.fs)  // 1
        try harness.spawn(Program.client)  // 2
        try harness.spawn(Program.tight)  // 3
        let destination = ProcessLayout.heap + 0x100
        func name(of slot: Int, askedBy caller: Int) throws -> String {
            harness.syscall(caller, .taskInfo, UInt(slot), UInt(destination), UInt(TaskInfo.size))
            #expect(harness.error(caller) == nil)
            let bytes = try harness.read(TaskInfo.size, at: destination, in: caller)
            return String(decoding: bytes.suffix(16).prefix { $0 != 0 }, as: UTF8.self)
        }
        #expect(try name(of: 1, askedBy: 2) == "fs", "a server it may call")
        #expect(try name(of: 2, askedBy: 2) == "client", "itself")
        #expect(try name(of: 0, askedBy: 2) == "", "not the manager")
        #expect(try name(of: 3, askedBy: 2) == "", "not another client")
        #expect(try name(of: 3, askedBy: 0) == "tight", "a manager sees all")
    }

    @Test func ssrInfoShowsAClientOnlyItsOwnSSRsAndAServerThoseItServes() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.disk)  // 1
        try harness.spawn(Program.client)  // 2
        try harness.spawn(Program.client)  // 3
        harness.recover(0, pages: 2)
        harness.recover(1, pages: 1)
        for (client, server) in [(2, 0), (3, 0), (3, 1)] {
            harness.receive(server)
            try harness.call(client, harness.id(server))
            try harness.reply(from: server, to: harness.id(client))
        }
        let destination = ProcessLayout.heap + 0x100
        func owners(seenBy caller: Int) throws -> [UInt32] {
            var found: [UInt32] = []
            for index in 0..<8 {
                harness.syscall(caller, .ssrInfo, UInt(index), UInt(destination), UInt(SSRInfo.size))
                guard harness.error(caller) == nil, harness.result(caller, 1) == 1 else { break }
                let bytes = try harness.read(4, at: destination, in: caller)
                found.append(bytes.reversed().reduce(0) { $0 << 8 | UInt32($1) })
            }
            return found
        }
        #expect(try owners(seenBy: 2) == [harness.id(2).rawValue], "a client sees only its own")
        #expect(try owners(seenBy: 3) == [harness.id(3).rawValue, harness.id(3).rawValue])
        #expect(try owners(seenBy: 1) == [harness.id(3).rawValue], "disk sees the SSRs it serves")
    }

    // MARK: The audit finds what is wrong

    /// A busy scene: fs serving client 1, client 2 queued, client 3's orphan waiting.
    private func busyScene() throws -> KernelHarness {
        let harness = try fsAndClients(3)
        harness.receive(0)
        try harness.call(3, harness.id(0))
        try harness.reply(from: 0, to: harness.id(3))
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.call(2, harness.id(0))
        harness.syscall(3, .exit, 0)
        #expect(harness.orphans().count == 1)
        return harness
    }

    @Test func aCleanKernelAuditsClean() throws {
        let harness = try busyScene()
        let report = harness.kernel.audit()
        #expect(report.isClean, "\(report)")
        #expect(report.ownedFrames == harness.ownedFrames)
        let free = harness.freeFrames
        _ = harness.kernel.audit()
        #expect(harness.freeFrames == free, "the audit returns the frames it borrowed")
    }

    @Test func theAuditFindsAWrongCharge() throws {
        let harness = try busyScene()
        harness.kernel.tasks[1].pagesUsed -= 1
        #expect(harness.kernel.audit().first == .chargeMismatch)
        #expect(harness.kernel.audit().firstSlot == 1)
    }

    @Test func theAuditFindsALeakedFrame() throws {
        let harness = try busyScene()
        _ = harness.kernel.frames.allocate()
        #expect(harness.kernel.audit().first == .unownedFrames)
    }

    @Test func theAuditFindsAFrameWithTwoOwners() throws {
        let harness = try busyScene()
        harness.kernel.tasks[2].bindings[0].frames[0] = harness.kernel.tasks[1].bindings[0].frames[0]
        let report = harness.kernel.audit()
        #expect(report.first == .frameFoundTwice || report.violations > 1, "\(report)")
        #expect(!report.isClean)
    }

    @Test func theAuditFindsAStaleSenderBit() throws {
        let harness = try busyScene()
        harness.kernel.tasks[0].sendersWaiting.insert(4)
        #expect(harness.kernel.audit().first == .staleSenderBit)
    }

    @Test func theAuditFindsAWindowShowingTheWrongSSR() throws {
        let harness = try busyScene()
        #expect(harness.task(0).windowClient == 1)
        harness.kernel.tasks[0].windowClient = 2
        #expect(harness.kernel.audit().first == .windowMismatch)
    }
}

extension KernelHarness {
    /// Frames charged to processes, which the audit must find owned.
    var ownedFrames: Int { (0..<TestKernel.maxTasks).reduce(0) { $0 + task($1).pagesUsed } }
}

/// DMA outlives the driver unless the kernel stops the device first: there is no
/// IOMMU, and the device holds physical addresses of the driver's pages.
@Suite struct DriverDeviceTests {
    typealias Program = StandardProgram

    @Test func aRestartedDriversDevicesAreResetBeforeItsFramesAreFreed() throws {
        let harness = try KernelHarness(programs: KernelTestProgram.standard)
        harness.kernel.platform.clock = 1_000_000
        harness.kernel.platform.installVirtioDevice(at: 0x1000_3000)
        let driver = try harness.spawn(Program.blockDriver)
        let owned = harness.mappings(of: driver.index).filter { $0.flags.contains(.owned) }.map(\.frame)
        harness.kernel.platform.framesToCheckAtFlush = owned.map { PhysicalAddress($0) }
        harness.kernel.fault(driver.index, cause: .loadPageFault, address: 0)
        let resets = harness.kernel.platform.resets
        #expect(resets.map(\.base) == [0x1000_3000], "the virtio device in its range, and nothing else")
        #expect(resets.first?.framesStillAllocated.allSatisfy { $0 } == true, "reset while the pages are still its")
        #expect(harness.state(driver.index) == .runnable, "and restarted")
    }

    @Test func anEndingDriversDevicesAreReset() throws {
        let harness = try KernelHarness(programs: KernelTestProgram.standard)
        harness.kernel.platform.installVirtioDevice(at: 0x1000_1000)
        let driver = try harness.spawn(Program.blockDriver)
        let owned = harness.mappings(of: driver.index).filter { $0.flags.contains(.owned) }.map(\.frame)
        harness.kernel.platform.framesToCheckAtFlush = owned.map { PhysicalAddress($0) }
        harness.kernel.end(driver.index, status: .killed)
        #expect(harness.kernel.platform.resets.map(\.base) == [0x1000_1000])
        #expect(harness.kernel.platform.resets.first?.framesStillAllocated.allSatisfy { $0 } == true)
        let uart = try harness.spawn(Program.driver)
        harness.kernel.end(uart.index, status: .killed)
        let plain = try harness.spawn(Program.peer)
        harness.kernel.end(plain.index, status: .killed)
        #expect(harness.kernel.platform.resets.count == 1, "a UART or a program without devices resets nothing")
        #expect(!harness.kernel.platform.deviceReads.text.contains("10000000 "),
                "the UART's receive register is never read to probe it: that would take a typed byte")
    }
}

/// An error may lie latent for a few requests before the server faults: the SSRs of
/// its latest requests are suspect too, not only the one in the window.
@Suite struct SuspectBoundTests {
    typealias Program = SSRProgram

    @Test func theSSRsOfTheLatestFourRequestsAreSuspect() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)
        for _ in 0..<6 { try harness.spawn(Program.client) }
        harness.recover(0, pages: 2)
        for client in 1...5 {
            harness.receive(0)
            try harness.call(client, harness.id(0))
            try harness.reply(from: 0, to: harness.id(client))
        }
        harness.receive(0)
        try harness.call(6, harness.id(0))
        harness.kernel.fault(0, cause: .loadPageFault, address: 0)
        let states = (1...6).map { harness.binding(of: $0, to: Program.fs)?.state }
        #expect(states == [.valid, .valid, .suspect, .suspect, .suspect, .suspect],
                "the one in the window and the three before it")
        #expect(harness.kernel.audit().isClean)
    }
}
