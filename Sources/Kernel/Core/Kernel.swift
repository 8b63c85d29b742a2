// The kernel's state and its one entry point for traps.
//
// `Kernel` owns the task table, the frame allocator and the boot image. The
// machine layer calls it once per trap: `syscall`, `fault`, `interrupt` or
// `clockTick`; each updates the tables and leaves `current` naming the process
// to resume (or nil: nothing is ready, wait for an interrupt). The core never
// blocks and never switches stacks; it only decides.
//
// It is generic over `Platform` so the same code runs in the riscv64 kernel and in
// host tests.

import CurioABI

public struct Kernel<P: Platform> {
    public static var maxTasks: Int { ReadyQueues.maxSlots }
    /// Where programs are loaded: root-table entry 1 of Sv39, which the kernel never uses.
    public static var userSpace: Range<UInt64> { KernelLayout.userSpace }
    public static var programSpace: Range<UInt64> { 0x4000_0000..<0x6000_0000 }
    public static var deviceWindow: UInt64 { 0x7000_0000 }
    public static var stackTop: UInt64 { 0x8000_0000 }
    /// Time slice among processes of equal priority, in clock ticks: 10 ms.
    public static var timeSlice: UInt64 { 10 * ticksPerMillisecond }
    public static var ticksPerMillisecond: UInt64 { Clock.ticksPerMillisecond }

    public var platform: P
    public var frames: FrameAllocator<P.Memory>
    public let image: BootImage
    let kernelRoot: PhysicalAddress
    let tasks: UnsafeMutablePointer<Task>
    let registerStorage: UnsafeMutablePointer<UInt64>
    var ready = ReadyQueues()
    /// The process to resume when the current trap ends; nil when none is ready.
    public internal(set) var current: Int? {
        get { currentSlot < 0 ? nil : currentSlot }
        set { currentSlot = newValue ?? -1 }
    }
    /// `current`, stored without an Optional's packed tag (read on every trap).
    public private(set) var currentSlot = -1
    /// The process that ran last, for round-robin.
    /// Per priority: the slot that ran last at that level, for round-robin.
    var lastRunAtLevel = InlineArray<8, Int>(repeating: 0)
    /// Per priority: a process preempted by a more urgent one, which resumes first
    /// with the rest of its slice (-1: none), and that rest.
    var preemptedAtLevel = InlineArray<8, Int>(repeating: -1)
    var preemptedSliceLeft = InlineArray<8, UInt64>(repeating: 0)
    var sliceEnds: UInt64 = 0
    /// When the last clock interrupt came: the watchdog charges running time from here.
    var lastClockTick: UInt64 = 0
    /// Bit p set: program p may have orphaned SSRs waiting for its cleanup (so
    /// `receive` need not search; cleared when a search finds none).
    var programsWithOrphans: UInt64 = 0
    /// The fault injector's generator (fixed seed: runs under -icount repeat).
    var randomState: UInt64 = 0x9E37_79B9_7F4A_7C15
    /// Processes whose own execution an armed fault is counting down (a slot may stay
    /// after its fault is gone; the count checks).
    var executionTargets = SlotSet()
    /// Code faults applied to every load of their program (Kernel+FaultInjection.swift).
    var persistentPatches = InlineArray<8, CodePatch>(repeating: CodePatch())
    /// The argument strings of clients that keep their SSRs, for their restarts
    /// (Kernel+ClientRestart.swift).
    var keptArguments = InlineArray<8, KeptArguments>(repeating: KeptArguments())
    /// The earliest `setTimer` deadline of any process (may be stale-early, never late).
    public internal(set) var nextTimerDeadline: UInt64? {
        get { earliestDeadline == .max ? nil : earliestDeadline }
        set { earliestDeadline = newValue ?? .max }
    }
    /// `nextTimerDeadline`, with `UInt64.max` for none.
    public internal(set) var earliestDeadline: UInt64 = .max
    let bootArguments: UnsafeRawBufferPointer?
    /// The processes whose programs have interrupts (an interrupt asks only these).
    var interruptOwners = SlotSet()
    /// Drivers' DMA grants and device register shadows (DMAGuard.swift), in a frame of its own.
    let dma: UnsafeMutablePointer<DMAGuard>
    /// Frames the kernel held before any process existed (its own page table): the
    /// audit's expectation of the allocated frames that no process owns.
    let kernelOwnFrames: Int

