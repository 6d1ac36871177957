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
    /** With a redis_url: no GLOBAL sync thread for this handle (tools such as rlctl, which use
     *  Redis for health and resets but must never lead the segment's sync). */
    RL_OPEN_NO_SYNC = 1u << 2,
    /** rl_check() through this handle counts nothing (rl_stats, rl_stats_endpoints and the
     *  monitoring rollups miss its decisions): saves the one relaxed add per check that the
     *  counters cost (docs/benchmarks.md measures it). */
    RL_OPEN_NO_STATS = 1u << 3,
    /** Allows a rl_options.mode that lets others write (o+w, e.g. 0666). Without it rl_open
     *  refuses such a mode (-EPERM): any local user could then rewrite the segment's rules, its
     *  bypass list and its counters, i.e. switch every limit off. Share a segment between users
     *  through a group instead (mode 0660, RL_OPEN_ALLOW_FOREIGN). With it, creating such a
     *  segment logs a warning (RL_LOG_WARN). */
    RL_OPEN_WORLD_WRITABLE = 1u << 4,
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
    mode_t mode;          /**< permission bits of a new segment; 0600 by default; o+w needs
                           *   RL_OPEN_WORLD_WRITABLE */
    unsigned flags;       /**< RL_OPEN_* bits; 0 by default */
    /** YAML rule file to publish when the segment has no rule set yet (RL_CONFIG); NULL: the
     *  preset of `environment`. A segment that already has rules keeps them: replace them with
     *  rl_load_config(). */
    const char *config_path;
    /** "development", "staging" or "production" (ENVIRONMENT): the preset used when no
     *  configuration exists; NULL = "production". */
    const char *environment;
    /** 1 (default): limits apply. 0 (RATE_LIMITING_ENABLED=false): every request is allowed
     *  and still counted, as if every rule were a shadow rule. */
    int enabled;
    /** Redis: URL (REDIS_URL; NULL = no Redis: GLOBAL and STRICT layers count locally) and the
     *  size of the STRICT connection pool (REDIS_POOL_SIZE, default 20). */
    const char *redis_url;
    unsigned redis_pool_size;
    /** Monitoring rollups to Redis (ENABLE_RATE_LIMIT_MONITORING; 0 by default): the sync
     *  leader adds the segment's per-endpoint counts to a hash per minute every 10 s, kept
     *  METRICS_RETENTION_DAYS days (1..3650, default 7); rl_stats_cluster() reads them. Needs
     *  redis_url and a sync thread (not RL_OPEN_NO_SYNC). */
    int monitoring;
    unsigned metrics_retention_days;
    /** GLOBAL sync period in ms, 1..60000 (RL_SYNC_INTERVAL_MS). 0 (the default): the rule
     *  set's `sync.interval`, else 100. */
    uint64_t sync_interval_ms;
    /** What GLOBAL and STRICT limits do while Redis is unreachable: RL_FALLBACK_LOCAL (keep
     *  enforcing this host's last share), RL_FALLBACK_OPEN (allow), RL_FALLBACK_CLOSED (deny)
     *  (RL_FALLBACK). RL_FALLBACK_DEFAULT (the default): the rule set's `sync.fallback`, else
     *  LOCAL. */
    int fallback;
    /** Redis budgets in ms (defaults 200 and 100): deadlines, not per-read timeouts, so no peer
     *  can stretch them (trickling bytes, announcing huge replies, not reading). A connect with
     *  its handshake (AUTH, SELECT, PING; sentinel discovery) ends at redis_connect_timeout_ms,
     *  a command at redis_command_timeout_ms. Every call into Redis ends within their SUM from
     *  its start (300 ms by default): one STRICT check (reconnect, script load, NOSCRIPT retry
     *  and the wait for a pooled connection included), rl_health, rl_reset, rl_explain's STRICT
     *  layers (each), one GLOBAL sync batch. Outside the bound: name resolution of a host
     *  name in REDIS_URL (getaddrinfo; a numeric address or unix socket resolves nothing). */
    unsigned redis_connect_timeout_ms;
    unsigned redis_command_timeout_ms;
    /** Hosts expected to share GLOBAL limits (RL_CLUSTER_HOSTS; 0 = unknown): the LOCAL
     *  fallback's share of a limit is limit / max(the host count Redis last gave, this), so a
     *  host that starts while Redis is unreachable, or whose count lags behind hosts that
     *  joined since, never takes more than its share of the expected cluster. */
    uint64_t cluster_hosts;
    /** This host's identity in Redis for GLOBAL limits (RL_HOST_ID). NULL: the host name and
     *  the segment name, so that a host that restarts (even on a new segment) finds its own
     *  leases again. Must be unique in the cluster: set it where host names are not. */
    const char *host_id;
    uint64_t reserved[7]; /**< must stay zero: rl_open refuses a non-zero word (-EINVAL) */
} rl_options;

