/*
 * GLOBAL mode against real redis-servers: several segments ("hosts", each with its own sync
 * leader) share one limit through one Redis, under the demand patterns of docs/design.md
 * section 10, and the faults: Redis killed and restarted, a host started while Redis is down,
 * the leader killed or stopped, fencing of a deposed leader, a Sentinel failover, bad URLs.
 *
 * Most tests start their own redis-server on a free loopback port (so killing it disturbs no
 * other test) and stop it in .fini; the Sentinel test uses the set scripts/test starts. The
 * accuracy assertions use the bound the design proves (over-admission against an exact bucket
 * fed with the admitted stream), not timings: utilisation thresholds are the issue's, and the
 * measured figures are printed (bench/rl-global makes the tables).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "accuracy.h" /* support/: the host threads and the measure, shared with bench/rl-global */
#include "conn.h"
#include "internal.h"
#include "rl_test.h"
#include "support.h" /* the monotonic clock (support/) */
#include "url.h"

#include "redis_private.h"

extern const char rl__embed_global[];

__attribute__((constructor)) static void global_gate(void)
{
    rp_gate("global");
}

/* ---- a private redis-server (redis_private.h) ------------------------------------------------ */

static struct rp_server g_srv;

static void redis_start(void)
{
    rp_start(&g_srv);
}

static void redis_kill(void)
{
    rp_kill(&g_srv);
}

static const char *redis_url(char *buf, size_t n)
{
    return rp_url(&g_srv, buf, n);
}

/* ---- hosts: one segment and handle each ----------------------------------------------------- */

#define MAXH 4
static rl_t *g_h[MAXH];
static char g_hn[MAXH][64];

static rl_t *host_open(int i, const char *url, int fallback, uint64_t sync_ms, uint64_t hosts)
{
    if (!g_hn[i][0])
        test_name_new(g_hn[i], sizeof g_hn[i]);
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_hn[i];
    o.capacity = 1024;
    o.redis_url = url;
    o.fallback = fallback;
    o.sync_interval_ms = sync_ms;
    o.cluster_hosts = hosts;
    o.redis_command_timeout_ms = 500; /* shared CI machines: patient, still bounded */
    int rc = rl_open(&g_h[i], &o);
    cr_assert_eq(rc, 0, "rl_open(%s, %s): %d %s", g_hn[i], url, rc, rl_errmsg());
    return g_h[i];
}

static void global_setup(void)
{
    memset(&g_srv, 0, sizeof g_srv);
    memset(g_hn, 0, sizeof g_hn);
    redis_start();
}

static void global_teardown(void)
{
    for (int i = 0; i < MAXH; i++) {
        rl_close(&g_h[i]);
        if (g_hn[i][0])
            rl_unlink(g_hn[i]);
    }
    rp_cleanup(&g_srv);
}

TestSuite(global, .init = global_setup, .fini = global_teardown, .timeout = 120);

static rl_limit global_limit(uint64_t per_s, uint64_t burst)
{
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, per_s, 1000, burst);
    l.mode = RL_MODE_GLOBAL;
    return l;
}

/* ---- demand ------------------------------------------------------------------------------- */

/* struct demand, struct hostrun, the host threads and the measures of docs/design.md section
 * 10 (struct acc_outcome) are support/accuracy.h's. */

#define WARMUP_S 2.0

static struct acc_outcome run_hosts(int n, const char *key, const rl_limit *lim,
                                    const struct demand *d, double secs, struct hostrun *hr)
{
    for (int i = 0; i < n; i++)
        hr[i] = (struct hostrun){.rl = g_h[i], .key = key, .lim = lim, .d = d[i], .secs = secs};
    int started = acc_run_hosts(hr, n);
    if (started != n) {
        acc_hosts_free(hr, started);
        cr_assert_fail("only %d of %d host threads started (out of memory or threads)", started, n);
    }
    for (int i = 0; i < n; i++)
        if (hr[i].error) {
            fprintf(stderr, "rl_acquire: %d %s\n", hr[i].error, hr[i].errmsg);
            abort();
        }
    struct acc_outcome o;
    cr_assert_eq(acc_measure(hr, n, lim, secs, WARMUP_S, &o), 0, "out of memory for the analysis");
    acc_hosts_free(hr, n);
    cr_log_info("%s: %" PRIu64 " of %" PRIu64 " attempts admitted; over-admission %.3f%% (run), "
                "%.3f%% (worst 1 s); utilisation %.1f%% after %.0f s",
                key, o.admitted, o.attempts, o.over_pct, o.win_pct, o.util_pct, WARMUP_S);
    return o;
}

/* Utilisation depends on how promptly the sync threads run, i.e. on the machine's scheduling:
 * a skewed cell gave 94.6 % against 95 % on a quiet CI machine, 94.7 % under ThreadSanitizer
 * (which slows the threads several-fold). The figures the design promises are measured in
 * bench/rl-global's table, not asserted here. This suite asserts what must always hold:
 * over-admission (the correctness bound), as tightly as ever in every build, and no
 * starvation: utilisation within UTIL_SLACK points of the promise. The slack stays below what a
 * sync that stopped sharing would give (every host on its fallback share: 47.5 % in the skewed
 * cell, so a broken sync still fails), and is 10 points wider under ThreadSanitizer. */
#if defined(__SANITIZE_THREAD__)
#define UTIL_SLACK 30.0
#else
#define UTIL_SLACK 20.0
#endif

static void expect_bound(const struct acc_outcome *o, double util_min)
{
    cr_expect_leq(o->over_pct, 1.0, "over-admission %.3f%% over the run (%" PRIu64 " units)",
                  o->over_pct, o->rejects);
    cr_expect_leq(o->win_pct, 1.0, "over-admission %.3f%% in the worst 1 s window", o->win_pct);
    cr_expect_geq(o->util_pct, util_min - UTIL_SLACK, "utilisation %.1f%% (at least %.0f%%)",
                  o->util_pct, util_min - UTIL_SLACK);
}

static const char *unique_key(char *buf, size_t n, const char *what)
{
    static unsigned c;
    snprintf(buf, n, "g-%ld-%u-%s", (long)getpid(), c++, what);
    return buf;
}

static void open_hosts_T(int n, int fallback, uint64_t sync_ms)
{
    char url[64];
    redis_url(url, sizeof url);
    for (int i = 0; i < n; i++)
        host_open(i, url, fallback, sync_ms, 0);
}

static void open_hosts(int n, int fallback)
{
    open_hosts_T(n, fallback, 100);
}

/* ---- accuracy ------------------------------------------------------------------------------ */

