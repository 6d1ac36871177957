/*
 * The Redis connection layer (sync/conn.c) against the servers scripts/test starts (step
 * redis-up; tests/redis_env.h): the ACL user, credentials and permission errors, refused and
 * silent servers, SELECT, EVALSHA after SCRIPT FLUSH, command timeouts and recovery, backoff,
 * pipelining, the pool from eight threads, its circuit breaker, fork, sentinel resolution and a
 * real failover.
 *
 * The tests pause the standalone server (CLIENT PAUSE), flush its script cache and fail the
 * sentinel master over: they run one at a time (--jobs 1) and the suite runs alone
 * (is_parallel: false in tests/meson.build).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "rl_test.h"

#include "redis_env.h"

TestSuite(redis, .fini = redis_env_cleanup);

/* Sleeps until rl__mono_ns() >= t_ns. */
static void sleep_until(uint64_t t_ns)
{
    uint64_t now = rl__mono_ns();
    if (now >= t_ns)
        return;
    uint64_t d = t_ns - now;
    struct timespec ts = {.tv_sec = (time_t)(d / NS_S), .tv_nsec = (long)(d % NS_S)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void sleep_ms(unsigned ms)
{
    sleep_until(rl__mono_ns() + (uint64_t)ms * NS_MS);
}

/* A command that must succeed; returns its reply (the caller frees it) or NULL when not kept. */
static redisReply *ok_cmd(struct rl_redis *c, bool keep, const char *fmt, const char *a,
                          const char *b)
{
    redisReply *r = NULL;
    int rc = rl__redis_cmd(c, keep ? &r : NULL, fmt, a, b);
    cr_assert_eq(rc, 0, "'%s' at %s: %d: %s", fmt, rl__redis_where(c), rc, rl_errmsg());
    return r;
}

static void expect_string(struct rl_redis *c, const char *key, const char *want)
{
    redisReply *r = ok_cmd(c, true, "GET %s", key, NULL);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "GET %s: reply type %d", key, r->type);
    cr_expect_str_eq(r->str, want);
    freeReplyObject(r);
}

static void expect_role_master(struct rl_redis *c)
{
    redisReply *r = ok_cmd(c, true, "ROLE", NULL, NULL);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                  r->element[0]->type == REDIS_REPLY_STRING,
              "ROLE: unexpected reply");
    cr_expect_str_eq(r->element[0]->str, "master", "%s is not the master", rl__redis_where(c));
    freeReplyObject(r);
}

/* ---- connecting ---------------------------------------------------------------------------- */

Test(redis, acl_user_connects)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    cr_assert(u.user[0] && u.password[0], "RL_TEST_REDIS_URL has no ACL user");
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    char where[64], key[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", env_int("RL_TEST_REDIS_PORT"));
    cr_expect_str_eq(rl__redis_where(c), where);
    cr_expect(rl__redis_connected(c));
    test_key(key, sizeof key, "hello");
    ok_cmd(c, false, "SET %s %s", key, "world");
    expect_string(c, key, "world");
    rl__redis_close(c);
}

Test(redis, unix_socket)
{
    struct rl_redis_url admin = env_url("RL_TEST_REDIS_ADMIN_URL");
    struct rl_redis_url u;
    memset(&u, 0, sizeof u);
    u.kind = RL_REDIS_UNIX;
    snprintf(u.path, sizeof u.path, "%s", env_str("RL_TEST_REDIS_SOCKET"));
    snprintf(u.password, sizeof u.password, "%s", admin.password);
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    cr_expect_str_eq(rl__redis_where(c), u.path);
    ok_cmd(c, false, "PING", NULL, NULL);
    rl__redis_close(c);

    /* No socket there: refused, named by its path. */
    snprintf(u.path, sizeof u.path, "%s/nothing.sock", env_str("RL_TEST_REDIS_DIR"));
    struct rl_redis *none = NULL;
    int rc = rl__redis_connect(&u, 200, 100, &none);
    cr_expect_eq(rc, -ECONNREFUSED, "%d: %s", rc, rl_errmsg());
    cr_expect_null(none);
    cr_expect(strstr(rl_errmsg(), "nothing.sock") != NULL, "%s", rl_errmsg());
}

Test(redis, wrong_password_is_eacces_without_the_password)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", u.hosts[0].port);
    expect_wrong_password_refused(&u);

    /* A password alone (user default), wrong. */
    u.user[0] = '\0';
    struct rl_redis *c = NULL;
    int rc = rl__redis_connect(&u, 1000, 1000, &c);
    const char *m = rl_errmsg();
    cr_expect_eq(rc, -EACCES, "%d: %s", rc, m);
    cr_expect(strstr(m, "user default") != NULL, "%s", m);
    cr_expect(strstr(m, "s3cret") == NULL, "password leaked: %s", m);

    /* No credentials at all: NOAUTH at the first command. */
    u.password[0] = '\0';
    rc = rl__redis_connect(&u, 1000, 1000, &c);
    m = rl_errmsg();
    cr_expect_eq(rc, -EACCES, "%d: %s", rc, m);
    cr_expect(strstr(m, "NOAUTH") != NULL && strstr(m, where) != NULL, "%s", m);
}

Test(redis, connection_refused_is_fast_and_named)
{
    int port = closed_port();
    struct rl_redis_url u = local_url(port);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    struct rl_redis *c = NULL;
    uint64_t t0 = rl__mono_ns();
    int rc = rl__redis_connect(&u, 300, 100, &c);
    uint64_t ms = elapsed_ms(t0);
    cr_assert_eq(rc, -ECONNREFUSED, "%d: %s", rc, rl_errmsg());
    cr_expect_null(c);
    cr_expect_lt(ms, 300, "refused after %" PRIu64 " ms", ms);
    cr_expect(strstr(rl_errmsg(), where) != NULL && strstr(rl_errmsg(), "refused") != NULL, "%s",
              rl_errmsg());
}

