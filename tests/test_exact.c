/*
 * Exact rates (issue 14, docs/design.md section 6): every algorithm against an independent
 * reference written here with exact rational arithmetic, over millions of random operations.
 *
 * The reference token bucket keeps its full time times L (units of 1/L ns, unsigned __int128),
 * so a request is exactly W and nothing is rounded. rl keeps its state in one 60-bit word in
 * units u = W / (L T) ns (lib/bucket.h); the one rounding there is where a full bucket is drawn
 * on at a time off rl's unit grid: its start rounds up by less than one unit (< 2 ns). So:
 *   - on the grid (every time when L divides W; whole microseconds or milliseconds when the
 *     limit's grid holds them) rl and the reference agree on every field;
 *   - off it, rl is the reference delayed by less than 2 ns: it never admits what the reference
 *     denies, and each field lies between the reference's at t and at t - 2 ns;
 *   - at every instant, admitted <= burst + floor(requests x elapsed / window);
 *   - retry_after is never early: the same request at now + retry_after is admitted.
 * The windows (fixed, sliding) are integer-exact: they must agree on every field everywhere.
 *
 * The decisions are driven through the algorithms' table (rl__algos) on a local state word, as
 * table.c drives them on a slot's; the public API runs the issue's three examples at the end.
 * RL_TEST_EXACT_OPS scales the number of operations (default 3,000,000).
 */
#include <stdlib.h>

#include "bucket.h"
#include "internal.h"
#include "rl_test.h"

typedef rl_u128 u128;

TestSuite(exact, .init = seg_setup, .fini = seg_teardown);

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n) /* uniform enough in [0, n) */
{
    return n ? rnd() % n : 0;
}

/* log-uniform in [lo, hi] */
static uint64_t logu(uint64_t lo, uint64_t hi)
{
    unsigned blo = 63u - (unsigned)__builtin_clzll(lo), bhi = 63u - (unsigned)__builtin_clzll(hi);
    unsigned b = blo + (unsigned)below(bhi - blo + 1);
    uint64_t x = (1ULL << b) | (b ? below(1ULL << b) : 0);
    return x < lo ? lo : (x > hi ? hi : x);
}

static uint64_t ceil_div(u128 a, u128 b)
{
    return (uint64_t)((a + b - 1) / b);
}

static uint64_t ms_of(u128 ns)
{
    return ceil_div(ns, NS_MS);
}

static uint64_t total_ops(void)
{
    const char *e = getenv("RL_TEST_EXACT_OPS");
    return e && *e ? strtoull(e, NULL, 10) : 3000000u;
}

#define MAX_WINDOW_MS (10ULL * 366 * 24 * 3600 * 1000)
#define TEN_YEARS_NS  (10ULL * 365 * 24 * 3600 * NS_S)

/* ---- the reference token bucket ---------------------------------------------------------------
 */

struct ref {
    u128 L, W, C, zs; /* zs: the full time, absolute ns, times L */
};

/* Backlog (ns, times L) after drawing cost at t; the draw fits iff it is <= C * W. */
static u128 ref_backlog(const struct ref *r, uint64_t t, uint64_t cost)
{
    u128 ts = (u128)t * r->L, z = r->zs > ts ? r->zs : ts;
    return z - ts + (u128)cost * r->W;
}

struct expect {
    bool allowed;
    uint64_t remaining;
    u128 retry_ns, reset_ns; /* exact, whole ns rounded up; retry: ~0 = never */
};

static struct expect ref_eval(const struct ref *r, uint64_t t, uint64_t cost)
{
    struct expect e;
    u128 CW = r->C * r->W, b0 = ref_backlog(r, t, 0), b1 = b0 + (u128)cost * r->W;
    e.allowed = cost <= r->C && b1 <= CW;
    u128 b = e.allowed ? b1 : b0;
    e.remaining = b >= CW ? 0 : (uint64_t)((CW - b) / r->W);
    e.reset_ns = ceil_div(b, r->L);
    e.retry_ns = e.allowed ? 0 : (cost <= r->C ? ceil_div(b1 - CW, r->L) : ~(u128)0);
    if (e.allowed && cost == 0 && b0 == 0)
        e.reset_ns = 0;
    return e;
}

