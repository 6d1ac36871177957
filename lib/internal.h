/*
 * Internal declarations shared by the library's sources. Not installed; nothing here is ABI.
 *
 * The segment layout (docs/design.md "Segment layout" is the prose version of this file):
 *
 *   offset 0               struct rl_shm_header   (4096 bytes, one page)
 *   limits_off             nlimits x struct rl_limit_rec (64 bytes each)
 *   slots_off              nslots  x struct rl_slot      (64 bytes each, cache-line aligned)
 *
 * Everything inside the segment is addressed by offsets and indices, never by pointers, and every
 * offset or index read from the segment is bounds-checked before use.
 */
#ifndef RL_INTERNAL_H
#define RL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "rl.h"

#include "lib/clock.h"
#include "lib/error.h"

/* Every word shared between processes is one of these; they must be lock-free (address-free),
 * or a libatomic fallback would take a process-local lock. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shared 64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "shared 32-bit atomics must be lock-free");
_Static_assert(sizeof(_Atomic uint64_t) == 8, "atomic words must be plain 64-bit words");

__extension__ typedef unsigned __int128 rl_u128;

#define RL_CACHELINE      64
#define RL_MAGIC          0x31474553204c5221ULL /* "!RL SEG1" little-endian */
#define RL_LAYOUT_VERSION 4u /* 4: token bucket / GCRA states in exact-rate units */
#define RL_HEADER_SIZE    4096u
#define RL_SECRET_SIZE    192u
#define RL_KEY_PREFIX     24u

/* Time: state values are nanoseconds relative to this fixed base (2020-01-01T00:00:00Z), so 60
 * bits last until 2056. Times before the base are treated as the base. */
#define RL_TIME_BASE_NS 1577836800000000000ULL
#define RL_VAL_BITS     60
#define RL_VAL_MASK     ((1ULL << RL_VAL_BITS) - 1)
#define RL_GEN_SHIFT    RL_VAL_BITS
#define RL_STATE_DEAD   RL_VAL_MASK /* value of a slot being reclaimed (any generation) */

/* A state ahead of the caller's time by less than this is two threads whose clock reads raced
 * (one was preempted between reading the clock and deciding): the stored timeline wins and
 * nothing is lost. Ahead by more, the clock stepped back (rl_acquire_at): the state is moved to
 * the new time, so the key is usable again within one refill and retry_after stays honest. */
#define RL_CLOCK_SLACK_NS 1000000000ULL

/* Slot control word (rl_slot.ctl). */
#define RL_CTL_EMPTY    0ULL
#define RL_CTL_TOMB     2ULL
#define RL_CTL_TAG_MASK 3ULL
/* Bits 2..15 of a PENDING or LIVE word: the claim's nonce, so that every claim of a slot is a
 * different word (a stalled claimant cannot publish, or a stale updater use, somebody else's
 * claim of the same key). Bits 16..63: the key's fingerprint. */
#define RL_CTL_NONCE_MASK 0xfffcULL
#define RL_CTL_FP_MASK    (~0xffffULL)
#define RL_CTL_PENDING    1ULL
#define RL_CTL_LIVE       3ULL

/* The header. Static fields are written once by the initialiser before `magic` is published
 * and covered by `static_check`; dynamic counters sit on their own cache lines. */
