// Software-implemented fault injection, for watching servers fail and recover.
//
// `injectFault` arms one fault against a running program; it strikes on a trigger:
// when the next (or Nth) request is delivered, after a pseudo-random number of
// clock ticks, or after a pseudo-random amount of the target's own execution — the
// last is the SWIFI literature's "a random instruction while the server executes":
// the kernel counts only the time the target runs (from each return into it to the
// next trap out of it) and arms the clock for the moment the count runs out, which
// under `-icount` is an exact instruction. The faults follow the models of the Rio,
// Nooks and MINIX 3 campaigns:
//
//   wild-write   a random 64-bit value is stored at a random mapped, writable
//                address of the target (its data, heap, stack or mapped SSR)
//   pointer-flip one bit flips in a register that points into the target's memory
//   reg-flip     one bit of one saved register (x1..x31 or pc) flips
//   data-flip    one bit of the data/bss/heap flips
//   stack-flip   one bit of the live stack (sp..top) flips
//   ssr-flip     one bit of the SSR in the server's window flips
//   loop         the next instruction becomes `j .` (a hang for the watchdog)
//   illegal      the next instruction becomes an illegal one
//   mutate       the next instruction is mutated as a programming error would
//                change it (CodeMutation.swift)
//
// A code fault (loop, illegal, mutate) may be *persistent*: the kernel then also
// applies the same patch to every later load of the program, so the restarted
// server has the same bug — the case that exercises poison requests, backoff and
// giving up. Persistent patches go when the program is given up or ends for good.
//
// A flip is not always *activated*: the bit may never be read, or be masked. The
// kernel only reports what it did; campaigns judge the outcome from what clients see.
// The generator is a xorshift; an injection may carry a seed, which then alone
// decides the moment and the target, so a run can be replayed (exactly under
// -icount); without one the kernel's own sequence goes on.
//
// A fault strikes only a process that is about to run: at a request's delivery, or
// at a clock tick that interrupted the target itself (a time trigger that comes due
// while the target is blocked waits for a tick that finds it running). A fault in a
// blocked process's saved registers would strike the kernel, which reads them at
// the next rendezvous, rather than the process. Memory is changed only through the
// target's own 4 KiB user pages, never through the kernel's mappings, whatever
// address a corrupted register holds.

import CurioABI

public struct PendingInjection: Sendable {
    public var kind: FaultKind?
    public var trigger: FaultTrigger = .nextRequest
    /// A code fault that also patches every later load of the program.
    public var persistent = false
    /// Requests still to pass (afterRequests), the clock time (randomTime), or clock
    /// ticks of the target's execution still to pass (execution).
    public var countdown: UInt64 = 0
    /// 0: strike at random; otherwise 1 + the register or byte offset to hit.
    public var aim: UInt = 0
    /// When the target was last resumed, for the execution trigger (0: not running).
    var resumedAt: UInt64 = 0

    public init() {}
}

extension Kernel {
    mutating func injectFault(by caller: Int, into name: UserBuffer, kind: FaultKind, persistent: Bool = false,
                              trigger: FaultTrigger, argument: UInt, aim: UInt = 0,
                              seed: UInt64 = 0) throws(SyscallError) {
        guard tasks[caller].mayManage else { throw .notPermitted }
        let program = try programIndex(named: name, in: caller)
        guard let target = firstLiveInstance(of: program) else { throw .notFound }
        if seed != 0 { randomState = Self.scrambled(seed) }
        var injection = PendingInjection()
        injection.kind = kind
        injection.trigger = trigger
        injection.aim = aim
        injection.persistent = persistent
        switch trigger {
        case .nextRequest:
            injection.countdown = 1
        case .afterRequests:
            injection.countdown = UInt64(max(argument, 1))
        case .randomTime:
            injection.countdown = platform.now() &+ 1 &+ random() % UInt64(max(argument, 1))
            noteDeadline(injection.countdown)
        case .execution:
            injection.countdown = 1 &+ random() % UInt64(max(argument, 1))
            executionTargets.insert(target)
        }
        tasks[target].injection = injection
    }

    /// The machine layer is about to return into `slot`: if its execution is being
    /// counted, the count starts now, and the clock is armed for when it runs out.
    @inline(__always)
    public mutating func resuming(_ slot: Int) {
        guard !executionTargets.isEmpty, executionTargets.contains(slot) else { return }
        resumingCounted(slot)
    }

