/*
 * rlctl: the operator tool of rl. Attaches an existing segment (never creates one) and shows its
 * state, its counters, its keys, its audit ring and its rule set; checks and reloads rule files.
 *
 *   rlctl [--shm NAME] COMMAND [OPTIONS]      (rlctl --help, rlctl COMMAND --help, rlctl.1)
 *
 * Exit codes: 0 ok, 1 failure (or unhealthy), 2 usage error; `health`: 0 ok, 1 degraded,
 * 2 down. --json prints one JSON document built with jansson.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <rl/rl.h>

#define EXIT_OK    0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

#define DEFAULT_SHM "/rl-default"

/* Where commands write their report: stdout, or a memory stream while `serve` answers a request
 * (one request at a time, on the server's single thread). */
static FILE *g_out;

/* What every subcommand parses: the common flags and its own. */
struct opts {
    const char *shm;
    bool json;
    bool help;
    bool foreign;
    const char *prefix;
    const char *sort;
    uint64_t limit;
    bool has_limit;
    uint64_t n;
    bool follow;
    uint64_t for_seconds;
    bool has_for;
    bool all, yes;
    const char *listen;     /* serve: 127.0.0.1:PORT */
    const char *token_file; /* serve: the admin token's file (else RLCTL_ADMIN_TOKEN) */
    bool sync;              /* attach with a GLOBAL sync thread (serve, with REDIS_URL) */
    const char *bypass_ip, *bypass_user; /* bypass add|rm; explain --ip/--user */
    const char *tier;                    /* explain --tier */
    const char *pos[4];
    int npos;
};

/* Which flags a subcommand takes, beyond --shm, --json, --help, --foreign. */
enum {
    F_PREFIX = 1u << 0,
    F_SORT = 1u << 1,
    F_LIMIT = 1u << 2,
    F_N = 1u << 3,
    F_FOLLOW = 1u << 4,
    F_FOR = 1u << 5,
    F_RESET = 1u << 6,  /* --all, --yes */
    F_SERVE = 1u << 7,  /* --listen, --token-file, --for */
    F_BYPASS = 1u << 8, /* --ip, --user */
    F_TIER = 1u << 9,   /* --tier */
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* SIGINT and SIGTERM end the long-running commands (tail -f, top, serve) cleanly. */
static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static const char *const usage_text =
    "usage: rlctl [--shm NAME] COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  status                 the segment: geometry, usage, config generation, creator\n"
    "  keys                   live keys [--prefix P] [--sort remaining|key] [--limit N]\n"
    "  check                  structural check of the segment (exit 1 when damaged)\n"
    "  stats                  decision counters of rl_check()\n"
    "  tail                   the audit ring [-n N] [-f] [--for SECONDS]\n"
    "  config show            the current rule set as YAML\n"
    "  config check FILE      validate a rule file (no segment needed)\n"
    "  config reload FILE     publish a rule file to the segment\n"
    "  health                 exit 0 ok, 1 degraded, 2 down (no segment)\n"
    "  metrics                Prometheus text exposition of the counters\n"
    "  reset KEY | --all --yes  forget counters (with REDIS_URL: their Redis state too)\n"
    "  serve                  the monitoring REST endpoints [--listen ADDR:PORT] [--token-file F]\n"
    "  bypass add|rm|ls       the emergency bypass list [--ip ADDRESS|CIDR] [--user NAME]\n"
    "  explain METHOD PATH    which rule, layers and keys apply, what each would answer now\n"
    "  top                    a live view of counters, rates, sync and keys (q quits)\n"
    "\n"
    "Options for every command:\n"
    "  --shm NAME   the segment (default: $RL_SHM, then " DEFAULT_SHM ")\n"
    "  --json       one JSON document instead of a table (reading commands)\n"
    "  --foreign    attach a segment owned by another user (group access)\n"
    "  --help       this text; rlctl --version: the version\n"
    "\n"
    "Environment: RL_SHM (the segment), REDIS_URL (Redis for health and resets; rlctl never\n"
    "runs a sync thread).\n"
    "\n"
    "Exit codes: 0 ok, 1 failure or unhealthy, 2 usage error (health: 2 = down).\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("rlctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (rlctl --help lists commands and options)\n", stderr);
    return EXIT_USAGE;
}

static int parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || *s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "rlctl: %s wants a whole number from %" PRIu64 " to %" PRIu64 "\n", opt, lo,
                hi);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* Matches "--name VALUE" and "--name=VALUE"; *i advances past a separate value. */
static int opt_value(const char *name, int argc, char **argv, int *i, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        *val = NULL;
        return -1;
    }
    *i += 1;
    *val = argv[*i];
    return 1;
}

/* The options that take one non-empty string: which commands take them, where it goes. */
static const struct str_opt {
    const char *name;
    unsigned flag;
    size_t off;
    const char *want;
} str_opts[] = {
    {"--listen", F_SERVE, offsetof(struct opts, listen), "ADDRESS:PORT, e.g. 127.0.0.1:9090"},
    {"--token-file", F_SERVE, offsetof(struct opts, token_file), "a file holding the admin token"},
    {"--ip", F_BYPASS, offsetof(struct opts, bypass_ip), "an address or CIDR block"},
    {"--user", F_BYPASS, offsetof(struct opts, bypass_user), "a user name"},
    {"--tier", F_TIER, offsetof(struct opts, tier), "a tier name"},
};

/* 1: argv[*i] was one of str_opts (stored), 0: it was not, -1: it lacked its value (after a
 * message). */
static int parse_str_opt(int argc, char **argv, int *i, unsigned allowed, struct opts *o)
{
    for (size_t k = 0; k < sizeof str_opts / sizeof str_opts[0]; k++) {
        const struct str_opt *so = &str_opts[k];
        const char *v = NULL;
        int r;
        if (!(allowed & so->flag) || (r = opt_value(so->name, argc, argv, i, &v)) == 0)
            continue;
        if (r < 0 || !v || !*v) {
            usage_error("%s wants %s", so->name, so->want);
            return -1;
        }
        memcpy((char *)o + so->off, &v, sizeof v);
        return 1;
    }
    return 0;
}

/* Parses argv[first..argc). Returns 0, or EXIT_USAGE after a message. */
static int parse_opts(int argc, char **argv, int first, unsigned allowed, struct opts *o)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        int r = parse_str_opt(argc, argv, &i, allowed, o);
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = true;
        } else if (strcmp(a, "--foreign") == 0) {
            o->foreign = true;
        } else if ((r = opt_value("--shm", argc, argv, &i, &v)) != 0) {
            if (r < 0 || !v || v[0] == '\0')
                return usage_error("%s wants a segment name, e.g. --shm /rl-default", "--shm");
            o->shm = v;
        } else if ((allowed & F_PREFIX) && (r = opt_value("--prefix", argc, argv, &i, &v)) != 0) {
            if (r < 0)
                return usage_error("%s wants a key prefix", "--prefix");
            o->prefix = v;
        } else if ((allowed & F_SORT) && (r = opt_value("--sort", argc, argv, &i, &v)) != 0) {
            if (r < 0 || (strcmp(v, "remaining") != 0 && strcmp(v, "key") != 0))
                return usage_error("%s wants 'remaining' or 'key'", "--sort");
            o->sort = v;
        } else if ((allowed & F_LIMIT) && (r = opt_value("--limit", argc, argv, &i, &v)) != 0) {
            if (r < 0 || parse_u64("--limit", v, 1, UINT32_MAX, &o->limit) != 0)
                return usage_error("%s: see rlctl keys --help", "--limit");
            o->has_limit = true;
        } else if ((allowed & F_N) && ((r = opt_value("-n", argc, argv, &i, &v)) != 0 ||
                                       (r = opt_value("--lines", argc, argv, &i, &v)) != 0)) {
            if (r < 0 || parse_u64("-n", v, 1, 1024, &o->n) != 0)
                return usage_error("%s: see rlctl tail --help", "-n");
        } else if ((allowed & F_FOLLOW) && (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0)) {
            o->follow = true;
        } else if ((allowed & (F_FOR | F_SERVE)) &&
                   (r = opt_value("--for", argc, argv, &i, &v)) != 0) {
            if (r < 0 || parse_u64("--for", v, 1, 86400, &o->for_seconds) != 0)
                return usage_error("%s: see rlctl tail --help", "--for");
            o->has_for = true;
        } else if ((allowed & F_RESET) && strcmp(a, "--all") == 0) {
            o->all = true;
        } else if ((allowed & F_RESET) && strcmp(a, "--yes") == 0) {
            o->yes = true;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else {
            if (o->npos >= (int)(sizeof o->pos / sizeof o->pos[0]))
                return usage_error("too many arguments at '%s'", a);
            o->pos[o->npos++] = a;
        }
    }
    return 0;
}

