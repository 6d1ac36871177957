/*
 * A full table: -ENOSPC when no key in reach can be reclaimed, reclaim of keys back at their
 * fresh state, and no live key ever lost to make room.
 *
 * Per algorithm, keys take 1 of a 1-per-hour limit at T0, so every key is exhausted until it
 * refills ("fresh" = indistinguishable from a new key); the reclaim phase runs 1 ms past that:
 *   token bucket, GCRA (C = 1): Z = T0 + 1 h, fresh from T0 + 1 h;
 *   fixed window (aligned at T0): fresh from the next window, T0 + 1 h;
 *   sliding window: the count weighs on the next window too, fresh from T0 + 2 h.
 */
#include "rl_test.h"

TestSuite(capacity, .init = names_setup, .fini = seg_teardown);

#define CAP 1024

static int try_acquire(rl_t *rl, const char *prefix, int i, const rl_limit *l, uint64_t t,
                       rl_result *r)
{
    char key[32];
    snprintf(key, sizeof key, "%s-%d", prefix, i);
    return rl_acquire_at(rl, key, strlen(key), l, 1, t, r);
}

static rl_segment_info info_of(const rl_t *rl)
{
    rl_segment_info info;
    cr_assert_eq(rl_segment_info_get(rl, &info), 0);
    return info;
}

static void assert_sound(rl_t *rl, const char *when)
{
    long bad = rl_check_segment(rl, NULL, NULL);
    cr_assert_eq(bad, 0, "rl_check_segment %s: %ld", when, bad);
}

static void fill_and_reclaim(rl_algorithm algo, int64_t not_yet_ms, int64_t fresh_ms)
{
    g_rl = test_open(g_name, CAP);
    const rl_limit l = mk_limit(algo, 1, MS_HOUR, 0);
    const char *an = algo_name(algo);
    rl_segment_info info = info_of(g_rl);
    const int max_tries = (int)info.slots + 16;
    rl_result r;

    /* 1. Distinct keys until the table is full. */
    int n = 0, rc = 0;
    for (; n < max_tries; n++) {
        rc = try_acquire(g_rl, "a", n, &l, T0, &r);
        if (rc != 0)
            break;
        cr_assert(r.allowed, "%s: new key a-%d denied", an, n);
    }
    cr_assert_eq(rc, -ENOSPC, "%s: after %d keys: %d (%s), expected -ENOSPC", an, n, rc,
                 rl_strerror(rc));
    cr_expect_geq(n, CAP, "%s: only %d keys fit in a segment of capacity %d", an, n, CAP);
    info = info_of(g_rl);
    cr_expect_geq(info.enospc, 1, "%s: enospc counter %" PRIu64, an, info.enospc);
    cr_expect_eq(info.slots_in_use, (uint64_t)n, "%s: %" PRIu64 " slots in use for %d keys", an,
                 info.slots_in_use, n);
    cr_expect_eq(info.reclaimed, 0, "%s: reclaimed %" PRIu64 " before any key was fresh", an,
                 info.reclaimed);
    assert_sound(g_rl, "when full");

    /* 2. Still full: the same refused key again, and the counter counts it. */
    uint64_t enospc_before = info.enospc;
    cr_expect_eq(try_acquire(g_rl, "a", n, &l, T0, &r), -ENOSPC);
    cr_expect_eq(info_of(g_rl).enospc, enospc_before + 1);

    /* 3. Existing keys are still decided while the table is full (and keep their state). */
    for (int i = 0; i < n; i += 97) {
        cr_assert_eq(try_acquire(g_rl, "a", i, &l, T0, &r), 0, "%s: a-%d lost while full", an, i);
        cr_expect(!r.allowed, "%s: a-%d allowed twice", an, i);
    }

    /* 4. Not yet fresh: nothing may be reclaimed, so a new key is still refused and the old
     *    keys still hold their counts (reclaiming one would let it take a second unit). */
    cr_expect_eq(try_acquire(g_rl, "early", 0, &l, at_ms(not_yet_ms), &r), -ENOSPC,
                 "%s: a key was evicted before it was fresh", an);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(try_acquire(g_rl, "a", i, &l, at_ms(not_yet_ms), &r), 0);
        cr_assert(!r.allowed, "%s: a-%d allowed again at T0+%" PRId64 "ms (not refilled)", an, i,
                  not_yet_ms);
    }
    cr_expect_eq(info_of(g_rl).reclaimed, 0);
    assert_sound(g_rl, "before refill");

    /* 5. Every old key is fresh: new keys take their slots. */
    const uint64_t tf = at_ms(fresh_ms);
    int m = 0;
    for (; m < max_tries; m++) {
        rc = try_acquire(g_rl, "b", m, &l, tf, &r);
        if (rc != 0)
            break;
        cr_assert(r.allowed, "%s: new key b-%d denied", an, m);
    }
    /* The segment guarantees CAP keys; every one of the old keys is reclaimable now. */
    cr_expect_geq(m, CAP, "%s: only %d new keys fit after all %d old keys refilled (rc %d %s)", an,
                  m, n, rc, rl_strerror(rc));
    cr_log_info("%s: %d keys until full (%" PRIu64 " slots), %d new keys after the refill", an, n,
                info_of(g_rl).slots, m);
    info = info_of(g_rl);
    cr_expect_gt(info.reclaimed, 0, "%s: nothing reclaimed", an);
    cr_expect_leq(info.slots_in_use, info.slots);
    assert_sound(g_rl, "after reclaim");

    /* 6. No new key was evicted to make room for another: all are still exhausted. */
    for (int i = 0; i < m; i++) {
        cr_assert_eq(try_acquire(g_rl, "b", i, &l, tf, &r), 0, "%s: b-%d lost", an, i);
        cr_assert(!r.allowed, "%s: b-%d lost its count (allowed twice)", an, i);
    }
    assert_sound(g_rl, "at the end");
}

