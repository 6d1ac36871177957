/*
 * The four algorithms, single-threaded, at fixed times (rl_acquire_at from T0).
 *
 * Every expected number below was derived by hand from the semantics in the test plan (restated
 * in short above each table), not read off the library. Notation: T = floor(window_ns /
 * requests) is the emission interval, tau = C * T the bucket depth, W the window, e the time
 * elapsed in the current window; ms results are ceil(ns / 1e6).
 *
 * Tables: A(at_ms, cost, allowed, remaining, retry_after_ms, reset_after_ms) acquires at
 * T0 + at_ms; R(at_ms, cost) refunds. A table stops at its first wrong row.
 */
#include "rl_test.h"

TestSuite(algorithms, .init = seg_setup, .fini = seg_teardown);

/* ---- token bucket ---------------------------------------------------------------------------- */

/*
 * 10 per 1000 ms, burst 0: C = 10, T = 100 ms, tau = 1000 ms. Z is the "full time": allowed iff
 * max(Z, t) + cost*T - t <= tau; remaining = floor((tau - backlog) / T); reset = backlog.
 * Could fail: off-by-one at exactly tau, retry not counted from the clamped Z, refill lost.
 */
/* clang-format off */
static const step tb_10_per_s[] = {
    A(0, 1, YES, 9, 0, 100),        /* new key starts full */
    A(0, 4, YES, 5, 0, 500),
    A(0, 5, YES, 0, 0, 1000),       /* backlog exactly tau: still allowed */
    A(0, 1, NO, 0, 100, 1000),      /* 1100 - 1000 = 100 ms to wait */
    A(50, 1, NO, 0, 50, 950),       /* half a token refilled: not enough */
    A(100, 1, YES, 0, 0, 1000),     /* retry_after honoured exactly */
    A(100, 0, YES, 0, 0, 1000),     /* peek: allowed, nothing taken */
    A(350, 2, YES, 0, 0, 950),      /* Z 1100 -> 1300, backlog 950 */
    A(850, 3, YES, 2, 0, 750),      /* Z 1300 -> 1600, backlog 750: 2.5 tokens -> 2 */
    A(5000, 0, YES, 10, 0, 0),      /* long idle: full again, reset 0 */
    A(5000, 11, NO, 10, NEVER, 0),  /* cost > capacity: never, nothing taken */
    A(5000, 10, YES, 0, 0, 1000),   /* all at once */
    A(5000, 3, NO, 0, 300, 1000),
    A(5299, 3, NO, 2, 1, 701),      /* 2.99 tokens: 0.01 token short, retry 1 ms */
    A(5300, 3, YES, 0, 0, 1000),
};
/* clang-format on */

Test(algorithms, token_bucket_basic)
{
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 10, 1000, 0);
    RUN_STEPS(g_rl, "tb", &l, 10, tb_10_per_s);
}

/*
 * 3 per 1000 ms: a request is exactly 333,333,333.3 ns of refill, tau = 1000 ms. Fractions of a
 * token must neither be lost nor rounded in the caller's favour.
 */
/* clang-format off */
static const step tb_3_per_s[] = {
    A(0, 1, YES, 2, 0, 334),        /* backlog 333.33 ms -> 334 */
    A(0, 2, YES, 0, 0, 1000),       /* backlog exactly 1000 ms = tau */
    A(0, 1, NO, 0, 334, 1000),      /* needs 1,333.33 - 1000 ms */
    A(333, 1, NO, 0, 1, 667),       /* 0.33 ms short */
    A(334, 1, YES, 0, 0, 1000),     /* backlog 999.33 ms */
    A(1333, 0, YES, 2, 0, 1),       /* 0.33 ms backlog left: 2.999 tokens -> 2 */
    A(1334, 0, YES, 3, 0, 0),       /* full */
};
/* clang-format on */

Test(algorithms, token_bucket_fractional_interval)
{
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 3, 1000, 0);
    RUN_STEPS(g_rl, "tb3", &l, 3, tb_3_per_s);
}

/* 1 per 1000 ms, burst 5: C = 5, T = 1000 ms, tau = 5000 ms; limit = burst. */
/* clang-format off */
static const step tb_burst5[] = {
    A(0, 0, YES, 5, 0, 0),          /* peek of a new key */
    A(0, 5, YES, 0, 0, 5000),       /* the whole burst at once */
    A(0, 1, NO, 0, 1000, 5000),
    A(2500, 1, YES, 1, 0, 3500),    /* 2.5 refilled; take 1 -> 1.5 -> 1 */
    A(2500, 2, NO, 1, 500, 3500),   /* all or nothing: the 1 available is not taken */
    A(2500, 6, NO, 1, NEVER, 3500), /* 6 > capacity 5 */
    A(7500, 0, YES, 5, 0, 0),       /* Z = 6000 < t: full */
};
/* clang-format on */

Test(algorithms, token_bucket_burst_above_rate)
{
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 1, 1000, 5);
    RUN_STEPS(g_rl, "tb_burst", &l, 5, tb_burst5);
}

/* 10 per 1000 ms, burst 2: C = 2 (burst below the rate), T = 100 ms, tau = 200 ms. */
/* clang-format off */
static const step tb_burst2[] = {
    A(0, 3, NO, 2, NEVER, 0),
    A(0, 2, YES, 0, 0, 200),
    A(0, 1, NO, 0, 100, 200),
    A(100, 1, YES, 0, 0, 200),
    A(1000, 0, YES, 2, 0, 0),
};
/* clang-format on */

Test(algorithms, token_bucket_burst_below_rate)
{
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 10, 1000, 2);
    RUN_STEPS(g_rl, "tb_burst2", &l, 2, tb_burst2);
}

/* ---- GCRA (redis-cell conventions: limit = max_burst + 1) ------------------------------------ */

/*
 * redis-cell's own unit-test table: 1 per 1000 ms, max_burst 4 -> C = 5, T = 1000 ms,
 * tau = 5000 ms. Re-derived row by row with the bucket maths above.
 */
/* clang-format off */
static const step gcra_redis_cell[] = {
    A(0, 6, NO, 5, NEVER, 0),       /* 6 > limit 5 */
    A(0, 1, YES, 4, 0, 1000),
    A(0, 1, YES, 3, 0, 2000),
    A(0, 1, YES, 2, 0, 3000),
    A(0, 1, YES, 1, 0, 4000),
    A(0, 1, YES, 0, 0, 5000),
    A(0, 1, NO, 0, 1000, 5000),
    A(3000, 1, YES, 2, 0, 3000),    /* Z 5000 -> 6000, backlog 3000 */
    A(3100, 1, YES, 1, 0, 3900),    /* Z 6000 -> 7000, backlog 3900 */
    A(4000, 1, YES, 1, 0, 4000),    /* Z 7000 -> 8000 */
    A(8000, 1, YES, 4, 0, 1000),    /* Z = t: full, take 1 */
    A(9500, 1, YES, 4, 0, 1000),    /* Z 9000 < t: full again */
    A(9500, 0, YES, 4, 0, 1000),    /* peek */
    A(9500, 2, YES, 2, 0, 3000),
    A(9500, 5, NO, 2, 3000, 3000),  /* backlog 3000 + 5000 - 5000 */
};
/* clang-format on */

