// Fixed kernel tables live in .bss: the kernel has no heap.
#include "KernelArch.h"

#define MAX_TASKS 320
#define TASK_RECORD_BYTES 1024
#define FRAME_DOUBLEWORDS 32

static uint64_t task_storage[MAX_TASKS * TASK_RECORD_BYTES / 8] __attribute__((aligned(64)));
static uint64_t register_storage[MAX_TASKS * FRAME_DOUBLEWORDS] __attribute__((aligned(64)));

static uint8_t command_line_storage[1024];
uint64_t kernel_state[KERNEL_STATE_DOUBLEWORDS] __attribute__((aligned(64)));

uint8_t *kernel_command_line_storage(void) { return command_line_storage; }
long kernel_command_line_capacity(void) { return (long)sizeof(command_line_storage); }
void *kernel_task_storage(void) { return task_storage; }
long kernel_task_storage_size(void) { return (long)sizeof(task_storage); }
uint64_t *kernel_register_storage(void) { return register_storage; }