/** Values of rl_options.fallback. */
enum {
    RL_FALLBACK_DEFAULT = -1, /**< the configuration's `sync.fallback`, else LOCAL */
    RL_FALLBACK_LOCAL = 0,
    RL_FALLBACK_OPEN = 1,
    RL_FALLBACK_CLOSED = 2
};

/** Fills *o with the defaults above. Never fails; does not allocate. */
RL_API void rl_options_init(rl_options *o);

/**
 * Overrides *o (initialised) from the environment: RL_SHM, RL_CONFIG, ENVIRONMENT,
 * RATE_LIMITING_ENABLED, REDIS_URL, REDIS_POOL_SIZE, ENABLE_RATE_LIMIT_MONITORING,
 * METRICS_RETENTION_DAYS, RL_SYNC_INTERVAL_MS, RL_FALLBACK (local|open|closed),
 * RL_CLUSTER_HOSTS. Variables that are unset leave the field alone. An invalid value
 * returns -EINVAL and rl_errmsg() names the variable and what it accepts. The strings put into
 * *o point into the environment (valid while it is not changed). Not thread-safe against setenv.
 */
RL_API int rl_options_from_env(rl_options *o);

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
 *
 * o == NULL means the defaults of rl_options_init(): the segment "/rl-default", created when
 * missing, mode 0600, no Redis. A program that shares the host with others should name its own
 * segment. Options with a non-zero reserved word are refused (-EINVAL). A librl built without
 * Redis (meson -Dredis=disabled) refuses a redis_url (-ENOTSUP, "built without Redis").
 * Options, the config_path file and the redis_url are all checked before any segment is
 * touched: an open refused for one of them creates nothing.
 *
 * Threads rl starts (rl never starts one anywhere else):
 *  - one GLOBAL sync thread ("rl-sync") per handle opened with a redis_url and without
 *    RL_OPEN_NO_SYNC, started by rl_open() and joined by rl_close(). It runs the sync rounds,
 *    the leader election and the monitoring pushes (docs/design.md); the STRICT pool and every
 *    other call run on the caller's thread. A handle without redis_url starts no thread.
 *  - Every rl thread blocks all signals for its whole life (set around pthread_create; the
 *    caller's mask is restored before rl_open returns), so a process-directed signal (SIGTERM,
 *    SIGHUP, SIGCHLD, ...) always goes to one of the host's own threads, and a host that waits
 *    for signals (sigsuspend, sigwaitinfo, epoll_pwait, signalfd) sees every one.
 *  - fork(): the child has no rl thread (POSIX copies only the forking thread). The child's
 *    first GLOBAL check through an inherited handle starts its sync thread again (with a new
 *    identity: the parent's lease stays the parent's); a child that makes no GLOBAL check
 *    starts none. A handle opened in a master process before fork (nginx) therefore costs the
 *    master one thread, and each worker gets its own.
 */
RL_API int rl_open(rl_t **out, const rl_options *o);

/**
 * Detaches and frees *rl, then sets *rl to NULL. NULL or *rl == NULL is a no-op. Blocks only to
 * join the handle's GLOBAL sync thread: at most redis_command_timeout_ms (100 ms by default),
 * even while that thread waits on an unresponsive Redis (its exchange is then cancelled), plus
 * the thread's exit; a leader that is not stuck first pushes its monitoring counts.
 */
