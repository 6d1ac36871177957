/*
 * The rule file's schema (docs/configuration.md): YAML text -> struct rl_ruleset
 * (rl__ruleset_parse). Called by config_file.c (files, presets) and rules.c (the segment's
 * canonical text, each process compiling it); reads nodes through config_yaml.c.
 *
 * Parsing loads the whole document (libyaml keeps every node's position) and walks it with the
 * schema. Every mapping is checked for unknown and duplicate keys before its values are read;
 * each value is checked where it is read, so a message carries the value's own line and column.
 * What needs the whole rule set (limits against the algorithms' ranges, patterns, layer counts,
 * tier names) is rl__ruleset_validate() (config_check.c), which the parser runs last and which
 * uses the positions stored in the layers, rules and tiers.
 *
 * Before libyaml sees the text, a quick scan bounds the nesting of flow collections (libyaml's
 * scanner is quadratic in it). Allocates; never blocks.
 *
 * The file follows the schema top-down, one function per mapping kind (a limit, an endpoint, a
 * tier, sync, bypass, the rule set); its size is the schema's, every key with its own message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "lib/config_int.h"
#include "lib/options.h"
#include "lib/config_yaml.h"
#include "lib/internal.h"
#include "lib/rules.h"

enum {
    LK_REQUESTS,
    LK_WINDOW,
    LK_WINDOW_MS,
    LK_BURST,
    LK_ALGORITHM,
    LK_SCOPE,
    LK_DESCRIPTOR,
    LK_MODE,
    LK_REDIS_TTL,
    LK_NAME,
    LK_SHADOW,
    LK_ON_FULL,
    LK_PER_PATH,
    LK_WARN,
    LK_COUNT
};

static const char *const layer_keys[LK_COUNT] = {
    [LK_REQUESTS] = "requests",     [LK_WINDOW] = "window",
    [LK_WINDOW_MS] = "window_ms",   [LK_BURST] = "burst",
    [LK_ALGORITHM] = "algorithm",   [LK_SCOPE] = "scope",
    [LK_DESCRIPTOR] = "descriptor", [LK_MODE] = "mode",
    [LK_REDIS_TTL] = "redis_ttl",   [LK_NAME] = "name",
    [LK_SHADOW] = "shadow",         [LK_ON_FULL] = "on_full",
    [LK_PER_PATH] = "per_path",     [LK_WARN] = "warn_threshold",
};

static int parse_flag(const struct pctx *c, const yaml_node_t *v, const char *key, uint32_t bit,
                      rl_limit *lim)
{
    bool b = false;
    if (absent(v))
        return 0;
    int r = rl__yaml_bool(c, v, key, &b);
    if (r == 0 && b)
        lim->flags |= bit;
    return r;
}

/* An optional choice (absent: *out stays). */
static int parse_choice(const struct pctx *c, const yaml_node_t *v, const char *key,
                        int (*from_name)(const char *), const char *(*name_i)(int), int count,
                        int *out)
{
    return absent(v) ? 0 : rl__yaml_choice(c, v, key, from_name, name_i, count, out);
}

/* How much: requests, window (or window_ms), burst. n is the limit, for "got none". */
static int parse_layer_size(const struct pctx *c, const yaml_node_t *n, yaml_node_t *const *v,
                            rl_limit *lim)
{
    if (!v[LK_REQUESTS])
        return rl__yaml_err(c, n,
                            "expected 'requests' in this limit, got none (a limit needs requests "
                            "and window)");
    int r = rl__yaml_u64(c, v[LK_REQUESTS], "requests", "a positive integer", 1, UINT64_MAX,
                         &lim->requests);
    if (r < 0)
        return r;
    if (v[LK_WINDOW] && v[LK_WINDOW_MS])
        return rl__yaml_err(c, v[LK_WINDOW_MS],
                            "expected one of 'window' and 'window_ms', got both");
    if (v[LK_WINDOW])
        r = rl__yaml_duration(c, v[LK_WINDOW], "window", true, &lim->window_ms);
    else if (v[LK_WINDOW_MS])
        r = rl__yaml_u64(c, v[LK_WINDOW_MS], "window_ms", "a positive integer (milliseconds)", 1,
                         UINT64_MAX, &lim->window_ms);
    else
        return rl__yaml_err(c, n,
                            "expected 'window' in this limit, got none (a limit needs requests "
                            "and window)");
    if (r == 0 && !absent(v[LK_BURST]))
        r = rl__yaml_u64(c, v[LK_BURST], "burst", "an integer >= 0", 0, UINT64_MAX, &lim->burst);
    return r;
}

