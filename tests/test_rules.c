/*
 * Rules, scopes and the request check (rl_check): the seed's Quick Start, its PRODUCTION_CONFIG
 * endpoint by endpoint and layer by layer, tiers, precedence, bypass, shadow rules, scopes,
 * the audit ring, and reloads while threads and a second process keep checking.
 *
 * Runs with the working directory tests/ (meson workdir), so "../examples/production.yaml" is
 * the shipped example. Every expected number is derived in a comment next to it.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "rl_test.h"

TestSuite(rules, .init = seg_setup, .fini = seg_teardown);

/* ---- helpers --------------------------------------------------------------------------------- */

/* Loads YAML text as the segment's rule set (through a temporary file, as a user would). */
static int load_yaml(rl_t *rl, const char *yaml)
{
    char path[] = "/tmp/rl-test-rules-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp");
    size_t n = strlen(yaml);
    cr_assert_eq(write(fd, yaml, n), (ssize_t)n, "write");
    close(fd);
    int rc = rl_load_config(rl, path);
    unlink(path);
    return rc;
}

static void must_load(rl_t *rl, const char *yaml)
{
    int rc = load_yaml(rl, yaml);
    cr_assert_eq(rc, 0, "rl_load_config = %d (%s): %s", rc, rl_strerror(rc), rl_errmsg());
}

static rl_request req(const char *method, const char *path, const char *ip, const char *user,
                      const char *tier)
{
    rl_request r;
    memset(&r, 0, sizeof r);
    r.method = method;
    r.path = path;
    r.ip = ip;
    r.user = user;
    r.tier = tier;
    return r;
}

static rl_decision check_at(rl_t *rl, const rl_request *r, uint64_t t)
{
    rl_decision d;
    memset(&d, 0xa5, sizeof d);
    int rc = rl_check_at(rl, r, t, &d);
    cr_assert_eq(rc, 0, "rl_check_at(%s %s) = %d (%s): %s", r->method, r->path, rc, rl_strerror(rc),
                 rl_errmsg());
    cr_assert_leq(d.n, (size_t)RL_MAX_LAYERS);
    return d;
}

/* Sends `n` identical requests at time t; returns how many were allowed. */
static unsigned send_n(rl_t *rl, const rl_request *r, unsigned n, uint64_t t)
{
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++)
        ok += check_at(rl, r, t).allowed;
    return ok;
}

static const rl_layer *layer_of(const rl_decision *d, const char *rule, size_t idx_in_rule)
{
    size_t seen = 0;
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->layers[i].rule, rule) == 0 && seen++ == idx_in_rule)
            return &d->layers[i];
    cr_assert_fail("no layer %zu of rule %s in the decision (%zu layers)", idx_in_rule, rule, d->n);
    return NULL;
}

/* ---- the seed's Quick Start ------------------------------------------------------------------ */

Test(rules, quick_start)
{
    must_load(g_rl, "version: 1\n"); /* an empty rule set: only what the test adds applies */
    rl_limit l = mk_limit(RL_SLIDING_WINDOW, 100, 60 * MS_S, 0);
    l.scope = RL_SCOPE_IP;
    int rc = rl_configure_endpoint(g_rl, "/api/users", &l, 1);
    cr_assert_eq(rc, 0, "rl_configure_endpoint: %s", rl_errmsg());

    rl_request a = req("GET", "/api/users", "192.168.1.100", "user123", NULL);
    /* 100 requests per minute, sliding window, per IP: 100 allowed at once... */
    for (unsigned i = 0; i < 100; i++) {
        rl_decision d = check_at(g_rl, &a, at_ms(i));
        cr_assert(d.allowed, "request %u denied", i);
        cr_assert_eq(d.n, 1);
        cr_assert_eq(d.layers[0].remaining, 99 - i);
    }
    /* ... the next is denied with a retry-after: at T0+100ms, cur = 100 = L, so it must wait
     * for the next window (59.9 s) where prev = 100 weighs (W - e)/W: one fits when
     * 100 (W - e'') <= 99 W, e'' = 600 ms: 59,900 + 600 = 60,500 ms. */
    rl_decision d = check_at(g_rl, &a, at_ms(100));
    cr_assert(!d.allowed);
    cr_assert_eq(d.limiting, 0);
    cr_assert_eq(d.layers[0].retry_after_ms, 60500);
    char hdr[512];
    int n = rl_format_headers(&d, hdr, sizeof hdr);
    cr_assert_gt(n, 0, "rl_format_headers = %d", n);
    cr_assert(strstr(hdr, "X-RateLimit-Limit: 100\r\n"), "%s", hdr);
    cr_assert(strstr(hdr, "X-RateLimit-Remaining: 0\r\n"), "%s", hdr);
    cr_assert(strstr(hdr, "X-RateLimit-Scope: per_ip\r\n"), "%s", hdr);
    cr_assert(strstr(hdr, "X-RateLimit-Algorithm: sliding_window\r\n"), "%s", hdr);
    cr_assert(strstr(hdr, "Retry-After: 61\r\n"), "%s", hdr); /* ceil(60.5 s) */
    /* Another IP is allowed. */
    rl_request b = req("GET", "/api/users", "192.168.1.101", "user123", NULL);
    cr_assert(check_at(g_rl, &b, at_ms(100)).allowed);
    /* After the retry-after, the first IP passes again. */
    cr_assert(check_at(g_rl, &a, at_ms(100 + 60500)).allowed);
}

/* ---- PRODUCTION_CONFIG ----------------------------------------------------------------------- */

#if defined(RL_WITH_REDIS) && !RL_WITH_REDIS
/* Built without Redis a rule file may not ask for mode strict or global (test_config), which
 * the example does for three layers; without a Redis URL those count locally anyway, so the
 * example is loaded without its modes. */
static void load_production(void)
{
    FILE *f = fopen("../examples/production.yaml", "r");
    cr_assert_not_null(f);
    static char text[1 << 16], local[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f), o = 0;
    fclose(f);
    text[n] = '\0';
    for (size_t i = 0; i < n;) {
        const char *drop = strncmp(text + i, ", mode: strict", 14) == 0   ? ", mode: strict"
                           : strncmp(text + i, ", mode: global", 14) == 0 ? ", mode: global"
                                                                          : NULL;
        if (drop)
            i += strlen(drop);
        else
            local[o++] = text[i++];
    }
    local[o] = '\0';
    must_load(g_rl, local);
}
#else
static void load_production(void)
{
    int rc = rl_load_config(g_rl, "../examples/production.yaml");
    cr_assert_eq(rc, 0, "loading examples/production.yaml: %s", rl_errmsg());
}
#endif