/* Attaches o->shm without creating it. Returns 0 or an exit code after a message. */
static int attach(const struct opts *o, rl_t **rl, int missing_code)
{
    rl_options ro;
    rl_options_init(&ro);
    ro.shm_name = o->shm;
    ro.flags = RL_OPEN_NOCREATE | (o->foreign ? RL_OPEN_ALLOW_FOREIGN : 0u);
    /* With REDIS_URL rlctl also sees Redis (health, resets of STRICT and GLOBAL keys). */
    const char *url = getenv("REDIS_URL");
    if (url && *url) {
        ro.redis_url = url;
        /* `serve` is long-lived: it takes part in the sync (and keeps it going when no worker
         * runs); the short commands never do. */
        if (!o->sync)
            ro.flags |= RL_OPEN_NO_SYNC;
    }
    int rc = rl_open(rl, &ro);
    if (rc == 0)
        return 0;
    char detail[512];
    snprintf(detail, sizeof detail, "%s", rl_errmsg());
    char hint[256];
    hint[0] = '\0';
    switch (rc) {
    case -ENOENT:
        fprintf(stderr, "rlctl: no segment %s (is a worker running? --shm NAME)\n", o->shm);
        return missing_code;
    case -EPROTO:
        snprintf(hint, sizeof hint,
                 "rlctl and the workers use different layout versions: run an rlctl built with "
                 "the workers' librl, or restart the workers on a new segment");
        break;
    case -EACCES:
        snprintf(hint, sizeof hint,
                 "permission denied: run rlctl as the workers' user or as a member of the "
                 "segment's group (ls -l /dev/shm%s)",
                 o->shm);
        break;
    case -EPERM:
        snprintf(hint, sizeof hint,
                 "the segment belongs to another user: run rlctl as that user, or pass "
                 "--foreign (needs group access)");
        break;
    case -EINVAL:
        snprintf(hint, sizeof hint,
                 "a segment name is '/' then 1 to 200 of [A-Za-z0-9._-], e.g. --shm /rl-default");
        break;
    case -EBADMSG:
        snprintf(hint, sizeof hint,
                 "the segment is damaged or not an rl segment: stop its users, remove it "
                 "(rm /dev/shm%s) and restart them",
                 o->shm);
        break;
    case -EAGAIN:
        snprintf(hint, sizeof hint,
                 "try again; if no process is starting on it, remove it (rm /dev/shm%s)", o->shm);
        break;
    default:
        break;
    }
    fprintf(stderr, "rlctl: cannot attach %s: %s%s%s\n", o->shm, rl_strerror(rc),
            detail[0] ? ": " : "", detail);
    if (hint[0])
        fprintf(stderr, "rlctl: %s\n", hint);
    return EXIT_FAIL;
}

static void fail_rl(const char *what, int rc)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s", rl_errmsg());
    fprintf(stderr, "rlctl: %s: %s%s%s\n", what, rl_strerror(rc), detail[0] ? ": " : "", detail);
}

