/*
 * A private redis-server for one test (tests/test_global.c, test_faults.c, test_security.c): on
 * a free loopback port, no persistence (a restart starts with an empty dataset), in a
 * directory of its own under /tmp, killed with the test process (PR_SET_PDEATHSIG) even when
 * that one dies without its .fini. Include after rl_test.h (Criterion or the mini runner).
 *
 *   struct rp_server s = {0};
 *   rp_start(&s);           starts it (on s.port if set, else a new free port) and waits for PING
 *   rp_signal(&s, SIGSTOP); stops it (SIGCONT continues it)
 *   rp_kill(&s);            SIGKILL, and reaps it; rp_start(&s) again restarts it empty
 *   rp_cleanup(&s);         kills it and removes its directory (the suite's .fini)
 *   rp_fork_tied();         fork() a child that dies with the test process
 *   rp_gate("faults");      from a constructor: exit 77 (skipped) outside scripts/test, or 1
 *                           when scripts/test requires Redis (RL_TEST_REDIS_REQUIRED) and it
 *                           is missing
 */
#ifndef RL_TESTS_REDIS_PRIVATE_H
#define RL_TESTS_REDIS_PRIVATE_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static inline void rp_gate(const char *suite)
{
    const char *u = getenv("RL_TEST_REDIS_URL");
    if (u && *u)
        return;
    if (getenv("RL_TEST_REDIS_REQUIRED")) {
        fprintf(stderr, "%s tests: RL_TEST_REDIS_URL unset under scripts/test\n", suite);
        exit(1);
    }
    fprintf(stderr, "redis tests skipped: run them through scripts/test "
                    "(RL_TEST_REDIS_URL unset)\n");
    exit(77);
}

struct rp_server {
    pid_t pid;
    int port;
    char dir[128];
};

/* A loopback port that was free a moment ago (bound to port 0, then closed). */
static inline int rp_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t n = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Whether a server on 127.0.0.1:port answers PING with +PONG within 1 s. */
static inline bool rp_pings(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = false;
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, "PING\r\n", 6) == 6) {
        char buf[16] = {0};
        ok = read(fd, buf, sizeof buf - 1) >= 5 && strncmp(buf, "+PONG", 5) == 0;
    }
    close(fd);
    return ok;
}

/* fork(), asserting it worked; the child dies with the test process (PR_SET_PDEATHSIG), even
 * when that one dies without its .fini (a child whose parent is already gone exits at once).
 * Returns 0 in the child, its pid in the parent. */
static inline pid_t rp_fork_tied(void)
{
    pid_t parent = getpid();
    pid_t p = fork();
    cr_assert_geq(p, 0);
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
    }
    return p;
}

static inline void rp_start(struct rp_server *s)
{
    if (!s->port)
        s->port = rp_free_port();
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "/tmp/rl-tf-%ld-XXXXXX", (long)getpid());
        cr_assert_not_null(mkdtemp(s->dir));
    }
    pid_t p = rp_fork_tied();
    if (p == 0) {
        /* Holds none of the test's output pipes (meson waits for them to close). */
        char port[16];
        snprintf(port, sizeof port, "%d", s->port);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", s->dir, (char *)NULL);
        _exit(127);
    }
    s->pid = p;
    for (int i = 0; i < 200 && !rp_pings(s->port); i++)
        usleep(25000);
    cr_assert(rp_pings(s->port), "redis-server on port %d did not answer", s->port);
}

static inline void rp_signal(struct rp_server *s, int sig)
{
    cr_assert_gt(s->pid, 0, "no redis-server to signal");
    cr_assert_eq(kill(s->pid, sig), 0);
}

static inline void rp_kill(struct rp_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

static inline void rp_cleanup(struct rp_server *s)
{
    rp_kill(s);
    if (s->dir[0]) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->dir);
        s->dir[0] = '\0';
    }
    s->port = 0;
}

static inline const char *rp_url(const struct rp_server *s, char *buf, size_t n)
{
    snprintf(buf, n, "redis://127.0.0.1:%d", s->port);
    return buf;
}

#endif
