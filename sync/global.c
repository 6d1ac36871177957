/*
 * GLOBAL mode: the sync thread. Checks of a GLOBAL limit stay in shared memory (lib/table.c,
 * "GLOBAL keys"); this thread keeps each slot's ceiling — this host's lease — in step with a
 * cluster-wide token bucket in Redis.
 *
 * Theory of operation (docs/design.md section 10 has the protocol and the proofs):
 *
 *  Leader election. Every process that opens a segment with a Redis URL runs one sync thread per
 *  handle; one of them per segment is the leader. The header's lease word is
 *  epoch << 32 | token (token: random per handle, never 0). A thread becomes leader by CAS of
 *  the lease word to (epoch + 1, its token) when the lease is free or the leader's heartbeat is
 *  older than the lease period; it stays leader while the lease word holds its (epoch, token)
 *  and stamps the heartbeat every round. A paused leader that wakes after losing the lease sees
 *  another word and steps down; batches it had in flight carry its old epoch, which Redis
 *  refuses per key (fencing). rl_close() of a leader frees the lease for an immediate takeover.
 *
 *  Rounds. Every interval T, early when a check was denied for want of lease (the futex
 *  word in the header; at most once per 10 ms), and, when T > 100 ms, a demand round every
 *  F = min(T, 100 ms) that reports only the slots with demand (so a key with demand is served
 *  within F whatever T; the checks never wake the leader on an allow: it polls instead, and a
 *  round with nothing to report sends nothing), the leader scans the slots, picks the GLOBAL
 *  slots Redis must hear of (new, denied, released, half of their lease used, or asked to report
 *  every round; and every R/3 any slot holding a lease, so that Redis does not reclaim it as a
 *  dead host's; docs/design.md section 10 has the rule and why), and sends them in batches
 *  of BATCH keys, one EVALSHA of sync/global.lua per batch (one round trip per batch). Each
 *  batch carries (host id, epoch, sequence): a batch retried after a timeout gets the answer of
 *  its first run. The answer per key is a lease L (ceiling += L) or a release rel (ceiling is
 *  lowered, never below the count), and the leader records the consumption Redis acknowledged
 *  in `synced`.
 *
 *  Shared words written here: a slot's ceiling (only the leader writes it after the slot is
 *  made; release stores pair with the checks' acquire loads), its synced word, the KNOWN bit of
 *  meta (fetch_or; checks add to the denied counter in the same word with fetch_add), and the
 *  header's sync_* fields. The leader reads a slot's count with acquire (pairs with the checks'
 *  release CAS).
 *
 *  Redis unreachable. A failed round sets the header's sync_failing flag: OPEN checks admit,
 *  and the LOCAL fallback starts (the leader raises each ceiling by this host's share of the
 *  rate, rate / N with N the hosts Redis last reported or RL_CLUSTER_HOSTS, capped at a share of
 *  the burst above the count). CLOSED checks use the leases they hold until the valid-until time
 *  (the last full round's start + R/2: Redis reclaims a silent host's leases only after R), then
 *  deny. When Redis
 *  answers again the ceilings raised locally and any consumption beyond them are charged to the
 *  cluster bucket (as a debt of at most one burst).
 *
 *  Fork. The child has no sync thread and must not believe it holds its parent's lease: the
 *  atfork handler gives every handle a new token and flags the process; the first GLOBAL check
 *  in the child starts the threads again (rl__global_after_fork).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "lib/table.h"
#include "lib/thread.h"
#include "sync/keys.h"
#include "sync/monitor.h"
#include "sync/remote.h"
#include "sync/scripts.h"

#define BATCH          128u /* keys per script call */
#define ARGS_PER_KEY   9u
#define ARGS_HEAD      5u
#define LEASE_MIN_NS   300000000ULL   /* a leader's lease: max(3 T, 300 ms) */
#define QUIET_MAX_NS   100000000ULL   /* a fruitless early round mutes kicks this long at most */
#define FAST_NS        100000000ULL   /* demand rounds: at most one per min(T, 100 ms) */
#define RECLAIM_MIN_NS 15000000000ULL /* Redis reclaims a silent host's lease: max(3 T, 15 s) */

