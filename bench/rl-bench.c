/*
 * rl-bench: how fast rl_acquire() and rl_check() decide, next to the floor of what they must do
 * at least.
 *
 * rl_acquire() does one vDSO clock read and one compare-and-swap on a 64-bit word in shared
 * memory; nothing can be faster than those two. So every rl row is printed with its ratio to a
 * floor measured in the same run on the same machine (rl_check() does that once per layer, plus
 * the request's own work: its rows have an absolute target too):
 *
 *   (a) hot floor   one CAS on a word in a MAP_SHARED page + one clock_gettime(CLOCK_MONOTONIC)
 *   (b) rl_acquire on one hot key (allowed; and denied, the limit exhausted)      ratio to (a)
 *   (e) cold floor  one CAS on a random 64-byte line of an anonymous MAP_SHARED region as large
 *                   as the 2,000,000-key segment + one clock read
 *   (e')            the same with the line prefetched before the clock read (the vDSO clock read
 *                   is ordered, so in (e) the miss does not overlap it)            ratio to (e)
 *   (c) rl_acquire over 1,000 / 1,000,000 keys in random order, and over all 2,000,000 keys of
 *       the segment filled to capacity                                        ratio to (e)
 *   (d) one key shared by 2 processes: total checks/s, beside (a) in 2 processes on one word
 *   (f) rl_check on the seed's API rule (examples/production.yaml; 3 layers: sliding per_user,
 *       token bucket per_ip, sliding global; limits raised so nothing is denied), one client
 *                                                                                  ratio to (a)
 *   (f')            the same rule, 10,000 clients (distinct IPs and users) in random order
 *   (g) rl_check on a one-layer rule (the per_ip token bucket alone), one client  ratio to (a)
 *   (g')            the same through a handle opened with RL_OPEN_NO_STATS (no decision
 *                   counters): (g) - (g') is what the counters cost a check (issue: <= 5 ns)
 *
 * Method: each row is calibrated (which warms it up) to N iterations taking ~150 ms (--quick:
 * ~30 ms), then timed 5 times with CLOCK_MONOTONIC around the whole loop; the median is printed
 * with the spread of the 5 runs. Row (d) runs 5 times for a fixed duration instead. Nothing is
 * pinned. Targets are printed as PASS/MISS, never asserted: the exit status is 0 whenever the
 * bench measured, however slow (1 on a setup error or when an rl call failed or decided wrongly,
 * shown as INVALID; 2 on bad usage; 128+signal when interrupted).
 *
 * The segments are private: "/rl-bench-<pid>" (2,000,000 keys, ~150 MB in /dev/shm),
 * "/rl-bench-<pid>-hot" and "/rl-bench-<pid>-check" (the rl_check rows' rules); all are unlinked
 * at exit, on SIGINT/SIGTERM/SIGHUP too. The rule files given to rl_load_config() are temporary
 * files in $TMPDIR (or /tmp), removed as soon as they are loaded (and on exit or a signal).
 *
 * --redis adds "vs pure Redis" (never run by `meson test --benchmark`, which needs no Redis): the
 * bench starts its own redis-server (from PATH) on a free loopback port, in a temporary directory,
 * without persistence, and measures token bucket checks on 1 key and on 10,000 keys: LOCAL
 * rl_acquire; STRICT rl_acquire (one Lua script per check through the pool) from 1 thread and
 * from 32 threads (pool of 32); the same script (sync/scripts.h) by EVALSHA on a raw hiredis
 * connection in pipelines of 64; and the seed's published load-test figures (not measured). Each
 * row runs once for ~2 s (--quick: ~0.3 s) with every call timed (mean, p99). It adds a PING round
 * trip, Redis's own time per script (INFO commandstats) and Redis memory per STRICT key (INFO
 * memory). The server is killed and reaped, and its directory removed, at exit and on a signal.
 *
 *   rl-bench [--quick] [--markdown] [--redis]
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rl/rl.h>

#include <hiredis/hiredis.h>

#include "bench_common.h" /* the method, the report's header, small helpers (rl-global too) */
#include "redis_child.h"  /* --redis: the private redis-server (g_redis_pid, g_redis_dir) */

/* rl's STRICT scripts (sync/scripts.h); the --redis rows pipeline rl__lua_bucket. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-const-variable"
#include "scripts.h"
#pragma GCC diagnostic pop

#define RUNS          5
#define BIG_CAPACITY  2000000u
#define KEYS_SMALL    1000u
#define KEYS_MID      1000000u
#define HOT_CAPACITY  65536u
#define DUO_PROCS     2
#define FULL_RUN_NS   150000000ull /* target length of one timed run */
#define QUICK_RUN_NS  30000000ull
#define LINE          64u
#define COLD_INDICES  (1u << 21) /* precomputed random line indices, walked cyclically */
#define CHECK_CLIENTS 10000u     /* (f'): distinct clients (IP + user) */

/* Targets (see the brief in docs/benchmarks.md). */
#define TARGET_HOT_RATIO  1.5
#define TARGET_COLD_RATIO 1.25
#define TARGET_DUO_RATE   15e6
#define TARGET_CHECK_NS   200.0

/* -------------------------------------------------------------------------------------------- */
/* Cleanup: the segments go away however the bench ends.                                          */

static volatile sig_atomic_t g_signal;
static char g_big_name[64];
static char g_hot_name[64];
static char g_check_name[64];
static char g_yaml_path[256]; /* a rule file while it exists */
static pid_t g_owner;
static char g_redis_seg[64]; /* --redis: the segment of the STRICT handle */
static pid_t g_children[DUO_PROCS];

static void on_signal(int sig)
{
    /* First signal: the main loop notices between runs (<= ~200 ms) and exits through atexit.
     * Second signal: do not wait. shm_unlink() is unlink() of a path on Linux. */
    if (g_signal != 0) {
        if (g_big_name[0] != '\0')
            shm_unlink(g_big_name);
        if (g_hot_name[0] != '\0')
            shm_unlink(g_hot_name);
        if (g_check_name[0] != '\0')
            shm_unlink(g_check_name);
        if (g_yaml_path[0] != '\0')
            unlink(g_yaml_path);
        if (g_redis_seg[0] != '\0')
            shm_unlink(g_redis_seg);
        redis_child_on_signal();
        _exit(128 + sig);
    }
    g_signal = sig;
}

static void cleanup(void)
{
    if (getpid() != g_owner)
        return; /* a forked child: the parent cleans up */
    for (int i = 0; i < DUO_PROCS; i++) {
        if (g_children[i] > 0) {
            kill(g_children[i], SIGKILL);
            waitpid(g_children[i], NULL, 0);
            g_children[i] = 0;
        }
    }
    if (g_big_name[0] != '\0')
        rl_unlink(g_big_name);
    if (g_hot_name[0] != '\0')
        rl_unlink(g_hot_name);
    if (g_check_name[0] != '\0')
        rl_unlink(g_check_name);
    if (g_yaml_path[0] != '\0')
        unlink(g_yaml_path);
    if (g_redis_seg[0] != '\0')
        rl_unlink(g_redis_seg);
    redis_child_stop();
}

static void check_signal(void)
{
    if (g_signal != 0) {
        fprintf(stderr, "rl-bench: interrupted by signal %d; segments removed\n", (int)g_signal);
        exit(128 + g_signal);
    }
}

/* -------------------------------------------------------------------------------------------- */
/* Small helpers                                                                                  */

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void *map_shared(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* -------------------------------------------------------------------------------------------- */
/* Keys: "ip:10.a.b.c", precomputed and shuffled, walked in order (= random order for the table). */

#define KEY_STRIDE 24
typedef struct bkey {
    uint8_t len;
    char s[KEY_STRIDE - 1];
} bkey;

/* Fisher-Yates over k[0..n). */
static void shuffle_keys(bkey *k, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(xorshift64(&s) % (i + 1));
        bkey t = k[i];
        k[i] = k[j];
        k[j] = t;
    }
}

static bkey *make_keys(size_t n, uint64_t seed)
{
    bkey *k = malloc(n * sizeof *k);
    if (k == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(k[i].s, sizeof k[i].s, "ip:10.%u.%u.%u", (unsigned)((i >> 16) & 255u),
                           (unsigned)((i >> 8) & 255u), (unsigned)(i & 255u));
        k[i].len = (uint8_t)len;
        if ((i & 0xffffu) == 0)
            check_signal();
    }
    shuffle_keys(k, n, seed);
    return k;
}

/* -------------------------------------------------------------------------------------------- */
/* The measured loops. Each returns the elapsed ns of the whole loop of n iterations.            */

typedef struct bench_ctx {
    /* floors */
    _Atomic uint64_t *word; /* (a): one word in a MAP_SHARED page */
    char *region;           /* (e): anonymous MAP_SHARED region */
    const uint32_t *idx;    /* (e): random line indices */
    size_t nidx, idx_pos;
    /* rl rows */
    rl_t *rl;
    const rl_limit *lim;
    const char *key; /* (b) */
    size_t keylen;
    const bkey *kbeg, *kend, *kcur;       /* (c) */
    const rl_request *rbeg, *rend, *rcur; /* (f), (g): requests, walked cyclically */
    size_t layers;                        /* (f), (g): layers every decision must have */
    /* sanity counters of the last loop */
    uint64_t allowed, errors;
    int last_error;
} bench_ctx;

static inline void floor_step(_Atomic uint64_t *w)
{
    uint64_t now = mono_ns();
    uint64_t old = atomic_load_explicit(w, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(w, &old, old + 1 + (now & 1),
                                                  memory_order_acq_rel, memory_order_acquire)) {
    }
}

