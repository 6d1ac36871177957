/*
 * Concurrency: many threads and processes deciding on the same keys at once. Every limit here
 * cannot refill during the test (a refill interval of hours, or a fixed time), so the number of
 * admissions is known exactly: a lost update (two requests admitted on one unit) or a lost
 * request (a unit consumed but reported denied) changes the total.
 */
#include "rl_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

TestSuite(concurrency, .init = seg_setup, .fini = seg_teardown);

enum { NTHREADS = 4, NPROCS = 4 };

/* ---- helpers --------------------------------------------------------------------------------- */

static void *shared_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED, "mmap %zu", n);
    memset(p, 0, n);
    return p;
}

/* Waits for a child and asserts it exited with 0. */
static void reap(pid_t pid, const char *what)
{
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child %d status 0x%x", what,
              (int)pid, status);
}

/* A spin barrier in shared memory (works across processes, unlike pthread_barrier_t without
 * PTHREAD_PROCESS_SHARED setup). */
static void spin_barrier(atomic_int *arrived, int n)
{
    atomic_fetch_add(arrived, 1);
    while (atomic_load(arrived) < n)
        ;
}

/* ---- (1) threads on one key, real clock ------------------------------------------------------ */

/* 10000 per 1000 days, burst 10000: one unit refills every 8640 s, never during the test. */
#define HOT_CAP   10000
#define HOT_TRIES 20000

struct hot {
    rl_t *rl;
    rl_limit lim;
    char key[16];
    bool real_clock;
    atomic_int arrived;
    atomic_int errors;
    atomic_uint seen[HOT_CAP]; /* how often each `remaining` value was reported when allowed */
    atomic_long allowed;
};

/*
 * One worker's loop; returns how many it was allowed. At a fixed time every allowed acquire
 * must also report a different `remaining` (C - 1, C - 2, ..., 0): two that report the same one
 * read the same state, i.e. one of them did not see the other's update. (With the real clock
 * that does not hold: a thread that read the clock, then stalled, decides at an earlier time
 * than requests already decided, and its `remaining` is rounded one lower.)
 */
static long hot_loop(struct hot *h)
{
    const bool real_clock = h->real_clock;
    long allowed = 0;
    for (int i = 0; i < HOT_TRIES; i++) {
        rl_result r;
        size_t kl = strlen(h->key);
        int rc = real_clock ? rl_acquire(h->rl, h->key, kl, &h->lim, 1, &r)
                            : rl_acquire_at(h->rl, h->key, kl, &h->lim, 1, T0, &r);
        if (rc != 0 || r.limit != HOT_CAP || r.remaining >= HOT_CAP) {
            atomic_fetch_add(&h->errors, 1);
            continue;
        }
        if (r.allowed) {
            allowed++;
            atomic_fetch_add(&h->seen[r.remaining], 1);
        } else if (r.retry_after_ms == 0 || r.retry_after_ms == NEVER) {
            atomic_fetch_add(&h->errors, 1);
        }
    }
    atomic_fetch_add(&h->allowed, allowed);
    return allowed;
}

static void *hot_thread(void *arg)
{
    struct hot *h = arg;
    spin_barrier(&h->arrived, NTHREADS);
    hot_loop(h);
    return NULL;
}

static void check_hot(struct hot *h, const char *what)
{
    cr_expect_eq(atomic_load(&h->errors), 0, "%s: %d calls failed or answered nonsense", what,
                 atomic_load(&h->errors));
    cr_expect_eq(atomic_load(&h->allowed), HOT_CAP, "%s: %ld allowed, expected exactly %d", what,
                 atomic_load(&h->allowed), HOT_CAP);
    int dup = 0, missing = 0;
    for (int i = 0; i < HOT_CAP && !h->real_clock; i++) {
        unsigned s = atomic_load(&h->seen[i]);
        dup += s > 1;
        missing += s == 0;
    }
    cr_expect(dup == 0 && missing == 0,
              "%s: 'remaining' values reported twice: %d, never: %d (not linearizable)", what, dup,
              missing);
    rl_result r = acq_at(h->rl, h->key, &h->lim, 0, h->real_clock ? rl_clock_ns(h->rl) : T0);
    cr_expect_eq(r.remaining, 0, "%s: %" PRIu64 " left after the test", what, r.remaining);
}

