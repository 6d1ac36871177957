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
#include "lib/segment.h"

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

/* The walk over the table's live slots (rl_foreach_key, the GLOBAL leader's rounds and its
 * LOCAL fallback): the next slot at or after *i whose control word is LIVE. Fills *ctl (acquire
 * load: pairs with the release publish of LIVE in table.c's insert(), so meta and keyp are
 * those of the key it names) and *meta (relaxed: written before that publish), sets *i to the
 * slot's index and returns the slot; NULL past the end of the table. The caller reads the
 * state and the other words itself, in the order its protocol needs, and advances *i. A
 * snapshot per slot, not of the whole table. Any thread; never blocks. (check_segment walks
 * every control word, LIVE or not, and does not use this.) */
static inline struct rl_slot *rl__slot_next_live(struct rl *rl, uint64_t *i, uint64_t *ctl,
                                                 uint64_t *meta)
{
    for (uint64_t j = *i; j < rl->nslots; j++) {
        struct rl_slot *s = &rl->slots[j];
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
        if ((c & RL_CTL_TAG_MASK) != RL_CTL_LIVE)
            continue;
        *i = j;
        *ctl = c;
        *meta = atomic_load_explicit(&s->meta, memory_order_relaxed);
        return s;
    }
    *i = rl->nslots;
    return NULL;
}

#endif
