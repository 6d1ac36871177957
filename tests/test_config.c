/*
 * The YAML rule file (lib/config_*.c): the three shipped examples (which are the environment
 * presets), the seed's PRODUCTION_CONFIG and user tiers number by number, the canonical form
 * (parse(emit(x)) == x field by field), a table of bad configurations with their exact
 * messages, files (missing, unreadable, too large), what a build without Redis refuses, and rule
 * sets built through the API.
 *
 * Runs with the working directory tests/ (meson workdir): the examples are
 * "../examples/NAME.yaml" and the fixtures "configs/NAME.yaml".
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "rl_test.h"
#include "rules.h"

TestSuite(config);

/* A library built without Redis (meson -Dredis=disabled) defines RL_WITH_REDIS to 0. */
#if defined(RL_WITH_REDIS) && !RL_WITH_REDIS
#define NO_REDIS 1
#else
#define NO_REDIS 0
#endif

#define MS_5MIN (5 * MS_MIN)

/* ---- helpers --------------------------------------------------------------------------------- */

#if NO_REDIS
/* Built without Redis a rule file with STRICT or GLOBAL layers is refused (the examples have
 * them: see no_redis_refuses_remote_modes_in_rule_files), so the examples are read the way
 * their presets are: text parsed as is. */
static int load_file(const char *path, struct rl_ruleset **rs)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return rl__ruleset_parse(text, n, path, rs);
}
#else
static int load_file(const char *path, struct rl_ruleset **rs)
{
    return rl__ruleset_load_file(path, rs);
}
#endif

static struct rl_ruleset *must_load_file(const char *path)
{
    struct rl_ruleset *rs = NULL;
    int rc = load_file(path, &rs);
    cr_assert_eq(rc, 0, "loading %s = %d (%s): %s", path, rc, rl_strerror(rc), rl_errmsg());
    cr_assert_not_null(rs);
    return rs;
}

static struct rl_ruleset *must_parse(const char *yaml)
{
    struct rl_ruleset *rs = NULL;
    int rc = rl__ruleset_parse(yaml, strlen(yaml), "inline", &rs);
    cr_assert_eq(rc, 0, "parse = %d (%s): %s\n%s", rc, rl_strerror(rc), rl_errmsg(), yaml);
    cr_assert_not_null(rs);
    return rs;
}

static char *must_emit(const struct rl_ruleset *rs, size_t *len)
{
    char *text = NULL;
    size_t n = 0;
    int rc = rl__ruleset_emit(rs, &text, &n);
    cr_assert_eq(rc, 0, "emit = %d (%s): %s", rc, rl_strerror(rc), rl_errmsg());
    cr_assert_not_null(text);
    cr_assert_eq(strlen(text), n, "the canonical text is NUL-terminated at its length");
    if (len)
        *len = n;
    return text;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const char *show(const char *s)
{
    return s ? s : "(null)";
}

/* Every field of two layer lists (positions excepted). */
static void expect_layers_eq(const char *what, const struct rl_rule_layer *a, size_t na,
                             const struct rl_rule_layer *b, size_t nb)
{
    cr_expect_eq(na, nb, "%s: %zu layers, then %zu", what, na, nb);
    for (size_t i = 0; i < na && i < nb; i++) {
        const rl_limit *x = &a[i].lim, *y = &b[i].lim;
        cr_expect_eq(x->requests, y->requests, "%s[%zu].requests", what, i);
        cr_expect_eq(x->window_ms, y->window_ms, "%s[%zu].window_ms", what, i);
        cr_expect_eq(x->burst, y->burst, "%s[%zu].burst", what, i);
        cr_expect_eq(x->algorithm, y->algorithm, "%s[%zu].algorithm", what, i);
        cr_expect_eq(x->scope, y->scope, "%s[%zu].scope", what, i);
        cr_expect_eq(x->mode, y->mode, "%s[%zu].mode", what, i);
        cr_expect_eq(x->redis_ttl_ms, y->redis_ttl_ms, "%s[%zu].redis_ttl_ms", what, i);
        cr_expect_eq(x->flags, y->flags, "%s[%zu].flags", what, i);
        cr_expect_eq(x->warn_permille, y->warn_permille, "%s[%zu].warn_permille", what, i);
        cr_expect_eq(y->reserved[0] | y->reserved[1], 0, "%s[%zu].reserved", what, i);
        cr_expect(str_eq(a[i].name, b[i].name), "%s[%zu].name: %s vs %s", what, i, show(a[i].name),
                  show(b[i].name));
        cr_expect(str_eq(a[i].descriptor, b[i].descriptor), "%s[%zu].descriptor: %s vs %s", what, i,
                  show(a[i].descriptor), show(b[i].descriptor));
        /* lim.name and lim.descriptor alias the owned strings */
        cr_expect(y->name == b[i].name, "%s[%zu]: lim.name aliases name", what, i);
        cr_expect(y->descriptor == b[i].descriptor, "%s[%zu]: lim.descriptor aliases", what, i);
    }
}

static void expect_strs_eq(const char *what, char *const *a, size_t na, char *const *b, size_t nb)
{
    cr_expect_eq(na, nb, "%s: %zu entries, then %zu", what, na, nb);
    for (size_t i = 0; i < na && i < nb; i++)
        cr_expect_str_eq(a[i], b[i], "%s[%zu]", what, i);
}

static void expect_ruleset_eq(const struct rl_ruleset *a, const struct rl_ruleset *b)
{
    cr_expect(str_eq(a->environment, b->environment), "environment: %s vs %s", show(a->environment),
              show(b->environment));
    cr_expect(str_eq(a->description, b->description), "description: %s vs %s", show(a->description),
              show(b->description));
    cr_expect_eq(a->warn_permille, b->warn_permille, "warn_permille");
    cr_expect_eq(a->ipv6_prefix, b->ipv6_prefix, "ipv6_prefix");
    cr_expect_eq(a->audit, b->audit, "audit");
    cr_expect(str_eq(a->default_tier, b->default_tier), "default_tier: %s vs %s",
              show(a->default_tier), show(b->default_tier));
    expect_layers_eq("defaults", a->defaults, a->ndefaults, b->defaults, b->ndefaults);
    expect_layers_eq("global", a->globals, a->nglobals, b->globals, b->nglobals);
    cr_expect_eq(a->nrules, b->nrules, "rules: %zu vs %zu", a->nrules, b->nrules);
    for (size_t i = 0; i < a->nrules && i < b->nrules; i++) {
        cr_expect_str_eq(a->rules[i].pattern, b->rules[i].pattern, "rule %zu pattern", i);
        cr_expect(str_eq(a->rules[i].description, b->rules[i].description),
                  "rule %zu description: %s vs %s", i, show(a->rules[i].description),
                  show(b->rules[i].description));
        char what[128];
        snprintf(what, sizeof what, "rule '%s'", a->rules[i].pattern);
        expect_layers_eq(what, a->rules[i].layers, a->rules[i].nlayers, b->rules[i].layers,
                         b->rules[i].nlayers);
    }
    cr_expect_eq(a->ntiers, b->ntiers, "tiers: %zu vs %zu", a->ntiers, b->ntiers);
    for (size_t i = 0; i < a->ntiers && i < b->ntiers; i++) {
        cr_expect_str_eq(a->tiers[i].name, b->tiers[i].name, "tier %zu name", i);
        cr_expect(str_eq(a->tiers[i].description, b->tiers[i].description), "tier %zu description",
                  i);
        char what[128];
        snprintf(what, sizeof what, "tier '%s'", a->tiers[i].name);
        expect_layers_eq(what, a->tiers[i].layers, a->tiers[i].nlayers, b->tiers[i].layers,
                         b->tiers[i].nlayers);
    }
    expect_strs_eq("bypass.ips", a->bypass_ips, a->nbypass_ips, b->bypass_ips, b->nbypass_ips);
    expect_strs_eq("bypass.users", a->bypass_users, a->nbypass_users, b->bypass_users,
                   b->nbypass_users);
    expect_strs_eq("trusted_proxies", a->trusted_proxies, a->ntrusted, b->trusted_proxies,
                   b->ntrusted);
}

/* emit, parse, compare; and the canonical form is a fixed point (emit(parse(emit(x))) is the
 * same text). */
static void expect_round_trip(const struct rl_ruleset *rs)
{
    size_t n1, n2;
    char *t1 = must_emit(rs, &n1);
    struct rl_ruleset *back = NULL;
    int rc = rl__ruleset_parse(t1, n1, "canonical", &back);
    cr_assert_eq(rc, 0, "parsing the canonical form = %d: %s\n%s", rc, rl_errmsg(), t1);
    expect_ruleset_eq(rs, back);
    char *t2 = must_emit(back, &n2);
    cr_expect_str_eq(t1, t2, "the canonical form is stable");
    free(t1);
    free(t2);
    rl__ruleset_free(back);
}

static const struct rl_rule *find_rule(const struct rl_ruleset *rs, const char *pattern)
{
    for (size_t i = 0; i < rs->nrules; i++)
        if (strcmp(rs->rules[i].pattern, pattern) == 0)
            return &rs->rules[i];
    cr_assert_fail("no rule '%s'", pattern);
    return NULL;
}

static const struct rl_tier *find_tier(const struct rl_ruleset *rs, const char *name)
{
    for (size_t i = 0; i < rs->ntiers; i++)
        if (strcmp(rs->tiers[i].name, name) == 0)
            return &rs->tiers[i];
    cr_assert_fail("no tier '%s'", name);
    return NULL;
}

/* ---- the examples ---------------------------------------------------------------------------- */

static const char *const examples[] = {
    "../examples/development.yaml",
    "../examples/staging.yaml",
    "../examples/production.yaml",
};

Test(config, examples_parse_and_validate)
{
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++) {
        /* Without Redis their STRICT and GLOBAL layers are refused in a file (not as presets). */
        cr_expect_eq(rl_check_config_file(examples[i]), NO_REDIS ? -EINVAL : 0, "%s: %s",
                     examples[i], rl_errmsg());
        struct rl_ruleset *rs = must_load_file(examples[i]);
        cr_expect_eq(rl__ruleset_validate(rs, examples[i]), 0, "%s: %s", examples[i], rl_errmsg());
        for (size_t r = 0; r < rs->nrules; r++)
            cr_expect_not_null(rs->rules[r].description, "%s: every rule is described",
                               examples[i]);
        rl__ruleset_free(rs);
    }
}

