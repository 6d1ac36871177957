/*
 * STRICT mode against a real redis-server (started by scripts/test; RL_TEST_REDIS_URL). Exact
 * cluster-wide counts from several processes and several segments ("hosts"), every algorithm,
 * the fallbacks while Redis is unreachable, STRICT layers in rl_check, and URL errors.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "rl_test.h"

/* Before main (so before Criterion runs any test): without the servers, skip the whole binary
 * (exit 77 is meson's "skipped"); under scripts/test (RL_TEST_REDIS_REQUIRED) fail instead. */
__attribute__((constructor)) static void strict_gate(void)
{
    const char *u = getenv("RL_TEST_REDIS_URL");
    if (u && *u)
        return;
    if (getenv("RL_TEST_REDIS_REQUIRED")) {
        fprintf(stderr, "strict tests: RL_TEST_REDIS_URL unset under scripts/test\n");
        exit(1);
    }
    fprintf(stderr, "redis tests skipped: run them through scripts/test "
                    "(RL_TEST_REDIS_URL unset)\n");
    exit(77);
}

static const char *redis_url(void)
{
    return getenv("RL_TEST_REDIS_URL");
}

static rl_t *open_redis(const char *name, const char *url, int fallback)
{
    rl_options o;
    rl_options_init(&o);
    o.shm_name = name;
    o.capacity = 4096;
    o.redis_url = url;
    o.fallback = fallback;
    o.redis_command_timeout_ms = 500; /* shared CI machines: be patient, still bounded */
    rl_t *rl = NULL;
    int rc = rl_open(&rl, &o);
    cr_assert_eq(rc, 0, "rl_open with redis: %d %s", rc, rl_errmsg());
    return rl;
}

static void strict_setup(void)
{
    test_name_new(g_name, sizeof g_name);
    g_rl = open_redis(g_name, redis_url(), RL_FALLBACK_CLOSED);
}

TestSuite(strict, .init = strict_setup, .fini = seg_teardown);

/* A key unique to this run (the Redis server is shared by the whole suite). */
static const char *run_key(char *buf, size_t n, const char *what)
{
    static unsigned counter;
    snprintf(buf, n, "strict-%ld-%u-%s", (long)getpid(), counter++, what);
    return buf;
}

static rl_limit strict_limit(rl_algorithm a, uint64_t requests, uint64_t window_ms)
{
    rl_limit l = mk_limit(a, requests, window_ms, 0);
    l.mode = RL_MODE_STRICT;
    return l;
}

Test(strict, exact_from_four_processes)
{
    char key[64];
    run_key(key, sizeof key, "procs");
    rl_limit l = strict_limit(RL_TOKEN_BUCKET, 50, MS_HOUR);
    _Atomic unsigned *allowed =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(allowed, MAP_FAILED);
    /* No thread may run in the parent across fork() (the sync thread of the fixture's handle:
     * ASan's allocator is not fork-safe with other threads inside it). */
    rl_close(&g_rl);
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        cr_assert_geq(kids[i], 0);
        if (kids[i] == 0) {
            /* Each child opens its own handle (its own connections), as a worker would. */
            rl_t *rl = open_redis(g_name, redis_url(), RL_FALLBACK_CLOSED);
            for (int n = 0; n < 40; n++) {
                rl_result r;
                if (rl_acquire(rl, key, strlen(key), &l, 1, &r) != 0)
                    _exit(2);
                if (r.allowed)
                    atomic_fetch_add(allowed, 1);
            }
            rl_close(&rl);
            _exit(0);
        }
    }
    for (int i = 0; i < 4; i++) {
        int st = 0;
        waitpid(kids[i], &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d status %d", i, st);
    }
    cr_assert_eq(atomic_load(allowed), 50, "160 tries against 50: exactly 50 admitted, got %u",
                 atomic_load(allowed));
}

Test(strict, two_hosts_share_one_limit)
{
    /* Two segments stand for two hosts: each alone would admit 10; together they admit 10. */
    char key[64];
    run_key(key, sizeof key, "hosts");
    rl_t *other = open_redis(test_track_new(), redis_url(), RL_FALLBACK_CLOSED);
    rl_limit l = strict_limit(RL_FIXED_WINDOW, 10, MS_HOUR);
    unsigned ok = 0;
    for (int i = 0; i < 15; i++) {
        rl_result r;
        cr_assert_eq(rl_acquire(i % 2 ? other : g_rl, key, strlen(key), &l, 1, &r), 0, "%s",
                     rl_errmsg());
        ok += r.allowed;
    }
    rl_close(&other);
    cr_assert_eq(ok, 10);
}

