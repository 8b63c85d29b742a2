// Tests of software fault injection: who may inject, what each fault kind does to
// the server (compared with the same run without the fault), and when each trigger
// strikes.
import CurioABI
import Testing
@testable import KernelCore

@Suite struct FaultInjectionTests {
    typealias Program = SSRProgram

    static let fs = 0, manager = 1, client = 2
    /// Where the server sits when a request reaches it: at its `ecall`...
    static let receivePC = KernelTestELF.textAddress + 8
    /// ...and where it resumes: the `jal x0,-8` (0xFF9FF06F) after it.
    static let resumePC = receivePC + 4
    static let pristineInstruction: UInt32 = 0xFF9F_F06F
    static let stackPointer = ProcessLayout.stackTop - 0x100

    /// fs (recovered), manager and client, in slots 0, 1, 2.
    private func setUp() throws -> KernelHarness {
        let harness = try KernelHarness.ssr()
        try harness.spawn(Program.fs)
        try harness.spawn(Program.manager)
        try harness.spawn(Program.client)
        harness.recover(Self.fs, pages: 2)
        return harness
    }

    /// injectFault with raw arguments, from `slot`.
    private func inject(_ harness: KernelHarness, rawKind: UInt, into name: String = "fs",
                        rawTrigger: UInt = FaultTrigger.nextRequest.rawValue, argument: UInt = 0,
                        by slot: Int = manager) throws {
        let (address, length) = try harness.name(name, in: slot)
        harness.syscall(slot, .injectFault, address, length, rawKind, rawTrigger, argument)
    }

    private func inject(_ harness: KernelHarness, _ kind: FaultKind, trigger: FaultTrigger = .nextRequest,
                        argument: UInt = 0) throws {
        try inject(harness, rawKind: kind.rawValue, rawTrigger: trigger.rawValue, argument: argument)
        #expect(harness.error(Self.manager) == nil)
    }

    /// One request from the client, delivered to the server waiting in receive.
    private func deliverRequest(_ harness: KernelHarness) throws {
        harness.registers(Self.fs)[.pc] = Self.receivePC
        harness.registers(Self.fs)[.sp] = Self.stackPointer
        harness.receive(Self.fs)
        try harness.call(Self.client, harness.id(Self.fs))
        #expect(harness.state(Self.client) == .awaitingReply)
        #expect(harness.state(Self.fs) == .runnable)
    }

    private func finishRequest(_ harness: KernelHarness) throws {
        try harness.reply(from: Self.fs, to: harness.id(Self.client))
        #expect(harness.error(Self.fs) == nil)
    }

    /// What a fault could have touched in the server.
    private struct Observation {
        var registers: [UInt64]
        /// Data and bss (0x4000_1000..<0x4000_3000), then the heap.
        var data: [UInt8]
        var stack: [UInt8]
        var ssr: [UInt8]
        var instruction: UInt32
    }

    private func observe(_ harness: KernelHarness) throws -> Observation {
        let word = try harness.read(4, at: Self.resumePC, in: Self.fs)
        return Observation(
            registers: harness.snapshot(Self.fs),
            data: try harness.read(0x2000, at: ProcessLayout.data, in: Self.fs)
                + harness.read(0x2000, at: ProcessLayout.heap, in: Self.fs),
            stack: try harness.read(0x2000, at: ProcessLayout.stackBase, in: Self.fs),
            ssr: harness.ssrBytes(of: Self.client, to: Program.fs),
            instruction: word.reversed().reduce(0) { $0 << 8 | UInt32($1) })
    }

    /// The server just after its first request was delivered, with or without a fault.
    private func firstDelivery(injecting kind: FaultKind?) throws -> (Observation, KernelHarness) {
        let harness = try setUp()
        if let kind { try inject(harness, kind) }
        try deliverRequest(harness)
        return (try observe(harness), harness)
    }

    // MARK: Authority and arguments

