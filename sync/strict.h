/* STRICT mode (strict.c). Internal. */
#ifndef RL_SYNC_STRICT_H
#define RL_SYNC_STRICT_H

#include <stdint.h>

#include "conn.h"
#include "internal.h"

/* With o->redis_url set: parses it and opens the STRICT pool (lazily connected, so this does not
 * fail when Redis is down). Without: rl->strict stays NULL. */
int rl__strict_open(struct rl *rl, const rl_options *o);
void rl__strict_close(struct rl *rl);

/* One STRICT check (or refund) of (key, lim): Redis decides; when it cannot, the fallback. */
int rl__strict_acquire(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                       const struct rl_params *p, uint64_t cost, uint64_t now, rl_result *out);
int rl__strict_refund(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim,
                      const struct rl_params *p, uint64_t cost);

/* Deletes the Redis state of (key, lim) (rl_reset): one pooled round trip. */
int rl__strict_reset(struct rl *rl, const void *key, size_t keylen, const rl_limit *lim);
/* Deletes one GLOBAL key's Redis hash (rl_reset), through the STRICT pool. */
int rl__global_reset(struct rl *rl, uint64_t cid_lo, uint64_t cid_hi);

/* A pooled connection for the caller's exclusive use until rl__strict_put (control-plane
 * commands: rl_stats_cluster). -ENOTCONN when the handle has no Redis. */
int rl__strict_get(struct rl *rl, struct rl_redis **c);
void rl__strict_put(struct rl *rl, struct rl_redis *c);

/* Answers given by Redis, and by the fallback. */
void rl__strict_counts(const struct rl *rl, uint64_t *checks, uint64_t *fallbacks);

#endif
