/*
 * The YAML rule file: parsing (libyaml's document API), validation, and the canonical form.
 * docs/configuration.md is the user's description of the schema; this file implements it.
 *
 * Parsing loads the whole document (libyaml keeps every node's position) and walks it with the
 * schema. Every mapping is checked for unknown and duplicate keys before its values are read;
 * each value is checked where it is read, so a message carries the value's own line and column.
 * What needs the whole rule set (limits against the algorithms' ranges, patterns, layer counts,
 * tier names) is rl__ruleset_validate(), which the parser runs last and which uses the positions
 * stored in the layers, rules and tiers.
 *
 * Messages: "ORIGIN:LINE:COLUMN: expected WHAT for 'KEY', got FOUND" (1-based positions).
 * A key without a value ("burst:") is the same as an absent key, except for required keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "internal.h"
#include "ip.h"
#include "pattern.h"
#include "rules.h"

#define CONFIG_FILE_MAX (1u << 20) /* bytes a rule file may have */
#define MSG_MAX         512
#define SHOW_MAX        40 /* bytes of a bad value quoted in a message */
#define MAP_KEYS_MAX    16 /* keys of the largest fixed-key mapping (a limit: 14) */

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

/* ---- names ----------------------------------------------------------------------------------- */

#define MODE_COUNT 3

static const char *const on_full_names[] = {"open", "closed"};
static const char *const audit_names[] = {
    [RL_AUDIT_OFF] = "off", [RL_AUDIT_DENIALS] = "denials", [RL_AUDIT_ALL] = "all"};

static const char *algo_name_i(int i)
{
    return rl_algorithm_name((rl_algorithm)i);
}

static const char *scope_name_i(int i)
{
    return rl_scope_name((rl_scope)i);
}

static const char *mode_name_i(int i)
{
    return rl__mode_name((rl_mode)i);
}

static const char *on_full_name_i(int i)
{
    return i >= 0 && i < 2 ? on_full_names[i] : NULL;
}

static const char *audit_name_i(int i)
{
    return i >= 0 && i < 3 ? audit_names[i] : NULL;
}

static int from_names(const char *(*name_i)(int), int count, const char *s)
{
    for (int i = 0; i < count; i++)
        if (name_i(i) && strcmp(name_i(i), s) == 0)
            return i;
    return -1;
}

static int on_full_from_name(const char *s)
{
    return from_names(on_full_name_i, 2, s);
}

static int audit_from_name(const char *s)
{
    return from_names(audit_name_i, 3, s);
}

/* "a, b or c" into buf. */
static const char *name_list(char *buf, size_t len, const char *(*name_i)(int), int count)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < count && n < len; i++) {
        const char *sep = i == 0 ? "" : i == count - 1 ? " or " : ", ";
        int w = snprintf(buf + n, len - n, "%s%s", sep, name_i(i));
        if (w < 0)
            break;
        n += (size_t)w;
    }
    return buf;
}

/* Optimal string alignment distance (edits and transpositions); large for long words. */
static unsigned edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32)
        return 99;
    unsigned d[33][33];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = a[i - 1] != b[j - 1];
            unsigned v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* The candidate closest to word, when it is close enough to be a likely typo; else NULL. */
static const char *suggest(const char *word, const char *const *names, size_t count)
{
    const char *best = NULL;
    unsigned best_d = 99;
    size_t wl = strlen(word);
    for (size_t i = 0; i < count; i++) {
        const char *c = names[i];
        if (!c)
            continue;
        unsigned d = edit_distance(word, c);
        size_t cl = strlen(c), longer = wl > cl ? wl : cl;
        bool close = d <= 1 || (size_t)d * 3 <= longer;
        if (!close && wl >= 3 && strstr(c, word))
            close = true, d += 50; /* a part of it ("sliding", "user"), after any typo */
        if (close && d < best_d) {
            best = c;
            best_d = d;
        }
    }
    return best;
}

/* ---- text checks ----------------------------------------------------------------------------- */

/* NULL when s is acceptable text; else what is wrong with it. Names may not be empty nor hold
 * control characters; descriptions may hold new lines and tabs. Both must be valid UTF-8. */
static const char *text_problem(const char *s, bool description)
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

static bool addr_ok(const char *s)
{
    struct rl_cidr c;
    return rl__cidr_parse(s, &c) == 0;
}

/* ---- parsing: nodes, positions and messages -------------------------------------------------- */

struct pctx {
    yaml_document_t *doc;
    const char *origin;
    struct rl_ruleset *rs;
};

static yaml_node_t *node(const struct pctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

static unsigned pos(size_t zero_based)
{
    return zero_based >= UINT_MAX ? UINT_MAX : (unsigned)zero_based + 1;
}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A plain empty scalar, ~ or null: "no value". */
static bool is_null(const yaml_node_t *n)
{
    if (!is_plain(n))
        return false;
    const char *v = sval(n);
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static bool absent(const yaml_node_t *n)
{
    return !n || is_null(n);
}

/* What a node is, for "got ...": 'abc', the string "5", a list, a mapping, nothing. Keys are
 * always shown as 'abc' (as_key). */
static const char *describe_ex(const yaml_node_t *n, char *buf, size_t len, bool as_key)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type != YAML_SCALAR_NODE)
        return "nothing";
    if (is_plain(n) && n->data.scalar.length == 0 && !as_key)
        return "nothing";
    char shown[SHOW_MAX * 2 + 4];
    size_t o = 0, l = n->data.scalar.length;
    const unsigned char *v = n->data.scalar.value;
    size_t cut = l > SHOW_MAX ? SHOW_MAX : l;
    while (cut < l && cut > 0 && (v[cut] & 0xc0) == 0x80)
        cut--; /* do not split a UTF-8 sequence */
    for (size_t i = 0; i < cut; i++)
        shown[o++] = (char)(v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i]);
    if (cut < l)
        shown[o++] = '.', shown[o++] = '.', shown[o++] = '.';
    shown[o] = '\0';
    if (is_plain(n) || as_key)
        snprintf(buf, len, "'%s'", shown);
    else
        snprintf(buf, len, "the string \"%s\"", shown);
    return buf;
}

static const char *describe(const yaml_node_t *n, char *buf, size_t len)
{
    return describe_ex(n, buf, len, false);
}