static uint64_t loop_floor_hot(void *arg, uint64_t n)
{
    bench_ctx *c = arg;
    _Atomic uint64_t *w = c->word;
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < n; i++)
        floor_step(w);
    return mono_ns() - t0;
}

static uint64_t loop_floor_cold(void *arg, uint64_t n)
{
    bench_ctx *c = arg;
    char *base = c->region;
    const uint32_t *ix = c->idx + c->idx_pos, *beg = c->idx, *end = c->idx + c->nidx;
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        floor_step((_Atomic uint64_t *)(void *)(base + (size_t)*ix * LINE));
        if (++ix == end)
            ix = beg;
    }
    uint64_t t = mono_ns() - t0;
    c->idx_pos = (size_t)(ix - beg);
    return t;
}

/* (e'): the same, with the line prefetched before the clock read. The vDSO clock read is an
 * ordered TSC read (rdtscp or lfence; rdtsc) that waits for the previous CAS, and in (e) the miss
 * issued after it does not overlap it: the two latencies add up. A prefetch issued first
 * overlaps them; the gap between (e) and (e') is what ordering the work that way can save. */
static uint64_t loop_floor_cold_pf(void *arg, uint64_t n)
{
    bench_ctx *c = arg;
    char *base = c->region;
    const uint32_t *ix = c->idx + c->idx_pos, *beg = c->idx, *end = c->idx + c->nidx;
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        char *line = base + (size_t)*ix * LINE;
        __builtin_prefetch(line, 1, 3);
        floor_step((_Atomic uint64_t *)(void *)line);
        if (++ix == end)
            ix = beg;
    }
    uint64_t t = mono_ns() - t0;
    c->idx_pos = (size_t)(ix - beg);
    return t;
}

static uint64_t loop_acquire_hot(void *arg, uint64_t n)
{
    bench_ctx *c = arg;
    return bench_acquire_loop(c->rl, c->key, c->keylen, c->lim, n, &c->allowed, &c->errors,
                              &c->last_error);
}

static uint64_t loop_acquire_keys(void *arg, uint64_t n)
{
    bench_ctx *c = arg;
    rl_t *rl = c->rl;
    const rl_limit *lim = c->lim;
    const bkey *k = c->kcur, *beg = c->kbeg, *end = c->kend;
    uint64_t allowed = 0, errors = 0;
    int last = 0;
    rl_result r;
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        int rc = rl_acquire(rl, k->s, k->len, lim, 1, &r);
        if (rc == 0) {
            allowed += r.allowed;
        } else {
            errors++;
            last = rc;
        }
        if (++k == end)
            k = beg;
    }
    uint64_t t = mono_ns() - t0;
    c->kcur = k;
    c->allowed = allowed;
    c->errors = errors;
    if (errors)
        c->last_error = last;
    return t;
}

/* (f), (g): rl_check() on the requests [rbeg, rend), cyclically. A decision counts as allowed
 * only when it is allowed, not bypassed, and has exactly the expected layers (so a rule that did
 * not match, and fell back to other layers, makes the row INVALID instead of fast). */
static uint64_t loop_check(void *arg, uint64_t n)
{
    bench_ctx *c = arg;
    rl_t *rl = c->rl;
    const rl_request *q = c->rcur, *beg = c->rbeg, *end = c->rend;
    size_t layers = c->layers;
    uint64_t allowed = 0, errors = 0;
    int last = 0;
    rl_decision d;
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        int rc = rl_check(rl, q, &d);
        if (rc == 0) {
            allowed += d.allowed && !d.bypassed && d.n == layers;
        } else {
            errors++;
            last = rc;
        }
        if (++q == end)
            q = beg;
    }
    uint64_t t = mono_ns() - t0;
    c->rcur = q;
    c->allowed = allowed;
    c->errors = errors;
    if (errors)
        c->last_error = last;
    return t;
}

/* -------------------------------------------------------------------------------------------- */
/* Rows                                                                                           */

typedef enum { EXPECT_NONE, EXPECT_ALL_ALLOWED, EXPECT_ALL_DENIED } expect_t;
typedef enum { TGT_NONE, TGT_RATIO_MAX, TGT_RATE_MIN, TGT_NS_MAX } target_t;

typedef struct row {
    const char *id;    /* "(a)" */
    const char *label; /* what it measures */
    bool measured;
    const char *skipped; /* why not, when not measured */
    double ns;           /* median ns per check (per process for (d)) */
    double rate;         /* checks per second (total across processes for (d)) */
    double spread;       /* (max - min) / median of the runs, in percent */
    int floor;           /* index of its floor row, -1 for a floor */
    target_t target;
    double target_value;
    uint64_t errors;
    uint64_t unexpected; /* decisions other than expected */
} row;

enum {
    R_A,
    R_B,
    R_B_DENY,
    R_B_ODD,
    R_E,
    R_E_PF,
    R_C_1K,
    R_C_1M,
    R_C_FULL,
    R_D_FLOOR,
    R_D_RL,
    R_F,
    R_F_MANY,
    R_G,
    R_G_NOSTATS,
    R_COUNT
};

static row g_rows[R_COUNT] = {
    [R_A] = {"(a)", "hot floor: CAS + clock", .floor = -1},
    [R_B] = {"(b)", "rl_acquire, 1 hot key, allowed", .floor = R_A, .target = TGT_RATIO_MAX,
             .target_value = TARGET_HOT_RATIO},
    [R_B_DENY] = {"(b')", "rl_acquire, 1 hot key, denied", .floor = R_A},
    [R_B_ODD] = {"(b\")", "rl_acquire, 1 hot key, allowed, W/L not whole", .floor = R_A},
    [R_E] = {"(e)", "cold floor: CAS on random line + clock", .floor = -1},
    [R_E_PF] = {"(e')", "cold floor, line prefetched before clock", .floor = R_E},
    [R_C_1K] = {"(c)", "rl_acquire, 1,000 keys, random", .floor = R_E},
    [R_C_1M] = {"(c)", "rl_acquire, 1,000,000 keys, random", .floor = R_E, .target = TGT_RATIO_MAX,
                .target_value = TARGET_COLD_RATIO},
    [R_C_FULL] = {"(c)", "rl_acquire, 2,000,000 keys, full segment", .floor = R_E},
    [R_D_FLOOR] = {"(d)", "2-process floor: CAS on 1 word + clock", .floor = -1},
    [R_D_RL] = {"(d)", "rl_acquire, 1 key, 2 processes", .floor = R_D_FLOOR, .target = TGT_RATE_MIN,
                .target_value = TARGET_DUO_RATE},
    [R_F] = {"(f)", "rl_check */api/* 3 layers, 1 client", .floor = R_A, .target = TGT_NS_MAX,
             .target_value = TARGET_CHECK_NS},
    [R_F_MANY] = {"(f')", "rl_check */api/* 3 layers, 10,000 clients", .floor = R_A},
    [R_G] = {"(g)", "rl_check 1-layer rule, 1 client", .floor = R_A},
    [R_G_NOSTATS] = {"(g')", "rl_check 1-layer rule, counters off", .floor = R_A},
};

static uint64_t g_run_ns = FULL_RUN_NS;
static char g_load[64]; /* /proc/loadavg when the bench started */

/* Calibrates n so one run takes ~g_run_ns (the calibration runs are the warm-up), then times
 * RUNS runs and records the median. */
static void measure(int ri, bench_loop_fn fn, bench_ctx *c, expect_t expect)
{
    row *r = &g_rows[ri];
    fprintf(stderr, "  %-5s %-42s ", r->id, r->label);
    fflush(stderr);

    uint64_t n = bench_calibrate(fn, c, g_run_ns, &g_signal);
    check_signal();

    double ns[RUNS];
    r->errors = 0;
    r->unexpected = 0;
    c->last_error = 0;
    for (int i = 0; i < RUNS; i++) {
        c->errors = c->allowed = 0;
        uint64_t t = fn(c, n);
        check_signal();
        ns[i] = (double)t / (double)n;
        r->errors += c->errors;
        if (expect == EXPECT_ALL_ALLOWED)
            r->unexpected += n - c->errors - c->allowed;
        if (expect == EXPECT_ALL_DENIED)
            r->unexpected += c->allowed;
    }
    r->ns = bench_median_spread(ns, RUNS, &r->spread);
    r->rate = 1e9 / r->ns;
    r->measured = true;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", r->errors ? rl_errmsg() : "");
    fprintf(stderr, "%8.1f ns  (n=%" PRIu64 " x %d)\n", r->ns, n, RUNS);
    if (r->errors)
        fprintf(stderr, "        WARNING: %" PRIu64 " calls failed, last: %s: %s\n", r->errors,
                rl_strerror(c->last_error), msg);
    if (r->unexpected)
        fprintf(stderr, "        WARNING: %" PRIu64 " decisions were not %s\n", r->unexpected,
                expect == EXPECT_ALL_ALLOWED ? "allowed" : "denied");
}

/* -------------------------------------------------------------------------------------------- */
/* (d): processes sharing one key (or one word) for a fixed duration                              */

typedef struct duo_ctl {
    _Alignas(64) _Atomic uint32_t ready;
    _Alignas(64) _Atomic uint32_t go;
    _Alignas(64) _Atomic uint32_t stop;
    _Alignas(64) _Atomic uint64_t word; /* the floor's shared word */
    struct {
        _Alignas(64) uint64_t count;
        uint64_t ns;
        uint64_t errors;
        uint64_t allowed;
    } res[DUO_PROCS];
} duo_ctl;