/* The presets compiled into the library are the example files, byte for byte. */
Test(config, presets_are_the_examples)
{
    static const char *const envs[] = {"development", "staging", "production"};
    for (size_t i = 0; i < 3; i++) {
        FILE *f = fopen(examples[i], "rb");
        cr_assert_not_null(f, "%s", examples[i]);
        static char buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *preset = rl__preset_yaml(envs[i]);
        cr_assert_not_null(preset, "preset %s", envs[i]);
        cr_expect_str_eq(preset, buf, "preset %s is examples/%s.yaml", envs[i], envs[i]);
        struct rl_ruleset *rs = must_parse(preset);
        cr_expect_str_eq(rs->environment, envs[i]);
        rl__ruleset_free(rs);
    }
}

struct want_layer {
    const char *name;
    uint64_t requests, window_ms, burst;
    rl_algorithm algorithm;
    rl_scope scope;
    rl_mode mode; /* LOCAL unless given */
};

static void expect_layers(const char *what, const struct rl_rule_layer *ls, size_t n,
                          const struct want_layer *w, size_t nw, uint64_t factor)
{
    cr_expect_eq(n, nw, "%s: %zu layers, expected %zu", what, n, nw);
    for (size_t i = 0; i < n && i < nw; i++) {
        const rl_limit *l = &ls[i].lim;
        cr_expect_str_eq(ls[i].name, w[i].name, "%s[%zu].name", what, i);
        cr_expect_eq(l->requests, w[i].requests * factor, "%s[%zu].requests %" PRIu64, what, i,
                     l->requests);
        cr_expect_eq(l->window_ms, w[i].window_ms, "%s[%zu].window_ms %" PRIu64, what, i,
                     l->window_ms);
        cr_expect_eq(l->burst, w[i].burst * factor, "%s[%zu].burst %" PRIu64, what, i, l->burst);
        cr_expect_eq(l->algorithm, w[i].algorithm, "%s[%zu].algorithm", what, i);
        cr_expect_eq(l->scope, w[i].scope, "%s[%zu].scope", what, i);
        cr_expect_eq(l->mode, w[i].mode, "%s[%zu].mode %d", what, i, (int)l->mode);
        cr_expect_eq(l->flags, 0, "%s[%zu].flags", what, i);
        cr_expect_eq(l->warn_permille, 0, "%s[%zu]: the rule set's threshold", what, i);
        cr_expect_null(ls[i].descriptor, "%s[%zu].descriptor", what, i);
    }
}

/* The seed's PRODUCTION_CONFIG and UserTierConfig, with the windows in ms. */
static const struct want_layer w_login[] = {
    {"burst", 5, 300 * MS_S, 0, RL_FIXED_WINDOW, RL_SCOPE_IP, RL_MODE_STRICT},
    {"hourly", 10, 3600 * MS_S, 0, RL_SLIDING_WINDOW, RL_SCOPE_IP, RL_MODE_STRICT},
};
static const struct want_layer w_api[] = {
    {"user-hourly", 1000, 3600 * MS_S, 0, RL_SLIDING_WINDOW, RL_SCOPE_USER, RL_MODE_LOCAL},
    {"ip-burst", 100, 60 * MS_S, 150, RL_TOKEN_BUCKET, RL_SCOPE_IP, RL_MODE_LOCAL},
    {"service", 10000, 60 * MS_S, 0, RL_TOKEN_BUCKET, RL_SCOPE_GLOBAL, RL_MODE_GLOBAL},
};
static const struct want_layer w_upload[] = {
    {"ip-5min", 10, 300 * MS_S, 0, RL_FIXED_WINDOW, RL_SCOPE_IP, RL_MODE_LOCAL},
    {"user-hourly", 50, 3600 * MS_S, 0, RL_SLIDING_WINDOW, RL_SCOPE_USER, RL_MODE_LOCAL},
};
/* free: 100 per hour, 10 per minute; premium: 1000 per hour, 50 per minute with burst to 100;
 * enterprise: 10,000 per hour, 200 per minute with burst to 500. */
static const struct want_layer w_free[] = {
    {"hourly", 100, MS_HOUR, 0, RL_SLIDING_WINDOW, RL_SCOPE_USER, RL_MODE_LOCAL},
    {"minute", 10, MS_MIN, 0, RL_TOKEN_BUCKET, RL_SCOPE_USER, RL_MODE_LOCAL},
};
static const struct want_layer w_premium[] = {
    {"hourly", 1000, MS_HOUR, 0, RL_SLIDING_WINDOW, RL_SCOPE_USER, RL_MODE_LOCAL},
    {"minute", 50, MS_MIN, 100, RL_TOKEN_BUCKET, RL_SCOPE_USER, RL_MODE_LOCAL},
};
static const struct want_layer w_enterprise[] = {
    {"hourly", 10000, MS_HOUR, 0, RL_SLIDING_WINDOW, RL_SCOPE_USER, RL_MODE_LOCAL},
    {"minute", 200, MS_MIN, 500, RL_TOKEN_BUCKET, RL_SCOPE_USER, RL_MODE_LOCAL},
};
static const struct want_layer w_defaults[] = {
    {"per-ip", 600, MS_MIN, 0, RL_SLIDING_WINDOW, RL_SCOPE_IP, RL_MODE_LOCAL},
};

#define N(a) (sizeof(a) / sizeof *(a))

/* factor: development has every number (requests, burst) ten times production's. */
static void expect_seed_rules(const struct rl_ruleset *rs, uint64_t factor)
{
    cr_expect_eq(rs->nrules, 3);
    cr_expect_str_eq(rs->rules[0].pattern, "POST:/auth/login");
    cr_expect_str_eq(rs->rules[1].pattern, "*/api/*");
    cr_expect_str_eq(rs->rules[2].pattern, "POST:/upload/*");
    const struct rl_rule *r = find_rule(rs, "POST:/auth/login");
    expect_layers("POST:/auth/login", r->layers, r->nlayers, w_login, N(w_login), factor);
    r = find_rule(rs, "*/api/*");
    expect_layers("*/api/*", r->layers, r->nlayers, w_api, N(w_api), factor);
    r = find_rule(rs, "POST:/upload/*");
    expect_layers("POST:/upload/*", r->layers, r->nlayers, w_upload, N(w_upload), factor);
    cr_expect_eq(rs->ntiers, 3);
    const struct rl_tier *t = find_tier(rs, "free");
    expect_layers("free", t->layers, t->nlayers, w_free, N(w_free), factor);
    t = find_tier(rs, "premium");
    expect_layers("premium", t->layers, t->nlayers, w_premium, N(w_premium), factor);
    t = find_tier(rs, "enterprise");
    expect_layers("enterprise", t->layers, t->nlayers, w_enterprise, N(w_enterprise), factor);
    expect_layers("defaults", rs->defaults, rs->ndefaults, w_defaults, N(w_defaults), factor);
    cr_expect_eq(rs->nglobals, 0);
    cr_expect_null(rs->default_tier, "a user without a tier gets the endpoint limits only");
    cr_expect_eq(rs->ipv6_prefix, 64);
    cr_expect_eq(rs->nbypass_ips, 0);
    cr_expect_eq(rs->nbypass_users, 0);
    cr_assert_eq(rs->ntrusted, 2);
    cr_expect_str_eq(rs->trusted_proxies[0], "127.0.0.1");
    cr_expect_str_eq(rs->trusted_proxies[1], "::1");
}

