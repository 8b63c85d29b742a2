/*
 * instruction-marks: a QEMU TCG plugin that gives `make bench` the number of guest
 * instructions retired between two points of a Curio program, excluding idle time.
 *
 * Why it exists. Under `-icount shift=0,sleep=off` the guest's `instret` is QEMU's
 * virtual clock, one step per retired instruction, as long as the guest is busy.
 * When it idles (`wfi`) with a timer armed, QEMU does not sleep: it jumps the clock
 * to the timer's deadline. Curio always arms its 10 ms scheduler tick, so a phase
 * that waits for the disk reads back from `rdinstret` its instructions *plus* up to
 * 10,000,000 per wait — the filesystem benchmarks, which wait for virtio-blk on
 * every block, would measure the tick, not the code.
 *
 * What it does. It counts every instruction QEMU executes (all privilege modes,
 * like `instret`; an idle `wfi` retires nothing while the clock jumps), and each
 * time the guest executes `rdinstret` (csrrs rd, instret, x0) at a user address it
 * records the count at that point. The guest's own brackets thus become the marks:
 * `fsbench` reads `rdinstret` before and after each phase, and curio-bench pairs the
 * marks in the same order. At exit the plugin writes one line per mark to the file
 * named by its `out=` argument:
 *
 *     mark <instructions executed so far> <idle waits (wfi) so far> <the rdinstret's address, hex>
 *
 * The plugin API it uses is declared in qemu-plugin-subset.h.
 */

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin-subset.h"

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* ---- counting ---------------------------------------------------------------- */

/*
 *   31        20 19  15 14  12 11   7 6       0
 *  +------------+------+------+------+---------+
 *  | csr 0xC02  | rs1 0| 010  |  rd  | 1110011 |   csrrs rd, instret, x0
 *  +------------+------+------+------+---------+
 */
static const uint32_t rdinstretMask = 0xFFFFF07F;
static const uint32_t rdinstretBits = 0xC0202073;
/* Curio's programs live below RAM; the kernel and the firmware inside it. */
static const uint64_t firstKernelAddress = 0x80000000;

/* -smp 1: one vCPU, so one counter, bumped inline by the generated code. */
static uint64_t executed;
/* Idle waits (`wfi` executed), and the instructions from a `wfi` to the next `sret`:
 * the kernel's idle loop, i.e. the scheduler ticks the jumping clock makes it take
 * while nothing can run, and the wake-up that ends the wait. */
static uint64_t waits, idleExecuted, idleSince;
static bool idle;
static const uint32_t wfiEncoding = 0x10500073;
static const uint32_t sretEncoding = 0x10200073;

struct mark {
    uint64_t executed;
    uint64_t idleExecuted;
    uint64_t waits;
    uint64_t address;
};
static struct mark *marks;
static size_t markCount, markCapacity;
static char *outputPath;

static void record(unsigned int vcpu, void *address) {
    (void)vcpu;
    if (markCount == markCapacity) {
        markCapacity = markCapacity ? markCapacity * 2 : 256;
        marks = realloc(marks, markCapacity * sizeof *marks);
        if (!marks) abort();
    }
    /* Whether this instruction's own inline count ran yet is the same at every mark,
     * so differences between marks are exact. */
    marks[markCount++] = (struct mark){ executed, idleExecuted, waits, (uint64_t)(uintptr_t)address };
}

static void waiting(unsigned int vcpu, void *userdata) {
    (void)vcpu;
    (void)userdata;
    if (!idle) idleSince = executed;
    idle = true;
}

static void returning(unsigned int vcpu, void *userdata) {
    (void)vcpu;
    (void)userdata;
    if (idle) idleExecuted += executed - idleSince;
    idle = false;
}

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t count = qemu_plugin_tb_n_insns(tb);
    for (size_t index = 0; index < count; index++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, index);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &executed, 1);
        uint32_t encoding = 0;
        size_t size = qemu_plugin_insn_size(insn);
        if (size != sizeof encoding) continue;
        memcpy(&encoding, qemu_plugin_insn_data(insn), sizeof encoding);
        uint64_t address = qemu_plugin_insn_vaddr(insn);
        if (encoding == wfiEncoding) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &waits, 1);
            qemu_plugin_register_vcpu_insn_exec_cb(insn, waiting, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (encoding == sretEncoding) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, returning, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
        if ((encoding & rdinstretMask) == rdinstretBits && address < firstKernelAddress) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, record, QEMU_PLUGIN_CB_NO_REGS,
                                                   (void *)(uintptr_t)address);
        }
    }
}

static void finished(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    FILE *file = fopen(outputPath, "w");
    if (!file) return;
    for (size_t index = 0; index < markCount; index++) {
        fprintf(file, "mark %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIx64 "\n", marks[index].executed,
                marks[index].idleExecuted, marks[index].waits, marks[index].address);
    }
    fprintf(file, "total %" PRIu64 "\n", executed);
    fclose(file);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    for (int index = 0; index < argc; index++) {
        if (strncmp(argv[index], "out=", 4) == 0) outputPath = strdup(argv[index] + 4);
    }
    if (!outputPath) {
        fprintf(stderr, "instruction-marks: give out=FILE\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
    qemu_plugin_register_atexit_cb(id, finished, NULL);
    return 0;
}