Test(algorithms, gcra_redis_cell_table)
{
    rl_limit l = mk_limit(RL_GCRA, 1, 1000, 4);
    RUN_STEPS(g_rl, "gcra", &l, 5, gcra_redis_cell);
}

/* burst 0 means "limit = requests": 5 per 1000 ms -> max_burst 4, C = 5, T = 200, tau = 1000. */
/* clang-format off */
static const step gcra_burst0[] = {
    A(0, 0, YES, 5, 0, 0),
    A(0, 5, YES, 0, 0, 1000),
    A(0, 1, NO, 0, 200, 1000),
    A(200, 1, YES, 0, 0, 1000),
    A(200, 6, NO, 0, NEVER, 1000),
};
/* clang-format on */

/* max_burst 2 with 5 per 1000 ms: C = 3 (not 2 as a token bucket would have), tau = 600. */
/* clang-format off */
static const step gcra_burst2[] = {
    A(0, 0, YES, 3, 0, 0),
    A(0, 4, NO, 3, NEVER, 0),
    A(0, 3, YES, 0, 0, 600),
    A(0, 1, NO, 0, 200, 600),
};
/* clang-format on */

/* 1 per 1000 ms, burst 0: max_burst 0, C = 1: strictly one per second. */
/* clang-format off */
static const step gcra_one[] = {
    A(0, 1, YES, 0, 0, 1000),
    A(500, 1, NO, 0, 500, 500),
    A(1000, 1, YES, 0, 0, 1000),
};
/* clang-format on */

Test(algorithms, gcra_burst_conventions)
{
    rl_limit l0 = mk_limit(RL_GCRA, 5, 1000, 0);
    RUN_STEPS(g_rl, "g0", &l0, 5, gcra_burst0);
    rl_limit l2 = mk_limit(RL_GCRA, 5, 1000, 2);
    RUN_STEPS(g_rl, "g2", &l2, 3, gcra_burst2);
    rl_limit l1 = mk_limit(RL_GCRA, 1, 1000, 0);
    RUN_STEPS(g_rl, "g1", &l1, 1, gcra_one);
}

/* ---- fixed window ---------------------------------------------------------------------------- */

/*
 * 3 per 1000 ms, windows aligned at multiples of 1 s (so at T0). Allowed iff used + cost <= 3;
 * reset and retry are the time to the window's end. Could fail: a window not rolled over, a
 * window edge off by one, a denied cost partly taken, burst not ignored.
 */
/* clang-format off */
static const step fw_3_per_s[] = {
    A(0, 1, YES, 2, 0, 1000),
    A(0, 2, YES, 0, 0, 1000),
    A(0, 1, NO, 0, 1000, 1000),
    A(999, 1, NO, 0, 1, 1),         /* last ms of the window */
    A(999, 0, YES, 0, 0, 1),        /* peek */
    A(1000, 3, YES, 0, 0, 1000),    /* next window: all 3 again */
    A(1500, 4, NO, 0, NEVER, 500),  /* 4 > limit */
    A(2000, 4, NO, 3, NEVER, 1000), /* still never, though the window is fresh */
    A(2400, 1, YES, 2, 0, 600),
    A(2400, 2, YES, 0, 0, 600),
    A(5000, 0, YES, 3, 0, 1000),    /* idle windows: fresh */
};
/* clang-format on */

Test(algorithms, fixed_window_basic)
{
    rl_limit l = mk_limit(RL_FIXED_WINDOW, 3, 1000, 0);
    RUN_STEPS(g_rl, "fw", &l, 3, fw_3_per_s);
    /* burst is ignored by the fixed window: a burst of 50 changes nothing (own key). */
    rl_limit lb = mk_limit(RL_FIXED_WINDOW, 3, 1000, 50);
    RUN_STEPS(g_rl, "fw_burst", &lb, 3, fw_3_per_s);
}

/* 100 per minute: the window is aligned to the epoch, not to the key's first request. */
/* clang-format off */
static const step fw_minute[] = {
    A(59000, 100, YES, 0, 0, 1000), /* first request 1 s before the minute ends */
    A(59999, 1, NO, 0, 1, 1),
    A(60000, 100, YES, 0, 0, 60000),
};
/* clang-format on */

Test(algorithms, fixed_window_epoch_aligned)
{
    rl_limit l = mk_limit(RL_FIXED_WINDOW, 100, 60000, 0);
    RUN_STEPS(g_rl, "fw_minute", &l, 100, fw_minute);
}

/* ---- sliding window -------------------------------------------------------------------------- */

/*
 * 10 per 1000 ms. Weighted count p * (W - e) / W + c; allowed iff p*(W-e) + (c+cost)*W <= L*W.
 * Retry: (a) c + cost <= L: wait until the previous window's weight has shrunk enough,
 * e' = W - floor((L-c-cost) * W / p); (b) else wait for the next window, where c becomes the
 * previous count: (W - e) + e'' with e'' = W - floor((L-cost) * W / c). Reset: 2W - e when c > 0,
 * W - e when only p > 0. Could fail: weight rounded the wrong way, retry one window early/late.
 */
/* clang-format off */
static const step sw_10_per_s[] = {
    A(0, 4, YES, 6, 0, 2000),
    A(500, 6, YES, 0, 0, 1500),
    A(500, 1, NO, 0, 600, 1500),    /* (b): (1000-500) + (1000 - floor(9*1000/10)) = 600 */
    A(1099, 1, NO, 0, 1, 901),      /* p=10, e=99: 10*901 + 1000 = 10010 > 10000 */
    A(1100, 1, YES, 0, 0, 1900),    /* 10*900 + 1000 = 10000: exactly the limit */
    A(1100, 0, YES, 0, 0, 1900),    /* peek */
    A(1500, 2, YES, 2, 0, 1500),    /* 10*500 + 3*1000 = 8000 */
    A(1500, 3, NO, 2, 100, 1500),   /* (a): e' = 1000 - floor(4000/10) = 600 */
    A(1600, 3, YES, 0, 0, 1400),    /* 10*400 + 6*1000 = 10000 */
    A(2000, 0, YES, 4, 0, 1000),    /* next window: p = 6, c = 0 */
    A(2250, 5, YES, 0, 0, 1750),    /* 6*750 + 5*1000 = 9500 */
    A(2250, 1, NO, 0, 84, 1750),    /* (a): e' = 1e9 - floor(4e9/6) ns = 333,333,334 ns */
    A(2250, 11, NO, 0, NEVER, 1750),
    A(4100, 0, YES, 10, 0, 0),      /* two windows later: nothing counts */
    A(4100, 10, YES, 0, 0, 1900),
    A(4100, 10, NO, 0, 1900, 1900), /* (b) with L - cost = 0: the window after next */
    A(5999, 10, NO, 9, 1, 1),       /* p=10 still weighs 10*1 ms */
    A(6000, 10, YES, 0, 0, 2000),
};
/* clang-format on */

