/*
 * The algorithms: pure functions from (parameters, 60-bit value, time, cost) to (decision, new
 * value). Nothing here touches shared memory; table.c loads the value, calls decide() and
 * publishes the new value with one compare-and-swap, so each algorithm's whole state must fit
 * in 60 bits. docs/design.md "Algorithms" has the maths and the proofs of the bounds.
 *
 * Times are absolute ns since the epoch (>= RL_TIME_BASE_NS); values are relative to
 * RL_TIME_BASE_NS. Every function here is total: any 60-bit value decodes to something sane
 * (a stale or corrupted value can cost a key some tokens, never wrap arithmetic or crash).
 *
 * Encodings:
 *  - token bucket and GCRA: v = Z, the "full time" (GCRA's theoretical arrival time) in units
 *    of u = W / (L * T) ns since the base, T = floor(W / L): at time t (t / u units) the bucket
 *    holds C - max(0, Z - t / u) / T tokens; a request is exactly T units, so the rate is
 *    exactly L per W and no fractional refill is ever lost or gained (lib/bucket.h).
 *  - fixed window: v = I * L + used, I the window index since the base. A value v with
 *    I * L < v <= (I + 1) * L means `used = v - I * L` in window I, so (I, L) and (I + 1, 0) are
 *    the same number and no division is needed to tell the current window from an old one.
 *  - sliding window: v = [I mod 2^ibits][prev count: cb bits][cur count: cb bits].
 */
#include <errno.h>

#include "lib/algo.h"
#include "lib/bucket.h"
#include "lib/error.h"

#define NS_PER_MS            1000000ULL
#define MAX_WINDOW_MS        (10ULL * 366 * 24 * 3600 * 1000) /* 10 years */
#define MAX_BURST            (1ULL << 40)
#define MAX_TAU              (1ULL << 59)
#define STRICT_MAX_CW        (1ULL << 52)
#define SLIDING_MAX_REQUESTS ((1ULL << 22) - 1)

static int common_params(const rl_limit *lim, struct rl_params *p)
{
    if (lim->requests == 0)
        return rl__err(-EINVAL, "limit: requests is 0; a limit must allow at least 1 request");
    if (lim->window_ms == 0)
        return rl__err(-EINVAL, "limit: window_ms is 0; a window must be at least 1 ms");
    if (lim->window_ms > MAX_WINDOW_MS)
        return rl__err(-ERANGE, "limit: window_ms %llu is outside 1..%llu (10 years)",
                       (unsigned long long)lim->window_ms, (unsigned long long)MAX_WINDOW_MS);
    uint64_t window_ns = lim->window_ms * NS_PER_MS;
    if (lim->requests > window_ns)
        return rl__err(-ERANGE,
                       "limit: %llu requests per %llu ms is more than one per nanosecond; "
                       "use a longer window",
                       (unsigned long long)lim->requests, (unsigned long long)lim->window_ms);
    if (lim->burst > MAX_BURST)
        return rl__err(-ERANGE, "limit: burst %llu is above the maximum 2^40",
                       (unsigned long long)lim->burst);
    p->algo = lim->algorithm;
    p->W = window_ns;
    p->L = lim->requests;
    /* Token bucket / GCRA: T units per request, the unit u = W / (L * T) ns in [1, 2), so that
     * a request is exactly T units and the rate exactly L per W (design.md section 6). */
    p->T = window_ns / lim->requests; /* >= 1 */
    p->LT = lim->requests * p->T;     /* <= W */
    /* Prefer a unit whose grid holds every whole microsecond, else every whole millisecond: a
     * draw on a full bucket at such a time is then exact (design.md section 6). That needs
     * W / g | L * T, so L * T a multiple of lcm(L, W / g) (<= W). */
    if (p->LT != window_ns) {
        for (uint64_t g = 1000; g <= NS_PER_MS; g *= 1000) {
            uint64_t a = lim->requests, b = window_ns / g, x = a, y = b;
            while (y) {
                uint64_t r = x % y;
                x = y;
                y = r;
            }
            rl_u128 lcm = (rl_u128)(a / x) * b;
            if (lcm <= window_ns) {
                p->LT = (uint64_t)(window_ns / lcm * lcm);
                p->T = p->LT / lim->requests;
                break;
            }
        }
    }
    p->T_inv = UINT64_MAX / p->T;
    p->unit_ns = p->LT == window_ns;
    rl_u128 inv = ((rl_u128)p->LT << 64) / window_ns;
    p->u_inv = inv > UINT64_MAX ? UINT64_MAX : (uint64_t)inv;
    p->u_frac = (uint64_t)(((rl_u128)(window_ns - p->LT) << 64) / p->LT);
    p->base_idx = RL_TIME_BASE_NS / window_ns;
    return 0;
}