RL_API void rl_close(rl_t **rl);

/**
 * Removes the segment name; attached processes keep their mapping until they close it.
 * Returns 0, -ENOENT when there is no such segment, -EINVAL for a bad name.
 */
RL_API int rl_unlink(const char *shm_name);

/* -------------------------------------------------------------------------------------------- */
/* Limits and decisions                                                                           */

typedef enum {
    /** capacity `burst`, refill exactly `requests` per `window_ms` (no rounding of the rate;
     *  docs/design.md section 6 says what is exact), starts full */
    RL_TOKEN_BUCKET = 0,
    RL_SLIDING_WINDOW = 1, /**< weighted two-window counter: `requests` per sliding `window_ms` */
    RL_FIXED_WINDOW = 2,   /**< `requests` per window aligned to multiples of `window_ms` */
    RL_GCRA = 3,           /**< redis-cell conventions: limit = burst + 1 (burst 0: = requests) */
} rl_algorithm;
#define RL_ALGORITHM_COUNT 4

/**
 * Which request attribute a rule's counter is keyed on (rl_check()).
 * RL_SCOPE_IP: the client IP (IPv6 optionally grouped by /64). RL_SCOPE_USER: the user; a request
 * without one is counted under its IP instead. RL_SCOPE_GLOBAL: one counter for everybody.
 * RL_SCOPE_ENDPOINT: one counter per rule (the matched pattern, never the raw path, so clients
 * cannot create keys at will; RL_LIMIT_PER_PATH opts into a bounded number of per-path counters).
 * RL_SCOPE_DESCRIPTOR: the request descriptor named by rl_limit.descriptor (API key, tenant, ...).
 * RL_SCOPE_USER_ENDPOINT: the user (or IP) within this rule's endpoint.
 */
typedef enum {
    RL_SCOPE_IP = 0,
    RL_SCOPE_USER,
    RL_SCOPE_GLOBAL,
    RL_SCOPE_ENDPOINT,
    RL_SCOPE_DESCRIPTOR,
    RL_SCOPE_USER_ENDPOINT,
} rl_scope;
#define RL_SCOPE_COUNT 6

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
    rl_scope scope;         /**< for rl_check(); part of the counter's identity */
    rl_mode mode;           /**< RL_MODE_LOCAL (0); GLOBAL and STRICT need Redis (redis_url) */
    uint64_t redis_ttl_ms;  /**< Redis key TTL for GLOBAL/STRICT; 0 = 2 x window */
    /* The fields below only matter to rl_check() and are not part of the counter's identity. */
    const char *name;       /**< layer name (state survives reorderings); NULL: its position */
    const char *descriptor; /**< RL_SCOPE_DESCRIPTOR: which rl_request descriptor keys it */
    uint32_t flags;         /**< RL_LIMIT_* bits */
    uint32_t warn_permille; /**< flag the layer when usage passes this (0: the rule set's) */
    uint64_t reserved[2];   /**< must stay zero */
} rl_limit;

/** Bits for rl_limit.flags (rl_check() only). */
enum {
    RL_LIMIT_SHADOW = 1u << 0,         /**< evaluated and counted, never denies (dry run) */
    RL_LIMIT_ON_FULL_CLOSED = 1u << 1, /**< deny when the key table is full (default: allow) */
    RL_LIMIT_PER_PATH = 1u << 2,       /**< RL_SCOPE_ENDPOINT: count per raw path, in at most
                                            1024 buckets per rule (bounded, never unbounded) */
};

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
 * made progress). Except a STRICT limit (lim->mode RL_MODE_STRICT): one Redis round trip that
 * returns within redis_connect_timeout_ms + redis_command_timeout_ms of the call (300 ms by
 * default) whatever Redis does, answered by the fallback when Redis cannot answer in time.
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