Test(algorithms, sliding_window_basic)
{
    rl_limit l = mk_limit(RL_SLIDING_WINDOW, 10, 1000, 0);
    RUN_STEPS(g_rl, "sw", &l, 10, sw_10_per_s);
}

/* Case (b) with a partial previous count: c = 8, cost 5 -> e'' = 1000 - floor(5000/8) = 375. */
/* clang-format off */
static const step sw_partial[] = {
    A(300, 8, YES, 2, 0, 1700),
    A(300, 5, NO, 2, 1075, 1700),   /* (1000 - 300) + 375 */
    A(1374, 5, NO, 4, 1, 626),      /* 8*626 + 5000 = 10008 > 10000; remaining floor(4992/1000) */
    A(1375, 5, YES, 0, 0, 1625),    /* 8*625 + 5000 = 10000 */
};
/* clang-format on */

Test(algorithms, sliding_window_previous_weight)
{
    rl_limit l = mk_limit(RL_SLIDING_WINDOW, 10, 1000, 0);
    RUN_STEPS(g_rl, "sw_partial", &l, 10, sw_partial);
    /* burst is ignored: same table, own key, burst 99. */
    rl_limit lb = mk_limit(RL_SLIDING_WINDOW, 10, 1000, 99);
    RUN_STEPS(g_rl, "sw_partial_burst", &lb, 10, sw_partial);
}

/*
 * The largest sliding limit (4194303 per 5 ms) after a long idle time. By the semantics, a
 * stored window that is neither the current one nor the one before counts as nothing, however
 * long ago it was. docs/design.md accepts one exception: the window index is kept modulo 2^16
 * here, so a key idle for exactly a multiple of 65536 windows (or one more) may see its old
 * counts again; those idle times are not checked. Could fail: the truncated index read as a
 * "later" window (clock stepped back), which would deny a key idle for half of every 65536
 * windows (here 164 s to 328 s; at 1 s windows, 9 to 18 hours).
 */
Test(algorithms, sliding_window_long_idle_large_limit)
{
    const uint64_t L = 4194303;
    rl_limit l = mk_limit(RL_SLIDING_WINDOW, L, 5, 0);
    static const int64_t idle_windows[] = {2,     100,   32767, 32768,  40000,
                                           65535, 65538, 98304, 100000, 1000000};
    for (size_t i = 0; i < sizeof idle_windows / sizeof idle_windows[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "idle-%zu", i);
        rl_result r = acq_at(g_rl, key, &l, L, at_ms(0));
        cr_assert(r.allowed, "%s: the whole limit at once", key);
        int64_t later = idle_windows[i] * 5;
        r = acq_at(g_rl, key, &l, 1, at_ms(later));
        cr_expect(r.allowed && r.remaining == L - 1 && r.reset_after_ms == 10,
                  "sliding 4194303/5ms: took all at T0, then 1 after %" PRId64
                  " idle windows (T0+%" PRId64 "ms): allowed %d remaining %" PRIu64
                  " reset %" PRIu64 "; expected allowed, remaining %" PRIu64 ", reset 10",
                  idle_windows[i], later, r.allowed, r.remaining, r.reset_after_ms, L - 1);
    }
}

/* ---- clock stepping backwards ---------------------------------------------------------------- */

/* Fixed window: a stored later window counts as the current one; an even later window is
 * fresh. Every row is unambiguous whichever window index the library keeps after row 2. */
/* clang-format off */
static const step fw_back[] = {
    A(5000, 2, YES, 1, 0, 1000),    /* window 5 */
    A(3500, 1, YES, 0, 0, 500),     /* back to window 3: window 5's count of 2 applies */
    A(3500, 1, NO, 0, 500, 500),
    A(6000, 1, YES, 2, 0, 1000),    /* window 6: fresh */
};
/* clang-format on */

/* Token bucket, 10 per s (tau 1000 ms): exhausted at +10 s (Z = +11 s), back to +9.5 s. Z is
 * clamped into [t, t + tau], so the key looks empty, never "more than empty". */
/* clang-format off */
static const step tb_back[] = {
    A(10000, 10, YES, 0, 0, 1000),
    A(9500, 1, NO, 0, 600, 1500),   /* 500 ms back (< 1 s slack): the stored Z = 11000 wins */
    A(10500, 1, YES, 4, 0, 600),    /* nothing was lost: backlog 500 + 100 */
};
/* A step back beyond the 1 s slack moves the state to the new time (design.md section 5). */
static const step tb_back_far[] = {
    A(10000, 10, YES, 0, 0, 1000),
    A(5000, 1, NO, 0, 100, 1000),   /* 5 s back: Z' = t + tau, and Z' is stored */
    A(5100, 1, YES, 0, 0, 1000),    /* so retry_after was honest: a token 100 ms later */
    A(6100, 1, YES, 9, 0, 100),     /* full again one refill after the step */
};
/* clang-format on */

/* Sliding window (docs/design.md section 5): a stored window later than the current one counts
 * as the current one, like the fixed window's. */
/* clang-format off */
static const step sw_back[] = {
    A(10000, 10, YES, 0, 0, 2000),
    A(8000, 1, NO, 0, 1100, 2000),  /* 2 s back: the counts (0, 10) move to window 8 */
    A(8000, 0, YES, 0, 0, 2000),
    A(9000, 0, YES, 0, 0, 1000),    /* window 9: window 8's 10 weigh fully at e = 0 */
    A(9500, 1, YES, 4, 0, 1500),    /* 10*500 + 1*1000 <= 10000 */
    A(11000, 0, YES, 10, 0, 0),     /* windows 8 and 9 are past */
};
/* clang-format on */

Test(algorithms, clock_backwards_tables)
{
    rl_limit fw = mk_limit(RL_FIXED_WINDOW, 3, 1000, 0);
    RUN_STEPS(g_rl, "fwb", &fw, 3, fw_back);
    rl_limit tb = mk_limit(RL_TOKEN_BUCKET, 10, 1000, 0);
    RUN_STEPS(g_rl, "tbb", &tb, 10, tb_back);
    RUN_STEPS(g_rl, "tbb_far", &tb, 10, tb_back_far);
    rl_limit sw = mk_limit(RL_SLIDING_WINDOW, 10, 1000, 0);
    RUN_STEPS(g_rl, "swb", &sw, 10, sw_back);
}

