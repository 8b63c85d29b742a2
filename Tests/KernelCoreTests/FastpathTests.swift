// Tests of the IPC fastpath (Kernel+Fastpath.swift) against its definition, the slow
// path: two kernels built alike take the same system calls, one through
// `fastpath(from:)` (falling back to `syscall(from:)` when it declines), the other
// through `syscall(from:)` alone, and must end in the same state — every register of
// every process, every task field the IPC path touches, the ready queues and the
// scheduler's choice. A declined call must leave the kernel untouched.
import CurioABI
import Testing
@testable import KernelCore

/// What the IPC path and the scheduler can change, for comparing two kernels.
private struct Observation: Equatable {
    struct TaskView: Equatable {
        var state: TaskState
        var generation: UInt16
        var partner: Int
        var registers: [UInt64]
        var sendersWaiting: SlotSet
        var notificationsPending: UInt
        var receiveMask: UInt
        var servingSince: UInt64
        var servedTicks: UInt64
        var awaitingReplySince: UInt64
        var replyPromisedBy: UInt64
        var promiseOverdueTicks: UInt8
        var receiveCount: UInt32
        var repliedSinceRestart: Bool
        var repliedSincePoison: Bool
        var checkedReceiveBuffer: [UInt64]
        /// As a client: each binding's request ids and state, and the one in use.
        var bindings: [[UInt64]]
        var requestBinding: Int
        /// As an SSR server: the window — whose SSR, and its page-table entries.
        var window: [Int]
        var windowEntries: [UInt64]
        var recentWindows: [UInt64]
    }

    var tasks: [TaskView]
    var current: Int?
    var ready: [[Bool]]
    var lastRunAtLevel: [Int]
    var preemptedAtLevel: [Int]
    var sliceEnds: UInt64
    var pageFlushes: [UInt64]

    init(_ harness: KernelHarness, slots: Int) {
        tasks = (0..<slots).map { slot in
            let task = harness.task(slot)
            return TaskView(state: task.state, generation: task.generation, partner: task.partner,
                            registers: harness.snapshot(slot), sendersWaiting: task.sendersWaiting,
                            notificationsPending: task.notificationsPending, receiveMask: task.receiveMask,
                            servingSince: task.servingSince, servedTicks: task.servedTicks,
                            awaitingReplySince: task.awaitingReplySince, replyPromisedBy: task.replyPromisedBy,
                            promiseOverdueTicks: task.promiseOverdueTicks, receiveCount: task.receiveCount,
                            repliedSinceRestart: task.repliedSinceRestart,
                            repliedSincePoison: task.repliedSincePoison,
                            checkedReceiveBuffer: [task.checkedReceiveAddress, task.checkedReceiveCount],
                            bindings: (0..<SSRTable.bindingsPerTask).map { index in
                                let binding = task.bindings[index]
                                return [UInt64(bitPattern: Int64(binding.serverProgram)), binding.lastIssuedRequest,
                                        binding.lastCompletedRequest, UInt64(binding.state.rawValue)]
                            },
                            requestBinding: task.requestBinding,
                            window: [task.windowClient, task.windowBinding, task.windowPages, task.windowOrphan,
                                     task.recentCursor],
                            windowEntries: task.windowEntries == 0 ? [] : (0..<SSRWindow.maxPages).map { page in
                                harness.ram.pointer(to: PhysicalAddress(task.windowEntries + UInt64(page * 8)))
                                    .load(as: UInt64.self)
                            },
                            recentWindows: (0..<SSRTable.recentWindows).map { task.recentWindows[$0] })
        }
        pageFlushes = harness.kernel.platform.pageFlushes.map { $0.address << 16 | UInt64($0.asid) }
        current = harness.kernel.current
        ready = (0..<ReadyQueues.priorities).map { level in
            (0..<slots).map { harness.kernel.ready.contains(slot: $0, priority: UInt8(level)) }
        }
        lastRunAtLevel = (0..<8).map { harness.kernel.lastRunAtLevel[$0] }
        preemptedAtLevel = (0..<8).map { harness.kernel.preemptedAtLevel[$0] }
        sliceEnds = harness.kernel.sliceEnds
    }
}

/// A deterministic generator (tests must repeat).
private struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

