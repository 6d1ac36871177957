/*
 * The token bucket / GCRA decision, inline: table.c calls it directly on the hot path, algo.c
 * puts it in the table of operations. The maths is in algo.c's header comment and
 * docs/design.md "Token bucket and GCRA".
 */
#ifndef RL_BUCKET_H
#define RL_BUCKET_H

#include "internal.h"

/* Z as of time t: before t means full (t); beyond t + tau by at most `slack`, a racing
 * thread's older clock read (kept: nothing is lost); beyond that, a clock step back: clamped to
 * t + tau ("empty now") and *stepped set, so the caller stores it. */
static inline uint64_t rl__bucket_z(const struct rl_params *p, uint64_t v, uint64_t t,
                                    uint64_t slack, bool *stepped)
{
    uint64_t z = RL_TIME_BASE_NS + (v & RL_VAL_MASK);
    *stepped = false;
    if (z < t)
        return t;
    if (z - t > p->tau && z - t - p->tau > slack) {
        *stepped = true;
        return t + p->tau;
    }
    return z;
}

static inline bool rl__bucket_decide(const struct rl_params *p, uint64_t v, uint64_t *aux,
                                     uint64_t t, uint64_t cost, uint64_t slack, uint64_t *nv,
                                     rl_result *out)
{
    (void)aux;
    bool stepped;
    uint64_t z = rl__bucket_z(p, v, t, slack, &stepped);
    uint64_t backlog = z - t; /* <= tau + slack (a racing thread's state may lead) */
    out->limit = p->limit;
    if (cost <= p->limit) {
        uint64_t inc = cost * p->T; /* <= tau <= 2^59 */
        if (backlog + inc <= p->tau) {
            out->allowed = true;
            out->remaining = rl__div_T(p, p->tau - backlog - inc);
            out->retry_after_ms = 0;
            out->reset_after_ms = rl__ceil_ms(backlog + inc);
            if (cost == 0)
                return false;
            uint64_t nz = z + inc - RL_TIME_BASE_NS;
            if (nz < RL_VAL_MASK) {
                *nv = nz;
                return true;
            }
            /* Beyond the 60-bit horizon (design.md section 6): fail closed, never wrap. */
            out->allowed = false;
            out->retry_after_ms = RL_RETRY_NEVER;
            return false;
        }
        out->retry_after_ms = rl__ceil_ms(backlog + inc - p->tau);
    } else {
        out->retry_after_ms = RL_RETRY_NEVER;
    }
    out->allowed = false;
    out->remaining = backlog >= p->tau ? 0 : rl__div_T(p, p->tau - backlog);
    out->reset_after_ms = rl__ceil_ms(backlog);
    if (stepped && cost) {
        *nv = z - RL_TIME_BASE_NS; /* store the clamped time: refills from now on */
        return true;
    }
    return false;
}

#endif /* RL_BUCKET_H */
