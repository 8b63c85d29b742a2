// A process's first instruction. The kernel enters here with
//   a0 = heap base, a1 = heap size, a2 = argument string, a3 = its length,
//   sp = top of the stack (just below the argument string).
#if defined(__riscv)
    .section .text.start, "ax"
    .globl _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    call curio_start
1:  j 1b
#endif