@Suite struct FastpathTests {
    typealias Program = StandardProgram

    /// Slot 0 server (priority 3, restartable), 1 client (4), 2 urgent (1), 3 lazy (6),
    /// 4 peer (4), 5 a second client (4), 6 an SSR server (3), 7 the manager (2).
    private static let programs: [KernelTestProgram] = {
        var programs = KernelTestProgram.standard
        programs[Program.server].restartable = true
        programs[Program.client].sends.append("ssrserver")
        programs[Program.lazy].sends.append("client")
        programs.append(KernelTestProgram(name: "ssrserver", priority: 3, restartable: true, ssrPages: 1))
        return programs
    }()
    private static let slots = 8

    /// Every process but the server and the client starts blocked in `receive`,
    /// woken by notification bit 1; the SSR server starts out of recovery.
    private func world() throws -> KernelHarness {
        let harness = try KernelHarness(programs: Self.programs)
        for program in [Program.server, Program.client, Program.urgent, Program.lazy, Program.peer, Program.client,
                        Self.programs.count - 1, Program.manager] {
            try harness.spawn(program)
        }
        // The SSR server has nothing to recover (no client is bound yet).
        harness.kernel.tasks[6].recovering = false
        for slot in 2..<Self.slots {
            run(slot, in: harness)
            harness.receive(slot, capacity: 0, mask: 1)
        }
        return harness
    }

    /// Runs the call loaded in `slot`'s registers through the fastpath or, if it
    /// declines, the slow path; returns whether the fastpath took it.
    @discardableResult
    private func enter(_ harness: KernelHarness, from slot: Int) -> Bool {
        if harness.kernel.fastpath(from: slot) != nil { return true }
        harness.kernel.syscall(from: slot)
        return false
    }

    /// Makes `slot` the running process, as a trap from it would find the kernel.
    private func run(_ slot: Int, in harness: KernelHarness, sliceLeft: UInt64 = 50_000) {
        harness.kernel.current = slot
        harness.kernel.sliceEnds = harness.kernel.platform.clock &+ sliceLeft
    }