Test(rules, production_login_layers)
{
    load_production();
    rl_request r = req("POST", "/auth/login", "203.0.113.9", NULL, NULL);
    /* Layer 0: fixed window, 5 per 300 s per IP (T0 is a multiple of 300 s). */
    cr_assert_eq(send_n(g_rl, &r, 5, at_ms(0)), 5);
    rl_decision d = check_at(g_rl, &r, at_ms(1000));
    cr_assert(!d.allowed);
    cr_assert_eq(d.layers[d.limiting].algorithm, RL_FIXED_WINDOW);
    cr_assert_eq(d.layers[d.limiting].retry_after_ms, 299000); /* to the window's end */
    /* Layer 1: sliding window, 10 per hour. Next fixed window: 5 more (10 in the hour)... */
    cr_assert_eq(send_n(g_rl, &r, 5, at_ms(300000)), 5);
    /* ... and in the window after, the fixed layer allows but the sliding one denies. */
    d = check_at(g_rl, &r, at_ms(600000));
    cr_assert(!d.allowed);
    cr_assert_eq(d.layers[d.limiting].algorithm, RL_SLIDING_WINDOW);
    cr_assert(d.layers[0].allowed, "the fixed-window layer allowed");
    /* The denial consumed nothing from the fixed layer: 5 requests still pass the fixed layer
     * in this window, as a peek by another path of the same rule would show. We check it after
     * the hour, when the sliding layer lets requests through again: 5 allowed, the 6th not. */
    uint64_t later = at_ms(600000 + 2 * 3600 * 1000); /* 2 h later, still a 300 s boundary */
    cr_assert_eq(send_n(g_rl, &r, 6, later), 5);
    /* GET on the same path is not the POST rule: the defaults apply. */
    rl_request g = req("GET", "/auth/login", "203.0.113.9", NULL, NULL);
    d = check_at(g_rl, &g, at_ms(1000));
    cr_assert(d.allowed);
    cr_assert_str_eq(d.layers[0].rule, "default");
}

Test(rules, production_api_denial_consumes_nothing)
{
    load_production();
    /* The api rule: [sliding 1000/h per user, token bucket 100/min burst 150 per IP,
     * sliding 10000/min global]. alice from one IP: the per-IP bucket holds 150. */
    rl_request a = req("GET", "/v1/api/items", "198.51.100.7", "alice", NULL);
    cr_assert_eq(send_n(g_rl, &a, 150, at_ms(0)), 150);
    rl_decision d;
    for (int i = 0; i < 20; i++) { /* 20 denials by the per-IP layer */
        d = check_at(g_rl, &a, at_ms(0));
        cr_assert(!d.allowed);
        cr_assert_eq(d.layers[d.limiting].scope, RL_SCOPE_IP);
    }
    /* alice from another IP: her per-user layer saw exactly 150 + this one = 151 requests, so
     * 849 remain; had the 20 denials consumed, it would say 829. The global layer likewise. */
    rl_request b = req("GET", "/v1/api/items", "198.51.100.8", "alice", NULL);
    d = check_at(g_rl, &b, at_ms(0));
    cr_assert(d.allowed);
    const rl_layer *user = layer_of(&d, "*/api/*", 0);
    cr_assert_eq(user->scope, RL_SCOPE_USER);
    cr_assert_eq(user->remaining, 849, "per-user remaining %" PRIu64, user->remaining);
    const rl_layer *global = layer_of(&d, "*/api/*", 2);
    cr_assert_eq(global->scope, RL_SCOPE_GLOBAL);
    cr_assert_eq(global->remaining, 10000 - 151);
    /* The limiting layer of an allowed request is the one with the least left: per IP 149. */
    cr_assert_eq(d.layers[d.limiting].scope, RL_SCOPE_IP);
    cr_assert_eq(d.layers[d.limiting].remaining, 149);
}

Test(rules, production_upload)
{
    load_production();
    /* The upload rule: fixed 10 per 300 s per IP, sliding 50 per hour per user. */
    rl_request r = req("POST", "/upload/photo.png", "192.0.2.1", "bob", NULL);
    cr_assert_eq(send_n(g_rl, &r, 12, at_ms(0)), 10);
    /* Another IP, same user: the per-user layer has 40 left after 10 (+1 now). */
    rl_request r2 = req("POST", "/upload/other.bin", "192.0.2.2", "bob", NULL);
    rl_decision d = check_at(g_rl, &r2, at_ms(0));
    cr_assert(d.allowed);
    cr_assert_eq(layer_of(&d, "POST:/upload/*", 1)->remaining, 39);
}

/* ---- precedence ------------------------------------------------------------------------------ */

Test(rules, precedence_most_specific_wins)
{
    must_load(g_rl, "version: 1\n"
                    "endpoints:\n"
                    "  - pattern: \"*\"\n"
                    "    limits: [{requests: 1, window: 60s, name: any}]\n"
                    "  - pattern: \"/api/*\"\n"
                    "    limits: [{requests: 2, window: 60s, name: api}]\n"
                    "  - pattern: \"GET:/api/*\"\n"
                    "    limits: [{requests: 3, window: 60s, name: get-api}]\n"
                    "  - pattern: \"/api/users\"\n"
                    "    limits: [{requests: 4, window: 60s, name: users}]\n"
                    "  - pattern: \"/api/us?rs\"\n"
                    "    limits: [{requests: 5, window: 60s, name: glob}]\n");
    static const struct {
        const char *method, *path, *rule;
    } cases[] = {
        {"GET", "/api/users", "/api/users"},     /* exact: 10 literal characters */
        {"POST", "/api/users", "/api/users"},    /* no method in either: still the exact one */
        {"GET", "/api/usxrs", "/api/us?rs"},     /* 9 literals beat the GET rule's 5 */
        {"GET", "/api/items", "GET:/api/*"},     /* 5 literals each: the method wins */
        {"POST", "/api/items", "/api/*"},        /* the GET rule does not match POST */
        {"GET", "/other", "*"},                  /* only the catch-all */
        {"GET", "/api/users?x=1", "/api/users"}, /* the query string is ignored */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rl_request r = req(cases[i].method, cases[i].path, "10.9.8.7", NULL, NULL);
        rl_decision d = check_at(g_rl, &r, at_ms(0));
        cr_assert_eq(d.n, 1, "%s %s: %zu layers", cases[i].method, cases[i].path, d.n);
        cr_expect_str_eq(d.layers[0].rule, cases[i].rule, "%s %s -> %s, expected %s",
                         cases[i].method, cases[i].path, d.layers[0].rule, cases[i].rule);
    }
}

Test(rules, no_match_uses_defaults_or_nothing)
{
    must_load(g_rl, "version: 1\n"
                    "defaults: [{requests: 2, window: 60s}]\n"
                    "endpoints:\n"
                    "  - {pattern: \"/a\", limits: [{requests: 1, window: 60s}]}\n");
    rl_request r = req("GET", "/b", "10.0.0.1", NULL, NULL);
    cr_assert_eq(send_n(g_rl, &r, 3, at_ms(0)), 2);
    must_load(g_rl, "version: 1\n"
                    "endpoints:\n"
                    "  - {pattern: \"/a\", limits: [{requests: 1, window: 60s}]}\n");
    rl_decision d = check_at(g_rl, &r, at_ms(0));
    cr_assert(d.allowed);
    cr_assert_eq(d.n, 0, "no rule and no defaults: no layer");
    cr_assert_eq(d.limiting, -1);
}

