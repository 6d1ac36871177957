/*
 * The Redis servers of the suite 'redis', as scripts/test (step redis-up) starts and describes
 * them in RL_TEST_* variables; see the comment above step_redis_up there for the list.
 *
 * Outside scripts/test the variables are unset: the test binary then prints "redis tests
 * skipped: ..." and exits 77 (meson's "skipped") before any test runs. Under scripts/test
 * (RL_TEST_REDIS_REQUIRED=1) a missing variable is a failure instead: the step redis-up failed.
 * A suite that needs another server names its variable and itself in the messages by defining
 * REDIS_ENV_GATE_VAR and REDIS_ENV_GATE_WHAT before including this header (test_cluster.c:
 * RL_TEST_CLUSTER_URL, "cluster").
 *
 * Keys: every test writes only under its own prefix "rl:test:<pid>:" (Criterion runs each test
 * in a process of its own) and the suite's .fini deletes them (redis_env_cleanup()).
 *
 * Also: loopback sockets for refused, silent and fake servers, and a pool of threads that make
 * calls through one connection pool (pool_run()).
 */
#ifndef RL_REDIS_ENV_H
#define RL_REDIS_ENV_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "internal.h"
#include "url.h"

#define REDIS_ENV_SKIP 77

#ifndef REDIS_ENV_GATE_VAR
#define REDIS_ENV_GATE_VAR  "RL_TEST_REDIS_URL"
#define REDIS_ENV_GATE_WHAT "redis"
#endif

/* Runs before main (and so before Criterion starts any test). */
__attribute__((constructor)) static void redis_env_gate(void)
{
    const char *u = getenv(REDIS_ENV_GATE_VAR);
    if (u && *u)
        return;
    if (getenv("RL_TEST_REDIS_REQUIRED")) {
        fprintf(stderr, REDIS_ENV_GATE_WHAT " tests: " REDIS_ENV_GATE_VAR " unset under "
                                            "scripts/test: the step redis-up failed "
                                            "(build-logs/redis-up.log)\n");
        exit(1);
    }
    fprintf(stderr, REDIS_ENV_GATE_WHAT " tests skipped: run them through scripts/test "
                                        "(" REDIS_ENV_GATE_VAR " unset)\n");
    exit(REDIS_ENV_SKIP);
}

/* The value of an RL_TEST_* variable; a missing one fails the test. */
static inline const char *env_str(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v && *v, "%s is not set: run through scripts/test", name);
    return v;
}

static inline int env_int(const char *name)
{
    return atoi(env_str(name));
}

/* host:port (the last ':') into h. */
static inline void env_host(const char *s, size_t n, struct rl_redis_host *h)
{
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ':')
            colon = s + i;
    cr_assert(colon && (size_t)(colon - s) < sizeof h->host, "bad host:port in a test URL");
    memcpy(h->host, s, (size_t)(colon - s));
    h->host[colon - s] = '\0';
    h->port = atoi(colon + 1);
}

/*
 * The URLs scripts/test exports, parsed by hand (independent of rl__redis_url_parse, which has
 * its own suite): redis://[user]:password@host:port/db and
 * redis-sentinel://host:port,host:port,.../master.
 */
