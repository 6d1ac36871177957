/*
 * rlctl_worker: a process that checks requests on a segment, for the suites that run rlctl as an
 * operator does (tests/test_rlctl.sh, test_serve.sh, test_rlctl_redis.sh, test_dashboard.py).
 *
 *   rlctl_worker NAME CONFIG|-         fill: create (or attach) NAME, load the rule file CONFIG
 *                                      (-: keep the segment's rule set), check GET /api/x from
 *                                      two clients: 8 requests from 192.0.2.1 and 3 from
 *                                      192.0.2.2, then exit, leaving the segment. With the rule
 *                                      file of test_rlctl.sh (5 per minute, fixed window, per IP)
 *                                      that is 8 allowed and 3 denied.
 *   rlctl_worker --load NAME CONFIG    load: open NAME with the rule file CONFIG, print "ready",
 *                                      then every millisecond (about 1000 rounds a second) check
 *                                      GET /api/users from one of eight well-behaved clients
 *                                      192.0.2.1-8, GET /api/users from the abusive 192.0.2.66
 *                                      and POST /auth/login from one of the eight, until SIGTERM
 *                                      or SIGINT; then exit, leaving the segment. With the rule
 *                                      file of test_dashboard.py (/api/users: 200 a second per
 *                                      IP; /auth/login: 20 a second per IP) the API sees steady
 *                                      allowed and denied traffic, the login mostly denials, and
 *                                      the abuser leads the top denied keys.
 *
 * Both print what they decided as "allowed=N denied=N" at the end and exit 0 (1 on any rl error,
 * 2 on a usage error). REDIS_URL in the environment (rl_options_from_env) opens the handle with
 * Redis: GLOBAL and STRICT layers go there, and a --load process runs the sync and leads it.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <rl/rl.h>

#include "support.h" /* catch_signals() */

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
    (void)sig;
    stop = 1;
}

struct tally {
    unsigned long allowed, denied;
};

static int check(rl_t *rl, const char *method, const char *path, const char *ip, struct tally *t)
{
    rl_request req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = path;
    req.ip = ip;
    rl_decision d;
    int rc = rl_check(rl, &req, &d);
    if (rc != 0) {
        fprintf(stderr, "rlctl_worker: rl_check: %s: %s\n", rl_strerror(rc), rl_errmsg());
        return -1;
    }
    if (d.allowed)
        t->allowed++;
    else
        t->denied++;
    return 0;
}

/* Opens (creating) segment name of 1024 keys into *rl, with the rule file config (NULL: none)
 * and the environment's options. 0, or the exit status when it failed (said on stderr): 2 for
 * a bad environment, 1 when rl_open failed. */
static int open_segment(rl_t **rl, const char *name, const char *config)
{
    rl_options o;
    rl_options_init(&o);
    if (rl_options_from_env(&o) != 0) {
        fprintf(stderr, "rlctl_worker: %s\n", rl_errmsg());
        return 2;
    }
    o.shm_name = name;
    o.capacity = 1024;
    o.config_path = config;
    int rc = rl_open(rl, &o);
    if (rc != 0) {
        fprintf(stderr, "rlctl_worker: rl_open %s: %s: %s\n", name, rl_strerror(rc), rl_errmsg());
        return 1;
    }
    return 0;
}

/* The fill: the rule file loaded again (a reload: the segment may have been created with
 * other rules), then 8 + 3 checks of GET /api/x. */
static int fill(rl_t *rl, const char *config, struct tally *t)
{
    int rc = config ? rl_load_config(rl, config) : 0;
    if (rc != 0) {
        fprintf(stderr, "rlctl_worker: rl_load_config: %s: %s\n", rl_strerror(rc), rl_errmsg());
        return -1;
    }
    for (int i = 0; i < 8 && rc == 0; i++)
        rc = check(rl, "GET", "/api/x", "192.0.2.1", t);
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = check(rl, "GET", "/api/x", "192.0.2.2", t);
    return rc;
}

/* The load: a round a millisecond until a signal. */
static int load(rl_t *rl, struct tally *t)
{
    /* Ready: the test waits for this line before it loads the page. */
    printf("ready\n");
    fflush(stdout);
    char ip[32];
    int rc = 0;
    for (unsigned i = 0; !stop && rc == 0; i++) {
        snprintf(ip, sizeof ip, "192.0.2.%u", 1 + i % 8);
        rc = check(rl, "GET", "/api/users", ip, t);
        if (rc == 0)
            rc = check(rl, "GET", "/api/users", "192.0.2.66", t);
        if (rc == 0)
            rc = check(rl, "POST", "/auth/login", ip, t);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return rc;
}

int main(int argc, char **argv)
{
    bool steady = argc == 4 && strcmp(argv[1], "--load") == 0;
    if (argc != 3 && !steady) {
        fputs("usage: rlctl_worker NAME CONFIG|-   (-: keep the segment's rule set)\n"
              "       rlctl_worker --load NAME CONFIG\n",
              stderr);
        return 2;
    }
    const char *name = argv[argc - 2], *config = argv[argc - 1];
    if (strcmp(config, "-") == 0)
        config = NULL;
    if (steady)
        catch_signals(on_stop, SIGTERM, SIGINT, 0);
    rl_t *rl = NULL;
    int status = open_segment(&rl, name, config);
    if (status != 0)
        return status;
    struct tally t = {0, 0};
    int rc = steady ? load(rl, &t) : fill(rl, config, &t);
    rl_close(&rl);
    if (rc != 0)
        return 1;
    printf("allowed=%lu denied=%lu\n", t.allowed, t.denied);
    return 0;
}
