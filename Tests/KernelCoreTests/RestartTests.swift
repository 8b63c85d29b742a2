// Tests of transparent server restart: what a fault does to the server, its SSRs and
// its clients; recovery (ssrRecoverNext / ssrVerdict / recoveryComplete) and the
// re-delivery of requests in flight with their ids; backoff and giving up; the
// watchdog.
import CurioABI
import Testing
@testable import KernelCore

@Suite struct RestartTests {
    typealias Program = SSRProgram
    typealias TestKernel = KernelHarness.TestKernel

    /// The scene of a fault: fs (slot 0, recovered) is working on client 1's second
    /// request (id 2) with client 1's SSR in its window; client 2 is bound and idle;
    /// client 3 is queued with its first request; client 4's first request was taken
    /// earlier and awaits its reply. Clients 1 and 2 each hold 64 bytes of state.
    private struct Scene {
        let harness: KernelHarness
        let serving = 1, idle = 2, queued = 3, held = 4
        var clients: [Int] { [serving, idle, queued, held] }
    }

    private func scene() throws -> Scene {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)
        for _ in 0..<4 { try harness.spawn(Program.client) }
        let scene = Scene(harness: harness)
        harness.recover(0, pages: 2)
        for (client, byte) in [(scene.serving, UInt8(0x11)), (scene.idle, 0x22)] {
            harness.receive(0)
            try harness.call(client, harness.id(0))
            try harness.write([UInt8](repeating: byte, count: 64), at: SSRLayout.window + 100, in: 0)
            try harness.reply(from: 0, to: harness.id(client))
        }
        harness.receive(0)
        try harness.call(scene.held, harness.id(0))
        try harness.call(scene.serving, harness.id(0))
        try harness.call(scene.queued, harness.id(0))
        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(harness.id(scene.serving).rawValue))
        #expect(harness.result(0, 6) == 2)
        #expect(harness.state(scene.held) == .awaitingReply)
        #expect(harness.state(scene.serving) == .awaitingReply)
        #expect(harness.state(scene.queued) == .sending)
        return scene
    }

    // MARK: The restart

    @Test func aFaultRestartsTheServerInPlace() throws {
        let scene = try scene()
        let harness = scene.harness
        let oldID = harness.id(0)
        let contents = scene.clients.map { harness.ssrBytes(of: $0, to: Program.fs) }
        let frames = scene.clients.map { harness.ssrFrames(of: $0, to: Program.fs) }
        let freeBefore = harness.freeFrames
        let ownedFrames = harness.mappings(of: 0).filter { $0.flags.contains(.owned) }.map(\.frame)
        #expect(ownedFrames.count == 7)
        harness.kernel.platform.framesToCheckAtFlush = ownedFrames.map { PhysicalAddress($0) }
        let fullFlushes = harness.kernel.platform.flushes.count
        let pageFlushes = harness.pageFlushCount

        harness.kernel.fault(0, cause: .storePageFault, address: 0x10)
        let server = harness.task(0)
        #expect(server.generation == oldID.generation + 1)
        #expect(server.restarts == 1)
        #expect(server.state == .runnable)
        #expect(server.recovering)
        #expect(server.program == Program.fs)
        #expect(server.pagesUsed == SSRLayout.serverPages)
        #expect(harness.registers(0)[.pc] == KernelTestELF.textAddress, "from the pristine image")
        #expect(harness.output.contains("[kernel] fs (pid 0, gen 0) stopped: store page fault at 0x10"))
        #expect(harness.output.contains("[kernel] restarted fs (pid 0, gen 1, restart 1)"))
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow)
        #expect(harness.pageFlushes(since: pageFlushes) == harness.windowFlushes(of: 0, pages: 2))

        // The SSRs of the latest requests (the one in the window included) are suspect;
        // the queued client's, never mapped, is not; all survive unchanged.
        for client in [scene.serving, scene.idle, scene.held] {
            #expect(harness.binding(of: client, to: Program.fs)?.state == .suspect)
        }
        #expect(harness.binding(of: scene.queued, to: Program.fs)?.state == .valid)
        #expect(scene.clients.map { harness.ssrBytes(of: $0, to: Program.fs) } == contents)
        #expect(scene.clients.map { harness.ssrFrames(of: $0, to: Program.fs) } == frames)
        #expect(harness.ssrBytes(of: scene.serving, to: Program.fs)[100] == 0x11)

        // The old incarnation's memory went back; the new one took as much.
        #expect(harness.freeFrames == freeBefore)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
        #expect(harness.kernel.platform.flushes.count > fullFlushes)
        #expect(harness.kernel.platform.flushes[fullFlushes].framesStillAllocated.allSatisfy { $0 },
                "the old space is flushed before its frames are freed")
        #expect(harness.kernel.platform.flushes.dropFirst(fullFlushes).allSatisfy { $0.asid == harness.kernel.asid(of: 0) })

        // Clients awaiting its reply are queued again; the queue is kept.
        for client in [scene.serving, scene.queued, scene.held] {
            #expect(harness.state(client) == .sending)
            #expect(harness.task(client).partner == 0)
        }
        #expect(harness.task(0).sendersWaiting == SlotSet([1, 3, 4]))
        #expect(harness.state(scene.idle) == .runnable)

        // The old ID is stale.
        try harness.call(scene.idle, oldID)
        #expect(harness.error(scene.idle) == .deadEndpoint)
        #expect(harness.state(scene.idle) == .runnable)
    }

    @Test func aRestartCostsNoMemory() throws {
        let harness = try KernelHarness.ssr()
        let before = harness.freeFrames
        try harness.spawn(Program.fs)
        for _ in 0..<3 {
            harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
            #expect(harness.freeFrames == before - SSRLayout.serverPages)
        }
        harness.kernel.end(0, status: .killed)
        #expect(harness.freeFrames == before)
    }

    @Test func recoveryWalksTheSSRsAndRedeliversWithTheSameIDs() throws {
        let scene = try scene()
        let harness = scene.harness
        harness.kernel.fault(0, cause: .loadPageFault, address: 0)

        // During recovery receive takes nothing, however long the queue.
        harness.receive(0, mask: 1)
        #expect(harness.state(0) == .receiving)
        #expect(harness.task(0).sendersWaiting == SlotSet([1, 3, 4]))
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow)
        // Nor does a new send reach it.
        try harness.call(scene.idle, harness.id(0))
        #expect(harness.state(scene.idle) == .sending)
        #expect(harness.state(0) == .receiving)
        harness.kernel.notify(0, bits: 1)
        #expect(harness.state(0) == .runnable)
        #expect(harness.result(0, 1) == UInt(TaskID.kernel.rawValue))

        let walked = harness.recover(0, pages: 2, complete: false)
        let expected: [RecoveredSSR] = [
            RecoveredSSR(client: harness.id(scene.serving), state: .suspect, lastCompleted: 1,
                         windowFrames: harness.ssrWindow(of: scene.serving, to: Program.fs)),
            RecoveredSSR(client: harness.id(scene.idle), state: .suspect, lastCompleted: 1,
                         windowFrames: harness.ssrWindow(of: scene.idle, to: Program.fs)),
            RecoveredSSR(client: harness.id(scene.queued), state: .valid, lastCompleted: 0,
                         windowFrames: harness.ssrWindow(of: scene.queued, to: Program.fs)),
            RecoveredSSR(client: harness.id(scene.held), state: .suspect, lastCompleted: 0,
                         windowFrames: harness.ssrWindow(of: scene.held, to: Program.fs)),
        ]
        #expect(walked == expected)
        #expect(harness.binding(of: scene.serving, to: Program.fs)?.state == .valid, "judged valid")
        #expect(harness.windowFrames(of: 0) == harness.emptyWindow, "the walk's end closes the window")
        #expect(harness.task(0).recovering)
        harness.syscall(0, .recoveryComplete)
        #expect(!harness.task(0).recovering)

        // Re-delivery: the same request ids, each with its SSR mapped.
        var delivered: [TaskID: UInt] = [:]
        for _ in 0..<4 {
            harness.receive(0)
            #expect(harness.error(0) == nil)
            let client = TaskID(rawValue: UInt32(harness.result(0, 1)))
            delivered[client] = harness.result(0, 6)
            #expect(harness.windowFrames(of: 0, pages: 2) == harness.ssrWindow(of: client.index, to: Program.fs))
            #expect(harness.state(client.index) == .awaitingReply)
        }
        #expect(delivered == [harness.id(scene.serving): 2, harness.id(scene.idle): 2,
                              harness.id(scene.queued): 1, harness.id(scene.held): 1])
        try harness.reply(from: 0, to: harness.id(scene.serving), code: 5)
        #expect(harness.error(scene.serving) == nil)
        #expect(harness.result(scene.serving, 1) == 5)
        #expect(harness.binding(of: scene.serving, to: Program.fs)?.lastCompletedRequest == 2)
    }

    @Test func aLostSSRFailsItsRequestAndStartsAgainFromZero() throws {
        let scene = try scene()
        let harness = scene.harness
        harness.kernel.fault(0, cause: .storePageFault, address: 0)
        let lost = harness.id(scene.serving)
        harness.recover(0, pages: 2) { $0 == lost ? .lost : .valid }

        #expect(harness.state(scene.serving) == .runnable)
        #expect(harness.error(scene.serving) == .serverStateLost)
        #expect(harness.binding(of: scene.serving, to: Program.fs)?.state == .lost)
        #expect(harness.task(0).sendersWaiting == SlotSet([3, 4]), "out of the queue")
        #expect(harness.ssrBytes(of: scene.serving, to: Program.fs)[100] == 0x11, "not wiped yet")

        // A lost SSR is no longer walked.
        harness.kernel.fault(0, cause: .storePageFault, address: 0)
        let walked = harness.recover(0, pages: 2)
        #expect(!walked.map(\.client).contains(lost))
        #expect(walked.count == 3)

        // Its next call binds afresh: same pages, zeroed, valid.
        let frames = harness.ssrFrames(of: scene.serving, to: Program.fs)
        let pages = harness.task(scene.serving).pagesUsed
        try harness.call(scene.serving, harness.id(0))
        #expect(harness.state(scene.serving) == .sending)
        #expect(harness.binding(of: scene.serving, to: Program.fs)?.state == .valid)
        #expect(harness.ssrFrames(of: scene.serving, to: Program.fs) == frames)
        #expect(harness.ssrBytes(of: scene.serving, to: Program.fs).allSatisfy { $0 == 0 })
        #expect(harness.task(scene.serving).pagesUsed == pages)
    }

    /// A client that was not waiting when recovery gave its state up learns of it from
    /// its next call, not by finding its timers or files missing (a timer soak's code
    /// fault in the commit path lost four clients' states; the three that were busy
    /// elsewhere were then answered "no timers").
    @Test func aClientNotWaitingIsToldOfItsLostStateByItsNextCall() throws {
        let scene = try scene()
        let harness = scene.harness
        harness.kernel.fault(0, cause: .storePageFault, address: 0)
        let lost = harness.id(scene.idle)
        harness.recover(0, pages: 2) { $0 == lost ? .lost : .valid }
        #expect(harness.state(scene.idle) == .runnable)
        #expect(harness.binding(of: scene.idle, to: Program.fs)?.state == .lost)
        let issued = harness.binding(of: scene.idle, to: Program.fs)?.lastIssuedRequest

        try harness.call(scene.idle, harness.id(0))
        #expect(harness.state(scene.idle) == .runnable)
        #expect(harness.error(scene.idle) == .serverStateLost)
        #expect(harness.binding(of: scene.idle, to: Program.fs)?.state == .valid)
        #expect(harness.binding(of: scene.idle, to: Program.fs)?.lastIssuedRequest == issued, "no request issued")
        #expect(harness.ssrBytes(of: scene.idle, to: Program.fs).allSatisfy { $0 == 0 })

        // Told once: the call after starts from a fresh state.
        try harness.call(scene.idle, harness.id(0))
        #expect(harness.state(scene.idle) == .sending)
    }

    @Test func recoveryCallsBelongToRecovery() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        harness.recover(0, pages: 2)
        harness.syscall(0, .ssrRecoverNext, 0)
        #expect(harness.error(0) == .badArgument)
        harness.syscall(0, .ssrVerdict, UInt(harness.id(1).rawValue), 0)
        #expect(harness.error(0) == .badArgument)

        harness.kernel.fault(0, cause: .breakpoint, address: 0)
        harness.syscall(0, .ssrVerdict, UInt(harness.id(1).rawValue), 0)
        #expect(harness.error(0) == .notFound, "not bound")
        harness.syscall(0, .ssrVerdict, UInt(harness.id(1).rawValue), 3)
        #expect(harness.error(0) == .badArgument, "no such verdict")
        harness.syscall(0, .ssrRecoverNext, UInt(TestKernel.maxTasks * SSRTable.bindingsPerTask + 1))
        #expect(harness.error(0) == .badArgument)
        harness.syscall(0, .ssrRecoverNext, 0)
        #expect(harness.error(0) == nil)
        #expect(harness.result(0, 1) == UInt(TaskID.kernel.rawValue), "nothing bound")
    }

    @Test func aRestartOrphansTheServersOwnSSRs() throws {
        // fs is itself a client of disk: a restart ends that incarnation's bindings.
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.disk)  // 0
        try harness.spawn(Program.fs)  // 1
        harness.recover(0, pages: 1)
        harness.recover(1, pages: 2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.reply(from: 0, to: harness.id(1))
        let oldFS = harness.id(1)
        #expect(harness.task(1).pagesUsed == SSRLayout.serverPages + 1)
        harness.kernel.fault(1, cause: .storePageFault, address: 0)
        #expect(harness.kernel.binding(of: 1, to: Program.disk) == nil, "not the new incarnation's")
        #expect(harness.task(1).pagesUsed == SSRLayout.serverPages + 1, "the orphan stays charged to the slot")
        #expect(harness.orphans().map(\.client) == [oldFS])
        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(oldFS.rawValue))
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
        try harness.reply(from: 0, to: oldFS)
        #expect(harness.error(0) == nil)
        #expect(harness.bindingCount(of: 1) == 0)
        #expect(harness.task(1).pagesUsed == SSRLayout.serverPages)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
    }

    @Test func aRestartDuringCleanupRepeatsTheUnbindMessage() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        harness.recover(0, pages: 2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.reply(from: 0, to: harness.id(1))
        let client = harness.id(1)
        harness.syscall(1, .exit, 0)
        harness.receive(0)
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
        harness.kernel.fault(0, cause: .storePageFault, address: 0)
        #expect(harness.orphans().count == 1, "the orphan survives the restart")
        #expect(harness.orphans().first?.binding.state == .orphaned)
        harness.recover(0, pages: 2)
        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(client.rawValue))
        #expect(harness.result(0, 2) == SSRMessage.unbindOperation)
        try harness.reply(from: 0, to: client)
        #expect(harness.error(0) == nil)
        #expect(harness.orphans().isEmpty)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
    }

    @Test func aServerStartedAgainFindsItsClientsSSRs() throws {
        // Bindings name the server by program: a new instance after a kill walks them.
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        harness.recover(0, pages: 2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.write([0x5A], at: SSRLayout.window, in: 0)
        harness.kernel.end(0, status: .killed)
        #expect(harness.error(1) == .deadEndpoint)
        let fresh = try harness.spawn(Program.fs)
        #expect(fresh.index == 0)
        let walked = harness.recover(0, pages: 2)
        #expect(walked.map(\.client) == [harness.id(1)])
        #expect(walked.first?.windowFrames == harness.ssrWindow(of: 1, to: Program.fs))
        #expect(walked.first?.lastCompleted == 0, "the request was never answered")
        harness.receive(0)
        try harness.call(1, harness.id(0))
        #expect(harness.result(0, 6) == 2)
        #expect(try harness.read(1, at: SSRLayout.window, in: 0) == [0x5A])
    }

    @Test func reportFailureRestartsOnlyRestartableServers() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.plain)  // 1
        harness.syscall(0, .reportFailure)
        #expect(harness.task(0).restarts == 1)
        #expect(harness.task(0).generation == 1)
        #expect(harness.output.contains("stopped: reported failure"))
        harness.syscall(1, .reportFailure)
        #expect(harness.error(1) == .notPermitted)
        #expect(harness.state(1) == .runnable)

        // A plain server that faults simply ends.
        harness.kernel.fault(1, cause: .storePageFault, address: 0)
        #expect(harness.state(1) == .free)
    }

    /// A restartable server that calls `exit` (a flipped syscall number turned its
    /// reply into one: the timer's soak saw clients told "not found" for good) is
    /// restarted, its clients' calls kept; a plain process simply ends.
    @Test func anExitOfARestartableServerIsAFailure() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.plain)  // 1
        harness.syscall(0, .exit, 3)
        #expect(harness.task(0).restarts == 1)
        #expect(harness.task(0).generation == 1)
        #expect(harness.task(0).isLive)
        #expect(harness.output.contains("stopped: exit of a server"))
        harness.syscall(1, .exit, 3)
        #expect(harness.state(1) == .free || harness.state(1) == .ended)
    }

    // MARK: Backoff and giving up

    @Test func restartsInQuickSuccessionAreHeldBack() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)
        // Restart n (counting from 1) is the (n-1)th in quick succession.
        for restart in 1...TestKernel.restartsBeforeBackoff {
            harness.kernel.fault(0, cause: .storePageFault, address: 0)
            #expect(harness.state(0) == .runnable, "restart \(restart)")
            #expect(harness.task(0).rapidRestarts == restart - 1)
            harness.tick(by: 1_000)
        }
        harness.kernel.fault(0, cause: .storePageFault, address: 0)
        #expect(harness.state(0) == .held)
        #expect(harness.task(0).restarts == 4)
        let until = harness.task(0).heldUntil
        #expect(until == harness.clock + 100_000)
        #expect(harness.kernel.nextTimerDeadline.map { $0 <= until } == true)
        harness.kernel.reschedule()
        #expect(harness.kernel.current == nil, "a held server does not run")

        harness.tick(by: 99_999)
        #expect(harness.state(0) == .held)
        harness.tick(by: 1)
        #expect(harness.state(0) == .runnable)
        #expect(harness.task(0).recovering)

        // The next quick restart waits twice as long.
        harness.kernel.fault(0, cause: .storePageFault, address: 0)
        #expect(harness.state(0) == .held)
        #expect(harness.task(0).heldUntil == harness.clock + 200_000)

        // A restart long after the last one starts the count again. (Released, the
        // server recovers and waits, so the watchdog has nothing to say meanwhile.)
        harness.tick(by: 200_000)
        harness.recover(0, pages: 2)
        harness.receive(0)
        harness.tick(by: TestKernel.rapidRestartWindow)
        harness.kernel.fault(0, cause: .storePageFault, address: 0)
        #expect(harness.state(0) == .runnable)
        #expect(harness.task(0).rapidRestarts == 0)
    }

    /// A server that answers a client between faults is making progress, however
    /// close together the faults come: it is neither held back nor given up.
    @Test func restartsBetweenWhichTheServerAnsweredAreNotQuickSuccession() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        harness.recover(0, pages: 0)
        harness.receive(0)
        for fault in 1...(2 * TestKernel.restartsBeforeGivingUp) {
            try harness.call(1, harness.id(0))
            try harness.reply(from: 0, to: harness.id(1))
            #expect(harness.error(1) == nil, "fault \(fault)")
            // Each strikes somewhere else, as a soak's faults do.
            harness.registers(0)[.pc] = KernelTestELF.textAddress + 4 * UInt64(fault)
            harness.kernel.fault(0, cause: .storePageFault, address: 0)
            #expect(harness.state(0) == .runnable, "fault \(fault): not held, not given up")
            #expect(harness.task(0).rapidRestarts == 0)
            harness.tick(by: 1_000)
            harness.recover(0, pages: 2)
            harness.receive(0)
        }
        // Answering nobody, the next restarts count again.
        for _ in 0..<TestKernel.restartsBeforeBackoff { harness.kernel.fault(0, cause: .storePageFault, address: 0) }
        #expect(harness.task(0).rapidRestarts == TestKernel.restartsBeforeBackoff)
    }

    /// A server that fails at the same instruction every time, answering one request
    /// per incarnation (the one a fresh incarnation takes through `receive`) and dying
    /// on the next, whichever client sent it, is failing at the step every request
    /// takes: held back, then given up, as one that answers nobody is.
    @Test func aServerDyingAtTheSameStepAfterOneAnswerIsGivenUp() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        try harness.spawn(Program.client)  // 2
        try harness.call(1, harness.id(0))
        try harness.call(2, harness.id(0))
        var faults = 0
        var sites: [UInt] = []
        while harness.state(0) != .failed && faults <= 4 * TestKernel.restartsBeforeGivingUp {
            if harness.state(0) == .held { harness.tick(by: harness.task(0).heldUntil - harness.clock) }
            harness.recover(0, pages: 2)
            harness.receive(0)
            harness.syscall(0, .replyAndReceive, harness.result(0, 1), 0, 0, 0, UInt(ProcessLayout.heap), 0, 0x1000)
            sites.append(harness.result(0, 1))
            for client in [1, 2] where harness.state(client) == .runnable { try harness.call(client, harness.id(0)) }
            harness.registers(0)[.pc] = KernelTestELF.textAddress + 0x40
            harness.kernel.fault(0, cause: .hang, address: 0)
            faults += 1
            harness.tick(by: 1_000)
        }
        #expect(Set(sites).count == 2, "the failure moves between the clients")
        #expect(harness.state(0) == .failed, "given up after \(faults) restarts")
        #expect(harness.error(1) == .serverFailed || harness.error(2) == .serverFailed, "its clients are told")
    }

    /// A client each of whose requests kills the server as soon as the server takes it
    /// through `replyAndReceive` (the request before it answered, after each restart)
    /// would be served one request per restart for ever: the third such failure in a
    /// row fails its request alone, and the server goes on.
    @Test func aClientWhoseRequestsKeepKillingTheServerFailsAlone() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        try harness.call(1, harness.id(0))
        for failure in 1...3 {
            harness.recover(0, pages: 2)
            harness.receive(0)
            #expect(harness.result(0, 1) == UInt(harness.id(1).rawValue), "failure \(failure)")
            // Answered; its next request comes through replyAndReceive and kills the server.
            harness.syscall(0, .replyAndReceive, harness.result(0, 1), 0, 0, 0, UInt(ProcessLayout.heap), 0, 0x1000)
            #expect(harness.error(1) == nil)
            try harness.call(1, harness.id(0))
            #expect(harness.task(0).windowClient == 1)
            harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
            harness.tick(by: 1_000)
        }
        #expect(harness.error(1) == .requestFailed, "its third request fails alone")
        #expect(harness.output.contains("crashed three times in a row on a request of one client"))
        #expect(harness.state(0) == .runnable && harness.task(0).streak == 0, "the server goes on")
    }

    /// One client whose every other request kills the server at the same step — an
    /// answered request, then the killing one — cannot get it given up for the others,
    /// however long it keeps at it: its own requests fail, and the server goes on.
    @Test func oneClientsRequestsCannotGetTheServerGivenUp() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        try harness.call(1, harness.id(0))
        var told = 0
        for round in 1...(4 * TestKernel.restartsBeforeGivingUp) {
            if harness.state(0) == .held { harness.tick(by: harness.task(0).heldUntil - harness.clock) }
            harness.recover(0, pages: 2)
            if harness.state(1) == .runnable {
                if harness.error(1) == .requestFailed { told += 1 }
                try harness.call(1, harness.id(0))
            }
            harness.receive(0)
            harness.syscall(0, .replyAndReceive, harness.result(0, 1), 0, 0, 0, UInt(ProcessLayout.heap), 0, 0x1000)
            if harness.state(1) == .runnable { try harness.call(1, harness.id(0)) }
            harness.registers(0)[.pc] = KernelTestELF.textAddress + 0x40
            harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
            #expect(harness.state(0) != .failed, "round \(round)")
            harness.tick(by: 1_000)
        }
        #expect(harness.task(0).rapidRestarts < TestKernel.restartsBeforeBackoff, "never even held back")
        #expect(told > 0, "its own requests failed")
    }

    /// Failures on one client's requests with other work between them are not a
    /// streak: a soak's faults land on whatever request is in hand.
    @Test func failuresOnOneClientWithWorkBetweenAreNotAStreak() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        for failure in 1...(2 * TestKernel.failuresBeforeClientFails) {
            harness.recover(0, pages: 2)
            for _ in 0..<3 {
                harness.receive(0)
                if harness.state(1) == .runnable { try harness.call(1, harness.id(0)) }
                try harness.reply(from: 0, to: harness.id(1))
                #expect(harness.error(1) == nil, "failure \(failure)")
            }
            harness.receive(0)
            try harness.call(1, harness.id(0))
            harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
            harness.tick(by: 1_000)
        }
        #expect(harness.task(0).streak == 1 && !harness.output.contains("three times in a row"))
    }

    @Test func aHeldServerKeepsItsClientsQueued() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        for _ in 0...TestKernel.restartsBeforeBackoff {
            harness.kernel.fault(0, cause: .storePageFault, address: 0)
            harness.tick(by: 10)
        }
        #expect(harness.state(0) == .held)
        try harness.call(1, harness.id(0))
        #expect(harness.error(1) == nil)
        #expect(harness.state(1) == .sending)
        harness.tick(by: harness.task(0).heldUntil - harness.clock)
        #expect(harness.state(0) == .runnable)
        harness.recover(0, pages: 2)
        harness.receive(0)
        #expect(harness.result(0, 1) == UInt(harness.id(1).rawValue))
        #expect(harness.result(0, 6) == 1)
    }

    @Test func aServerThatKeepsFailingIsGivenUp() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1: queued at fs at the last fault
        try harness.spawn(Program.client)  // 2: awaiting fs's reply at the last fault
        try harness.spawn(Program.disk)  // 3: an unrelated server
        try harness.spawn(Program.client)  // 4: disk's client
        try harness.spawn(Program.manager)  // 5
        // What is free once fs is gone, with the SSRs clients 1 and 2 are about to bind.
        let freeWithoutFS = harness.freeFrames + SSRLayout.serverPages - 2 * SSRLayout.fsPages

        var faults = 0
        while harness.state(0) != .failed && faults <= 20 {
            if harness.state(0) == .held { harness.tick(by: harness.task(0).heldUntil - harness.clock) }
            #expect(harness.state(0) == .runnable)
            if faults == TestKernel.restartsBeforeGivingUp {
                // The last incarnation takes a request before it fails.
                harness.recover(0, pages: 2)
                harness.receive(0)
                try harness.call(2, harness.id(0))
                #expect(harness.state(2) == .awaitingReply)
                try harness.call(1, harness.id(0))
                #expect(harness.state(1) == .sending)
            }
            harness.kernel.fault(0, cause: .storePageFault, address: 0)
            faults += 1
            harness.tick(by: 1_000)
        }
        #expect(faults == TestKernel.restartsBeforeGivingUp + 1)
        #expect(harness.state(0) == .failed)
        #expect(harness.output.contains("[kernel] gave up on fs: it kept failing"))
        #expect(harness.task(0).addressSpace == nil)

        for client in [1, 2] {
            #expect(harness.state(client) == .runnable)
            #expect(harness.error(client) == .serverFailed)
        }
        #expect(harness.task(0).sendersWaiting.isEmpty)
        #expect(harness.freeFrames == freeWithoutFS, "its memory is back")

        // Later calls and lookups fail the same way.
        try harness.call(1, harness.id(0))
        #expect(harness.error(1) == .serverFailed)
        let (name, length) = try harness.name("fs", in: 1)
        harness.syscall(1, .lookup, name, length)
        #expect(harness.error(1) == .serverFailed)
        let (diskName, diskLength) = try harness.name("disk", in: 1)
        harness.syscall(1, .lookup, diskName, diskLength)
        #expect(harness.error(1) == nil)
        #expect(harness.result(1, 1) == UInt(harness.id(3).rawValue))

        // Nobody else is affected.
        harness.recover(3, pages: 1)
        harness.receive(3)
        try harness.call(4, harness.id(3))
        #expect(harness.state(4) == .awaitingReply)
        try harness.reply(from: 3, to: harness.id(4), code: 1)
        #expect(harness.error(4) == nil)
        #expect(harness.result(4, 1) == 1)
        #expect(harness.state(5) == .runnable)
        #expect(harness.task(3).restarts == 0)

        // The failed slot is never handed out again.
        #expect(try harness.spawn(Program.client).index != 0)
    }

    @Test func aClientOfAFailedServerCanStillEnd() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        harness.recover(0, pages: 2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        try harness.reply(from: 0, to: harness.id(1))
        for _ in 0...TestKernel.restartsBeforeGivingUp {
            if harness.state(0) == .held { harness.tick(by: harness.task(0).heldUntil - harness.clock) }
            harness.kernel.fault(0, cause: .storePageFault, address: 0)
            harness.tick(by: 10)
        }
        #expect(harness.state(0) == .failed)
        harness.syscall(1, .exit, 0)
        #expect(harness.orphans().isEmpty, "no server left to clean up: freed at once")
        #expect(harness.freeFrames == harness.baselineFreeFrames)
    }

    // MARK: The watchdog

    @Test func theWatchdogRestartsAHungServer() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        harness.recover(0, pages: 2)
        harness.receive(0)
        try harness.call(1, harness.id(0))
        #expect(harness.state(0) == .runnable)
        #expect(harness.task(0).servingSince == harness.clock)

        harness.run(for: TestKernel.watchdogTicks)
        #expect(harness.task(0).generation == 0, "not yet: exactly the limit")
        harness.tick(by: 1)
        #expect(harness.task(0).generation == 1)
        #expect(harness.task(0).restarts == 1)
        #expect(harness.output.contains("stopped: hang (watchdog)"))
        #expect(harness.state(1) == .sending)
        #expect(harness.binding(of: 1, to: Program.fs)?.state == .suspect)
        #expect(harness.task(0).servingSince == harness.clock, "watched from its first instruction")

        // A restarted server must reach receive (through recovery) as promptly as it
        // answers a request; one that never does is hung too.
        harness.run(for: 10 * TestKernel.watchdogTicks)
        #expect(harness.task(0).generation >= 2, "restarted again (and again: it never reaches receive)")
    }

    /// A more urgent server hangs while fs holds a request: fs never gets the processor,
    /// so it has not hung, however long its client waits (it used to be restarted too:
    /// the watchdog counted the time since the request came).
    @Test func theWatchdogSparesAServerKeptFromTheProcessorByAHungOne() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.urgent)  // 1
        try harness.spawn(Program.client)  // 2
        try harness.spawn(Program.client)  // 3
        harness.recover(0, pages: 2)
        harness.recover(1, pages: 1)
        harness.receive(0)
        harness.receive(1)
        try harness.call(2, harness.id(0))
        try harness.call(3, harness.id(1))
        #expect(harness.state(0) == .runnable && harness.state(1) == .runnable)
        for _ in 0..<8 { harness.tick(by: TestKernel.timeSlice) }
        #expect(harness.task(1).restarts == 1, "urgent ran all along: hung")
        #expect(harness.task(0).restarts == 0, "fs never ran: not hung")
        #expect(harness.task(0).servedTicks == 0)
    }

    @Test func theWatchdogSparesServersThatWait() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.disk)  // 1
        try harness.spawn(Program.client)  // 2
        harness.recover(0, pages: 2)
        harness.recover(1, pages: 1)

        // Blocked in receive.
        harness.receive(0)
        harness.receive(1)
        harness.run(for: 3 * TestKernel.watchdogTicks)
        #expect(harness.task(0).generation == 0)
        #expect(harness.task(1).generation == 0)

        // Awaiting another server's reply while holding a request.
        try harness.call(2, harness.id(0))
        #expect(harness.state(0) == .runnable)
        try harness.call(0, harness.id(1))
        #expect(harness.state(0) == .awaitingReply)
        harness.run(for: 3 * TestKernel.watchdogTicks)
        #expect(harness.task(0).generation == 0, "fs waits for disk")
        #expect(harness.task(1).generation >= 1, "disk held fs's request while runnable: hung")

        // An ordinary server is never the watchdog's business.
        try harness.spawn(Program.plain)  // 3
        harness.receive(3)
        let client = try harness.spawn(Program.client)
        try harness.call(client.index, harness.id(3))
        harness.run(for: 3 * TestKernel.watchdogTicks)
        #expect(harness.task(3).generation == 0)
        #expect(harness.state(3) == .runnable)
    }

    /// A server with a reply limit that goes back to receiving while a client still
    /// awaits its reply has lost the request (a fault that did not stop it): once the
    /// client has waited past the limit, the server is restarted and the request
    /// delivered again. Without a limit, waiting is the server's business.
    @Test func aServerThatForgetsARequestIsRestartedAtItsReplyLimit() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        let limited = try harness.spawn(Program.limited).index  // 1
        try harness.spawn(Program.client)  // 2
        try harness.spawn(Program.client)  // 3
        harness.recover(0, pages: 2)
        harness.recover(limited, pages: 1)
        let limit = 20 * TestKernel.ticksPerMillisecond

        harness.receive(limited)
        try harness.call(2, harness.id(limited))
        harness.receive(limited)  // holds client 2's request, as a deferred one, and waits
        #expect(harness.state(2) == .awaitingReply && harness.state(limited) == .receiving)
        harness.tick(by: limit)
        #expect(harness.task(limited).generation == 0, "within the limit (first seen at the first tick)")
        harness.tick(by: limit)
        #expect(harness.task(limited).generation == 0, "exactly the limit")
        harness.tick(by: 1)
        #expect(harness.task(limited).generation == 1, "past the limit: restarted")
        #expect(harness.output.contains("limited (pid \(limited), gen 0) stopped: hang"))
        #expect(harness.state(2) == .sending, "the request goes to the new instance")

        // A server without a limit may hold a request for as long as it likes.
        harness.receive(0)
        try harness.call(3, harness.id(0))
        harness.receive(0)
        harness.tick(by: 100 * limit)
        #expect(harness.task(0).generation == 0)
        #expect(harness.state(3) == .awaitingReply)
    }

    /// A server that promised a held client its reply by some time (`promiseReply`, as
    /// the timer does for every wait it holds) and then sits idle in `receive` past it,
    /// the client still waiting, has forgotten the request: a fault that left it
    /// running (a timer soak found code mutations in its scan for due waits that did
    /// this, and the clients waited for ever). It is restarted and the request
    /// delivered again, with the promise gone; a server that is busy when its promise
    /// falls due is not judged by it.
    @Test func aServerIdlePastItsPromisedReplyIsRestarted() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.client)  // 1
        try harness.spawn(Program.client)  // 2
        try harness.spawn(Program.plain)  // 3
        harness.recover(0, pages: 2)
        let grace = 10 * TestKernel.ticksPerMillisecond

        // Refused: a client not waiting for the caller, and a server that cannot be restarted.
        harness.syscall(0, .promiseReply, UInt(harness.id(1).rawValue), UInt(harness.clock + 1))
        #expect(harness.error(0) == .notWaitingForReply)
        harness.receive(3)
        try harness.call(2, harness.id(3))
        harness.syscall(3, .promiseReply, UInt(harness.id(2).rawValue), UInt(harness.clock + 1))
        #expect(harness.error(3) == .notPermitted)

        harness.receive(0)
        try harness.call(1, harness.id(0))
        let promise = harness.clock + 5 * TestKernel.timeSlice
        harness.syscall(0, .promiseReply, UInt(harness.id(1).rawValue), UInt(promise))
        #expect(harness.error(0) == nil)
        #expect(harness.task(1).replyPromisedBy == promise)

        // Busy past the promise: not judged by it (the watchdog's business).
        harness.tick(by: promise + 2 * grace - harness.clock)
        #expect(harness.task(0).generation == 0 && harness.state(0) == .runnable)

        // Idle, the client still waiting: within the grace; past it at one clock
        // interrupt (the server's chance to answer may be just now); at a second.
        harness.receive(0)
        #expect(harness.state(0) == .receiving && harness.state(1) == .awaitingReply)
        harness.clock = promise
        harness.tick(by: grace)
        #expect(harness.task(0).generation == 0, "within the grace")
        harness.tick(by: 1)
        #expect(harness.task(0).generation == 0, "idle past it once")
        harness.tick(by: TestKernel.timeSlice)
        #expect(harness.task(0).generation == 1, "forgot the request: restarted")
        #expect(harness.output.contains("fs (pid 0, gen 0) stopped: held request forgotten"))
        #expect(harness.state(1) == .sending, "the request goes to the new instance")
        #expect(harness.task(1).replyPromisedBy == 0)

        // Delivered again, the old promise is not held against the new instance.
        harness.recover(0, pages: 2)
        harness.receive(0)
        #expect(harness.state(1) == .awaitingReply && harness.task(1).replyPromisedBy == 0)
        harness.receive(0)
        harness.tick(by: 100 * grace)
        #expect(harness.task(0).generation == 1)

        // A server woken at every interrupt by a timer it keeps setting in the past,
        // answering nobody, is idle again at the next: forgetful too (a code fault
        // that read the clock as 0 did this).
        harness.syscall(0, .promiseReply, UInt(harness.id(1).rawValue), UInt(harness.clock))
        harness.syscall(0, .setTimer, UInt(harness.clock + grace), 1)
        harness.receive(0, mask: 1)
        harness.tick(by: 2 * grace)
        #expect(harness.task(0).generation == 1, "idle past the promise once")
        #expect(harness.state(0) == .runnable, "woken by its timer in the same interrupt")
        harness.syscall(0, .setTimer, UInt(harness.clock), 1)
        harness.receive(0, mask: 1)
        #expect(harness.state(0) == .receiving)
        harness.tick(by: TestKernel.timeSlice)
        #expect(harness.task(0).generation == 2, "had its chance, answered nobody: restarted")

        // One that never even blocks — its timer fires again before it is back in
        // `receive`, so every receive returns at once — has had its chances too (a
        // code fault that read the clock as 0 and re-armed a deadline long past).
        harness.recover(0, pages: 2)
        harness.receive(0, mask: 1)
        #expect(harness.state(1) == .awaitingReply)
        harness.syscall(0, .promiseReply, UInt(harness.id(1).rawValue), UInt(harness.clock))
        var interrupts = 0
        while harness.task(0).generation == 2 && interrupts < 5 {
            harness.syscall(0, .setTimer, UInt(harness.clock), 1)
            harness.tick(by: 2 * grace)
            interrupts += 1
            guard harness.task(0).generation == 2 else { break }
            harness.receive(0, mask: 1)
            #expect(harness.state(0) == .runnable, "the notification was pending: no blocking")
        }
        #expect(harness.task(0).generation == 3, "spinning, answering nobody: restarted")
        #expect(interrupts == 3, "the first interrupt finds no chance had, the next two do")
    }

    /// A server whose description says `promises` (the timer) holds no request without
    /// a promise: idle with one held unpromised, at two clock interrupts, it forgot it
    /// (a soak's code fault deleted the timer's promise call, and a second fault then
    /// stranded every waiting client). Answering at once, or promising, is fine.
    @Test func aServerThatMustPromiseIsRestartedForAnUnpromisedHeldRequest() throws {
        let harness = try KernelHarness.ssr()
        let server = try harness.spawn(Program.promising).index  // 0
        try harness.spawn(Program.client)  // 1
        harness.recover(server, pages: 1)

        harness.receive(server)
        try harness.call(1, harness.id(server))
        harness.syscall(server, .promiseReply, UInt(harness.id(1).rawValue), UInt(harness.clock + 1_000_000))
        harness.receive(server)
        harness.run(for: 10 * TestKernel.timeSlice)
        #expect(harness.task(server).generation == 0, "held with a promise not yet due")
        try harness.reply(from: server, to: harness.id(1))

        try harness.call(1, harness.id(server))
        harness.receive(server)
        #expect(harness.state(1) == .awaitingReply && harness.state(server) == .receiving)
        harness.tick(by: TestKernel.timeSlice)
        #expect(harness.task(server).generation == 0, "one interrupt: its chance may be now")
        harness.tick(by: TestKernel.timeSlice)
        #expect(harness.task(server).generation == 1, "held unpromised: restarted")
        #expect(harness.output.contains("promising (pid 0, gen 0) stopped: held request forgotten"))
        #expect(harness.state(1) == .sending, "the request goes to the new instance")
    }

    /// Time spent waiting on another server is not time hung: when the answer comes,
    /// the server has a full watchdog period again.
    @Test func theWatchdogCountsOnlyRunnableTime() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)  // 0
        try harness.spawn(Program.disk)  // 1
        try harness.spawn(Program.client)  // 2
        harness.recover(0, pages: 2)
        harness.recover(1, pages: 1)
        harness.receive(0)
        try harness.call(2, harness.id(0))
        try harness.call(0, harness.id(1))  // fs calls disk, which is not receiving yet
        #expect(harness.state(0) == .sending)
        harness.run(for: 2 * TestKernel.watchdogTicks)
        harness.receive(1)
        try harness.reply(from: 1, to: harness.id(0))
        #expect(harness.state(0) == .runnable)
        harness.tick(by: 1_000)
        #expect(harness.task(0).generation == 0, "fs has been runnable for 1000 ticks only")
    }

    /// The clock tick reads the time once, then posts timer notifications, which note
    /// work a moment later: a server woken that way is not "hung" by a wrapped subtraction.
    @Test func workNotedAfterTheTickBeganIsNotAHang() throws {
        let harness = try KernelHarness.ssr()
        try harness.spawn(SSRProgram.fs)
        harness.kernel.reschedule()
        let server = harness.kernel.current!
        harness.receive(server, mask: 1)
        let tickStart = harness.clock
        harness.tick(by: 5)
        harness.kernel.notify(server, bits: 1)
        harness.kernel.superviseServers(now: tickStart)
        #expect(harness.task(server).generation == 0)
    }
}