/* Repeated on fresh keys (each round also races the key's insertion): rounds 0 and 1 with the
 * real clock (rl_acquire), the others at a fixed time, which also checks `remaining`. */
Test(concurrency, threads_one_key_exact)
{
    for (int round = 0; round < 5; round++) {
        struct hot *h = calloc(1, sizeof *h);
        cr_assert_not_null(h);
        h->rl = g_rl;
        h->lim = mk_limit(RL_TOKEN_BUCKET, HOT_CAP, 1000 * MS_DAY, HOT_CAP);
        snprintf(h->key, sizeof h->key, "hot-%d", round);
        h->real_clock = round < 2;
        pthread_t th[NTHREADS];
        for (int i = 0; i < NTHREADS; i++)
            cr_assert_eq(pthread_create(&th[i], NULL, hot_thread, h), 0);
        for (int i = 0; i < NTHREADS; i++)
            pthread_join(th[i], NULL);
        check_hot(h, h->key);
        free(h);
    }
    cr_expect_eq(rl_check_segment(g_rl, NULL, NULL), 0);
}

/* ---- (2) processes on one key ---------------------------------------------------------------- */

Test(concurrency, processes_one_key_exact)
{
    for (int round = 0; round < 3; round++) {
        struct hot *h = shared_alloc(sizeof *h);
        h->rl = g_rl; /* the inherited handle: the mapping is shared */
        h->lim = mk_limit(RL_TOKEN_BUCKET, HOT_CAP, 1000 * MS_DAY, HOT_CAP);
        snprintf(h->key, sizeof h->key, "hotp-%d", round);
        h->real_clock = round == 0;
        pid_t pids[NPROCS];
        for (int p = 0; p < NPROCS; p++) {
            pids[p] = fork();
            cr_assert_geq(pids[p], 0);
            if (pids[p] == 0) {
                spin_barrier(&h->arrived, NPROCS);
                hot_loop(h);
                _exit(0);
            }
        }
        for (int p = 0; p < NPROCS; p++)
            reap(pids[p], "hot process");
        check_hot(h, h->key);
        munmap(h, sizeof *h);
    }
    cr_expect_eq(rl_check_segment(g_rl, NULL, NULL), 0);
}

/* ---- (1b) every algorithm, threads, fixed time ----------------------------------------------- */

struct algo_run {
    rl_t *rl;
    rl_limit lim;
    atomic_int arrived;
    atomic_int errors;
    atomic_long allowed;
    uint64_t limit;
};

static void *algo_thread(void *arg)
{
    struct algo_run *a = arg;
    spin_barrier(&a->arrived, NTHREADS);
    long allowed = 0;
    for (int i = 0; i < 1500; i++) {
        rl_result r;
        uint64_t cost = 1 + (uint64_t)(i % 3); /* mixed costs: 1, 2, 3 */
        if (rl_acquire_at(a->rl, "algo", 4, &a->lim, cost, T0, &r) != 0) {
            atomic_fetch_add(&a->errors, 1);
            continue;
        }
        if (r.allowed)
            allowed += (long)cost;
    }
    atomic_fetch_add(&a->allowed, allowed);
    return NULL;
}

/* 4 threads x 1500 acquires of cost 1..3 (12000 units asked) against a limit of 2000 at one
 * fixed time: the units granted are 1998..2000 (all or nothing: the last unit or two may not
 * fit a cost of 3), and the key's own count must agree exactly with what was granted. */
