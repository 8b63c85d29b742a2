// The few C library functions Embedded Swift code calls, for the kernel and every
// user program (neither has a C library).
#pragma once