/* rl_reset of a STRICT key deletes its Redis state: every algorithm is fresh again. */
Test(strict, reset_deletes_the_redis_state)
{
    static const rl_algorithm algos[] = {RL_TOKEN_BUCKET, RL_GCRA, RL_FIXED_WINDOW,
                                         RL_SLIDING_WINDOW};
    for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++) {
        char key[64];
        run_key(key, sizeof key, "reset");
        rl_limit l = strict_limit(algos[a], 2, MS_HOUR);
        rl_result r;
        for (int i = 0; i < 3; i++)
            cr_assert_eq(rl_acquire(g_rl, key, strlen(key), &l, 1, &r), 0, "%s", rl_errmsg());
        cr_assert(!r.allowed, "%s: exhausted", algo_name(algos[a]));
        cr_assert_eq(rl_reset(g_rl, key, strlen(key), &l), 0, "%s", rl_errmsg());
        cr_assert_eq(rl_acquire(g_rl, key, strlen(key), &l, 1, &r), 0, "%s", rl_errmsg());
        cr_expect(r.allowed, "%s: fresh after the reset", algo_name(algos[a]));
        cr_expect_eq(r.remaining, 1, "%s: remaining %" PRIu64, algo_name(algos[a]), r.remaining);
    }
}

Test(strict, every_algorithm)
{
    static const struct {
        rl_algorithm a;
        uint64_t requests;
        unsigned want; /* admitted of 12 tries in one burst */
    } cases[] = {
        {RL_TOKEN_BUCKET, 5, 5},
        {RL_GCRA, 5, 5},
        {RL_FIXED_WINDOW, 7, 7}, /* an hour-long window: no boundary within the test */
        {RL_SLIDING_WINDOW, 6, 6},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char key[64];
        run_key(key, sizeof key, algo_name(cases[c].a));
        rl_limit l = strict_limit(cases[c].a, cases[c].requests, MS_HOUR);
        unsigned ok = 0;
        rl_result r;
        for (int i = 0; i < 12; i++) {
            cr_assert_eq(rl_acquire(g_rl, key, strlen(key), &l, 1, &r), 0, "%s", rl_errmsg());
            ok += r.allowed;
        }
        cr_expect_eq(ok, cases[c].want, "%s: %u admitted", algo_name(cases[c].a), ok);
        cr_expect(!r.allowed && r.remaining == 0, "%s: last denied", algo_name(cases[c].a));
        cr_expect(r.retry_after_ms > 0 && r.retry_after_ms <= MS_HOUR, "%s: retry %" PRIu64,
                  algo_name(cases[c].a), r.retry_after_ms);
        cr_expect_eq(r.limit, cases[c].requests, "%s: limit", algo_name(cases[c].a));
        /* A cost above the limit can never be allowed. */
        cr_assert_eq(rl_acquire(g_rl, key, strlen(key), &l, cases[c].requests + 1, &r), 0);
        cr_expect(!r.allowed && r.retry_after_ms == RL_RETRY_NEVER, "%s: never",
                  algo_name(cases[c].a));
        /* A refund gives one back. */
        cr_assert_eq(rl_refund(g_rl, key, strlen(key), &l, 1), 0, "%s", rl_errmsg());
        cr_assert_eq(rl_acquire(g_rl, key, strlen(key), &l, 1, &r), 0);
        cr_expect(r.allowed, "%s: the refunded unit is there again", algo_name(cases[c].a));
    }
}

Test(strict, fallbacks_while_redis_is_unreachable)
{
    /* Nothing listens on port 1: rl_open still succeeds (connections are lazy), and each check
     * follows the fallback. */
    const char *down = "redis://127.0.0.1:1/0";
    rl_limit l = strict_limit(RL_TOKEN_BUCKET, 3, MS_HOUR);
    rl_result r;
    rl_t *open_ = open_redis(test_track_new(), down, RL_FALLBACK_OPEN);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(rl_acquire(open_, "k", 1, &l, 1, &r), 0, "%s", rl_errmsg());
        cr_assert(r.allowed, "OPEN allows");
    }
    rl_close(&open_);
    rl_t *closed = open_redis(test_track_new(), down, RL_FALLBACK_CLOSED);
    cr_assert_eq(rl_acquire(closed, "k", 1, &l, 1, &r), 0);
    cr_assert(!r.allowed, "CLOSED denies");
    rl_close(&closed);
    rl_t *local = open_redis(test_track_new(), down, RL_FALLBACK_LOCAL);
    unsigned ok = 0;
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(rl_acquire(local, "k", 1, &l, 1, &r), 0);
        ok += r.allowed;
    }
    rl_close(&local);
    cr_assert_eq(ok, 3, "LOCAL enforces the limit on this host alone");
}

