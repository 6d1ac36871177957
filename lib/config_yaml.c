/*
 * Reading libyaml's document nodes for the rule-file parser (config_yaml.h): messages with the
 * node's position, "got ..." descriptions, mappings with fixed keys (unknown keys get a "did you
 * mean" from an edit distance) or free keys (repeats), and each kind of scalar. Called only by
 * config_parse.c. Nothing here blocks; rl__yaml_str and rl__yaml_dup_keys allocate.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config_yaml.h"
#include "lib/internal.h"

#define MSG_MAX      RL_CONF_MSG_MAX
#define SHOW_MAX     RL_CONF_SHOW_MAX
#define MAP_KEYS_MAX 16 /* keys of the largest fixed-key mapping (a limit: 14) */

/* ---- names: lists and suggestions ------------------------------------------------------------ */

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

/* ---- nodes and messages ---------------------------------------------------------------------- */

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

const char *rl__yaml_describe(const yaml_node_t *n, char *buf, size_t len)
{
    return describe_ex(n, buf, len, false);
}

int rl__yaml_err(const struct pctx *c, const yaml_node_t *n, const char *fmt, ...)
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
int rl__yaml_expect(const struct pctx *c, const yaml_node_t *v, const char *what, const char *key)
{
    char buf[SHOW_MAX * 2 + 32];
    return rl__yaml_err(c, v, "expected %s for '%s', got %s", what, key,
                        rl__yaml_describe(v, buf, sizeof buf));
}

int rl__yaml_nomem(const struct pctx *c)
{
    return rl__err(-ENOMEM, "%s: out of memory while reading the rule set", c->origin);
}

/*
 * Reads a mapping whose keys come from keys[0..nkeys): val[i] is the value of keys[i], or NULL
 * when absent. Keys that are unknown, repeated or not scalars are errors. `what` names the
 * mapping in messages ("a limit").
 */
int rl__yaml_read_map(const struct pctx *c, const yaml_node_t *map, const char *what,
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
            return rl__yaml_err(c, k, "expected a key name in %s, got %s", what,
                                rl__yaml_describe(k, buf, sizeof buf));
        size_t i = 0;
        while (i < nkeys && strcmp(keys[i], sval(k)) != 0)
            i++;
        if (i == nkeys) {
            const char *s = suggest(sval(k), keys, nkeys);
            if (s)
                return rl__yaml_err(c, k, "unknown key %s (did you mean '%s'?)",
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
            return rl__yaml_err(c, k, "unknown key %s in %s (expected one of: %s)",
                                describe_ex(k, buf, sizeof buf, true), what, list);
        }
        if (kn[i])
            return rl__yaml_err(c, k, "duplicate key '%s' (first at %u:%u)", keys[i],
                                pos(kn[i]->start_mark.line), pos(kn[i]->start_mark.column));
        kn[i] = k;
        val[i] = node(c, p->value);
    }
    return 0;
}

/* ---- mappings with free keys ----------------------------------------------------------------- */

/* Duplicate keys of a mapping with free-form keys (tier names): the earliest repeat is
 * reported. Sorting keeps this O(n log n) for large files. */
int rl__yaml_dup_keys(const struct pctx *c, const yaml_node_t *map, const char *what)
{
    size_t cnt = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start), m = 0;
    if (cnt < 2)
        return 0;
    struct rl_conf_keyref *k = malloc(cnt * sizeof *k);
    if (!k)
        return rl__yaml_nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *kn = node(c, map->data.mapping.pairs.start[i].key);
        if (kn->type == YAML_SCALAR_NODE)
            k[m++] = (struct rl_conf_keyref){sval(kn), i, kn};
    }
    const struct rl_conf_keyref *first = NULL, *dup = rl__conf_first_dup(k, m, &first);
    int r = 0;
    if (dup) {
        const yaml_node_t *dn = dup->where, *fn = first->where;
        r = rl__yaml_err(c, dn, "duplicate %s '%s' (first at %u:%u)", what, dup->s,
                         pos(fn->start_mark.line), pos(fn->start_mark.column));
    }
    free(k);
    return r;
}

/* ---- scalars --------------------------------------------------------------------------------- */

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

int rl__yaml_u64(const struct pctx *c, const yaml_node_t *v, const char *key, const char *what,
                 uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t x;
    if (!is_plain(v) || !parse_u64(sval(v), &x) || x < min || x > max)
        return rl__yaml_expect(c, v, what, key);
    *out = x;
    return 0;
}

int rl__yaml_duration(const struct pctx *c, const yaml_node_t *v, const char *key, bool positive,
                      uint64_t *ms)
{
    if (v->type != YAML_SCALAR_NODE || is_null(v) || rl__duration_ms(sval(v), ms) < 0)
        return rl__yaml_expect(c, v, "a duration (300, 250ms, 300s, 5m, 1h, 1d)", key);
    if (positive && *ms == 0)
        return rl__yaml_expect(c, v, "a positive duration", key);
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

int rl__yaml_fraction(const struct pctx *c, const yaml_node_t *v, const char *key, bool allow_zero,
                      uint32_t *out)
{
    uint32_t p;
    if (!is_plain(v) || !parse_permille(sval(v), &p) || (p == 0 && !allow_zero))
        return rl__yaml_expect(
            c, v,
            allow_zero ? "a fraction from 0 to 1 (at most 3 decimals, e.g. 0.8)"
                       : "a fraction above 0 and at most 1 (at most 3 decimals, e.g. 0.8)",
            key);
    *out = p;
    return 0;
}

int rl__yaml_bool(const struct pctx *c, const yaml_node_t *v, const char *key, bool *out)
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
    return rl__yaml_expect(c, v, "true or false", key);
}

/* A string (any scalar); *out is replaced. */
int rl__yaml_str(const struct pctx *c, const yaml_node_t *v, const char *key, char **out)
{
    if (v->type != YAML_SCALAR_NODE)
        return rl__yaml_expect(c, v, "a string", key);
    if (strlen(sval(v)) != v->data.scalar.length)
        return rl__yaml_expect(c, v, "text without NUL characters", key);
    char *s = strdup(sval(v));
    if (!s)
        return rl__yaml_nomem(c);
    free(*out);
    *out = s;
    return 0;
}

int rl__yaml_choice(const struct pctx *c, const yaml_node_t *v, const char *key,
                    int (*from_name)(const char *), const char *(*name_i)(int), int count, int *out)
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
        return rl__yaml_err(c, v, "expected %s for '%s', got %s (did you mean '%s'?)", what, key,
                            rl__yaml_describe(v, buf, sizeof buf), s);
    return rl__yaml_expect(c, v, what, key);
}