    /// A trap has just taken the processor from the process in `currentSlot`: count
    /// what it ran, and strike if its count ran out.
    @inline(__always)
    public mutating func trapped() {
        guard !executionTargets.isEmpty, currentSlot >= 0, executionTargets.contains(currentSlot) else { return }
        trappedCounted(currentSlot)
    }

    private mutating func resumingCounted(_ slot: Int) {
        guard tasks[slot].isLive, tasks[slot].injection.kind != nil, tasks[slot].injection.trigger == .execution else {
            executionTargets.remove(slot)
            return
        }
        let now = platform.now()
        tasks[slot].injection.resumedAt = now
        noteDeadline(now &+ tasks[slot].injection.countdown)
    }

    private mutating func trappedCounted(_ slot: Int) {
        guard tasks[slot].isLive, let kind = tasks[slot].injection.kind, tasks[slot].injection.trigger == .execution
        else {
            executionTargets.remove(slot)
            return
        }
        let resumed = tasks[slot].injection.resumedAt
        guard resumed != 0 else { return }
        tasks[slot].injection.resumedAt = 0
        let ran = platform.now() &- resumed
        if ran < tasks[slot].injection.countdown {
            tasks[slot].injection.countdown -= ran
            return
        }
        let spent = tasks[slot].injection
        tasks[slot].injection = PendingInjection()
        executionTargets.remove(slot)
        strike(kind, at: slot, aim: spent.aim, persistent: spent.persistent)
    }

    /// A request is being delivered to `slot`: count down request triggers.
    mutating func injectionPointAtDelivery(_ slot: Int) {
        guard let kind = tasks[slot].injection.kind, tasks[slot].injection.trigger == .nextRequest
                || tasks[slot].injection.trigger == .afterRequests else { return }
        tasks[slot].injection.countdown -= 1
        if tasks[slot].injection.countdown == 0 {
            let spent = tasks[slot].injection
            tasks[slot].injection = PendingInjection()
            strike(kind, at: slot, aim: spent.aim, persistent: spent.persistent)
        }
    }

    /// The clock: strike a due time trigger if the tick interrupted its target.
    /// A due trigger whose target is not running becomes an execution trigger of one
    /// tick: it strikes at the target's next tick of running (re-arming the clock for
    /// a moment already past would only make it interrupt without end).
    public mutating func injectionPointAtClock(now: UInt64) {
        for slot in 0..<Self.maxTasks where tasks[slot].isLive {
            guard let kind = tasks[slot].injection.kind, tasks[slot].injection.trigger == .randomTime else { continue }
            if tasks[slot].injection.countdown > now {
                noteDeadline(tasks[slot].injection.countdown)
            } else if slot == currentSlot, tasks[slot].state == .runnable {
                let spent = tasks[slot].injection
                tasks[slot].injection = PendingInjection()
                strike(kind, at: slot, aim: spent.aim, persistent: spent.persistent)
            } else {
                tasks[slot].injection.trigger = .execution
                tasks[slot].injection.countdown = 1
                tasks[slot].injection.resumedAt = 0
                executionTargets.insert(slot)
            }
        }
    }

