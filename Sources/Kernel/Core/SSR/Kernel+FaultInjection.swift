// Software-implemented fault injection, for watching servers fail and recover.
//
// `injectFault` arms one fault against a running program; it strikes on a trigger:
// when the next (or Nth) request is delivered, or after a pseudo-random number of
// clock ticks. The faults follow the models of the Rio, Nooks and MINIX 3 campaigns:
//
//   wild-write   a random register is pointed at unmapped memory, so the code that
//                next dereferences it makes a wild access
//   reg-flip     one bit of one saved register (x1..x31 or pc) flips
//   data-flip    one bit of the data/bss/heap flips
//   stack-flip   one bit of the live stack (sp..top) flips
//   ssr-flip     one bit of the SSR in the server's window flips
//   loop         the next instruction becomes `j .` (a hang for the watchdog)
//   illegal      the next instruction becomes an illegal one
//
// A flip is not always *activated*: the bit may never be read, or be masked. The
// kernel only reports what it did; campaigns judge the outcome from what clients see.
// The generator is a fixed-seed xorshift, so a run under -icount repeats exactly.
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
    /// Requests still to pass (afterRequests), or the clock time (randomTime).
    public var countdown: UInt64 = 0
    /// 0: strike at random; otherwise 1 + the register or byte offset to hit.
    public var aim: UInt = 0

    public init() {}
}

extension Kernel {
    mutating func injectFault(by caller: Int, into name: UserBuffer, kind: FaultKind, trigger: FaultTrigger,
                              argument: UInt, aim: UInt = 0) throws(SyscallError) {
        guard tasks[caller].mayManage else { throw .notPermitted }
        let program = try programIndex(named: name, in: caller)
        guard let target = firstLiveInstance(of: program) else { throw .notFound }
        var injection = PendingInjection()
        injection.kind = kind
        injection.trigger = trigger
        injection.aim = aim
        switch trigger {
        case .nextRequest:
            injection.countdown = 1
        case .afterRequests:
            injection.countdown = UInt64(max(argument, 1))
        case .randomTime:
            injection.countdown = platform.now() &+ 1 &+ random() % UInt64(max(argument, 1))
            noteDeadline(injection.countdown)
        }
        tasks[target].injection = injection
    }

    /// A request is being delivered to `slot`: count down request triggers.
    mutating func injectionPointAtDelivery(_ slot: Int) {
        guard let kind = tasks[slot].injection.kind, tasks[slot].injection.trigger != .randomTime else { return }
        tasks[slot].injection.countdown -= 1
        if tasks[slot].injection.countdown == 0 {
            let aim = tasks[slot].injection.aim
            tasks[slot].injection = PendingInjection()
            strike(kind, at: slot, aim: aim)
        }
    }

    /// The clock: strike a due time trigger if the tick interrupted its target.
    public mutating func injectionPointAtClock(now: UInt64) {
        for slot in 0..<Self.maxTasks where tasks[slot].isLive {
            guard let kind = tasks[slot].injection.kind, tasks[slot].injection.trigger == .randomTime else { continue }
            if tasks[slot].injection.countdown <= now, slot == currentSlot, tasks[slot].state == .runnable {
                let aim = tasks[slot].injection.aim
                tasks[slot].injection = PendingInjection()
                strike(kind, at: slot, aim: aim)
            } else {
                noteDeadline(tasks[slot].injection.countdown)
            }
        }
    }

    private mutating func strike(_ kind: FaultKind, at slot: Int, aim: UInt) {
        let file = registers(slot)
        let bit = UInt64(1) << (random() % 64)
        /// The aimed register or byte offset, else a random one below `limit`.
        func target(below limit: UInt64) -> UInt64 { aim > 0 ? UInt64(aim - 1) % limit : random() % limit }
        switch kind {
        case .wildWrite:
            let register = 1 + Int(target(below: 31))
            file.base[register] = 0x10 &+ (random() & 0xFF0)
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
            patchInstruction(at: file[.pc], with: 0x0000_006F, in: slot)
        case .illegalInstruction:
            patchInstruction(at: file[.pc], with: 0xFFFF_FFFF, in: slot)
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

    /// Overwrites the instruction at `pc` in the process's own copy of its code.
    private mutating func patchInstruction(at pc: UInt64, with instruction: UInt32, in slot: Int) {
        guard pc % 2 == 0, pc % UInt64(pageSize) <= UInt64(pageSize - 4), let space = tasks[slot].addressSpace,
              let frame = space.userFrame(of: VirtualAddress(pc), writable: false, memory: platform.memory)
        else { return }
        let word = platform.memory.pointer(to: frame)
        word.storeBytes(of: UInt16(truncatingIfNeeded: instruction), as: UInt16.self)
        (word + 2).storeBytes(of: UInt16(truncatingIfNeeded: instruction >> 16), as: UInt16.self)
        platform.synchronizeInstructions()
    }

    mutating func random() -> UInt64 {
        randomState ^= randomState << 13
        randomState ^= randomState >> 7
        randomState ^= randomState << 17
        return randomState
    }
}