/* Prints and frees a JSON document; 0, or EXIT_FAIL when it could not be built or written. */
static int emit_json(json_t *doc)
{
    if (!doc) {
        fputs("rlctl: out of memory building JSON\n", stderr);
        return EXIT_FAIL;
    }
    int rc = json_dumpf(doc, g_out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (rc != 0 || fputc('\n', g_out) == EOF) {
        fputs("rlctl: cannot write JSON to stdout\n", stderr);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static json_t *jint(uint64_t v)
{
    return json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v));
}

static void set_u64(json_t *obj, const char *key, uint64_t v)
{
    json_object_set_new(obj, key, jint(v));
}

static void fmt_time(uint64_t ns, char *buf, size_t len)
{
    time_t s = (time_t)(ns / 1000000000u);
    struct tm tm;
    if (!gmtime_r(&s, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(buf, len, "?");
        return;
    }
    size_t n = strlen(buf);
    snprintf(buf + n, len - n, ".%03uZ", (unsigned)(ns / 1000000u % 1000u));
}

/* "1m", "300s", "1500ms": a window as the rule files write it. */
static void fmt_window(uint64_t ms, char *buf, size_t len)
{
    if (ms % 3600000u == 0)
        snprintf(buf, len, "%" PRIu64 "h", ms / 3600000u);
    else if (ms % 60000u == 0)
        snprintf(buf, len, "%" PRIu64 "m", ms / 60000u);
    else if (ms % 1000u == 0)
        snprintf(buf, len, "%" PRIu64 "s", ms / 1000u);
    else
        snprintf(buf, len, "%" PRIu64 "ms", ms);
}

static const char *alg_name(rl_algorithm a)
{
    const char *s = rl_algorithm_name(a);
    return s ? s : "unknown";
}

static const char *scope_name(rl_scope s)
{
    const char *n = rl_scope_name(s);
    return n ? n : "unknown";
}

/* ---------------------------------------------------------------------------------------- */

static int cmd_status(rl_t *rl, const struct opts *o)
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

struct key_row {
    char *key;
    size_t keylen;
    rl_limit limit;
    rl_result state;
    uint64_t slot;
};

struct key_list {
    struct key_row *rows;
    size_t n, cap;
    const char *prefix;
    bool oom;
};

static int collect_key(const rl_key_view *kv, void *arg)
{
    struct key_list *kl = arg;
    if (kl->prefix && strncmp(kv->key, kl->prefix, strlen(kl->prefix)) != 0)
        return 0;
    if (kl->n == kl->cap) {
        size_t cap = kl->cap ? kl->cap * 2 : 64;
        struct key_row *r = realloc(kl->rows, cap * sizeof *r);
        if (!r) {
            kl->oom = true;
            return 1;
        }
        kl->rows = r;
        kl->cap = cap;
    }
    char *k = strdup(kv->key);
    if (!k) {
        kl->oom = true;
        return 1;
    }
    struct key_row *row = &kl->rows[kl->n++];
    row->key = k;
    row->keylen = kv->keylen;
    row->limit = kv->limit;
    row->state = kv->state;
    row->slot = kv->slot;
    return 0;
}

static int by_key(const void *a, const void *b)
{
    const struct key_row *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0)
        return c;
    return (x->slot > y->slot) - (x->slot < y->slot);
}

static int by_remaining(const void *a, const void *b)
{
    const struct key_row *x = a, *y = b;
    if (x->state.remaining != y->state.remaining)
        return x->state.remaining < y->state.remaining ? -1 : 1;
    return by_key(a, b);
}

static void free_keys(struct key_list *kl)
{
    for (size_t i = 0; i < kl->n; i++)
        free(kl->rows[i].key);
    free(kl->rows);
}

static int cmd_keys(rl_t *rl, const struct opts *o)
{
    struct key_list kl = {.prefix = o->prefix};
    int rc = rl_foreach_key(rl, rl_clock_ns(rl), collect_key, &kl);
    if (kl.oom) {
        free_keys(&kl);
        fputs("rlctl: out of memory listing keys\n", stderr);
        return EXIT_FAIL;
    }
    if (rc < 0) {
        free_keys(&kl);
        fail_rl("rl_foreach_key", rc);
        return EXIT_FAIL;
    }
    if (kl.n > 1)
        qsort(kl.rows, kl.n, sizeof kl.rows[0],
              o->sort && strcmp(o->sort, "remaining") == 0 ? by_remaining : by_key);
    size_t shown = kl.n;
    if (o->has_limit && o->limit < shown)
        shown = (size_t)o->limit;
    int ret = EXIT_OK;
    if (o->json) {
        json_t *doc = json_object();
        json_t *arr = json_array();
        for (size_t i = 0; i < shown; i++) {
            const struct key_row *r = &kl.rows[i];
            json_t *k = json_object();
            json_object_set_new(k, "key", json_string(r->key));
            set_u64(k, "key_length", r->keylen);
            set_u64(k, "slot", r->slot);
            json_object_set_new(k, "algorithm", json_string(alg_name(r->limit.algorithm)));
            json_object_set_new(k, "scope", json_string(scope_name(r->limit.scope)));
            set_u64(k, "requests", r->limit.requests);
            set_u64(k, "window_ms", r->limit.window_ms);
            set_u64(k, "burst", r->limit.burst);
            set_u64(k, "limit", r->state.limit);
            set_u64(k, "remaining", r->state.remaining);
            set_u64(k, "reset_after_ms", r->state.reset_after_ms);
            json_array_append_new(arr, k);
        }
        json_object_set_new(doc, "segment", json_string(o->shm));
        set_u64(doc, "total", kl.n);
        set_u64(doc, "shown", shown);
        json_object_set_new(doc, "keys", arr);
        ret = emit_json(doc);
    } else {
        fprintf(g_out, "%-26s %7s %-15s %-20s %10s %12s\n", "KEY", "KEYLEN", "ALGORITHM", "LIMIT",
                "REMAINING", "RESET-AFTER");
        for (size_t i = 0; i < shown; i++) {
            const struct key_row *r = &kl.rows[i];
            char lim[48], win[32];
            fmt_window(r->limit.window_ms, win, sizeof win);
            snprintf(lim, sizeof lim, "%" PRIu64 "/%s", r->limit.requests, win);
            fprintf(g_out, "%-26s %7zu %-15s %-20s %10" PRIu64 " %10" PRIu64 "ms\n", r->key,
                    r->keylen, alg_name(r->limit.algorithm), lim, r->state.remaining,
                    r->state.reset_after_ms);
        }
        fprintf(g_out, "%zu of %zu keys\n", shown, kl.n);
    }
    free_keys(&kl);
    return ret;
}

/* ---------------------------------------------------------------------------------------- */

struct report_ctx {
    json_t *arr;
    bool print;
};

static void on_report(const char *msg, void *arg)
{
    struct report_ctx *c = arg;
    if (c->arr)
        json_array_append_new(c->arr, json_string(msg));
    if (c->print)
        fprintf(g_out, "  %s\n", msg);
}

static int cmd_check(rl_t *rl, const struct opts *o)
{
    struct report_ctx c = {.arr = o->json ? json_array() : NULL, .print = !o->json};
    long n = rl_check_segment(rl, on_report, &c);
    if (n < 0) {
        json_decref(c.arr);
        fail_rl("rl_check_segment", (int)n);
        return EXIT_FAIL;
    }
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set_new(doc, "sound", json_boolean(n == 0));
        set_u64(doc, "damaged_slots", (uint64_t)n);
        json_object_set_new(doc, "problems", c.arr);
        int rc = emit_json(doc);
        return rc != 0 ? rc : (n == 0 ? EXIT_OK : EXIT_FAIL);
    }
    if (n == 0) {
        fprintf(g_out, "segment %s: sound\n", o->shm);
        return EXIT_OK;
    }
    fprintf(g_out,
            "segment %s: %ld damaged slot%s (above); stop its users and remove it to start "
            "fresh\n",
            o->shm, n, n == 1 ? "" : "s");
    return EXIT_FAIL;
}

/* ---------------------------------------------------------------------------------------- */

static int cmd_stats(rl_t *rl, const struct opts *o)
{
    rl_stats_info st;
    int rc = rl_stats(rl, &st);
    if (rc != 0) {
        fail_rl("rl_stats", rc);
        return EXIT_FAIL;
    }
    double rate = st.checks ? (double)st.denied / (double)st.checks : 0.0;
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        set_u64(doc, "total_requests", st.checks);
        set_u64(doc, "allowed_requests", st.allowed);
        set_u64(doc, "denied_requests", st.denied);
        json_object_set_new(doc, "denial_rate", json_real(rate));
        set_u64(doc, "bypassed_requests", st.bypassed);
        set_u64(doc, "shadow_denied", st.shadow_denied);
        set_u64(doc, "table_full_open", st.table_full_open);
        set_u64(doc, "table_full_closed", st.table_full_closed);
        set_u64(doc, "warnings", st.warnings);
        set_u64(doc, "audit_written", st.audit_written);
        set_u64(doc, "audit_dropped", st.audit_dropped);
        set_u64(doc, "config_generation", st.config_generation);
        return emit_json(doc);
    }
    fprintf(g_out, "%-18s %" PRIu64 "\n", "checks", st.checks);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "allowed", st.allowed);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "denied", st.denied);
    fprintf(g_out, "%-18s %.4f\n", "denial rate", rate);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "bypassed", st.bypassed);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "shadow denied", st.shadow_denied);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "table full open", st.table_full_open);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "table full closed", st.table_full_closed);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "warnings", st.warnings);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "audit written", st.audit_written);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "audit dropped", st.audit_dropped);
    fprintf(g_out, "%-18s %" PRIu64 "\n", "config generation", st.config_generation);
    return EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */

#define AUDIT_RING 1024u

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

static void audit_print(const rl_audit_record *r)
{
    char t[64], retry[32];
    fmt_time(r->time_ns, t, sizeof t);
    if (r->retry_after_ms == RL_RETRY_NEVER)
        snprintf(retry, sizeof retry, "never");
    else
        snprintf(retry, sizeof retry, "%" PRIu64 "ms", r->retry_after_ms);
    fprintf(g_out, "%-24s %7ld %-7s %5u %-17s %-15s %8" PRIu64 " %11s  %s\n", t, (long)r->pid,
            r->allowed ? (r->shadow ? "shadow" : "allow") : "deny", r->layer, scope_name(r->scope),
            alg_name(r->algorithm), r->limit, retry, r->key);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int cmd_tail(rl_t *rl, const struct opts *o)
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
    for (size_t i = from; i < got; i++) {
        if (arr)
            json_array_append_new(arr, audit_json(&buf[i]));
        else
            audit_print(&buf[i]);
    }
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
                for (int i = 0; i < r; i++) {
                    if (arr)
                        json_array_append_new(arr, audit_json(&buf[i]));
                    else
                        audit_print(&buf[i]);
                }
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
    json_decref(arr);
    if (doc) {
        int rc = emit_json(doc);
        if (ret == EXIT_OK)
            ret = rc;
    }
    return ret;
}

/* ---------------------------------------------------------------------------------------- */

