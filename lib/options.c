/* The options table (lib/options.h): bounds, environment variables, rule-file keys, defaults. */
#include <errno.h>
#include <stddef.h>

#include "lib/error.h"
#include "lib/internal.h"
#include "lib/options.h"

const struct rl_opt_spec rl__opts[RL_OPT_COUNT] = {
    [RL_OPT_REDIS_POOL_SIZE] = {"redis_pool_size", "REDIS_POOL_SIZE", NULL, 1, 4096, 20},
    [RL_OPT_SYNC_INTERVAL_MS] = {"sync_interval_ms", "RL_SYNC_INTERVAL_MS", "sync.interval",
                                 RL_SYNC_INTERVAL_MS_MIN, RL_SYNC_INTERVAL_MS_MAX,
                                 RL_SYNC_INTERVAL_MS_DEF},
    [RL_OPT_CLUSTER_HOSTS] = {"cluster_hosts", "RL_CLUSTER_HOSTS", NULL, 1, 100000, 0},
    [RL_OPT_METRICS_RETENTION_DAYS] = {"metrics_retention_days", "METRICS_RETENTION_DAYS", NULL, 1,
                                       3650, 7},
    [RL_OPT_REDIS_CONNECT_TIMEOUT_MS] = {"redis_connect_timeout_ms", NULL, NULL, 1, UINT32_MAX,
                                         200},
    [RL_OPT_REDIS_COMMAND_TIMEOUT_MS] = {"redis_command_timeout_ms", NULL, NULL, 1, UINT32_MAX,
                                         100},
};

static uint64_t *field_u64(rl_options *o, enum rl_opt id, unsigned **u32)
{
    *u32 = NULL;
    switch (id) {
    case RL_OPT_REDIS_POOL_SIZE:
        *u32 = &o->redis_pool_size;
        return NULL;
    case RL_OPT_SYNC_INTERVAL_MS:
        return &o->sync_interval_ms;
    case RL_OPT_CLUSTER_HOSTS:
        return &o->cluster_hosts;
    case RL_OPT_METRICS_RETENTION_DAYS:
        *u32 = &o->metrics_retention_days;
        return NULL;
    case RL_OPT_REDIS_CONNECT_TIMEOUT_MS:
        *u32 = &o->redis_connect_timeout_ms;
        return NULL;
    case RL_OPT_REDIS_COMMAND_TIMEOUT_MS:
        *u32 = &o->redis_command_timeout_ms;
        return NULL;
    default:
        return NULL;
    }
}

static uint64_t get(const rl_options *o, enum rl_opt id)
{
    unsigned *u32;
    uint64_t *u64 = field_u64((rl_options *)o, id, &u32);
    return u64 ? *u64 : *u32;
}

static void set(rl_options *o, enum rl_opt id, uint64_t v)
{
    unsigned *u32;
    uint64_t *u64 = field_u64(o, id, &u32);
    if (u64)
        *u64 = v;
    else
        *u32 = (unsigned)v;
}

int rl__options_check(const rl_options *o)
{
    for (int i = 0; i < RL_OPT_COUNT; i++) {
        const struct rl_opt_spec *s = &rl__opts[i];
        uint64_t v = get(o, (enum rl_opt)i);
        if (v && (v < s->min || v > s->max))
            return rl__err(-EINVAL, "rl_open: %s %llu is outside %llu..%llu", s->field,
                           (unsigned long long)v, (unsigned long long)s->min,
                           (unsigned long long)s->max);
    }
    return 0;
}

void rl__options_resolve(struct rl *rl, rl_options *o)
{
    uint64_t ival;
    int fb;
    rl__rules_sync_settings(rl, &ival, &fb);
    if (!o->sync_interval_ms && ival)
        o->sync_interval_ms = ival;
    if (o->fallback == RL_FALLBACK_DEFAULT)
        o->fallback = fb != RL_FALLBACK_DEFAULT ? fb : RL_FALLBACK_LOCAL;
    for (int i = 0; i < RL_OPT_COUNT; i++)
        if (!get(o, (enum rl_opt)i))
            set(o, (enum rl_opt)i, rl__opts[i].def);
}
