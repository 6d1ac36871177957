/*
 * Monitoring rollups: the per-endpoint decision counts of every host, summed per minute in
 * Redis, so that `rlctl stats --cluster --since 1h` (rl_stats_cluster) sees the whole cluster.
 *
 * Push (the sync leader, every RL_MONITOR_PUSH_NS, with ENABLE_RATE_LIMIT_MONITORING): for each
 * endpoint of the segment's directory, the totals over the stripes minus what was pushed
 * before (the directory record's pushed_allowed/pushed_denied, written only by the leader after
 * Redis acknowledged) go to the hash rl:m:{M} of the current unix minute M, fields
 * "a:<endpoint>" and "d:<endpoint>", plus "h:<host id>" = 1, by one EVALSHA of
 * sync/monitor.lua; the hash expires after METRICS_RETENTION_DAYS. A count therefore lands in
 * the minute of the push that carried it (at most 10 s late).
 *
 * Accuracy: these are statistics, delivered at least once. A push whose answer is lost (a
 * timeout after Redis ran it) is sent again with the next one, and a deposed leader's push in
 * flight may add the same counts as its successor's: either counts up to 10 s of one host's
 * decisions twice. Counts made after the last push of a host whose processes all exit are not
 * pushed until a process attaches the segment again with monitoring on.
 *
 * Read (rl_stats_cluster, any process with a redis_url): HGETALL of each minute's hash,
 * pipelined on a single server, one at a time on a Redis Cluster (the minutes' hash tags
 * spread them over the slots), summed by endpoint; hosts are counted once each.
 *
 * Shared memory written here: the directory records' pushed_* words (relaxed; only the leader
 * writes them, and a new leader reads them after taking the lease, whose acquire CAS pairs with
 * the old leader's release of the lease).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "conn.h"
#include "internal.h"
#include "monitor.h"
#include "strict.h"

extern const char rl__embed_monitor[]; /* sync/monitor.lua, embedded at build time */

#define FIELD_MAX   (2 + RL_EP_NAME)
#define MAX_MINUTES 527040u /* 366 days */
#define PIPELINE    256u    /* HGETALLs in flight on a single server */
#define AGG_SLOTS   4096u   /* distinct endpoints (and hosts) one read can sum */

int rl__monitor_push(struct rl *rl, struct rl_redis *c, const char *host, uint64_t ttl_ms)
{
    enum { HEAD = 3, MAXARGS = HEAD + 4 * RL_EP_MAX };
    struct push {
        const char *argv[MAXARGS];
        char field[2 * RL_EP_MAX][FIELD_MAX];
        char num[2 * RL_EP_MAX][24];
        uint64_t a[RL_EP_MAX], d[RL_EP_MAX];
        bool used[RL_EP_MAX];
    } *p = calloc(1, sizeof *p);
    if (!p)
        return rl__err(-ENOMEM, "monitoring: out of memory");
    int argc = HEAD;
    unsigned nf = 0;
    for (unsigned i = 0; i < RL_EP_MAX; i++) {
        char name[RL_EP_NAME];
        if (!rl__ep_name(rl, i, name))
            continue;
        rl__ep_totals(rl, i, &p->a[i], &p->d[i]);
        /* relaxed: only the leader writes these (see the header comment). */
        uint64_t pa = atomic_load_explicit(&rl->ep_dir[i].pushed_allowed, memory_order_relaxed);
        uint64_t pd = atomic_load_explicit(&rl->ep_dir[i].pushed_denied, memory_order_relaxed);
        uint64_t da = p->a[i] > pa ? p->a[i] - pa : 0, dd = p->d[i] > pd ? p->d[i] - pd : 0;
        if (!da && !dd)
            continue;
        p->used[i] = true;
        const uint64_t delta[2] = {da, dd};
        for (int k = 0; k < 2; k++) {
            if (!delta[k])
                continue;
            snprintf(p->field[nf], FIELD_MAX, "%c:%s", k ? 'd' : 'a', name);
            snprintf(p->num[nf], sizeof p->num[nf], "%" PRIu64, delta[k]);
            p->argv[argc++] = p->field[nf];
            p->argv[argc++] = p->num[nf];
            nf++;
        }
    }
    int r = 0;
    if (nf) {
        char key[40], ttl[24], hf[24];
        snprintf(key, sizeof key, "rl:m:{%lld}", (long long)(time(NULL) / 60));
        snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms);
        snprintf(hf, sizeof hf, "h:%s", host);
        p->argv[0] = key;
        p->argv[1] = ttl;
        p->argv[2] = hf;
        r = rl__redis_evalsha(c, rl__embed_monitor, NULL, 1, argc, p->argv, NULL, NULL);
        if (r == 0)
            for (unsigned i = 0; i < RL_EP_MAX; i++)
                if (p->used[i]) {
                    atomic_store_explicit(&rl->ep_dir[i].pushed_allowed, p->a[i],
                                          memory_order_relaxed);
                    atomic_store_explicit(&rl->ep_dir[i].pushed_denied, p->d[i],
                                          memory_order_relaxed);
                }
    }
    free(p);
    return r;
}

/* ---- reading ------------------------------------------------------------------------------- */

struct agg {
    struct agg_ent {
        bool used;
        char name[RL_EP_NAME];
        uint64_t a, d;
    } ep[AGG_SLOTS];
    uint64_t host[AGG_SLOTS]; /* hashes of host ids (0: empty) */
    unsigned nep, nhost;
};