/* ---- token bucket and GCRA: one engine, two ways of naming the capacity ---------------------- */

static int bucket_params_capacity(const rl_limit *lim, struct rl_params *p, uint64_t capacity)
{
    if ((rl_u128)capacity * p->T > MAX_TAU)
        return rl__err(-ERANGE,
                       "limit: burst %llu x %llu ns per request exceeds 2^59 ns; "
                       "lower the burst or the window",
                       (unsigned long long)capacity, (unsigned long long)p->T);
    /* STRICT's Lua twin keeps C x W_us exactly in a double (sync/scripts.h). */
    if (lim->mode == RL_MODE_STRICT && (rl_u128)capacity * lim->window_ms * 1000u > STRICT_MAX_CW)
        return rl__err(-ERANGE,
                       "limit: a STRICT token bucket holds capacity x window in microseconds "
                       "exactly up to 2^52 (Redis Lua numbers are doubles); %llu x %llu ms is "
                       "more: lower the burst or the window, or use GLOBAL mode",
                       (unsigned long long)capacity, (unsigned long long)lim->window_ms);
    p->limit = capacity;
    p->tau = capacity * p->T;
    return 0;
}

static int tb_params(const rl_limit *lim, struct rl_params *p)
{
    int r = common_params(lim, p);
    if (r < 0)
        return r;
    return bucket_params_capacity(lim, p, lim->burst ? lim->burst : lim->requests);
}

static int gcra_params(const rl_limit *lim, struct rl_params *p)
{
    int r = common_params(lim, p);
    if (r < 0)
        return r;
    /* redis-cell: limit = max_burst + 1; our burst 0 means "limit = requests". */
    uint64_t max_burst = lim->burst ? lim->burst : lim->requests - 1;
    return bucket_params_capacity(lim, p, max_burst + 1);
}

static uint64_t bucket_refund(const struct rl_params *p, uint64_t v, uint64_t *aux, uint64_t t,
                              uint64_t cost)
{
    (void)t, (void)aux;
    if (cost > p->limit)
        cost = p->limit;
    uint64_t back = cost * p->T; /* exactly what the draw added */
    v &= RL_VAL_MASK;
    return v > back ? v - back : 0;
}

static bool bucket_is_fresh(const struct rl_params *p, uint64_t v, uint64_t aux, uint64_t t,
                            uint64_t *idle)
{
    (void)aux;
    bool on_grid;
    uint64_t tr = t - RL_TIME_BASE_NS, z = v & RL_VAL_MASK;
    if (z > rl__ns_to_units(p, tr, &on_grid))
        return false;
    *idle = tr - rl__units_to_ns_ceil(p, z); /* z * u <= tr */
    return true;
}

static bool bucket_valid(const struct rl_params *p, uint64_t v)
{
    (void)p;
    return (v & RL_VAL_MASK) != RL_VAL_MASK;
}

/* ---- fixed window ---------------------------------------------------------------------------- */

static int fixed_params(const rl_limit *lim, struct rl_params *p)
{
    int r = common_params(lim, p);
    if (r < 0)
        return r;
    p->limit = p->L;
    return 0;
}

/* Window index relative to the base for time t (t >= base). */
static uint64_t win_index(const struct rl_params *p, uint64_t t)
{
    return t / p->W - p->base_idx;
}

static uint64_t win_end(const struct rl_params *p, uint64_t idx)
{
    return (idx + p->base_idx + 1) * p->W;
}

/* Where a fixed-window value stands at time t: *idx is the window to decide in (the current one,
 * or the stored later one when a racing thread read an older clock) and the return value the
 * units used in it; *stepped when the clock stepped back and the usage moves to the current
 * window. */
