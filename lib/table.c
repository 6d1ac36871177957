/*
 * The key table: a fixed-capacity, lock-free, open-addressing hash table of 64-byte slots in the
 * shared segment, used by any number of threads of any number of processes at once.
 *
 * Theory of operation (docs/design.md "Slot state machine" carries the proofs):
 *
 *  Slot control word `ctl`:  EMPTY --claim--> PENDING(fp) --publish--> LIVE(fp)
 *                                               |  (abort / steal)         | (reclaim)
 *                                               v                          v
 *                            TOMB <-------------+--------------------------+
 *                            TOMB --claim--> PENDING(fp') ...
 *  EMPTY never comes back, so a probe sequence (home, home+1, ...) that meets EMPTY can stop:
 *  no key was ever placed beyond it. Lookups are otherwise bounded by header.max_probe, the
 *  longest displacement any claim has used (raised before the claim).
 *
 *  Insert is claim, verify, publish. A claimant CASes a free slot (the first EMPTY or TOMB of the
 *  probe sequence) to PENDING(fp), initialises it, then re-scans the whole probe sequence with
 *  seq_cst loads. Two claimants of one key each make their claim (seq_cst CAS) before their
 *  re-scan, so in the single total order of seq_cst operations the later re-scan sees the earlier
 *  claim: at most one of them finds no rival and publishes; a claimant that sees a rival (PENDING
 *  or LIVE with the same key) aborts its claim to TOMB and starts again. A PENDING slot whose
 *  owner is gone (or stalled) for ~50 us is stolen (CAS to TOMB); the owner's publish CAS then
 *  fails and it starts again. No step waits for another process except that bounded spin.
 *
 *  Slot `state` word: [gen:4][value:60]. A decision is load(state) -> decide -> CAS(state). The
 *  4-bit generation is bumped each time a slot is given to a new key, so a process that looked a
 *  key up, stalled while the slot was reclaimed and reused, and then CASes, fails instead of
 *  charging the new key (it would need 16 reuses and an equal value to slip through). After each
 *  load of `state` the updater re-reads `ctl`: the slot must still hold its key.
 *
 *  Reclaim of a LIVE slot whose value is "fresh" (equivalent to a new key): CAS state to DEAD
 *  (an updater holding the old value now fails its CAS and re-reads DEAD), then CAS ctl to TOMB.
 *  A process that finds LIVE with a DEAD state (a reclaimer died between the two steps, or is
 *  between them) finishes the reclaim itself. Because the state CAS expects the exact fresh
 *  value, a concurrent decision either lands before it (the CAS fails, nothing is reclaimed) or
 *  fails after it (and re-inserts the key, which was fresh anyway): no update is lost.
 *
 *  Limit records: claimed EMPTY -> PENDING(sig) by CAS, fields written, then PENDING -> LIVE
 *  (release). A record's fields are a pure function of its signature, so a process finding
 *  PENDING(its sig) writes the same fields itself and publishes: a creator that died half-way
 *  leaves nothing stuck.
 *
 * Why one file of ~1,500 lines: the public rl_acquire/rl_refund entry points are here with the
 * lookup, the slot retry loop and the decision so that the compiler inlines the whole hot path
 * into them (a call between files is a call: row (b) of rl-bench); the sections (limits, keys,
 * the slot retry loop, GLOBAL keys, STRICT keys, the mode dispatch, the entry points, reset,
 * inspection) each open with what they hold.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "lib/algo.h"
#include "lib/bucket.h"
#include "lib/compiler.h"
#include "lib/error.h"
#include "lib/handle.h"
#include "lib/remote.h"
#include "lib/segment.h"
#include "lib/table.h"

#define PROBE_SOFT     16    /* an insert farther than this prefers reclaiming a stale slot */
#define RECLAIM_WINDOW 64    /* how far an insert looks for the stalest reclaimable slot */
#define RECLAIM_FAR    4096  /* how far a full table is searched for any reclaimable slot */
#define PENDING_SPINS  2000  /* ~50 us of pause before a PENDING slot is stolen */
#define MAX_RESTARTS   10000 /* bound on restarts of one operation (never reached in practice) */

/* What an operation that restarted MAX_RESTARTS times answers (every slot retry loop). */
static __attribute__((cold, noinline)) int too_much_contention(const struct rl *rl)
{
    return rl__err(-EAGAIN, "segment %s: too much contention on one key; try again", rl->name);
}

/* ---- limits ---------------------------------------------------------------------------------- */

struct lcache_ent {
    uint64_t seg;  /* rl->uid; 0 = unused */
    uint64_t f[6]; /* requests, window_ms, burst, kind, redis_ttl_ms, 0 */
    uint32_t lid;
    struct rl_params p;
};

#define LCACHE 4
static RL_TLS struct lcache_ent tl_lcache[LCACHE];
static RL_TLS unsigned tl_lcache_next, tl_lcache_mru;

static uint64_t limit_kind(const rl_limit *lim)
{
    return (uint64_t)lim->algorithm | (uint64_t)lim->mode << 8 | (uint64_t)lim->scope << 16;
}

static int limit_check(const rl_limit *lim, struct rl_params *p)
{
    if ((unsigned)lim->algorithm >= RL_ALGORITHM_COUNT)
        return rl__err(-EINVAL, "limit: unknown algorithm %d", (int)lim->algorithm);
    if ((unsigned)lim->scope >= RL_SCOPE_COUNT)
        return rl__err(-EINVAL, "limit: unknown scope %d", (int)lim->scope);
    if ((unsigned)lim->mode > RL_MODE_STRICT)
        return rl__err(-EINVAL, "limit: unknown mode %d", (int)lim->mode);
    if (lim->flags & ~(uint32_t)(RL_LIMIT_SHADOW | RL_LIMIT_ON_FULL_CLOSED | RL_LIMIT_PER_PATH))
        return rl__err(-EINVAL, "limit: unknown flags 0x%x", (unsigned)lim->flags);
    if (lim->warn_permille > 1000)
        return rl__err(-EINVAL, "limit: warn_permille %u is above 1000",
                       (unsigned)lim->warn_permille);
    for (int i = 0; i < 2; i++)
        if (lim->reserved[i])
            return rl__err(-EINVAL, "limit: reserved[%d] must be zero", i);
    int r = rl__algos[lim->algorithm]->params(lim, p);
    if (r < 0)
        return r;
    if (lim->mode == RL_MODE_GLOBAL && lim->algorithm != RL_TOKEN_BUCKET &&
        lim->algorithm != RL_GCRA)
        return rl__err(-EINVAL,
                       "limit: GLOBAL mode shares a token bucket across hosts; %s is not "
                       "supported in GLOBAL mode: use token_bucket (or gcra), or STRICT mode "
                       "for an exact cluster-wide window",
                       rl_algorithm_name(lim->algorithm));
    p->gsig = rl__limit_gsig(lim);
    return 0;
}

uint64_t rl__limit_gsig(const rl_limit *lim)
{
    uint64_t f[5] = {lim->requests, lim->window_ms, lim->burst, (uint64_t)lim->algorithm,
                     (uint64_t)lim->scope};
    return XXH3_64bits(f, sizeof f);
}

/* Find or record the limit with fields f in the segment's limit table. */
static int limit_record(struct rl *rl, const uint64_t f[6], uint32_t *lid)
{
    uint64_t h = XXH3_64bits(f, 6 * sizeof f[0]) & ~RL_CTL_TAG_MASK;
    uint64_t pend = h | RL_CTL_PENDING, live = h | RL_CTL_LIVE;
    uint64_t n = rl->nlimits;
    for (uint64_t d = 0; d < n; d++) {
        uint64_t i = ((h >> 2) + d) % n;
        struct rl_limit_rec *r = &rl->limits[i];
        /* acquire: pairs with the release CAS PENDING -> LIVE below (fields visible). */
        uint64_t s = atomic_load_explicit(&r->sig, memory_order_acquire);
        if (s == RL_CTL_EMPTY) {
            /* acquire (both ways): on failure pairs with the publisher of what we lost to. */
            if (atomic_compare_exchange_strong_explicit(&r->sig, &s, pend, memory_order_acquire,
                                                        memory_order_acquire)) {
                atomic_fetch_add_explicit(&rl->hdr->limits_used, 1, memory_order_relaxed);
                s = pend;
            }
        }
        if (s == pend) {
            /* Ours, or a PENDING record of the same limit: write the (identical) fields. */
            atomic_store_explicit(&r->requests, f[0], memory_order_relaxed);
            atomic_store_explicit(&r->window_ms, f[1], memory_order_relaxed);
            atomic_store_explicit(&r->burst, f[2], memory_order_relaxed);
            atomic_store_explicit(&r->kind, f[3], memory_order_relaxed);
            atomic_store_explicit(&r->redis_ttl_ms, f[4], memory_order_relaxed);
            /* release: publishes the fields; pairs with the acquire loads of sig above and in
             * rl__limit_get(). */
            atomic_compare_exchange_strong_explicit(&r->sig, &s, live, memory_order_release,
                                                    memory_order_acquire);
            s = atomic_load_explicit(&r->sig, memory_order_acquire);
        }
        if (s == live && atomic_load_explicit(&r->requests, memory_order_relaxed) == f[0] &&
            atomic_load_explicit(&r->window_ms, memory_order_relaxed) == f[1] &&
            atomic_load_explicit(&r->burst, memory_order_relaxed) == f[2] &&
            atomic_load_explicit(&r->kind, memory_order_relaxed) == f[3] &&
            atomic_load_explicit(&r->redis_ttl_ms, memory_order_relaxed) == f[4]) {
            *lid = (uint32_t)i;
            return 0;
        }
    }
    return rl__err(-ENOSPC,
                   "segment %s: its limit table (%llu distinct limits) is full; use fewer "
                   "distinct limits or a segment with a larger capacity",
                   rl->name, (unsigned long long)n);
}

