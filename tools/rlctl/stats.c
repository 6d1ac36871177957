/*
 * Decisions: rlctl stats (totals, per endpoint, top denied; --cluster from the monitoring
 * rollups in Redis), the per-endpoint report of serve, and rlctl top (a live view).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "rlctl.h"

/* The segment's endpoints (rl_stats_endpoints) in a malloc'd array; *n how many. */
rl_endpoint_stats *read_endpoints(rl_t *rl, int *n)
{
    for (size_t cap = 64;; cap *= 2) {
        rl_endpoint_stats *e = calloc(cap, sizeof *e);
        if (!e)
            return NULL;
        int r = rl_stats_endpoints(rl, e, cap);
        if (r < 0 || (size_t)r <= cap) {
            *n = r < 0 ? 0 : r;
            return e;
        }
        free(e);
    }
}

static const rl_endpoint_stats *find_endpoint(const rl_endpoint_stats *e, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(e[i].endpoint, name) == 0)
            return &e[i];
    return NULL;
}

static int by_endpoint_denied(const void *a, const void *b)
{
    const rl_endpoint_stats *x = a, *y = b;
    if (x->denied != y->denied)
        return x->denied > y->denied ? -1 : 1;
    if (x->allowed != y->allowed)
        return x->allowed > y->allowed ? -1 : 1;
    return strcmp(x->endpoint, y->endpoint);
}

static double ratio(uint64_t num, uint64_t den)
{
    return den ? (double)num / (double)den : 0.0;
}

/* One endpoint's figures; rpm < 0: not measured. */
static json_t *endpoint_json(const rl_endpoint_stats *e, double rpm)
{
    json_t *j = json_object();
    json_object_set_new(j, "endpoint", json_string(e->endpoint));
    set_u64(j, "total_requests", e->allowed + e->denied);
    set_u64(j, "allowed_requests", e->allowed);
    set_u64(j, "denied_requests", e->denied);
    json_object_set_new(j, "denial_rate", json_real(ratio(e->denied, e->allowed + e->denied)));
    json_object_set_new(j, "requests_per_minute", rpm < 0 ? json_null() : json_real(rpm));
    return j;
}

/* The table and the top-denied lists shared by the segment's and the cluster's stats. e is
 * sorted by denials; rpm[i] < 0 when not measured (rpm may be NULL). */
static void stats_endpoints_out(json_t *doc, const rl_endpoint_stats *e, int n, const double *rpm)
{
    if (doc) {
        json_t *arr = json_array(), *top = json_array();
        for (int i = 0; i < n; i++) {
            json_array_append_new(arr, endpoint_json(&e[i], rpm ? rpm[i] : -1));
            if (i < 5 && e[i].denied)
                json_array_append_new(top, json_pack("{s:s, s:I}", "endpoint", e[i].endpoint,
                                                     "denied", (json_int_t)e[i].denied));
        }
        json_object_set_new(doc, "endpoints", arr);
        json_object_set_new(doc, "top_denied_endpoints", top);
        return;
    }
    fprintf(g_out, "\n%-32s %12s %12s %8s %10s\n", "ENDPOINT (most denied first)", "ALLOWED",
            "DENIED", "DENIED%", "REQ/MIN");
    for (int i = 0; i < n; i++) {
        char r[32] = "-";
        if (rpm && rpm[i] >= 0)
            snprintf(r, sizeof r, "%.0f", rpm[i]);
        fprintf(g_out, "%-32s %12" PRIu64 " %12" PRIu64 " %7.2f%% %10s\n", e[i].endpoint,
                e[i].allowed, e[i].denied, 100.0 * ratio(e[i].denied, e[i].allowed + e[i].denied),
                r);
    }
    if (n == 0)
        fputs("(no decisions counted yet)\n", g_out);
}