/**
 * Resets `key` under `lim` to its fresh state (an operator's "forgive": rlctl reset): its slot is
 * dropped from the segment, and for a STRICT or GLOBAL limit its Redis state is deleted too
 * (GLOBAL: the cluster-wide bucket restarts full for every host; leases hosts hold stay theirs).
 * Decisions racing a reset land before or after it, never half-way. A key not in the table is
 * a no-op for the segment (Redis is still cleared). Blocks on Redis for STRICT and GLOBAL (one
 * round trip, within redis_connect_timeout_ms + redis_command_timeout_ms; -EAGAIN, -ETIMEDOUT,
 * ... when Redis cannot answer: the segment part is done anyway). Any thread; allocates nothing
 * on the LOCAL path.
 */
RL_API int rl_reset(rl_t *rl, const void *key, size_t keylen, const rl_limit *lim);

/**
 * Resets whatever key occupies slot `slot` (a rl_key_view.slot from rl_foreach_key): for tools
 * that know a key only by its slot (keys longer than the 24 bytes a slot keeps). A GLOBAL key's
 * Redis state is deleted too (its slot keeps the cluster id). If the slot was reused by another
 * key since it was listed, that key is reset. Returns 0 (also for an empty slot), -EINVAL (bad
 * argument, slot out of range) or a Redis error code. Any thread.
 */
RL_API int rl_reset_slot(rl_t *rl, uint64_t slot);
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
/* Rules: endpoint patterns, layers, tiers, the request check                                     */

/** Layers one request can be checked against: its rule's, the global ones and its tier's. */
#define RL_MAX_LAYERS 16
/** Longest rule pattern or layer name kept in a decision (longer ones are truncated there). */
#define RL_NAME_MAX 64

/** A caller-chosen request attribute, for RL_SCOPE_DESCRIPTOR layers ("api_key", "tenant"). */
typedef struct rl_descriptor {
    const char *name;
    const char *value;
} rl_descriptor;

/**
 * One request, as the caller knows it. Every pointer may be NULL (absent) and is only read
 * during the call. `ip` should come from rl_client_ip(); `user` must be an identity the caller
 * has verified (rl trusts it); `tier` picks the user's tier ("free", "premium", "enterprise", or
 * any tier of the configuration). cost 0 counts as 1.
 */
typedef struct rl_request {
    const char *method; /**< "GET", "POST", ... (case-sensitive, as HTTP) */
    const char *path;   /**< "/api/users" (a query string after '?' is ignored) */
    const char *ip;
    const char *user;
    const char *tier;
    const rl_descriptor *descriptors;
    size_t ndescriptors;
    uint64_t cost;
    uint64_t reserved[4]; /**< must stay zero */
} rl_request;

/** The answer of one layer of a check. */
typedef struct rl_layer {
    bool allowed; /**< this layer's own answer (a shadow layer's too) */
    uint64_t limit, remaining, retry_after_ms, reset_after_ms;
    uint64_t window_ms; /**< the layer's window (for RateLimit-Policy w=) */
    rl_scope scope;
    rl_algorithm algorithm;
    rl_mode mode;
    bool shadow;            /**< a shadow (dry-run) layer: counted, never denies */
    bool warning;           /**< usage passed the warning threshold */
    bool table_full;        /**< the key table was full: on_full decided */
    char rule[RL_NAME_MAX]; /**< the rule: its pattern, "global", "tier:NAME" or "default" */
    char name[RL_NAME_MAX]; /**< the layer's name, or its position ("0", "1", ...) */
} rl_layer;

/** The answer to one request: allowed only if every non-shadow layer allowed. */
typedef struct rl_decision {
    bool allowed;
    bool bypassed;   /**< on the bypass list: allowed without checking, counted */
    bool disabled;   /**< RATE_LIMITING_ENABLED=false: allowed, layers still counted */
    size_t n;        /**< layers[0..n) */
    int limiting;    /**< index of the layer that decides the headers; -1: none */
    uint64_t now_ns; /**< the time of the check */
    uint64_t config_generation;
    rl_layer layers[RL_MAX_LAYERS];
    /** rl_explain() only: the endpoint rl_check() counts this request under (the matched
     *  rule's pattern, truncated to 63 bytes, or "(default)"; a bypassed request has the
     *  endpoint it would have without the bypass list). rl_check()
     *  leaves it alone: copying it would cost every check. */
    char endpoint[64];
} rl_decision;