Test(redis, silent_server_times_out_within_the_connect_timeout)
{
    /* Listens, never accepts, never answers: the kernel completes the TCP handshake, so the
     * wait is for the handshake's first reply. */
    struct sockaddr_in a;
    int fd = loopback_listener(16, &a);
    struct rl_redis_url u = local_url(ntohs(a.sin_port));
    struct rl_redis *c = NULL;
    uint64_t t0 = rl__mono_ns();
    int rc = rl__redis_connect(&u, 150, 100, &c);
    uint64_t ms = elapsed_ms(t0);
    close(fd);
    cr_assert_eq(rc, -ETIMEDOUT, "%d: %s", rc, rl_errmsg());
    cr_expect(ms >= 140 && ms < 1000, "timed out after %" PRIu64 " ms", ms);
    cr_expect(strstr(rl_errmsg(), "150 ms") != NULL, "%s", rl_errmsg());
}

Test(redis, connect_timeout_when_syns_go_unanswered)
{
    /* A listener with backlog 0 and one connection waiting: the kernel drops further SYNs, so
     * connect(2) itself hangs until the connect timeout. */
    struct sockaddr_in a;
    int fd = loopback_listener(0, &a);
    int filler = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(filler, (struct sockaddr *)&a, sizeof a), 0);
    struct rl_redis_url u = local_url(ntohs(a.sin_port));
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", u.hosts[0].port);
    struct rl_redis *c = NULL;
    uint64_t t0 = rl__mono_ns();
    int rc = rl__redis_connect(&u, 150, 100, &c);
    uint64_t ms = elapsed_ms(t0);
    close(filler);
    close(fd);
    cr_assert_eq(rc, -ETIMEDOUT, "%d: %s", rc, rl_errmsg());
    cr_expect(ms >= 140 && ms < 1000, "timed out after %" PRIu64 " ms", ms);
    cr_expect(strstr(rl_errmsg(), "cannot connect") && strstr(rl_errmsg(), where) &&
                  strstr(rl_errmsg(), "150 ms"),
              "%s", rl_errmsg());
}

/* A fake server: answers the handshake's PING, then closes its end (FIN). */
static void *pong_then_close(void *arg)
{
    int lfd = *(int *)arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[256];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "PING\r\n"))
            break;
    }
    if (write(fd, "+PONG\r\n", 7) != 7)
        fprintf(stderr, "fake server: short write\n");
    close(fd);
    return NULL;
}

Test(redis, a_closed_peer_is_econnreset_not_sigpipe)
{
    /* Writing a big command to a peer that has closed: the first write draws a RST, the next
     * one fails with EPIPE, which raises SIGPIPE (default: terminate) unless it is blocked. */
    struct sockaddr_in a;
    int lfd = loopback_listener(4, &a);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, pong_then_close, &lfd), 0);
    struct rl_redis_url u = local_url(ntohs(a.sin_port));
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    pthread_join(t, NULL);
    close(lfd);
    sleep_ms(20);
    size_t big = 8u << 20;
    char *payload = calloc(1, big);
    cr_assert_not_null(payload);
    int rc = rl__redis_cmd(c, NULL, "SET %s %b", "rl:x", payload, big);
    free(payload);
    cr_expect_eq(rc, -ECONNRESET, "%d: %s", rc, rl_errmsg());
    cr_expect(!rl__redis_connected(c));
    rl__redis_close(c);
}

Test(redis, noperm_is_eperm)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    int rc = rl__redis_cmd(c, NULL, "FLUSHALL");
    cr_expect_eq(rc, -EPERM, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "rluser") != NULL && strstr(rl_errmsg(), "flushall") != NULL,
              "%s", rl_errmsg());
    /* A key outside rl:* */
    rc = rl__redis_cmd(c, NULL, "GET %s", "not-rl");
    cr_expect_eq(rc, -EPERM, "%d: %s", rc, rl_errmsg());
    /* An error reply leaves the connection usable. */
    cr_expect(rl__redis_connected(c));
    ok_cmd(c, false, "PING", NULL, NULL);
    rl__redis_close(c);
}

Test(redis, select_db)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    u.db = 1;
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    char key[64];
    test_key(key, sizeof key, "db1");
    ok_cmd(c, false, "SET %s %s", key, "one");

    struct rl_redis_url a = env_url("RL_TEST_REDIS_ADMIN_URL");
    a.db = 0;
    struct rl_redis *a0 = must_connect(&a, 1000, 1000);
    redisReply *r = ok_cmd(a0, true, "EXISTS %s", key, NULL);
    cr_expect_eq(r->integer, 0, "the db 1 key is visible in db 0");
    freeReplyObject(r);
    a.db = 1;
    struct rl_redis *a1 = must_connect(&a, 1000, 1000);
    expect_string(a1, key, "one");
    rl__redis_close(a0);
    rl__redis_close(a1);
    rl__redis_close(c);

    u.db = 100000;
    int rc = rl__redis_connect(&u, 1000, 1000, &c);
    cr_expect_eq(rc, -EINVAL, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "SELECT 100000") != NULL, "%s", rl_errmsg());
}

