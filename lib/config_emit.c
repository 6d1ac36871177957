/*
 * The canonical form of a rule set (rl__ruleset_emit, rules.h): the YAML that a segment stores
 * and every process parses back, that `rlctl config show` prints and that rl_config_dump
 * returns. Called by rules.c (publishing) and config_file.c (a rule file must fit a segment).
 *
 * The form is fixed so that equal rule sets give equal bytes (operators diff it, tests compare
 * it byte for byte): keys in one order, every default written at the top, a layer in flow style
 * with only what differs from the defaults besides requests, window, algorithm and scope,
 * durations in ms, strings plain only when any YAML tool reads them back as the same string.
 * libyaml's emitter writes it into a growing buffer. Allocates; never blocks.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "lib/config_int.h"
#include "lib/internal.h"
#include "lib/rules.h"

struct obuf {
    char *p;
    size_t len, cap;
};

static int write_handler(void *data, unsigned char *buf, size_t size)
{
    struct obuf *o = data;
    if (size + 1 > o->cap - o->len) {
        size_t cap = o->cap ? o->cap : 4096;
        while (size + 1 > cap - o->len)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p)
            return 0;
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, buf, size);
    o->len += size;
    return 1;
}

struct em {
    yaml_emitter_t e;
    int err; /* first failure: -ENOMEM, or -EINVAL for text libyaml refuses */
};

/* Plain when it reads back as the same string in any YAML tool, else double-quoted. */
static bool plain_ok(const char *s)
{
    static const char *const reserved[] = {"null", "true", "false", "yes", "no",
                                           "on",   "off",  "y",     "n",   "~"};
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return false;
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (strcasecmp(s, reserved[i]) == 0)
            return false;
    return true;
}

static void em_event(struct em *m, yaml_event_t *ev, int ok)
{
    if (m->err)
        return;
    if (!ok) {
        m->err = -EINVAL; /* libyaml refuses only text that is not UTF-8 */
        return;
    }
    if (!yaml_emitter_emit(&m->e, ev))
        m->err =
            m->e.error == YAML_MEMORY_ERROR || m->e.error == YAML_WRITER_ERROR ? -ENOMEM : -EINVAL;
}

static void em_raw(struct em *m, const char *s, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    size_t len = strlen(s);
    if (len > INT_MAX) {
        m->err = m->err ? m->err : -EINVAL;
        return;
    }
    em_event(m, &ev,
             yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)s, (int)len, 1, 1,
                                          style));
}

