/*
 * The remote modes' state per handle (sync/remote.c implements lib/remote.h). One parsed URL
 * opens one pool (STRICT checks, resets, health, cluster statistics) and the sync thread's own
 * connection; STRICT, GLOBAL and monitoring use these and open nothing of their own. Internal.
 */
#ifndef RL_SYNC_REMOTE_H
#define RL_SYNC_REMOTE_H

#include "lib/algo.h"
#include "lib/error.h"
#include "lib/handle.h"
#include "lib/remote.h"
#include "sync/conn.h"
#include "sync/url.h"

struct rl_remote {
    struct rl *rl;
    struct rl_redis_pool *pool; /* shared by STRICT, rl_reset, rl_health, rl_stats_cluster */
    struct rl_strict *strict;   /* STRICT's fallback and counters (sync/strict.c) */
    struct rl_global *global;   /* the GLOBAL sync thread, or NULL (RL_OPEN_NO_SYNC) */
};

/* sync/strict.c */
int rl__strict_open(struct rl_remote *rm, const rl_options *o);
void rl__strict_close(struct rl_remote *rm);
int rl__strict_acquire(struct rl_remote *rm, const void *key, size_t keylen, const rl_limit *lim,
                       const struct rl_params *p, uint64_t cost, rl_result *out);
int rl__strict_refund(struct rl_remote *rm, const void *key, size_t keylen, const rl_limit *lim,
                      const struct rl_params *p, uint64_t cost);
int rl__strict_reset(struct rl_remote *rm, const void *key, size_t keylen, const rl_limit *lim);
int rl__global_reset(struct rl_remote *rm, uint64_t cid_lo, uint64_t cid_hi);
/* rl_health's Redis fields: STRICT's counters, INFO memory, the pool's breaker. Blocks. */
void rl__strict_health(struct rl_remote *rm, rl_health_info *out);

/* sync/global.c: the sync thread, given the URL parsed once (connects lazily). */
int rl__global_open(struct rl_remote *rm, const struct rl_redis_url *u, const rl_options *o);
void rl__global_close(struct rl_remote *rm);
void rl__global_fork_child(struct rl_remote *rm);
void rl__global_restart(struct rl_remote *rm);
/* This handle's sync fields of rl_health (leader here, the last round's error). */
void rl__global_health(struct rl_remote *rm, rl_health_info *out);

/* sync/monitor.c: rl_stats_cluster through the handle's pool. */
int rl__monitor_stats_cluster(struct rl_remote *rm, unsigned minutes, rl_endpoint_stats *out,
                              size_t n, unsigned *hosts);

#endif
