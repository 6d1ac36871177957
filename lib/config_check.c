/*
 * The checks on a whole rule set (rl__ruleset_validate, rules.h): what the parser cannot see
 * value by value. Called by the parser last (config_parse.c), by the emitter first (only a
 * valid rule set has a canonical form, config_emit.c), and by rules.c after an API edit
 * (rl_configure_endpoint, the bypass edits) on a rule set that never was YAML.
 *
 * One walk over the layers' owners: the defaults and the global layers, then every endpoint and
 * every tier through one function (an owner is a name, a description and its layers), then the
 * lists. A layer is checked in a fixed order (its enums, its name, its scope's needs, repeats
 * within its owner, its algorithm's ranges), so a file with several faults always gets the same
 * first message. Messages carry the line and column the parser stored ("ORIGIN:L:C: endpoint
 * 'X', layer 'burst': ..."), or just ORIGIN for what the API built. Nothing here blocks;
 * finding repeated names allocates.
 *
 * What this build can run is a check of its own (rl__ruleset_check_build): a library built
 * without Redis (meson -Dredis=disabled defines RL_WITH_REDIS to 0) refuses layers in mode
 * global or strict in what a user wrote (a rule file, rl_configure_endpoint), so asking for a
 * cluster-wide limit is an error rather than a silently local one. It is not part of
 * rl__ruleset_validate because the built-in presets (which have STRICT and GLOBAL layers) and a
 * segment's text published by a build with Redis must still compile: there such layers count
 * locally, as they do in any handle opened without a Redis URL.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config_int.h"
#include "lib/options.h"
#include "lib/internal.h"
#include "lib/pattern.h"
#include "lib/rules.h"

#define MSG_MAX RL_CONF_MSG_MAX

static int verr(int code, const char *origin, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int verr(int code, const char *origin, unsigned line, unsigned col, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line)
        return rl__err(code, "%s:%u:%u: %s", origin, line, col, msg);
    return rl__err(code, "%s: %s", origin, msg);
}

/* ---- layers ---------------------------------------------------------------------------------- */

/* The layer being checked, for messages: "ORIGIN:L:C: WHO: ...". */
struct at {
    const char *origin;
    const char *who; /* "endpoint 'X', layer 'burst'" or "..., layer 1" */
    unsigned line, col;
};

