// Birth and death of processes.
//
// spawn: take the lowest free slot, build a fresh address space, load the program's
// ELF segments page by page from the boot image, add a stack (with an unmapped guard
// page below it), a heap and the program's device windows, and put the argument
// string at the top of the stack. Every page — including page tables — is charged
// to the process, and exceeding its budget fails the spawn cleanly.
//
// User address space (root-table entry 1, 0x4000_0000..0x8000_0000):
//
//   0x4000_0000  program segments (text r-x, rodata r--, data/bss rw-)
//                guard page, heap (rw-)
//   0x7000_0000  device windows (rw-, not owned: the frames are MMIO)
//                guard page, stack (rw-), argument string at the top
//   0x8000_0000  (end of user space)
//
// end: a process that exits, faults or is killed is taken out of every IPC
// relationship first — processes blocked on it get `deadEndpoint` — then the
// devices it drove are reset (they may hold its DMA addresses), then its address
// space and every frame it owned are freed. Its slot lingers as `ended`
// while a live parent may still `wait` for the status, and while a server has not
// yet cleaned up an SSR it owned (orphans stay charged to it); when the slot is
// freed its generation advances, so every TaskID naming the old process goes stale.
// A generation never wraps: a slot whose generation is exhausted is never reused.

import CurioABI

extension Kernel {
    @discardableResult
    public mutating func spawn(program: Int, arguments: UnsafeRawBufferPointer?, parent: TaskID?) throws(SyscallError) -> TaskID {
        // A version of another program runs only in that program's place (`upgrade`).
        guard image.program(program).versionOf == nil else { throw .notPermitted }
        if image.program(program).ssrPages > 0, firstLiveInstance(of: program) != nil { throw .alreadyRunning }
        guard let slot = freeSlot() else { throw .noFreeSlot }
        let keepsSSRs = image.program(program).keepsSSRs && !image.program(program).restartable
        guard !keepsSSRs || (0..<keptArguments.count).contains(where: { keptArguments[$0].slot < 0 }) else {
            throw .noFreeSlot
        }
        var task = Task()
        task.generation = tasks[slot].generation
        task.parent = parent
        try load(program, into: slot, as: task, arguments: arguments)
        if keepsSSRs { _ = keepArguments(of: slot, arguments) }
        makeRunnable(slot)
        return id(of: slot)
    }