Test(global, four_hosts_uniform_demand)
{
    open_hosts(4, RL_FALLBACK_LOCAL);
    rl_limit l = global_limit(1000, 1000);
    struct demand d[4];
    for (int i = 0; i < 4; i++)
        d[i] = (struct demand){.rate = 375, .from = 0, .to = 1e9};
    struct hostrun hr[4];
    char key[64];
    struct acc_outcome o = run_hosts(4, unique_key(key, sizeof key, "uniform"), &l, d, 5.0, hr);
    expect_bound(&o, 95.0);
    for (int i = 0; i < 4; i++)
        cr_expect_gt(hr[i].admitted, 0, "host %d admitted nothing", i);
    rl_health_info hi;
    cr_assert_eq(rl_health(g_h[0], &hi), 0);
    cr_expect_eq(hi.cluster_hosts, 4, "Redis saw %" PRIu64 " hosts", hi.cluster_hosts);
    cr_expect_gt(hi.sync_rounds, 10);
    cr_expect_eq(hi.sync_errors, 0, "%s", hi.error);
}

Test(global, skewed_demand_small_hosts_keep_theirs)
{
    open_hosts(4, RL_FALLBACK_LOCAL);
    rl_limit l = global_limit(1000, 1000);
    /* One host takes most (1200/s), three small ones want 75/s each: 1.5x the limit. */
    struct demand d[4] = {{.rate = 1200, .to = 1e9},
                          {.rate = 75, .to = 1e9},
                          {.rate = 75, .to = 1e9},
                          {.rate = 75, .to = 1e9}};
    struct hostrun hr[4];
    char key[64];
    struct acc_outcome o = run_hosts(4, unique_key(key, sizeof key, "skewed"), &l, d, 6.0, hr);
    expect_bound(&o, 95.0);
    for (int i = 1; i < 4; i++) {
        double kept = 100.0 * (double)hr[i].admitted_after / (double)hr[i].attempts_after;
        cr_log_info("small host %d kept %.1f%% of its demand after the warm-up", i, kept);
        /* 90 % is the design's figure (bench/rl-global); not starved is what must hold. */
        cr_expect_geq(kept, 90.0 - UTIL_SLACK,
                      "small host %d kept only %.1f%% (%" PRIu64 " of %" PRIu64 ")", i, kept,
                      hr[i].admitted_after, hr[i].attempts_after);
    }
}

Test(global, demand_below_the_limit_is_not_denied)
{
    open_hosts(4, RL_FALLBACK_LOCAL);
    rl_limit l = global_limit(1000, 1000);
    struct demand d[4];
    for (int i = 0; i < 4; i++)
        d[i] = (struct demand){.rate = 125, .to = 1e9};
    struct hostrun hr[4];
    char key[64];
    struct acc_outcome o = run_hosts(4, unique_key(key, sizeof key, "below"), &l, d, 5.0, hr);
    uint64_t denied = o.attempts - o.admitted;
    expect_bound(&o, 99.0);
    cr_expect_leq((double)denied, 0.001 * (double)o.attempts + 0.5,
                  "%" PRIu64 " of %" PRIu64 " denied below the limit", denied, o.attempts);
}

Test(global, sharp_bursts_in_turn)
{
    open_hosts(4, RL_FALLBACK_LOCAL);
    rl_limit l = global_limit(1000, 1000);
    /* Each host in turn sends 300 at once, once a second: 1200/s against 1000/s, burst 1000. */
    struct demand d[4];
    for (int i = 0; i < 4; i++)
        d[i] = (struct demand){.burst_n = 300, .burst_at = 0.25 * i, .to = 0};
    struct hostrun hr[4];
    char key[64];
    struct acc_outcome o = run_hosts(4, unique_key(key, sizeof key, "bursts"), &l, d, 8.0, hr);
    expect_bound(&o, 80.0);
}

/* Issue 14's shapes. CI asserts what must always hold: the bound, and that no host is starved to
 * zero; the floors (>= 95 %, the minimum over >= 10 runs) are scheduling-dependent and measured
 * by bench/rl-global's floors table (docs/benchmarks.md). */
static void bursts_in_turn(uint64_t sync_ms)
{
    open_hosts_T(4, RL_FALLBACK_LOCAL, sync_ms);
    rl_limit l = global_limit(1000, 1000);
    /* Each host in turn sends 400 at once, a host every 0.4 s (1000/s in all): larger than an
     * equal share of the burst; an exact bucket stays full before each burst. */
    struct demand d[4];
    for (int i = 0; i < 4; i++)
        d[i] = (struct demand){.burst_n = 400, .burst_every = 1.6, .burst_at = 0.4 * i, .to = 0};
    struct hostrun hr[4];
    char key[64];
    struct acc_outcome o = run_hosts(4, unique_key(key, sizeof key, "turns"), &l, d, 6.0, hr);
    expect_bound(&o, 0.0);
    for (int i = 0; i < 4; i++)
        cr_expect_gt(hr[i].admitted_after, 0, "host %d admitted nothing of its bursts after %.0f s",
                     i, WARMUP_S);
}

Test(global, bursts_in_turn_below_the_rate)
{
    bursts_in_turn(100);
}

/* At T = 1 s the demand rounds (every 100 ms, sync/global.c) serve the keys with demand: the
 * bound holds as at any T, and no host is starved. */
Test(global, bursts_in_turn_at_1s)
{
    bursts_in_turn(1000);
}

static void small_hosts(uint64_t sync_ms)
{
    open_hosts_T(4, RL_FALLBACK_LOCAL, sync_ms);
    rl_limit l = global_limit(1000, 1000);
    /* One host flat out (2000/s, twice the limit), three at 10/s. */
    struct demand d[4] = {{.rate = 2000, .to = 1e9},
                          {.rate = 10, .to = 1e9},
                          {.rate = 10, .to = 1e9},
                          {.rate = 10, .to = 1e9}};
    struct hostrun hr[4];
    char key[64];
    struct acc_outcome o = run_hosts(4, unique_key(key, sizeof key, "small"), &l, d, 5.0, hr);
    expect_bound(&o, 0.0);
    for (int i = 1; i < 4; i++) {
        cr_log_info("small host %d: %" PRIu64 " of %" PRIu64 " admitted", i, hr[i].admitted,
                    hr[i].attempts);
        cr_expect_gt(hr[i].admitted_after, 0, "small host %d starved after %.0f s", i, WARMUP_S);
    }
}

Test(global, small_hosts_beside_one_flat_out)
{
    small_hosts(100);
}

Test(global, small_hosts_beside_one_flat_out_at_1s)
{
    small_hosts(1000);
}