static int perr(const struct pctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int perr(const struct pctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rl__err(-EINVAL, "%s:%u:%u: %s", c->origin, pos(n->start_mark.line),
                   pos(n->start_mark.column), msg);
}

/* "expected WHAT for 'KEY', got FOUND" at the value. */
static int expect(const struct pctx *c, const yaml_node_t *v, const char *what, const char *key)
{
    char buf[SHOW_MAX * 2 + 32];
    return perr(c, v, "expected %s for '%s', got %s", what, key, describe(v, buf, sizeof buf));
}

static int nomem(const struct pctx *c)
{
    return rl__err(-ENOMEM, "%s: out of memory while reading the rule set", c->origin);
}

/*
 * Reads a mapping whose keys come from keys[0..nkeys): val[i] is the value of keys[i], or NULL
 * when absent. Keys that are unknown, repeated or not scalars are errors. `what` names the
 * mapping in messages ("a limit").
 */
static int read_map(const struct pctx *c, const yaml_node_t *map, const char *what,
                    const char *const *keys, size_t nkeys, yaml_node_t **val)
{
    const yaml_node_t *kn[MAP_KEYS_MAX];
    for (size_t i = 0; i < nkeys; i++)
        val[i] = NULL, kn[i] = NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = node(c, p->key);
        char buf[SHOW_MAX * 2 + 32];
        if (k->type != YAML_SCALAR_NODE)
            return perr(c, k, "expected a key name in %s, got %s", what,
                        describe(k, buf, sizeof buf));
        size_t i = 0;
        while (i < nkeys && strcmp(keys[i], sval(k)) != 0)
            i++;
        if (i == nkeys) {
            const char *s = suggest(sval(k), keys, nkeys);
            if (s)
                return perr(c, k, "unknown key %s (did you mean '%s'?)",
                            describe_ex(k, buf, sizeof buf, true), s);
            char list[MSG_MAX / 2];
            size_t o = 0;
            list[0] = '\0';
            for (size_t j = 0; j < nkeys && o < sizeof list; j++) {
                int w = snprintf(list + o, sizeof list - o, "%s%s", j ? ", " : "", keys[j]);
                if (w < 0)
                    break;
                o += (size_t)w;
            }
            return perr(c, k, "unknown key %s in %s (expected one of: %s)",
                        describe_ex(k, buf, sizeof buf, true), what, list);
        }
        if (kn[i])
            return perr(c, k, "duplicate key '%s' (first at %u:%u)", keys[i],
                        pos(kn[i]->start_mark.line), pos(kn[i]->start_mark.column));
        kn[i] = k;
        val[i] = node(c, p->value);
    }
    return 0;
}

/* ---- parsing: scalars ------------------------------------------------------------------------ */

static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int get_u64(const struct pctx *c, const yaml_node_t *v, const char *key, const char *what,
                   uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t x;
    if (!is_plain(v) || !parse_u64(sval(v), &x) || x < min || x > max)
        return expect(c, v, what, key);
    *out = x;
    return 0;
}

static int get_duration(const struct pctx *c, const yaml_node_t *v, const char *key, bool positive,
                        uint64_t *ms)
{
    if (v->type != YAML_SCALAR_NODE || is_null(v) || rl__duration_ms(sval(v), ms) < 0)
        return expect(c, v, "a duration (300, 250ms, 300s, 5m, 1h, 1d)", key);
    if (positive && *ms == 0)
        return expect(c, v, "a positive duration", key);
    return 0;
}

/* "0", "1", "0.8", "0.125", "1.0": permille; at most 3 decimals (zeros beyond are fine). */
static bool parse_permille(const char *s, uint32_t *out)
{
    if (*s != '0' && *s != '1')
        return false;
    uint32_t v = (uint32_t)(*s++ - '0') * 1000;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return false;
        uint32_t scale = 100;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (scale)
                v += (uint32_t)(*s - '0') * scale;
            else if (*s != '0')
                return false;
            scale /= 10;
        }
    }
    if (*s || v > 1000)
        return false;
    *out = v;
    return true;
}

static int get_fraction(const struct pctx *c, const yaml_node_t *v, const char *key,
                        bool allow_zero, uint32_t *out)
{
    uint32_t p;
    if (!is_plain(v) || !parse_permille(sval(v), &p) || (p == 0 && !allow_zero))
        return expect(c, v,
                      allow_zero
                          ? "a fraction from 0 to 1 (at most 3 decimals, e.g. 0.8)"
                          : "a fraction above 0 and at most 1 (at most 3 decimals, e.g. 0.8)",
                      key);
    *out = p;
    return 0;
}

static int get_bool(const struct pctx *c, const yaml_node_t *v, const char *key, bool *out)
{
    if (is_plain(v)) {
        const char *s = sval(v);
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
            *out = true;
            return 0;
        }
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
            *out = false;
            return 0;
        }
    }
    return expect(c, v, "true or false", key);
}

/* A string (any scalar); *out is replaced. */
static int get_str(const struct pctx *c, const yaml_node_t *v, const char *key, char **out)
{
    if (v->type != YAML_SCALAR_NODE)
        return expect(c, v, "a string", key);
    if (strlen(sval(v)) != v->data.scalar.length)
        return expect(c, v, "text without NUL characters", key);
    char *s = strdup(sval(v));
    if (!s)
        return nomem(c);
    free(*out);
    *out = s;
    return 0;
}

static int get_choice(const struct pctx *c, const yaml_node_t *v, const char *key,
                      int (*from_name)(const char *), const char *(*name_i)(int), int count,
                      int *out)
{
    int x = -1;
    if (v->type == YAML_SCALAR_NODE && !is_null(v))
        x = from_name(sval(v));
    if (x >= 0) {
        *out = x;
        return 0;
    }
    char what[160], buf[SHOW_MAX * 2 + 32];
    const char *names[8];
    size_t n = 0;
    for (int i = 0; i < count && n < 8; i++)
        names[n++] = name_i(i);
    name_list(what, sizeof what, name_i, count);
    const char *s = v->type == YAML_SCALAR_NODE ? suggest(sval(v), names, n) : NULL;
    if (s && !is_null(v))
        return perr(c, v, "expected %s for '%s', got %s (did you mean '%s'?)", what, key,
                    describe(v, buf, sizeof buf), s);
    return expect(c, v, what, key);
}

/* ---- parsing: layers ------------------------------------------------------------------------- */

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
    int r = get_bool(c, v, key, &b);
    if (r == 0 && b)
        lim->flags |= bit;
    return r;
}

