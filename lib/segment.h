/*
 * The segment's format: what every process that maps it agrees on (docs/design.md "Segment
 * layout" is the prose version of this file), and segment.c's functions. Internal; not ABI.
 *
 *   offset 0      struct rl_shm_header   (4096 bytes, one page; the GLOBAL sync's words included)
 *   limits_off    nlimits x struct rl_limit_rec   (64 bytes each)
 *   cfg_off       2 x struct rl_cfg_buf           (the published rule set, double buffered)
 *   audit_off     RL_AUDIT_RECORDS x struct rl_audit_rec
 *   stats_off     RL_STATS_STRIPES x struct rl_stats_stripe
 *   ep_dir_off    RL_EP_MAX x struct rl_ep_rec    (the endpoint directory)
 *   ep_ctr_off    RL_EP_STRIPES x RL_EP_MAX x struct rl_ep_ctr
 *   slots_off     nslots x struct rl_slot         (64 bytes each, cache-line aligned)
 * (struct rl_geometry below has every offset; segment.c computes and validates them.)
 *
 * Everything inside the segment is addressed by offsets and indices, never by pointers, and every
 * offset or index read from the segment is bounds-checked before use.
 */
#ifndef RL_LIB_SEGMENT_H
#define RL_LIB_SEGMENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rl.h"

/* Every word shared between processes is one of these; they must be lock-free (address-free),
 * or a libatomic fallback would take a process-local lock. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shared 64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "shared 32-bit atomics must be lock-free");
_Static_assert(sizeof(_Atomic uint64_t) == 8, "atomic words must be plain 64-bit words");

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

/* Where every region of a segment lies (segment.c). */
struct rl_geometry {
    uint64_t nslots, nlimits, limits_off, cfg_off, audit_off, stats_off, ep_dir_off, ep_ctr_off,
        slots_off, total;
};

/* The GLOBAL sync's wake-up word (header.sync_futex): checks bump it, the leader waits on it. */
#define RL_SYNC_KICK_NS 10000000ULL /* early syncs: at most one per 10 ms per segment */
/* FUTEX_WAKE of every waiter on a word in the shared mapping (segment.c). Any thread. */
void rl__futex_wake(_Atomic uint32_t *word);

struct rl;
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

#endif
