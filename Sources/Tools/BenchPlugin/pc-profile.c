/*
 * pc-profile: a QEMU TCG plugin that counts how often every guest instruction
 * executes, for `make profile` (Sources/Tools/Profile reads what it writes).
 *
 * Why per instruction and per host page. Every Curio program is linked at the same
 * virtual address (0x40000000), so an address alone does not say which program ran.
 * QEMU translates each guest page from a host page of its own, so the pair
 * (guest address, host page) does: the profile tool later matches each host page's
 * instruction bytes against the programs' ELF files to name its program.
 *
 * Phases. A Curio benchmark brackets what it measures with `rdinstret` (fsbench:
 * one pair per phase). The plugin numbers the `rdinstret`s executed at user
 * addresses: phase 0 runs until the first, phase k from the k-th to the next.
 * With `phase=A` or `phase=A-B` it counts only inside those phases.
 *
 * At exit it writes one line per instruction that ran:
 *
 *     <guest address, hex> <host page, hex> <first 4 bytes of the instruction, hex> <count>
 *
 * then `phases <n>`, and with `phase=` one `phase <k> <instructions>` line for each.
 * The plugin API it uses is declared in qemu-plugin-subset.h.
 */

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin-subset.h"

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* ---- counters ------------------------------------------------------------------ */

/*   csrrs rd, instret, x0: csr 0xC02, rs1 0, funct3 010, opcode 1110011 */
static const uint32_t rdinstretMask = 0xFFFFF07F;
static const uint32_t rdinstretBits = 0xC0202073;
static const uint64_t firstKernelAddress = 0x80000000;

typedef struct {
    uint64_t address;
    uint64_t hostPage;
    uint32_t bytes;
    uint64_t count;
} Counter;

enum { counterCapacity = 1 << 21, tableSize = 1 << 22, phaseCapacity = 1 << 16 };
static Counter *counters;
static uint32_t countersUsed;
/* Open addressing over (address, host page): index + 1, 0 for empty. */
static uint32_t *table;

static char outputPath[1024] = "pc-profile.out";
static int firstPhase = -1, lastPhase = -1;
static int phase;
static uint64_t phaseInstructions[phaseCapacity];

static Counter *counterFor(uint64_t address, uint64_t hostPage, uint32_t bytes) {
    uint64_t key = address * 0x9E3779B97F4A7C15ull ^ hostPage * 0xC2B2AE3D27D4EB4Full;
    uint32_t index = (uint32_t)(key >> 40) & (tableSize - 1);
    for (;;) {
        uint32_t entry = table[index];
        if (entry == 0) {
            if (countersUsed == counterCapacity) return NULL;
            counters[countersUsed] = (Counter){address, hostPage, bytes, 0};
            table[index] = ++countersUsed;
            return &counters[countersUsed - 1];
        }
        Counter *counter = &counters[entry - 1];
        if (counter->address == address && counter->hostPage == hostPage) return counter;
        index = (index + 1) & (tableSize - 1);
    }
}

static void markExecuted(unsigned int vcpu, void *unused) {
    (void)vcpu;
    (void)unused;
    if (phase < phaseCapacity - 1) phase++;
}

static void countInPhase(unsigned int vcpu, void *userdata) {
    (void)vcpu;
    phaseInstructions[phase]++;
    if (phase >= firstPhase && phase <= lastPhase) ((Counter *)userdata)->count++;
}

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t count = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < count; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint32_t bytes = 0;
        size_t size = qemu_plugin_insn_size(insn);
        memcpy(&bytes, qemu_plugin_insn_data(insn), size < 4 ? size : 4);
        uint64_t address = qemu_plugin_insn_vaddr(insn);
        uint64_t hostPage = (uint64_t)(uintptr_t)qemu_plugin_insn_haddr(insn) & ~0xFFFull;
        if ((bytes & rdinstretMask) == rdinstretBits && address < firstKernelAddress) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, markExecuted, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
        Counter *counter = counterFor(address, hostPage, bytes);
        if (counter == NULL) continue;
        if (firstPhase < 0) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counter->count, 1);
        } else {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, countInPhase, QEMU_PLUGIN_CB_NO_REGS, counter);
        }
    }
}

static void exiting(qemu_plugin_id_t id, void *unused) {
    (void)id;
    (void)unused;
    FILE *file = fopen(outputPath, "w");
    if (file == NULL) return;
    for (uint32_t i = 0; i < countersUsed; i++) {
        if (counters[i].count == 0) continue;
        fprintf(file, "%" PRIx64 " %" PRIx64 " %08" PRIx32 " %" PRIu64 "\n", counters[i].address,
                counters[i].hostPage, counters[i].bytes, counters[i].count);
    }
    fprintf(file, "phases %d\n", phase + 1);
    if (firstPhase >= 0) {
        for (int k = 0; k <= phase; k++) fprintf(file, "phase %d %" PRIu64 "\n", k, phaseInstructions[k]);
    }
    fclose(file);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(outputPath, sizeof outputPath, "%s", argv[i] + 4);
        } else if (strncmp(argv[i], "phase=", 6) == 0) {
            char *end;
            firstPhase = (int)strtol(argv[i] + 6, &end, 10);
            lastPhase = *end == '-' ? (int)strtol(end + 1, NULL, 10) : firstPhase;
        }
    }
    counters = calloc(counterCapacity, sizeof(Counter));
    table = calloc(tableSize, sizeof(uint32_t));
    if (counters == NULL || table == NULL) return -1;
    qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
    qemu_plugin_register_atexit_cb(id, exiting, NULL);
    return 0;
}