    /// - Parameters:
    ///   - taskStorage: room for `maxTasks` tasks; `registerStorage`: `maxTasks` frames.
    ///   - kernelRoot: the kernel's page table, whose global entries every space shares.
    public init(platform: P, frames: FrameAllocator<P.Memory>, image: BootImage, kernelRoot: PhysicalAddress,
                taskStorage: UnsafeMutablePointer<Task>, registerStorage: UnsafeMutablePointer<UInt64>,
                bootArguments: UnsafeRawBufferPointer?) {
        var frames = frames
        guard let guardFrame = frames.allocate() else { fatalError("no memory for the DMA guard") }
        let guardPage = platform.memory.pointer(to: guardFrame)
        let tablesOffset = (MemoryLayout<DMAGuard>.stride + 7) & ~7
        precondition(tablesOffset + DMAGuard.storageBytes <= pageSize, "the DMA guard outgrew its frame")
        dma = guardPage.bindMemory(to: DMAGuard.self, capacity: 1)
        dma.initialize(to: DMAGuard(storage: guardPage + tablesOffset))
        self.platform = platform
        self.frames = frames
        self.image = image
        self.kernelRoot = kernelRoot
        self.tasks = taskStorage
        self.registerStorage = registerStorage
        self.bootArguments = bootArguments
        kernelOwnFrames = frames.totalFrames - frames.freeFrames
        for slot in 0..<Self.maxTasks {
            (taskStorage + slot).initialize(to: Task())
        }
    }

    @inline(__always) public func registers(_ slot: Int) -> RegisterFile {
        RegisterFile(base: registerStorage + slot &* RegisterFile.slots)
    }

    public func task(_ slot: Int) -> Task { tasks[slot] }

    /// The current TaskID of a slot (without copying the task record).
    @inline(__always) public func id(of slot: Int) -> TaskID { TaskID(index: slot, generation: tasks[slot].generation) }

    /// The root page table of a slot's address space (0: none), for satp.
    @inline(__always) public func rootTable(of slot: Int) -> UInt64 { tasks[slot].rootTable }

    /// The frame to resume when this trap ends, if any process is ready.
    public var currentFrame: UnsafeMutablePointer<UInt64>? { current.map(frame(of:)) }

    /// A slot's saved registers, as trap.S wants them.
    @inline(__always) public func frame(of slot: Int) -> UnsafeMutablePointer<UInt64> {
        registerStorage + slot &* RegisterFile.slots
    }

    /// Starts every program the system description marks `start`, in order.
    public mutating func startBootPrograms() {
        for program in 0..<image.programCount where image.program(program).startsAtBoot {
            let arguments = image.program(program).receivesBootArguments ? bootArguments : nil
            do {
                _ = try spawn(program: program, arguments: arguments, parent: nil)
            } catch {
                platform.write("[kernel] cannot start ")
                image.program(program).name.withBytes { platform.write(bytes: $0) }
                platform.write(": ")
                platform.write(error.name)
                platform.write("\n")
            }
        }
        reschedule()
    }

    /// The periodic clock interrupt: promised replies (before the timers fire: see
    /// `superviseReplyPromises`), process timers, held restarts and the watchdog, and
    /// injections due at this time.
    public mutating func clockTick(now: UInt64) {
        superviseReplyPromises(now: now)
        expireTimers(now: now)
        superviseServers(now: now)
        injectionPointAtClock(now: now)
    }

    /// Resolves a TaskID to its slot if it names the live incarnation.
    @inline(__always) func liveSlot(_ id: TaskID) -> Int? {
        guard id.index < Self.maxTasks else { return nil }
        let state = tasks[id.index].state
        guard state != .free, state != .ended, state != .failed, tasks[id.index].generation == id.generation
        else { return nil }
        return id.index
    }
}
