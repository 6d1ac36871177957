/*
 * rlctl metrics and serve's /metrics: the Prometheus text exposition of the counters, written
 * from one table (metrics[] below): each family's name, type, help, labels and where its value
 * is read. Dashboards and alerts depend on these names, labels and help lines
 * (examples/prometheus/rl-alerts.yml, examples/grafana/rl-dashboard.json; tests/test_alerts.sh
 * reads the names from this file): change them only with those.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "rlctl.h"

/* What one exposition reads, once, before it writes anything. */
struct snapshot {
    const char *shm;
    rl_segment_info si;
    rl_stats_info st;
    rl_health_info hi;
    rl_endpoint_stats *ep; /* rl_stats_endpoints (NULL when unreadable: no samples) */
    int nep;
};

enum source { FROM_STATS, FROM_SEGMENT, FROM_HEALTH };
enum width { W_U64, W_PID, W_BOOL };

struct metric {
    const char *name;
    const char *type; /* "counter" or "gauge" */
    const char *help;
    const char *labels; /* the labels of its samples (NULL: one sample without labels) */
    /* An unlabelled sample: the field at `off` in the `from` snapshot, of type `width`,
     * divided by `div` when not 0 (a change of unit); UINT64_MAX there means "never" and
     * leaves the whole family out when `absent_if_max`. */
    enum source from;
    size_t off;
    enum width width;
    uint64_t div;
    bool absent_if_max;
    /* A labelled family: writes its samples (its HELP and TYPE lines are written first). */
    void (*samples)(const struct snapshot *s);
};

/* The field's offset, which must have type C (a compile error otherwise). */
#define FIELD(T, f, C, w) .off = _Generic((T){0}.f, C : offsetof(T, f)), .width = (w)
#define STAT(f)           .from = FROM_STATS, FIELD(rl_stats_info, f, uint64_t, W_U64)
#define SEG(f)            .from = FROM_SEGMENT, FIELD(rl_segment_info, f, uint64_t, W_U64)
#define HEALTH(f)         .from = FROM_HEALTH, FIELD(rl_health_info, f, uint64_t, W_U64)

static void segment_info_samples(const struct snapshot *s)
{
    fprintf(g_out, "rl_segment_info{segment=\"%s\",layout_version=\"%" PRIu32 "\"} 1\n", s->shm,
            s->si.layout_version);
}

static void endpoint_samples(const struct snapshot *s)
{
    for (int i = 0; s->ep && i < s->nep; i++) {
        const rl_endpoint_stats *e = &s->ep[i];
        /* A label value escapes backslash, double quote and line feed (exposition format). */
        char label[3 * sizeof e->endpoint];
        size_t k = 0;
        for (const char *c = e->endpoint; *c && k + 3 < sizeof label; c++) {
            if (*c == '\\' || *c == '"' || *c == '\n')
                label[k++] = '\\';
            label[k++] = *c == '\n' ? 'n' : *c;
        }
        label[k] = '\0';
        fprintf(g_out,
                "rl_endpoint_requests_total{endpoint=\"%s\",result=\"allowed\"} %" PRIu64 "\n"
                "rl_endpoint_requests_total{endpoint=\"%s\",result=\"denied\"} %" PRIu64 "\n",
                label, e->allowed, label, e->denied);
    }
}