/* stats --cluster: the monitoring rollups in Redis, every host. */
static int cmd_stats_cluster(rl_t *rl, const struct opts *o)
{
    uint64_t since = o->has_since ? o->since_s : 3600;
    unsigned minutes = (unsigned)((since + 59) / 60);
    rl_endpoint_stats *e = calloc(4096, sizeof *e);
    if (!e) {
        fputs("rlctl: out of memory\n", stderr);
        return EXIT_FAIL;
    }
    unsigned hosts = 0;
    int n = rl_stats_cluster(rl, minutes, e, 4096, &hosts);
    if (n < 0) {
        free(e);
        if (n == -ENOTCONN) {
            fputs("rlctl: stats --cluster reads the monitoring rollups in Redis: set REDIS_URL "
                  "(the workers need ENABLE_RATE_LIMIT_MONITORING=true and REDIS_URL too)\n",
                  stderr);
            return EXIT_FAIL;
        }
        fail_rl("rl_stats_cluster", n);
        return EXIT_FAIL;
    }
    if (n > 4096)
        n = 4096;
    qsort(e, (size_t)n, sizeof *e, by_endpoint_denied);
    uint64_t a = 0, d = 0;
    for (int i = 0; i < n; i++) {
        a += e[i].allowed;
        d += e[i].denied;
    }
    double *rpm = calloc((size_t)n + 1, sizeof *rpm);
    for (int i = 0; rpm && i < n; i++)
        rpm[i] = (double)(e[i].allowed + e[i].denied) / minutes;
    int ret = EXIT_OK;
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "scope", json_string("cluster"));
        set_u64(doc, "since_seconds", (uint64_t)minutes * 60u);
        set_u64(doc, "hosts", hosts);
        set_u64(doc, "total_requests", a + d);
        set_u64(doc, "allowed_requests", a);
        set_u64(doc, "denied_requests", d);
        json_object_set_new(doc, "denial_rate", json_real(ratio(d, a + d)));
        json_object_set_new(doc, "requests_per_minute", json_real((double)(a + d) / minutes));
        stats_endpoints_out(doc, e, n, rpm);
        ret = emit_json(doc);
    } else {
        fprintf(g_out, "cluster-wide, the last %u minute%s, %u host%s reporting\n", minutes,
                minutes == 1 ? "" : "s", hosts, hosts == 1 ? "" : "s");
        fprintf(g_out, "%-18s %" PRIu64 "\n", "total requests", a + d);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "allowed", a);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "denied", d);
        fprintf(g_out, "%-18s %.4f\n", "denial rate", ratio(d, a + d));
        fprintf(g_out, "%-18s %.1f (average)\n", "requests/minute", (double)(a + d) / minutes);
        stats_endpoints_out(NULL, e, n, rpm);
        if (hosts == 0)
            fputs("no host pushed rollups in that time: run the workers with REDIS_URL and "
                  "ENABLE_RATE_LIMIT_MONITORING=true\n",
                  g_out);
    }
    free(rpm);
    free(e);
    return ret;
}

/* The endpoint record that counts `given`: a rule's pattern as written, "(default)", or a
 * request ("[METHOD:]PATH", GET by default) resolved through the rules as rl_check would.
 * Writes the record's name into out (RL endpoint names are < 64 bytes); false when none. */
static bool resolve_endpoint(rl_t *rl, const char *given, char *out, size_t outlen)
{
    char(*pre)[10] = calloc(RL_MAX_LAYERS, sizeof *pre);
    bool is_rule = pre && rl_rule_key_prefixes(rl, given, pre, RL_MAX_LAYERS) >= 0 &&
                   strcmp(given, "default") != 0 && strcmp(given, "global") != 0 &&
                   strncmp(given, "tier:", 5) != 0;
    free(pre);
    if (is_rule || strcmp(given, "(default)") == 0 || strcmp(given, "(other)") == 0) {
        snprintf(out, outlen, "%s", given);
        return true;
    }
    char method[16] = "GET";
    const char *path = given;
    const char *colon = strchr(given, ':'), *slash = strchr(given, '/');
    if (colon && (!slash || colon < slash) && (size_t)(colon - given) < sizeof method) {
        memcpy(method, given, (size_t)(colon - given));
        method[colon - given] = '\0';
        path = colon + 1;
    }
    if (path[0] != '/')
        return false;
    rl_request req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = path;
    req.ip = "127.0.0.1";
    rl_decision d;
    char keys[RL_MAX_LAYERS * (RL_KEY_MAX + 1)];
    if (rl_explain(rl, &req, &d, keys, sizeof keys) < 0)
        return false;
    snprintf(out, outlen, "%s", d.endpoint);
    return true;
}