Test(config, production_is_the_seed)
{
    struct rl_ruleset *rs = must_load_file("../examples/production.yaml");
    expect_seed_rules(rs, 1);
    cr_expect_str_eq(rs->environment, "production");
    cr_expect_eq(rs->warn_permille, 800);
    cr_expect_eq(rs->audit, RL_AUDIT_DENIALS);
    for (size_t i = 0; i < rs->nrules; i++)
        cr_expect_not_null(rs->rules[i].description);
    cr_expect_str_eq(find_rule(rs, "POST:/auth/login")->description,
                     "Authentication - very strict");
    rl__ruleset_free(rs);
}

Test(config, staging_has_production_limits)
{
    struct rl_ruleset *rs = must_load_file("../examples/staging.yaml");
    expect_seed_rules(rs, 1);
    cr_expect_str_eq(rs->environment, "staging");
    cr_expect_eq(rs->warn_permille, 500, "staging warns at half");
    cr_expect_eq(rs->audit, RL_AUDIT_ALL, "staging audits every decision");
    rl__ruleset_free(rs);
}

Test(config, development_has_ten_times_the_limits)
{
    struct rl_ruleset *rs = must_load_file("../examples/development.yaml");
    expect_seed_rules(rs, 10);
    cr_expect_str_eq(rs->environment, "development");
    cr_expect_eq(rs->audit, RL_AUDIT_ALL);
    rl__ruleset_free(rs);
}

/* ---- the canonical form ---------------------------------------------------------------------- */

Test(config, examples_round_trip)
{
    for (size_t i = 0; i < N(examples); i++) {
        struct rl_ruleset *rs = must_load_file(examples[i]);
        expect_round_trip(rs);
        rl__ruleset_free(rs);
    }
}

/* Every key, every enum value, the range edges, names that need quoting, empty lists. */
static const char edge_yaml[] =
    "version: 1\n"
    "environment: \"staging \\\"blue\\\"\"\n"
    "description: \"line one\\nline two: with 'quotes', a tab\\t and \\u00fcn\\u00efc\\u00f6de\"\n"
    "warn_threshold: 0\n"
    "ipv6_prefix: 96\n"
    "audit: off\n"
    "default_tier: \"null\"\n"
    "defaults: []\n"
    "global:\n"
    "  - {name: \"123a\", requests: 1000000, window: 1ms, burst: 1099511627776, scope: global}\n"
    "endpoints:\n"
    "  - pattern: /exact\n"
    "    limits: []\n"
    "  - pattern: \"GET:/a?c\"\n"
    "    description: \"\"\n"
    "    limits:\n"
    "      - {name: \"null\", requests: 4194303, window: 3650d, algorithm: sliding_window}\n"
    "      - {name: \"a b: c\", requests: 1, window_ms: 316224000000, algorithm: fixed_window}\n"
    "      - {name: \"#x\", requests: 7, window: 250ms, algorithm: gcra, burst: 3,\n"
    "         scope: per_descriptor, descriptor: \"api key\"}\n"
    "      - {name: true, requests: 2, window: 90, scope: per_endpoint, per_path: true}\n"
    "      - {name: \"-dash\", requests: 3, window: 5m, scope: per_user_endpoint, mode: global,\n"
    "         redis_ttl: 2h}\n"
    "      - {name: \"\\u00fc\", requests: 4, window: 1d, scope: per_user, mode: strict,\n"
    "         redis_ttl: 0}\n"
    "      - {requests: 5, window: 1h, shadow: true, on_full: closed, warn_threshold: 0.001}\n"
    "      - {requests: 6, window: 1h, shadow: false, on_full: open, per_path: false,\n"
    "         warn_threshold: 1}\n"
    "      - {requests: 7, window: 1h, warn_threshold: 0.125, name: ~}\n"
    "  - {pattern: \"*:/x/*\", description: \"any method\", limits: [{requests: 1, window: 1s}]}\n"
    "  - {pattern: \"*\", limits: [{requests: 1, window: 1s}]}\n"
    "tiers:\n"
    "  \"null\": [{requests: 1, window: 1s, scope: per_user}]\n"
    "  empty: []\n"
    "  \"gold tier\":\n"
    "    description: \"multi\\nline\"\n"
    "    limits: [{requests: 9, window: 9s, scope: per_user, name: yes}]\n"
    "bypass: {ips: [\"10.0.0.0/8\", \"::1\", \"2001:db8::/32\", 192.0.2.7], users: [ops-admin, "
    "\"user with space\", \"yes\", \"123\"]}\n"
    "trusted_proxies: [\"127.0.0.1\"]\n";

Test(config, edge_cases_round_trip)
{
    struct rl_ruleset *rs = must_parse(edge_yaml);
    /* Spot checks that the parse is what the text says. */
    cr_expect_str_eq(rs->environment, "staging \"blue\"");
    cr_expect_eq(rs->warn_permille, 0);
    cr_expect_eq(rs->ipv6_prefix, 96);
    cr_expect_eq(rs->audit, RL_AUDIT_OFF);
    cr_expect_str_eq(rs->default_tier, "null");
    cr_expect_eq(rs->ndefaults, 0);
    cr_assert_eq(rs->nglobals, 1);
    cr_expect_eq(rs->globals[0].lim.burst, 1ULL << 40);
    cr_assert_eq(rs->nrules, 4);
    cr_expect_eq(rs->rules[0].nlayers, 0);
    cr_expect_null(rs->rules[0].description);
    cr_expect_str_eq(rs->rules[1].description, "");
    const struct rl_rule_layer *l = rs->rules[1].layers;
    cr_assert_eq(rs->rules[1].nlayers, 9);
    cr_expect_str_eq(l[0].name, "null");
    cr_expect_eq(l[0].lim.window_ms, 3650 * MS_DAY);
    cr_expect_eq(l[1].lim.window_ms, 316224000000ULL);
    cr_expect_eq(l[2].lim.algorithm, RL_GCRA);
    cr_expect_str_eq(l[2].descriptor, "api key");
    cr_expect_str_eq(l[2].lim.descriptor, "api key");
    cr_expect_str_eq(l[3].name, "true");
    cr_expect_eq(l[3].lim.window_ms, 90 * MS_S, "a plain number is seconds");
    cr_expect_eq(l[3].lim.flags, RL_LIMIT_PER_PATH);
    cr_expect_eq(l[4].lim.mode, RL_MODE_GLOBAL);
    cr_expect_eq(l[4].lim.redis_ttl_ms, 2 * MS_HOUR);
    cr_expect_eq(l[5].lim.mode, RL_MODE_STRICT);
    cr_expect_str_eq(l[5].name, "\xc3\xbc");
    cr_expect_eq(l[6].lim.flags, RL_LIMIT_SHADOW | RL_LIMIT_ON_FULL_CLOSED);
    cr_expect_eq(l[6].lim.warn_permille, 1);
    cr_expect_eq(l[7].lim.flags, 0);
    cr_expect_eq(l[7].lim.warn_permille, 1000);
    cr_expect_null(l[8].name, "name: ~ is no name");
    cr_expect_eq(l[8].lim.warn_permille, 125);
    cr_expect_eq(l[8].line, 29);
    cr_expect_eq(l[8].column, 9);
    cr_expect_eq(rs->rules[1].line, 14);
    cr_expect_eq(rs->rules[1].column, 5);
    cr_assert_eq(rs->ntiers, 3);
    cr_expect_str_eq(rs->tiers[0].name, "null");
    cr_expect_eq(rs->tiers[0].line, 33);
    cr_expect_eq(rs->tiers[0].column, 3);
    cr_expect_eq(rs->tiers[1].nlayers, 0);
    cr_expect_str_eq(rs->tiers[2].description, "multi\nline");
    cr_expect_str_eq(rs->tiers[2].layers[0].name, "yes");
    cr_assert_eq(rs->nbypass_users, 4);
    cr_expect_str_eq(rs->bypass_users[2], "yes");
    cr_expect_str_eq(rs->bypass_ips[3], "192.0.2.7");
    expect_round_trip(rs);
    rl__ruleset_free(rs);
}