/*
 * For every algorithm: exhaust a key, step the clock back by a little and by a lot, and check
 * nothing wraps: remaining <= limit, retry_after finite (cost <= capacity) and bounded by the
 * step plus one refill, reset bounded; then the key admits again no later than one refill after
 * the clock has caught up with where it was (never "stuck for years").
 */
Test(algorithms, clock_backwards_sane_for_all)
{
    static const struct {
        rl_algorithm algo;
        uint64_t requests, window_ms, burst;
        uint64_t refill_ms; /* from exhausted to fresh */
    } cases[] = {
        {RL_TOKEN_BUCKET, 10, 1000, 0, 1000},
        {RL_GCRA, 10, 1000, 4, 500},
        {RL_FIXED_WINDOW, 10, 1000, 0, 1000},
        {RL_SLIDING_WINDOW, 10, 1000, 0, 2000},
    };
    static const int64_t back_ms[] = {1, 300, 999, 1000, 1500, 3600000};
    const int64_t t1 = 7200000; /* +2 h: whole windows, so windows are aligned */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rl_limit l = mk_limit(cases[c].algo, cases[c].requests, cases[c].window_ms, cases[c].burst);
        for (size_t b = 0; b < sizeof back_ms / sizeof back_ms[0]; b++) {
            char key[48];
            snprintf(key, sizeof key, "%s-back-%" PRId64, algo_name(cases[c].algo), back_ms[b]);
            rl_result r = acq_at(g_rl, key, &l, 0, at_ms(t1));
            uint64_t limit = r.limit;
            r = acq_at(g_rl, key, &l, limit, at_ms(t1));
            cr_assert(r.allowed, "%s: exhaust", key);
            int64_t tb = t1 - back_ms[b];
            /* Steps within the 1 s slack keep the stored timeline (the key waits for them);
             * larger ones move the state to the new time. */
            uint64_t kept = back_ms[b] <= 1000 ? (uint64_t)back_ms[b] : 0;
            for (uint64_t cost = 0; cost <= limit + 1; cost++) {
                r = acq_at(g_rl, key, &l, cost, at_ms(tb));
                cr_expect_leq(r.remaining, limit, "%s cost %" PRIu64 ": remaining %" PRIu64, key,
                              cost, r.remaining);
                cr_expect_leq(r.reset_after_ms, kept + 2 * cases[c].refill_ms,
                              "%s cost %" PRIu64 ": reset %" PRIu64, key, cost, r.reset_after_ms);
                if (cost > limit) {
                    cr_expect(!r.allowed && r.retry_after_ms == NEVER, "%s: cost > limit", key);
                } else if (!r.allowed) {
                    cr_expect_leq(r.retry_after_ms, kept + 2 * cases[c].refill_ms,
                                  "%s cost %" PRIu64 ": retry %" PRIu64, key, cost,
                                  r.retry_after_ms);
                }
                if (r.allowed && cost > 0)
                    break; /* took something: the rest of the loop would measure that */
            }
            /* Usable again at the latest one refill after the step (plus the step itself when
             * it is within the slack): a key never waits for a far clock to catch up (the deny
             * after the step stores the moved state, so the retry_after it gave is honest). */
            int64_t deadline = tb + (int64_t)kept + (int64_t)cases[c].refill_ms;
            bool ok = false;
            for (int64_t t = tb; !ok; t += (int64_t)cases[c].refill_ms / 10) {
                if (t > deadline)
                    t = deadline; /* the last try is exactly at the deadline */
                ok = acq_at(g_rl, key, &l, 1, at_ms(t)).allowed;
                if (t == deadline)
                    break;
            }
            cr_expect(ok, "%s: still denied one refill after the clock stepped back", key);
        }
    }
}

/* ---- refund ---------------------------------------------------------------------------------- */

/* Token bucket 10/s (T = 100 ms): a refund moves Z back by cost*T, never below "full". */
/* clang-format off */
static const step tb_refund[] = {
    A(0, 10, YES, 0, 0, 1000),
    R(0, 3),
    A(0, 0, YES, 3, 0, 700),
    R(0, 100),                      /* far more than was taken: just full */
    A(0, 0, YES, 10, 0, 0),
    A(0, 10, YES, 0, 0, 1000),      /* not more than full: 10, and the 11th is denied */
    A(0, 1, NO, 0, 100, 1000),
    R(400, 2),                      /* 4 refilled + 2 refunded */
    A(400, 0, YES, 6, 0, 400),
};
/* clang-format on */

/* GCRA shares the bucket maths: redis-cell limits 1/s burst 4 (C = 5, T = 1000). */
/* clang-format off */
static const step gcra_refund[] = {
    A(0, 5, YES, 0, 0, 5000),
    R(0, 2),
    A(0, 0, YES, 2, 0, 3000),
    A(0, 3, NO, 2, 1000, 3000),
};
/* clang-format on */

/* Fixed window 5/s: refund in the current window lowers the count, never below 0. */
/* clang-format off */
static const step fw_refund[] = {
    A(0, 5, YES, 0, 0, 1000),
    R(100, 2),
    A(100, 0, YES, 2, 0, 900),
    R(100, 10),
    A(100, 0, YES, 5, 0, 900),
    A(900, 5, YES, 0, 0, 100),      /* the refunded 5 + ... exactly 5, not 7 */
    A(900, 1, NO, 0, 100, 100),
};
/* clang-format on */

/* Sliding window 10/s: refund in the take's window lowers the current count; a refund in the
 * next window lowers the previous count. */
/* clang-format off */
static const step sw_refund[] = {
    A(0, 6, YES, 4, 0, 2000),
    R(0, 2),                        /* c = 4 */
    A(0, 0, YES, 6, 0, 2000),
    A(1500, 0, YES, 8, 0, 500),     /* p = 4 weighs 4 * 500 / 1000 = 2 */
    R(1500, 4),                     /* the take was in the previous window: p = 0 */
    A(1500, 0, YES, 10, 0, 0),
    R(1500, 100),                   /* nothing left to give back */
    A(1500, 10, YES, 0, 0, 1500),
    A(1500, 1, NO, 0, 600, 1500),   /* (b): (1000 - 500) + (1000 - floor(9000/10)) */
};
/* clang-format on */

Test(algorithms, refund)
{
    rl_limit tb = mk_limit(RL_TOKEN_BUCKET, 10, 1000, 0);
    RUN_STEPS(g_rl, "tbr", &tb, 10, tb_refund);
    rl_limit g = mk_limit(RL_GCRA, 1, 1000, 4);
    RUN_STEPS(g_rl, "gr", &g, 5, gcra_refund);
    rl_limit fw = mk_limit(RL_FIXED_WINDOW, 5, 1000, 0);
    RUN_STEPS(g_rl, "fwr", &fw, 5, fw_refund);
    rl_limit sw = mk_limit(RL_SLIDING_WINDOW, 10, 1000, 0);
    RUN_STEPS(g_rl, "swr", &sw, 10, sw_refund);
}