struct rl_shm_header {
    _Atomic uint64_t magic;         /* 0: RL_MAGIC, published last (release) */
    uint32_t layout_version;        /* 8 */
    uint32_t header_size;           /* 12 */
    uint32_t slot_size;             /* 16 */
    uint32_t limit_size;            /* 20 */
    uint64_t capacity;              /* 24 */
    uint64_t nslots;                /* 32 */
    uint64_t nlimits;               /* 40 */
    uint64_t limits_off;            /* 48 */
    uint64_t slots_off;             /* 56 */
    uint64_t total_size;            /* 64 */
    int64_t clock_offset_ns;        /* 72: realtime - monotonic at creation */
    uint64_t time_base_ns;          /* 80: RL_TIME_BASE_NS */
    uint64_t birth_ns;              /* 88 */
    uint32_t creator_pid;           /* 96 */
    uint32_t creator_uid;           /* 100 */
    uint64_t static_check;          /* 104: XXH3 of [8, 104) and secret */
    uint8_t pad0[16];               /* 112 */
    uint8_t secret[RL_SECRET_SIZE]; /* 128: hash secret (random at creation) */
    uint8_t pad1[64];               /* 320: to 384 */
    /* 384: who is initialising (pid); CAS-claimed, see segment.c */
    _Alignas(RL_CACHELINE) _Atomic uint32_t init_owner;
    _Alignas(RL_CACHELINE) _Atomic uint64_t used;      /* slots PENDING or LIVE */
    _Alignas(RL_CACHELINE) _Atomic uint64_t max_probe; /* longest displacement ever claimed */
    _Alignas(RL_CACHELINE) _Atomic uint64_t enospc;    /* -ENOSPC answers */
    _Atomic uint64_t reclaimed;                        /* slots reclaimed */
    _Atomic uint64_t limits_used;                      /* limit records in use */
    /* The published rule set (cfgstore.c). */
    _Alignas(RL_CACHELINE) _Atomic uint64_t cfg_gen; /* generation g lives in buffer g & 1 */
    /* The audit ring (rules.c): next record sequence, records dropped by sampling. */
    _Alignas(RL_CACHELINE) _Atomic uint64_t audit_head;
    _Atomic uint64_t audit_dropped;
    /* GLOBAL sync (sync/global.c). The leader's lease: epoch << 32 | holder token (0: none),
     * its heartbeat (segment clock), pid and statistics. Written by the leader, read by all. */
    _Alignas(RL_CACHELINE) _Atomic uint64_t sync_lease;
    _Atomic uint64_t sync_heartbeat_ns;
    _Atomic uint64_t sync_leader_pid;
    _Atomic uint64_t sync_last_ok_ns; /* the last batch Redis answered (0: never) */
    _Atomic uint64_t sync_hosts;      /* hosts sharing GLOBAL keys, as Redis last said (0: ?) */
    _Atomic uint64_t sync_rounds, sync_keys, sync_errors;
    /* Read by every GLOBAL check: leases may be used until this time (segment clock); past it
     * the host's fallback applies. Its own line: written once per sync round. */
    _Alignas(RL_CACHELINE) _Atomic uint64_t sync_valid_until_ns;
    _Atomic uint64_t sync_failing; /* 1 while the leader's rounds fail (Redis unreachable) */
    /* Early sync: a GLOBAL check denied for want of lease bumps the futex word (at most once per
     * RL_SYNC_KICK_NS, arbitrated by a CAS on kick_ns) and wakes the leader. */
    _Alignas(RL_CACHELINE) _Atomic uint64_t sync_kick_ns;
    _Atomic uint32_t sync_futex;
    _Atomic uint32_t sync_pad;
    _Atomic uint64_t sync_stale_refused; /* batches Redis refused: our epoch was old (fencing) */
};
_Static_assert(offsetof(struct rl_shm_header, secret) == 128, "header layout");
_Static_assert(offsetof(struct rl_shm_header, init_owner) == 384, "header layout");
_Static_assert(sizeof(struct rl_shm_header) <= RL_HEADER_SIZE, "header fits its page");

/* One limit, recorded once per segment; a slot refers to it by index (its limit id). The record
 * is a pure function of its signature, so any process may (re)write its fields while it is
 * PENDING: all writers write the same values. */
struct rl_limit_rec {
    _Atomic uint64_t sig; /* 0 EMPTY; (hash & ~3) | PENDING/LIVE tag */
    _Atomic uint64_t requests;
    _Atomic uint64_t window_ms;
    _Atomic uint64_t burst;
    _Atomic uint64_t kind; /* algorithm | mode << 8 | scope << 16 */
    _Atomic uint64_t redis_ttl_ms;
    _Atomic uint64_t reserved[2];
};
_Static_assert(sizeof(struct rl_limit_rec) == 64, "limit record is one cache line");

/* One key: one cache line.
 *
 * GLOBAL slots use the words differently (sync/global.c, docs/design.md section 10):
 *   state    [gen:4][consumed:60]  units this host admitted since the slot was made (monotonic)
 *   ceiling  what this host may reach: allowed iff consumed + cost <= ceiling (leader raises it)
 *   synced   the consumption Redis has acknowledged
 *   meta     lid (32) | keylen (16) | known (1) | denied (15): `known` is set once Redis has
 *            seen this slot; `denied` counts denied attempts (wraps; the leader takes deltas)
 *   keyp     the key's cluster id (XXH3-128, the same on every host) and its first 8 bytes */
