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
#include <syslog.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

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
    const char *cmd;        /* the command's name (messages) */
    const char *listen;     /* serve: 127.0.0.1:PORT */
    const char *token_file; /* serve: the admin token's file (else RLCTL_ADMIN_TOKEN) */
    bool sync;              /* attach with a GLOBAL sync thread (serve, with REDIS_URL) */
    const char *bypass_ip, *bypass_user; /* bypass add|rm; explain --ip/--user */
    const char *tier;                    /* explain --tier */
    const char *rule;                    /* keys/reset --rule */
    bool cluster;                        /* stats --cluster */
    uint64_t since_s;                    /* stats --since (with --cluster) */
    bool has_since;
    uint64_t interval_s; /* stats --interval: rate sampling (default 1) */
    bool has_interval;
    bool syslog; /* tail --syslog */
    bool repair; /* check --repair */
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
    F_RULE = 1u << 10,  /* --rule */
    F_STATS = 1u << 11, /* --cluster, --since, --interval */
    F_SYSLOG = 1u << 12,
    F_REPAIR = 1u << 13,
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
    "  keys                   live keys [--prefix P] [--rule R] [--sort remaining|denied|key]\n"
    "                         [--limit N]\n"
    "  get KEY                one key's counters\n"
    "  check                  structural check of the segment (exit 1 when damaged) [--repair]\n"
    "  stats                  decisions: totals, per endpoint, top denied [--interval S]\n"
    "                         [--cluster [--since 1h]]\n"
    "  tail                   the audit ring [-n N] [-f] [--for SECONDS] [--syslog]\n"
    "  config show            the current rule set as YAML\n"
    "  config check FILE      validate a rule file (no segment needed)\n"
    "  config reload FILE     publish a rule file to the segment\n"
    "  health                 exit 0 ok, 1 degraded, 2 down (no segment)\n"
    "  metrics                Prometheus text exposition of the counters\n"
    "  reset KEY | --rule R | --all --yes  forget counters (with REDIS_URL: Redis' too)\n"
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
    "Environment: RL_SHM (the segment), REDIS_URL (Redis for health, resets and stats\n"
    "--cluster; only `serve` runs a sync thread).\n"
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

/* What rl_open accepts as a name ("/" then 1..200 of [A-Za-z0-9._-]), checked before any
 * attach so that a typo is a usage error (exit 2). */