/* In exposition order. */
static const struct metric metrics[] = {
    {"rl_segment_info", "gauge", "The segment rlctl read (value always 1).",
     .labels = "segment, layout_version", .samples = segment_info_samples},
    {"rl_checks_total", "counter", "Requests checked by rl_check().", STAT(checks)},
    {"rl_allowed_total", "counter", "Requests allowed.", STAT(allowed)},
    {"rl_denied_total", "counter", "Requests denied.", STAT(denied)},
    {"rl_bypassed_total", "counter", "Requests allowed by the bypass list.", STAT(bypassed)},
    {"rl_shadow_denied_total", "counter", "Shadow layers that would have denied.",
     STAT(shadow_denied)},
    {"rl_table_full_open_total", "counter", "Layers allowed because the key table was full.",
     STAT(table_full_open)},
    {"rl_table_full_closed_total", "counter", "Layers denied because the key table was full.",
     STAT(table_full_closed)},
    {"rl_warnings_total", "counter", "Layers past their warning threshold.", STAT(warnings)},
    {"rl_audit_written_total", "counter", "Audit records written.", STAT(audit_written)},
    {"rl_audit_dropped_total", "counter", "Audit records dropped by sampling.",
     STAT(audit_dropped)},
    {"rl_enospc_total", "counter", "Acquires refused because the key table was full.", SEG(enospc)},
    {"rl_reclaimed_total", "counter", "Key slots reclaimed.", SEG(reclaimed)},
    {"rl_table_keys", "gauge", "Key slots in use.", SEG(slots_in_use)},
    {"rl_table_capacity", "gauge", "Keys the segment is guaranteed to hold.", SEG(capacity)},
    {"rl_table_slots", "gauge", "Slots in the key table.", SEG(slots)},
    {"rl_table_max_probe", "gauge", "Longest probe distance any key has needed.", SEG(max_probe)},
    {"rl_limits_in_use", "gauge", "Distinct limits recorded in the segment.", SEG(limits_in_use)},
    {"rl_limits_max", "gauge", "Size of the segment's limit table.", SEG(limits_max)},
    {"rl_config_generation", "gauge", "Generation of the published rule set.",
     STAT(config_generation)},
    {"rl_segment_birth_seconds", "gauge", "Creation time of the segment (Unix seconds).",
     SEG(birth_ns), .div = 1000000000u},
    {"rl_sync_leader_pid", "gauge", "Pid of the GLOBAL sync leader (0: none).", .from = FROM_HEALTH,
     FIELD(rl_health_info, leader_pid, pid_t, W_PID)},
    {"rl_sync_epoch", "gauge", "Leader takeovers of this segment (fencing epoch).",
     HEALTH(leader_epoch)},
    {"rl_sync_age_seconds", "gauge", "Seconds since the last GLOBAL sync Redis answered.",
     HEALTH(last_sync_age_ms), .div = 1000u, .absent_if_max = true},
    {"rl_sync_rounds_total", "counter", "GLOBAL sync rounds Redis answered.", HEALTH(sync_rounds)},
    {"rl_sync_keys_total", "counter", "Keys reported to Redis by the sync.", HEALTH(sync_keys)},
    {"rl_sync_errors_total", "counter", "GLOBAL sync rounds that failed.", HEALTH(sync_errors)},
    {"rl_sync_stale_refused_total", "counter", "Sync batches Redis refused: a newer leader exists.",
     HEALTH(sync_stale_refused)},
    {"rl_sync_cluster_hosts", "gauge", "Hosts sharing GLOBAL keys, as Redis last said.",
     HEALTH(cluster_hosts)},
    {"rl_global_fallback", "gauge", "1 while GLOBAL limits are on their fallback.",
     .from = FROM_HEALTH, FIELD(rl_health_info, global_fallback, bool, W_BOOL)},
    {"rl_endpoint_requests_total", "counter",
     "Requests checked, per endpoint (rule pattern) and result.", .labels = "endpoint, result",
     .samples = endpoint_samples},
};

/* The raw field of an unlabelled metric (before `div`). */
static uint64_t field_of(const struct metric *m, const struct snapshot *s)
{
    const unsigned char *p = m->from == FROM_STATS     ? (const unsigned char *)&s->st
                             : m->from == FROM_SEGMENT ? (const unsigned char *)&s->si
                                                       : (const unsigned char *)&s->hi;
    p += m->off;
    if (m->width == W_PID) {
        pid_t v;
        memcpy(&v, p, sizeof v);
        return (uint64_t)v;
    }
    if (m->width == W_BOOL) {
        bool v;
        memcpy(&v, p, sizeof v);
        return v ? 1u : 0u;
    }
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

int cmd_metrics(rl_t *rl, const struct opts *o)
{
    struct snapshot s;
    memset(&s, 0, sizeof s);
    s.shm = o->shm;
    int rc = rl_segment_info_get(rl, &s.si);
    if (rc == 0)
        rc = rl_stats(rl, &s.st);
    if (rc != 0) {
        fail_rl("reading the segment", rc);
        return EXIT_FAIL;
    }
    rl_health(rl, &s.hi);
    s.ep = read_endpoints(rl, &s.nep);
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        const struct metric *m = &metrics[i];
        uint64_t v = m->samples ? 0 : field_of(m, &s);
        if (m->absent_if_max && v == UINT64_MAX)
            continue;
        fprintf(g_out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, m->type);
        if (m->samples)
            m->samples(&s);
        else
            fprintf(g_out, "%s %" PRIu64 "\n", m->name, m->div ? v / m->div : v);
    }
    free(s.ep);
    return fflush(g_out) == 0 ? EXIT_OK : EXIT_FAIL;
}