static _Noreturn void duo_child(duo_ctl *ctl, int id, bool floor, rl_t *rl, const rl_limit *lim,
                                const char *key, size_t keylen)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    if (getppid() != g_owner)
        _exit(3);

    atomic_fetch_add_explicit(&ctl->ready, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&ctl->go, memory_order_acquire) == 0)
        sched_yield();

    uint64_t count = 0, errors = 0, allowed = 0;
    uint64_t t0 = mono_ns();
    if (floor) {
        _Atomic uint64_t *w = &ctl->word;
        do {
            for (int k = 0; k < 64; k++)
                floor_step(w);
            count += 64;
        } while (atomic_load_explicit(&ctl->stop, memory_order_relaxed) == 0);
    } else {
        rl_result r;
        do {
            for (int k = 0; k < 64; k++) {
                if (rl_acquire(rl, key, keylen, lim, 1, &r) == 0)
                    allowed += r.allowed;
                else
                    errors++;
            }
            count += 64;
        } while (atomic_load_explicit(&ctl->stop, memory_order_relaxed) == 0);
    }
    uint64_t t = mono_ns() - t0;
    ctl->res[id].count = count;
    ctl->res[id].ns = t;
    ctl->res[id].errors = errors;
    ctl->res[id].allowed = allowed;
    _exit(0);
}

/* One run: returns total checks/s across the processes, or < 0 on a failure. */
static double duo_run(duo_ctl *ctl, bool floor, rl_t *rl, const rl_limit *lim, const char *key,
                      size_t keylen, uint64_t duration_ns, uint64_t *errors, uint64_t *denied)
{
    memset(ctl, 0, sizeof *ctl);
    fflush(NULL);
    for (int i = 0; i < DUO_PROCS; i++) {
        pid_t p = fork();
        if (p < 0) {
            fprintf(stderr, "rl-bench: fork: %s\n", strerror(errno));
            return -1;
        }
        if (p == 0)
            duo_child(ctl, i, floor, rl, lim, key, keylen);
        g_children[i] = p;
    }
    while (atomic_load_explicit(&ctl->ready, memory_order_acquire) < DUO_PROCS && !g_signal)
        bench_sleep_ns(100000, &g_signal);
    atomic_store_explicit(&ctl->go, 1, memory_order_release);
    bench_sleep_ns(duration_ns, &g_signal);
    atomic_store_explicit(&ctl->stop, 1, memory_order_release);

    bool ok = true;
    for (int i = 0; i < DUO_PROCS; i++) {
        int st = 0;
        while (waitpid(g_children[i], &st, 0) < 0 && errno == EINTR) {
        }
        g_children[i] = 0;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            ok = false;
    }
    check_signal();
    if (!ok) {
        fprintf(stderr, "rl-bench: a (d) worker process failed\n");
        return -1;
    }
    double rate = 0;
    for (int i = 0; i < DUO_PROCS; i++) {
        if (ctl->res[i].ns == 0)
            continue;
        rate += (double)ctl->res[i].count * 1e9 / (double)ctl->res[i].ns;
        *errors += ctl->res[i].errors;
        if (!floor)
            *denied += ctl->res[i].count - ctl->res[i].errors - ctl->res[i].allowed;
    }
    return rate;
}

static void measure_duo(int ri, duo_ctl *ctl, bool floor, rl_t *rl, const rl_limit *lim,
                        const char *key, size_t keylen)
{
    row *r = &g_rows[ri];
    fprintf(stderr, "  %-5s %-42s ", r->id, r->label);
    fflush(stderr);
    uint64_t errors = 0, denied = 0;
    if (duo_run(ctl, floor, rl, lim, key, keylen, g_run_ns / 2, &errors, &denied) < 0) {
        r->skipped = "worker process failed";
        fprintf(stderr, "failed\n");
        return;
    }
    errors = denied = 0;
    double rates[RUNS];
    for (int i = 0; i < RUNS; i++) {
        rates[i] = duo_run(ctl, floor, rl, lim, key, keylen, g_run_ns, &errors, &denied);
        if (rates[i] < 0) {
            r->skipped = "worker process failed";
            fprintf(stderr, "failed\n");
            return;
        }
    }
    r->rate = bench_median_spread(rates, RUNS, &r->spread);
    r->ns = 1e9 * DUO_PROCS / r->rate;
    r->errors = errors;
    r->unexpected = denied;
    r->measured = true;
    fprintf(stderr, "%8.2f M checks/s total\n", r->rate / 1e6);
    if (errors)
        fprintf(stderr, "        WARNING: %" PRIu64 " calls failed\n", errors);
    if (denied)
        fprintf(stderr, "        WARNING: %" PRIu64 " checks were denied\n", denied);
}

/* -------------------------------------------------------------------------------------------- */
/* Report                                                                                         */

static void fmt_rate(double rate, char *out, size_t n)
{
    if (rate >= 1e6)
        snprintf(out, n, "%.2f M", rate / 1e6);
    else
        snprintf(out, n, "%.0f", rate);
}

/* The computed cells of one row. */
typedef struct cells {
    char ratio[16], vs[16], target[64], verdict[16];
} cells;

static void row_cells(const row *r, cells *c)
{
    snprintf(c->ratio, sizeof c->ratio, "-");
    snprintf(c->vs, sizeof c->vs, "-");
    snprintf(c->target, sizeof c->target, "-");
    snprintf(c->verdict, sizeof c->verdict, "-");
    const char *vs = r->floor == R_A ? "(a)" : r->floor == R_E ? "(e)" : "(d) floor";
    if (r->target == TGT_RATIO_MAX)
        snprintf(c->target, sizeof c->target, "<= %.2f x %s", r->target_value, vs);
    else if (r->target == TGT_RATE_MIN)
        snprintf(c->target, sizeof c->target, ">= %.0f M/s total", r->target_value / 1e6);
    else if (r->target == TGT_NS_MAX)
        snprintf(c->target, sizeof c->target, "<= %.0f ns/check", r->target_value);
    if (!r->measured) {
        snprintf(c->verdict, sizeof c->verdict, "skipped");
        return;
    }
    bool invalid = r->errors != 0 || r->unexpected != 0;
    if (r->floor < 0) {
        snprintf(c->ratio, sizeof c->ratio, "1");
        snprintf(c->vs, sizeof c->vs, "floor");
        return;
    }
    const row *f = &g_rows[r->floor];
    if (f->measured) {
        snprintf(c->ratio, sizeof c->ratio, "%.3f", r->ns / f->ns);
        snprintf(c->vs, sizeof c->vs, "%s", vs);
    }
    if (invalid)
        snprintf(c->verdict, sizeof c->verdict, "INVALID");
    else if (r->target == TGT_RATIO_MAX && f->measured)
        snprintf(c->verdict, sizeof c->verdict, "%s",
                 r->ns / f->ns <= r->target_value ? "PASS" : "MISS");
    else if (r->target == TGT_RATE_MIN)
        snprintf(c->verdict, sizeof c->verdict, "%s", r->rate >= r->target_value ? "PASS" : "MISS");
    else if (r->target == TGT_NS_MAX)
        snprintf(c->verdict, sizeof c->verdict, "%s", r->ns <= r->target_value ? "PASS" : "MISS");
}

typedef struct seg_facts {
    bool have;
    rl_segment_info info; /* after the fill */
    double insert_ns_1m;  /* first acquire of a new key, table filling 0 -> 1M */
    double insert_ns_2m;  /* table filling 1M -> 2M */
} seg_facts;

/* s with its asterisks escaped for Markdown (a rule pattern's would start italics). */
static const char *md_escape(const char *s, char *out, size_t n)
{
    size_t o = 0;
    for (; *s != '\0' && o + 2 < n; s++) {
        if (*s == '*')
            out[o++] = '\\';
        out[o++] = *s;
    }
    out[o] = '\0';
    return out;
}

typedef struct check_facts {
    bool have;
    rl_segment_info info; /* of the rl_check segment, after its rows */
} check_facts;