static int cmd_config_show(rl_t *rl, const struct opts *o)
{
    size_t len = 4096;
    char *buf = NULL;
    long n;
    for (;;) {
        char *b = realloc(buf, len);
        if (!b) {
            free(buf);
            fputs("rlctl: out of memory\n", stderr);
            return EXIT_FAIL;
        }
        buf = b;
        n = rl_config_dump(rl, buf, len);
        if (n < 0) {
            free(buf);
            fail_rl("rl_config_dump", (int)n);
            return EXIT_FAIL;
        }
        if ((size_t)n < len)
            break;
        len = (size_t)n + 1;
    }
    int ret = EXIT_OK;
    if (o->json) {
        rl_stats_info st;
        int rc = rl_stats(rl, &st);
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        if (rc == 0)
            set_u64(doc, "config_generation", st.config_generation);
        json_object_set_new(doc, "yaml", json_stringn(buf, (size_t)n));
        ret = emit_json(doc);
    } else {
        fwrite(buf, 1, (size_t)n, g_out);
        if (n > 0 && buf[n - 1] != '\n')
            fputc('\n', g_out);
    }
    free(buf);
    return ret;
}

static int cmd_config_check(const struct opts *o)
{
    const char *path = o->pos[2];
    int rc = rl_check_config_file(path);
    if (rc != 0) {
        char detail[1024];
        snprintf(detail, sizeof detail, "%s", rl_errmsg());
        if (o->json) {
            json_t *doc = json_object();
            json_object_set_new(doc, "file", json_string(path));
            json_object_set_new(doc, "valid", json_false());
            json_object_set_new(doc, "error", json_string(detail[0] ? detail : rl_strerror(rc)));
            emit_json(doc);
        }
        fprintf(stderr, "rlctl: %s\n", detail[0] ? detail : rl_strerror(rc));
        return EXIT_FAIL;
    }
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "file", json_string(path));
        json_object_set_new(doc, "valid", json_true());
        return emit_json(doc);
    }
    fprintf(g_out, "%s: ok\n", path);
    return EXIT_OK;
}

static int cmd_config_reload(rl_t *rl, const struct opts *o)
{
    const char *path = o->pos[2];
    int rc = rl_load_config(rl, path);
    if (rc != 0) {
        char detail[1024];
        snprintf(detail, sizeof detail, "%s", rl_errmsg());
        fprintf(stderr, "rlctl: %s not loaded, the rules in %s are unchanged: %s\n", path, o->shm,
                detail[0] ? detail : rl_strerror(rc));
        return EXIT_FAIL;
    }
    rl_stats_info st;
    uint64_t gen = rl_stats(rl, &st) == 0 ? st.config_generation : 0;
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set_new(doc, "file", json_string(path));
        json_object_set_new(doc, "loaded", json_true());
        set_u64(doc, "config_generation", gen);
        return emit_json(doc);
    }
    fprintf(g_out, "%s: loaded into %s (config generation %" PRIu64 ")\n", path, o->shm, gen);
    return EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */

static void count_report(const char *msg, void *arg)
{
    (void)msg;
    (void)arg;
}

static int cmd_health(const struct opts *o)
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
    if (rc != 0) {
        state = rc == 2 ? "down" : "degraded";
        code = rc == 2 ? 2 : 1;
    } else {
        damaged = rl_check_segment(rl, count_report, NULL);
        rl_health(rl, &hi);
        bool sync_in_use = hi.leader_pid != 0 || hi.last_sync_age_ms != UINT64_MAX;
        if (damaged != 0)
            why = "damaged slots";
        else if (hi.redis_configured && !hi.connected)
            why = "Redis unreachable";
        else if (sync_in_use && hi.global_fallback)
            why = "GLOBAL limits on their fallback";
        else if (hi.redis_may_evict)
            why = hi.warning;
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
        if (why)
            json_object_set_new(doc, "reason", json_string(why));
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
            fprintf(g_out, " (%s%s%s)", why, hi.error[0] ? ": " : "", hi.error);
        fputc('\n', g_out);
    }
    return code;
}

/* ---------------------------------------------------------------------------------------- */

static void metric(const char *name, const char *type, const char *help, uint64_t v)
{
    fprintf(g_out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, v);
}

static int cmd_metrics(rl_t *rl, const struct opts *o)
{
    rl_segment_info si;
    rl_stats_info st;
    int rc = rl_segment_info_get(rl, &si);
    if (rc == 0)
        rc = rl_stats(rl, &st);
    if (rc != 0) {
        fail_rl("reading the segment", rc);
        return EXIT_FAIL;
    }
    fprintf(g_out,
            "# HELP rl_segment_info The segment rlctl read (value always 1).\n"
            "# TYPE rl_segment_info gauge\n"
            "rl_segment_info{segment=\"%s\",layout_version=\"%" PRIu32 "\"} 1\n",
            o->shm, si.layout_version);
    metric("rl_checks_total", "counter", "Requests checked by rl_check().", st.checks);
    metric("rl_allowed_total", "counter", "Requests allowed.", st.allowed);
    metric("rl_denied_total", "counter", "Requests denied.", st.denied);
    metric("rl_bypassed_total", "counter", "Requests allowed by the bypass list.", st.bypassed);
    metric("rl_shadow_denied_total", "counter", "Shadow layers that would have denied.",
           st.shadow_denied);
    metric("rl_table_full_open_total", "counter", "Layers allowed because the key table was full.",
           st.table_full_open);
    metric("rl_table_full_closed_total", "counter", "Layers denied because the key table was full.",
           st.table_full_closed);
    metric("rl_warnings_total", "counter", "Layers past their warning threshold.", st.warnings);
    metric("rl_audit_written_total", "counter", "Audit records written.", st.audit_written);
    metric("rl_audit_dropped_total", "counter", "Audit records dropped by sampling.",
           st.audit_dropped);
    metric("rl_enospc_total", "counter", "Acquires refused because the key table was full.",
           si.enospc);
    metric("rl_reclaimed_total", "counter", "Key slots reclaimed.", si.reclaimed);
    metric("rl_table_keys", "gauge", "Key slots in use.", si.slots_in_use);
    metric("rl_table_capacity", "gauge", "Keys the segment is guaranteed to hold.", si.capacity);
    metric("rl_table_slots", "gauge", "Slots in the key table.", si.slots);
    metric("rl_table_max_probe", "gauge", "Longest probe distance any key has needed.",
           si.max_probe);
    metric("rl_limits_in_use", "gauge", "Distinct limits recorded in the segment.",
           si.limits_in_use);
    metric("rl_limits_max", "gauge", "Size of the segment's limit table.", si.limits_max);
    metric("rl_config_generation", "gauge", "Generation of the published rule set.",
           st.config_generation);
    metric("rl_segment_birth_seconds", "gauge", "Creation time of the segment (Unix seconds).",
           si.birth_ns / 1000000000u);
    rl_health_info hi;
    rl_health(rl, &hi);
    metric("rl_sync_leader_pid", "gauge", "Pid of the GLOBAL sync leader (0: none).",
           (uint64_t)hi.leader_pid);
    metric("rl_sync_epoch", "gauge", "Leader takeovers of this segment (fencing epoch).",
           hi.leader_epoch);
    if (hi.last_sync_age_ms != UINT64_MAX)
        metric("rl_sync_age_seconds", "gauge", "Seconds since the last GLOBAL sync Redis answered.",
               hi.last_sync_age_ms / 1000u);
    metric("rl_sync_rounds_total", "counter", "GLOBAL sync rounds Redis answered.", hi.sync_rounds);
    metric("rl_sync_keys_total", "counter", "Keys reported to Redis by the sync.", hi.sync_keys);
    metric("rl_sync_errors_total", "counter", "GLOBAL sync rounds that failed.", hi.sync_errors);
    metric("rl_sync_stale_refused_total", "counter",
           "Sync batches Redis refused: a newer leader exists.", hi.sync_stale_refused);
    metric("rl_sync_cluster_hosts", "gauge", "Hosts sharing GLOBAL keys, as Redis last said.",
           hi.cluster_hosts);
    metric("rl_global_fallback", "gauge", "1 while GLOBAL limits are on their fallback.",
           hi.global_fallback ? 1u : 0u);
    return fflush(g_out) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* ---------------------------------------------------------------------------------------- */

struct reset_ctx {
    const char *key;
    size_t keylen;
    rl_limit *limits;
    uint64_t *slots;
    size_t n, cap;
    bool all, oom;
};

/* KEY: every limit under which a live slot holds KEY (the slot shows a prefix of it and its
 * length); --all: every live slot. */
static int collect_reset(const rl_key_view *kv, void *arg)
{
    struct reset_ctx *c = arg;
    if (!c->all && (kv->keylen != c->keylen || strncmp(c->key, kv->key, strlen(kv->key)) != 0))
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        rl_limit *l = realloc(c->limits, cap * sizeof *l);
        if (l)
            c->limits = l;
        uint64_t *sl = realloc(c->slots, cap * sizeof *sl);
        if (sl)
            c->slots = sl;
        if (!l || !sl) {
            c->oom = true;
            return 1;
        }
        c->cap = cap;
    }
    c->limits[c->n] = kv->limit;
    c->slots[c->n++] = kv->slot;
    return 0;
}

