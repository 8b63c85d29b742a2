// memcpy and friends: the compiler emits calls to these for struct copies and
// zeroing. Byte loops, word-sized when both pointers allow: simple and good enough
// until a benchmark says otherwise.
#if defined(__riscv)
#include <stddef.h>
#include <stdint.h>

void *memcpy(void *destination, const void *source, size_t count) {
    unsigned char *to = destination;
    const unsigned char *from = source;
    if ((((uintptr_t)to | (uintptr_t)from) & 7) == 0) {
        for (; count >= 8; count -= 8, to += 8, from += 8) {
            *(uint64_t *)to = *(const uint64_t *)from;
        }
    }
    while (count--) *to++ = *from++;
    return destination;
}

void *memmove(void *destination, const void *source, size_t count) {
    unsigned char *to = destination;
    const unsigned char *from = source;
    if (to == from || count == 0) return destination;
    if (to < from || to >= from + count) return memcpy(destination, source, count);
    while (count--) to[count] = from[count];
    return destination;
}

void *memset(void *destination, int value, size_t count) {
    unsigned char *to = destination;
    if (value == 0 && ((uintptr_t)to & 7) == 0) {
        for (; count >= 8; count -= 8, to += 8) *(uint64_t *)to = 0;
    }
    while (count--) *to++ = (unsigned char)value;
    return destination;
}

int memcmp(const void *left, const void *right, size_t count) {
    const unsigned char *a = left, *b = right;
    for (size_t i = 0; i < count; i++) {
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    }
    return 0;
}

size_t strlen(const char *string) {
    size_t length = 0;
    while (string[length]) length++;
    return length;
}
#endif