/* Whether rl's unit grid holds time t (an independent derivation of lib/algo.c's choice). */
static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

static uint64_t grid_ns(uint64_t L, uint64_t W)
{
    if (W % L == 0)
        return 1;
    for (uint64_t g = 1000; g <= NS_MS; g *= 1000)
        if ((u128)(L / gcd64(L, W / g)) * (W / g) <= W)
            return g;
    return 0; /* no grid of whole us or ms */
}

static void check_between(const char *what, uint64_t got, uint64_t lo, uint64_t hi, const char *ctx)
{
    cr_assert(got >= lo && got <= hi, "%s: %s %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]", ctx,
              what, got, lo, hi);
}

static uint64_t g_grid_checks, g_offgrid_checks, g_denied, g_retries;

/* One random bucket limit and a random walk of operations on one key. */
static void bucket_walk(rl_algorithm algo, uint64_t requests, uint64_t window_ms, uint64_t burst,
                        uint64_t nops)
{
    rl_limit lim = mk_limit(algo, requests, window_ms, burst);
    struct rl_params p;
    memset(&p, 0, sizeof p);
    if (rl__algos[algo]->params(&lim, &p) < 0)
        return; /* outside the supported range (burst x T beyond 2^59): refused, tested elsewhere */
    struct ref r = {requests, window_ms * NS_MS, p.limit, 0};
    uint64_t W = window_ms * NS_MS, g = grid_ns(requests, W);
    uint64_t T = (uint64_t)(W / requests), tau = (uint64_t)((r.C * W + requests - 1) / requests);
    uint64_t t = T0 + (below(3) == 0 ? 0 : below(W)), t0 = t, admitted = 0, v = 0, aux = 0;
    char ctx[256];
    for (uint64_t i = 0; i < nops; i++) {
        switch (below(10)) {
        case 0:
        case 1:
            break; /* equal times */
        case 2:
            t += 1 + below(3); /* nanosecond steps */
            break;
        case 3:
            t += below(T + 2);
            break;
        case 4:
            t += below(2 * T + 2) + (T > 2 ? T - 2 : 0);
            break;
        case 5:
            t += below(tau / 4 + 2);
            break;
        case 6:
            t += below(tau + 2);
            break;
        case 7:
            t += 1000 - t % 1000; /* the next whole microsecond */
            break;
        case 8:
            t += NS_MS - t % NS_MS; /* the next whole millisecond */
            break;
        default:
            if (below(8) == 0) /* a long idle gap */
                t += below((tau < (1ULL << 57) ? 3 * tau : 1ULL << 59) + 2) +
                     below(TEN_YEARS_NS / 100);
            else
                t += below(1000);
            break;
        }
        if (t - RL_TIME_BASE_NS >
            (1ULL << 60) - (1ULL << 58) - (tau < (1ULL << 57) ? 4 * (tau + 1) : (1ULL << 59)))
            return; /* near rl's 60-bit horizon (2056): this walk is over */
        uint64_t cost;
        switch (below(7)) {
        case 0:
            cost = 0;
            break;
        case 1:
            cost = 1;
            break;
        case 2:
        case 3:
            cost = 1 + below(r.C < 1000 ? (uint64_t)r.C : 1000);
            break;
        case 4:
            cost = 1 + below((uint64_t)r.C);
            break;
        case 5:
            cost = (uint64_t)r.C;
            break;
        default:
            cost = (uint64_t)r.C + 1 + below(3);
            break;
        }
        snprintf(ctx, sizeof ctx,
                 "%s %" PRIu64 "/%" PRIu64 "ms burst %" PRIu64 " (C %" PRIu64 "), op %" PRIu64
                 ", t = t0 + %" PRIu64 " ns, cost %" PRIu64,
                 algo_name(algo), requests, window_ms, burst, (uint64_t)r.C, i, t - t0, cost);
        rl_result got;
        uint64_t nv = v;
        bool store = rl__bucket_decide(&p, v, &aux, t, cost, UINT64_MAX, &nv, &got);
        struct expect e = ref_eval(&r, t, cost);
        bool on_grid = g && (t - RL_TIME_BASE_NS) % g == 0;
        cr_assert_eq(got.limit, (uint64_t)r.C, "%s: limit", ctx);
        cr_assert(!got.allowed || e.allowed, "%s: rl admits what the exact bucket denies", ctx);
        uint64_t retry_ms = e.retry_ns == ~(u128)0 ? NEVER : ms_of(e.retry_ns);
        if (on_grid)
            g_grid_checks++;
        else
            g_offgrid_checks++;
        if (on_grid) {
            cr_assert(got.allowed == e.allowed && got.remaining == e.remaining &&
                          got.retry_after_ms == retry_ms && got.reset_after_ms == ms_of(e.reset_ns),
                      "%s (on the grid): got %d rem %" PRIu64 " retry %" PRIu64 " reset %" PRIu64
                      "; exact %d rem %" PRIu64 " retry %" PRIu64 " reset %" PRIu64,
                      ctx, got.allowed, got.remaining, got.retry_after_ms, got.reset_after_ms,
                      e.allowed, e.remaining, retry_ms, ms_of(e.reset_ns));
        } else {
            /* rl = the exact bucket delayed by < 2 ns: compare with the reference at t - 2. */
            struct expect e2 = ref_eval(&r, t - 2, cost);
            if (got.allowed != e.allowed)
                cr_assert(!e2.allowed, "%s: rl denies what the exact bucket admitted 2 ns ago",
                          ctx);
            if (got.allowed) {
                check_between("remaining", got.remaining, e2.allowed ? e2.remaining : 0,
                              e.remaining, ctx);
                check_between("reset_after", got.reset_after_ms, ms_of(e.reset_ns),
                              ms_of(e.reset_ns + 2), ctx);
            } else if (cost <= r.C) {
                check_between("retry_after", got.retry_after_ms, e.allowed ? 0 : ms_of(e.retry_ns),
                              ms_of(e.retry_ns + 2), ctx);
                check_between("remaining", got.remaining, ref_eval(&r, t - 2, 0).remaining,
                              ref_eval(&r, t, 0).remaining, ctx);
            } else {
                cr_assert_eq(got.retry_after_ms, NEVER, "%s: retry", ctx);
            }
        }
        if (!got.allowed && got.retry_after_ms != NEVER &&
            (u128)t + (u128)got.retry_after_ms * NS_MS + 2 * (u128)tau <
                RL_TIME_BASE_NS + (1ULL << 60)) {
            /* Never early: the same request retry_after later is admitted (nothing else drew).
             * (Not where its new state would pass rl's 60-bit horizon: that fails closed.) */
            rl_result again;
            uint64_t nv2, aux2 = aux;
            rl__bucket_decide(&p, v, &aux2, t + got.retry_after_ms * NS_MS, cost, UINT64_MAX, &nv2,
                              &again);
            cr_assert(again.allowed, "%s: denied again %" PRIu64 " ms later (retry_after)", ctx,
                      got.retry_after_ms);
            g_retries++;
        }
        if (!got.allowed)
            g_denied++;
        if (store) {
            cr_assert(got.allowed, "%s: a denial stored a state (no clock step here)", ctx);
            v = nv;
            r.zs = (r.zs > (u128)t * r.L ? r.zs : (u128)t * r.L) + (u128)cost * r.W;
            admitted += cost;
            /* The long-run property, at this instant. */
            u128 bound = r.C + (u128)requests * (t - t0) / W;
            cr_assert(admitted <= bound,
                      "%s: admitted %" PRIu64 " > burst + floor(requests x elapsed / window)", ctx,
                      admitted);
            if (below(16) == 0) {
                /* A refund of the draw just made gives back exactly what it took. */
                v = rl__algos[algo]->refund(&p, v, &aux, t, cost);
                u128 back = (u128)cost * r.W;
                r.zs = r.zs >= back ? r.zs - back : 0;
                admitted -= cost;
            }
        }
    }
}

