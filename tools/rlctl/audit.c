/*
 * The audit ring: rlctl tail (-n, -f, --for, --syslog) and the recent denials per key that
 * keys --sort denied and stats read from it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "rlctl.h"

/* ---- recent denials: the audit ring, counted per key ------------------------------------- */

/* Reads the whole ring (its last AUDIT_RING records) and counts the denials per key. The ring is
 * sampled under load (rl_stats_info.audit_dropped), so these are recent denials, not all. */
int read_denials(rl_t *rl, struct denials *d)
{
    memset(d, 0, sizeof *d);
    rl_audit_record *buf = calloc(AUDIT_RING, sizeof *buf);
    d->v = calloc(AUDIT_RING, sizeof *d->v);
    if (!buf || !d->v) {
        free(buf);
        free(d->v);
        d->v = NULL;
        return -ENOMEM;
    }
    uint64_t cursor = 0;
    int r = 0; /* gcc -fsanitize=address -O2 cannot see the loop condition sets it */
    /* At most one ring's worth: under `audit: all` new records never stop coming. */
    while (d->records < AUDIT_RING &&
           (r = rl_audit_read(rl, &cursor, buf, AUDIT_RING - (size_t)d->records)) > 0) {
        for (int i = 0; i < r; i++) {
            d->records++;
            if (buf[i].allowed)
                continue;
            size_t k = 0;
            while (k < d->n && strcmp(d->v[k].key, buf[i].key) != 0)
                k++;
            if (k == d->n) {
                if (d->n == AUDIT_RING)
                    continue;
                snprintf(d->v[d->n++].key, sizeof d->v[0].key, "%s", buf[i].key);
            }
            d->v[k].n++;
        }
    }
    free(buf);
    return r < 0 ? r : 0;
}

/* Denials of keys starting with `key` (a shown key: 24 bytes, or 8 for GLOBAL keys). */
uint64_t denials_of(const struct denials *d, const char *key)
{
    uint64_t n = 0;
    size_t len = strlen(key);
    for (size_t i = 0; i < d->n; i++)
        if (strncmp(d->v[i].key, key, len) == 0)
            n += d->v[i].n;
    return n;
}