static void futex_wait_ns(_Atomic uint32_t *word, uint32_t seen, uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

/* What the leader remembers of a slot between rounds (process-local). */
struct gent {
    uint64_t word;    /* the slot's control word when last seen (its incarnation) */
    uint64_t ka;      /* the ceiling Redis granted as far as we know (G) */
    uint64_t sent_ns; /* when last reported */
    uint32_t den;     /* the denied counter as last reported */
    bool flush;       /* we lowered the ceiling on request: report it next round */
    bool want;        /* Redis sees demand here: report every round (share follows need) */
};

/* A slot to report this round (collected first, so that cluster batches can be grouped). */
struct cand {
    uint64_t idx, word, K, C, ka, cid[2];
    uint32_t den, dden, lid;
};

static unsigned group_of(const struct cand *c)
{
    return (unsigned)(c->cid[1] >> 56); /* the hash tag of rl__key_global() */
}

static int cand_cmp(const void *a, const void *b)
{
    unsigned x = group_of(a), y = group_of(b);
    return x < y ? -1 : x > y;
}

/* One key of a batch being built. */
struct bkey {
    uint64_t idx, word, K, C, ka;
    uint32_t den, dden;
};

struct rl_global {
    struct rl *rl;
    struct rl_redis *conn; /* the sync thread's own connection */
    uint64_t T_ns, R_ns, lease_ns;
    uint64_t F_ns;        /* the demand cadence min(T, FAST_NS): active slots report this often */
    uint64_t hosts_hint;  /* RL_CLUSTER_HOSTS / rl_options.cluster_hosts (0: unknown) */
    char host[17];        /* host id: 16 hex digits, from the segment's secret */
    char hostname[64];    /* gethostname(), for the registry */
    uint32_t token;       /* ours in the lease word */
    uint64_t epoch;       /* != 0 while we lead */
    uint64_t seq;         /* batches sent in this epoch */
    uint64_t fallback_ns; /* last LOCAL-fallback refill (0: not in fallback) */
    uint64_t fallback_start_ns; /* when the LOCAL fallback started (its credit's time base) */
    uint64_t granted;           /* units Redis granted in the current round */
    struct gent *ents;          /* [nslots], allocated when first leading */
    struct cand *cand;          /* [nslots]: this round's reports */
    bool cluster;               /* redis-cluster://: batches hold one hash-tag group each */
    bool monitor;               /* ENABLE_RATE_LIMIT_MONITORING: push rollups (sync/monitor.c) */
    bool monitor_failing;       /* the last push failed (logged once) */
    uint64_t monitor_ttl_ms, monitor_next_ns;
    uint64_t connect_ns, command_ns; /* the Redis budgets (rl_options) */
    bool failing;                    /* the last round failed: the fallback is on */
    int cancel_fd;                   /* eventfd: rl_close() cuts the thread's exchange short */
    pthread_t thread;
    bool running;
    _Atomic bool stop;
    pthread_mutex_t err_lock;
    char err[512]; /* whole: rl_health() leaves it in rl_errmsg() */
    /* batch buffers */
    struct bkey keys[BATCH];
    unsigned nkeys;
    char kbuf[BATCH][48];
    char abuf[BATCH][ARGS_PER_KEY][24];
    char hbuf[ARGS_HEAD + 1][24];
    const char *argv[BATCH * (1 + ARGS_PER_KEY) + ARGS_HEAD + 1];
    /* limit cache for one scan: lid -> (GLOBAL?, params) */
    uint64_t lc_round;
    struct glim {
        uint64_t round;
        bool global;
        rl_limit lim;
        struct rl_params p;
    } * lc;
};

static uint32_t new_token(void)
{
    uint32_t t = 0;
    while (t == 0)
        if (getrandom(&t, sizeof t, 0) != sizeof t)
            t = (uint32_t)rl__mono_ns() ^ (uint32_t)getpid() * 2654435761u;
    return t;
}

static void set_err(struct rl_global *g, const char *msg)
{
    pthread_mutex_lock(&g->err_lock);
    snprintf(g->err, sizeof g->err, "%s", msg);
    pthread_mutex_unlock(&g->err_lock);
}

/* ---- election ---------------------------------------------------------------------------- */

static bool lead(struct rl_global *g, uint64_t now)
{
    struct rl_shm_header *h = g->rl->hdr;
    /* acquire: pairs with the release CAS of the lease by whoever took it (its heartbeat and
     * pid stores come after; a stale heartbeat read only delays a takeover by a round). */
    uint64_t lease = atomic_load_explicit(&h->sync_lease, memory_order_acquire);
    if (g->epoch && lease == (g->epoch << 32 | g->token)) {
        /* relaxed: a liveness stamp; candidates compare it with their own clock reads. */
        atomic_store_explicit(&h->sync_heartbeat_ns, now, memory_order_relaxed);
        return true;
    }
    if (g->epoch) {
        rl__log(RL_LOG_WARN, "segment %s: sync leadership lost (epoch %" PRIu64 " superseded)",
                g->rl->name, g->epoch);
        g->epoch = 0;
    }
    uint64_t hb = atomic_load_explicit(&h->sync_heartbeat_ns, memory_order_relaxed);
    bool free_ = (lease & 0xffffffffu) == 0;
    if (!free_ && now < hb + g->lease_ns)
        return false;
    /* The new epoch: one more than the last, and never below the seconds since 2020, so that a
     * host whose segment was made anew (a reboot) still outranks its old leader in Redis. */
    uint64_t e = (lease >> 32) + 1;
    uint64_t secs = now > RL_TIME_BASE_NS ? (now - RL_TIME_BASE_NS) / 1000000000u : 0;
    if (secs > e && secs < 0xffffffffu)
        e = secs;
    uint64_t mine = e << 32 | g->token;
    /* acq_rel: the release half orders nothing before it that others need; acquire pairs with
     * the previous holder's release. One CAS elects one leader per epoch. */
    if (!atomic_compare_exchange_strong_explicit(&h->sync_lease, &lease, mine, memory_order_acq_rel,
                                                 memory_order_acquire))
        return false;
    atomic_store_explicit(&h->sync_heartbeat_ns, now, memory_order_relaxed);
    atomic_store_explicit(&h->sync_leader_pid, (uint64_t)getpid(), memory_order_relaxed);
    g->epoch = e;
    g->seq = 0;
    if (g->ents) /* what we knew as an earlier leader may be stale: learn again */
        memset(g->ents, 0, g->rl->nslots * sizeof *g->ents);
    rl__log(RL_LOG_INFO, "segment %s: sync leader (pid %d, epoch %" PRIu64 ")", g->rl->name,
            (int)getpid(), e);
    return true;
}

static void resign(struct rl_global *g)
{
    if (!g->epoch)
        return;
    struct rl_shm_header *h = g->rl->hdr;
    uint64_t mine = g->epoch << 32 | g->token;
    /* release: pairs with a candidate's acquire load of the lease. Epoch kept: the next leader
     * takes epoch + 1, so our batches stay refused. */
    atomic_compare_exchange_strong_explicit(&h->sync_lease, &mine, g->epoch << 32,
                                            memory_order_release, memory_order_relaxed);
    g->epoch = 0;
}

/* ---- one round ---------------------------------------------------------------------------- */

static const struct glim *limit_of(struct rl_global *g, uint32_t lid)
{
    if (lid >= g->rl->nlimits)
        return NULL;
    struct glim *l = &g->lc[lid];
    if (l->round != g->lc_round) {
        l->round = g->lc_round;
        l->global = rl__limit_get(g->rl, lid, &l->lim, &l->p) == 0 && l->lim.mode == RL_MODE_GLOBAL;
    }
    return l->global ? l : NULL;
}

/* Applies the answer (L, rel) for one key; false when Redis refused our epoch. */
static bool apply(struct rl_global *g, const struct bkey *b, long long L, long long rel,
                  long long want, uint64_t now)
{
    if (L < 0)
        return false;
    struct rl_slot *s = &g->rl->slots[b->idx];
    struct gent *e = &g->ents[b->idx];
    /* acquire: pairs with the claimant's release publish; a different word is a new key. */
    if (atomic_load_explicit(&s->ctl, memory_order_acquire) != b->word)
        return true; /* reclaimed meanwhile: Redis reclaims that lease after R */
    if (L > 0) {
        /* release: pairs with the checks' acquire load of the ceiling. */
        atomic_fetch_add_explicit(&s->ceiling, (uint64_t)L, memory_order_release);
        g->granted += (uint64_t)L;
    }
    if (rel > 0) {
        /* acquire: pairs with the checks' release CAS (the count we must not go below). */
        uint64_t c = atomic_load_explicit(&s->state, memory_order_acquire) & RL_VAL_MASK;
        uint64_t k = atomic_load_explicit(&s->ceiling, memory_order_relaxed);
        uint64_t nk = k > (uint64_t)rel ? k - (uint64_t)rel : 0;
        if (nk < c)
            nk = c;
        /* release: as the raise. A check that read the old ceiling may still admit: that unit
         * shows as consumption above the ceiling next round and is charged then. */
        if (nk < k && atomic_compare_exchange_strong_explicit(
                          &s->ceiling, &k, nk, memory_order_release, memory_order_relaxed))
            e->flush = true; /* Redis credits the units when it sees the lower ceiling */
    } else {
        e->flush = false;
    }
    /* release: pairs with the relaxed load in slot_fresh() (a hint; the reclaim CAS decides). */
    atomic_store_explicit(&s->synced, b->C, memory_order_release);
    atomic_fetch_or_explicit(&s->meta, RL_META_KNOWN, memory_order_relaxed);
    e->want = want != 0;
    e->ka = b->K + (uint64_t)L;
    e->den = b->den;
    e->sent_ns = now;
    return true;
}

static int send_batch(struct rl_global *g, uint64_t now, uint64_t *hosts)
{
    if (!g->nkeys)
        return 0;
    unsigned n = g->nkeys, a = 0;
    g->seq++;
    for (unsigned i = 0; i < n; i++)
        g->argv[a++] = g->kbuf[i];
    snprintf(g->hbuf[0], sizeof g->hbuf[0], "%s", g->host);
    snprintf(g->hbuf[1], sizeof g->hbuf[1], "%" PRIu64, g->epoch);
    snprintf(g->hbuf[2], sizeof g->hbuf[2], "%" PRIu64, g->seq);
    /* The script's T is the host's reaction time: the demand cadence F (active slots are
     * reported at least that often), which is T itself up to 100 ms. */
    snprintf(g->hbuf[3], sizeof g->hbuf[3], "%" PRIu64, g->F_ns / 1000u);
    snprintf(g->hbuf[4], sizeof g->hbuf[4], "%" PRIu64, g->R_ns / 1000u);
    for (unsigned i = 0; i < ARGS_HEAD; i++)
        g->argv[a++] = g->hbuf[i];
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < ARGS_PER_KEY; j++)
            g->argv[a++] = g->abuf[i][j];
    /* Last, the host's clock when the slots were read: Redis measures demand rates on it, so
     * that batches it runs together (held up in a stopped server) are still taken apart. */
    snprintf(g->hbuf[ARGS_HEAD], sizeof g->hbuf[ARGS_HEAD], "%" PRIu64, now / 1000u);
    g->argv[a++] = g->hbuf[ARGS_HEAD];
    redisReply *rep = NULL;
    int r = 0;
    /* A timeout leaves us not knowing whether the script ran: retry once with the same
     * sequence; Redis answers a batch it already applied from its record. Both attempts share
     * one deadline (connect + command budgets): a stuck peer holds a round that long at most,
     * and the fallback goes on meanwhile (stuck_hook). */
    rl__redis_set_deadline(g->conn, rl__mono_ns() + g->connect_ns + g->command_ns);
    for (int attempt = 0; attempt < 2; attempt++) {
        r = rl__redis_evalsha(g->conn, rl__embed_global, NULL, (int)n, (int)a, g->argv, NULL, &rep);
        if (r != -ETIMEDOUT && r != -ECONNRESET)
            break;
    }
    rl__redis_set_deadline(g->conn, 0);
    g->nkeys = 0;
    if (r < 0)
        return r;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 + 3 * (size_t)n) {
        freeReplyObject(rep);
        return rl__err(-EIO, "redis: the GLOBAL sync script answered something unexpected");
    }
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type != REDIS_REPLY_INTEGER) {
            freeReplyObject(rep);
            return rl__err(-EIO, "redis: the GLOBAL sync script answered a non-integer");
        }
    if ((uint64_t)rep->element[0]->integer > *hosts)
        *hosts = (uint64_t)rep->element[0]->integer;
    bool refused = false;
    for (unsigned i = 0; i < n; i++)
        if (!apply(g, &g->keys[i], rep->element[1 + 3 * i]->integer,
                   rep->element[2 + 3 * i]->integer, rep->element[3 + 3 * i]->integer, now))
            refused = true;
    freeReplyObject(rep);
    struct rl_shm_header *h = g->rl->hdr;
    atomic_fetch_add_explicit(&h->sync_keys, n, memory_order_relaxed);
    if (refused) {
        atomic_fetch_add_explicit(&h->sync_stale_refused, 1, memory_order_relaxed);
        return -ESTALE;
    }
    return 0;
}

