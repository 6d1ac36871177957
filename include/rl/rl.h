/*
 * rl: a rate limiter for high-throughput C services.
 *
 * Worker processes on one host attach one POSIX shared-memory segment by name and decide each
 * request there with one compare-and-swap on one 64-bit word: no lock, no allocation, no system
 * call besides one vDSO clock read. docs/design.md carries the segment layout, every memory
 * ordering and the proofs; docs/api.md walks through this header.
 *
 * Conventions for every function below:
 *  - Return 0 (or a count) on success and a negative errno-style code on error; rl_strerror()
 *    names a code, rl_errmsg() gives the calling thread's last detailed message (what, where,
 *    what to do).
 *  - "Any thread": may be called concurrently from any number of threads of any number of
 *    processes attached to the same segment.
 *  - Nothing here keeps a pointer to caller memory after it returns, unless it says so.
 *  - Time is nanoseconds since the Unix epoch (uint64_t). rl_acquire() reads the segment's clock,
 *    which is CLOCK_MONOTONIC plus an offset fixed in the segment when it was created, so a step
 *    of the wall clock (NTP, an operator) never refills nor freezes a bucket.
 */
#ifndef RL_RL_H
#define RL_RL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rl_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RL_BUILDING_LIBRARY) && defined(__GNUC__)
#define RL_API __attribute__((visibility("default")))
#else
#define RL_API
#endif

/* -------------------------------------------------------------------------------------------- */
/* Segment handle                                                                                 */

/** One attached segment. Opaque; safe to share between threads (see rl_open). */
typedef struct rl rl_t;

/** Bits for rl_options.flags. */
enum {
    RL_OPEN_NOCREATE = 1u << 0,      /**< attach only: -ENOENT when the segment does not exist */
    RL_OPEN_ALLOW_FOREIGN = 1u << 1, /**< attach a segment owned by another uid (group access) */
};

/**
 * Options for rl_open(). Always initialise with rl_options_init(), then set what you need: the
 * struct grows at its end in later versions and `size` tells the library which version the
 * caller was compiled against.
 */
typedef struct rl_options {
    size_t size;          /**< sizeof(rl_options) as compiled by the caller; set by init */
    const char *shm_name; /**< "/rl-default" by default; "/" then 1..200 of [A-Za-z0-9._-] */
    size_t capacity;      /**< keys the segment is guaranteed to hold; 65536 by default */
    mode_t mode;          /**< permission bits of a new segment; 0600 by default */
    unsigned flags;       /**< RL_OPEN_* bits; 0 by default */
    /* Later issues add redis_url, sync_interval_ms, fallback, ... here, before reserved[]. */
    uint64_t reserved[16]; /**< must stay zero */
} rl_options;

/** Fills *o with the defaults above. Never fails; does not allocate. */
RL_API void rl_options_init(rl_options *o);

/**
 * Creates the segment named o->shm_name or attaches to it when it exists.
 *
 * Creation reserves all memory up front (posix_fallocate), so a full /dev/shm fails here with
 * -ENOSPC rather than with SIGBUS later. Two processes opening a new name at once end attached
 * to one initialised segment; a creator that died half-way is detected and its segment
 * re-initialised. Attaching validates the whole header and refuses, with a message in
 * rl_errmsg(): another layout version (-EPROTO), a truncated, garbage or corrupted segment
 * (-EBADMSG), a segment of another uid without RL_OPEN_ALLOW_FOREIGN (-EPERM), a permission
 * problem (-EACCES), a bad name (-EINVAL). When the segment exists its own capacity applies and
 * o->capacity is ignored.
 *
 * Blocks: only while another process is initialising the same new segment (bounded, ~5 s).
 * Allocates: the handle. On success *out owns it until rl_close().
 *
 * The handle may be used by any number of threads at once. After fork() the child may use an
 * inherited handle at once (the mapping is shared); it may also rl_close() it and open again.
 */
RL_API int rl_open(rl_t **out, const rl_options *o);

/** Detaches and frees *rl, then sets *rl to NULL. NULL or *rl == NULL is a no-op. */
RL_API void rl_close(rl_t **rl);

/**
 * Removes the segment name; attached processes keep their mapping until they close it.
 * Returns 0, -ENOENT when there is no such segment, -EINVAL for a bad name.
 */
RL_API int rl_unlink(const char *shm_name);

