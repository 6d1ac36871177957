/*
 * Monitoring rollups: the per-endpoint decision counts of every host, summed per minute in
 * Redis, so that `rlctl stats --cluster --since 1h` (rl_stats_cluster) sees the whole cluster.
 *
 * Push (the sync leader, every RL_MONITOR_PUSH_NS, with ENABLE_RATE_LIMIT_MONITORING): for each
 * endpoint of the segment's directory, the totals over the stripes minus what was pushed
 * before (the directory record's pushed_allowed/pushed_denied, written only by the leader after
 * Redis acknowledged) go to this host's hash of the current unix minute M, rl:m:{M}:<host id>
 * (fields "a:<endpoint>", "d:<endpoint>"), and the host to the minute's index rl:m:{M} (field
 * "h:<host id>"), by one EVALSHA of sync/monitor.lua (the hash tag {M} keeps both in one slot);
 * both expire after METRICS_RETENTION_DAYS. A push reads and writes its own host's hash only,
 * so its cost does not grow with the number of hosts. A count lands in the minute of the push
 * that carried it (at most 10 s late).
 *
 * Accuracy: these are statistics, delivered at least once. A push whose answer is lost (a
 * timeout after Redis ran it) is sent again with the next one, and a deposed leader's push in
 * flight may add the same counts as its successor's: either counts up to 10 s of one host's
 * decisions twice. Counts made after the last push of a host whose processes all exit are not
 * pushed until a process attaches the segment again with monitoring on.
 *
 * Read (rl_stats_cluster, any process with a redis_url): HGETALL of each minute's index, then
 * of the hosts' hashes it names, pipelined on a single server, one at a time on a Redis
 * Cluster (the minutes' hash tags spread them over the slots), summed by endpoint; hosts are
 * counted once each.
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

#include "lib/internal.h" /* rl__ep_name, rl__ep_totals (rules.c) */
#include "sync/keys.h"
#include "sync/monitor.h"
#include "sync/remote.h"
#include "sync/scripts.h"

#define FIELD_MAX (2 + RL_EP_NAME)
#define PIPELINE  256u  /* HGETALLs in flight on a single server */
#define AGG_SLOTS 4096u /* distinct endpoints (and hosts) one read can sum */

int rl__monitor_push(struct rl *rl, struct rl_redis *c, const char *host, uint64_t ttl_ms)
{
    enum { HEAD = 4, MAXARGS = HEAD + 4 * RL_EP_MAX };
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
        char key[40], hkey[64], ttl[24], hf[24];
        long long minute = (long long)(time(NULL) / 60);
        snprintf(key, sizeof key, RL_KEY_MINUTE_FMT, minute);
        snprintf(hkey, sizeof hkey, RL_KEY_MIN_HOST_FMT, minute, (int)strlen(host), host);
        snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms);
        snprintf(hf, sizeof hf, "h:%s", host);
        p->argv[0] = key;
        p->argv[1] = hkey;
        p->argv[2] = ttl;
        p->argv[3] = hf;
        r = rl__redis_evalsha(c, rl__embed_monitor, NULL, 2, argc, p->argv, NULL, NULL);
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
    /* read_minutes: the hosts' hashes of the batch being read */
    char (*hk)[64];
    size_t nhk, hk_cap;
    long long minute0;
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

#define KEY_MAX 64

/* HGETALL of keys[0..n), pipelined (while *pipeline: a Redis Cluster refuses pipelines, then
 * *pipeline turns false and they go one at a time); each reply goes to fn(g, reply, i). */
static int hgetall_all(struct rl_redis *c, char (*keys)[KEY_MAX], size_t n, bool *pipeline,
                       struct agg *g, void (*fn)(struct agg *, const redisReply *, size_t))
{
    if (*pipeline && n) {
        size_t sent = 0;
        int r = 0;
        for (; sent < n && r == 0; sent++)
            r = rl__redis_append(c, "HGETALL %s", keys[sent]);
        if (r == -ENOTSUP && sent == 1) {
            *pipeline = false; /* nothing was sent */
        } else {
            if (r < 0)
                sent--;
            for (size_t k = 0; k < sent; k++) {
                redisReply *rep = NULL;
                int e = rl__redis_get_reply(c, &rep);
                if (e == 0)
                    fn(g, rep, k);
                if (rep)
                    freeReplyObject(rep);
                if (e < 0 && r == 0)
                    r = e;
            }
            return r;
        }
    }
    for (size_t k = 0; k < n; k++) {
        redisReply *rep = NULL;
        int r = rl__redis_cmd(c, &rep, "HGETALL %s", keys[k]);
        if (r < 0)
            return r;
        fn(g, rep, k);
        freeReplyObject(rep);
    }
    return 0;
}

/* Phase 1 of a batch: a minute's index lists its hosts; their hashes are fetched next. */
static void on_index(struct agg *g, const redisReply *rep, size_t i)
{
    agg_reply(g, rep); /* counts the hosts */
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t k = 0; k + 1 < rep->elements; k += 2) {
        const redisReply *f = rep->element[k];
        if (f->type != REDIS_REPLY_STRING || f->len < 3 || f->len > 40 || f->str[0] != 'h' ||
            f->str[1] != ':' || g->nhk >= g->hk_cap)
            continue;
        snprintf(g->hk[g->nhk++], KEY_MAX, RL_KEY_MIN_HOST_FMT, g->minute0 + (long long)i,
                 (int)f->len - 2, f->str + 2);
    }
}

static void on_host(struct agg *g, const redisReply *rep, size_t i)
{
    (void)i;
    agg_reply(g, rep);
}

static int read_minutes(struct rl_redis *c, long long first, unsigned minutes, struct agg *g)
{
    char(*idx)[KEY_MAX] = calloc(PIPELINE, KEY_MAX);
    g->hk_cap = PIPELINE * 64u; /* hosts per batch of minutes read at once */
    g->hk = calloc(g->hk_cap, KEY_MAX);
    int r = idx && g->hk ? 0 : -ENOMEM;
    bool pipeline = true;
    for (unsigned done = 0; done < minutes && r == 0;) {
        unsigned batch = minutes - done < PIPELINE ? minutes - done : PIPELINE;
        for (unsigned k = 0; k < batch; k++)
            snprintf(idx[k], KEY_MAX, RL_KEY_MINUTE_FMT, first + done + k);
        g->minute0 = first + done;
        g->nhk = 0;
        r = hgetall_all(c, idx, batch, &pipeline, g, on_index);
        if (r == 0)
            r = hgetall_all(c, g->hk, g->nhk, &pipeline, g, on_host);
        done += batch;
    }
    free(idx);
    free(g->hk);
    g->hk = NULL;
    return r;
}

int rl__monitor_stats_cluster(struct rl_remote *rm, unsigned minutes, rl_endpoint_stats *out,
                              size_t n, unsigned *hosts)
{
    /* Arguments checked by rl_stats_cluster (lib/api.c). */
    struct agg *g = calloc(1, sizeof *g);
    if (!g)
        return rl__err(-ENOMEM, "rl_stats_cluster: out of memory");
    struct rl_redis *c = NULL;
    int r = rl__pool_get(rm->pool, &c);
    if (r == 0) {
        /* A read of many minutes is many round trips: each gets its own bound (sync/conn.h,
         * "Time bounds") instead of one for the whole read. */
        rl__redis_set_deadline(c, 0);
        long long now_min = (long long)(time(NULL) / 60);
        r = read_minutes(c, now_min - minutes + 1, minutes, g);
        rl__pool_put(rm->pool, c);
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