    /// Builds a fresh process for `program` in `slot` from the record `task` (which
    /// carries what the slot keeps: generation, parent, restart history, queued
    /// senders), running the code of `code` (`program` itself, or a version of it
    /// after a live upgrade, whose entry carries the same authority). On failure the
    /// slot is left free and nothing is leaked.
    mutating func load(_ program: Int, code: Int? = nil, into slot: Int, as task: Task,
                       arguments: UnsafeRawBufferPointer?) throws(SyscallError) {
        let code = code ?? program
        let descriptor = image.program(code)
        let elf: ELFImage
        do {
            elf = try ELFImage(image.elf(of: code), allowedRange: Self.programSpace)
        } catch {
            throw .badArgument
        }
        guard Self.layoutFits(descriptor, programEnd: elf.endAddress) else { throw .badArgument }
        guard let space = AddressSpace.create(allocator: &frames, sharing: kernelRoot) else {
            throw .outOfMemory
        }
        var task = task
        task.program = program
        task.codeProgram = Int16(code)
        task.priority = descriptor.priority
        task.addressSpace = space
        task.pagesUsed = 1 + task.bindingPages
        task.pageBudget = descriptor.memoryPages
        task.sendMask = descriptor.sendMask
        task.mayManage = descriptor.mayManage
        task.restartable = descriptor.restartable
        task.promisesReplies = descriptor.promisesReplies && descriptor.restartable
        task.keepsSSRs = descriptor.keepsSSRs && !descriptor.restartable
        task.replyLimit = UInt64(descriptor.replyLimitMilliseconds) * Self.ticksPerMillisecond
        task.ssrPages = descriptor.ssrPages
        task.hardware = descriptor.hardware
        task.recovering = descriptor.ssrPages > 0
        tasks[slot] = task

        let file = registers(slot)
        file.clear()
        do throws(SyscallError) {
            for index in 0..<elf.loadSegmentCount {
                try loadSegment(elf.loadSegment(index), from: image.elf(of: code), into: slot)
            }
            let pageMask = UInt64(pageSize - 1)
            let heapBase = VirtualAddress((elf.endAddress + pageMask) & ~pageMask).advanced(by: pageSize)
            try mapFreshPages(at: heapBase, count: descriptor.heapPages, flags: [.read, .write], in: slot)
            tasks[slot].dataStart = Self.writableStart(of: elf)
            tasks[slot].dataEnd = elf.endAddress
            tasks[slot].heapStart = heapBase.rawValue
            tasks[slot].heapEnd = heapBase.rawValue + UInt64(descriptor.heapPages * pageSize)
            if descriptor.ssrPages > 0 { try prepareWindow(of: slot, scratch: space.root) }
            for device in 0..<descriptor.deviceCount {
                try mapDevice(descriptor.device(device), window: device, in: slot)
            }
            let stackBase = Self.stackTop - UInt64(descriptor.stackPages * pageSize)
            try mapFreshPages(at: VirtualAddress(stackBase), count: descriptor.stackPages, flags: [.read, .write], in: slot)

            var stackPointer = Self.stackTop
            let argumentCount = arguments?.count ?? 0
            if let arguments, argumentCount > 0 {
                stackPointer -= UInt64((argumentCount + 15) & ~15)
                do {
                    try space.copyOut(from: arguments.baseAddress!, count: argumentCount,
                                      to: VirtualAddress(stackPointer), memory: platform.memory)
                } catch {
                    throw .badAddress
                }
            }
            file[.pc] = elf.entryPoint
            file[.sp] = stackPointer
            file[.a0] = heapBase.rawValue
            file[.a1] = UInt64(descriptor.heapPages * pageSize)
            file[.a2] = stackPointer
            file[.a3] = UInt64(argumentCount)
        } catch {
            release(slot)
            throw .outOfMemory
        }
        applyPersistentPatches(to: slot)
        platform.flushAddressSpace(asid: asid(of: slot))
        if descriptor.interruptCount > 0 { interruptOwners.insert(slot) }
        for index in 0..<descriptor.interruptCount {
            platform.setInterrupt(descriptor.interrupt(index), enabled: true)
        }
    }

    /// Where the first writable segment starts (data bit flips aim from here on).
    static func writableStart(of elf: ELFImage) -> UInt64 {
        for index in 0..<elf.loadSegmentCount where elf.loadSegment(index).writable {
            return elf.loadSegment(index).virtualAddress
        }
        return elf.endAddress
    }

    /// Whether heap, device windows and stack fit the user address space without
    /// overlapping (checked before anything is allocated; the boot image bounds them
    /// only by the memory budget).
    static func layoutFits(_ program: ProgramDescriptor, programEnd: UInt64) -> Bool {
        let heapBytes = UInt64(program.heapPages) * UInt64(pageSize)
        let stackBytes = UInt64(program.stackPages) * UInt64(pageSize)
        let heapBase = (programEnd + UInt64(2 * pageSize - 1)) & ~UInt64(pageSize - 1)
        let devicesEnd = deviceWindow + UInt64(program.deviceCount) * deviceWindowStride
        return heapBytes <= deviceWindow - heapBase && stackBytes <= stackTop - devicesEnd - UInt64(pageSize)
    }

    /// The ASID of a slot's address space; 0 is the kernel's.
    public func asid(of slot: Int) -> UInt16 { UInt16(truncatingIfNeeded: slot &+ 1) }

