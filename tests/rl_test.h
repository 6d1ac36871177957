/*
 * Shared helpers for the rl Criterion suites.
 *
 * Hermetic rules every suite follows:
 *  - each test opens its own segment under a unique name ("/rl-t-[TAG-]PID-COUNTER", TAG being
 *    scripts/test's RL_TEST_TAG; Criterion runs every test in its own process, so the pid alone
 *    already separates tests and the counter separates several segments of one test);
 *  - the segment is closed and unlinked in the test's .fini, which Criterion also runs when an
 *    assertion fails, but not when a test skips: cr_skip_test() ends the test process at once,
 *    so a test that skips after its fixture made something skips with test_skip(teardown, ...);
 *  - times are fixed (rl_acquire_at from T0) wherever the test does not need the real clock.
 */
#ifndef RL_TEST_H
#define RL_TEST_H

#ifdef RL_TEST_MINI_RUNNER
#include "mini_runner.h" /* ThreadSanitizer builds: Criterion cannot start there */
#else
#include <criterion/criterion.h>
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rl.h"

/* 1.8e18 ns = 1.8e9 s: a multiple of 1 ms, 1 s, 5 ms, 60 s and 1 h (1.8e9 / 3600 = 500000), so
 * windows of those lengths are aligned at T0. */
#define T0      1800000000000000000ULL
#define NS_MS   1000000ULL
#define NS_S    1000000000ULL
#define MS_S    1000ULL
#define MS_MIN  (60ULL * MS_S)
#define MS_HOUR (60ULL * MS_MIN)
#define MS_DAY  (24ULL * MS_HOUR)
#define NEVER   RL_RETRY_NEVER

/* T0 + ms (ms may be negative: a clock stepped back before T0). */
static inline uint64_t at_ms(int64_t ms)
{
    return (uint64_t)((int64_t)T0 + ms * (int64_t)NS_MS);
}

/* ---- segment names and the per-test fixture ------------------------------------------------ */

/* Writes a fresh unique segment name into buf. */
static inline const char *test_name_new(char *buf, size_t n)
{
    static unsigned counter;
    /* RL_TEST_TAG (set by scripts/test, [A-Za-z0-9]): the run's segments carry it, so that a
     * run's clean-up removes only its own leftovers, never those of a concurrent run. */
    const char *tag = getenv("RL_TEST_TAG");
    bool tagged = tag && *tag && strlen(tag) <= 16 &&
                  strspn(tag, "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789") == strlen(tag);
    snprintf(buf, n, "/rl-t-%s%s%ld-%u", tagged ? tag : "", tagged ? "-" : "", (long)getpid(),
             counter++);
    /* A leftover of an earlier run whose test process had the same pid (a crash, a killed run)
     * would otherwise be attached instead of created. */
    rl_unlink(buf);
    return buf;
}

/* Opens (creating) a segment of the given capacity (0: the default) and asserts success. */
static inline rl_t *test_open(const char *name, size_t capacity)
{
    rl_options o;
    rl_options_init(&o);
    o.shm_name = name;
    if (capacity)
        o.capacity = capacity;
    rl_t *rl = NULL;
    int rc = rl_open(&rl, &o);
    cr_assert_eq(rc, 0, "rl_open(%s, capacity %zu) = %d (%s): %s", name, capacity, rc,
                 rl_strerror(rc), rl_errmsg());
    cr_assert_not_null(rl, "rl_open returned 0 but no handle");
    return rl;
}

/* The fixture most tests use: one segment of capacity 4096 in g_rl, named g_name. Extra
 * segments a test makes are registered with test_track() so .fini unlinks them too. */
#define TEST_MAX_TRACKED 64
#define TEST_UNUSED      __attribute__((unused))
static rl_t *g_rl TEST_UNUSED;
static char g_name[64] TEST_UNUSED;
static char g_tracked[TEST_MAX_TRACKED][64] TEST_UNUSED;
static unsigned g_ntracked TEST_UNUSED;

/* Makes a new unique name that the fixture's .fini will unlink. */
static inline const char *test_track_new(void)
{
    cr_assert_lt(g_ntracked, TEST_MAX_TRACKED, "too many segments in one test");
    return test_name_new(g_tracked[g_ntracked++], sizeof g_tracked[0]);
}

static inline void seg_setup(void)
{
    test_name_new(g_name, sizeof g_name);
    g_rl = test_open(g_name, 4096);
}

static inline void seg_teardown(void)
{
    rl_close(&g_rl);
    rl_unlink(g_name);
    for (unsigned i = 0; i < g_ntracked; i++)
        rl_unlink(g_tracked[i]);
    g_ntracked = 0;
}

/* Same without opening anything (tests that manage their own segments). */
static inline void names_setup(void)
{
    test_name_new(g_name, sizeof g_name);
    g_rl = NULL;
}

/* Skips the test after running `teardown` (the suite's .fini): Criterion's cr_skip_test() exits
 * the test process without running .fini, which left the fixture's segment (and any server it
 * started) behind. Under the mini runner .fini runs again after the skip: teardowns are
 * idempotent. */
