/* The public entry points: argument checks, then segment.c and table.c do the work. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define DEFAULT_NAME     "/rl-default"
#define DEFAULT_CAPACITY 65536
#define MAX_CAPACITY     (1ULL << 32)

RL_API void rl_options_init(rl_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->shm_name = DEFAULT_NAME;
    o->capacity = DEFAULT_CAPACITY;
    o->mode = 0600;
    o->enabled = 1;
    o->redis_pool_size = 20;
    o->metrics_retention_days = 7;
}

RL_API int rl_open(rl_t **out, const rl_options *o)
{
    rl__clear_err();
    if (!out)
        return rl__err(-EINVAL, "rl_open: out is NULL");
    *out = NULL;
    rl_options opt;
    rl_options_init(&opt);
    if (o) {
        if (o->size < offsetof(rl_options, reserved) || o->size > sizeof opt)
            return rl__err(-EINVAL,
                           "rl_open: options.size is %zu; initialise options with "
                           "rl_options_init()",
                           o->size);
        memcpy(&opt, o, o->size);
    }
    if (!opt.shm_name)
        opt.shm_name = DEFAULT_NAME;
    int r = rl__validate_name(opt.shm_name);
    if (r < 0)
        return r;
    if (opt.capacity == 0 || opt.capacity > MAX_CAPACITY)
        return rl__err(-EINVAL, "rl_open: capacity %zu is outside 1..2^32", opt.capacity);
    if (opt.mode & ~(mode_t)0777)
        return rl__err(-EINVAL, "rl_open: mode %o has bits beyond 0777", (unsigned)opt.mode);
    if ((opt.mode & 0600) != 0600)
        return rl__err(-EINVAL, "rl_open: mode %o does not give the owner read and write",
                       (unsigned)opt.mode);
    if (opt.flags & ~(unsigned)(RL_OPEN_NOCREATE | RL_OPEN_ALLOW_FOREIGN))
        return rl__err(-EINVAL, "rl_open: unknown flags 0x%x", opt.flags);
    struct rl *rl = calloc(1, sizeof *rl);
    if (!rl)
        return rl__err(-ENOMEM, "rl_open: out of memory");
    strncpy(rl->name, opt.shm_name, sizeof rl->name - 1);
    r = rl__segment_open(rl, &opt);
    if (r < 0) {
        free(rl);
        return r;
    }
    r = rl__rules_open(rl, &opt);
    if (r < 0) {
        rl__rules_close(rl);
        rl__segment_close(rl);
        free(rl);
        return r;
    }
    *out = rl;
    return 0;
}

RL_API void rl_close(rl_t **rl)
{
    if (!rl || !*rl)
        return;
    rl__rules_close(*rl);
    rl__segment_close(*rl);
    free(*rl);
    *rl = NULL;
}

RL_API int rl_unlink(const char *shm_name)
{
    rl__clear_err();
    int r = rl__validate_name(shm_name);
    if (r < 0)
        return r;
    if (shm_unlink(shm_name) < 0) {
        int e = errno;
        if (e == ENOENT)
            return rl__err(-ENOENT, "no segment %s", shm_name);
        return rl__err(-e, "rl_unlink %s: %s", shm_name, strerror(e));
    }
    return 0;
}

RL_API int rl_segment_info_get(const rl_t *rl, rl_segment_info *out)
{
    if (!rl || !out)
        return rl__err(-EINVAL, "rl_segment_info_get: rl and out must not be NULL");
    const struct rl_shm_header *h = rl->hdr;
    memset(out, 0, sizeof *out);
    out->layout_version = h->layout_version;
    out->capacity = h->capacity;
    out->slots = h->nslots;
    /* relaxed: statistics, no data is published through them. */
    out->slots_in_use = atomic_load_explicit(&h->used, memory_order_relaxed);
    out->limits_in_use = atomic_load_explicit(&h->limits_used, memory_order_relaxed);
    out->limits_max = h->nlimits;
    out->enospc = atomic_load_explicit(&h->enospc, memory_order_relaxed);
    out->reclaimed = atomic_load_explicit(&h->reclaimed, memory_order_relaxed);
    out->max_probe = atomic_load_explicit(&h->max_probe, memory_order_relaxed);
    out->segment_bytes = rl->map_size;
    out->creator_pid = (pid_t)h->creator_pid;
    out->birth_ns = h->birth_ns;
    return 0;
}