Test(concurrency, threads_every_algorithm)
{
    for (int algo = 0; algo < RL_ALGORITHM_COUNT; algo++) {
        struct algo_run *a = calloc(1, sizeof *a);
        cr_assert_not_null(a);
        a->rl = g_rl;
        a->lim = mk_limit((rl_algorithm)algo, 2000, 1000 * MS_DAY, 0);
        pthread_t th[NTHREADS];
        for (int i = 0; i < NTHREADS; i++)
            cr_assert_eq(pthread_create(&th[i], NULL, algo_thread, a), 0);
        for (int i = 0; i < NTHREADS; i++)
            pthread_join(th[i], NULL);
        const char *an = algo_name((rl_algorithm)algo);
        cr_expect_eq(atomic_load(&a->errors), 0, "%s: errors", an);
        long got = atomic_load(&a->allowed);
        cr_expect(got >= 1998 && got <= 2000, "%s: %ld units granted of 2000", an, got);
        rl_result r = acq_at(g_rl, "algo", &a->lim, 0, T0);
        cr_expect_eq((long)(r.limit - r.remaining), got,
                     "%s: the key counts %" PRIu64 " used, the threads were granted %ld", an,
                     r.limit - r.remaining, got);
        free(a);
    }
}

/* ---- (3) many keys, threads in different orders --------------------------------------------- */

#define MANY_KEYS   10000
#define MANY_ROUNDS 10
#define MANY_LIMIT  5

struct many {
    rl_t *rl;
    rl_limit lim;
    char (*keys)[16];
    atomic_int arrived;
    atomic_int errors;
    atomic_int admitted[MANY_KEYS];
};

struct many_arg {
    struct many *m;
    uint64_t seed;
};

