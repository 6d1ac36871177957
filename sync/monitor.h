/* Monitoring rollups to Redis (monitor.c). Internal. */
#ifndef RL_SYNC_MONITOR_H
#define RL_SYNC_MONITOR_H

#include <stdint.h>

#include "lib/handle.h"
#include "sync/conn.h"

/* How often the sync leader pushes (and the resolution a count's minute has). */
#define RL_MONITOR_PUSH_NS 10000000000ULL

/*
 * Adds the segment's decision counts since the last push (any leader's: the pushed totals live
 * in the endpoint directory) to the current minute's hash in Redis, for host `host` (16 hex
 * digits), kept ttl_ms. Called by the sync leader only (sync/global.c); blocks on c. Returns 0
 * (also when there was nothing new) or a negative code with rl_errmsg() set.
 */
int rl__monitor_push(struct rl *rl, struct rl_redis *c, const char *host, uint64_t ttl_ms);

#endif