static int cmd_reset(rl_t *rl, const struct opts *o)
{
    if (o->all == (o->npos == 1))
        return usage_error("%s wants one KEY or --all", "reset");
    if (o->all && !o->yes) {
        fprintf(stderr,
                "rlctl: reset --all forgets every counter of %s (with REDIS_URL, also "
                "the cluster-wide state of its GLOBAL keys); add --yes to do it\n",
                o->shm);
        return EXIT_USAGE;
    }
    struct reset_ctx c = {.all = o->all, .key = o->npos ? o->pos[0] : NULL};
    c.keylen = c.key ? strlen(c.key) : 0;
    int rc = rl_foreach_key(rl, 0, collect_reset, &c);
    if (c.oom || rc < 0) {
        free(c.limits);
        free(c.slots);
        fprintf(stderr, "rlctl: reset: %s\n", c.oom ? "out of memory" : rl_errmsg());
        return EXIT_FAIL;
    }
    size_t done = 0, failed = 0;
    for (size_t i = 0; i < c.n; i++) {
        rc = c.all ? rl_reset_slot(rl, c.slots[i]) : rl_reset(rl, c.key, c.keylen, &c.limits[i]);
        if (rc < 0) {
            failed++;
            fprintf(stderr, "rlctl: reset: %s\n", rl_errmsg());
        } else {
            done++;
        }
    }
    free(c.limits);
    free(c.slots);
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        if (c.key)
            json_object_set_new(doc, "key", json_string(c.key));
        set_u64(doc, "reset", done);
        set_u64(doc, "failed", failed);
        if (emit_json(doc) != 0)
            return EXIT_FAIL;
    } else if (c.key && done + failed == 0) {
        fprintf(g_out, "no counter of \"%s\" in %s (rlctl keys lists them)\n", c.key, o->shm);
    } else {
        fprintf(g_out, "reset %zu counter%s%s%s%s\n", done, done == 1 ? "" : "s",
                c.key ? " of \"" : "", c.key ? c.key : "", c.key ? "\"" : "");
    }
    if (failed)
        return EXIT_FAIL;
    return c.key && done == 0 ? EXIT_FAIL : EXIT_OK;
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

static int cmd_top(rl_t *rl, const struct opts *o)
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

/* ---- explain ------------------------------------------------------------------------------ */

static const char *mode_str(rl_mode m)
{
    return m == RL_MODE_GLOBAL ? "global" : m == RL_MODE_STRICT ? "strict" : "local";
}

static int cmd_explain(rl_t *rl, const struct opts *o)
{
    rl_request req;
    memset(&req, 0, sizeof req);
    req.method = o->pos[0];
    req.path = o->pos[1];
    req.ip = o->bypass_ip ? o->bypass_ip : "127.0.0.1";
    req.user = o->bypass_user;
    req.tier = o->tier;
    rl_decision d;
    char keys[RL_MAX_LAYERS * (RL_KEY_MAX + 1)];
    int rc = rl_explain(rl, &req, &d, keys, sizeof keys);
    if (rc < 0) {
        fail_rl("rl_explain", rc);
        return EXIT_FAIL;
    }
    const char *key_of[RL_MAX_LAYERS] = {0};
    char *p = keys;
    for (size_t i = 0; i < d.n && *p; i++) {
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        key_of[i] = p;
        p = nl + 1;
    }
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set_new(doc, "method", json_string(req.method));
        json_object_set_new(doc, "path", json_string(req.path));
        json_object_set_new(doc, "ip", json_string(req.ip));
        if (req.user)
            json_object_set_new(doc, "user", json_string(req.user));
        json_object_set_new(doc, "would_allow", json_boolean(d.allowed));
        json_object_set_new(doc, "bypassed", json_boolean(d.bypassed));
        set_u64(doc, "config_generation", d.config_generation);
        json_t *arr = json_array();
        for (size_t i = 0; i < d.n; i++) {
            const rl_layer *l = &d.layers[i];
            json_t *j = json_object();
            json_object_set_new(j, "rule", json_string(l->rule));
            json_object_set_new(j, "layer", json_string(l->name));
            json_object_set_new(j, "key", key_of[i] ? json_string(key_of[i]) : json_null());
            json_object_set_new(j, "scope", json_string(scope_name(l->scope)));
            json_object_set_new(j, "algorithm", json_string(alg_name(l->algorithm)));
            json_object_set_new(j, "mode", json_string(mode_str(l->mode)));
            set_u64(j, "limit", l->limit);
            set_u64(j, "window_ms", l->window_ms);
            set_u64(j, "remaining", l->remaining);
            json_object_set_new(j, "allowed", json_boolean(l->allowed));
            json_object_set_new(j, "shadow", json_boolean(l->shadow));
            json_object_set_new(j, "limiting", json_boolean((int)i == d.limiting));
            json_array_append_new(arr, j);
        }
        json_object_set_new(doc, "layers", arr);
        return emit_json(doc);
    }
    fprintf(g_out, "%s %s from %s%s%s: %s\n", req.method, req.path, req.ip,
            req.user ? ", user " : "", req.user ? req.user : "",
            d.bypassed  ? "bypassed (on the bypass list)"
            : d.allowed ? "would be allowed"
                        : "would be denied");
    if (!d.bypassed && d.n == 0)
        fprintf(g_out, "no layer applies (no rule matches and the rule set has no defaults)\n");
    for (size_t i = 0; i < d.n; i++) {
        const rl_layer *l = &d.layers[i];
        fprintf(g_out,
                "%s layer %s of %s: %s %s, %" PRIu64 " per %" PRIu64 " ms: remaining %" PRIu64
                "%s%s\n    key %s\n",
                (int)i == d.limiting ? "*" : " ", l->name, l->rule, mode_str(l->mode),
                alg_name(l->algorithm), l->limit, l->window_ms, l->remaining,
                l->allowed ? "" : ", would deny", l->shadow ? " (shadow)" : "",
                key_of[i] ? key_of[i] : "?");
    }
    return EXIT_OK;
}

/* ---- bypass ------------------------------------------------------------------------------- */

static int bypass_list_json(rl_t *rl, rl_bypass_kind kind, json_t **out)
{
    long n = rl_bypass_list(rl, kind, NULL, 0);
    if (n < 0)
        return (int)n;
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        return -ENOMEM;
    rl_bypass_list(rl, kind, buf, (size_t)n + 1);
    json_t *arr = json_array();
    for (char *p = buf, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl)
            break;
        json_array_append_new(arr, json_stringn(p, (size_t)(nl - p)));
    }
    free(buf);
    *out = arr;
    return 0;
}