/**
 * Checks a request against the rule set and takes `cost` from every layer that applies: the
 * most specific rule whose pattern matches (docs/configuration.md, "Precedence"; the rule set's
 * default layers when none matches), then the global layers, then the layers of the request's
 * tier. Allowed only if every non-shadow layer allows; a denied request consumes nothing from
 * any layer (what earlier layers took is refunded: for a moment a concurrent request may see
 * those units missing; a process killed between take and refund leaks at most one cost per
 * layer).
 *
 * Returns 0 with *out filled, or a negative code (-EINVAL for a NULL argument or a request
 * without method or path). A full key table is not an error: the layer's on_full decides and
 * it is flagged. Any thread; never blocks (the first check after a configuration change
 * rebuilds the process's copy of the rules); never allocates except then.
 */
/**
 * The key prefixes of a rule's layers in the segment's current rule set: every key a layer
 * counts starts with its prefix ("<8 hex digits>:", NUL-terminated in 10 bytes). A rule is named
 * by its pattern as written ("POST:/auth/login"), or "default", "global", "tier:NAME". Writes up
 * to n prefixes and returns the number of layers, or -ENOENT (no such rule), -EINVAL. Control
 * plane (rlctl keys --rule, reset --rule): may rebuild this process's copy of the rules.
 */
RL_API int rl_rule_key_prefixes(rl_t *rl, const char *rule, char (*prefixes)[10], size_t n);

RL_API int rl_check(rl_t *rl, const rl_request *req, rl_decision *out);
RL_API int rl_check_at(rl_t *rl, const rl_request *req, uint64_t now_ns, rl_decision *out);

/**
 * What rl_check() would answer for req now, taking nothing and counting nothing (rlctl
 * explain): out as rl_check fills it (each layer's remaining, retry, reset; the rule in
 * layers[i].rule), and the key each layer counts, one per line in layer order, into keys
 * (NUL-terminated; whole keys only). A bypassed request has no layers. Blocks only for STRICT
 * layers (one Redis round trip each). Any thread. Returns 0 or -EINVAL.
 */
RL_API int rl_explain(rl_t *rl, const rl_request *req, rl_decision *out, char *keys,
                      size_t keys_len);

/**
 * Adds or replaces the rule for `pattern` ("POST:/auth/login", "/upload/?*", any glob: see
 * docs/configuration.md) with `n` layers, and publishes the new rule set to every process attached
 * to the segment. An invalid pattern or limit is -EINVAL or -ERANGE with a message naming the
 * layer. Control plane: serialised between processes by a short writer lock (waits at most ~2 s for
 * a live writer, then -EAGAIN); allocates.
 */
RL_API int rl_configure_endpoint(rl_t *rl, const char *pattern, const rl_limit *limits, size_t n);

/**
 * Replaces the whole rule set with the YAML file at `path` (docs/configuration.md), atomically:
 * checks in flight finish with the old rules, later ones use the new; limits that did not change
 * keep their counters. Errors name the file, line and column and what was expected (in
 * rl_errmsg()); on error nothing changes. Control plane, as rl_configure_endpoint().
 */
RL_API int rl_load_config(rl_t *rl, const char *path);

/** What rl_bypass_add() and rl_bypass_remove() change: the rule set's bypass lists. */
typedef enum { RL_BYPASS_IP = 0, RL_BYPASS_USER = 1 } rl_bypass_kind;

/**
 * The emergency bypass list at run time (rlctl bypass): adds an address or CIDR block
 * (RL_BYPASS_IP, "10.20.0.0/16", "2001:db8::1") or a user name (RL_BYPASS_USER) to the rule
 * set and publishes it to every process attached to the segment, which start bypassing at their
 * next check; workers need no restart. Adding what is there already is a no-op (0); removing
 * what is not there is -ENOENT. A bad address or name is -EINVAL with a message. Control plane,
 * as rl_configure_endpoint().
 */