/* How it counts: algorithm, scope (and descriptor), mode (and redis_ttl). */
static int parse_layer_kind(const struct pctx *c, yaml_node_t *const *v, struct rl_rule_layer *out)
{
    rl_limit *lim = &out->lim;
    int algorithm = (int)lim->algorithm, scope = (int)lim->scope, mode = (int)lim->mode;
    int r = parse_choice(c, v[LK_ALGORITHM], "algorithm", rl__algorithm_from_name,
                         rl__conf_algo_name, RL_ALGORITHM_COUNT, &algorithm);
    lim->algorithm = (rl_algorithm)algorithm;
    if (r == 0)
        r = parse_choice(c, v[LK_SCOPE], "scope", rl__scope_from_name, rl__conf_scope_name,
                         RL_SCOPE_COUNT, &scope);
    lim->scope = (rl_scope)scope;
    if (r == 0 && !absent(v[LK_DESCRIPTOR])) {
        r = rl__yaml_str(c, v[LK_DESCRIPTOR], "descriptor", &out->descriptor);
        lim->descriptor = out->descriptor;
    }
    if (r == 0)
        r = parse_choice(c, v[LK_MODE], "mode", rl__mode_from_name, rl__conf_mode_name,
                         RL_CONF_MODES, &mode);
    lim->mode = (rl_mode)mode;
    if (r == 0 && !absent(v[LK_REDIS_TTL]))
        r = rl__yaml_duration(c, v[LK_REDIS_TTL], "redis_ttl", false, &lim->redis_ttl_ms);
    return r;
}

/* How it reports: name, shadow, on_full, per_path, warn_threshold. */
static int parse_layer_extras(const struct pctx *c, yaml_node_t *const *v,
                              struct rl_rule_layer *out)
{
    rl_limit *lim = &out->lim;
    int r = 0, closed = 0;
    if (!absent(v[LK_NAME])) {
        r = rl__yaml_str(c, v[LK_NAME], "name", &out->name);
        lim->name = out->name;
    }
    if (r == 0)
        r = parse_flag(c, v[LK_SHADOW], "shadow", RL_LIMIT_SHADOW, lim);
    if (r == 0)
        r = parse_choice(c, v[LK_ON_FULL], "on_full", rl__conf_on_full_from_name,
                         rl__conf_on_full_name, 2, &closed);
    if (r == 0 && closed == 1)
        lim->flags |= RL_LIMIT_ON_FULL_CLOSED;
    if (r == 0)
        r = parse_flag(c, v[LK_PER_PATH], "per_path", RL_LIMIT_PER_PATH, lim);
    if (r == 0 && !absent(v[LK_WARN]))
        r = rl__yaml_fraction(c, v[LK_WARN], "warn_threshold", false, &lim->warn_permille);
    return r;
}

static int parse_layer(const struct pctx *c, const yaml_node_t *n, struct rl_rule_layer *out)
{
    char buf[RL_YAML_FOUND_MAX];
    if (n->type != YAML_MAPPING_NODE)
        return rl__yaml_err(c, n, "expected a limit such as {requests: 100, window: 60s}, got %s",
                            rl__yaml_describe(n, buf, sizeof buf));
    out->line = pos(n->start_mark.line);
    out->column = pos(n->start_mark.column);
    yaml_node_t *v[LK_COUNT];
    int r = rl__yaml_read_map(c, n, "a limit", layer_keys, LK_COUNT, v);
    if (r == 0)
        r = parse_layer_size(c, n, v, &out->lim);
    if (r == 0)
        r = parse_layer_kind(c, v, out);
    if (r == 0)
        r = parse_layer_extras(c, v, out);
    return r;
}

