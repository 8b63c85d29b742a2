// Tests of process birth and death: what spawn maps and charges, how it fails,
// that nothing leaks over many lifetimes, wait and its statuses, kill's authority,
// fault reports, and the exit-status encoding.
import CurioABI
import Testing
@testable import KernelCore

@Suite struct LifecycleTests {
    typealias Program = StandardProgram

    // MARK: Spawn

    @Test func spawnLoadsTheProgramAndChargesEveryPage() throws {
        let harness = try KernelHarness()
        let id = try harness.spawn(Program.client)
        #expect(id == TaskID(index: 0, generation: 0))
        let task = harness.task(0)
        #expect(task.state == .runnable)
        #expect(task.program == Program.client)
        #expect(task.priority == 4)
        #expect(task.pageBudget == 32)
        #expect(task.pagesUsed == ProcessLayout.standardPages)
        #expect(harness.freeFrames == harness.baselineFreeFrames - ProcessLayout.standardPages)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages, "only the kernel's root table")
        #expect(harness.kernel.platform.flushedASIDs == [1])

        let file = harness.registers(0)
        #expect(file[.pc] == KernelTestELF.textAddress)
        #expect(file[.sp] == ProcessLayout.stackTop)
        #expect(file[.a0] == ProcessLayout.heap)
        #expect(file[.a1] == 2 * UInt64(pageSize))
        #expect(file[.a2] == ProcessLayout.stackTop)
        #expect(file[.a3] == 0)

        #expect(try harness.read(KernelTestELF.code.count, at: ProcessLayout.text, in: 0) == KernelTestELF.code)
        #expect(try harness.read(8, at: ProcessLayout.data, in: 0) == KernelTestELF.data)
        #expect(try harness.read(0x1800 - 8, at: ProcessLayout.data + 8, in: 0).allSatisfy { $0 == 0 }, "bss")
        #expect(try harness.read(0x2000, at: ProcessLayout.heap, in: 0).allSatisfy { $0 == 0 })
        #expect(try harness.read(0x2000, at: ProcessLayout.stackBase, in: 0).allSatisfy { $0 == 0 })

        let text = try #require(harness.flags(at: ProcessLayout.text, in: 0))
        #expect(text.contains([.read, .execute, .user, .owned]) && !text.contains(.write))
        let data = try #require(harness.flags(at: ProcessLayout.data + 0x1000, in: 0))
        #expect(data.contains([.read, .write, .user, .owned]) && !data.contains(.execute))
        #expect(harness.flags(at: ProcessLayout.guardPage, in: 0) == nil)
        #expect(harness.flags(at: ProcessLayout.heapEnd, in: 0) == nil)
        #expect(harness.flags(at: ProcessLayout.stackBase - 0x1000, in: 0) == nil, "the stack's guard page")
        let stack = try #require(harness.flags(at: ProcessLayout.stackTop - 1, in: 0))
        #expect(stack.contains([.read, .write, .user]) && !stack.contains(.execute))
    }

