/*
 * What the rule-file files share, and nothing else includes. Internal to lib/config_*.c.
 *
 * The rule file is read, checked and written by six files, each one job (docs/design.md,
 * "Rules"):
 *   config_ruleset.c  the rule set in memory: new, free, edits from the API; the names the
 *                     file spells (enums by index) and the text checks both readers share
 *   config_yaml.c     reading libyaml nodes: positions, messages, scalars, mappings (config_yaml.h)
 *   config_parse.c    YAML text -> rule set: the schema walk (rl__ruleset_parse)
 *   config_file.c     where rule text comes from: files (rl__ruleset_load_file,
 *                     rl_check_config_file) and the built-in presets
 *   config_check.c    the checks on a whole rule set (rl__ruleset_validate)
 *   config_emit.c     rule set -> canonical YAML (rl__ruleset_emit)
 * Calls run one way, down this list (a file calls only files below it):
 *   config_file.c     -> parse, emit, check
 *   config_parse.c    -> yaml, check, ruleset
 *   config_emit.c     -> check, ruleset
 *   config_yaml.c     -> ruleset
 *   config_check.c    -> ruleset, pattern.c, algo.c
 *   config_ruleset.c  -> format.c (enum names), ip.c
 * rules.c (the compiled matcher, rl_load_config, rl_configure_endpoint) is above them all and
 * nothing here calls it; pattern.c (patterns, shared with rules.c) calls none of them.
 * Nothing here blocks except config_file.c's read of a file; everything allocates.
 */
#ifndef RL_CONFIG_INT_H
#define RL_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/rules.h"

#define RL_CONF_MSG_MAX   512 /* bytes of a message before its origin and position */
#define RL_CONF_SHOW_MAX  40  /* bytes of a bad value quoted in a message */
#define RL_CONF_MODES     3   /* local, global, strict */
#define RL_CONF_FALLBACKS 3   /* local, open, closed (sync.fallback) */

/* Names by index, NULL beyond the list: for choices in messages and for the emitter. */
const char *rl__conf_algo_name(int i);
const char *rl__conf_scope_name(int i);
const char *rl__conf_mode_name(int i);
const char *rl__conf_on_full_name(int i); /* open, closed */
const char *rl__conf_audit_name(int i);   /* enum rl_audit_mode */
const char *rl__conf_fallback_name(int i);
/* Back from a name; -1 when unknown. */
int rl__conf_on_full_from_name(const char *s);
int rl__conf_audit_from_name(const char *s);
int rl__conf_fallback_from_name(const char *s);

/* NULL when s is acceptable text; else what is wrong with it ("is empty", "contains a control
 * character", "is not valid UTF-8"). Names may not be empty nor hold control characters;
 * descriptions may hold new lines and tabs. */
const char *rl__conf_text_problem(const char *s, bool description);
/* Whether s is an IP address or a CIDR. */
bool rl__conf_addr_ok(const char *s);

/* A name and where it came from, to find repeats. */
struct rl_conf_keyref {
    const char *s;
    size_t i;          /* position in its list: the order repeats are reported in */
    const void *where; /* the caller's (a YAML node), or NULL */
};
/* Sorts k[0..n) and returns the earliest entry (by i) that repeats a name before it, with that
 * first one in *first; NULL when all names differ. O(n log n). */
const struct rl_conf_keyref *rl__conf_first_dup(struct rl_conf_keyref *k, size_t n,
                                                const struct rl_conf_keyref **first);

#endif /* RL_CONFIG_INT_H */
