/*
 * Response formatting (lib/format.c): enum names, durations, rl_format_headers(_ex) and
 * rl_format_body, on decisions built by hand (no segment).
 *
 * Every expected string and number below is written out from the contract in include/rl/rl.h and
 * the brief (Reset = ceil((now_ns + reset_after_ms * 1e6) / 1e9), Retry-After = ceil(ms / 1000)),
 * never read off the library. Bodies are parsed back with jansson, which also rejects invalid
 * UTF-8 and raw control characters, so a bad escape fails the parse.
 */
#ifdef RL_TEST_MINI_RUNNER
#include "mini_runner.h"
#else
#include <criterion/criterion.h>
#endif

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rl.h"
#include "rules.h"

TestSuite(format);

#define NOW   1800000000123456789ULL /* 1.8e9 s + 0.123456789 s */
#define NEVER RL_RETRY_NEVER
#define CRLF  "\r\n"

/* ---- decisions ------------------------------------------------------------------------------ */

static rl_layer mk_layer(uint64_t limit, uint64_t remaining, uint64_t retry_ms, uint64_t reset_ms,
                         rl_scope scope, rl_algorithm algo, const char *rule, const char *name)
{
    rl_layer l;
    memset(&l, 0, sizeof l);
    l.allowed = retry_ms == 0;
    l.limit = limit;
    l.remaining = remaining;
    l.retry_after_ms = retry_ms;
    l.reset_after_ms = reset_ms;
    l.scope = scope;
    l.algorithm = algo;
    snprintf(l.rule, sizeof l.rule, "%s", rule);
    snprintf(l.name, sizeof l.name, "%s", name);
    return l;
}

/* A decision of one layer, limiting. */
static rl_decision mk_one(bool allowed, rl_layer l)
{
    rl_decision d;
    memset(&d, 0, sizeof d);
    d.allowed = allowed;
    d.n = 1;
    d.limiting = 0;
    d.now_ns = NOW;
    d.layers[0] = l;
    return d;
}

/* 100 per_user sliding_window requests, 42 left, fresh in 1.5 s: Reset = ceil(1800000001.623..) */
static rl_decision allowed_decision(void)
{
    return mk_one(
        true, mk_layer(100, 42, 0, 1500, RL_SCOPE_USER, RL_SLIDING_WINDOW, "/api/*", "per-minute"));
}

/* Denied by 10 per_ip token_bucket, retry in 2.001 s (-> 3), fresh in 10 s. */
static rl_decision denied_decision(void)
{
    return mk_one(false, mk_layer(10, 0, 2001, 10000, RL_SCOPE_IP, RL_TOKEN_BUCKET,
                                  "POST:/auth/login", "burst"));
}

#define ALLOWED_LEGACY                                                                             \
    "X-RateLimit-Limit: 100" CRLF "X-RateLimit-Remaining: 42" CRLF                                 \
    "X-RateLimit-Reset: 1800000002" CRLF "X-RateLimit-Scope: per_user" CRLF                        \
    "X-RateLimit-Algorithm: sliding_window" CRLF
#define DENIED_LEGACY                                                                              \
    "X-RateLimit-Limit: 10" CRLF "X-RateLimit-Remaining: 0" CRLF                                   \
    "X-RateLimit-Reset: 1800000011" CRLF "X-RateLimit-Scope: per_ip" CRLF                          \
    "X-RateLimit-Algorithm: token_bucket" CRLF
#define DENIED_IETF                                                                                \
    "RateLimit-Policy: \"POST:_auth_login:burst\";q=10" CRLF                                       \
    "RateLimit: \"POST:_auth_login:burst\";r=0;t=10" CRLF

/* ---- helpers -------------------------------------------------------------------------------- */

#define BIG 4096

static void expect_headers(const rl_decision *d, unsigned flags, const char *want)
{
    char buf[BIG];
    memset(buf, 'x', sizeof buf);
    int rc = rl_format_headers_ex(d, flags, buf, sizeof buf);
    cr_assert_eq(rc, (int)strlen(want), "rc %d, want %zu: %s (got \"%s\")", rc, strlen(want),
                 rl_errmsg(), rc >= 0 ? buf : "");
    cr_expect_str_eq(buf, want, "got:\n%s\nwant:\n%s", buf, want);
}

/* Every length from 0 to the output's length (no room for the NUL) is -ENOSPC and leaves ""
 * without touching a byte past len; len + 1 gives the same output. Each call writes into a heap
 * block of exactly len bytes (ASan) and into a canary-filled buffer (the bytes past len). */
typedef int (*format_fn)(const rl_decision *d, unsigned flags, char *buf, size_t len);

static int fmt_headers(const rl_decision *d, unsigned flags, char *buf, size_t len)
{
    return rl_format_headers_ex(d, flags, buf, len);
}

static int fmt_body(const rl_decision *d, unsigned flags, char *buf, size_t len)
{
    (void)flags;
    return rl_format_body(d, buf, len);
}

