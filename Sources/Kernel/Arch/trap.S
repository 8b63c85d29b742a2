// Every trap, from user or kernel mode, enters at trap_vector.
//
// The kernel runs on one stack and never blocks inside itself: a blocked process is
// just a saved register file. So a trap is "save the running process's registers
// into its frame, run the Swift handler on the kernel stack, restore whichever frame
// the handler returns". Switching processes is returning a different frame.
//
// The save comes in two halves. First the registers a Swift call may clobber (ra,
// t*, a*) and sp and pc; then, for an ecall, kernel_fastpath (Kernel+Fastpath.swift)
// may answer an IPC or a trivial call at once. The rest — s0-s11, and gp and tp,
// which the kernel never uses (it is linked without gp relaxation, lld's default,
// and has no thread-local storage) — is still the process's own in the processor
// when kernel_fastpath returns, so
//   - the same frame back: restore the first half, sret;
//   - another frame: save the rest into the old frame, restore all of the new one;
//   - null, or any trap but an ecall: save the rest, then the slow path, kernel_trap.
//
// sscratch holds the running process's frame while in user mode and 0 while in the
// kernel, which is how a trap from the kernel itself (always a kernel bug: the kernel
// runs with interrupts off) is told apart.
//
// Trap frame (32 doublewords, index = register number, slot 0 holds the pc):
//
//   0      8      16     24          80     88          248
//   +------+------+------+-- ... ----+------+-- ... ----+------+
//   |  pc  |  ra  |  sp  |           |  a0  |           | t6   |
//   +------+------+------+-- ... ----+------+-- ... ----+------+
#if defined(__riscv)
    .equ SSTATUS_SPIE, 1 << 5
    .equ SSTATUS_SPP, 1 << 8
    .equ SSTATUS_FS, 3 << 13

    .macro SAVE_SECOND_HALF frame
    sd gp, 24(\frame)
    sd tp, 32(\frame)
    sd s0, 64(\frame)
    sd s1, 72(\frame)
    sd s2, 144(\frame)
    sd s3, 152(\frame)
    sd s4, 160(\frame)
    sd s5, 168(\frame)
    sd s6, 176(\frame)
    sd s7, 184(\frame)
    sd s8, 192(\frame)
    sd s9, 200(\frame)
    sd s10, 208(\frame)
    sd s11, 216(\frame)
    .endm

    .section .text.trap, "ax"
    .balign 4
    .globl trap_vector
trap_vector:
    csrrw sp, sscratch, sp
    beqz sp, trap_from_kernel
    sd ra, 8(sp)
    sd t0, 40(sp)
    sd t1, 48(sp)
    sd t2, 56(sp)
    sd a0, 80(sp)
    sd a1, 88(sp)
    sd a2, 96(sp)
    sd a3, 104(sp)
    sd a4, 112(sp)
    sd a5, 120(sp)
    sd a6, 128(sp)
    sd a7, 136(sp)
    sd t3, 224(sp)
    sd t4, 232(sp)
    sd t5, 240(sp)
    sd t6, 248(sp)
    csrrw t0, sscratch, zero
    sd t0, 16(sp)
    csrr t0, sepc
    sd t0, 0(sp)
    mv a0, sp
    lla sp, __kernel_stack_top
    csrr t0, scause
    li t1, 8
    bne t0, t1, slow_path
    // The frame stays on the kernel stack across the call (no register is free).
    addi sp, sp, -16
    sd a0, 0(sp)
    call kernel_fastpath
    ld t1, 0(sp)
    beqz a0, fastpath_declined
    // The caller again, the second half untouched: restore the first, return.
    // sstatus needs no change: this trap came from user mode (SPP = 0) with
    // interrupts on there (SPIE = 1), and FS stays off.
    beq a0, t1, restore_first_half
    // From one process's ecall to another's: sstatus is already right (as above).
    SAVE_SECOND_HALF t1
    j restore_frame

fastpath_declined:
    mv a0, t1
    lla sp, __kernel_stack_top
slow_path:
    SAVE_SECOND_HALF a0
    call kernel_trap
    // kernel_trap returns the frame to resume in a0.

    // sstatus is set explicitly on every return rather than inherited: SPP = 0 (the
    // frame is always a user process's), SPIE = 1 (interrupts on in user mode), and
    // FS = Off, so any floating-point instruction traps as illegal. The firmware
    // leaves FS on, and Curio saves no f-registers: with FS on, every process could
    // read what another left in them.
    .globl trap_return
trap_return:
    li t0, SSTATUS_SPP | SSTATUS_FS
    csrc sstatus, t0
    li t0, SSTATUS_SPIE
    csrs sstatus, t0
restore_frame:
    ld gp, 24(a0)
    ld tp, 32(a0)
    ld s0, 64(a0)
    ld s1, 72(a0)
    ld s2, 144(a0)
    ld s3, 152(a0)
    ld s4, 160(a0)
    ld s5, 168(a0)
    ld s6, 176(a0)
    ld s7, 184(a0)
    ld s8, 192(a0)
    ld s9, 200(a0)
    ld s10, 208(a0)
    ld s11, 216(a0)
restore_first_half:
    ld t0, 0(a0)
    csrw sepc, t0
    csrw sscratch, a0
    ld ra, 8(a0)
    ld sp, 16(a0)
    ld t0, 40(a0)
    ld t1, 48(a0)
    ld t2, 56(a0)
    ld a1, 88(a0)
    ld a2, 96(a0)
    ld a3, 104(a0)
    ld a4, 112(a0)
    ld a5, 120(a0)
    ld a6, 128(a0)
    ld a7, 136(a0)
    ld t3, 224(a0)
    ld t4, 232(a0)
    ld t5, 240(a0)
    ld t6, 248(a0)
    ld a0, 80(a0)
    sret

trap_from_kernel:
    // Restore sp and sscratch, then report: the kernel does not survive its own faults.
    csrrw sp, sscratch, sp
    la sp, __kernel_stack_top
    csrr a0, scause
    csrr a1, sepc
    csrr a2, stval
    mv a3, ra
    call kernel_fault
1:  wfi
    j 1b
#endif
