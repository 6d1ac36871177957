/*
 * The rule set in memory (struct rl_ruleset, rules.h): creating and freeing it, the edits the
 * API makes (rl_configure_endpoint's rule, rl_bypass_add/remove), and what the reader
 * (config_parse.c), the checker (config_check.c) and the writer (config_emit.c) share: the names
 * the rule file spells, the text checks, and finding repeated names (config_int.h).
 *
 * Callers: rules.c (rl_configure_endpoint, the bypass edits, freeing compiled rule sets) and the
 * config_*.c files. Nothing here blocks; new, edits and rl__conf_first_dup allocate.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config_int.h"
#include "lib/internal.h"
#include "lib/ip.h"
#include "lib/rules.h"

/* ---- the rule set ---------------------------------------------------------------------------- */

struct rl_ruleset *rl__ruleset_new(void)
{
    struct rl_ruleset *rs = calloc(1, sizeof *rs);
    if (!rs)
        return NULL;
    rs->warn_permille = 800;
    rs->ipv6_prefix = 128;
    rs->audit = RL_AUDIT_DENIALS;
    rs->sync_fallback = RL_FALLBACK_DEFAULT;
    return rs;
}

int rl__ruleset_bypass_edit(struct rl_ruleset *rs, int kind, const char *value, bool add)
{
    char ***list = kind == RL_BYPASS_USER ? &rs->bypass_users : &rs->bypass_ips;
    size_t *n = kind == RL_BYPASS_USER ? &rs->nbypass_users : &rs->nbypass_ips;
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*list)[i], value) != 0)
            continue;
        if (add)
            return 1;
        free((*list)[i]);
        memmove(&(*list)[i], &(*list)[i + 1], (*n - i - 1) * sizeof **list);
        (*n)--;
        return 0;
    }
    if (!add)
        return 1;
    char *copy = strdup(value);
    char **grown = copy ? realloc(*list, (*n + 1) * sizeof **list) : NULL;
    if (!grown) {
        free(copy);
        return -ENOMEM;
    }
    grown[(*n)++] = copy;
    *list = grown;
    return 0;
}

static void layers_free(struct rl_rule_layer *ls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ls[i].name);
        free(ls[i].descriptor);
    }
    free(ls);
}

static void strs_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void rl__ruleset_free(struct rl_ruleset *rs)
{
    if (!rs)
        return;
    free(rs->environment);
    free(rs->description);
    free(rs->default_tier);
    for (size_t i = 0; i < rs->nrules; i++) {
        free(rs->rules[i].pattern);
        free(rs->rules[i].description);
        layers_free(rs->rules[i].layers, rs->rules[i].nlayers);
    }
    free(rs->rules);
    layers_free(rs->defaults, rs->ndefaults);
    layers_free(rs->globals, rs->nglobals);
    for (size_t i = 0; i < rs->ntiers; i++) {
        free(rs->tiers[i].name);
        free(rs->tiers[i].description);
        layers_free(rs->tiers[i].layers, rs->tiers[i].nlayers);
    }
    free(rs->tiers);
    strs_free(rs->bypass_ips, rs->nbypass_ips);
    strs_free(rs->bypass_users, rs->nbypass_users);
    strs_free(rs->trusted_proxies, rs->ntrusted);
    free(rs);
}

/* ---- edits from the API ---------------------------------------------------------------------- */

static int copy_layers(const rl_limit *src, size_t n, struct rl_rule_layer **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    struct rl_rule_layer *ls = calloc(n, sizeof *ls);
    if (!ls)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ls[i].lim = src[i];
        ls[i].lim.name = NULL;
        ls[i].lim.descriptor = NULL;
        if ((src[i].name && !(ls[i].name = strdup(src[i].name))) ||
            (src[i].descriptor && !(ls[i].descriptor = strdup(src[i].descriptor)))) {
            layers_free(ls, i + 1);
            return -ENOMEM;
        }
        ls[i].lim.name = ls[i].name;
        ls[i].lim.descriptor = ls[i].descriptor;
    }
    *out = ls;
    return 0;
}