/* Defaults: an empty rule set is valid, and so is its canonical form. */
Test(config, minimal_rule_set)
{
    struct rl_ruleset *rs = must_parse("version: 1\n");
    cr_expect_eq(rs->warn_permille, 800);
    cr_expect_eq(rs->ipv6_prefix, 128);
    cr_expect_eq(rs->audit, RL_AUDIT_DENIALS);
    cr_expect_eq(rs->nrules + rs->ndefaults + rs->nglobals + rs->ntiers, 0);
    cr_expect_null(rs->environment);
    cr_expect_null(rs->default_tier);
    size_t n;
    char *t = must_emit(rs, &n);
    cr_expect_str_eq(t, "version: 1\n"
                        "warn_threshold: 0.8\n"
                        "ipv6_prefix: 128\n"
                        "audit: denials\n"
                        "defaults: []\n"
                        "global: []\n"
                        "endpoints: []\n"
                        "tiers: {}\n"
                        "bypass:\n"
                        "  ips: []\n"
                        "  users: []\n"
                        "trusted_proxies: []\n");
    free(t);
    expect_round_trip(rs);
    rl__ruleset_free(rs);

    /* Keys without a value are absent keys; anchors and aliases work. */
    rs = must_parse("version: 1\nenvironment:\ndefaults: ~\nglobal:\n"
                    "endpoints:\n"
                    "  - {pattern: /a, limits: [&l {requests: 3, window: 1s, burst: }]}\n"
                    "  - {pattern: /b, limits: [*l]}\n");
    cr_expect_null(rs->environment);
    cr_assert_eq(rs->nrules, 2);
    cr_expect_eq(rs->rules[1].layers[0].lim.requests, 3);
    cr_expect_eq(rs->rules[1].layers[0].lim.burst, 0);
    rl__ruleset_free(rs);
}

Test(config, canonical_layer_text)
{
    struct rl_ruleset *rs =
        must_parse("version: 1\n"
                   "defaults:\n"
                   "  - {warn_threshold: 0.85, shadow: true, on_full: closed, mode: strict,\n"
                   "     redis_ttl: 1m, per_path: true, scope: per_endpoint, burst: 4,\n"
                   "     algorithm: gcra, window: 2s, requests: 2, name: all-of-it}\n");
    char *t = must_emit(rs, NULL);
    cr_expect(strstr(t, "defaults:\n- {name: all-of-it, requests: 2, window: 2000ms, burst: 4, "
                        "algorithm: gcra, scope: per_endpoint, per_path: true, mode: strict, "
                        "redis_ttl: 60000ms, on_full: closed, shadow: true, "
                        "warn_threshold: 0.85}\n") != NULL,
              "%s", t);
    free(t);
    rl__ruleset_free(rs);
}

/* ---- bad configurations ---------------------------------------------------------------------- */

#define LAYER   "{requests: 1, window: 1s}, "
#define LAYERS4 LAYER LAYER LAYER LAYER

struct bad {
    const char *yaml;
    int rc;
    const char *msg; /* must occur in rl_errmsg(), origin "bad.yaml" included */
};