static uint64_t fixed_used(const struct rl_params *p, uint64_t v, uint64_t t, uint64_t slack,
                           uint64_t *idx, bool *stepped)
{
    v &= RL_VAL_MASK;
    *idx = win_index(p, t);
    *stepped = false;
    uint64_t is = v ? (v - 1) / p->L : 0; /* the window of the last unit used */
    if (is > *idx) {
        if ((is + p->base_idx) * p->W - t > slack)
            *stepped = true; /* carry that window's usage into the current one */
        else
            *idx = is;
        return v - is * p->L;
    }
    uint64_t start = *idx * p->L;
    return v > start ? v - start : 0;
}

static bool fixed_decide(const struct rl_params *p, uint64_t v, uint64_t *aux, uint64_t t,
                         uint64_t cost, uint64_t slack, uint64_t *nv, rl_result *out)
{
    (void)aux;
    uint64_t idx;
    bool stepped;
    uint64_t used = fixed_used(p, v, t, slack, &idx, &stepped);
    uint64_t to_end = win_end(p, idx) - t;
    out->limit = p->L;
    out->reset_after_ms = rl__ceil_ms(to_end);
    if (cost <= p->L - used) {
        out->allowed = true;
        out->remaining = p->L - used - cost;
        out->retry_after_ms = 0;
        if (cost == 0)
            return false;
        *nv = idx * p->L + used + cost;
        if (*nv >= RL_VAL_MASK) { /* beyond the 60-bit horizon: fail closed, never wrap */
            out->allowed = false;
            out->remaining = 0;
            out->retry_after_ms = RL_RETRY_NEVER;
            return false;
        }
        return true;
    }
    out->allowed = false;
    out->remaining = p->L - used;
    out->retry_after_ms = cost <= p->L ? rl__ceil_ms(to_end) : RL_RETRY_NEVER;
    if (stepped && cost) {
        *nv = idx * p->L + used; /* fresh again at this window's end, as retry_after says */
        return true;
    }
    return false;
}

static uint64_t fixed_refund(const struct rl_params *p, uint64_t v, uint64_t *aux, uint64_t t,
                             uint64_t cost)
{
    (void)aux;
    v &= RL_VAL_MASK;
    /* Units taken at time t are in t's window: give back only to that window. If the stored
     * window is another one (it rolled over, or a racing thread already decided in the next),
     * what we took is not in it, and nothing is given back. */
    uint64_t idx = win_index(p, t);
    uint64_t is = v ? (v - 1) / p->L : 0;
    if (is != idx || v <= idx * p->L)
        return v;
    uint64_t used = v - idx * p->L;
    return idx * p->L + (used > cost ? used - cost : 0);
}

static bool fixed_is_fresh(const struct rl_params *p, uint64_t v, uint64_t aux, uint64_t t,
                           uint64_t *idle)
{
    (void)aux;
    uint64_t idx;
    bool stepped;
    if (fixed_used(p, v, t, RL_CLOCK_SLACK_NS, &idx, &stepped) != 0)
        return false;
    v &= RL_VAL_MASK;
    uint64_t last = v ? (v - 1) / p->L : 0; /* window of the last unit used */
    *idle = idx > last ? (idx - last) * p->W : 0;
    return true;
}

static bool fixed_valid(const struct rl_params *p, uint64_t v)
{
    (void)p;
    return (v & RL_VAL_MASK) != RL_VAL_MASK;
}

/* ---- sliding window (weighted two-window counter) -------------------------------------------- */

static unsigned bit_width(uint64_t x)
{
    return x ? 64u - (unsigned)__builtin_clzll(x) : 0u;
}

static int sliding_params(const rl_limit *lim, struct rl_params *p)
{
    int r = common_params(lim, p);
    if (r < 0)
        return r;
    if (lim->requests > SLIDING_MAX_REQUESTS)
        return rl__err(-ERANGE,
                       "limit: a sliding window holds at most %llu requests per window (got "
                       "%llu); use a token bucket or a shorter window",
                       (unsigned long long)SLIDING_MAX_REQUESTS, (unsigned long long)lim->requests);
    p->limit = p->L;
    p->cb = bit_width(p->L);
    p->ibits = RL_VAL_BITS - 2 * p->cb; /* >= 16 */
    return 0;
}

