// memcpy and friends: the compiler emits calls to these for struct copies and
// zeroing, and the servers copy every block through them. Word-sized, four words to a
// loop step in memcpy and in memset's zeroing (a profile of the file system benchmark
// found a word loop's counter and branch costing more than the copying); byte loops
// for the rest. Simple C, no assembly: the compiler schedules it.
//
// When the two pointers differ in alignment — every TCP payload does: it starts 54
// bytes into its Ethernet frame, the client's buffer on a word — the destination is
// aligned first, and each word stored is put together from the two aligned source
// words it straddles (little-endian: the lower one shifted down, the higher one up).
// Misaligned loads would be simpler, but RISC-V may trap on them (OpenSBI then
// emulates each one, a hundred times slower), and Swift's loadUnaligned reads bytes.
// The aligned source words read are exactly those holding a byte to be copied, so no
// read strays past the source's last page.
//
// `curio_copy_memory` is the copy itself, compiled on the host too so that its tests
// (Tests/FreestandingTests) run there; memcpy and memmove exist only for riscv64,
// where there is no C library.
#include <stddef.h>
#include <stdint.h>
#include "Freestanding.h"

/// Copies `count` bytes from `from` (any alignment) to the 8-aligned `to`, whose
/// alignment differs from `from`'s; returns the bytes copied, a multiple of 8.
static size_t copy_shifted_words(uint64_t *to, const unsigned char *from, size_t count) {
    unsigned shift = (unsigned)((uintptr_t)from & 7) * 8;
    const uint64_t *source = (const uint64_t *)(from - shift / 8);
    size_t words = count / 8;
    uint64_t low = source[0];
    for (size_t index = 0; index < words; index++) {
        uint64_t high = source[index + 1];
        to[index] = (low >> shift) | (high << (64 - shift));
        low = high;
    }
    return words * 8;
}

void *curio_copy_memory(void *destination, const void *source, size_t count) {
    unsigned char *to = destination;
    const unsigned char *from = source;
    if (count >= 16) {
        while (((uintptr_t)to & 7) != 0) { *to++ = *from++; count--; }
        if (((uintptr_t)from & 7) == 0) {
            uint64_t *words = (uint64_t *)to;
            const uint64_t *sourceWords = (const uint64_t *)from;
            for (; count >= 32; count -= 32, words += 4, sourceWords += 4) {
                uint64_t a = sourceWords[0], b = sourceWords[1], c = sourceWords[2], d = sourceWords[3];
                words[0] = a; words[1] = b; words[2] = c; words[3] = d;
            }
            for (; count >= 8; count -= 8) *words++ = *sourceWords++;
            to = (unsigned char *)words;
            from = (const unsigned char *)sourceWords;
        } else {
            // The last source word read holds the byte after the last word copied:
            // keep one word back so that it is a byte to be copied.
            size_t copied = copy_shifted_words((uint64_t *)to, from, count - 8);
            to += copied;
            from += copied;
            count -= copied;
        }
    }
    while (count--) *to++ = *from++;
    return destination;
}

#if defined(__riscv)
void *memcpy(void *destination, const void *source, size_t count) {
    return curio_copy_memory(destination, source, count);
}

void *memmove(void *destination, const void *source, size_t count) {
    unsigned char *to = destination;
    const unsigned char *from = source;
    if (to == from || count == 0) return destination;
    if (to < from || to >= from + count) return curio_copy_memory(destination, source, count);
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
        uint64_t *words = (uint64_t *)to;
        for (; count >= 32; count -= 32, words += 4) { words[0] = 0; words[1] = 0; words[2] = 0; words[3] = 0; }
        for (; count >= 8; count -= 8) *words++ = 0;
        to = (unsigned char *)words;
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
