/*
 * rlctl's private header: what the files of tools/rlctl/ share (the options a command parses,
 * the report stream, the key list, the audit denials, the server state) and each file's
 * entry points. Nothing outside rlctl includes it except tests/test_security.c (token_ok).
 * Single-threaded: every command runs on main's thread (serve answers one request at a time).
 */
#ifndef RLCTL_H
#define RLCTL_H

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <netinet/in.h>

#include <rl/rl.h>

#include "support.h" /* mono_ns(), mono_ms(), catch_signals() (support/) */

#define EXIT_OK    0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

#define DEFAULT_SHM "/rl-default"

/* Where commands write their report: stdout, or a memory stream while `serve` answers a request
 * (one request at a time, on the server's single thread). */
extern FILE *g_out;

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

/* ---- recent denials (audit.c) ---- */

#define AUDIT_RING 1024u

struct denials {
    struct den {
        char key[25]; /* the key's first 24 bytes, as the ring keeps it */
        uint64_t n;
    } * v;
    size_t n;
    uint64_t records; /* records read */
};

/* ---- the key list (keys.c) ---- */

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

/* ---- serve's state (serve.c) ---- */

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

/* options.c */
__attribute__((format(printf, 1, 2))) int usage_error(const char *fmt, ...);
bool valid_shm_name(const char *s);
int opt_value(const char *name, int argc, char **argv, int *i, const char **val);
int parse_opts(int argc, char **argv, int first, unsigned allowed, struct opts *o);
int attach(const struct opts *o, rl_t **rl, int missing_code);

/* output.c */
extern volatile sig_atomic_t stop_requested;
void catch_stop_signals(void);
void fail_rl(const char *what, int rc);
int emit_json(json_t *doc);
void set_u64(json_t *obj, const char *key, uint64_t v);
void fmt_time(uint64_t ns, char *buf, size_t len);
void fmt_window(uint64_t ms, char *buf, size_t len);
const char *alg_name(rl_algorithm a);
const char *scope_name(rl_scope s);

/* status.c */
int cmd_status(rl_t *rl, const struct opts *o);
int cmd_health(const struct opts *o);

/* audit.c */
int read_denials(rl_t *rl, struct denials *d);
uint64_t denials_of(const struct denials *d, const char *key);
int by_denials(const void *a, const void *b);
int cmd_tail(rl_t *rl, const struct opts *o);

/* keys.c */
int collect_key(const rl_key_view *kv, void *arg);
int by_remaining(const void *a, const void *b);
void free_keys(struct key_list *kl);
int rule_prefixes(rl_t *rl, const char *rule, struct key_list *kl);
int cmd_keys(rl_t *rl, const struct opts *o);
int cmd_reset(rl_t *rl, const struct opts *o);

/* check.c */
int cmd_check(rl_t *rl, const struct opts *o);

/* stats.c */
rl_endpoint_stats *read_endpoints(rl_t *rl, int *n);
int cmd_endpoint(rl_t *rl, const struct opts *o);
int cmd_stats(rl_t *rl, const struct opts *o);
int cmd_top(rl_t *rl, const struct opts *o);

/* rules.c */
int cmd_config_show(rl_t *rl, const struct opts *o);
int cmd_config_check(const struct opts *o);
int cmd_config_reload(rl_t *rl, const struct opts *o);
int cmd_explain(rl_t *rl, const struct opts *o);
int cmd_bypass(rl_t *rl, const struct opts *o, const char *action);

/* metrics.c */
int cmd_metrics(rl_t *rl, const struct opts *o);

/* serve.c */
bool token_ok(const struct server *sv, const char *given, size_t n);
int parse_listen(const char *listen_at, struct sockaddr_in *sa);
int cmd_serve(rl_t *rl, const struct opts *o);

#endif