/* clang-format off */
static const struct bad bad_configs[] = {
    /* YAML syntax: libyaml's problem and position */
    {"version: 1\nendpoints: [\n", -EINVAL,
     "bad.yaml:3:1: invalid YAML: did not find expected node content (while parsing a "
     "flow node at 3:1)"},
    {"version: 1\ndefaults:\n  - {requests: 5\n  window: 1s}\n", -EINVAL,
     "bad.yaml:4:9: invalid YAML: did not find expected ',' or '}' (while parsing a flow "
     "mapping at 3:5)"},
    {"version: 1\n\tdefaults: []\n", -EINVAL,
     "bad.yaml:2:1: invalid YAML: found a tab character that violates indentation (while "
     "scanning a plain scalar at 1:10)"},
    {"version: 1\ndescription: \"\xff\"\n", -EINVAL,
     "bad.yaml:2:15: invalid YAML: invalid leading UTF-8 octet (byte 0xFF)"},
    {"version: 1\n---\n- [\n", -EINVAL,
     "bad.yaml:4:1: invalid YAML: did not find expected node content (while parsing a "
     "flow node at 4:1)"},
    {"version: 1\n---\nversion: 1\n", -EINVAL,
     "bad.yaml:2:1: expected one YAML document, got a second one"},
    {"", -EINVAL,
     "bad.yaml:1:1: expected a rule set (a mapping starting with 'version: 1'), got an "
     "empty document"},
    {"- version: 1\n", -EINVAL,
     "bad.yaml:1:1: expected a rule set (a mapping starting with 'version: 1'), got a list"},
    /* version */
    {"defaults: []\n", -EINVAL,
     "bad.yaml:1:1: expected 'version: 1' in the rule set, got no 'version'"},
    {"version: 2\n", -EINVAL,
     "bad.yaml:1:10: expected 1 (the only version of this schema) for 'version', got '2'"},
    {"version: \"1\"\n", -EINVAL,
     "bad.yaml:1:10: expected 1 (the only version of this schema) for 'version', got the "
     "string \"1\""},
    /* keys */
    {"version: 1\ndefaults: [{requets: 5, window: 1s}]\n", -EINVAL,
     "bad.yaml:2:13: unknown key 'requets' (did you mean 'requests'?)"},
    {"version: 1\nendpoint: []\n", -EINVAL,
     "bad.yaml:2:1: unknown key 'endpoint' (did you mean 'endpoints'?)"},
    {"version: 1\ncolour: red\n", -EINVAL,
     "bad.yaml:2:1: unknown key 'colour' in the rule set (expected one of: version, environment, "
     "description, warn_threshold, ipv6_prefix, audit, default_tier, defaults, global, endpoints, "
     "tiers, bypass, trusted_proxies, sync)"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, requests: 2}]\n", -EINVAL,
     "bad.yaml:2:38: duplicate key 'requests' (first at 2:13)"},
    {"version: 1\naudit: all\nversion: 1\n", -EINVAL,
     "bad.yaml:3:1: duplicate key 'version' (first at 1:1)"},
    {"version: 1\ndefaults: [{[requests]: 1}]\n", -EINVAL,
     "bad.yaml:2:13: expected a key name in a limit, got a list"},
    /* requests */
    {"version: 1\ndefaults: [{requests: 0, window: 1s}]\n", -EINVAL,
     "bad.yaml:2:23: expected a positive integer for 'requests', got '0'"},
    {"version: 1\ndefaults: [{requests: -1, window: 1s}]\n", -EINVAL,
     "bad.yaml:2:23: expected a positive integer for 'requests', got '-1'"},
    {"version: 1\ndefaults: [{requests: abc, window: 1s}]\n", -EINVAL,
     "bad.yaml:2:23: expected a positive integer for 'requests', got 'abc'"},
    {"version: 1\ndefaults: [{requests: 1e3, window: 1s}]\n", -EINVAL,
     "bad.yaml:2:23: expected a positive integer for 'requests', got '1e3'"},
    {"version: 1\ndefaults: [{requests: 2.5, window: 1s}]\n", -EINVAL,
     "bad.yaml:2:23: expected a positive integer for 'requests', got '2.5'"},
    {"version: 1\ndefaults: [{requests: 18446744073709551616, window: 1s}]\n", -EINVAL,
     "bad.yaml:2:23: expected a positive integer for 'requests', got '18446744073709551616'"},
    {"version: 1\ndefaults: [{requests: \"5\", window: 1s}]\n", -EINVAL,
     "bad.yaml:2:23: expected a positive integer for 'requests', got the string \"5\""},
    {"version: 1\ndefaults: [{requests: , window: 1s}]\n", -EINVAL,
     "bad.yaml:2:23: expected a positive integer for 'requests', got nothing"},
    {"version: 1\ndefaults: [{window: 1s}]\n", -EINVAL,
     "bad.yaml:2:12: expected 'requests' in this limit, got none (a limit needs requests "
     "and window)"},
    /* windows and durations */
    {"version: 1\ndefaults: [{requests: 1}]\n", -EINVAL,
     "bad.yaml:2:12: expected 'window' in this limit, got none (a limit needs requests "
     "and window)"},
    {"version: 1\ndefaults: [{requests: 1, window: 0}]\n", -EINVAL,
     "bad.yaml:2:34: expected a positive duration for 'window', got '0'"},
    {"version: 1\ndefaults: [{requests: 1, window: 0ms}]\n", -EINVAL,
     "bad.yaml:2:34: expected a positive duration for 'window', got '0ms'"},
    {"version: 1\ndefaults: [{requests: 1, window: 5 minutes}]\n", -EINVAL,
     "bad.yaml:2:34: expected a duration (300, 250ms, 300s, 5m, 1h, 1d) for 'window', got "
     "'5 minutes'"},
    {"version: 1\ndefaults: [{requests: 1, window: 1w}]\n", -EINVAL,
     "bad.yaml:2:34: expected a duration (300, 250ms, 300s, 5m, 1h, 1d) for 'window', got '1w'"},
    {"version: 1\ndefaults: [{requests: 1, window: -5s}]\n", -EINVAL,
     "bad.yaml:2:34: expected a duration (300, 250ms, 300s, 5m, 1h, 1d) for 'window', got '-5s'"},
    {"version: 1\ndefaults: [{requests: 1, window: 1.5h}]\n", -EINVAL,
     "bad.yaml:2:34: expected a duration (300, 250ms, 300s, 5m, 1h, 1d) for 'window', got '1.5h'"},
    {"version: 1\ndefaults: [{requests: 1, window_ms: 1s}]\n", -EINVAL,
     "bad.yaml:2:37: expected a positive integer (milliseconds) for 'window_ms', got '1s'"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, window_ms: 1000}]\n", -EINVAL,
     "bad.yaml:2:49: expected one of 'window' and 'window_ms', got both"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, redis_ttl: soon}]\n", -EINVAL,
     "bad.yaml:2:49: expected a duration (300, 250ms, 300s, 5m, 1h, 1d) for 'redis_ttl', "
     "got 'soon'"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, burst: -5}]\n", -EINVAL,
     "bad.yaml:2:45: expected an integer >= 0 for 'burst', got '-5'"},
    /* enums and booleans */
    {"version: 1\ndefaults: [{requests: 1, window: 1s, algorithm: leaky_bucket}]\n", -EINVAL,
     "bad.yaml:2:49: expected token_bucket, sliding_window, fixed_window or gcra for 'algorithm', "
     "got 'leaky_bucket'"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, algorithm: sliding-window}]\n", -EINVAL,
     "bad.yaml:2:49: expected token_bucket, sliding_window, fixed_window or gcra for 'algorithm', "
     "got 'sliding-window' (did you mean 'sliding_window'?)"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, scope: per_tenant}]\n", -EINVAL,
     "bad.yaml:2:45: expected per_ip, per_user, global, per_endpoint, per_descriptor or "
     "per_user_endpoint for 'scope', got 'per_tenant'"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, scope: user}]\n", -EINVAL,
     "bad.yaml:2:45: expected per_ip, per_user, global, per_endpoint, per_descriptor or "
     "per_user_endpoint for 'scope', got 'user' (did you mean 'per_user'?)"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, mode: distributed}]\n", -EINVAL,
     "bad.yaml:2:44: expected local, global or strict for 'mode', got 'distributed'"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, on_full: maybe}]\n", -EINVAL,
     "bad.yaml:2:47: expected open or closed for 'on_full', got 'maybe'"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, shadow: yes}]\n", -EINVAL,
     "bad.yaml:2:46: expected true or false for 'shadow', got 'yes'"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, per_path: 1}]\n", -EINVAL,
     "bad.yaml:2:48: expected true or false for 'per_path', got '1'"},
    {"version: 1\naudit: verbose\n", -EINVAL,
     "bad.yaml:2:8: expected off, denials or all for 'audit', got 'verbose'"},
    /* fractions and prefixes */
    {"version: 1\nwarn_threshold: 1.5\n", -EINVAL,
     "bad.yaml:2:17: expected a fraction from 0 to 1 (at most 3 decimals, e.g. 0.8) for "
     "'warn_threshold', got '1.5'"},
    {"version: 1\nwarn_threshold: 80%\n", -EINVAL,
     "bad.yaml:2:17: expected a fraction from 0 to 1 (at most 3 decimals, e.g. 0.8) for "
     "'warn_threshold', got '80%'"},
    {"version: 1\nwarn_threshold: 0.8125\n", -EINVAL,
     "bad.yaml:2:17: expected a fraction from 0 to 1 (at most 3 decimals, e.g. 0.8) for "
     "'warn_threshold', got '0.8125'"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, warn_threshold: 0}]\n", -EINVAL,
     "bad.yaml:2:54: expected a fraction above 0 and at most 1 (at most 3 decimals, e.g. 0.8) for "
     "'warn_threshold', got '0'"},
    {"version: 1\nipv6_prefix: 48\n", -EINVAL,
     "bad.yaml:2:14: expected an integer from 64 to 128 for 'ipv6_prefix', got '48'"},
    /* descriptors, per_path, names, layer counts (validation: the layer's position) */
    {"version: 1\ndefaults: [{requests: 1, window: 1s, scope: per_descriptor}]\n", -EINVAL,
     "bad.yaml:2:12: defaults, layer 0: a per_descriptor limit needs 'descriptor' (the request "
     "descriptor that keys it, e.g. api_key)"},
    {"version: 1\ndefaults:\n  - {requests: 1, window: 1s}\n"
     "  - {requests: 1, window: 1s, descriptor: api_key, name: x}\n", -EINVAL,
     "bad.yaml:4:5: defaults, layer 'x': 'descriptor' is only for scope per_descriptor, this "
     "limit is per_ip"},
    {"version: 1\nglobal: [{requests: 1, window: 1s, per_path: true, scope: per_user}]\n",
     -EINVAL,
     "bad.yaml:2:10: global, layer 0: 'per_path' is only for scope per_endpoint, this limit is "
     "per_user"},
    {"version: 1\ntiers:\n  free:\n    - {requests: 1, window: 1s, name: a}\n"
     "    - {requests: 2, window: 1s, name: a}\n", -EINVAL,
     "bad.yaml:5:7: tier 'free', layer 'a': duplicate layer name (also layer 0, at 4:7)"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, name: \"\"}]\n", -EINVAL,
     "bad.yaml:2:12: defaults, layer 0: the name is empty"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, name: \"a\\0b\"}]\n", -EINVAL,
     "bad.yaml:2:44: expected text without NUL characters for 'name', got the string \"a?b\""},
    {"version: 1\ndefaults: [{requests: 1, window: 1s}, {requests: 1, window: 1s, name: 0}]\n",
     -EINVAL,
     "bad.yaml:2:39: defaults, layer '0': a name must not be a number (unnamed layers are named "
     "by their position)"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, name: "
     "n123456789012345678901234567890123456789012345678901234567890123}]\n", -EINVAL,
     "bad.yaml:2:12: defaults, layer 'n123456789012345678901234567890123456789012345678901234567890"
     "123': the name is longer than 63 bytes"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, name: [a]}]\n", -EINVAL,
     "bad.yaml:2:44: expected a string for 'name', got a list"},
    {"version: 1\nendpoints:\n  - pattern: /a\n    limits: [" LAYERS4 LAYERS4 LAYERS4 LAYERS4
     LAYER "]\n", -EINVAL,
     "bad.yaml:3:5: endpoint '/a': too many layers for one request: 17 + 0 global = 17, at most "
     "16 (RL_MAX_LAYERS)"},
    {"version: 1\nglobal: [" LAYERS4 LAYERS4 "]\n"
     "endpoints: [{pattern: /a, limits: [" LAYERS4 "]}]\n"
     "tiers: {small: [" LAYER "], big: [" LAYERS4 LAYER "]}\n", -EINVAL,
     "bad.yaml:3:13: endpoint '/a': too many layers for one request: 4 + 8 global + 5 of tier "
     "'big' = 17, at most 16 (RL_MAX_LAYERS)"},
    /* the ranges of the algorithms (rl_acquire's), at the layer */
    {"version: 1\nendpoints:\n  - pattern: /big\n    limits:\n"
     "      - {requests: 5000000, window: 1h, algorithm: sliding_window}\n", -ERANGE,
     "bad.yaml:5:9: endpoint '/big', layer 0: a sliding window holds at most 4194303 requests "
     "per window (got 5000000); use a token bucket or a shorter window"},
    {"version: 1\ndefaults: [{requests: 2000000, window: 1ms}]\n", -ERANGE,
     "bad.yaml:2:12: defaults, layer 0: 2000000 requests per 1 ms is more than one per "
     "nanosecond; use a longer window"},
    {"version: 1\ndefaults: [{requests: 1, window: 1s, burst: 1099511627777}]\n", -ERANGE,
     "bad.yaml:2:12: defaults, layer 0: burst 1099511627777 is above the maximum 2^40"},
    {"version: 1\ndefaults: [{requests: 1, window: 3661d}]\n", -ERANGE,
     "bad.yaml:2:12: defaults, layer 0: window_ms 316310400000 is outside 1..316224000000 (10 "
     "years)"},
    /* patterns */
    {"version: 1\nendpoints:\n  - {pattern: api/users, limits: []}\n", -EINVAL,
     "bad.yaml:3:5: endpoint 'api/users': pattern \"api/users\": the path must start with '/' "
     "or '*'"},
    {"version: 1\nendpoints:\n  - {pattern: \"post:/login\", limits: []}\n", -EINVAL,
     "bad.yaml:3:5: endpoint 'post:/login': pattern \"post:/login\": the method must be "
     "upper-case letters (GET, POST, ...) or '*'"},
    {"version: 1\nendpoints:\n  - {pattern: \"\", limits: []}\n", -EINVAL,
     "bad.yaml:3:5: endpoint '': pattern is empty"},
    {"version: 1\nendpoints:\n  - {pattern: \"POST:\", limits: []}\n", -EINVAL,
     "bad.yaml:3:5: endpoint 'POST:': pattern \"POST:\": no path after the method"},
    {"version: 1\nendpoints:\n  - {pattern: , limits: []}\n", -EINVAL,
     "bad.yaml:3:15: expected a pattern such as \"POST:/auth/login\" for 'pattern', got nothing"},
    {"version: 1\nendpoints:\n  - {limits: []}\n", -EINVAL,
     "bad.yaml:3:5: expected 'pattern' in this endpoint, got none"},
    {"version: 1\nendpoints:\n  - {pattern: /a}\n", -EINVAL,
     "bad.yaml:3:5: expected 'limits' in endpoint '/a', got none (write limits: [] for an "
     "endpoint without limits of its own)"},
    {"version: 1\nendpoints:\n  - {pattern: /a, limits: {requests: 1, window: 1s}}\n", -EINVAL,
     "bad.yaml:3:27: expected a list of limits for 'limits', got a mapping"},
    {"version: 1\nendpoints:\n  - {pattern: /a, limits: []}\n  - {pattern: /b, limits: []}\n"
     "  - {pattern: /a, limits: []}\n", -EINVAL,
     "bad.yaml:5:5: endpoint '/a' is defined twice (first at 3:5)"},
    {"version: 1\nendpoints: {pattern: /a}\n", -EINVAL,
     "bad.yaml:2:12: expected a list of endpoints for 'endpoints', got a mapping"},
    {"version: 1\nendpoints: [/a]\n", -EINVAL,
     "bad.yaml:2:13: expected an endpoint such as {pattern: \"GET:/api/*\", limits: "
     "[...]}, got '/a'"},
    {"version: 1\ndefaults: [5]\n", -EINVAL,
     "bad.yaml:2:12: expected a limit such as {requests: 100, window: 60s}, got '5'"},
    /* tiers */
    {"version: 1\ndefault_tier: gold\ntiers: {free: [], premium: []}\n", -EINVAL,
     "bad.yaml:2:15: expected the name of a tier (free, premium) for 'default_tier', got 'gold'"},
    {"version: 1\ndefault_tier: free\n", -EINVAL,
     "bad.yaml:2:15: expected the name of a tier (this file defines no tiers) for 'default_tier', "
     "got 'free'"},
    {"version: 1\ntiers:\n  free: []\n  pro: []\n  free: []\n", -EINVAL,
     "bad.yaml:5:3: duplicate tier 'free' (first at 3:3)"},
    {"version: 1\ntiers:\n  free: 100\n", -EINVAL,
     "bad.yaml:3:9: expected the limits of tier 'free' (a list, or a mapping with 'limits'), got "
     "'100'"},
    {"version: 1\ntiers:\n  free: {description: x}\n", -EINVAL,
     "bad.yaml:3:9: expected 'limits' in tier 'free', got none"},
    {"version: 1\ntiers:\n  free: {limit: []}\n", -EINVAL,
     "bad.yaml:3:10: unknown key 'limit' (did you mean 'limits'?)"},
    {"version: 1\ntiers: [free]\n", -EINVAL,
     "bad.yaml:2:8: expected a mapping of tier names to limits for 'tiers', got a list"},
    /* bypass and proxies */
    {"version: 1\nbypass: {ips: [\"10.0.0.0/33\"]}\n", -EINVAL,
     "bad.yaml:2:16: expected an IP address or CIDR (10.0.0.0/8, ::1) for 'ips', got the string "
     "\"10.0.0.0/33\""},
    {"version: 1\nbypass: {ips: [\"10.0.0\"]}\n", -EINVAL,
     "bad.yaml:2:16: expected an IP address or CIDR (10.0.0.0/8, ::1) for 'ips', got the string "
     "\"10.0.0\""},
    {"version: 1\nbypass: {users: ops}\n", -EINVAL,
     "bad.yaml:2:17: expected a list of user names for 'users', got 'ops'"},
    {"version: 1\nbypass: {users: [\"\"]}\n", -EINVAL,
     "bad.yaml:2:18: expected a user name for 'users', got the string \"\""},
    {"version: 1\n\"requests\": 5\n", -EINVAL,
     "bad.yaml:2:1: unknown key 'requests' in the rule set (expected one of: version, "},
    {"version: 1\nbypass: {ip: []}\n", -EINVAL,
     "bad.yaml:2:10: unknown key 'ip' (did you mean 'ips'?)"},
    {"version: 1\ntrusted_proxies: [localhost]\n", -EINVAL,
     "bad.yaml:2:19: expected an IP address or CIDR (10.0.0.0/8, ::1) for 'trusted_proxies', got "
     "'localhost'"},
    {"version: 1\nsync: {fallback: maybe}\n", -EINVAL,
     "bad.yaml:2:18: expected local, open or closed for 'fallback', got 'maybe'"},
    {"version: 1\nsync: {interval: 2m}\n", -EINVAL,
     "bad.yaml:2:18: expected a duration from 1ms to 60s for 'interval', got '2m'"},
    {"version: 1\nsync: {period: 1s}\n", -EINVAL, "bad.yaml:2:8: unknown key 'period'"},
    {"version: 1\nglobal:\n  - {requests: 5, window: 1s, algorithm: sliding_window, "
     "scope: global, mode: global}\n", -EINVAL,
     "bad.yaml:3:5: global, layer 0: mode global shares a token bucket across hosts, so it "
     "needs algorithm token_bucket (or gcra), not sliding_window"},
};
/* clang-format on */

