/*
 * STRICT mode: every check of a STRICT limit is one atomic Lua script in Redis (sync/scripts.h),
 * exact cluster-wide. Used for low-rate limits that must be exact, such as logins; it is also
 * the "pure Redis" limiter the benchmarks compare against.
 *
 * A STRICT check waits on Redis, within the command timeout (rl_options), through a pool of
 * REDIS_POOL_SIZE connections with a circuit breaker (sync/conn.c). When Redis cannot answer
 * (down, timing out, breaker open) the limit follows rl_options.fallback: LOCAL decides on this
 * host's segment alone (the default), OPEN allows, CLOSED denies; each such answer is counted.
 *
 * Redis keys: "rl:{H}" (plus ":N" for fixed windows and ":log"/":seq" for the sliding log),
 * H = 16 hex digits of XXH3 of the key and the limit: a key under another limit is another
 * counter (as in shared memory), the braces are a Redis Cluster hash tag so one script's keys
 * share a slot, and nothing a client sends reaches Redis verbatim.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "sync/keys.h"
#include "sync/remote.h"
#include "sync/scripts.h"

struct rl_strict {
    int fallback;
    _Atomic uint64_t fallbacks; /* answers given by the fallback */
    _Atomic uint64_t checks;    /* answers given by Redis */
};

int rl__strict_open(struct rl_remote *rm, const rl_options *o)
{
    /* o->fallback is resolved (rl_open: LOCAL, OPEN or CLOSED). */
    struct rl_strict *s = calloc(1, sizeof *s);
    if (!s)
        return rl__err(-ENOMEM, "out of memory");
    s->fallback = o->fallback;
    rm->strict = s;
    return 0;
}

void rl__strict_close(struct rl_remote *rm)
{
    free(rm->strict);
    rm->strict = NULL;
}

/* The Redis key prefix of (key, limit). */
static void redis_key(const void *key, size_t keylen, const rl_limit *lim, char out[40])
{
    /* f[5]: the state's format. The buckets' became "zi:r" (exact rates, issue 14): an older
     * library reading it would see a full bucket, so the two formats live under other keys and
     * during a rolling upgrade each generation counts on its own (as design.md "Upgrades"). */
    uint64_t f[6] = {lim->requests,        lim->window_ms,
                     lim->burst,           (uint64_t)lim->algorithm,
                     (uint64_t)lim->scope, 0};
    size_t nf = 5;
    if (lim->algorithm == RL_TOKEN_BUCKET || lim->algorithm == RL_GCRA)
        f[nf++] = 2;
    uint64_t h = XXH3_64bits_withSeed(key, keylen, XXH3_64bits(f, nf * sizeof f[0]));
    snprintf(out, 40, RL_KEY_STRICT_FMT, h);
}

static uint64_t ttl_ms(const rl_limit *lim)
{
    return lim->redis_ttl_ms ? lim->redis_ttl_ms : 2 * lim->window_ms + 1000;
}