static void add_key(struct rl_global *g, const struct glim *l, uint64_t idx, uint64_t word,
                    uint64_t K, uint64_t C, uint64_t ka, uint32_t den, uint32_t dden,
                    const uint64_t cid[2])
{
    unsigned i = g->nkeys++;
    g->keys[i] =
        (struct bkey){.idx = idx, .word = word, .K = K, .C = C, .ka = ka, .den = den, .dden = dden};
    rl__key_global(g->kbuf[i], sizeof g->kbuf[i], cid[0], cid[1]);
    char(*a)[24] = g->abuf[i];
    uint64_t ttl = l->lim.redis_ttl_ms ? l->lim.redis_ttl_ms : 2 * l->lim.window_ms;
    snprintf(a[0], 24, "%016" PRIx64, word);
    snprintf(a[1], 24, "%" PRIu64, K);
    snprintf(a[2], 24, "%" PRIu64, C);
    snprintf(a[3], 24, "%" PRIu64, ka);
    snprintf(a[4], 24, "%" PRIu32, dden);
    snprintf(a[5], 24, "%" PRIu64, l->lim.requests);
    snprintf(a[6], 24, "%" PRIu64, l->lim.window_ms * 1000u);
    snprintf(a[7], 24, "%" PRIu64, l->p.limit);
    snprintf(a[8], 24, "%" PRIu64, ttl);
}