RL_API int rl_bypass_add(rl_t *rl, rl_bypass_kind kind, const char *value);
RL_API int rl_bypass_remove(rl_t *rl, rl_bypass_kind kind, const char *value);
/** Writes the bypass list of `kind`, one entry per line, into buf (NUL-terminated, truncated to
 *  len); returns the length the whole list needs (without the NUL), or a negative code. Any
 *  thread; allocates. */
RL_API long rl_bypass_list(rl_t *rl, rl_bypass_kind kind, char *buf, size_t len);

/** Parses and validates a YAML rule file without publishing it (rlctl config check). */
RL_API int rl_check_config_file(const char *path);

/**
 * Writes the current rule set as YAML (the form rl_load_config() reads) into buf. Returns the
 * length (which may be >= len: then the output was truncated, as snprintf) or a negative code.
 */
RL_API long rl_config_dump(rl_t *rl, char *buf, size_t len);

/**
 * Renders the X-RateLimit headers of a decision, each line ending in CRLF: X-RateLimit-Limit,
 * -Remaining, -Reset (unix seconds), -Scope (per_ip, per_user, global, per_endpoint,
 * per_descriptor, per_user_endpoint), -Algorithm (token_bucket, sliding_window, fixed_window,
 * gcra) from the limiting layer, and Retry-After (seconds) when denied. No value can contain CR
 * or LF. Returns the bytes written (NUL not counted) or -ENOSPC when buf is too small (then buf
 * holds ""), -EINVAL for NULL. Any thread; never blocks or allocates.
 */
RL_API int rl_format_headers(const rl_decision *d, char *buf, size_t len);

/** Bits for rl_format_headers_ex(). */
enum {
    RL_HEADERS_LEGACY = 1u << 0, /**< the X-RateLimit-* set above (rl_format_headers) */
    RL_HEADERS_IETF = 1u << 1,   /**< RateLimit-Policy and RateLimit (draft-ietf-httpapi-
                                      ratelimit-headers) */
};
RL_API int rl_format_headers_ex(const rl_decision *d, unsigned flags, char *buf, size_t len);

/**
 * Renders the JSON body of a 429 answer for a denied decision ({"error": "rate_limited", ...}).
 * Same return convention as rl_format_headers(). So an HTTP server needs three calls: rl_check,
 * rl_format_headers, rl_format_body.
 */
RL_API int rl_format_body(const rl_decision *d, char *buf, size_t len);

/**
 * The client's address: walks X-Forwarded-For from the right and returns the first address that
 * is not one of the trusted proxies; when the peer itself is not trusted, the peer (so a header
 * sent by a client changes nothing). trusted_cidrs are "10.0.0.0/8", "::1", ... Addresses are
 * normalised (IPv4 dotted quad, IPv6 in RFC 5952 form, IPv4-mapped IPv6 as IPv4). Returns the
 * length written to out, -EINVAL for a peer or header entry that is not an address (or a bad
 * CIDR), -ENOSPC when out is too small (46 bytes always suffice). Never allocates.
 */
RL_API int rl_client_ip(const char *peer, const char *x_forwarded_for,
                        const char *const *trusted_cidrs, size_t n, char *out, size_t outlen);

/** Counters of rl_check() decisions, summed over every process attached to the segment. */
typedef struct rl_stats_info {
    uint64_t checks, allowed, denied, bypassed;
    uint64_t shadow_denied;                /**< shadow layers that would have denied */
    uint64_t table_full_open;              /**< layers allowed because the key table was full */
    uint64_t table_full_closed;            /**< layers denied because the key table was full */
    uint64_t warnings;                     /**< layers past their warning threshold */
    uint64_t audit_written, audit_dropped; /**< audit records written / dropped by sampling */
    uint64_t config_generation;
    uint64_t reserved[8];
} rl_stats_info;

/** Fills *out. Any thread; never blocks; sums the stripes (about 100 KiB of reads). */
RL_API int rl_stats(rl_t *rl, rl_stats_info *out);

