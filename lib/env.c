/* rl_options_from_env(): the seed's environment variables. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/error.h"
#include "lib/options.h"
#include "lib/segment.h"

static int parse_bool(const char *var, const char *v, int *out)
{
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
        !strcasecmp(v, "on")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
        !strcasecmp(v, "off")) {
        *out = 0;
        return 0;
    }
    return rl__err(-EINVAL, "%s=\"%.32s\": expected true or false (1/0, yes/no, on/off)", var, v);
}

/* A bounded option from its environment variable (the bound: lib/options.c). */
static int parse_opt(enum rl_opt id, const char *v, uint64_t *out)
{
    const struct rl_opt_spec *s = &rl__opts[id];
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-' || x < s->min || x > s->max)
        return rl__err(-EINVAL, "%s=\"%.32s\": expected a whole number from %llu to %llu", s->env,
                       v, (unsigned long long)s->min, (unsigned long long)s->max);
    *out = x;
    return 0;
}

RL_API int rl_options_from_env(rl_options *o)
{
    rl__clear_err();
    if (!o || o->size < offsetof(rl_options, reserved))
        return rl__err(-EINVAL, "rl_options_from_env: initialise the options with "
                                "rl_options_init() first");
    const char *v;
    int r;
    if ((v = getenv("RL_SHM")) && *v) {
        if ((r = rl__validate_name(v)) < 0) {
            char why[256];
            strncpy(why, rl_errmsg(), sizeof why - 1);
            why[sizeof why - 1] = '\0';
            return rl__err(r, "RL_SHM: %s", why);
        }
        o->shm_name = v;
    }
    if ((v = getenv("RL_CONFIG")) && *v)
        o->config_path = v;
    if ((v = getenv("ENVIRONMENT")) && *v) {
        if (strcmp(v, "development") && strcmp(v, "staging") && strcmp(v, "production"))
            return rl__err(-EINVAL,
                           "ENVIRONMENT=\"%.32s\": expected development, staging or production", v);
        o->environment = v;
    }
    if ((v = getenv("RATE_LIMITING_ENABLED")) && *v) {
        if ((r = parse_bool("RATE_LIMITING_ENABLED", v, &o->enabled)) < 0)
            return r;
    }
    if ((v = getenv("REDIS_URL")) && *v)
        o->redis_url = v;
    uint64_t x;
    if ((v = getenv(rl__opts[RL_OPT_REDIS_POOL_SIZE].env)) && *v) {
        if ((r = parse_opt(RL_OPT_REDIS_POOL_SIZE, v, &x)) < 0)
            return r;
        o->redis_pool_size = (unsigned)x;
    }
    if ((v = getenv("ENABLE_RATE_LIMIT_MONITORING")) && *v) {
        if ((r = parse_bool("ENABLE_RATE_LIMIT_MONITORING", v, &o->monitoring)) < 0)
            return r;
    }
    if ((v = getenv(rl__opts[RL_OPT_SYNC_INTERVAL_MS].env)) && *v) {
        if ((r = parse_opt(RL_OPT_SYNC_INTERVAL_MS, v, &x)) < 0)
            return r;
        o->sync_interval_ms = x;
    }
    if ((v = getenv("RL_FALLBACK")) && *v) {
        if (!strcasecmp(v, "local"))
            o->fallback = RL_FALLBACK_LOCAL;
        else if (!strcasecmp(v, "open"))
            o->fallback = RL_FALLBACK_OPEN;
        else if (!strcasecmp(v, "closed"))
            o->fallback = RL_FALLBACK_CLOSED;
        else
            return rl__err(-EINVAL, "RL_FALLBACK=\"%.32s\": expected local, open or closed", v);
    }
    if ((v = getenv("RL_HOST_ID")) && *v)
        o->host_id = v;
    if ((v = getenv(rl__opts[RL_OPT_CLUSTER_HOSTS].env)) && *v) {
        if ((r = parse_opt(RL_OPT_CLUSTER_HOSTS, v, &x)) < 0)
            return r;
        o->cluster_hosts = x;
    }
    if ((v = getenv(rl__opts[RL_OPT_METRICS_RETENTION_DAYS].env)) && *v) {
        if ((r = parse_opt(RL_OPT_METRICS_RETENTION_DAYS, v, &x)) < 0)
            return r;
        o->metrics_retention_days = (unsigned)x;
    }
    return 0;
}