struct rl_slot {
    _Atomic uint64_t ctl;     /* EMPTY, TOMB, PENDING(fp), LIVE(fp) */
    _Atomic uint64_t state;   /* [gen:4][value:60]; the algorithm's whole state */
    _Atomic uint64_t ceiling; /* GLOBAL mode (Redis sync): allowance ceiling; 0 otherwise */
    _Atomic uint64_t synced;  /* GLOBAL mode: consumption already reported */
    _Atomic uint64_t meta;    /* limit id (32) | key length (16) | flags (16) */
    _Atomic uint64_t keyp[3]; /* the key's first 24 bytes, zero padded */
};
_Static_assert(sizeof(struct rl_slot) == RL_CACHELINE, "a slot is one cache line");

#define RL_META_ID_MASK    0x0000ffffffffffffULL /* lid | keylen: what identifies the slot */
#define RL_META_KNOWN      (1ULL << 48)
#define RL_META_DENIED_ONE (1ULL << 49)
#define RL_META_DENIED(m)  ((m) >> 49)
#define RL_META_DENIED_MOD (1u << 15)

/* Regions after the limit table; their sizes are fixed (not derived from the capacity). */
#define RL_CFG_MAX       (64u * 1024u) /* bytes of canonical YAML one rule set may take */
#define RL_AUDIT_RECORDS 1024u         /* records in the audit ring (a power of two) */
#define RL_STATS_STRIPES 64u           /* counter stripes (a power of two) */

/* One of the two rule-set buffers (double buffering: writers fill the inactive one). All words
 * are atomics so that a reader racing a writer reads garbage, detects it by the checksum, and
 * never has a data race. */
struct rl_cfg_buf {
    _Atomic uint64_t gen;   /* generation this buffer holds */
    _Atomic uint64_t len;   /* bytes of text */
    _Atomic uint64_t check; /* XXH3 of the text, seeded with gen */
    _Atomic uint64_t pad[5];
    _Atomic uint64_t text[RL_CFG_MAX / 8];
};

/* One audit record (a decision), a seqlock of its own: seq is odd while being written. */
struct rl_audit_rec {
    _Atomic uint64_t seq; /* 2n + 1 while record n is written, 2n + 2 when complete */
    _Atomic uint64_t time_ns;
    _Atomic uint64_t info; /* pid (32) | allowed (1) | layer (5) | scope (4) | algo (4) | flags */
    _Atomic uint64_t limit;
    _Atomic uint64_t retry_after_ms;
    _Atomic uint64_t key[3]; /* the key's first 24 bytes */
};
_Static_assert(sizeof(struct rl_audit_rec) == 64, "audit record is one cache line");

/* One stripe of counters: each thread adds to its own stripe; readers sum the stripes.
 * Decisions are counted per endpoint (struct rl_ep_ctr); these are the rarer events. A check
 * therefore adds to one counter (its endpoint's allowed or denied), or to `unruled` (no rule
 * set at all) or `bypassed`; checks = allowed + denied is derived on read. */
struct rl_stats_stripe {
    _Atomic uint64_t unruled, bypassed, shadow_denied, full_open, full_closed, warnings;
    _Atomic uint64_t spare[2];
};
_Static_assert(sizeof(struct rl_stats_stripe) == 64, "a stripe is one cache line");

/* Endpoint counters (rules.c "endpoint counters"). The directory names each endpoint (a rule's
 * pattern, or "(default)" for requests no rule matched) once per segment; record 0 is
 * "(other)", where endpoints go when the directory is full. Decisions are counted in
 * RL_EP_STRIPES stripes of RL_EP_MAX counter pairs: a thread adds to its stripe's row only.
 * Endpoint ids are stable while the segment lives (across rule reloads), so counts survive a
 * reload and a removed rule's counts stay readable. */
#define RL_EP_MAX     256u /* directory records (a power of two) */
#define RL_EP_STRIPES 16u  /* counter stripes (a power of two, <= RL_STATS_STRIPES) */
#define RL_EP_NAME    64u  /* bytes of a name, NUL included */
#define RL_EP_LIVE    1ULL /* id bit 0: the name is complete */
struct rl_ep_rec {
    _Atomic uint64_t id; /* 0 EMPTY; hash (bit 0 clear): claimed, name being written; | LIVE */
    /* Monitoring rollups (sync/monitor.c): the totals the sync leader has pushed to Redis. */
    _Atomic uint64_t pushed_allowed, pushed_denied;
    _Atomic uint64_t spare[5];
    _Atomic uint64_t name[RL_EP_NAME / 8]; /* NUL padded */
};
_Static_assert(sizeof(struct rl_ep_rec) == 128, "a directory record is two cache lines");
struct rl_ep_ctr {
    _Atomic uint64_t allowed, denied;
};