/* -------------------------------------------------------------------------------------------- */
/* Limits and decisions                                                                           */

typedef enum {
    RL_TOKEN_BUCKET = 0,   /**< capacity `burst`, refill `requests` per `window_ms`, starts full */
    RL_SLIDING_WINDOW = 1, /**< weighted two-window counter: `requests` per sliding `window_ms` */
    RL_FIXED_WINDOW = 2,   /**< `requests` per window aligned to multiples of `window_ms` */
    RL_GCRA = 3,           /**< redis-cell conventions: limit = burst + 1 (burst 0: = requests) */
} rl_algorithm;
#define RL_ALGORITHM_COUNT 4

/** Which request attribute a rule keys on (used by the rules layer, rl_check()). */
typedef enum { RL_SCOPE_IP = 0, RL_SCOPE_USER, RL_SCOPE_GLOBAL, RL_SCOPE_ENDPOINT } rl_scope;

/** Where a limit is enforced. LOCAL: this host's segment only. GLOBAL, STRICT: with Redis. */
typedef enum { RL_MODE_LOCAL = 0, RL_MODE_GLOBAL, RL_MODE_STRICT } rl_mode;

/**
 * One limit. A zero-initialised struct plus requests and window_ms is a valid LOCAL token
 * bucket. Supported ranges: 1 <= requests, 1 <= window_ms <= 10 years, at most one request per
 * nanosecond (requests <= window_ms * 1e6); for RL_SLIDING_WINDOW requests <= 4194303; burst
 * <= 2^40 and burst x (window / requests) <= 2^59 ns (~18 years). A key's state belongs to the key
 * together with its limit: using the same key bytes with another limit addresses another,
 * independent counter (the old one ages out and is reclaimed), so a changed limit starts fresh and
 * two limits never corrupt each other.
 */
typedef struct rl_limit {
    uint64_t requests;      /**< requests allowed per window (the rate's numerator) */
    uint64_t window_ms;     /**< window length in milliseconds */
    uint64_t burst;         /**< token bucket capacity / GCRA max burst; 0 means = requests */
    rl_algorithm algorithm; /**< RL_TOKEN_BUCKET by default (0) */
    rl_scope scope;         /**< for rl_check(); ignored by rl_acquire() */
    rl_mode mode;           /**< RL_MODE_LOCAL (0); others need Redis (later issue) */
    uint64_t redis_ttl_ms;  /**< Redis key TTL for GLOBAL/STRICT; 0 = 2 x window */
    uint64_t reserved[4];   /**< must stay zero */
} rl_limit;

/** retry_after_ms when a request can never be allowed (its cost exceeds the capacity). */
#define RL_RETRY_NEVER UINT64_MAX

/** The answer to one acquire. Times are rounded up to whole milliseconds. */
typedef struct rl_result {
    bool allowed;            /**< the decision */
    uint64_t limit;          /**< the most the key can take at once (X-RateLimit-Limit) */
    uint64_t remaining;      /**< whole requests still available after this one */
    uint64_t retry_after_ms; /**< when denied: wait this long for `cost` to fit; 0 when allowed */
    uint64_t reset_after_ms; /**< time until the key is back to its fresh (full) state */
} rl_result;

/** Longest key accepted, in bytes (-E2BIG beyond). Keys are arbitrary bytes. */
#define RL_KEY_MAX 512

/**
 * Takes `cost` units for `key` under `lim` at the segment's current time.
 *
 * Returns 0 when a decision was made (allowed or denied is out->allowed) or a negative code:
 * -EINVAL (a NULL argument, keylen 0, requests or window_ms 0, an unknown enum value), -ERANGE
 * (a limit beyond the supported ranges above), -E2BIG (keylen > RL_KEY_MAX),
 * -ENOSPC (the table is full and nothing in reach is reclaimable; counted in the segment),
 * -ENOTSUP (a GLOBAL or STRICT limit without Redis support), -EAGAIN (10,000 restarts lost to
 * concurrent inserts of the same key: not seen in practice). All or nothing: `cost` is taken
 * only when all of it is available, else nothing is consumed. cost 0 peeks.
 *
 * Any thread; never blocks; never allocates; lock-free (a failed CAS means another request
 * made progress).
 */
