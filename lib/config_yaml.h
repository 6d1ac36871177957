/*
 * Reading libyaml's document nodes for the rule-file parser: positions, "what was found",
 * messages, scalars of each kind, and mappings with fixed or free keys. Internal to
 * config_parse.c (the schema walk), implemented in config_yaml.c.
 *
 * Messages: "ORIGIN:LINE:COLUMN: expected WHAT for 'KEY', got FOUND" (1-based positions), set
 * with rl__err; every reader returns 0 or that negative code (-EINVAL; -ENOMEM). A key without
 * a value ("burst:") is the same as an absent key, except for required keys (absent()).
 */
#ifndef RL_CONFIG_YAML_H
#define RL_CONFIG_YAML_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <yaml.h>

#include "lib/config_int.h"

/* Room for rl__yaml_describe's text. */
#define RL_YAML_FOUND_MAX (RL_CONF_SHOW_MAX * 2 + 32)

/* One parse: the document, the name of the text in messages, the rule set being filled. */
struct pctx {
    yaml_document_t *doc;
    const char *origin;
    struct rl_ruleset *rs;
};

static inline yaml_node_t *node(const struct pctx *c, int id)
{
    return yaml_document_get_node(c->doc, id);
}

/* libyaml's 0-based mark as a 1-based line or column. */
static inline unsigned pos(size_t zero_based)
{
    return zero_based >= UINT_MAX ? UINT_MAX : (unsigned)zero_based + 1;
}

static inline const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static inline bool is_plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A plain empty scalar, ~ or null: "no value". */
static inline bool is_null(const yaml_node_t *n)
{
    if (!is_plain(n))
        return false;
    const char *v = sval(n);
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static inline bool absent(const yaml_node_t *n)
{
    return !n || is_null(n);
}

/* What a node is, for "got ...": 'abc', the string "5", a list, a mapping, nothing. buf has
 * RL_YAML_FOUND_MAX bytes. */
const char *rl__yaml_describe(const yaml_node_t *n, char *buf, size_t len);

/* "ORIGIN:LINE:COLUMN: MESSAGE" at node n; returns -EINVAL. */
int rl__yaml_err(const struct pctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "expected WHAT for 'KEY', got FOUND" at the value; returns -EINVAL. */
int rl__yaml_expect(const struct pctx *c, const yaml_node_t *v, const char *what, const char *key);
/* "ORIGIN: out of memory while reading the rule set"; returns -ENOMEM. */
int rl__yaml_nomem(const struct pctx *c);

/*
 * Reads a mapping whose keys come from keys[0..nkeys) (at most 16): val[i] is the value of
 * keys[i], or NULL when absent. Keys that are unknown (with a suggestion for a likely typo),
 * repeated or not scalars are errors. `what` names the mapping in messages ("a limit").
 */
int rl__yaml_read_map(const struct pctx *c, const yaml_node_t *map, const char *what,
                      const char *const *keys, size_t nkeys, yaml_node_t **val);
/* A mapping with free keys (tier names): the earliest repeated key is an error ("duplicate
 * WHAT 'x' (first at L:C)"). */
int rl__yaml_dup_keys(const struct pctx *c, const yaml_node_t *map, const char *what);

/* Scalars. `key` names the value in messages; *out is written only on success. */
int rl__yaml_u64(const struct pctx *c, const yaml_node_t *v, const char *key, const char *what,
                 uint64_t min, uint64_t max, uint64_t *out);
/* "300", "250ms", "5m", ... (rl__duration_ms); positive: 0 is refused. */
int rl__yaml_duration(const struct pctx *c, const yaml_node_t *v, const char *key, bool positive,
                      uint64_t *ms);
/* "0.8" as permille, at most 3 decimals; allow_zero: 0 is accepted. */
int rl__yaml_fraction(const struct pctx *c, const yaml_node_t *v, const char *key, bool allow_zero,
                      uint32_t *out);
int rl__yaml_bool(const struct pctx *c, const yaml_node_t *v, const char *key, bool *out);
/* Any scalar without NUL characters, strdup'd; *out is freed and replaced. */
int rl__yaml_str(const struct pctx *c, const yaml_node_t *v, const char *key, char **out);
/* One of the names name_i(0..count) (from_name maps back); a near miss gets "did you mean". */
int rl__yaml_choice(const struct pctx *c, const yaml_node_t *v, const char *key,
                    int (*from_name)(const char *), const char *(*name_i)(int), int count,
                    int *out);

#endif /* RL_CONFIG_YAML_H */