static void check_all_lengths(format_fn fn, const rl_decision *d, unsigned flags)
{
    char full[BIG];
    int n = fn(d, flags, full, sizeof full);
    cr_assert_geq(n, 0, "full-size format failed: %d %s", n, rl_errmsg());
    cr_assert_eq((size_t)n, strlen(full), "returned length is not the string length");
    static char canary[BIG + 64];
    for (size_t len = 0; len <= (size_t)n + 1; len++) {
        memset(canary, 0xa5, sizeof canary);
        int rc = fn(d, flags, canary, len);
        char *exact = malloc(len ? len : 1);
        cr_assert_not_null(exact);
        int rc2 = fn(d, flags, exact, len);
        if (len <= (size_t)n) {
            cr_expect_eq(rc, -ENOSPC, "len %zu of %d: rc %d", len, n, rc);
            cr_expect_eq(rc2, -ENOSPC, "len %zu of %d: rc %d", len, n, rc2);
            if (len > 0) {
                cr_expect_eq(canary[0], '\0', "len %zu: buffer not cleared", len);
                cr_expect_eq(exact[0], '\0', "len %zu: buffer not cleared", len);
            }
        } else {
            cr_expect_eq(rc, n, "len %zu: rc %d want %d", len, rc, n);
            cr_expect_eq(rc2, n, "len %zu: rc %d want %d", len, rc2, n);
            cr_expect_str_eq(canary, full);
            cr_expect_str_eq(exact, full);
        }
        for (size_t i = len; i < sizeof canary; i++)
            if ((unsigned char)canary[i] != 0xa5) {
                cr_assert_fail("len %zu: byte %zu past the end was written", len, i);
                break;
            }
        free(exact);
    }
}

/* Every line is "Name: value" CRLF with a token name and a value of visible ASCII and spaces: no
 * CR or LF anywhere but at the end of a line. */
static void check_header_syntax(const char *s)
{
    while (*s) {
        const char *eol = strstr(s, CRLF);
        cr_assert_not_null(eol, "line without CRLF: \"%s\"", s);
        const char *colon = memchr(s, ':', (size_t)(eol - s));
        cr_assert_not_null(colon, "line without ':'");
        cr_assert(colon > s, "empty field name");
        for (const char *p = s; p < colon; p++)
            cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-", *p),
                      "bad character 0x%02x in a field name", (unsigned char)*p);
        cr_assert(colon[1] == ' ', "no space after ':'");
        for (const char *p = colon + 2; p < eol; p++)
            cr_assert(*p >= 0x20 && *p < 0x7f, "byte 0x%02x in a field value", (unsigned char)*p);
        s = eol + 2;
    }
}

/* ---- names ---------------------------------------------------------------------------------- */

Test(format, scope_and_algorithm_names)
{
    static const char *const scopes[] = {"per_ip",       "per_user",       "global",
                                         "per_endpoint", "per_descriptor", "per_user_endpoint"};
    static const char *const algos[] = {"token_bucket", "sliding_window", "fixed_window", "gcra"};
    cr_assert_eq(sizeof scopes / sizeof scopes[0], RL_SCOPE_COUNT);
    cr_assert_eq(sizeof algos / sizeof algos[0], RL_ALGORITHM_COUNT);
    for (int i = 0; i < RL_SCOPE_COUNT; i++) {
        cr_assert_not_null(rl_scope_name((rl_scope)i));
        cr_expect_str_eq(rl_scope_name((rl_scope)i), scopes[i]);
        cr_expect_eq(rl__scope_from_name(scopes[i]), i, "%s", scopes[i]);
    }
    for (int i = 0; i < RL_ALGORITHM_COUNT; i++) {
        cr_assert_not_null(rl_algorithm_name((rl_algorithm)i));
        cr_expect_str_eq(rl_algorithm_name((rl_algorithm)i), algos[i]);
        cr_expect_eq(rl__algorithm_from_name(algos[i]), i, "%s", algos[i]);
    }
    cr_expect_eq(rl_scope_name((rl_scope)(RL_SCOPE_USER_ENDPOINT + 1)), NULL);
    cr_expect_eq(rl_scope_name((rl_scope)-1), NULL);
    cr_expect_eq(rl_scope_name((rl_scope)1000), NULL);
    cr_expect_eq(rl_algorithm_name((rl_algorithm)RL_ALGORITHM_COUNT), NULL);
    cr_expect_eq(rl_algorithm_name((rl_algorithm)-1), NULL);

    cr_expect_str_eq(rl__mode_name(RL_MODE_LOCAL), "local");
    cr_expect_str_eq(rl__mode_name(RL_MODE_GLOBAL), "global");
    cr_expect_str_eq(rl__mode_name(RL_MODE_STRICT), "strict");
    cr_expect_eq(rl__mode_name((rl_mode)3), NULL);
    cr_expect_eq(rl__mode_name((rl_mode)-1), NULL);
    cr_expect_eq(rl__mode_from_name("local"), RL_MODE_LOCAL);
    cr_expect_eq(rl__mode_from_name("global"), RL_MODE_GLOBAL);
    cr_expect_eq(rl__mode_from_name("strict"), RL_MODE_STRICT);
}