    private mutating func strike(_ kind: FaultKind, at slot: Int, aim: UInt, persistent: Bool) {
        let file = registers(slot)
        let bit = UInt64(1) << (random() % 64)
        /// The aimed register or byte offset, else a random one below `limit`.
        func target(below limit: UInt64) -> UInt64 { aim > 0 ? UInt64(aim - 1) % limit : random() % limit }
        switch kind {
        case .wildWrite:
            let pages = writablePages(of: slot)
            if pages > 0, let page = writablePage(target(below: UInt64(pages * pageSize)) / UInt64(pageSize), of: slot) {
                let offset = Int(random() % UInt64(pageSize / 8)) * 8
                platform.memory.pointer(to: page).advanced(by: offset).storeBytes(of: random(), as: UInt64.self)
            }
        case .pointerFlip:
            var pointers = InlineArray<32, UInt8>(repeating: 0)
            var count = 0
            for register in 1..<32 where pointsIntoMemory(file.base[register], of: slot) {
                pointers[count] = UInt8(register)
                count += 1
            }
            if count > 0 { file.base[Int(pointers[Int(target(below: UInt64(count)))])] ^= bit }
        case .registerBitFlip:
            file.base[Int(target(below: 32))] ^= bit
        case .dataBitFlip:
            let data = tasks[slot].dataEnd - tasks[slot].dataStart
            let heap = tasks[slot].heapEnd - tasks[slot].heapStart
            if data + heap > 0 {
                let offset = target(below: data + heap)
                flipBit(at: offset < data ? tasks[slot].dataStart + offset : tasks[slot].heapStart + offset - data,
                        in: slot)
            }
        case .stackBitFlip:
            let top = Self.stackTop
            let sp = file[.sp]
            if sp < top { flipBit(at: sp + target(below: top - sp), in: slot) }
        case .ssrBitFlip:
            if let record = windowRecord(of: slot) {
                flipBit(at: UInt64(SSRWindow.base) + target(below: UInt64(record.pageCount * pageSize)), in: slot)
            }
        case .endlessLoop:
            patchCode(at: file[.pc], with: 0x0000_006F, length: 4, in: slot, persistent: persistent)
        case .illegalInstruction:
            patchCode(at: file[.pc], with: 0xFFFF_FFFF, length: 4, in: slot, persistent: persistent)
        case .codeMutation:
            let mutation = CodeMutation(rawValue: UInt8(target(below: UInt64(CodeMutation.allCases.count)))) ?? .delete
            if let original = instruction(at: file[.pc], in: slot) {
                let (mutated, applied) = mutation.apply(to: original.word, bit: Int(random() % 64))
                patchCode(at: file[.pc], with: mutated, length: original.length, in: slot, persistent: persistent)
                platform.write("[kernel] mutation: ")
                platform.write(applied.name)
                platform.write(" at ")
                platform.write(hex: file[.pc])
                platform.write("\n")
            }
        }
        platform.write("[kernel] injected ")
        platform.write(kind.name)
        platform.write(" into ")
        image.program(tasks[slot].program).name.withBytes { platform.write(bytes: $0) }
        platform.write("\n")
    }

    /// Flips one random bit of the byte at a user address of `slot`, through its
    /// physical page (the kernel never writes user virtual addresses).
    private mutating func flipBit(at address: UInt64, in slot: Int) {
        guard let space = tasks[slot].addressSpace,
              let frame = space.userFrame(of: VirtualAddress(address), writable: false, memory: platform.memory)
        else { return }
        let byte = platform.memory.pointer(to: frame)
        byte.storeBytes(of: byte.load(as: UInt8.self) ^ UInt8(1 << (random() % 8)), as: UInt8.self)
    }

    /// Whether `value` is an address of a page mapped in the process (a pointer).
    private func pointsIntoMemory(_ value: UInt64, of slot: Int) -> Bool {
        guard let space = tasks[slot].addressSpace, Self.userSpace.contains(value) else { return false }
        return space.userFrame(of: VirtualAddress(value), writable: false, memory: platform.memory) != nil
    }

    /// How many writable 4 KiB user pages the process has mapped (its data, heap,
    /// stack, and the SSR its window shows).
    private func writablePages(of slot: Int) -> Int {
        var count = 0
        forEachWritablePage(of: slot) { _ in
            count += 1
            return false
        }
        return count
    }

    /// The frame of the `index`th writable page, in address order.
    private func writablePage(_ index: UInt64, of slot: Int) -> PhysicalAddress? {
        var remaining = index
        var found: PhysicalAddress?
        forEachWritablePage(of: slot) { frame in
            if remaining == 0 {
                found = frame
                return true
            }
            remaining -= 1
            return false
        }
        return found
    }

    /// Visits the frames of the process's writable 4 KiB user pages until `body`
    /// returns true; device windows are not memory and are left out.
    private func forEachWritablePage(of slot: Int, _ body: (PhysicalAddress) -> Bool) {
        guard let space = tasks[slot].addressSpace else { return }
        var address = Self.userSpace.lowerBound
        while address < Self.userSpace.upperBound {
            let stop = space.walk(VirtualAddress(address), memory: platform.memory)
            guard stop.entry.isValid, !stop.isBorrowed else {
                address = (address | (Sv39.leafSize(level: stop.level) - 1)) &+ 1
                continue
            }
            let flags = stop.entry.flags
            if stop.isPageLeaf, flags.contains(.user), flags.contains(.write),
               !(Self.deviceWindow..<Self.stackTop).contains(address) || flags.contains(.owned),
               body(stop.entry.frame) {
                return
            }
            address &+= UInt64(pageSize)
        }
    }