static int parse_layer(const struct pctx *c, const yaml_node_t *n, struct rl_rule_layer *out)
{
    char buf[SHOW_MAX * 2 + 32];
    if (n->type != YAML_MAPPING_NODE)
        return perr(c, n, "expected a limit such as {requests: 100, window: 60s}, got %s",
                    describe(n, buf, sizeof buf));
    out->line = pos(n->start_mark.line);
    out->column = pos(n->start_mark.column);
    yaml_node_t *v[LK_COUNT];
    int r = read_map(c, n, "a limit", layer_keys, LK_COUNT, v);
    if (r < 0)
        return r;
    rl_limit *lim = &out->lim;
    if (!v[LK_REQUESTS])
        return perr(c, n,
                    "expected 'requests' in this limit, got none (a limit needs requests "
                    "and window)");
    r = get_u64(c, v[LK_REQUESTS], "requests", "a positive integer", 1, UINT64_MAX, &lim->requests);
    if (r < 0)
        return r;
    if (v[LK_WINDOW] && v[LK_WINDOW_MS])
        return perr(c, v[LK_WINDOW_MS], "expected one of 'window' and 'window_ms', got both");
    if (v[LK_WINDOW]) {
        r = get_duration(c, v[LK_WINDOW], "window", true, &lim->window_ms);
    } else if (v[LK_WINDOW_MS]) {
        r = get_u64(c, v[LK_WINDOW_MS], "window_ms", "a positive integer (milliseconds)", 1,
                    UINT64_MAX, &lim->window_ms);
    } else {
        return perr(c, n,
                    "expected 'window' in this limit, got none (a limit needs requests "
                    "and window)");
    }
    if (r < 0)
        return r;
    if (!absent(v[LK_BURST])) {
        r = get_u64(c, v[LK_BURST], "burst", "an integer >= 0", 0, UINT64_MAX, &lim->burst);
        if (r < 0)
            return r;
    }
    int x = 0;
    if (!absent(v[LK_ALGORITHM])) {
        r = get_choice(c, v[LK_ALGORITHM], "algorithm", rl__algorithm_from_name, algo_name_i,
                       RL_ALGORITHM_COUNT, &x);
        if (r < 0)
            return r;
        lim->algorithm = (rl_algorithm)x;
    }
    if (!absent(v[LK_SCOPE])) {
        r = get_choice(c, v[LK_SCOPE], "scope", rl__scope_from_name, scope_name_i, RL_SCOPE_COUNT,
                       &x);
        if (r < 0)
            return r;
        lim->scope = (rl_scope)x;
    }
    if (!absent(v[LK_DESCRIPTOR])) {
        r = get_str(c, v[LK_DESCRIPTOR], "descriptor", &out->descriptor);
        if (r < 0)
            return r;
        lim->descriptor = out->descriptor;
    }
    if (!absent(v[LK_MODE])) {
        r = get_choice(c, v[LK_MODE], "mode", rl__mode_from_name, mode_name_i, MODE_COUNT, &x);
        if (r < 0)
            return r;
        lim->mode = (rl_mode)x;
    }
    if (!absent(v[LK_REDIS_TTL])) {
        r = get_duration(c, v[LK_REDIS_TTL], "redis_ttl", false, &lim->redis_ttl_ms);
        if (r < 0)
            return r;
    }
    if (!absent(v[LK_NAME])) {
        r = get_str(c, v[LK_NAME], "name", &out->name);
        if (r < 0)
            return r;
        lim->name = out->name;
    }
    r = parse_flag(c, v[LK_SHADOW], "shadow", RL_LIMIT_SHADOW, lim);
    if (r < 0)
        return r;
    if (!absent(v[LK_ON_FULL])) {
        r = get_choice(c, v[LK_ON_FULL], "on_full", on_full_from_name, on_full_name_i, 2, &x);
        if (r < 0)
            return r;
        if (x == 1)
            lim->flags |= RL_LIMIT_ON_FULL_CLOSED;
    }
    r = parse_flag(c, v[LK_PER_PATH], "per_path", RL_LIMIT_PER_PATH, lim);
    if (r < 0)
        return r;
    if (!absent(v[LK_WARN]))
        return get_fraction(c, v[LK_WARN], "warn_threshold", false, &lim->warn_permille);
    return 0;
}