static void print_report(bool markdown, const char *cmd, bool quick, const seg_facts *sf,
                         const check_facts *cf)
{
    bench_print_header(markdown, "rl-bench", cmd, g_load,
                       "; other work on the machine skews every row");
    const char *li = markdown ? "- " : "";
    printf("%smethod:   median of %d runs of ~%" PRIu64 " ms after calibration/warm-up%s; "
           "nothing pinned\n",
           li, RUNS, g_run_ns / 1000000u, quick ? " (--quick)" : "");
    printf("%slimits:   token bucket; (b), (d): 1e12 per 1,000,000 ms, burst 2^40 (always "
           "allows); (b'): 1 per 1,000,000 ms, burst 1 (exhausted); (c): 10 per 1,000,000 ms, "
           "burst 2,000,000 (allows, keys stay live)\n",
           li);
    if (sf->have) {
        const rl_segment_info *in = &sf->info;
        printf("%ssegment:  capacity %" PRIu64 ", slots %" PRIu64 ", %" PRIu64
               " bytes = %.1f bytes per key (%.1f per slot)\n",
               li, in->capacity, in->slots, in->segment_bytes,
               (double)in->segment_bytes / (double)in->capacity,
               (double)in->segment_bytes / (double)in->slots);
        printf("%sfilled:   slots_in_use %" PRIu64 ", max_probe %" PRIu64 ", enospc %" PRIu64
               ", reclaimed %" PRIu64 "; insert (first acquire of a new key) %.1f ns "
               "(0 -> 1M keys), %.1f ns (1M -> 2M)\n",
               li, in->slots_in_use, in->max_probe, in->enospc, in->reclaimed, sf->insert_ns_1m,
               sf->insert_ns_2m);
    }
    printf("%srules:    (f), (f'): the seed's %s rule, loaded with rl_load_config: "
           "user-hourly sliding window 4,194,303 per 100 ms per_user, ip-burst token bucket 1e12 "
           "per 1,000 s burst 2^40 per_ip, service sliding window 4,194,303 per 100 ms global "
           "(never denies here); (g): ip-burst alone; request GET /api/users with an IPv4 "
           "address and a user, no tier; (f'): %u clients (distinct IP and user each) in random "
           "order\n",
           li, markdown ? "`*/api/*`" : "*/api/*", CHECK_CLIENTS);
    if (cf->have)
        printf("%schecks:   rl_check segment after its rows: slots_in_use %" PRIu64
               ", reclaimed %" PRIu64 ", enospc %" PRIu64 "\n",
               li, cf->info.slots_in_use, cf->info.reclaimed, cf->info.enospc);
    printf("\n");

    char rate[32];
    cells cl = {"", "", "", ""};
    if (markdown) {
        printf("| row | what | ns/check | checks/s | spread | ratio | to | target | result |\n");
        printf("|---|---|--:|--:|--:|--:|---|---|---|\n");
    } else {
        printf("%-5s %-42s %9s %10s %7s %6s %-9s %-20s %s\n", "row", "what", "ns/check", "checks/s",
               "spread", "ratio", "to", "target", "result");
    }
    for (int i = 0; i < R_COUNT; i++) {
        const row *r = &g_rows[i];
        row_cells(r, &cl);
        char label[128];
        if (markdown)
            md_escape(r->label, label, sizeof label);
        else
            snprintf(label, sizeof label, "%s", r->label);
        if (!r->measured) {
            if (markdown)
                printf("| %s | %s | - | - | - | - | - | %s | skipped: %s |\n", r->id, label,
                       cl.target, r->skipped ? r->skipped : "?");
            else
                printf("%-5s %-42s %9s %10s %7s %6s %-9s %-20s skipped: %s\n", r->id, r->label, "-",
                       "-", "-", "-", "-", cl.target, r->skipped ? r->skipped : "?");
            continue;
        }
        fmt_rate(r->rate, rate, sizeof rate);
        char warn[64] = "";
        if (r->errors || r->unexpected)
            snprintf(warn, sizeof warn, " (%" PRIu64 " errors, %" PRIu64 " unexpected)", r->errors,
                     r->unexpected);
        if (markdown)
            printf("| %s | %s | %.1f | %s | %.0f%% | %s | %s | %s | %s%s |\n", r->id, label, r->ns,
                   rate, r->spread, cl.ratio, cl.vs, cl.target, cl.verdict, warn);
        else
            printf("%-5s %-42s %9.1f %10s %6.0f%% %6s %-9s %-20s %s%s\n", r->id, r->label, r->ns,
                   rate, r->spread, cl.ratio, cl.vs, cl.target, cl.verdict, warn);
    }
    printf("\n");
    printf("%sns/check of the (d) rows is per process (%d x 1e9 / total checks/s); spread is "
           "(max - min) / median of the %d runs.\n",
           markdown ? "" : "note: ", DUO_PROCS, RUNS);
    const row *g = &g_rows[R_G], *gq = &g_rows[R_G_NOSTATS];
    if (g->measured && gq->measured)
        printf("%sthe decision counters cost %.1f ns per check ((g) - (g'); target <= 5 ns: "
               "%s).\n",
               markdown ? "" : "note: ", g->ns - gq->ns, g->ns - gq->ns <= 5.0 ? "PASS" : "MISS");
    printf("%sspeed is reported, never asserted: PASS/MISS do not change the exit status "
           "(INVALID, a failed or wrong decision, exits 1).\n",
           markdown ? "" : "note: ");
}

/* -------------------------------------------------------------------------------------------- */
/* --redis: "vs pure Redis". The bench starts its own redis-server on a free loopback port and   */
/* compares LOCAL rl_acquire with STRICT (one Lua script per check through the pool), at          */
/* concurrency 1 and 32, with the same script pipelined on a raw hiredis connection, and with     */
/* the seed's published load-test figures (not measured). */

#define X_KEYS        10000u
#define X_THREADS     32
#define X_PIPELINE    64
#define X_ROW_NS      2000000000ull /* one timed run per row */
#define X_QUICK_NS    300000000ull
#define X_LAT_CAP     (4u << 20)   /* latency samples kept by a single-thread row */
#define X_LAT_CAP_T   (256u << 10) /* ... by each of the 32 threads */
#define SEED_RATE     221.2        /* the seed's load test: 10,000 requests in 45.2 s */
#define SEED_MEAN_NS  23.5e6
#define SEED_P99_NS   87.3e6
#define GLOBAL_RATIO  1000.0 /* the later target: GLOBAL >= 1,000 x STRICT c1 per core ... */
#define GLOBAL_P99_NS 1000.0 /* ... with p99 <= 1 us */

typedef struct lat_buf {
    uint32_t *v;
    size_t n, cap;
} lat_buf;

