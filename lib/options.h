/*
 * The options table: each bounded option's range, environment variable, rule-file key and
 * default in one place (lib/options.c). Internal; rl_options (rl.h) is the public face.
 *
 * Resolution, once, in rl_open (rl__options_resolve), in this order:
 *   1. the caller's rl_options field (rl_options_from_env() copies the environment variables
 *      into it, checked against the same bounds);
 *   2. else the rule set's key (sync.interval, sync.fallback), when the rule set sets it;
 *   3. else the default below.
 * The modes (sync/) receive the resolved options and do not check or default them again.
 */
#ifndef RL_LIB_OPTIONS_H
#define RL_LIB_OPTIONS_H

#include <stdint.h>

#include "rl.h"

/* The sync interval's bound, shared with the rule file's sync.interval (lib/config.c). */
#define RL_SYNC_INTERVAL_MS_MIN 1u
#define RL_SYNC_INTERVAL_MS_MAX 60000u
#define RL_SYNC_INTERVAL_MS_DEF 100u

enum rl_opt {
    RL_OPT_REDIS_POOL_SIZE,
    RL_OPT_SYNC_INTERVAL_MS,
    RL_OPT_CLUSTER_HOSTS,
    RL_OPT_METRICS_RETENTION_DAYS,
    RL_OPT_REDIS_CONNECT_TIMEOUT_MS,
    RL_OPT_REDIS_COMMAND_TIMEOUT_MS,
    RL_OPT_COUNT
};

struct rl_opt_spec {
    const char *field;    /* rl_options' member, for messages */
    const char *env;      /* environment variable (rl_options_from_env), or NULL */
    const char *rule_key; /* rule-file key that may set it, or NULL */
    uint64_t min, max;    /* the bound (0 in the field always means "not set": the default) */
    uint64_t def;         /* the default */
};

extern const struct rl_opt_spec rl__opts[RL_OPT_COUNT];

/* Checks every bounded field of o that is set (non-zero); 0 or -EINVAL with a message naming
 * the field and its range. */
int rl__options_check(const rl_options *o);

struct rl;
/* Fills the unset fields of o: the rule set's values (rl must have its rules open), then the
 * defaults; fallback becomes LOCAL, OPEN or CLOSED. */
void rl__options_resolve(struct rl *rl, rl_options *o);

#endif