/* A refund of a key that is not in the table does nothing: no error, no key created with less
 * than its full allowance, no slot taken. */
Test(algorithms, refund_unknown_key_is_noop)
{
    for (int a = 0; a < RL_ALGORITHM_COUNT; a++) {
        rl_limit l = mk_limit((rl_algorithm)a, 5, 1000, 0);
        refund_at(g_rl, "never-seen", &l, 3, at_ms(0));
        rl_result r = acq_at(g_rl, "never-seen", &l, 0, at_ms(0));
        cr_expect_eq(r.remaining, r.limit, "%s: refund of an unknown key changed it",
                     algo_name((rl_algorithm)a));
    }
    rl_segment_info info;
    cr_assert_eq(rl_segment_info_get(g_rl, &info), 0);
    cr_expect_eq(info.slots_in_use, 0, "peeks and refunds of unknown keys took %" PRIu64 " slots",
                 info.slots_in_use);
}

/* ---- limits as identity ---------------------------------------------------------------------- */

/* The same key bytes under different limits are different counters. Could fail: state keyed on
 * the key alone, so one limit's consumption shows under another (or a new limit inherits a
 * state it misreads). */
Test(algorithms, same_key_other_limit_is_independent)
{
    const rl_limit a = mk_limit(RL_TOKEN_BUCKET, 5, 1000, 0);
    const rl_limit others[] = {
        mk_limit(RL_TOKEN_BUCKET, 5, 2000, 0), /* other window */
        mk_limit(RL_TOKEN_BUCKET, 6, 1000, 0), /* other rate */
        mk_limit(RL_TOKEN_BUCKET, 5, 1000, 6), /* other burst */
        mk_limit(RL_GCRA, 5, 1000, 0),         /* same C = 5, T, tau: other algorithm */
        mk_limit(RL_FIXED_WINDOW, 5, 1000, 0), mk_limit(RL_SLIDING_WINDOW, 5, 1000, 0),
    };
    const uint64_t full[] = {5, 6, 6, 5, 5, 5};
    rl_result r = acq_at(g_rl, "user:1", &a, 5, at_ms(0));
    cr_assert(r.allowed && r.remaining == 0);
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        r = acq_at(g_rl, "user:1", &others[i], 0, at_ms(0));
        cr_expect_eq(r.remaining, full[i],
                     "limit #%zu sees %" PRIu64 " remaining, expected %" PRIu64, i, r.remaining,
                     full[i]);
        r = acq_at(g_rl, "user:1", &others[i], 1, at_ms(0));
        cr_expect(r.allowed && r.remaining == full[i] - 1, "limit #%zu: take 1", i);
    }
    r = acq_at(g_rl, "user:1", &a, 1, at_ms(0));
    cr_expect(!r.allowed && r.remaining == 0, "the first limit was changed by the others");
    rl_segment_info info;
    cr_assert_eq(rl_segment_info_get(g_rl, &info), 0);
    cr_expect_eq(info.slots_in_use, 7, "one slot per (key, limit): %" PRIu64, info.slots_in_use);
    cr_expect_eq(info.limits_in_use, 7, "7 distinct limits: %" PRIu64, info.limits_in_use);
}

/* Keys are arbitrary bytes compared in full. Could fail: only a prefix compared, NUL ending
 * the key, or a key and its prefix sharing a counter. */
Test(algorithms, keys_are_full_byte_strings)
{
    rl_limit l = mk_limit(RL_FIXED_WINDOW, 1, 1000, 0);
    static char k1[RL_KEY_MAX], k2[RL_KEY_MAX];
    memset(k1, 'x', sizeof k1);
    memcpy(k2, k1, sizeof k2);
    k2[RL_KEY_MAX - 1] = 'y'; /* differ in the very last byte */
    const struct {
        const void *key;
        size_t len;
    } keys[] = {
        {k1, RL_KEY_MAX}, {k2, RL_KEY_MAX}, {k1, RL_KEY_MAX - 1}, {k1, 25},
        {k1, 24},         {k1, 1},          {"a\0b", 3},          {"a\0c", 3},
        {"a", 1},         {"a\0", 2},       {"\xff\x00\x01", 3},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        rl_result r;
        int rc = rl_acquire_at(g_rl, keys[i].key, keys[i].len, &l, 1, at_ms(0), &r);
        cr_assert_eq(rc, 0, "key #%zu: %d", i, rc);
        cr_expect(r.allowed, "key #%zu (len %zu) shares a counter with an earlier key", i,
                  keys[i].len);
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        rl_result r;
        cr_assert_eq(rl_acquire_at(g_rl, keys[i].key, keys[i].len, &l, 1, at_ms(0), &r), 0);
        cr_expect(!r.allowed, "key #%zu (len %zu) lost its count", i, keys[i].len);
    }
}

/* ---- argument errors ------------------------------------------------------------------------- */