static inline void lat_add(lat_buf *b, uint64_t ns)
{
    if (b->n < b->cap)
        b->v[b->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

enum { X_LOCAL, X_C1, X_C32, X_PIPE, X_KIND };

typedef struct xrow {
    const char *label;
    bool measured;
    const char *skipped;
    double rate;    /* checks per second (total) */
    double mean_ns; /* mean latency of one call (a batch of 64 for the pipelined rows) */
    double p99_ns;
    uint64_t checks, samples, errors, unexpected;
} xrow;

static xrow g_x[2][X_KIND] = {
    {{.label = "LOCAL rl_acquire, 1 key"},
     {.label = "STRICT rl_acquire, 1 key, concurrency 1"},
     {.label = "STRICT rl_acquire, 1 key, concurrency 32"},
     {.label = "EVALSHA pipelined x64, 1 key, 1 connection"}},
    {{.label = "LOCAL rl_acquire, 10,000 keys"},
     {.label = "STRICT rl_acquire, 10,000 keys, concurrency 1"},
     {.label = "STRICT rl_acquire, 10,000 keys, concurrency 32"},
     {.label = "EVALSHA pipelined x64, 10,000 keys, 1 connection"}},
};

typedef struct xfacts {
    bool have_mem;
    long long mem_before, mem_after, keys_before, keys_after;
    char version[32];
    double script_us;                 /* INFO commandstats: server time per EVALSHA, all rows */
    double ping_mean_ns, ping_p99_ns; /* PING round trips on the raw connection, concurrency 1 */
    long long clients_before, clients_after; /* INFO memory mem_clients_normal */
    int port;
    const char *why; /* the whole section skipped */
} xfacts;

static uint64_t g_x_ns = X_ROW_NS;

/* A worker: rl_acquire over keys[start..) cyclically for duration_ns, each call timed. */
typedef struct xworker {
    rl_t *rl;
    const rl_limit *lim;
    const bkey *keys;
    size_t nkeys, start;
    uint64_t duration_ns;
    _Atomic int *go;
    lat_buf lat;
    bool stop_full; /* stop when lat is full (the LOCAL latency pass) */
    uint64_t count, errors, denied, ns;
    int last_error;
} xworker;

static void x_timed(xworker *w)
{
    size_t k = w->start;
    uint64_t count = 0, errors = 0, denied = 0;
    rl_result r;
    uint64_t t0 = mono_ns(), prev = t0, end = t0 + w->duration_ns;
    for (;;) {
        int rc = rl_acquire(w->rl, w->keys[k].s, w->keys[k].len, w->lim, 1, &r);
        uint64_t now = mono_ns();
        lat_add(&w->lat, now - prev);
        prev = now;
        count++;
        if (rc != 0) {
            errors++;
            w->last_error = rc;
        } else if (!r.allowed) {
            denied++;
        }
        if (++k == w->nkeys)
            k = 0;
        if (now >= end || g_signal != 0 || (w->stop_full && w->lat.n == w->lat.cap))
            break;
    }
    w->count = count;
    w->errors = errors;
    w->denied = denied;
    w->ns = prev - t0;
}

static void *x_thread(void *arg)
{
    xworker *w = arg;
    while (atomic_load_explicit(w->go, memory_order_acquire) == 0)
        sched_yield();
    x_timed(w);
    return NULL;
}

/* Untimed LOCAL loop: throughput without a clock read per call. */
static double x_local_rate(rl_t *rl, const rl_limit *lim, const bkey *keys, size_t nkeys,
                           uint64_t duration_ns, uint64_t *errors, uint64_t *denied)
{
    size_t k = 0;
    uint64_t count = 0;
    rl_result r;
    uint64_t t0 = mono_ns(), t = t0;
    while (t - t0 < duration_ns && g_signal == 0) {
        for (int i = 0; i < 1024; i++) {
            if (rl_acquire(rl, keys[k].s, keys[k].len, lim, 1, &r) != 0)
                (*errors)++;
            else if (!r.allowed)
                (*denied)++;
            if (++k == nkeys)
                k = 0;
        }
        count += 1024;
        t = mono_ns();
    }
    return (double)count * 1e9 / (double)(t - t0);
}

static void x_finish(xrow *x, uint32_t *v, size_t n)
{
    bench_latency(v, n, &x->mean_ns, &x->p99_ns);
    x->samples = n;
    x->measured = true;
}

/* Rows (1)-(3) of one key set. */
static void x_rl_rows(int set, rl_t *rl, const rl_limit *local, const rl_limit *strict,
                      const bkey *keys, size_t nkeys, uint32_t *lat)
{
    uint64_t warm = g_x_ns / 10;
    /* (1) LOCAL: rate from an untimed loop, latencies from a timed pass (<= X_LAT_CAP calls). */
    xrow *x = &g_x[set][X_LOCAL];
    fprintf(stderr, "  %-50s ", x->label);
    uint64_t e = 0, d = 0;
    x_local_rate(rl, local, keys, nkeys, warm, &e, &d);
    e = d = 0;
    x->rate = x_local_rate(rl, local, keys, nkeys, g_x_ns, &e, &d);
    xworker w = {.rl = rl,
                 .lim = local,
                 .keys = keys,
                 .nkeys = nkeys,
                 .duration_ns = g_x_ns,
                 .stop_full = true};
    w.lat = (lat_buf){lat, 0, X_LAT_CAP};
    x_timed(&w);
    check_signal();
    x->checks = w.count;
    x->errors = e + w.errors;
    x->unexpected = d + w.denied;
    x_finish(x, lat, w.lat.n);
    fprintf(stderr, "%10.0f checks/s\n", x->rate);

    /* (2) STRICT, one thread. */
    x = &g_x[set][X_C1];
    fprintf(stderr, "  %-50s ", x->label);
    uint64_t fb0 = strict_fallbacks(rl);
    w = (xworker){.rl = rl, .lim = strict, .keys = keys, .nkeys = nkeys, .duration_ns = warm};
    w.lat = (lat_buf){lat, 0, X_LAT_CAP};
    x_timed(&w);
    w.duration_ns = g_x_ns;
    w.lat.n = 0;
    x_timed(&w);
    check_signal();
    x->checks = w.count;
    x->rate = (double)w.count * 1e9 / (double)w.ns;
    x->errors = w.errors;
    x->unexpected = w.denied + (strict_fallbacks(rl) - fb0);
    x_finish(x, lat, w.lat.n);
    fprintf(stderr, "%10.0f checks/s\n", x->rate);

    /* (3) STRICT, 32 threads (the pool has 32 connections). */
    x = &g_x[set][X_C32];
    fprintf(stderr, "  %-50s ", x->label);
    xworker *ws = calloc(X_THREADS, sizeof *ws);
    pthread_t th[X_THREADS];
    if (ws == NULL) {
        x->skipped = "out of memory";
        fprintf(stderr, "skipped\n");
        return;
    }
    fb0 = strict_fallbacks(rl);
    for (int pass = 0; pass < 2; pass++) {
        _Atomic int go = 0;
        int started = 0;
        for (int i = 0; i < X_THREADS; i++) {
            ws[i] = (xworker){.rl = rl,
                              .lim = strict,
                              .keys = keys,
                              .nkeys = nkeys,
                              .start = (size_t)i * nkeys / X_THREADS,
                              .duration_ns = pass ? g_x_ns : warm,
                              .go = &go};
            ws[i].lat = (lat_buf){lat + (size_t)i * X_LAT_CAP_T, 0, X_LAT_CAP_T};
            if (pthread_create(&th[i], NULL, x_thread, &ws[i]) != 0)
                break;
            started++;
        }
        atomic_store_explicit(&go, 1, memory_order_release);
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        if (started < X_THREADS) {
            x->skipped = "pthread_create failed";
            fprintf(stderr, "skipped\n");
            free(ws);
            return;
        }
    }
    check_signal();
    x->rate = 0;
    size_t n = 0;
    for (int i = 0; i < X_THREADS; i++) {
        x->rate += ws[i].ns ? (double)ws[i].count * 1e9 / (double)ws[i].ns : 0;
        x->checks += ws[i].count;
        x->errors += ws[i].errors;
        x->unexpected += ws[i].denied;
        /* gather the samples at the front of lat */
        memmove(lat + n, lat + (size_t)i * X_LAT_CAP_T, ws[i].lat.n * sizeof *lat);
        n += ws[i].lat.n;
    }
    x->unexpected += strict_fallbacks(rl) - fb0;
    x_finish(x, lat, n);
    fprintf(stderr, "%10.0f checks/s\n", x->rate);
    free(ws);
}

/* (4): rl__lua_bucket by EVALSHA on one raw connection, X_PIPELINE commands per round trip. */
static void x_pipe_row(int set, redisContext *ctx, const char *sha, char (*rkeys)[24], size_t nkeys,
                       uint32_t *lat)
{
    xrow *x = &g_x[set][X_PIPE];
    fprintf(stderr, "  %-50s ", x->label);
    /* The arguments rl's STRICT token bucket sends for the always-allow limit: T = 1 us,
     * tau = T x burst = 2^40 us, cost 1, TTL 2 x window + 1 s. */
    const char *av[8] = {"EVALSHA", sha, "1", NULL, "1", "1099511627776", "1", "2001000"};
    size_t al[8];
    for (int i = 0; i < 8; i++)
        al[i] = i == 3 ? 0 : strlen(av[i]);
    size_t k = 0;
    lat_buf lb = {lat, 0, X_LAT_CAP};
    uint64_t count = 0, errors = 0, denied = 0, elapsed = 0;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t duration = pass ? g_x_ns : g_x_ns / 10;
        count = errors = denied = 0;
        lb.n = 0;
        uint64_t t0 = mono_ns(), prev = t0;
        while (prev - t0 < duration && g_signal == 0) {
            for (int j = 0; j < X_PIPELINE; j++) {
                av[3] = rkeys[k];
                al[3] = strlen(rkeys[k]);
                if (++k == nkeys)
                    k = 0;
                redisAppendCommandArgv(ctx, 8, av, al);
            }
            for (int j = 0; j < X_PIPELINE; j++) {
                void *vr = NULL;
                if (redisGetReply(ctx, &vr) != REDIS_OK) {
                    fprintf(stderr, "failed: %s\n", ctx->errstr);
                    x->skipped = "the raw connection failed (see stderr)";
                    return;
                }
                redisReply *rep = vr;
                if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4 ||
                    rep->element[0]->type != REDIS_REPLY_INTEGER)
                    errors++;
                else if (rep->element[0]->integer != 1)
                    denied++;
                freeReplyObject(rep);
            }
            uint64_t now = mono_ns();
            lat_add(&lb, now - prev);
            prev = now;
            count += X_PIPELINE;
        }
        elapsed = prev - t0;
    }
    check_signal();
    x->checks = count;
    x->rate = elapsed ? (double)count * 1e9 / (double)elapsed : 0;
    x->errors = errors;
    x->unexpected = denied;
    x_finish(x, lat, lb.n);
    fprintf(stderr, "%10.0f checks/s\n", x->rate);
}

static long long info_field(redisContext *ctx, const char *section, const char *field)
{
    redisReply *rep = redisCommand(ctx, "INFO %s", section);
    long long v = -1;
    if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        const char *p = strstr(rep->str, field);
        if (p != NULL)
            v = strtoll(p + strlen(field), NULL, 10);
    }
    freeReplyObject(rep);
    return v;
}

static void redis_section(bool quick, xfacts *xf)
{
    g_x_ns = quick ? X_QUICK_NS : X_ROW_NS;
    fprintf(stderr, "rl-bench: vs pure Redis: starting redis-server\n");
    redisContext *ctx = redis_child_start("rl-bench", g_owner, &g_signal, &xf->port, &xf->why);
    if (ctx == NULL) {
        redis_child_stop();
        check_signal();
        return;
    }
    redis_child_version(ctx, xf->version, sizeof xf->version);
    redisReply *rep = NULL;
    fprintf(stderr, "  redis-server %s on 127.0.0.1:%d\n", xf->version, xf->port);

    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", xf->port);
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_redis_seg;
    o.capacity = HOT_CAPACITY;
    o.redis_url = url;
    o.redis_pool_size = X_THREADS;
    o.redis_connect_timeout_ms = 2000;
    o.redis_command_timeout_ms = 2000;
    o.fallback = RL_FALLBACK_CLOSED; /* a fallback answer denies: counted as unexpected */
    rl_t *rl = NULL;
    int rc = rl_open(&rl, &o);
    uint32_t *lat = malloc((size_t)X_THREADS * X_LAT_CAP_T > X_LAT_CAP
                               ? (size_t)X_THREADS * X_LAT_CAP_T * sizeof *lat
                               : (size_t)X_LAT_CAP * sizeof *lat);
    bkey *keys = make_keys(X_KEYS, 0x3c6ef372fe94f82bull);
    char(*rkeys)[24] = malloc(X_KEYS * sizeof *rkeys);
    char sha[41] = "";
    if (rc < 0) {
        fprintf(stderr, "rl-bench: rl_open with %s: %s: %s\n", url, rl_strerror(rc), rl_errmsg());
        xf->why = "rl_open with the Redis URL failed (see stderr)";
    } else if (lat == NULL || keys == NULL || rkeys == NULL) {
        xf->why = "out of memory";
    } else {
        rep = redisCommand(ctx, "SCRIPT LOAD %s", rl__lua_bucket);
        if (rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len == 40)
            memcpy(sha, rep->str, 41);
        else
            xf->why = "SCRIPT LOAD failed";
        freeReplyObject(rep);
    }
    if (xf->why != NULL)
        goto out;

    rl_limit local = {.requests = 1000000000000ull, .window_ms = 1000000, .burst = 1ull << 40};
    rl_limit strict = local;
    strict.mode = RL_MODE_STRICT;
    static const bkey one = {8, "user:one"};
    for (unsigned i = 0; i < X_KEYS; i++)
        snprintf(rkeys[i], sizeof rkeys[i], "rl:{pipe-%05u}", i);

    x_rl_rows(0, rl, &local, &strict, &one, 1, lat);
    x_pipe_row(0, ctx, sha, rkeys, 1, lat);

    /* The floor of any STRICT check: one loopback round trip (PING), concurrency 1. */
    {
        lat_buf lb = {lat, 0, X_LAT_CAP};
        uint64_t t0 = mono_ns(), prev = t0;
        while (prev - t0 < g_x_ns / 4 && g_signal == 0) {
            redisReply *pr = redisCommand(ctx, "PING");
            freeReplyObject(pr);
            uint64_t now = mono_ns();
            lat_add(&lb, now - prev);
            prev = now;
        }
        xrow px;
        memset(&px, 0, sizeof px);
        x_finish(&px, lat, lb.n);
        xf->ping_mean_ns = px.mean_ns;
        xf->ping_p99_ns = px.p99_ns;
    }
    /* Memory per key: the first STRICT check of each of the 10,000 keys creates its Redis key.
     * The connections' buffers (mem_clients_normal) move by themselves: they are subtracted. */
    xf->clients_before = info_field(ctx, "memory", "mem_clients_normal:");
    xf->mem_before = info_field(ctx, "memory", "used_memory:");
    xf->keys_before = info_field(ctx, "keyspace", "keys=");
    rl_result r;
    for (unsigned i = 0; i < X_KEYS; i++)
        rl_acquire(rl, keys[i].s, keys[i].len, &strict, 1, &r);
    xf->mem_after = info_field(ctx, "memory", "used_memory:");
    xf->clients_after = info_field(ctx, "memory", "mem_clients_normal:");
    xf->keys_after = info_field(ctx, "keyspace", "keys=");
    xf->have_mem = xf->mem_before > 0 && xf->mem_after > 0;
    check_signal();

    x_rl_rows(1, rl, &local, &strict, keys, X_KEYS, lat);
    x_pipe_row(1, ctx, sha, rkeys, X_KEYS, lat);
    rep = redisCommand(ctx, "INFO commandstats");
    if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        const char *p = strstr(rep->str, "cmdstat_evalsha:");
        p = p ? strstr(p, "usec_per_call=") : NULL;
        if (p != NULL)
            xf->script_us = strtod(p + 14, NULL);
    }
    freeReplyObject(rep);
