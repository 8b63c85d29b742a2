// memcpy and friends: the compiler emits calls to these for struct copies and
// zeroing, and the servers copy every block through them. Word-sized when both
// pointers share an alignment, four words to a loop step (a profile of the file
// system benchmark found a word loop's counter and branch costing more than the
// copying); byte loops for the rest. Simple C, no assembly: the compiler schedules it.
#if defined(__riscv)
#include <stddef.h>
#include <stdint.h>

void *memcpy(void *destination, const void *source, size_t count) {
    unsigned char *to = destination;
    const unsigned char *from = source;
    if (((((uintptr_t)to ^ (uintptr_t)from) & 7) == 0) && count >= 8) {
        while (((uintptr_t)to & 7) != 0) { *to++ = *from++; count--; }
        uint64_t *words = (uint64_t *)to;
        const uint64_t *sourceWords = (const uint64_t *)from;
        for (; count >= 32; count -= 32, words += 4, sourceWords += 4) {
            uint64_t a = sourceWords[0], b = sourceWords[1], c = sourceWords[2], d = sourceWords[3];
            words[0] = a; words[1] = b; words[2] = c; words[3] = d;
        }
        for (; count >= 8; count -= 8) *words++ = *sourceWords++;
        to = (unsigned char *)words;
        from = (const unsigned char *)sourceWords;
    }
    while (count--) *to++ = *from++;
    return destination;
}

void *memmove(void *destination, const void *source, size_t count) {
    unsigned char *to = destination;
    const unsigned char *from = source;
    if (to == from || count == 0) return destination;
    if (to < from || to >= from + count) return memcpy(destination, source, count);
    // Overlapping with the destination above: copy from the end down.
    to += count;
    from += count;
    if ((((uintptr_t)to ^ (uintptr_t)from) & 7) == 0 && count >= 8) {
        while (((uintptr_t)to & 7) != 0) { *--to = *--from; count--; }
        for (; count >= 8; count -= 8) {
            to -= 8;
            from -= 8;
            *(uint64_t *)to = *(const uint64_t *)from;
        }
    }
    while (count--) *--to = *--from;
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