/* One endpoint's figures (serve's /rate-limits/metrics/endpoint/{endpoint}): o->pos[0] names
 * it as resolve_endpoint() takes it. EXIT_FAIL when nothing counts it. */
int cmd_endpoint(rl_t *rl, const struct opts *o)
{
    /* Echoed in JSON: bytes that are not printable ASCII (jansson refuses invalid UTF-8) as '?'. */
    char given[512];
    snprintf(given, sizeof given, "%s", o->pos[0]);
    for (char *p = given; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    char name[64];
    if (!resolve_endpoint(rl, o->pos[0], name, sizeof name)) {
        json_t *doc = json_pack("{s:s, s:s, s:i}", "endpoint", given, "error",
                                "no rule counts this endpoint: give a rule's pattern as written "
                                "(GET /rate-limits/config) or a request path such as /api/users",
                                "status", 404);
        emit_json(doc);
        return EXIT_FAIL;
    }
    int n = 0;
    rl_endpoint_stats *e = read_endpoints(rl, &n);
    if (!e) {
        fputs("rlctl: out of memory\n", stderr);
        return EXIT_FAIL;
    }
    const rl_endpoint_stats *f = find_endpoint(e, n, name);
    rl_endpoint_stats zero;
    memset(&zero, 0, sizeof zero);
    snprintf(zero.endpoint, sizeof zero.endpoint, "%s", name);
    json_t *doc = endpoint_json(f ? f : &zero, -1);
    free(e);
    json_object_set_new(doc, "endpoint", json_string(given));
    json_object_set_new(doc, "rule", json_string(name));
    json_object_set_new(doc, "segment", json_string(o->shm));
    /* Its recent denials per key: the audit records under the rule's layers. */
    struct key_list kl = {0};
    json_t *keys = json_array();
    struct denials den;
    if (strcmp(name, "(default)") != 0 && strcmp(name, "(other)") != 0 &&
        rule_prefixes(rl, name, &kl) == EXIT_OK && read_denials(rl, &den) == 0) {
        qsort(den.v, den.n, sizeof *den.v, by_denials);
        for (size_t i = 0, shown = 0; i < den.n && shown < 10; i++)
            for (int k = 0; k < kl.nrule; k++)
                if (strncmp(den.v[i].key, kl.rule[k], 9) == 0) {
                    json_array_append_new(keys, json_pack("{s:s, s:I}", "key", den.v[i].key,
                                                          "denied", (json_int_t)den.v[i].n));
                    shown++;
                    break;
                }
        free(den.v);
    }
    free_keys(&kl);
    json_object_set_new(doc, "top_denied_keys", keys);
    return emit_json(doc);
}

int cmd_stats(rl_t *rl, const struct opts *o)
{
    if (o->cluster)
        return cmd_stats_cluster(rl, o);
    uint64_t interval = o->has_interval ? o->interval_s : 1;
    rl_stats_info st0, st;
    int n0 = 0, n = 0;
    rl_endpoint_stats *e0 = NULL, *e = NULL;
    int rc = rl_stats(rl, &st0);
    uint64_t t0 = mono_ms();
    if (rc == 0 && interval) {
        e0 = read_endpoints(rl, &n0);
        struct timespec ts = {(time_t)interval, 0};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    double dt = (double)(mono_ms() - t0) / 1000.0;
    if (rc == 0)
        rc = rl_stats(rl, &st);
    if (rc == 0)
        e = read_endpoints(rl, &n);
    if (rc != 0 || !e || (interval && !e0)) {
        free(e0);
        free(e);
        if (rc != 0)
            fail_rl("rl_stats", rc);
        else
            fputs("rlctl: out of memory\n", stderr);
        return EXIT_FAIL;
    }
    qsort(e, (size_t)n, sizeof *e, by_endpoint_denied);
    double *rpm = interval ? calloc((size_t)n + 1, sizeof *rpm) : NULL;
    for (int i = 0; rpm && i < n; i++) {
        const rl_endpoint_stats *p = find_endpoint(e0, n0, e[i].endpoint);
        uint64_t before = p ? p->allowed + p->denied : 0;
        rpm[i] = dt > 0 ? (double)(e[i].allowed + e[i].denied - before) * 60.0 / dt : 0.0;
    }
    double total_rpm = interval && dt > 0 ? (double)(st.checks - st0.checks) * 60.0 / dt : -1;
    struct denials den;
    memset(&den, 0, sizeof den);
    read_denials(rl, &den);
    if (den.n > 1)
        qsort(den.v, den.n, sizeof *den.v, by_denials);
    size_t top_keys = den.n < 10 ? den.n : 10;
    double rate = ratio(st.denied, st.checks);
    int ret = EXIT_OK;
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        set_u64(doc, "total_requests", st.checks);
        set_u64(doc, "allowed_requests", st.allowed);
        set_u64(doc, "denied_requests", st.denied);
        json_object_set_new(doc, "denial_rate", json_real(rate));
        json_object_set_new(doc, "requests_per_minute",
                            total_rpm < 0 ? json_null() : json_real(total_rpm));
        set_u64(doc, "rate_interval_ms", interval ? (uint64_t)(dt * 1000.0) : 0);
        set_u64(doc, "bypassed_requests", st.bypassed);
        set_u64(doc, "shadow_denied", st.shadow_denied);
        set_u64(doc, "table_full_open", st.table_full_open);
        set_u64(doc, "table_full_closed", st.table_full_closed);
        set_u64(doc, "warnings", st.warnings);
        set_u64(doc, "audit_written", st.audit_written);
        set_u64(doc, "audit_dropped", st.audit_dropped);
        set_u64(doc, "config_generation", st.config_generation);
        stats_endpoints_out(doc, e, n, rpm);
        json_t *keys = json_array();
        for (size_t i = 0; i < top_keys; i++)
            json_array_append_new(keys, json_pack("{s:s, s:I}", "key", den.v[i].key, "denied",
                                                  (json_int_t)den.v[i].n));
        json_object_set_new(doc, "top_denied_keys", keys);
        set_u64(doc, "audit_records_read", den.records);
        ret = emit_json(doc);
    } else {
        fprintf(g_out, "%-18s %" PRIu64 "\n", "checks", st.checks);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "allowed", st.allowed);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "denied", st.denied);
        fprintf(g_out, "%-18s %.4f\n", "denial rate", rate);
        if (total_rpm >= 0)
            fprintf(g_out, "%-18s %.0f (over the last %.1f s)\n", "requests/minute", total_rpm, dt);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "bypassed", st.bypassed);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "shadow denied", st.shadow_denied);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "table full open", st.table_full_open);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "table full closed", st.table_full_closed);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "warnings", st.warnings);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "audit written", st.audit_written);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "audit dropped", st.audit_dropped);
        fprintf(g_out, "%-18s %" PRIu64 "\n", "config generation", st.config_generation);
        stats_endpoints_out(NULL, e, n, rpm);
        if (top_keys) {
            fprintf(g_out, "\n%-26s %8s   (the audit ring's last %" PRIu64 " records)\n",
                    "TOP DENIED KEYS", "DENIED", den.records);
            for (size_t i = 0; i < top_keys; i++)
                fprintf(g_out, "%-26s %8" PRIu64 "\n", den.v[i].key, den.v[i].n);
        }
    }
    free(den.v);
    free(rpm);
    free(e0);
    free(e);
    return ret;
}