Test(redis, cluster_urls_open_without_network)
{
    /* Redis Cluster itself is tested in tests/test_cluster.c. */
    struct rl_redis_url u = local_url(closed_port());
    u.kind = RL_REDIS_CLUSTER;
    struct rl_redis *c = NULL;
    cr_assert_eq(rl__redis_new(&u, 0, 0, &c), 0, "%s", rl_errmsg());
    cr_expect(!rl__redis_connected(c));
    rl__redis_close(c);
    u.db = 1;
    cr_expect_eq(rl__redis_new(&u, 0, 0, &c), -EINVAL);
    cr_expect_null(c);
}

/* ---- scripts --------------------------------------------------------------------------------- */

static const char incr_script[] = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

static long long evalsha_int(struct rl_redis *c, const char *sha, const char *key, const char *by)
{
    const char *argv[2] = {key, by};
    size_t argvlen[2] = {strlen(key), strlen(by)};
    redisReply *r = NULL;
    int rc = rl__redis_evalsha(c, incr_script, sha, 1, 2, argv, argvlen, &r);
    cr_assert_eq(rc, 0, "evalsha: %d: %s", rc, rl_errmsg());
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

Test(redis, evalsha_reloads_after_script_flush)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    struct rl_redis_url a = env_url("RL_TEST_REDIS_ADMIN_URL");
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    struct rl_redis *admin = must_connect(&a, 1000, 1000);
    char key[64];
    test_key(key, sizeof key, "script");

    cr_expect_eq(evalsha_int(c, NULL, key, "5"), 5); /* learns the SHA1 (SCRIPT LOAD) */
    cr_expect_eq(evalsha_int(c, NULL, key, "1"), 6); /* cached */
    ok_cmd(admin, false, "SCRIPT FLUSH", NULL, NULL);
    cr_expect_eq(evalsha_int(c, NULL, key, "4"), 10); /* NOSCRIPT: loaded again */

    /* With the caller's SHA1, after another flush. */
    redisReply *r = ok_cmd(admin, true, "SCRIPT LOAD %s", incr_script, NULL);
    char sha[41];
    cr_assert_eq(r->len, 40);
    memcpy(sha, r->str, 41);
    freeReplyObject(r);
    ok_cmd(admin, false, "SCRIPT FLUSH", NULL, NULL);
    cr_expect_eq(evalsha_int(c, sha, key, "5"), 15);

    /* A SHA1 that is not the script's: NOSCRIPT, loaded, and the mismatch is caught. */
    const char *argv[2] = {key, "1"};
    int rc = rl__redis_evalsha(c, incr_script, "0123456789abcdef0123456789abcdef01234567", 1, 2,
                               argv, NULL, &r);
    cr_expect_eq(rc, -EINVAL, "%d: %s", rc, rl_errmsg());
    cr_expect_null(r);

    /* A script's error reply. */
    static const char boom[] = "return redis.error_reply('boom')";
    rc = rl__redis_evalsha(c, boom, NULL, 0, 0, NULL, NULL, &r);
    cr_expect_eq(rc, -EIO, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "boom") != NULL, "%s", rl_errmsg());
    expect_string(c, key, "15");
    rl__redis_close(admin);
    rl__redis_close(c);
}

/* ---- timeouts, backoff, pipelining ------------------------------------------------------------
 */

Test(redis, command_timeout_then_recovery)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    struct rl_redis_url a = env_url("RL_TEST_REDIS_ADMIN_URL");
    struct rl_redis *c = must_connect(&u, 1000, 100);
    struct rl_redis *admin = must_connect(&a, 1000, 1000);
    ok_cmd(c, false, "PING", NULL, NULL);

    uint64_t paused = rl__mono_ns();
    ok_cmd(admin, false, "CLIENT PAUSE 500 ALL", NULL, NULL);
    uint64_t t0 = rl__mono_ns();
    int rc = rl__redis_cmd(c, NULL, "PING");
    uint64_t ms = elapsed_ms(t0);
    cr_expect_eq(rc, -ETIMEDOUT, "%d: %s", rc, rl_errmsg());
    cr_expect(ms >= 90 && ms < 400, "timed out after %" PRIu64 " ms, not ~100", ms);
    cr_expect(strstr(rl_errmsg(), "100 ms") != NULL, "%s", rl_errmsg());
    cr_expect(!rl__redis_connected(c), "a timed-out connection must not be reused");

    sleep_until(paused + 650 * NS_MS);
    ok_cmd(c, false, "PING", NULL, NULL); /* reconnected */
    rl__redis_close(admin);
    rl__redis_close(c);
}

Test(redis, backoff_fails_fast_without_network)
{
    struct rl_redis_url u = local_url(closed_port());
    struct rl_redis *c = NULL;
    cr_assert_eq(rl__redis_new(&u, 200, 100, &c), 0);
    cr_expect(!rl__redis_connected(c));
    int rc = rl__redis_cmd(c, NULL, "PING");
    cr_expect_eq(rc, -ECONNREFUSED, "%d: %s", rc, rl_errmsg());
    rc = rl__redis_cmd(c, NULL, "PING");
    cr_expect_eq(rc, -EAGAIN, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "backing off") && strstr(rl_errmsg(), "refused"), "%s",
              rl_errmsg());
    sleep_ms(60); /* past the first delay (25..50 ms) */
    cr_expect_eq(rl__redis_cmd(c, NULL, "PING"), -ECONNREFUSED, "%s", rl_errmsg());
    cr_expect_eq(rl__redis_cmd(c, NULL, "PING"), -EAGAIN, "%s", rl_errmsg());
    sleep_ms(110); /* past the second (50..100 ms) */
    cr_expect_eq(rl__redis_cmd(c, NULL, "PING"), -ECONNREFUSED, "%s", rl_errmsg());
    rl__redis_close(c);
}