/* A LOCAL-fallback round: raise each GLOBAL ceiling by this host's share of the rate. */
static void fallback_round(struct rl_global *g, uint64_t now)
{
    struct rl *rl = g->rl;
    uint64_t n = atomic_load_explicit(&rl->hdr->sync_hosts, memory_order_relaxed);
    /* RL_CLUSTER_HOSTS is a floor: Redis' count lags behind hosts that joined since. */
    if (n < g->hosts_hint)
        n = g->hosts_hint;
    if (!n)
        n = 1;
    if (!g->fallback_ns) {
        g->fallback_ns = g->fallback_start_ns = now;
        return;
    }
    if (now < g->fallback_ns)
        return; /* a time read before the last refill (another caller): nothing new */
    /* The credit since the start, in whole units, minus what earlier rounds gave: fractions
     * carry over from round to round (a share below one unit per round still accrues). */
    uint64_t prev = g->fallback_ns - g->fallback_start_ns, cur = now - g->fallback_start_ns;
    g->fallback_ns = now;
    if (cur <= prev)
        return;
    g->lc_round++;
    uint64_t c, meta;
    for (uint64_t i = 0; i < rl->nslots; i++) {
        struct rl_slot *s = rl__slot_next_live(rl, &i, &c, &meta);
        if (!s)
            break;
        const struct glim *l = limit_of(g, (uint32_t)(meta & 0xffffffffu));
        if (!l)
            continue;
        uint64_t C = atomic_load_explicit(&s->state, memory_order_acquire) & RL_VAL_MASK;
        if (C == RL_STATE_DEAD)
            continue;
        uint64_t K = atomic_load_explicit(&s->ceiling, memory_order_relaxed);
        /* share of the rate: requests / window / n per ns, from the start to now, less what
         * the rounds before had given; cap: a share of B above the count. */
        rl_u128 per = (rl_u128)l->lim.window_ms * 1000000u * n;
        uint64_t add = (uint64_t)((rl_u128)l->lim.requests * cur / per -
                                  (rl_u128)l->lim.requests * prev / per);
        uint64_t cap = C + l->p.limit / n;
        uint64_t nk = K + add;
        if (nk > cap)
            nk = cap;
        if (nk > K)
            /* release: pairs with the checks' acquire load of the ceiling. */
            atomic_compare_exchange_strong_explicit(&s->ceiling, &K, nk, memory_order_release,
                                                    memory_order_relaxed);
    }
}