    /// The instruction at `pc` in the process's code (16 or 32 bits), if mapped.
    private func instruction(at pc: UInt64, in slot: Int) -> (word: UInt32, length: Int)? {
        guard pc % 2 == 0, pc % UInt64(pageSize) <= UInt64(pageSize - 4), let space = tasks[slot].addressSpace,
              let frame = space.userFrame(of: VirtualAddress(pc), writable: false, memory: platform.memory)
        else { return nil }
        let halfwords = platform.memory.pointer(to: frame)
        let low = halfwords.load(as: UInt16.self)
        if CodeMutation.isCompressed(low) { return (UInt32(low), 2) }
        return (UInt32(low) | UInt32((halfwords + 2).load(as: UInt16.self)) << 16, 4)
    }

    /// Overwrites `length` bytes of code at `pc` in the process's own copy of its
    /// code; a persistent patch is also kept for every later load of the program.
    private mutating func patchCode(at pc: UInt64, with instruction: UInt32, length: Int, in slot: Int,
                                    persistent: Bool) {
        guard pc % 2 == 0, pc % UInt64(pageSize) <= UInt64(pageSize - 4) else { return }
        var patch = CodePatch()
        patch.program = Int(tasks[slot].codeProgram)
        patch.address = pc
        patch.word = instruction
        patch.length = length
        guard apply(patch, to: slot) else { return }
        if persistent { keep(patch) }
    }

    /// Writes a patch into a process's code; false if the address is not its code.
    @discardableResult
    mutating func apply(_ patch: CodePatch, to slot: Int) -> Bool {
        guard let space = tasks[slot].addressSpace,
              let frame = space.userFrame(of: VirtualAddress(patch.address), writable: false, memory: platform.memory)
        else { return false }
        let halfwords = platform.memory.pointer(to: frame)
        halfwords.storeBytes(of: UInt16(truncatingIfNeeded: patch.word), as: UInt16.self)
        if patch.length == 4 {
            (halfwords + 2).storeBytes(of: UInt16(truncatingIfNeeded: patch.word >> 16), as: UInt16.self)
        }
        platform.synchronizeInstructions()
        return true
    }

    private mutating func keep(_ patch: CodePatch) {
        for index in 0..<Self.maxPersistentPatches where persistentPatches[index].program < 0 {
            persistentPatches[index] = patch
            return
        }
        platform.write("[kernel] persistent patches full: this one lasts until the restart\n")
    }

    /// Applies the persistent patches of the code a fresh process runs.
    mutating func applyPersistentPatches(to slot: Int) {
        for index in 0..<Self.maxPersistentPatches where persistentPatches[index].program == Int(tasks[slot].codeProgram) {
            apply(persistentPatches[index], to: slot)
        }
    }

    /// Code whose process is given up or ended for good loses its persistent bugs.
    mutating func dropPersistentPatches(of program: Int) {
        for index in 0..<Self.maxPersistentPatches where persistentPatches[index].program == program {
            persistentPatches[index] = CodePatch()
        }
    }

    static var maxPersistentPatches: Int { 8 }

    /// SplitMix64's finaliser: neighbouring seeds give unrelated generator states
    /// (xorshift must not start at 0).
    static func scrambled(_ seed: UInt64) -> UInt64 {
        var value = seed &+ 0x9E37_79B9_7F4A_7C15
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        value ^= value >> 31
        return value == 0 ? 1 : value
    }

    mutating func random() -> UInt64 {
        randomState ^= randomState << 13
        randomState ^= randomState >> 7
        randomState ^= randomState << 17
        return randomState
    }
}

/// A code fault kept for every later load of a program (a persistent bug).
public struct CodePatch: Sendable {
    /// -1: this entry is unused.
    public var program = -1
    public var address: UInt64 = 0
    public var word: UInt32 = 0
    /// 2 or 4 bytes.
    public var length = 4

    public init() {}
}
