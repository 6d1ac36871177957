/*
 * lib/remote.h without Redis (meson -Dredis=disabled): no remote modes. A handle opened with a
 * Redis URL is refused, so a configuration that expects the cluster-wide modes never silently
 * runs without them.
 */
#include <errno.h>

#include "lib/error.h"
#include "lib/remote.h"

int rl__remote_check(const rl_options *o)
{
    if (o->redis_url && *o->redis_url)
        return rl__err(-ENOTSUP,
                       "rl_open: a redis_url (REDIS_URL) is set, but this librl was built "
                       "without Redis (meson -Dredis=disabled): use a librl built with Redis, "
                       "or unset the URL to count on this host only");
    return 0;
}

int rl__remote_open(struct rl *rl, const rl_options *o)
{
    rl->remote_ops = NULL;
    rl->remote = NULL;
    rl->strict = NULL;
    rl->global = NULL;
    return rl__remote_check(o);
}