out:
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < X_KIND; k++)
            if (!g_x[s][k].measured && g_x[s][k].skipped == NULL)
                g_x[s][k].skipped = xf->why ? xf->why : "not run";
    free(rkeys);
    free(keys);
    free(lat);
    rl_close(&rl);
    rl_unlink(g_redis_seg);
    g_redis_seg[0] = '\0';
    redisFree(ctx);
    redis_child_stop();
}

static bool x_valid(const xrow *x)
{
    return x->measured && x->errors == 0 && x->unexpected == 0;
}

static void print_redis_section(bool markdown, const xfacts *xf)
{
    const char *li = markdown ? "- " : "";
    printf("\n%svs pure Redis (--redis)\n\n", markdown ? "#### " : "");
    if (xf->why != NULL) {
        printf("%sskipped: %s\n", li, xf->why);
        return;
    }
    bench_print_server(li, xf->version, xf->port);
    printf("%slimit:    token bucket 1e12 per 1,000,000 ms, burst 2^40 (always allows); LOCAL "
           "and STRICT differ only in rl_limit.mode; STRICT pool %d connections, fallback "
           "CLOSED (a fallback answer would show as unexpected)\n",
           li, X_THREADS);
    printf("%smethod:   one timed run of ~%" PRIu64 " ms per row after a warm-up of a tenth of "
           "that; every call timed with CLOCK_MONOTONIC (LOCAL: checks/s from an untimed loop, "
           "latencies from a timed pass of at most %u calls, which adds one clock read); "
           "pipelined: latency = one round trip of %d commands\n",
           li, g_x_ns / 1000000u, X_LAT_CAP, X_PIPELINE);
    printf("\n");
    if (markdown) {
        printf("| keys | what | checks/s | latency mean | latency p99 | LOCAL is x faster |\n");
        printf("|---|---|--:|--:|--:|--:|\n");
    } else {
        printf("%-6s %-50s %12s %12s %12s %10s\n", "keys", "what", "checks/s", "lat mean",
               "lat p99", "LOCAL x");
    }
    for (int s = 0; s < 2; s++) {
        const xrow *loc = &g_x[s][X_LOCAL];
        for (int k = 0; k < X_KIND; k++) {
            const xrow *x = &g_x[s][k];
            const char *keys = s ? "10,000" : "1";
            if (!x->measured) {
                printf(markdown ? "| %s | %s | - | - | - | skipped: %s |\n"
                                : "%-6s %-50s skipped: %s\n",
                       keys, x->label, x->skipped ? x->skipped : "?");
                continue;
            }
            char rate[32], mean[32], p99[32], ratio[48];
            snprintf(rate, sizeof rate, "%.0f", x->rate);
            fmt_ns(x->mean_ns, mean, sizeof mean);
            fmt_ns(x->p99_ns, p99, sizeof p99);
            if (k == X_LOCAL)
                snprintf(ratio, sizeof ratio, "1");
            else if (loc->measured && x->rate > 0)
                snprintf(ratio, sizeof ratio, "%.0f", loc->rate / x->rate);
            else
                snprintf(ratio, sizeof ratio, "-");
            if (!x_valid(x))
                snprintf(ratio + strlen(ratio), sizeof ratio - strlen(ratio),
                         " INVALID (%" PRIu64 "/%" PRIu64 ")", x->errors, x->unexpected);
            printf(markdown ? "| %s | %s | %s | %s | %s | %s |\n"
                            : "%-6s %-50s %12s %12s %12s %10s\n",
                   keys, x->label, rate, mean, p99, ratio);
        }
    }
    const xrow *loc1 = &g_x[0][X_LOCAL];
    char seedr[32] = "-";
    if (loc1->measured)
        snprintf(seedr, sizeof seedr, "%.0f", loc1->rate / SEED_RATE);
    printf(markdown ? "| %s | %s | %.1f | %.1f ms | %.1f ms | %s |\n"
                    : "%-6s %-50s %12.1f %9.1f ms %9.1f ms %10s\n",
           "-", "seed load test, published (NOT measured here)", SEED_RATE, SEED_MEAN_NS / 1e6,
           SEED_P99_NS / 1e6, seedr);
    printf("\n");
    printf("%sratios (checks/s of LOCAL over the other row; 1 key / 10,000 keys):\n", li);
    static const char *const names[X_KIND] = {"", "STRICT c1", "STRICT c32", "pipelined x64"};
    for (int k = X_C1; k < X_KIND; k++) {
        char v[2][24];
        for (int s = 0; s < 2; s++) {
            const xrow *a = &g_x[s][X_LOCAL], *b = &g_x[s][k];
            if (a->measured && b->measured && b->rate > 0)
                snprintf(v[s], sizeof v[s], "%.0f x", a->rate / b->rate);
            else
                snprintf(v[s], sizeof v[s], "-");
        }
        printf("%s  LOCAL / %-14s %s / %s\n", markdown ? "  - " : "", names[k], v[0], v[1]);
    }
    printf(
        "%s  LOCAL / %-14s %s x (the seed's published \"example load test results\": %.1f "
        "req/s, %.1f ms mean; not measured here, and the seed does not say what they measured)\n",
        markdown ? "  - " : "", "seed", seedr, SEED_RATE, SEED_MEAN_NS / 1e6);
    const xrow *c1 = &g_x[0][X_C1];
    if (loc1->measured && c1->measured && c1->rate > 0)
        printf("%sGLOBAL target (>= %.0f x STRICT at concurrency 1 per core, p99 <= %.0f ns): "
               "measured by bench/rl-global (section 4) with the sync thread and Redis running; "
               "here LOCAL (1 key, one thread), the same hot path without the sync, is %.0f x "
               "STRICT c1, p99 %.0f ns\n",
               li, GLOBAL_RATIO, GLOBAL_P99_NS, loc1->rate / c1->rate, loc1->p99_ns);
    if (xf->script_us > 0)
        printf("%sserver:   INFO commandstats: %.2f us of Redis time per EVALSHA of the token "
               "bucket script (mean over every row; the rest of a STRICT check is the round trip "
               "and the client)\n",
               li, xf->script_us);
    if (xf->ping_mean_ns > 0) {
        char m[32], q[32];
        fmt_ns(xf->ping_mean_ns, m, sizeof m);
        fmt_ns(xf->ping_p99_ns, q, sizeof q);
        printf("%sfloor:    PING on the raw connection, concurrency 1: %s mean, %s p99 (one "
               "loopback round trip, no script)\n",
               li, m, q);
    }
    long long kb = xf->keys_before < 0 ? 0 : xf->keys_before;
    if (xf->have_mem && xf->keys_after > kb) {
        long long dm = xf->mem_after - xf->mem_before;
        long long dc = xf->clients_before >= 0 && xf->clients_after >= 0
                           ? xf->clients_after - xf->clients_before
                           : 0;
        printf("%smemory:   STRICT, INFO memory after the first check of %u keys (keys %lld -> "
               "%lld): used_memory +%lld bytes, of which connection buffers %+lld: %.1f bytes "
               "per key without them (%.1f with)\n",
               li, X_KEYS, kb, xf->keys_after, dm, dc,
               (double)(dm - dc) / (double)(xf->keys_after - kb),
               (double)dm / (double)(xf->keys_after - kb));
    }
}