/* ---- tiers ----------------------------------------------------------------------------------- */

Test(rules, tiers_combine_with_endpoint_limits)
{
    load_production();
    /* free: 100/h sliding + 10/min token bucket per user, on top of the endpoint's layers.
     * The endpoint's per-IP bucket holds 150, so the tier's 10 per minute decides. */
    rl_request f = req("GET", "/v1/api/x", "198.51.100.20", "fred", "free");
    cr_assert_eq(send_n(g_rl, &f, 12, at_ms(0)), 10);
    rl_decision d = check_at(g_rl, &f, at_ms(0));
    cr_assert(!d.allowed);
    cr_assert_str_eq(d.layers[d.limiting].rule, "tier:free");
    /* premium: 50/min with burst 100: 100 at once. */
    rl_request p = req("GET", "/v1/api/x", "198.51.100.21", "pat", "premium");
    cr_assert_eq(send_n(g_rl, &p, 105, at_ms(0)), 100);
    /* enterprise: burst 500, but the endpoint's per-IP bucket (150) now decides. */
    rl_request e = req("GET", "/v1/api/x", "198.51.100.22", "erin", "enterprise");
    cr_assert_eq(send_n(g_rl, &e, 160, at_ms(0)), 150);
    d = check_at(g_rl, &e, at_ms(0));
    cr_assert_eq(d.layers[d.limiting].scope, RL_SCOPE_IP);
    /* A denied request consumed nothing from the tier either: erin's minute bucket (burst
     * 500) has 500 - 150 left, seen from another IP (+1 for that request). */
    rl_request e2 = req("GET", "/v1/api/x", "198.51.100.23", "erin", "enterprise");
    d = check_at(g_rl, &e2, at_ms(0));
    cr_assert(d.allowed);
    cr_assert_eq(layer_of(&d, "tier:enterprise", 1)->remaining, 500 - 151);
}

/* ---- bypass, shadow, disabled ---------------------------------------------------------------- */

Test(rules, bypass_list)
{
    must_load(g_rl, "version: 1\n"
                    "defaults: [{requests: 1, window: 60s}]\n"
                    "bypass: {ips: [\"10.0.0.0/8\", \"2001:db8::/32\"], users: [\"ops\"]}\n");
    rl_request in = req("GET", "/x", "10.1.2.3", NULL, NULL);
    rl_request v6 = req("GET", "/x", "2001:db8::5", NULL, NULL);
    rl_request op = req("GET", "/x", "192.0.2.9", "ops", NULL);
    rl_request out = req("GET", "/x", "192.0.2.9", NULL, NULL);
    for (int i = 0; i < 5; i++) {
        rl_decision d = check_at(g_rl, &in, at_ms(0));
        cr_assert(d.allowed && d.bypassed);
        cr_assert(check_at(g_rl, &v6, at_ms(0)).bypassed);
        cr_assert(check_at(g_rl, &op, at_ms(0)).bypassed);
    }
    cr_assert_eq(send_n(g_rl, &out, 3, at_ms(0)), 1);
    rl_stats_info s;
    cr_assert_eq(rl_stats(g_rl, &s), 0);
    cr_assert_eq(s.bypassed, 15);
    cr_assert_eq(s.denied, 2);
    char hdr[256];
    rl_decision d = check_at(g_rl, &in, at_ms(0));
    cr_assert_eq(rl_format_headers(&d, hdr, sizeof hdr), 0, "a bypassed request has no headers");
}

/* rl_bypass_add / _remove / _list change the published rule set at run time: another handle
 * (another worker) bypasses from its next check, without reopening anything. */