Test(exact, token_bucket_and_gcra_against_the_exact_bucket)
{
    uint64_t budget = total_ops() * 3 / 4, done = 0;
    unsigned limits = 0;
    static const uint64_t fixed[][3] = {
        {500001, 1000, 0},     {2515322407ULL, 3600000, 0},
        {142, 31, 18},         {3, 1000, 0},
        {1, MAX_WINDOW_MS, 0}, {1000000000, 1000, 0},
        {999999999, 1000, 7},  {7, 13, 3},
        {666666667, 1000, 0},  {1, 1, 0},
        {1000, 1, 0},          {97, 1000, 1000000},
    };
    while (done < budget) {
        uint64_t L, Wms, B;
        rl_algorithm algo = below(2) ? RL_TOKEN_BUCKET : RL_GCRA;
        if (limits < 2 * sizeof fixed / sizeof fixed[0]) {
            L = fixed[limits / 2][0];
            Wms = fixed[limits / 2][1];
            B = fixed[limits / 2][2];
            algo = limits % 2 ? RL_GCRA : RL_TOKEN_BUCKET;
        } else {
            /* windows 1 ms .. 10 years; rates 1 per 10 years .. 10^9/s (at most 1 per ns) */
            Wms = logu(1, MAX_WINDOW_MS);
            L = logu(1, Wms * NS_MS);
            if (below(4) == 0)
                L |= 1; /* odd counts: windows rarely multiples of them */
            B = below(3) == 0 ? 0 : logu(1, 1ULL << 40);
        }
        limits++;
        uint64_t n = 200 + below(600);
        bucket_walk(algo, L, Wms, B, n);
        done += n;
    }
    fprintf(stderr,
            "exact: %u bucket limits, %" PRIu64 " ops (%" PRIu64 " on the grid, %" PRIu64
            " off it), %" PRIu64 " denied, %" PRIu64 " retries replayed\n",
            limits, done, g_grid_checks, g_offgrid_checks, g_denied, g_retries);
    cr_assert_gt(g_grid_checks, done / 20, "too few operations on the grid to mean anything");
    cr_assert_gt(g_denied, done / 50, "too few denials to mean anything");
}

