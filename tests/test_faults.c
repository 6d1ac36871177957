/*
 * The Redis fault table (docs/reliability.md): GLOBAL load on two "hosts" (segments), each with
 * two threads checking one shared GLOBAL key well above its limit (so denials happen) and one
 * thread making STRICT checks, while Redis is stopped, killed and restarted empty, paused, or
 * failed over by Sentinel. Per fault it measures and prints one markdown row:
 *
 *   load held      checks/s during the fault over checks/s before it (the load threads are
 *                  paced: a check that waited on the network would show as a drop)
 *   no decision    rl_acquire calls (GLOBAL or STRICT) that returned an error instead of an
 *                  allow or deny answer: must be 0
 *   over-admission GLOBAL admissions an exact token bucket (r, B), full at the start and fed
 *                  with the admitted stream of both hosts, would have refused; asserted within
 *                  the allowance of docs/design.md section 10: the cold-start grants, the LOCAL
 *                  fallback's r per second cluster-wide from the fault until the recovery, one
 *                  burst B when Redis lost its data, and one unit per concurrent check
 *   recovery       from the fault's end (SIGCONT, the restarted server answering, the pause
 *                  over, the replica promoted) until every host is off its fallback and two sync
 *                  rounds have been answered since
 *   p99 / max      of the GLOBAL checks' latency, before and during the fault
 *
 * Asserted besides: the fallback is in force during every outage (rl_health), and after the
 * recovery the hosts admit near the rate again (the limits converge). Timings are printed, not
 * asserted, except generous bounds that only a hang would cross.
 *
 * Each test starts its own redis-server (tests/redis_private.h); the Sentinel test uses the
 * sentinel set scripts/test starts, as tests/test_global.c does, and resets its keys at the end.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "conn.h"
#include "internal.h"
#include "rl_test.h"
#include "support.h" /* the monotonic clock (support/) */
#include "url.h"

#include "redis_private.h"

__attribute__((constructor)) static void faults_gate(void)
{
    rp_gate("faults");
}

/* ---- the setting -------------------------------------------------------------------------- */

#define NH       2    /* hosts (segments) */
#define NGT      2    /* GLOBAL load threads per host */
#define RATE     1000 /* the GLOBAL limit: r per second ... */
#define BURST    1000 /* ... and B */
#define SYNC_MS  100  /* the sync interval T */
#define CMD_MS   250  /* Redis command timeout */
#define WARM_S   2.0
#define BEFORE_S 3.0
#define AFTER_S  2.0

enum { PH_WARM, PH_BEFORE, PH_DURING, PH_RECOVERY, PH_AFTER, NPH };

static struct rp_server g_srv;
static rl_t *g_h[NH];
static char g_hn[NH][64];
static char g_gkey[64], g_skey[64];
static rl_limit g_glim, g_slim;

static _Atomic int g_phase, g_stop;
static uint64_t g_t0;

static double secs_since(uint64_t t)
{
    return (double)(mono_ns() - t) / 1e9;
}

/* ---- latency histogram: 8 buckets per power of two ------------------------------------------ */

#define NB (64 * 8)

static unsigned hist_bucket(uint64_t v)
{
    unsigned e = 63u - (unsigned)__builtin_clzll(v | 1);
    unsigned sub = e >= 3 ? (unsigned)(v >> (e - 3)) & 7u : 0u;
    return e * 8 + sub;
}

/* The largest value a bucket holds. */
static uint64_t hist_upper(unsigned b)
{
    unsigned e = b / 8, sub = b % 8;
    if (e < 3)
        return (2ull << e) - 1;
    return ((uint64_t)(8 + sub + 1) << (e - 3)) - 1;
}

static uint64_t hist_quantile(const uint64_t *h, double q)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < NB; b++)
        n += h[b];
    if (!n)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)n), seen = 0;
    for (unsigned b = 0; b < NB; b++) {
        seen += h[b];
        if (seen >= want)
            return hist_upper(b);
    }
    return hist_upper(NB - 1);
}

/* ---- the load threads ---------------------------------------------------------------------- */

struct worker {
    rl_t *rl;
    bool strict;
    pthread_t th;
    uint64_t checks[NPH], admitted[NPH], max_ns[NPH];
    uint64_t hist[NPH][NB];
    uint64_t no_decision;
    int first_rc;
    char first_msg[160];
    uint64_t *adm; /* GLOBAL admissions: ns since g_t0 */
    size_t nadm, cap;
    bool overflow;
};