Test(redis, pipelining)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    char k1[64], k2[64];
    test_key(k1, sizeof k1, "p1");
    test_key(k2, sizeof k2, "p2");
    cr_assert_eq(rl__redis_append(c, "SET %s %s", k1, "v"), 0);
    cr_assert_eq(rl__redis_append(c, "SET %s %s", k2, "abc"), 0);
    cr_assert_eq(rl__redis_append(c, "INCRBY %s 1", k2), 0);
    const char *argv[2] = {"GET", k1};
    cr_assert_eq(rl__redis_append_argv(c, 2, argv, NULL), 0);
    cr_expect_eq(rl__redis_cmd(c, NULL, "PING"), -EINVAL, "a command amid a batch");

    redisReply *r = NULL;
    cr_expect_eq(rl__redis_get_reply(c, &r), 0, "%s", rl_errmsg());
    freeReplyObject(r);
    cr_expect_eq(rl__redis_get_reply(c, NULL), 0, "%s", rl_errmsg());
    int rc = rl__redis_get_reply(c, &r);
    cr_expect_eq(rc, -EIO, "%d: %s", rc, rl_errmsg());
    cr_expect_null(r);
    cr_expect(strstr(rl_errmsg(), "not an integer") != NULL, "%s", rl_errmsg());
    cr_assert_eq(rl__redis_get_reply(c, &r), 0, "%s", rl_errmsg());
    cr_expect_str_eq(r->str, "v");
    freeReplyObject(r);
    cr_expect_eq(rl__redis_get_reply(c, &r), -EINVAL, "nothing pending");
    ok_cmd(c, false, "PING", NULL, NULL);
    rl__redis_close(c);
}

/* ---- the pool ------------------------------------------------------------------------------- */

/* A pool_job's call (redis_env.h). */
static int incr_by_one(struct rl_redis *c, const char *key)
{
    return rl__redis_cmd(c, NULL, "INCRBY %s 1", key);
}

Test(redis, pool_from_eight_threads)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    struct rl_redis_pool *p = NULL;
    cr_assert_eq(rl__pool_open(&u, 4, 1000, 1000, &p), 0, "%s", rl_errmsg());
    struct pool_job job = {.pool = p, .call = incr_by_one, .nkeys = 1, .calls = 250};
    const char *key = test_key(job.keys[0], sizeof job.keys[0], "pool");
    pool_run(&job, 8);
    cr_expect_eq(atomic_load(&job.errors), 0);

    struct rl_pool_stats st;
    rl__pool_stats(p, &st);
    cr_expect_eq(st.size, 4);
    cr_expect_eq(st.idle, 4);
    cr_expect(st.connected >= 1 && st.connected <= 4, "%u connected", st.connected);
    cr_expect(!st.breaker_open && st.consecutive_failures == 0);

    struct rl_redis *c = NULL;
    cr_assert_eq(rl__pool_get(p, &c), 0);
    expect_string(c, key, "2000");
    rl__pool_put(p, c);
    rl__pool_close(p);
}

Test(redis, pool_get_waits_at_most_the_command_timeout)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    struct rl_redis_pool *p = NULL;
    cr_assert_eq(rl__pool_open(&u, 1, 1000, 100, &p), 0, "%s", rl_errmsg());
    struct rl_redis *c1 = NULL, *c2 = NULL;
    cr_assert_eq(rl__pool_get(p, &c1), 0);
    uint64_t t0 = rl__mono_ns();
    int rc = rl__pool_get(p, &c2);
    uint64_t ms = elapsed_ms(t0);
    cr_expect_eq(rc, -EAGAIN, "%d: %s", rc, rl_errmsg());
    cr_expect_null(c2);
    cr_expect(ms >= 90 && ms < 500, "waited %" PRIu64 " ms", ms);
    cr_expect(strstr(rl_errmsg(), "no free connection") != NULL, "%s", rl_errmsg());
    rl__pool_put(p, c1);
    cr_expect_eq(rl__pool_get(p, &c2), 0);
    cr_expect(c2 == c1);
    rl__pool_put(p, c2);
    rl__pool_close(p);
}

Test(redis, breaker_opens_after_five_failures)
{
    struct rl_redis_url u = local_url(closed_port());
    struct rl_redis_pool *p = NULL;
    /* Redis down: opening the pool does not fail. */
    cr_assert_eq(rl__pool_open(&u, 8, 100, 100, &p), 0, "%s", rl_errmsg());
    struct rl_redis *c = NULL;
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(rl__pool_get(p, &c), 0, "get %d: %s", i, rl_errmsg());
        int rc = rl__redis_cmd(c, NULL, "PING");
        cr_expect_eq(rc, -ECONNREFUSED, "failure %d: %d: %s", i, rc, rl_errmsg());
        rl__pool_put(p, c);
    }
    struct rl_pool_stats st;
    rl__pool_stats(p, &st);
    cr_expect(st.breaker_open && st.consecutive_failures == 5 && st.breaker_trips == 1,
              "open %d, failures %u, trips %" PRIu64, st.breaker_open, st.consecutive_failures,
              st.breaker_trips);

    uint64_t t0 = rl__mono_ns();
    for (int i = 0; i < 100; i++) {
        c = NULL;
        int rc = rl__pool_get(p, &c);
        cr_assert_eq(rc, -EAGAIN, "get while open: %d", rc);
        cr_expect_null(c);
    }
    cr_expect_lt(elapsed_ms(t0), 50, "failing fast is not fast");
    cr_expect(strstr(rl_errmsg(), "circuit breaker open") && strstr(rl_errmsg(), "refused"), "%s",
              rl_errmsg());

    /* After 1 s one probe goes through, the others still fail fast. */
    sleep_ms(1050);
    struct rl_redis *probe = NULL, *other = NULL;
    cr_assert_eq(rl__pool_get(p, &probe), 0, "probe: %s", rl_errmsg());
    cr_expect_eq(rl__pool_get(p, &other), -EAGAIN, "a second caller while the probe is out");
    int rc = rl__redis_cmd(probe, NULL, "PING");
    cr_expect_eq(rc, -ECONNREFUSED, "%d: %s", rc, rl_errmsg());
    rl__pool_put(p, probe);
    /* The probe failed: open again, for another second. */
    cr_expect_eq(rl__pool_get(p, &other), -EAGAIN);
    rl__pool_stats(p, &st);
    cr_expect(st.breaker_open && st.breaker_trips == 1);
    rl__pool_close(p);
}