/* ---- windows: integer-exact, so every field must agree everywhere ---------------------------- */

struct wref {
    bool fixed;
    u128 L, W;
    uint64_t idx, a, b; /* the window of the last draw; fixed: a = count; sliding: prev, cur */
    bool present;
};

static rl_result wref_eval(const struct wref *m, uint64_t t, uint64_t cost, uint64_t *nidx,
                           uint64_t *na, uint64_t *nb)
{
    rl_result r;
    memset(&r, 0, sizeof r);
    r.limit = (uint64_t)m->L;
    uint64_t I = (uint64_t)(t / m->W);
    u128 e = t - (u128)I * m->W, W = m->W, L = m->L;
    if (m->fixed) {
        uint64_t used = m->present && m->idx == I ? m->a : 0;
        r.reset_after_ms = ms_of((u128)(I + 1) * W - t);
        r.allowed = used + (u128)cost <= L;
        r.remaining = (uint64_t)(L - used - (r.allowed ? cost : 0));
        r.retry_after_ms = r.allowed ? 0 : (cost <= L ? r.reset_after_ms : NEVER);
        *nidx = I, *na = used + (r.allowed ? cost : 0), *nb = 0;
        return r;
    }
    uint64_t p = 0, c = 0;
    if (m->present && m->idx == I)
        p = m->a, c = m->b;
    else if (m->present && m->idx + 1 == I)
        p = m->b;
    /* weighted estimate, exactly: prev x (W - e) / W + cur <= L, times W */
    u128 used = (u128)p * (W - e) + (u128)c * W, cap = L * W;
    r.allowed = cost <= L && used + (u128)cost * W <= cap;
    uint64_t c1 = c + (r.allowed ? cost : 0);
    u128 u1 = used + (r.allowed ? (u128)cost * W : 0);
    r.remaining = u1 >= cap ? 0 : (uint64_t)((cap - u1) / W);
    r.reset_after_ms = c1 ? ms_of(2 * W - e) : (p ? ms_of(W - e) : 0);
    if (!r.allowed) {
        if (cost > L) {
            r.retry_after_ms = NEVER;
        } else {
            /* the first ns s >= t at which the estimate admits cost (a search by bisection
             * over the exact predicate, independent of rl's closed form) */
            u128 lo = 0, hi = 2 * W; /* after two windows both counts are gone */
            while (lo < hi) {
                u128 mid = (lo + hi) / 2, s = t + mid;
                uint64_t I2 = (uint64_t)(s / W);
                u128 e2 = s - (u128)I2 * W, p2 = 0, c2 = 0;
                if (I2 == I)
                    p2 = p, c2 = c;
                else if (I2 == I + 1)
                    p2 = c;
                bool ok = p2 * (W - e2) + c2 * W + (u128)cost * W <= cap;
                if (ok)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            r.retry_after_ms = ms_of(lo);
        }
    }
    *nidx = I, *na = p, *nb = c1;
    return r;
}

static void window_walk(rl_algorithm algo, uint64_t requests, uint64_t window_ms, uint64_t nops)
{
    rl_limit lim = mk_limit(algo, requests, window_ms, 0);
    struct rl_params p;
    memset(&p, 0, sizeof p);
    if (rl__algos[algo]->params(&lim, &p) < 0)
        return;
    struct wref m = {algo == RL_FIXED_WINDOW, requests, window_ms * NS_MS, 0, 0, 0, false};
    uint64_t W = window_ms * NS_MS;
    uint64_t t = T0 + below(W), v = 0, aux = 0, prev = t;
    char ctx[200];
    for (uint64_t i = 0; i < nops; i++) {
        switch (below(8)) {
        case 0:
            break;
        case 1:
            t += 1 + below(2);
            break;
        case 2: /* a window boundary, or 1 ns either side of one */
            t += W - (t - RL_TIME_BASE_NS) % W - 1 + below(3);
            break;
        case 3:
            t += below(W / 8 + 2);
            break;
        case 4:
            t += below(W + 2);
            break;
        case 5:
            t += below(3 * W + 2);
            break;
        case 6:
            t += NS_MS - t % NS_MS;
            break;
        default:
            t += below(1000);
            break;
        }
        if (t < prev || t - RL_TIME_BASE_NS >= (1ULL << 60) - 2 * W - 1)
            return; /* near rl's 60-bit horizon (2056): this walk is over */
        prev = t;
        uint64_t cost = below(5) == 0 ? 0 : (below(6) == 0 ? requests + 1 : 1 + below(requests));
        snprintf(ctx, sizeof ctx, "%s %" PRIu64 "/%" PRIu64 "ms, op %" PRIu64 ", cost %" PRIu64,
                 algo_name(algo), requests, window_ms, i, cost);
        rl_result got, want;
        uint64_t nv = v, a2 = aux, ni, na, nb;
        bool store = rl__algos[algo]->decide(&p, v, &a2, t, cost, UINT64_MAX, &nv, &got);
        want = wref_eval(&m, t, cost, &ni, &na, &nb);
        cr_assert(got.allowed == want.allowed && got.remaining == want.remaining &&
                      got.retry_after_ms == want.retry_after_ms &&
                      got.reset_after_ms == want.reset_after_ms && got.limit == want.limit,
                  "%s: got %d rem %" PRIu64 " retry %" PRIu64 " reset %" PRIu64
                  "; exact %d rem %" PRIu64 " retry %" PRIu64 " reset %" PRIu64,
                  ctx, got.allowed, got.remaining, got.retry_after_ms, got.reset_after_ms,
                  want.allowed, want.remaining, want.retry_after_ms, want.reset_after_ms);
        if (!got.allowed && got.retry_after_ms != NEVER) {
            rl_result again;
            uint64_t nv2, a3 = aux;
            rl__algos[algo]->decide(&p, v, &a3, t + got.retry_after_ms * NS_MS, cost, UINT64_MAX,
                                    &nv2, &again);
            cr_assert(again.allowed, "%s: denied again %" PRIu64 " ms later", ctx,
                      got.retry_after_ms);
            g_retries++;
        }
        if (store) {
            v = nv;
            aux = a2;
            m.present = true, m.idx = ni, m.a = na, m.b = nb;
        }
    }
}

Test(exact, windows_against_exact_references)
{
    uint64_t budget = total_ops() / 4, done = 0;
    while (done < budget) {
        rl_algorithm algo = below(2) ? RL_FIXED_WINDOW : RL_SLIDING_WINDOW;
        uint64_t Wms = logu(1, MAX_WINDOW_MS);
        uint64_t L = logu(1, algo == RL_SLIDING_WINDOW ? (1ULL << 22) - 1 : Wms * NS_MS);
        uint64_t n = 100 + below(300);
        window_walk(algo, L, Wms, n);
        done += n;
    }
}

/* ---- the issue's three examples, through the public API ----------------------------------------
 */

Test(exact, issue_500001_per_second)
{
    /* burst 0: C = 500,001. Drained at t0; at t0 + 500 ms an exact bucket holds 250,000.5. */
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 500001, 1000, 0);
    rl_result r = acq_at(g_rl, "a", &l, 500001, T0);
    cr_assert(r.allowed);
    r = acq_at(g_rl, "a", &l, 0, T0 + 500 * NS_MS);
    cr_assert_eq(r.remaining, 250000, "remaining %" PRIu64 ", exact 250,000", r.remaining);
    r = acq_at(g_rl, "a", &l, 250100, T0 + 500 * NS_MS);
    cr_assert(!r.allowed, "cost 250,100 admitted; an exact bucket holds 250,000.5");
    r = acq_at(g_rl, "a", &l, 250000, T0 + 500 * NS_MS);
    cr_assert(r.allowed, "cost 250,000 denied; an exact bucket holds 250,000.5");
}

