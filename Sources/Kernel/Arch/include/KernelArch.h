// The riscv64 hardware layer the Swift kernel sees: CSR access, TLB fences, MMIO,
// SBI calls and the two assembly entry points. Everything here is a thin inline
// wrapper over one instruction; policy lives in Swift.
//
// The Swift kernel is also compiled for the host by `swift test`; there the
// wrappers exist but trap, and the assembly is empty.
#pragma once
#include <stdint.h>

#if defined(__riscv)
#define ARCH_ASM(...) __asm__ volatile(__VA_ARGS__)
#else
#define ARCH_ASM(...) __builtin_trap()
#endif

#define ARCH_CSR_ACCESSORS(name)                                                   \
    static inline __attribute__((always_inline)) uint64_t csr_read_##name(void) {                                 \
        uint64_t value = 0;                                                        \
        ARCH_ASM("csrr %0, " #name : "=r"(value));                                 \
        return value;                                                              \
    }                                                                              \
    static inline __attribute__((always_inline)) void csr_write_##name(uint64_t value) {                          \
        ARCH_ASM("csrw " #name ", %0" ::"r"(value));                               \
    }                                                                              \
    static inline __attribute__((always_inline)) void csr_set_##name(uint64_t bits) {                             \
        ARCH_ASM("csrs " #name ", %0" ::"r"(bits));                                \
    }                                                                              \
    static inline __attribute__((always_inline)) void csr_clear_##name(uint64_t bits) {                           \
        ARCH_ASM("csrc " #name ", %0" ::"r"(bits));                                \
    }

ARCH_CSR_ACCESSORS(sstatus)
ARCH_CSR_ACCESSORS(sie)
ARCH_CSR_ACCESSORS(sip)
ARCH_CSR_ACCESSORS(stvec)
ARCH_CSR_ACCESSORS(satp)
ARCH_CSR_ACCESSORS(scause)
ARCH_CSR_ACCESSORS(stval)
ARCH_CSR_ACCESSORS(sepc)
ARCH_CSR_ACCESSORS(sscratch)

static inline __attribute__((always_inline)) uint64_t csr_read_time(void) {
    uint64_t value = 0;
    ARCH_ASM("rdtime %0" : "=r"(value));
    return value;
}

static inline __attribute__((always_inline)) uint64_t csr_read_instret(void) {
    uint64_t value = 0;
    ARCH_ASM("rdinstret %0" : "=r"(value));
    return value;
}

/// Flush every TLB entry of every address space.
static inline __attribute__((always_inline)) void sfence_vma_all(void) { ARCH_ASM("sfence.vma zero, zero" ::: "memory"); }

/// Flush the TLB entries of one address space.
static inline __attribute__((always_inline)) void sfence_vma_asid(uint64_t asid) { ARCH_ASM("sfence.vma zero, %0" ::"r"(asid) : "memory"); }

/// Flush one page of one address space.
static inline __attribute__((always_inline)) void sfence_vma_page(uint64_t address, uint64_t asid) {
    ARCH_ASM("sfence.vma %0, %1" ::"r"(address), "r"(asid) : "memory");
}

/// Make instruction fetch see stores to code (fault injection patches programs).
static inline __attribute__((always_inline)) void fence_instructions(void) { ARCH_ASM("fence.i" ::: "memory"); }

static inline __attribute__((always_inline)) void wait_for_interrupt(void) { ARCH_ASM("wfi" ::: "memory"); }

static inline __attribute__((always_inline)) uint32_t mmio_read32(uint64_t address) { return *(volatile uint32_t *)address; }
static inline __attribute__((always_inline)) void mmio_write32(uint64_t address, uint32_t value) { *(volatile uint32_t *)address = value; }
static inline __attribute__((always_inline)) uint8_t mmio_read8(uint64_t address) { return *(volatile uint8_t *)address; }
static inline __attribute__((always_inline)) void mmio_write8(uint64_t address, uint8_t value) { *(volatile uint8_t *)address = value; }

struct sbi_result {
    int64_t error;
    int64_t value;
};

/// One call into the SBI firmware (OpenSBI): extension in a7, function in a6.
static inline __attribute__((always_inline)) struct sbi_result sbi_call(uint64_t extension, uint64_t function, uint64_t arg0, uint64_t arg1) {
    struct sbi_result result = {0, 0};
#if defined(__riscv)
    register uint64_t a0 __asm__("a0") = arg0;
    register uint64_t a1 __asm__("a1") = arg1;
    register uint64_t a6 __asm__("a6") = function;
    register uint64_t a7 __asm__("a7") = extension;
    __asm__ volatile("ecall" : "+r"(a0), "+r"(a1) : "r"(a6), "r"(a7) : "memory");
    result.error = (int64_t)a0;
    result.value = (int64_t)a1;
#else
    (void)extension; (void)function; (void)arg0; (void)arg1;
    __builtin_trap();
#endif
    return result;
}

/// Resume user execution from a trap frame (restores every register, then `sret`).
/// Defined in trap.S.
void trap_return(uint64_t *frame) __attribute__((noreturn));

/// The trap vector: `stvec` points here. Defined in trap.S.
void trap_vector(void);

/// Addresses the linker script defines.
extern char __kernel_end[], __boot_image_start[], __boot_image_end[], __text_start[], __text_end[], __data_start[];
static inline __attribute__((always_inline)) void *kernel_end_address(void) { return __kernel_end; }
/// The kernel's sections, for its page permissions: text [text_start, text_end), constants
/// and the boot image [text_end, data_start), writable data [data_start, kernel_end).
static inline __attribute__((always_inline)) const void *kernel_text_start_address(void) { return __text_start; }
static inline __attribute__((always_inline)) const void *kernel_text_end_address(void) { return __text_end; }
static inline __attribute__((always_inline)) const void *kernel_data_start_address(void) { return __data_start; }
static inline __attribute__((always_inline)) const void *boot_image_start_address(void) { return __boot_image_start; }
static inline __attribute__((always_inline)) const void *boot_image_end_address(void) { return __boot_image_end; }
static inline __attribute__((always_inline)) void *trap_vector_address(void) { return (void *)trap_vector; }

/// Room for the task table and the register frames, reserved in .bss (storage.c).
void *kernel_task_storage(void);
long kernel_task_storage_size(void);
uint64_t *kernel_register_storage(void);
/// Room for the kernel core's state (the Swift `Kernel` value), reached by pointer so
/// a trap never copies it.
#define KERNEL_STATE_DOUBLEWORDS 512
extern uint64_t kernel_state[KERNEL_STATE_DOUBLEWORDS];
static inline __attribute__((always_inline)) void *kernel_state_storage(void) { return kernel_state; }
static inline __attribute__((always_inline)) long kernel_state_storage_size(void) { return (long)sizeof(kernel_state); }
/// Where boot copies the kernel command line out of the device tree.
uint8_t *kernel_command_line_storage(void);
long kernel_command_line_capacity(void);