Test(rules, bypass_changed_at_run_time)
{
    must_load(g_rl, "version: 1\ndefaults: [{requests: 1, window: 60s}]\n");
    rl_t *other = test_open(g_name, 4096); /* a second worker on the same segment */
    rl_request r = req("GET", "/x", "198.51.100.7", NULL, NULL);
    cr_assert(check_at(other, &r, at_ms(0)).allowed);
    cr_assert(!check_at(other, &r, at_ms(0)).allowed, "the limit is 1");
    cr_assert_eq(rl_bypass_add(g_rl, RL_BYPASS_IP, "198.51.100.0/24"), 0, "%s", rl_errmsg());
    cr_assert_eq(rl_bypass_add(g_rl, RL_BYPASS_IP, "198.51.100.0/24"), 0, "adding twice: no-op");
    cr_assert_eq(rl_bypass_add(g_rl, RL_BYPASS_USER, "ops-admin"), 0, "%s", rl_errmsg());
    rl_decision d = check_at(other, &r, at_ms(0));
    cr_expect(d.allowed && d.bypassed, "the other handle bypasses at its next check");
    char buf[256];
    long n = rl_bypass_list(g_rl, RL_BYPASS_IP, buf, sizeof buf);
    cr_expect_eq(n, (long)strlen("198.51.100.0/24\n"));
    cr_expect_str_eq(buf, "198.51.100.0/24\n");
    n = rl_bypass_list(g_rl, RL_BYPASS_USER, buf, sizeof buf);
    cr_expect_str_eq(buf, "ops-admin\n");
    cr_assert_eq(rl_bypass_remove(g_rl, RL_BYPASS_IP, "198.51.100.0/24"), 0, "%s", rl_errmsg());
    d = check_at(other, &r, at_ms(0));
    cr_expect(!d.bypassed && !d.allowed, "removed: limited again");
    cr_expect_eq(rl_bypass_remove(g_rl, RL_BYPASS_IP, "198.51.100.0/24"), -ENOENT);
    cr_expect(strstr(rl_errmsg(), "not on the bypass list") != NULL, "%s", rl_errmsg());
    cr_expect_eq(rl_bypass_add(g_rl, RL_BYPASS_IP, "not-an-address"), -EINVAL);
    cr_expect(strstr(rl_errmsg(), "not-an-address") != NULL, "%s", rl_errmsg());
    cr_expect_eq(rl_bypass_add(g_rl, (rl_bypass_kind)7, "x"), -EINVAL);
    cr_expect_eq(rl_bypass_add(g_rl, RL_BYPASS_USER, ""), -EINVAL);
    cr_expect_eq(rl_bypass_list(g_rl, RL_BYPASS_IP, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "", "the list is empty again");
    rl_close(&other);
}

/* rl_explain answers like rl_check but takes nothing, counts nothing and names the keys. */
Test(rules, explain_takes_and_counts_nothing)
{
    must_load(g_rl, "version: 1\n"
                    "endpoints:\n"
                    "  - pattern: \"GET:/api/*\"\n"
                    "    limits:\n"
                    "      - {name: ip, requests: 3, window: 60s, scope: per_ip}\n"
                    "      - {name: user, requests: 5, window: 60s, scope: per_user}\n");
    rl_request r = req("GET", "/api/x", "192.0.2.77", "alice", NULL);
    rl_decision d;
    cr_assert_eq(rl_check(g_rl, &r, &d), 0); /* the segment's clock, as rl_explain uses */
    cr_assert(d.allowed);
    rl_stats_info before, after;
    cr_assert_eq(rl_stats(g_rl, &before), 0);
    char keys[1024];
    for (int i = 0; i < 10; i++)
        cr_assert_eq(rl_explain(g_rl, &r, &d, keys, sizeof keys), 0, "%s", rl_errmsg());
    cr_assert_eq(rl_stats(g_rl, &after), 0);
    cr_expect_eq(after.checks, before.checks, "explain counted checks");
    cr_expect_eq(after.audit_written, before.audit_written);
    cr_expect(d.allowed);
    cr_assert_eq(d.n, 2);
    cr_expect_eq(d.layers[0].remaining, 2, "one request taken by the check, none by explain");
    cr_expect_eq(d.layers[1].remaining, 4);
    cr_expect_str_eq(d.layers[0].rule, "GET:/api/*");
    cr_expect(strstr(keys, ":192.0.2.77\n") != NULL, "keys: %s", keys);
    cr_expect(strstr(keys, ":u:=alice\n") != NULL, "keys: %s", keys); /* "=": a user, not an IP */
    cr_expect_str_eq(d.endpoint, "GET:/api/*", "the endpoint the check is counted under");
    rl_request other = req("POST", "/api/x", "192.0.2.77", NULL, NULL);
    cr_assert_eq(rl_explain(g_rl, &other, &d, keys, sizeof keys), 0, "%s", rl_errmsg());
    cr_expect_str_eq(d.endpoint, "(default)", "POST matches no rule");
    cr_expect_eq(rl_explain(g_rl, &r, &d, NULL, 0), -EINVAL);
}

Test(rules, shadow_layer_counts_but_never_denies)
{
    must_load(g_rl, "version: 1\n"
                    "defaults:\n"
                    "  - {requests: 2, window: 60s, shadow: true, name: dry}\n"
                    "  - {requests: 5, window: 60s, name: real}\n");
    rl_request r = req("GET", "/x", "192.0.2.50", NULL, NULL);
    cr_assert_eq(send_n(g_rl, &r, 7, at_ms(0)), 5); /* only the real layer denies */
    rl_stats_info s;
    rl_stats(g_rl, &s);
    cr_assert_eq(s.shadow_denied, 5, "requests 3 to 7: the dry layer denied each");
}

Test(rules, disabled_allows_everything_and_counts)
{
    rl_close(&g_rl); /* reopen the fixture's segment with enabled = 0 */
    rl_unlink(g_name);
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.capacity = 4096;
    o.enabled = 0;
    cr_assert_eq(rl_open(&g_rl, &o), 0, "%s", rl_errmsg());
    must_load(g_rl, "version: 1\ndefaults: [{requests: 1, window: 60s}]\n");
    rl_request r = req("GET", "/x", "192.0.2.1", NULL, NULL);
    for (int i = 0; i < 3; i++) {
        rl_decision d = check_at(g_rl, &r, at_ms(0));
        cr_assert(d.allowed && d.disabled);
        cr_assert_eq(d.layers[0].allowed, i == 0, "the layer's own answer is still reported");
    }
    rl_stats_info s;
    rl_stats(g_rl, &s);
    cr_assert_eq(s.shadow_denied, 2);
}

/* ---- scopes ---------------------------------------------------------------------------------- */

Test(rules, scopes)
{
    must_load(g_rl, "version: 1\n"
                    "endpoints:\n"
                    "  - pattern: \"/ep/*\"\n"
                    "    limits: [{requests: 3, window: 60s, scope: per_endpoint}]\n"
                    "  - pattern: \"/path/*\"\n"
                    "    limits: [{requests: 2, window: 60s, scope: per_endpoint, per_path: "
                    "true}]\n"
                    "  - pattern: \"/user/*\"\n"
                    "    limits: [{requests: 2, window: 60s, scope: per_user}]\n"
                    "  - pattern: \"/key/*\"\n"
                    "    limits: [{requests: 2, window: 60s, scope: per_descriptor, "
                    "descriptor: api_key}]\n"
                    "  - pattern: \"/all/*\"\n"
                    "    limits: [{requests: 4, window: 60s, scope: global}]\n");
    /* per_endpoint keys on the pattern: different paths and clients share one counter. */
    rl_request e1 = req("GET", "/ep/a", "192.0.2.1", NULL, NULL);
    rl_request e2 = req("GET", "/ep/b", "192.0.2.2", NULL, NULL);
    cr_assert_eq(send_n(g_rl, &e1, 2, at_ms(0)) + send_n(g_rl, &e2, 2, at_ms(0)), 3);
    /* per_path: each path has its own (bounded) counter. */
    rl_request p1 = req("GET", "/path/a", "192.0.2.1", NULL, NULL);
    rl_request p2 = req("GET", "/path/b", "192.0.2.1", NULL, NULL);
    cr_assert_eq(send_n(g_rl, &p1, 3, at_ms(0)), 2);
    cr_assert_eq(send_n(g_rl, &p2, 3, at_ms(0)), 2);
    /* per_user: a user's requests share a counter across IPs; without a user, the IP is used. */
    rl_request u1 = req("GET", "/user/x", "192.0.2.1", "carol", NULL);
    rl_request u2 = req("GET", "/user/x", "192.0.2.2", "carol", NULL);
    rl_request anon = req("GET", "/user/x", "192.0.2.1", NULL, NULL);
    cr_assert_eq(send_n(g_rl, &u1, 1, at_ms(0)) + send_n(g_rl, &u2, 2, at_ms(0)), 2);
    cr_assert_eq(send_n(g_rl, &anon, 3, at_ms(0)), 2, "anonymous: its IP's own counter");
    /* A user named like an address does not share the address's counter. */
    rl_request tricky = req("GET", "/user/x", "192.0.2.9", "192.0.2.1", NULL);
    cr_assert_eq(send_n(g_rl, &tricky, 2, at_ms(0)), 2);
    /* per_descriptor. */
    rl_descriptor k1 = {"api_key", "k-1"}, k2 = {"api_key", "k-2"};
    rl_request d1 = req("GET", "/key/x", "192.0.2.1", NULL, NULL);
    d1.descriptors = &k1;
    d1.ndescriptors = 1;
    rl_request d2 = d1;
    d2.descriptors = &k2;
    cr_assert_eq(send_n(g_rl, &d1, 3, at_ms(0)), 2);
    cr_assert_eq(send_n(g_rl, &d2, 3, at_ms(0)), 2);
    /* global. */
    rl_request g1 = req("GET", "/all/1", "192.0.2.1", NULL, NULL);
    rl_request g2 = req("GET", "/all/2", "198.51.100.1", "dave", NULL);
    cr_assert_eq(send_n(g_rl, &g1, 3, at_ms(0)) + send_n(g_rl, &g2, 3, at_ms(0)), 4);
}

Test(rules, ipv6_grouping_by_prefix)
{
    must_load(g_rl, "version: 1\nipv6_prefix: 64\ndefaults: [{requests: 2, window: 60s}]\n");
    rl_request a = req("GET", "/x", "2001:db8:1:2::1", NULL, NULL);
    rl_request b = req("GET", "/x", "2001:db8:1:2:ffff::9", NULL, NULL); /* same /64 */
    rl_request c = req("GET", "/x", "2001:db8:1:3::1", NULL, NULL);      /* another /64 */
    cr_assert_eq(send_n(g_rl, &a, 1, at_ms(0)) + send_n(g_rl, &b, 2, at_ms(0)), 2);
    cr_assert_eq(send_n(g_rl, &c, 2, at_ms(0)), 2);
}

Test(rules, warning_threshold)
{
    must_load(g_rl, "version: 1\nwarn_threshold: 0.5\ndefaults: [{requests: 4, window: 60s}]\n");
    rl_request r = req("GET", "/x", "192.0.2.77", NULL, NULL);
    /* used after each request: 1, 2, 3, 4 of 4: flagged from 2 (50 %) on. */
    bool expect[] = {false, true, true, true};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(check_at(g_rl, &r, at_ms(0)).layers[0].warning, expect[i], "request %d", i);
    rl_stats_info s;
    rl_stats(g_rl, &s);
    cr_assert_eq(s.warnings, 3);
}

Test(rules, table_full_on_full_policy)
{
    rl_close(&g_rl);
    g_rl = test_open(test_track_new(), 16); /* 19 slots */
    must_load(g_rl, "version: 1\n"
                    "endpoints:\n"
                    "  - {pattern: \"/open\", limits: [{requests: 5, window: 1h}]}\n"
                    "  - {pattern: \"/closed\", limits: [{requests: 5, window: 1h, on_full: "
                    "closed}]}\n");
    char ip[32];
    unsigned full_open = 0, full_closed = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(ip, sizeof ip, "192.0.2.%d", i + 1);
        rl_request o = req("GET", "/open", ip, NULL, NULL);
        rl_decision d = check_at(g_rl, &o, at_ms(0));
        if (d.layers[0].table_full) {
            cr_assert(d.allowed, "on_full open allows");
            full_open++;
        }
        rl_request c = req("GET", "/closed", ip, NULL, NULL);
        d = check_at(g_rl, &c, at_ms(0));
        if (d.layers[0].table_full) {
            cr_assert(!d.allowed, "on_full closed denies");
            full_closed++;
        }
    }
    cr_assert_gt(full_open, 0);
    cr_assert_gt(full_closed, 0);
    rl_stats_info s;
    rl_stats(g_rl, &s);
    cr_assert_eq(s.table_full_open, full_open);
    cr_assert_eq(s.table_full_closed, full_closed);
}

