/*
 * The remote modes as the core sees them: one small interface per handle.
 *
 * lib/ (the segment, the table, the rules) depends on nothing of Redis. A handle opened with a
 * Redis URL gets a remote implementation from sync/ (sync/remote.c) at rl_open; the core calls
 * it only through the table below, and only for STRICT and GLOBAL limits: a LOCAL decision
 * never calls through a pointer. Built with -Dredis=disabled (RL_WITH_REDIS 0) the
 * implementation is lib/remote_none.c: no remote, and a redis_url is refused at rl_open.
 *
 * Who calls: lib/api.c (open, close, health, cluster statistics, fork), lib/table.c (STRICT
 * decisions, refunds and resets; GLOBAL resets and the restart after fork). Internal; not ABI.
 */
#ifndef RL_LIB_REMOTE_H
#define RL_LIB_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/algo.h"
#include "lib/handle.h"

#ifndef RL_WITH_REDIS
#define RL_WITH_REDIS 1
#endif

/* rl_remote_ops.strict_acquire's answer when the LOCAL fallback must decide: the core goes on
 * with the key and the limit id it has already validated and looked up (table.c). */
#define RL_REMOTE_DECIDE_LOCALLY 1

struct rl_remote; /* sync/remote.c's, opaque here */

struct rl_remote_ops {
    /* One STRICT check of (key, lim) in Redis: 0 with *out (Redis answered, or the OPEN or
     * CLOSED fallback did), RL_REMOTE_DECIDE_LOCALLY (Redis did not answer and the fallback is
     * LOCAL), or a negative code. Blocks on Redis within the command timeout. */
    int (*strict_acquire)(struct rl_remote *rm, const void *key, size_t keylen, const rl_limit *lim,
                          const struct rl_params *p, uint64_t cost, rl_result *out);
    /* Gives `cost` back to (key, lim) in Redis. Blocks like strict_acquire. */
    int (*strict_refund)(struct rl_remote *rm, const void *key, size_t keylen, const rl_limit *lim,
                         const struct rl_params *p, uint64_t cost);
    /* Deletes the Redis state of a STRICT (key, lim), or of a GLOBAL key by its cluster id:
     * one pooled round trip each (rl_reset, rl_reset_slot). */
    int (*strict_reset)(struct rl_remote *rm, const void *key, size_t keylen, const rl_limit *lim);
    int (*global_reset)(struct rl_remote *rm, uint64_t cid_lo, uint64_t cid_hi);
    /* In a forked child, from the library's fork handler (one thread, nothing locked): drop
     * what belongs to the parent (sockets, the sync lease). Must not allocate or block. */
    void (*fork_child)(struct rl_remote *rm);
    /* In a forked child, from the first GLOBAL check: start the sync thread again. */
    void (*after_fork)(struct rl_remote *rm);
    /* rl_health's Redis fields (the segment's sync fields are filled by the core). Blocks. */
    void (*health)(struct rl_remote *rm, rl_health_info *out);
    /* rl_stats_cluster, arguments already checked. Blocks. */
    int (*stats_cluster)(struct rl_remote *rm, unsigned minutes, rl_endpoint_stats *out, size_t n,
                         unsigned *hosts);
    /* Stops the sync thread and frees everything (rl_close, or a failed rl_open). */
    void (*close)(struct rl_remote *rm);
};

/*
 * Called once by rl_open with the options resolved: with a Redis URL, sets rl->remote_ops,
 * rl->remote (and rl->strict / rl->global, the markers the core tests for "this mode has
 * Redis"); without one, leaves them NULL and returns 0. A build without Redis refuses a URL
 * (-ENOTSUP, "built without Redis"). Connects lazily: does not fail when Redis is down.
 */
int rl__remote_open(struct rl *rl, const rl_options *o);

/*
 * Called by rl_open before it touches any segment: refuses a Redis URL that rl__remote_open
 * would refuse (malformed, or a build without Redis), so a bad URL fails without leaving a new,
 * empty segment behind. Neither connects nor allocates; 0 without a URL.
 */
int rl__remote_check(const rl_options *o);

static inline void rl__remote_close(struct rl *rl)
{
    if (rl->remote_ops)
        rl->remote_ops->close(rl->remote);
    rl->remote_ops = NULL;
    rl->remote = NULL;
    rl->strict = NULL;
    rl->global = NULL;
}

#endif
