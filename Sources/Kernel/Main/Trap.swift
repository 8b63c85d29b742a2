// The Swift half of every trap (trap.S is the other half).
//
// The running process's registers are already saved in its frame. Classify the
// trap by scause, let the kernel core act on it, then pick the frame to resume:
// switch address space if the process changed, re-arm the clock if the next
// deadline changed, and return. With nothing ready the kernel waits here for an
// interrupt (wfi with sstatus.SIE off still wakes on a pending interrupt).
//
//   scause: bit 63 = interrupt
//     interrupts  5 supervisor timer, 9 supervisor external (PLIC)
//     exceptions  8 ecall from U; 12/13/15 instruction/load/store page fault;
//                 2 illegal instruction; 0/4/6 misaligned; 1/5/7 access fault;
//                 3 breakpoint

import CurioABI
import KernelArch
import KernelCore

/// The slot whose address space satp holds (-1: the kernel's own).
nonisolated(unsafe) var activeSlot = -1
nonisolated(unsafe) var nextTick: UInt64 = 0
nonisolated(unsafe) var armedDeadline: UInt64 = 0

@_cdecl("kernel_trap")
public func kernelTrap(frame: UnsafeMutablePointer<UInt64>) -> UnsafeMutablePointer<UInt64> {
    let cause = csr_read_scause()
    kernel.pointee.trapped()
    if cause >> 63 != 0 {
        handleInterrupt(code: cause & 0xFF)
    } else if let slot = kernel.pointee.current {
        if cause == 8 {
            kernel.pointee.syscall(from: slot)
        } else {
            let value = csr_read_stval()
            kernel.pointee.fault(slot, cause: faultCause(cause, instruction: value), address: value)
        }
    }
    return resumeCurrentProcess()
}

/// The IPC fastpath's half of an ecall (Kernel+Fastpath.swift). trap.S has saved only
/// the registers a call may clobber: return the frame to resume — the caller's, or
/// the partner's to switch to — or nil for the slow path (`kernel_trap`).
@_cdecl("kernel_fastpath")
public func kernelFastpath(frame: UnsafeMutablePointer<UInt64>) -> UnsafeMutablePointer<UInt64>? {
    let slot = kernel.pointee.currentSlot
    guard slot >= 0, let next = kernel.pointee.fastpath(from: slot) else { return nil }
    guard next != slot else { return frame }
    enterAddressSpace(of: next)
    return kernel.pointee.frame(of: next)
}

/// A trap taken in the kernel itself: report and stop the machine.
@_cdecl("kernel_fault")
public func kernelFault(cause: UInt64, pc: UInt64, value: UInt64, returnAddress: UInt64) -> Never {
    let console = KernelConsole()
    console.write("\n[kernel] PANIC: trap in the kernel: scause ")
    console.write(hex: cause)
    console.write(", pc ")
    console.write(hex: pc)
    console.write(", stval ")
    console.write(hex: value)
    console.write(", ra ")
    console.write(hex: returnAddress)
    console.write("\n")
    PowerControl.powerOff(code: 101)
}

func resumeCurrentProcess() -> UnsafeMutablePointer<UInt64> {
    while true {
        if kernel.pointee.platform.powerOffRequested { PowerControl.powerOff(code: kernel.pointee.platform.powerOffCode) }
        let slot = kernel.pointee.currentSlot
        if slot >= 0 {
            enterAddressSpace(of: slot)
            kernel.pointee.resuming(slot)
            armClock()
            return kernel.pointee.frame(of: slot)
        }
        armClock()
        waitForInterrupt()
    }
}

/// Points satp at `slot`'s address space, unless it is there already.
@inline(__always)
private func enterAddressSpace(of slot: Int) {
    guard slot != activeSlot else { return }
    kernel.pointee.platform.activate(AddressSpace(root: PhysicalAddress(kernel.pointee.rootTable(of: slot))),
                                     asid: kernel.pointee.asid(of: slot))
    activeSlot = slot
}

private func waitForInterrupt() {
    wait_for_interrupt()
    let pending = csr_read_sip()
    if pending & Interrupts.supervisorTimer != 0 || csr_read_time() >= armedDeadline {
        handleInterrupt(code: 5)
    }
    if pending & Interrupts.supervisorExternal != 0 {
        handleInterrupt(code: 9)
    }
}

private func handleInterrupt(code: UInt64) {
    switch code {
    case 5:
        let now = csr_read_time()
        if now >= nextTick { nextTick = now &+ Kernel<RISCVPlatform>.timeSlice }
        kernel.pointee.clockTick(now: now)
        armedDeadline = 0
    case 9:
        while let irq = PLIC.claim() {
            kernel.pointee.interrupt(irq)
            PLIC.complete(irq)
        }
    default:
        break
    }
    kernel.pointee.reschedule()
}

/// Programs the timer for the next tick or process deadline, whichever is first;
/// an SBI call costs hundreds of instructions, so only when that changes.
private func armClock() {
    if nextTick == 0 { nextTick = csr_read_time() &+ Kernel<RISCVPlatform>.timeSlice }
    let deadline = min(nextTick, kernel.pointee.earliestDeadline)
    if deadline != armedDeadline {
        SBI.setTimer(deadline)
        armedDeadline = deadline
    }
}

/// Swift traps (overflow, bounds, precondition) compile to `unimp`, which QEMU
/// reports as an illegal instruction with the encoding in stval: `c.unimp` (0x0000)
/// or `unimp` (csrrw x0, cycle, x0).
private func faultCause(_ scause: UInt64, instruction: UInt64) -> FaultCause {
    switch scause {
    case 0, 4, 6: .misalignedAccess
    case 1: .instructionAccessFault
    case 2 where instruction == 0 || instruction == 0xC000_1073: .runtimeTrap
    case 2: .illegalInstruction
    case 3: .breakpoint
    case 5: .loadAccessFault
    case 7: .storeAccessFault
    case 12: .instructionPageFault
    case 13: .loadPageFault
    default: .storePageFault
    }
}

enum Interrupts {
    static let supervisorTimer: UInt64 = 1 << 5
    static let supervisorExternal: UInt64 = 1 << 9
}