Test(format, unknown_names)
{
    /* Exact, case-sensitive names only. */
    static const char *const bad[] = {"",        "per_IP", "Per_ip",    " per_ip", "per_ip ",
                                      "per-ip",  "ip",     "perip",     "token",   "Token_bucket",
                                      "GCRA",    "gcra\n", "LOCAL",     "local ",  "redis",
                                      "sliding", "fixed",  "per_user_", "strict!", "glob"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(rl__scope_from_name(bad[i]), -1, "scope \"%s\"", bad[i]);
        cr_expect_eq(rl__algorithm_from_name(bad[i]), -1, "algorithm \"%s\"", bad[i]);
        cr_expect_eq(rl__mode_from_name(bad[i]), -1, "mode \"%s\"", bad[i]);
    }
    cr_expect_eq(rl__scope_from_name(NULL), -1);
    cr_expect_eq(rl__algorithm_from_name(NULL), -1);
    cr_expect_eq(rl__mode_from_name(NULL), -1);
    /* "global" is both a scope and a mode, and nothing else. */
    cr_expect_eq(rl__scope_from_name("global"), RL_SCOPE_GLOBAL);
    cr_expect_eq(rl__algorithm_from_name("global"), -1);
}

/* ---- durations ------------------------------------------------------------------------------ */

Test(format, durations_valid)
{
    /* clang-format off */
    static const struct { const char *s; uint64_t ms; } ok[] = {
        {"0", 0},
        {"1", 1000},
        {"300", 300000},              /* bare number: seconds */
        {"300s", 300000},
        {"5m", 300000},
        {"1h", 3600000},
        {"1d", 86400000},
        {"250ms", 250},
        {"0ms", 0},
        {"007s", 7000},               /* leading zeros are digits */
        {"90m", 5400000},
        {"18446744073709551615ms", UINT64_MAX},
        {"18446744073709551", 18446744073709551000ULL},
        {"18446744073709551s", 18446744073709551000ULL},
        {"307445734561825m", 307445734561825ULL * 60000},
        {"5124095576030h", 5124095576030ULL * 3600000},
        {"213503982334d", 213503982334ULL * 86400000},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t ms = 12345;
        int rc = rl__duration_ms(ok[i].s, &ms);
        cr_expect_eq(rc, 0, "\"%s\": rc %d %s", ok[i].s, rc, rl_errmsg());
        cr_expect_eq(ms, ok[i].ms, "\"%s\": %" PRIu64 " ms, want %" PRIu64, ok[i].s, ms, ok[i].ms);
    }
}

Test(format, durations_invalid)
{
    /* clang-format off */
    static const char *const bad[] = {
        "", "-5", "-5s", "+5", " 5", "5 ", "5 s", "1.5s", "1.5", ".5s", "1e3", "5x",
        "5M", "5S", "5H", "5D", "5Ms", "5mss", "5sm", "ms", "s", "m", "5w", "5y", "5us", "5ns",
        "0x10", "5\n", "5s\n", "5\r\ns", "1h30m", "5,0s", "\xd9\xa1" /* Arabic-Indic one */,
        "18446744073709551616ms",   /* 2^64 ms */
        "99999999999999999999999",  /* digits overflow */
        "18446744073709552",        /* seconds: x 1000 overflows */
        "18446744073709552s", "307445734561826m", "5124095576031h", "213503982335d",
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ms = 12345;
        int rc = rl__duration_ms(bad[i], &ms);
        cr_expect_eq(rc, -EINVAL, "\"%s\": rc %d, want -EINVAL", bad[i], rc);
        cr_expect_eq(ms, 12345, "\"%s\": *ms changed on error", bad[i]);
        cr_expect_neq(rl_errmsg()[0], '\0', "\"%s\": no message", bad[i]);
    }
    uint64_t ms = 0;
    cr_expect_eq(rl__duration_ms(NULL, &ms), -EINVAL);
    cr_expect_eq(rl__duration_ms("5s", NULL), -EINVAL);
}

/* ---- legacy headers ------------------------------------------------------------------------- */

Test(format, headers_allowed)
{
    rl_decision d = allowed_decision();
    expect_headers(&d, RL_HEADERS_LEGACY, ALLOWED_LEGACY);

    char buf[BIG];
    int rc = rl_format_headers(&d, buf, sizeof buf);
    cr_assert_eq(rc, (int)strlen(ALLOWED_LEGACY));
    cr_expect_str_eq(buf, ALLOWED_LEGACY);
    check_header_syntax(buf);
}