#define test_skip(teardown, ...)                                                                   \
    do {                                                                                           \
        teardown();                                                                                \
        cr_skip_test(__VA_ARGS__);                                                                 \
    } while (0)

/* ---- limits --------------------------------------------------------------------------------- */

static inline rl_limit mk_limit(rl_algorithm algo, uint64_t requests, uint64_t window_ms,
                                uint64_t burst)
{
    rl_limit l;
    memset(&l, 0, sizeof l);
    l.algorithm = algo;
    l.requests = requests;
    l.window_ms = window_ms;
    l.burst = burst;
    return l;
}

static inline const char *algo_name(rl_algorithm a)
{
    switch (a) {
    case RL_TOKEN_BUCKET:
        return "token_bucket";
    case RL_SLIDING_WINDOW:
        return "sliding_window";
    case RL_FIXED_WINDOW:
        return "fixed_window";
    case RL_GCRA:
        return "gcra";
    }
    return "?";
}

/* ---- one call, asserted to return 0 ---------------------------------------------------------- */

static inline rl_result acq_at(rl_t *rl, const char *key, const rl_limit *lim, uint64_t cost,
                               uint64_t t)
{
    rl_result r;
    memset(&r, 0xa5, sizeof r); /* garbage: a field the library forgets to set shows up */
    int rc = rl_acquire_at(rl, key, strlen(key), lim, cost, t, &r);
    cr_assert_eq(rc, 0, "rl_acquire_at(%s, cost %" PRIu64 ", t %" PRIu64 ") = %d (%s): %s", key,
                 cost, t, rc, rl_strerror(rc), rl_errmsg());
    return r;
}

static inline void refund_at(rl_t *rl, const char *key, const rl_limit *lim, uint64_t cost,
                             uint64_t t)
{
    int rc = rl_refund_at(rl, key, strlen(key), lim, cost, t);
    cr_assert_eq(rc, 0, "rl_refund_at(%s, cost %" PRIu64 ") = %d (%s): %s", key, cost, rc,
                 rl_strerror(rc), rl_errmsg());
}

/* ---- step tables ---------------------------------------------------------------------------- */

enum step_op { ACQ, REFUND };

/* One row of a table: at T0 + at_ms, acquire (or refund) cost; for ACQ the expected result. */
typedef struct step {
    enum step_op op;
    int64_t at_ms; /* absolute offset from T0 (tables read like a timeline; may go back) */
    uint64_t cost;
    bool allowed;
    uint64_t remaining;
    uint64_t retry_ms;
    uint64_t reset_ms;
} step;

/* clang-format off */
/*             at_ms  cost  allowed  remaining  retry_after_ms  reset_after_ms */
#define A(at, cost, ok, rem, retry, reset) {ACQ, (at), (cost), (ok), (rem), (retry), (reset)}
#define R(at, cost) {REFUND, (at), (cost), false, 0, 0, 0}
/* clang-format on */

#define YES true
#define NO  false

/* Runs a table against one key and asserts every field of every row; `limit` is the expected
 * rl_result.limit of every row. */
static inline void run_steps(rl_t *rl, const char *table, const char *key, const rl_limit *lim,
                             uint64_t limit, const step *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t t = at_ms(s[i].at_ms);
        if (s[i].op == REFUND) {
            refund_at(rl, key, lim, s[i].cost, t);
            continue;
        }
        rl_result r = acq_at(rl, key, lim, s[i].cost, t);
#define STEP_FIELD(field, got, want)                                                               \
    cr_expect_eq((got), (want),                                                                    \
                 "%s row %zu (t=T0%+" PRId64 "ms cost %" PRIu64 "): " field " %" PRIu64            \
                 ", expected %" PRIu64,                                                            \
                 table, i, s[i].at_ms, s[i].cost, (uint64_t)(got), (uint64_t)(want))
        STEP_FIELD("allowed", r.allowed, s[i].allowed);
        STEP_FIELD("limit", r.limit, limit);
        STEP_FIELD("remaining", r.remaining, s[i].remaining);
        STEP_FIELD("retry_after_ms", r.retry_after_ms, s[i].retry_ms);
        STEP_FIELD("reset_after_ms", r.reset_after_ms, s[i].reset_ms);
#undef STEP_FIELD
        /* Later rows depend on this one: stop at the first wrong row. */
        cr_assert(r.allowed == s[i].allowed && r.limit == limit && r.remaining == s[i].remaining &&
                      r.retry_after_ms == s[i].retry_ms && r.reset_after_ms == s[i].reset_ms,
                  "%s: stopping at row %zu", table, i);
    }
}

#define RUN_STEPS(rl, key, lim, limit, table)                                                      \
    run_steps((rl), #table, (key), (lim), (limit), (table), sizeof(table) / sizeof((table)[0]))

/* ---- small deterministic PRNG (xorshift64*) -------------------------------------------------- */

static inline uint64_t prng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform-ish in [0, n). */
static inline uint64_t prng_below(uint64_t *s, uint64_t n)
{
    return n ? prng_next(s) % n : 0;
}

#endif /* RL_TEST_H */