struct sw {
    uint64_t prev, cur;
};

/*
 * Where a sliding-window value stands at time t. aux - 1 is the highest absolute window index a
 * decision on this slot was about to commit in (raised before its CAS, so the state's own window
 * is never later; 0 = never). Fills: *idx, the (relative) window to decide in; *e, the time
 * elapsed in it; *d, how many windows back the stored index lies (0 or 1 matter); *aux_want,
 * the aux value the caller should leave behind; *stepped, the clock stepped back (store even a
 * denial, and lower aux). Returns the counts (previous, current) as of that window.
 */
static struct sw sliding_at(const struct rl_params *p, uint64_t v, uint64_t aux, uint64_t t,
                            uint64_t slack, uint64_t *idx, uint64_t *e, uint64_t *d,
                            uint64_t *aux_want, bool *stepped)
{
    uint64_t cmask = (1ULL << p->cb) - 1, imask = (1ULL << p->ibits) - 1;
    v &= RL_VAL_MASK;
    uint64_t c = v & cmask, pr = (v >> p->cb) & cmask, si = (v >> (2 * p->cb)) & imask;
    if (c > p->L)
        c = p->L; /* a corrupted value costs tokens, never wraps */
    if (pr > p->L)
        pr = p->L;
    *idx = win_index(p, t);
    uint64_t abs_idx = *idx + p->base_idx;
    *e = t - abs_idx * p->W;
    *aux_want = abs_idx + 1;
    *stepped = false;
    struct sw s = {0, 0};
    if (aux && aux - 1 > abs_idx) {
        uint64_t later = aux - 1;
        if (later * p->W - t > slack) {
            *stepped = true; /* the stored counts become this window's */
            *d = 0;
            s.prev = pr;
            s.cur = c;
            return s;
        }
        /* A racing thread's older clock: decide at the start of the stored window. */
        *idx = later - p->base_idx;
        abs_idx = later;
        *e = 0;
        *aux_want = aux;
    }
    *d = ((*idx & imask) - si) & imask;
    if (aux && aux - 1 + 2 <= abs_idx)
        *d = 2; /* nothing committed in this window or the last: stale, whatever si says */
    if (*d == 0) {
        s.prev = pr;
        s.cur = c;
    } else if (*d == 1) {
        s.prev = c;
    }
    return s;
}

static uint64_t sliding_encode(const struct rl_params *p, uint64_t idx, struct sw s)
{
    uint64_t imask = (1ULL << p->ibits) - 1;
    return ((idx & imask) << (2 * p->cb)) | (s.prev << p->cb) | s.cur;
}

