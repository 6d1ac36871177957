/* A handle's life: rl_open (options checked against lib/options.c's table and resolved once,
 * then the segment, the rules and the remote modes), rl_close, rl_unlink, and the handle-wide
 * reports rl_segment_info_get, rl_health and rl_stats_cluster. The other rl_* functions live
 * beside their work: table.c (keys), rules.c (rl_check and the rule set), format.c, ip.c, ... */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/error.h"
#include "lib/handle.h"
#include "lib/options.h"
#include "lib/remote.h"
#include "lib/segment.h"
#include "lib/thread.h"
#include "lib/internal.h"

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
    o->sync_interval_ms = 0;           /* the rule set's sync.interval, else 100 */
    o->fallback = RL_FALLBACK_DEFAULT; /* the rule set's sync.fallback, else LOCAL */
    o->redis_connect_timeout_ms = 200;
    o->redis_command_timeout_ms = 100;
    o->metrics_retention_days = 7;
}

/* Every open handle of the process, so that a forked child can repair what fork() does not copy
 * sensibly: a mutex another thread held at fork() time, the file description whose lock
 * (cfgstore.c) the child would otherwise share with its parent, and each handle's remote state
 * (its parent's sockets and sync lease). The library's only process registry (fork.c). */
static pthread_mutex_t g_handles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl *g_handles;

static void handles_prepare(void)
{
    pthread_mutex_lock(&g_handles_lock);
}

static void handles_parent(void)
{
    pthread_mutex_unlock(&g_handles_lock);
}

static void handles_child(void)
{
    pthread_mutex_init(&g_handles_lock, NULL);
    for (struct rl *h = g_handles; h; h = h->next_handle) {
        if (h->rules_lock)
            pthread_mutex_init(h->rules_lock, NULL);
        int fd = shm_open(h->name, O_RDWR | O_CLOEXEC, 0);
        if (h->fd >= 0)
            close(h->fd);
        h->fd = fd; /* -1 if the name is gone: rule-set writes then fail with a message */
        if (h->remote_ops) {
            h->remote_ops->fork_child(h->remote);
            /* relaxed: read by this process's threads, all started after this handler. */
            atomic_store_explicit(&h->remote_forked, 1, memory_order_relaxed);
        }
    }
}

static struct rl_fork_hook g_handles_hook = {
    .prepare = handles_prepare, .parent = handles_parent, .child = handles_child};

static void handles_add(struct rl *rl)
{
    rl__fork_register(&g_handles_hook);
    pthread_mutex_lock(&g_handles_lock);
    rl->next_handle = g_handles;
    g_handles = rl;
    pthread_mutex_unlock(&g_handles_lock);
}

static void handles_remove(struct rl *rl)
{
    pthread_mutex_lock(&g_handles_lock);
    for (struct rl **p = &g_handles; *p; p = &(*p)->next_handle)
        if (*p == rl) {
            *p = rl->next_handle;
            break;
        }
    pthread_mutex_unlock(&g_handles_lock);
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
        /* Words a later version may give a meaning: a caller that set one (a newer header, or
         * garbage in an uninitialised struct) is refused rather than silently misread. */
        for (size_t i = 0; i < sizeof opt.reserved / sizeof opt.reserved[0]; i++)
            if (opt.reserved[i])
                return rl__err(-EINVAL,
                               "rl_open: options.reserved[%zu] is %llu; it must stay zero "
                               "(initialise options with rl_options_init())",
                               i, (unsigned long long)opt.reserved[i]);
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
    if ((opt.mode & 0002) && !(opt.flags & RL_OPEN_WORLD_WRITABLE))
        return rl__err(-EPERM,
                       "rl_open: mode %o lets every local user write the segment (rewrite its "
                       "rules, its bypass list, its counters); share it through a group "
                       "(mode 0660 and RL_OPEN_ALLOW_FOREIGN) or, if that is really meant, set "
                       "RL_OPEN_WORLD_WRITABLE",
                       (unsigned)opt.mode);
    if (opt.fallback < RL_FALLBACK_DEFAULT || opt.fallback > RL_FALLBACK_CLOSED)
        return rl__err(-EINVAL,
                       "rl_open: fallback %d is not RL_FALLBACK_DEFAULT, _LOCAL, _OPEN or _CLOSED",
                       opt.fallback);
    if (opt.metrics_retention_days < 1)
        return rl__err(-EINVAL, "rl_open: metrics_retention_days %u is outside 1..3650",
                       opt.metrics_retention_days);
    r = rl__options_check(&opt); /* every bounded option, from the table (lib/options.c) */
    if (r < 0)
        return r;
    if (opt.flags & ~(unsigned)(RL_OPEN_NOCREATE | RL_OPEN_ALLOW_FOREIGN | RL_OPEN_NO_SYNC |
                                RL_OPEN_NO_STATS | RL_OPEN_WORLD_WRITABLE))
        return rl__err(-EINVAL, "rl_open: unknown flags 0x%x", opt.flags);
    if (opt.config_path) {
        /* Check the rule file before touching any segment: a bad file fails without leaving a
         * new segment behind. */
        r = rl_check_config_file(opt.config_path);
        if (r < 0)
            return r;
    }
    r = rl__remote_check(&opt); /* a bad Redis URL, likewise */
    if (r < 0)
        return r;
    struct rl *rl = calloc(1, sizeof *rl);
    if (!rl)
        return rl__err(-ENOMEM, "rl_open: out of memory");
    rl->fd = -1;
    strncpy(rl->name, opt.shm_name, sizeof rl->name - 1);
    r = rl__segment_open(rl, &opt);
    if (r < 0) {
        free(rl);
        return r;
    }
    r = rl__rules_open(rl, &opt);
    if (r == 0) {
        /* Options left unset take the rule set's `sync:` values, then the defaults
         * (lib/options.h states the order). */
        rl__options_resolve(rl, &opt);
        rl->fallback = opt.fallback;
        /* The remote modes get the options resolved: they do not validate them again. */
        r = rl__remote_open(rl, &opt);
    }
    if (r < 0) {
        rl__remote_close(rl);
        rl__rules_close(rl);
        rl__segment_close(rl);
        free(rl);
        return r;
    }
    handles_add(rl);
    *out = rl;
    return 0;
}