static bool redis_section_invalid(void)
{
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < X_KIND; k++)
            if (g_x[s][k].measured && !x_valid(&g_x[s][k]))
                return true;
    return false;
}

/* -------------------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rl-bench [--quick] [--markdown] [--redis]\n"
            "  --quick     runs of ~30 ms instead of ~150 ms (what `meson test --benchmark` uses)\n"
            "  --markdown  print the report as Markdown (for docs/benchmarks.md)\n"
            "  --redis     add \"vs pure Redis\": start a private redis-server (from PATH) on a\n"
            "              free loopback port and compare LOCAL with STRICT checks (~20 s more)\n"
            "Progress goes to stderr, the report to stdout. Exit 0 whenever it measured, 1 when\n"
            "a call failed or decided wrongly (INVALID) or on a setup error.\n");
}

static int open_segment(rl_t **out, const char *name, size_t capacity)
{
    rl_options o;
    rl_options_init(&o);
    o.shm_name = name;
    o.capacity = capacity;
    int rc = rl_open(out, &o);
    if (rc < 0)
        fprintf(stderr, "rl-bench: rl_open %s (capacity %zu): %s: %s\n", name, capacity,
                rl_strerror(rc), rl_errmsg());
    return rc;
}

/* First acquire of keys [from, to): inserts them. Returns ns per key or < 0 on an error. */
static double insert_keys(rl_t *rl, const rl_limit *lim, const bkey *k, size_t from, size_t to)
{
    rl_result r;
    uint64_t errors = 0;
    int last = 0;
    uint64_t t0 = mono_ns();
    for (size_t i = from; i < to; i++) {
        int rc = rl_acquire(rl, k[i].s, k[i].len, lim, 1, &r);
        if (rc != 0) {
            errors++;
            last = rc;
        }
        if ((i & 0xffffu) == 0)
            check_signal();
    }
    uint64_t t = mono_ns() - t0;
    if (errors)
        fprintf(stderr, "        WARNING: %" PRIu64 " of %zu inserts failed, last: %s: %s\n",
                errors, to - from, rl_strerror(last), rl_errmsg());
    return to > from ? (double)t / (double)(to - from) : 0;
}

/* ---- (f), (g): rl_check ---- */

/* The seed's API rule (examples/production.yaml): the same pattern, three layers, algorithms,
 * scopes and names, with limits raised so that no check is ever denied at the speeds measured here.
 * A sliding window holds at most 4,194,303 requests per window, so its window is 100 ms (42 M
 * checks/s, more than twice what one thread reaches); the token bucket takes the always-allow
 * limit of (b). The file-level settings are the production preset's. */
static const char RULES_API[] =
    "version: 1\n"
    "description: \"rl-bench: the seed's */api/* rule, limits raised so that nothing is "
    "denied\"\n"
    "warn_threshold: 0.8\n"
    "audit: denials\n"
    "endpoints:\n"
    "  - pattern: \"*/api/*\"\n"
    "    limits:\n"
    "      - {name: user-hourly, requests: 4194303, window: 100ms, algorithm: sliding_window, "
    "scope: per_user}\n"
    "      - {name: ip-burst, requests: 1000000000000, window: 1000s, burst: 1099511627776, "
    "algorithm: token_bucket, scope: per_ip}\n"
    "      - {name: service, requests: 4194303, window: 100ms, algorithm: sliding_window, "
    "scope: global}\n";

/* (g): the same rule with only its per-IP token bucket (same name, so the same counter). */
static const char RULES_ONE[] =
    "version: 1\n"
    "description: \"rl-bench: a one-layer rule\"\n"
    "warn_threshold: 0.8\n"
    "audit: denials\n"
    "endpoints:\n"
    "  - pattern: \"*/api/*\"\n"
    "    limits:\n"
    "      - {name: ip-burst, requests: 1000000000000, window: 1000s, burst: 1099511627776, "
    "algorithm: token_bucket, scope: per_ip}\n";

/* Writes text to a temporary file, has rl_load_config() publish it, removes the file. */
static int load_rules(rl_t *rl, const char *text)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    char path[sizeof g_yaml_path];
    int w = snprintf(path, sizeof path, "%s/rl-bench-%ld-XXXXXX.yaml", dir, (long)g_owner);
    if (w < 0 || (size_t)w >= sizeof path) {
        fprintf(stderr, "rl-bench: TMPDIR is too long\n");
        return -1;
    }
    memcpy(g_yaml_path, path, sizeof path); /* the signal handler removes what is there */
    int fd = mkstemps(g_yaml_path, 5);
    if (fd < 0) {
        fprintf(stderr, "rl-bench: cannot create a rule file in %s: %s\n", dir, strerror(errno));
        g_yaml_path[0] = '\0';
        return -1;
    }
    size_t len = strlen(text);
    ssize_t wr = write(fd, text, len);
    int rc = close(fd);
    if (wr < 0 || (size_t)wr != len || rc != 0) {
        fprintf(stderr, "rl-bench: cannot write %s: %s\n", g_yaml_path, strerror(errno));
        rc = -1;
    } else {
        rc = rl_load_config(rl, g_yaml_path);
        if (rc < 0)
            fprintf(stderr, "rl-bench: rl_load_config %s: %s: %s\n", g_yaml_path, rl_strerror(rc),
                    rl_errmsg());
    }
    unlink(g_yaml_path);
    g_yaml_path[0] = '\0';
    return rc < 0 ? -1 : 0;
}

/* The 10,000 clients of (f'): client i is IP 10.1.(i/256).(i%256) with user "user-0000i". */
typedef struct clients {
    rl_request req[CHECK_CLIENTS];
    char ip[CHECK_CLIENTS][16];
    char user[CHECK_CLIENTS][16];
} clients;

static clients *make_clients(uint64_t seed)
{
    clients *cl = calloc(1, sizeof *cl);
    if (cl == NULL)
        return NULL;
    for (unsigned i = 0; i < CHECK_CLIENTS; i++) {
        snprintf(cl->ip[i], sizeof cl->ip[i], "10.1.%u.%u", (i >> 8) & 255u, i & 255u);
        snprintf(cl->user[i], sizeof cl->user[i], "user-%05u", i);
        cl->req[i].method = "GET";
        cl->req[i].path = "/api/users";
        cl->req[i].ip = cl->ip[i];
        cl->req[i].user = cl->user[i];
    }
    uint64_t s = seed;
    for (size_t i = CHECK_CLIENTS - 1; i > 0; i--) {
        size_t j = (size_t)(xorshift64(&s) % (i + 1));
        rl_request t = cl->req[i];
        cl->req[i] = cl->req[j];
        cl->req[j] = t;
    }
    return cl;
}

static void skip_check_rows(const char *why)
{
    for (int i = R_F; i <= R_G_NOSTATS; i++)
        if (!g_rows[i].measured && g_rows[i].skipped == NULL)
            g_rows[i].skipped = why;
}

static void check_rows(bench_ctx *c, check_facts *cf)
{
    rl_t *rl = NULL;
    if (open_segment(&rl, g_check_name, HOT_CAPACITY) < 0) {
        skip_check_rows("could not create the rl_check segment (see stderr)");
        return;
    }
    clients *cl = NULL;
    if (load_rules(rl, RULES_API) < 0) {
        skip_check_rows("rl_load_config failed (see stderr)");
        goto out;
    }
    static const rl_request one = {
        .method = "GET", .path = "/api/users", .ip = "192.0.2.1", .user = "user-one"};
    c->rl = rl;
    c->rbeg = c->rcur = &one;
    c->rend = &one + 1;
    c->layers = 3;
    measure(R_F, loop_check, c, EXPECT_ALL_ALLOWED);

    cl = make_clients(0x452821e638d01377ull);
    if (cl == NULL) {
        g_rows[R_F_MANY].skipped = "out of memory for the clients";
    } else {
        c->rbeg = c->rcur = cl->req;
        c->rend = cl->req + CHECK_CLIENTS;
        loop_check(c, CHECK_CLIENTS); /* first check of each client inserts its keys */
        c->rcur = c->rbeg;
        measure(R_F_MANY, loop_check, c, EXPECT_ALL_ALLOWED);
    }

    if (load_rules(rl, RULES_ONE) < 0) {
        skip_check_rows("rl_load_config of the one-layer rule failed (see stderr)");
        goto out;
    }
    c->rbeg = c->rcur = &one;
    c->rend = &one + 1;
    c->layers = 1;
    measure(R_G, loop_check, c, EXPECT_ALL_ALLOWED);
    {
        rl_options o;
        rl_options_init(&o);
        o.shm_name = g_check_name;
        o.flags = RL_OPEN_NO_STATS;
        rl_t *quiet = NULL;
        if (rl_open(&quiet, &o) < 0) {
            g_rows[R_G_NOSTATS].skipped = "rl_open with RL_OPEN_NO_STATS failed";
        } else {
            c->rl = quiet;
            measure(R_G_NOSTATS, loop_check, c, EXPECT_ALL_ALLOWED);
            c->rl = rl;
            rl_close(&quiet);
        }
    }
    if (rl_segment_info_get(rl, &cf->info) == 0)
        cf->have = true;
out:
    free(cl);
    c->rl = NULL;
    c->rbeg = c->rend = c->rcur = NULL;
    rl_close(&rl);
    rl_unlink(g_check_name);
    g_check_name[0] = '\0';
}

