/*
 * The process's monotonic clock (lib/clock.c): what every layer may use, the Redis client
 * included. The segment's clock (rl__clock) is in lib/handle.h: it needs the handle.
 * Internal; nothing here is ABI.
 */
#ifndef RL_LIB_CLOCK_H
#define RL_LIB_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in ns. Any thread; never blocks (vDSO). */
static inline uint64_t rl__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void rl__adopt_clock_offset(int64_t offset);

#endif