/* sync: {interval, fallback} parses, survives the canonical round trip, and may be absent. */
Test(config, sync_section)
{
    struct rl_ruleset *rs = must_parse("version: 1\nsync: {interval: 250ms, fallback: closed}\n");
    cr_expect_eq(rs->sync_interval_ms, 250);
    cr_expect_eq(rs->sync_fallback, RL_FALLBACK_CLOSED);
    size_t n;
    char *text = must_emit(rs, &n);
    cr_expect(strstr(text, "interval: 250ms") != NULL, "%s", text);
    struct rl_ruleset *back = must_parse(text);
    cr_expect_eq(back->sync_interval_ms, 250);
    cr_expect_eq(back->sync_fallback, RL_FALLBACK_CLOSED);
    free(text);
    rl__ruleset_free(back);
    rl__ruleset_free(rs);
    rs = must_parse("version: 1\n");
    cr_expect_eq(rs->sync_interval_ms, 0, "unset: the options' default applies");
    cr_expect_eq(rs->sync_fallback, RL_FALLBACK_DEFAULT);
    text = must_emit(rs, &n);
    cr_expect(strstr(text, "sync") == NULL, "%s", text);
    free(text);
    rl__ruleset_free(rs);
}

Test(config, bad_configurations)
{
    cr_assert_geq(N(bad_configs), 30);
    for (size_t i = 0; i < N(bad_configs); i++) {
        const struct bad *b = &bad_configs[i];
        struct rl_ruleset *rs = (struct rl_ruleset *)&rs; /* garbage: must be reset to NULL */
        int rc = rl__ruleset_parse(b->yaml, strlen(b->yaml), "bad.yaml", &rs);
        cr_expect_eq(rc, b->rc, "case %zu: rc %d (%s), expected %d: %s\n%s", i, rc, rl_strerror(rc),
                     b->rc, rl_errmsg(), b->yaml);
        cr_expect_null(rs, "case %zu: no rule set on error", i);
        cr_expect(strstr(rl_errmsg(), b->msg) != NULL, "case %zu:\n  got      %s\n  expected %s", i,
                  rl_errmsg(), b->msg);
        if (rc == 0)
            rl__ruleset_free(rs);
    }
}

/* Every message starts with "ORIGIN:LINE:COLUMN: " (the table checks substrings). */
Test(config, messages_start_with_the_position)
{
    for (size_t i = 0; i < N(bad_configs); i++) {
        const struct bad *b = &bad_configs[i];
        struct rl_ruleset *rs = NULL;
        rl__ruleset_parse(b->yaml, strlen(b->yaml), "bad.yaml", &rs);
        unsigned line, col;
        char colon;
        int got = sscanf(rl_errmsg(), "bad.yaml:%u:%u%c", &line, &col, &colon);
        cr_expect(got == 3 && colon == ':' && line >= 1 && col >= 1, "case %zu: %s", i,
                  rl_errmsg());
        rl__ruleset_free(rs);
    }
}