static struct worker g_w[NH * (NGT + 1)];
static int g_nw;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const char *key = w->strict ? g_skey : g_gkey;
    const rl_limit *lim = w->strict ? &g_slim : &g_glim;
    size_t keylen = strlen(key);
    /* GLOBAL: 50 checks, then a short sleep (~150-300 k checks/s per thread); STRICT: one check
     * every 5 ms (each one is a round trip to Redis). */
    int batch = w->strict ? 1 : 50;
    useconds_t pause = w->strict ? 5000 : 200;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        int ph = atomic_load_explicit(&g_phase, memory_order_relaxed);
        for (int i = 0; i < batch; i++) {
            rl_result r;
            uint64_t a = mono_ns();
            int rc = rl_acquire(w->rl, key, keylen, lim, 1, &r);
            uint64_t b = mono_ns(), d = b - a;
            if (rc != 0) {
                if (w->no_decision++ == 0) {
                    w->first_rc = rc;
                    snprintf(w->first_msg, sizeof w->first_msg, "%s", rl_errmsg());
                }
                continue;
            }
            w->checks[ph]++;
            w->hist[ph][hist_bucket(d)]++;
            if (d > w->max_ns[ph])
                w->max_ns[ph] = d;
            if (!r.allowed)
                continue;
            w->admitted[ph]++;
            if (!w->strict) {
                if (w->nadm < w->cap)
                    w->adm[w->nadm++] = b - g_t0;
                else
                    w->overflow = true;
            }
        }
        usleep(pause);
    }
    return NULL;
}

static void start_load(void)
{
    g_nw = 0;
    atomic_store(&g_stop, 0);
    atomic_store(&g_phase, PH_WARM);
    g_t0 = mono_ns();
    for (int h = 0; h < NH; h++)
        for (int t = 0; t <= NGT; t++) {
            struct worker *w = &g_w[g_nw++];
            memset(w, 0, sizeof *w);
            w->rl = g_h[h];
            w->strict = t == NGT;
            if (!w->strict) {
                w->cap = 1 << 17; /* the limit admits ~1000/s: room for minutes */
                w->adm = calloc(w->cap, sizeof *w->adm);
                cr_assert_not_null(w->adm);
            }
            cr_assert_eq(pthread_create(&w->th, NULL, worker_main, w), 0);
        }
}

static void stop_load(void)
{
    atomic_store(&g_stop, 1);
    for (int i = 0; i < g_nw; i++)
        pthread_join(g_w[i].th, NULL);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Admissions an exact bucket (RATE, BURST), full at g_t0, would refuse when fed with every
 * host's GLOBAL admissions in time order. */
static uint64_t exact_bucket_rejects(uint64_t *admitted_total)
{
    size_t n = 0;
    for (int i = 0; i < g_nw; i++)
        n += g_w[i].nadm;
    uint64_t *all = calloc(n + 1, sizeof *all);
    cr_assert_not_null(all);
    size_t k = 0;
    for (int i = 0; i < g_nw; i++) {
        if (!g_w[i].nadm)
            continue; /* STRICT threads record nothing (adm NULL) */
        memcpy(all + k, g_w[i].adm, g_w[i].nadm * sizeof *all);
        k += g_w[i].nadm;
    }
    qsort(all, n, sizeof *all, cmp_u64);
    double tokens = BURST, last = 0;
    uint64_t rejects = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)all[i] / 1e9;
        tokens = fmin((double)BURST, tokens + (t - last) * RATE);
        last = t;
        if (tokens >= 1.0)
            tokens -= 1.0;
        else
            rejects++;
    }
    free(all);
    *admitted_total = n;
    return rejects;
}

/* ---- hosts and health ---------------------------------------------------------------------- */

