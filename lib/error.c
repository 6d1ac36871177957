/* Error codes and the per-thread detailed message. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "lib/compiler.h"
#include "lib/error.h"

static _Thread_local char tl_msg[512];

int rl__err(int err, const char *fmt, ...)
{
    /* Formatted aside, then copied: callers wrap the cause with rl__err(r, "...: %s",
     * rl_errmsg()), and vsnprintf() into the buffer it reads from is undefined (glibc writes
     * the prefix over the cause before it reads it). */
    char buf[sizeof tl_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(tl_msg, buf, sizeof tl_msg);
    return err;
}

void rl__strcut(char *dst, size_t n, const char *src)
{
    if (!n)
        return;
    size_t len = strlen(src);
    if (len < n) {
        memcpy(dst, src, len + 1);
        return;
    }
    /* Too long: the first n - 4 bytes and "...", so that a reader sees it was cut. */
    size_t keep = n > 4 ? n - 4 : n - 1;
    memcpy(dst, src, keep);
    if (n > 4) {
        memcpy(dst + keep, "...", 3);
        keep += 3;
    }
    dst[keep] = '\0';
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
        return "too big (a key over RL_KEY_MAX bytes, or a rule set over 64 KiB)";
    case -ERANGE:
        return "limit outside the supported range";
    case -ENOSPC:
        return "no space (the key or limit table, /dev/shm, or a caller's buffer is full)";
    case -ENOMEM:
        return "out of memory";
    case -ENOENT:
        return "not found (no such segment, file or rule set)";
    case -EEXIST:
        return "segment already exists";
    case -EACCES:
        return "permission denied";
    case -EPERM:
        return "not permitted (a segment of another user, or a Redis ACL that forbids it)";
    case -ETIMEDOUT:
        return "timed out (Redis did not answer within its timeout)";
    case -ECONNREFUSED:
        return "connection refused (is Redis running at REDIS_URL?)";
    case -ECONNRESET:
        return "connection lost (Redis closed or reset it)";
    case -EHOSTUNREACH:
        return "host unreachable (check REDIS_URL's host)";
    case -EROFS:
        return "Redis answered READONLY (a replica: a failover happened)";
    case -EIO:
        return "Redis answered an error (see rl_errmsg())";
    case -ENXIO:
        return "no sentinel knows that master name";
    case -EFBIG:
        return "file too big";
    case -EISDIR:
        return "is a directory";
    case -EPROTO:
        return "segment layout version not supported by this library";
    case -EBADMSG:
        return "segment truncated or corrupted";
    case -EAGAIN:
        return "busy or backing off (initialisation, a writer, or a Redis breaker); try again";
    case -ENOTSUP:
        return "not supported by this build or configuration";
    case -ENAMETOOLONG:
        return "name too long";
    default:
        return err < 0 ? "system error (see errno codes)" : "not an rl error code";
    }
}

/* ---- the debug log ----------------------------------------------------------------------------
 */

static _Atomic(rl_log_fn) g_log_fn;
static void *_Atomic g_log_arg;
static _Atomic int g_log_level = -2; /* -2: not decided yet (read RL_LOG_LEVEL); -1: off */

static void log_stderr(rl_log_level level, const char *msg, void *arg)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    (void)arg;
    fprintf(stderr, "rl: %s: %s\n", names[level], msg);
}

RL_API void rl_set_log(rl_log_fn fn, void *arg, rl_log_level max_level)
{
    /* release: fn and arg are visible to a thread that sees the new level (acquire below). */
    atomic_store_explicit(&g_log_fn, fn, memory_order_relaxed);
    atomic_store_explicit(&g_log_arg, arg, memory_order_relaxed);
    atomic_store_explicit(&g_log_level, fn ? (int)max_level : -1, memory_order_release);
}

static int log_level_from_env(void)
{
    const char *v = getenv("RL_LOG_LEVEL");
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (v)
        for (int i = 0; i < 4; i++)
            if (strcmp(v, names[i]) == 0) {
                atomic_store_explicit(&g_log_fn, log_stderr, memory_order_relaxed);
                return i;
            }
    return -1;
}

void rl__log(int level, const char *fmt, ...)
{
    /* acquire: pairs with the release store in rl_set_log(). */
    int max = atomic_load_explicit(&g_log_level, memory_order_acquire);
    if (max == -2) {
        int want = log_level_from_env(), expect = -2;
        atomic_compare_exchange_strong_explicit(&g_log_level, &expect, want, memory_order_acq_rel,
                                                memory_order_acquire);
        max = atomic_load_explicit(&g_log_level, memory_order_acquire);
    }
    if (level > max)
        return;
    rl_log_fn fn = atomic_load_explicit(&g_log_fn, memory_order_relaxed);
    if (!fn)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn((rl_log_level)level, msg, atomic_load_explicit(&g_log_arg, memory_order_relaxed));
}

RL_API const char *rl_version(void)
{
    return RL_VERSION_STRING;
}