static struct agg_ent *agg_ep(struct agg *g, const char *name, size_t len)
{
    if (len >= RL_EP_NAME)
        len = RL_EP_NAME - 1;
    uint64_t h = XXH3_64bits(name, len);
    for (unsigned k = 0; k < AGG_SLOTS; k++) {
        struct agg_ent *e = &g->ep[(h + k) & (AGG_SLOTS - 1)];
        if (!e->used) {
            if (g->nep >= AGG_SLOTS / 2)
                break; /* keep probing short: the rest goes to (other) */
            e->used = true;
            memcpy(e->name, name, len);
            e->name[len] = '\0';
            g->nep++;
            return e;
        }
        if (strncmp(e->name, name, len) == 0 && e->name[len] == '\0')
            return e;
    }
    return strcmp(name, "(other)") == 0 ? NULL : agg_ep(g, "(other)", 7);
}

static void agg_host(struct agg *g, const char *id, size_t len)
{
    uint64_t h = XXH3_64bits(id, len) | 1;
    for (unsigned k = 0; k < AGG_SLOTS / 2; k++) {
        uint64_t *s = &g->host[(h + k) & (AGG_SLOTS - 1)];
        if (*s == h)
            return;
        if (!*s) {
            *s = h;
            g->nhost++;
            return;
        }
    }
}

/* Adds one HGETALL reply. */
static void agg_reply(struct agg *g, const redisReply *rep)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *f = rep->element[i], *v = rep->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || f->len < 2 ||
            f->str[1] != ':')
            continue;
        if (f->str[0] == 'h') {
            agg_host(g, f->str + 2, f->len - 2);
            continue;
        }
        if (f->str[0] != 'a' && f->str[0] != 'd')
            continue;
        char *end;
        unsigned long long n = strtoull(v->str, &end, 10);
        if (*end)
            continue;
        struct agg_ent *e = agg_ep(g, f->str + 2, f->len - 2);
        if (e)
            *(f->str[0] == 'a' ? &e->a : &e->d) += n;
    }
}

static int read_minutes(struct rl_redis *c, long long first, unsigned minutes, struct agg *g)
{
    char key[40];
    bool pipeline = true;
    for (unsigned done = 0; done < minutes;) {
        unsigned batch = minutes - done < PIPELINE ? minutes - done : PIPELINE;
        if (pipeline) {
            unsigned sent = 0;
            int r = 0;
            for (; sent < batch && r == 0; sent++) {
                snprintf(key, sizeof key, "rl:m:{%lld}", first + done + sent);
                r = rl__redis_append(c, "HGETALL %s", key);
            }
            if (r == -ENOTSUP && sent == 1) { /* a Redis Cluster: one at a time */
                pipeline = false;
                continue;
            }
            if (r < 0)
                sent--;
            for (unsigned k = 0; k < sent; k++) {
                redisReply *rep = NULL;
                int e = rl__redis_get_reply(c, &rep);
                if (e == 0)
                    agg_reply(g, rep);
                if (rep)
                    freeReplyObject(rep);
                if (e < 0 && r == 0)
                    r = e;
            }
            if (r < 0)
                return r;
        } else {
            for (unsigned k = 0; k < batch; k++) {
                redisReply *rep = NULL;
                snprintf(key, sizeof key, "rl:m:{%lld}", first + done + k);
                int r = rl__redis_cmd(c, &rep, "HGETALL %s", key);
                if (r < 0)
                    return r;
                agg_reply(g, rep);
                freeReplyObject(rep);
            }
        }
        done += batch;
    }
    return 0;
}

RL_API int rl_stats_cluster(rl_t *rl, unsigned minutes, rl_endpoint_stats *out, size_t n,
                            unsigned *hosts)
{
    if (!rl || (!out && n))
        return rl__err(-EINVAL, "rl_stats_cluster: rl and out must not be NULL");
    if (minutes < 1 || minutes > MAX_MINUTES)
        return rl__err(-EINVAL, "rl_stats_cluster: minutes %u is outside 1..%u", minutes,
                       MAX_MINUTES);
    struct agg *g = calloc(1, sizeof *g);
    if (!g)
        return rl__err(-ENOMEM, "rl_stats_cluster: out of memory");
    struct rl_redis *c = NULL;
    int r = rl__strict_get(rl, &c);
    if (r == 0) {
        long long now_min = (long long)(time(NULL) / 60);
        r = read_minutes(c, now_min - minutes + 1, minutes, g);
        rl__strict_put(rl, c);
        if (r < 0)
            r = rl__err(r, "rl_stats_cluster: reading the rollups from Redis failed: %s",
                        rl_errmsg());
    }
    if (r == 0) {
        size_t got = 0;
        for (unsigned i = 0; i < AGG_SLOTS; i++) {
            const struct agg_ent *e = &g->ep[i];
            if (!e->used)
                continue;
            if (got < n) {
                memset(&out[got], 0, sizeof out[got]);
                snprintf(out[got].endpoint, sizeof out[got].endpoint, "%s", e->name);
                out[got].allowed = e->a;
                out[got].denied = e->d;
            }
            got++;
        }
        if (hosts)
            *hosts = g->nhost;
        r = (int)got;
    }
    free(g);
    return r;
}
