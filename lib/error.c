/* Error codes and the per-thread detailed message. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char tl_msg[512];

int rl__err(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    va_end(ap);
    return err;
}

void rl__clear_err(void)
{
    tl_msg[0] = '\0';
}

RL_API const char *rl_errmsg(void)
{
    return tl_msg;
}

RL_API const char *rl_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case -EINVAL:
        return "invalid argument";
    case -E2BIG:
        return "key too long (more than RL_KEY_MAX bytes)";
    case -ERANGE:
        return "limit outside the supported range";
    case -ENOSPC:
        return "no space: the key table, limit table or /dev/shm is full";
    case -ENOMEM:
        return "out of memory";
    case -ENOENT:
        return "no such segment";
    case -EEXIST:
        return "segment already exists";
    case -EACCES:
        return "permission denied";
    case -EPERM:
        return "segment owned by another user";
    case -EPROTO:
        return "segment layout version not supported by this library";
    case -EBADMSG:
        return "segment truncated or corrupted";
    case -EAGAIN:
        return "segment initialisation in progress; try again";
    case -ENOTSUP:
        return "not supported by this build or configuration";
    case -ENAMETOOLONG:
        return "name too long";
    default:
        return err < 0 ? "system error (see errno codes)" : "not an rl error code";
    }
}

RL_API const char *rl_version(void)
{
    return RL_VERSION_STRING;
}