static int cmd_bypass(rl_t *rl, const struct opts *o, const char *action)
{
    if (strcmp(action, "ls") == 0) {
        json_t *ips = NULL, *users = NULL;
        int rc = bypass_list_json(rl, RL_BYPASS_IP, &ips);
        if (rc == 0)
            rc = bypass_list_json(rl, RL_BYPASS_USER, &users);
        if (rc < 0) {
            json_decref(ips);
            fail_rl("rl_bypass_list", rc);
            return EXIT_FAIL;
        }
        if (o->json) {
            json_t *doc = json_object();
            json_object_set_new(doc, "segment", json_string(o->shm));
            json_object_set_new(doc, "ips", ips);
            json_object_set_new(doc, "users", users);
            return emit_json(doc);
        }
        for (size_t i = 0; i < json_array_size(ips); i++)
            fprintf(g_out, "ip    %s\n", json_string_value(json_array_get(ips, i)));
        for (size_t i = 0; i < json_array_size(users); i++)
            fprintf(g_out, "user  %s\n", json_string_value(json_array_get(users, i)));
        if (json_array_size(ips) + json_array_size(users) == 0)
            fprintf(g_out, "the bypass list of %s is empty\n", o->shm);
        json_decref(ips);
        json_decref(users);
        return EXIT_OK;
    }
    bool add = strcmp(action, "add") == 0;
    if (!o->bypass_ip == !o->bypass_user)
        return usage_error("bypass %s wants one of --ip ADDRESS|CIDR or --user NAME", action);
    rl_bypass_kind kind = o->bypass_ip ? RL_BYPASS_IP : RL_BYPASS_USER;
    const char *value = o->bypass_ip ? o->bypass_ip : o->bypass_user;
    int rc = add ? rl_bypass_add(rl, kind, value) : rl_bypass_remove(rl, kind, value);
    if (rc < 0) {
        fprintf(stderr, "rlctl: bypass %s: %s\n", action, rl_errmsg());
        return EXIT_FAIL;
    }
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set_new(doc, add ? "added" : "removed", json_string(value));
        json_object_set_new(doc, "kind", json_string(o->bypass_ip ? "ip" : "user"));
        return emit_json(doc);
    }
    fprintf(g_out, "%s %s %s %s the bypass list of %s (in force at each worker's next check)\n",
            add ? "added" : "removed", o->bypass_ip ? "address" : "user", value,
            add ? "to" : "from", o->shm);
    return EXIT_OK;
}

/* ---- serve: the seed's monitoring REST endpoints ------------------------------------------ */

struct server {
    rl_t *rl;
    struct opts o;   /* the command line's, with json set */
    char token[256]; /* the admin token ("" = none configured: resets are refused) */
    size_t token_len;
    uint64_t last_ns; /* the previous real-time sample */
    rl_stats_info last;
};

static uint64_t mono_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Constant time in the token's content: every byte of the longer of the two is looked at. */
static bool token_ok(const struct server *sv, const char *given, size_t n)
{
    size_t m = n > sv->token_len ? n : sv->token_len;
    unsigned char diff = (unsigned char)(n != sv->token_len);
    for (size_t i = 0; i < m; i++) {
        unsigned char a = i < n ? (unsigned char)given[i] : 0;
        unsigned char b = i < sv->token_len ? (unsigned char)sv->token[i] : 0;
        diff |= (unsigned char)(a ^ b);
    }
    return diff == 0 && sv->token_len > 0;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *type,
                              const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result answer_error(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    json_t *doc = json_pack("{s:s, s:i}", "error", msg, "status", (int)status);
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    enum MHD_Result r =
        answer(conn, status, "application/json", body ? body : "{}", body ? strlen(body) : 2);
    free(body);
    return r;
}

/* Runs one report command into memory and answers with it; HTTP status from its exit code. */
static enum MHD_Result answer_cmd(struct MHD_Connection *conn, struct server *sv,
                                  int (*fn)(rl_t *, const struct opts *), bool json,
                                  unsigned fail_status)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return answer_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    struct opts o = sv->o;
    o.json = json;
    g_out = m;
    int rc = fn(sv->rl, &o);
    g_out = stdout;
    fclose(m);
    enum MHD_Result r =
        answer(conn, rc == EXIT_OK ? MHD_HTTP_OK : fail_status,
               json ? "application/json" : "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
    return r;
}

static int cmd_health_rl(rl_t *rl, const struct opts *o)
{
    (void)rl; /* health attaches by itself: it must also answer when the segment is gone */
    return cmd_health(o);
}

/* The real-time figures: the counters now and their rates since the previous request. */
static enum MHD_Result answer_realtime(struct MHD_Connection *conn, struct server *sv)
{
    rl_stats_info st;
    if (rl_stats(sv->rl, &st) != 0)
        return answer_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, rl_errmsg());
    uint64_t now = mono_now_ns();
    double dt = (double)(now - sv->last_ns) / 1e9;
    double per_min = dt > 0 ? (double)(st.checks - sv->last.checks) * 60.0 / dt : 0.0;
    uint64_t dchecks = st.checks - sv->last.checks, ddenied = st.denied - sv->last.denied;
    json_t *doc = json_object();
    json_object_set_new(doc, "segment", json_string(sv->o.shm));
    set_u64(doc, "total_requests", st.checks);
    set_u64(doc, "allowed_requests", st.allowed);
    set_u64(doc, "denied_requests", st.denied);
    json_object_set_new(doc, "interval_seconds", json_real(dt));
    json_object_set_new(doc, "requests_per_minute", json_real(per_min));
    json_object_set_new(doc, "denial_rate",
                        json_real(dchecks ? (double)ddenied / (double)dchecks : 0.0));
    sv->last = st;
    sv->last_ns = now;
    char *body = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!body)
        return answer_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    enum MHD_Result r = answer(conn, MHD_HTTP_OK, "application/json", body, strlen(body));
    free(body);
    return r;
}

struct post_ctx {
    char *body;
    size_t len;
    bool too_big;
};

static void peer_of(struct MHD_Connection *conn, char *out, size_t n)
{
    snprintf(out, n, "?");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)n);
}

/* POST /rate-limits/reset {"key": "..."} or {"all": true}: needs the admin bearer token. */
static enum MHD_Result answer_reset(struct MHD_Connection *conn, struct server *sv,
                                    const struct post_ctx *pc)
{
    char peer[64];
    peer_of(conn, peer, sizeof peer);
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0) {
        fprintf(stderr, "rlctl serve: reset from %s refused: no bearer token\n", peer);
        return answer_error(conn, MHD_HTTP_UNAUTHORIZED,
                            "an admin bearer token is required (Authorization: Bearer TOKEN)");
    }
    if (!token_ok(sv, auth + 7, strlen(auth + 7))) {
        fprintf(stderr, "rlctl serve: reset from %s refused: wrong token\n", peer);
        return answer_error(conn, MHD_HTTP_FORBIDDEN,
                            sv->token_len ? "wrong admin token"
                                          : "no admin token is configured (--token-file or "
                                            "RLCTL_ADMIN_TOKEN): resets are refused");
    }
    if (pc->too_big)
        return answer_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body over 4 KiB");
    json_error_t jerr;
    json_t *req = pc->len ? json_loadb(pc->body, pc->len, 0, &jerr) : NULL;
    const char *key = req ? json_string_value(json_object_get(req, "key")) : NULL;
    bool all = req && json_is_true(json_object_get(req, "all"));
    if (!req || (!key == !all)) {
        json_decref(req);
        return answer_error(conn, MHD_HTTP_BAD_REQUEST,
                            "expected a JSON body {\"key\": \"KEY\"} or {\"all\": true}");
    }
    struct opts o = sv->o;
    o.json = true;
    o.all = all;
    o.yes = all;
    o.npos = 0;
    if (key)
        o.pos[o.npos++] = key;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) {
        json_decref(req);
        return answer_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    g_out = m;
    int rc = cmd_reset(sv->rl, &o);
    g_out = stdout;
    fclose(m);
    fprintf(stderr, "rlctl serve: %s reset %s%s%s (exit %d)\n", peer, all ? "every key" : "key \"",
            all ? "" : key, all ? "" : "\"", rc);
    json_decref(req);
    enum MHD_Result r = answer(conn, rc == EXIT_OK ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND,
                               "application/json", buf, len);
    free(buf);
    return r;
}