Test(capacity, token_bucket)
{
    fill_and_reclaim(RL_TOKEN_BUCKET, 30 * (int64_t)MS_MIN, (int64_t)MS_HOUR + 1);
}

Test(capacity, gcra)
{
    fill_and_reclaim(RL_GCRA, 59 * (int64_t)MS_MIN, (int64_t)MS_HOUR + 1);
}

Test(capacity, fixed_window)
{
    fill_and_reclaim(RL_FIXED_WINDOW, (int64_t)MS_HOUR - 1, (int64_t)MS_HOUR + 1);
}

Test(capacity, sliding_window)
{
    /* at +90 min the previous window's 1 still weighs 0.5: 0.5 + 1 > 1 */
    fill_and_reclaim(RL_SLIDING_WINDOW, 90 * (int64_t)MS_MIN, 2 * (int64_t)MS_HOUR + 1);
}

/* Many distinct limits: the limit table fills too. Could fail: limit records leaking, or a
 * full limit table crashing instead of answering with a code. */
Test(capacity, many_limits)
{
    g_rl = test_open(g_name, CAP);
    rl_segment_info info = info_of(g_rl);
    uint64_t ok = 0;
    int last = 0;
    for (uint64_t i = 1; i <= info.limits_max + 8; i++) {
        rl_limit l = mk_limit(RL_FIXED_WINDOW, i, 1000, 0);
        rl_result r;
        last = rl_acquire_at(g_rl, "k", 1, &l, 1, T0, &r);
        if (last != 0)
            break;
        ok++;
    }
    cr_expect_geq(ok, info.limits_max < CAP ? info.limits_max : CAP,
                  "%" PRIu64 " limits fit, limits_max %" PRIu64, ok, info.limits_max);
    cr_log_info("many_limits: %" PRIu64 " limits, then %d (%s)", ok, last, rl_strerror(last));
    cr_expect_eq(info_of(g_rl).limits_in_use, ok);
    assert_sound(g_rl, "after many limits");
}

