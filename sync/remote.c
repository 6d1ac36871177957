/*
 * The remote modes of one handle (lib/remote.h's implementation, built with Redis): rl_open
 * parses the Redis URL once, opens the handle's one pool, STRICT's state and the GLOBAL sync
 * thread, and hands the core the table below. The core reaches Redis through nothing else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sync/remote.h"

static int op_strict_acquire(struct rl_remote *rm, const void *key, size_t keylen,
                             const rl_limit *lim, const struct rl_params *p, uint64_t cost,
                             rl_result *out)
{
    return rl__strict_acquire(rm, key, keylen, lim, p, cost, out);
}

static void op_fork_child(struct rl_remote *rm)
{
    rl__pool_after_fork_child(rm->pool);
    rl__global_fork_child(rm);
}

static void op_health(struct rl_remote *rm, rl_health_info *out)
{
    rl__global_health(rm, out);
    rl__strict_health(rm, out);
}

static void op_close(struct rl_remote *rm)
{
    if (!rm)
        return;
    rl__global_close(rm);
    rl__strict_close(rm);
    rl__pool_close(rm->pool);
    free(rm);
}

static const struct rl_remote_ops remote_ops = {
    .strict_acquire = op_strict_acquire,
    .strict_refund = rl__strict_refund,
    .strict_reset = rl__strict_reset,
    .global_reset = rl__global_reset,
    .fork_child = op_fork_child,
    .after_fork = rl__global_restart,
    .health = op_health,
    .stats_cluster = rl__monitor_stats_cluster,
    .close = op_close,
};

int rl__remote_check(const rl_options *o)
{
    if (!o->redis_url || !*o->redis_url)
        return 0;
    struct rl_redis_url u;
    int r = rl__redis_url_parse(o->redis_url, &u);
    memset(u.password, 0, sizeof u.password);
    return r;
}

int rl__remote_open(struct rl *rl, const rl_options *o)
{
    rl->remote_ops = NULL;
    rl->remote = NULL;
    rl->strict = NULL;
    rl->global = NULL;
    if (!o->redis_url || !*o->redis_url)
        return 0;
    struct rl_redis_url u;
    int r = rl__redis_url_parse(o->redis_url, &u);
    if (r < 0)
        return r;
    struct rl_remote *rm = calloc(1, sizeof *rm);
    if (!rm) {
        memset(u.password, 0, sizeof u.password);
        return rl__err(-ENOMEM, "rl_open: out of memory");
    }
    rm->rl = rl;
    /* The options are resolved (lib/options.h): no defaults or bounds here. */
    r = rl__pool_open(&u, o->redis_pool_size, o->redis_connect_timeout_ms,
                      o->redis_command_timeout_ms, &rm->pool);
    if (r == 0)
        r = rl__strict_open(rm, o);
    if (r == 0 && !(o->flags & RL_OPEN_NO_SYNC))
        r = rl__global_open(rm, &u, o);
    memset(u.password, 0, sizeof u.password); /* the pool and the sync thread keep their own */
    if (r < 0) {
        op_close(rm);
        return r;
    }
    rl->remote = rm;
    rl->remote_ops = &remote_ops;
    rl->strict = rm->strict;
    rl->global = rm->global;
    return 0;
}