Test(format, headers_denied)
{
    /* Reset: NOW + 10 s = 1800000010.123... -> 1800000011. Retry-After: 2001 ms -> 3 s. */
    rl_decision d = denied_decision();
    expect_headers(&d, RL_HEADERS_LEGACY, DENIED_LEGACY "Retry-After: 3" CRLF);

    /* Rounding of Retry-After: exact seconds stay, any fraction rounds up. */
    /* clang-format off */
    static const struct { uint64_t ms; const char *want; } retry[] = {
        {0, "Retry-After: 0" CRLF},
        {1, "Retry-After: 1" CRLF},
        {999, "Retry-After: 1" CRLF},
        {1000, "Retry-After: 1" CRLF},
        {1001, "Retry-After: 2" CRLF},
        {2000, "Retry-After: 2" CRLF},
        {86400000, "Retry-After: 86400" CRLF},
        {NEVER - 1, "Retry-After: 18446744073709552" CRLF}, /* ceil((2^64 - 2) / 1000) */
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++) {
        d.layers[0].retry_after_ms = retry[i].ms;
        char want[BIG];
        snprintf(want, sizeof want, "%s%s", DENIED_LEGACY, retry[i].want);
        expect_headers(&d, RL_HEADERS_LEGACY, want);
    }
}

Test(format, headers_never)
{
    /* A cost above the capacity: no Retry-After (no wait helps), the rest as usual. */
    rl_decision d = denied_decision();
    d.layers[0].retry_after_ms = NEVER;
    expect_headers(&d, RL_HEADERS_LEGACY, DENIED_LEGACY);
    expect_headers(&d, RL_HEADERS_IETF, DENIED_IETF);
}

Test(format, headers_reset_rounding)
{
    rl_decision d = allowed_decision();
    /* clang-format off */
    static const struct { uint64_t now_ns, reset_ms, want; } t[] = {
        {1800000000000000000ULL, 0, 1800000000},        /* exact second, fresh now */
        {1800000000000000000ULL, 1, 1800000001},
        {1800000000000000000ULL, 1000, 1800000001},
        {1800000000000000001ULL, 0, 1800000001},        /* 1 ns into a second rounds up */
        {1800000000999999999ULL, 0, 1800000001},
        {1800000000999000000ULL, 1, 1800000001},        /* exactly on the second */
        {1800000000999000001ULL, 1, 1800000002},
        {0, 0, 0},
        {0, 1, 1},
        {UINT64_MAX, 0, 18446744074},                   /* ceil(18446744073.709551615) */
        /* no overflow: ceil((2^64 - 1 + (2^64 - 2) * 1e6) / 1e9) */
        {UINT64_MAX, UINT64_MAX - 1, 18446762520453626ULL},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        d.now_ns = t[i].now_ns;
        d.layers[0].reset_after_ms = t[i].reset_ms;
        char want[BIG];
        snprintf(want, sizeof want,
                 "X-RateLimit-Limit: 100" CRLF "X-RateLimit-Remaining: 42" CRLF
                 "X-RateLimit-Reset: %" PRIu64 CRLF "X-RateLimit-Scope: per_user" CRLF
                 "X-RateLimit-Algorithm: sliding_window" CRLF,
                 t[i].want);
        expect_headers(&d, RL_HEADERS_LEGACY, want);
    }
}

Test(format, headers_extreme_values)
{
    rl_decision d = mk_one(false, mk_layer(UINT64_MAX, UINT64_MAX, NEVER - 1, 0, RL_SCOPE_GLOBAL,
                                           RL_GCRA, "global", "0"));
    d.now_ns = 0;
    expect_headers(&d, RL_HEADERS_LEGACY | RL_HEADERS_IETF,
                   "X-RateLimit-Limit: 18446744073709551615" CRLF
                   "X-RateLimit-Remaining: 18446744073709551615" CRLF "X-RateLimit-Reset: 0" CRLF
                   "X-RateLimit-Scope: global" CRLF "X-RateLimit-Algorithm: gcra" CRLF
                   "RateLimit-Policy: \"global:0\";q=18446744073709551615" CRLF
                   "RateLimit: \"global:0\";r=18446744073709551615;t=0" CRLF
                   "Retry-After: 18446744073709552" CRLF);
}