/* rl_reset: an exhausted key is fresh again, every algorithm; slot returned; bad arguments. */
Test(capacity, reset_makes_a_key_fresh)
{
    g_rl = test_open(g_name, 4096);
    static const rl_algorithm algos[] = {RL_TOKEN_BUCKET, RL_GCRA, RL_FIXED_WINDOW,
                                         RL_SLIDING_WINDOW};
    for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++) {
        rl_limit l = mk_limit(algos[a], 3, MS_HOUR, 0);
        for (int i = 0; i < 3; i++)
            cr_assert(acq_at(g_rl, "reset-me", &l, 1, at_ms(0)).allowed);
        cr_assert(!acq_at(g_rl, "reset-me", &l, 1, at_ms(1)).allowed, "%s", algo_name(algos[a]));
        uint64_t used = info_of(g_rl).slots_in_use;
        cr_assert_eq(rl_reset(g_rl, "reset-me", 8, &l), 0, "%s", rl_errmsg());
        cr_expect_eq(info_of(g_rl).slots_in_use, used - 1, "the slot is given back");
        rl_result r = acq_at(g_rl, "reset-me", &l, 1, at_ms(2));
        cr_expect(r.allowed, "%s: fresh after the reset", algo_name(algos[a]));
        cr_expect_eq(r.remaining, 2, "%s: remaining %" PRIu64, algo_name(algos[a]), r.remaining);
        /* Another limit's count of the same key bytes is untouched. */
        assert_sound(g_rl, "after reset");
    }
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 3, MS_HOUR, 0);
    cr_expect_eq(rl_reset(g_rl, "never-seen", 10, &l), 0, "an unknown key is a no-op");
    cr_expect_eq(rl_reset(NULL, "k", 1, &l), -EINVAL);
    cr_expect_eq(rl_reset(g_rl, "k", 1, NULL), -EINVAL);
    cr_expect_eq(rl_reset(g_rl, "", 0, &l), -EINVAL);
    /* A STRICT limit without Redis counts locally (rl_check does so): reset clears that
     * count, and never fails for want of Redis. */
    rl_limit local = mk_limit(RL_TOKEN_BUCKET, 3, MS_HOUR, 0);
    for (int i = 0; i < 3; i++)
        acq_at(g_rl, "twin", &local, 1, at_ms(0));
    cr_assert(!acq_at(g_rl, "twin", &local, 1, at_ms(0)).allowed);
    l.mode = RL_MODE_STRICT;
    cr_expect_eq(rl_reset(g_rl, "twin", 4, &l), 0, "%s", rl_errmsg());
    cr_expect(acq_at(g_rl, "twin", &local, 1, at_ms(1)).allowed, "the local twin was reset");
}

static int note_reclaimable(const rl_key_view *kv, void *arg)
{
    int *n = arg;
    n[0]++;
    n[1] += kv->reclaimable;
    return 0;
}

/* rl_foreach_key says which keys are equivalent to new ones (rlctl status: "reclaimable"): a
 * used key is not, until its limit has refilled. */
Test(capacity, foreach_says_which_keys_are_reclaimable)
{
    g_rl = test_open(g_name, 1024);
    static const rl_algorithm algos[] = {RL_TOKEN_BUCKET, RL_GCRA, RL_FIXED_WINDOW,
                                         RL_SLIDING_WINDOW};
    for (size_t a = 0; a < sizeof algos / sizeof algos[0]; a++) {
        rl_limit l = mk_limit(algos[a], 10, MS_S, 0);
        char key[16];
        snprintf(key, sizeof key, "k-%zu", a);
        cr_assert(acq_at(g_rl, key, &l, 1, at_ms(0)).allowed);
    }
    int n[2] = {0, 0};
    cr_assert_eq(rl_foreach_key(g_rl, at_ms(1), note_reclaimable, n), 0);
    cr_expect_eq(n[0], 4);
    cr_expect_eq(n[1], 0, "just used: %d reclaimable", n[1]);
    n[0] = n[1] = 0;
    cr_assert_eq(rl_foreach_key(g_rl, at_ms(10 * MS_S), note_reclaimable, n), 0);
    cr_expect_eq(n[0], 4);
    cr_expect_eq(n[1], 4, "refilled long ago: %d of 4 reclaimable", n[1]);
}

/* rl_repair_segment works alone only: another handle (here in this process; the rlctl test has
 * another process) makes it -EBUSY; once that one closes, it runs. */
Test(capacity, repair_refused_while_another_handle_is_attached)
{
    g_rl = test_open(g_name, 1024);
    rl_t *other = test_open(g_name, 1024);
    cr_expect_eq(rl_repair_segment(g_rl, NULL, NULL), -EBUSY);
    cr_expect(strstr(rl_errmsg(), "attached") != NULL, "%s", rl_errmsg());
    rl_close(&other);
    cr_expect_eq(rl_repair_segment(g_rl, NULL, NULL), 0, "%s", rl_errmsg());
    /* It gave its lock back: a new handle attaches, and blocks the next repair again. */
    other = test_open(g_name, 1024);
    cr_expect_eq(rl_repair_segment(g_rl, NULL, NULL), -EBUSY);
    rl_close(&other);
}
