// The machine-level half of Curio's user runtime: the system-call instruction and
// the process entry point. Everything above it is Swift (CurioUser).
#pragma once
#include <stdint.h>
#include <stddef.h>

/// Registers a0...a7 as the kernel left them after `ecall` (a6 carries `receive`'s
/// request id and a7 its seal, for servers with state regions; calls that do not
/// set them leave the argument and the syscall number there).
struct curio_syscall_result {
    uint64_t status, r1, r2, r3, r4, r5, r6, r7;
};

/// `ecall` with a0...a6 and the number in a7, and t0 = `seal`: a reply's seal (0 for
/// none and for every other call; see `Syscall.reply`).
static inline __attribute__((always_inline)) struct curio_syscall_result curio_syscall_sealed(
    uint64_t number, uint64_t arg0, uint64_t arg1, uint64_t arg2, uint64_t arg3, uint64_t arg4, uint64_t arg5,
    uint64_t arg6, uint64_t seal) {
    struct curio_syscall_result result = {0, 0, 0, 0, 0, 0, 0, 0};
#if defined(__riscv)
    register uint64_t a0 __asm__("a0") = arg0;
    register uint64_t a1 __asm__("a1") = arg1;
    register uint64_t a2 __asm__("a2") = arg2;
    register uint64_t a3 __asm__("a3") = arg3;
    register uint64_t a4 __asm__("a4") = arg4;
    register uint64_t a5 __asm__("a5") = arg5;
    register uint64_t a6 __asm__("a6") = arg6;
    register uint64_t a7 __asm__("a7") = number;
    register uint64_t t0 __asm__("t0") = seal;
    __asm__ volatile("ecall"
                     : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a4), "+r"(a5), "+r"(a6), "+r"(a7)
                     : "r"(t0)
                     : "memory");
    result.status = a0;
    result.r1 = a1;
    result.r2 = a2;
    result.r3 = a3;
    result.r4 = a4;
    result.r5 = a5;
    result.r6 = a6;
    result.r7 = a7;
#else
    (void)number; (void)arg0; (void)arg1; (void)arg2; (void)arg3; (void)arg4; (void)arg5; (void)arg6; (void)seal;
    __builtin_trap();
#endif
    return result;
}

static inline __attribute__((always_inline)) struct curio_syscall_result curio_syscall(uint64_t number, uint64_t arg0, uint64_t arg1,
                                                        uint64_t arg2, uint64_t arg3, uint64_t arg4,
                                                        uint64_t arg5, uint64_t arg6) {
    return curio_syscall_sealed(number, arg0, arg1, arg2, arg3, arg4, arg5, arg6, 0);
}

/// The startup argument string the kernel placed at the top of the stack.
const uint8_t *curio_arguments(void);
size_t curio_arguments_length(void);

/// Executes an instruction that is illegal in every RISC-V profile (for fault tests).
static inline __attribute__((always_inline)) void curio_illegal_instruction(void) {
#if defined(__riscv)
    __asm__ volatile(".word 0xffffffff");
#endif
}

/// Writes `value` into the floating-point register f31 and reads f31 back (for
/// isolation tests: Curio switches no FP state, so the kernel must make every FP
/// instruction trap). Encoded as words: programs are built for rv64imac.
static inline __attribute__((always_inline)) uint64_t curio_fp_store_and_load(uint64_t value) {
    uint64_t result = 0;
#if defined(__riscv)
    register uint64_t a0 __asm__("a0") = value;
    __asm__ volatile(".word 0xF2050FD3\n"   /* fmv.d.x f31, a0 */
                     ".word 0xE20F8553"      /* fmv.x.d a0, f31 */
                     : "+r"(a0) :: "memory");
    result = a0;
#else
    (void)value;
#endif
    return result;
}

/// Reads f31 without writing it first.
static inline __attribute__((always_inline)) uint64_t curio_fp_load(void) {
    uint64_t result = 0;
#if defined(__riscv)
    register uint64_t a0 __asm__("a0");
    __asm__ volatile(".word 0xE20F8553" : "=r"(a0) :: "memory");  /* fmv.x.d a0, f31 */
    result = a0;
#endif
    return result;
}

/// A store and a load the compiler cannot elide or turn into a trap, even at
/// address 0 (for fault tests).
static inline __attribute__((always_inline)) void curio_store64(uint64_t address, uint64_t value) {
#if defined(__riscv)
    __asm__ volatile("sd %1, 0(%0)" ::"r"(address), "r"(value) : "memory");
#else
    (void)address; (void)value;
#endif
}

static inline __attribute__((always_inline)) uint64_t curio_load64(uint64_t address) {
    uint64_t value = 0;
#if defined(__riscv)
    __asm__ volatile("ld %0, 0(%1)" : "=r"(value) : "r"(address) : "memory");
#else
    (void)address;
#endif
    return value;
}

/// The heap the kernel mapped for this process (malloc.c manages it).
void curio_heap_statistics(size_t *total, size_t *free);

static inline __attribute__((always_inline)) uint64_t curio_read_instret(void) {
    uint64_t value = 0;
#if defined(__riscv)
    __asm__ volatile("rdinstret %0" : "=r"(value));
#endif
    return value;
}

/// Device registers a server has mapped (never cached or merged by the compiler).
static inline __attribute__((always_inline)) uint8_t curio_mmio_read8(volatile uint8_t *address) { return *address; }
static inline __attribute__((always_inline)) void curio_mmio_write8(volatile uint8_t *address, uint8_t value) { *address = value; }
static inline __attribute__((always_inline)) uint32_t curio_mmio_read32(volatile uint32_t *address) { return *address; }

/// The stack pointer where this is inlined (0 on the host), for a server loop that
/// checks its frame has not moved under it (a flipped `sp` that stays in the stack).
static inline __attribute__((always_inline)) uintptr_t curio_stack_pointer(void) {
#if defined(__riscv)
    uintptr_t sp;
    __asm__ volatile("mv %0, sp" : "=r"(sp));
    return sp;
#else
    return 0;
#endif
}

/// Orders this hart's memory accesses, device memory included, before and after
/// (a driver's barrier between filling a ring and telling the device about it).
static inline __attribute__((always_inline)) void curio_fence(void) {
#if defined(__riscv)
    __asm__ volatile("fence iorw, iorw" ::: "memory");
#endif
}