/* A list of layers into *ls / *n (owned by the caller's struct, so freed on any error). */
static int parse_layers(const struct pctx *c, const yaml_node_t *v, const char *key,
                        struct rl_rule_layer **ls, size_t *n)
{
    if (absent(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return rl__yaml_expect(c, v, "a list of limits", key);
    size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (cnt == 0)
        return 0;
    *ls = calloc(cnt, sizeof **ls);
    if (!*ls)
        return rl__yaml_nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        *n = i + 1;
        int r = parse_layer(c, node(c, v->data.sequence.items.start[i]), &(*ls)[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- parsing: endpoints, tiers, lists -------------------------------------------------------- */

enum { RK_PATTERN, RK_DESCRIPTION, RK_LIMITS, RK_COUNT };
static const char *const rule_keys[RK_COUNT] = {"pattern", "description", "limits"};

static int parse_rule(const struct pctx *c, const yaml_node_t *n, struct rl_rule *ru)
{
    char buf[RL_YAML_FOUND_MAX];
    if (n->type != YAML_MAPPING_NODE)
        return rl__yaml_err(
            c, n,
            "expected an endpoint such as {pattern: \"GET:/api/*\", limits: [...]}, "
            "got %s",
            rl__yaml_describe(n, buf, sizeof buf));
    ru->line = pos(n->start_mark.line);
    ru->column = pos(n->start_mark.column);
    yaml_node_t *v[RK_COUNT];
    int r = rl__yaml_read_map(c, n, "an endpoint", rule_keys, RK_COUNT, v);
    if (r < 0)
        return r;
    if (!v[RK_PATTERN])
        return rl__yaml_err(c, n, "expected 'pattern' in this endpoint, got none");
    if (is_null(v[RK_PATTERN]))
        return rl__yaml_expect(c, v[RK_PATTERN], "a pattern such as \"POST:/auth/login\"",
                               "pattern");
    r = rl__yaml_str(c, v[RK_PATTERN], "pattern", &ru->pattern);
    if (r < 0)
        return r;
    if (!absent(v[RK_DESCRIPTION])) {
        r = rl__yaml_str(c, v[RK_DESCRIPTION], "description", &ru->description);
        if (r < 0)
            return r;
    }
    if (!v[RK_LIMITS])
        return rl__yaml_err(c, n,
                            "expected 'limits' in endpoint '%s', got none (write limits: [] for "
                            "an endpoint without limits of its own)",
                            ru->pattern);
    if (is_null(v[RK_LIMITS]))
        return rl__yaml_expect(c, v[RK_LIMITS], "a list of limits", "limits");
    return parse_layers(c, v[RK_LIMITS], "limits", &ru->layers, &ru->nlayers);
}

static int parse_rules(const struct pctx *c, const yaml_node_t *v)
{
    struct rl_ruleset *rs = c->rs;
    if (absent(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return rl__yaml_expect(c, v, "a list of endpoints", "endpoints");
    size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (cnt == 0)
        return 0;
    rs->rules = calloc(cnt, sizeof *rs->rules);
    if (!rs->rules)
        return rl__yaml_nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        rs->nrules = i + 1;
        int r = parse_rule(c, node(c, v->data.sequence.items.start[i]), &rs->rules[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

enum { TK_DESCRIPTION, TK_LIMITS, TK_COUNT };
static const char *const tier_keys[TK_COUNT] = {"description", "limits"};

static int parse_tier(const struct pctx *c, const yaml_node_t *k, const yaml_node_t *v,
                      struct rl_tier *t)
{
    char buf[RL_YAML_FOUND_MAX];
    if (k->type != YAML_SCALAR_NODE || is_null(k))
        return rl__yaml_err(c, k, "expected a tier name, got %s",
                            rl__yaml_describe(k, buf, sizeof buf));
    t->line = pos(k->start_mark.line);
    t->column = pos(k->start_mark.column);
    int r = rl__yaml_str(c, k, "tiers", &t->name);
    if (r < 0)
        return r;
    if (v->type == YAML_SEQUENCE_NODE)
        return parse_layers(c, v, t->name, &t->layers, &t->nlayers);
    if (v->type != YAML_MAPPING_NODE)
        return rl__yaml_err(
            c, v,
            "expected the limits of tier '%s' (a list, or a mapping with 'limits'), "
            "got %s",
            t->name, rl__yaml_describe(v, buf, sizeof buf));
    yaml_node_t *tv[TK_COUNT];
    r = rl__yaml_read_map(c, v, "a tier", tier_keys, TK_COUNT, tv);
    if (r < 0)
        return r;
    if (!absent(tv[TK_DESCRIPTION])) {
        r = rl__yaml_str(c, tv[TK_DESCRIPTION], "description", &t->description);
        if (r < 0)
            return r;
    }
    if (!tv[TK_LIMITS])
        return rl__yaml_err(c, v, "expected 'limits' in tier '%s', got none", t->name);
    if (is_null(tv[TK_LIMITS]))
        return rl__yaml_expect(c, tv[TK_LIMITS], "a list of limits", "limits");
    return parse_layers(c, tv[TK_LIMITS], "limits", &t->layers, &t->nlayers);
}

static int parse_tiers(const struct pctx *c, const yaml_node_t *v)
{
    struct rl_ruleset *rs = c->rs;
    if (absent(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return rl__yaml_expect(c, v, "a mapping of tier names to limits", "tiers");
    int r = rl__yaml_dup_keys(c, v, "tier");
    if (r < 0)
        return r;
    size_t cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (cnt == 0)
        return 0;
    rs->tiers = calloc(cnt, sizeof *rs->tiers);
    if (!rs->tiers)
        return rl__yaml_nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        rs->ntiers = i + 1;
        const yaml_node_pair_t *p = &v->data.mapping.pairs.start[i];
        r = parse_tier(c, node(c, p->key), node(c, p->value), &rs->tiers[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

/* A list of strings; `addr`: each must be an IP address or CIDR. */
static int parse_strlist(const struct pctx *c, const yaml_node_t *v, const char *key, bool addr,
                         char ***out, size_t *n)
{
    const char *what = addr ? "an IP address or CIDR (10.0.0.0/8, ::1)" : "a user name";
    if (absent(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return rl__yaml_expect(
            c, v, addr ? "a list of IP addresses or CIDRs" : "a list of user names", key);
    size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (cnt == 0)
        return 0;
    *out = calloc(cnt, sizeof **out);
    if (!*out)
        return rl__yaml_nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *it = node(c, v->data.sequence.items.start[i]);
        if (it->type != YAML_SCALAR_NODE || is_null(it))
            return rl__yaml_expect(c, it, what, key);
        *n = i + 1;
        int r = rl__yaml_str(c, it, key, &(*out)[i]);
        if (r < 0)
            return r;
        if (addr ? !rl__conf_addr_ok((*out)[i]) : rl__conf_text_problem((*out)[i], false) != NULL)
            return rl__yaml_expect(c, it, what, key);
    }
    return 0;
}

enum { SK_INTERVAL, SK_FALLBACK, SK_COUNT };
static const char *const sync_keys[SK_COUNT] = {"interval", "fallback"};
/* sync: {interval: 100ms, fallback: local} — GLOBAL mode's defaults for this rule set. */
static int parse_sync(const struct pctx *c, const yaml_node_t *v)
{
    struct rl_ruleset *rs = c->rs;
    if (absent(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return rl__yaml_expect(c, v, "a mapping such as {interval: 100ms, fallback: local}",
                               "sync");
    yaml_node_t *sv[SK_COUNT];
    int r = rl__yaml_read_map(c, v, "sync", sync_keys, SK_COUNT, sv);
    if (r == 0 && !absent(sv[SK_INTERVAL])) {
        r = rl__yaml_duration(c, sv[SK_INTERVAL], "interval", true, &rs->sync_interval_ms);
        if (r == 0 && (rs->sync_interval_ms < RL_SYNC_INTERVAL_MS_MIN ||
                       rs->sync_interval_ms > RL_SYNC_INTERVAL_MS_MAX))
            r = rl__yaml_expect(c, sv[SK_INTERVAL], "a duration from 1ms to 60s", "interval");
    }
    if (r == 0 && !absent(sv[SK_FALLBACK]))
        r = rl__yaml_choice(c, sv[SK_FALLBACK], "fallback", rl__conf_fallback_from_name,
                            rl__conf_fallback_name, 3, &rs->sync_fallback);
    return r;
}

enum { BK_IPS, BK_USERS, BK_COUNT };
static const char *const bypass_keys[BK_COUNT] = {"ips", "users"};

static int parse_bypass(const struct pctx *c, const yaml_node_t *v)
{
    struct rl_ruleset *rs = c->rs;
    if (absent(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return rl__yaml_expect(c, v, "a mapping such as {ips: [...], users: [...]}", "bypass");
    yaml_node_t *bv[BK_COUNT];
    int r = rl__yaml_read_map(c, v, "bypass", bypass_keys, BK_COUNT, bv);
    if (r == 0)
        r = parse_strlist(c, bv[BK_IPS], "ips", true, &rs->bypass_ips, &rs->nbypass_ips);
    if (r == 0)
        r = parse_strlist(c, bv[BK_USERS], "users", false, &rs->bypass_users, &rs->nbypass_users);
    return r;
}

/* ---- parsing: the document ------------------------------------------------------------------- */

enum {
    K_VERSION,
    K_ENVIRONMENT,
    K_DESCRIPTION,
    K_WARN,
    K_IPV6_PREFIX,
    K_AUDIT,
    K_DEFAULT_TIER,
    K_DEFAULTS,
    K_GLOBAL,
    K_ENDPOINTS,
    K_TIERS,
    K_BYPASS,
    K_TRUSTED,
    K_SYNC,
    K_COUNT
};

static const char *const top_keys[K_COUNT] = {
    [K_VERSION] = "version",
    [K_ENVIRONMENT] = "environment",
    [K_DESCRIPTION] = "description",
    [K_WARN] = "warn_threshold",
    [K_IPV6_PREFIX] = "ipv6_prefix",
    [K_AUDIT] = "audit",
    [K_DEFAULT_TIER] = "default_tier",
    [K_DEFAULTS] = "defaults",
    [K_GLOBAL] = "global",
    [K_ENDPOINTS] = "endpoints",
    [K_TIERS] = "tiers",
    [K_BYPASS] = "bypass",
    [K_TRUSTED] = "trusted_proxies",
    [K_SYNC] = "sync",
};

static int check_default_tier(const struct pctx *c, const yaml_node_t *v)
{
    const struct rl_ruleset *rs = c->rs;
    for (size_t i = 0; i < rs->ntiers; i++)
        if (strcmp(rs->tiers[i].name, rs->default_tier) == 0)
            return 0;
    if (rs->ntiers == 0)
        return rl__yaml_expect(c, v, "the name of a tier (this file defines no tiers)",
                               "default_tier");
    char what[RL_CONF_MSG_MAX / 2];
    size_t o = (size_t)snprintf(what, sizeof what, "the name of a tier (");
    for (size_t i = 0; i < rs->ntiers && o < sizeof what; i++) {
        int w = snprintf(what + o, sizeof what - o, "%s%s", i ? ", " : "", rs->tiers[i].name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (o + 2 < sizeof what)
        memcpy(what + o, ")", 2);
    return rl__yaml_expect(c, v, what, "default_tier");
}

/* The rule set's own settings: version (required), environment, description, warn_threshold,
 * ipv6_prefix, audit, default_tier (checked against the tiers later). root is for "got none". */
static int parse_settings(const struct pctx *c, const yaml_node_t *root, yaml_node_t *const *v)
{
    struct rl_ruleset *rs = c->rs;
    uint64_t version, prefix = rs->ipv6_prefix;
    int audit = (int)rs->audit;
    if (!v[K_VERSION])
        return rl__yaml_err(c, root, "expected 'version: 1' in the rule set, got no 'version'");
    int r = rl__yaml_u64(c, v[K_VERSION], "version", "1 (the only version of this schema)", 1, 1,
                         &version);
    if (r == 0 && !absent(v[K_ENVIRONMENT]))
        r = rl__yaml_str(c, v[K_ENVIRONMENT], "environment", &rs->environment);
    if (r == 0 && !absent(v[K_DESCRIPTION]))
        r = rl__yaml_str(c, v[K_DESCRIPTION], "description", &rs->description);
    if (r == 0 && !absent(v[K_WARN]))
        r = rl__yaml_fraction(c, v[K_WARN], "warn_threshold", true, &rs->warn_permille);
    if (r == 0 && !absent(v[K_IPV6_PREFIX]))
        r = rl__yaml_u64(c, v[K_IPV6_PREFIX], "ipv6_prefix", "an integer from 64 to 128", 64, 128,
                         &prefix);
    rs->ipv6_prefix = (unsigned)prefix;
    if (r == 0 && !absent(v[K_AUDIT]))
        r = rl__yaml_choice(c, v[K_AUDIT], "audit", rl__conf_audit_from_name, rl__conf_audit_name,
                            3, &audit);
    rs->audit = (enum rl_audit_mode)audit;
    if (r == 0 && !absent(v[K_DEFAULT_TIER]))
        r = rl__yaml_str(c, v[K_DEFAULT_TIER], "default_tier", &rs->default_tier);
    return r;
}

static int parse_top(const struct pctx *c, const yaml_node_t *root)
{
    struct rl_ruleset *rs = c->rs;
    char buf[RL_YAML_FOUND_MAX];
    if (root->type != YAML_MAPPING_NODE)
        return rl__yaml_err(c, root,
                            "expected a rule set (a mapping starting with 'version: 1'), got %s",
                            rl__yaml_describe(root, buf, sizeof buf));
    yaml_node_t *v[K_COUNT];
    int r = rl__yaml_read_map(c, root, "the rule set", top_keys, K_COUNT, v);
    if (r == 0)
        r = parse_settings(c, root, v);
    if (r == 0)
        r = parse_layers(c, v[K_DEFAULTS], "defaults", &rs->defaults, &rs->ndefaults);
    if (r == 0)
        r = parse_layers(c, v[K_GLOBAL], "global", &rs->globals, &rs->nglobals);
    if (r == 0)
        r = parse_rules(c, v[K_ENDPOINTS]);
    if (r == 0)
        r = parse_tiers(c, v[K_TIERS]);
    if (r == 0 && rs->default_tier)
        r = check_default_tier(c, v[K_DEFAULT_TIER]);
    if (r == 0)
        r = parse_bypass(c, v[K_BYPASS]);
    if (r == 0)
        r = parse_strlist(c, v[K_TRUSTED], "trusted_proxies", true, &rs->trusted_proxies,
                          &rs->ntrusted);
    if (r == 0)
        r = parse_sync(c, v[K_SYNC]);
    return r;
}

/* libyaml's own message, with its position. Reader errors (bad UTF-8) carry a byte offset only:
 * the line and column are counted from the text. */
static int syntax_error(const yaml_parser_t *p, const char *origin, const char *text, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return rl__err(-ENOMEM, "%s: out of memory while reading YAML", origin);
    const char *problem = p->problem ? p->problem : "not valid YAML";
    if (p->error == YAML_READER_ERROR) {
        size_t line = 1, col = 1, end = p->problem_offset < len ? p->problem_offset : len;
        for (size_t i = 0; i < end; i++) {
            if (text[i] == '\n')
                line++, col = 1;
            else
                col++;
        }
        if (p->problem_value >= 0)
            return rl__err(-EINVAL, "%s:%zu:%zu: invalid YAML: %s (byte 0x%02X)", origin, line, col,
                           problem, (unsigned)p->problem_value);
        return rl__err(-EINVAL, "%s:%zu:%zu: invalid YAML: %s", origin, line, col, problem);
    }
    unsigned line = pos(p->problem_mark.line), col = pos(p->problem_mark.column);
    if (p->context)
        return rl__err(-EINVAL, "%s:%u:%u: invalid YAML: %s (%s at %u:%u)", origin, line, col,
                       problem, p->context, pos(p->context_mark.line), pos(p->context_mark.column));
    return rl__err(-EINVAL, "%s:%u:%u: invalid YAML: %s", origin, line, col, problem);
}

/*
 * libyaml's scanner takes time quadratic in the nesting of flow collections ("[[[[..."): a
 * 1 MiB file of brackets would take hours. No rule set nests deeper than a few levels, so a
 * quick scan refuses more than NEST_MAX open brackets outside comments and quoted strings
 * before libyaml sees the text.
 */
#define NEST_MAX 64
static int check_nesting(const char *t, size_t len, const char *origin)
{
    enum { PLAIN, COMMENT, SQUOTE, DQUOTE } st = PLAIN;
    size_t line = 1, line_start = 0, depth = 0;
    char prev = '\n';
    for (size_t i = 0; i < len; i++) {
        char ch = t[i];
        if (ch == '\n')
            line++, line_start = i + 1;
        switch (st) {
        case COMMENT:
            if (ch == '\n')
                st = PLAIN;
            break;
        case SQUOTE:
            if (ch == '\'' && i + 1 < len && t[i + 1] == '\'')
                i++;
            else if (ch == '\'')
                st = PLAIN;
            break;
        case DQUOTE:
            if (ch == '\\' && i + 1 < len && t[i + 1] != '\n')
                i++;
            else if (ch == '"')
                st = PLAIN;
            break;
        case PLAIN: {
            bool boundary = prev == ' ' || prev == '\t' || prev == '\n' || prev == '[' ||
                            prev == '{' || prev == ',';
            if (ch == '#' && (prev == ' ' || prev == '\t' || prev == '\n'))
                st = COMMENT;
            else if ((ch == '\'' || ch == '"') && boundary)
                st = ch == '"' ? DQUOTE : SQUOTE;
            else if ((ch == '[' || ch == '{') && ++depth > NEST_MAX)
                return rl__err(-EINVAL,
                               "%s:%zu:%zu: expected lists and mappings nested at most %d deep, "
                               "got deeper",
                               origin, line, i - line_start + 1, NEST_MAX);
            else if ((ch == ']' || ch == '}') && depth > 0)
                depth--;
            break;
        }
        }
        prev = ch;
    }
    return 0;
}

/* The document's root, after checking there is one and only one document in text. */
static int one_document(yaml_parser_t *parser, yaml_document_t *doc, const char *origin,
                        const char *text, size_t len, yaml_node_t **root)
{
    *root = yaml_document_get_root_node(doc);
    if (!*root)
        return rl__err(-EINVAL,
                       "%s:1:1: expected a rule set (a mapping starting with 'version: 1'), "
                       "got an empty document",
                       origin);
    yaml_document_t extra;
    if (!yaml_parser_load(parser, &extra))
        return syntax_error(parser, origin, text, len);
    int r = 0;
    if (yaml_document_get_root_node(&extra))
        r = rl__err(-EINVAL, "%s:%u:%u: expected one YAML document, got a second one", origin,
                    pos(extra.start_mark.line), pos(extra.start_mark.column));
    yaml_document_delete(&extra);
    return r;
}

/* Loads text with libyaml and walks the schema into rs. */
static int parse_text(const char *text, size_t len, const char *origin, struct rl_ruleset *rs)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return rl__err(-ENOMEM, "%s: out of memory while reading YAML", origin);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_document_t doc;
    if (!yaml_parser_load(&parser, &doc)) {
        int r = syntax_error(&parser, origin, text, len);
        yaml_parser_delete(&parser);
        return r;
    }
    yaml_node_t *root = NULL;
    int r = one_document(&parser, &doc, origin, text, len, &root);
    if (r == 0) {
        struct pctx c = {&doc, origin, rs};
        r = parse_top(&c, root);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return r;
}

int rl__ruleset_parse(const char *text, size_t len, const char *origin, struct rl_ruleset **out)
{
    if (!out || (!text && len))
        return rl__err(-EINVAL, "rl__ruleset_parse: text and out must not be NULL");
    *out = NULL;
    if (!origin)
        origin = "rules";
    if (!text)
        text = "";
    int r = check_nesting(text, len, origin);
    if (r < 0)
        return r;
    struct rl_ruleset *rs = rl__ruleset_new();
    if (!rs)
        return rl__err(-ENOMEM, "%s: out of memory while reading the rule set", origin);
    r = parse_text(text, len, origin, rs);
    if (r == 0)
        r = rl__ruleset_validate(rs, origin);
    if (r < 0) {
        rl__ruleset_free(rs);
        return r;
    }
    *out = rs;
    return 0;
}