int rl__ruleset_set_rule(struct rl_ruleset *rs, const char *pattern, const rl_limit *limits,
                         size_t n)
{
    if (!rs || !pattern || (!limits && n))
        return rl__err(-EINVAL, "set rule: the rule set, pattern and limits must not be NULL");
    struct rl_rule_layer *ls;
    if (copy_layers(limits, n, &ls) < 0)
        return rl__err(-ENOMEM, "out of memory");
    for (size_t i = 0; i < rs->nrules; i++) {
        struct rl_rule *ru = &rs->rules[i];
        if (strcmp(ru->pattern, pattern) == 0) {
            layers_free(ru->layers, ru->nlayers);
            ru->layers = ls;
            ru->nlayers = n;
            ru->line = ru->column = 0; /* now defined by the API */
            return 0;
        }
    }
    char *p = strdup(pattern);
    struct rl_rule *rules = p ? realloc(rs->rules, (rs->nrules + 1) * sizeof *rules) : NULL;
    if (!rules) {
        free(p);
        layers_free(ls, n);
        return rl__err(-ENOMEM, "out of memory");
    }
    rs->rules = rules;
    rs->rules[rs->nrules++] =
        (struct rl_rule){.pattern = p, .description = NULL, .layers = ls, .nlayers = n};
    return 0;
}

/* ---- names ----------------------------------------------------------------------------------- */

static const char *const on_full_names[] = {"open", "closed"};
static const char *const audit_names[] = {
    [RL_AUDIT_OFF] = "off", [RL_AUDIT_DENIALS] = "denials", [RL_AUDIT_ALL] = "all"};
static const char *const fallback_names[RL_CONF_FALLBACKS] = {"local", "open", "closed"};

const char *rl__conf_algo_name(int i)
{
    return rl_algorithm_name((rl_algorithm)i);
}

const char *rl__conf_scope_name(int i)
{
    return rl_scope_name((rl_scope)i);
}

const char *rl__conf_mode_name(int i)
{
    return rl__mode_name((rl_mode)i);
}

const char *rl__conf_on_full_name(int i)
{
    return i >= 0 && i < 2 ? on_full_names[i] : NULL;
}

const char *rl__conf_audit_name(int i)
{
    return i >= 0 && i < 3 ? audit_names[i] : NULL;
}

const char *rl__conf_fallback_name(int i)
{
    return i >= 0 && i < RL_CONF_FALLBACKS ? fallback_names[i] : NULL;
}

static int from_names(const char *(*name_i)(int), int count, const char *s)
{
    for (int i = 0; i < count; i++)
        if (name_i(i) && strcmp(name_i(i), s) == 0)
            return i;
    return -1;
}

int rl__conf_on_full_from_name(const char *s)
{
    return from_names(rl__conf_on_full_name, 2, s);
}

int rl__conf_audit_from_name(const char *s)
{
    return from_names(rl__conf_audit_name, 3, s);
}

int rl__conf_fallback_from_name(const char *s)
{
    return from_names(rl__conf_fallback_name, RL_CONF_FALLBACKS, s);
}

/* ---- text and repeats ------------------------------------------------------------------------ */

/* Names and descriptions alike must be valid UTF-8 (config_int.h). */
const char *rl__conf_text_problem(const char *s, bool description)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!*p && !description)
        return "is empty";
    while (*p) {
        unsigned c = *p;
        if (c < 0x80) {
            if ((c < 0x20 && !(description && (c == '\n' || c == '\t'))) || c == 0x7f)
                return "contains a control character";
            p++;
            continue;
        }
        size_t n;
        unsigned min;
        unsigned cp;
        if ((c & 0xe0) == 0xc0)
            n = 1, min = 0x80, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            n = 2, min = 0x800, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            n = 3, min = 0x10000, cp = c & 0x07;
        else
            return "is not valid UTF-8";
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return "is not valid UTF-8";
            cp = cp << 6 | (p[i] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return "is not valid UTF-8";
        p += n + 1;
    }
    return NULL;
}

bool rl__conf_addr_ok(const char *s)
{
    struct rl_cidr c;
    return rl__cidr_parse(s, &c) == 0;
}

static int keyref_cmp(const void *a, const void *b)
{
    const struct rl_conf_keyref *x = a, *y = b;
    int d = strcmp(x->s, y->s);
    return d ? d : (x->i > y->i) - (x->i < y->i);
}

const struct rl_conf_keyref *rl__conf_first_dup(struct rl_conf_keyref *k, size_t n,
                                                const struct rl_conf_keyref **first)
{
    qsort(k, n, sizeof *k, keyref_cmp);
    const struct rl_conf_keyref *dup = NULL;
    for (size_t i = 1, run = 0; i < n; i++) {
        if (strcmp(k[i].s, k[run].s) != 0) {
            run = i;
            continue;
        }
        if (i == run + 1 && (!dup || k[i].i < dup->i))
            dup = &k[i], *first = &k[run];
    }
    return dup;
}