static inline bool lcache_hit(const struct lcache_ent *e, const struct rl *rl, const rl_limit *lim)
{
    return e->f[0] == lim->requests && e->f[1] == lim->window_ms && e->f[2] == lim->burst &&
           e->f[3] == limit_kind(lim) && e->f[4] == lim->redis_ttl_ms && e->seg == rl->uid;
}

/* The slow part of rl__limit_id(): the other cache entries, then the segment. */
static __attribute__((noinline)) const struct rl_params *
limit_id_slow(struct rl *rl, const rl_limit *lim, uint32_t *lid, int *err)
{
    struct lcache_ent *e;
    for (unsigned i = 0; i < LCACHE; i++) {
        e = &tl_lcache[i];
        if (lcache_hit(e, rl, lim)) {
            tl_lcache_mru = i;
            *lid = e->lid;
            return &e->p;
        }
    }
    struct rl_params p;
    uint64_t f[6] = {lim->requests,   lim->window_ms,    lim->burst,
                     limit_kind(lim), lim->redis_ttl_ms, 0};
    int r = limit_check(lim, &p);
    if (r == 0)
        r = limit_record(rl, f, lid);
    if (r < 0) {
        *err = r;
        return NULL;
    }
    tl_lcache_mru = tl_lcache_next++ % LCACHE;
    e = &tl_lcache[tl_lcache_mru];
    e->seg = rl->uid;
    memcpy(e->f, f, sizeof f);
    e->lid = *lid;
    e->p = p;
    return &e->p;
}

/* Most callers use one limit per call site: the entry that answered last time is tried inline. */
static inline const struct rl_params *limit_id_fast(struct rl *rl, const rl_limit *lim,
                                                    uint32_t *lid, int *err)
{
    const struct lcache_ent *e = &tl_lcache[tl_lcache_mru];
    if (__builtin_expect(lcache_hit(e, rl, lim), 1)) {
        *lid = e->lid;
        return &e->p;
    }
    return limit_id_slow(rl, lim, lid, err);
}

const struct rl_params *rl__limit_id(struct rl *rl, const rl_limit *lim, uint32_t *lid, int *err)
{
    return limit_id_fast(rl, lim, lid, err);
}

int rl__limit_get(const struct rl *rl, uint32_t lid, rl_limit *lim, struct rl_params *p)
{
    if (lid >= rl->nlimits)
        return -EBADMSG;
    struct rl_limit_rec *r = &rl->limits[lid];
    /* acquire: pairs with the release publish in limit_record(). */
    uint64_t s = atomic_load_explicit(&r->sig, memory_order_acquire);
    if ((s & RL_CTL_TAG_MASK) != RL_CTL_LIVE)
        return -EBADMSG;
    memset(lim, 0, sizeof *lim);
    lim->requests = atomic_load_explicit(&r->requests, memory_order_relaxed);
    lim->window_ms = atomic_load_explicit(&r->window_ms, memory_order_relaxed);
    lim->burst = atomic_load_explicit(&r->burst, memory_order_relaxed);
    uint64_t kind = atomic_load_explicit(&r->kind, memory_order_relaxed);
    lim->algorithm = (rl_algorithm)(kind & 0xff);
    lim->mode = (rl_mode)((kind >> 8) & 0xff);
    lim->scope = (rl_scope)((kind >> 16) & 0xff);
    lim->redis_ttl_ms = atomic_load_explicit(&r->redis_ttl_ms, memory_order_relaxed);
    if ((unsigned)lim->algorithm >= RL_ALGORITHM_COUNT || (unsigned)lim->mode > RL_MODE_STRICT ||
        (unsigned)lim->scope >= RL_SCOPE_COUNT)
        return -EBADMSG;
    if (p) {
        if (rl__algos[lim->algorithm]->params(lim, p) < 0)
            return -EBADMSG;
        p->gsig = rl__limit_gsig(lim);
    }
    return 0;
}

/* ---- keys ------------------------------------------------------------------------------------ */

struct keyref {
    uint64_t live, pending; /* the control words this key's slot carries */
    uint64_t meta;
    uint64_t kp[3];
    uint64_t home;
    uint64_t ceiling; /* a new slot's ceiling word (GLOBAL: the cold-start grant) */
    uint32_t lid;
};

/* kp = the key's first len < 24 bytes, zero-padded, as memcpy would lay them out, built in
 * registers: overlapping loads of constant size, shifted (no call to memcpy for a variable size,
 * and no byte stores to a buffer read back wider, which stalls store forwarding on the hot
 * path). */
static inline uint64_t load64(const unsigned char *b)
{
    uint64_t v;
    memcpy(&v, b, 8);
    return v;
}

static inline void key_prefix(uint64_t kp[3], const unsigned char *b, size_t len)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w0 = 0, w1 = 0, w2 = 0;
    if (len >= 16) {
        w0 = load64(b);
        w1 = load64(b + 8);
        if (len > 16)
            w2 = load64(b + len - 8) >> (8 * (24 - len)); /* bytes 16..len-1 */
    } else if (len >= 8) {
        w0 = load64(b);
        if (len > 8)
            w1 = load64(b + len - 8) >> (8 * (16 - len)); /* bytes 8..len-1 */
    } else if (len >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, b, 4);
        memcpy(&hi, b + len - 4, 4);
        w0 = (uint64_t)lo | (uint64_t)hi << (8 * (len - 4)); /* overlapping bytes agree */
    } else if (len > 0) {
        w0 = (uint64_t)b[0] | (uint64_t)b[len / 2] << (8 * (len / 2)) |
             (uint64_t)b[len - 1] << (8 * (len - 1));
    }
    kp[0] = w0;
    kp[1] = w1;
    kp[2] = w2;
#else
    kp[0] = kp[1] = kp[2] = 0;
    memcpy(kp, b, len);
#endif
}

/* Everything but the hash: h is the key's keyed 64-bit hash. */
static inline void keyref_fill(const struct rl *rl, struct keyref *k, uint64_t h, const void *key,
                               size_t len, uint32_t lid)
{
    h ^= ((uint64_t)lid + 1) * 0x9E3779B97F4A7C15ULL; /* the limit is part of the identity */
    uint64_t fp = h & RL_CTL_FP_MASK;
    if (fp == 0)
        fp = 1ULL << 16;
    k->live = fp | RL_CTL_LIVE;
    k->pending = fp | RL_CTL_PENDING;
    k->meta = (uint64_t)lid | (uint64_t)len << 32;
    const unsigned char *b = key;
    if (len >= RL_KEY_PREFIX) {
        memcpy(&k->kp[0], b, 8); /* constant sizes: inlined loads */
        memcpy(&k->kp[1], b + 8, 8);
        memcpy(&k->kp[2], b + 16, 8);
    } else {
        key_prefix(k->kp, b, len);
    }
    k->home = (uint64_t)(((rl_u128)h * rl->nslots) >> 64);
    k->ceiling = 0;
    k->lid = lid;
}

static inline __attribute__((always_inline)) void
keyref_init(const struct rl *rl, struct keyref *k, const void *key, size_t len, uint32_t lid)
{
    keyref_fill(rl, k, XXH3_64bits_withSecret(key, len, rl->hdr->secret, RL_SECRET_SIZE), key, len,
                lid);
}

/* A GLOBAL key: keyp holds its cluster id, the same on every host (Redis names the key by it),
 * and its first 8 bytes (for rlctl); the fingerprint, length and limit still identify the slot.
 * The keyed hash is taken of the 16-byte cluster id instead of the key (one pass over the key,
 * not two): keys with distinct ids land where only the secret decides, so hash flooding stays
 * out of reach; keys with equal ids are one counter anyway (Redis names them alike).
 * A new slot starts with the cold-start grant g = floor(1% x (B + r x 1 s) / N), N the hosts
 * Redis last reported (docs/design.md section 10). */
