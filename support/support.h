/*
 * support.h: what the programs around the library share (tools/, bench/, tests/): the monotonic
 * clock, signal set-up and whole-number arguments. Not part of librl and never linked into it:
 * the library keeps its own clock (lib/), which this header does not reach.
 *
 * Header-only: every function is static inline, one copy per program. Any thread may call
 * them; none allocates; catch_signals() and block_signals() change process or thread state as
 * stated. support/meson.build puts this folder on the include path (support_inc).
 */
#ifndef RL_SUPPORT_H
#define RL_SUPPORT_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the clock ------------------------------------------------------------------------------ */

/* CLOCK_MONOTONIC in ns (wall time since an arbitrary start; never steps back). */
static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The same in ms, and in seconds. */
static inline uint64_t mono_ms(void)
{
    return mono_ns() / 1000000u;
}

static inline double mono_s(void)
{
    return (double)mono_ns() / 1e9;
}

/* ---- signals -------------------------------------------------------------------------------- */

/* Installs handler for each signal of the list, which ends with 0:
 * catch_signals(on_stop, SIGINT, SIGTERM, 0). No SA_RESTART: a blocking call the signal
 * interrupts returns EINTR, so that a loop waiting on it sees the flag the handler set. */
static inline void catch_signals(void (*handler)(int), ...)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    va_list ap;
    va_start(ap, handler);
    for (int sig = va_arg(ap, int); sig != 0; sig = va_arg(ap, int))
        sigaction(sig, &sa, NULL);
    va_end(ap);
}

/* Blocks (block true) or unblocks SIGINT, SIGTERM and SIGHUP in the calling thread. Threads
 * started while they are blocked (rl's sync threads, a program's workers) inherit the mask, so
 * that these signals reach the thread that unblocks them. */
static inline void block_signals(bool block)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGHUP);
    pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
}

/* ---- arguments ------------------------------------------------------------------------------ */

/* Parses s as a whole number in lo..hi into *out; on error says so on stderr, naming the program
 * (prog) and the option ("rl-load: -n wants a whole number from 1 to 10000000"), and returns
 * -1 (s NULL: the option came last, without its value). */
static inline int parse_u64_arg(const char *prog, const char *opt, const char *s, uint64_t lo,
                                uint64_t hi, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || *s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "%s: %s wants a whole number from %" PRIu64 " to %" PRIu64 "\n", prog, opt,
                lo, hi);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* The same into an unsigned. */
static inline int parse_uint_arg(const char *prog, const char *opt, const char *s, unsigned lo,
                                 unsigned hi, unsigned *out)
{
    uint64_t v;
    if (parse_u64_arg(prog, opt, s, lo, hi, &v) < 0)
        return -1;
    *out = (unsigned)v;
    return 0;
}

#endif