Test(algorithms, argument_errors)
{
    const rl_limit ok = mk_limit(RL_TOKEN_BUCKET, 10, 1000, 0);
    rl_limit bad_req = ok, bad_win = ok, bad_algo = ok, global = ok;
    bad_req.requests = 0;
    bad_win.window_ms = 0;
    bad_algo.algorithm = (rl_algorithm)7;
    global.mode = RL_MODE_GLOBAL;
    static char big[RL_KEY_MAX + 1];
    memset(big, 'k', sizeof big);
    rl_result r;
    const struct {
        const char *what;
        rl_t *rl;
        const void *key;
        size_t keylen;
        const rl_limit *lim;
        rl_result *out;
        int want;
    } cases[] = {
        {"NULL rl", NULL, "k", 1, &ok, &r, -EINVAL},
        {"NULL key", g_rl, NULL, 1, &ok, &r, -EINVAL},
        {"NULL limit", g_rl, "k", 1, NULL, &r, -EINVAL},
        {"NULL out", g_rl, "k", 1, &ok, NULL, -EINVAL},
        {"keylen 0", g_rl, "k", 0, &ok, &r, -EINVAL},
        {"keylen RL_KEY_MAX + 1", g_rl, big, RL_KEY_MAX + 1, &ok, &r, -E2BIG},
        {"keylen huge", g_rl, big, SIZE_MAX, &ok, &r, -E2BIG},
        {"requests 0", g_rl, "k", 1, &bad_req, &r, -EINVAL},
        {"window_ms 0", g_rl, "k", 1, &bad_win, &r, -EINVAL},
        {"unknown algorithm", g_rl, "k", 1, &bad_algo, &r, -EINVAL},
        {"GLOBAL mode without Redis", g_rl, "k", 1, &global, &r, -ENOTSUP},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = rl_acquire_at(cases[i].rl, cases[i].key, cases[i].keylen, cases[i].lim, 1,
                               at_ms(0), cases[i].out);
        cr_expect_eq(rc, cases[i].want, "acquire, %s: %d (%s), expected %d (%s)", cases[i].what, rc,
                     rl_strerror(rc), cases[i].want, rl_strerror(cases[i].want));
        if (cases[i].out == NULL)
            continue; /* rl_refund has no out */
        rc = rl_refund_at(cases[i].rl, cases[i].key, cases[i].keylen, cases[i].lim, 1, at_ms(0));
        cr_expect_eq(rc, cases[i].want, "refund, %s: %d (%s), expected %d", cases[i].what, rc,
                     rl_strerror(rc), cases[i].want);
    }
    /* The real-clock entry points validate the same way. */
    cr_expect_eq(rl_acquire(NULL, "k", 1, &ok, 1, &r), -EINVAL);
    cr_expect_eq(rl_acquire(g_rl, "k", 0, &ok, 1, &r), -EINVAL);
    cr_expect_eq(rl_acquire(g_rl, big, RL_KEY_MAX + 1, &ok, 1, &r), -E2BIG);
    cr_expect_eq(rl_refund(g_rl, "k", 1, NULL, 1), -EINVAL);
    /* Nothing above may have taken a slot. */
    rl_segment_info info;
    cr_assert_eq(rl_segment_info_get(g_rl, &info), 0);
    cr_expect_eq(info.slots_in_use, 0, "failed calls took %" PRIu64 " slots", info.slots_in_use);
    cr_expect_eq(rl_segment_info_get(NULL, &info), -EINVAL);
    cr_expect_eq(rl_segment_info_get(g_rl, NULL), -EINVAL);
}

/* Limits outside the supported ranges are refused (the header documents -EINVAL for "a limit
 * out of range"; these only assert a negative code), and the edges of the ranges work. */
Test(algorithms, limit_ranges)
{
    const struct {
        const char *what;
        rl_limit lim;
    } bad[] = {
        {"more than one request per ns", mk_limit(RL_TOKEN_BUCKET, 2000001, 2, 0)},
        {"window over 10 years", mk_limit(RL_TOKEN_BUCKET, 1, 11 * 366 * MS_DAY, 0)},
        {"burst over 2^40", mk_limit(RL_TOKEN_BUCKET, 1000000, 1, (1ULL << 40) + 1)},
        {"sliding requests 4194304", mk_limit(RL_SLIDING_WINDOW, 4194304, 1000, 0)},
        {"fixed: more than one per ns", mk_limit(RL_FIXED_WINDOW, 1000001, 1, 0)},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_result r;
        int rc = rl_acquire_at(g_rl, "k", 1, &bad[i].lim, 1, at_ms(0), &r);
        cr_expect_lt(rc, 0, "%s: accepted (%d)", bad[i].what, rc);
    }
    rl_segment_info info;
    cr_assert_eq(rl_segment_info_get(g_rl, &info), 0);
    cr_expect_eq(info.slots_in_use, 0);

    /* One request per ns (T = 1) with the largest burst: tau = 2^40 ns. */
    rl_limit ns = mk_limit(RL_TOKEN_BUCKET, 1000000, 1, 1ULL << 40);
    /* clang-format off */
    static const step ns_steps[] = {
        A(0, 0, YES, 1ULL << 40, 0, 0),
        A(0, 1ULL << 40, YES, 0, 0, 1099512), /* 2^40 ns = 1,099,511.627776 ms */
        A(0, 1, NO, 0, 1, 1099512),           /* 1 ns short -> 1 ms */
    };
    /* clang-format on */
    RUN_STEPS(g_rl, "ns", &ns, 1ULL << 40, ns_steps);

    /* Sliding window at its largest count. */
    rl_limit sw = mk_limit(RL_SLIDING_WINDOW, 4194303, 1000, 0);
    /* clang-format off */
    static const step sw_steps[] = {
        A(0, 4194303, YES, 0, 0, 2000),
        A(500, 1, NO, 0, 501, 1500), /* (b): 500 ms + (1e9 - floor(4194302e9/4194303)) = 239 ns */
    };
    /* clang-format on */
    RUN_STEPS(g_rl, "sw_max", &sw, 4194303, sw_steps);

    /* A window of 10 years (3650 days) with one request: valid for every algorithm.
     * W = 3.1536e17 ns; T0 = 5 W + 2.232e17 ns, so the fixed window ends 9.216e16 ns after T0
     * and the sliding reset is 2W - e = 4.0752e17 ns. */
    const uint64_t ten_years = 3650 * MS_DAY;
    const struct {
        rl_algorithm algo;
        uint64_t reset_ms; /* after taking the one request */
    } decade[] = {
        {RL_TOKEN_BUCKET, ten_years},
        {RL_GCRA, ten_years},
        {RL_FIXED_WINDOW, 92160000000ULL},
        {RL_SLIDING_WINDOW, 407520000000ULL},
    };
    for (size_t i = 0; i < sizeof decade / sizeof decade[0]; i++) {
        rl_limit l = mk_limit(decade[i].algo, 1, ten_years, 0);
        rl_result r;
        int rc = rl_acquire_at(g_rl, "decade", 6, &l, 1, at_ms(0), &r);
        cr_expect_eq(rc, 0, "%s, 1 per 3650 days: %d (%s) %s", algo_name(decade[i].algo), rc,
                     rl_strerror(rc), rl_errmsg());
        if (rc != 0)
            continue;
        cr_expect(r.allowed && r.limit == 1 && r.remaining == 0 &&
                      r.reset_after_ms == decade[i].reset_ms,
                  "%s, 1 per 3650 days: allowed %d limit %" PRIu64 " remaining %" PRIu64
                  " reset %" PRIu64 " (expected %" PRIu64 ")",
                  algo_name(decade[i].algo), r.allowed, r.limit, r.remaining, r.reset_after_ms,
                  decade[i].reset_ms);
    }
}

Test(algorithms, strings_and_version)
{
    const int codes[] = {0,      -EINVAL, -E2BIG,   -ENOSPC, -ENOENT, -EPROTO, -EBADMSG,
                         -EPERM, -EACCES, -ENOTSUP, -ERANGE, -9999,   1,       INT32_MIN};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = rl_strerror(codes[i]);
        cr_expect_not_null(s, "rl_strerror(%d) is NULL", codes[i]);
        if (s && codes[i] < 0 && codes[i] > -4096)
            cr_expect_gt(strlen(s), 0, "rl_strerror(%d) is empty", codes[i]);
    }
    cr_expect_str_neq(rl_strerror(-EINVAL), rl_strerror(-ENOSPC));
    cr_expect_not_null(rl_version());
    cr_expect_gt(strlen(rl_version()), 0);
    cr_expect_not_null(rl_errmsg());
}