int by_denials(const void *a, const void *b)
{
    const struct den *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* ---------------------------------------------------------------------------------------- */

static json_t *audit_json(const rl_audit_record *r)
{
    char t[64];
    fmt_time(r->time_ns, t, sizeof t);
    json_t *j = json_object();
    set_u64(j, "seq", r->seq);
    json_object_set_new(j, "time", json_string(t));
    set_u64(j, "time_ns", r->time_ns);
    json_object_set_new(j, "pid", json_integer(r->pid));
    json_object_set_new(j, "allowed", json_boolean(r->allowed));
    json_object_set_new(j, "shadow", json_boolean(r->shadow));
    set_u64(j, "layer", r->layer);
    json_object_set_new(j, "scope", json_string(scope_name(r->scope)));
    json_object_set_new(j, "algorithm", json_string(alg_name(r->algorithm)));
    set_u64(j, "limit", r->limit);
    if (r->retry_after_ms == RL_RETRY_NEVER)
        json_object_set_new(j, "retry_after_ms", json_null());
    else
        set_u64(j, "retry_after_ms", r->retry_after_ms);
    json_object_set_new(j, "key", json_string(r->key));
    return j;
}

/* A record's time and retry-after as text (tail's table and --syslog). */
static void audit_strings(const rl_audit_record *r, char t[64], char retry[32])
{
    fmt_time(r->time_ns, t, 64);
    if (r->retry_after_ms == RL_RETRY_NEVER)
        snprintf(retry, 32, "never");
    else
        snprintf(retry, 32, "%" PRIu64 "ms", r->retry_after_ms);
}

static const char *audit_result(const rl_audit_record *r)
{
    return r->allowed ? (r->shadow ? "shadow" : "allow") : "deny";
}

static void audit_print(const rl_audit_record *r)
{
    char t[64], retry[32];
    audit_strings(r, t, retry);
    fprintf(g_out, "%-24s %7ld %-7s %5u %-17s %-15s %8" PRIu64 " %11s  %s\n", t, (long)r->pid,
            audit_result(r), r->layer, scope_name(r->scope), alg_name(r->algorithm), r->limit,
            retry, r->key);
}

/* tail --syslog: one message per record (facility daemon; denials at notice, the rest at
 * info), so that the audit trail outlives the segment and the host's restarts. */
static void audit_syslog(const rl_audit_record *r)
{
    char t[64], retry[32];
    audit_strings(r, t, retry);
    syslog(r->allowed ? LOG_INFO : LOG_NOTICE,
           "%s time=%s pid=%ld layer=%u scope=%s algorithm=%s limit=%" PRIu64
           " retry_after=%s key=%s",
           audit_result(r), t, (long)r->pid, r->layer, scope_name(r->scope), alg_name(r->algorithm),
           r->limit, retry, r->key);
}

/* One record of tail: into the JSON array arr (--json) or printed, and to syslog (--syslog). */
static void audit_emit(const rl_audit_record *r, json_t *arr, const struct opts *o)
{
    if (arr)
        json_array_append_new(arr, audit_json(r));
    else
        audit_print(r);
    if (o->syslog)
        audit_syslog(r);
}

int cmd_tail(rl_t *rl, const struct opts *o)
{
    uint64_t n = o->n ? o->n : 20;
    rl_audit_record *buf = calloc(AUDIT_RING, sizeof *buf);
    if (!buf) {
        fputs("rlctl: out of memory\n", stderr);
        return EXIT_FAIL;
    }
    /* The last n records: read the whole ring, keep its end. */
    uint64_t cursor = 0;
    size_t got = 0;
    for (;;) {
        if (got == AUDIT_RING) {
            memmove(buf, buf + AUDIT_RING / 2, (AUDIT_RING / 2) * sizeof *buf);
            got = AUDIT_RING / 2;
        }
        int r = rl_audit_read(rl, &cursor, buf + got, AUDIT_RING - got);
        if (r < 0) {
            free(buf);
            fail_rl("rl_audit_read", r);
            return EXIT_FAIL;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    size_t from = got > n ? got - (size_t)n : 0;
    json_t *doc = NULL, *arr = NULL;
    if (o->json) {
        doc = json_object();
        arr = json_array();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set(doc, "records", arr);
    } else {
        fprintf(g_out, "%-24s %7s %-7s %5s %-17s %-15s %8s %11s  %s\n", "TIME", "PID", "RESULT",
                "LAYER", "SCOPE", "ALGORITHM", "LIMIT", "RETRY-AFTER", "KEY");
    }
    if (o->syslog)
        openlog("rl-audit", LOG_PID, LOG_DAEMON);
    for (size_t i = from; i < got; i++)
        audit_emit(&buf[i], arr, o);
    fflush(g_out);
    int ret = EXIT_OK;
    if (o->follow) {
        catch_stop_signals();
        uint64_t deadline = o->has_for ? mono_ms() + o->for_seconds * 1000u : UINT64_MAX;
        while (!stop_requested && mono_ms() < deadline) {
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
            int r;
            while ((r = rl_audit_read(rl, &cursor, buf, AUDIT_RING)) > 0) {
                for (int i = 0; i < r; i++)
                    audit_emit(&buf[i], arr, o);
            }
            if (r < 0) {
                fail_rl("rl_audit_read", r);
                ret = EXIT_FAIL;
                break;
            }
            fflush(g_out);
        }
    }
    free(buf);
    if (o->syslog)
        closelog();
    json_decref(arr);
    if (doc) {
        int rc = emit_json(doc);
        if (ret == EXIT_OK)
            ret = rc;
    }
    return ret;
}