    /// Ends a process. It must not be free or already ended.
    public mutating func end(_ slot: Int, status: ExitStatus) {
        let dying = tasks[slot]
        switch dying.state {
        case .sending:
            tasks[dying.partner].sendersWaiting.remove(slot)
        case .runnable, .awaitingReply, .receiving, .waiting, .held:
            break
        case .free, .ended, .failed:
            return
        }
        ready.remove(slot: slot, priority: dying.priority)
        closeWindow(of: slot)
        orphanBindings(of: slot)

        var waitingSenders = dying.sendersWaiting
        while let sender = waitingSenders.removeFirst() {
            registers(sender).setResult(0, SyscallError.deadEndpoint.rawValue)
            makeRunnable(sender)
        }
        for other in 0..<Self.maxTasks where other != slot {
            let task = tasks[other]
            if task.state == .awaitingReply && task.partner == slot {
                registers(other).setResult(0, SyscallError.deadEndpoint.rawValue)
                makeRunnable(other)
            }
            if let parent = task.parent, parent.index == slot, parent.generation == dying.generation {
                tasks[other].parent = nil
                if task.state == .ended { release(other) }
            }
        }
        for index in 0..<dying.hardware.interruptCount {
            platform.setInterrupt(dying.hardware.interrupt(index), enabled: false)
        }

        if dying.ssrPages > 0 {
            dropOrphans(of: dying.program)
        }
        dropPersistentPatches(of: Int(dying.codeProgram))
        if dying.keepsSSRs { forgetArguments(of: slot) }
        quiesceDevices(of: slot)
        let parentSlot = dying.parent.flatMap { liveSlot($0) }
        release(slot, keepingStatus: parentSlot != nil ? status : nil)
        if let parentSlot, tasks[parentSlot].state == .waiting, tasks[parentSlot].partner == slot {
            registers(parentSlot).setResult(0, 0)
            registers(parentSlot).setResult(1, status.rawValue)
            makeRunnable(parentSlot)
            release(slot)
        }
        if current == slot { current = nil }
    }

    mutating func wait(by caller: Int, for child: TaskID) throws(SyscallError) {
        guard child.index < Self.maxTasks, tasks[child.index].state != .free,
              tasks[child.index].generation == child.generation else { throw .notFound }
        guard let parent = tasks[child.index].parent, parent == id(of: caller) else {
            throw .notChild
        }
        if tasks[child.index].state == .ended {
            registers(caller).setResult(1, tasks[child.index].exitStatus)
            release(child.index)
        } else if tasks[child.index].state == .failed {
            // A server given up keeps its slot (its clients are told `serverFailed`).
            registers(caller).setResult(1, tasks[child.index].exitStatus)
            tasks[child.index].parent = nil
        } else {
            block(caller, in: .waiting, on: child.index)
        }
    }

    /// Posts due timer notifications; returns the earliest deadline still pending.
    public mutating func expireTimers(now: UInt64) {
        var earliest: UInt64?
        for slot in 0..<Self.maxTasks where tasks[slot].isLive && tasks[slot].timerDeadline != 0 {
            let deadline = tasks[slot].timerDeadline
            if deadline <= now {
                tasks[slot].timerDeadline = 0
                notify(slot, bits: tasks[slot].timerBits)
            } else if earliest == nil || deadline < earliest! {
                earliest = deadline
            }
        }
        nextTimerDeadline = earliest
    }

    /// Posts an interrupt to the process that owns it, masking it until acknowledged.
    /// Only the processes in `interruptOwners` are asked, not every slot.
    public mutating func interrupt(_ irq: UInt32) {
        platform.setInterrupt(irq, enabled: false)
        var candidates = interruptOwners
        while let slot = candidates.first {
            candidates.remove(slot)
            if tasks[slot].isLive, let index = tasks[slot].hardware.index(ofInterrupt: irq) {
                notify(slot, bits: KernelNotification.firstInterruptBit << UInt(index))
                return
            }
        }
    }