/* Derived, process-local parameters of a limit (never stored in the segment). */
struct rl_params {
    rl_algorithm algo;
    uint64_t limit; /* what rl_result.limit reports */
    uint64_t T;     /* token bucket / GCRA: state units per request, floor(W / L) >= 1 */
    uint64_t T_inv; /* floor((2^64 - 1) / T), for rl__div_T() */
    uint64_t tau;   /* token bucket / GCRA: C * T, the capacity in state units */
    /* Token bucket / GCRA state unit u = W / (L * T) ns, in [1, 2) (exactly 1 when L divides
     * W): one request is exactly T units, so refill is exact (design.md section 6). */
    uint64_t LT;       /* L * T (<= W): u = W / LT */
    uint64_t u_inv;    /* floor(2^64 * LT / W), capped at 2^64 - 1: ns -> units */
    uint64_t u_frac;   /* floor(2^64 * (W - LT) / LT): units -> ns, u = 1 + u_frac / 2^64 */
    bool unit_ns;      /* W == LT: the unit is the nanosecond */
    uint64_t W;        /* windows: window length in ns */
    uint64_t L;        /* windows: requests per window */
    uint64_t base_idx; /* windows: RL_TIME_BASE_NS / W */
    unsigned cb;       /* sliding: bits per count */
    unsigned ibits;    /* sliding: bits of window index kept */
    uint64_t gsig;     /* the limit's cluster-wide identity (GLOBAL keys hash it in) */
};

/* One algorithm: everything that knows how its 60-bit value is encoded. `aux` is the slot's
 * `ceiling` word, which LOCAL limits may use as a companion of the state (the sliding window
 * keeps its last window index there, see algo.c): decide() and refund() may change *aux; the
 * caller raises it before committing the state, or lowers it after (table.c). */
struct rl_algo_ops {
    const char *name;
    /* Validates lim and fills p; returns 0 or -EINVAL / -ERANGE (message set). */
    int (*params)(const rl_limit *lim, struct rl_params *p);
    /* Decides `cost` at time t from value v. Fills out; returns true when *nv must be stored. */
    /* slack: how far ahead of t a stored state may be and still count as a racing thread's
     * (the stored timeline wins) rather than a clock that stepped back (the state moves to t):
     * RL_CLOCK_SLACK_NS for caller-given times, UINT64_MAX for the segment's own clock, which
     * never steps back (a thread stalled after reading it is only late). */
    bool (*decide)(const struct rl_params *p, uint64_t v, uint64_t *aux, uint64_t t, uint64_t cost,
                   uint64_t slack, uint64_t *nv, rl_result *out);
    /* The value after giving back `cost` at time t (may equal v: nothing to give back). */
    uint64_t (*refund)(const struct rl_params *p, uint64_t v, uint64_t *aux, uint64_t t,
                       uint64_t cost);
    /* True when v at time t is equivalent to a brand-new key; *idle_ns says for how long. */
    bool (*is_fresh)(const struct rl_params *p, uint64_t v, uint64_t aux, uint64_t t,
                     uint64_t *idle_ns);
    /* Structural validity of a value (rl_check_segment). */
    bool (*valid)(const struct rl_params *p, uint64_t v);
};

extern const struct rl_algo_ops *const rl__algos[RL_ALGORITHM_COUNT];

/* Where every region of a segment lies (segment.c). */
struct rl_geometry {
    uint64_t nslots, nlimits, limits_off, cfg_off, audit_off, stats_off, ep_dir_off, ep_ctr_off,
        slots_off, total;
};