int main(int argc, char **argv)
{
    bool quick = false, markdown = false, redis = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--markdown") == 0) {
            markdown = true;
        } else if (strcmp(argv[i], "--redis") == 0) {
            redis = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "rl-bench: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    g_run_ns = quick ? QUICK_RUN_NS : FULL_RUN_NS;
    read_first_line("/proc/loadavg", "", g_load, sizeof g_load);
    char cmd[1024];
    command_line(argc, argv, cmd, sizeof cmd);

    g_owner = getpid();
    snprintf(g_big_name, sizeof g_big_name, "/rl-bench-%ld", (long)g_owner);
    snprintf(g_hot_name, sizeof g_hot_name, "/rl-bench-%ld-hot", (long)g_owner);
    snprintf(g_check_name, sizeof g_check_name, "/rl-bench-%ld-check", (long)g_owner);
    if (redis)
        snprintf(g_redis_seg, sizeof g_redis_seg, "/rl-bench-%ld-redis", (long)g_owner);
    if (atexit(cleanup) != 0)
        return 1;
    catch_signals(on_signal, SIGINT, SIGTERM, SIGHUP, 0);

    /* A limit that always allows at the speeds measured here: 1e12 per 1,000 s = one per ns
     * (the most rl.h accepts), burst 2^40. And one that is exhausted after its first request. */
    rl_limit allow = {.requests = 1000000000000ull, .window_ms = 1000000, .burst = 1ull << 40};
    rl_limit deny = {.requests = 1, .window_ms = 1000000, .burst = 1};
    /* The (c) rows need keys that stay in the table: under `allow` a key refills in 1 ns, so it
     * is "fresh" (equal to a new key) again at once and an insert may reclaim its slot; the
     * "full" segment would then churn instead of holding 2,000,000 keys. Under `sticky` one
     * request takes 100 s to refill (10 per 1,000 s) and a key holds 2,000,000 (burst x 100 s =
     * 2e17 ns <= 2^58), so no key turns fresh or runs dry during the bench. */
    rl_limit sticky = {.requests = 10, .window_ms = 1000000, .burst = 2000000};

    fprintf(stderr, "rl-bench: %s; segments %s, %s, %s\n", quick ? "quick" : "full", g_big_name,
            g_hot_name, g_check_name);

    /* ---- hot rows: (a), (b) ---- */
    bench_ctx c;
    memset(&c, 0, sizeof c);
    rl_t *hot = NULL;
    if (open_segment(&hot, g_hot_name, HOT_CAPACITY) < 0)
        return 1;
    c.word = map_shared(4096);
    if (c.word == NULL) {
        perror("rl-bench: mmap");
        return 1;
    }
    measure(R_A, loop_floor_hot, &c, EXPECT_NONE);

    c.rl = hot;
    c.lim = &allow;
    c.key = "user:hot";
    c.keylen = strlen(c.key);
    measure(R_B, loop_acquire_hot, &c, EXPECT_ALL_ALLOWED);

    rl_result res;
    c.lim = &deny;
    c.key = "user:denied";
    c.keylen = strlen(c.key);
    memset(&res, 0, sizeof res);
    int rc = rl_acquire(hot, c.key, c.keylen, &deny, 1, &res);
    if (rc != 0 || !res.allowed)
        fprintf(stderr, "rl-bench: first acquire of the denied key: %s (%s), allowed %d\n",
                rl_strerror(rc), rc ? rl_errmsg() : "", (int)res.allowed);
    measure(R_B_DENY, loop_acquire_hot, &c, EXPECT_ALL_DENIED);

    /* (b") as (b) on a rate whose window is not a multiple of it (999,999,999,999 per 1,000 s):
     * the exact-rate arithmetic off the nanosecond grid (docs/design.md section 6). */
    rl_limit allow_odd = {.requests = 999999999999ull, .window_ms = 1000000, .burst = 1ull << 40};
    c.lim = &allow_odd;
    c.key = "user:hot-odd";
    c.keylen = strlen(c.key);
    measure(R_B_ODD, loop_acquire_hot, &c, EXPECT_ALL_ALLOWED);

    /* ---- rl_check rows: (f), (f'), (g) ---- */
    check_facts cf;
    memset(&cf, 0, sizeof cf);
    check_rows(&c, &cf);

    /* ---- cold rows: (e), (c) ---- */
    seg_facts sf;
    memset(&sf, 0, sizeof sf);
    rl_t *big = NULL;
    const char *why = NULL;
    bkey *keys = NULL;
    rc = open_segment(&big, g_big_name, BIG_CAPACITY);
    if (rc < 0)
        why = "could not create the 2,000,000-key segment (see stderr)";
    rl_segment_info info;
    memset(&info, 0, sizeof info);
    if (why == NULL && rl_segment_info_get(big, &info) != 0)
        why = "rl_segment_info_get failed";
    if (why == NULL) {
        fprintf(stderr, "  segment %s: %" PRIu64 " bytes, %" PRIu64 " slots; generating keys\n",
                g_big_name, info.segment_bytes, info.slots);
        keys = make_keys(BIG_CAPACITY, 0x9e3779b97f4a7c15ull);
        if (keys == NULL)
            why = "out of memory for the keys";
    }

    if (why == NULL) {
        /* (e): a region as large as the segment, faulted in before timing. */
        size_t bytes = (size_t)info.segment_bytes;
        size_t lines = bytes / LINE;
        uint32_t *idx = malloc(COLD_INDICES * sizeof *idx);
        char *region = map_shared(bytes);
        if (idx == NULL || region == NULL || lines == 0 || lines > UINT32_MAX) {
            g_rows[R_E].skipped = "could not map the region";
        } else {
            memset(region, 0, bytes);
            uint64_t s = 0x2545f4914f6cdd1dull;
            for (size_t i = 0; i < COLD_INDICES; i++)
                idx[i] = (uint32_t)(xorshift64(&s) % lines);
            c.region = region;
            c.idx = idx;
            c.nidx = COLD_INDICES;
            c.idx_pos = 0;
            measure(R_E, loop_floor_cold, &c, EXPECT_NONE);
            measure(R_E_PF, loop_floor_cold_pf, &c, EXPECT_NONE);
        }
        if (region)
            munmap(region, bytes);
        free(idx);
        c.region = NULL;
        c.idx = NULL;

        c.rl = big;
        c.lim = &sticky;
        c.kbeg = c.kcur = keys;
        c.kend = keys + KEYS_SMALL;
        insert_keys(big, &sticky, keys, 0, KEYS_SMALL);
        measure(R_C_1K, loop_acquire_keys, &c, EXPECT_ALL_ALLOWED);

        fprintf(stderr, "        inserting keys up to 1,000,000\n");
        sf.insert_ns_1m = insert_keys(big, &sticky, keys, KEYS_SMALL, KEYS_MID);
        /* Keys inserted late sit farther from home than early ones; walking them in insertion
         * order would make each timed run see a different mix. Shuffle after inserting. */
        shuffle_keys(keys, KEYS_MID, 0x243f6a8885a308d3ull);
        c.kbeg = c.kcur = keys;
        c.kend = keys + KEYS_MID;
        measure(R_C_1M, loop_acquire_keys, &c, EXPECT_ALL_ALLOWED);

        fprintf(stderr, "        filling to 2,000,000 keys\n");
        sf.insert_ns_2m = insert_keys(big, &sticky, keys, KEYS_MID, BIG_CAPACITY);
        shuffle_keys(keys, BIG_CAPACITY, 0x13198a2e03707344ull);
        c.kbeg = c.kcur = keys;
        c.kend = keys + BIG_CAPACITY;
        measure(R_C_FULL, loop_acquire_keys, &c, EXPECT_ALL_ALLOWED);
        if (rl_segment_info_get(big, &sf.info) == 0)
            sf.have = true;
    }
    if (why != NULL) {
        for (int i = R_E; i <= R_C_FULL; i++)
            if (!g_rows[i].measured && g_rows[i].skipped == NULL)
                g_rows[i].skipped = why;
    }
    free(keys);
    rl_close(&big);
    if (g_big_name[0] != '\0') {
        rl_unlink(g_big_name); /* free the ~150 MB before the (d) rows */
        g_big_name[0] = '\0';
    }

    /* ---- (d): 2 processes ---- */
    duo_ctl *ctl = map_shared(sizeof(duo_ctl));
    if (ctl == NULL) {
        g_rows[R_D_FLOOR].skipped = g_rows[R_D_RL].skipped = "could not map the control page";
    } else {
        measure_duo(R_D_FLOOR, ctl, true, NULL, NULL, NULL, 0);
        const char *key = "user:shared";
        measure_duo(R_D_RL, ctl, false, hot, &allow, key, strlen(key));
        munmap(ctl, sizeof(duo_ctl));
    }
    rl_close(&hot);

    xfacts xf;
    memset(&xf, 0, sizeof xf);
    if (redis)
        redis_section(quick, &xf);

    print_report(markdown, cmd, quick, &sf, &cf);
    if (redis)
        print_redis_section(markdown, &xf);
    for (int i = 0; i < R_COUNT; i++) {
        if (g_rows[i].measured && (g_rows[i].errors || g_rows[i].unexpected)) {
            fprintf(stderr, "rl-bench: row %s %s: calls failed or decided wrongly (INVALID)\n",
                    g_rows[i].id, g_rows[i].label);
            return 1;
        }
    }
    if (redis && (xf.why != NULL || redis_section_invalid())) {
        fprintf(stderr, "rl-bench: vs pure Redis: %s\n",
                xf.why ? xf.why : "calls failed or decided wrongly (INVALID)");
        return 1;
    }
    return 0;
}