static void em_str(struct em *m, const char *s)
{
    em_raw(m, s, plain_ok(s) ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

static void em_u64(struct em *m, uint64_t v, const char *suffix)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu%s", (unsigned long long)v, suffix);
    em_raw(m, buf, YAML_PLAIN_SCALAR_STYLE);
}

static void em_permille(struct em *m, uint32_t p)
{
    char buf[16];
    int n = snprintf(buf, sizeof buf, "%u.%03u", (unsigned)(p / 1000), (unsigned)(p % 1000));
    while (n > 3 && buf[n - 1] == '0') /* "0.800" -> "0.8", "1.000" -> "1.0" */
        buf[--n] = '\0';
    em_raw(m, buf, YAML_PLAIN_SCALAR_STYLE);
}

static void em_map(struct em *m, bool flow)
{
    yaml_event_t ev;
    em_event(m, &ev,
             yaml_mapping_start_event_initialize(
                 &ev, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE));
}

static void em_seq(struct em *m, bool flow)
{
    yaml_event_t ev;
    em_event(m, &ev,
             yaml_sequence_start_event_initialize(
                 &ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE));
}

static void em_map_end(struct em *m)
{
    yaml_event_t ev;
    em_event(m, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void em_seq_end(struct em *m)
{
    yaml_event_t ev;
    em_event(m, &ev, yaml_sequence_end_event_initialize(&ev));
}

static void em_key(struct em *m, const char *key)
{
    em_raw(m, key, YAML_PLAIN_SCALAR_STYLE);
}

/* key: word, for fixed words (true, closed, enum names). */
static void em_word(struct em *m, const char *key, const char *word)
{
    em_key(m, key);
    em_raw(m, word, YAML_PLAIN_SCALAR_STYLE);
}

/* One layer, in flow style: only what differs from the defaults besides requests, window,
 * algorithm and scope, in a fixed order. */
static void em_layer(struct em *m, const struct rl_rule_layer *l)
{
    const rl_limit *lim = &l->lim;
    em_map(m, true);
    if (l->name) {
        em_key(m, "name");
        em_str(m, l->name);
    }
    em_key(m, "requests");
    em_u64(m, lim->requests, "");
    em_key(m, "window");
    em_u64(m, lim->window_ms, "ms");
    if (lim->burst) {
        em_key(m, "burst");
        em_u64(m, lim->burst, "");
    }
    em_word(m, "algorithm", rl__conf_algo_name((int)lim->algorithm));
    em_word(m, "scope", rl__conf_scope_name((int)lim->scope));
    if (l->descriptor) {
        em_key(m, "descriptor");
        em_str(m, l->descriptor);
    }
    if (lim->flags & RL_LIMIT_PER_PATH)
        em_word(m, "per_path", "true");
    if (lim->mode != RL_MODE_LOCAL)
        em_word(m, "mode", rl__conf_mode_name((int)lim->mode));
    if (lim->redis_ttl_ms) {
        em_key(m, "redis_ttl");
        em_u64(m, lim->redis_ttl_ms, "ms");
    }
    if (lim->flags & RL_LIMIT_ON_FULL_CLOSED)
        em_word(m, "on_full", "closed");
    if (lim->flags & RL_LIMIT_SHADOW)
        em_word(m, "shadow", "true");
    if (lim->warn_permille) {
        em_key(m, "warn_threshold");
        em_permille(m, lim->warn_permille);
    }
    em_map_end(m);
}

static void em_layers(struct em *m, const char *key, const struct rl_rule_layer *ls, size_t n)
{
    em_key(m, key);
    em_seq(m, n == 0);
    for (size_t i = 0; i < n; i++)
        em_layer(m, &ls[i]);
    em_seq_end(m);
}

static void em_strs(struct em *m, const char *key, char *const *v, size_t n)
{
    em_key(m, key);
    em_seq(m, true);
    for (size_t i = 0; i < n; i++)
        em_str(m, v[i]);
    em_seq_end(m);
}

/* version, environment, description, warn_threshold, ipv6_prefix, audit, default_tier. */
static void em_settings(struct em *m, const struct rl_ruleset *rs)
{
    em_key(m, "version");
    em_raw(m, "1", YAML_PLAIN_SCALAR_STYLE);
    if (rs->environment) {
        em_key(m, "environment");
        em_str(m, rs->environment);
    }
    if (rs->description) {
        em_key(m, "description");
        em_str(m, rs->description);
    }
    em_key(m, "warn_threshold");
    em_permille(m, rs->warn_permille);
    em_key(m, "ipv6_prefix");
    em_u64(m, rs->ipv6_prefix, "");
    em_key(m, "audit");
    const char *audit = rl__conf_audit_name((int)rs->audit);
    em_str(m, audit ? audit : "?");
    if (rs->default_tier) {
        em_key(m, "default_tier");
        em_str(m, rs->default_tier);
    }
}

/* sync: only when the rule set sets it. */
static void em_sync(struct em *m, const struct rl_ruleset *rs)
{
    if (!rs->sync_interval_ms && rs->sync_fallback == RL_FALLBACK_DEFAULT)
        return;
    em_key(m, "sync");
    em_map(m, false);
    if (rs->sync_interval_ms) {
        em_key(m, "interval");
        em_u64(m, rs->sync_interval_ms, "ms");
    }
    if (rs->sync_fallback != RL_FALLBACK_DEFAULT) {
        em_key(m, "fallback");
        em_str(m, rl__conf_fallback_name(rs->sync_fallback));
    }
    em_map_end(m);
}

/* The body of an endpoint or a tier: its description and limits. */
static void em_owner_body(struct em *m, const char *description, const struct rl_rule_layer *ls,
                          size_t n)
{
    if (description) {
        em_key(m, "description");
        em_str(m, description);
    }
    em_layers(m, "limits", ls, n);
}

static void em_endpoints(struct em *m, const struct rl_ruleset *rs)
{
    em_key(m, "endpoints");
    em_seq(m, rs->nrules == 0);
    for (size_t i = 0; i < rs->nrules; i++) {
        const struct rl_rule *ru = &rs->rules[i];
        em_map(m, false);
        em_key(m, "pattern");
        em_str(m, ru->pattern);
        em_owner_body(m, ru->description, ru->layers, ru->nlayers);
        em_map_end(m);
    }
    em_seq_end(m);
}

static void em_tiers(struct em *m, const struct rl_ruleset *rs)
{
    em_key(m, "tiers");
    em_map(m, rs->ntiers == 0);
    for (size_t i = 0; i < rs->ntiers; i++) {
        const struct rl_tier *t = &rs->tiers[i];
        em_str(m, t->name);
        em_map(m, false);
        em_owner_body(m, t->description, t->layers, t->nlayers);
        em_map_end(m);
    }
    em_map_end(m);
}

static void em_ruleset(struct em *m, const struct rl_ruleset *rs)
{
    em_map(m, false);
    em_settings(m, rs);
    em_sync(m, rs);
    em_layers(m, "defaults", rs->defaults, rs->ndefaults);
    em_layers(m, "global", rs->globals, rs->nglobals);
    em_endpoints(m, rs);
    em_tiers(m, rs);
    em_key(m, "bypass");
    em_map(m, false);
    em_strs(m, "ips", rs->bypass_ips, rs->nbypass_ips);
    em_strs(m, "users", rs->bypass_users, rs->nbypass_users);
    em_map_end(m);
    em_strs(m, "trusted_proxies", rs->trusted_proxies, rs->ntrusted);
    em_map_end(m);
}

int rl__ruleset_emit(const struct rl_ruleset *rs, char **text, size_t *len)
{
    if (!rs || !text || !len)
        return rl__err(-EINVAL, "rl__ruleset_emit: arguments must not be NULL");
    *text = NULL;
    *len = 0;
    /* Only a valid rule set has a canonical form (and its enums index the name tables). */
    int r = rl__ruleset_validate(rs, "rules");
    if (r < 0)
        return r;
    struct obuf o = {NULL, 0, 0};
    struct em m;
    m.err = 0;
    if (!yaml_emitter_initialize(&m.e))
        return rl__err(-ENOMEM, "out of memory");
    yaml_emitter_set_output(&m.e, write_handler, &o);
    yaml_emitter_set_unicode(&m.e, 1);
    yaml_emitter_set_width(&m.e, -1);
    yaml_emitter_set_indent(&m.e, 2);
    yaml_event_t ev;
    em_event(&m, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    em_event(&m, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    em_ruleset(&m, rs);
    em_event(&m, &ev, yaml_document_end_event_initialize(&ev, 1));
    em_event(&m, &ev, yaml_stream_end_event_initialize(&ev));
    if (!m.err && !yaml_emitter_flush(&m.e))
        m.err = -ENOMEM;
    yaml_emitter_delete(&m.e);
    if (m.err || !o.p) {
        free(o.p);
        return rl__err(m.err ? m.err : -ENOMEM, "rl__ruleset_emit: %s",
                       m.err == -EINVAL ? "libyaml refused a string" : "out of memory");
    }
    o.p[o.len] = '\0';
    *text = o.p;
    *len = o.len;
    return 0;
}
