/*
 * rlctl_load: steady load on a segment for the dashboard test (tests/test_dashboard.py), until
 * SIGTERM or SIGINT; then it prints what it decided and exits 0, leaving the segment.
 *
 *   rlctl_load NAME CONFIG
 *
 * Every millisecond (about 1000 rounds a second): GET /api/users from one of eight well-behaved
 * clients 192.0.2.1-8, GET /api/users from the abusive 192.0.2.66, and POST /auth/login from one
 * of the eight. With the test's rule file (the rule of /api/users: 200 a second per IP; of
 * /auth/login: 20 a second per IP) the API sees steady allowed and denied traffic, the login
 * mostly denials, and the abuser leads the top denied keys. Prints "allowed=N denied=N" at the end
 * (1 on any error).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <rl/rl.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
    (void)sig;
    stop = 1;
}

static int check(rl_t *rl, const char *method, const char *path, const char *ip,
                 unsigned long *allowed, unsigned long *denied)
{
    rl_request req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = path;
    req.ip = ip;
    rl_decision d;
    int rc = rl_check(rl, &req, &d);
    if (rc != 0) {
        fprintf(stderr, "rlctl_load: rl_check: %s: %s\n", rl_strerror(rc), rl_errmsg());
        return -1;
    }
    if (d.allowed)
        (*allowed)++;
    else
        (*denied)++;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: rlctl_load NAME CONFIG\n", stderr);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    rl_options o;
    rl_options_init(&o);
    if (rl_options_from_env(&o) != 0) { /* REDIS_URL: this process runs the sync and leads it */
        fprintf(stderr, "rlctl_load: %s\n", rl_errmsg());
        return 2;
    }
    o.shm_name = argv[1];
    o.capacity = 1024;
    o.config_path = argv[2];
    rl_t *rl = NULL;
    int rc = rl_open(&rl, &o);
    if (rc != 0) {
        fprintf(stderr, "rlctl_load: rl_open %s: %s: %s\n", argv[1], rl_strerror(rc), rl_errmsg());
        return 1;
    }
    /* Ready: the test waits for this line before it loads the page. */
    printf("ready\n");
    fflush(stdout);
    unsigned long allowed = 0, denied = 0;
    char ip[32];
    for (unsigned i = 0; !stop && rc == 0; i++) {
        snprintf(ip, sizeof ip, "192.0.2.%u", 1 + i % 8);
        rc = check(rl, "GET", "/api/users", ip, &allowed, &denied);
        if (rc == 0)
            rc = check(rl, "GET", "/api/users", "192.0.2.66", &allowed, &denied);
        if (rc == 0)
            rc = check(rl, "POST", "/auth/login", ip, &allowed, &denied);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    rl_close(&rl);
    if (rc != 0)
        return 1;
    printf("allowed=%lu denied=%lu\n", allowed, denied);
    return 0;
}
