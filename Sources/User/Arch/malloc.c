// The user heap: first-fit over a free list kept in address order, with neighbours
// coalesced on free. Every block has a 16-byte header (its size, including the
// header); allocations are 16-byte aligned, larger alignments are served by
// over-allocating and splitting off the front.
//
//   block:  +--------+-----------+--------------------------+
//           |  size  |  next*    |  payload ...             |   (next* only while free)
//           +--------+-----------+--------------------------+
//           ^ header (16 bytes)  ^ pointer returned
#if defined(__riscv)
#include "UserArch.h"

struct block {
    size_t size;
    struct block *next;
};

static struct block *free_list;
static size_t heap_size, heap_free;

void curio_heap_initialize(void *base, size_t size) {
    free_list = 0;
    heap_size = heap_free = 0;
    if (size < 64) return;
    free_list = base;
    free_list->size = size & ~(size_t)15;
    free_list->next = 0;
    heap_size = heap_free = free_list->size;
}

void curio_heap_statistics(size_t *total, size_t *free_bytes) {
    *total = heap_size;
    *free_bytes = heap_free;
}

static void insert_free(struct block *block) {
    struct block **link = &free_list;
    while (*link && *link < block) link = &(*link)->next;
    block->next = *link;
    *link = block;
    heap_free += block->size;
    if (block->next && (char *)block + block->size == (char *)block->next) {
        block->size += block->next->size;
        block->next = block->next->next;
    }
    if (link != &free_list) {
        struct block *previous = (struct block *)((char *)link - offsetof(struct block, next));
        if ((char *)previous + previous->size == (char *)block) {
            previous->size += block->size;
            previous->next = block->next;
        }
    }
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    if (alignment < 16) alignment = 16;
    size_t needed = ((size + 15) & ~(size_t)15) + 16;
    for (struct block **link = &free_list; *link; link = &(*link)->next) {
        struct block *candidate = *link;
        uintptr_t payload = (uintptr_t)candidate + 16;
        size_t padding = (alignment - payload % alignment) % alignment;
        if (padding != 0 && padding < 32) padding += ((32 - padding + alignment - 1) / alignment) * alignment;
        if (candidate->size < needed + padding) continue;
        *link = candidate->next;
        heap_free -= candidate->size;
        if (padding) {
            struct block *front = candidate;
            candidate = (struct block *)((char *)candidate + padding);
            candidate->size = front->size - padding;
            front->size = padding;
            insert_free(front);
        }
        if (candidate->size >= needed + 32) {
            struct block *rest = (struct block *)((char *)candidate + needed);
            rest->size = candidate->size - needed;
            candidate->size = needed;
            insert_free(rest);
        }
        *result = (char *)candidate + 16;
        return 0;
    }
    *result = 0;
    return 12;
}

void *malloc(size_t size) {
    void *result = 0;
    posix_memalign(&result, 16, size);
    return result;
}

void free(void *pointer) {
    if (!pointer) return;
    insert_free((struct block *)((char *)pointer - 16));
}
#endif