static void open_hosts(const char *url)
{
    for (int i = 0; i < NH; i++) {
        test_name_new(g_hn[i], sizeof g_hn[i]);
        rl_options o;
        rl_options_init(&o);
        o.shm_name = g_hn[i];
        o.capacity = 1024;
        o.redis_url = url;
        o.fallback = RL_FALLBACK_LOCAL;
        o.sync_interval_ms = SYNC_MS;
        o.cluster_hosts = NH;
        o.redis_connect_timeout_ms = CMD_MS;
        o.redis_command_timeout_ms = CMD_MS;
        int rc = rl_open(&g_h[i], &o);
        cr_assert_eq(rc, 0, "rl_open(%s, %s): %d %s", g_hn[i], url, rc, rl_errmsg());
    }
    static unsigned c;
    snprintf(g_gkey, sizeof g_gkey, "f-%ld-%u-global", (long)getpid(), c);
    snprintf(g_skey, sizeof g_skey, "f-%ld-%u-strict", (long)getpid(), c++);
    g_glim = mk_limit(RL_TOKEN_BUCKET, RATE, 1000, BURST);
    g_glim.mode = RL_MODE_GLOBAL;
    g_slim = mk_limit(RL_TOKEN_BUCKET, 100, 1000, 100);
    g_slim.mode = RL_MODE_STRICT;
}

static rl_health_info health_of(int h)
{
    rl_health_info hi;
    cr_assert_eq(rl_health(g_h[h], &hi), 0);
    return hi;
}

/* Until every host has `rounds` more answered rounds than base[] and is off its fallback; the
 * seconds that took, or -1 after timeout_s. */
static double wait_all_synced(const uint64_t *base, uint64_t rounds, double timeout_s)
{
    uint64_t t = mono_ns();
    while (secs_since(t) < timeout_s) {
        bool ok = true;
        for (int h = 0; h < NH && ok; h++) {
            rl_health_info hi = health_of(h);
            ok = !hi.global_fallback && hi.sync_rounds >= base[h] + rounds;
        }
        if (ok)
            return secs_since(t);
        usleep(10000);
    }
    return -1;
}

static bool g_fallback_after; /* a host was on its fallback after the fault's end */

/* Recovered: every host off its fallback, with answered rounds going on (each host's count
 * grows at least every 300 ms), without a break for STABLE_S; early rounds (a denial kicks one
 * within 10 ms) could otherwise pass for recovery while the sync still talks to a server about
 * to be demoted. The seconds from `from` to the start of that stretch, or -1 after timeout_s. */
#define STABLE_S 1.0
static double wait_recovered(uint64_t from, double timeout_s)
{
    uint64_t last_rounds[NH], last_growth[NH];
    uint64_t stretch = 0; /* start of the current good stretch, 0: none */
    for (int h = 0; h < NH; h++) {
        last_rounds[h] = health_of(h).sync_rounds;
        last_growth[h] = 0;
    }
    while (secs_since(from) < timeout_s + STABLE_S) {
        uint64_t now = mono_ns();
        bool ok = true;
        for (int h = 0; h < NH; h++) {
            rl_health_info hi = health_of(h);
            g_fallback_after |= hi.global_fallback;
            if (hi.sync_rounds > last_rounds[h]) {
                last_rounds[h] = hi.sync_rounds;
                last_growth[h] = now;
            }
            ok = ok && !hi.global_fallback && last_growth[h] && now - last_growth[h] < 300 * NS_MS;
        }
        if (!ok)
            stretch = 0;
        else if (!stretch)
            stretch = now;
        else if ((double)(now - stretch) / 1e9 >= STABLE_S)
            return (double)(stretch - from) / 1e9;
        usleep(10000);
    }
    return -1;
}

/* Sleeps s seconds in the current phase, polling every host's health every 50 ms: *fallback
 * gets true when every host was seen on its fallback at some point. */
static void watch(double s, bool *fallback)
{
    bool seen[NH] = {false};
    uint64_t t = mono_ns();
    while (secs_since(t) < s) {
        for (int h = 0; h < NH; h++)
            seen[h] |= health_of(h).global_fallback;
        usleep(50000);
    }
    if (fallback)
        for (int h = 0; h < NH; h++)
            *fallback = *fallback && seen[h];
}

/* ---- the faults ---------------------------------------------------------------------------- */

struct fault {
    const char *name;
    /* Starts the fault and returns when it has ended (the replica promoted, the server
     * answering again, ...); *fallback_seen is cleared when a host was never seen on its
     * fallback meanwhile. */
    void (*run)(bool *fallback_seen);
    bool data_lost;       /* Redis may lose its data (the allowance gets one burst) */
    bool outage;          /* Redis unreachable: the fallback must be in force */
    double recover_max_s; /* generous: only a hang crosses it */
};

