/*
 * rlctl: the operator tool of rl. Attaches an existing segment (never creates one) and shows its
 * state, its counters, its keys, its audit ring and its rule set; checks and reloads rule files.
 *
 *   rlctl [--shm NAME] COMMAND [OPTIONS]      (rlctl --help, rlctl COMMAND --help, rlctl.1)
 *
 * Exit codes: 0 ok, 1 failure (or unhealthy), 2 usage error; `health`: 0 ok, 1 degraded,
 * 2 down. --json prints one JSON document built with jansson.
 *
 * This file: the usage text, the command table (each command's flags and --help) and main(),
 * which parses the common flags, checks the positional arguments and dispatches. The
 * commands live one group per file of tools/rlctl/ (rlctl.h lists them).
 */
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "rlctl.h"

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
