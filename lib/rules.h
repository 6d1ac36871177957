/*
 * The rule set: what a YAML file (or rl_configure_endpoint) says, in memory. Internal.
 *
 * Life cycle: text (a file, or the canonical YAML stored in the segment) --rl__ruleset_parse-->
 * struct rl_ruleset --rl__ruleset_emit--> canonical YAML (published in the segment) --> every
 * process parses it again and compiles its own matcher (rules.c), swapped in with RCU.
 * All strings are owned by the rule set (malloc'd) and freed by rl__ruleset_free().
 *
 * The rule set and its functions below are lib/config_*.c (config_int.h says which file does
 * what); the compiled matcher (rules.c) uses them and they never call it. The enum names and
 * durations at the end are format.c's.
 */
#ifndef RL_RULES_H
#define RL_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/pattern.h"
#include "rl.h"

/* One layer: a limit plus what rl_check needs. lim.name and lim.descriptor alias the owned
 * strings `name` and `descriptor` (or are NULL). */
struct rl_rule_layer {
    rl_limit lim;
    char *name;
    char *descriptor;
    unsigned line, column; /* where it was defined; 0 when built by the API */
};

struct rl_rule {
    char *pattern;     /* as written: "POST:/auth/login", "/upload/?*", any glob */
    char *description; /* may be NULL */
    struct rl_rule_layer *layers;
    size_t nlayers;
    unsigned line, column;
};

struct rl_tier {
    char *name;
    char *description;
    struct rl_rule_layer *layers;
    size_t nlayers;
    unsigned line, column;
};

enum rl_audit_mode { RL_AUDIT_OFF = 0, RL_AUDIT_DENIALS, RL_AUDIT_ALL };

struct rl_ruleset {
    char *environment;        /* informational ("production"); may be NULL */
    char *description;        /* may be NULL */
    uint32_t warn_permille;   /* default warning threshold, 0..1000; default 800 */
    unsigned ipv6_prefix;     /* per-IP keys group IPv6 clients by this prefix: 64..128 (128) */
    enum rl_audit_mode audit; /* default RL_AUDIT_DENIALS */
    char *default_tier;       /* tier of requests that carry a user but no tier; may be NULL */
    struct rl_rule *rules;
    size_t nrules;
    struct rl_rule_layer *defaults; /* requests matching no rule */
    size_t ndefaults;
    struct rl_rule_layer *globals; /* every request, in addition */
    size_t nglobals;
    struct rl_tier *tiers;
    size_t ntiers;
    char **bypass_ips; /* addresses or CIDRs */
    size_t nbypass_ips;
    char **bypass_users;
    size_t nbypass_users;
    char **trusted_proxies; /* for servers calling rl_client_ip (rl-demo) */
    size_t ntrusted;
    /* `sync:` (GLOBAL mode), for handles whose rl_options leave them to the configuration. */
    uint64_t sync_interval_ms; /* 0: not set (100) */
    int sync_fallback;         /* RL_FALLBACK_DEFAULT: not set (LOCAL) */
};

/* Adds (add) or removes value in rs's bypass list of kind (RL_BYPASS_IP / _USER). 0, 1 when
 * nothing changed (already there / not there), or -ENOMEM. */
int rl__ruleset_bypass_edit(struct rl_ruleset *rs, int kind, const char *value, bool add);

/* A new, empty rule set with the defaults above; NULL when out of memory. */
struct rl_ruleset *rl__ruleset_new(void);
void rl__ruleset_free(struct rl_ruleset *rs);

/*
 * Parses YAML text (docs/configuration.md) into *out. `origin` names the text in messages
 * (a file name, or "segment"). On error returns -EINVAL (or -ENOMEM, -ERANGE) and sets
 * rl_errmsg() to "ORIGIN:LINE:COLUMN: what was expected, what was found". Validates everything
 * rl__ruleset_validate() does.
 */
int rl__ruleset_parse(const char *text, size_t len, const char *origin, struct rl_ruleset **out);

/* Reads and parses a file (messages name the file). */
int rl__ruleset_load_file(const char *path, struct rl_ruleset **out);

/*
 * Writes the canonical YAML of rs into a malloc'd, NUL-terminated buffer (*text, *len without
 * the NUL). Parsing it gives an equal rule set. Returns 0 or -ENOMEM.
 */
int rl__ruleset_emit(const struct rl_ruleset *rs, char **text, size_t *len);

/*
 * Semantic checks: patterns well formed (rl__pattern_check), every limit valid for its algorithm
 * (the same ranges rl_acquire enforces), descriptor set iff scope is per_descriptor, per_path only
 * with per_endpoint, layer names unique within a rule, at most RL_MAX_LAYERS layers per request
 * (rule + globals + any tier), tier names unique, default_tier names a tier, bypass entries are
 * addresses or CIDRs. Messages name the rule/tier/layer (and line:column when known).
 */
int rl__ruleset_validate(const struct rl_ruleset *rs, const char *origin);

/*
 * What this build can run, for rule text a user wrote (a rule file, rl_configure_endpoint's
 * rule): in a library built without Redis (RL_WITH_REDIS 0), a layer in mode global or strict is
 * -EINVAL, "ORIGIN:LINE:COLUMN: endpoint 'X', layer 'y': mode strict needs Redis, but this
 * library was built without Redis (meson -Dredis=enabled): use mode local". Only endpoint
 * `pattern`'s layers when pattern is not NULL. Always 0 in a build with Redis. The presets and
 * a segment's text are not checked: there such layers count locally (config_check.c).
 */
int rl__ruleset_check_build(const struct rl_ruleset *rs, const char *origin, const char *pattern);

/* Adds or replaces (same pattern) a rule built from API limits; deep-copies. */
int rl__ruleset_set_rule(struct rl_ruleset *rs, const char *pattern, const rl_limit *limits,
                         size_t n);

/* The built-in preset for an environment name ("development", "staging", "production");
 * NULL for an unknown name. The text of examples/<name>.yaml, compiled in. */
const char *rl__preset_yaml(const char *environment);

/* Patterns (rl__pattern_check, rl__glob_match): pattern.h. */

/* Names <-> enums (config and headers). -1 / NULL when unknown. */
int rl__algorithm_from_name(const char *s);
int rl__scope_from_name(const char *s);
int rl__mode_from_name(const char *s);
const char *rl__mode_name(rl_mode m);

/* "300", "300s", "5m", "1h", "250ms", "1d" -> milliseconds; -EINVAL when malformed. */
int rl__duration_ms(const char *s, uint64_t *ms);

/* rules.c: the handle's rules (rl_open, rl_close, rl_stats) */
struct rl;
int rl__rules_open(struct rl *rl, const rl_options *o);
/* Endpoint directory record i's name into out[RL_EP_NAME]: false when unused (or not yet
 * named); its totals over the stripes. Any thread, never blocks. */
bool rl__ep_name(const struct rl *rl, unsigned i, char *out);
void rl__ep_totals(const struct rl *rl, unsigned i, uint64_t *allowed, uint64_t *denied);
/* The rule set's `sync:` values (0 / RL_FALLBACK_DEFAULT when it leaves them unset). */
void rl__rules_sync_settings(struct rl *rl, uint64_t *interval_ms, int *fallback);
void rl__rules_close(struct rl *rl);

#endif /* RL_RULES_H */