Test(redis, breaker_counts_timeouts_and_closes_on_success)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    struct rl_redis_url a = env_url("RL_TEST_REDIS_ADMIN_URL");
    struct rl_redis *admin = must_connect(&a, 1000, 1000);
    struct rl_redis_pool *p = NULL;
    cr_assert_eq(rl__pool_open(&u, 8, 100, 100, &p), 0, "%s", rl_errmsg());
    struct rl_redis *c = NULL;
    cr_assert_eq(rl__pool_get(p, &c), 0);
    ok_cmd(c, false, "PING", NULL, NULL);
    rl__pool_put(p, c);

    uint64_t paused = rl__mono_ns();
    ok_cmd(admin, false, "CLIENT PAUSE 1200 ALL", NULL, NULL);
    int timeouts = 0, rc = 0;
    uint64_t tripped = 0;
    for (int i = 0; i < 20; i++) {
        c = NULL;
        rc = rl__pool_get(p, &c);
        if (rc != 0) {
            tripped = rl__mono_ns();
            break;
        }
        rc = rl__redis_cmd(c, NULL, "PING");
        rl__pool_put(p, c);
        cr_expect_eq(rc, -ETIMEDOUT, "call %d during the pause: %d: %s", i, rc, rl_errmsg());
        timeouts += rc == -ETIMEDOUT;
    }
    cr_expect_eq(rc, -EAGAIN, "%d: %s", rc, rl_errmsg());
    cr_expect_eq(timeouts, 5, "the breaker opened after %d timeouts", timeouts);
    struct rl_pool_stats st;
    rl__pool_stats(p, &st);
    cr_expect(st.breaker_open && st.breaker_trips == 1);

    /* Past the pause and the open second: the probe succeeds and closes the breaker. */
    uint64_t probe_at = tripped + 1050 * NS_MS;
    if (probe_at < paused + 1300 * NS_MS)
        probe_at = paused + 1300 * NS_MS;
    sleep_until(probe_at);
    cr_assert_eq(rl__pool_get(p, &c), 0, "probe: %s", rl_errmsg());
    ok_cmd(c, false, "PING", NULL, NULL);
    rl__pool_put(p, c);
    rl__pool_stats(p, &st);
    cr_expect(!st.breaker_open && st.consecutive_failures == 0, "open %d, failures %u",
              st.breaker_open, st.consecutive_failures);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(rl__pool_get(p, &c), 0, "%s", rl_errmsg());
        ok_cmd(c, false, "PING", NULL, NULL);
        rl__pool_put(p, c);
    }
    rl__pool_close(p);
    rl__redis_close(admin);
}

static long long client_id(struct rl_redis *c)
{
    redisReply *r = NULL;
    if (rl__redis_cmd(c, &r, "CLIENT ID") != 0)
        return -1;
    long long id = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return id;
}

Test(redis, fork_child_uses_its_own_sockets)
{
    struct rl_redis_url a = env_url("RL_TEST_REDIS_ADMIN_URL");
    struct rl_redis_pool *p = NULL;
    cr_assert_eq(rl__pool_open(&a, 2, 1000, 1000, &p), 0, "%s", rl_errmsg());
    struct rl_redis *c = NULL;
    cr_assert_eq(rl__pool_get(p, &c), 0);
    long long pooled = client_id(c);
    rl__pool_put(p, c);
    struct rl_redis *single = must_connect(&a, 1000, 1000);
    long long alone = client_id(single);
    cr_assert(pooled > 0 && alone > 0, "CLIENT ID: %s", rl_errmsg());

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* Never on the parent's streams: new connections, so new client ids. */
        int bad = 0;
        rl__pool_after_fork_child(p);
        struct rl_redis *cc = NULL;
        if (rl__pool_get(p, &cc) != 0)
            _exit(10);
        long long id = client_id(cc);
        bad |= (id <= 0 || id == pooled) << 0;
        rl__pool_put(p, cc);
        id = client_id(single); /* no after-fork call: the pid check reconnects */
        bad |= (id <= 0 || id == alone) << 1;
        _exit(bad);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    /* The parent's connections are the same, undisturbed. */
    cr_assert_eq(rl__pool_get(p, &c), 0);
    cr_expect_eq(client_id(c), pooled);
    rl__pool_put(p, c);
    cr_expect_eq(client_id(single), alone);
    rl__redis_close(single);
    rl__pool_close(p);
}

/* ---- sentinel ------------------------------------------------------------------------------- */