static void fault_stop(bool *fb)
{
    rp_signal(&g_srv, SIGSTOP);
    watch(5.0, fb);
    rp_signal(&g_srv, SIGCONT);
}

static void fault_kill(bool *fb)
{
    rp_kill(&g_srv);
    watch(3.0, fb);
    rp_start(&g_srv); /* same port, empty dataset */
}

/* One command to the private server, on a connection of its own. */
static void srv_cmd(const char *cmd)
{
    struct rl_redis_url u;
    memset(&u, 0, sizeof u);
    u.kind = RL_REDIS_TCP;
    snprintf(u.hosts[0].host, sizeof u.hosts[0].host, "127.0.0.1");
    u.hosts[0].port = g_srv.port;
    u.nhosts = 1;
    struct rl_redis *c = NULL;
    cr_assert_eq(rl__redis_connect(&u, 1000, 1000, &c), 0, "%s", rl_errmsg());
    int rc = rl__redis_cmd(c, NULL, cmd);
    const char *m = rl_errmsg();
    rl__redis_close(c);
    cr_assert_eq(rc, 0, "%s: %d %s", cmd, rc, m);
}

static void fault_pause(bool *fb)
{
    uint64_t t = mono_ns();
    srv_cmd("CLIENT PAUSE 3000 ALL");
    watch(3.0 - secs_since(t), fb);
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

static char g_failover[160]; /* "old -> new" */

static void fault_failover(bool *fb)
{
    struct rl_redis_url u;
    cr_assert_eq(rl__redis_url_parse(getenv("RL_TEST_SENTINEL_URL"), &u), 0);
    struct rl_redis_url su = u;
    su.kind = RL_REDIS_TCP;
    su.nhosts = 1;
    su.master[0] = '\0';
    struct rl_redis *s = NULL;
    cr_assert_eq(rl__redis_connect(&su, 500, 500, &s), 0, "sentinel: %s", rl_errmsg());
    char before[64], now_at[64] = "";
    master_addr(s, u.master, before, sizeof before);
    int rc;
    uint64_t t = mono_ns();
    /* A failover of an earlier test may still be settling: the sentinels refuse until the
     * demoted master is a healthy replica. */
    while ((rc = rl__redis_cmd(s, NULL, "SENTINEL FAILOVER %s", u.master)) != 0 &&
           secs_since(t) < 15)
        usleep(200000);
    if (rc != 0)
        rl__redis_close(s);
    cr_assert_eq(rc, 0, "SENTINEL FAILOVER: %d %s", rc, rl_errmsg());
    t = mono_ns();
    bool seen[NH] = {false};
    while (secs_since(t) < 20) {
        for (int h = 0; h < NH; h++)
            seen[h] |= health_of(h).global_fallback;
        master_addr(s, u.master, now_at, sizeof now_at);
        if (now_at[0] && strcmp(now_at, before) != 0)
            break;
        usleep(20000);
    }
    rl__redis_close(s);
    for (int h = 0; h < NH; h++)
        *fb = *fb && seen[h];
    snprintf(g_failover, sizeof g_failover, "%s -> %s", before, now_at);
    cr_assert(now_at[0] && strcmp(now_at, before) != 0, "no promotion within 20 s (%s)",
              g_failover);
}

/* ---- one run ------------------------------------------------------------------------------- */

static void run_fault(const struct fault *f, const char *url)
{
    open_hosts(url);
    start_load();
    uint64_t base[NH] = {0};
    atomic_store(&g_phase, PH_WARM);
    usleep((useconds_t)(WARM_S * 1e6));
    cr_assert_geq(wait_all_synced(base, 3, 10.0), 0, "the hosts did not sync before the fault");

    atomic_store(&g_phase, PH_BEFORE);
    uint64_t t_before = mono_ns();
    usleep((useconds_t)(BEFORE_S * 1e6));

    atomic_store(&g_phase, PH_DURING);
    uint64_t t_fault = mono_ns();
    double before_s = (double)(t_fault - t_before) / 1e9;
    bool fallback_seen = true;
    f->run(&fallback_seen);

    atomic_store(&g_phase, PH_RECOVERY);
    uint64_t t_end = mono_ns();
    double during_s = (double)(t_end - t_fault) / 1e9;
    double recover_s = wait_recovered(t_end, f->recover_max_s);
    /* From the fault's start to the recovery (the end of the stable stretch, generously). */
    double fallback_s = (double)(mono_ns() - t_fault) / 1e9;
    /* The debt of the outage (at most one burst, B / r = 1 s) is repaid, then the hosts are
     * measured again. */
    usleep(1500000);
    atomic_store(&g_phase, PH_AFTER);
    uint64_t t_after = mono_ns();
    usleep((useconds_t)(AFTER_S * 1e6));
    double after_s = secs_since(t_after);
    rl_health_info hi0 = health_of(0);
    stop_load();

    /* The measures. */
    uint64_t checks[NPH] = {0}, admitted[NPH] = {0}, max_ns[NPH] = {0}, no_decision = 0;
    uint64_t strict_checks = 0, strict_max_ns = 0;
    static uint64_t hist[NPH][NB];
    memset(hist, 0, sizeof hist);
    for (int i = 0; i < g_nw; i++) {
        struct worker *w = &g_w[i];
        no_decision += w->no_decision;
        if (w->no_decision)
            fprintf(stderr, "%s: %s thread: %" PRIu64 " calls without a decision; first %d: %s\n",
                    f->name, w->strict ? "STRICT" : "GLOBAL", w->no_decision, w->first_rc,
                    w->first_msg);
        cr_expect(!w->overflow, "admission record full");
        for (int p = 0; p < NPH; p++) {
            if (w->strict) {
                strict_checks += w->checks[p];
                strict_max_ns = w->max_ns[p] > strict_max_ns ? w->max_ns[p] : strict_max_ns;
                continue;
            }
            checks[p] += w->checks[p];
            admitted[p] += w->admitted[p];
            max_ns[p] = w->max_ns[p] > max_ns[p] ? w->max_ns[p] : max_ns[p];
            for (unsigned b = 0; b < NB; b++)
                hist[p][b] += w->hist[p][b];
        }
    }
    double rate_before = (double)checks[PH_BEFORE] / before_s;
    double rate_during = (double)checks[PH_DURING] / during_s;
    double held = 100.0 * rate_during / rate_before;
    uint64_t p99_before = hist_quantile(hist[PH_BEFORE], 0.99);
    uint64_t p99_during = hist_quantile(hist[PH_DURING], 0.99);
    uint64_t total_admitted;
    uint64_t over = exact_bucket_rejects(&total_admitted);
    double run_s = secs_since(g_t0);
    /* docs/design.md section 10: the cold-start grant (1 % of B + r x 1 s per key, once), the
     * LOCAL fallback (r / N per second per host: r per second cluster-wide) from the fault until
     * the recovery, one burst if Redis lost its data, one unit per concurrent check. */
    double grant = (BURST + RATE) / 100.0;
    double allowance = grant + RATE * fallback_s + (f->data_lost ? BURST : 0) + NH * NGT;
    double after_rate = (double)admitted[PH_AFTER] / after_s;

    fprintf(stderr,
            "%s%s%s: checks/s %.0f before, %.0f during (%.0f s); GLOBAL admitted %" PRIu64
            " in %.1f s (limit allows %.0f), %" PRIu64 " during the fault, %.0f/s after; "
            "over-admission %" PRIu64 " (allowance %.0f); recovery %.2f s; latency p99 %" PRIu64
            " / %" PRIu64 " ns, max %" PRIu64 " / %" PRIu64 " us (before / during); STRICT "
            "%" PRIu64 " checks, slowest %" PRIu64 " ms; no decision %" PRIu64
            "; fallback seen %s (during), %s (after the end); hosts %" PRIu64 "\n",
            f->name, g_failover[0] ? " " : "", g_failover, rate_before, rate_during, during_s,
            total_admitted, run_s, BURST + RATE * run_s, admitted[PH_DURING], after_rate, over,
            allowance, recover_s, p99_before, p99_during, max_ns[PH_BEFORE] / 1000,
            max_ns[PH_DURING] / 1000, strict_checks, strict_max_ns / 1000000, no_decision,
            fallback_seen ? "yes" : "no", g_fallback_after ? "yes" : "no", hi0.cluster_hosts);
    /* The row of docs/reliability.md's fault table. */
    printf("| %s | %.0f %% | %" PRIu64 " | %" PRIu64 " (allowance %.0f) | %.2f s | %.2f / %.2f us "
           "| %" PRIu64 " / %" PRIu64 " us |\n",
           f->name, held, no_decision, over, allowance, recover_s, (double)p99_before / 1000,
           (double)p99_during / 1000, max_ns[PH_BEFORE] / 1000, max_ns[PH_DURING] / 1000);
    fflush(stdout);

    cr_expect_eq(no_decision, 0, "%" PRIu64 " calls got no decision", no_decision);
    cr_expect_gt(checks[PH_DURING], 0, "no check during the fault");
    cr_expect_gt(strict_checks, 0, "no STRICT check answered");
    cr_expect_leq((double)over, allowance,
                  "over-admission %" PRIu64 " beyond the allowance %.0f of design.md section 10",
                  over, allowance);
    cr_expect_geq(recover_s, 0, "no recovery within %.0f s of the fault's end", f->recover_max_s);
    if (f->outage)
        cr_expect(fallback_seen, "a host was never on its fallback during the outage");
    /* A check never waits on Redis: only a hang (seconds) would cross this. */
    cr_expect_lt(max_ns[PH_DURING], 2 * NS_S, "a GLOBAL check took %" PRIu64 " ms",
                 max_ns[PH_DURING] / 1000000);
    cr_expect_gt(held, 25.0, "the load collapsed during the fault (%.0f %%)", held);
    /* Recovered: the hosts admit again at a good part of the rate (denials show the demand is
     * above it). How near the rate depends on scheduling (373/s of 1,000 once in ASan with the
     * machine loaded), so the test asserts only that the sync serves again, far above what the
     * fallback's share alone would give on a stuck sync; utilisation is measured in rl-global. */
    cr_expect_geq(after_rate, 0.2 * RATE, "%.0f admitted/s after the recovery", after_rate);
    cr_expect_gt(checks[PH_AFTER], admitted[PH_AFTER], "no denial after: is the limit exceeded?");
    cr_expect_eq(hi0.cluster_hosts, NH, "Redis knows %" PRIu64 " hosts after the recovery",
                 hi0.cluster_hosts);
}

/* ---- the suite ----------------------------------------------------------------------------- */

static void faults_setup(void)
{
    memset(&g_srv, 0, sizeof g_srv);
    memset(g_hn, 0, sizeof g_hn);
    g_failover[0] = '\0';
    g_fallback_after = false;
    g_nw = 0;
}

static void faults_teardown(void)
{
    if (g_nw && !atomic_load(&g_stop))
        stop_load(); /* an assertion failed mid-run */
    for (int i = 0; i < g_nw; i++)
        free(g_w[i].adm);
    g_nw = 0;
    /* Keys this test left in a shared server (the sentinel set): gone with their state. */
    if (!g_srv.pid && g_h[0]) {
        rl_reset(g_h[0], g_gkey, strlen(g_gkey), &g_glim);
        rl_reset(g_h[0], g_skey, strlen(g_skey), &g_slim);
    }
    for (int i = 0; i < NH; i++) {
        rl_close(&g_h[i]);
        if (g_hn[i][0])
            rl_unlink(g_hn[i]);
    }
    rp_cleanup(&g_srv);
}

TestSuite(faults, .init = faults_setup, .fini = faults_teardown, .timeout = 120);

static void private_run(const struct fault *f)
{
    rp_start(&g_srv);
    char url[64];
    run_fault(f, rp_url(&g_srv, url, sizeof url));
}

Test(faults, redis_stopped_5s)
{
    static const struct fault f = {"redis SIGSTOP 5 s, then SIGCONT", fault_stop, false, true,
                                   15.0};
    private_run(&f);
}

Test(faults, redis_killed_restarted_empty)
{
    static const struct fault f = {"redis SIGKILL, restarted empty after 3 s", fault_kill, true,
                                   true, 15.0};
    private_run(&f);
}

Test(faults, redis_client_pause_3s)
{
    static const struct fault f = {"CLIENT PAUSE 3000 ALL", fault_pause, false, true, 15.0};
    private_run(&f);
}

Test(faults, sentinel_failover)
{
    const char *surl = getenv("RL_TEST_SENTINEL_URL");
    cr_assert(surl && *surl, "RL_TEST_SENTINEL_URL unset: run through scripts/test");
    static const struct fault f = {"Sentinel failover (SENTINEL FAILOVER)", fault_failover, true,
                                   false, 25.0};
    run_fault(&f, surl);
}