/* ---- the semantics as a model, checked against the library on random sequences -------------- */

/*
 * A direct transcription of the semantics (not of the library): per key, the bucket's full time
 * Z, or the stored window index with its counts. Time only moves forward here (the clock going
 * back is covered by the tables above), and sliding-window refunds are only made where the
 * semantics say which count they lower.
 */
__extension__ typedef unsigned __int128 u128;

typedef struct model_key {
    bool present;
    u128 zs;            /* bucket: full time, absolute ns, times L (exact) */
    uint64_t idx, a, b; /* windows: stored index; fixed: a = count; sliding: a = prev, b = cur */
} model_key;

typedef struct model_lim {
    rl_algorithm algo;
    uint64_t C, T, tau, L, W;
} model_lim;

static uint64_t ceil_ms(u128 ns)
{
    return (uint64_t)((ns + NS_MS - 1) / NS_MS);
}

static model_lim model_params(const rl_limit *l)
{
    model_lim m;
    memset(&m, 0, sizeof m);
    m.algo = l->algorithm;
    m.W = l->window_ms * NS_MS;
    m.L = l->requests;
    m.T = m.W / l->requests;
    if (l->algorithm == RL_TOKEN_BUCKET)
        m.C = l->burst ? l->burst : l->requests;
    else if (l->algorithm == RL_GCRA)
        m.C = (l->burst ? l->burst : l->requests - 1) + 1;
    else
        m.C = l->requests;
    m.tau = (uint64_t)(((u128)m.C * m.W + m.L - 1) / m.L); /* ns to refill C, rounded up */
    return m;
}

static rl_result model_acquire(const model_lim *m, model_key *k, uint64_t cost, uint64_t t)
{
    rl_result r;
    memset(&r, 0, sizeof r);
    r.limit = m->C;
    if (m->algo == RL_TOKEN_BUCKET || m->algo == RL_GCRA) {
        /* The exact bucket: times L, so a request is exactly W and the capacity C * W. */
        const u128 L = m->L, CW = (u128)m->C * m->W, ts = (u128)t * L, Lms = L * NS_MS;
        u128 z = k->present ? k->zs : 0;
        if (z < ts)
            z = ts;
        u128 nz = z + (u128)cost * m->W;
        if (cost <= m->C && nz - ts <= CW) {
            r.allowed = true;
            r.remaining = (uint64_t)((CW - (nz - ts)) / m->W);
            r.reset_after_ms = (uint64_t)((nz - ts + Lms - 1) / Lms);
            if (cost) {
                k->present = true;
                k->zs = nz;
            }
        } else {
            r.remaining = (uint64_t)((CW - (z - ts)) / m->W);
            r.reset_after_ms = (uint64_t)((z - ts + Lms - 1) / Lms);
            r.retry_after_ms = cost <= m->C ? (uint64_t)((nz - ts - CW + Lms - 1) / Lms) : NEVER;
        }
    } else if (m->algo == RL_FIXED_WINDOW) {
        uint64_t I = t / m->W;
        uint64_t used = k->present && k->idx >= I ? k->a : 0;
        uint64_t to_end = ceil_ms((u128)(I + 1) * m->W - t);
        r.reset_after_ms = to_end;
        if ((u128)used + cost <= m->L) {
            r.allowed = true;
            r.remaining = m->L - used - cost;
            if (cost) {
                k->present = true;
                k->idx = I;
                k->a = used + cost;
            }
        } else {
            r.remaining = m->L - used;
            r.retry_after_ms = cost <= m->L ? to_end : NEVER;
        }
    } else {
        const u128 W = m->W, L = m->L;
        uint64_t I = t / m->W, e = t - I * m->W;
        uint64_t p = 0, c = 0;
        if (k->present && k->idx == I) {
            p = k->a;
            c = k->b;
        } else if (k->present && k->idx + 1 == I) {
            p = k->b;
        }
        u128 cap = L * W, used = (u128)p * (W - e) + (u128)c * W;
        if (used + (u128)cost * W <= cap) {
            r.allowed = true;
            r.remaining = (uint64_t)((cap - used - (u128)cost * W) / W);
            if (cost) {
                k->present = true;
                k->idx = I;
                k->a = p;
                k->b = c + cost;
            }
            c += cost;
        } else {
            r.remaining = used >= cap ? 0 : (uint64_t)((cap - used) / W);
            if (cost > m->L) {
                r.retry_after_ms = NEVER;
            } else if (c + cost <= m->L) {
                u128 e1 = W - (L - c - cost) * W / p;
                r.retry_after_ms = ceil_ms(e1 - e);
            } else {
                u128 e2 = 0;
                if (c) {
                    u128 room = (L - cost) * W / c;
                    e2 = room >= W ? 0 : W - room;
                }
                r.retry_after_ms = ceil_ms((W - e) + e2);
            }
        }
        r.reset_after_ms = c ? ceil_ms(2 * W - e) : (p ? ceil_ms(W - e) : 0);
    }
    return r;
}

/* Whether the semantics pin down what this refund does (see above); applies it if so. */
static bool model_refund(const model_lim *m, model_key *k, uint64_t cost, uint64_t t, bool apply)
{
    if (!k->present)
        return true;
    if (m->algo == RL_TOKEN_BUCKET || m->algo == RL_GCRA) {
        u128 back = (u128)(cost < m->C ? cost : m->C) * m->W;
        if (apply)
            k->zs = k->zs >= back ? k->zs - back : 0;
        return true;
    }
    uint64_t I = t / m->W;
    if (m->algo == RL_FIXED_WINDOW) {
        if (apply && k->idx == I)
            k->a -= cost < k->a ? cost : k->a;
        return true;
    }
    if (k->idx + 1 < I)
        return true; /* both windows gone: nothing to give back */
    if (cost > k->b)
        return false; /* would it spill into the previous count? not specified */
    if (apply)
        k->b -= cost;
    return true;
}

static uint64_t model_refill_ns(const model_lim *m)
{
    if (m->algo == RL_FIXED_WINDOW)
        return m->W;
    if (m->algo == RL_SLIDING_WINDOW)
        return 2 * m->W;
    return m->tau;
}

/*
 * Random sequences (fixed seed) over several limits per algorithm, three keys each, compared
 * field by field with the model. Two properties are checked on the way, independently of the
 * model: a denied request retried exactly retry_after_ms later is allowed, and a peek exactly
 * reset_after_ms later shows the full limit.
 */
