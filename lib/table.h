/*
 * The key table's entry points for the rest of the core (table.c; rules.c's rl_check).
 * Internal; not ABI.
 */
#ifndef RL_LIB_TABLE_H
#define RL_LIB_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/algo.h"
#include "lib/handle.h"

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

#endif