/* ---- audit ----------------------------------------------------------------------------------- */

Test(rules, audit_records_denials)
{
    must_load(g_rl, "version: 1\ndefaults: [{requests: 1, window: 60s}]\n");
    rl_request r = req("GET", "/x", "192.0.2.33", NULL, NULL);
    send_n(g_rl, &r, 4, at_ms(5)); /* 1 allowed, 3 denied */
    rl_audit_record rec[8];
    uint64_t cursor = 0;
    int n = rl_audit_read(g_rl, &cursor, rec, 8);
    cr_assert_eq(n, 3, "three denials recorded, got %d", n);
    for (int i = 0; i < n; i++) {
        cr_assert(!rec[i].allowed);
        cr_assert_eq(rec[i].pid, getpid());
        cr_assert_eq(rec[i].time_ns, at_ms(5));
        cr_assert_eq(rec[i].limit, 1);
        cr_assert(strstr(rec[i].key, ":i:192.0.2.33") != NULL, "key %s", rec[i].key);
    }
    cr_assert_eq(rl_audit_read(g_rl, &cursor, rec, 8), 0, "nothing new");
}

/* ---- reloads while others check -------------------------------------------------------------- */

static atomic_bool g_stop;
static atomic_ulong g_checks;

static void *checker(void *arg)
{
    (void)arg;
    rl_request r = req("GET", "/api/users", "192.0.2.200", "u", NULL);
    while (!atomic_load(&g_stop)) {
        rl_decision d;
        int rc = rl_check(g_rl, &r, &d);
        if (rc != 0 || d.n == 0 || d.layers[0].limit == 0)
            abort(); /* a check saw a half-built rule set */
        atomic_fetch_add(&g_checks, 1);
    }
    return NULL;
}

Test(rules, reload_while_threads_and_a_process_check)
{
    const char *a = "version: 1\ndefaults: [{requests: 1000000, window: 1s}]\n";
    const char *b = "version: 1\ndefaults: [{requests: 2000000, window: 1s}]\n";
    must_load(g_rl, a);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) { /* a second process checking through the same segment */
        rl_t *rl2 = test_open(g_name, 4096);
        rl_request r = req("GET", "/x", "192.0.2.201", NULL, NULL);
        for (int i = 0; i < 20000; i++) {
            rl_decision d;
            if (rl_check(rl2, &r, &d) != 0 || d.n != 1)
                _exit(2);
            uint64_t lim = d.layers[0].limit;
            if (lim != 1000000 && lim != 2000000)
                _exit(3);
        }
        rl_close(&rl2);
        _exit(0);
    }
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, checker, NULL);
    /* Interleave: each reload waits until the checkers made progress with the previous rules. */
    for (int i = 0; i < 40; i++) {
        unsigned long seen = atomic_load(&g_checks);
        while (atomic_load(&g_checks) < seen + 50)
            sched_yield();
        must_load(g_rl, i % 2 ? a : b);
    }
    atomic_store(&g_stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    int status = 0;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    cr_assert_gt(atomic_load(&g_checks), 0);
    /* The last load (i = 39: a) is what everybody sees now. */
    rl_request r = req("GET", "/x", "192.0.2.202", NULL, NULL);
    rl_decision d = check_at(g_rl, &r, at_ms(0));
    cr_assert_eq(d.layers[0].limit, 1000000);
    rl_stats_info s;
    rl_stats(g_rl, &s);
    cr_assert_eq(d.config_generation, s.config_generation);
    /* Every check of the three threads, the other process and the last one was counted once,
     * whatever stripe each landed on and across 40 reloads. */
    cr_assert_eq(s.checks, atomic_load(&g_checks) + 20000 + 1, "%" PRIu64 " checks counted of %lu",
                 s.checks, atomic_load(&g_checks) + 20000 + 1);
    cr_assert_eq(s.allowed + s.denied, s.checks);
}