static enum MHD_Result on_http(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)version;
    struct server *sv = cls;
    bool post = strcmp(method, "POST") == 0;
    if (post) {
        struct post_ctx *pc = *con_cls;
        if (!pc) {
            pc = calloc(1, sizeof *pc);
            if (!pc)
                return MHD_NO;
            *con_cls = pc;
            return MHD_YES;
        }
        if (*upload_size) {
            if (pc->len + *upload_size > 4096) {
                pc->too_big = true;
            } else {
                char *b = realloc(pc->body, pc->len + *upload_size + 1);
                if (!b)
                    return MHD_NO;
                memcpy(b + pc->len, upload, *upload_size);
                pc->body = b;
                pc->len += *upload_size;
            }
            *upload_size = 0;
            return MHD_YES;
        }
        if (strcmp(url, "/rate-limits/reset") == 0)
            return answer_reset(conn, sv, pc);
        return answer_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint (POST)");
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD or POST");
    static const char ep[] = "/rate-limits/metrics/endpoint/";
    if (strcmp(url, "/health") == 0 || strcmp(url, "/rate-limits/health") == 0)
        return answer_cmd(conn, sv, cmd_health_rl, true, MHD_HTTP_SERVICE_UNAVAILABLE);
    if (strcmp(url, "/metrics") == 0)
        return answer_cmd(conn, sv, cmd_metrics, false, MHD_HTTP_INTERNAL_SERVER_ERROR);
    if (strcmp(url, "/rate-limits/metrics") == 0)
        return answer_cmd(conn, sv, cmd_stats, true, MHD_HTTP_INTERNAL_SERVER_ERROR);
    if (strcmp(url, "/rate-limits/metrics/real-time") == 0)
        return answer_realtime(conn, sv);
    if (strcmp(url, "/rate-limits/config") == 0)
        return answer_cmd(conn, sv, cmd_config_show, true, MHD_HTTP_INTERNAL_SERVER_ERROR);
    if (strncmp(url, ep, sizeof ep - 1) == 0 && url[sizeof ep - 1]) {
        /* The path arrives percent-decoded (%2Fapi%2Fusers is /api/users). */
        json_t *doc = json_pack("{s:s, s:s, s:i}", "endpoint", url + sizeof ep - 1, "error",
                                "per-endpoint counters are not kept yet: "
                                "/rate-limits/metrics has the segment's totals",
                                "status", 501);
        char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        enum MHD_Result r = answer(conn, MHD_HTTP_NOT_IMPLEMENTED, "application/json",
                                   body ? body : "{}", body ? strlen(body) : 2);
        free(body);
        return r;
    }
    return answer_error(conn, MHD_HTTP_NOT_FOUND,
                        "no such endpoint: /health, /metrics, /rate-limits/metrics, "
                        "/rate-limits/metrics/real-time, /rate-limits/metrics/endpoint/{endpoint}, "
                        "/rate-limits/config, /rate-limits/health, POST /rate-limits/reset");
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    struct post_ctx *pc = *con_cls;
    if (pc) {
        free(pc->body);
        free(pc);
        *con_cls = NULL;
    }
}

static int load_token(struct server *sv, const struct opts *o)
{
    const char *t = getenv("RLCTL_ADMIN_TOKEN");
    char buf[sizeof sv->token];
    if (o->token_file) {
        FILE *f = fopen(o->token_file, "r");
        if (!f) {
            fprintf(stderr, "rlctl serve: --token-file %s: %s\n", o->token_file, strerror(errno));
            return EXIT_FAIL;
        }
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        buf[n] = '\0';
        t = buf;
    }
    if (t && strlen(t) >= sizeof sv->token) {
        fprintf(stderr, "rlctl serve: the admin token is longer than %zu bytes\n",
                sizeof sv->token - 1);
        return EXIT_USAGE;
    }
    snprintf(sv->token, sizeof sv->token, "%s", t ? t : "");
    sv->token_len = strlen(sv->token);
    return EXIT_OK;
}

static int cmd_serve(rl_t *rl, const struct opts *o)
{
    const char *listen_at = o->listen ? o->listen : "127.0.0.1:9090";
    char host[64];
    unsigned port = 0;
    const char *colon = strrchr(listen_at, ':');
    if (!colon || (size_t)(colon - listen_at) >= sizeof host || colon == listen_at ||
        sscanf(colon + 1, "%u", &port) != 1 || port == 0 || port > 65535)
        return usage_error("--listen wants ADDRESS:PORT, e.g. 127.0.0.1:9090, not '%s'", listen_at);
    memcpy(host, listen_at, (size_t)(colon - listen_at));
    host[colon - listen_at] = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return usage_error("--listen: '%s' is not an IPv4 address", host);
    struct server sv = {.rl = rl, .o = *o, .last_ns = mono_now_ns()};
    int rc = load_token(&sv, o);
    if (rc != EXIT_OK)
        return rc;
    rl_stats(rl, &sv.last);
    /* One internal thread answers every request in turn: the report commands write to g_out. */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, on_http,
        &sv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_done,
        NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "rlctl serve: cannot listen on %s (in use? permission?)\n", listen_at);
        return EXIT_FAIL;
    }
    catch_stop_signals();
    fprintf(stderr, "rlctl serve: %s on http://%s/ (admin token %s)\n", o->shm, listen_at,
            sv.token_len ? "configured" : "not configured: POST /rate-limits/reset is refused");
    double until = o->has_for ? (double)o->for_seconds : -1.0;
    uint64_t t0 = mono_now_ns();
    while (!stop_requested && (until < 0 || (double)(mono_now_ns() - t0) / 1e9 < until)) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(d);
    return EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */

struct command {
    const char *name;
    unsigned flags;
    const char *help;
};

