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
 *   rl-bench [--quick] [--markdown]
 */
#include <errno.h>
#include <inttypes.h>
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
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rl/rl.h>

#ifndef RL_BENCH_CC
#ifdef __VERSION__
#define RL_BENCH_CC __VERSION__
#else
#define RL_BENCH_CC "unknown compiler"
#endif
#endif
#ifndef RL_BENCH_BUILDTYPE
#define RL_BENCH_BUILDTYPE "unknown"
#endif
#ifndef RL_BENCH_JEMALLOC
#define RL_BENCH_JEMALLOC 0
#endif

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
}

static void check_signal(void)
{
    if (g_signal != 0) {
        fprintf(stderr, "rl-bench: interrupted by signal %d; segments removed\n", (int)g_signal);
        exit(128 + g_signal);
    }
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* -------------------------------------------------------------------------------------------- */
/* Small helpers                                                                                  */

static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL); /* an interrupting signal only shortens it */
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

typedef uint64_t (*loop_fn)(bench_ctx *c, uint64_t n);

static inline void floor_step(_Atomic uint64_t *w)
{
    uint64_t now = mono_ns();
    uint64_t old = atomic_load_explicit(w, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(w, &old, old + 1 + (now & 1),
                                                  memory_order_acq_rel, memory_order_acquire)) {
    }
}

static uint64_t loop_floor_hot(bench_ctx *c, uint64_t n)
{
    _Atomic uint64_t *w = c->word;
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < n; i++)
        floor_step(w);
    return mono_ns() - t0;
}

static uint64_t loop_floor_cold(bench_ctx *c, uint64_t n)
{
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
static uint64_t loop_floor_cold_pf(bench_ctx *c, uint64_t n)
{
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

static uint64_t loop_acquire_hot(bench_ctx *c, uint64_t n)
{
    rl_t *rl = c->rl;
    const rl_limit *lim = c->lim;
    const char *key = c->key;
    size_t keylen = c->keylen;
    uint64_t allowed = 0, errors = 0;
    int last = 0;
    rl_result r;
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        int rc = rl_acquire(rl, key, keylen, lim, 1, &r);
        if (rc == 0) {
            allowed += r.allowed;
        } else {
            errors++;
            last = rc;
        }
    }
    uint64_t t = mono_ns() - t0;
    c->allowed = allowed;
    c->errors = errors;
    if (errors)
        c->last_error = last;
    return t;
}

static uint64_t loop_acquire_keys(bench_ctx *c, uint64_t n)
{
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
static uint64_t loop_check(bench_ctx *c, uint64_t n)
{
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
    R_COUNT
};

static row g_rows[R_COUNT] = {
    [R_A] = {"(a)", "hot floor: CAS + clock", .floor = -1},
    [R_B] = {"(b)", "rl_acquire, 1 hot key, allowed", .floor = R_A, .target = TGT_RATIO_MAX,
             .target_value = TARGET_HOT_RATIO},
    [R_B_DENY] = {"(b')", "rl_acquire, 1 hot key, denied", .floor = R_A},
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
};

static uint64_t g_run_ns = FULL_RUN_NS;
static char g_load[64]; /* /proc/loadavg when the bench started */

/* Calibrates n so one run takes ~g_run_ns (the calibration runs are the warm-up), then times
 * RUNS runs and records the median. */
static void measure(int ri, loop_fn fn, bench_ctx *c, expect_t expect)
{
    row *r = &g_rows[ri];
    fprintf(stderr, "  %-5s %-42s ", r->id, r->label);
    fflush(stderr);

    uint64_t n = 1024, t = 0;
    uint64_t warm_ns = g_run_ns / 4;
    for (;;) {
        t = fn(c, n);
        check_signal();
        if (t >= warm_ns || n >= (1ull << 40))
            break;
        n = t < warm_ns / 16 ? n * 8 : n * 2;
    }
    if (t == 0)
        t = 1;
    n = (uint64_t)((double)n * (double)g_run_ns / (double)t);
    if (n < 1)
        n = 1;

    double ns[RUNS];
    r->errors = 0;
    r->unexpected = 0;
    c->last_error = 0;
    for (int i = 0; i < RUNS; i++) {
        c->errors = c->allowed = 0;
        t = fn(c, n);
        check_signal();
        ns[i] = (double)t / (double)n;
        r->errors += c->errors;
        if (expect == EXPECT_ALL_ALLOWED)
            r->unexpected += n - c->errors - c->allowed;
        if (expect == EXPECT_ALL_DENIED)
            r->unexpected += c->allowed;
    }
    qsort(ns, RUNS, sizeof ns[0], cmp_double);
    r->ns = ns[RUNS / 2];
    r->rate = 1e9 / r->ns;
    r->spread = (ns[RUNS - 1] - ns[0]) / r->ns * 100.0;
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
        sleep_ns(100000);
    atomic_store_explicit(&ctl->go, 1, memory_order_release);
    uint64_t end = mono_ns() + duration_ns;
    for (uint64_t now = mono_ns(); now < end && !g_signal; now = mono_ns())
        sleep_ns(end - now < 20000000u ? end - now : 20000000u);
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
    qsort(rates, RUNS, sizeof rates[0], cmp_double);
    r->rate = rates[RUNS / 2];
    r->ns = 1e9 * DUO_PROCS / r->rate;
    r->spread = (rates[RUNS - 1] - rates[0]) / r->rate * 100.0;
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

static void read_model(char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p == NULL)
                break;
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            p[strcspn(p, "\n")] = '\0';
            snprintf(out, n, "%s", p);
            break;
        }
    }
    fclose(f);
}