static void keyref_init_global(const struct rl *rl, struct keyref *k, const void *key, size_t len,
                               uint32_t lid, const struct rl_params *p)
{
    XXH128_hash_t cid = XXH3_128bits_withSeed(key, len, p->gsig);
    uint64_t c[2] = {cid.low64, cid.high64};
    keyref_fill(rl, k, XXH3_64bits_withSecret(c, sizeof c, rl->hdr->secret, RL_SECRET_SIZE), key,
                len, lid);
    k->kp[0] = cid.low64;
    k->kp[1] = cid.high64;
    k->kp[2] = 0;
    memcpy(&k->kp[2], key, len < 8 ? len : 8);
    /* relaxed: a hint; any value gives a valid (if differently sized) grant. */
    uint64_t n = atomic_load_explicit(&rl->hdr->sync_hosts, memory_order_relaxed);
    n = n ? n : 1;
    uint64_t per_s = (uint64_t)((rl_u128)p->L * 1000000000u / p->W); /* the exact rate, per s */
    k->ceiling = (p->limit + per_s) / 100u / n;
}

/* Fields of a slot whose ctl was seen LIVE/PENDING with an acquire load. */
static bool slot_holds(struct rl_slot *s, const struct keyref *k)
{
    return (atomic_load_explicit(&s->meta, memory_order_relaxed) & RL_META_ID_MASK) == k->meta &&
           atomic_load_explicit(&s->keyp[0], memory_order_relaxed) == k->kp[0] &&
           atomic_load_explicit(&s->keyp[1], memory_order_relaxed) == k->kp[1] &&
           atomic_load_explicit(&s->keyp[2], memory_order_relaxed) == k->kp[2];
}

static inline uint64_t next_idx(const struct rl *rl, uint64_t i)
{
    return i + 1 == rl->nslots ? 0 : i + 1;
}

enum { FOUND, NOT_FOUND, SAW_PENDING };

/* Is control word c (any nonce) a LIVE / PENDING word of key k? */
static inline bool is_live_of(uint64_t c, const struct keyref *k)
{
    return (c & ~RL_CTL_NONCE_MASK) == k->live;
}

static inline bool is_pending_of(uint64_t c, const struct keyref *k)
{
    return (c & ~RL_CTL_NONCE_MASK) == k->pending;
}

/* Looks the key up. FOUND: *idx is its LIVE slot and *word the exact control word seen (with its
 * nonce). SAW_PENDING: *idx is a PENDING claim of it, *word that claim's word. */
static int find(struct rl *rl, const struct keyref *k, uint64_t *idx, uint64_t *word)
{
    /* relaxed: a stale bound only makes a lookup miss a key, and the insert that follows
     * re-scans with seq_cst loads (see the theory above). */
    uint64_t maxp = atomic_load_explicit(&rl->hdr->max_probe, memory_order_relaxed);
    uint64_t i = k->home;
    for (uint64_t d = 0; d <= maxp && d < rl->nslots; d++, i = next_idx(rl, i)) {
        struct rl_slot *s = &rl->slots[i];
        /* acquire: pairs with the release CAS PENDING -> LIVE in insert(): the slot's fields
         * are visible once LIVE is. */
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
        if (is_live_of(c, k) && slot_holds(s, k)) {
            *idx = i;
            *word = c;
            return FOUND;
        }
        if (c == RL_CTL_EMPTY)
            return NOT_FOUND;
        if (is_pending_of(c, k)) {
            *idx = i;
            *word = c;
            return SAW_PENDING;
        }
    }
    return NOT_FOUND;
}

static void raise_max_probe(struct rl *rl, uint64_t d)
{
    /* seq_cst: must precede our claim CAS in the total order, so a rival's seq_cst re-scan that
     * sees the claim also sees a bound that covers it. */
    uint64_t cur = atomic_load_explicit(&rl->hdr->max_probe, memory_order_seq_cst);
    while (cur < d && !atomic_compare_exchange_weak_explicit(
                          &rl->hdr->max_probe, &cur, d, memory_order_seq_cst, memory_order_seq_cst))
        ;
}

/* Turns our (or a stalled) PENDING claim into TOMB; true when this call did it. */
static bool abort_claim(struct rl *rl, struct rl_slot *s, uint64_t pending)
{
    uint64_t c = pending;
    /* release: nothing of the aborted claim is ever read; release keeps the order simple. */
    if (atomic_compare_exchange_strong_explicit(&s->ctl, &c, RL_CTL_TOMB, memory_order_release,
                                                memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&rl->hdr->used, 1, memory_order_relaxed);
        return true;
    }
    return false;
}

/* Waits a bounded time for the PENDING claim `word` to resolve, then steals it (CAS on that
 * exact word: a newer claim of the same slot is left alone). */
static void wait_or_steal(struct rl *rl, uint64_t idx, uint64_t word)
{
    struct rl_slot *s = &rl->slots[idx];
    for (int n = 0; n < PENDING_SPINS; n++) {
        /* relaxed: we only wait for a change; find() re-reads with acquire. */
        if (atomic_load_explicit(&s->ctl, memory_order_relaxed) != word)
            return;
        rl__cpu_relax();
    }
    abort_claim(rl, s, word);
}

/* A claim nonce: different for every claim this thread makes (and across threads, mostly). */
static RL_TLS uint64_t tl_nonce;
static _Atomic uint64_t g_nonce_seed;

static uint64_t next_nonce(void)
{
    if (!tl_nonce) /* relaxed: only spreads threads apart */
        tl_nonce =
            atomic_fetch_add_explicit(&g_nonce_seed, 0x9E3779B97F4A7C15ULL, memory_order_relaxed) ^
            (uint64_t)getpid() * 0x2545F4914F6CDD1DULL;
    tl_nonce += 1;
    return (tl_nonce << 2) & RL_CTL_NONCE_MASK;
}

/* Completes a reclaim that found (or left) a LIVE slot with a DEAD state. */
static void finish_reclaim(struct rl *rl, struct rl_slot *s, uint64_t live)
{
    uint64_t c = live;
    /* release: pairs with the acquire load of ctl by the next claimant. */
    if (atomic_compare_exchange_strong_explicit(&s->ctl, &c, RL_CTL_TOMB, memory_order_release,
                                                memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&rl->hdr->used, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&rl->hdr->reclaimed, 1, memory_order_relaxed);
    }
}

/* Is slot s (seen LIVE) fresh at t? Returns true with *st (the exact state word read) and *idle
 * (for how long it has been fresh). A LIVE slot with a DEAD state is a reclaim in progress (or
 * a dead reclaimer's leftover): it is finished here and reported as not fresh. */
static bool slot_fresh(struct rl *rl, struct rl_slot *s, uint64_t c, uint64_t t, uint64_t *st,
                       uint64_t *idle)
{
    /* acquire: pairs with the release CAS of the last decision on this slot. */
    *st = atomic_load_explicit(&s->state, memory_order_acquire);
    /* relaxed: ordered after the state load above (see rl__acquire on the aux word). */
    uint64_t aux = atomic_load_explicit(&s->ceiling, memory_order_relaxed);
    uint64_t meta = atomic_load_explicit(&s->meta, memory_order_relaxed);
    rl_limit lim;
    struct rl_params p;
    if ((*st & RL_VAL_MASK) == RL_STATE_DEAD) {
        finish_reclaim(rl, s, c);
        return false;
    }
    if (rl__limit_get(rl, (uint32_t)(meta & 0xffffffffu), &lim, &p) < 0)
        return false;
    if (lim.mode == RL_MODE_GLOBAL) {
        /* Reclaimable when dropping it loses nothing Redis relies on: no lease outstanding and
         * every unit reported, or never reported and never used (docs/design.md section 10). */
        uint64_t used = *st & RL_VAL_MASK;
        /* relaxed: the exact state CAS in reclaim() decides; these only pick candidates. */
        uint64_t u = atomic_load_explicit(&s->synced, memory_order_relaxed);
        *idle = 1;
        if (meta & RL_META_KNOWN)
            return aux <= used && u == used;
        return used == 0;
    }
    return rl__algos[p.algo]->is_fresh(&p, *st & RL_VAL_MASK, aux, t, idle);
}