    /// Both kernels at the same point: one takes `load`'s call through the fastpath,
    /// the other through the slow path; they must agree. Returns whether the fastpath
    /// took the call.
    @discardableResult
    private func agree(_ fast: KernelHarness, _ slow: KernelHarness, from slot: Int,
                       sourceLocation: SourceLocation = #_sourceLocation,
                       _ load: (KernelHarness) -> Void) -> Bool {
        load(fast)
        load(slow)
        let before = Observation(fast, slots: Self.slots)
        let taken = fast.kernel.fastpath(from: slot) != nil
        if !taken {
            #expect(Observation(fast, slots: Self.slots) == before, "a declined call changed nothing",
                    sourceLocation: sourceLocation)
            fast.kernel.syscall(from: slot)
        }
        slow.kernel.syscall(from: slot)
        #expect(Observation(fast, slots: Self.slots) == Observation(slow, slots: Self.slots),
                sourceLocation: sourceLocation)
        return taken
    }

    private func twoWorlds() throws -> (KernelHarness, KernelHarness) {
        (try world(), try world())
    }

    /// A server in slot 0 waiting in `receive`, the client in slot 1 running.
    private func serverWaiting() throws -> (KernelHarness, KernelHarness) {
        let (fast, slow) = try twoWorlds()
        for harness in [fast, slow] {
            run(0, in: harness)
            harness.receive(0, capacity: 0x1000)
            run(1, in: harness)
        }
        return (fast, slow)
    }

    // MARK: The cases it takes

    @Test func aRegisterOnlyCallToAWaitingServerGoesStraightToIt() throws {
        let (fast, slow) = try serverWaiting()
        let taken = agree(fast, slow, from: 1) { harness in
            harness.loadArguments(1, rawNumber: UInt64(Syscall.send.rawValue),
                                  [EndpointCall(endpoint: harness.id(0), operation: 9).rawValue, 11, 22, 0, 0, 0, 0])
        }
        #expect(taken)
        #expect(fast.kernel.current == 0)
        #expect(fast.result(0, 2) == 9)
        #expect(fast.result(0, 3) == 11)
        #expect(fast.state(1) == .awaitingReply)
    }

    @Test func aRegisterOnlyReplyAndReceiveGoesStraightBackToTheClient() throws {
        let (fast, slow) = try serverWaiting()
        for harness in [fast, slow] {
            harness.syscall(1, .send, EndpointCall(endpoint: harness.id(0), operation: 1).rawValue, 5, 6)
            #expect(harness.kernel.current == 0)
        }
        let taken = agree(fast, slow, from: 0) { harness in
            harness.loadArguments(0, rawNumber: UInt64(Syscall.replyAndReceive.rawValue),
                                  [UInt(harness.id(1).rawValue), 77, 8, 9, UInt(ProcessLayout.heap), 0, 0x1000])
        }
        #expect(taken, "the receive buffer was checked by the slow path's receive")
        #expect(fast.kernel.current == 1)
        #expect(fast.result(1, 1) == 77)
        #expect(fast.state(0) == .receiving)
    }

    @Test func whoAmIAndTheClockAreAnsweredInPlace() throws {
        let (fast, slow) = try serverWaiting()
        for harness in [fast, slow] { harness.kernel.platform.clock = 12_345 }
        for number in [Syscall.whoAmI, .clock] {
            run(1, in: fast)
            run(1, in: slow)
            let taken = agree(fast, slow, from: 1) { harness in
                harness.loadArguments(1, rawNumber: UInt64(number.rawValue), [])
            }
            #expect(taken)
        }
        #expect(fast.result(1, 1) == 12_345)
    }

    // MARK: The cases it declines

    private func send(_ harness: KernelHarness, to slot: Int, generation: UInt16? = nil, payload: UInt = 0,
                      replyCapacity: UInt = 0) {
        let endpoint = TaskID(index: slot, generation: generation ?? harness.id(slot).generation)
        harness.loadArguments(1, rawNumber: UInt64(Syscall.send.rawValue),
                              [EndpointCall(endpoint: endpoint, operation: 2).rawValue, 1, 2,
                               UInt(ProcessLayout.heap), payload, UInt(ProcessLayout.heap + 0x1000), replyCapacity])
    }

    @Test func aPayloadOrAReplyBufferTakesTheSlowPath() throws {
        var (fast, slow) = try serverWaiting()
        #expect(!agree(fast, slow, from: 1) { send($0, to: 0, payload: 16) })
        (fast, slow) = try serverWaiting()
        #expect(!agree(fast, slow, from: 1) { send($0, to: 0, replyCapacity: 64) })
    }

    @Test func aStaleOrForbiddenOrBusyEndpointTakesTheSlowPath() throws {
        var (fast, slow) = try serverWaiting()
        #expect(!agree(fast, slow, from: 1) { send($0, to: 0, generation: 9) }, "stale generation")
        (fast, slow) = try serverWaiting()
        #expect(!agree(fast, slow, from: 1) { send($0, to: 4) }, "peer: not in client's send list")
        (fast, slow) = try serverWaiting()
        #expect(!agree(fast, slow, from: 1) { harness in
            harness.kernel.notify(3, bits: 1)
            send(harness, to: 3)
        }, "lazy is running, not receiving")
        (fast, slow) = try serverWaiting()
        #expect(!agree(fast, slow, from: 1) { send($0, to: 1) }, "itself")
        (fast, slow) = try serverWaiting()
        #expect(!agree(fast, slow, from: 1) { send($0, to: 400, generation: 0) }, "no such slot (the generation given: slot 400 is past the table)")
    }

    /// The client (slot 1) calls the SSR server (slot 6), which is waiting, as is the
    /// plain server.
    private func ssrServerWaiting() throws -> (KernelHarness, KernelHarness) {
        let (fast, slow) = try twoWorlds()
        for harness in [fast, slow] {
            run(0, in: harness)
            harness.receive(0, capacity: 0x1000)
            run(6, in: harness)
            harness.receive(6, capacity: 0x1000)
            run(1, in: harness)
        }
        return (fast, slow)
    }

    private func replyAndReceive(_ harness: KernelHarness, by server: Int, to client: Int, code: UInt = 5,
                                 seal: UInt64 = 0) {
        harness.loadArguments(server, rawNumber: UInt64(Syscall.replyAndReceive.rawValue),
                              [UInt(harness.id(client).rawValue), code, 7, 8, UInt(ProcessLayout.heap), 0, 0x1000])
        harness.registers(server)[.t0] = seal
    }

    @Test func anSSRRequestMapsTheWindowAndItsReplyUnmapsIt() throws {
        let (fast, slow) = try ssrServerWaiting()
        // The first call binds (allocates the SSR): the slow path's.
        #expect(!agree(fast, slow, from: 1) { send($0, to: 6) })
        #expect(agree(fast, slow, from: 6) { replyAndReceive($0, by: 6, to: 1) }, "an unsealed reply")
        // From then on both ways are fast: request id, window, seal.
        for harness in [fast, slow] { run(1, in: harness) }
        #expect(agree(fast, slow, from: 1) { send($0, to: 6) })
        #expect(fast.task(6).windowClient == 1)
        #expect(fast.result(6, 6) == 2, "the second request id")
        let seal = RequestSeal.value(sender: fast.id(1).rawValue, operation: 5, word0: 7, word1: 8, length: 0,
                                     requestID: 2)
        #expect(agree(fast, slow, from: 6) { replyAndReceive($0, by: 6, to: 1, seal: seal) }, "a right seal")
        #expect(fast.task(6).windowClient == -1)
        #expect(fast.task(1).bindings[0].lastCompletedRequest == 2)
        // A broken seal is refused by the slow path, the client left waiting.
        for harness in [fast, slow] { run(1, in: harness) }
        #expect(agree(fast, slow, from: 1) { send($0, to: 6) })
        #expect(!agree(fast, slow, from: 6) { replyAndReceive($0, by: 6, to: 1, seal: seal) })
        #expect(fast.error(6) == .replySealBroken)
        #expect(fast.state(1) == .awaitingReply)
    }

    @Test func aLostSSROrAnArmedFaultTakesTheSlowPath() throws {
        var (fast, slow) = try ssrServerWaiting()
        #expect(!agree(fast, slow, from: 1) { send($0, to: 6) })
        #expect(agree(fast, slow, from: 6) { replyAndReceive($0, by: 6, to: 1) })
        for harness in [fast, slow] {
            run(1, in: harness)
            harness.kernel.tasks[1].bindings[0].state = .lost
        }
        #expect(!agree(fast, slow, from: 1) { send($0, to: 6) }, "a lost SSR is reset, or reported, by bind")
        (fast, slow) = try serverWaiting()
        for harness in [fast, slow] {
            var injection = PendingInjection()
            injection.kind = .illegalInstruction
            injection.trigger = .nextRequest
            injection.countdown = 1
            harness.kernel.tasks[0].injection = injection
        }
        #expect(!agree(fast, slow, from: 1) { send($0, to: 0) }, "a fault armed for delivery")
    }

    @Test func aSchedulingChoiceThatIsNotTheObviousOneTakesTheSlowPath() throws {
        // Peer (4) ready at the client's priority: a reply to the client would be a tie.
        var (fast, slow) = try serverWaiting()
        for harness in [fast, slow] {
            harness.syscall(1, .send, EndpointCall(endpoint: harness.id(0), operation: 1).rawValue)
            run(0, in: harness)
        }
        #expect(!agree(fast, slow, from: 0) { harness in
            harness.kernel.notify(4, bits: 1)
            harness.loadArguments(0, rawNumber: UInt64(Syscall.replyAndReceive.rawValue),
                                  [UInt(harness.id(1).rawValue), 0, 0, 0, 0, 0, 0])
        })
        #expect(fast.state(4) == .runnable)
        // Urgent (1) ready: the server (3) would not run.
        (fast, slow) = try serverWaiting()
        #expect(!agree(fast, slow, from: 1) { harness in
            harness.kernel.notify(2, bits: 1)
            send(harness, to: 0)
        })
        #expect(fast.kernel.current == 2)
        // The server owed the rest of a slice it lost to a more urgent process.
        (fast, slow) = try serverWaiting()
        #expect(!agree(fast, slow, from: 1) { harness in
            harness.kernel.preemptedAtLevel[3] = 0
            send(harness, to: 0)
        })
    }

    @Test func anUncheckedBufferANotificationOrAWaitingSenderTakesTheSlowPath() throws {
        func serving() throws -> (KernelHarness, KernelHarness) {
            let (fast, slow) = try serverWaiting()
            for harness in [fast, slow] {
                harness.syscall(1, .send, EndpointCall(endpoint: harness.id(0), operation: 1).rawValue)
            }
            return (fast, slow)
        }
        func replyAndReceive(_ harness: KernelHarness, buffer: UInt64 = ProcessLayout.heap, capacity: UInt = 0x1000,
                             mask: UInt = 0) {
            harness.loadArguments(0, rawNumber: UInt64(Syscall.replyAndReceive.rawValue),
                                  [UInt(harness.id(1).rawValue), mask << 32, 0, 0, UInt(buffer), 0, capacity])
        }
        var (fast, slow) = try serving()
        #expect(agree(fast, slow, from: 0) { replyAndReceive($0) }, "the checked buffer, nothing waiting")
        (fast, slow) = try serving()
        #expect(!agree(fast, slow, from: 0) { replyAndReceive($0, buffer: ProcessLayout.heap + 0x800) })
        (fast, slow) = try serving()
        #expect(!agree(fast, slow, from: 0) { replyAndReceive($0, capacity: 0x800) })
        (fast, slow) = try serving()
        for harness in [fast, slow] { harness.kernel.notify(0, bits: 4) }
        #expect(!agree(fast, slow, from: 0) { replyAndReceive($0, mask: 4) }, "a notification pending")
        (fast, slow) = try serving()
        for harness in [fast, slow] {
            harness.kernel.notify(5, bits: 1)
            run(5, in: harness)
            harness.syscall(5, .send, EndpointCall(endpoint: harness.id(0), operation: 1).rawValue)
            run(0, in: harness)
        }
        #expect(!agree(fast, slow, from: 0) { replyAndReceive($0) }, "a sender waiting")
    }

    @Test func aRememberedBufferIsForgottenWithTheAddressSpace() throws {
        let harness = try world()
        run(0, in: harness)
        harness.receive(0, capacity: 0x1000)
        #expect(harness.task(0).checkedReceiveCount == 0x1000)
        harness.kernel.tasks[0].addressSpace = harness.task(0).addressSpace
        #expect(harness.task(0).checkedReceiveCount == 0)
        // A buffer over the SSR window is never remembered: its mappings come and go.
        harness.kernel.rememberCheckedReceiveBuffer(UserBuffer(address: VirtualAddress(UInt64(SSRWindow.base)),
                                                               count: 16), of: 0)
        #expect(harness.task(0).checkedReceiveCount == 0)
    }

    @Test func theTaskRecordKeepsASizeTheCompilerAligns() {
        #expect(MemoryLayout<KernelCore.Task>.size % 8 == 0)
        #expect(MemoryLayout<KernelCore.Task>.size == MemoryLayout<KernelCore.Task>.stride)
    }

    // MARK: Random traffic

    /// Random calls from whichever process the scheduler runs — sends with and without
    /// payloads to waiting, busy, stale and forbidden endpoints, replies to right and
    /// wrong clients with checked and unchecked buffers and right, wrong and no seals,
    /// notifications, the clock moving and slices running out — through both kernels,
    /// compared after every call. `focused`: only the two servers and the two clients
    /// take part, so that the SSR server's paths are taken often.
    @Test(arguments: [(1, false), (2, false), (3, true), (4, true)])
    func randomTrafficEndsTheSameEitherWay(seed: UInt64, focused: Bool) throws {
        var (fast, slow) = try twoWorlds()
        var random = SplitMix(state: seed)
        let cast = focused ? [0, 1, 5, 6] : Array(0..<Self.slots)
        var taken = 0
        var ssrTaken = 0
        for _ in 0..<3_000 {
            // The trap comes from the process the scheduler chose, as on the machine;
            // with nobody running, a notification wakes a random receiver.
            guard let slot = fast.kernel.current else {
                let receivers = cast.filter { fast.state($0) == .receiving && fast.task($0).receiveMask != 0 }
                guard !receivers.isEmpty else {
                    // Nobody can be woken (a cycle of senders, say): begin again.
                    (fast, slow) = try twoWorlds()
                    continue
                }
                let woken = receivers[random.below(receivers.count)]
                let bit = fast.task(woken).receiveMask & (0 &- fast.task(woken).receiveMask)
                for harness in [fast, slow] {
                    harness.kernel.notify(woken, bits: bit)
                    harness.kernel.reschedule()
                }
                continue
            }
            let advance = UInt64(random.below(3)) * 40_000
            for harness in [fast, slow] { harness.kernel.platform.clock &+= advance }
            if random.below(10) == 0 {
                let target = cast[random.below(cast.count)]
                let bits = UInt(1) << UInt(random.below(3))
                for harness in [fast, slow] { harness.kernel.notify(target, bits: bits) }
            }
            // Mostly what a real system does: servers (0 and 6) answer, the others call
            // them; now and then anything calls anything.
            let isServer = slot == 0 || slot == 6
            let choice = isServer && random.below(8) != 0 ? [2, 3, 4][random.below(3)] : random.below(5)
            let waiting = (0..<Self.slots).filter { fast.state($0) == .awaitingReply && fast.task($0).partner == slot }
            var target = random.below(8) == 0 && !focused ? random.below(Self.slots) : [0, 6][random.below(2)]
            if choice == 2, !waiting.isEmpty, random.below(4) != 0 { target = waiting[random.below(waiting.count)] }
            let generationSlip = random.below(12) == 0 ? UInt16(1) : 0
            let capacity: UInt = [0, 0x1000, 0x800][random.below(3)]
            let words = (UInt(random.below(1000)), UInt(random.below(1000)))
            let payload: UInt = random.below(4) == 0 ? 8 : 0
            let replyCapacity: UInt = random.below(4) == 0 ? 64 : 0
            // (Focused: always wakeable, so that the few processes rarely all wait.)
            let mask = focused ? UInt(1 + random.below(3)) : UInt(random.below(4))
            let trivial = random.below(2) == 0 ? Syscall.whoAmI : .clock
            // A reply's seal: none, right (over the request in flight) or wrong.
            let sealKind = random.below(8)
            let load: (KernelHarness) -> Void = { harness in
                let id = TaskID(index: target, generation: harness.id(target).generation &+ generationSlip)
                switch choice {
                case 0, 1:
                    harness.loadArguments(slot, rawNumber: UInt64(Syscall.send.rawValue),
                                          [EndpointCall(endpoint: id, operation: 3).rawValue, words.0, words.1,
                                           UInt(ProcessLayout.heap), payload, UInt(ProcessLayout.heap + 0x1000),
                                           replyCapacity])
                case 2:
                    harness.loadArguments(slot, rawNumber: UInt64(Syscall.replyAndReceive.rawValue),
                                          [UInt(id.rawValue), UInt(words.0) | mask << 32, words.0, words.1,
                                           UInt(ProcessLayout.heap), 0, capacity])
                    let program = harness.task(slot).program
                    let request = (0..<SSRTable.bindingsPerTask).map { harness.task(target).bindings[$0] }
                        .first { $0.serverProgram == program && $0.state != .orphaned }?.lastIssuedRequest ?? 0
                    let seal = RequestSeal.value(sender: id.rawValue, operation: words.0, word0: words.0,
                                                 word1: words.1, length: 0, requestID: request)
                    harness.registers(slot)[.t0] = sealKind < 4 ? 0 : sealKind < 7 ? seal : seal ^ 1
                case 3:
                    harness.loadArguments(slot, rawNumber: UInt64(Syscall.receive.rawValue),
                                          [UInt(ProcessLayout.heap), capacity, mask])
                default:
                    harness.loadArguments(slot, rawNumber: UInt64(trivial.rawValue), [])
                }
            }
            if agree(fast, slow, from: slot, load) {
                taken += 1
                if (choice < 2 && target == 6) || (choice == 2 && slot == 6) { ssrTaken += 1 }
            }
        }
        #expect(taken > 200, "the traffic exercised the fastpath (\(taken) calls)")
        #expect(!focused || ssrTaken > 50, "the traffic exercised the SSR fastpath (\(ssrTaken) calls)")
    }
}