Test(global, host_joining_and_leaving)
{
    open_hosts(4, RL_FALLBACK_LOCAL);
    rl_limit l = global_limit(1000, 1000);
    /* Host 3 joins at 3 s; host 0 stops at 6 s (its idle lease must go back to the others). */
    struct demand d[4] = {{.rate = 375, .to = 6},
                          {.rate = 375, .to = 1e9},
                          {.rate = 375, .to = 1e9},
                          {.rate = 375, .from = 3, .to = 1e9}};
    struct hostrun hr[4];
    char key[64];
    struct acc_outcome o = run_hosts(4, unique_key(key, sizeof key, "joinleave"), &l, d, 10.0, hr);
    expect_bound(&o, 95.0);
}

/* ---- faults -------------------------------------------------------------------------------- */

/* Acquires until a denial or n; returns how many were allowed. */
static uint64_t take(rl_t *rl, const char *key, const rl_limit *l, uint64_t n)
{
    uint64_t ok = 0;
    for (uint64_t i = 0; i < n; i++) {
        rl_result r;
        cr_assert_eq(rl_acquire(rl, key, strlen(key), l, 1, &r), 0, "%s", rl_errmsg());
        if (!r.allowed)
            break;
        ok++;
    }
    return ok;
}

static void wait_synced(rl_t *rl, uint64_t min_rounds, int timeout_ms)
{
    rl_health_info hi;
    for (int i = 0; i < timeout_ms / 10; i++) {
        cr_assert_eq(rl_health(rl, &hi), 0);
        if (hi.sync_rounds >= min_rounds && !hi.global_fallback)
            return;
        usleep(10000);
    }
    cr_assert_fail("no sync within %d ms: rounds %" PRIu64 ", error '%s'", timeout_ms,
                   hi.sync_rounds, hi.error);
}

/* Waits until Redis has told rl's sync that `hosts` hosts share its keys. */
static void wait_hosts(rl_t *rl, uint64_t hosts, int timeout_ms)
{
    rl_health_info hi;
    for (int i = 0; i < timeout_ms / 10; i++) {
        cr_assert_eq(rl_health(rl, &hi), 0);
        if (hi.cluster_hosts == hosts)
            return;
        usleep(10000);
    }
    cr_assert_fail("Redis reports %" PRIu64 " hosts after %d ms, not %" PRIu64, hi.cluster_hosts,
                   timeout_ms, hosts);
}

Test(global, redis_killed_then_fallback_then_resync)
{
    char url[64];
    redis_url(url, sizeof url);
    host_open(0, url, RL_FALLBACK_LOCAL, 100, 0);
    host_open(1, url, RL_FALLBACK_OPEN, 100, 0);
    host_open(2, url, RL_FALLBACK_CLOSED, 100, 0);
    rl_limit l = global_limit(100, 100);
    char key[64];
    unique_key(key, sizeof key, "outage");
    for (int i = 0; i < 3; i++)
        take(g_h[i], key, &l, 1);
    for (int i = 0; i < 3; i++)
        wait_synced(g_h[i], 3, 5000);
    /* The LOCAL fallback shares the rate by the host count Redis last gave each host; a host
     * learns it when it reports, at the latest every R/3 (5 s) for a key that holds a lease. */
    for (int i = 0; i < 3; i++)
        wait_hosts(g_h[i], 3, 10000);
    redis_kill();
    /* The first failed round puts OPEN and LOCAL on their fallback; CLOSED keeps using the
     * leases it holds (Redis granted them) until R/2 (5 s) after the last round, then denies. */
    usleep(1500000);
    rl_health_info hi;
    cr_assert_eq(rl_health(g_h[0], &hi), 0);
    cr_expect(hi.global_fallback, "GLOBAL limits on their fallback while Redis is down");
    cr_expect_gt(hi.sync_errors, 0);
    cr_expect_neq(hi.error[0], '\0', "the error is reported");
    /* OPEN allows everything, CLOSED nothing, LOCAL this host's share of the rate (3 hosts: 33
     * per second above a share of the burst). */
    cr_expect_eq(take(g_h[1], key, &l, 500), 500, "OPEN allows while Redis is down");
    uint64_t closed = take(g_h[2], key, &l, 1000);
    cr_expect_leq(closed, 100 / 3 + 10, "CLOSED admits at most the lease it holds (%" PRIu64 ")",
                  closed);
    cr_expect_eq(take(g_h[2], key, &l, 10), 0, "CLOSED denies beyond its lease");
    uint64_t a = take(g_h[0], key, &l, 1000);
    usleep(1000000);
    uint64_t b = take(g_h[0], key, &l, 1000);
    cr_log_info("LOCAL fallback: %" PRIu64 " then %" PRIu64 " in the next second", a, b);
    cr_expect_leq(b, 100 / 3 + 100 / 3 + 2,
                  "LOCAL fallback gives at most rate/N per second (%" PRIu64 ")", b);
    cr_expect_geq(b, 15, "LOCAL fallback keeps admitting this host's share (%" PRIu64 ")", b);
    /* Redis comes back on the same port (empty): sync resumes, checks decide from Redis again. */
    redis_start();
    for (int i = 0; i < 3; i++)
        wait_synced(g_h[i], hi.sync_rounds + 2, 10000);
    cr_assert_eq(rl_health(g_h[2], &hi), 0);
    cr_expect(!hi.global_fallback);
    cr_expect_str_eq(hi.error, "", "the error clears after recovery");
    /* What OPEN and LOCAL admitted beyond their leases during the outage is charged to the
     * bucket; the bucket's debt floor is -B, so it is back above zero within B / r (1 s here) of
     * refill after the resync, then the hosts share it: CLOSED admits again within about 2 s,
     * given 6 s on a loaded machine (3 s was seen to be too tight once in CI). */
    uint64_t got = 0, t0 = mono_ns();
    while (!got && mono_ns() - t0 < 6 * NS_S) {
        got = take(g_h[2], key, &l, 5);
        usleep(50000);
    }
    cr_log_info("CLOSED admits again %" PRIu64 " ms after the resync",
                (uint64_t)((mono_ns() - t0) / NS_MS));
    cr_expect_gt(got, 0, "CLOSED admits again once synced and the debt is repaid");
}

/* At T = 1 s the leader runs a demand round every 100 ms between the regular rounds; one with
 * nothing to report sends nothing, so it must not pass for a round Redis answered: the failure
 * stays reported (and the fallback on) from the first failed round to the next. */
