/*
 * redis_child.h: a private redis-server for the benchmarks (rl-bench --redis, rl-global).
 *
 * redis_child_start() runs redis-server (from PATH) as a child process on a free loopback port
 * (found by binding 127.0.0.1:0 and closing the socket again; redis-server binds it next),
 * without persistence (--save '' --appendonly no), with --dir a new temporary directory in
 * $TMPDIR (or /tmp), and waits up to 10 s until it answers PING. The child is killed if the
 * bench dies (PR_SET_PDEATHSIG) and its log goes to /dev/null. redis_child_stop() kills and
 * reaps it and removes the directory; redis_child_on_signal() is the async-signal-safe part of
 * that for a signal handler (the server is then reaped by init; its directory is empty).
 *
 * Header-only: the state (g_redis_pid, g_redis_dir) and the functions are static, one copy per
 * program. Include it after <hiredis/hiredis.h>.
 */
#ifndef RL_BENCH_REDIS_CHILD_H
#define RL_BENCH_REDIS_CHILD_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "support.h" /* mono_ns() */

static char g_redis_dir[256]; /* redis-server's working directory while it exists */
static pid_t g_redis_pid;     /* the redis-server child while it runs */

/* Binds 127.0.0.1:0 to find a free port (closed again at once; redis-server binds it next). */
static int redis_child_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Starts redis-server as a child on a free loopback port; returns a connection that answered
 * PING, or NULL (why in *why). `prog` names the program in the directory name
 * ("<prog>-<owner>-redis-XXXXXX") and in messages; the wait gives up when *interrupted turns
 * non-zero (a signal). After a NULL return call redis_child_stop() (a started server may run). */
static redisContext *redis_child_start(const char *prog, pid_t owner,
                                       const volatile sig_atomic_t *interrupted, int *port_out,
                                       const char **why)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    int w =
        snprintf(g_redis_dir, sizeof g_redis_dir, "%s/%s-%ld-redis-XXXXXX", dir, prog, (long)owner);
    if (w < 0 || (size_t)w >= sizeof g_redis_dir || mkdtemp(g_redis_dir) == NULL) {
        g_redis_dir[0] = '\0';
        *why = "cannot create a temporary directory";
        return NULL;
    }
    int port = redis_child_free_port();
    if (port <= 0) {
        *why = "cannot find a free loopback port";
        return NULL;
    }
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    fflush(NULL);
    pid_t p = fork();
    if (p < 0) {
        *why = "fork failed";
        return NULL;
    }
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDOUT_FILENO); /* the server's log */
        execlp("redis-server", "redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", "--dir", g_redis_dir, (char *)NULL);
        fprintf(stderr, "%s: cannot run redis-server: %s\n", prog, strerror(errno));
        _exit(127);
    }
    g_redis_pid = p;
    uint64_t deadline = mono_ns() + 10000000000ull;
    while (mono_ns() < deadline && *interrupted == 0) {
        int st;
        if (waitpid(p, &st, WNOHANG) == p) {
            g_redis_pid = 0;
            *why = "redis-server exited at once (not installed? see stderr)";
            return NULL;
        }
        struct timeval tv = {0, 200000};
        redisContext *ctx = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (ctx != NULL && ctx->err == 0) {
            redisReply *rep = redisCommand(ctx, "PING");
            bool ok =
                rep != NULL && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
            freeReplyObject(rep);
            if (ok) {
                *port_out = port;
                return ctx;
            }
        }
        if (ctx != NULL)
            redisFree(ctx);
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL); /* an interrupting signal only shortens it */
    }
    *why = "redis-server did not answer PING within 10 s";
    return NULL;
}

/* Kills and reaps the server (if it runs) and removes its directory (if it exists). */
static void redis_child_stop(void)
{
    if (g_redis_pid > 0) {
        kill(g_redis_pid, SIGKILL);
        while (waitpid(g_redis_pid, NULL, 0) < 0 && errno == EINTR) {
        }
        g_redis_pid = 0;
    }
    if (g_redis_dir[0] != '\0') {
        DIR *d = opendir(g_redis_dir);
        if (d != NULL) {
            struct dirent *e;
            char path[sizeof g_redis_dir + 256];
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                snprintf(path, sizeof path, "%s/%s", g_redis_dir, e->d_name);
                unlink(path);
            }
            closedir(d);
        }
        rmdir(g_redis_dir);
        g_redis_dir[0] = '\0';
    }
}

/* From a signal handler (async-signal-safe): kill the server, remove its (empty) directory. */
static void redis_child_on_signal(void)
{
    if (g_redis_pid > 0)
        kill(g_redis_pid, SIGKILL); /* reaped by init; its directory is empty */
    if (g_redis_dir[0] != '\0')
        rmdir(g_redis_dir);
}

/* The server's redis_version (INFO server) into out, or "" when it does not say. */
static void redis_child_version(redisContext *ctx, char *out, size_t n)
{
    out[0] = '\0';
    redisReply *rep = redisCommand(ctx, "INFO server");
    if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        const char *p = strstr(rep->str, "redis_version:");
        if (p != NULL)
            snprintf(out, n, "%.*s", (int)strcspn(p + 14, "\r\n"), p + 14);
    }
    freeReplyObject(rep);
}

#endif /* RL_BENCH_REDIS_CHILD_H */
