/*
 * The items of the security list (docs/reliability.md, "Security model") that no other suite
 * tests:
 *
 *  - Redis credentials never reach the log (rl_set_log at DEBUG), rl_errmsg(), rl_health() or
 *    the configuration dump while the library fails to reach Redis (tests/test_url.c covers the
 *    parser's and redactor's messages, test_global.c and test_redis.c a refused AUTH);
 *  - the admin token of `rlctl serve` is compared in constant time: token_ok() of
 *    tools/rlctl/serve.c (linked in from rlctl's internal archive) takes as long for a token
 *    wrong in its first byte as for one wrong in its last (an early-exit compare is ~50 times
 *    faster on the first);
 *  - user-controlled strings (rule file values, file names, keys) are data, never a format:
 *    conversions such as %n and %s come back verbatim in the messages;
 *  - an over-long key gets -E2BIG with a message that says what the bound is.
 *
 * The others are tested where they live: segments 0600 and group access by option, foreign
 * segments and names (test_segment.c), header values without CR or LF (test_format.c), hash
 * flooding (test_flood.c), key length (test_algorithms.c: the codes).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "rl_test.h"
#include "support.h" /* the monotonic clock (support/) */
#include "rlctl.h"

#include "redis_private.h"

TestSuite(security, .init = names_setup, .fini = seg_teardown, .timeout = 60);

/* ---- Redis credentials --------------------------------------------------------------------- */

#define PASSWORD "Pw-s3cr3t-9f2c1"

static char g_log[16384];
static size_t g_loglen;
static unsigned g_lines;

static void capture(rl_log_level level, const char *msg, void *arg)
{
    (void)level;
    (void)arg;
    g_lines++;
    int n = snprintf(g_log + g_loglen, sizeof g_log - g_loglen, "%s\n", msg);
    if (n > 0)
        g_loglen = g_loglen + (size_t)n < sizeof g_log ? g_loglen + (size_t)n : sizeof g_log - 1;
}

Test(security, redis_password_never_logged_nor_reported)
{
    g_loglen = 0;
    g_lines = 0;
    g_log[0] = '\0';
    rl_set_log(capture, NULL, RL_LOG_DEBUG);
    char url[160];
    snprintf(url, sizeof url, "redis://rluser:" PASSWORD "@127.0.0.1:%d/0", rp_free_port());
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.capacity = 1024;
    o.redis_url = url;
    o.sync_interval_ms = 20;
    o.redis_connect_timeout_ms = 100;
    o.redis_command_timeout_ms = 100;
    if (!RL_WITH_REDIS) { /* -Dredis=disabled: the URL is refused, and says why */
        cr_expect_eq(rl_open(&g_rl, &o), -ENOTSUP, "%s", rl_errmsg());
        cr_expect_not_null(strstr(rl_errmsg(), "built without Redis"), "%s", rl_errmsg());
        test_skip(seg_teardown,
                  "built without Redis (-Dredis=disabled): the rest needs the sync thread");
    }
    int rc = rl_open(&g_rl, &o);
    cr_assert_eq(rc, 0, "%d %s", rc, rl_errmsg());
    cr_expect_null(strstr(rl_errmsg(), "s3cr3t"), "rl_open: %s", rl_errmsg());
    /* A GLOBAL key (the sync thread tries to report it) and a STRICT check (the pool tries to
     * connect), both failing on the closed port. */
    rl_limit g = mk_limit(RL_TOKEN_BUCKET, 10, 1000, 10), s = g;
    g.mode = RL_MODE_GLOBAL;
    s.mode = RL_MODE_STRICT;
    rl_result r;
    cr_assert_eq(rl_acquire(g_rl, "g", 1, &g, 1, &r), 0, "%s", rl_errmsg());
    cr_assert_eq(rl_acquire(g_rl, "s", 1, &s, 1, &r), 0, "%s", rl_errmsg());
    cr_expect_null(strstr(rl_errmsg(), "s3cr3t"), "STRICT fallback: %s", rl_errmsg());
    rl_health_info hi;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(rl_health(g_rl, &hi), 0);
        if (hi.sync_errors >= 2)
            break;
        usleep(20000);
    }
    char dump[8192];
    rl_config_dump(g_rl, dump, sizeof dump);
    rl_close(&g_rl);
    rl_set_log(NULL, NULL, RL_LOG_ERROR);
    cr_expect_gt(hi.sync_errors, 0, "the sync never failed: nothing exercised");
    cr_expect_neq(hi.error[0], '\0', "the failure is reported");
    cr_expect_gt(g_lines, 0, "nothing was logged at DEBUG: nothing exercised");
    cr_expect(strstr(g_log, "127.0.0.1") != NULL, "the log names no server:\n%s", g_log);
    cr_expect_null(strstr(g_log, "s3cr3t"), "the password is in the log:\n%s", g_log);
    cr_expect_null(strstr(hi.error, "s3cr3t"), "rl_health error: %s", hi.error);
    cr_expect_null(strstr(hi.warning, "s3cr3t"), "rl_health warning: %s", hi.warning);
    cr_expect_null(strstr(dump, "s3cr3t"), "rl_config_dump:\n%s", dump);
}

/* ---- the admin token ---------------------------------------------------------------------- */

/* ns for `reps` calls of token_ok(sv, given) (the answers are summed into *sink). */
static uint64_t time_token(const struct server *sv, const char *given, size_t n, int reps,
                           volatile unsigned *sink)
{
    uint64_t t = mono_ns();
    unsigned ok = 0;
    for (int i = 0; i < reps; i++) {
        __asm__ volatile("" ::: "memory"); /* no hoisting of the call out of the loop */
        ok += token_ok(sv, given, n);
    }
    *sink += ok;
    return mono_ns() - t;
}