Test(global, failure_stays_reported_between_rounds_at_1s)
{
    char url[64];
    redis_url(url, sizeof url);
    rl_t *h = host_open(0, url, RL_FALLBACK_OPEN, 1000, 0);
    wait_synced(h, 1, 10000);
    redis_kill();
    rl_health_info hi;
    int polls = 0;
    for (int i = 0; i < 1000; i++, usleep(10000)) {
        cr_assert_eq(rl_health(h, &hi), 0);
        if (!polls && !(hi.global_fallback && hi.error[0]))
            continue; /* the first failed round is yet to come (or to finish) */
        polls++;
        cr_assert(hi.global_fallback, "fallback off after %" PRIu64 " failed rounds",
                  hi.sync_errors);
        cr_assert_neq(hi.error[0], '\0', "error cleared after %" PRIu64 " failed rounds",
                      hi.sync_errors);
        if (hi.sync_errors >= 2)
            break;
    }
    cr_expect_geq(hi.sync_errors, 2, "a second failed round within 10 s");
    cr_log_info("failure reported at %d polls between the first two failed rounds", polls);
}

Test(global, host_started_while_redis_is_down)
{
    redis_kill();
    char url[64];
    redis_url(url, sizeof url);
    /* rl_open succeeds; the host enforces limit / cluster_hosts until Redis answers. */
    rl_t *h = host_open(0, url, RL_FALLBACK_LOCAL, 100, 4);
    rl_limit l = global_limit(400, 400);
    char key[64];
    unique_key(key, sizeof key, "downstart");
    take(h, key, &l, 1);
    usleep(1100000);
    uint64_t n = take(h, key, &l, 1000);
    cr_log_info("started with Redis down: %" PRIu64 " admitted (limit/4 = 100 + a grant)", n);
    cr_expect_leq(n, 100 + 100 + 5, "a quarter of the limit, not all of it (%" PRIu64 ")", n);
    cr_expect_geq(n, 50, "the host's share is usable (%" PRIu64 ")", n);
    rl_health_info hi;
    cr_assert_eq(rl_health(h, &hi), 0);
    cr_expect(hi.global_fallback);
    cr_expect_eq(hi.sync_rounds, 0);
    redis_start();
    wait_synced(h, 1, 10000);
}

static int count_slots(const rl_key_view *kv, void *arg)
{
    unsigned *n = arg;
    if (kv->limit.mode == RL_MODE_GLOBAL)
        (*n)++;
    return 0;
}

/* GLOBAL layers of a rule set: every check of one key counts in one slot (one Redis bucket).
 * A rule's first check finds its limit by key, the later ones by the cached limit id; both
 * must give the key the same cluster identity (they did not: two slots, two buckets). */