/* Called by sync/conn.c while an exchange of the sync thread waits on Redis: the fallback is
 * driven by time, not by the leader's I/O. While the rounds fail (the fallback is on) a stuck
 * exchange still refills the LOCAL fallback every T, and the leader keeps its heartbeat so no
 * other process takes over a lease just because this one waits. */
static void stuck_hook(void *arg)
{
    struct rl_global *g = arg;
    struct rl_shm_header *h = g->rl->hdr;
    uint64_t now = rl__clock(g->rl);
    /* acquire: as in lead(). */
    uint64_t lease = atomic_load_explicit(&h->sync_lease, memory_order_acquire);
    if (!g->epoch || lease != (g->epoch << 32 | g->token))
        return;
    /* relaxed: a liveness stamp, as in lead(). */
    atomic_store_explicit(&h->sync_heartbeat_ns, now, memory_order_relaxed);
    if (g->failing && g->rl->fallback == RL_FALLBACK_LOCAL)
        fallback_round(g, now);
}

/* The kinds of round: every T; early, when a check was denied for want of lease (a kick);
 * demand, every F between the regular rounds when T > F, for the slots with demand only. */
enum round_kind { ROUND_REGULAR, ROUND_EARLY, ROUND_DEMAND };

/* One round: 0, 1 for a demand round that had nothing to report (and sent nothing), or a
 * negative code when Redis could not be used. */
