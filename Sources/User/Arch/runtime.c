// Process startup and the C runtime pieces Embedded Swift needs in user space:
// a heap (posix_memalign/free over the region the kernel mapped) and
// arc4random_buf (for hashing). Exit goes through the kernel.
#if defined(__riscv)
#include "UserArch.h"

enum { SYSCALL_EXIT = 0, SYSCALL_CLOCK = 13 };

static const uint8_t *argument_bytes;
static size_t argument_length;

const uint8_t *curio_arguments(void) { return argument_bytes; }
size_t curio_arguments_length(void) { return argument_length; }

void curio_heap_initialize(void *base, size_t size);
extern int main(int argc, char **argv);

void curio_start(void *heap_base, size_t heap_size, const uint8_t *arguments, size_t length) {
    argument_bytes = arguments;
    argument_length = length;
    curio_heap_initialize(heap_base, heap_size);
    int status = main(0, 0);
    curio_syscall(SYSCALL_EXIT, (uint64_t)(int64_t)status, 0, 0, 0, 0, 0, 0);
    for (;;) {}
}

static uint64_t random_state;

void arc4random_buf(void *buffer, size_t count) {
    if (random_state == 0) random_state = curio_syscall(SYSCALL_CLOCK, 0, 0, 0, 0, 0, 0, 0).r1 | 1;
    uint8_t *bytes = buffer;
    for (size_t i = 0; i < count; i++) {
        random_state ^= random_state << 13;
        random_state ^= random_state >> 7;
        random_state ^= random_state << 17;
        bytes[i] = (uint8_t)random_state;
    }
}
#else
#include "UserArch.h"

// On the host, where the user library is linked into tests (SSRServerTests), a
// process has no startup arguments.
const uint8_t *curio_arguments(void) { return 0; }
size_t curio_arguments_length(void) { return 0; }
#endif