/* Runs the script of lim's algorithm for (key, cost): 0 with *out, or a negative code. */
static int run_script(struct rl_redis *c, const char *rkey, const rl_limit *lim,
                      const struct rl_params *p, uint64_t cost, bool refund, rl_result *out)
{
    char k1[48], k2[48], a[5][24];
    const char *argv[7];
    const char *src;
    int nkeys = 1, nargs = 4;
    uint64_t window_us = lim->window_ms * 1000u;
    snprintf(k1, sizeof k1, "%s", rkey);
    argv[0] = k1;
    switch (lim->algorithm) {
    case RL_TOKEN_BUCKET:
    case RL_GCRA:
        /* Exact: W, L and the capacity C; the script keeps Z times L in integers below 2^53
         * (C * W_us <= 2^52, checked when the limit was made: algo.c). */
        src = refund ? rl__lua_bucket_refund : rl__lua_bucket;
        snprintf(a[0], sizeof a[0], "%" PRIu64, window_us);
        snprintf(a[1], sizeof a[1], "%" PRIu64, lim->requests);
        snprintf(a[2], sizeof a[2], "%" PRIu64, p->limit);
        nargs = 5;
        break;
    case RL_FIXED_WINDOW:
        src = refund ? rl__lua_fixed_refund : rl__lua_fixed;
        snprintf(a[0], sizeof a[0], "%" PRIu64, lim->window_ms);
        snprintf(a[1], sizeof a[1], "%" PRIu64, lim->requests);
        break;
    case RL_SLIDING_WINDOW:
    default:
        src = refund ? rl__lua_sliding_log_refund : rl__lua_sliding_log;
        snprintf(k2, sizeof k2, "%s:seq", rkey);
        snprintf(k1, sizeof k1, "%s:log", rkey);
        argv[1] = k2;
        nkeys = 2;
        snprintf(a[0], sizeof a[0], "%" PRIu64, window_us);
        snprintf(a[1], sizeof a[1], "%" PRIu64, lim->requests);
        break;
    }
    if (refund && cost > p->limit &&
        (lim->algorithm == RL_TOKEN_BUCKET || lim->algorithm == RL_GCRA))
        cost = p->limit; /* a draw never exceeds the capacity */
    snprintf(a[nargs - 2], sizeof a[0], "%" PRIu64, cost);
    snprintf(a[nargs - 1], sizeof a[0], "%" PRIu64, ttl_ms(lim));
    for (int i = 0; i < nargs; i++)
        argv[nkeys + i] = a[i];
    redisReply *rep = NULL;
    int r = rl__redis_evalsha(c, src, NULL, nkeys, nkeys + nargs, argv, NULL, &rep);
    if (r < 0)
        return r;
    if (refund) {
        freeReplyObject(rep);
        return 0;
    }
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
        freeReplyObject(rep);
        return rl__err(-EIO, "redis: the STRICT script answered something unexpected");
    }
    long long v[4];
    for (int i = 0; i < 4; i++) {
        if (rep->element[i]->type != REDIS_REPLY_INTEGER) {
            freeReplyObject(rep);
            return rl__err(-EIO, "redis: the STRICT script answered a non-integer");
        }
        v[i] = rep->element[i]->integer;
    }
    freeReplyObject(rep);
    out->allowed = v[0] == 1;
    out->limit = p->limit;
    out->remaining = v[1] < 0 ? 0 : (uint64_t)v[1];
    out->retry_after_ms = v[2] < 0 ? RL_RETRY_NEVER : (uint64_t)v[2];
    out->reset_after_ms = v[3] < 0 ? 0 : (uint64_t)v[3];
    return 0;
}

/* One script call through the pool: the check, or (refund) its undo. */
static int pooled_script(struct rl_remote *rm, const void *key, size_t keylen, const rl_limit *lim,
                         const struct rl_params *p, uint64_t cost, bool refund, rl_result *out)
{
    char rkey[40];
    redis_key(key, keylen, lim, rkey);
    struct rl_redis *c = NULL;
    int r = rl__pool_get(rm->pool, &c);
    if (r == 0) {
        r = run_script(c, rkey, lim, p, cost, refund, out);
        rl__pool_put(rm->pool, c);
    }
    return r;
}

int rl__strict_acquire(struct rl_remote *rm, const void *key, size_t keylen, const rl_limit *lim,
                       const struct rl_params *p, uint64_t cost, rl_result *out)
{
    struct rl_strict *s = rm->strict;
    int r = pooled_script(rm, key, keylen, lim, p, cost, false, out);
    if (r == 0) {
        atomic_fetch_add_explicit(&s->checks, 1, memory_order_relaxed);
        return 0;
    }
    /* Redis did not answer: the fallback decides (counted). */
    atomic_fetch_add_explicit(&s->fallbacks, 1, memory_order_relaxed);
    rl__log(RL_LOG_DEBUG, "STRICT check fell back (%s)", rl_errmsg());
    switch (s->fallback) {
    case RL_FALLBACK_OPEN:
        memset(out, 0, sizeof *out);
        out->allowed = true;
        out->limit = p->limit;
        out->remaining = p->limit;
        return 0;
    case RL_FALLBACK_CLOSED:
        memset(out, 0, sizeof *out);
        out->allowed = false;
        out->limit = p->limit;
        out->retry_after_ms = RL_POOL_BREAKER_OPEN_MS;
        return 0;
    default:
        return RL_REMOTE_DECIDE_LOCALLY; /* the core decides on the segment (lib/table.c) */
    }
}

/* From INFO memory: a memory limit with an evicting policy can drop live limiter keys (they all
 * have TTLs, so volatile-* policies pick them too), which silently resets limits. */