static inline struct rl_redis_url env_url(const char *var)
{
    const char *s = env_str(var);
    struct rl_redis_url u;
    memset(&u, 0, sizeof u);
    if (strncmp(s, "redis-sentinel://", 17) == 0) {
        u.kind = RL_REDIS_SENTINEL;
        s += 17;
        const char *slash = strchr(s, '/');
        cr_assert_not_null(slash, "%s: no master name", var);
        snprintf(u.master, sizeof u.master, "%s", slash + 1);
        while (s < slash) {
            const char *comma = memchr(s, ',', (size_t)(slash - s));
            const char *end = comma ? comma : slash;
            cr_assert_lt(u.nhosts, RL_REDIS_MAX_HOSTS);
            env_host(s, (size_t)(end - s), &u.hosts[u.nhosts++]);
            s = comma ? comma + 1 : slash;
        }
        return u;
    }
    cr_assert(strncmp(s, "redis://", 8) == 0, "%s: not a redis:// URL", var);
    u.kind = RL_REDIS_TCP;
    s += 8;
    const char *at = strrchr(s, '@');
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        cr_assert_not_null(colon, "%s: userinfo without ':'", var);
        snprintf(u.user, sizeof u.user, "%.*s", (int)(colon - s), s);
        snprintf(u.password, sizeof u.password, "%.*s", (int)(at - colon - 1), colon + 1);
        s = at + 1;
    }
    const char *slash = strchr(s, '/');
    env_host(s, slash ? (size_t)(slash - s) : strlen(s), &u.hosts[0]);
    u.nhosts = 1;
    u.db = slash ? atoi(slash + 1) : 0;
    return u;
}

/* A TCP URL to 127.0.0.1:port without credentials (sentinels, closed ports). */
static inline struct rl_redis_url local_url(int port)
{
    struct rl_redis_url u;
    memset(&u, 0, sizeof u);
    u.kind = RL_REDIS_TCP;
    snprintf(u.hosts[0].host, sizeof u.hosts[0].host, "127.0.0.1");
    u.hosts[0].port = port;
    u.nhosts = 1;
    return u;
}

/* Connects and asserts success. */
static inline struct rl_redis *must_connect(const struct rl_redis_url *u, unsigned connect_ms,
                                            unsigned command_ms)
{
    struct rl_redis *c = NULL;
    int rc = rl__redis_connect(u, connect_ms, command_ms, &c);
    cr_assert_eq(rc, 0, "rl__redis_connect: %d: %s", rc, rl_errmsg());
    cr_assert_not_null(c);
    return c;
}

/* The key "rl:test:<pid>:<what>" in buf. */
static inline const char *test_key(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "rl:test:%ld:%s", (long)getpid(), what);
    return buf;
}

/* Deletes the keys matching pattern on the server c is connected to (SCAN, then DEL each;
 * with asking, ASKING before each DEL: a key written on an importing cluster node is reachable
 * only so). Best effort: stops at the first failed SCAN. */
static inline void redis_env_delete_matching(struct rl_redis *c, const char *pattern, bool asking)
{
    char cursor[32] = "0";
    do {
        redisReply *r = NULL;
        if (rl__redis_cmd(c, &r, "SCAN %s MATCH %s COUNT 1000", cursor, pattern) != 0)
            return;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
            snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
            redisReply *keys = r->element[1];
            for (size_t i = 0; i < keys->elements; i++) {
                if (asking)
                    rl__redis_cmd(c, NULL, "ASKING");
                rl__redis_cmd(c, NULL, "DEL %b", keys->element[i]->str, keys->element[i]->len);
            }
        } else {
            cursor[0] = '0';
            cursor[1] = '\0';
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
}

/* Deletes this process's keys (rl:test:<pid>:*) on the server c is connected to. */
static inline void redis_env_delete_keys(struct rl_redis *c)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "rl:test:%ld:*", (long)getpid());
    redis_env_delete_matching(c, pattern, false);
}

/* The suite's .fini: this test's keys on the standalone server (db 0 and 1) and on the
 * sentinel master, whichever server that is now. Best effort: never fails a test. */
static inline void redis_env_cleanup(void)
{
    const char *admin = getenv("RL_TEST_REDIS_ADMIN_URL");
    struct rl_redis *c = NULL;
    if (admin && *admin) {
        struct rl_redis_url u = env_url("RL_TEST_REDIS_ADMIN_URL");
        for (int db = 0; db <= 1; db++) {
            u.db = db;
            if (rl__redis_connect(&u, 1000, 1000, &c) == 0) {
                redis_env_delete_keys(c);
                rl__redis_close(c);
            }
        }
    }
    const char *sentinel = getenv("RL_TEST_SENTINEL_URL");
    if (sentinel && *sentinel) {
        struct rl_redis_url u = env_url("RL_TEST_SENTINEL_URL");
        if (rl__redis_connect(&u, 1000, 1000, &c) == 0) {
            redis_env_delete_keys(c);
            rl__redis_close(c);
        }
    }
}