Test(rules, configure_endpoint_is_seen_by_another_process)
{
    must_load(g_rl, "version: 1\n");
    rl_request r = req("GET", "/new", "192.0.2.1", NULL, NULL);
    cr_assert_eq(check_at(g_rl, &r, at_ms(0)).n, 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        rl_t *rl2 = test_open(g_name, 4096);
        rl_limit l = mk_limit(RL_FIXED_WINDOW, 7, 60 * MS_S, 0);
        int rc = rl_configure_endpoint(rl2, "/new", &l, 1);
        rl_close(&rl2);
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rl_decision d = check_at(g_rl, &r, at_ms(0));
    cr_assert_eq(d.n, 1);
    cr_assert_eq(d.layers[0].limit, 7);
    cr_assert_eq(d.layers[0].algorithm, RL_FIXED_WINDOW);
    /* The dump is YAML that loads again. */
    char buf[8192];
    long n = rl_config_dump(g_rl, buf, sizeof buf);
    cr_assert_gt(n, 0);
    cr_assert(strstr(buf, "/new") != NULL, "%s", buf);
}

Test(rules, counters_survive_a_reload_of_unchanged_rules)
{
    const char *y = "version: 1\n"
                    "endpoints:\n"
                    "  - {pattern: \"/keep\", limits: [{requests: 3, window: 1h}]}\n"
                    "  - {pattern: \"/change\", limits: [{requests: 3, window: 1h}]}\n";
    must_load(g_rl, y);
    rl_request k = req("GET", "/keep", "192.0.2.1", NULL, NULL);
    rl_request c = req("GET", "/change", "192.0.2.1", NULL, NULL);
    cr_assert_eq(send_n(g_rl, &k, 3, at_ms(0)), 3);
    cr_assert_eq(send_n(g_rl, &c, 3, at_ms(0)), 3);
    must_load(g_rl, "version: 1\n"
                    "endpoints:\n"
                    "  - {pattern: \"/keep\", limits: [{requests: 3, window: 1h}]}\n"
                    "  - {pattern: \"/change\", limits: [{requests: 4, window: 1h}]}\n");
    cr_assert_eq(send_n(g_rl, &k, 1, at_ms(0)), 0, "/keep kept its counter");
    cr_assert_eq(send_n(g_rl, &c, 5, at_ms(0)), 4, "/change's limit changed: a fresh counter");
}

/* ---- endpoint counters ----------------------------------------------------------------------- */

static const rl_endpoint_stats *ep_find(const rl_endpoint_stats *e, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(e[i].endpoint, name) == 0)
            return &e[i];
    return NULL;
}

/* Decisions are counted per endpoint (rule pattern, "(default)"), by every process, and the
 * totals of rl_stats are their sums; counts outlive a reload, also of a removed rule. */
Test(rules, endpoint_counters)
{
    must_load(g_rl, "version: 1\n"
                    "defaults: [{requests: 2, window: 1h}]\n"
                    "endpoints:\n"
                    "  - {pattern: \"POST:/auth/login\", limits: [{requests: 3, window: 1h}]}\n"
                    "  - {pattern: \"/api/*\", limits: [{requests: 5, window: 1h}]}\n"
                    "bypass: {users: [ops]}\n");
    rl_request login = req("POST", "/auth/login", "192.0.2.1", NULL, NULL);
    rl_request api = req("GET", "/api/users?x=1", "192.0.2.1", NULL, NULL);
    rl_request other = req("GET", "/", "192.0.2.1", NULL, NULL);
    rl_request ops = req("GET", "/", "192.0.2.1", "ops", NULL);
    cr_assert_eq(send_n(g_rl, &login, 5, at_ms(0)), 3);
    cr_assert_eq(send_n(g_rl, &other, 4, at_ms(0)), 2);
    cr_assert_eq(send_n(g_rl, &ops, 2, at_ms(0)), 2);
    pid_t child = fork(); /* another worker: 7 API requests, 5 allowed */
    cr_assert_geq(child, 0);
    if (child == 0) {
        rl_t *rl2 = test_open(g_name, 4096);
        unsigned ok = send_n(rl2, &api, 7, at_ms(0));
        rl_close(&rl2);
        _exit(ok == 5 ? 0 : 1);
    }
    int status = 0;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    rl_endpoint_stats e[8];
    int n = rl_stats_endpoints(g_rl, e, 8);
    cr_assert_eq(n, 3, "endpoints: %d", n);
    const rl_endpoint_stats *l = ep_find(e, n, "POST:/auth/login");
    const rl_endpoint_stats *a = ep_find(e, n, "/api/*");
    const rl_endpoint_stats *d = ep_find(e, n, "(default)");
    cr_assert(l && a && d);
    cr_assert_eq(l->allowed, 3);
    cr_assert_eq(l->denied, 2);
    cr_assert_eq(a->allowed, 5);
    cr_assert_eq(a->denied, 2);
    cr_assert_eq(d->allowed, 2);
    cr_assert_eq(d->denied, 2);
    rl_stats_info s;
    cr_assert_eq(rl_stats(g_rl, &s), 0);
    cr_assert_eq(s.allowed, 3 + 5 + 2 + 2, "the bypassed are allowed too");
    cr_assert_eq(s.denied, 2 + 2 + 2);
    cr_assert_eq(s.checks, s.allowed + s.denied);
    cr_assert_eq(s.bypassed, 2);
    /* A short array: the count says how many there are. */
    cr_assert_eq(rl_stats_endpoints(g_rl, e, 1), 3);
    cr_assert_eq(rl_stats_endpoints(g_rl, NULL, 0), 3);
    cr_assert_eq(rl_stats_endpoints(g_rl, NULL, 1), -EINVAL);
    cr_assert_eq(rl_stats_endpoints(NULL, e, 1), -EINVAL);

    /* A reload without the login rule: its counts stay; the API's go on. */
    must_load(g_rl, "version: 1\n"
                    "endpoints:\n"
                    "  - {pattern: \"/api/*\", limits: [{requests: 50, window: 1h}]}\n");
    cr_assert_eq(send_n(g_rl, &api, 1, at_ms(0)), 1);
    n = rl_stats_endpoints(g_rl, e, 8);
    cr_assert_eq(n, 3);
    cr_assert_eq(ep_find(e, n, "POST:/auth/login")->allowed, 3);
    cr_assert_eq(ep_find(e, n, "/api/*")->allowed, 6);
}

/* Beyond 255 endpoints the directory is full: the rest are counted as "(other)", with a
 * warning; nothing is lost. */
