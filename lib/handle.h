/*
 * The handle (struct rl): one process's view of one segment, and the segment's clock.
 * Internal; not ABI.
 */
#ifndef RL_LIB_HANDLE_H
#define RL_LIB_HANDLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/clock.h"
#include "lib/segment.h"

/* The handle. */
struct rl {
    unsigned char *base; /* the mapping */
    size_t map_size;
    struct rl_shm_header *hdr;
    struct rl_limit_rec *limits;
    struct rl_slot *slots;
    uint64_t nslots, nlimits;
    int64_t clock_offset_ns;
    uint64_t uid;                      /* identifies the segment for per-thread caches */
    int fd;                            /* the segment's file: writers' OFD lock (cfgstore.c) */
    struct rl_geometry geo;            /* validated at attach: every region's offset */
    uint64_t capacity, static_check;   /* from the validated header copy */
    struct rl_cfg_buf *cfg_bufs;       /* [2] */
    struct rl_audit_rec *audit;        /* [RL_AUDIT_RECORDS] */
    struct rl_stats_stripe *stats;     /* [RL_STATS_STRIPES] */
    struct rl_ep_rec *ep_dir;          /* [RL_EP_MAX] */
    struct rl_ep_ctr *ep_ctr;          /* [RL_EP_STRIPES][RL_EP_MAX] */
    bool count;                        /* decision counters on (not RL_OPEN_NO_STATS) */
    struct rl_rules_rt *_Atomic rules; /* this process's compiled rule set (RCU: rules.c) */
    void *rules_lock;                  /* pthread_mutex_t *, serialises rebuilds (rules.c) */
    _Atomic uint64_t rules_failed_gen; /* a generation that failed to compile here */
    int enabled;                       /* rl_options.enabled */
    /* The remote modes (lib/remote.h): set by sync/ at rl_open when the handle has Redis, NULL
     * otherwise. The core calls remote_ops only for STRICT and GLOBAL limits; `strict` and
     * `global` are opaque markers it tests for "this mode has Redis". */
    const struct rl_remote_ops *remote_ops;
    struct rl_remote *remote;
    struct rl_strict *strict;
    struct rl_global *global;
    _Atomic int remote_forked; /* 1 in a forked child until the first GLOBAL check restarts sync */
    int fallback;              /* rl_options.fallback */
    struct rl *next_handle;    /* the process's list of handles (api.c, for fork) */
    char name[256];
};

/* clock.c (rl__mono_ns: lib/clock.h) */
/* The segment's clock: ns since the epoch, on CLOCK_MONOTONIC. */
static inline uint64_t rl__clock(const struct rl *rl)
{
    return (uint64_t)((int64_t)rl__mono_ns() + rl->clock_offset_ns);
}

#endif