Test(algorithms, random_sequences_match_model)
{
    static const struct {
        rl_algorithm algo;
        uint64_t requests, window_ms, burst;
    } cfg[] = {
        {RL_TOKEN_BUCKET, 10, 1000, 0},
        {RL_TOKEN_BUCKET, 3, 1000, 0},
        {RL_TOKEN_BUCKET, 1, 1000, 5},
        {RL_TOKEN_BUCKET, 7, 13, 0},
        {RL_TOKEN_BUCKET, 100, 60000, 20},
        {RL_TOKEN_BUCKET, 5, 1, 0},
        {RL_TOKEN_BUCKET, 1000000, 1, 0},
        {RL_TOKEN_BUCKET, 1, 3600000, 0},
        {RL_TOKEN_BUCKET, 10, 1000, 2},
        {RL_GCRA, 1, 1000, 4},
        {RL_GCRA, 5, 1000, 0},
        {RL_GCRA, 7, 13, 3},
        {RL_GCRA, 1000000, 1, 0},
        {RL_GCRA, 1, 1, 0},
        {RL_GCRA, 3, 1000, 0},
        {RL_FIXED_WINDOW, 3, 1000, 0},
        {RL_FIXED_WINDOW, 10, 7, 5},
        {RL_FIXED_WINDOW, 1, 1000, 0},
        {RL_FIXED_WINDOW, 100, 60000, 0},
        {RL_FIXED_WINDOW, 5, 3, 0},
        {RL_SLIDING_WINDOW, 10, 1000, 0},
        {RL_SLIDING_WINDOW, 3, 7, 0},
        {RL_SLIDING_WINDOW, 1, 1000, 0},
        {RL_SLIDING_WINDOW, 100, 60000, 0},
        {RL_SLIDING_WINDOW, 7, 3, 9},
        {RL_SLIDING_WINDOW, 4194303, 5, 0},
        {RL_SLIDING_WINDOW, 1000, 1, 0},
    };
    enum { NKEYS = 3, STEPS = 400 };
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (size_t ci = 0; ci < sizeof cfg / sizeof cfg[0]; ci++) {
        rl_limit l = mk_limit(cfg[ci].algo, cfg[ci].requests, cfg[ci].window_ms, cfg[ci].burst);
        model_lim m = model_params(&l);
        model_key mk[NKEYS];
        memset(mk, 0, sizeof mk);
        char keys[NKEYS][40];
        for (int j = 0; j < NKEYS; j++)
            snprintf(keys[j], sizeof keys[j], "rnd-%zu-%d", ci, j);
        const uint64_t refill = model_refill_ns(&m);
        uint64_t t = T0 + prng_below(&seed, m.W); /* not aligned to a window */
        enum { FREE, RETRY, RESET } forced = FREE;
        int fkey = 0;
        uint64_t fcost = 0, ft = 0;
        unsigned retries_checked = 0, resets_checked = 0;
        for (int s = 0; s < STEPS; s++) {
            int j;
            uint64_t cost;
            bool refund = false;
            if (forced != FREE) {
                j = fkey;
                cost = fcost;
                t = ft;
            } else {
                j = (int)prng_below(&seed, NKEYS);
                switch (prng_below(&seed, 8)) {
                case 0:
                case 1:
                case 2:
                    break;
                case 3:
                    t += prng_below(&seed, m.W / 100 + 2);
                    break;
                case 4:
                    t += prng_below(&seed, refill / 4 + 1);
                    break;
                case 5:
                    t += prng_below(&seed, refill + 1);
                    break;
                case 6:
                    t += prng_below(&seed, 3 * refill + 1);
                    break;
                default:
                    t += prng_below(&seed, 1000);
                    break;
                }
                switch (prng_below(&seed, 6)) {
                case 0:
                    cost = 0;
                    break;
                case 1:
                    cost = 1;
                    break;
                case 2:
                case 3:
                    cost = 1 + prng_below(&seed, m.C);
                    break;
                case 4:
                    cost = m.C;
                    break;
                default:
                    cost = m.C + 1 + prng_below(&seed, 3);
                    break;
                }
                refund = prng_below(&seed, 8) == 0 && model_refund(&m, &mk[j], cost, t, false);
            }
            /* Buckets draw exactly on whole microseconds (their unit grid holds them for every
             * limit here); between them a full bucket's start may round up by < 2 ns, which
             * test_exact.c bounds against an exact bucket. */
            if (m.algo == RL_TOKEN_BUCKET || m.algo == RL_GCRA)
                t -= t % 1000;
            if (refund) {
                refund_at(g_rl, keys[j], &l, cost, t);
                model_refund(&m, &mk[j], cost, t, true);
                continue;
            }
            rl_result want = model_acquire(&m, &mk[j], cost, t);
            rl_result got = acq_at(g_rl, keys[j], &l, cost, t);
            cr_assert(
                got.allowed == want.allowed && got.limit == want.limit &&
                    got.remaining == want.remaining && got.retry_after_ms == want.retry_after_ms &&
                    got.reset_after_ms == want.reset_after_ms,
                "%s %" PRIu64 "/%" PRIu64 "ms burst %" PRIu64 ", step %d, key %d, t = T0 + "
                "%" PRIu64 " ns, cost %" PRIu64 ": got allowed %d limit %" PRIu64
                " remaining %" PRIu64 " retry %" PRIu64 " reset %" PRIu64
                "; model: allowed %d limit %" PRIu64 " remaining %" PRIu64 " retry %" PRIu64
                " reset %" PRIu64,
                algo_name(l.algorithm), l.requests, l.window_ms, l.burst, s, j, (uint64_t)(t - T0),
                cost, got.allowed, got.limit, got.remaining, got.retry_after_ms, got.reset_after_ms,
                want.allowed, want.limit, want.remaining, want.retry_after_ms, want.reset_after_ms);
            if (forced == RETRY) {
                cr_assert(got.allowed, "%s step %d: not allowed retry_after_ms after a denial",
                          algo_name(l.algorithm), s);
                retries_checked++;
            } else if (forced == RESET) {
                cr_assert_eq(got.remaining, got.limit, "%s step %d: not full reset_after_ms later",
                             algo_name(l.algorithm), s);
                resets_checked++;
            }
            forced = FREE;
            if (!got.allowed && got.retry_after_ms != NEVER && prng_below(&seed, 2) == 0) {
                forced = RETRY;
                fkey = j;
                fcost = cost;
                ft = t + got.retry_after_ms * NS_MS;
            } else if (got.allowed && prng_below(&seed, 6) == 0) {
                forced = RESET;
                fkey = j;
                fcost = 0;
                ft = t + got.reset_after_ms * NS_MS;
            }
        }
        /* The sequence must have exercised both properties (else the generator is broken). */
        cr_expect_gt(retries_checked, 0, "config %zu never retried", ci);
        cr_expect_gt(resets_checked, 0, "config %zu never waited for a reset", ci);
    }
}