/* The text need not be NUL-terminated: only len bytes are read. */
Test(config, parse_reads_len_bytes)
{
    const char text[] = "version: 1\ndefaults: [{requests: 5, window: 1s}]\nGARBAGE: [";
    struct rl_ruleset *rs = NULL;
    size_t len = strlen("version: 1\ndefaults: [{requests: 5, window: 1s}]\n");
    cr_assert_eq(rl__ruleset_parse(text, len, "x", &rs), 0, "%s", rl_errmsg());
    cr_expect_eq(rs->defaults[0].lim.requests, 5);
    rl__ruleset_free(rs);
    cr_expect_eq(rl__ruleset_parse(NULL, 0, "x", &rs), -EINVAL, "no text: an empty document");
    cr_expect_eq(rl__ruleset_parse(NULL, 5, "x", &rs), -EINVAL);
    cr_expect_eq(rl__ruleset_parse("version: 1\n", 11, "x", NULL), -EINVAL);
}

/* Deep nesting and alias fan-out end in an error (or a bounded walk), never a crash. */
Test(config, hostile_documents)
{
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 32);
    cr_assert_not_null(deep);
    size_t n = (size_t)sprintf(deep, "version: 1\ndefaults: ");
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    struct rl_ruleset *rs = NULL;
    int rc = rl__ruleset_parse(deep, n, "deep", &rs);
    cr_expect_eq(rc, -EINVAL, "%s", rl_errmsg());
    cr_expect_str_eq(rl_errmsg(),
                     "deep:2:75: expected lists and mappings nested at most 64 deep, got deeper");
    cr_expect_null(rs);
    free(deep);
    /* brackets in comments and quoted strings are not nesting */
    rs = must_parse(
        "version: 1 # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n"
        "description: \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"\n"
        "environment: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[''['\n");
    cr_expect(strncmp(rs->environment, "[[[", 3) == 0, "%s", rs->environment);
    cr_expect(strlen(rs->environment) > 60 && strstr(rs->environment, "'[") != NULL);
    rl__ruleset_free(rs);

    const char *bomb = "version: 1\n"
                       "a: &a [{requests: 1, window: 1s}, {requests: 1, window: 1s}]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n";
    rc = rl__ruleset_parse(bomb, strlen(bomb), "bomb", &rs);
    cr_expect_eq(rc, -EINVAL);
    cr_expect(strstr(rl_errmsg(), "bomb:2:1: unknown key 'a'") != NULL, "%s", rl_errmsg());
}

/* ---- files ----------------------------------------------------------------------------------- */

Test(config, file_errors)
{
    cr_expect_eq(rl_check_config_file("configs/does-not-exist.yaml"), -ENOENT);
    cr_expect_str_eq(rl_errmsg(),
                     "configs/does-not-exist.yaml: cannot open the rule file: no such file");
    cr_expect_eq(rl_check_config_file("configs"), -EISDIR);
    cr_expect(strstr(rl_errmsg(), "configs: is a directory") != NULL, "%s", rl_errmsg());
    cr_expect_eq(rl_check_config_file(NULL), -EINVAL);
    cr_expect_eq(rl_check_config_file("/dev/null"), -EINVAL, "not a regular file");
    cr_expect(strstr(rl_errmsg(), "/dev/null: not a regular file") != NULL, "%s", rl_errmsg());
}

Test(config, fixtures_name_the_file)
{
    cr_expect_eq(rl_check_config_file("configs/minimal.yaml"), 0, "%s", rl_errmsg());
    cr_expect_eq(rl_check_config_file("configs/typo.yaml"), -EINVAL);
    cr_expect_str_eq(rl_errmsg(),
                     "configs/typo.yaml:9:24: unknown key 'windw' (did you mean 'window'?)");
    cr_expect_eq(rl_check_config_file("configs/out-of-range.yaml"), -ERANGE);
    cr_expect_str_eq(rl_errmsg(),
                     "configs/out-of-range.yaml:7:9: endpoint 'GET:/search', layer 'per-ip': a "
                     "sliding window holds at most 4194303 requests per window (got 5000000); use "
                     "a token bucket or a shorter window");
}

Test(config, unreadable_file)
{
    if (geteuid() == 0)
        cr_skip_test("root reads files whatever their mode");
    char path[] = "/tmp/rl-test-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "version: 1\n", 11), 11);
    close(fd);
    chmod(path, 0);
    int rc = rl_check_config_file(path);
    unlink(path);
    cr_expect_eq(rc, -EACCES);
    cr_expect(strstr(rl_errmsg(), "cannot open the rule file: permission denied") != NULL, "%s",
              rl_errmsg());
}

Test(config, huge_file)
{
    char path[] = "/tmp/rl-test-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    fputs("version: 1\n", f);
    /* valid YAML comments, just too many of them: 1 MiB + a bit */
    for (int i = 0; i < 17000; i++)
        fputs("# padding padding padding padding padding padding padding padding\n", f);
    fclose(f);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(st.st_size > (1 << 20));
    int rc = rl_check_config_file(path);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rl_errmsg());
    /* exactly 1 MiB is still accepted */
    cr_assert_eq(truncate(path, 1 << 20), 0);
    int rc_max = rl_check_config_file(path);
    unlink(path);
    cr_expect_eq(rc, -EFBIG, "%s", msg);
    cr_expect(strstr(msg, "a rule file may have at most 1 MiB (1048576 bytes)") != NULL, "%s", msg);
    cr_expect(strncmp(msg, path, strlen(path)) == 0, "the message names the file: %s", msg);
    cr_expect_eq(rc_max, 0, "1 MiB exactly: %s", rl_errmsg());
}

/* ---- what this build can run ---------------------------------------------------------------- */

/* A rule file with a STRICT layer in an endpoint and a GLOBAL one in a tier (and in `global`). */
static const char remote_yaml[] = "version: 1\n"
                                  "endpoints:\n"
                                  "  - pattern: /a\n"
                                  "    limits:\n"
                                  "      - {requests: 5, window: 1s}\n"
                                  "      - {name: burst, requests: 5, window: 1s, mode: strict}\n"
                                  "tiers:\n"
                                  "  free: [{requests: 5, window: 1s, mode: global}]\n";

/* remote_yaml (or text) in a fresh temporary file; path is "/tmp/rl-test-config-XXXXXX". */
static void write_temp(char *path, const char *text)
{
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
}

#if NO_REDIS
/* Built without Redis: a rule file (or rl_configure_endpoint, test_rules) that asks for mode
 * strict or global is refused at the layer's position, with the remedy. */
Test(config, no_redis_refuses_remote_modes_in_rule_files)
{
    char path[] = "/tmp/rl-test-config-XXXXXX";
    write_temp(path, remote_yaml);
    struct rl_ruleset *rs = NULL;
    int rc = rl__ruleset_load_file(path, &rs);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rl_errmsg());
    int rc_check = rl_check_config_file(path);
    unlink(path);
    cr_expect_eq(rc, -EINVAL, "%s", msg);
    cr_expect_null(rs);
    char want[256];
    snprintf(want, sizeof want,
             "%s:6:9: endpoint '/a', layer 'burst': mode strict needs Redis, but this library was "
             "built without Redis (meson -Dredis=enabled): use mode local",
             path);
    cr_expect_str_eq(msg, want);
    cr_expect_eq(rc_check, -EINVAL);

    char gpath[] = "/tmp/rl-test-config-XXXXXX";
    write_temp(gpath, "version: 1\nglobal:\n  - {requests: 5, window: 1s, mode: global}\n");
    rc = rl_check_config_file(gpath);
    snprintf(msg, sizeof msg, "%s", rl_errmsg());
    unlink(gpath);
    cr_expect_eq(rc, -EINVAL);
    snprintf(want, sizeof want, "%s:3:5: global, layer 0: mode global needs Redis", gpath);
    cr_expect(strncmp(msg, want, strlen(want)) == 0, "%s", msg);
}

/* The presets (which have STRICT and GLOBAL layers) and a segment's text still compile: there
 * such layers count locally; only what a user writes is refused. */
Test(config, no_redis_presets_still_compile)
{
    struct rl_ruleset *rs = NULL;
    const char *text = rl__preset_yaml("production");
    cr_assert_eq(rl__ruleset_parse(text, strlen(text), "preset production", &rs), 0, "%s",
                 rl_errmsg());
    cr_expect_eq(rl__ruleset_check_build(rs, "preset production", NULL), -EINVAL,
                 "the preset has remote layers, which a rule file could not have");
    cr_expect_eq(rl__ruleset_check_build(rs, "x", "/no-such-endpoint"), 0);
    rl__ruleset_free(rs);
    struct rl_ruleset *seg = must_parse(remote_yaml);
    cr_expect_eq(seg->rules[0].layers[1].lim.mode, RL_MODE_STRICT);
    rl__ruleset_free(seg);
}
#else
/* Built with Redis: the same file loads, its modes kept (without a Redis URL a handle counts them
 * locally: test_rules). */