static int sync_round(struct rl_global *g, uint64_t now, enum round_kind kind)
{
    bool early = kind != ROUND_REGULAR;
    struct rl *rl = g->rl;
    if (!g->ents) {
        g->ents = calloc(rl->nslots, sizeof *g->ents);
        g->cand = calloc(rl->nslots, sizeof *g->cand);
        g->lc = calloc(rl->nlimits, sizeof *g->lc);
        if (!g->ents || !g->cand || !g->lc)
            return rl__err(-ENOMEM, "sync: out of memory for %llu slots",
                           (unsigned long long)rl->nslots);
    }
    g->lc_round++;
    uint64_t hosts = 0;
    uint64_t start = now;
    int r = 0;
    bool sent = false;
    size_t ncand = 0;
    uint64_t w, meta;
    for (uint64_t i = 0; i < rl->nslots; i++) {
        /* ctl with acquire: meta and keyp visible (rl__slot_next_live). */
        struct rl_slot *s = rl__slot_next_live(rl, &i, &w, &meta);
        if (!s)
            break;
        const struct glim *l = limit_of(g, (uint32_t)(meta & 0xffffffffu));
        if (!l)
            continue;
        /* The ceiling first (only we change it), then the count: a count read later can only
         * be larger, so consumption above the ceiling is reported, never hidden. */
        uint64_t K = atomic_load_explicit(&s->ceiling, memory_order_acquire);
        /* acquire: pairs with the checks' release CAS. */
        uint64_t C = atomic_load_explicit(&s->state, memory_order_acquire) & RL_VAL_MASK;
        if (C == RL_STATE_DEAD)
            continue;
        uint64_t U = atomic_load_explicit(&s->synced, memory_order_relaxed);
        bool known = meta & RL_META_KNOWN;
        uint32_t den = (uint32_t)RL_META_DENIED(meta);
        struct gent *e = &g->ents[i];
        if (e->word != w) {
            e->word = w;
            e->den = known ? den : 0;
            e->ka = known ? K : 0;
            e->sent_ns = 0;
            e->flush = e->want = false;
        }
        uint32_t dden = (den - e->den) & (RL_META_DENIED_MOD - 1);
        bool send;
        /* What Redis must hear of: a new slot, denials (demand), a lease given back, a host
         * below its target (want), half of the last lease used, and every R/3 a slot that holds
         * a lease or unreported consumption (else Redis reclaims the lease as a dead host's).
         * A slot comfortably inside its lease stays quiet: Redis' view of its outstanding lease
         * is then an overestimate, which only makes the pool smaller, never the limit larger. */
        if (kind == ROUND_EARLY)
            send = dden > 0 && C + 1 > K;
        else if (kind == ROUND_DEMAND)
            /* Everything a regular round reports but the keep-alive: demand (new, denied,
             * half the lease used, asked to report every round) and leases given back. */
            send = !known || dden > 0 || e->flush || e->want || (C != U && C + 1 > K) ||
                   (C != U && 2 * (K > C ? K - C : 0) <= (K > U ? K - U : 0));
        else
            send = !known || dden > 0 || e->flush || e->want || (C != U && C + 1 > K) ||
                   (C != U && 2 * (K > C ? K - C : 0) <= (K > U ? K - U : 0)) ||
                   ((K > C || C != U) && now - e->sent_ns >= g->R_ns / 3);
        if (!send)
            continue;
        struct cand *c = &g->cand[ncand++];
        *c = (struct cand){.idx = i,
                           .word = w,
                           .K = K,
                           .C = C,
                           .ka = e->ka,
                           .den = den,
                           .dden = dden,
                           .lid = (uint32_t)(meta & 0xffffffffu)};
        c->cid[0] = atomic_load_explicit(&s->keyp[0], memory_order_relaxed);
        c->cid[1] = atomic_load_explicit(&s->keyp[1], memory_order_relaxed);
    }
    sent = ncand > 0;
    /* Redis Cluster: a script's keys must share a slot, so a batch holds one group (hash tag)
     * only; sorted by group, the batches of a round come out grouped. */
    if (g->cluster)
        qsort(g->cand, ncand, sizeof *g->cand, cand_cmp);
    for (size_t j = 0; j < ncand && r == 0; j++) {
        const struct cand *c = &g->cand[j];
        if (g->nkeys &&
            (g->nkeys == BATCH || (g->cluster && group_of(c) != group_of(&g->cand[j - 1]))))
            r = send_batch(g, now, &hosts);
        if (r == 0)
            add_key(g, limit_of(g, c->lid), c->idx, c->word, c->K, c->C, c->ka, c->den, c->dden,
                    c->cid);
    }
    if (r == 0 && g->nkeys)
        r = send_batch(g, now, &hosts);
    g->nkeys = 0;
    if (r == 0 && (kind == ROUND_REGULAR || (kind == ROUND_EARLY && !sent))) {
        /* The host registry (rlctl, operators): one key per host, alive while it syncs. Also
         * the round's proof that Redis answers when there was nothing to report. */
        char key[48], val[200];
        snprintf(key, sizeof key, RL_KEY_HOST_FMT, g->host);
        snprintf(val, sizeof val, "%s pid=%d epoch=%" PRIu64 " interval_ms=%" PRIu64, g->hostname,
                 (int)getpid(), g->epoch, g->T_ns / 1000000u);
        r = rl__redis_cmd(g->conn, NULL, "SET %s %s PX %" PRIu64, key, val, 3 * g->R_ns / 1000000u);
    }
    if (r == 0 && kind == ROUND_DEMAND && !sent)
        return 1; /* Redis was not asked: this says nothing of whether it answers */
    struct rl_shm_header *h = rl->hdr;
    if (r == 0) {
        if (hosts)
            atomic_store_explicit(&h->sync_hosts, hosts, memory_order_relaxed);
        atomic_store_explicit(&h->sync_last_ok_ns, now, memory_order_relaxed);
        if (!early) {
            /* relaxed: a deadline read by the checks; see the header comment. Only full rounds
             * move it: they report every slot that holds a lease. */
            atomic_store_explicit(&h->sync_valid_until_ns, start + g->R_ns / 2,
                                  memory_order_relaxed);
            g->fallback_ns = 0;
        }
        atomic_fetch_add_explicit(&h->sync_rounds, 1, memory_order_relaxed);
    }
    return r;
}

/* Pushes the monitoring rollups; a failure is logged when it starts and when it ends, and
 * never stops the sync (the counts wait for the next push). */
static void monitor_push(struct rl_global *g)
{
    int r = rl__monitor_push(g->rl, g->conn, g->host, g->monitor_ttl_ms);
    if (r < 0 && !g->monitor_failing)
        rl__log(RL_LOG_WARN, "segment %s: monitoring rollups not pushed to Redis: %s", g->rl->name,
                rl_errmsg());
    else if (r == 0 && g->monitor_failing)
        rl__log(RL_LOG_INFO, "segment %s: monitoring rollups pushed again", g->rl->name);
    g->monitor_failing = r < 0;
}