Test(global, rule_layer_counts_one_key_in_one_slot)
{
    char url[64];
    redis_url(url, sizeof url);
    rl_t *h = host_open(0, url, RL_FALLBACK_LOCAL, 50, 0);
    char path[96];
    snprintf(path, sizeof path, "/tmp/rl-tg-rules-%ld.yaml", (long)getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("version: 1\ndefaults:\n  - {name: all, requests: 1000, window: 1m, "
          "algorithm: token_bucket, scope: global, mode: global}\n",
          f);
    fclose(f);
    int rc = rl_load_config(h, path);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", rl_errmsg());
    rl_request req = {.method = "GET", .path = "/x", .ip = "192.0.2.1"};
    for (int i = 0; i < 20; i++) {
        rl_decision d;
        cr_assert_eq(rl_check(h, &req, &d), 0, "%s", rl_errmsg());
    }
    unsigned slots = 0;
    cr_assert_eq(rl_foreach_key(h, rl_clock_ns(h), count_slots, &slots), 0);
    cr_expect_eq(slots, 1, "the global key is in %u GLOBAL slots", slots);
}

/* A host's share below one unit per sync round still accrues in the LOCAL fallback: 20 per
 * second over 4 hosts is 5 per second, half a unit per 100 ms round (an earlier version dropped
 * the fractions and admitted nothing at all). */
Test(global, local_fallback_accrues_fractions_of_a_unit)
{
    redis_kill();
    char url[64];
    redis_url(url, sizeof url);
    rl_t *h = host_open(0, url, RL_FALLBACK_LOCAL, 100, 4);
    rl_limit l = global_limit(20, 20);
    char key[64];
    unique_key(key, sizeof key, "fraction");
    take(h, key, &l, 1000); /* creates the key and spends the start-up grant, if any */
    uint64_t got = 0, t0 = mono_ns();
    while (mono_ns() - t0 < 2 * NS_S) {
        got += take(h, key, &l, 1000);
        usleep(50000);
    }
    cr_log_info("LOCAL fallback at 5/s per host: %" PRIu64 " admitted in 2 s", got);
    cr_expect_geq(got, 5, "the share accrues across rounds (%" PRIu64 ")", got);
    cr_expect_leq(got, 5 + 10 + 2, "at most the share plus its burst share (%" PRIu64 ")", got);
    redis_start();
    wait_synced(h, 1, 10000);
}

/* In a forked child: opens segment `name` with Redis (a sync thread, T = 50 ms), or exits 3. */
static rl_t *open_syncing(const char *name, const char *url)
{
    rl_options o;
    rl_options_init(&o);
    o.shm_name = name;
    o.capacity = 1024;
    o.redis_url = url;
    o.sync_interval_ms = 50;
    rl_t *rl = NULL;
    if (rl_open(&rl, &o) != 0)
        _exit(3);
    return rl;
}

/* Forks a process that opens segment `name` with Redis and idles (its sync thread runs). */
static pid_t spawn_syncer(const char *name, const char *url)
{
    pid_t p = fork();
    cr_assert_geq(p, 0);
    if (p == 0) {
        open_syncing(name, url);
        for (;;)
            pause();
    }
    return p;
}

static rl_health_info health_of(rl_t *rl)
{
    rl_health_info hi;
    cr_assert_eq(rl_health(rl, &hi), 0);
    return hi;
}

/* Waits until the leader is one of pids[] (not `not`): its index, or -1. */
static int wait_leader(rl_t *obs, const pid_t *pids, int n, pid_t not, int timeout_ms,
                       uint64_t *waited_ms)
{
    uint64_t t0 = mono_ns();
    while ((mono_ns() - t0) / NS_MS < (uint64_t)timeout_ms) {
        rl_health_info hi = health_of(obs);
        for (int i = 0; i < n; i++)
            if (hi.leader_pid == pids[i] && pids[i] != not ) {
                *waited_ms = (mono_ns() - t0) / NS_MS;
                return i;
            }
        usleep(5000);
    }
    return -1;
}

/* Segment g_hn[0] with an observer in g_h[0] (no Redis, so no sync thread: it only reads the
 * header) and two processes that sync it (pids); waits up to 5 s until one of them leads: its
 * index, or -1. */
static int two_syncers_one_leads(pid_t pids[2], uint64_t *waited_ms)
{
    char url[64];
    redis_url(url, sizeof url);
    test_name_new(g_hn[0], sizeof g_hn[0]);
    g_h[0] = test_open(g_hn[0], 1024);
    pids[0] = spawn_syncer(g_hn[0], url);
    pids[1] = spawn_syncer(g_hn[0], url);
    return wait_leader(g_h[0], pids, 2, 0, 5000, waited_ms);
}

Test(global, leader_killed_another_takes_over)
{
    pid_t pids[2];
    uint64_t ms;
    int li = two_syncers_one_leads(pids, &ms);
    cr_assert_geq(li, 0, "no leader among the two syncers");
    uint64_t epoch = health_of(g_h[0]).leader_epoch;
    kill(pids[li], SIGKILL);
    waitpid(pids[li], NULL, 0);
    int nl = wait_leader(g_h[0], pids, 2, pids[li], 5000, &ms);
    rl_health_info hi = health_of(g_h[0]);
    kill(pids[1 - li], SIGKILL);
    waitpid(pids[1 - li], NULL, 0);
    cr_assert_eq(nl, 1 - li, "the other process did not take over");
    cr_log_info("leader killed: replaced after %" PRIu64 " ms (lease 300 ms at T = 50 ms)", ms);
    cr_expect_leq(ms, 300 + 2 * 50 + 200, "takeover took %" PRIu64 " ms", ms);
    cr_expect_gt(hi.leader_epoch, epoch, "the takeover bumps the epoch");
}

Test(global, stopped_leader_loses_its_lease_and_stays_quiet)
{
    pid_t pids[2];
    uint64_t ms;
    int li = two_syncers_one_leads(pids, &ms);
    cr_assert_geq(li, 0);
    kill(pids[li], SIGSTOP);
    int nl = wait_leader(g_h[0], pids, 2, pids[li], 5000, &ms);
    uint64_t epoch = health_of(g_h[0]).leader_epoch;
    kill(pids[li], SIGCONT);
    usleep(500000); /* the old leader runs again: it must step down, not fight */
    rl_health_info hi = health_of(g_h[0]);
    for (int i = 0; i < 2; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    cr_assert_eq(nl, 1 - li, "no takeover from the stopped leader");
    cr_expect_eq(hi.leader_pid, pids[1 - li], "the woken leader took the lease back");
    cr_expect_eq(hi.leader_epoch, epoch, "leadership changed again after SIGCONT");
}

/* The fencing itself, at the script: an older epoch is refused for every key, a retried batch
 * (same epoch and sequence) gets its first answer without being counted twice. */
Test(global, script_fences_old_epochs_and_dedups_retries)
{
    char url[64];
    struct rl_redis_url u;
    cr_assert_eq(rl__redis_url_parse(redis_url(url, sizeof url), &u), 0);
    struct rl_redis *c = NULL;
    cr_assert_eq(rl__redis_connect(&u, 500, 500, &c), 0, "%s", rl_errmsg());
    char key[64];
    snprintf(key, sizeof key, "rl:g:{fence-%ld}", (long)getpid());
    /* host, epoch, seq, T_us, R_us; inc, K, C, Ka, den, requests, window_us, B, ttl_ms */
    const char *call1[] = {key, "h1", "5",  "1",    "100000",  "1000000", "i1",   "0",
                           "0", "0",  "10", "1000", "1000000", "1000",    "60000"};
    redisReply *rep = NULL;
    cr_assert_eq(rl__redis_evalsha(c, rl__embed_global, NULL, 1, 15, call1, NULL, &rep), 0, "%s",
                 rl_errmsg());
    cr_assert_eq(rep->type, REDIS_REPLY_ARRAY);
    long long L1 = rep->element[1]->integer;
    freeReplyObject(rep);
    cr_expect_gt(L1, 0, "a new host gets a lease");
    /* The same batch again (a retry after a timeout): the same answer. */
    cr_assert_eq(rl__redis_evalsha(c, rl__embed_global, NULL, 1, 15, call1, NULL, &rep), 0);
    cr_expect_eq(rep->element[1]->integer, L1, "a retry is answered from the record");
    freeReplyObject(rep);
    /* The bucket was debited once: tokens + lease = B. */
    cr_assert_eq(rl__redis_cmd(c, &rep, "HGET %s tk", key), 0);
    double tk = atof(rep->str);
    freeReplyObject(rep);
    cr_expect(fabs(tk + (double)L1 - 1000.0) < 1.0, "tokens %.1f + lease %lld != B", tk, L1);
    /* An older epoch (a deposed leader waking up) is refused. */
    const char *old[] = {key, "h1", "4",  "9",    "100000",  "1000000", "i1",   "0",
                         "0", "0",  "10", "1000", "1000000", "1000",    "60000"};
    cr_assert_eq(rl__redis_evalsha(c, rl__embed_global, NULL, 1, 15, old, NULL, &rep), 0);
    cr_expect_eq(rep->element[1]->integer, -1, "epoch 4 after epoch 5 must be refused");
    freeReplyObject(rep);
    /* An older sequence in the current epoch too. */
    const char *call2[] = {key, "h1", "5",  "3",    "100000",  "1000000", "i1",   "0",
                           "0", "0",  "10", "1000", "1000000", "1000",    "60000"};
    cr_assert_eq(rl__redis_evalsha(c, rl__embed_global, NULL, 1, 15, call2, NULL, &rep), 0);
    freeReplyObject(rep);
    const char *older[] = {key, "h1", "5",  "2",    "100000",  "1000000", "i1",   "0",
                           "0", "0",  "10", "1000", "1000000", "1000",    "60000"};
    cr_assert_eq(rl__redis_evalsha(c, rl__embed_global, NULL, 1, 15, older, NULL, &rep), 0);
    cr_expect_eq(rep->element[1]->integer, -1, "sequence 2 after 3 must be refused");
    freeReplyObject(rep);
    cr_assert_eq(rl__redis_cmd(c, &rep, "PTTL %s", key), 0);
    cr_expect_gt(rep->integer, 0, "every key has a TTL");
    freeReplyObject(rep);
    rl__redis_close(c);
}

Test(global, fork_child_syncs_on_its_own)
{
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer refuses to start threads in the forked child of a threaded process
     * ("starting new threads after multi-threaded fork is not supported"): the other builds
     * run this test. */
    test_skip(global_teardown, "not under ThreadSanitizer (die_after_fork)");
#elif defined(__SANITIZE_ADDRESS__)
    /* ASan's allocator (GCC 12) can deadlock in a child forked while another thread is inside
     * it; the plain build runs this test. */
    test_skip(global_teardown, "not under AddressSanitizer (allocator not fork-safe with threads)");
#endif
    char url[64];
    redis_url(url, sizeof url);
    rl_t *h = host_open(0, url, RL_FALLBACK_CLOSED, 50, 0);
    rl_limit l = global_limit(1000, 1000);
    char key[64];
    unique_key(key, sizeof key, "fork");
    take(h, key, &l, 1);
    wait_synced(h, 2, 5000);
    pid_t p = fork();
    cr_assert_geq(p, 0);
    if (p == 0) {
        /* The child uses the inherited handle; the parent closes its own: the child's restarted
         * sync thread must take the lead and keep the key synced. */
        usleep(300000);
        uint64_t got = 0;
        for (int i = 0; i < 40; i++) {
            got += take(h, key, &l, 50);
            usleep(50000);
        }
        rl_health_info hi;
        rl_health(h, &hi);
        _exit(hi.leader_pid == getpid() && got > 100 ? 0 : 1);
    }
    usleep(100000);
    rl_close(&g_h[0]); /* resigns: the child's thread takes over */
    int st;
    waitpid(p, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the forked child did not lead or admit "
              "(status %d)",
              st);
}

Test(global, bad_urls_and_wrong_passwords_are_clear)
{
    rl_options o;
    rl_options_init(&o);
    test_name_new(g_hn[0], sizeof g_hn[0]);
    o.shm_name = g_hn[0];
    o.capacity = 1024;
    o.redis_url = "rediss://127.0.0.1:6379";
    rl_t *rl = NULL;
    int rc = rl_open(&rl, &o);
    cr_expect_eq(rc, -ENOTSUP, "rediss: %d %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "TLS"), "%s", rl_errmsg());
    o.redis_url = "redis://127.0.0.1:notaport";
    rc = rl_open(&rl, &o);
    cr_expect_eq(rc, -EINVAL, "bad port: %d %s", rc, rl_errmsg());
    /* A wrong password: rl_open succeeds (Redis may come later); health says why, without it. */
    char url[128];
    snprintf(url, sizeof url, "redis://nobody:s3cr3t-pw@127.0.0.1:%d", g_srv.port);
    o.redis_url = url;
    rc = rl_open(&g_h[0], &o);
    cr_assert_eq(rc, 0, "%s", rl_errmsg());
    rl_limit l = global_limit(10, 10);
    take(g_h[0], "k", &l, 1);
    usleep(400000);
    rl_health_info hi = health_of(g_h[0]);
    cr_expect_neq(hi.error[0], '\0', "a failing AUTH is reported");
    cr_expect_null(strstr(hi.error, "s3cr3t"), "the password leaked: %s", hi.error);
    cr_log_info("wrong password: %s", hi.error);
}

Test(global, window_algorithms_are_refused_with_a_reason)
{
    char url[64];
    rl_t *h = host_open(0, redis_url(url, sizeof url), RL_FALLBACK_LOCAL, 100, 0);
    rl_limit l = mk_limit(RL_SLIDING_WINDOW, 10, 1000, 0);
    l.mode = RL_MODE_GLOBAL;
    rl_result r;
    int rc = rl_acquire(h, "k", 1, &l, 1, &r);
    cr_expect_eq(rc, -EINVAL);
    cr_expect(strstr(rl_errmsg(), "STRICT"), "%s", rl_errmsg());
}

/* "host:port" of the master the sentinel behind s names ("" if it does not answer). */
static void master_addr(struct rl_redis *s, const char *name, char *out, size_t n)
{
    redisReply *rep = NULL;
    out[0] = '\0';
    if (rl__redis_cmd(s, &rep, "SENTINEL get-master-addr-by-name %s", name) == 0 && rep &&
        rep->type == REDIS_REPLY_ARRAY && rep->elements == 2)
        snprintf(out, n, "%s:%s", rep->element[0]->str, rep->element[1]->str);
    freeReplyObject(rep);
}

/* A Sentinel failover (the master demoted, the replica promoted) under GLOBAL traffic: the sync
 * resolves the new master and resumes; checks never wait meanwhile. Uses the sentinel set
 * scripts/test starts (RL_TEST_SENTINEL_URL). */
Test(global, sentinel_failover_sync_resumes)
{
    const char *surl = getenv("RL_TEST_SENTINEL_URL");
    cr_assert(surl && *surl, "RL_TEST_SENTINEL_URL unset");
    rl_t *h = host_open(0, surl, RL_FALLBACK_LOCAL, 50, 0);
    rl_limit l = global_limit(2000, 2000);
    char key[64];
    unique_key(key, sizeof key, "failover");
    take(h, key, &l, 1);
    wait_synced(h, 3, 10000);
    struct rl_redis_url u;
    cr_assert_eq(rl__redis_url_parse(surl, &u), 0);
    struct rl_redis_url su = u;
    su.kind = RL_REDIS_TCP;
    su.nhosts = 1;
    su.master[0] = '\0';
    struct rl_redis *s = NULL;
    cr_assert_eq(rl__redis_connect(&su, 500, 500, &s), 0, "sentinel: %s", rl_errmsg());
    char before[64] = "", now_at[64] = "";
    master_addr(s, u.master, before, sizeof before);
    int rc;
    uint64_t t0 = mono_ns();
    while ((rc = rl__redis_cmd(s, NULL, "SENTINEL FAILOVER %s", u.master)) != 0 &&
           mono_ns() - t0 < 15 * NS_S)
        usleep(200000);
    cr_assert_eq(rc, 0, "SENTINEL FAILOVER: %d %s", rc, rl_errmsg());
    /* Traffic goes on meanwhile; no check may wait on the network (a check that did would
     * take the command timeout, 500 ms). */
    uint64_t worst_ns = 0, resumed_ms = 0, rounds_at_switch = 0;
    t0 = mono_ns();
    while (mono_ns() - t0 < 25 * NS_S) {
        uint64_t a = mono_ns();
        rl_result r;
        cr_assert_eq(rl_acquire(h, key, strlen(key), &l, 1, &r), 0);
        uint64_t d = mono_ns() - a;
        worst_ns = d > worst_ns ? d : worst_ns;
        rl_health_info hi = health_of(h);
        if (!rounds_at_switch) {
            master_addr(s, u.master, now_at, sizeof now_at);
            if (now_at[0] && strcmp(now_at, before) != 0)
                rounds_at_switch = hi.sync_rounds + 1;
        } else if (hi.sync_rounds > rounds_at_switch + 5 && hi.last_sync_age_ms < 200 &&
                   !hi.global_fallback) {
            resumed_ms = (mono_ns() - t0) / NS_MS;
            break;
        }
        usleep(20000);
    }
    rl__redis_close(s);
    cr_log_info("failover %s -> %s: sync resumed after %" PRIu64 " ms; slowest check %" PRIu64
                " us",
                before, now_at, resumed_ms, worst_ns / 1000);
    cr_expect(rounds_at_switch, "the sentinels never promoted the replica");
    cr_expect_gt(resumed_ms, 0, "the sync did not resume within 25 s of the failover");
    cr_expect_lt(worst_ns, 400 * NS_MS, "a check waited %" PRIu64 " us", worst_ns / 1000);
}

/* The rule file's `sync:` applies to handles that leave fallback and interval to it. */
Test(global, rule_file_sync_section_sets_the_fallback)
{
    redis_kill();
    char path[] = "/tmp/rl-tg-sync-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *yaml = "version: 1\nsync: {interval: 20ms, fallback: closed}\n";
    cr_assert_eq(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    char url[64];
    rl_options o;
    rl_options_init(&o);
    test_name_new(g_hn[0], sizeof g_hn[0]);
    o.shm_name = g_hn[0];
    o.capacity = 1024;
    o.config_path = path;
    o.redis_url = redis_url(url, sizeof url); /* nobody listens there now */
    int rc = rl_open(&g_h[0], &o);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", rl_errmsg());
    rl_limit l = global_limit(1000, 1000);
    rl_result r;
    cr_assert_eq(rl_acquire(g_h[0], "k", 1, &l, 1, &r), 0);
    char dump[4096];
    rl_config_dump(g_h[0], dump, sizeof dump);
    cr_expect(!r.allowed, "sync.fallback closed: denied while Redis is unreachable:\n%s", dump);
    /* The same without the file's section: LOCAL, the cold-start grant admits. */
    rl_options_init(&o);
    test_name_new(g_hn[1], sizeof g_hn[1]);
    o.shm_name = g_hn[1];
    o.capacity = 1024;
    o.redis_url = url;
    cr_assert_eq(rl_open(&g_h[1], &o), 0, "%s", rl_errmsg());
    cr_assert_eq(rl_acquire(g_h[1], "k", 1, &l, 1, &r), 0);
    cr_expect(r.allowed, "default fallback local: the grant admits");
}

/* rl_reset of a GLOBAL key drops this host's slot and the cluster-wide state in Redis: the
 * bucket restarts full. */
Test(global, reset_clears_the_cluster_state)
{
    char url[64];
    rl_t *h = host_open(0, redis_url(url, sizeof url), RL_FALLBACK_CLOSED, 50, 0);
    rl_limit l = global_limit(10, 10); /* 10 per second, burst 10 */
    l.window_ms = 3600 * 1000;         /* 10 per hour: nothing refills during the test */
    char key[64];
    unique_key(key, sizeof key, "reset");
    uint64_t got = 0;
    for (int i = 0; i < 40 && got < 10; i++) {
        got += take(h, key, &l, 10);
        usleep(60000);
    }
    cr_assert_eq(got, 10, "the whole burst is admitted, then nothing");
    usleep(200000);
    cr_assert_eq(take(h, key, &l, 5), 0, "exhausted cluster-wide");
    struct rl_redis_url u;
    cr_assert_eq(rl__redis_url_parse(url, &u), 0);
    struct rl_redis *c = NULL;
    cr_assert_eq(rl__redis_connect(&u, 500, 500, &c), 0);
    redisReply *rep = NULL;
    cr_assert_eq(rl__redis_cmd(c, &rep, "KEYS rl:g:*"), 0);
    size_t before = rep->elements;
    freeReplyObject(rep);
    cr_assert_eq(before, 1, "one GLOBAL key in Redis");
    cr_assert_eq(rl_reset(h, key, strlen(key), &l), 0, "%s", rl_errmsg());
    cr_assert_eq(rl__redis_cmd(c, &rep, "KEYS rl:g:*"), 0);
    cr_expect_eq(rep->elements, 0, "the cluster state is deleted");
    freeReplyObject(rep);
    rl__redis_close(c);
    got = 0;
    for (int i = 0; i < 40 && got < 10; i++) {
        got += take(h, key, &l, 10);
        usleep(60000);
    }
    cr_expect_eq(got, 10, "after the reset the whole burst is there again (%" PRIu64 ")", got);
}

/* rl_health warns when Redis may evict rl's keys (a memory limit with an evicting policy). */
Test(global, health_warns_about_evicting_redis)
{
    char url[64];
    rl_t *h = host_open(0, redis_url(url, sizeof url), RL_FALLBACK_LOCAL, 100, 0);
    struct rl_redis_url u;
    cr_assert_eq(rl__redis_url_parse(url, &u), 0);
    struct rl_redis *c = NULL;
    cr_assert_eq(rl__redis_connect(&u, 500, 500, &c), 0);
    rl_health_info hi = health_of(h);
    cr_expect(hi.connected);
    cr_expect(!hi.redis_may_evict, "no maxmemory: nothing is evicted (%s)", hi.warning);
    cr_assert_eq(rl__redis_cmd(c, NULL, "CONFIG SET maxmemory 100mb"), 0);
    cr_assert_eq(rl__redis_cmd(c, NULL, "CONFIG SET maxmemory-policy volatile-lru"), 0);
    hi = health_of(h);
    cr_expect(hi.redis_may_evict, "volatile-lru evicts keys with a TTL: every rl key");
    cr_expect(strstr(hi.warning, "volatile-lru") != NULL, "%s", hi.warning);
    cr_assert_eq(rl__redis_cmd(c, NULL, "CONFIG SET maxmemory-policy noeviction"), 0);
    hi = health_of(h);
    cr_expect(!hi.redis_may_evict, "%s", hi.warning);
    rl__redis_close(c);
}

/* Hosts that restart on new segments (a reboot) keep their identity (host name + segment
 * name): the leases their old segments held come back to them at once instead of blocking the
 * cluster's bucket until Redis reclaims them as a dead host's (R = 10 s). */
Test(global, restarted_hosts_get_their_leases_back)
{
    open_hosts(4, RL_FALLBACK_LOCAL);
    rl_limit l = global_limit(1000, 1000);
    struct demand d[4];
    for (int i = 0; i < 4; i++)
        d[i] = (struct demand){.rate = 250, .to = 1e9};
    struct hostrun hr[4];
    char key[64];
    unique_key(key, sizeof key, "restart");
    run_hosts(4, key, &l, d, 2.0, hr);
    for (int i = 0; i < 4; i++) {
        rl_close(&g_h[i]);
        rl_unlink(g_hn[i]); /* the segment is gone, as after a reboot */
    }
    open_hosts(4, RL_FALLBACK_LOCAL); /* same names: new segments, same host ids */
    for (int i = 0; i < 4; i++)
        d[i] = (struct demand){.rate = 125, .to = 1e9};
    struct acc_outcome o = run_hosts(4, key, &l, d, 3.0, hr);
    uint64_t denied = o.attempts - o.admitted;
    cr_expect_leq((double)denied, 0.01 * (double)o.attempts,
                  "%" PRIu64 " of %" PRIu64 " denied below the limit after the restart", denied,
                  o.attempts);
}

/* GLOBAL over Redis Cluster (RL_TEST_CLUSTER_URL, 3 masters): keys in many hash-tag groups, so
 * every round sends one batch per group to the group's master; two hosts share each key's limit
 * exactly as on one server. */
Test(global, redis_cluster_two_hosts_share_many_keys)
{
    const char *curl = getenv("RL_TEST_CLUSTER_URL");
    cr_assert(curl && *curl, "RL_TEST_CLUSTER_URL unset");
    host_open(0, curl, RL_FALLBACK_CLOSED, 50, 2);
    host_open(1, curl, RL_FALLBACK_CLOSED, 50, 2);
    rl_limit l = global_limit(20, 20);
    l.window_ms = 3600 * 1000; /* 20 per hour: nothing refills during the test */
    enum { NKEYS = 60 };
    char keys[NKEYS][48];
    uint64_t got[NKEYS] = {0};
    for (int k = 0; k < NKEYS; k++)
        snprintf(keys[k], sizeof keys[k], "cl-%ld-%d", (long)getpid(), k);
    uint64_t t0 = mono_ns();
    while (mono_ns() - t0 < 3 * NS_S) {
        for (int k = 0; k < NKEYS; k++)
            for (int h = 0; h < 2; h++)
                got[k] += take(g_h[h], keys[k], &l, 2);
        usleep(20000);
    }
    uint64_t total = 0, worst = 0;
    for (int k = 0; k < NKEYS; k++) {
        total += got[k];
        worst = got[k] > worst ? got[k] : worst;
        cr_expect_leq(got[k], 20, "key %d: %" PRIu64 " admitted cluster-wide, the limit is 20", k,
                      got[k]);
    }
    rl_health_info hi = health_of(g_h[0]);
    cr_log_info("cluster: %" PRIu64 " admitted over %d keys (at most 20 each, worst %" PRIu64
                "); %" PRIu64 " rounds, %" PRIu64 " keys reported, %" PRIu64 " errors",
                total, NKEYS, worst, hi.sync_rounds, hi.sync_keys, hi.sync_errors);
    cr_expect_geq(total, (uint64_t)NKEYS * 18, "the keys' allowance was used (%" PRIu64 ")", total);
    cr_expect_eq(hi.sync_errors, 0, "%s", hi.error);
    cr_expect_gt(hi.sync_keys, NKEYS, "every key reported through the cluster");
}

/* A process that opens `name` with Redis, syncs, and admits GLOBAL traffic on one key at about
 * 300 checks/s, adding what it was granted to *admitted (shared memory). */
static pid_t spawn_churner(const char *name, const char *url, _Atomic uint64_t *admitted)
{
    pid_t p = fork();
    cr_assert_geq(p, 0);
    if (p == 0) {
        rl_t *rl = open_syncing(name, url);
        rl_limit l = global_limit(1000, 1000);
        for (;;) {
            rl_result r;
            if (rl_acquire(rl, "churn", 5, &l, 1, &r) != 0)
                _exit(4);
            if (r.allowed)
                atomic_fetch_add(admitted, 1);
            usleep(3000);
        }
    }
    return p;
}

/* Leader churn: the sync leader is SIGKILLed every second for 10 s while three processes admit
 * GLOBAL traffic (a new one replaces each killed one). Leadership moves on every time (the epoch
 * only grows), the sync keeps going, and the cluster-wide count never passes the limit: no batch
 * was counted twice or lost, whoever sent it. */
Test(global, leader_churn_every_second)
{
    char url[64];
    redis_url(url, sizeof url);
    test_name_new(g_hn[0], sizeof g_hn[0]);
    g_h[0] = test_open(g_hn[0], 1024); /* the observer: no Redis, reads the header */
    _Atomic uint64_t *admitted =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(admitted, MAP_FAILED);
    pid_t pids[3];
    for (int i = 0; i < 3; i++)
        pids[i] = spawn_churner(g_hn[0], url, admitted);
    uint64_t t0 = mono_ns(), last_epoch = 0, kills = 0, ms;
    for (int round = 0; round < 10; round++) {
        int li = wait_leader(g_h[0], pids, 3, 0, 3000, &ms);
        cr_assert_geq(li, 0, "round %d: no leader among the churners", round);
        rl_health_info hi = health_of(g_h[0]);
        cr_expect_geq(hi.leader_epoch, last_epoch, "the epoch went back");
        last_epoch = hi.leader_epoch;
        usleep(1000000);
        kill(pids[li], SIGKILL);
        waitpid(pids[li], NULL, 0);
        kills++;
        pids[li] = spawn_churner(g_hn[0], url, admitted);
    }
    uint64_t ms_wait;
    int li = wait_leader(g_h[0], pids, 3, 0, 3000, &ms_wait);
    rl_health_info hi = health_of(g_h[0]);
    uint64_t rounds0 = hi.sync_rounds;
    usleep(500000);
    hi = health_of(g_h[0]);
    double secs = (double)(mono_ns() - t0) / 1e9;
    for (int i = 0; i < 3; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    uint64_t n = atomic_load(admitted);
    double allowance = 1000.0 + 1000.0 * secs;
    cr_log_info("churn: %" PRIu64 " leaders killed in %.1f s, epoch %" PRIu64 ", %" PRIu64
                " batches refused as stale; %" PRIu64 " admitted of %.0f allowed",
                kills, secs, hi.leader_epoch, hi.sync_stale_refused, n, allowance);
    cr_expect_geq(li, 0, "no leader after the churn");
    cr_expect_gt(hi.sync_rounds, rounds0, "the sync stopped after the churn");
    cr_expect_gt(hi.leader_epoch, last_epoch, "the last kill moved the leadership on");
    /* Every admission lies under a grant Redis debited once; the cold-start grant of the slot
     * (made once: the slot lives in the segment) is the only slack. */
    cr_expect_leq((double)n, allowance + 25.0, "%" PRIu64 " admitted, the limit allowed %.0f", n,
                  allowance);
    cr_expect_gt(n, 1000, "the churners were admitted hardly anything (%" PRIu64 ")", n);
}
