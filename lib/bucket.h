/*
 * The token bucket / GCRA decision, inline: table.c calls it directly on the hot path, algo.c
 * puts it in the table of operations. The maths is in algo.c's header comment and
 * docs/design.md section 6 ("Exact rates").
 *
 * State: Z, the full time, in units of u = W / (L * T) ns since RL_TIME_BASE_NS (T = floor(W /
 * L) units per request, u in [1, 2)). At time t (ns, n = t / u units, rational) the bucket holds
 * C - max(0, Z - n) / T tokens. A request adds exactly T units, so the refill rate is exactly
 * L per W. Decisions compare Z with n exactly: with f = floor(n), Z <= f is "full" and
 * Z + (cost - C) * T <= n is Z + (cost - C) * T <= f, both integers. The one rounding is where a
 * full bucket is drawn on: Z becomes ceil(n) + cost * T, up to one unit (< 2 ns) after the exact
 * n + cost * T, never before: rl never admits what an exact bucket would not (design.md).
 */
#ifndef RL_BUCKET_H
#define RL_BUCKET_H

#include "lib/algo.h"
#include "lib/segment.h"

static inline bool rl__bucket_decide(const struct rl_params *p, uint64_t v, uint64_t *aux,
                                     uint64_t t, uint64_t cost, uint64_t slack, uint64_t *nv,
                                     rl_result *out)
{
    (void)aux;
    uint64_t tr = t - RL_TIME_BASE_NS;
    bool on_grid;
    uint64_t now = rl__ns_to_units(p, tr, &on_grid); /* floor(n) */
    uint64_t z = v & RL_VAL_MASK;
    bool full = z <= now, stepped = false;
    /* Units of backlog: the exact backlog z - n lies in (backlog - 1, backlog]. */
    uint64_t backlog = full ? 0 : z - now;
    if (backlog > p->tau && backlog - p->tau > slack) {
        /* Beyond a racing thread's older clock read: the clock stepped back. Clamp to "empty
         * now" and store it (a denial included), so refill runs from now on. */
        stepped = true;
        backlog = p->tau;
        z = now + p->tau;
    }
    out->limit = p->limit;
    if (cost <= p->limit) {
        uint64_t inc = cost * p->T; /* <= tau <= 2^59 */
        if (full || backlog + inc <= p->tau) {
            /* A full bucket is drawn on from ceil(n): the one rounding, never early. */
            uint64_t nz = full ? now + !on_grid + inc : z + inc;
            uint64_t nb = nz - now;
            out->allowed = true;
            /* remaining: the exact bucket's count. After a full bucket's draw that is
             * C - cost, whatever the rounding of its start (design.md section 6). */
            out->remaining =
                full ? p->limit - cost : (nb >= p->tau ? 0 : rl__div_T(p, p->tau - nb));
            out->retry_after_ms = 0;
            out->reset_after_ms =
                full && cost == 0 ? 0 : rl__ceil_ms(rl__units_to_ns_ceil(p, nz) - tr);
            if (cost == 0)
                return false;
            if (nz < RL_VAL_MASK) {
                *nv = nz;
                return true;
            }
            /* Beyond the 60-bit horizon (design.md section 6): fail closed, never wrap. */
            out->allowed = false;
            out->retry_after_ms = RL_RETRY_NEVER;
            return false;
        }
        /* Admitted once n >= z + inc - tau (> now): the first whole ns at or after that. */
        out->retry_after_ms = rl__ceil_ms(rl__units_to_ns_ceil(p, z + inc - p->tau) - tr);
    } else {
        out->retry_after_ms = RL_RETRY_NEVER;
    }
    out->allowed = false;
    out->remaining = backlog >= p->tau ? 0 : rl__div_T(p, p->tau - backlog);
    out->reset_after_ms = full ? 0 : rl__ceil_ms(rl__units_to_ns_ceil(p, z) - tr);
    if (stepped && cost) {
        *nv = z; /* store the clamped time: refills from now on */
        return true;
    }
    return false;
}

#endif /* RL_BUCKET_H */