/** Decisions of rl_check() per endpoint: a rule of the rule set, named by its pattern. */
typedef struct rl_endpoint_stats {
    /** The rule's pattern ("POST:/auth/login"), truncated to 63 bytes; "(default)" for requests no
     *  rule matched; "(other)" for endpoints beyond the segment's 255 (rl logs a warning). */
    char endpoint[64];
    uint64_t allowed, denied;
    uint64_t reserved[2];
} rl_endpoint_stats;

/**
 * Copies the per-endpoint counters into out[0..n) and returns how many endpoints the segment
 * has counted decisions of (more than n: call again with a larger array; 256 always suffice).
 * Counts are summed over every process attached to the segment since it was created; an endpoint
 * keeps its counts (and its entry) when a reload removes its rule. Any thread; never blocks.
 * Bypassed checks, and checks made while no rule set exists, belong to no endpoint
 * (rl_stats_info.bypassed counts the former).
 */
RL_API int rl_stats_endpoints(rl_t *rl, rl_endpoint_stats *out, size_t n);

/**
 * Cluster-wide per-endpoint counts from the monitoring rollups in Redis: with
 * ENABLE_RATE_LIMIT_MONITORING (rl_options.monitoring), every host's sync leader adds its
 * segment's new counts to one Redis hash per minute every 10 s, kept METRICS_RETENTION_DAYS.
 * This sums the hashes of the last `minutes` minutes (1..527040, the current one included)
 * into out[0..n) and returns how many endpoints there are; *hosts (may be NULL) gets how many
 * hosts reported in that time. The handle needs a redis_url (-ENOTCONN without); blocks for a
 * round trip per minute (control plane: rlctl stats --cluster). Redis errors as rl_health's.
 */
RL_API int rl_stats_cluster(rl_t *rl, unsigned minutes, rl_endpoint_stats *out, size_t n,
                            unsigned *hosts);

/** Redis health as seen from this handle (rl_health). */
typedef struct rl_health_info {
    bool redis_configured;       /**< the handle was opened with a redis_url */
    bool connected;              /**< a PING through the STRICT pool just succeeded */
    bool breaker_open;           /**< STRICT checks are failing fast to their fallback */
    uint64_t strict_checks;      /**< STRICT checks Redis answered (this handle) */
    uint64_t strict_fallbacks;   /**< STRICT checks the fallback answered (this handle) */
    uint64_t breaker_trips;      /**< times the circuit breaker opened */
    pid_t leader_pid;            /**< the GLOBAL sync leader (0: none yet) */
    uint64_t last_sync_age_ms;   /**< since the last GLOBAL sync (UINT64_MAX: never) */
    char error[128];             /**< the last Redis error, "" if none; cut at 127 bytes:
                                  *   the whole message is rl_errmsg() after rl_health() */
    uint64_t leader_epoch;       /**< bumped by every leader takeover (fencing) */
    uint64_t sync_rounds;        /**< sync rounds Redis answered (whole segment) */
    uint64_t sync_keys;          /**< keys reported to Redis (whole segment) */
    uint64_t sync_errors;        /**< rounds that failed (Redis unreachable, slow, refusing) */
    uint64_t sync_stale_refused; /**< batches Redis refused: a newer leader exists (fencing) */
    uint64_t cluster_hosts;      /**< hosts sharing GLOBAL keys, as Redis last said (0: ?) */
    bool global_fallback;        /**< GLOBAL limits are on their fallback now */
    bool sync_leader_here;       /**< this handle's sync thread is the leader */
    /** Redis has a memory limit and an eviction policy that may evict rl's keys (every rl key
     *  has a TTL, so any policy but noeviction can): `warning` says what to change. */
    bool redis_may_evict;
    char warning[128]; /**< "" when nothing needs attention */
    uint64_t reserved[2];
} rl_health_info;

/**
 * Fills *out; with Redis configured it asks Redis (INFO memory) through the STRICT pool, so it
 * may block up to redis_connect_timeout_ms + redis_command_timeout_ms (300 ms by default), also
 * while the sync thread waits on Redis. Returns 0 (see out->connected for the answer) or
 * -EINVAL. Any thread.
 * After it returns 0, rl_errmsg() holds out->error whole (a Redis error can be longer than the
 * struct's 128 bytes: URLs, socket paths, ACL messages), "" when there is none, until this
 * thread's next rl call.
 */