static bool sliding_decide(const struct rl_params *p, uint64_t v, uint64_t *aux, uint64_t t,
                           uint64_t cost, uint64_t slack, uint64_t *nv, rl_result *out)
{
    uint64_t idx, e, d, aux_want;
    bool stepped;
    struct sw s = sliding_at(p, v, *aux, t, slack, &idx, &e, &d, &aux_want, &stepped);
    uint64_t W = p->W, L = p->L;
    /* Everything in units of 1/W request: the previous window weighs (W - e) / W. */
    rl_u128 cap = (rl_u128)L * W;
    rl_u128 used = (rl_u128)s.prev * (W - e) + (rl_u128)s.cur * W;
    /* When deciding in a later window (racing thread), times are still reported from t. */
    uint64_t lead = (idx + p->base_idx) * W + e - t;
    out->limit = L;
    if (cost <= L && used + (rl_u128)cost * W <= cap) {
        out->allowed = true;
        out->retry_after_ms = 0;
        out->remaining = (uint64_t)((cap - used - (rl_u128)cost * W) / W);
        uint64_t c = s.cur + cost;
        out->reset_after_ms =
            c ? rl__ceil_ms(lead + 2 * W - e) : (s.prev ? rl__ceil_ms(lead + W - e) : 0);
        if (cost == 0)
            return false;
        s.cur = c;
        *nv = sliding_encode(p, idx, s);
        *aux = aux_want;
        return true;
    }
    out->allowed = false;
    out->remaining = used >= cap ? 0 : (uint64_t)((cap - used) / W);
    out->reset_after_ms =
        s.cur ? rl__ceil_ms(lead + 2 * W - e) : (s.prev ? rl__ceil_ms(lead + W - e) : 0);
    if (cost > L) {
        out->retry_after_ms = RL_RETRY_NEVER;
    } else if (s.cur + cost <= L) {
        /* Only the previous window's weight is in the way (so prev > 0): wait until
         * prev * (W - e') <= (L - cur - cost) * W. */
        uint64_t room = (uint64_t)(((rl_u128)(L - s.cur - cost) * W) / s.prev);
        out->retry_after_ms = rl__ceil_ms(lead + (W - room) - e);
    } else {
        /* Wait for the next window, where this window's count becomes the previous one. */
        uint64_t e3 = 0;
        if (s.cur) {
            uint64_t room = (uint64_t)(((rl_u128)(L - cost) * W) / s.cur);
            e3 = room >= W ? 0 : W - room;
        }
        out->retry_after_ms = rl__ceil_ms(lead + (W - e) + e3);
    }
    if (stepped && cost) {
        /* Move the counts into this window, so they age from now on. */
        *nv = sliding_encode(p, idx, s);
        *aux = aux_want;
        return true;
    }
    return false;
}

static uint64_t sliding_refund(const struct rl_params *p, uint64_t v, uint64_t *aux, uint64_t t,
                               uint64_t cost)
{
    uint64_t idx, e, d, aux_want;
    bool stepped;
    struct sw s = sliding_at(p, v, *aux, t, RL_CLOCK_SLACK_NS, &idx, &e, &d, &aux_want, &stepped);
    v &= RL_VAL_MASK;
    if (!s.prev && !s.cur)
        return v;
    if (d == 1) {
        /* Taken in the previous window: give back to that window's count. */
        uint64_t cmask = (1ULL << p->cb) - 1, c = v & cmask;
        c = c > cost ? c - cost : 0;
        return (v & ~cmask) | c;
    }
    s.cur = s.cur > cost ? s.cur - cost : 0;
    return sliding_encode(p, idx, s);
}

static bool sliding_is_fresh(const struct rl_params *p, uint64_t v, uint64_t aux, uint64_t t,
                             uint64_t *idle)
{
    uint64_t idx, e, d, aux_want;
    bool stepped;
    struct sw s = sliding_at(p, v, aux, t, RL_CLOCK_SLACK_NS, &idx, &e, &d, &aux_want, &stepped);
    if (s.prev || s.cur || stepped)
        return false;
    *idle = e; /* at least since this window began */
    return true;
}

static bool sliding_valid(const struct rl_params *p, uint64_t v)
{
    uint64_t cmask = (1ULL << p->cb) - 1;
    v &= RL_VAL_MASK;
    return (v & cmask) <= p->L && ((v >> p->cb) & cmask) <= p->L;
}

/* ---- the table of operations ----------------------------------------------------------------- */

static const struct rl_algo_ops token_bucket_ops = {
    "token_bucket", tb_params, rl__bucket_decide, bucket_refund, bucket_is_fresh, bucket_valid,
};
static const struct rl_algo_ops gcra_ops = {
    "gcra", gcra_params, rl__bucket_decide, bucket_refund, bucket_is_fresh, bucket_valid,
};
static const struct rl_algo_ops fixed_ops = {
    "fixed_window", fixed_params, fixed_decide, fixed_refund, fixed_is_fresh, fixed_valid,
};
static const struct rl_algo_ops sliding_ops = {
    "sliding_window", sliding_params,   sliding_decide,
    sliding_refund,   sliding_is_fresh, sliding_valid,
};

const struct rl_algo_ops *const rl__algos[RL_ALGORITHM_COUNT] = {
    [RL_TOKEN_BUCKET] = &token_bucket_ops,
    [RL_SLIDING_WINDOW] = &sliding_ops,
    [RL_FIXED_WINDOW] = &fixed_ops,
    [RL_GCRA] = &gcra_ops,
};