/* The handle. */
struct rl {
    unsigned char *base; /* the mapping */
    size_t map_size;
    struct rl_shm_header *hdr;
    struct rl_limit_rec *limits;
    struct rl_slot *slots;
    uint64_t nslots, nlimits;
    int64_t clock_offset_ns;
    uint64_t uid;                      /* identifies the segment for per-thread caches */
    int fd;                            /* the segment's file: writers' OFD lock (cfgstore.c) */
    struct rl_geometry geo;            /* validated at attach: every region's offset */
    uint64_t capacity, static_check;   /* from the validated header copy */
    struct rl_cfg_buf *cfg_bufs;       /* [2] */
    struct rl_audit_rec *audit;        /* [RL_AUDIT_RECORDS] */
    struct rl_stats_stripe *stats;     /* [RL_STATS_STRIPES] */
    struct rl_ep_rec *ep_dir;          /* [RL_EP_MAX] */
    struct rl_ep_ctr *ep_ctr;          /* [RL_EP_STRIPES][RL_EP_MAX] */
    bool count;                        /* decision counters on (not RL_OPEN_NO_STATS) */
    struct rl_rules_rt *_Atomic rules; /* this process's compiled rule set (RCU: rules.c) */
    void *rules_lock;                  /* pthread_mutex_t *, serialises rebuilds (rules.c) */
    _Atomic uint64_t rules_failed_gen; /* a generation that failed to compile here */
    int enabled;                       /* rl_options.enabled */
    /* The remote modes (lib/remote.h): set by sync/ at rl_open when the handle has Redis, NULL
     * otherwise. The core calls remote_ops only for STRICT and GLOBAL limits; `strict` and
     * `global` are opaque markers it tests for "this mode has Redis". */
    const struct rl_remote_ops *remote_ops;
    struct rl_remote *remote;
    struct rl_strict *strict;
    struct rl_global *global;
    _Atomic int remote_forked; /* 1 in a forked child until the first GLOBAL check restarts sync */
    int fallback;              /* rl_options.fallback */
    struct rl *next_handle;    /* the process's list of handles (api.c, for fork) */
    char name[256];
};

/* clock.c (rl__mono_ns: lib/clock.h) */
/* The segment's clock: ns since the epoch, on CLOCK_MONOTONIC. */
static inline uint64_t rl__clock(const struct rl *rl)
{
    return (uint64_t)((int64_t)rl__mono_ns() + rl->clock_offset_ns);
}

/* thread.c: starts fn(arg) on a new thread *t with every signal blocked (the caller's mask is
 * restored before it returns), named `name` (15 bytes at most; NULL: unnamed). Every thread rl
 * starts goes through here, so none takes the host process's signals. Returns 0 or a positive
 * errno from pthread_create (EAGAIN: no more threads). Any thread. */
int rl__thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *name);

/* segment.c */
/* The pid of a process holding a lock on byte `byte` of the open file fd (from /proc/locks),
 * 0 when none or unknown: for messages that name a stuck process. */
int rl__lock_holder_pid(int fd, off_t byte);
int rl__segment_open(struct rl *rl, const rl_options *o);
struct rl_geometry rl__geometry_for(uint64_t capacity);
void rl__segment_close(struct rl *rl);
int rl__validate_name(const char *name);
uint64_t rl__slots_for(uint64_t capacity);
uint64_t rl__limits_for(uint64_t capacity);

/* rules.c */
int rl__rules_open(struct rl *rl, const rl_options *o);
/* Endpoint directory record i's name into out[RL_EP_NAME]: false when unused (or not yet
 * named); its totals over the stripes. Any thread, never blocks. */
bool rl__ep_name(const struct rl *rl, unsigned i, char *out);
void rl__ep_totals(const struct rl *rl, unsigned i, uint64_t *allowed, uint64_t *denied);
/* The rule set's `sync:` values (0 / RL_FALLBACK_DEFAULT when it leaves them unset). */
void rl__rules_sync_settings(struct rl *rl, uint64_t *interval_ms, int *fallback);
void rl__rules_close(struct rl *rl);

/* table.c */
/* slack: RL_CLOCK_SLACK_NS when `now` came from a caller, UINT64_MAX for the segment's clock
 * (see struct rl_algo_ops.decide). */
int rl__acquire_key(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                    uint64_t cost, uint64_t now, uint64_t slack, rl_result *out);
/* The same with the limit's id and parameters already known (rl_check's compiled layers). */
int rl__acquire_lid(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                    const struct rl_params *p, uint32_t lid, uint64_t cost, uint64_t now,
                    uint64_t slack, rl_result *out);
int rl__refund_key(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                   uint64_t cost, uint64_t now);
const struct rl_params *rl__limit_id(struct rl *rl, const rl_limit *lim, uint32_t *lid, int *err);
int rl__limit_get(const struct rl *rl, uint32_t lid, rl_limit *lim, struct rl_params *p);
/* The cluster-wide identity of a limit (hash of its fields, not of its per-segment id). */
uint64_t rl__limit_gsig(const rl_limit *lim);

