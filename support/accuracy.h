/*
 * accuracy.h: how exactly hosts that share one GLOBAL limit keep to it, the measure of
 * docs/design.md section 10 (bench/sim/sim.py computes the same). One implementation for
 * tests/test_global.c, which asserts on it, and bench/rl-global.c, which makes the tables
 * (support/meson.build puts this folder on both include paths).
 *
 *  - acc_host_main() is one host's thread: it paces the host's demand (struct demand) on one
 *    key, every ACC_PACE_US, and records every attempt as (ns since t0) << 1 | allowed;
 *    acc_run_hosts() runs the hosts of one measurement at once and waits for them;
 *  - acc_measure() merges the hosts' records in time order and feeds them to two exact token
 *    buckets (r, B) of the limit, both full at t0: one fed with the ADMITTED stream counts the
 *    over-admission (the admissions it would reject), one fed with EVERY attempt gives the
 *    utilisation (what the hosts admitted after the warm-up over what it admits after it).
 *
 * Header-only and without Criterion: static inline functions, one copy per program.
 */
#ifndef RL_SUPPORT_ACCURACY_H
#define RL_SUPPORT_ACCURACY_H

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rl/rl.h>

#include "support.h" /* mono_ns() */

#define ACC_PACE_US   500 /* a host thread's pacing step */
#define ACC_MAX_HOSTS 16  /* acc_run_hosts()'s n at the most */

/* A host's demand: `rate` requests per second from `from` to `to` seconds into the run, plus
 * bursts of `burst_n` at once every `burst_every` seconds (0: every second) at offset
 * `burst_at` (burst_n 0: none). */
struct demand {
    double rate, from, to;
    unsigned burst_n;
    double burst_at, burst_every;
};

/* One host's run: the caller fills in rl to t0 (and stop), acc_host_alloc() the record, the
 * thread the rest; acc_measure() adds the counts after the warm-up. */
struct hostrun {
    rl_t *rl;
    const char *key;
    const rl_limit *lim;
    struct demand d;
    double secs;
    uint64_t t0;
    const volatile sig_atomic_t *stop; /* non-zero: stop early (NULL: run to the end) */
    uint64_t *att;                     /* every attempt: (ns since t0) << 1 | allowed */
    size_t natt, cap;
    uint64_t admitted, attempts;
    uint64_t admitted_after, attempts_after; /* after the warm-up */
    int error;                               /* the first failed rl_acquire (the host stops) */
    char errmsg[192];
};

/* Allocates h->att for every attempt h->d may make in h->secs (NULL when out of memory). */
static inline uint64_t *acc_host_alloc(struct hostrun *h)
{
    double every = h->d.burst_every > 0 ? h->d.burst_every : 1.0;
    h->cap = (size_t)(h->secs * (h->d.rate + (h->d.burst_n + 10) / fmin(every, 1.0)) * 1.2) + 1000;
    h->att = calloc(h->cap, sizeof *h->att);
    return h->att;
}

/* A host's thread (pthread_create(..., acc_host_main, h)): h's demand until h->secs into the
 * run, or until *h->stop; a failed rl_acquire stops it with h->error and h->errmsg set. */
static inline void *acc_host_main(void *arg)
{
    struct hostrun *h = arg;
    size_t keylen = strlen(h->key);
    double sent = 0;
    unsigned bursts = 0;
    double every = h->d.burst_every > 0 ? h->d.burst_every : 1.0;
    while (h->stop == NULL || *h->stop == 0) {
        uint64_t now = mono_ns() - h->t0;
        double t = (double)now / 1e9;
        if (t >= h->secs)
            break;
        double due = 0;
        if (t > h->d.from)
            due = (fmin(t, h->d.to) - h->d.from) * h->d.rate;
        unsigned todo = 0;
        if (due > sent) {
            todo = (unsigned)(due - sent);
            sent += todo;
        }
        if (h->d.burst_n && t >= bursts * every + h->d.burst_at) {
            todo += h->d.burst_n;
            bursts++;
        }
        for (unsigned i = 0; i < todo; i++) {
            rl_result r;
            int rc = rl_acquire(h->rl, h->key, keylen, h->lim, 1, &r);
            if (rc != 0) {
                h->error = rc;
                snprintf(h->errmsg, sizeof h->errmsg, "%s", rl_errmsg());
                return NULL;
            }
            h->attempts++;
            h->admitted += r.allowed;
            if (h->natt < h->cap)
                h->att[h->natt++] = (mono_ns() - h->t0) << 1 | (uint64_t)r.allowed;
        }
        usleep(ACC_PACE_US);
    }
    return NULL;
}