RL_API int rl_acquire(rl_t *rl, const void *key, size_t keylen, const rl_limit *lim, uint64_t cost,
                      rl_result *out);

/** rl_acquire() at a caller-given time (ns since the epoch): for tests and simulation. */
RL_API int rl_acquire_at(rl_t *rl, const void *key, size_t keylen, const rl_limit *lim,
                         uint64_t cost, uint64_t now_ns, rl_result *out);

/**
 * Gives back `cost` units that an earlier allowed rl_acquire() of the same key and limit took,
 * e.g. when a later layer of a layered check denies. Never raises a key above its fresh state;
 * units taken in a window that has since ended are not returned (that window is gone). A key
 * not in the table is a no-op. Same contract as rl_acquire(); returns 0 or a negative code.
 */
RL_API int rl_refund(rl_t *rl, const void *key, size_t keylen, const rl_limit *lim, uint64_t cost);
RL_API int rl_refund_at(rl_t *rl, const void *key, size_t keylen, const rl_limit *lim,
                        uint64_t cost, uint64_t now_ns);

/**
 * The clock rl_acquire() uses, in ns since the epoch: CLOCK_MONOTONIC plus the offset of the
 * first segment this process opened (before any open: a process-wide offset taken at first
 * call). Any thread; never blocks. rl_clock_ns() is the clock of one given segment.
 */
RL_API uint64_t rl_now_ns(void);
RL_API uint64_t rl_clock_ns(const rl_t *rl);

/* -------------------------------------------------------------------------------------------- */
/* Inspection (rlctl, tests)                                                                      */

/** Counters and geometry of a segment, read without stopping anyone. */
typedef struct rl_segment_info {
    uint32_t layout_version;
    uint64_t capacity;      /**< keys guaranteed to fit */
    uint64_t slots;         /**< slots in the table (>= capacity) */
    uint64_t slots_in_use;  /**< LIVE + being inserted */
    uint64_t limits_in_use; /**< distinct limits recorded in the segment */
    uint64_t limits_max;    /**< size of the segment's limit table */
    uint64_t enospc;        /**< acquires refused with -ENOSPC since creation */
    uint64_t reclaimed;     /**< slots reclaimed since creation */
    uint64_t segment_bytes; /**< size of the mapping */
    pid_t creator_pid;
    uint64_t birth_ns;  /**< creation time, ns since the epoch */
    uint64_t max_probe; /**< longest probe distance any key has needed */
} rl_segment_info;

/** Fills *out. Any thread; never blocks. Returns 0 or -EINVAL. */
RL_API int rl_segment_info_get(const rl_t *rl, rl_segment_info *out);

/** One live key as seen by rl_foreach_key(). Pointers are valid during the callback only. */
typedef struct rl_key_view {
    uint64_t slot;   /**< index in the table */
    const char *key; /**< printable prefix of the key (non-printable bytes as '?') */
    size_t keylen;   /**< the key's full length */
    rl_limit limit;  /**< the limit the key is counted under */
    rl_result state; /**< what a peek (cost 0) answers at `now` */
} rl_key_view;

/**
 * Calls fn for every live key, stopping early when fn returns non-zero (that value is returned).
 * A snapshot per slot, not of the whole table. Any thread; never blocks; never allocates.
 */
RL_API int rl_foreach_key(rl_t *rl, uint64_t now_ns, int (*fn)(const rl_key_view *kv, void *arg),
                          void *arg);

/**
 * Structural check of the segment: every slot's control word, limit id and state decode.
 * Returns the number of damaged slots (0: sound) or a negative code; when `report` is not NULL
 * a description of each problem goes to it. Any thread; never blocks.
 */
RL_API long rl_check_segment(rl_t *rl, void (*report)(const char *msg, void *arg), void *arg);

/* -------------------------------------------------------------------------------------------- */
/* Errors and version                                                                             */

/** A fixed English description of a negative code returned by rl. Never NULL. */
RL_API const char *rl_strerror(int err);

/**
 * The calling thread's last detailed error message ("segment /x: layout version 3, this library
 * reads 1; ..."), or "" when none. Valid until the thread's next rl call.
 */
RL_API const char *rl_errmsg(void);

/** The library's version string, e.g. "0.1.0" (may differ from RL_VERSION_STRING). */
RL_API const char *rl_version(void);

#ifdef __cplusplus
}
#endif

#endif /* RL_RL_H */
