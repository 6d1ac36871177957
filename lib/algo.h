/*
 * The algorithms (algo.c): a limit's derived parameters and the operations that know how a
 * slot's 60-bit value is encoded, with the exact arithmetic they share. Internal; not ABI.
 */
#ifndef RL_LIB_ALGO_H
#define RL_LIB_ALGO_H

#include <stdbool.h>
#include <stdint.h>

#include "rl.h"

__extension__ typedef unsigned __int128 rl_u128;

/* Derived, process-local parameters of a limit (never stored in the segment). */
struct rl_params {
    rl_algorithm algo;
    uint64_t limit; /* what rl_result.limit reports */
    uint64_t T;     /* token bucket / GCRA: state units per request, floor(W / L) >= 1 */
    uint64_t T_inv; /* floor((2^64 - 1) / T), for rl__div_T() */
    uint64_t tau;   /* token bucket / GCRA: C * T, the capacity in state units */
    /* Token bucket / GCRA state unit u = W / (L * T) ns, in [1, 2) (exactly 1 when L divides
     * W): one request is exactly T units, so refill is exact (design.md section 6). */
    uint64_t LT;       /* L * T (<= W): u = W / LT */
    uint64_t u_inv;    /* floor(2^64 * LT / W), capped at 2^64 - 1: ns -> units */
    uint64_t u_frac;   /* floor(2^64 * (W - LT) / LT): units -> ns, u = 1 + u_frac / 2^64 */
    bool unit_ns;      /* W == LT: the unit is the nanosecond */
    uint64_t W;        /* windows: window length in ns */
    uint64_t L;        /* windows: requests per window */
    uint64_t base_idx; /* windows: RL_TIME_BASE_NS / W */
    unsigned cb;       /* sliding: bits per count */
    unsigned ibits;    /* sliding: bits of window index kept */
    uint64_t gsig;     /* the limit's cluster-wide identity (GLOBAL keys hash it in) */
};

/* One algorithm: everything that knows how its 60-bit value is encoded. `aux` is the slot's
 * `ceiling` word, which LOCAL limits may use as a companion of the state (the sliding window
 * keeps its last window index there, see algo.c): decide() and refund() may change *aux; the
 * caller raises it before committing the state, or lowers it after (table.c). */
struct rl_algo_ops {
    const char *name;
    /* Validates lim and fills p; returns 0 or -EINVAL / -ERANGE (message set). */
    int (*params)(const rl_limit *lim, struct rl_params *p);
    /* Decides `cost` at time t from value v. Fills out; returns true when *nv must be stored. */
    /* slack: how far ahead of t a stored state may be and still count as a racing thread's
     * (the stored timeline wins) rather than a clock that stepped back (the state moves to t):
     * RL_CLOCK_SLACK_NS for caller-given times, UINT64_MAX for the segment's own clock, which
     * never steps back (a thread stalled after reading it is only late). */
    bool (*decide)(const struct rl_params *p, uint64_t v, uint64_t *aux, uint64_t t, uint64_t cost,
                   uint64_t slack, uint64_t *nv, rl_result *out);
    /* The value after giving back `cost` at time t (may equal v: nothing to give back). */
    uint64_t (*refund)(const struct rl_params *p, uint64_t v, uint64_t *aux, uint64_t t,
                       uint64_t cost);
    /* True when v at time t is equivalent to a brand-new key; *idle_ns says for how long. */
    bool (*is_fresh)(const struct rl_params *p, uint64_t v, uint64_t aux, uint64_t t,
                     uint64_t *idle_ns);
    /* Structural validity of a value (rl_check_segment). */
    bool (*valid)(const struct rl_params *p, uint64_t v);
};

extern const struct rl_algo_ops *const rl__algos[RL_ALGORITHM_COUNT];

/* x / p->T without a hardware division (20-40 cycles): a multiply by the precomputed reciprocal
 * underestimates the quotient by at most 2, and the loop corrects it exactly. */
static inline uint64_t rl__div_T(const struct rl_params *p, uint64_t x)
{
    uint64_t q = (uint64_t)(((rl_u128)x * p->T_inv) >> 64);
    while ((rl_u128)(q + 1) * p->T <= x)
        q++;
    return q;
}

/* Nanoseconds since RL_TIME_BASE_NS -> whole token bucket units (floor), exactly: *on_grid
 * says whether ns * LT / W is an integer. A multiply by the precomputed reciprocal gives the
 * quotient or one less (the reciprocal is low by < 1 and ns < 2^64); one exact check fixes it. */
static inline uint64_t rl__ns_to_units(const struct rl_params *p, uint64_t ns, bool *on_grid)
{
    if (p->unit_ns) {
        *on_grid = true;
        return ns;
    }
    uint64_t q = (uint64_t)(((rl_u128)ns * p->u_inv) >> 64);
    rl_u128 x = (rl_u128)ns * p->LT, qw = (rl_u128)q * p->W;
    while (qw + p->W <= x) {
        q++;
        qw += p->W;
    }
    *on_grid = qw == x;
    return q;
}

/* ceil(x * u) in ns, exactly, for x < 2^62 units: x * u = x + x * (W - LT) / LT. */
static inline uint64_t rl__units_to_ns_ceil(const struct rl_params *p, uint64_t x)
{
    if (p->unit_ns)
        return x;
    uint64_t q = (uint64_t)(((rl_u128)x * p->u_frac) >> 64);
    rl_u128 a = (rl_u128)x * (p->W - p->LT), ql = (rl_u128)q * p->LT;
    while (ql + p->LT <= a) {
        q++;
        ql += p->LT;
    }
    return x + q + (ql != a);
}

/* ceil(n * window / requests) ns: the exact time n requests take to refill (n <= capacity). */
static inline uint64_t rl__tokens_ns_ceil(const struct rl_params *p, uint64_t n)
{
    return rl__units_to_ns_ceil(p, n * p->T);
}

static inline uint64_t rl__ceil_ms(uint64_t ns)
{
    return ns / 1000000u + (ns % 1000000u != 0);
}

#endif