Test(redis, sentinel_resolves_the_master)
{
    struct rl_redis_url u = env_url("RL_TEST_SENTINEL_URL");
    cr_assert_eq(u.nhosts, 3);
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    expect_role_master(c);
    int m = env_int("RL_TEST_SENTINEL_MASTER_PORT"), r = env_int("RL_TEST_SENTINEL_REPLICA_PORT");
    char wm[64], wr[64];
    snprintf(wm, sizeof wm, "127.0.0.1:%d", m);
    snprintf(wr, sizeof wr, "127.0.0.1:%d", r);
    cr_expect(strcmp(rl__redis_where(c), wm) == 0 || strcmp(rl__redis_where(c), wr) == 0, "%s",
              rl__redis_where(c));
    char key[64];
    test_key(key, sizeof key, "sentinel");
    ok_cmd(c, false, "SET %s %s", key, "x");
    expect_string(c, key, "x");
    rl__redis_close(c);

    /* A dead sentinel first in the list: the next one answers. */
    struct rl_redis_url d = u;
    d.hosts[0] = local_url(closed_port()).hosts[0];
    c = must_connect(&d, 1000, 1000);
    expect_role_master(c);
    rl__redis_close(c);

    /* A master name no sentinel knows. */
    snprintf(u.master, sizeof u.master, "nosuchmaster");
    int rc = rl__redis_connect(&u, 500, 500, &c);
    cr_expect_eq(rc, -ENXIO, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "nosuchmaster") != NULL, "%s", rl_errmsg());
}

Test(redis, readonly_replica_is_erofs)
{
    /* Whichever of the two is the replica now (failovers swap them). */
    int ports[2] = {env_int("RL_TEST_SENTINEL_MASTER_PORT"),
                    env_int("RL_TEST_SENTINEL_REPLICA_PORT")};
    struct rl_redis *replica = NULL;
    for (int i = 0; i < 2 && !replica; i++) {
        struct rl_redis_url u = local_url(ports[i]);
        struct rl_redis *c = must_connect(&u, 1000, 1000);
        redisReply *r = ok_cmd(c, true, "ROLE", NULL, NULL);
        if (strcmp(r->element[0]->str, "slave") == 0)
            replica = c;
        else
            rl__redis_close(c);
        freeReplyObject(r);
    }
    cr_assert_not_null(replica, "no replica among the sentinel-monitored servers");
    char key[64];
    test_key(key, sizeof key, "ro");
    int rc = rl__redis_cmd(replica, NULL, "SET %s %s", key, "x");
    cr_expect_eq(rc, -EROFS, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "read-only replica") != NULL, "%s", rl_errmsg());
    /* Dropped, so that the next call re-resolves (here: reconnects to the same replica). */
    cr_expect(!rl__redis_connected(replica));
    ok_cmd(replica, false, "PING", NULL, NULL);
    rl__redis_close(replica);
}

Test(redis, sentinel_failover_reresolves)
{
    struct rl_redis_url u = env_url("RL_TEST_SENTINEL_URL");
    struct rl_redis *c = must_connect(&u, 500, 500);
    char old[64], key[64];
    snprintf(old, sizeof old, "%s", rl__redis_where(c));
    test_key(key, sizeof key, "failover");
    ok_cmd(c, false, "SET %s %s", key, "before");

    /* SENTINEL FAILOVER through the first sentinel. It refuses (INPROG, NOGOODSLAVE) while an
     * earlier failover settles or the replica resyncs: retry for a while. */
    struct rl_redis_url su = local_url(u.hosts[0].port);
    struct rl_redis *s = must_connect(&su, 500, 500);
    uint64_t t0 = rl__mono_ns();
    int rc;
    while ((rc = rl__redis_cmd(s, NULL, "SENTINEL FAILOVER %s", u.master)) != 0 &&
           elapsed_ms(t0) < 15000)
        sleep_ms(200);
    cr_assert_eq(rc, 0, "SENTINEL FAILOVER: %d: %s", rc, rl_errmsg());
    rl__redis_close(s);
    uint64_t t_failover = rl__mono_ns();

    /* The old connection: writes go on until the old master is demoted (sentinel then kills
     * its clients), then an error, then the next calls re-resolve the new master. */
    int first_err = 0;
    char first_msg[512] = "";
    bool moved = false;
    while (elapsed_ms(t_failover) < 20000) {
        rc = rl__redis_cmd(c, NULL, "SET %s %s", key, "after");
        if (rc != 0 && first_err == 0) {
            first_err = rc;
            snprintf(first_msg, sizeof first_msg, "%s", rl_errmsg());
        }
        if (rc == 0 && strcmp(rl__redis_where(c), old) != 0) {
            moved = true;
            break;
        }
        sleep_ms(50);
    }
    cr_log_info("failover: first error %d (%s); new master %s after %" PRIu64 " ms", first_err,
                first_msg, rl__redis_where(c), elapsed_ms(t_failover));
    cr_expect(first_err == -EROFS || first_err == -ECONNRESET,
              "the old connection's first error: %d (%s)", first_err, first_msg);
    cr_assert(moved, "still on %s after 20 s (last: %d %s)", old, rc, rl_errmsg());
    expect_role_master(c);
    expect_string(c, key, "after");

    /* A fresh resolution agrees. */
    struct rl_redis *fresh = must_connect(&u, 500, 500);
    cr_expect_str_eq(rl__redis_where(fresh), rl__redis_where(c));
    rl__redis_close(fresh);
    rl__redis_close(c);
}

