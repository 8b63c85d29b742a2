// Where the kernel begins. OpenSBI jumps here in S-mode at 0x80200000 with the hart id
// in a0 and the device tree's physical address in a1, paging off, interrupts off.
// We only need a stack before Swift can run; everything else happens in kernel_main.
#if defined(__riscv)
    .section .text.entry, "ax"
    .globl _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, __kernel_stack_top
    // Zero .bss: Swift globals that start as zero live there.
    la t0, __bss_start
    la t1, __bss_end
1:  bgeu t0, t1, 2f
    sd zero, 0(t0)
    addi t0, t0, 8
    j 1b
2:  call kernel_main
3:  wfi
    j 3b

    .section .bss.stack, "aw", @nobits
    .balign 16
    .globl __kernel_stack_bottom
__kernel_stack_bottom:
    .space 65536
    .globl __kernel_stack_top
__kernel_stack_top:
#endif