/* Runs the n hosts hr[0..n) (n <= ACC_MAX_HOSTS) at once and waits until all have ended: each
 * hr[i] filled in but for t0 and att, which this sets (the same t0 for all; free the records
 * with acc_hosts_free()). The threads start with every signal blocked, so that signals reach
 * the calling thread. Returns how many hosts ran: n, or fewer when a record or a thread could
 * not be had (the rest did not start). A host whose rl_acquire failed has hr[i].error set. */
static inline int acc_run_hosts(struct hostrun *hr, int n)
{
    pthread_t th[ACC_MAX_HOSTS];
    if (n > ACC_MAX_HOSTS)
        return 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    uint64_t t0 = mono_ns();
    int started = 0;
    for (int i = 0; i < n; i++) {
        hr[i].t0 = t0;
        if (acc_host_alloc(&hr[i]) == NULL ||
            pthread_create(&th[i], NULL, acc_host_main, &hr[i]) != 0) {
            free(hr[i].att);
            hr[i].att = NULL;
            break;
        }
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    return started;
}

/* Frees the records of hr[0..n). */
static inline void acc_hosts_free(struct hostrun *hr, int n)
{
    for (int i = 0; i < n; i++) {
        free(hr[i].att);
        hr[i].att = NULL;
    }
}

/* What acc_measure() finds:
 *   rejects    admissions that an exact bucket (r, B) fed with the admitted stream would have
 *              refused, over the whole run
 *   over_pct   rejects in % of what the limit allows in the run (B + r x run)
 *   win_pct    the same over the worst 1 s window (100 ms steps), in % of B + r x 1 s
 *   util_pct   admitted after the warm-up / what an exact bucket fed with every attempt would
 *              have admitted in that time (min(demand, what the limit allows)) */
struct acc_outcome {
    uint64_t admitted, attempts, rejects;
    double over_pct, win_pct, util_pct;
};

static inline int acc_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The measures of the n hosts' run of secs seconds under lim (a token bucket: r = requests per
 * window, B = burst), the utilisation after warm seconds; also each host's attempts_after and
 * admitted_after. The records stay the caller's. 0, or -1 when out of memory. */
static inline int acc_measure(struct hostrun *hr, int n, const rl_limit *lim, double secs,
                              double warm, struct acc_outcome *o)
{
    double r = (double)lim->requests * 1000.0 / (double)lim->window_ms, B = (double)lim->burst;
    memset(o, 0, sizeof *o);
    size_t tot = 0;
    for (int i = 0; i < n; i++)
        tot += hr[i].natt;
    uint64_t *all = malloc((tot + 1) * sizeof *all);
    size_t nwin = (size_t)secs * 10 + 20; /* 100 ms buckets, with room for late records */
    uint64_t *rej_at = calloc(nwin, sizeof *rej_at);
    if (all == NULL || rej_at == NULL) {
        free(all);
        free(rej_at);
        return -1;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        hr[i].attempts_after = hr[i].admitted_after = 0;
        for (size_t j = 0; j < hr[i].natt; j++)
            if ((double)(hr[i].att[j] >> 1) >= warm * 1e9) {
                hr[i].attempts_after++;
                hr[i].admitted_after += hr[i].att[j] & 1;
            }
        memcpy(all + k, hr[i].att, hr[i].natt * sizeof *all);
        k += hr[i].natt;
        o->admitted += hr[i].admitted;
        o->attempts += hr[i].attempts;
    }
    qsort(all, tot, sizeof *all, acc_cmp_u64);
    /* Reference (every attempt) and conformance (admitted only) buckets, both full at t0. */
    double rt = B, rlast = 0, ct = B, clast = 0;
    uint64_t ref_after = 0, adm_after = 0;
    for (size_t i = 0; i < tot; i++) {
        double t = (double)(all[i] >> 1) / 1e9;
        bool ok = all[i] & 1;
        rt = fmin(B, rt + r * (t - rlast));
        rlast = t;
        if (rt >= 1.0 - 1e-9) {
            rt -= 1.0;
            ref_after += t >= warm;
        }
        if (!ok)
            continue;
        adm_after += t >= warm;
        ct = fmin(B, ct + r * (t - clast));
        clast = t;
        if (ct >= 1.0 - 1e-9) {
            ct -= 1.0;
        } else {
            o->rejects++;
            size_t b = (size_t)(t * 10);
            rej_at[b < nwin ? b : nwin - 1]++;
        }
    }
    uint64_t worst = 0;
    for (size_t w = 0; w + 10 <= nwin; w++) {
        uint64_t s = 0;
        for (size_t j = w; j < w + 10; j++)
            s += rej_at[j];
        if (s > worst)
            worst = s;
    }
    free(rej_at);
    free(all);
    o->over_pct = 100.0 * (double)o->rejects / (B + r * secs);
    o->win_pct = 100.0 * (double)worst / (B + r);
    o->util_pct = ref_after ? 100.0 * (double)adm_after / (double)ref_after : 100.0;
    return 0;
}

#endif