/* ---- top ---------------------------------------------------------------------------------- */

/* One screen: the counters and their rates since the previous screen, the sync, the keys with
 * the least left. */
static void top_screen(rl_t *rl, const struct opts *o, const rl_stats_info *prev,
                       const rl_stats_info *now, double dt, bool tty)
{
    if (tty)
        fputs("\033[H\033[2J", g_out); /* home, clear */
    rl_segment_info si;
    rl_segment_info_get(rl, &si);
    rl_health_info hi;
    rl_health(rl, &hi);
    char t[64];
    fmt_time((uint64_t)time(NULL) * 1000000000u, t, sizeof t);
    double rate = dt > 0 ? 1.0 / dt : 0.0;
    fprintf(g_out, "rlctl top - %s  %s  config %" PRIu64 "  (q quits)\n", o->shm, t,
            now->config_generation);
    fprintf(g_out, "keys %" PRIu64 " of %" PRIu64 "  -ENOSPC %" PRIu64 "  reclaimed %" PRIu64 "\n",
            si.slots_in_use, si.capacity, si.enospc, si.reclaimed);
    fprintf(g_out,
            "checks/s %.0f  allowed/s %.0f  denied/s %.0f  bypassed/s %.0f   (total %" PRIu64
            ", denied %" PRIu64 ")\n",
            (double)(now->checks - prev->checks) * rate,
            (double)(now->allowed - prev->allowed) * rate,
            (double)(now->denied - prev->denied) * rate,
            (double)(now->bypassed - prev->bypassed) * rate, now->checks, now->denied);
    if (hi.leader_pid || hi.last_sync_age_ms != UINT64_MAX)
        fprintf(g_out, "sync: leader %ld epoch %" PRIu64 ", last %" PRIu64 " ms ago, %s\n",
                (long)hi.leader_pid, hi.leader_epoch, hi.last_sync_age_ms,
                hi.global_fallback ? "GLOBAL limits on their fallback" : "synced");
    else
        fputs("sync: none (no worker with REDIS_URL)\n", g_out);
    int ne = 0;
    rl_endpoint_stats *e = read_endpoints(rl, &ne);
    if (e && ne) {
        qsort(e, (size_t)ne, sizeof *e, by_endpoint_denied);
        fprintf(g_out, "\n%-32s %12s %12s %8s\n", "ENDPOINT (most denied first)", "ALLOWED",
                "DENIED", "DENIED%");
        for (int i = 0; i < ne && i < 5; i++)
            fprintf(g_out, "%-32s %12" PRIu64 " %12" PRIu64 " %7.2f%%\n", e[i].endpoint,
                    e[i].allowed, e[i].denied,
                    100.0 * ratio(e[i].denied, e[i].allowed + e[i].denied));
    }
    free(e);
    struct key_list kl = {0};
    rl_foreach_key(rl, rl_clock_ns(rl), collect_key, &kl);
    if (kl.n)
        qsort(kl.rows, kl.n, sizeof kl.rows[0], by_remaining);
    fprintf(g_out, "\n%-26s %-15s %10s %10s\n", "KEY (least left first)", "ALGORITHM", "LIMIT",
            "REMAINING");
    size_t shown = kl.n < o->n ? kl.n : (size_t)o->n;
    for (size_t i = 0; i < shown; i++)
        fprintf(g_out, "%-26s %-15s %10" PRIu64 " %10" PRIu64 "\n", kl.rows[i].key,
                alg_name(kl.rows[i].limit.algorithm), kl.rows[i].state.limit,
                kl.rows[i].state.remaining);
    free_keys(&kl);
    fflush(g_out);
}