Test(security, admin_token_compared_in_constant_time)
{
    static struct server sv; /* large: not on the stack */
    memset(&sv, 0, sizeof sv);
    sv.token_len = sizeof sv.token - 1;
    for (size_t i = 0; i < sv.token_len; i++)
        sv.token[i] = (char)('a' + i % 26);
    char first[sizeof sv.token], last[sizeof sv.token], good[sizeof sv.token];
    memcpy(good, sv.token, sv.token_len);
    memcpy(first, sv.token, sv.token_len);
    memcpy(last, sv.token, sv.token_len);
    first[0] ^= 1;
    last[sv.token_len - 1] ^= 1;
    /* The answers first. */
    cr_assert(token_ok(&sv, good, sv.token_len));
    cr_assert(!token_ok(&sv, first, sv.token_len));
    cr_assert(!token_ok(&sv, last, sv.token_len));
    cr_assert(!token_ok(&sv, good, sv.token_len - 1), "a prefix of the token");
    cr_assert(!token_ok(&sv, good, 0), "an empty token");
    struct server none;
    memset(&none, 0, sizeof none);
    cr_assert(!token_ok(&none, "", 0), "no token configured: nothing matches");
    /* The timing: the fastest of 15 interleaved rounds each, so that a preemption or a busy
     * neighbour cannot make one side look slow. An early-exit compare would answer `first` in a
     * few ns and `last` in ~100. */
    volatile unsigned sink = 0;
    uint64_t best_first = UINT64_MAX, best_last = UINT64_MAX;
    for (int round = 0; round < 15; round++) {
        uint64_t a = time_token(&sv, first, sv.token_len, 20000, &sink);
        uint64_t b = time_token(&sv, last, sv.token_len, 20000, &sink);
        best_first = a < best_first ? a : best_first;
        best_last = b < best_last ? b : best_last;
    }
    double ratio = (double)best_first / (double)best_last;
    cr_log_info("token_ok over %zu bytes: %.1f ns (wrong first byte), %.1f ns (wrong last byte)",
                sv.token_len, (double)best_first / 20000, (double)best_last / 20000);
    cr_expect_eq(sink, 0, "a wrong token was accepted");
    cr_expect_gt(ratio, 0.3,
                 "a token wrong in its first byte is answered %.1fx faster than one wrong in its "
                 "last: the compare leaks where the first difference is",
                 1 / ratio);
}

/* ---- strings are data, never formats ------------------------------------------------------- */

#define FMT "%n%n%s%s%x%p%99999d"

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/rl-sec-%ld-XXXXXX", (long)getpid());
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(security, user_strings_are_never_format_strings)
{
    g_loglen = 0;
    g_log[0] = '\0';
    rl_set_log(capture, NULL, RL_LOG_DEBUG);
    g_rl = test_open(g_name, 1024);
    /* A rule file value: the message quotes it verbatim. */
    char *path =
        write_tmp("version: 1\ndefaults: [{requests: 1, window: 1s, algorithm: '" FMT "'}]\n");
    int rc = rl_load_config(g_rl, path);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", rl_errmsg());
    unlink(path);
    cr_expect_eq(rc, -EINVAL, "%d %s", rc, msg);
    cr_expect(strstr(msg, FMT) != NULL, "the value is not quoted verbatim: %s", msg);
    /* A file name. */
    rc = rl_load_config(g_rl, "/nonexistent/" FMT ".yaml");
    snprintf(msg, sizeof msg, "%s", rl_errmsg());
    cr_expect_lt(rc, 0);
    cr_expect(strstr(msg, "/nonexistent/" FMT ".yaml") != NULL, "%s", msg);
    /* An endpoint pattern and a key: taken as bytes. */
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 2, 60000, 0);
    rc = rl_configure_endpoint(g_rl, "/" FMT, &l, 1);
    cr_expect_eq(rc, 0, "%d %s", rc, rl_errmsg());
    rl_result r;
    cr_expect_eq(rl_acquire(g_rl, FMT, strlen(FMT), &l, 1, &r), 0, "%s", rl_errmsg());
    cr_expect(r.allowed);
    char dump[8192];
    cr_expect_geq(rl_config_dump(g_rl, dump, sizeof dump), 0);
    cr_expect(strstr(dump, FMT) != NULL, "the pattern is not in the dump verbatim:\n%s", dump);
    rl_set_log(NULL, NULL, RL_LOG_ERROR);
    /* Whatever was logged carries the strings as they were, never an expansion of them. */
    cr_expect_null(strstr(g_log, "(nil)"), "a %%p was expanded in the log:\n%s", g_log);
}

/* ---- keys ---------------------------------------------------------------------------------- */

Test(security, over_long_key_is_refused_with_a_clear_message)
{
    g_rl = test_open(g_name, 1024);
    static char key[RL_KEY_MAX + 1];
    memset(key, 'k', sizeof key);
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 1, 1000, 0);
    rl_result r;
    cr_assert_eq(rl_acquire(g_rl, key, RL_KEY_MAX, &l, 1, &r), 0, "%s", rl_errmsg());
    int rc = rl_acquire(g_rl, key, RL_KEY_MAX + 1, &l, 1, &r);
    cr_expect_eq(rc, -E2BIG, "%d", rc);
    const char *m = rl_errmsg();
    cr_expect(strstr(m, "513") != NULL && strstr(m, "512") != NULL,
              "the message says neither the length nor the bound: \"%s\"", m);
}