Test(rules, endpoint_directory_full_counts_other)
{
    enum { RULES = 300 };
    size_t cap = 64 * 1024, len = 0;
    char *y = malloc(cap);
    cr_assert(y);
    len += (size_t)snprintf(y + len, cap - len, "version: 1\nendpoints:\n");
    for (int i = 0; i < RULES; i++)
        len +=
            (size_t)snprintf(y + len, cap - len,
                             "  - {pattern: \"/e%d\", limits: [{requests: 1, window: 1h}]}\n", i);
    cr_assert_lt(len, cap);
    must_load(g_rl, y);
    free(y);
    for (int i = 0; i < RULES; i++) {
        char path[16];
        snprintf(path, sizeof path, "/e%d", i);
        rl_request r = req("GET", path, "192.0.2.1", NULL, NULL);
        cr_assert_eq(send_n(g_rl, &r, 2, at_ms(0)), 1);
    }
    rl_endpoint_stats e[300];
    int n = rl_stats_endpoints(g_rl, e, 300);
    /* 255 named records: the 300 rules take 254 or 255 of them (with "(default)"), and
     * "(other)" has the rest. */
    cr_assert_leq(n, 256, "%d", n);
    const rl_endpoint_stats *o = ep_find(e, n, "(other)");
    cr_assert(o, "no (other) among %d endpoints", n);
    uint64_t allowed = 0, denied = 0;
    for (int i = 0; i < n; i++) {
        allowed += e[i].allowed;
        denied += e[i].denied;
    }
    cr_assert_eq(allowed, RULES);
    cr_assert_eq(denied, RULES);
    cr_assert_geq(o->allowed, RULES - 255);
}

/* metrics_retention_days outside 1..3650 is refused (0 would expire every rollup at once). */
Test(rules, retention_days_validated)
{
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    rl_t *h = NULL;
    o.metrics_retention_days = 0;
    cr_expect_eq(rl_open(&h, &o), -EINVAL);
    cr_expect(strstr(rl_errmsg(), "metrics_retention_days") != NULL, "%s", rl_errmsg());
    o.metrics_retention_days = 3651;
    cr_expect_eq(rl_open(&h, &o), -EINVAL);
    o.metrics_retention_days = 3650;
    cr_assert_eq(rl_open(&h, &o), 0, "%s", rl_errmsg());
    rl_close(&h);
}

/* RL_OPEN_NO_STATS: that handle's checks decide as usual and count nothing. */
Test(rules, no_stats_handle_counts_nothing)
{
    must_load(g_rl, "version: 1\ndefaults: [{requests: 1, window: 1h}]\n");
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.flags = RL_OPEN_NO_STATS;
    rl_t *quiet = NULL;
    cr_assert_eq(rl_open(&quiet, &o), 0, "%s", rl_errmsg());
    rl_request r = req("GET", "/", "192.0.2.1", NULL, NULL);
    cr_assert_eq(send_n(quiet, &r, 3, at_ms(0)), 1, "it still limits");
    cr_assert_eq(send_n(g_rl, &r, 1, at_ms(0)), 0, "and shares the counters of the limits");
    rl_stats_info s;
    rl_stats(g_rl, &s);
    cr_assert_eq(s.checks, 1, "only the counting handle's check");
    cr_assert_eq(s.denied, 1);
    rl_close(&quiet);
}

/* ---- errors ---------------------------------------------------------------------------------- */

Test(rules, bad_arguments)
{
    rl_decision d;
    rl_request r = req("GET", "/x", "192.0.2.1", NULL, NULL);
    cr_assert_eq(rl_check(NULL, &r, &d), -EINVAL);
    cr_assert_eq(rl_check(g_rl, NULL, &d), -EINVAL);
    cr_assert_eq(rl_check(g_rl, &r, NULL), -EINVAL);
    rl_request nopath = req("GET", NULL, "192.0.2.1", NULL, NULL);
    cr_assert_eq(rl_check(g_rl, &nopath, &d), -EINVAL);
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 1, 1000, 0);
    cr_assert_eq(rl_configure_endpoint(g_rl, "no-slash", &l, 1), -EINVAL);
    cr_assert(strstr(rl_errmsg(), "must start with") != NULL, "%s", rl_errmsg());
    cr_assert_eq(rl_configure_endpoint(g_rl, "post:/x", &l, 1), -EINVAL);
    rl_limit bad = mk_limit(RL_TOKEN_BUCKET, 0, 1000, 0);
    cr_assert_lt(rl_configure_endpoint(g_rl, "/x", &bad, 1), 0);
    cr_assert_eq(rl_load_config(g_rl, "/nonexistent/rl.yaml"), -ENOENT);
    cr_assert(strstr(rl_errmsg(), "/nonexistent/rl.yaml") != NULL, "%s", rl_errmsg());
    /* A failed load changes nothing. */
    must_load(g_rl, "version: 1\ndefaults: [{requests: 9, window: 60s}]\n");
    cr_assert_lt(load_yaml(g_rl, "version: 1\ndefaults: [{requests: x}]\n"), 0);
    cr_assert_eq(check_at(g_rl, &r, at_ms(0)).layers[0].limit, 9);
}

/* A STRICT layer through the API: built with Redis it is kept and, the handle having no Redis
 * URL, counted locally; built without Redis it is refused and the rule set stays as it was. */
Test(rules, remote_mode_through_the_api)
{
    must_load(g_rl, "version: 1\ndefaults: [{requests: 9, window: 60s}]\n");
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 2, 60000, 0);
    l.mode = RL_MODE_STRICT;
    int rc = rl_configure_endpoint(g_rl, "/remote", &l, 1);
    rl_request r = req("GET", "/remote", "192.0.2.7", NULL, NULL);
#if defined(RL_WITH_REDIS) && !RL_WITH_REDIS
    cr_assert_eq(rc, -EINVAL);
    cr_assert_str_eq(rl_errmsg(),
                     "rl_configure_endpoint: endpoint '/remote', layer 0: mode strict needs Redis, "
                     "but this library was built without Redis (meson -Dredis=enabled): use mode "
                     "local");
    cr_assert_eq(check_at(g_rl, &r, at_ms(0)).layers[0].limit, 9, "the defaults still apply");
#else
    cr_assert_eq(rc, 0, "%s", rl_errmsg());
    rl_decision d = check_at(g_rl, &r, at_ms(0));
    cr_assert_eq(d.n, 1);
    cr_assert_eq(d.layers[0].mode, RL_MODE_STRICT);
    cr_assert_eq(d.layers[0].limit, 2);
    cr_assert(check_at(g_rl, &r, at_ms(1)).allowed);
    cr_assert(!check_at(g_rl, &r, at_ms(2)).allowed, "2 per minute, counted locally");
#endif
}

/* ---- environment ----------------------------------------------------------------------------- */