    private func freeSlot() -> Int? {
        for slot in 0..<Self.maxTasks where tasks[slot].state == .free && tasks[slot].generation != .max {
            return slot
        }
        return nil
    }

    /// Frees a slot's memory. With a status the slot stays `ended` for its parent;
    /// without one it stays `ended` (parentless) while it still owns orphaned SSRs,
    /// and otherwise becomes free with its generation advanced.
    mutating func release(_ slot: Int, keepingStatus status: ExitStatus? = nil) {
        if let space = tasks[slot].addressSpace {
            platform.flushAddressSpace(asid: asid(of: slot))
            _ = space.destroy(allocator: &frames)
        }
        tasks[slot].addressSpace = nil
        tasks[slot].pagesUsed = tasks[slot].bindingPages
        tasks[slot].sendersWaiting = SlotSet()
        tasks[slot].notificationsPending = 0
        tasks[slot].timerDeadline = 0
        tasks[slot].injection = PendingInjection()
        interruptOwners.remove(slot)
        if let status {
            tasks[slot].state = .ended
            tasks[slot].exitStatus = status.rawValue
        } else if tasks[slot].hasBindings {
            tasks[slot].state = .ended
            tasks[slot].parent = nil
        } else {
            let generation = tasks[slot].generation == .max ? .max : tasks[slot].generation + 1
            tasks[slot] = Task()
            tasks[slot].generation = generation
        }
    }

    private mutating func loadSegment(_ segment: ELFSegment, from elf: UnsafeRawBufferPointer,
                                      into slot: Int) throws(SyscallError) {
        var flags: PageFlags = []
        if segment.readable { flags.insert(.read) }
        if segment.writable { flags.insert(.write) }
        if segment.executable { flags.insert(.execute) }
        let pages = Int((segment.memorySize + UInt64(pageSize) - 1) / UInt64(pageSize))
        for page in 0..<pages {
            let frame = try allocateFrame(for: slot)
            let offset = page * pageSize
            if UInt64(offset) < segment.fileSize {
                let count = min(pageSize, Int(segment.fileSize) - offset)
                let source = elf.baseAddress! + Int(segment.fileOffset) + offset
                platform.memory.pointer(to: frame).copyMemory(from: source, byteCount: count)
            }
            try map(VirtualAddress(segment.virtualAddress).advanced(by: offset), to: frame,
                    flags: flags.union([.user, .owned]), in: slot)
        }
    }

    private mutating func mapFreshPages(at base: VirtualAddress, count: Int, flags: PageFlags,
                                        in slot: Int) throws(SyscallError) {
        for page in 0..<count {
            let frame = try allocateFrame(for: slot)
            try map(base.advanced(by: page * pageSize), to: frame, flags: flags.union([.user, .owned]), in: slot)
        }
    }

    private mutating func allocateFrame(for slot: Int) throws(SyscallError) -> PhysicalAddress {
        guard tasks[slot].pagesUsed < tasks[slot].pageBudget, let frame = frames.allocate() else {
            throw .outOfMemory
        }
        tasks[slot].pagesUsed += 1
        return frame
    }

    /// Maps a page, charging any page tables it needed; frees an unmappable owned frame.
    mutating func map(_ address: VirtualAddress, to frame: PhysicalAddress, flags: PageFlags,
                              in slot: Int) throws(SyscallError) {
        guard let space = tasks[slot].addressSpace else { throw .badAddress }
        do {
            tasks[slot].pagesUsed += try space.map(address, to: frame, flags: flags, allocator: &frames)
        } catch {
            if flags.contains(.owned) {
                frames.free(frame)
                tasks[slot].pagesUsed -= 1
            }
            throw .outOfMemory
        }
        guard tasks[slot].pagesUsed <= tasks[slot].pageBudget else { throw .outOfMemory }
    }
}
