/*
 * rlctl_worker: fills a segment for tests/test_rlctl.sh and exits, leaving the segment.
 *
 *   rlctl_worker NAME CONFIG
 *
 * Creates (or attaches) NAME, loads the rule file CONFIG, then checks GET /api/x from two
 * clients: 8 requests from 192.0.2.1 and 3 from 192.0.2.2. With the rule file of the test (5
 * per minute, fixed window, per IP) that is 8 allowed and 3 denied; it prints what it saw as
 * "allowed=N denied=N" and exits 0 (1 on any error).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <rl/rl.h>

static int check(rl_t *rl, const char *ip, unsigned *allowed, unsigned *denied)
{
    rl_request req;
    memset(&req, 0, sizeof req);
    req.method = "GET";
    req.path = "/api/x";
    req.ip = ip;
    rl_decision d;
    int rc = rl_check(rl, &req, &d);
    if (rc != 0) {
        fprintf(stderr, "rlctl_worker: rl_check: %s: %s\n", rl_strerror(rc), rl_errmsg());
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
        fputs("usage: rlctl_worker NAME CONFIG|-   (-: keep the segment's rule set)\n", stderr);
        return 2;
    }
    bool keep = strcmp(argv[2], "-") == 0;
    rl_options o;
    rl_options_init(&o);
    if (rl_options_from_env(&o) != 0) { /* REDIS_URL: GLOBAL and STRICT layers go to Redis */
        fprintf(stderr, "rlctl_worker: %s\n", rl_errmsg());
        return 2;
    }
    o.shm_name = argv[1];
    o.capacity = 1024;
    o.config_path = keep ? NULL : argv[2];
    rl_t *rl = NULL;
    int rc = rl_open(&rl, &o);
    if (rc != 0) {
        fprintf(stderr, "rlctl_worker: rl_open %s: %s: %s\n", argv[1], rl_strerror(rc),
                rl_errmsg());
        return 1;
    }
    rc = keep ? 0 : rl_load_config(rl, argv[2]);
    if (rc != 0) {
        fprintf(stderr, "rlctl_worker: rl_load_config: %s: %s\n", rl_strerror(rc), rl_errmsg());
        rl_close(&rl);
        return 1;
    }
    unsigned allowed = 0, denied = 0;
    for (int i = 0; i < 8 && rc == 0; i++)
        rc = check(rl, "192.0.2.1", &allowed, &denied);
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = check(rl, "192.0.2.2", &allowed, &denied);
    rl_close(&rl);
    if (rc != 0)
        return 1;
    printf("allowed=%u denied=%u\n", allowed, denied);
    return 0;
}