static int lerr(const struct at *a, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int lerr(const struct at *a, int code, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return verr(code, a->origin, a->line, a->col, "%s: %s", a->who, msg);
}

/* Layer i of owner: "endpoint 'X', layer 'burst'" or "..., layer 1" into who. */
static struct at layer_at(const char *origin, const char *owner, const struct rl_rule_layer *l,
                          size_t i, char *who, size_t len)
{
    if (l->name && *l->name)
        snprintf(who, len, "%s, layer '%s'", owner, l->name);
    else
        snprintf(who, len, "%s, layer %zu", owner, i);
    return (struct at){origin, who, l->line, l->column};
}

/* The algorithm, scope and mode are known ones, the flags and reserved fields clean, and the
 * mode can run with this algorithm. */
static int check_layer_kind(const struct at *a, const rl_limit *lim)
{
    if ((unsigned)lim->algorithm >= RL_ALGORITHM_COUNT)
        return lerr(a, -EINVAL, "unknown algorithm %d", (int)lim->algorithm);
    if ((unsigned)lim->scope >= RL_SCOPE_COUNT)
        return lerr(a, -EINVAL, "unknown scope %d", (int)lim->scope);
    if ((unsigned)lim->mode >= RL_CONF_MODES)
        return lerr(a, -EINVAL, "unknown mode %d", (int)lim->mode);
    if (lim->flags & ~(uint32_t)(RL_LIMIT_SHADOW | RL_LIMIT_ON_FULL_CLOSED | RL_LIMIT_PER_PATH))
        return lerr(a, -EINVAL, "unknown flags 0x%x", (unsigned)lim->flags);
    if (lim->reserved[0] || lim->reserved[1])
        return lerr(a, -EINVAL, "reserved fields must be zero");
    if (lim->mode == RL_MODE_GLOBAL && lim->algorithm != RL_TOKEN_BUCKET &&
        lim->algorithm != RL_GCRA)
        return lerr(a, -EINVAL,
                    "mode global shares a token bucket across hosts, so it needs algorithm "
                    "token_bucket (or gcra), not %s; use mode strict for an exact cluster-wide "
                    "window",
                    rl_algorithm_name(lim->algorithm));
    return 0;
}

static int check_layer_name(const struct at *a, const char *name)
{
    const char *why;
    if (!name)
        return 0;
    if ((why = rl__conf_text_problem(name, false)) != NULL)
        return lerr(a, -EINVAL, "the name %s", why);
    if (strlen(name) >= RL_NAME_MAX)
        return lerr(a, -EINVAL, "the name is longer than %d bytes", RL_NAME_MAX - 1);
    if (strspn(name, "0123456789") == strlen(name))
        return lerr(a, -EINVAL,
                    "a name must not be a number (unnamed layers are named by their position)");
    return 0;
}

/* What the scope needs (a descriptor, per_path) and the warning threshold. */
static int check_layer_scope(const struct at *a, const struct rl_rule_layer *l)
{
    const rl_limit *lim = &l->lim;
    const char *why;
    if (lim->scope == RL_SCOPE_DESCRIPTOR && !l->descriptor)
        return lerr(a, -EINVAL,
                    "a per_descriptor limit needs 'descriptor' (the request descriptor that "
                    "keys it, e.g. api_key)");
    if (lim->scope != RL_SCOPE_DESCRIPTOR && l->descriptor)
        return lerr(a, -EINVAL, "'descriptor' is only for scope per_descriptor, this limit is %s",
                    rl_scope_name(lim->scope));
    if (l->descriptor && (why = rl__conf_text_problem(l->descriptor, false)) != NULL)
        return lerr(a, -EINVAL, "the descriptor %s", why);
    if ((lim->flags & RL_LIMIT_PER_PATH) && lim->scope != RL_SCOPE_ENDPOINT)
        return lerr(a, -EINVAL, "'per_path' is only for scope per_endpoint, this limit is %s",
                    rl_scope_name(lim->scope));
    if (lim->warn_permille > 1000)
        return lerr(a, -EINVAL, "warn_threshold %u/1000 is above 1", (unsigned)lim->warn_permille);
    return 0;
}

/* Layer i's name repeats none of ls[0..i). Quadratic, on lists check_counts has bounded. */
static int check_layer_dup(const struct at *a, const struct rl_rule_layer *ls, size_t i)
{
    const char *name = ls[i].name;
    for (size_t j = 0; j < i && name; j++) {
        if (!ls[j].name || strcmp(ls[j].name, name) != 0)
            continue;
        if (ls[j].line)
            return lerr(a, -EINVAL, "duplicate layer name (also layer %zu, at %u:%u)", j,
                        ls[j].line, ls[j].column);
        return lerr(a, -EINVAL, "duplicate layer name (also layer %zu)", j);
    }
    return 0;
}

/* The algorithm's own ranges (the ones rl_acquire enforces), its message without "limit: ". */
static int check_layer_params(const struct at *a, const rl_limit *lim)
{
    rl_limit tmp = *lim;
    struct rl_params p;
    int r = rl__algos[lim->algorithm]->params(&tmp, &p);
    if (r == 0)
        return 0;
    char msg[MSG_MAX];
    snprintf(msg, sizeof msg, "%s", rl_errmsg());
    return lerr(a, r, "%s", strncmp(msg, "limit: ", 7) == 0 ? msg + 7 : msg);
}

static int check_layer(const char *origin, const char *owner, const struct rl_rule_layer *ls,
                       size_t i)
{
    const struct rl_rule_layer *l = &ls[i];
    char who[MSG_MAX / 2];
    const struct at a = layer_at(origin, owner, l, i, who, sizeof who);
    int r = check_layer_kind(&a, &l->lim);
    if (r == 0)
        r = check_layer_name(&a, l->name);
    if (r == 0)
        r = check_layer_scope(&a, l);
    if (r == 0)
        r = check_layer_dup(&a, ls, i);
    if (r == 0)
        r = check_layer_params(&a, &l->lim);
    return r;
}

static int check_layers(const char *origin, const char *owner, const struct rl_rule_layer *ls,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int r = check_layer(origin, owner, ls, i);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- endpoints and tiers: the owners of layers ----------------------------------------------- */

/* An endpoint (named by its pattern) or a tier, seen the same way. */
struct owner {
    const char *name;
    const char *description;
    const struct rl_rule_layer *layers;
    size_t n;
    unsigned line, column;
};

enum owner_kind { ENDPOINTS, TIERS };

static size_t owner_count(const struct rl_ruleset *rs, enum owner_kind k)
{
    return k == ENDPOINTS ? rs->nrules : rs->ntiers;
}

static struct owner owner_at(const struct rl_ruleset *rs, enum owner_kind k, size_t i)
{
    if (k == ENDPOINTS) {
        const struct rl_rule *ru = &rs->rules[i];
        return (struct owner){ru->pattern, ru->description, ru->layers,
                              ru->nlayers, ru->line,        ru->column};
    }
    const struct rl_tier *t = &rs->tiers[i];
    return (struct owner){t->name, t->description, t->layers, t->nlayers, t->line, t->column};
}

/* An endpoint's pattern is well formed (rl__pattern_check); a tier's name is text. */
static int check_owner_name(const char *origin, enum owner_kind k, const struct owner *o, size_t i)
{
    if (k == TIERS) {
        const char *why = o->name ? rl__conf_text_problem(o->name, false) : "is missing";
        if (why)
            return verr(-EINVAL, origin, o->line, o->column, "tier %zu: the name %s", i, why);
        return 0;
    }
    if (!o->name)
        return verr(-EINVAL, origin, o->line, o->column, "endpoint %zu has no pattern", i);
    int r = rl__pattern_check(o->name);
    if (r < 0) {
        char msg[MSG_MAX];
        snprintf(msg, sizeof msg, "%s", rl_errmsg());
        return verr(r, origin, o->line, o->column, "endpoint '%s': %s", o->name, msg);
    }
    return 0;
}

static int check_owner(const char *origin, enum owner_kind k, const struct owner *o, size_t i)
{
    int r = check_owner_name(origin, k, o, i);
    if (r < 0)
        return r;
    const char *kind = k == TIERS ? "tier" : "endpoint", *why;
    if (o->description && (why = rl__conf_text_problem(o->description, true)) != NULL)
        return verr(-EINVAL, origin, o->line, o->column, "%s '%s': the description %s", kind,
                    o->name, why);
    char label[MSG_MAX / 2];
    snprintf(label, sizeof label, "%s '%s'", kind, o->name);
    return check_layers(origin, label, o->layers, o->n);
}

/* No two endpoints with one pattern, no two tiers with one name: the earliest repeat is
 * reported, at the repeat, naming where the first one is when it is known. */
static int check_owner_dups(const struct rl_ruleset *rs, const char *origin, enum owner_kind k)
{
    size_t n = owner_count(rs, k);
    if (n < 2)
        return 0;
    struct rl_conf_keyref *keys = malloc(n * sizeof *keys);
    if (!keys)
        return rl__err(-ENOMEM, "%s: out of memory", origin);
    for (size_t i = 0; i < n; i++)
        keys[i] = (struct rl_conf_keyref){owner_at(rs, k, i).name, i, NULL};
    const struct rl_conf_keyref *first = NULL, *dup = rl__conf_first_dup(keys, n, &first);
    int r = 0;
    if (dup) {
        const char *kind = k == TIERS ? "tier" : "endpoint";
        struct owner a = owner_at(rs, k, first->i), b = owner_at(rs, k, dup->i);
        if (a.line)
            r = verr(-EINVAL, origin, b.line, b.column, "%s '%s' is defined twice (first at %u:%u)",
                     kind, b.name, a.line, a.column);
        else
            r = verr(-EINVAL, origin, b.line, b.column, "%s '%s' is defined twice", kind, b.name);
    }
    free(keys);
    return r;
}

/* Every endpoint, or every tier: each one, then repeats among them. */
static int check_owners(const struct rl_ruleset *rs, const char *origin, enum owner_kind k)
{
    for (size_t i = 0; i < owner_count(rs, k); i++) {
        struct owner o = owner_at(rs, k, i);
        int r = check_owner(origin, k, &o, i);
        if (r < 0)
            return r;
    }
    return check_owner_dups(rs, origin, k);
}

/* At most RL_MAX_LAYERS layers per request: its rule's (or the defaults), the globals and the
 * largest tier's. */
static int check_counts(const struct rl_ruleset *rs, const char *origin)
{
    size_t tmax = 0;
    const char *tname = NULL;
    for (size_t i = 0; i < rs->ntiers; i++)
        if (rs->tiers[i].nlayers > tmax)
            tmax = rs->tiers[i].nlayers, tname = rs->tiers[i].name;
    for (size_t i = 0; i <= rs->nrules; i++) {
        const struct rl_rule *ru = i < rs->nrules ? &rs->rules[i] : NULL;
        size_t own = ru ? ru->nlayers : rs->ndefaults;
        size_t total = own + rs->nglobals + tmax;
        if (total <= RL_MAX_LAYERS)
            continue;
        char who[MSG_MAX / 2], tier[RL_NAME_MAX + 32] = "";
        if (ru)
            snprintf(who, sizeof who, "endpoint '%s'", ru->pattern);
        else
            snprintf(who, sizeof who, "defaults");
        if (tname)
            snprintf(tier, sizeof tier, " + %zu of tier '%.*s'", tmax, RL_NAME_MAX, tname);
        unsigned ln = ru ? ru->line : (rs->ndefaults ? rs->defaults[0].line : 0);
        unsigned co = ru ? ru->column : (rs->ndefaults ? rs->defaults[0].column : 0);
        return verr(-EINVAL, origin, ln, co,
                    "%s: too many layers for one request: %zu + %zu global%s = %zu, at most %d "
                    "(RL_MAX_LAYERS)",
                    who, own, rs->nglobals, tier, total, RL_MAX_LAYERS);
    }
    return 0;
}

/* ---- the rule set's own settings and lists --------------------------------------------------- */

static int check_settings(const struct rl_ruleset *rs, const char *origin)
{
    const char *why;
    if (rs->environment && (why = rl__conf_text_problem(rs->environment, false)) != NULL)
        return verr(-EINVAL, origin, 0, 0, "environment %s", why);
    if (rs->description && (why = rl__conf_text_problem(rs->description, true)) != NULL)
        return verr(-EINVAL, origin, 0, 0, "description %s", why);
    if (rs->warn_permille > 1000)
        return verr(-EINVAL, origin, 0, 0, "warn_threshold %u/1000 is above 1",
                    (unsigned)rs->warn_permille);
    if (rs->ipv6_prefix < 64 || rs->ipv6_prefix > 128)
        return verr(-EINVAL, origin, 0, 0, "ipv6_prefix %u is outside 64..128", rs->ipv6_prefix);
    /* 0: not set (the option's default applies); the bound is lib/options.h's. */
    if (rs->sync_interval_ms > RL_SYNC_INTERVAL_MS_MAX)
        return verr(-EINVAL, origin, 0, 0, "sync.interval %llu ms is above %u ms",
                    (unsigned long long)rs->sync_interval_ms, RL_SYNC_INTERVAL_MS_MAX);
    if (rs->sync_fallback < RL_FALLBACK_DEFAULT || rs->sync_fallback > RL_FALLBACK_CLOSED)
        return verr(-EINVAL, origin, 0, 0, "sync.fallback %d is not local, open or closed",
                    rs->sync_fallback);
    if ((unsigned)rs->audit > RL_AUDIT_ALL)
        return verr(-EINVAL, origin, 0, 0, "unknown audit mode %d", (int)rs->audit);
    return 0;
}

/* default_tier names a tier; bypass and trusted_proxies hold addresses, users are text. */
static int check_lists(const struct rl_ruleset *rs, const char *origin)
{
    if (rs->default_tier) {
        size_t i = 0;
        while (i < rs->ntiers && strcmp(rs->tiers[i].name, rs->default_tier) != 0)
            i++;
        if (i == rs->ntiers)
            return verr(-EINVAL, origin, 0, 0, "default_tier '%s' is not one of the tiers",
                        rs->default_tier);
    }
    for (size_t i = 0; i < rs->nbypass_ips; i++)
        if (!rl__conf_addr_ok(rs->bypass_ips[i]))
            return verr(-EINVAL, origin, 0, 0,
                        "bypass ips: expected an IP address or CIDR, got '%.64s'",
                        rs->bypass_ips[i]);
    const char *why;
    for (size_t i = 0; i < rs->nbypass_users; i++)
        if ((why = rl__conf_text_problem(rs->bypass_users[i], false)) != NULL)
            return verr(-EINVAL, origin, 0, 0, "bypass users: user %zu %s", i, why);
    for (size_t i = 0; i < rs->ntrusted; i++)
        if (!rl__conf_addr_ok(rs->trusted_proxies[i]))
            return verr(-EINVAL, origin, 0, 0,
                        "trusted_proxies: expected an IP address or CIDR, got '%.64s'",
                        rs->trusted_proxies[i]);
    return 0;
}

int rl__ruleset_validate(const struct rl_ruleset *rs, const char *origin)
{
    if (!origin)
        origin = "rules";
    if (!rs)
        return rl__err(-EINVAL, "%s: no rule set", origin);
    int r = check_settings(rs, origin);
    /* Counts first: the checks below are quadratic in a list's length. */
    if (r == 0)
        r = check_counts(rs, origin);
    if (r == 0)
        r = check_layers(origin, "defaults", rs->defaults, rs->ndefaults);
    if (r == 0)
        r = check_layers(origin, "global", rs->globals, rs->nglobals);
    if (r == 0)
        r = check_owners(rs, origin, ENDPOINTS);
    if (r == 0)
        r = check_owners(rs, origin, TIERS);
    if (r == 0)
        r = check_lists(rs, origin);
    return r;
}

/* ---- what this build can run ----------------------------------------------------------------- */

#if defined(RL_WITH_REDIS) && !RL_WITH_REDIS
/* The first layer of ls in a mode that needs Redis, as an error; 0 when there is none. */
static int check_local_only(const char *origin, const char *owner, const struct rl_rule_layer *ls,
                            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct rl_rule_layer *l = &ls[i];
        if (l->lim.mode == RL_MODE_LOCAL)
            continue;
        char who[MSG_MAX / 2];
        const struct at a = layer_at(origin, owner, l, i, who, sizeof who);
        return lerr(&a, -EINVAL,
                    "mode %s needs Redis, but this library was built without Redis (meson "
                    "-Dredis=enabled): use mode local",
                    rl__mode_name(l->lim.mode));
    }
    return 0;
}

int rl__ruleset_check_build(const struct rl_ruleset *rs, const char *origin, const char *pattern)
{
    int r = 0;
    if (!pattern)
        r = check_local_only(origin, "defaults", rs->defaults, rs->ndefaults);
    if (r == 0 && !pattern)
        r = check_local_only(origin, "global", rs->globals, rs->nglobals);
    for (int k = ENDPOINTS; k <= TIERS && r == 0; k++) {
        for (size_t i = 0; i < owner_count(rs, k) && r == 0; i++) {
            struct owner o = owner_at(rs, k, i);
            if (pattern && (k == TIERS || strcmp(o.name, pattern) != 0))
                continue;
            char label[MSG_MAX / 2];
            snprintf(label, sizeof label, "%s '%s'", k == TIERS ? "tier" : "endpoint", o.name);
            r = check_local_only(origin, label, o.layers, o.n);
        }
    }
    return r;
}
#else
int rl__ruleset_check_build(const struct rl_ruleset *rs, const char *origin, const char *pattern)
{
    (void)rs, (void)origin, (void)pattern;
    return 0; /* built with Redis: every mode runs (without a Redis URL, remote ones locally) */
}
#endif
