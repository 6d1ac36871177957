/*
 * rlctl status (the segment: geometry, usage, config generation, creator) and rlctl health
 * (exit 0 ok, 1 degraded, 2 down; attaches by itself so that it answers when the segment is
 * gone).
 */
#include <string.h>

#include "rlctl.h"

static int count_reclaimable(const rl_key_view *kv, void *arg)
{
    *(uint64_t *)arg += kv->reclaimable;
    return 0;
}

int cmd_status(rl_t *rl, const struct opts *o)
{
    rl_segment_info si;
    int rc = rl_segment_info_get(rl, &si);
    if (rc != 0) {
        fail_rl("rl_segment_info_get", rc);
        return EXIT_FAIL;
    }
    rl_stats_info st;
    rc = rl_stats(rl, &st);
    if (rc != 0) {
        fail_rl("rl_stats", rc);
        return EXIT_FAIL;
    }
    uint64_t reclaimable = 0;
    rl_foreach_key(rl, rl_clock_ns(rl), count_reclaimable, &reclaimable);
    char birth[64];
    fmt_time(si.birth_ns, birth, sizeof birth);
    rl_health_info hi;
    rl_health(rl, &hi);
    const char *redis = !hi.redis_configured ? "not configured for rlctl (set REDIS_URL)"
                        : hi.connected       ? "connected"
                                             : "unreachable";
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        set_u64(doc, "layout_version", si.layout_version);
        set_u64(doc, "capacity", si.capacity);
        set_u64(doc, "slots", si.slots);
        set_u64(doc, "keys_in_use", si.slots_in_use);
        set_u64(doc, "limits_in_use", si.limits_in_use);
        set_u64(doc, "limits_max", si.limits_max);
        set_u64(doc, "enospc", si.enospc);
        set_u64(doc, "reclaimable", reclaimable);
        set_u64(doc, "reclaimed", si.reclaimed);
        set_u64(doc, "max_probe", si.max_probe);
        set_u64(doc, "segment_bytes", si.segment_bytes);
        set_u64(doc, "config_generation", st.config_generation);
        json_object_set_new(doc, "creator_pid", json_integer(si.creator_pid));
        json_object_set_new(doc, "birth", json_string(birth));
        set_u64(doc, "birth_ns", si.birth_ns);
        json_object_set_new(doc, "redis", json_string(redis));
        if (hi.error[0])
            json_object_set_new(doc, "redis_error", json_string(hi.error));
        if (hi.warning[0])
            json_object_set_new(doc, "redis_warning", json_string(hi.warning));
        json_t *sync = json_object();
        json_object_set_new(sync, "leader_pid", json_integer(hi.leader_pid));
        set_u64(sync, "leader_epoch", hi.leader_epoch);
        if (hi.last_sync_age_ms != UINT64_MAX)
            set_u64(sync, "last_sync_age_ms", hi.last_sync_age_ms);
        else
            json_object_set_new(sync, "last_sync_age_ms", json_null());
        set_u64(sync, "rounds", hi.sync_rounds);
        set_u64(sync, "keys_reported", hi.sync_keys);
        set_u64(sync, "errors", hi.sync_errors);
        set_u64(sync, "stale_refused", hi.sync_stale_refused);
        set_u64(sync, "cluster_hosts", hi.cluster_hosts);
        json_object_set_new(sync, "fallback", json_boolean(hi.global_fallback));
        json_object_set_new(doc, "sync", sync);
        return emit_json(doc);
    }
    double pct = si.capacity ? 100.0 * (double)si.slots_in_use / (double)si.capacity : 0.0;
    fprintf(g_out, "%-18s %s\n", "segment", o->shm);
    fprintf(g_out, "%-18s %" PRIu32 "\n", "layout version", si.layout_version);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "capacity", si.capacity);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "slots", si.slots);
    fprintf(g_out, "%-18s %" PRIu64 " (%.1f%% of capacity)\n", "keys in use", si.slots_in_use, pct);
    fprintf(g_out, "%-18s %" PRIu64 " of %" PRIu64 "\n", "limits in use", si.limits_in_use,
            si.limits_max);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "-ENOSPC", si.enospc);
    fprintf(g_out, "%-18s %" PRIu64 " (equivalent to new keys: their slots may be reused)\n",
            "reclaimable", reclaimable);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "reclaimed", si.reclaimed);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "max probe", si.max_probe);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "segment bytes", si.segment_bytes);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "config generation", st.config_generation);
    fprintf(g_out, "%-18s %ld\n", "creator pid", (long)si.creator_pid);
    fprintf(g_out, "%-18s %s\n", "birth", birth);
    fprintf(g_out, "%-18s %s\n", "redis", redis);
    if (hi.error[0])
        fprintf(g_out, "%-18s %s\n", "redis error", hi.error);
    if (hi.warning[0])
        fprintf(g_out, "%-18s %s\n", "redis warning", hi.warning);
    if (hi.leader_pid)
        fprintf(g_out, "%-18s pid %ld, epoch %" PRIu64 "\n", "sync leader", (long)hi.leader_pid,
                hi.leader_epoch);
    else
        fprintf(g_out, "%-18s none (no worker opened the segment with REDIS_URL)\n", "sync leader");
    if (hi.last_sync_age_ms != UINT64_MAX)
        fprintf(g_out,
                "%-18s %" PRIu64 " ms ago; %" PRIu64 " rounds, %" PRIu64 " keys, %" PRIu64
                " errors, %" PRIu64 " refused (stale epoch)\n",
                "last sync", hi.last_sync_age_ms, hi.sync_rounds, hi.sync_keys, hi.sync_errors,
                hi.sync_stale_refused);
    if (hi.cluster_hosts)
        fprintf(g_out, "%-18s %" PRIu64 "\n", "cluster hosts", hi.cluster_hosts);
    if (hi.leader_pid || hi.last_sync_age_ms != UINT64_MAX)
        fprintf(g_out, "%-18s %s\n", "GLOBAL limits",
                hi.global_fallback ? "on their fallback (Redis not answering)" : "synced");
    return EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */

static void count_report(const char *msg, void *arg)
{
    (void)msg;
    (void)arg;
}

int cmd_health(const struct opts *o)
{
    rl_t *rl = NULL;
    int rc = attach(o, &rl, 2);
    const char *state;
    const char *why = NULL;
    int code;
    long damaged = 0;
    rl_health_info hi;
    memset(&hi, 0, sizeof hi);
    hi.last_sync_age_ms = UINT64_MAX;
    char detail[512]; /* the whole Redis or attach error (hi.error is cut at 127 bytes) */
    detail[0] = '\0';
    const char *why_detail = ""; /* what follows the reason: the error behind it */
    if (rc != 0) {
        state = rc == 2 ? "down" : "degraded";
        code = rc == 2 ? 2 : 1;
        /* attach() printed what and why to stderr; the reason also goes to stdout and JSON. */
        snprintf(detail, sizeof detail, "%s", rl_errmsg());
        if (rc == 2) {
            snprintf(detail, sizeof detail, "no segment %s (is a worker running? --shm NAME)",
                     o->shm);
            why = detail;
        } else {
            why = "cannot attach the segment";
            why_detail = detail;
        }
    } else {
        damaged = rl_check_segment(rl, count_report, NULL);
        rl_health(rl, &hi);
        snprintf(detail, sizeof detail, "%s", rl_errmsg());
        bool sync_in_use = hi.leader_pid != 0 || hi.last_sync_age_ms != UINT64_MAX;
        if (damaged != 0)
            why = "damaged slots";
        else if (hi.redis_configured && !hi.connected)
            why = "Redis unreachable";
        else if (sync_in_use && hi.global_fallback)
            why = "GLOBAL limits on their fallback";
        else if (hi.redis_may_evict)
            why = hi.warning;
        if (why && (strcmp(why, "Redis unreachable") == 0 ||
                    strcmp(why, "GLOBAL limits on their fallback") == 0))
            why_detail = detail;
        state = why ? "degraded" : "ok";
        code = why ? 1 : 0;
        rl_close(&rl);
    }
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set_new(doc, "status", json_string(state));
        json_object_set_new(doc, "attached", json_boolean(rc == 0));
        if (rc == 0)
            json_object_set_new(doc, "damaged_slots", json_integer(damaged));
        if (why) {
            /* "reason": what is wrong and, when there is one, the error behind it */
            char reason[700];
            snprintf(reason, sizeof reason, "%s%s%s", why, why_detail[0] ? ": " : "", why_detail);
            json_object_set_new(doc, "reason", json_string(reason));
        }
        json_object_set_new(doc, "redis",
                            json_string(!hi.redis_configured ? "not configured for rlctl"
                                        : hi.connected       ? "connected"
                                                             : "unreachable"));
        json_object_set_new(doc, "global_fallback",
                            json_boolean(hi.global_fallback &&
                                         (hi.leader_pid || hi.last_sync_age_ms != UINT64_MAX)));
        if (hi.last_sync_age_ms != UINT64_MAX)
            set_u64(doc, "last_sync_age_ms", hi.last_sync_age_ms);
        if (emit_json(doc) != 0)
            return EXIT_FAIL;
    } else {
        fprintf(g_out, "%s: %s", o->shm, state);
        if (rc == 0 && damaged > 0)
            fprintf(g_out, " (%ld damaged slots: rlctl check)", damaged);
        else if (rc == 0 && damaged < 0)
            fprintf(g_out, " (check failed: %s)", rl_strerror((int)damaged));
        else if (why)
            fprintf(g_out, " (%s%s%s)", why, why_detail[0] ? ": " : "", why_detail);
        fputc('\n', g_out);
    }
    return code;
}