/* ---- STRICT's exact token bucket script (sync/scripts.h) ---------------------------------------
 *
 * The script as rl runs it, but with Redis' clock (TIME) replaced by a time the test passes in
 * ARGV[6..7] (seconds, microseconds), so that a random walk can be compared with an exact
 * reference: the bucket's full time times L in integers, as in tests/test_exact.c, in
 * microseconds. Every field must agree (STRICT keeps its fraction of a microsecond exactly, as
 * "zi:r"), a denied request retried retry_after later is admitted, refunds give back exactly.
 */
#include "scripts.h"

static char *with_test_clock(const char *src)
{
    static const char tline[] = "local t = redis.call('TIME')\n";
    const char *at = strstr(src, tline);
    cr_assert_not_null(at, "the script reads TIME");
    static const char mine[] = "local t = {ARGV[6], ARGV[7]}\n";
    size_t n = strlen(src) + sizeof mine;
    char *out = malloc(n);
    cr_assert_not_null(out);
    snprintf(out, n, "%.*s%s%s", (int)(at - src), src, mine, at + sizeof tline - 1);
    return out;
}

struct sref {
    rl_u128 L, W, C, zs; /* zs: full time in us, times L */
};

static redisReply *bucket_call(struct rl_redis *c, const char *src, const char *key, uint64_t W,
                               uint64_t L, uint64_t C, uint64_t cost, uint64_t now_us)
{
    char a[7][24];
    snprintf(a[0], sizeof a[0], "%" PRIu64, W);
    snprintf(a[1], sizeof a[1], "%" PRIu64, L);
    snprintf(a[2], sizeof a[2], "%" PRIu64, C);
    snprintf(a[3], sizeof a[3], "%" PRIu64, cost);
    snprintf(a[4], sizeof a[4], "%d", 600000);
    snprintf(a[5], sizeof a[5], "%" PRIu64, now_us / 1000000u);
    snprintf(a[6], sizeof a[6], "%" PRIu64, now_us % 1000000u);
    const char *argv[8] = {key, a[0], a[1], a[2], a[3], a[4], a[5], a[6]};
    redisReply *r = NULL;
    int rc = rl__redis_evalsha(c, src, NULL, 1, 8, argv, NULL, &r);
    cr_assert_eq(rc, 0, "bucket script: %d %s", rc, rl_errmsg());
    return r;
}

static uint64_t sdiv_ceil(rl_u128 a, rl_u128 b)
{
    return (uint64_t)((a + b - 1) / b);
}

Test(redis, strict_bucket_script_is_exact)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    char *bucket = with_test_clock(rl__lua_bucket);
    uint64_t seed = 0x5eed5eedULL;
#define SRND() (seed = seed * 6364136223846793005ULL + 1442695040888963407ULL, seed >> 17)
    /* requests, window ms, capacity: windows not multiples of the count, and the edge of the
     * 2^52 range (C x W_us = 2^52 - a little) */
    static const uint64_t lims[][3] = {
        {3, 1000, 3},
        {500001, 1000, 500001},
        {142, 31, 18},
        {7, 13, 7},
        {1, 3600000, 1},
        {1000, 1000, 1000},
        {997, 60000, 5000},
        {1, 1, 1},
        {2515322407ULL, 3600000, 1250},
        {13, 315360000000ULL, 14},
    };
    unsigned checked = 0, denied = 0;
    for (size_t li = 0; li < sizeof lims / sizeof lims[0]; li++) {
        uint64_t L = lims[li][0], W = lims[li][1] * 1000u, C = lims[li][2];
        char key[64], what[32];
        snprintf(what, sizeof what, "strict-bucket-%zu", li);
        test_key(key, sizeof key, what);
        struct sref ref = {L, W, C, 0};
        uint64_t T_us = W / L + 1, now = 1800000000000000ULL + SRND() % W;
        for (int i = 0; i < 400; i++) {
            switch (SRND() % 6) {
            case 0:
                break;
            case 1:
                now += 1;
                break;
            case 2:
                now += SRND() % (T_us + 1);
                break;
            case 3:
                now += SRND() % (C * T_us / 3 + 1);
                break;
            case 4:
                now += SRND() % (2 * C * T_us + 1);
                break;
            default:
                now += SRND() % 1000;
                break;
            }
            if (now > 4000000000000000ULL)
                break; /* year 2096: Redis' clock in us stays far below 2^53 (year 2255) */
            uint64_t cost = SRND() % 5 == 0 ? C + 1 : (SRND() % 4 == 0 ? 0 : 1 + SRND() % C);
            rl_u128 CW = ref.C * ref.W, ts = (rl_u128)now * L;
            rl_u128 z = ref.zs > ts ? ref.zs : ts, b0 = z - ts, b1 = b0 + (rl_u128)cost * W;
            bool ok = cost <= C && b1 <= CW;
            rl_u128 b = ok ? b1 : b0;
            long long want[4] = {ok, (long long)((CW - b) / W), 0,
                                 (long long)sdiv_ceil(b, L * 1000)};
            if (!ok)
                want[2] = cost <= C ? (long long)sdiv_ceil(b1 - CW, L * 1000) : -1;
            redisReply *r = bucket_call(c, bucket, key, W, L, C, cost, now);
            cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4);
            for (int k = 0; k < 4; k++)
                cr_assert(r->element[k]->integer == want[k],
                          "%" PRIu64 "/%" PRIu64 "us C %" PRIu64 ", op %d, cost %" PRIu64
                          ": field %d is %lld, exact %lld",
                          L, W, C, i, cost, k, r->element[k]->integer, want[k]);
            freeReplyObject(r);
            checked++;
            if (ok && cost) {
                ref.zs = z + (rl_u128)cost * W;
                if (SRND() % 8 == 0) {
                    /* the refund script gives back exactly cost x W / L */
                    const char *argv[6] = {key, "0", "0", "0", "0", "600000"};
                    char aw[24], al[24], ac[24];
                    snprintf(aw, sizeof aw, "%" PRIu64, W);
                    snprintf(al, sizeof al, "%" PRIu64, L);
                    snprintf(ac, sizeof ac, "%" PRIu64, cost);
                    argv[1] = aw, argv[2] = al, argv[4] = ac;
                    cr_assert_eq(
                        rl__redis_evalsha(c, rl__lua_bucket_refund, NULL, 1, 6, argv, NULL, &r), 0,
                        "%s", rl_errmsg());
                    freeReplyObject(r);
                    rl_u128 back = (rl_u128)cost * W;
                    ref.zs = ref.zs > back ? ref.zs - back : 0;
                }
            } else if (!ok && want[2] >= 0) {
                /* never early: retry_after later the same request is admitted */
                denied++;
                redisReply *g = ok_cmd(c, true, "GET %s", key, NULL);
                char saved[64] = "0";
                if (g->type == REDIS_REPLY_STRING)
                    snprintf(saved, sizeof saved, "%s", g->str);
                freeReplyObject(g);
                r = bucket_call(c, bucket, key, W, L, C, cost, now + (uint64_t)want[2] * 1000u);
                cr_assert_eq(r->element[0]->integer, 1, "denied again retry_after later");
                freeReplyObject(r);
                ok_cmd(c, false, "SET %s %s", key, saved);
            }
        }
    }
    cr_expect_gt(denied, 100u, "few denials: the walk means little");
    fprintf(stderr, "strict bucket script: %u checks, %u retries replayed\n", checked, denied);
    free(bucket);
    rl__redis_close(c);