RL_API int rl_health(rl_t *rl, rl_health_info *out);

/** One audit record: a decision of rl_check(), its limiting layer. */
typedef struct rl_audit_record {
    uint64_t seq;     /**< position in the ring (monotonic) */
    uint64_t time_ns; /**< when */
    pid_t pid;        /**< which process decided */
    bool allowed;
    bool shadow;
    unsigned layer; /**< index in rl_decision.layers */
    rl_scope scope;
    rl_algorithm algorithm;
    uint64_t limit, retry_after_ms;
    char key[25]; /**< the counter key's first 24 bytes ("<rule tag>:<scope>:<value>") */
} rl_audit_record;

/**
 * Copies up to n audit records from *cursor on into out and advances *cursor; returns how many.
 * Start with *cursor = 0; records overwritten before they were read are skipped. Any thread;
 * never blocks. The ring holds the last 1024 records; writers are sampled under load
 * (rl_stats_info.audit_dropped counts what was not recorded).
 */
RL_API int rl_audit_read(rl_t *rl, uint64_t *cursor, rl_audit_record *out, size_t n);

/** Names used in headers and configuration ("per_ip", "token_bucket", ...); NULL if unknown. */
RL_API const char *rl_scope_name(rl_scope s);
RL_API const char *rl_algorithm_name(rl_algorithm a);

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
    uint64_t slot;    /**< index in the table */
    const char *key;  /**< printable prefix of the key (non-printable bytes as '?') */
    size_t keylen;    /**< the key's full length */
    rl_limit limit;   /**< the limit the key is counted under */
    rl_result state;  /**< what a peek (cost 0) answers at `now` */
    bool reclaimable; /**< equivalent to a new key now: the table may reuse its slot */
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

/**
 * rl_check_segment() that also removes every damaged slot it finds (a tombstone: the key is
 * forgotten, as by rl_reset, and lookups of other keys go on past it); damaged limit records
 * are reported, not changed. Returns the number of problems found, as rl_check_segment(), or
 * -EBUSY when any other handle, in this or another process, is attached to the segment (every
 * open handle holds a shared lock that the kernel drops when its process dies): a slot that a
 * running worker is changing must never be removed by mistake. A handle inherited through fork
 * shares its parent's lock: do not repair from a process whose children use its handle.
 * Never blocks.
 */
RL_API long rl_repair_segment(rl_t *rl, void (*report)(const char *msg, void *arg), void *arg);

/* -------------------------------------------------------------------------------------------- */
/* Errors and version                                                                             */

/** A fixed English description of a negative code returned by rl. Never NULL. */
RL_API const char *rl_strerror(int err);

/**
 * The calling thread's last detailed error message ("segment /x: layout version 3, this library
 * reads 1; ..."), or "" when none. Valid until the thread's next rl call.
 */
RL_API const char *rl_errmsg(void);

/** Levels of the debug log. */
typedef enum { RL_LOG_ERROR = 0, RL_LOG_WARN, RL_LOG_INFO, RL_LOG_DEBUG } rl_log_level;

/** A log sink: called with one message (no trailing newline), from any thread. */
typedef void (*rl_log_fn)(rl_log_level level, const char *msg, void *arg);

/**
 * Sends rl's log (segment created or attached, rule sets published and compiled, compile
 * failures, a full key table, ...) up to `max_level` to fn; fn NULL turns it off. Without a call,
 * RL_LOG_LEVEL=error|warn|info|debug in the environment logs to stderr ("rl: warn: ..."); unset,
 * nothing is logged. Call it before other threads use rl. Never called on the hot path except for
 * rare events (a full table is reported at most once per second per process).
 */
RL_API void rl_set_log(rl_log_fn fn, void *arg, rl_log_level max_level);

/** The library's version string, e.g. "0.1.0" (may differ from RL_VERSION_STRING). */
RL_API const char *rl_version(void);

#ifdef __cplusplus
}
#endif

#endif /* RL_RL_H */
