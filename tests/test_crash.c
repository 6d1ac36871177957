/*
 * Crash safety: worker processes are SIGKILLed at random points while they decide requests. A
 * process can die anywhere, including in the middle of a compare-and-swap loop or of inserting
 * a key; the segment must stay sound and no unit may be lost or invented.
 *
 * Workers take cost 1 from 50 shared keys at a fixed time (T0: nothing refills) and, after each
 * allowed acquire, add 1 to the key's counter in a MAP_SHARED array. A kill between the two
 * leaves a unit consumed but not counted; so for every key 0 <= consumed - counted, and over all
 * keys the sum is at most the number of kills. Anything else is a lost update (consumed <
 * counted) or a corrupted state.
 *
 * Each worker also keeps the slowest rl_acquire it timed in the board (one entry per worker
 * generation): a check that waited on a dead worker's half-done update would show there. After
 * the chaos the segment is checked twice: rl_check_segment() and the real `rlctl check` binary,
 * run the way an operator runs it (its path comes from tests/meson.build in RL_TEST_RLCTL).
 */
#include "rl_test.h"
#include "support.h" /* the monotonic clock (support/) */

#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#define NKEYS    50
#define NWORKERS 3
#define NKILLS   100
#define NGENS    (NWORKERS + NKILLS)

static void crash_setup(void);
TestSuite(crash, .init = crash_setup, .fini = seg_teardown);

struct board {
    atomic_int stop;
    atomic_int errors;     /* a worker saw rc != 0 or a denial of a unit that must fit */
    atomic_int last_error; /* its rc (or 1 for a denial) */
    atomic_ullong ops;     /* acquires done, all workers */
    atomic_ullong counted[NKEYS];
    atomic_ullong churn_ok;      /* new keys inserted (churn test) */
    atomic_ullong churn_full;    /* -ENOSPC answers to them */
    atomic_ullong max_ns[NGENS]; /* per worker generation: its slowest timed rl_acquire_at */
};

/* 10^12 per 1000 days: T = 86400 ns, tau = 8.64e16 ns; at a fixed time nothing refills and
 * nothing runs out. */
static rl_limit hot_limit(void)
{
    return mk_limit(RL_TOKEN_BUCKET, 1000000000000ULL, 1000 * MS_DAY, 0);
}

static void crash_setup(void)
{
    test_name_new(g_name, sizeof g_name);
    g_rl = test_open(g_name, 65536);
}

/*
 * The worker: never returns. `gen` distinguishes generations (odd ones re-open the segment by
 * name instead of using the inherited handle). With `churn`, every 8th acquire inserts a brand
 * new key, so some kills land in the middle of an insertion or a reclaim. Churn keys live on
 * their own clock, 1000 h before T0 and rising 1 ms per acquire (plus 100 s per generation),
 * under a limit of 1 per ms: each is fresh (reclaimable) 1 ms of its clock after it was taken,
 * while the hot keys, full until after T0, are never fresh at any churn time.
 */
static void worker(struct board *b, unsigned gen, bool churn)
{
    rl_t *h = g_rl;
    if (gen % 2) {
        rl_options o;
        rl_options_init(&o);
        o.shm_name = g_name;
        o.flags = RL_OPEN_NOCREATE;
        h = NULL;
        int rc = rl_open(&h, &o);
        if (rc != 0) {
            atomic_store(&b->last_error, rc);
            atomic_fetch_add(&b->errors, 1);
            _exit(1);
        }
    }
    const rl_limit lim = hot_limit();
    const rl_limit churn_lim = mk_limit(RL_TOKEN_BUCKET, 1, 1, 0);
    uint64_t seed = 0x51ed + (uint64_t)gen * 0x9e3779b97f4a7c15ULL;
    char keys[NKEYS][8];
    uint64_t worst = 0; /* this worker's slowest timed acquire, mirrored in b->max_ns[gen] */
    for (int k = 0; k < NKEYS; k++)
        snprintf(keys[k], sizeof keys[k], "hot-%02d", k);
    for (uint64_t n = 0; !atomic_load_explicit(&b->stop, memory_order_relaxed); n++) {
        rl_result r;
        if (churn && n % 8 == 7) {
            char key[40];
            snprintf(key, sizeof key, "churn-%u-%" PRIu64, gen, n);
            uint64_t t = T0 - 1000 * MS_HOUR * NS_MS + (uint64_t)gen * 100 * NS_S + n * NS_MS;
            int rc = rl_acquire_at(h, key, strlen(key), &churn_lim, 1, t, &r);
            if (rc == 0 && r.allowed) {
                atomic_fetch_add_explicit(&b->churn_ok, 1, memory_order_relaxed);
            } else if (rc == -ENOSPC) {
                atomic_fetch_add_explicit(&b->churn_full, 1, memory_order_relaxed);
            } else {
                atomic_store(&b->last_error, rc ? rc : 1);
                atomic_fetch_add(&b->errors, 1);
            }
            continue;
        }
        int k = (int)prng_below(&seed, NKEYS);
        uint64_t t_start = mono_ns();
        int rc = rl_acquire_at(h, keys[k], 6, &lim, 1, T0, &r);
        uint64_t took = mono_ns() - t_start;
        if (took > worst) {
            worst = took;
            atomic_store_explicit(&b->max_ns[gen], worst, memory_order_relaxed);
        }
        if (rc != 0 || !r.allowed) {
            atomic_store(&b->last_error, rc ? rc : 1);
            atomic_fetch_add(&b->errors, 1);
            continue;
        }
        atomic_fetch_add_explicit(&b->counted[k], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->ops, 1, memory_order_relaxed);
    }
    _exit(0);
}

