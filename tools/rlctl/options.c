/*
 * rlctl's command line: usage errors (exit 2), option values and their bounds, the per-command
 * flag sets (F_*), and attaching the segment a command names (--shm, --foreign, the sync
 * thread of serve).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "rlctl.h"

__attribute__((format(printf, 1, 2))) int usage_error(const char *fmt, ...)
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
bool valid_shm_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 2 && n <= 201 && s[0] == '/' &&
           strspn(s + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
               n - 1;
}

static int parse_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    return parse_u64_arg("rlctl", opt, s, lo, hi, out);
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
int opt_value(const char *name, int argc, char **argv, int *i, const char **val)
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
int parse_opts(int argc, char **argv, int first, unsigned allowed, struct opts *o)
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
int attach(const struct opts *o, rl_t **rl, int missing_code)
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