#undef SRND
}

/* GLOBAL's cluster bucket refills exactly (sync/global.lua, refill()): the function as embedded,
 * run by Redis' Lua on random inputs and compared with exact integer arithmetic here. */
extern const char rl__embed_global[];

Test(redis, global_refill_is_exact)
{
    struct rl_redis_url u = env_url("RL_TEST_REDIS_URL");
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    const char *a = strstr(rl__embed_global, "local function idiv(");
    const char *b = strstr(rl__embed_global, "local function need(");
    cr_assert(a && b && a < b, "global.lua defines idiv() and refill() before need()");
    static const char tail[] = "local r = {refill(tonumber(ARGV[1]), tonumber(ARGV[2]), "
                               "tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), "
                               "tonumber(ARGV[6]))}\n"
                               "return {string.format('%d', r[1]), string.format('%d', r[2])}\n";
    size_t n = (size_t)(b - a) + sizeof tail;
    char *src = malloc(n);
    cr_assert_not_null(src);
    snprintf(src, n, "%.*s%s", (int)(b - a), a, tail);
    uint64_t seed = 0x12345;
#define GRND() (seed = seed * 6364136223846793005ULL + 1442695040888963407ULL, seed >> 11)
    for (int i = 0; i < 3000; i++) {
        uint64_t L = 1 + GRND() % (i % 3 == 0 ? 10 : (i % 3 == 1 ? 1000000 : 100000000000ULL));
        uint64_t W = 1000 + GRND() % (i % 2 ? 1000000 : 3600000000ULL); /* window, us */
        int64_t cap = (int64_t)(GRND() % 100000), tk = cap - (int64_t)(GRND() % 5000) - 1;
        if ((rl_u128)(cap - tk) * W >= (1ULL << 52))
            continue; /* the exact range (beyond it: the double rate, documented) */
        uint64_t tr = GRND() % W;
        uint64_t el = GRND() % 8 == 0 ? 0 : GRND() % (4 * W + 1);
        char s[6][24];
        snprintf(s[0], sizeof s[0], "%" PRId64, tk);
        snprintf(s[1], sizeof s[1], "%" PRId64, cap);
        snprintf(s[2], sizeof s[2], "%" PRIu64, el);
        snprintf(s[3], sizeof s[3], "%" PRIu64, tr);
        snprintf(s[4], sizeof s[4], "%" PRIu64, L);
        snprintf(s[5], sizeof s[5], "%" PRIu64, W);
        const char *argv[6] = {s[0], s[1], s[2], s[3], s[4], s[5]};
        redisReply *r = NULL;
        cr_assert_eq(rl__redis_evalsha(c, src, NULL, 0, 6, argv, NULL, &r), 0, "%s", rl_errmsg());
        long long add = atoll(r->element[0]->str), ntr = atoll(r->element[1]->str);
        freeReplyObject(r);
        /* exact: (el x L + tr) / W whole tokens, the rest kept; all of the room at most, the
         * fraction thrown away with the rest */
        rl_u128 num = (rl_u128)el * L + tr, room = (rl_u128)(cap - tk);
        long long want_add = (long long)(num / W >= room ? room : num / W);
        long long want_tr = num / W >= room ? 0 : (long long)(num % W);
        cr_assert(add == want_add && ntr == want_tr,
                  "refill(tk %" PRId64 ", cap %" PRId64 ", el %" PRIu64 " us, tr %" PRIu64
                  ", %" PRIu64 " per %" PRIu64 " us) = %lld, %lld; exact %lld, %lld",
                  tk, cap, el, tr, L, W, add, ntr, want_add, want_tr);
    }
#undef GRND
    free(src);
    rl__redis_close(c);
}