/* ThreadSanitizer cannot see that an RCU grace period orders every reader's accesses before the
 * writer's free: readers "release" the object they used at read-unlock and the writer
 * "acquires" it after the grace period (no code in other builds). */
#if defined(__SANITIZE_THREAD__)
#define RL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RL_TSAN 1
#endif
#endif
#ifdef RL_TSAN
#include <sanitizer/tsan_interface.h>
#define RL_TSAN_RELEASE(p) __tsan_release((void *)(p))
#define RL_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define RL_TSAN_RELEASE(p) ((void)(p))
#define RL_TSAN_ACQUIRE(p) ((void)(p))
#endif

/* Thread-locals read on the hot path: the initial-exec model makes them one instruction instead of
 * a __tls_get_addr call in the shared library (glibc keeps static TLS room for this). */
#define RL_TLS _Thread_local __attribute__((tls_model("initial-exec")))

static inline void rl__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* x / p->T without a hardware division (20-40 cycles): a multiply by the precomputed reciprocal
 * underestimates the quotient by at most 2, and the loop corrects it exactly. */
static inline uint64_t rl__div_T(const struct rl_params *p, uint64_t x)
{
    uint64_t q = (uint64_t)(((rl_u128)x * p->T_inv) >> 64);
    while ((rl_u128)(q + 1) * p->T <= x)
        q++;
    return q;
}

/* Nanoseconds since RL_TIME_BASE_NS -> whole token bucket units (floor), exactly: *on_grid
 * says whether ns * LT / W is an integer. A multiply by the precomputed reciprocal gives the
 * quotient or one less (the reciprocal is low by < 1 and ns < 2^64); one exact check fixes it. */
static inline uint64_t rl__ns_to_units(const struct rl_params *p, uint64_t ns, bool *on_grid)
{
    if (p->unit_ns) {
        *on_grid = true;
        return ns;
    }
    uint64_t q = (uint64_t)(((rl_u128)ns * p->u_inv) >> 64);
    rl_u128 x = (rl_u128)ns * p->LT, qw = (rl_u128)q * p->W;
    while (qw + p->W <= x) {
        q++;
        qw += p->W;
    }
    *on_grid = qw == x;
    return q;
}

/* ceil(x * u) in ns, exactly, for x < 2^62 units: x * u = x + x * (W - LT) / LT. */
static inline uint64_t rl__units_to_ns_ceil(const struct rl_params *p, uint64_t x)
{
    if (p->unit_ns)
        return x;
    uint64_t q = (uint64_t)(((rl_u128)x * p->u_frac) >> 64);
    rl_u128 a = (rl_u128)x * (p->W - p->LT), ql = (rl_u128)q * p->LT;
    while (ql + p->LT <= a) {
        q++;
        ql += p->LT;
    }
    return x + q + (ql != a);
}

/* ceil(n * window / requests) ns: the exact time n requests take to refill (n <= capacity). */
static inline uint64_t rl__tokens_ns_ceil(const struct rl_params *p, uint64_t n)
{
    return rl__units_to_ns_ceil(p, n * p->T);
}

/* The GLOBAL sync's wake-up word (header.sync_futex): checks bump it, the leader waits on it. */
#define RL_SYNC_KICK_NS 10000000ULL /* early syncs: at most one per 10 ms per segment */
/* FUTEX_WAKE of every waiter on a word in the shared mapping (segment.c). Any thread. */
void rl__futex_wake(_Atomic uint32_t *word);

/* fork.c: the library's one pthread_atfork. A module registers its handlers once (static
 * storage; registration is idempotent); prepare runs in the reverse order of registration,
 * parent and child in order, as pthread_atfork's own. Child handlers run with one thread and
 * must not allocate or block. */
struct rl_fork_hook {
    void (*prepare)(void);
    void (*parent)(void);
    void (*child)(void);
    struct rl_fork_hook *next; /* fork.c's */
    int registered;            /* fork.c's */
};
void rl__fork_register(struct rl_fork_hook *hook);

static inline uint64_t rl__ceil_ms(uint64_t ns)
{
    return ns / 1000000u + (ns % 1000000u != 0);
}

#endif /* RL_INTERNAL_H */