Test(format, headers_limiting_layer_choice)
{
    /* Three layers; the headers come from layers[limiting] only, whatever the others say. */
    rl_decision d;
    memset(&d, 0, sizeof d);
    d.allowed = false;
    d.n = 3;
    d.now_ns = 1800000000000000000ULL;
    d.layers[0] = mk_layer(1000, 999, 0, 60000, RL_SCOPE_GLOBAL, RL_FIXED_WINDOW, "global", "0");
    d.layers[1] = mk_layer(5, 0, 4500, 5000, RL_SCOPE_USER_ENDPOINT, RL_GCRA, "/upload/?*", "u");
    d.layers[2] =
        mk_layer(60, 7, 0, 30000, RL_SCOPE_DESCRIPTOR, RL_TOKEN_BUCKET, "tier:free", "api");
    d.limiting = 1;
    expect_headers(&d, RL_HEADERS_LEGACY,
                   "X-RateLimit-Limit: 5" CRLF "X-RateLimit-Remaining: 0" CRLF
                   "X-RateLimit-Reset: 1800000005" CRLF "X-RateLimit-Scope: per_user_endpoint" CRLF
                   "X-RateLimit-Algorithm: gcra" CRLF "Retry-After: 5" CRLF);
    d.limiting = 2;
    d.allowed = true;
    expect_headers(&d, RL_HEADERS_LEGACY,
                   "X-RateLimit-Limit: 60" CRLF "X-RateLimit-Remaining: 7" CRLF
                   "X-RateLimit-Reset: 1800000030" CRLF "X-RateLimit-Scope: per_descriptor" CRLF
                   "X-RateLimit-Algorithm: token_bucket" CRLF);
    expect_headers(&d, RL_HEADERS_IETF,
                   "RateLimit-Policy: \"tier:free:api\";q=60" CRLF
                   "RateLimit: \"tier:free:api\";r=7;t=30" CRLF);
    d.limiting = 0;
    expect_headers(&d, RL_HEADERS_LEGACY,
                   "X-RateLimit-Limit: 1000" CRLF "X-RateLimit-Remaining: 999" CRLF
                   "X-RateLimit-Reset: 1800000060" CRLF "X-RateLimit-Scope: global" CRLF
                   "X-RateLimit-Algorithm: fixed_window" CRLF);
}

