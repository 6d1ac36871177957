/*
 * Every Redis key rl writes or reads, in one place (docs/operations.md lists them for operators).
 * Nothing a client sends reaches Redis verbatim: keys carry hashes and numbers only. The braces
 * are Redis Cluster hash tags: the keys one script touches share a slot.
 *
 *   rl:{H}              STRICT state of (key, limit), H = 16 hex digits (sync/strict.c)
 *   rl:{H}:N            ... fixed window N;  rl:{H}:log, rl:{H}:seq: the sliding log
 *   rl:g:{gg}:<id>      GLOBAL: a key's cluster bucket, id = 32 hex digits of its cluster id,
 *                       gg = the id's top byte, one of 256 groups (sync/global.c, global.lua)
 *   rl:host:<host>      the host registry: one per syncing host, alive while it syncs
 *   rl:m:{M}            monitoring: minute M's index of hosts (sync/monitor.c, monitor.lua)
 *   rl:m:{M}:<host>     ... one host's decision counts in minute M
 *
 * Internal.
 */
#ifndef RL_SYNC_KEYS_H
#define RL_SYNC_KEYS_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#define RL_KEY_STRICT_FMT   "rl:{%016" PRIx64 "}"
#define RL_KEY_HOST_FMT     "rl:host:%s"
#define RL_KEY_MINUTE_FMT   "rl:m:{%lld}"
#define RL_KEY_MIN_HOST_FMT "rl:m:{%lld}:%.*s"

/* The GLOBAL key of a cluster id. */
static inline void rl__key_global(char *out, size_t n, uint64_t cid_lo, uint64_t cid_hi)
{
    /* The hash tag is one of 256 groups (the cluster id's top byte): in Redis Cluster a batch
     * is one group, so its keys share a slot; standalone batches mix groups freely. */
    snprintf(out, n, "rl:g:{%02x}:%016" PRIx64 "%016" PRIx64, (unsigned)(cid_hi >> 56), cid_hi,
             cid_lo);
}

#endif