static void *sync_main(void *arg)
{
    struct rl_global *g = arg;
    struct rl *rl = g->rl;
    struct rl_shm_header *h = rl->hdr;
    uint64_t next = 0, next_demand = 0, quiet_until = 0;
    bool demand_rounds = g->F_ns < g->T_ns;
    /* acquire: pairs with the release increment by a kicking check. */
    uint32_t seen = atomic_load_explicit(&h->sync_futex, memory_order_acquire);
    while (!atomic_load_explicit(&g->stop, memory_order_acquire)) {
        uint64_t now = rl__clock(rl);
        bool regular = now >= next;
        enum round_kind kind = regular                               ? ROUND_REGULAR
                               : demand_rounds && now >= next_demand ? ROUND_DEMAND
                                                                     : ROUND_EARLY;
        if (regular)
            next = now + g->T_ns;
        /* Demand rounds: with T above FAST_NS, every F between the regular rounds the slots
         * with demand report (nothing else: a round with nothing to report sends nothing), so
         * that a host reacts to a burst, a newcomer or a lease running low within F, not T. */
        if (kind != ROUND_EARLY)
            next_demand = now + g->F_ns;
        /* An early round that Redis answered with nothing (the cluster's buckets are empty)
         * mutes the kicks for min(T, 100 ms): denials under over-demand then cost few round
         * trips, and a long T does not leave a host without lease for a whole period. */
        bool skip = kind == ROUND_EARLY && now < quiet_until;
        if (!skip && lead(g, now)) {
            g->granted = 0;
            int r = sync_round(g, now, kind);
            if (kind == ROUND_EARLY && r == 0 && g->granted == 0)
                quiet_until = now + (g->T_ns < QUIET_MAX_NS ? g->T_ns : QUIET_MAX_NS);
            if (r == 1) {
                /* an empty demand round: no news of Redis, the state stays as it was */
            } else if (r == -ESTALE) {
                rl__log(RL_LOG_WARN,
                        "segment %s: Redis refused epoch %" PRIu64 ": another leader took over",
                        rl->name, g->epoch);
                g->epoch = 0;
            } else if (r < 0) {
                atomic_fetch_add_explicit(&h->sync_errors, 1, memory_order_relaxed);
                set_err(g, rl_errmsg());
                if (r == -ECANCELED && atomic_load_explicit(&g->stop, memory_order_acquire))
                    break; /* rl_close() cut the exchange short: not Redis' failure */
                if (!g->failing)
                    rl__log(RL_LOG_WARN, "segment %s: GLOBAL sync failed: %s", rl->name,
                            rl_errmsg());
                g->failing = true;
                /* relaxed: a flag the checks read (OPEN admits while it is set). */
                atomic_store_explicit(&h->sync_failing, 1, memory_order_relaxed);
                if (rl->fallback == RL_FALLBACK_LOCAL)
                    fallback_round(g, rl__clock(rl)); /* now: the round may have waited */
            } else {
                if (g->failing)
                    rl__log(RL_LOG_INFO, "segment %s: GLOBAL sync resumed", rl->name);
                g->failing = false;
                atomic_store_explicit(&h->sync_failing, 0, memory_order_relaxed);
                set_err(g, "");
                if (g->monitor && regular && now >= g->monitor_next_ns) {
                    g->monitor_next_ns = now + RL_MONITOR_PUSH_NS;
                    monitor_push(g);
                }
            }
        }
        now = rl__clock(rl);
        uint64_t due = demand_rounds && next_demand < next ? next_demand : next;
        uint64_t wait = due > now ? due - now : 0;
        if (!wait)
            continue;
        uint32_t cur = atomic_load_explicit(&h->sync_futex, memory_order_acquire);
        if (cur == seen)
            futex_wait_ns(&h->sync_futex, seen, wait);
        seen = atomic_load_explicit(&h->sync_futex, memory_order_acquire);
    }
    if (g->monitor && g->epoch && !g->failing)
        monitor_push(g); /* a leader that closes hands over what it counted */
    resign(g);
    return NULL;
}

static int start_thread(struct rl_global *g)
{
    atomic_store_explicit(&g->stop, false, memory_order_relaxed);
    /* All signals blocked: the host's signals stay the host's (lib/thread.c). */
    int r = rl__thread_start(&g->thread, sync_main, g, "rl-sync");
    if (r)
        return rl__err(-r, "rl_open: cannot start the GLOBAL sync thread: %s", strerror(r));
    g->running = true;
    return 0;
}

/* ---- fork ----------------------------------------------------------------------------------- */

/* In the child, from the library's fork handler (lib/api.c): one thread, nothing locked. */
void rl__global_fork_child(struct rl_remote *rm)
{
    struct rl_global *g = rm->global;
    if (!g)
        return;
    g->running = false; /* the thread stayed in the parent */
    g->epoch = 0;       /* the parent's lease is the parent's */
    g->token = new_token();
    g->nkeys = 0;
    /* The eventfd is shared with the parent: its rl_close() must not cancel our I/O. */
    close(g->cancel_fd);
    g->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); /* -1: close waits the budget */
    rl__redis_set_cancel(g->conn, g->cancel_fd);
}

/* In the child, from the first GLOBAL check (one thread: lib/table.c elects it). */
void rl__global_restart(struct rl_remote *rm)
{
    struct rl_global *g = rm->global;
    if (g && !g->running && start_thread(g) < 0)
        rl__log(RL_LOG_WARN, "segment %s: %s", g->rl->name, rl_errmsg());
}

/* ---- open, close, health ------------------------------------------------------------------ */

