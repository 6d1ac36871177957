/* GLOBAL mode's sync thread (global.c). Internal. */
#ifndef RL_SYNC_GLOBAL_H
#define RL_SYNC_GLOBAL_H

#include "internal.h"

/* With o->redis_url set: starts this handle's sync thread (it connects lazily, so this does not
 * fail when Redis is down). Without: rl->global stays NULL and GLOBAL limits count locally in
 * rl_check (rl_acquire refuses them with -ENOTSUP). */
int rl__global_open(struct rl *rl, const rl_options *o);
/* Stops the thread (resigning the leadership: another process takes over at once). */
void rl__global_close(struct rl *rl);
/* The Redis key of a GLOBAL key's cluster state: "rl:g:{gg}:<32 hex digits>" (gg: the group
 * hash tag, the id's top byte). */
void rl__global_redis_key(char *out, size_t n, uint64_t cid_lo, uint64_t cid_hi);
/* The sync fields of rl_health. */
void rl__global_health(struct rl *rl, rl_health_info *out);

#endif