RL_API void rl_close(rl_t **rl)
{
    if (!rl || !*rl)
        return;
    handles_remove(*rl);
    rl__remote_close(*rl);
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

/* The segment's sync state (whoever leads it), then, with Redis, this handle's view of Redis. */
RL_API int rl_health(rl_t *rl, rl_health_info *out)
{
    if (!rl || !out)
        return rl__err(-EINVAL, "rl_health: rl and out must not be NULL");
    memset(out, 0, sizeof *out);
    out->last_sync_age_ms = UINT64_MAX;
    rl__clear_err(); /* after return rl_errmsg() is out->error uncut, or "" */
    const struct rl_shm_header *h = rl->hdr;
    /* relaxed: statistics. */
    uint64_t lease = atomic_load_explicit(&h->sync_lease, memory_order_relaxed);
    if (lease & 0xffffffffu)
        out->leader_pid = (pid_t)atomic_load_explicit(&h->sync_leader_pid, memory_order_relaxed);
    out->leader_epoch = lease >> 32;
    uint64_t ok = atomic_load_explicit(&h->sync_last_ok_ns, memory_order_relaxed);
    uint64_t now = rl__clock(rl);
    out->last_sync_age_ms = ok ? (now > ok ? (now - ok) / 1000000u : 0) : UINT64_MAX;
    out->sync_rounds = atomic_load_explicit(&h->sync_rounds, memory_order_relaxed);
    out->sync_keys = atomic_load_explicit(&h->sync_keys, memory_order_relaxed);
    out->sync_errors = atomic_load_explicit(&h->sync_errors, memory_order_relaxed);
    out->sync_stale_refused = atomic_load_explicit(&h->sync_stale_refused, memory_order_relaxed);
    out->cluster_hosts = atomic_load_explicit(&h->sync_hosts, memory_order_relaxed);
    out->global_fallback =
        now > atomic_load_explicit(&h->sync_valid_until_ns, memory_order_relaxed) ||
        atomic_load_explicit(&h->sync_failing, memory_order_relaxed);
    if (rl->remote_ops)
        rl->remote_ops->health(rl->remote, out);
    return 0;
}

#define STATS_CLUSTER_MAX_MINUTES 527040u /* rl.h: 366 days */

RL_API int rl_stats_cluster(rl_t *rl, unsigned minutes, rl_endpoint_stats *out, size_t n,
                            unsigned *hosts)
{
    if (!rl || (!out && n))
        return rl__err(-EINVAL, "rl_stats_cluster: rl and out must not be NULL");
    if (minutes < 1 || minutes > STATS_CLUSTER_MAX_MINUTES)
        return rl__err(-EINVAL, "rl_stats_cluster: minutes %u is outside 1..%u", minutes,
                       STATS_CLUSTER_MAX_MINUTES);
    if (!rl->remote_ops)
        return rl__err(-ENOTCONN, RL_WITH_REDIS
                                      ? "no Redis: open the segment with a redis_url (REDIS_URL)"
                                      : "no Redis: this librl was built without Redis "
                                        "(meson -Dredis=disabled)");
    return rl->remote_ops->stats_cluster(rl->remote, minutes, out, n, hosts);
}