    @Test func spawnPutsTheArgumentsAtTheTopOfTheStack() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.client, arguments: "hello world")
        let file = harness.registers(0)
        #expect(file[.sp] == ProcessLayout.stackTop - 16, "rounded to 16 bytes")
        #expect(file[.a2] == file[.sp])
        #expect(file[.a3] == 11)
        #expect(try harness.read(11, at: file[.a2], in: 0) == Array("hello world".utf8))
    }

    @Test func aBudgetTooSmallFailsCleanly() throws {
        // The standard process needs exactly 11 pages; every smaller budget must fail
        // wherever it runs out, and give back everything it took.
        for budget in UInt32(4)...UInt32(ProcessLayout.standardPages) {
            let program = KernelTestProgram(name: "tight", memoryPages: budget)
            let harness = try KernelHarness(programs: [program], megabytes: 1)
            let before = harness.freeFrames
            let result = Result { () throws(SyscallError) in try harness.spawn(0) }
            if budget < UInt32(ProcessLayout.standardPages) {
                #expect(result == .failure(.outOfMemory), "budget \(budget)")
                #expect(harness.freeFrames == before, "budget \(budget)")
                #expect(harness.state(0) == .free)
                #expect(harness.task(0).addressSpace == nil)
                #expect(harness.task(0).pagesUsed == 0)
                #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
                harness.kernel.reschedule()
                #expect(harness.kernel.current == nil)
            } else {
                #expect(result == .success(TaskID(index: 0, generation: 0)), "exactly enough")
                #expect(harness.task(0).pagesUsed == ProcessLayout.standardPages)
            }
        }
    }

    @Test func runningOutOfMachineMemoryFailsCleanly() throws {
        // 1 MiB: 255 frames, the kernel root takes one; each process needs 11.
        let harness = try KernelHarness(megabytes: 1)
        var spawned = 0
        while true {
            let before = harness.freeFrames
            do {
                try harness.spawn(Program.client)
                spawned += 1
            } catch {
                #expect(error == .outOfMemory)
                #expect(harness.freeFrames == before)
                break
            }
        }
        #expect(spawned == harness.baselineFreeFrames / ProcessLayout.standardPages)
        for slot in 0..<spawned { harness.kernel.end(slot, status: .killed) }
        #expect(harness.freeFrames == harness.baselineFreeFrames)
    }

    @Test func everySlotCanBeFilledAndNoMore() throws {
        let harness = try KernelHarness()
        #expect(KernelHarness.TestKernel.maxTasks == 320)
        for slot in 0..<KernelHarness.TestKernel.maxTasks {
            #expect(try harness.spawn(Program.lazy).index == slot)
        }
        #expect(throws: SyscallError.noFreeSlot) { try harness.spawn(Program.lazy) }
        #expect(harness.freeFrames == harness.baselineFreeFrames - 320 * ProcessLayout.standardPages)
        for slot in 0..<320 { harness.syscall(slot, .exit, 0) }
        #expect(harness.freeFrames == harness.baselineFreeFrames)
        #expect(harness.kernel.current == nil)
    }

    @Test func aBadELFIsABadArgumentAndCostsNothing() throws {
        let programs = [
            KernelTestProgram(name: "notriscv", elf: KernelTestELF.make().replacing16(at: 18, with: 62)),  // x86-64
            KernelTestProgram(name: "entry", elf: KernelTestELF.make(entry: 0x4000_1000)),
        ]
        let harness = try KernelHarness(programs: programs, megabytes: 1)
        #expect(throws: SyscallError.badArgument) { try harness.spawn(0) }
        #expect(throws: SyscallError.badArgument) { try harness.spawn(1) }
        #expect(harness.freeFrames == harness.baselineFreeFrames)
        #expect(harness.state(0) == .free)
    }

    // A hostile image must cost the program, never the kernel. These run in a child
    // process (exit tests) because the failure they guard against is a trap.

    // A PT_LOAD with W but not R (reserved in Sv39) is refused by ELFImage.
    @Test func aSegmentWithWriteButNotReadIsRefusedNotFatal() async {
        await #expect(processExitsWith: .success) {
            // Data segment flags W only (2).
            var elf = KernelTestELF.make()
            storeLittleEndian(UInt32(2), in: &elf, at: KernelTestELF.dataSegmentFlagsOffset)
            let harness = try KernelHarness(programs: [KernelTestProgram(name: "wonly", elf: elf)], megabytes: 1)
            let result = Result { () throws(SyscallError) in try harness.spawn(0) }
            precondition(result == .failure(.badArgument) || result == .failure(.outOfMemory))
            precondition(harness.freeFrames == harness.baselineFreeFrames)
        }
    }

    // A PT_LOAD with none of R, W, X is refused by ELFImage.
    @Test func aSegmentWithNoPermissionsIsRefusedNotFatal() async {
        await #expect(processExitsWith: .success) {
            var elf = KernelTestELF.make()
            storeLittleEndian(UInt32(0), in: &elf, at: KernelTestELF.dataSegmentFlagsOffset)
            let harness = try KernelHarness(programs: [KernelTestProgram(name: "noperm", elf: elf)], megabytes: 1)
            let result = Result { () throws(SyscallError) in try harness.spawn(0) }
            precondition(result == .failure(.badArgument) || result == .failure(.outOfMemory))
            precondition(harness.freeFrames == harness.baselineFreeFrames)
        }
    }

    // BootImage bounds stackPages only by memoryPages; spawn checks the layout fits.
    @Test func aStackLargerThanUserSpaceIsRefusedNotFatal() async {
        await #expect(processExitsWith: .success) {
            // 0x80001 pages is more than the 2 GiB below stackTop.
            let program = KernelTestProgram(name: "hugestack", memoryPages: 0x8_0001, stackPages: 0x8_0001,
                                            heapPages: 0)
            let harness = try KernelHarness(programs: [program], megabytes: 1)
            let result = Result { () throws(SyscallError) in try harness.spawn(0) }
            precondition(result == .failure(.outOfMemory) || result == .failure(.badArgument))
            precondition(harness.freeFrames == harness.baselineFreeFrames)
        }
    }

    @Test func spawnAndExitAThousandTimesLeaksNothing() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // a neighbour that stays
        let start = harness.freeFrames
        for round in 0..<1_000 {
            let id = try harness.spawn(Program.client, arguments: "round")
            #expect(id.index == 1)
            #expect(id.generation == UInt16(round))
            harness.syscall(1, .exit, UInt(round))
            if harness.state(1) != .free { Issue.record("round \(round): slot not freed"); break }
        }
        #expect(harness.freeFrames == start)
        #expect(harness.task(1).generation == 1_000)
        #expect(harness.state(0) == .runnable)
        #expect(harness.kernel.kernelPagesInUse == KernelHarness.kernelOwnPages)
    }

    @Test func spawnWaitAndExitThroughSyscallsAThousandTimesLeaksNothing() throws {
        let harness = try KernelHarness()
        let manager = try harness.spawn(Program.manager).index
        try harness.write("clientx", at: ProcessLayout.heap, in: manager)
        let start = harness.freeFrames
        for round in 0..<1_000 {
            harness.syscall(manager, .spawn, UInt(ProcessLayout.heap), 6, UInt(ProcessLayout.heap + 6), 1)
            guard harness.error(manager) == nil else {
                Issue.record("round \(round): spawn failed with \(String(describing: harness.error(manager)))")
                break
            }
            let child = TaskID(rawValue: UInt32(harness.result(manager, 1)))
            let arguments = harness.registers(child.index)[.a2]
            #expect(try harness.read(1, at: arguments, in: child.index) == [UInt8(ascii: "x")])
            if round % 2 == 0 {
                harness.syscall(child.index, .exit, UInt(round))  // ends first: status kept
                harness.syscall(manager, .wait, UInt(child.rawValue))
            } else {
                harness.syscall(manager, .wait, UInt(child.rawValue))  // waits first: blocks
                harness.syscall(child.index, .exit, UInt(round))
            }
            #expect(harness.error(manager) == nil)
            #expect(CurioABI.ExitStatus(rawValue: harness.result(manager, 1)) == .exited(code: Int32(round)))
            #expect(harness.state(child.index) == .free)
        }
        #expect(harness.freeFrames == start)
        #expect(harness.state(manager) == .runnable)
    }

    // MARK: Wait

    @Test func waitingForAnEndedChildCollectsItAndFreesTheSlot() throws {
        let harness = try KernelHarness()
        let manager = try harness.spawn(Program.manager).index  // slot 0
        try harness.write("client", at: ProcessLayout.heap, in: manager)
        harness.syscall(manager, .spawn, UInt(ProcessLayout.heap), 6, 0, 0)
        #expect(harness.error(manager) == nil)
        let child = TaskID(rawValue: UInt32(harness.result(manager, 1)))
        #expect(child == TaskID(index: 1, generation: 0))
        #expect(harness.task(1).parent == harness.id(manager))

        harness.syscall(1, .exit, UInt(bitPattern: -42))
        #expect(harness.state(1) == .ended, "kept for its parent")
        #expect(harness.task(1).addressSpace == nil)
        #expect(harness.task(1).pagesUsed == 0)
        #expect(harness.freeFrames == harness.baselineFreeFrames - ProcessLayout.standardPages, "memory is back")

        // An ended process is no endpoint.
        try harness.write("client", at: ProcessLayout.heap + 0x100, in: manager)
        harness.syscall(manager, .lookup, UInt(ProcessLayout.heap + 0x100), 6)
        #expect(harness.error(manager) == .notFound)

        harness.syscall(manager, .wait, UInt(child.rawValue))
        #expect(harness.error(manager) == nil)
        #expect(harness.state(manager) == .runnable)
        #expect(CurioABI.ExitStatus(rawValue: harness.result(manager, 1)) == .exited(code: -42))
        #expect(harness.state(1) == .free)
        #expect(harness.task(1).generation == 1, "the old ID is stale now")

        harness.syscall(manager, .wait, UInt(child.rawValue))
        #expect(harness.error(manager) == .notFound, "collected once")
    }

    @Test func waitingForALiveChildBlocksUntilItEnds() throws {
        let harness = try KernelHarness()
        let manager = try harness.spawn(Program.manager).index
        let child = try harness.spawn(Program.crashme, parent: harness.id(manager))
        harness.syscall(manager, .wait, UInt(child.rawValue))
        #expect(harness.state(manager) == .waiting)
        #expect(harness.task(manager).partner == child.index)

        harness.registers(child.index)[.pc] = 0x4000_0000
        harness.kernel.fault(child.index, cause: .storePageFault, address: 0)
        #expect(harness.state(manager) == .runnable)
        #expect(harness.error(manager) == nil)
        #expect(CurioABI.ExitStatus(rawValue: harness.result(manager, 1)) == .faulted(.storePageFault))
        #expect(harness.state(child.index) == .free)
        #expect(harness.task(child.index).generation == 1)
        #expect(harness.freeFrames == harness.baselineFreeFrames - ProcessLayout.standardPages)
    }

    @Test func waitingForANonChildIsRefused() throws {
        let harness = try KernelHarness()
        let manager = try harness.spawn(Program.manager)
        let stranger = try harness.spawn(Program.server)  // started by the kernel: no parent
        let sibling = try harness.spawn(Program.client, parent: stranger)
        harness.syscall(manager.index, .wait, UInt(stranger.rawValue))
        #expect(harness.error(manager.index) == .notChild)
        harness.syscall(manager.index, .wait, UInt(sibling.rawValue))
        #expect(harness.error(manager.index) == .notChild, "someone else's child")
        harness.syscall(manager.index, .wait, UInt(manager.rawValue))
        #expect(harness.error(manager.index) == .notChild, "itself")
        harness.syscall(manager.index, .wait, UInt(TaskID(index: 50, generation: 0).rawValue))
        #expect(harness.error(manager.index) == .notFound)
        #expect(harness.state(manager.index) == .runnable)
    }

    @Test func aParentThatEndsReleasesItsChildren() throws {
        let harness = try KernelHarness()
        let parent = try harness.spawn(Program.manager)  // 0
        let ended = try harness.spawn(Program.client, parent: parent)  // 1
        let running = try harness.spawn(Program.client, parent: parent)  // 2
        harness.syscall(ended.index, .exit, 1)
        #expect(harness.state(ended.index) == .ended)

        harness.syscall(parent.index, .exit, 0)
        #expect(harness.state(ended.index) == .free, "nobody is left to collect it")
        #expect(harness.task(running.index).parent == nil, "orphaned")
        harness.syscall(running.index, .exit, 0)
        #expect(harness.state(running.index) == .free, "an orphan's slot is freed at once")
        #expect(harness.freeFrames == harness.baselineFreeFrames)
    }

    // MARK: Kill

    @Test func killNeedsManage() throws {
        let harness = try KernelHarness()
        let server = try harness.spawn(Program.server)  // 0
        let client = try harness.spawn(Program.client).index  // 1
        let manager = try harness.spawn(Program.manager).index  // 2
        harness.syscall(client, .kill, UInt(server.rawValue))
        #expect(harness.error(client) == .notPermitted)
        #expect(harness.state(server.index) == .runnable)

        harness.syscall(manager, .kill, UInt(server.rawValue))
        #expect(harness.error(manager) == nil)
        #expect(harness.state(server.index) == .free, "not its child: nobody keeps the status")
        #expect(harness.freeFrames == harness.baselineFreeFrames - 2 * ProcessLayout.standardPages)

        harness.syscall(manager, .kill, UInt(server.rawValue))
        #expect(harness.error(manager) == .deadEndpoint, "already gone")
    }

    @Test func killingAChildReportsKilled() throws {
        let harness = try KernelHarness()
        let manager = try harness.spawn(Program.manager).index
        let child = try harness.spawn(Program.driver, parent: harness.id(manager))
        harness.syscall(manager, .kill, UInt(child.rawValue))
        #expect(harness.error(manager) == nil)
        #expect(harness.state(child.index) == .ended)
        #expect(Array(harness.kernel.platform.interruptChanges.suffix(2)) == [
            InterruptChange(irq: 10, enabled: false), InterruptChange(irq: 11, enabled: false),
        ], "its interrupts are masked")
        harness.syscall(manager, .wait, UInt(child.rawValue))
        #expect(CurioABI.ExitStatus(rawValue: harness.result(manager, 1)) == .killed)
    }

    @Test func killingYourselfEndsYou() throws {
        let harness = try KernelHarness()
        let manager = try harness.spawn(Program.manager)
        harness.kernel.reschedule()
        harness.syscall(manager.index, .kill, UInt(manager.rawValue))
        #expect(harness.state(manager.index) == .free)
        #expect(harness.kernel.current == nil)
        #expect(harness.freeFrames == harness.baselineFreeFrames)
    }

    // MARK: Faults

    @Test func aFaultIsReportedOnceWithTheSymbolAndFreesTheProcess() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // slot 0
        let crashme = try harness.spawn(Program.crashme)  // slot 1
        harness.kernel.reschedule()
        harness.registers(1)[.pc] = 0x4000_004C
        harness.kernel.fault(1, cause: .storePageFault, address: 0)
        #expect(harness.output == "[kernel] crashme (pid 1, gen 0) stopped: store page fault at 0x0, "
                + "pc 0x4000004c in Crashme.writeThroughNull() + 0xc\n")
        #expect(harness.output.ranges(of: "[kernel]").count == 1, "exactly one report")
        #expect(harness.state(1) == .free)
        #expect(harness.task(1).generation == crashme.generation + 1)
        #expect(harness.freeFrames == harness.baselineFreeFrames - ProcessLayout.standardPages)
        #expect(harness.kernel.current == 0, "the next process runs")
    }

    @Test func faultReportsWithoutASymbol() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.client)  // no symbols in the image
        try harness.spawn(Program.crashme)
        harness.registers(0)[.pc] = 0x4000_0010
        harness.kernel.fault(0, cause: .runtimeTrap, address: 0x1234)
        #expect(harness.output
                == "[kernel] client (pid 0, gen 0) stopped: Swift runtime trap at 0x1234, pc 0x40000010\n")

        harness.registers(1)[.pc] = 0x3FFF_FFF0  // below the first symbol
        harness.kernel.fault(1, cause: .instructionPageFault, address: 0x3FFF_FFF0)
        #expect(harness.output.hasSuffix(
            "[kernel] crashme (pid 1, gen 0) stopped: instruction page fault at 0x3ffffff0, pc 0x3ffffff0\n"))
    }

    @Test func theLastSymbolCoversEverythingAboveIt() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.crashme)
        harness.registers(0)[.pc] = 0x4000_0100
        harness.kernel.fault(0, cause: .illegalInstruction, address: 0)
        #expect(harness.output.hasSuffix("pc 0x40000100 in Crashme.spin() + 0x80\n"))
    }

    // MARK: Exit statuses and the other lifecycle calls

    @Test func exitStatusRoundTrips() {
        var statuses: [CurioABI.ExitStatus] = [.killed]
        for code: Int32 in [0, 1, -1, 42, Int32.max, Int32.min] { statuses.append(.exited(code: code)) }
        for raw in UInt8(1)...UInt8(10) { statuses.append(.faulted(FaultCause(rawValue: raw)!)) }
        for status in statuses {
            #expect(CurioABI.ExitStatus(rawValue: status.rawValue) == status)
        }
        #expect(CurioABI.ExitStatus.exited(code: -1).rawValue == 0xFFFF_FFFF_0001)
        #expect(CurioABI.ExitStatus.faulted(.storePageFault).rawValue == 0x302)
        #expect(CurioABI.ExitStatus.killed.rawValue == 3)
        #expect(CurioABI.ExitStatus(rawValue: 0) == nil)
        #expect(CurioABI.ExitStatus(rawValue: 4) == nil)
        #expect(CurioABI.ExitStatus(rawValue: 2) == nil, "a fault with cause 0")
        #expect(CurioABI.ExitStatus(rawValue: 2 | 200 << 8) == nil, "an unknown cause")
    }

    @Test func taskInfoDescribesASlot() throws {
        let harness = try KernelHarness()
        try harness.spawn(Program.server)  // 0
        let client = try harness.spawn(Program.client).index  // 1
        let destination = ProcessLayout.heap + 0x100
        harness.syscall(client, .taskInfo, 0, UInt(destination), UInt(TaskInfo.size))
        #expect(harness.error(client) == nil)
        let bytes = try harness.read(32, at: destination, in: client)
        func field<T: FixedWidthInteger>(_: T.Type, _ offset: Int) -> T {
            var value: T = 0
            for index in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + index]) << (index * 8) }
            return value
        }
        #expect(field(UInt32.self, 0) == harness.id(0).rawValue)
        #expect(field(UInt8.self, 4) == TaskState.runnable.rawValue)
        #expect(field(UInt8.self, 5) == 3)
        #expect(field(UInt32.self, 8) == UInt32(ProcessLayout.standardPages))
        #expect(field(UInt32.self, 12) == 32)
        #expect(Array(bytes[16..<32]) == Array("server".utf8) + [UInt8](repeating: 0, count: 10))
        #expect(try harness.read(16, at: destination + 32, in: client) == Array(bytes[16..<32]),
                "it runs its own program's code")

        harness.syscall(client, .taskInfo, 40, UInt(destination), UInt(TaskInfo.size))
        #expect(harness.error(client) == nil)
        let free = try harness.read(32, at: destination, in: client)
        #expect(free[4] == TaskState.free.rawValue)
        #expect(free[16..<32].allSatisfy { $0 == 0 })
        harness.syscall(client, .taskInfo, 319, UInt(destination), UInt(TaskInfo.size))
        #expect(harness.error(client) == nil, "the last of the 320 slots")
        #expect(try harness.read(32, at: destination, in: client)[4] == TaskState.free.rawValue)
        harness.syscall(client, .taskInfo, 320, UInt(destination), 32)
        #expect(harness.error(client) == .badArgument)
    }

    @Test func memoryInfoLookupWhoAmIAndClock() throws {
        let harness = try KernelHarness()
        let server = try harness.spawn(Program.server)
        let client = try harness.spawn(Program.client).index
        harness.syscall(client, .memoryInfo)
        #expect(harness.result(client, 1) == UInt(harness.kernel.frames.totalFrames))
        #expect(harness.result(client, 2) == UInt(harness.freeFrames))
        #expect(harness.result(client, 3) == UInt(KernelHarness.kernelOwnPages))

        try harness.write("server", at: ProcessLayout.heap, in: client)
        harness.syscall(client, .lookup, UInt(ProcessLayout.heap), 6)
        #expect(harness.error(client) == nil)
        #expect(harness.result(client, 1) == UInt(server.rawValue))
        harness.syscall(client, .lookup, UInt(ProcessLayout.heap), 5)
        #expect(harness.error(client) == .notFound, "\"serve\" is no program")
        try harness.write("peer", at: ProcessLayout.heap, in: client)
        harness.syscall(client, .lookup, UInt(ProcessLayout.heap), 4)
        #expect(harness.error(client) == .notFound, "a program that is not running")

        harness.syscall(client, .whoAmI)
        #expect(harness.result(client, 1) == UInt(harness.id(client).rawValue))
        harness.kernel.platform.clock = 987_654
        harness.syscall(client, .clock)
        #expect(harness.result(client, 1) == 987_654)
    }

    @Test func powerOffNeedsManage() throws {
        let harness = try KernelHarness()
        let manager = try harness.spawn(Program.manager).index
        let client = try harness.spawn(Program.client).index
        harness.syscall(client, .powerOff, 1)
        #expect(harness.error(client) == .notPermitted)
        harness.syscall(manager, .powerOff, 3)
        #expect(harness.error(manager) == nil)
        #expect(harness.kernel.platform.powerOffRequests == [3])
    }

    @Test func bootStartsTheMarkedProgramsWithTheirArguments() throws {
        let programs = [
            KernelTestProgram(name: "idle", priority: 7),
            KernelTestProgram(name: "init", priority: 2, startsAtBoot: true, receivesBootArguments: true),
            KernelTestProgram(name: "greedy", startsAtBoot: true, memoryPages: 5),
            KernelTestProgram(name: "console", priority: 3, startsAtBoot: true),
        ]
        let harness = try KernelHarness(programs: programs, bootArguments: "cmds=ps")
        harness.kernel.startBootPrograms()
        #expect(harness.task(0).program == 1)
        #expect(harness.task(1).program == 3)
        #expect(harness.state(2) == .free)
        #expect(harness.output == "[kernel] cannot start greedy: out of memory\n")
        let file = harness.registers(0)
        #expect(file[.a3] == 7)
        #expect(try harness.read(7, at: file[.a2], in: 0) == Array("cmds=ps".utf8))
        #expect(harness.registers(1)[.a3] == 0, "only init receives the command line")
        #expect(harness.kernel.current == 0, "the most urgent boot program runs first")
    }

    @Test func addressSpacesAreFlushedBeforeTheirTablesAreFreed() throws {
        let harness = try KernelHarness()
        let client = try harness.spawn(Program.client).index
        let root = try #require(harness.task(client).addressSpace?.root)
        harness.kernel.platform.framesToCheckAtFlush = [root]
        harness.syscall(client, .exit, 0)
        let flush = try #require(harness.kernel.platform.flushes.last)
        #expect(flush.asid == harness.kernel.asid(of: client))
        #expect(flush.framesStillAllocated == [true],
                "the platform must leave the space (satp) before its root table is freed")
    }
}

extension Array where Element == UInt8 {
    /// A copy with the little-endian u16 at `offset` replaced.
    func replacing16(at offset: Int, with value: UInt16) -> [UInt8] {
        var copy = self
        storeLittleEndian(value, in: &copy, at: offset)
        return copy
    }
}