static pid_t spawn(struct board *b, unsigned gen, bool churn)
{
    cr_assert_lt(gen, NGENS);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0)
        worker(b, gen, churn);
    return pid;
}

/* Waits until the workers have made `more` further acquires, or fails after 10 s (a worker
 * stuck behind a dead one's half-done update). */
static void await_progress(struct board *b, unsigned long long more, const char *when)
{
    unsigned long long target = atomic_load(&b->ops) + more;
    double deadline = mono_s() + 10;
    while (atomic_load(&b->ops) < target) {
        cr_assert_lt(mono_s(), deadline, "no progress %s: workers stuck?", when);
        usleep(200);
    }
}

/* Runs `rlctl check --shm NAME` (the binary tests/meson.build names in RL_TEST_RLCTL) the way an
 * operator does, with no Redis in its environment, and expects exit 0 ("sound"); its output goes
 * to the test log. */
static void rlctl_check_sound(const char *name)
{
    const char *rlctl = getenv("RL_TEST_RLCTL");
    cr_assert(rlctl && *rlctl, "RL_TEST_RLCTL is not set: run the suite through meson test");
    fflush(stdout);
    fflush(stderr);
    pid_t p = fork();
    cr_assert_geq(p, 0, "fork: %s", strerror(errno));
    if (p == 0) {
        unsetenv("REDIS_URL");
        dup2(2, 1); /* its "segment ...: sound" line joins the test's stderr */
        execl(rlctl, "rlctl", "check", "--shm", name, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    cr_assert_eq(waitpid(p, &status, 0), p);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "rlctl check --shm %s: status 0x%x (exit %d; 1 = damaged, 127 = not run)", name,
              status, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void run_crash(bool churn)
{
    struct board *b =
        mmap(NULL, sizeof *b, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(b, MAP_FAILED);
    memset(b, 0, sizeof *b);
    pid_t pids[NWORKERS];
    unsigned gens[NWORKERS]; /* the generation each worker slot runs now */
    unsigned gen = 0;
    for (int w = 0; w < NWORKERS; w++) {
        gens[w] = gen;
        pids[w] = spawn(b, gen++, churn);
    }
    await_progress(b, 1000, "at start");

    uint64_t seed = 0xc0ffee;
    for (int kill_no = 0; kill_no < NKILLS; kill_no++) {
        usleep((useconds_t)(1000 + prng_below(&seed, 8000))); /* ~5 ms on average */
        int w = (int)prng_below(&seed, NWORKERS);
        cr_assert_eq(kill(pids[w], SIGKILL), 0);
        int status = 0;
        cr_assert_eq(waitpid(pids[w], &status, 0), pids[w]);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "worker %d ended on its own before the kill: status 0x%x (errors %d, last %d)",
                  (int)pids[w], status, atomic_load(&b->errors), atomic_load(&b->last_error));
        gens[w] = gen;
        pids[w] = spawn(b, gen++, churn);
        if (kill_no % 20 == 19)
            await_progress(b, 100, "after kills");
    }
    /* Stop the survivors cleanly: nothing of theirs is in flight. */
    atomic_store(&b->stop, 1);
    for (int w = 0; w < NWORKERS; w++) {
        double deadline = mono_s() + 10;
        int status = 0;
        pid_t r;
        while ((r = waitpid(pids[w], &status, WNOHANG)) == 0 && mono_s() < deadline)
            usleep(1000);
        if (r == 0) {
            kill(pids[w], SIGKILL);
            waitpid(pids[w], &status, 0);
            cr_assert_fail("worker %d did not stop within 10 s (stuck)", (int)pids[w]);
        }
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker status 0x%x", status);
    }

    cr_expect_eq(atomic_load(&b->errors), 0, "workers saw %d errors or denials (last %d: %s)",
                 atomic_load(&b->errors), atomic_load(&b->last_error),
                 rl_strerror(atomic_load(&b->last_error)));
    long bad = rl_check_segment(g_rl, NULL, NULL);
    cr_expect_eq(bad, 0, "rl_check_segment after %d kills: %ld damaged", NKILLS, bad);
    rlctl_check_sound(g_name);

    /* The slowest check: over the survivors (they ran from their start to the stop) and over
     * every generation (the killed ones up to their kill). Speed is not asserted on a shared
     * machine; a check that took seconds means a worker was held up by a dead one. */
    uint64_t worst_survivor = 0, worst_all = 0;
    for (int w = 0; w < NWORKERS; w++) {
        uint64_t v = atomic_load(&b->max_ns[gens[w]]);
        worst_survivor = v > worst_survivor ? v : worst_survivor;
    }
    for (unsigned g = 0; g < gen; g++) {
        uint64_t v = atomic_load(&b->max_ns[g]);
        worst_all = v > worst_all ? v : worst_all;
    }
    cr_expect_gt(worst_survivor, 0, "the survivors timed no check");
    cr_expect_lt(worst_survivor, 2 * NS_S,
                 "a survivor's check took %" PRIu64 " us: stuck behind a killed worker?",
                 worst_survivor / 1000);

    const rl_limit lim = hot_limit();
    uint64_t in_flight = 0, total = 0;
    for (int k = 0; k < NKEYS; k++) {
        char key[8];
        snprintf(key, sizeof key, "hot-%02d", k);
        rl_result r = acq_at(g_rl, key, &lim, 0, T0);
        uint64_t consumed = r.limit - r.remaining;
        uint64_t counted = atomic_load(&b->counted[k]);
        cr_expect_geq(consumed, counted,
                      "%s: consumed %" PRIu64 " < counted %" PRIu64 " (a lost update)", key,
                      consumed, counted);
        cr_expect_leq(consumed - counted, NKILLS, "%s: consumed %" PRIu64 ", counted %" PRIu64, key,
                      consumed, counted);
        if (consumed >= counted)
            in_flight += consumed - counted;
        total += consumed;
    }
    cr_expect_leq(in_flight, NKILLS,
                  "%" PRIu64 " units consumed but never counted, more than "
                  "the %d kills could leave in flight",
                  in_flight, NKILLS);
    cr_expect_gt(total, 10000, "the workers hardly worked: %" PRIu64, total);
    rl_segment_info info;
    cr_assert_eq(rl_segment_info_get(g_rl, &info), 0);
    cr_log_info("crash%s: %" PRIu64 " acquires on hot keys, %" PRIu64 " in flight at %d kills; "
                "%llu new keys, %llu -ENOSPC, %" PRIu64 " reclaimed, %" PRIu64 " slots in use; "
                "slowest check %" PRIu64 " us (survivors), %" PRIu64 " us (any worker); "
                "rl_check_segment and rlctl check: sound",
                churn ? " (churn)" : "", total, in_flight, NKILLS, atomic_load(&b->churn_ok),
                atomic_load(&b->churn_full), info.reclaimed, info.slots_in_use,
                worst_survivor / 1000, worst_all / 1000);
    /* The row of docs/reliability.md's table. */
    printf("| SIGKILL x %d, %d workers on %d hot keys%s | %" PRIu64 " acquires | %" PRIu64
           " units in flight | worst check %" PRIu64 " us (survivors), %" PRIu64
           " us (any) | rl_check_segment + rlctl check sound |\n",
           NKILLS, NWORKERS, NKEYS, churn ? " + inserts" : "", total, in_flight,
           worst_survivor / 1000, worst_all / 1000);
    fflush(stdout);
    munmap(b, sizeof *b);
}

Test(crash, sigkill_workers_hot_keys)
{
    run_crash(false);
}

/* The same while every worker also inserts new keys: a kill can leave an insertion half done,
 * and nobody may wait for it forever nor count it as damage. */
Test(crash, sigkill_workers_while_inserting)
{
    run_crash(true);
}