Test(strict, strict_layer_in_a_rule)
{
    /* A login rule whose second layer is STRICT: both segments ("hosts") share it exactly. */
    char path[] = "/tmp/rl-test-strict-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    char yaml[512];
    int n = snprintf(yaml, sizeof yaml,
                     "version: 1\n"
                     "endpoints:\n"
                     "  - pattern: \"POST:/auth/login-%ld\"\n"
                     "    limits:\n"
                     "      - {requests: 100, window: 1h, scope: per_ip}\n"
                     "      - {requests: 4, window: 1h, scope: global, mode: strict,"
                     " algorithm: sliding_window}\n",
                     (long)getpid());
    cr_assert_eq(write(fd, yaml, (size_t)n), n);
    close(fd);
    cr_assert_eq(rl_load_config(g_rl, path), 0, "%s", rl_errmsg());
    rl_t *other = open_redis(test_track_new(), redis_url(), RL_FALLBACK_CLOSED);
    cr_assert_eq(rl_load_config(other, path), 0, "%s", rl_errmsg());
    unlink(path);
    char p[64];
    snprintf(p, sizeof p, "/auth/login-%ld", (long)getpid());
    unsigned ok = 0;
    for (int i = 0; i < 8; i++) {
        rl_request q;
        memset(&q, 0, sizeof q);
        q.method = "POST";
        q.path = p;
        q.ip = "192.0.2.10";
        rl_decision d;
        cr_assert_eq(rl_check(i % 2 ? other : g_rl, &q, &d), 0, "%s", rl_errmsg());
        cr_assert_eq(d.n, 2);
        cr_assert_eq(d.layers[1].mode, RL_MODE_STRICT, "the STRICT layer comes last");
        ok += d.allowed;
    }
    rl_close(&other);
    cr_assert_eq(ok, 4);
}

Test(strict, bad_urls)
{
    rl_options o;
    rl_options_init(&o);
    o.shm_name = test_track_new();
    rl_t *rl = NULL;
    o.redis_url = "redis://127.0.0.1:notaport/0";
    cr_assert_eq(rl_open(&rl, &o), -EINVAL);
    cr_assert(strstr(rl_errmsg(), "redis url") != NULL, "%s", rl_errmsg());
    o.redis_url = "rediss://:pw@127.0.0.1:6380/0";
    cr_assert_eq(rl_open(&rl, &o), -ENOTSUP);
    cr_assert(strstr(rl_errmsg(), "TLS is not supported") != NULL, "%s", rl_errmsg());
    cr_assert(strstr(rl_errmsg(), "pw") == NULL || strstr(rl_errmsg(), ":pw@") == NULL,
              "no password in messages: %s", rl_errmsg());
    cr_assert(rl == NULL, "no handle on failure");
    /* Without Redis a STRICT limit says so. */
    rl_limit l = strict_limit(RL_TOKEN_BUCKET, 1, 1000);
    rl_t *plain = test_open(test_track_new(), 1024);
    rl_result r;
    cr_assert_eq(rl_acquire(plain, "k", 1, &l, 1, &r), -ENOTSUP);
    cr_assert(strstr(rl_errmsg(), "REDIS_URL") != NULL, "%s", rl_errmsg());
    rl_close(&plain);
}

Test(strict, health)
{
    rl_health_info h;
    cr_assert_eq(rl_health(g_rl, &h), 0);
    cr_assert(h.redis_configured && h.connected, "healthy: %s", h.error);
    char key[64];
    run_key(key, sizeof key, "health");
    rl_limit l = strict_limit(RL_TOKEN_BUCKET, 5, MS_HOUR);
    rl_result r;
    cr_assert_eq(rl_acquire(g_rl, key, strlen(key), &l, 1, &r), 0);
    cr_assert_eq(rl_health(g_rl, &h), 0);
    cr_assert_eq(h.strict_checks, 1);
    /* Pointed at nothing: not connected, the error says where, never a password. */
    rl_t *down = open_redis(test_track_new(), "redis://:hunter2@127.0.0.1:1/0", RL_FALLBACK_OPEN);
    cr_assert_eq(rl_acquire(down, key, strlen(key), &l, 1, &r), 0);
    cr_assert_eq(rl_health(down, &h), 0);
    cr_assert(h.redis_configured && !h.connected);
    cr_assert_eq(h.strict_fallbacks, 1);
    cr_assert(strstr(h.error, "hunter2") == NULL, "%s", h.error);
    cr_assert_neq(h.error[0], '\0');
    rl_close(&down);
    /* Without Redis: nothing configured. */
    rl_t *plain = test_open(test_track_new(), 1024);
    cr_assert_eq(rl_health(plain, &h), 0);
    cr_assert(!h.redis_configured && !h.connected);
    rl_close(&plain);
}