int rl__global_open(struct rl_remote *rm, const struct rl_redis_url *url, const rl_options *o)
{
    /* o->sync_interval_ms is resolved and within its bound (lib/options.h) by rl_open. */
    struct rl *rl = rm->rl;
    struct rl_global *g = calloc(1, sizeof *g);
    if (!g)
        return rl__err(-ENOMEM, "rl_open: out of memory");
    g->rl = rl;
    g->T_ns = o->sync_interval_ms * 1000000u;
    g->F_ns = g->T_ns < FAST_NS ? g->T_ns : FAST_NS;
    g->R_ns = 3 * g->T_ns > RECLAIM_MIN_NS ? 3 * g->T_ns : RECLAIM_MIN_NS;
    g->lease_ns = 3 * g->T_ns > LEASE_MIN_NS ? 3 * g->T_ns : LEASE_MIN_NS;
    g->hosts_hint = o->cluster_hosts;
    g->connect_ns = (uint64_t)o->redis_connect_timeout_ms * 1000000u;
    g->command_ns = (uint64_t)o->redis_command_timeout_ms * 1000000u;
    g->cluster = url->kind == RL_REDIS_CLUSTER;
    g->monitor = o->monitoring;
    g->monitor_ttl_ms = (uint64_t)o->metrics_retention_days * 86400000u;
    g->token = new_token();
    if (gethostname(g->hostname, sizeof g->hostname) != 0)
        snprintf(g->hostname, sizeof g->hostname, "?");
    g->hostname[sizeof g->hostname - 1] = '\0';
    {
        /* host id: RL_HOST_ID, else host name + segment name (stable across restarts) */
        char id[512];
        int n = o->host_id && *o->host_id
                    ? snprintf(id, sizeof id, "id:%s", o->host_id)
                    : snprintf(id, sizeof id, "host:%s%c%s", g->hostname, 0, rl->name);
        if (n < 0 || (size_t)n >= sizeof id)
            n = (int)sizeof id - 1;
        snprintf(g->host, sizeof g->host, "%016" PRIx64,
                 XXH3_64bits_withSeed(id, (size_t)n, 0x686f7374u));
    }
    pthread_mutex_init(&g->err_lock, NULL);
    int r = rl__redis_new(url, o->redis_connect_timeout_ms, o->redis_command_timeout_ms, &g->conn);
    if (r < 0) {
        free(g);
        return r;
    }
    g->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g->cancel_fd < 0) {
        r = rl__err(-errno, "rl_open: cannot create the sync thread's eventfd: %s",
                    strerror(errno));
        rl__redis_close(g->conn);
        free(g);
        return r;
    }
    rl__redis_set_cancel(g->conn, g->cancel_fd);
    /* Every T (at least every 10 ms) while an exchange waits: see stuck_hook. */
    rl__redis_set_wait_hook(g->conn, stuck_hook, g, g->T_ns > 10000000u ? g->T_ns : 10000000u);
    r = start_thread(g);
    if (r < 0) {
        rl__redis_close(g->conn);
        close(g->cancel_fd);
        free(g);
        return r;
    }
    rm->global = g;
    return 0;
}

void rl__global_close(struct rl_remote *rm)
{
    struct rl_global *g = rm->global;
    if (!g)
        return;
    struct rl *rl = rm->rl;
    if (g->running) {
        atomic_store_explicit(&g->stop, true, memory_order_release);
        /* Wake our thread (and, harmlessly, any other process's sync thread). */
        atomic_fetch_add_explicit(&rl->hdr->sync_futex, 1, memory_order_release);
        rl__futex_wake(&rl->hdr->sync_futex);
        /* A thread idle or in a quick exchange ends by itself (a leader hands over its
         * monitoring counts first); one that waits on Redis longer than the command budget is
         * cut short through the eventfd its polls watch. rl_close() thus returns within the
         * command budget plus the thread's exit (rl.h). */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t at = (uint64_t)ts.tv_nsec + g->command_ns;
        ts.tv_sec += (time_t)(at / 1000000000u);
        ts.tv_nsec = (long)(at % 1000000000u);
        if (pthread_timedjoin_np(g->thread, NULL, &ts) != 0) {
            uint64_t one = 1;
            if (g->cancel_fd >= 0 && write(g->cancel_fd, &one, sizeof one) < 0)
                rl__log(RL_LOG_WARN, "segment %s: cannot wake the sync thread: %s", rl->name,
                        strerror(errno));
            pthread_join(g->thread, NULL);
        }
    } else {
        resign(g);
    }
    rl__redis_close(g->conn);
    if (g->cancel_fd >= 0)
        close(g->cancel_fd);
    pthread_mutex_destroy(&g->err_lock);
    free(g->ents);
    free(g->cand);
    free(g->lc);
    free(g);
    rm->global = NULL;
}

void rl__global_health(struct rl_remote *rm, rl_health_info *out)
{
    struct rl_global *g = rm->global;
    if (!g)
        return;
    /* relaxed: statistics. */
    uint64_t lease = atomic_load_explicit(&rm->rl->hdr->sync_lease, memory_order_relaxed);
    out->sync_leader_here = (lease & 0xffffffffu) == g->token;
    pthread_mutex_lock(&g->err_lock);
    if (g->err[0] && !out->error[0]) {
        rl__strcut(out->error, sizeof out->error, g->err);
        rl__err(0, "%s", g->err); /* the whole message (out->error may be cut) */
    }
    pthread_mutex_unlock(&g->err_lock);
}