Test(config, remote_modes_load_from_rule_files)
{
    char path[] = "/tmp/rl-test-config-XXXXXX";
    write_temp(path, remote_yaml);
    struct rl_ruleset *rs = NULL;
    int rc = rl__ruleset_load_file(path, &rs);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", rl_errmsg());
    cr_expect_eq(rs->rules[0].layers[1].lim.mode, RL_MODE_STRICT);
    cr_expect_eq(rs->tiers[0].layers[0].lim.mode, RL_MODE_GLOBAL);
    cr_expect_eq(rl__ruleset_check_build(rs, path, NULL), 0);
    rl__ruleset_free(rs);
}
#endif

/* ---- the API: set_rule and validate ---------------------------------------------------------- */

Test(config, set_rule_copies_and_replaces)
{
    struct rl_ruleset *rs = rl__ruleset_new();
    cr_assert_not_null(rs);
    char name[] = "burst", desc[] = "tenant";
    rl_limit l[2];
    memset(l, 0, sizeof l);
    l[0].requests = 5;
    l[0].window_ms = 1000;
    l[0].name = name;
    l[1].requests = 7;
    l[1].window_ms = 2000;
    l[1].scope = RL_SCOPE_DESCRIPTOR;
    l[1].descriptor = desc;
    cr_assert_eq(rl__ruleset_set_rule(rs, "/a", l, 2), 0);
    cr_assert_eq(rl__ruleset_set_rule(rs, "/b", l, 1), 0);
    name[0] = 'X', desc[0] = 'X'; /* deep copies: the caller's strings may change */
    cr_assert_eq(rs->nrules, 2);
    cr_expect_str_eq(rs->rules[0].layers[0].name, "burst");
    cr_expect_str_eq(rs->rules[0].layers[0].lim.name, "burst");
    cr_expect_str_eq(rs->rules[0].layers[1].lim.descriptor, "tenant");
    cr_expect_eq(rs->rules[0].line, 0, "API-built: no position");
    cr_expect_eq(rl__ruleset_validate(rs, "api"), 0, "%s", rl_errmsg());
    /* replace /a (same place), with no layers at all */
    cr_assert_eq(rl__ruleset_set_rule(rs, "/a", NULL, 0), 0);
    cr_assert_eq(rs->nrules, 2);
    cr_expect_str_eq(rs->rules[0].pattern, "/a");
    cr_expect_eq(rs->rules[0].nlayers, 0);
    expect_round_trip(rs);
    cr_expect_eq(rl__ruleset_set_rule(rs, NULL, l, 1), -EINVAL);
    cr_expect_eq(rl__ruleset_set_rule(rs, "/c", NULL, 1), -EINVAL);
    rl__ruleset_free(rs);
}

/* A replaced rule keeps its description; a file rule becomes an API rule. */
Test(config, set_rule_on_a_parsed_set)
{
    struct rl_ruleset *rs = must_load_file("../examples/production.yaml");
    rl_limit l;
    memset(&l, 0, sizeof l);
    l.requests = 3;
    l.window_ms = 60000;
    l.algorithm = RL_FIXED_WINDOW;
    cr_assert_eq(rl__ruleset_set_rule(rs, "POST:/auth/login", &l, 1), 0);
    const struct rl_rule *r = find_rule(rs, "POST:/auth/login");
    cr_expect_eq(r->nlayers, 1);
    cr_expect_eq(r->layers[0].lim.requests, 3);
    cr_expect_str_eq(r->description, "Authentication - very strict");
    cr_expect_eq(rs->nrules, 3);
    expect_round_trip(rs);
    rl__ruleset_free(rs);
}

/* API-built rule sets are validated like files; messages have no position then. */
Test(config, validate_api_rule_sets)
{
    struct rl_ruleset *rs = rl__ruleset_new();
    rl_limit l;
    memset(&l, 0, sizeof l);
    l.requests = 5;
    l.window_ms = 1000;
    l.scope = RL_SCOPE_DESCRIPTOR;
    cr_assert_eq(rl__ruleset_set_rule(rs, "/a", &l, 1), 0);
    cr_expect_eq(rl__ruleset_validate(rs, "rl_configure_endpoint"), -EINVAL);
    cr_expect_str_eq(rl_errmsg(), "rl_configure_endpoint: endpoint '/a', layer 0: a "
                                  "per_descriptor limit needs 'descriptor' (the request "
                                  "descriptor that keys it, e.g. api_key)");
    char *text = NULL;
    size_t len = 0;
    cr_expect_eq(rl__ruleset_emit(rs, &text, &len), -EINVAL, "invalid sets have no canonical form");
    cr_expect_null(text);

    l.scope = RL_SCOPE_IP;
    l.algorithm = (rl_algorithm)9;
    cr_assert_eq(rl__ruleset_set_rule(rs, "/a", &l, 1), 0);
    cr_expect_eq(rl__ruleset_validate(rs, "api"), -EINVAL);
    cr_expect_str_eq(rl_errmsg(), "api: endpoint '/a', layer 0: unknown algorithm 9");

    l.algorithm = RL_SLIDING_WINDOW;
    l.requests = 5000000;
    cr_assert_eq(rl__ruleset_set_rule(rs, "/a", &l, 1), 0);
    cr_expect_eq(rl__ruleset_validate(rs, "api"), -ERANGE);

    l.requests = 0;
    cr_assert_eq(rl__ruleset_set_rule(rs, "/a", &l, 1), 0);
    cr_expect_eq(rl__ruleset_validate(rs, "api"), -EINVAL);
    cr_expect_str_eq(rl_errmsg(), "api: endpoint '/a', layer 0: requests is 0; a limit must "
                                  "allow at least 1 request");

    l.requests = 1;
    l.flags = 1u << 7;
    cr_assert_eq(rl__ruleset_set_rule(rs, "/a", &l, 1), 0);
    cr_expect_eq(rl__ruleset_validate(rs, "api"), -EINVAL);

    l.flags = 0;
    l.reserved[1] = 1;
    cr_assert_eq(rl__ruleset_set_rule(rs, "/a", &l, 1), 0);
    cr_expect_eq(rl__ruleset_validate(rs, "api"), -EINVAL);

    l.reserved[1] = 0;
    l.name = "bad\nname";
    cr_assert_eq(rl__ruleset_set_rule(rs, "/a", &l, 1), 0);
    cr_expect_eq(rl__ruleset_validate(rs, "api"), -EINVAL);
    cr_expect_str_eq(
        rl_errmsg(),
        "api: endpoint '/a', layer 'bad\nname': the name contains a control character");

    l.name = NULL;
    cr_assert_eq(rl__ruleset_set_rule(rs, "/a", &l, 1), 0);
    cr_expect_eq(rl__ruleset_validate(rs, "api"), 0, "%s", rl_errmsg());

    cr_assert_eq(rl__ruleset_set_rule(rs, "lower:/x", &l, 1), 0);
    cr_expect_eq(rl__ruleset_validate(rs, "api"), -EINVAL);
    rl__ruleset_free(rs);

    /* Fields a file cannot set wrongly but a caller can. */
    rs = rl__ruleset_new();
    rs->warn_permille = 1001;
    cr_expect_eq(rl__ruleset_validate(rs, "api"), -EINVAL);
    rs->warn_permille = 800;
    rs->ipv6_prefix = 32;
    cr_expect_eq(rl__ruleset_validate(rs, "api"), -EINVAL);
    rs->ipv6_prefix = 64;
    rs->default_tier = strdup("gold");
    cr_expect_eq(rl__ruleset_validate(rs, "api"), -EINVAL);
    cr_expect_str_eq(rl_errmsg(), "api: default_tier 'gold' is not one of the tiers");
    rl__ruleset_free(rs);
    cr_expect_eq(rl__ruleset_validate(NULL, "api"), -EINVAL);
}

/* Many rules and tiers: duplicate detection stays fast (sorted, not quadratic). */
Test(config, many_rules)
{
    size_t n = 20000;
    char *y = malloc(n * 64 + 64);
    cr_assert_not_null(y);
    size_t o = (size_t)sprintf(y, "version: 1\nendpoints:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(y + o, "  - {pattern: /p%zu, limits: []}\n", i);
    struct rl_ruleset *rs = NULL;
    cr_assert_eq(rl__ruleset_parse(y, o, "many", &rs), 0, "%s", rl_errmsg());
    cr_expect_eq(rs->nrules, n);
    rl__ruleset_free(rs);
    o += (size_t)sprintf(y + o, "  - {pattern: /p7, limits: []}\n");
    cr_expect_eq(rl__ruleset_parse(y, o, "many", &rs), -EINVAL);
    cr_expect(strstr(rl_errmsg(), "many:20003:5: endpoint '/p7' is defined twice (first at 10:5)"),
              "%s", rl_errmsg());
    free(y);
}