static bool valid_shm_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 2 && n <= 201 && s[0] == '/' &&
           strspn(s + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
               n - 1;
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

/* "90s", "30m", "1h", "7d", "120" (seconds) -> seconds, 1 s .. 366 days. */
static int parse_duration_s(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = s && *s != '-' ? strtoull(s, &end, 10) : 0;
    if (!s || end == s || errno)
        return -1;
    uint64_t mul = 1;
    if (*end == 'm')
        mul = 60;
    else if (*end == 'h')
        mul = 3600;
    else if (*end == 'd')
        mul = 86400;
    else if (*end != 's' && *end != '\0')
        return -1;
    if (*end && end[1] != '\0')
        return -1;
    if (v == 0 || v > 366ULL * 86400u / mul)
        return -1;
    *out = v * mul;
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
    {"--rule", F_RULE, offsetof(struct opts, rule),
     "a rule: its pattern as written (rlctl config show), default, global or tier:NAME"},
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
            if (r < 0 ||
                (strcmp(v, "remaining") != 0 && strcmp(v, "key") != 0 && strcmp(v, "denied") != 0))
                return usage_error("%s wants 'remaining', 'denied' or 'key'", "--sort");
            o->sort = v;
        } else if ((allowed & F_LIMIT) && (r = opt_value("--limit", argc, argv, &i, &v)) != 0) {
            if (r < 0 || parse_u64("--limit", v, 1, UINT32_MAX, &o->limit) != 0)
                return usage_error("%s: see rlctl keys --help", "--limit");
            o->has_limit = true;
        } else if ((allowed & F_N) && ((r = opt_value("-n", argc, argv, &i, &v)) != 0 ||
                                       (r = opt_value("--lines", argc, argv, &i, &v)) != 0)) {
            if (r < 0 || parse_u64("-n", v, 1, 1024, &o->n) != 0)
                return usage_error("%s: see rlctl %s --help", "-n", o->cmd ? o->cmd : "tail");
        } else if ((allowed & F_FOLLOW) && (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0)) {
            o->follow = true;
        } else if ((allowed & (F_FOR | F_SERVE)) &&
                   (r = opt_value("--for", argc, argv, &i, &v)) != 0) {
            if (r < 0 || parse_u64("--for", v, 1, 86400, &o->for_seconds) != 0)
                return usage_error("%s: see rlctl %s --help", "--for", o->cmd ? o->cmd : "tail");
            o->has_for = true;
        } else if ((allowed & F_STATS) && strcmp(a, "--cluster") == 0) {
            o->cluster = true;
        } else if ((allowed & F_STATS) && (r = opt_value("--since", argc, argv, &i, &v)) != 0) {
            if (r < 0 || parse_duration_s(v, &o->since_s) != 0)
                return usage_error("%s wants a duration: 90s, 30m, 1h, 7d (at most 366d)",
                                   "--since");
            o->has_since = true;
        } else if ((allowed & F_STATS) && (r = opt_value("--interval", argc, argv, &i, &v)) != 0) {
            if (r < 0 || parse_u64("--interval", v, 0, 60, &o->interval_s) != 0)
                return usage_error("%s: seconds to sample the rates over, 0 for none",
                                   "--interval");
            o->has_interval = true;
        } else if ((allowed & F_SYSLOG) && strcmp(a, "--syslog") == 0) {
            o->syslog = true;
        } else if ((allowed & F_REPAIR) && strcmp(a, "--repair") == 0) {
            o->repair = true;
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
    /* `serve` runs like a worker (sync interval, fallback, ENABLE_RATE_LIMIT_MONITORING, ... from
     * the environment); the short commands only read. */
    if (o->sync && rl_options_from_env(&ro) != 0) {
        fprintf(stderr, "rlctl: the environment: %s\n", rl_errmsg());
        return EXIT_FAIL;
    }
    ro.config_path = NULL; /* attach only: the workers' rule file is theirs to publish */
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
    if (ro.redis_url && strncmp(detail, "redis url: ", 11) == 0) {
        /* The URL is what is wrong, not the segment (the message never repeats the URL: it may
         * hold a password). */
        fprintf(stderr,
                "rlctl: REDIS_URL is invalid: %s\n"
                "rlctl: fix or unset REDIS_URL (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], "
                "unix:///PATH, redis-sentinel://..., redis-cluster://...; docs/configuration.md)\n",
                detail + 11);
        return EXIT_FAIL;
    }
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

static int count_reclaimable(const rl_key_view *kv, void *arg)
{
    *(uint64_t *)arg += kv->reclaimable;
    return 0;
}

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

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- recent denials: the audit ring, counted per key ------------------------------------- */

#define AUDIT_RING 1024u

struct denials {
    struct den {
        char key[25]; /* the key's first 24 bytes, as the ring keeps it */
        uint64_t n;
    } * v;
    size_t n;
    uint64_t records; /* records read */
};

/* Reads the whole ring (its last AUDIT_RING records) and counts the denials per key. The ring is
 * sampled under load (rl_stats_info.audit_dropped), so these are recent denials, not all. */
static int read_denials(rl_t *rl, struct denials *d)
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
static uint64_t denials_of(const struct denials *d, const char *key)
{
    uint64_t n = 0;
    size_t len = strlen(key);
    for (size_t i = 0; i < d->n; i++)
        if (strncmp(d->v[i].key, key, len) == 0)
            n += d->v[i].n;
    return n;
}

static int by_denials(const void *a, const void *b)
{
    const struct den *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* ---------------------------------------------------------------------------------------- */

struct key_row {
    char *key;
    size_t keylen;
    rl_limit limit;
    rl_result state;
    uint64_t slot;
    uint64_t denied;   /* recent denials (the audit ring) */
    bool denied_known; /* false for GLOBAL keys: only their layer's tag is shown */
    bool reclaimable;
};

struct key_list {
    struct key_row *rows;
    size_t n, cap;
    const char *prefix;
    char (*rule)[10]; /* --rule: its layers' key prefixes */
    int nrule;
    const char *exact; /* get KEY: the whole key (a shown key is its first 24 bytes) */
    bool oom;
};

/* Does a shown key belong to one of a rule's layers? A shown key is its first 24 bytes, or for
 * a GLOBAL key the 8 hex digits of its layer's tag alone (the rest of the slot holds the key's
 * cluster id). */
static bool key_in_rule(const char *key, char (*prefixes)[10], int n)
{
    size_t want = strlen(key) == 8 ? 8 : 9; /* "<tag>" or "<tag>:" */
    for (int k = 0; k < n; k++)
        if (strncmp(key, prefixes[k], want) == 0)
            return true;
    return false;
}

/* Does a key start with p, as far as its shown part (its first 24 bytes; 8 for GLOBAL keys)
 * tells? A truncated key matches a longer p on the bytes shown. */
static bool key_has_prefix(const rl_key_view *kv, const char *p)
{
    size_t n = strlen(p), k = strlen(kv->key);
    if (k >= n)
        return strncmp(kv->key, p, n) == 0;
    return kv->keylen > k && strncmp(kv->key, p, k) == 0;
}

static int collect_key(const rl_key_view *kv, void *arg)
{
    struct key_list *kl = arg;
    if (kl->prefix && !key_has_prefix(kv, kl->prefix))
        return 0;
    if (kl->exact && (kv->keylen != strlen(kl->exact) || !key_has_prefix(kv, kl->exact)))
        return 0;
    if (kl->rule && !key_in_rule(kv->key, kl->rule, kl->nrule))
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
    row->denied = 0;
    row->denied_known = kv->limit.mode != RL_MODE_GLOBAL;
    row->reclaimable = kv->reclaimable;
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

static int by_denied(const void *a, const void *b)
{
    const struct key_row *x = a, *y = b;
    if (x->denied != y->denied)
        return x->denied > y->denied ? -1 : 1;
    return by_key(a, b);
}

static void free_keys(struct key_list *kl)
{
    for (size_t i = 0; i < kl->n; i++)
        free(kl->rows[i].key);
    free(kl->rows);
    free(kl->rule);
}

/* --rule R: the key prefixes of R's layers into kl. 0, or an exit code after a message. */
static int rule_prefixes(rl_t *rl, const char *rule, struct key_list *kl)
{
    kl->rule = calloc(RL_MAX_LAYERS, sizeof *kl->rule);
    if (!kl->rule) {
        fputs("rlctl: out of memory\n", stderr);
        return EXIT_FAIL;
    }
    int n = rl_rule_key_prefixes(rl, rule, kl->rule, RL_MAX_LAYERS);
    if (n < 0) {
        fprintf(stderr, "rlctl: --rule: %s\n", rl_errmsg());
        return EXIT_FAIL;
    }
    kl->nrule = n;
    return EXIT_OK;
}

/* The live keys that kl's filters select, with their recent denials. 0 or an exit code. */
static int list_keys(rl_t *rl, struct key_list *kl)
{
    int rc = rl_foreach_key(rl, rl_clock_ns(rl), collect_key, kl);
    if (kl->oom || rc < 0) {
        if (kl->oom)
            fputs("rlctl: out of memory listing keys\n", stderr);
        else
            fail_rl("rl_foreach_key", rc);
        return EXIT_FAIL;
    }
    struct denials d;
    if (read_denials(rl, &d) == 0) {
        for (size_t i = 0; i < kl->n; i++)
            if (kl->rows[i].denied_known)
                kl->rows[i].denied = denials_of(&d, kl->rows[i].key);
        free(d.v);
    }
    return EXIT_OK;
}

/* keys, and get KEY (exact): one table of the selected keys. */
static int cmd_keys(rl_t *rl, const struct opts *o)
{
    bool get = o->npos == 1;
    struct key_list kl = {.prefix = o->prefix, .exact = get ? o->pos[0] : NULL};
    int rc = o->rule ? rule_prefixes(rl, o->rule, &kl) : EXIT_OK;
    if (rc == EXIT_OK)
        rc = list_keys(rl, &kl);
    if (rc != EXIT_OK) {
        free_keys(&kl);
        return rc;
    }
    if (get && kl.n == 0 && !o->json) {
        fprintf(stderr, "rlctl: no live key \"%s\" in %s (rlctl keys lists them)\n", o->pos[0],
                o->shm);
        free_keys(&kl);
        return EXIT_FAIL;
    }
    if (kl.n > 1)
        qsort(kl.rows, kl.n, sizeof kl.rows[0],
              !o->sort                            ? by_key
              : strcmp(o->sort, "remaining") == 0 ? by_remaining
              : strcmp(o->sort, "denied") == 0    ? by_denied
                                                  : by_key);
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
            if (r->denied_known)
                set_u64(k, "recent_denials", r->denied);
            else
                json_object_set_new(k, "recent_denials", json_null());
            json_object_set_new(k, "reclaimable", json_boolean(r->reclaimable));
            json_array_append_new(arr, k);
        }
        json_object_set_new(doc, "segment", json_string(o->shm));
        set_u64(doc, "total", kl.n);
        set_u64(doc, "shown", shown);
        json_object_set_new(doc, "keys", arr);
        ret = emit_json(doc);
    } else {
        fprintf(g_out, "%-26s %7s %-15s %-20s %10s %12s %8s\n", "KEY", "KEYLEN", "ALGORITHM",
                "LIMIT", "REMAINING", "RESET-AFTER", "DENIED*");
        for (size_t i = 0; i < shown; i++) {
            const struct key_row *r = &kl.rows[i];
            char lim[48], win[32];
            fmt_window(r->limit.window_ms, win, sizeof win);
            snprintf(lim, sizeof lim, "%" PRIu64 "/%s", r->limit.requests, win);
            char den[24] = "-";
            if (r->denied_known)
                snprintf(den, sizeof den, "%" PRIu64, r->denied);
            fprintf(g_out, "%-26s %7zu %-15s %-20s %10" PRIu64 " %10" PRIu64 "ms %8s\n", r->key,
                    r->keylen, alg_name(r->limit.algorithm), lim, r->state.remaining,
                    r->state.reset_after_ms, den);
        }
        fprintf(g_out, "%zu of %zu keys (* recent denials: the audit ring's last %u records)\n",
                shown, kl.n, AUDIT_RING);
    }
    if (get && kl.n == 0 && ret == EXIT_OK)
        ret = EXIT_FAIL; /* --json: the empty document, and the exit code says "none" */
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

/* Other processes that map the segment (its /dev/shm file in /proc/PID/maps), for the message
 * of a refused repair (the library's attach lock decides): writes the pids into out (a list)
 * and returns how many. Processes whose maps we may not read are not listed. */
static int segment_users(const char *shm, char *out, size_t outlen)
{
    char want[300];
    snprintf(want, sizeof want, "/dev/shm%s", shm);
    size_t wl = strlen(want);
    DIR *d = opendir("/proc");
    int n = 0;
    out[0] = '\0';
    if (!d)
        return 0;
    struct dirent *de;
    char path[64], line[4096];
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid())
            continue;
        snprintf(path, sizeof path, "/proc/%ld/maps", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool maps = false;
        while (!maps && fgets(line, sizeof line, f)) {
            char *p = strstr(line, want);
            maps = p && (p[wl] == '\n' || p[wl] == ' ' || p[wl] == '\0');
        }
        fclose(f);
        if (maps) {
            size_t l = strlen(out);
            if (l + 24 < outlen)
                snprintf(out + l, outlen - l, "%s%ld", n ? ", " : "", pid);
            n++;
        }
    }
    closedir(d);
    return n;
}

static int cmd_check(rl_t *rl, const struct opts *o)
{
    struct report_ctx c = {.arr = o->json ? json_array() : NULL, .print = !o->json};
    long n = o->repair ? rl_repair_segment(rl, on_report, &c) : rl_check_segment(rl, on_report, &c);
    if (n == -EBUSY) {
        /* The library knows that someone is attached (its lock); /proc says who, if it can. */
        json_decref(c.arr);
        char pids[256];
        int users = segment_users(o->shm, pids, sizeof pids);
        fprintf(stderr,
                "rlctl: check --repair: other processes are attached to %s%s%s%s: stop them "
                "first, or run rlctl check without --repair to only look\n",
                o->shm, users ? " (pid " : "", users ? pids : "", users ? ")" : "");
        return EXIT_FAIL;
    }
    if (n < 0) {
        json_decref(c.arr);
        fail_rl("rl_check_segment", (int)n);
        return EXIT_FAIL;
    }
    /* After a repair, what is left (damaged limit records are reported, not changed). */
    long after = o->repair && n > 0 ? rl_check_segment(rl, NULL, NULL) : n;
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set_new(doc, "sound", json_boolean(n == 0));
        set_u64(doc, "damaged_slots", (uint64_t)n);
        json_object_set_new(doc, "repaired", json_boolean(o->repair && n > 0 && after == 0));
        json_object_set_new(doc, "problems", c.arr);
        int rc = emit_json(doc);
        return rc != 0 ? rc : (after == 0 ? EXIT_OK : EXIT_FAIL);
    }
    if (n == 0) {
        fprintf(g_out, "segment %s: sound\n", o->shm);
        return EXIT_OK;
    }
    if (o->repair) {
        fprintf(g_out,
                "segment %s: %ld problem%s (above); damaged slots were removed (their keys "
                "start afresh): %s\n",
                o->shm, n, n == 1 ? "" : "s",
                after == 0 ? "sound now"
                           : "still damaged (limit records): stop its users and remove it");
        return after == 0 ? EXIT_OK : EXIT_FAIL;
    }
    fprintf(g_out,
            "segment %s: %ld damaged slot%s (above); stop its users, then rlctl check --repair "
            "(or remove the segment to start fresh)\n",
            o->shm, n, n == 1 ? "" : "s");
    return EXIT_FAIL;
}

/* ---------------------------------------------------------------------------------------- */

/* The segment's endpoints (rl_stats_endpoints) in a malloc'd array; *n how many. */
static rl_endpoint_stats *read_endpoints(rl_t *rl, int *n)
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
static int cmd_endpoint(rl_t *rl, const struct opts *o)
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

static int cmd_stats(rl_t *rl, const struct opts *o)
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
    if (o->syslog)
        openlog("rl-audit", LOG_PID, LOG_DAEMON);
    for (size_t i = from; i < got; i++) {
        if (arr)
            json_array_append_new(arr, audit_json(&buf[i]));
        else
            audit_print(&buf[i]);
        if (o->syslog)
            audit_syslog(&buf[i]);
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
                    if (o->syslog)
                        audit_syslog(&buf[i]);
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
    int n = 0;
    rl_endpoint_stats *e = read_endpoints(rl, &n);
    fputs("# HELP rl_endpoint_requests_total Requests checked, per endpoint (rule pattern) and "
          "result.\n# TYPE rl_endpoint_requests_total counter\n",
          g_out);
    for (int i = 0; e && i < n; i++) {
        /* A label value escapes backslash, double quote and line feed (exposition format). */
        char label[3 * sizeof e[i].endpoint];
        size_t k = 0;
        for (const char *c = e[i].endpoint; *c && k + 3 < sizeof label; c++) {
            if (*c == '\\' || *c == '"' || *c == '\n')
                label[k++] = '\\';
            label[k++] = *c == '\n' ? 'n' : *c;
        }
        label[k] = '\0';
        fprintf(g_out,
                "rl_endpoint_requests_total{endpoint=\"%s\",result=\"allowed\"} %" PRIu64 "\n"
                "rl_endpoint_requests_total{endpoint=\"%s\",result=\"denied\"} %" PRIu64 "\n",
                label, e[i].allowed, label, e[i].denied);
    }
    free(e);
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
    const struct key_list *rule; /* --rule: its key prefixes */
};

/* KEY: every limit under which a live slot holds KEY (the slot shows a prefix of it and its
 * length); --all: every live slot. */
static int collect_reset(const rl_key_view *kv, void *arg)
{
    struct reset_ctx *c = arg;
    if (c->rule) {
        if (!key_in_rule(kv->key, c->rule->rule, c->rule->nrule))
            return 0;
    } else if (!c->all &&
               (kv->keylen != c->keylen || strncmp(c->key, kv->key, strlen(kv->key)) != 0)) {
        return 0;
    }
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
    if ((int)o->all + (o->npos == 1) + (o->rule != NULL) != 1 || o->npos > 1)
        return usage_error("%s wants one KEY, --rule RULE or --all", "reset");
    if (o->all && !o->yes) {
        fprintf(stderr,
                "rlctl: reset --all forgets every counter of %s (with REDIS_URL, also "
                "the cluster-wide state of its GLOBAL keys); add --yes to do it\n",
                o->shm);
        return EXIT_USAGE;
    }
    struct reset_ctx c = {.all = o->all, .key = o->npos ? o->pos[0] : NULL};
    c.keylen = c.key ? strlen(c.key) : 0;
    struct key_list rule = {0};
    if (o->rule) {
        int e = rule_prefixes(rl, o->rule, &rule);
        if (e != EXIT_OK) {
            free_keys(&rule);
            return e;
        }
        c.rule = &rule;
    }
    int rc = rl_foreach_key(rl, 0, collect_reset, &c);
    if (c.oom || rc < 0) {
        free(c.limits);
        free(c.slots);
        free_keys(&rule);
        fprintf(stderr, "rlctl: reset: %s\n", c.oom ? "out of memory" : rl_errmsg());
        return EXIT_FAIL;
    }
    size_t done = 0, failed = 0;
    for (size_t i = 0; i < c.n; i++) {
        rc = c.key ? rl_reset(rl, c.key, c.keylen, &c.limits[i]) : rl_reset_slot(rl, c.slots[i]);
        if (rc < 0) {
            failed++;
            fprintf(stderr, "rlctl: reset: %s\n", rl_errmsg());
        } else {
            done++;
        }
    }
    free(c.limits);
    free(c.slots);
    free_keys(&rule);
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        if (c.key)
            json_object_set_new(doc, "key", json_string(c.key));
        if (o->rule)
            json_object_set_new(doc, "rule", json_string(o->rule));
        set_u64(doc, "reset", done);
        set_u64(doc, "failed", failed);
        if (emit_json(doc) != 0)
            return EXIT_FAIL;
    } else if (c.key && done + failed == 0) {
        fprintf(g_out, "no counter of \"%s\" in %s (rlctl keys lists them)\n", c.key, o->shm);
    } else {
        const char *what = c.key ? c.key : o->rule;
        fprintf(g_out, "reset %zu counter%s%s%s%s\n", done, done == 1 ? "" : "s",
                !what   ? ""
                : c.key ? " of \""
                        : " of rule \"",
                what ? what : "", what ? "\"" : "");
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
    /* libmicrohttpd's own messages (refused connections: one per connection), rate-limited:
     * at most one line per SERVE_LOG_EVERY_NS, then how many were suppressed. */
    uint64_t log_next_ns;
    unsigned long log_suppressed;
};

/* Connections: at most SERVE_MAX_CONN in all (fewer when the descriptor limit is lower) and
 * SERVE_MAX_PER_IP from one address (beyond, a new connection is closed at once); one idle for
 * SERVE_IDLE_S seconds is closed (a response that streams must send something, e.g. a
 * heartbeat, more often than that). Each connection's buffer is SERVE_CONN_MEM bytes (requests
 * are small: a POST body is at most 4 KiB), so all of them take at most 32 MiB. */
#define SERVE_MAX_CONN     2048
#define SERVE_MAX_PER_IP   64
#define SERVE_IDLE_S       5
#define SERVE_CONN_MEM     16384
#define SERVE_LOG_EVERY_NS (10ull * 1000000000u)

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

/* Runs one report command with options o into memory and answers with it; HTTP status from
 * its exit code. */
static enum MHD_Result answer_cmd_opts(struct MHD_Connection *conn, struct server *sv,
                                       int (*fn)(rl_t *, const struct opts *), const struct opts *o,
                                       unsigned fail_status)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return answer_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    g_out = m;
    int rc = fn(sv->rl, o);
    g_out = stdout;
    fclose(m);
    enum MHD_Result r =
        answer(conn, rc == EXIT_OK ? MHD_HTTP_OK : fail_status,
               o->json ? "application/json" : "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
    return r;
}

static enum MHD_Result answer_cmd(struct MHD_Connection *conn, struct server *sv,
                                  int (*fn)(rl_t *, const struct opts *), bool json,
                                  unsigned fail_status)
{
    struct opts o = sv->o;
    o.json = json;
    return answer_cmd_opts(conn, sv, fn, &o, fail_status);
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

/* `in` made safe for a log line: printable ASCII stays (a quote and a backslash get a
 * backslash), anything else becomes \n, \r, \t or \xHH, so a request cannot forge a line or
 * a field. Cut (ending "...") to fit out[n]. */
static const char *log_escape(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        char e[5];
        if (*p == '\n')
            snprintf(e, sizeof e, "\\n");
        else if (*p == '\r')
            snprintf(e, sizeof e, "\\r");
        else if (*p == '\t')
            snprintf(e, sizeof e, "\\t");
        else if (*p == '"' || *p == '\\')
            snprintf(e, sizeof e, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            snprintf(e, sizeof e, "\\x%02x", *p);
        else
            snprintf(e, sizeof e, "%c", *p);
        size_t k = strlen(e);
        if (o + k + 4 > n) { /* room for "..." and the terminator */
            snprintf(out + o, n - o, "...");
            return out;
        }
        memcpy(out + o, e, k);
        o += k;
    }
    out[o] = '\0';
    return out;
}

/* libmicrohttpd's messages ("Server reached connection limit...", once per refused
 * connection): the first in each 10 s goes to stderr, the others are counted and the count is
 * printed with the next one, so that a flood of connections cannot flood the log. */
__attribute__((format(printf, 2, 0))) static void serve_log(void *cls, const char *fmt, va_list ap)
{
    struct server *sv = cls;
    uint64_t now = mono_now_ns();
    if (now < sv->log_next_ns) {
        sv->log_suppressed++;
        return;
    }
    sv->log_next_ns = now + SERVE_LOG_EVERY_NS;
    char msg[512], safe[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (sv->log_suppressed)
        fprintf(stderr, "rlctl serve: %s (and %lu similar messages in the last %llu s)\n",
                log_escape(msg, safe, sizeof safe), sv->log_suppressed,
                (unsigned long long)(SERVE_LOG_EVERY_NS / 1000000000u));
    else
        fprintf(stderr, "rlctl serve: %s\n", log_escape(msg, safe, sizeof safe));
    sv->log_suppressed = 0;
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
    char safe_key[600]; /* the key came from the request: escaped (no forged log lines) */
    fprintf(stderr, "rlctl serve: %s reset %s%s%s (exit %d)\n", peer, all ? "every key" : "key \"",
            all ? "" : log_escape(key, safe_key, sizeof safe_key), all ? "" : "\"", rc);
    json_decref(req);
    enum MHD_Result r = answer(conn, rc == EXIT_OK ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND,
                               "application/json", buf, len);
    free(buf);
    return r;
}

/* The dashboard page (tools/dashboard/dashboard.html, compiled in by scripts/embed.py): static,
 * it polls the JSON and Prometheus routes below from the browser. */
extern const char rl__embed_dashboard[];

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
    if (strcmp(url, "/") == 0)
        return answer(conn, MHD_HTTP_OK, "text/html; charset=utf-8", rl__embed_dashboard,
                      strlen(rl__embed_dashboard));
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
        struct opts eo = sv->o;
        eo.json = true;
        eo.npos = 1;
        eo.pos[0] = url + sizeof ep - 1;
        return answer_cmd_opts(conn, sv, cmd_endpoint, &eo, MHD_HTTP_NOT_FOUND);
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
    const char *path = o->token_file;
    char cred[4096];
    const char *creds = getenv("CREDENTIALS_DIRECTORY");
    if (!path && !t && creds && *creds) {
        /* systemd: LoadCredential=rlctl-admin-token:/etc/rl/admin-token */
        snprintf(cred, sizeof cred, "%s/rlctl-admin-token", creds);
        if (access(cred, F_OK) == 0)
            path = cred;
    }
    if (path) {
        FILE *f = fopen(path, "r");
        if (!f) {
            fprintf(stderr, "rlctl serve: --token-file %s: %s\n", path, strerror(errno));
            return EXIT_FAIL;
        }
        /* As ssh with its keys: a token others can read (or replace) is no secret. */
        struct stat st;
        if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
            fprintf(stderr, "rlctl serve: --token-file %s: not a regular file\n", path);
            fclose(f);
            return EXIT_FAIL;
        }
        if (st.st_mode & 0006) {
            fprintf(stderr,
                    "rlctl serve: --token-file %s is %s by other users (mode %04o): refusing "
                    "it. Make it the service user's alone: chmod 600 %s (or use systemd "
                    "credentials: LoadCredential=rlctl-admin-token:FILE)\n",
                    path, (st.st_mode & 0004) ? "readable" : "writable",
                    (unsigned)(st.st_mode & 07777), path);
            fclose(f);
            return EXIT_FAIL;
        }
        if (st.st_mode & 0060)
            fprintf(stderr,
                    "rlctl serve: warning: --token-file %s is %s by its group (mode %04o): "
                    "every member can reset counters; chmod 600 %s unless that is meant\n",
                    path, (st.st_mode & 0040) ? "readable" : "writable",
                    (unsigned)(st.st_mode & 07777), path);
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

/* --listen ADDRESS:PORT (default 127.0.0.1:9090) into *sa; 0 or EXIT_USAGE after a message.
 * Checked before attaching: a typo is a usage error whatever the segment's state. */
static int parse_listen(const char *listen_at, struct sockaddr_in *sa)
{
    char host[64];
    unsigned port = 0;
    const char *colon = strrchr(listen_at, ':');
    /* The port: 1 to 5 digits and nothing else ("9x", "+9091", " 9091" are refused). */
    size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
    if (colon && digits >= 1 && digits <= 5 && colon[1 + digits] == '\0')
        port = (unsigned)strtoul(colon + 1, NULL, 10);
    if (!colon || (size_t)(colon - listen_at) >= sizeof host || colon == listen_at || port == 0 ||
        port > 65535)
        return usage_error("--listen wants ADDRESS:PORT, PORT 1 to 65535 in digits, e.g. "
                           "127.0.0.1:9090, not '%s'",
                           listen_at);
    memcpy(host, listen_at, (size_t)(colon - listen_at));
    host[colon - listen_at] = '\0';
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return usage_error("--listen: '%s' is not an IPv4 address", host);
    return 0;
}

static int cmd_serve(rl_t *rl, const struct opts *o)
{
    const char *listen_at = o->listen ? o->listen : "127.0.0.1:9090";
    struct sockaddr_in sa;
    if (parse_listen(listen_at, &sa) != 0)
        return EXIT_USAGE;
    struct server sv = {.rl = rl, .o = *o, .last_ns = mono_now_ns()};
    sv.o.has_interval = true; /* /rate-limits/metrics answers at once: rates are /real-time's */
    sv.o.interval_s = 0;
    int rc = load_token(&sv, o);
    if (rc != EXIT_OK)
        return rc;
    rl_stats(rl, &sv.last);
    /* Descriptors for SERVE_MAX_CONN connections plus rl's own: raise the soft limit towards
     * the hard one if needed, else serve fewer connections. */
    unsigned max_conn = SERVE_MAX_CONN;
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        rlim_t want = SERVE_MAX_CONN + 64;
        if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < want) {
            nofile.rlim_cur =
                nofile.rlim_max == RLIM_INFINITY || nofile.rlim_max > want ? want : nofile.rlim_max;
            setrlimit(RLIMIT_NOFILE, &nofile);
            getrlimit(RLIMIT_NOFILE, &nofile);
        }
        if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < want)
            max_conn = nofile.rlim_cur > 128 ? (unsigned)(nofile.rlim_cur - 64) : 64;
    }
    /* One internal thread answers every request in turn (the report commands write to g_out),
     * waiting with epoll (MHD_USE_AUTO: epoll on Linux, else poll), never select(): select()
     * cannot watch a descriptor above 1023, so 1,024 idle connections made /health
     * unreachable. Limits and the idle timeout: SERVE_*. */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG, ntohs(sa.sin_port),
        NULL, NULL, on_http, &sv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)SERVE_IDLE_S, MHD_OPTION_CONNECTION_LIMIT, max_conn,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVE_CONN_MEM,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)SERVE_MAX_PER_IP, MHD_OPTION_EXTERNAL_LOGGER,
        serve_log, &sv, MHD_OPTION_END);
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
    {"keys", F_PREFIX | F_SORT | F_LIMIT | F_RULE,
     "rlctl keys [--shm NAME] [--json] [--prefix P] [--rule RULE] [--sort remaining|denied|key]\n"
     "           [--limit N]\n"
     "  --rule RULE  only the keys of RULE's layers: its pattern as written (rlctl config show),\n"
     "               default, global or tier:NAME\n"
     "  --sort denied  most recent denials first (the audit ring's last 1024 records)\n"},
    {"get", 0,
     "rlctl get KEY [--shm NAME] [--json]: KEY's counters, under every limit it is counted "
     "under\n  (exit 1 when KEY has none)\n"},
    {"check", F_REPAIR,
     "rlctl check [--shm NAME] [--json] [--repair]: exit 0 sound, 1 damaged (with a report)\n"
     "  --repair  remove the damaged slots (their keys start afresh); refused while a process\n"
     "            maps the segment\n"},
    {"stats", F_STATS,
     "rlctl stats [--shm NAME] [--json] [--interval SECONDS]\n"
     "rlctl stats --cluster [--since DURATION] [--json]\n"
     "  Totals, per endpoint (rule pattern): allowed, denied, denial rate, requests per minute\n"
     "  (sampled over --interval, default 1 s, 0: none); top denied endpoints and keys.\n"
     "  --cluster  every host, from the monitoring rollups in Redis (REDIS_URL; the workers run\n"
     "             with ENABLE_RATE_LIMIT_MONITORING=true); --since 90s|30m|1h|7d (default 1h)\n"},
    {"tail", F_N | F_FOLLOW | F_FOR | F_SYSLOG,
     "rlctl tail [--shm NAME] [--json] [-n N] [-f] [--for SECONDS] [--syslog]\n"
     "  -n N           the last N audit records (default 20, at most 1024)\n"
     "  -f             then follow the ring (every 200 ms) until SIGINT or SIGTERM\n"
     "  --for SECONDS  stop following after SECONDS\n"
     "  --syslog       also send each record to syslog (rl-audit, facility daemon)\n"},
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
     "  {\"all\": true} with Authorization: Bearer TOKEN (--token-file or RLCTL_ADMIN_TOKEN;\n"
     "  else $CREDENTIALS_DIRECTORY/rlctl-admin-token, systemd's LoadCredential=).\n"
     "  --token-file must not be readable by others (refused; its group: a warning).\n"
     "  Connections: at most 2048, 64 per client address; idle ones close after 5 s.\n"},
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
    {"reset", F_RESET | F_RULE,
     "rlctl reset KEY [--shm NAME] [--json]: forget KEY's counters (every limit it is counted "
     "under)\n"
     "rlctl reset --rule RULE [--shm NAME] [--json]: forget every counter of RULE's layers\n"
     "rlctl reset --all --yes [--shm NAME] [--json]: forget every counter\n"
     "  With REDIS_URL set, STRICT and GLOBAL keys lose their Redis state too.\n"},
};

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
        } else if (strcmp(a, "--cluster") == 0) {
            o.cluster = true; /* stats --cluster, given first */
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
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0)
            cmd = &commands[i];
    }
    if (!cmd)
        return usage_error("unknown command '%s'", name);
    if (o.cluster && !(cmd->flags & F_STATS))
        return usage_error("--cluster is an option of stats (rlctl stats --cluster)");
    o.cmd = cmd->name;
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
    bool is_get = strcmp(name, "get") == 0;
    if (is_get && o.npos != 1)
        return usage_error("%s wants one KEY (rlctl keys lists them)", "get");
    if (is_explain && o.npos != 2)
        return usage_error("%s wants METHOD and PATH, e.g. explain GET /api/users", "explain");
    if (is_bypass) {
        if (o.npos != 1 || (strcmp(o.pos[0], "add") != 0 && strcmp(o.pos[0], "rm") != 0 &&
                            strcmp(o.pos[0], "ls") != 0))
            return usage_error("%s wants an action: add, rm or ls", "bypass");
    }
    if (!is_config && !is_reset && !is_bypass && !is_explain && !is_get && o.npos > 0)
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
    /* A segment name that cannot be one is a bad value (exit 2), not a missing or unhealthy
     * segment. */
    if (!valid_shm_name(o.shm))
        return usage_error("--shm (or RL_SHM) '%s' is not a segment name: '/' then 1 to 200 of "
                           "[A-Za-z0-9._-], e.g. /rl-default",
                           o.shm);
    if (strcmp(name, "health") == 0)
        return cmd_health(&o);
    if (o.has_since && !o.cluster)
        return usage_error("--since needs --cluster: the segment counts since its creation; the "
                           "per-minute history is in Redis (ENABLE_RATE_LIMIT_MONITORING)");

    struct sockaddr_in listen_sa;
    if (strcmp(name, "serve") == 0 &&
        parse_listen(o.listen ? o.listen : "127.0.0.1:9090", &listen_sa) != 0)
        return EXIT_USAGE;
    rl_t *rl = NULL;
    o.sync = strcmp(name, "serve") == 0;
    rc = attach(&o, &rl, EXIT_FAIL);
    if (rc != 0)
        return rc;
    if (strcmp(name, "status") == 0)
        rc = cmd_status(rl, &o);
    else if (strcmp(name, "keys") == 0 || is_get)
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
