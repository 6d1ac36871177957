/*
 * The fuzz targets (tests/fuzz/fuzz_*.c): each defines LLVMFuzzerTestOneInput, which libFuzzer
 * (fuzz-NAME, clang only) or tests/fuzz/replay.c (fuzz-replay-NAME, every build) calls.
 * A target returns 0 and abort()s (FUZZ_CHECK) when a property does not hold.
 */
#ifndef RL_FUZZ_H
#define RL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