static void read_line_file(const char *path, char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)n, f))
        out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

static void command_line(int argc, char **argv, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < argc && used + 1 < n; i++) {
        bool quote = argv[i][0] == '\0' || strpbrk(argv[i], " \t\"'\\$`") != NULL;
        int w = snprintf(out + used, n - used, "%s%s%s%s", i ? " " : "", quote ? "'" : "", argv[i],
                         quote ? "'" : "");
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

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
    char model[256], clocksrc[64], date[64];
    struct utsname un;
    read_model(model, sizeof model);
    read_line_file("/sys/devices/system/clocksource/clocksource0/current_clocksource", clocksrc,
                   sizeof clocksrc);
    if (uname(&un) != 0)
        memset(&un, 0, sizeof un);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);

    const char *li = markdown ? "- " : "";
    printf("%srl-bench, librl %s, %s\n", markdown ? "#### " : "", rl_version(), date);
    if (markdown)
        printf("\n");
    printf("%scommand:  %s%s%s\n", li, markdown ? "`" : "", cmd, markdown ? "`" : "");
    printf("%smachine:  %s, nproc %ld, %s %s, clocksource %s\n", li, model, nproc, un.sysname,
           un.release, clocksrc);
    printf("%sload:     %s (/proc/loadavg at the start; other work on the machine skews "
           "every row)\n",
           li, g_load);
    printf("%scompiler: %s, buildtype %s, jemalloc %s\n", li, RL_BENCH_CC, RL_BENCH_BUILDTYPE,
           RL_BENCH_JEMALLOC ? "linked" : "no");
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
    printf("%sspeed is reported, never asserted: PASS/MISS do not change the exit status "
           "(INVALID, a failed or wrong decision, exits 1).\n",
           markdown ? "" : "note: ");
}

/* -------------------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rl-bench [--quick] [--markdown]\n"
            "  --quick     runs of ~30 ms instead of ~150 ms (what `meson test --benchmark` uses)\n"
            "  --markdown  print the report as Markdown (for docs/benchmarks.md)\n"
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
    for (int i = R_F; i <= R_G; i++)
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
    bool quick = false, markdown = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--markdown") == 0) {
            markdown = true;
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
    read_line_file("/proc/loadavg", g_load, sizeof g_load);
    char cmd[1024];
    command_line(argc, argv, cmd, sizeof cmd);

    g_owner = getpid();
    snprintf(g_big_name, sizeof g_big_name, "/rl-bench-%ld", (long)g_owner);
    snprintf(g_hot_name, sizeof g_hot_name, "/rl-bench-%ld-hot", (long)g_owner);
    snprintf(g_check_name, sizeof g_check_name, "/rl-bench-%ld-check", (long)g_owner);
    if (atexit(cleanup) != 0)
        return 1;
    install_signals();

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

    print_report(markdown, cmd, quick, &sf, &cf);
    for (int i = 0; i < R_COUNT; i++) {
        if (g_rows[i].measured && (g_rows[i].errors || g_rows[i].unexpected)) {
            fprintf(stderr, "rl-bench: row %s %s: calls failed or decided wrongly (INVALID)\n",
                    g_rows[i].id, g_rows[i].label);
            return 1;
        }
    }
    return 0;
}
