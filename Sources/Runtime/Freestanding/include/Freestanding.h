// The few C library functions Embedded Swift code calls, for the kernel and every
// user program (neither has a C library).
#pragma once

#include <stddef.h>

/// memcpy's copy (any alignment of either pointer; the ranges must not overlap).
void *curio_copy_memory(void *destination, const void *source, size_t count);
