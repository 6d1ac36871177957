/*
 * The clock. State in the segment is kept on CLOCK_MONOTONIC (which never steps) converted to
 * epoch nanoseconds by an offset fixed when the segment was created, so a step of the wall
 * clock can neither refill nor freeze a bucket. CLOCK_MONOTONIC is one clock for the whole
 * machine, so every process attached to a segment reads the same time.
 *
 * Lock-free note: g_offset is written once per process (first segment opened, or first call of
 * rl_now_ns) with a CAS and read relaxed; a racing reader may take its own first sample, which
 * differs by at most the wall-clock drift between two reads, and only for rl_now_ns callers.
 */
#include <stdatomic.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/handle.h"

/* 0 = not chosen yet; otherwise offset + 1 (so a zero offset is representable). */
static _Atomic int64_t g_offset_plus1;

static int64_t sample_offset(void)
{
    struct timespec rt, mo;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mo);
    int64_t r = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec;
    int64_t m = (int64_t)mo.tv_sec * 1000000000 + mo.tv_nsec;
    return r - m;
}

void rl__adopt_clock_offset(int64_t offset)
{
    int64_t expect = 0;
    /* relaxed: a single word with no data published through it. */
    atomic_compare_exchange_strong_explicit(&g_offset_plus1, &expect, offset + 1,
                                            memory_order_relaxed, memory_order_relaxed);
}

RL_API uint64_t rl_now_ns(void)
{
    int64_t o = atomic_load_explicit(&g_offset_plus1, memory_order_relaxed);
    if (o == 0) {
        rl__adopt_clock_offset(sample_offset());
        o = atomic_load_explicit(&g_offset_plus1, memory_order_relaxed);
    }
    return (uint64_t)((int64_t)rl__mono_ns() + (o - 1));
}

RL_API uint64_t rl_clock_ns(const rl_t *rl)
{
    if (!rl)
        return rl_now_ns();
    return rl__clock(rl);
}