static const struct command commands[] = {
    {"status", 0, "rlctl status [--shm NAME] [--json]\n"},
    {"keys", F_PREFIX | F_SORT | F_LIMIT,
     "rlctl keys [--shm NAME] [--json] [--prefix P] [--sort remaining|key] [--limit N]\n"},
    {"check", 0, "rlctl check [--shm NAME] [--json]: exit 0 sound, 1 damaged (with a report)\n"},
    {"stats", 0, "rlctl stats [--shm NAME] [--json]\n"},
    {"tail", F_N | F_FOLLOW | F_FOR,
     "rlctl tail [--shm NAME] [--json] [-n N] [-f] [--for SECONDS]\n"
     "  -n N           the last N audit records (default 20, at most 1024)\n"
     "  -f             then follow the ring (every 200 ms) until SIGINT or SIGTERM\n"
     "  --for SECONDS  stop following after SECONDS\n"},
    {"config", 0,
     "rlctl config show [--shm NAME] [--json]\n"
     "rlctl config check FILE [--json]: exit 1 with file:line:col when invalid\n"
     "rlctl config reload FILE [--shm NAME] [--json]\n"},
    {"health", 0, "rlctl health [--shm NAME] [--json]: exit 0 ok, 1 degraded, 2 down\n"},
    {"metrics", 0, "rlctl metrics [--shm NAME]: Prometheus text exposition format\n"},
    {"serve", F_SERVE,
     "rlctl serve [--shm NAME] [--listen ADDRESS:PORT] [--token-file FILE] [--for SECONDS]\n"
     "  The monitoring REST endpoints (default 127.0.0.1:9090) until SIGINT or SIGTERM:\n"
     "  GET /health, /metrics (Prometheus), /rate-limits/metrics, /rate-limits/metrics/real-time,\n"
     "  /rate-limits/config, /rate-limits/health; POST /rate-limits/reset {\"key\": K} or\n"
     "  {\"all\": true} with Authorization: Bearer TOKEN (--token-file or RLCTL_ADMIN_TOKEN).\n"},
    {"bypass", F_BYPASS,
     "rlctl bypass add --ip ADDRESS|CIDR | --user NAME [--shm NAME] [--json]\n"
     "rlctl bypass rm --ip ADDRESS|CIDR | --user NAME [--shm NAME] [--json]\n"
     "rlctl bypass ls [--shm NAME] [--json]\n"
     "  The emergency bypass list, changed at run time: workers need no restart.\n"},
    {"top", F_N | F_FOR,
     "rlctl top [--shm NAME] [-n KEYS] [--for SECONDS]: a live view, refreshed every second:\n"
     "  counters and rates, the sync, the keys with the least left (-n, default 15); q quits\n"},
    {"explain", F_BYPASS | F_TIER,
     "rlctl explain METHOD PATH [--ip ADDRESS] [--user NAME] [--tier TIER] [--shm NAME] "
     "[--json]\n"
     "  Which rule applies, its layers, the key each counts and what each would answer now;\n"
     "  takes and counts nothing (rl_explain). The address defaults to 127.0.0.1.\n"},
    {"reset", F_RESET,
     "rlctl reset KEY [--shm NAME] [--json]: forget KEY's counters (every limit it is counted "
     "under)\n"
     "rlctl reset --all --yes [--shm NAME] [--json]: forget every counter\n"
     "  With REDIS_URL set, STRICT and GLOBAL keys lose their Redis state too.\n"},
};

static const char *const not_yet[] = {"--cluster"};

int main(int argc, char **argv)
{
    g_out = stdout;
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    /* Common flags may come before the command. */
    int ci = 1;
    struct opts o;
    memset(&o, 0, sizeof o);
    o.shm = getenv("RL_SHM");
    if (!o.shm || o.shm[0] == '\0')
        o.shm = DEFAULT_SHM;
    while (ci < argc && argv[ci][0] == '-') {
        const char *a = argv[ci];
        const char *v = NULL;
        int r;
        if (strcmp(a, "--version") == 0) {
            fprintf(g_out, "rlctl %s (librl %s)\n", RL_VERSION_STRING, rl_version());
            return EXIT_OK;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "--foreign") == 0) {
            o.foreign = true;
        } else if ((r = opt_value("--shm", argc, argv, &ci, &v)) != 0) {
            if (r < 0 || !v || v[0] == '\0')
                return usage_error("%s wants a segment name, e.g. --shm /rl-default", "--shm");
            o.shm = v;
        } else if (strcmp(a, "--cluster") == 0 || strncmp(a, "--cluster=", 10) == 0) {
            fputs("rlctl: --cluster: not yet\n", stderr);
            return EXIT_USAGE;
        } else {
            return usage_error("unknown option '%s'", a);
        }
        ci++;
    }
    if (ci >= argc) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[ci];
    for (size_t i = 0; i < sizeof not_yet / sizeof not_yet[0]; i++) {
        if (strcmp(name, not_yet[i]) == 0) {
            fprintf(stderr, "rlctl: %s: not yet\n", name);
            return EXIT_USAGE;
        }
    }
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0)
            cmd = &commands[i];
    }
    if (!cmd)
        return usage_error("unknown command '%s'", name);
    for (int i = ci + 1; i < argc; i++) {
        if (strcmp(argv[i], "--cluster") == 0 || strncmp(argv[i], "--cluster=", 10) == 0) {
            fputs("rlctl: --cluster: not yet\n", stderr);
            return EXIT_USAGE;
        }
    }
    int rc = parse_opts(argc, argv, ci + 1, cmd->flags, &o);
    if (rc != 0)
        return rc;
    if (o.help) {
        fputs(cmd->help, stdout);
        return EXIT_OK;
    }
    bool is_config = strcmp(name, "config") == 0;
    bool is_reset = strcmp(name, "reset") == 0;
    bool is_bypass = strcmp(name, "bypass") == 0;
    bool is_explain = strcmp(name, "explain") == 0;
    if (is_explain && o.npos != 2)
        return usage_error("%s wants METHOD and PATH, e.g. explain GET /api/users", "explain");
    if (is_bypass) {
        if (o.npos != 1 || (strcmp(o.pos[0], "add") != 0 && strcmp(o.pos[0], "rm") != 0 &&
                            strcmp(o.pos[0], "ls") != 0))
            return usage_error("%s wants an action: add, rm or ls", "bypass");
    }
    if (!is_config && !is_reset && !is_bypass && !is_explain && o.npos > 0)
        return usage_error("unexpected argument '%s'", o.pos[0]);
    /* For config, pos[0] is the action; shift positionals so that pos[2] is FILE. */
    const char *action = NULL;
    if (is_config) {
        if (o.npos == 0)
            return usage_error("%s wants an action: show, check FILE or reload FILE", "config");
        action = o.pos[0];
        bool wants_file = strcmp(action, "check") == 0 || strcmp(action, "reload") == 0;
        if (!wants_file && strcmp(action, "show") != 0)
            return usage_error("unknown config action '%s' (show, check FILE, reload FILE)",
                               action);
        if (wants_file && o.npos != 2)
            return usage_error("config %s wants one FILE", action);
        if (!wants_file && o.npos != 1)
            return usage_error("unexpected argument '%s'", o.pos[1]);
        o.pos[2] = wants_file ? o.pos[1] : NULL;
        if (strcmp(action, "check") == 0)
            return cmd_config_check(&o);
    }
    if (strcmp(name, "health") == 0)
        return cmd_health(&o);

    rl_t *rl = NULL;
    o.sync = strcmp(name, "serve") == 0;
    rc = attach(&o, &rl, EXIT_FAIL);
    if (rc != 0)
        return rc;
    if (strcmp(name, "status") == 0)
        rc = cmd_status(rl, &o);
    else if (strcmp(name, "keys") == 0)
        rc = cmd_keys(rl, &o);
    else if (strcmp(name, "check") == 0)
        rc = cmd_check(rl, &o);
    else if (strcmp(name, "stats") == 0)
        rc = cmd_stats(rl, &o);
    else if (strcmp(name, "tail") == 0)
        rc = cmd_tail(rl, &o);
    else if (strcmp(name, "metrics") == 0)
        rc = cmd_metrics(rl, &o);
    else if (is_reset)
        rc = cmd_reset(rl, &o);
    else if (is_bypass)
        rc = cmd_bypass(rl, &o, o.pos[0]);
    else if (is_explain)
        rc = cmd_explain(rl, &o);
    else if (strcmp(name, "top") == 0)
        rc = cmd_top(rl, &o);
    else if (strcmp(name, "serve") == 0)
        rc = cmd_serve(rl, &o);
    else if (strcmp(action, "show") == 0)
        rc = cmd_config_show(rl, &o);
    else
        rc = cmd_config_reload(rl, &o);
    rl_close(&rl);
    return rc;
}