Test(exact, issue_2515322407_per_hour)
{
    /* Drained at t0; 1,234,567,891 ns later an exact bucket holds floor(L x dt / W) tokens (the
     * old T = floor(W / L) reported 347,545 more after an hour's refill). No unit grid holds
     * whole ms for this limit, so rl's start may round up by < 1 unit: one token less at most. */
    const uint64_t L = 2515322407ULL, dt = 1234567891ULL;
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, L, MS_HOUR, 0);
    cr_assert(acq_at(g_rl, "b", &l, L, T0).allowed);
    uint64_t want = (uint64_t)((u128)L * dt / (MS_HOUR * NS_MS));
    rl_result r = acq_at(g_rl, "b", &l, 0, T0 + dt);
    cr_assert(r.remaining == want || r.remaining + 1 == want,
              "remaining %" PRIu64 ", exact %" PRIu64, r.remaining, want);
    cr_assert(!acq_at(g_rl, "b", &l, want + 1, T0 + dt).allowed);
}

Test(exact, issue_142_per_31ms_burst_18)
{
    /* cost 18 at t0, then cost 5 at t0 + 1,091,545 ns: an exact bucket holds 4.99998 tokens. */
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 142, 31, 18);
    cr_assert(acq_at(g_rl, "c", &l, 18, T0).allowed);
    rl_result r = acq_at(g_rl, "c", &l, 5, T0 + 1091545);
    cr_assert(!r.allowed, "cost 5 admitted with 4.99998 tokens in the bucket");
    cr_assert_eq(r.remaining, 4);
    /* 5 tokens take 5 x 31/142 ms = 1,091,549.3 ns: admitted at 1,091,550 ns, not before */
    cr_assert(!acq_at(g_rl, "c", &l, 5, T0 + 1091549).allowed);
    cr_assert(acq_at(g_rl, "c", &l, 5, T0 + 1091550).allowed);
}

/* STRICT's Lua twin is exact while capacity x window_us <= 2^52 (Lua numbers are doubles);
 * beyond that the limit is refused with a message that says so, not rounded. */
Test(exact, strict_bucket_beyond_2_52_is_refused)
{
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 1000, MS_HOUR, 1251000); /* 1.2510e6 x 3.6e9 us */
    l.mode = RL_MODE_STRICT;
    rl_result r;
    int rc = rl_acquire_at(g_rl, "s", 1, &l, 1, T0, &r);
    cr_assert_eq(rc, -ERANGE, "rc %d (%s)", rc, rl_errmsg());
    cr_assert(strstr(rl_errmsg(), "2^52") != NULL, "%s", rl_errmsg());
    l.burst = 1250000; /* 4.5e15 <= 2^52: accepted (then refused for want of Redis) */
    rc = rl_acquire_at(g_rl, "s", 1, &l, 1, T0, &r);
    cr_assert_eq(rc, -ENOTSUP, "rc %d (%s)", rc, rl_errmsg());
}