/* A list of layers into *ls / *n (owned by the caller's struct, so freed on any error). */
static int parse_layers(const struct pctx *c, const yaml_node_t *v, const char *key,
                        struct rl_rule_layer **ls, size_t *n)
{
    if (absent(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return expect(c, v, "a list of limits", key);
    size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (cnt == 0)
        return 0;
    *ls = calloc(cnt, sizeof **ls);
    if (!*ls)
        return nomem(c);
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
    char buf[SHOW_MAX * 2 + 32];
    if (n->type != YAML_MAPPING_NODE)
        return perr(c, n,
                    "expected an endpoint such as {pattern: \"GET:/api/*\", limits: [...]}, "
                    "got %s",
                    describe(n, buf, sizeof buf));
    ru->line = pos(n->start_mark.line);
    ru->column = pos(n->start_mark.column);
    yaml_node_t *v[RK_COUNT];
    int r = read_map(c, n, "an endpoint", rule_keys, RK_COUNT, v);
    if (r < 0)
        return r;
    if (!v[RK_PATTERN])
        return perr(c, n, "expected 'pattern' in this endpoint, got none");
    if (is_null(v[RK_PATTERN]))
        return expect(c, v[RK_PATTERN], "a pattern such as \"POST:/auth/login\"", "pattern");
    r = get_str(c, v[RK_PATTERN], "pattern", &ru->pattern);
    if (r < 0)
        return r;
    if (!absent(v[RK_DESCRIPTION])) {
        r = get_str(c, v[RK_DESCRIPTION], "description", &ru->description);
        if (r < 0)
            return r;
    }
    if (!v[RK_LIMITS])
        return perr(c, n,
                    "expected 'limits' in endpoint '%s', got none (write limits: [] for "
                    "an endpoint without limits of its own)",
                    ru->pattern);
    if (is_null(v[RK_LIMITS]))
        return expect(c, v[RK_LIMITS], "a list of limits", "limits");
    return parse_layers(c, v[RK_LIMITS], "limits", &ru->layers, &ru->nlayers);
}

static int parse_rules(const struct pctx *c, const yaml_node_t *v)
{
    struct rl_ruleset *rs = c->rs;
    if (absent(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return expect(c, v, "a list of endpoints", "endpoints");
    size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (cnt == 0)
        return 0;
    rs->rules = calloc(cnt, sizeof *rs->rules);
    if (!rs->rules)
        return nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        rs->nrules = i + 1;
        int r = parse_rule(c, node(c, v->data.sequence.items.start[i]), &rs->rules[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

struct keyref {
    const char *s;
    size_t i;
    const yaml_node_t *n;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int d = strcmp(x->s, y->s);
    return d ? d : (x->i > y->i) - (x->i < y->i);
}

/* Duplicate keys of a mapping with free-form keys (tier names): the earliest repeat is reported.
 * Sorting keeps this O(n log n) for large files. */
static int check_dup_keys(const struct pctx *c, const yaml_node_t *map, const char *what)
{
    size_t cnt = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start), m = 0;
    if (cnt < 2)
        return 0;
    struct keyref *k = malloc(cnt * sizeof *k);
    if (!k)
        return nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *kn = node(c, map->data.mapping.pairs.start[i].key);
        if (kn->type == YAML_SCALAR_NODE)
            k[m++] = (struct keyref){sval(kn), i, kn};
    }
    qsort(k, m, sizeof *k, keyref_cmp);
    const struct keyref *dup = NULL, *first = NULL;
    for (size_t i = 1, run = 0; i < m; i++) {
        if (strcmp(k[i].s, k[run].s) != 0) {
            run = i;
            continue;
        }
        if (i == run + 1 && (!dup || k[i].i < dup->i))
            dup = &k[i], first = &k[run];
    }
    int r = 0;
    if (dup)
        r = perr(c, dup->n, "duplicate %s '%s' (first at %u:%u)", what, dup->s,
                 pos(first->n->start_mark.line), pos(first->n->start_mark.column));
    free(k);
    return r;
}

enum { TK_DESCRIPTION, TK_LIMITS, TK_COUNT };
static const char *const tier_keys[TK_COUNT] = {"description", "limits"};

static int parse_tier(const struct pctx *c, const yaml_node_t *k, const yaml_node_t *v,
                      struct rl_tier *t)
{
    char buf[SHOW_MAX * 2 + 32];
    if (k->type != YAML_SCALAR_NODE || is_null(k))
        return perr(c, k, "expected a tier name, got %s", describe(k, buf, sizeof buf));
    t->line = pos(k->start_mark.line);
    t->column = pos(k->start_mark.column);
    int r = get_str(c, k, "tiers", &t->name);
    if (r < 0)
        return r;
    if (v->type == YAML_SEQUENCE_NODE)
        return parse_layers(c, v, t->name, &t->layers, &t->nlayers);
    if (v->type != YAML_MAPPING_NODE)
        return perr(c, v,
                    "expected the limits of tier '%s' (a list, or a mapping with 'limits'), "
                    "got %s",
                    t->name, describe(v, buf, sizeof buf));
    yaml_node_t *tv[TK_COUNT];
    r = read_map(c, v, "a tier", tier_keys, TK_COUNT, tv);
    if (r < 0)
        return r;
    if (!absent(tv[TK_DESCRIPTION])) {
        r = get_str(c, tv[TK_DESCRIPTION], "description", &t->description);
        if (r < 0)
            return r;
    }
    if (!tv[TK_LIMITS])
        return perr(c, v, "expected 'limits' in tier '%s', got none", t->name);
    if (is_null(tv[TK_LIMITS]))
        return expect(c, tv[TK_LIMITS], "a list of limits", "limits");
    return parse_layers(c, tv[TK_LIMITS], "limits", &t->layers, &t->nlayers);
}

static int parse_tiers(const struct pctx *c, const yaml_node_t *v)
{
    struct rl_ruleset *rs = c->rs;
    if (absent(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return expect(c, v, "a mapping of tier names to limits", "tiers");
    int r = check_dup_keys(c, v, "tier");
    if (r < 0)
        return r;
    size_t cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (cnt == 0)
        return 0;
    rs->tiers = calloc(cnt, sizeof *rs->tiers);
    if (!rs->tiers)
        return nomem(c);
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
        return expect(c, v, addr ? "a list of IP addresses or CIDRs" : "a list of user names", key);
    size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (cnt == 0)
        return 0;
    *out = calloc(cnt, sizeof **out);
    if (!*out)
        return nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *it = node(c, v->data.sequence.items.start[i]);
        if (it->type != YAML_SCALAR_NODE || is_null(it))
            return expect(c, it, what, key);
        *n = i + 1;
        int r = get_str(c, it, key, &(*out)[i]);
        if (r < 0)
            return r;
        if (addr ? !addr_ok((*out)[i]) : text_problem((*out)[i], false) != NULL)
            return expect(c, it, what, key);
    }
    return 0;
}

enum { SK_INTERVAL, SK_FALLBACK, SK_COUNT };
static const char *const sync_keys[SK_COUNT] = {"interval", "fallback"};
static const char *const fallback_names[3] = {"local", "open", "closed"};

static int fallback_from_name(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, fallback_names[i]) == 0)
            return i;
    return -1;
}

static const char *fallback_name_i(int i)
{
    return i >= 0 && i < 3 ? fallback_names[i] : NULL;
}

/* sync: {interval: 100ms, fallback: local} — GLOBAL mode's defaults for this rule set. */
static int parse_sync(const struct pctx *c, const yaml_node_t *v)
{
    struct rl_ruleset *rs = c->rs;
    if (absent(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return expect(c, v, "a mapping such as {interval: 100ms, fallback: local}", "sync");
    yaml_node_t *sv[SK_COUNT];
    int r = read_map(c, v, "sync", sync_keys, SK_COUNT, sv);
    if (r == 0 && !absent(sv[SK_INTERVAL])) {
        r = get_duration(c, sv[SK_INTERVAL], "interval", true, &rs->sync_interval_ms);
        if (r == 0 && rs->sync_interval_ms > 60000)
            r = expect(c, sv[SK_INTERVAL], "a duration from 1ms to 60s", "interval");
    }
    if (r == 0 && !absent(sv[SK_FALLBACK]))
        r = get_choice(c, sv[SK_FALLBACK], "fallback", fallback_from_name, fallback_name_i, 3,
                       &rs->sync_fallback);
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
        return expect(c, v, "a mapping such as {ips: [...], users: [...]}", "bypass");
    yaml_node_t *bv[BK_COUNT];
    int r = read_map(c, v, "bypass", bypass_keys, BK_COUNT, bv);
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
        return expect(c, v, "the name of a tier (this file defines no tiers)", "default_tier");
    char what[MSG_MAX / 2];
    size_t o = (size_t)snprintf(what, sizeof what, "the name of a tier (");
    for (size_t i = 0; i < rs->ntiers && o < sizeof what; i++) {
        int w = snprintf(what + o, sizeof what - o, "%s%s", i ? ", " : "", rs->tiers[i].name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (o + 2 < sizeof what)
        memcpy(what + o, ")", 2);
    return expect(c, v, what, "default_tier");
}

static int parse_top(const struct pctx *c, const yaml_node_t *root)
{
    struct rl_ruleset *rs = c->rs;
    char buf[SHOW_MAX * 2 + 32];
    if (root->type != YAML_MAPPING_NODE)
        return perr(c, root, "expected a rule set (a mapping starting with 'version: 1'), got %s",
                    describe(root, buf, sizeof buf));
    yaml_node_t *v[K_COUNT];
    int r = read_map(c, root, "the rule set", top_keys, K_COUNT, v);
    if (r < 0)
        return r;
    uint64_t version;
    if (!v[K_VERSION])
        return perr(c, root, "expected 'version: 1' in the rule set, got no 'version'");
    r = get_u64(c, v[K_VERSION], "version", "1 (the only version of this schema)", 1, 1, &version);
    if (r == 0 && !absent(v[K_ENVIRONMENT]))
        r = get_str(c, v[K_ENVIRONMENT], "environment", &rs->environment);
    if (r == 0 && !absent(v[K_DESCRIPTION]))
        r = get_str(c, v[K_DESCRIPTION], "description", &rs->description);
    if (r == 0 && !absent(v[K_WARN]))
        r = get_fraction(c, v[K_WARN], "warn_threshold", true, &rs->warn_permille);
    if (r == 0 && !absent(v[K_IPV6_PREFIX])) {
        uint64_t p;
        r = get_u64(c, v[K_IPV6_PREFIX], "ipv6_prefix", "an integer from 64 to 128", 64, 128, &p);
        rs->ipv6_prefix = (unsigned)p;
    }
    if (r == 0 && !absent(v[K_AUDIT])) {
        int x = 0;
        r = get_choice(c, v[K_AUDIT], "audit", audit_from_name, audit_name_i, 3, &x);
        rs->audit = (enum rl_audit_mode)x;
    }
    if (r == 0 && !absent(v[K_DEFAULT_TIER]))
        r = get_str(c, v[K_DEFAULT_TIER], "default_tier", &rs->default_tier);
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
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return rl__err(-ENOMEM, "%s: out of memory while reading YAML", origin);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_document_t doc, extra;
    if (!yaml_parser_load(&parser, &doc)) {
        r = syntax_error(&parser, origin, text, len);
        yaml_parser_delete(&parser);
        return r;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        r = rl__err(-EINVAL,
                    "%s:1:1: expected a rule set (a mapping starting with 'version: 1'), "
                    "got an empty document",
                    origin);
    } else if (!yaml_parser_load(&parser, &extra)) {
        r = syntax_error(&parser, origin, text, len);
    } else {
        yaml_node_t *second = yaml_document_get_root_node(&extra);
        if (second)
            r = rl__err(-EINVAL, "%s:%u:%u: expected one YAML document, got a second one", origin,
                        pos(extra.start_mark.line), pos(extra.start_mark.column));
        yaml_document_delete(&extra);
    }
    struct rl_ruleset *rs = NULL;
    if (r == 0) {
        rs = rl__ruleset_new();
        if (!rs)
            r = rl__err(-ENOMEM, "%s: out of memory while reading the rule set", origin);
    }
    if (r == 0) {
        struct pctx c = {&doc, origin, rs};
        r = parse_top(&c, root);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (r == 0)
        r = rl__ruleset_validate(rs, origin);
    if (r < 0) {
        rl__ruleset_free(rs);
        return r;
    }
    *out = rs;
    return 0;
}

static const char *errno_text(int e, char *buf, size_t len)
{
    switch (e) {
    case ENOENT:
        return "no such file";
    case EACCES:
        return "permission denied";
    case EISDIR:
        return "is a directory";
    default:
        return strerror_r(e, buf, len); /* GNU: returns the text */
    }
}

int rl__ruleset_load_file(const char *path, struct rl_ruleset **out)
{
    if (!path || !out)
        return rl__err(-EINVAL, "rl__ruleset_load_file: path and out must not be NULL");
    *out = NULL;
    char eb[128];
    /* O_NONBLOCK: a FIFO must not block the open; only regular files are read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return rl__err(-e, "%s: cannot open the rule file: %s", path, errno_text(e, eb, sizeof eb));
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return rl__err(-e, "%s: cannot stat the rule file: %s", path, errno_text(e, eb, sizeof eb));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return rl__err(-EISDIR, "%s: is a directory, not a rule file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rl__err(-EINVAL, "%s: not a regular file", path);
    }
    if (st.st_size > (off_t)CONFIG_FILE_MAX) {
        close(fd);
        return rl__err(-EFBIG, "%s: %lld bytes; a rule file may have at most 1 MiB (%u bytes)",
                       path, (long long)st.st_size, CONFIG_FILE_MAX);
    }
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    if (!buf) {
        close(fd);
        return rl__err(-ENOMEM, "%s: out of memory", path);
    }
    size_t n = 0;
    for (;;) {
        ssize_t got = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return rl__err(-e, "%s: cannot read the rule file: %s", path,
                           errno_text(e, eb, sizeof eb));
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > CONFIG_FILE_MAX) {
            close(fd);
            free(buf);
            return rl__err(-EFBIG, "%s: more than 1 MiB; a rule file may have at most %u bytes",
                           path, CONFIG_FILE_MAX);
        }
    }
    close(fd);
    buf[n] = '\0';
    int r = rl__ruleset_parse(buf, n, path, out);
    free(buf);
    if (r < 0)
        return r;
    /* What a segment stores is the canonical form: check it fits before anyone publishes. */
    char *text = NULL;
    size_t len = 0;
    r = rl__ruleset_emit(*out, &text, &len);
    free(text);
    if (r == 0 && len > RL_CFG_MAX)
        r = rl__err(-E2BIG,
                    "%s: the rule set takes %zu bytes in canonical form; a segment holds at most "
                    "%u. Use fewer rules or shorter descriptions",
                    path, len, RL_CFG_MAX);
    if (r < 0) {
        rl__ruleset_free(*out);
        *out = NULL;
    }
    return r;
}

RL_API int rl_check_config_file(const char *path)
{
    rl__clear_err();
    if (!path)
        return rl__err(-EINVAL, "rl_check_config_file: path is NULL");
    struct rl_ruleset *rs = NULL;
    int r = rl__ruleset_load_file(path, &rs);
    rl__ruleset_free(rs);
    return r;
}

/* ---- validation ------------------------------------------------------------------------------ */

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

/* "endpoint 'X', layer 'burst'" or "..., layer 1". */
static const char *layer_label(char *buf, size_t len, const char *owner,
                               const struct rl_rule_layer *l, size_t i)
{
    if (l->name && *l->name)
        snprintf(buf, len, "%s, layer '%s'", owner, l->name);
    else
        snprintf(buf, len, "%s, layer %zu", owner, i);
    return buf;
}

static int check_layer(const char *origin, const char *owner, const struct rl_rule_layer *ls,
                       size_t i)
{
    const struct rl_rule_layer *l = &ls[i];
    const rl_limit *lim = &l->lim;
    char who[MSG_MAX / 2];
    layer_label(who, sizeof who, owner, l, i);
    unsigned ln = l->line, co = l->column;
    if ((unsigned)lim->algorithm >= RL_ALGORITHM_COUNT)
        return verr(-EINVAL, origin, ln, co, "%s: unknown algorithm %d", who, (int)lim->algorithm);
    if ((unsigned)lim->scope >= RL_SCOPE_COUNT)
        return verr(-EINVAL, origin, ln, co, "%s: unknown scope %d", who, (int)lim->scope);
    if ((unsigned)lim->mode >= MODE_COUNT)
        return verr(-EINVAL, origin, ln, co, "%s: unknown mode %d", who, (int)lim->mode);
    if (lim->flags & ~(uint32_t)(RL_LIMIT_SHADOW | RL_LIMIT_ON_FULL_CLOSED | RL_LIMIT_PER_PATH))
        return verr(-EINVAL, origin, ln, co, "%s: unknown flags 0x%x", who, (unsigned)lim->flags);
    if (lim->reserved[0] || lim->reserved[1])
        return verr(-EINVAL, origin, ln, co, "%s: reserved fields must be zero", who);
    if (lim->mode == RL_MODE_GLOBAL && lim->algorithm != RL_TOKEN_BUCKET &&
        lim->algorithm != RL_GCRA)
        return verr(-EINVAL, origin, ln, co,
                    "%s: mode global shares a token bucket across hosts, so it needs algorithm "
                    "token_bucket (or gcra), not %s; use mode strict for an exact cluster-wide "
                    "window",
                    who, rl_algorithm_name(lim->algorithm));
    const char *why;
    if (l->name && (why = text_problem(l->name, false)) != NULL)
        return verr(-EINVAL, origin, ln, co, "%s: the name %s", who, why);
    if (l->name && strlen(l->name) >= RL_NAME_MAX)
        return verr(-EINVAL, origin, ln, co, "%s: the name is longer than %d bytes", who,
                    RL_NAME_MAX - 1);
    if (l->name && strspn(l->name, "0123456789") == strlen(l->name))
        return verr(-EINVAL, origin, ln, co,
                    "%s: a name must not be a number (unnamed layers are named by their "
                    "position)",
                    who);
    if (lim->scope == RL_SCOPE_DESCRIPTOR && !l->descriptor)
        return verr(-EINVAL, origin, ln, co,
                    "%s: a per_descriptor limit needs 'descriptor' (the request descriptor that "
                    "keys it, e.g. api_key)",
                    who);
    if (lim->scope != RL_SCOPE_DESCRIPTOR && l->descriptor)
        return verr(-EINVAL, origin, ln, co,
                    "%s: 'descriptor' is only for scope per_descriptor, this limit is %s", who,
                    rl_scope_name(lim->scope));
    if (l->descriptor && (why = text_problem(l->descriptor, false)) != NULL)
        return verr(-EINVAL, origin, ln, co, "%s: the descriptor %s", who, why);
    if ((lim->flags & RL_LIMIT_PER_PATH) && lim->scope != RL_SCOPE_ENDPOINT)
        return verr(-EINVAL, origin, ln, co,
                    "%s: 'per_path' is only for scope per_endpoint, this limit is %s", who,
                    rl_scope_name(lim->scope));
    if (lim->warn_permille > 1000)
        return verr(-EINVAL, origin, ln, co, "%s: warn_threshold %u/1000 is above 1", who,
                    (unsigned)lim->warn_permille);
    for (size_t j = 0; j < i && l->name; j++)
        if (ls[j].name && strcmp(ls[j].name, l->name) == 0) {
            if (ls[j].line)
                return verr(-EINVAL, origin, ln, co,
                            "%s: duplicate layer name (also layer %zu, at %u:%u)", who, j,
                            ls[j].line, ls[j].column);
            return verr(-EINVAL, origin, ln, co, "%s: duplicate layer name (also layer %zu)", who,
                        j);
        }
    rl_limit tmp = *lim;
    struct rl_params p;
    int r = rl__algos[lim->algorithm]->params(&tmp, &p);
    if (r < 0) {
        char msg[MSG_MAX];
        snprintf(msg, sizeof msg, "%s", rl_errmsg());
        const char *m = strncmp(msg, "limit: ", 7) == 0 ? msg + 7 : msg;
        return verr(r, origin, ln, co, "%s: %s", who, m);
    }
    return 0;
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

/* The earliest name (in order) that repeats one before it; keys[].i is the order. */
static const struct keyref *first_dup(struct keyref *k, size_t n, const struct keyref **first)
{
    qsort(k, n, sizeof *k, keyref_cmp);
    const struct keyref *dup = NULL;
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

static int check_rules(const struct rl_ruleset *rs, const char *origin)
{
    char owner[MSG_MAX / 2];
    for (size_t i = 0; i < rs->nrules; i++) {
        const struct rl_rule *ru = &rs->rules[i];
        if (!ru->pattern)
            return verr(-EINVAL, origin, ru->line, ru->column, "endpoint %zu has no pattern", i);
        int r = rl__pattern_check(ru->pattern);
        if (r < 0) {
            char msg[MSG_MAX];
            snprintf(msg, sizeof msg, "%s", rl_errmsg());
            return verr(r, origin, ru->line, ru->column, "endpoint '%s': %s", ru->pattern, msg);
        }
        const char *why;
        if (ru->description && (why = text_problem(ru->description, true)) != NULL)
            return verr(-EINVAL, origin, ru->line, ru->column, "endpoint '%s': the description %s",
                        ru->pattern, why);
        snprintf(owner, sizeof owner, "endpoint '%s'", ru->pattern);
        r = check_layers(origin, owner, ru->layers, ru->nlayers);
        if (r < 0)
            return r;
    }
    if (rs->nrules < 2)
        return 0;
    struct keyref *k = malloc(rs->nrules * sizeof *k);
    if (!k)
        return rl__err(-ENOMEM, "%s: out of memory", origin);
    for (size_t i = 0; i < rs->nrules; i++)
        k[i] = (struct keyref){rs->rules[i].pattern, i, NULL};
    const struct keyref *first = NULL, *dup = first_dup(k, rs->nrules, &first);
    int r = 0;
    if (dup) {
        const struct rl_rule *a = &rs->rules[first->i], *b = &rs->rules[dup->i];
        if (a->line)
            r = verr(-EINVAL, origin, b->line, b->column,
                     "endpoint '%s' is defined twice (first at %u:%u)", b->pattern, a->line,
                     a->column);
        else
            r = verr(-EINVAL, origin, b->line, b->column, "endpoint '%s' is defined twice",
                     b->pattern);
    }
    free(k);
    return r;
}

static int check_tiers(const struct rl_ruleset *rs, const char *origin)
{
    char owner[MSG_MAX / 2];
    for (size_t i = 0; i < rs->ntiers; i++) {
        const struct rl_tier *t = &rs->tiers[i];
        const char *why = t->name ? text_problem(t->name, false) : "is missing";
        if (why)
            return verr(-EINVAL, origin, t->line, t->column, "tier %zu: the name %s", i, why);
        if (t->description && (why = text_problem(t->description, true)) != NULL)
            return verr(-EINVAL, origin, t->line, t->column, "tier '%s': the description %s",
                        t->name, why);
        snprintf(owner, sizeof owner, "tier '%s'", t->name);
        int r = check_layers(origin, owner, t->layers, t->nlayers);
        if (r < 0)
            return r;
    }
    if (rs->ntiers < 2)
        return 0;
    struct keyref *k = malloc(rs->ntiers * sizeof *k);
    if (!k)
        return rl__err(-ENOMEM, "%s: out of memory", origin);
    for (size_t i = 0; i < rs->ntiers; i++)
        k[i] = (struct keyref){rs->tiers[i].name, i, NULL};
    const struct keyref *first = NULL, *dup = first_dup(k, rs->ntiers, &first);
    int r = 0;
    if (dup) {
        const struct rl_tier *b = &rs->tiers[dup->i];
        r = verr(-EINVAL, origin, b->line, b->column, "tier '%s' is defined twice", b->name);
    }
    free(k);
    return r;
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

int rl__ruleset_validate(const struct rl_ruleset *rs, const char *origin)
{
    if (!origin)
        origin = "rules";
    if (!rs)
        return rl__err(-EINVAL, "%s: no rule set", origin);
    const char *why;
    if (rs->environment && (why = text_problem(rs->environment, false)) != NULL)
        return verr(-EINVAL, origin, 0, 0, "environment %s", why);
    if (rs->description && (why = text_problem(rs->description, true)) != NULL)
        return verr(-EINVAL, origin, 0, 0, "description %s", why);
    if (rs->warn_permille > 1000)
        return verr(-EINVAL, origin, 0, 0, "warn_threshold %u/1000 is above 1",
                    (unsigned)rs->warn_permille);
    if (rs->ipv6_prefix < 64 || rs->ipv6_prefix > 128)
        return verr(-EINVAL, origin, 0, 0, "ipv6_prefix %u is outside 64..128", rs->ipv6_prefix);
    if (rs->sync_interval_ms > 60000)
        return verr(-EINVAL, origin, 0, 0, "sync.interval %llu ms is above 60 s",
                    (unsigned long long)rs->sync_interval_ms);
    if (rs->sync_fallback < RL_FALLBACK_DEFAULT || rs->sync_fallback > RL_FALLBACK_CLOSED)
        return verr(-EINVAL, origin, 0, 0, "sync.fallback %d is not local, open or closed",
                    rs->sync_fallback);
    if ((unsigned)rs->audit > RL_AUDIT_ALL)
        return verr(-EINVAL, origin, 0, 0, "unknown audit mode %d", (int)rs->audit);
    /* Counts first: the checks below are quadratic in a list's length. */
    int r = check_counts(rs, origin);
    if (r == 0)
        r = check_layers(origin, "defaults", rs->defaults, rs->ndefaults);
    if (r == 0)
        r = check_layers(origin, "global", rs->globals, rs->nglobals);
    if (r == 0)
        r = check_rules(rs, origin);
    if (r == 0)
        r = check_tiers(rs, origin);
    if (r < 0)
        return r;
    if (rs->default_tier) {
        size_t i = 0;
        while (i < rs->ntiers && strcmp(rs->tiers[i].name, rs->default_tier) != 0)
            i++;
        if (i == rs->ntiers)
            return verr(-EINVAL, origin, 0, 0, "default_tier '%s' is not one of the tiers",
                        rs->default_tier);
    }
    for (size_t i = 0; i < rs->nbypass_ips; i++)
        if (!addr_ok(rs->bypass_ips[i]))
            return verr(-EINVAL, origin, 0, 0,
                        "bypass ips: expected an IP address or CIDR, got '%.64s'",
                        rs->bypass_ips[i]);
    for (size_t i = 0; i < rs->nbypass_users; i++)
        if ((why = text_problem(rs->bypass_users[i], false)) != NULL)
            return verr(-EINVAL, origin, 0, 0, "bypass users: user %zu %s", i, why);
    for (size_t i = 0; i < rs->ntrusted; i++)
        if (!addr_ok(rs->trusted_proxies[i]))
            return verr(-EINVAL, origin, 0, 0,
                        "trusted_proxies: expected an IP address or CIDR, got '%.64s'",
                        rs->trusted_proxies[i]);
    return 0;
}

/* ---- building from the API ------------------------------------------------------------------- */

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

/* ---- the canonical form ---------------------------------------------------------------------- */

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

/* One layer, in flow style: only what differs from the defaults besides requests, window,
 * algorithm and scope, in a fixed order. */
static void em_layer(struct em *m, const struct rl_rule_layer *l)
{
    const rl_limit *lim = &l->lim;
    em_map(m, true);
    if (l->name) {
        em_raw(m, "name", YAML_PLAIN_SCALAR_STYLE);
        em_str(m, l->name);
    }
    em_raw(m, "requests", YAML_PLAIN_SCALAR_STYLE);
    em_u64(m, lim->requests, "");
    em_raw(m, "window", YAML_PLAIN_SCALAR_STYLE);
    em_u64(m, lim->window_ms, "ms");
    if (lim->burst) {
        em_raw(m, "burst", YAML_PLAIN_SCALAR_STYLE);
        em_u64(m, lim->burst, "");
    }
    em_raw(m, "algorithm", YAML_PLAIN_SCALAR_STYLE);
    em_raw(m, algo_name_i((int)lim->algorithm), YAML_PLAIN_SCALAR_STYLE);
    em_raw(m, "scope", YAML_PLAIN_SCALAR_STYLE);
    em_raw(m, scope_name_i((int)lim->scope), YAML_PLAIN_SCALAR_STYLE);
    if (l->descriptor) {
        em_raw(m, "descriptor", YAML_PLAIN_SCALAR_STYLE);
        em_str(m, l->descriptor);
    }
    if (lim->flags & RL_LIMIT_PER_PATH) {
        em_raw(m, "per_path", YAML_PLAIN_SCALAR_STYLE);
        em_raw(m, "true", YAML_PLAIN_SCALAR_STYLE);
    }
    if (lim->mode != RL_MODE_LOCAL) {
        em_raw(m, "mode", YAML_PLAIN_SCALAR_STYLE);
        em_raw(m, mode_name_i((int)lim->mode), YAML_PLAIN_SCALAR_STYLE);
    }
    if (lim->redis_ttl_ms) {
        em_raw(m, "redis_ttl", YAML_PLAIN_SCALAR_STYLE);
        em_u64(m, lim->redis_ttl_ms, "ms");
    }
    if (lim->flags & RL_LIMIT_ON_FULL_CLOSED) {
        em_raw(m, "on_full", YAML_PLAIN_SCALAR_STYLE);
        em_raw(m, "closed", YAML_PLAIN_SCALAR_STYLE);
    }
    if (lim->flags & RL_LIMIT_SHADOW) {
        em_raw(m, "shadow", YAML_PLAIN_SCALAR_STYLE);
        em_raw(m, "true", YAML_PLAIN_SCALAR_STYLE);
    }
    if (lim->warn_permille) {
        em_raw(m, "warn_threshold", YAML_PLAIN_SCALAR_STYLE);
        em_permille(m, lim->warn_permille);
    }
    em_map_end(m);
}

static void em_layers(struct em *m, const char *key, const struct rl_rule_layer *ls, size_t n)
{
    em_raw(m, key, YAML_PLAIN_SCALAR_STYLE);
    em_seq(m, n == 0);
    for (size_t i = 0; i < n; i++)
        em_layer(m, &ls[i]);
    em_seq_end(m);
}

static void em_strs(struct em *m, const char *key, char *const *v, size_t n)
{
    em_raw(m, key, YAML_PLAIN_SCALAR_STYLE);
    em_seq(m, true);
    for (size_t i = 0; i < n; i++)
        em_str(m, v[i]);
    em_seq_end(m);
}

static void em_ruleset(struct em *m, const struct rl_ruleset *rs)
{
    em_map(m, false);
    em_raw(m, "version", YAML_PLAIN_SCALAR_STYLE);
    em_raw(m, "1", YAML_PLAIN_SCALAR_STYLE);
    if (rs->environment) {
        em_raw(m, "environment", YAML_PLAIN_SCALAR_STYLE);
        em_str(m, rs->environment);
    }
    if (rs->description) {
        em_raw(m, "description", YAML_PLAIN_SCALAR_STYLE);
        em_str(m, rs->description);
    }
    em_raw(m, "warn_threshold", YAML_PLAIN_SCALAR_STYLE);
    em_permille(m, rs->warn_permille);
    em_raw(m, "ipv6_prefix", YAML_PLAIN_SCALAR_STYLE);
    em_u64(m, rs->ipv6_prefix, "");
    em_raw(m, "audit", YAML_PLAIN_SCALAR_STYLE);
    em_str(m, audit_name_i((int)rs->audit) ? audit_name_i((int)rs->audit) : "?");
    if (rs->default_tier) {
        em_raw(m, "default_tier", YAML_PLAIN_SCALAR_STYLE);
        em_str(m, rs->default_tier);
    }
    if (rs->sync_interval_ms || rs->sync_fallback != RL_FALLBACK_DEFAULT) {
        em_raw(m, "sync", YAML_PLAIN_SCALAR_STYLE);
        em_map(m, false);
        if (rs->sync_interval_ms) {
            em_raw(m, "interval", YAML_PLAIN_SCALAR_STYLE);
            em_u64(m, rs->sync_interval_ms, "ms");
        }
        if (rs->sync_fallback != RL_FALLBACK_DEFAULT) {
            em_raw(m, "fallback", YAML_PLAIN_SCALAR_STYLE);
            em_str(m, fallback_name_i(rs->sync_fallback));
        }
        em_map_end(m);
    }
    em_layers(m, "defaults", rs->defaults, rs->ndefaults);
    em_layers(m, "global", rs->globals, rs->nglobals);
    em_raw(m, "endpoints", YAML_PLAIN_SCALAR_STYLE);
    em_seq(m, rs->nrules == 0);
    for (size_t i = 0; i < rs->nrules; i++) {
        const struct rl_rule *ru = &rs->rules[i];
        em_map(m, false);
        em_raw(m, "pattern", YAML_PLAIN_SCALAR_STYLE);
        em_str(m, ru->pattern);
        if (ru->description) {
            em_raw(m, "description", YAML_PLAIN_SCALAR_STYLE);
            em_str(m, ru->description);
        }
        em_layers(m, "limits", ru->layers, ru->nlayers);
        em_map_end(m);
    }
    em_seq_end(m);
    em_raw(m, "tiers", YAML_PLAIN_SCALAR_STYLE);
    em_map(m, rs->ntiers == 0);
    for (size_t i = 0; i < rs->ntiers; i++) {
        const struct rl_tier *t = &rs->tiers[i];
        em_str(m, t->name);
        em_map(m, false);
        if (t->description) {
            em_raw(m, "description", YAML_PLAIN_SCALAR_STYLE);
            em_str(m, t->description);
        }
        em_layers(m, "limits", t->layers, t->nlayers);
        em_map_end(m);
    }
    em_map_end(m);
    em_raw(m, "bypass", YAML_PLAIN_SCALAR_STYLE);
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