Test(format, headers_nothing_to_say)
{
    char buf[64];
    rl_decision d = allowed_decision();

    /* Bypassed (no limiting layer): nothing, in every set. */
    d.bypassed = true;
    d.limiting = -1;
    unsigned sets[] = {RL_HEADERS_LEGACY, RL_HEADERS_IETF, RL_HEADERS_LEGACY | RL_HEADERS_IETF};
    for (size_t i = 0; i < 3; i++) {
        memset(buf, 'x', sizeof buf);
        cr_expect_eq(rl_format_headers_ex(&d, sets[i], buf, sizeof buf), 0);
        cr_expect_str_eq(buf, "");
    }
    /* No layer at all. */
    d = allowed_decision();
    d.n = 0;
    memset(buf, 'x', sizeof buf);
    cr_expect_eq(rl_format_headers(&d, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "");
    /* Empty output fits a 1-byte buffer, not a 0-byte one. */
    buf[0] = 'x';
    cr_expect_eq(rl_format_headers(&d, buf, 1), 0);
    cr_expect_eq(buf[0], '\0');
    buf[0] = 'x';
    cr_expect_eq(rl_format_headers(&d, buf, 0), -ENOSPC);
    cr_expect_eq(buf[0], 'x');
    /* No set requested. */
    d = denied_decision();
    memset(buf, 'x', sizeof buf);
    cr_expect_eq(rl_format_headers_ex(&d, 0, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "");
}

Test(format, headers_invalid)
{
    char buf[BIG];
    rl_decision d = denied_decision();

    cr_expect_eq(rl_format_headers(NULL, buf, sizeof buf), -EINVAL);
    cr_expect_eq(rl_format_headers(&d, NULL, 100), -EINVAL);
    cr_expect_eq(rl_format_headers_ex(NULL, RL_HEADERS_IETF, buf, sizeof buf), -EINVAL);
    cr_expect_eq(rl_format_body(NULL, buf, sizeof buf), -EINVAL);
    cr_expect_eq(rl_format_body(&d, NULL, 100), -EINVAL);

    buf[0] = 'x';
    cr_expect_eq(rl_format_headers_ex(&d, 1u << 7, buf, sizeof buf), -EINVAL);
    cr_expect_eq(buf[0], '\0', "buffer not cleared on error");
    cr_expect_neq(rl_errmsg()[0], '\0');

    /* Decisions rl_check cannot produce: limiting past n, n past RL_MAX_LAYERS, bad enums. */
    rl_decision bad = d;
    bad.limiting = 1;
    cr_expect_eq(rl_format_headers(&bad, buf, sizeof buf), -EINVAL);
    cr_expect_eq(rl_format_body(&bad, buf, sizeof buf), -EINVAL);
    bad = d;
    bad.n = RL_MAX_LAYERS + 1;
    bad.limiting = RL_MAX_LAYERS;
    cr_expect_eq(rl_format_headers(&bad, buf, sizeof buf), -EINVAL);
    cr_expect_eq(rl_format_body(&bad, buf, sizeof buf), -EINVAL);
    bad = d;
    bad.layers[0].scope = (rl_scope)RL_SCOPE_COUNT;
    buf[0] = 'x';
    cr_expect_eq(rl_format_headers(&bad, buf, sizeof buf), -EINVAL);
    cr_expect_eq(buf[0], '\0');
    cr_expect_eq(rl_format_body(&bad, buf, sizeof buf), -EINVAL);
    bad = d;
    bad.layers[0].algorithm = (rl_algorithm)-1;
    cr_expect_eq(rl_format_headers_ex(&bad, RL_HEADERS_IETF, buf, sizeof buf), -EINVAL);
    cr_expect_eq(rl_format_body(&bad, buf, sizeof buf), -EINVAL);
}

/* ---- IETF headers --------------------------------------------------------------------------- */

Test(format, headers_ietf)
{
    rl_decision d = denied_decision();
    expect_headers(&d, RL_HEADERS_IETF, DENIED_IETF "Retry-After: 3" CRLF);
    /* Both sets: legacy, then IETF, then one Retry-After. */
    expect_headers(&d, RL_HEADERS_LEGACY | RL_HEADERS_IETF,
                   DENIED_LEGACY DENIED_IETF "Retry-After: 3" CRLF);

    /* Allowed: t rounds reset_after_ms up to whole seconds; no Retry-After. */
    d = allowed_decision();
    expect_headers(&d, RL_HEADERS_IETF,
                   "RateLimit-Policy: \"_api__:per-minute\";q=100" CRLF
                   "RateLimit: \"_api__:per-minute\";r=42;t=2" CRLF);
    d.layers[0].reset_after_ms = 0;
    expect_headers(&d, RL_HEADERS_IETF,
                   "RateLimit-Policy: \"_api__:per-minute\";q=100" CRLF
                   "RateLimit: \"_api__:per-minute\";r=42;t=0" CRLF);

    /* Names: an empty part is left out with its ':'; both empty is "default". */
    snprintf(d.layers[0].rule, RL_NAME_MAX, "%s", "");
    expect_headers(&d, RL_HEADERS_IETF,
                   "RateLimit-Policy: \"per-minute\";q=100" CRLF
                   "RateLimit: \"per-minute\";r=42;t=0" CRLF);
    snprintf(d.layers[0].rule, RL_NAME_MAX, "%s", "default");
    snprintf(d.layers[0].name, RL_NAME_MAX, "%s", "");
    expect_headers(&d, RL_HEADERS_IETF,
                   "RateLimit-Policy: \"default\";q=100" CRLF
                   "RateLimit: \"default\";r=42;t=0" CRLF);
    snprintf(d.layers[0].rule, RL_NAME_MAX, "%s", "");
    expect_headers(&d, RL_HEADERS_IETF,
                   "RateLimit-Policy: \"default\";q=100" CRLF
                   "RateLimit: \"default\";r=42;t=0" CRLF);
}

Test(format, headers_hostile_names)
{
    /* Rule and layer names with CR, LF, quotes, backslashes, spaces, ';', ',', '=' and UTF-8:
     * every byte outside [A-Za-z0-9_.:-] becomes '_' (UTF-8 "é" is two bytes: two '_'). */
    rl_decision d = denied_decision();
    snprintf(d.layers[0].rule, RL_NAME_MAX, "%s", "GET:/a\r\nSet-Cookie: x=\"1\";\\,\xc3\xa9");
    snprintf(d.layers[0].name, RL_NAME_MAX, "%s", "n\n\r\t\x7f\xff.ok-1");
    const char *policy = "\"GET:_a__Set-Cookie:_x__1______:n_____.ok-1\"";
    char want[BIG];
    snprintf(want, sizeof want,
             "%sRateLimit-Policy: %s;q=10" CRLF "RateLimit: %s;r=0;t=10" CRLF "Retry-After: 3" CRLF,
             DENIED_LEGACY, policy, policy);
    expect_headers(&d, RL_HEADERS_LEGACY | RL_HEADERS_IETF, want);

    char buf[BIG];
    cr_assert(rl_format_headers_ex(&d, RL_HEADERS_LEGACY | RL_HEADERS_IETF, buf, sizeof buf) > 0);
    check_header_syntax(buf);

    /* Names filling the whole array without a NUL are read up to RL_NAME_MAX bytes only. */
    memset(d.layers[0].rule, 'r', RL_NAME_MAX);
    memset(d.layers[0].name, 'n', RL_NAME_MAX);
    int rc = rl_format_headers_ex(&d, RL_HEADERS_IETF, buf, sizeof buf);
    cr_assert(rc > 0, "rc %d: %s", rc, rl_errmsg());
    check_header_syntax(buf);
    char name[2 * RL_NAME_MAX + 4];
    memset(name, 'r', RL_NAME_MAX);
    name[RL_NAME_MAX] = ':';
    memset(name + RL_NAME_MAX + 1, 'n', RL_NAME_MAX);
    name[2 * RL_NAME_MAX + 1] = '\0';
    char line[BIG];
    snprintf(line, sizeof line, "RateLimit-Policy: \"%s\";q=10" CRLF, name);
    cr_expect(strncmp(buf, line, strlen(line)) == 0, "got %s", buf);
}

Test(format, headers_every_length)
{
    rl_decision a = allowed_decision(), dn = denied_decision(), nv = denied_decision();
    nv.layers[0].retry_after_ms = NEVER;
    const rl_decision *ds[] = {&a, &dn, &nv};
    unsigned sets[] = {RL_HEADERS_LEGACY, RL_HEADERS_IETF, RL_HEADERS_LEGACY | RL_HEADERS_IETF};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++)
            check_all_lengths(fmt_headers, ds[i], sets[j]);
}

/* ---- JSON body ------------------------------------------------------------------------------ */

static json_t *parse_body(const rl_decision *d, char *buf, size_t len)
{
    int rc = rl_format_body(d, buf, len);
    cr_assert(rc > 0, "rl_format_body: %d %s", rc, rl_errmsg());
    cr_assert_eq((size_t)rc, strlen(buf));
    for (int i = 0; i < rc; i++)
        cr_assert((unsigned char)buf[i] >= 0x20, "raw control byte 0x%02x at %d in %s",
                  (unsigned char)buf[i], i, buf);
    json_error_t e;
    json_t *j = json_loads(buf, 0, &e);
    cr_assert_not_null(j, "not JSON (%s at %d): %s", e.text, e.position, buf);
    cr_assert(json_is_object(j));
    return j;
}

static void expect_str(json_t *j, const char *key, const char *want)
{
    json_t *v = json_object_get(j, key);
    cr_assert_not_null(v, "no \"%s\"", key);
    cr_assert(json_is_string(v), "\"%s\" is not a string", key);
    cr_expect_eq(json_string_length(v), strlen(want), "\"%s\": length %zu, want %zu", key,
                 json_string_length(v), strlen(want));
    cr_expect_str_eq(json_string_value(v), want, "\"%s\"", key);
}

static void expect_int(json_t *j, const char *key, json_int_t want)
{
    json_t *v = json_object_get(j, key);
    cr_assert_not_null(v, "no \"%s\"", key);
    cr_assert(json_is_integer(v), "\"%s\" is not an integer", key);
    cr_expect_eq(json_integer_value(v), want, "\"%s\": %lld, want %lld", key,
                 (long long)json_integer_value(v), (long long)want);
}

Test(format, body_denied)
{
    rl_decision d = denied_decision();
    char buf[BIG];
    json_t *j = parse_body(&d, buf, sizeof buf);
    cr_expect_eq(json_object_size(j), 10, "fields: %s", buf);
    expect_str(j, "error", "rate_limited");
    expect_str(j, "message",
               "Rate limit exceeded: limit of 10 reached (per_ip); try again in 3 seconds");
    expect_int(j, "limit", 10);
    expect_int(j, "remaining", 0);
    expect_int(j, "reset", 1800000011);
    expect_int(j, "retry_after", 3);
    expect_str(j, "scope", "per_ip");
    expect_str(j, "algorithm", "token_bucket");
    expect_str(j, "rule", "POST:/auth/login");
    expect_str(j, "layer", "burst");
    json_decref(j);

    /* The exact text, pinned once (key order and no whitespace). */
    cr_expect_str_eq(buf, "{\"error\":\"rate_limited\",\"message\":\"Rate limit exceeded: limit of "
                          "10 reached (per_ip); try again in 3 seconds\",\"limit\":10,"
                          "\"remaining\":0,\"reset\":1800000011,\"retry_after\":3,\"scope\":"
                          "\"per_ip\",\"algorithm\":\"token_bucket\",\"rule\":\"POST:/auth/"
                          "login\",\"layer\":\"burst\"}");

    d.layers[0].retry_after_ms = 1000;
    j = parse_body(&d, buf, sizeof buf);
    expect_str(j, "message",
               "Rate limit exceeded: limit of 10 reached (per_ip); try again in 1 second");
    expect_int(j, "retry_after", 1);
    json_decref(j);
}

Test(format, body_never)
{
    rl_decision d = denied_decision();
    d.layers[0].retry_after_ms = NEVER;
    char buf[BIG];
    json_t *j = parse_body(&d, buf, sizeof buf);
    expect_str(j, "error", "rate_limited");
    expect_str(j, "message",
               "Rate limit exceeded: this request exceeds the limit of 10 (per_ip) and can never "
               "be allowed");
    json_t *ra = json_object_get(j, "retry_after");
    cr_assert_not_null(ra, "retry_after missing");
    cr_expect(json_is_null(ra), "retry_after is not null");
    expect_int(j, "limit", 10);
    expect_int(j, "reset", 1800000011);
    json_decref(j);
}

Test(format, body_allowed)
{
    rl_decision d = allowed_decision();
    char buf[BIG];
    json_t *j = parse_body(&d, buf, sizeof buf);
    cr_expect_eq(json_object_size(j), 10);
    expect_str(j, "error", "ok");
    expect_str(j, "message", "Request allowed: 42 of 100 remaining (per_user)");
    expect_int(j, "limit", 100);
    expect_int(j, "remaining", 42);
    expect_int(j, "reset", 1800000002);
    expect_int(j, "retry_after", 0);
    expect_str(j, "scope", "per_user");
    expect_str(j, "algorithm", "sliding_window");
    expect_str(j, "rule", "/api/*");
    expect_str(j, "layer", "per-minute");
    json_decref(j);
}

Test(format, body_no_layer)
{
    char buf[BIG];
    rl_decision d = allowed_decision();
    d.bypassed = true;
    d.limiting = -1;
    json_t *j = parse_body(&d, buf, sizeof buf);
    cr_expect_eq(json_object_size(j), 2, "%s", buf);
    expect_str(j, "error", "ok");
    expect_str(j, "message", "Request allowed: on the bypass list");
    json_decref(j);

    d.bypassed = false;
    d.disabled = true;
    j = parse_body(&d, buf, sizeof buf);
    expect_str(j, "message", "Request allowed: rate limiting is disabled");
    json_decref(j);

    d.disabled = false;
    d.n = 0;
    d.limiting = 0;
    j = parse_body(&d, buf, sizeof buf);
    expect_str(j, "message", "Request allowed: no rate limit applies");
    json_decref(j);
}

Test(format, body_hostile_names)
{
    /*
     * The rule: quotes, backslashes, control characters (CR, LF, TAB, 0x01, 0x1f, DEL), valid
     * UTF-8 of 2, 3 and 4 bytes kept as is, and ill-formed UTF-8, each maximal ill-formed subpart
     * (Unicode 15 section 3.9) becoming one U+FFFD: a stray continuation byte, 0xff, a truncated
     * 3-byte sequence ("\xe2\x82" then 'z'), a surrogate ("\xed\xa0\x80": three), an overlong
     * ("\xc0\xaf": two), above U+10FFFF ("\xf4\x90\x80\x80": four), and a truncated 4-byte
     * sequence at the very end.
     */
    static const char rule[] = "a\"b\\c\r\n\t\x01\x1f\x7f|\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|"
                               "\x80\xff\xe2\x82z\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80\xf0\x9f\x98";
#define FFFD "\xef\xbf\xbd"
    static const char want[] =
        "a\"b\\c\r\n\t\x01\x1f\x7f|\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|" FFFD FFFD FFFD
        "z" FFFD FFFD FFFD FFFD FFFD FFFD FFFD FFFD FFFD FFFD;
    cr_assert_lt(sizeof rule, RL_NAME_MAX);
    rl_decision d = denied_decision();
    memcpy(d.layers[0].rule, rule, sizeof rule);
    snprintf(d.layers[0].name, RL_NAME_MAX, "%s", "\"}],\\u0000\n");
    char buf[BIG];
    json_t *j = parse_body(&d, buf, sizeof buf);
    expect_str(j, "rule", want);
    expect_str(j, "layer", "\"}],\\u0000\n");
    expect_str(j, "error", "rate_limited");
    expect_int(j, "limit", 10);
    json_decref(j);
    /* Control characters as \u00XX. */
    cr_expect_not_null(strstr(buf, "\\u000d\\u000a\\u0009\\u0001\\u001f\\u007f"), "%s", buf);
    cr_expect_not_null(strstr(buf, "a\\\"b\\\\c"), "%s", buf);
    check_all_lengths(fmt_body, &d, 0);

    /* Names filling the whole array without a NUL: RL_NAME_MAX bytes, not one more. */
    memset(d.layers[0].rule, 'r', RL_NAME_MAX);
    memset(d.layers[0].name, 'n', RL_NAME_MAX);
    j = parse_body(&d, buf, sizeof buf);
    char r[RL_NAME_MAX + 1], n[RL_NAME_MAX + 1];
    memset(r, 'r', RL_NAME_MAX);
    memset(n, 'n', RL_NAME_MAX);
    r[RL_NAME_MAX] = n[RL_NAME_MAX] = '\0';
    expect_str(j, "rule", r);
    expect_str(j, "layer", n);
    json_decref(j);
}

Test(format, body_extreme_values)
{
    /* Beyond jansson's signed integers: checked as text. */
    rl_decision d = mk_one(false, mk_layer(UINT64_MAX, UINT64_MAX, NEVER - 1, UINT64_MAX - 1,
                                           RL_SCOPE_GLOBAL, RL_GCRA, "global", "0"));
    d.now_ns = UINT64_MAX;
    char buf[BIG];
    int rc = rl_format_body(&d, buf, sizeof buf);
    cr_assert(rc > 0, "rc %d: %s", rc, rl_errmsg());
    cr_expect_not_null(strstr(buf, "\"limit\":18446744073709551615,\"remaining\":"
                                   "18446744073709551615,\"reset\":18446762520453626,"
                                   "\"retry_after\":18446744073709552,"),
                       "%s", buf);
    cr_expect_not_null(strstr(buf, "try again in 18446744073709552 seconds\""), "%s", buf);
}

Test(format, body_every_length)
{
    rl_decision a = allowed_decision(), dn = denied_decision(), nv = denied_decision();
    nv.layers[0].retry_after_ms = NEVER;
    rl_decision by = allowed_decision();
    by.limiting = -1;
    by.bypassed = true;
    const rl_decision *ds[] = {&a, &dn, &nv, &by};
    for (size_t i = 0; i < 4; i++)
        check_all_lengths(fmt_body, ds[i], 0);
}