int cmd_top(rl_t *rl, const struct opts *o)
{
    struct opts oo = *o;
    if (!oo.n)
        oo.n = 15;
    bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    struct termios saved;
    bool raw = false;
    if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
        struct termios t = saved;
        t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
    }
    catch_stop_signals();
    rl_stats_info prev, now;
    rl_stats(rl, &prev);
    uint64_t t_prev = mono_ms(), t0 = t_prev;
    uint64_t until = o->has_for ? o->for_seconds * 1000u : UINT64_MAX;
    top_screen(rl, &oo, &prev, &prev, 0, tty);
    bool quit = false;
    while (!stop_requested && !quit && mono_ms() - t0 < until) {
        for (int i = 0; i < 10 && !quit && !stop_requested; i++) { /* 1 s, in 100 ms steps */
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
            char c;
            while (raw && read(STDIN_FILENO, &c, 1) == 1)
                if (c == 'q' || c == 'Q')
                    quit = true;
        }
        if (quit || stop_requested)
            break;
        rl_stats(rl, &now);
        uint64_t t = mono_ms();
        top_screen(rl, &oo, &prev, &now, (double)(t - t_prev) / 1000.0, tty);
        prev = now;
        t_prev = t;
    }
    if (raw)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    return EXIT_OK;
}