    @Test func injectingNeedsManageAndARunningProgram() throws {
        let harness = try setUp()
        let loop = FaultKind.endlessLoop.rawValue
        try inject(harness, rawKind: loop, by: Self.client)
        #expect(harness.error(Self.client) == .notPermitted)
        try inject(harness, rawKind: loop, into: "nosuch")
        #expect(harness.error(Self.manager) == .notFound)
        try inject(harness, rawKind: loop, into: "disk")
        #expect(harness.error(Self.manager) == .notFound, "a program with no running instance")
        try inject(harness, rawKind: UInt(FaultKind.allCases.count))
        #expect(harness.error(Self.manager) == .badArgument)
        try inject(harness, rawKind: loop, rawTrigger: 4)
        #expect(harness.error(Self.manager) == .badArgument)
        #expect(harness.task(Self.fs).injection.kind == nil, "nothing was armed")

        try inject(harness, .endlessLoop)
        #expect(harness.task(Self.fs).injection.kind == .endlessLoop)
        #expect(!harness.output.contains("injected"), "armed, not struck")
    }

    // MARK: What each fault does

    @Test(arguments: FaultKind.allCases)
    func eachFaultStrikesAtTheNextRequest(_ kind: FaultKind) throws {
        let (clean, _) = try firstDelivery(injecting: nil)
        let (struck, harness) = try firstDelivery(injecting: kind)
        #expect(harness.output.contains("[kernel] injected \(kind.name) into fs\n"))
        #expect(harness.task(Self.fs).injection.kind == nil, "spent")

        let changedRegisters = (0..<RegisterFile.slots).filter { clean.registers[$0] != struck.registers[$0] }
        let dataBits = differingBits(clean.data, struck.data)
        let stackBits = differingBits(clean.stack, struck.stack)
        let ssrBits = differingBits(clean.ssr, struck.ssr)
        #expect(clean.instruction == Self.pristineInstruction)

        switch kind {
        case .wildWrite:
            let memory = [(clean.data, struck.data), (clean.stack, struck.stack), (clean.ssr, struck.ssr)]
            let changedWords = memory.flatMap { clean, struck in
                stride(from: 0, to: clean.count, by: 8).filter { clean[$0..<$0 + 8] != struck[$0..<$0 + 8] }
            }
            #expect(changedWords.count == 1, "one aligned word of writable memory")
        case .pointerFlip:
            #expect(changedRegisters.count == 1)
            if let register = changedRegisters.first {
                #expect((1...31).contains(register), "never the pc")
                #expect((clean.registers[register] ^ struck.registers[register]).nonzeroBitCount == 1)
                #expect(harness.flags(at: clean.registers[register], in: Self.fs)?.contains(.user) == true,
                        "it held a pointer into the server's memory")
            }
        case .registerBitFlip:
            #expect(changedRegisters.count == 1)
            if let register = changedRegisters.first {
                #expect((clean.registers[register] ^ struck.registers[register]).nonzeroBitCount == 1)
            }
        case .dataBitFlip:
            #expect(dataBits == 1)
        case .stackBitFlip:
            #expect(stackBits == 1)
            if let byte = zip(clean.stack, struck.stack).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
                #expect(ProcessLayout.stackBase + UInt64(byte.offset) >= Self.stackPointer, "in the live stack")
            }
        case .ssrBitFlip:
            #expect(ssrBits == 1)
        case .endlessLoop:
            #expect(struck.instruction == 0x0000_006F, "j .")
        case .illegalInstruction:
            #expect(struck.instruction == 0xFFFF_FFFF)
        case .codeMutation:
            #expect(struck.instruction != Self.pristineInstruction)
            #expect(harness.output.contains("[kernel] mutation: "))
        }
        let touchesRegisters = kind == .pointerFlip || kind == .registerBitFlip
        let patchesCode = kind == .endlessLoop || kind == .illegalInstruction || kind == .codeMutation
        if !touchesRegisters { #expect(changedRegisters.isEmpty) }
        if kind != .wildWrite {
            if kind != .dataBitFlip { #expect(dataBits == 0) }
            if kind != .stackBitFlip { #expect(stackBits == 0) }
            if kind != .ssrBitFlip { #expect(ssrBits == 0) }
        }
        if !patchesCode { #expect(struck.instruction == Self.pristineInstruction) }
        #expect(harness.kernel.platform.instructionSynchronizations == (patchesCode ? 1 : 0))
    }

    /// Every data flip flips exactly one bit of data, bss or heap — never none.
    @Test func everyDataFlipFlipsABit() throws {
        let harness = try setUp()
        var misses: [Int] = []
        for strike in 0..<40 {
            try inject(harness, .dataBitFlip)
            let before = try observe(harness).data
            try deliverRequest(harness)
            let after = try observe(harness).data
            if differingBits(before, after) != 1 { misses.append(strike) }
            try finishRequest(harness)
        }
        #expect(misses.isEmpty, "strikes that flipped nothing: \(misses) of 40")
    }

    @Test func aStackFlipWithAnEmptyStackDoesNothing() throws {
        let harness = try setUp()
        try inject(harness, .stackBitFlip)
        harness.receive(Self.fs)
        harness.registers(Self.fs)[.sp] = ProcessLayout.stackTop
        let before = try harness.read(0x2000, at: ProcessLayout.stackBase, in: Self.fs)
        try harness.call(Self.client, harness.id(Self.fs))
        #expect(harness.outputCount("injected stack-flip") == 1)
        #expect(try harness.read(0x2000, at: ProcessLayout.stackBase, in: Self.fs) == before)
    }

    // MARK: Triggers

    @Test func afterRequestsStrikesAtTheNthDelivery() throws {
        let harness = try setUp()
        try inject(harness, .illegalInstruction, trigger: .afterRequests, argument: 3)
        for request in 1...4 {
            try deliverRequest(harness)
            let word = try observe(harness).instruction
            #expect(word == (request >= 3 ? 0xFFFF_FFFF : Self.pristineInstruction), "request \(request)")
            #expect(harness.outputCount("injected illegal") == (request >= 3 ? 1 : 0))
            #expect((harness.task(Self.fs).injection.kind == nil) == (request >= 3))
            try finishRequest(harness)
        }
    }

    @Test func anUnbindMessageIsNotARequest() throws {
        let harness = try setUp()
        try deliverRequest(harness)
        try finishRequest(harness)
        try inject(harness, .endlessLoop)
        let client = harness.id(Self.client)
        harness.syscall(Self.client, .exit, 0)
        harness.receive(Self.fs)
        #expect(harness.result(Self.fs, 2) == SSRMessage.unbindOperation)
        #expect(harness.task(Self.fs).injection.kind == .endlessLoop, "still armed")
        try harness.reply(from: Self.fs, to: client)
        #expect(harness.error(Self.fs) == nil)
    }

    @Test func randomTimeStrikesOnceWhenTheClockGetsThere() throws {
        let harness = try setUp()
        let armed = harness.clock
        try inject(harness, .registerBitFlip, trigger: .randomTime, argument: 1_000)
        let due = harness.task(Self.fs).injection.countdown
        #expect(due > armed && due <= armed + 1_000)
        #expect(harness.kernel.nextTimerDeadline.map { $0 <= due } == true)

        let before = harness.snapshot(Self.fs)
        #expect(harness.state(Self.fs) == .runnable)
        harness.kernel.current = Self.fs
        harness.tick(by: due - armed - 1)
        #expect(harness.snapshot(Self.fs) == before, "not yet")
        #expect(harness.task(Self.fs).injection.kind == .registerBitFlip)
        harness.kernel.current = Self.fs
        harness.tick(by: 1)
        let after = harness.snapshot(Self.fs)
        let changed = (0..<RegisterFile.slots).filter { before[$0] != after[$0] }
        #expect(changed.count == 1)
        #expect(changed.first.map { (before[$0] ^ after[$0]).nonzeroBitCount } == 1)
        #expect(harness.outputCount("injected reg-flip into fs") == 1)
        harness.tick(by: 10_000)
        #expect(harness.outputCount("injected") == 1, "once")
        #expect(harness.snapshot(Self.fs) == after)
    }

    /// A saved register of a blocked process is read by the kernel at its next
    /// rendezvous: a fault there would strike the kernel, not the process. A due time
    /// trigger waits for a tick that interrupts the target itself.
    @Test func aDueTimeFaultWaitsUntilItsTargetRuns() throws {
        let harness = try setUp()
        let armed = harness.clock
        try inject(harness, .registerBitFlip, trigger: .randomTime, argument: 1_000)
        let due = harness.task(Self.fs).injection.countdown
        harness.registers(Self.fs)[.pc] = Self.receivePC
        harness.receive(Self.fs)
        #expect(harness.state(Self.fs) == .receiving)
        let blocked = harness.snapshot(Self.fs)
        harness.tick(by: due - armed + 10_000)
        #expect(harness.snapshot(Self.fs) == blocked, "not while it waits in receive")
        #expect(harness.task(Self.fs).injection.kind == .registerBitFlip, "still armed")
        #expect(harness.outputCount("injected") == 0)
        harness.kernel.nextTimerDeadline = nil
        harness.tick(by: 10)
        #expect((harness.kernel.nextTimerDeadline ?? .max) > harness.clock, "no deadline left in the past")

        try harness.call(Self.client, harness.id(Self.fs))
        #expect(harness.state(Self.fs) == .runnable)
        let delivered = harness.snapshot(Self.fs)
        harness.kernel.current = Self.client
        harness.kernel.trapped()
        harness.tick(by: 1)
        #expect(harness.snapshot(Self.fs) == delivered, "nor while another process runs")
        harness.kernel.current = Self.fs
        harness.kernel.resuming(Self.fs)
        harness.clock += 1
        harness.kernel.trapped()
        let changed = (0..<RegisterFile.slots).filter { delivered[$0] != harness.snapshot(Self.fs)[$0] }
        #expect(changed.count == 1)
        #expect(harness.outputCount("injected reg-flip into fs") == 1)
    }

    /// Whatever a corrupted pc holds, an instruction patch (loop, illegal) writes
    /// only through the target's own 4 KiB user pages: never through the kernel's
    /// gigapages, which every address space shares.
    @Test func aPatchNeverWritesThroughKernelMappings() throws {
        let harness = try setUp()
        let kernelText = PhysicalAddress(harness.ram.range.lowerBound.rawValue + 0x20_0000)
        let before = harness.physical(kernelText.rawValue, count: 64)
        for kind in [FaultKind.illegalInstruction, .endlessLoop] {
            try inject(harness, kind)
            harness.receive(Self.fs)
            harness.registers(Self.fs)[.pc] = kernelText.rawValue
            try harness.call(Self.client, harness.id(Self.fs))
            #expect(harness.outputCount("injected") > 0)
            try finishRequest(harness)
        }
        #expect(harness.physical(kernelText.rawValue, count: 64) == before)
        #expect(harness.kernel.platform.instructionSynchronizations == 0, "nothing was patched")
    }

    // MARK: Persistent code faults

    /// A persistent bug is in every later load of the program: the restarted server
    /// has it too. Giving the server up ends it.
    @Test func aPersistentCodeFaultSurvivesRestartsUntilTheServerIsGivenUp() throws {
        let harness = try setUp()
        let (address, length) = try harness.name("fs", in: Self.manager)
        harness.syscall(Self.manager, .injectFault, address, length,
                        FaultKind.illegalInstruction.rawValue | FaultKind.persistentFlag, FaultTrigger.nextRequest.rawValue)
        #expect(harness.error(Self.manager) == nil)
        try deliverRequest(harness)
        #expect(try observe(harness).instruction == 0xFFFF_FFFF)
        harness.kernel.fault(Self.fs, cause: .illegalInstruction, address: 0)
        #expect(try observe(harness).instruction == 0xFFFF_FFFF, "the fresh image has the bug too")

        for _ in 0...KernelHarness.TestKernel.restartsBeforeGivingUp {
            if harness.state(Self.fs) == .held { harness.tick(by: harness.task(Self.fs).heldUntil - harness.clock) }
            guard harness.state(Self.fs) != .failed else { break }
            harness.kernel.fault(Self.fs, cause: .illegalInstruction, address: 0)
            harness.tick(by: 10)
        }
        #expect(harness.state(Self.fs) == .failed)
        #expect(harness.kernel.persistentPatches[0].program == -1, "gone with the server")
    }

    @Test func onlyCodeFaultsMayBePersistent() throws {
        let harness = try setUp()
        let (address, length) = try harness.name("fs", in: Self.manager)
        harness.syscall(Self.manager, .injectFault, address, length,
                        FaultKind.dataBitFlip.rawValue | FaultKind.persistentFlag, FaultTrigger.nextRequest.rawValue)
        #expect(harness.error(Self.manager) == .badArgument)
    }

    // MARK: Execution triggers and seeds

    /// The machine layer's view of one stretch of the server running: resume it, let
    /// `ticks` pass, trap out of it.
    private func run(_ harness: KernelHarness, ticks: UInt64) {
        harness.kernel.current = Self.fs
        harness.kernel.resuming(Self.fs)
        harness.clock += ticks
        harness.kernel.trapped()
    }

    @Test func anExecutionFaultCountsOnlyTheTargetsOwnRunningTime() throws {
        let harness = try setUp()
        try deliverRequest(harness)
        try inject(harness, .registerBitFlip, trigger: .execution, argument: 1_000)
        let due = harness.task(Self.fs).injection.countdown
        #expect((1...1_000).contains(due))
        let before = harness.snapshot(Self.fs)

        harness.clock += 50_000  // waiting, or others running: not counted
        harness.kernel.current = Self.client
        harness.kernel.trapped()
        run(harness, ticks: due - 1)
        #expect(harness.snapshot(Self.fs) == before, "one tick short")
        #expect(harness.task(Self.fs).injection.countdown == 1)
        #expect(harness.kernel.nextTimerDeadline != nil)

        harness.kernel.current = Self.fs
        harness.kernel.resuming(Self.fs)
        #expect(harness.kernel.nextTimerDeadline == harness.clock + 1, "the clock is armed for the moment")
        harness.clock += 1
        harness.kernel.trapped()
        let changed = (0..<RegisterFile.slots).filter { before[$0] != harness.snapshot(Self.fs)[$0] }
        #expect(changed.count == 1)
        #expect(harness.outputCount("injected reg-flip into fs") == 1)
        run(harness, ticks: 10_000)
        #expect(harness.outputCount("injected") == 1, "once")
    }

    /// Two runs with the same seed hit the same moment and the same bit; another seed
    /// (almost surely) does not.
    @Test func aSeedDecidesTheMomentAndTheTarget() throws {
        func strike(seed: UInt) throws -> (UInt64, [UInt64]) {
            let harness = try setUp()
            try deliverRequest(harness)
            let (address, length) = try harness.name("fs", in: Self.manager)
            harness.syscall(Self.manager, .injectFault, address, length, FaultKind.registerBitFlip.rawValue,
                            FaultTrigger.execution.rawValue, 100_000, 0, seed)
            #expect(harness.error(Self.manager) == nil)
            let due = harness.task(Self.fs).injection.countdown
            run(harness, ticks: due)
            return (due, harness.snapshot(Self.fs))
        }
        let first = try strike(seed: 42)
        let again = try strike(seed: 42)
        let other = try strike(seed: 43)
        #expect(first.0 == again.0 && first.1 == again.1)
        #expect(first.0 != other.0 || first.1 != other.1)
    }

    @Test func aRandomTimeFaultIgnoresRequests() throws {
        let harness = try setUp()
        try inject(harness, .illegalInstruction, trigger: .randomTime, argument: 1_000_000)
        try deliverRequest(harness)
        #expect(try observe(harness).instruction == Self.pristineInstruction)
        #expect(harness.task(Self.fs).injection.kind == .illegalInstruction)
    }

    // MARK: Recovery from injected faults

    @Test func anInjectedLoopIsCaughtByTheWatchdogAndWipedByTheRestart() throws {
        let harness = try setUp()
        try inject(harness, .endlessLoop)
        // The manager waits again: it is more urgent than fs, and the watchdog counts
        // only fs's own running time.
        harness.receive(Self.manager)
        try deliverRequest(harness)
        #expect(try observe(harness).instruction == 0x0000_006F)
        let request = harness.result(Self.fs, 6)

        harness.run(for: KernelHarness.TestKernel.watchdogTicks + 1)
        #expect(harness.task(Self.fs).generation == 1)
        #expect(harness.output.contains("hang (watchdog)"))
        #expect(try observe(harness).instruction == Self.pristineInstruction, "the new incarnation runs pristine code")
        #expect(harness.binding(of: Self.client, to: Program.fs)?.state == .suspect)
        #expect(harness.state(Self.client) == .sending)

        harness.recover(Self.fs, pages: 2)
        harness.receive(Self.fs)
        #expect(harness.result(Self.fs, 6) == request, "the same request again")
        try finishRequest(harness)
        #expect(harness.error(Self.client) == nil)
    }

    @Test func aRestartDisarmsAPendingInjection() throws {
        let harness = try setUp()
        try inject(harness, .illegalInstruction, trigger: .afterRequests, argument: 2)
        harness.kernel.fault(Self.fs, cause: .storePageFault, address: 0)
        #expect(harness.task(Self.fs).injection.kind == nil)
    }
}