static void *many_thread(void *arg)
{
    struct many_arg *ma = arg;
    struct many *m = ma->m;
    /* every key MANY_ROUNDS times, shuffled with this thread's seed */
    int *order = malloc(sizeof(int) * MANY_KEYS * MANY_ROUNDS);
    if (!order) {
        atomic_fetch_add(&m->errors, 1);
        return NULL;
    }
    for (int i = 0; i < MANY_KEYS * MANY_ROUNDS; i++)
        order[i] = i % MANY_KEYS;
    uint64_t s = ma->seed;
    for (int i = MANY_KEYS * MANY_ROUNDS - 1; i > 0; i--) {
        int j = (int)prng_below(&s, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    spin_barrier(&m->arrived, NTHREADS);
    for (int i = 0; i < MANY_KEYS * MANY_ROUNDS; i++) {
        int k = order[i];
        rl_result r;
        int rc = rl_acquire(m->rl, m->keys[k], strlen(m->keys[k]), &m->lim, 1, &r);
        if (rc != 0) {
            atomic_fetch_add(&m->errors, 1);
            continue;
        }
        if (r.allowed)
            atomic_fetch_add(&m->admitted[k], 1);
    }
    free(order);
    return NULL;
}

Test(concurrency, many_keys_each_admitted_exactly)
{
    rl_t *rl = test_open(test_track_new(), 16384);
    struct many *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    m->rl = rl;
    m->lim = mk_limit(RL_TOKEN_BUCKET, MANY_LIMIT, 1000 * MS_DAY, 0);
    m->keys = calloc(MANY_KEYS, sizeof *m->keys);
    cr_assert_not_null(m->keys);
    for (int k = 0; k < MANY_KEYS; k++)
        snprintf(m->keys[k], sizeof m->keys[k], "key-%05d", k);
    pthread_t th[NTHREADS];
    struct many_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i].m = m;
        args[i].seed = 0x1000 + (uint64_t)i * 7919;
        cr_assert_eq(pthread_create(&th[i], NULL, many_thread, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    cr_expect_eq(atomic_load(&m->errors), 0, "%d calls failed", atomic_load(&m->errors));
    int wrong = 0, first_wrong = -1;
    for (int k = 0; k < MANY_KEYS; k++) {
        if (atomic_load(&m->admitted[k]) != MANY_LIMIT) {
            if (first_wrong < 0)
                first_wrong = k;
            wrong++;
        }
    }
    cr_expect_eq(wrong, 0, "%d keys not admitted exactly %d times (first: %s, %d times)", wrong,
                 MANY_LIMIT, first_wrong >= 0 ? m->keys[first_wrong] : "-",
                 first_wrong >= 0 ? atomic_load(&m->admitted[first_wrong]) : 0);
    rl_segment_info info;
    cr_assert_eq(rl_segment_info_get(rl, &info), 0);
    cr_expect_eq(info.slots_in_use, MANY_KEYS,
                 "%" PRIu64 " slots for %d keys (a key inserted "
                 "twice?)",
                 info.slots_in_use, MANY_KEYS);
    cr_expect_eq(rl_check_segment(rl, NULL, NULL), 0);
    free(m->keys);
    free(m);
    rl_close(&rl);
}

/* ---- (4) a handle inherited across fork ------------------------------------------------------ */

struct prefork {
    atomic_int arrived;
    int rc[3];
    long allowed[3];
};

#define PF_TRIES 1000
#define PF_LIMIT 1500

/*
 * The parent opens; children 0 and 1 use the inherited handle at once; child 2 closes the
 * inherited handle and opens the name again. 3000 attempts on a limit of 1500: exactly 1500
 * admitted, all in the parent's segment; each child's own key shows its 10 units too.
 */
Test(concurrency, prefork_inherited_handle)
{
    struct prefork *pf = shared_alloc(sizeof *pf);
    const rl_limit lim = mk_limit(RL_TOKEN_BUCKET, PF_LIMIT, 1000 * MS_DAY, 0);
    /* the parent uses the segment before forking */
    cr_assert(acq_at(g_rl, "parent", &lim, 1, rl_clock_ns(g_rl)).allowed);
    pid_t pids[3];
    for (int c = 0; c < 3; c++) {
        pids[c] = fork();
        cr_assert_geq(pids[c], 0);
        if (pids[c] != 0)
            continue;
        rl_t *h = g_rl;
        if (c == 2) {
            rl_close(&h);
            rl_options o;
            rl_options_init(&o);
            o.shm_name = g_name;
            o.flags = RL_OPEN_NOCREATE;
            pf->rc[c] = rl_open(&h, &o);
            if (pf->rc[c] != 0)
                _exit(2);
        }
        spin_barrier(&pf->arrived, 3);
        long allowed = 0;
        for (int i = 0; i < PF_TRIES; i++) {
            rl_result r;
            int rc = rl_acquire(h, "pf", 2, &lim, 1, &r);
            if (rc != 0) {
                pf->rc[c] = rc;
                _exit(3);
            }
            allowed += r.allowed;
        }
        char own[16];
        snprintf(own, sizeof own, "child-%d", c);
        for (int i = 0; i < 10; i++) {
            rl_result r;
            if (rl_acquire(h, own, strlen(own), &lim, 1, &r) != 0 || !r.allowed)
                _exit(4);
        }
        pf->allowed[c] = allowed;
        rl_close(&h);
        _exit(0);
    }
    for (int c = 0; c < 3; c++) {
        int status = 0;
        cr_assert_eq(waitpid(pids[c], &status, 0), pids[c]);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child %d: status 0x%x, rc %d (%s)", c, status, pf->rc[c],
                  rl_strerror(pf->rc[c]));
    }
    long total = pf->allowed[0] + pf->allowed[1] + pf->allowed[2];
    cr_expect_eq(total, PF_LIMIT, "%ld + %ld + %ld admitted, expected %d in total", pf->allowed[0],
                 pf->allowed[1], pf->allowed[2], PF_LIMIT);
    uint64_t now = rl_clock_ns(g_rl);
    cr_expect_eq(acq_at(g_rl, "pf", &lim, 0, now).remaining, 0);
    for (int c = 0; c < 3; c++) {
        char own[16];
        snprintf(own, sizeof own, "child-%d", c);
        rl_result r = acq_at(g_rl, own, &lim, 0, now);
        cr_expect_eq(r.limit - r.remaining, 10, "the parent sees %" PRIu64 " of %s's 10",
                     r.limit - r.remaining, own);
    }
    cr_expect_eq(acq_at(g_rl, "parent", &lim, 0, now).remaining, PF_LIMIT - 1);
    cr_expect_eq(rl_check_segment(g_rl, NULL, NULL), 0);
    munmap(pf, sizeof *pf);
}