/* A TCP socket bound to a free loopback port; its address in *a. */
static inline int loopback_socket(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
    socklen_t len = sizeof *a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)a, &len), 0);
    return fd;
}

/* A loopback port nothing listens on (bound, then closed: free right after). */
static inline int closed_port(void)
{
    struct sockaddr_in a;
    close(loopback_socket(&a));
    return ntohs(a.sin_port);
}

/* A socket listening on a free loopback port with that backlog (a fake or silent server); its
 * address in *a. */
static inline int loopback_listener(int backlog, struct sockaddr_in *a)
{
    int fd = loopback_socket(a);
    cr_assert_eq(listen(fd, backlog), 0);
    return fd;
}

/* ---- a pool of threads calling through one connection pool -------------------------------- */

/* Each thread makes `calls` calls: takes a connection from the pool, runs call() on it with key
 * keys[i % nkeys] (i counts the thread's calls), puts the connection back. A failed call (or
 * pool get) counts in errors; the first one is printed. */
struct pool_job {
    struct rl_redis_pool *pool;
    int (*call)(struct rl_redis *c, const char *key);
    char keys[3][96];
    int nkeys, calls;
    _Atomic unsigned errors;
};

static inline void *pool_worker(void *arg)
{
    struct pool_job *j = arg;
    for (int i = 0; i < j->calls; i++) {
        struct rl_redis *c = NULL;
        int rc = rl__pool_get(j->pool, &c);
        if (rc == 0)
            rc = j->call(c, j->keys[i % j->nkeys]);
        rl__pool_put(j->pool, c);
        if (rc != 0 && atomic_fetch_add(&j->errors, 1) == 0)
            fprintf(stderr, "pool worker: %d: %s\n", rc, rl_errmsg());
    }
    return NULL;
}

/* Runs pool_worker in `threads` threads (at most 8) and waits for them. */
static inline void pool_run(struct pool_job *j, int threads)
{
    pthread_t t[8];
    cr_assert_leq(threads, 8);
    for (int i = 0; i < threads; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, pool_worker, j), 0);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
}

/* Connects with u's password made wrong (the real one behind "wr0ng-s3cret-") and expects
 * -EACCES, no connection, and a message that names the user rluser, the server (u's first
 * host, 127.0.0.1) and REDIS_URL, but neither password. u keeps the wrong password. */
static inline void expect_wrong_password_refused(struct rl_redis_url *u)
{
    char real[256], where[64];
    snprintf(real, sizeof real, "%s", u->password);
    snprintf(where, sizeof where, "127.0.0.1:%d", u->hosts[0].port);
    snprintf(u->password, sizeof u->password, "wr0ng-s3cret-%.200s", real);
    struct rl_redis *c = NULL;
    int rc = rl__redis_connect(u, 1000, 1000, &c);
    const char *m = rl_errmsg();
    cr_assert_eq(rc, -EACCES, "%d: %s", rc, m);
    cr_expect_null(c);
    cr_expect(strstr(m, "authentication failed for user rluser") != NULL, "%s", m);
    cr_expect(strstr(m, where) != NULL, "%s", m);
    cr_expect(strstr(m, "REDIS_URL") != NULL, "%s", m);
    cr_expect(strstr(m, "s3cret") == NULL && strstr(m, real) == NULL, "password leaked: %s", m);
}

static inline uint64_t elapsed_ms(uint64_t t0_ns)
{
    return (rl__mono_ns() - t0_ns) / 1000000u;
}

#endif