Test(rules, options_from_env)
{
    static const struct {
        const char *var, *value;
        int rc;
        const char *msg; /* substring of rl_errmsg() on error */
    } cases[] = {
        {"RATE_LIMITING_ENABLED", "false", 0, NULL},
        {"RATE_LIMITING_ENABLED", "maybe", -EINVAL, "RATE_LIMITING_ENABLED"},
        {"ENVIRONMENT", "staging", 0, NULL},
        {"ENVIRONMENT", "prod", -EINVAL, "ENVIRONMENT"},
        {"REDIS_POOL_SIZE", "20", 0, NULL},
        {"REDIS_POOL_SIZE", "0", -EINVAL, "REDIS_POOL_SIZE"},
        {"REDIS_POOL_SIZE", "12abc", -EINVAL, "REDIS_POOL_SIZE"},
        {"METRICS_RETENTION_DAYS", "7", 0, NULL},
        {"METRICS_RETENTION_DAYS", "-1", -EINVAL, "METRICS_RETENTION_DAYS"},
        {"ENABLE_RATE_LIMIT_MONITORING", "true", 0, NULL},
        {"RL_SHM", "/rl-env-test", 0, NULL},
        {"RL_SHM", "no slash", -EINVAL, "RL_SHM"},
        {"RL_SYNC_INTERVAL_MS", "50", 0, NULL},
        {"RL_SYNC_INTERVAL_MS", "0", -EINVAL, "RL_SYNC_INTERVAL_MS"},
        {"RL_SYNC_INTERVAL_MS", "60001", -EINVAL, "RL_SYNC_INTERVAL_MS"},
        {"RL_FALLBACK", "open", 0, NULL},
        {"RL_FALLBACK", "CLOSED", 0, NULL},
        {"RL_FALLBACK", "fail-open", -EINVAL, "RL_FALLBACK"},
        {"RL_CLUSTER_HOSTS", "4", 0, NULL},
        {"RL_CLUSTER_HOSTS", "0", -EINVAL, "RL_CLUSTER_HOSTS"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv(cases[i].var, cases[i].value, 1);
        rl_options o;
        rl_options_init(&o);
        int rc = rl_options_from_env(&o);
        cr_expect_eq(rc, cases[i].rc, "%s=%s: %d", cases[i].var, cases[i].value, rc);
        if (cases[i].msg)
            cr_expect(strstr(rl_errmsg(), cases[i].msg) != NULL, "%s=%s: message \"%s\"",
                      cases[i].var, cases[i].value, rl_errmsg());
        unsetenv(cases[i].var);
    }
    setenv("RATE_LIMITING_ENABLED", "0", 1);
    setenv("REDIS_POOL_SIZE", "33", 1);
    setenv("RL_CONFIG", "/etc/rl.yaml", 1);
    setenv("RL_SYNC_INTERVAL_MS", "25", 1);
    setenv("RL_FALLBACK", "closed", 1);
    setenv("RL_CLUSTER_HOSTS", "3", 1);
    rl_options o;
    rl_options_init(&o);
    cr_assert_eq(o.sync_interval_ms, 0, "0: the configuration's, else 100");
    cr_assert_eq(o.fallback, RL_FALLBACK_DEFAULT);
    cr_assert_eq(o.enabled, 1);
    cr_assert_eq(o.redis_pool_size, 20);
    cr_assert_eq(o.metrics_retention_days, 7);
    cr_assert_eq(rl_options_from_env(&o), 0);
    cr_assert_eq(o.enabled, 0);
    cr_assert_eq(o.redis_pool_size, 33);
    cr_assert_str_eq(o.config_path, "/etc/rl.yaml");
    cr_assert_eq(o.sync_interval_ms, 25);
    cr_assert_eq(o.fallback, RL_FALLBACK_CLOSED);
    cr_assert_eq(o.cluster_hosts, 3);
    unsetenv("RL_SYNC_INTERVAL_MS");
    unsetenv("RL_FALLBACK");
    unsetenv("RL_CLUSTER_HOSTS");
}

/* ---- presets and the debug log --------------------------------------------------------------- */

static char g_logged[4096];

static void capture(rl_log_level level, const char *msg, void *arg)
{
    (void)arg;
    size_t n = strlen(g_logged);
    snprintf(g_logged + n, sizeof g_logged - n, "%d|%s\n", (int)level, msg);
}

Test(rules, environment_preset_and_log)
{
    rl_set_log(capture, NULL, RL_LOG_INFO);
    rl_options o;
    rl_options_init(&o);
    o.shm_name = test_track_new();
    o.capacity = 4096;
    o.environment = "development"; /* the production rules with 10x the limits */
    rl_t *dev = NULL;
    cr_assert_eq(rl_open(&dev, &o), 0, "%s", rl_errmsg());
    rl_set_log(NULL, NULL, RL_LOG_ERROR);
    cr_assert(strstr(g_logged, "attached") != NULL, "log: %s", g_logged);
    cr_assert(strstr(g_logged, "published rule set generation 1") != NULL, "log: %s", g_logged);
    rl_request r = req("POST", "/auth/login", "203.0.113.1", NULL, NULL);
    rl_decision d = check_at(dev, &r, at_ms(0));
    cr_assert_eq(d.layers[0].limit, 50, "development: 10 x the seed's 5 per 300 s");
    rl_close(&dev);
    /* An unknown environment is refused with a message naming the choices. */
    o.shm_name = test_track_new();
    o.environment = "qa";
    cr_assert_eq(rl_open(&dev, &o), -EINVAL);
    cr_assert(strstr(rl_errmsg(), "development, staging or production") != NULL, "%s", rl_errmsg());
}

Test(rules, user_endpoint_scope_from_global_layer)
{
    must_load(g_rl, "version: 1\n"
                    "global: [{requests: 2, window: 60s, scope: per_user_endpoint}]\n"
                    "endpoints:\n"
                    "  - {pattern: \"/a/*\", limits: []}\n"
                    "  - {pattern: \"/b/*\", limits: []}\n");
    /* One counter per (user, matched endpoint rule): /a/1 and /a/2 share one, /b/1 has its own,
     * and another user has their own. */
    rl_request a1 = req("GET", "/a/1", "192.0.2.1", "uma", NULL);
    rl_request a2 = req("GET", "/a/2", "192.0.2.1", "uma", NULL);
    rl_request b1 = req("GET", "/b/1", "192.0.2.1", "uma", NULL);
    rl_request other = req("GET", "/a/1", "192.0.2.1", "ursula", NULL);
    cr_assert_eq(send_n(g_rl, &a1, 1, at_ms(0)) + send_n(g_rl, &a2, 2, at_ms(0)), 2);
    cr_assert_eq(send_n(g_rl, &b1, 3, at_ms(0)), 2);
    cr_assert_eq(send_n(g_rl, &other, 3, at_ms(0)), 2);
}