static void check_eviction(const char *info, rl_health_info *out)
{
    static const char kmax[] = "\nmaxmemory:", kpol[] = "\nmaxmemory_policy:";
    const char *m = strstr(info, kmax);
    const char *p = strstr(info, kpol);
    if (!m || !p)
        return;
    unsigned long long max = strtoull(m + sizeof kmax - 1, NULL, 10);
    char policy[32] = "";
    sscanf(p + sizeof kpol - 1, "%31[a-z-]", policy);
    if (max > 0 && strcmp(policy, "noeviction") != 0) {
        out->redis_may_evict = true;
        snprintf(out->warning, sizeof out->warning,
                 "Redis may evict rl's keys (maxmemory %llu, maxmemory-policy %s): use "
                 "noeviction (docs/operations.md)",
                 max, policy);
    }
}

void rl__strict_health(struct rl_remote *rm, rl_health_info *out)
{
    struct rl_strict *s = rm->strict;
    char whole[512];
    snprintf(whole, sizeof whole, "%s", rl_errmsg());
    out->redis_configured = true;
    /* relaxed: statistics. */
    out->strict_checks = atomic_load_explicit(&s->checks, memory_order_relaxed);
    out->strict_fallbacks = atomic_load_explicit(&s->fallbacks, memory_order_relaxed);
    struct rl_redis *c = NULL;
    redisReply *info = NULL;
    int r = rl__pool_get(rm->pool, &c);
    if (r == 0) {
        r = rl__redis_cmd(c, &info, "INFO memory");
        rl__pool_put(rm->pool, c);
    }
    out->connected = r == 0;
    if (r == 0 && info && info->type == REDIS_REPLY_STRING)
        check_eviction(info->str, out);
    freeReplyObject(info);
    if (r < 0)
        snprintf(whole, sizeof whole, "%s", rl_errmsg());
    rl__strcut(out->error, sizeof out->error, whole);
    rl__err(0, "%s", whole);
    struct rl_pool_stats ps;
    rl__pool_stats(rm->pool, &ps);
    out->breaker_open = ps.breaker_open;
    out->breaker_trips = ps.breaker_trips;
}

/* DEL of up to 6 keys through the pool. */
static int pooled_del(struct rl_remote *rm, int n, const char **keys)
{
    const char *argv[7] = {"DEL"};
    for (int i = 0; i < n && i < 6; i++)
        argv[i + 1] = keys[i];
    struct rl_redis *c = NULL;
    int r = rl__pool_get(rm->pool, &c);
    if (r == 0) {
        r = rl__redis_cmd_argv(c, NULL, n + 1, argv, NULL);
        rl__pool_put(rm->pool, c);
    }
    return r;
}

int rl__strict_reset(struct rl_remote *rm, const void *key, size_t keylen, const rl_limit *lim)
{
    char rkey[40], k[6][56];
    const char *keys[6];
    redis_key(key, keylen, lim, rkey);
    snprintf(k[0], sizeof k[0], "%s", rkey);
    snprintf(k[1], sizeof k[1], "%s:log", rkey);
    snprintf(k[2], sizeof k[2], "%s:seq", rkey);
    /* Fixed windows: the counters of the windows around now (Redis' clock may differ a little
     * from ours; older windows have expired or will). */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t idx = now_ms / (lim->window_ms ? lim->window_ms : 1);
    for (int i = 0; i < 3; i++)
        snprintf(k[3 + i], sizeof k[3 + i], "%s:%" PRIu64, rkey, idx - 1 + (uint64_t)i);
    for (int i = 0; i < 6; i++)
        keys[i] = k[i];
    int r = pooled_del(rm, 6, keys);
    if (r < 0)
        return rl__err(r,
                       "rl_reset: the key was reset here, but its Redis state was not "
                       "deleted: %s",
                       rl_errmsg());
    return 0;
}

int rl__global_reset(struct rl_remote *rm, uint64_t cid_lo, uint64_t cid_hi)
{
    char k[48];
    const char *keys[1] = {k};
    rl__key_global(k, sizeof k, cid_lo, cid_hi);
    int r = pooled_del(rm, 1, keys);
    if (r < 0)
        return rl__err(r,
                       "rl_reset: the key was reset here, but its cluster-wide state in "
                       "Redis was not deleted: %s",
                       rl_errmsg());
    return 0;
}

int rl__strict_refund(struct rl_remote *rm, const void *key, size_t keylen, const rl_limit *lim,
                      const struct rl_params *p, uint64_t cost)
{
    rl_result unused;
    return pooled_script(rm, key, keylen, lim, p, cost, true, &unused);
}