/* Reclaims slot s (LIVE with control word c) whose state word was st when found fresh. */
static bool reclaim(struct rl *rl, struct rl_slot *s, uint64_t c, uint64_t st)
{
    uint64_t dead = (st & ~RL_VAL_MASK) | RL_STATE_DEAD;
    /* acq_rel: the exact fresh value is expected, so a decision that raced us either landed
     * first (we fail) or fails after us and re-reads DEAD. Pairs with the decisions' CAS. */
    if (!atomic_compare_exchange_strong_explicit(&s->state, &st, dead, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return false;
    finish_reclaim(rl, s, c);
    return true;
}

enum { RETRY = 3 };

/* One attempt to insert the key. FOUND with *idx (ours, or a rival's copy met on the way),
 * RETRY (look it up again), or a negative code. */
static int insert(struct rl *rl, const struct keyref *k, uint64_t t, uint64_t *idx, uint64_t *word,
                  int attempt)
{
    uint64_t used = atomic_load_explicit(&rl->hdr->used, memory_order_relaxed);
    uint64_t maxp = atomic_load_explicit(&rl->hdr->max_probe, memory_order_relaxed);
    bool full = used >= rl->nslots;
    uint64_t limit = full ? (rl->nslots < RECLAIM_FAR ? rl->nslots : RECLAIM_FAR) : rl->nslots;
    uint64_t i = k->home, free_i = 0, free_d = 0, free_c = 0;
    uint64_t stale_i = 0, stale_c = 0, stale_st = 0, stale_idle = 0, stale_d = 0;
    bool have_free = false, have_stale = false;
    for (uint64_t d = 0; d < limit; d++, i = next_idx(rl, i)) {
        if (have_free && d > maxp)
            break; /* no key was ever placed farther than max_probe from its home */
        if (have_stale && d >= RECLAIM_WINDOW && (full || d > maxp))
            break; /* a candidate in hand; nothing of ours can lie farther */
        struct rl_slot *s = &rl->slots[i];
        /* acquire: pairs with the release publish of LIVE (fields visible). */
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
        if (is_live_of(c, k) && slot_holds(s, k)) {
            *idx = i;
            *word = c;
            return FOUND;
        }
        if (is_pending_of(c, k)) {
            wait_or_steal(rl, i, c);
            return RETRY;
        }
        if (c == RL_CTL_EMPTY || c == RL_CTL_TOMB) {
            if (!have_free) {
                have_free = true;
                free_i = i, free_d = d, free_c = c;
            }
            if (c == RL_CTL_EMPTY)
                break;
            continue;
        }
        uint64_t st, idle = 0;
        if ((c & RL_CTL_TAG_MASK) == RL_CTL_LIVE && !have_free &&
            (d < RECLAIM_WINDOW || !have_stale) && slot_fresh(rl, s, c, t, &st, &idle) &&
            (!have_stale || idle > stale_idle)) {
            have_stale = true;
            stale_i = i, stale_c = c, stale_st = st, stale_idle = idle, stale_d = d;
        }
    }
    if ((!have_free || free_d >= PROBE_SOFT) && have_stale) {
        /* Prefer recycling the stalest fresh slot near home over a long probe or -ENOSPC. */
        if (reclaim(rl, &rl->slots[stale_i], stale_c, stale_st)) {
            have_free = true;
            free_i = stale_i, free_c = RL_CTL_TOMB, free_d = stale_d;
        } else {
            return RETRY; /* it changed under us: look again */
        }
    }
    if (!have_free) {
        uint64_t n = atomic_fetch_add_explicit(&rl->hdr->enospc, 1, memory_order_relaxed);
        static _Atomic uint64_t last_log;
        uint64_t now_s = rl__mono_ns() / 1000000000u;
        uint64_t prev = atomic_load_explicit(&last_log, memory_order_relaxed);
        if (prev != now_s &&
            atomic_compare_exchange_strong_explicit(&last_log, &prev, now_s, memory_order_relaxed,
                                                    memory_order_relaxed))
            rl__log(RL_LOG_WARN,
                    "segment %s is full: %llu slots in use, nothing near the key is "
                    "reclaimable (%llu -ENOSPC so far); open it with a larger capacity",
                    rl->name, (unsigned long long)used, (unsigned long long)n + 1);
        return rl__err(-ENOSPC,
                       "segment %s is full: %llu slots in use and none near this key is "
                       "reclaimable; open a segment with a larger capacity",
                       rl->name, (unsigned long long)used);
    }
    raise_max_probe(rl, free_d);
    struct rl_slot *s = &rl->slots[free_i];
    uint64_t c = free_c;
    uint64_t pending = k->pending | next_nonce(), live = (pending & ~RL_CTL_TAG_MASK) | RL_CTL_LIVE;
    /* The state as it was before our claim: initialising it is a CAS from this value, so a
     * claimant that stalled here while its claim was stolen and the slot claimed and used again
     * cannot reset the new owner's counts. acquire: pairs with the last writer's release. */
    uint64_t old = atomic_load_explicit(&s->state, memory_order_acquire);
    /* relaxed: a statistic; counted before the claim so that a death in between over-counts
     * (harmless: it only steers the reclaim heuristics) instead of wrapping below zero. */
    atomic_fetch_add_explicit(&rl->hdr->used, 1, memory_order_relaxed);
    /* seq_cst: the claim must precede our re-scan in the single total order (Dekker). */
    if (!atomic_compare_exchange_strong_explicit(&s->ctl, &c, pending, memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&rl->hdr->used, 1, memory_order_relaxed);
        return RETRY;
    }
    /* Initialise: a new generation, zero value; fields. */
    uint64_t gen = ((old >> RL_GEN_SHIFT) + 1) & 0xf;
    /* relaxed: published by the CAS PENDING -> LIVE below. */
    if (!atomic_compare_exchange_strong_explicit(&s->state, &old, gen << RL_GEN_SHIFT,
                                                 memory_order_relaxed, memory_order_relaxed)) {
        abort_claim(rl, s, pending); /* the slot moved on without us */
        return RETRY;
    }
    atomic_store_explicit(&s->ceiling, k->ceiling, memory_order_relaxed);
    atomic_store_explicit(&s->synced, 0, memory_order_relaxed);
    atomic_store_explicit(&s->meta, k->meta, memory_order_relaxed);
    for (int w = 0; w < 3; w++)
        atomic_store_explicit(&s->keyp[w], k->kp[w], memory_order_relaxed);
    /* Re-scan for a rival claim or copy of this key. */
    bool rival = false;
    maxp = atomic_load_explicit(&rl->hdr->max_probe, memory_order_seq_cst);
    uint64_t j = k->home;
    for (uint64_t d = 0; d <= maxp && d < rl->nslots; d++, j = next_idx(rl, j)) {
        if (j == free_i)
            continue;
        struct rl_slot *o = &rl->slots[j];
        /* seq_cst: see the theory of operation (pairs with rivals' claim CAS). */
        uint64_t oc = atomic_load_explicit(&o->ctl, memory_order_seq_cst);
        if (oc == RL_CTL_EMPTY)
            break;
        if (is_pending_of(oc, k) || (is_live_of(oc, k) && slot_holds(o, k))) {
            rival = true;
            break;
        }
    }
    if (rival) {
        abort_claim(rl, s, pending);
        /* Both rivals may have backed off: wait a little, differently per key and attempt. */
        for (int n = (attempt & 15) * 16 + (int)((pending >> 2) & 63); n > 0; n--)
            rl__cpu_relax();
        return RETRY;
    }
    c = pending;
    /* release: publishes the fields written above; pairs with the acquire ctl loads in find()
     * and insert(). seq_cst keeps it in the total order with the rivals' re-scans. Our own
     * claim word (nonce included) is expected: a stolen and re-made claim is not ours. */
    if (atomic_compare_exchange_strong_explicit(&s->ctl, &c, live, memory_order_seq_cst,
                                                memory_order_relaxed)) {
        *idx = free_i;
        *word = live;
        return FOUND;
    }
    return RETRY; /* stolen while we were slow: start again */
}

/* FOUND: *idx is the key's slot and *word its exact LIVE control word; NOT_FOUND (only when
 * !create); or a negative code. */
static __attribute__((noinline)) int locate_slow(struct rl *rl, const struct keyref *k, uint64_t t,
                                                 bool create, uint64_t *idx, uint64_t *word)
{
    for (int attempt = 0; attempt < MAX_RESTARTS; attempt++) {
        int r = find(rl, k, idx, word);
        if (r == FOUND)
            return FOUND;
        if (r == SAW_PENDING) {
            wait_or_steal(rl, *idx, *word);
            continue;
        }
        if (!create)
            return NOT_FOUND;
        r = insert(rl, k, t, idx, word, attempt);
        if (r != RETRY)
            return r;
    }
    return too_much_contention(rl);
}

/* The slot of key k (FOUND, NOT_FOUND, or an error), made when `create`. The common case, the
 * key live in its home slot, is inline: it is find()'s first step (d = 0 is always probed). */
static inline int locate(struct rl *rl, const struct keyref *k, uint64_t t, bool create,
                         uint64_t *idx, uint64_t *word)
{
    struct rl_slot *s = &rl->slots[k->home];
    /* acquire: as in find() (pairs with the release CAS PENDING -> LIVE in insert()). */
    uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
    if (__builtin_expect(is_live_of(c, k) && slot_holds(s, k), 1)) {
        *idx = k->home;
        *word = c;
        return FOUND;
    }
    return locate_slow(rl, k, t, create, idx, word);
}

static int key_check(const void *key, size_t keylen)
{
    if (!key || keylen == 0)
        return rl__err(-EINVAL, "key is NULL or empty");
    if (keylen > RL_KEY_MAX)
        return rl__err(-E2BIG, "key is %zu bytes; at most %d are allowed (RL_KEY_MAX)", keylen,
                       RL_KEY_MAX);
    return 0;
}

static uint64_t clamp_time(uint64_t now)
{
    return now < RL_TIME_BASE_NS ? RL_TIME_BASE_NS : now;
}

/* The decision itself: token buckets (the common case) are called directly so the compiler can
 * inline them; the other algorithms go through the table of operations. */
static inline bool decide(const struct rl_algo_ops *ops, const struct rl_params *p, uint64_t v,
                          uint64_t *aux, uint64_t t, uint64_t cost, uint64_t slack, uint64_t *nv,
                          rl_result *out)
{
    if (p->algo == RL_TOKEN_BUCKET || p->algo == RL_GCRA)
        return rl__bucket_decide(p, v, aux, t, cost, slack, nv, out);
    return ops->decide(p, v, aux, t, cost, slack, nv, out);
}

/* ---- the slot retry loop ---------------------------------------------------------------------
 *
 * Every change of a key's state takes the same steps: find the key's slot (claiming one when
 * `create`), read its state, check that the slot still holds the key and is not being reclaimed,
 * compute the new state, and CAS it in. A lost CAS computes again from the winner's state; a
 * slot that changed hands (reclaimed, its claim stolen) starts over from the lookup, at most
 * MAX_RESTARTS times. slot_update() is that loop, written once; what differs is given as static
 * inline functions, which slot_update() (always inline) turns into direct, inlined calls, so the
 * hot path (acquire_core) pays no indirect call:
 *   step(ctx, s, st, &ns)       st the slot's whole state word: STEP_STORE to CAS ns in, or
 *                               STEP_DONE (nothing to store; the answer is in ctx);
 *   absent(ctx)                 the key has no slot (only without `create`), or, with
 *                               `dead_is_fresh`, its slot is being reclaimed (the key is as
 *                               fresh); returns the call's answer;
 *   committed(ctx, s, word, ns) after the CAS of ns committed, word the slot's control word
 *                               (NULL: nothing).
 * Without `dead_is_fresh` a slot being reclaimed gets help (finish_reclaim) and the lookup
 * starts over. */
enum { STEP_DONE = 0, STEP_STORE = 1 };

static inline __attribute__((always_inline)) int
slot_update(struct rl *rl, const struct keyref *k, uint64_t t, bool create, bool dead_is_fresh,
            void *ctx, int (*absent)(void *ctx),
            int (*step)(void *ctx, struct rl_slot *s, uint64_t st, uint64_t *ns),
            void (*committed)(void *ctx, struct rl_slot *s, uint64_t word, uint64_t ns))
{
    for (int attempt = 0; attempt < MAX_RESTARTS; attempt++) {
        uint64_t idx, word;
        int r = locate(rl, k, t, create, &idx, &word);
        if (r < 0)
            return r;
        if (r == NOT_FOUND)
            return absent(ctx);
        struct rl_slot *s = &rl->slots[idx];
        /* acquire: pairs with the release CAS of the previous change on this slot. */
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        for (;;) {
            /* acquire: ordered after the state load; the slot must still hold our key. */
            if (atomic_load_explicit(&s->ctl, memory_order_acquire) != word)
                break;
            if ((st & RL_VAL_MASK) == RL_STATE_DEAD) {
                if (dead_is_fresh)
                    return absent(ctx);
                finish_reclaim(rl, s, word); /* help a reclaim in progress, then retry */
                break;
            }
            uint64_t ns;
            if (step(ctx, s, st, &ns) == STEP_DONE)
                return 0;
            /* acq_rel: release publishes this change to the next one on this key (and to the
             * sync leader's acquire load of a GLOBAL count); acquire on failure reads the
             * winner's state. Pairs with itself in every process. */
            if (atomic_compare_exchange_weak_explicit(&s->state, &st, ns, memory_order_acq_rel,
                                                      memory_order_acquire)) {
                if (committed)
                    committed(ctx, s, word, ns);
                return 0;
            }
        }
    }
    return too_much_contention(rl);
}

/* ---- GLOBAL keys ----------------------------------------------------------------------------
 *
 * A GLOBAL slot's state is the count of units this host consumed; its ceiling is what the sync
 * leader (sync/global.c) has leased to this host so far. A decision is one CAS of the count:
 * allowed iff consumed + cost <= ceiling. Only the leader writes the ceiling (and `synced`);
 * only decisions and refunds write the count. Past the header's valid-until time (Redis not
 * heard from for too long, or no leader) the process's fallback applies: LOCAL keeps using the
 * ceiling (the leader then raises it by this host's share of the rate), OPEN allows (and
 * counts), CLOSED denies. A denial for want of lease wakes the leader for an early sync. */

/* Wakes the sync leader, at most once per RL_SYNC_KICK_NS for the whole segment. */
static __attribute__((noinline, cold)) void global_kick(struct rl *rl)
{
    struct rl_shm_header *h = rl->hdr;
    uint64_t t = rl__clock(rl);
    /* relaxed: the CAS only elects one kicker per period; it publishes nothing. */
    uint64_t last = atomic_load_explicit(&h->sync_kick_ns, memory_order_relaxed);
    if (t < last + RL_SYNC_KICK_NS ||
        !atomic_compare_exchange_strong_explicit(&h->sync_kick_ns, &last, t, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    /* release: pairs with the leader's acquire load of the futex word before FUTEX_WAIT, so a
     * bump that lands before the wait makes the wait return at once (no lost wake-up). */
    atomic_fetch_add_explicit(&h->sync_futex, 1, memory_order_release);
    rl__futex_wake(&h->sync_futex);
}

static void global_result(const struct rl_params *p, uint64_t c, uint64_t k, uint64_t cost,
                          bool allowed, rl_result *out)
{
    out->allowed = allowed;
    out->limit = p->limit;
    out->remaining = k > c ? k - c : 0;
    if (out->remaining > p->limit)
        out->remaining = p->limit;
    /* The cluster's bucket refills exactly `requests` per window: a denied caller may fit
     * after the time cost units take, rounded up (never early on the cluster's refill). */
    uint64_t need = rl__tokens_ns_ceil(p, cost ? (cost < p->limit ? cost : p->limit) : 1);
    out->retry_after_ms = allowed ? 0 : rl__ceil_ms(need);
    out->reset_after_ms = rl__ceil_ms(rl__tokens_ns_ceil(p, p->limit - out->remaining));
}

/* A GLOBAL or STRICT limit on a handle without Redis (rl_check counts such layers locally
 * instead: rules.c). */
static __attribute__((cold, noinline)) int no_remote(rl_mode mode)
{
    return rl__err(-ENOTSUP, "limit: %s mode needs Redis: %s",
                   mode == RL_MODE_STRICT ? "STRICT" : "GLOBAL",
                   RL_WITH_REDIS ? "open the segment with rl_options.redis_url (REDIS_URL)"
                                 : "this librl was built without Redis (meson -Dredis=disabled); "
                                   "use a LOCAL limit or a librl built with Redis");
}

/* In a forked child: the first GLOBAL check starts the handle's sync thread again (one thread
 * wins the flag). */
static __attribute__((cold, noinline)) void restart_after_fork(struct rl *rl)
{
    int one = 1;
    /* relaxed: the flag only elects the thread that restarts; the remote locks its own state. */
    if (atomic_compare_exchange_strong_explicit(&rl->remote_forked, &one, 0, memory_order_relaxed,
                                                memory_order_relaxed))
        rl->remote_ops->after_fork(rl->remote);
}

/* global_acquire's step: allowed iff consumed + cost <= ceiling (the lease). */
struct gacq {
    struct rl *rl;
    const struct rl_params *p;
    uint64_t cost, kc;
    bool expired, stale;
    rl_result *out;
};

static inline int gacq_absent(void *ctx)
{
    struct gacq *g = ctx; /* a peek at an unknown key */
    global_result(g->p, 0, 0, 0, !g->expired || g->rl->fallback != RL_FALLBACK_CLOSED, g->out);
    return 0;
}

static inline int gacq_step(void *ctx, struct rl_slot *s, uint64_t st, uint64_t *ns)
{
    struct gacq *g = ctx;
    uint64_t c = st & RL_VAL_MASK, cost = g->cost;
    /* acquire: pairs with the leader's release raise (sync/global.c); the ceiling is a bound,
     * so an older value only denies what a newer one would allow. */
    uint64_t kc = g->kc = atomic_load_explicit(&s->ceiling, memory_order_acquire);
    bool ok = c + cost <= kc;
    if (g->stale && g->rl->fallback == RL_FALLBACK_OPEN)
        ok = true;
    else if (g->expired && g->rl->fallback == RL_FALLBACK_CLOSED)
        ok = false;
    if (!ok || cost == 0) {
        if (!ok && cost) {
            /* relaxed: a statistic (demand) the leader samples; it wraps. */
            atomic_fetch_add_explicit(&s->meta, RL_META_DENIED_ONE, memory_order_relaxed);
            if (!g->stale)
                global_kick(g->rl);
        }
        global_result(g->p, c, kc, cost, ok, g->out);
        return STEP_DONE;
    }
    if (c + cost > RL_VAL_MASK - 1) {
        global_result(g->p, c, c, cost, false, g->out); /* 2^60 units: fail closed */
        return STEP_DONE;
    }
    *ns = st + cost;
    return STEP_STORE;
}

static inline void gacq_committed(void *ctx, struct rl_slot *s, uint64_t word, uint64_t ns)
{
    (void)s;
    (void)word;
    struct gacq *g = ctx;
    global_result(g->p, ns & RL_VAL_MASK, g->kc, g->cost, true, g->out);
}

static __attribute__((noinline)) int global_acquire(struct rl *rl, const void *key, size_t keylen,
                                                    const rl_limit *lim, const struct rl_params *p,
                                                    uint32_t lid, uint64_t cost, uint64_t now,
                                                    rl_result *out)
{
    (void)lim;
    (void)now; /* GLOBAL decisions use the segment's clock: leases are timed by the leader */
    if (!rl->global)
        return no_remote(RL_MODE_GLOBAL);
    /* relaxed: set by this process's fork handler, in this thread's past (api.c). */
    if (__builtin_expect(atomic_load_explicit(&rl->remote_forked, memory_order_relaxed), 0))
        restart_after_fork(rl);
    struct keyref k;
    keyref_init_global(rl, &k, key, keylen, lid, p);
    uint64_t t = rl__clock(rl);
    /* relaxed: a deadline and a flag, not publications; a stale read errs by one round. Past
     * the deadline Redis may have reclaimed our leases: CLOSED stops using them. While the
     * rounds fail, OPEN admits at once (its admissions are forgiven debt anyway). */
    bool expired = t > atomic_load_explicit(&rl->hdr->sync_valid_until_ns, memory_order_relaxed);
    bool stale = expired || atomic_load_explicit(&rl->hdr->sync_failing, memory_order_relaxed);
    struct gacq g = {rl, p, cost, 0, expired, stale, out};
    return slot_update(rl, &k, t, cost > 0, false, &g, gacq_absent, gacq_step, gacq_committed);
}

/* Gives `cost` units back: the count goes down (the leader reports consumption as it is, so
 * Redis sees the units as never used). */
/* The refunds' answer when the key has no count to give back to (no slot, or reclaimed). */
static inline int nothing_to_refund(void *ctx)
{
    (void)ctx;
    return 0;
}

static inline int grefund_step(void *ctx, struct rl_slot *s, uint64_t st, uint64_t *ns)
{
    (void)s;
    uint64_t cost = *(const uint64_t *)ctx, c = st & RL_VAL_MASK;
    if (c == 0)
        return STEP_DONE;
    *ns = (st & ~RL_VAL_MASK) | (c > cost ? c - cost : 0);
    return STEP_STORE;
}

static int global_refund(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                         const struct rl_params *p, uint32_t lid, uint64_t cost)
{
    (void)lim;
    if (!rl->global)
        return no_remote(RL_MODE_GLOBAL);
    struct keyref k;
    keyref_init_global(rl, &k, key, keylen, lid, p);
    return slot_update(rl, &k, 0, false, true, &cost, nothing_to_refund, grefund_step, NULL);
}

/* ---- STRICT keys: Redis decides, through the remote interface (lib/remote.h) ------------- */

static __attribute__((noinline)) int strict_acquire(struct rl *rl, const void *key, size_t keylen,
                                                    const rl_limit *lim, const struct rl_params *p,
                                                    uint32_t lid, uint64_t cost, uint64_t now,
                                                    rl_result *out)
{
    (void)lid;
    (void)now; /* Redis' clock decides */
    if (!rl->strict)
        return no_remote(RL_MODE_STRICT);
    return rl->remote_ops->strict_acquire(rl->remote, key, keylen, lim, p, cost, out);
}

static int strict_refund(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                         const struct rl_params *p, uint32_t lid, uint64_t cost)
{
    (void)lid;
    if (!rl->strict)
        return no_remote(RL_MODE_STRICT);
    return rl->remote_ops->strict_refund(rl->remote, key, keylen, lim, p, cost);
}

/* ---- the mode dispatch ------------------------------------------------------------------------
 *
 * The one place that says where a mode's decisions are made. LOCAL is not in the table: its
 * decision is inline in acquire_core, behind one predicted branch, with no call through a
 * pointer. acquire may answer RL_REMOTE_DECIDE_LOCALLY (STRICT's LOCAL fallback): the decision
 * then continues on the segment with the key and the limit id already validated. */
struct mode_ops {
    int (*acquire)(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                   const struct rl_params *p, uint32_t lid, uint64_t cost, uint64_t now,
                   rl_result *out);
    int (*refund)(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                  const struct rl_params *p, uint32_t lid, uint64_t cost);
};
static const struct mode_ops remote_modes[] = {
    [RL_MODE_GLOBAL] = {global_acquire, global_refund},
    [RL_MODE_STRICT] = {strict_acquire, strict_refund},
};
_Static_assert(RL_MODE_LOCAL == 0 && RL_MODE_STRICT == 2 && RL_MODE_GLOBAL == 1,
               "remote_modes is indexed by rl_mode");

/* acquire_core's step for a LOCAL key: the algorithm decides. */
struct lacq {
    const struct rl_algo_ops *ops;
    const struct rl_params *p;
    uint64_t t, cost, slack;
    rl_result *out;
    uint64_t aux, want; /* the slot's ceiling word as read, and as the decision wants it */
};

static inline int lacq_absent(void *ctx)
{
    struct lacq *a = ctx; /* a peek at an unknown key: it is fresh */
    uint64_t nv, aux = 0;
    decide(a->ops, a->p, 0, &aux, a->t, 0, a->slack, &nv, a->out);
    return 0;
}

static inline int lacq_step(void *ctx, struct rl_slot *s, uint64_t st, uint64_t *ns)
{
    struct lacq *a = ctx;
    /* relaxed: ordered after the acquire load of state; a raise published before the CAS whose
     * state we read is visible through that CAS's release. */
    uint64_t aux = a->aux = atomic_load_explicit(&s->ceiling, memory_order_relaxed);
    uint64_t nv;
    a->want = aux;
    if (!decide(a->ops, a->p, st & RL_VAL_MASK, &a->want, a->t, a->cost, a->slack, &nv, a->out))
        return STEP_DONE; /* nothing to store: denied, or a peek */
    /* A raise of aux comes before the CAS that commits, so a reader that sees our state also
     * sees the raise (through the CAS's release). relaxed: no data of its own. */
    for (uint64_t x = aux; x < a->want;)
        if (atomic_compare_exchange_weak_explicit(&s->ceiling, &x, a->want, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    *ns = (st & ~RL_VAL_MASK) | nv;
    return STEP_STORE;
}

static inline void lacq_committed(void *ctx, struct rl_slot *s, uint64_t word, uint64_t ns)
{
    (void)word;
    (void)ns;
    struct lacq *a = ctx;
    if (__builtin_expect(a->want < a->aux, 0)) {
        /* The clock stepped back and the state moved to the new time: lower aux after the
         * commit (only if nobody raised it meanwhile). */
        uint64_t aux = a->aux;
        atomic_compare_exchange_strong_explicit(&s->ceiling, &aux, a->want, memory_order_relaxed,
                                                memory_order_relaxed);
    }
}

/* now == RL_NOW_CLOCK: read the segment's clock, after the slot's line has been prefetched (a
 * cold line then loads while the clock is read, instead of after it). */
#define RL_NOW_CLOCK 0
static inline int acquire_core(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                               const struct rl_params *p, uint32_t lid, uint64_t cost, uint64_t now,
                               uint64_t slack, rl_result *out);

/* The key checked and the limit's id and parameters looked up (NULL: *err says why): the
 * first steps of every entry point that names a key under a limit. */
static inline const struct rl_params *key_and_limit(struct rl *rl, const void *key, size_t keylen,
                                                    const rl_limit *lim, uint32_t *lid, int *err)
{
    *err = key_check(key, keylen);
    if (*err < 0)
        return NULL;
    return limit_id_fast(rl, lim, lid, err);
}

static inline int rl__acquire(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                              uint64_t cost, uint64_t now, uint64_t slack, rl_result *out)
{
    int r;
    uint32_t lid;
    const struct rl_params *p = key_and_limit(rl, key, keylen, lim, &lid, &r);
    if (!p)
        return r;
    return acquire_core(rl, key, keylen, lim, p, lid, cost, now, slack, out);
}

/* The decision once the limit's id and parameters are known. */
static inline int acquire_core(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                               const struct rl_params *p, uint32_t lid, uint64_t cost, uint64_t now,
                               uint64_t slack, rl_result *out)
{
    int r;
    if (__builtin_expect(lim->mode != RL_MODE_LOCAL, 0)) {
        r = remote_modes[lim->mode].acquire(rl, key, keylen, lim, p, lid, cost, now, out);
        if (r != RL_REMOTE_DECIDE_LOCALLY)
            return r;
        /* STRICT's LOCAL fallback: this host's segment decides, under the STRICT limit's own
         * id (a key under another limit is another counter; rl_reset clears it too). */
    }
    const struct rl_algo_ops *ops = rl__algos[p->algo];
    struct keyref k;
    keyref_init(rl, &k, key, keylen, lid);
    if (now == RL_NOW_CLOCK) {
        __builtin_prefetch(&rl->slots[k.home], 1, 3);
        now = rl__clock(rl);
        slack = UINT64_MAX; /* our clock never steps back: a state ahead of it is a race */
    }
    uint64_t t = clamp_time(now);
    struct lacq a = {ops, p, t, cost, slack, out, 0, 0};
    return slot_update(rl, &k, t, cost > 0, false, &a, lacq_absent, lacq_step, lacq_committed);
}

/* rl__refund's step for a LOCAL key: the algorithm gives the units back. */
struct lrefund {
    const struct rl_algo_ops *ops;
    const struct rl_params *p;
    uint64_t t, cost;
};

static inline int lrefund_step(void *ctx, struct rl_slot *s, uint64_t st, uint64_t *ns)
{
    struct lrefund *f = ctx;
    /* relaxed: ordered after the acquire load of state (as in lacq_step). */
    uint64_t aux = atomic_load_explicit(&s->ceiling, memory_order_relaxed);
    uint64_t nv = f->ops->refund(f->p, st & RL_VAL_MASK, &aux, f->t, f->cost);
    if (nv == (st & RL_VAL_MASK))
        return STEP_DONE;
    *ns = (st & ~RL_VAL_MASK) | nv;
    return STEP_STORE;
}

static inline int rl__refund(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                             uint64_t cost, uint64_t now)
{
    int r;
    uint32_t lid;
    const struct rl_params *p = key_and_limit(rl, key, keylen, lim, &lid, &r);
    if (!p)
        return r;
    if (cost == 0)
        return 0;
    if (lim->mode != RL_MODE_LOCAL)
        return remote_modes[lim->mode].refund(rl, key, keylen, lim, p, lid, cost);
    struct lrefund f = {rl__algos[p->algo], p, clamp_time(now), cost};
    struct keyref k;
    keyref_init(rl, &k, key, keylen, lid);
    return slot_update(rl, &k, f.t, false, true, &f, nothing_to_refund, lrefund_step, NULL);
}

int rl__acquire_key(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                    uint64_t cost, uint64_t now, uint64_t slack, rl_result *out)
{
    return rl__acquire(rl, key, keylen, lim, cost, now, slack, out);
}

int rl__acquire_lid(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                    const struct rl_params *p, uint32_t lid, uint64_t cost, uint64_t now,
                    uint64_t slack, rl_result *out)
{
    int r = key_check(key, keylen);
    if (r < 0)
        return r;
    return acquire_core(rl, key, keylen, lim, p, lid, cost, now, slack, out);
}

int rl__refund_key(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                   uint64_t cost, uint64_t now)
{
    return rl__refund(rl, key, keylen, lim, cost, now);
}

/* ---- the public entry points (here, so the compiler inlines the whole hot path) -------- */

RL_API int rl_acquire_at(rl_t *rl, const void *key, size_t keylen, const rl_limit *lim,
                         uint64_t cost, uint64_t now_ns, rl_result *out)
{
    if (!rl || !lim || !out)
        return rl__err(-EINVAL, "rl_acquire: rl, lim and out must not be NULL");
    /* 0 would mean "read the clock" below; any time before 2020 is 2020 anyway. */
    return rl__acquire(rl, key, keylen, lim, cost, now_ns ? now_ns : 1, RL_CLOCK_SLACK_NS, out);
}

RL_API int rl_acquire(rl_t *rl, const void *key, size_t keylen, const rl_limit *lim, uint64_t cost,
                      rl_result *out)
{
    if (!rl || !lim || !out)
        return rl__err(-EINVAL, "rl_acquire: rl, lim and out must not be NULL");
    return rl__acquire(rl, key, keylen, lim, cost, RL_NOW_CLOCK, UINT64_MAX, out);
}

RL_API int rl_refund_at(rl_t *rl, const void *key, size_t keylen, const rl_limit *lim,
                        uint64_t cost, uint64_t now_ns)
{
    if (!rl || !lim)
        return rl__err(-EINVAL, "rl_refund: rl and lim must not be NULL");
    return rl__refund(rl, key, keylen, lim, cost, now_ns);
}

RL_API int rl_refund(rl_t *rl, const void *key, size_t keylen, const rl_limit *lim, uint64_t cost)
{
    if (!rl || !lim)
        return rl__err(-EINVAL, "rl_refund: rl and lim must not be NULL");
    return rl__refund(rl, key, keylen, lim, cost, rl__clock(rl));
}

/* ---- reset --------------------------------------------------------------------------------- */

/* rl_reset's steps: the slot is marked DEAD (acq_rel, as reclaim(): a decision that raced us
 * landed first, and we mark its state, or fails after us and re-inserts a fresh key), then the
 * reclaim is finished; a slot already being reclaimed gets help, and the key is gone. */
static inline int reset_absent(void *ctx)
{
    (void)ctx;
    return 0;
}

static inline int reset_step(void *ctx, struct rl_slot *s, uint64_t st, uint64_t *ns)
{
    (void)ctx;
    (void)s;
    *ns = (st & ~RL_VAL_MASK) | RL_STATE_DEAD;
    return STEP_STORE;
}

static inline void reset_committed(void *ctx, struct rl_slot *s, uint64_t word, uint64_t ns)
{
    (void)ns;
    finish_reclaim(ctx, s, word);
}

RL_API int rl_reset(rl_t *rl, const void *key, size_t keylen, const rl_limit *lim)
{
    if (!rl || !lim)
        return rl__err(-EINVAL, "rl_reset: rl and lim must not be NULL");
    int r = key_check(key, keylen);
    if (r < 0)
        return r;
    /* STRICT and GLOBAL layers count locally where there is no Redis (rules.c): reset that
     * count as well. (STRICT's LOCAL fallback counts under the STRICT limit's id: below.) */
    if (lim->mode != RL_MODE_LOCAL) {
        rl_limit local = *lim;
        local.mode = RL_MODE_LOCAL;
        r = rl_reset(rl, key, keylen, &local);
        if (r < 0)
            return r;
    }
    uint32_t lid;
    const struct rl_params *p = rl__limit_id(rl, lim, &lid, &r);
    if (!p)
        return r;
    struct keyref k;
    if (lim->mode == RL_MODE_GLOBAL)
        keyref_init_global(rl, &k, key, keylen, lid, p);
    else
        keyref_init(rl, &k, key, keylen, lid);
    r = slot_update(rl, &k, clamp_time(rl__clock(rl)), false, false, rl, reset_absent, reset_step,
                    reset_committed);
    if (r < 0)
        return r;
    /* Then the cluster's state, where the handle has Redis. */
    if (lim->mode == RL_MODE_GLOBAL && rl->remote_ops)
        return rl->remote_ops->global_reset(rl->remote, k.kp[0], k.kp[1]);
    if (lim->mode == RL_MODE_STRICT && rl->strict)
        return rl->remote_ops->strict_reset(rl->remote, key, keylen, lim);
    return 0;
}

RL_API int rl_reset_slot(rl_t *rl, uint64_t slot)
{
    if (!rl)
        return rl__err(-EINVAL, "rl_reset_slot: rl is NULL");
    if (slot >= rl->nslots)
        return rl__err(-EINVAL, "rl_reset_slot: slot %llu is beyond the table (%llu slots)",
                       (unsigned long long)slot, (unsigned long long)rl->nslots);
    struct rl_slot *s = &rl->slots[slot];
    for (int attempt = 0; attempt < MAX_RESTARTS; attempt++) {
        /* acquire: pairs with the publish of LIVE (meta and keyp visible). */
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
        if ((c & RL_CTL_TAG_MASK) != RL_CTL_LIVE)
            return 0;
        uint64_t meta = atomic_load_explicit(&s->meta, memory_order_relaxed);
        uint64_t cid0 = atomic_load_explicit(&s->keyp[0], memory_order_relaxed);
        uint64_t cid1 = atomic_load_explicit(&s->keyp[1], memory_order_relaxed);
        /* acquire: pairs with the decisions' release CAS. */
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (atomic_load_explicit(&s->ctl, memory_order_acquire) != c)
            continue;
        if ((st & RL_VAL_MASK) != RL_STATE_DEAD) {
            uint64_t dead = (st & ~RL_VAL_MASK) | RL_STATE_DEAD;
            /* acq_rel: as reclaim(). */
            if (!atomic_compare_exchange_strong_explicit(&s->state, &st, dead, memory_order_acq_rel,
                                                         memory_order_relaxed))
                continue;
        }
        finish_reclaim(rl, s, c);
        rl_limit lim;
        if (rl__limit_get(rl, (uint32_t)(meta & 0xffffffffu), &lim, NULL) == 0 &&
            lim.mode == RL_MODE_GLOBAL && rl->remote_ops)
            return rl->remote_ops->global_reset(rl->remote, cid0, cid1);
        return 0;
    }
    return rl__err(-EAGAIN, "rl_reset_slot: slot %llu keeps changing; try again",
                   (unsigned long long)slot);
}

/* ---- inspection ------------------------------------------------------------------------------ */

RL_API int rl_foreach_key(rl_t *rl, uint64_t now_ns, int (*fn)(const rl_key_view *kv, void *arg),
                          void *arg)
{
    if (!rl || !fn)
        return rl__err(-EINVAL, "rl_foreach_key: rl and fn must not be NULL");
    uint64_t t = clamp_time(now_ns);
    char buf[RL_KEY_PREFIX + 1];
    uint64_t c, meta;
    for (uint64_t i = 0; i < rl->nslots; i++) {
        struct rl_slot *s = rl__slot_next_live(rl, &i, &c, &meta);
        if (!s)
            break;
        uint64_t kp[3];
        for (int w = 0; w < 3; w++)
            kp[w] = atomic_load_explicit(&s->keyp[w], memory_order_relaxed);
        /* acquire: pairs with the decisions' release CAS. */
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        rl_key_view kv;
        memset(&kv, 0, sizeof kv);
        struct rl_params p;
        if (rl__limit_get(rl, (uint32_t)(meta & 0xffffffffu), &kv.limit, &p) < 0)
            continue;
        if ((st & RL_VAL_MASK) == RL_STATE_DEAD)
            continue;
        kv.slot = i;
        kv.keylen = (size_t)((meta >> 32) & 0xffff);
        size_t n = kv.keylen < RL_KEY_PREFIX ? kv.keylen : RL_KEY_PREFIX;
        memcpy(buf, kp, n);
        for (size_t b = 0; b < n; b++)
            if ((unsigned char)buf[b] < 0x20 || (unsigned char)buf[b] > 0x7e)
                buf[b] = '?';
        buf[n] = '\0';
        kv.key = buf;
        uint64_t nv;
        uint64_t aux = atomic_load_explicit(&s->ceiling, memory_order_relaxed);
        if (kv.limit.mode == RL_MODE_GLOBAL) {
            kv.key = buf; /* only the first 8 bytes are kept (keyp holds the cluster id) */
            n = kv.keylen < 8 ? kv.keylen : 8;
            memcpy(buf, &kp[2], n);
            for (size_t b = 0; b < n; b++)
                if ((unsigned char)buf[b] < 0x20 || (unsigned char)buf[b] > 0x7e)
                    buf[b] = '?';
            buf[n] = '\0';
            global_result(&p, st & RL_VAL_MASK, aux, 0, aux > (st & RL_VAL_MASK), &kv.state);
        } else {
            rl__algos[p.algo]->decide(&p, st & RL_VAL_MASK, &aux, t, 0, RL_CLOCK_SLACK_NS, &nv,
                                      &kv.state);
        }
        uint64_t st2, idle;
        kv.reclaimable = slot_fresh(rl, s, c, t, &st2, &idle);
        int r = fn(&kv, arg);
        if (r)
            return r;
    }
    return 0;
}

/* Removes damaged slot i, whose control word is c: a tombstone keeps the probe chains through
 * it intact. True when this call removed it. `live`: the slot counts in `used` (a damaged
 * control word is taken for a claimed slot's: EMPTY and TOMB are never reported). */
static bool repair_slot(struct rl *rl, uint64_t i, uint64_t c, bool live)
{
    /* release: pairs with the acquire load of ctl by the next claimant (as a reclaim). */
    if (!atomic_compare_exchange_strong_explicit(&rl->slots[i].ctl, &c, RL_CTL_TOMB,
                                                 memory_order_release, memory_order_relaxed))
        return false;
    if (live) /* relaxed: a statistic (see claim) */
        atomic_fetch_sub_explicit(&rl->hdr->used, 1, memory_order_relaxed);
    return true;
}

static long check_segment(struct rl *rl, bool repair, void (*report)(const char *msg, void *arg),
                          void *arg)
{
    long bad = 0;
    char msg[256];
#define REPORT(...)                                                                                \
    do {                                                                                           \
        bad++;                                                                                     \
        if (report) {                                                                              \
            snprintf(msg, sizeof msg, __VA_ARGS__);                                                \
            report(msg, arg);                                                                      \
        }                                                                                          \
    } while (0)
    for (uint64_t i = 0; i < rl->nlimits; i++) {
        uint64_t s = atomic_load_explicit(&rl->limits[i].sig, memory_order_acquire);
        rl_limit lim;
        struct rl_params p;
        if ((s & RL_CTL_TAG_MASK) == RL_CTL_LIVE && rl__limit_get(rl, (uint32_t)i, &lim, &p) < 0)
            REPORT("limit record %llu: fields do not decode", (unsigned long long)i);
        else if (s != 0 && (s & RL_CTL_TAG_MASK) != RL_CTL_LIVE &&
                 (s & RL_CTL_TAG_MASK) != RL_CTL_PENDING)
            REPORT("limit record %llu: bad signature word 0x%llx", (unsigned long long)i,
                   (unsigned long long)s);
    }
    for (uint64_t i = 0; i < rl->nslots; i++) {
        struct rl_slot *s = &rl->slots[i];
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
        uint64_t tag = c & RL_CTL_TAG_MASK;
        if (c == RL_CTL_EMPTY || c == RL_CTL_TOMB || tag == RL_CTL_PENDING)
            continue;
        if (tag != RL_CTL_LIVE) {
            REPORT("slot %llu: bad control word 0x%llx%s", (unsigned long long)i,
                   (unsigned long long)c,
                   repair && repair_slot(rl, i, c, true) ? " (removed)" : "");
            continue;
        }
        uint64_t meta = atomic_load_explicit(&s->meta, memory_order_relaxed);
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        uint64_t keylen = (meta >> 32) & 0xffff;
        rl_limit lim;
        struct rl_params p;
        if (keylen == 0 || keylen > RL_KEY_MAX) {
            REPORT("slot %llu: key length %llu out of range%s", (unsigned long long)i,
                   (unsigned long long)keylen,
                   repair && repair_slot(rl, i, c, true) ? " (removed)" : "");
            continue;
        }
        if (rl__limit_get(rl, (uint32_t)(meta & 0xffffffffu), &lim, &p) < 0) {
            REPORT("slot %llu: limit id %llu does not name a recorded limit%s",
                   (unsigned long long)i, (unsigned long long)(meta & 0xffffffffu),
                   repair && repair_slot(rl, i, c, true) ? " (removed)" : "");
            continue;
        }
        if ((st & RL_VAL_MASK) != RL_STATE_DEAD && lim.mode != RL_MODE_GLOBAL &&
            !rl__algos[p.algo]->valid(&p, st))
            REPORT("slot %llu: state 0x%llx does not decode under its limit%s",
                   (unsigned long long)i, (unsigned long long)st,
                   repair && repair_slot(rl, i, c, true) ? " (removed)" : "");
    }
#undef REPORT
    return bad;
}

RL_API long rl_check_segment(rl_t *rl, void (*report)(const char *msg, void *arg), void *arg)
{
    if (!rl)
        return rl__err(-EINVAL, "rl_check_segment: rl is NULL");
    return check_segment(rl, false, report, arg);
}

RL_API long rl_repair_segment(rl_t *rl, void (*report)(const char *msg, void *arg), void *arg)
{
    if (!rl)
        return rl__err(-EINVAL, "rl_repair_segment: rl is NULL");
    /* Only alone: our shared attach lock (segment.c) becomes exclusive when no other handle,
     * in any process, holds one; it goes back to shared afterwards. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 2, .l_len = 1};
    if (fcntl(rl->fd, F_OFD_SETLK, &fl) != 0)
        return rl__err(-EBUSY,
                       "rl_repair_segment: other processes (or handles) are attached to %s; "
                       "stop them first",
                       rl->name);
    long r = check_segment(rl, true, report, arg);
    fl.l_type = F_RDLCK;
    fcntl(rl->fd, F_OFD_SETLK, &fl);
    return r;
}
