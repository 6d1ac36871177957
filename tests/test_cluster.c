/*
 * Redis Cluster (redis-cluster:// URLs, sync/conn.c) against the three-master cluster that
 * scripts/test starts (step redis-up: RL_TEST_CLUSTER_URL, _ADMIN_URL, _PORTS): the slot of a
 * key, routing to every master, CROSSSLOT, STRICT mode from four processes, -MOVED after a slot
 * is moved, -ASK during a migration (with NOSCRIPT on the importing node), lost node
 * connections, fork, the pool, credentials, and redirect loops and -TRYAGAIN from a fake node.
 *
 * The tests move slots and set migration states: they run one at a time (--jobs 1), the suite
 * alone (is_parallel: false), and the suite's .fini puts every slot a test touched back on its
 * first master (stable) and deletes the test's keys ("rl:test:{<pid>-...}...") on every node.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "rl_test.h"

/* Before main: without the cluster, skip the whole binary (exit 77: meson's "skipped"); under
 * scripts/test (RL_TEST_REDIS_REQUIRED) fail instead: the step redis-up failed. */
#define REDIS_ENV_GATE_VAR  "RL_TEST_CLUSTER_URL"
#define REDIS_ENV_GATE_WHAT "cluster"
#include "redis_env.h"

/* ---- the cluster as scripts/test describes it ---------------------------------------------- */

static struct rl_redis_url parse_env_url(const char *var)
{
    struct rl_redis_url u;
    int rc = rl__redis_url_parse(env_str(var), &u);
    cr_assert_eq(rc, 0, "%s: %s", var, rl_errmsg());
    return u;
}

static int g_ports[3];

static void load_ports(void)
{
    const char *s = env_str("RL_TEST_CLUSTER_PORTS");
    int n = sscanf(s, "%d %d %d", &g_ports[0], &g_ports[1], &g_ports[2]);
    cr_assert_eq(n, 3, "RL_TEST_CLUSTER_PORTS: '%s'", s);
}

/* rluser on the cluster (what rl uses). */
static struct rl_redis *cluster_conn(void)
{
    struct rl_redis_url u = parse_env_url("RL_TEST_CLUSTER_URL");
    return must_connect(&u, 1000, 1000);
}

/* The admin (user default) on one node, as a plain redis:// connection; NULL on failure. */
static struct rl_redis *admin_node(int port)
{
    struct rl_redis_url u;
    if (rl__redis_url_parse(getenv("RL_TEST_CLUSTER_ADMIN_URL"), &u) != 0)
        return NULL;
    u.kind = RL_REDIS_TCP;
    snprintf(u.hosts[0].host, sizeof u.hosts[0].host, "127.0.0.1");
    u.hosts[0].port = port;
    u.nhosts = 1;
    struct rl_redis *c = NULL;
    return rl__redis_connect(&u, 1000, 2000, &c) == 0 ? c : NULL;
}

static struct rl_redis *must_admin(int port)
{
    struct rl_redis *c = admin_node(port);
    cr_assert_not_null(c, "admin connection to 127.0.0.1:%d: %s", port, rl_errmsg());
    return c;
}

static char *where_of(char *buf, size_t n, int port)
{
    snprintf(buf, n, "127.0.0.1:%d", port);
    return buf;
}

/* A key "rl:test:{<pid>-<what>}<suffix>": the hash tag keeps a test's keys in one slot. */
static const char *tkey(char *buf, size_t n, const char *what, const char *suffix)
{
    snprintf(buf, n, "rl:test:{%ld-%s}%s", (long)getpid(), what, suffix);
    return buf;
}

static int slot_of(const char *key)
{
    return rl__redis_key_slot(key, strlen(key));
}

/* The port of the master of slot as node `port` sees it; 0 when unknown or on error. */
static int owner_seen_by(int port, int slot)
{
    struct rl_redis *a = admin_node(port);
    if (!a)
        return 0;
    redisReply *r = NULL;
    int owner = 0;
    if (rl__redis_cmd(a, &r, "CLUSTER SLOTS") == 0 && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_ARRAY && e->elements >= 3 &&
                e->element[0]->integer <= slot && slot <= e->element[1]->integer &&
                e->element[2]->type == REDIS_REPLY_ARRAY && e->element[2]->elements >= 2)
                owner = (int)e->element[2]->element[1]->integer;
        }
    }
    freeReplyObject(r);
    rl__redis_close(a);
    return owner;
}

static int owner_of(int slot)
{
    return owner_seen_by(g_ports[0], slot);
}

/* CLUSTER MYID of the node at port into id (41 bytes); false on error. */
static bool node_id(int port, char id[64])
{
    struct rl_redis *a = admin_node(port);
    if (!a)
        return false;
    redisReply *r = NULL;
    bool ok =
        rl__redis_cmd(a, &r, "CLUSTER MYID") == 0 && r->type == REDIS_REPLY_STRING && r->len < 64;
    if (ok)
        snprintf(id, 64, "%s", r->str);
    freeReplyObject(r);
    rl__redis_close(a);
    return ok;
}

/* An admin command on one node; 0 or the code. */
static int admin_cmd(int port, const char *fmt, const char *a1, const char *a2)
{
    struct rl_redis *a = admin_node(port);
    if (!a)
        return -ECONNREFUSED;
    int rc = rl__redis_cmd(a, NULL, fmt, a1, a2);
    rl__redis_close(a);
    return rc;
}

/* Moves slot from one master to another the way redis-cli --cluster reshard does: IMPORTING on
 * the target, MIGRATING on the source, MIGRATE every key, then SETSLOT NODE everywhere.
 * Returns 0, or a negative code with the step in rl_errmsg() (no assertion: .fini uses it). */
static int move_slot(int slot, int from, int to)
{
    char from_id[64], to_id[64], s[16], msg[512];
    if (!node_id(from, from_id) || !node_id(to, to_id))
        return rl__err(-EIO, "move_slot: CLUSTER MYID failed");
    snprintf(s, sizeof s, "%d", slot);
    int rc = admin_cmd(to, "CLUSTER SETSLOT %s IMPORTING %s", s, from_id);
    if (rc == 0)
        rc = admin_cmd(from, "CLUSTER SETSLOT %s MIGRATING %s", s, to_id);
    if (rc)
        return rc;
    struct rl_redis *src = admin_node(from);
    struct rl_redis_url au;
    if (!src || rl__redis_url_parse(getenv("RL_TEST_CLUSTER_ADMIN_URL"), &au) != 0) {
        rl__redis_close(src);
        return rl__err(-EIO, "move_slot: no admin connection");
    }
    for (int round = 0; round < 100 && rc == 0; round++) {
        redisReply *r = NULL;
        if ((rc = rl__redis_cmd(src, &r, "CLUSTER GETKEYSINSLOT %d 100", slot)) != 0)
            break;
        size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = rl__redis_cmd(src, NULL, "MIGRATE 127.0.0.1 %d %b 0 5000 REPLACE AUTH %s", to,
                               r->element[i]->str, r->element[i]->len, au.password);
        freeReplyObject(r);
        if (n == 0)
            break;
    }
    memset(au.password, 0, sizeof au.password);
    rl__redis_close(src);
    if (rc) {
        snprintf(msg, sizeof msg, "%s", rl_errmsg());
        return rl__err(rc, "move_slot: MIGRATE: %s", msg);
    }
    /* The target first, then the source, then the third master. */
    int order[3] = {to, from, 0};
    for (int i = 0; i < 3; i++)
        if (g_ports[i] != to && g_ports[i] != from)
            order[2] = g_ports[i];
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = admin_cmd(order[i], "CLUSTER SETSLOT %s NODE %s", s, to_id);
    return rc;
}

/* ---- the fixture: slots put back, keys deleted ---------------------------------------------- */

#define MAX_TOUCHED 8
static struct {
    int slot, owner;
} g_touched[MAX_TOUCHED];
static unsigned g_ntouched;

/* Remembers slot's master before a test moves it or sets a migration state on it. */
static int touch_slot(int slot)
{
    int owner = owner_of(slot);
    cr_assert_gt(owner, 0, "no master for slot %d", slot);
    cr_assert_lt(g_ntouched, MAX_TOUCHED);
    g_touched[g_ntouched].slot = slot;
    g_touched[g_ntouched].owner = owner;
    g_ntouched++;
    return owner;
}

/* Deletes "rl:test:{<pid>-*" keys on the node at port (ASKING first: a key a test wrote on an
 * importing node is reachable only so). */
static void delete_keys_on(int port)
{
    struct rl_redis *a = admin_node(port);
    if (!a)
        return;
    char pattern[64];
    snprintf(pattern, sizeof pattern, "rl:test:{%ld-*", (long)getpid());
    redis_env_delete_matching(a, pattern, true);
    rl__redis_close(a);
}

static void cluster_setup(void)
{
    load_ports();
    names_setup();
}

static void cluster_teardown(void)
{
    rl_close(&g_rl);
    rl_unlink(g_name);
    for (unsigned i = 0; i < g_ntracked; i++)
        rl_unlink(g_tracked[i]);
    g_ntracked = 0;
    for (int i = 0; i < 3; i++)
        delete_keys_on(g_ports[i]);
    /* Every touched slot stable again and on its first master. */
    for (unsigned t = g_ntouched; t-- > 0;) {
        char s[16];
        snprintf(s, sizeof s, "%d", g_touched[t].slot);
        for (int i = 0; i < 3; i++)
            admin_cmd(g_ports[i], "CLUSTER SETSLOT %s STABLE", s, NULL);
        int now = owner_of(g_touched[t].slot);
        if (now > 0 && now != g_touched[t].owner &&
            move_slot(g_touched[t].slot, now, g_touched[t].owner) != 0)
            fprintf(stderr, "cluster tests: slot %d not moved back to :%d: %s\n", g_touched[t].slot,
                    g_touched[t].owner, rl_errmsg());
    }
    g_ntouched = 0;
}

TestSuite(cluster, .init = cluster_setup, .fini = cluster_teardown);

/* ---- helpers on rl's connection -------------------------------------------------------------- */

static void ok_cmd(struct rl_redis *c, const char *fmt, const char *a, const char *b)
{
    int rc = rl__redis_cmd(c, NULL, fmt, a, b);
    cr_assert_eq(rc, 0, "'%s' via %s: %d: %s", fmt, rl__redis_where(c), rc, rl_errmsg());
}

static void expect_get(struct rl_redis *c, const char *key, const char *want)
{
    redisReply *r = NULL;
    int rc = rl__redis_cmd(c, &r, "GET %s", key);
    cr_assert_eq(rc, 0, "GET %s via %s: %d: %s", key, rl__redis_where(c), rc, rl_errmsg());
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "GET %s: reply type %d", key, r->type);
    cr_expect_str_eq(r->str, want, "GET %s", key);
    freeReplyObject(r);
}

static const char incr_script[] = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

static long long incr(struct rl_redis *c, const char *key, const char *by)
{
    const char *argv[2] = {key, by};
    redisReply *r = NULL;
    int rc = rl__redis_evalsha(c, incr_script, NULL, 1, 2, argv, NULL, &r);
    cr_assert_eq(rc, 0, "evalsha on %s via %s: %d: %s", key, rl__redis_where(c), rc, rl_errmsg());
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* A key of this test whose slot the master at port serves: "rl:test:{<pid>-<what>N}<suffix>". */
static void key_on(int port, const char *what, char *buf, size_t n)
{
    for (int i = 0; i < 10000; i++) {
        char w[64];
        snprintf(w, sizeof w, "%s%d", what, i);
        tkey(buf, n, w, ":k");
        if (owner_of(slot_of(buf)) == port)
            return;
    }
    cr_assert_fail("no key for the master at :%d", port);
}

/* ---- slots and routing ------------------------------------------------------------------------
 */

Test(cluster, key_slot_follows_the_spec_and_the_server)
{
    /* The spec's examples: CRC16("123456789") = 0x31C3; hash tags. */
    cr_expect_eq(rl__redis_key_slot("123456789", 9), 0x31C3);
    cr_expect_eq(slot_of("foo"), 12182);
    cr_expect_eq(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    cr_expect_eq(slot_of("{user1000}.following"), slot_of("user1000"));
    cr_expect_eq(slot_of("foo{}{bar}"), rl__redis_key_slot("foo{}{bar}", 10)); /* whole key */
    cr_expect_neq(slot_of("foo{}{bar}"), slot_of("bar"));
    cr_expect_eq(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    cr_expect_eq(slot_of("foo{bar}{zap}"), slot_of("bar"));
    cr_expect_eq(rl__redis_key_slot("", 0), 0);
    cr_expect_eq(rl__redis_key_slot(NULL, 0), 0);
    cr_expect_eq(rl__redis_key_slot(NULL, 1), -EINVAL);

    /* The server agrees on keys of every shape rl uses. */
    struct rl_redis *a = must_admin(g_ports[0]);
    const char *keys[] = {"rl:{0123456789abcdef}",
                          "rl:{0123456789abcdef}:log",
                          "rl:g:{7f}:x",
                          "a",
                          "{",
                          "}",
                          "{}",
                          "x{y}z",
                          "\xff\xfe{\x01}"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        redisReply *r = NULL;
        cr_assert_eq(rl__redis_cmd(a, &r, "CLUSTER KEYSLOT %s", keys[i]), 0, "%s", rl_errmsg());
        cr_expect_eq(r->integer, slot_of(keys[i]), "key %zu", i);
        freeReplyObject(r);
    }
    rl__redis_close(a);
}

Test(cluster, routes_to_every_master)
{
    struct rl_redis *c = cluster_conn();
    for (int i = 0; i < 3; i++) {
        char key[96], where[64], val[32];
        key_on(g_ports[i], "route", key, sizeof key);
        snprintf(val, sizeof val, "v%d", i);
        ok_cmd(c, "SET %s %s", key, val);
        cr_expect_str_eq(rl__redis_where(c), where_of(where, sizeof where, g_ports[i]));
        expect_get(c, key, val);
        /* Stored on that master itself. */
        struct rl_redis *a = must_admin(g_ports[i]);
        expect_get(a, key, val);
        rl__redis_close(a);
        /* A script on a key of that master (SCRIPT LOAD there on first use). */
        char ckey[112];
        snprintf(ckey, sizeof ckey, "%s:n", key);
        cr_expect_eq(incr(c, ckey, "2"), 2);
        cr_expect_eq(incr(c, ckey, "3"), 5);
        cr_expect_str_eq(rl__redis_where(c), where);
        /* The keyed variant, and commands without a key. */
        redisReply *r = NULL;
        cr_assert_eq(rl__redis_cmd_key(c, key, strlen(key), &r, "GET %s", key), 0, "%s",
                     rl_errmsg());
        cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, val) == 0);
        freeReplyObject(r);
        ok_cmd(c, "PING", NULL, NULL);
        ok_cmd(c, "INFO %s", "server", NULL);
    }
    cr_expect(rl__redis_connected(c));
    rl__redis_close(c);
}

Test(cluster, crossslot_is_refused_before_sending)
{
    struct rl_redis *c = cluster_conn();
    char k1[96], k2[96];
    key_on(g_ports[0], "x1", k1, sizeof k1);
    key_on(g_ports[1], "x2", k2, sizeof k2);
    const char *argv[3] = {k1, k2, "1"};
    redisReply *r = NULL;
    int rc = rl__redis_evalsha(c, incr_script, NULL, 2, 3, argv, NULL, &r);
    cr_expect_eq(rc, -EINVAL, "%d: %s", rc, rl_errmsg());
    cr_expect_null(r);
    const char *m = rl_errmsg();
    cr_expect(strstr(m, "CROSSSLOT") && strstr(m, "hash tag") && strstr(m, "nothing was sent"),
              "%s", m);
    char s1[16], s2[16];
    snprintf(s1, sizeof s1, "slot %d", slot_of(k1));
    snprintf(s2, sizeof s2, "slot %d", slot_of(k2));
    cr_expect(strstr(m, s1) && strstr(m, s2), "%s", m);

    /* Two keys with one hash tag share a slot: accepted. */
    char t1[96], t2[96];
    tkey(t1, sizeof t1, "same", ":a");
    tkey(t2, sizeof t2, "same", ":b");
    const char *ok[3] = {t1, t2, "1"};
    rc = rl__redis_evalsha(c, incr_script, NULL, 2, 3, ok, NULL, &r);
    cr_expect_eq(rc, 0, "%d: %s", rc, rl_errmsg());
    freeReplyObject(r);

    /* A multi-key command across slots: the server's CROSSSLOT, as -EINVAL too. */
    rc = rl__redis_cmd(c, NULL, "DEL %s %s", k1, k2);
    cr_expect_eq(rc, -EINVAL, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "CROSSSLOT") != NULL, "%s", rl_errmsg());
    /* The connection is still fine. */
    ok_cmd(c, "SET %s %s", k1, "fine");
    expect_get(c, k1, "fine");
    rl__redis_close(c);
}

/* ---- STRICT mode over the cluster (public API) -------------------------------------------- */

static rl_t *open_cluster_rl(const char *name)
{
    rl_options o;
    rl_options_init(&o);
    o.shm_name = name;
    o.capacity = 4096;
    o.redis_url = env_str("RL_TEST_CLUSTER_URL");
    o.fallback = RL_FALLBACK_CLOSED;
    o.redis_command_timeout_ms = 500;
    rl_t *rl = NULL;
    int rc = rl_open(&rl, &o);
    cr_assert_eq(rc, 0, "rl_open with a cluster URL: %d %s", rc, rl_errmsg());
    return rl;
}

static rl_limit strict_limit(rl_algorithm a, uint64_t requests, uint64_t window_ms)
{
    rl_limit l = mk_limit(a, requests, window_ms, 0);
    l.mode = RL_MODE_STRICT;
    l.redis_ttl_ms = 60000; /* the Redis keys go away soon after the suite */
    return l;
}

Test(cluster, strict_exact_from_four_processes)
{
    /* The segment is made here, then closed: no thread of this process (the sync thread) may
     * hold an allocator lock when it forks (ASan's allocator is not fork-safe). */
    g_rl = open_cluster_rl(g_name);
    rl_close(&g_rl);
    char key[64];
    snprintf(key, sizeof key, "cluster-%ld-procs", (long)getpid());
    rl_limit l = strict_limit(RL_TOKEN_BUCKET, 50, MS_HOUR);
    _Atomic unsigned *allowed =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(allowed, MAP_FAILED);
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        cr_assert_geq(kids[i], 0);
        if (kids[i] == 0) {
            rl_t *rl = open_cluster_rl(g_name);
            for (int n = 0; n < 40; n++) {
                rl_result r;
                if (rl_acquire(rl, key, strlen(key), &l, 1, &r) != 0) {
                    fprintf(stderr, "child %d: %s\n", i, rl_errmsg());
                    _exit(2);
                }
                if (r.allowed)
                    atomic_fetch_add(allowed, 1);
            }
            rl_health_info h;
            int bad = rl_health(rl, &h) != 0 || h.strict_fallbacks != 0 || !h.connected;
            rl_close(&rl);
            _exit(bad ? 3 : 0);
        }
    }
    for (int i = 0; i < 4; i++) {
        int st = 0;
        waitpid(kids[i], &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d status %d", i, st);
    }
    cr_expect_eq(atomic_load(allowed), 50, "160 tries against 50: exactly 50 admitted, got %u",
                 atomic_load(allowed));
    munmap((void *)allowed, 4096);
}

Test(cluster, strict_every_algorithm)
{
    g_rl = open_cluster_rl(g_name);
    static const struct {
        rl_algorithm a;
        uint64_t requests;
    } cases[] = {{RL_TOKEN_BUCKET, 5}, {RL_GCRA, 5}, {RL_FIXED_WINDOW, 7}, {RL_SLIDING_WINDOW, 6}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char key[64];
        snprintf(key, sizeof key, "cluster-%ld-%s", (long)getpid(), algo_name(cases[c].a));
        rl_limit l = strict_limit(cases[c].a, cases[c].requests, MS_HOUR);
        unsigned ok = 0;
        for (int i = 0; i < 12; i++) {
            rl_result r;
            cr_assert_eq(rl_acquire(g_rl, key, strlen(key), &l, 1, &r), 0, "%s", rl_errmsg());
            ok += r.allowed;
        }
        cr_expect_eq(ok, cases[c].requests, "%s: %u admitted", algo_name(cases[c].a), ok);
    }
    rl_health_info h;
    cr_assert_eq(rl_health(g_rl, &h), 0);
    cr_expect(h.connected && h.strict_fallbacks == 0, "%s", h.error);
}

/* ---- redirects ------------------------------------------------------------------------------ */

Test(cluster, moved_is_followed)
{
    struct rl_redis *c = cluster_conn();
    char key[96], n[96], where[64];
    tkey(key, sizeof key, "moved", ":k");
    tkey(n, sizeof n, "moved", ":n");
    int slot = slot_of(key);
    int from = touch_slot(slot), to = from == g_ports[0] ? g_ports[1] : g_ports[0];
    ok_cmd(c, "SET %s %s", key, "before");
    cr_expect_eq(incr(c, n, "1"), 1);
    cr_expect_str_eq(rl__redis_where(c), where_of(where, sizeof where, from));

    cr_assert_eq(move_slot(slot, from, to), 0, "%s", rl_errmsg());
    cr_assert_eq(owner_of(slot), to);
    /* The same connection: -MOVED from the old master, then the new one answers. */
    expect_get(c, key, "before");
    cr_expect_str_eq(rl__redis_where(c), where_of(where, sizeof where, to));
    cr_expect_eq(incr(c, n, "1"), 2);
    ok_cmd(c, "SET %s %s", key, "after");
    cr_expect_str_eq(rl__redis_where(c), where);

    /* And back. */
    cr_assert_eq(move_slot(slot, to, from), 0, "%s", rl_errmsg());
    expect_get(c, key, "after");
    cr_expect_str_eq(rl__redis_where(c), where_of(where, sizeof where, from));
    cr_expect_eq(incr(c, n, "1"), 3);
    rl__redis_close(c);
}

Test(cluster, ask_is_followed_during_a_migration)
{
    struct rl_redis *c = cluster_conn();
    char key[96], n[96], old[96], other[96], where[64], s[16], from_id[64], to_id[64];
    tkey(key, sizeof key, "ask", ":k");
    tkey(n, sizeof n, "ask", ":n");
    tkey(old, sizeof old, "ask", ":old");
    int slot = slot_of(key);
    int from = touch_slot(slot), to = from == g_ports[0] ? g_ports[1] : g_ports[0];
    snprintf(s, sizeof s, "%d", slot);
    cr_assert(node_id(from, from_id) && node_id(to, to_id));
    /* A key on the source before the migration starts; the script known to the connection
     * (loaded on another master) but not on the target. */
    ok_cmd(c, "SET %s %s", old, "source");
    key_on(to, "ask-other", other, sizeof other);
    cr_expect_eq(incr(c, other, "1"), 1);
    struct rl_redis *at = must_admin(to);
    ok_cmd(at, "SCRIPT FLUSH", NULL, NULL);

    ok_cmd(at, "CLUSTER SETSLOT %s IMPORTING %s", s, from_id);
    struct rl_redis *af = must_admin(from);
    ok_cmd(af, "CLUSTER SETSLOT %s MIGRATING %s", s, to_id);

    /* Keys missing on the source: -ASK, then ASKING + the command on the target. */
    ok_cmd(c, "SET %s %s", key, "target");
    cr_expect_str_eq(rl__redis_where(c), where_of(where, sizeof where, to));
    expect_get(c, key, "target");
    /* EVALSHA: -ASK, NOSCRIPT on the target (loaded there), -ASK again, then it runs. */
    cr_expect_eq(incr(c, n, "7"), 7);
    cr_expect_str_eq(rl__redis_where(c), where);
    /* The map did not change: a key still on the source is answered there, without -MOVED. */
    expect_get(c, old, "source");
    cr_expect_str_eq(rl__redis_where(c), where_of(where, sizeof where, from));

    /* The keys are on the target (readable there after ASKING only). */
    ok_cmd(at, "ASKING", NULL, NULL);
    expect_get(at, key, "target");
    ok_cmd(at, "ASKING", NULL, NULL);
    expect_get(at, n, "7");

    /* Clean up: the target's keys, then both nodes stable. */
    ok_cmd(at, "ASKING", NULL, NULL);
    ok_cmd(at, "DEL %s", key, NULL);
    ok_cmd(at, "ASKING", NULL, NULL);
    ok_cmd(at, "DEL %s", n, NULL);
    ok_cmd(at, "CLUSTER SETSLOT %s STABLE", s, NULL);
    ok_cmd(af, "CLUSTER SETSLOT %s STABLE", s, NULL);
    rl__redis_close(at);
    rl__redis_close(af);
    expect_get(c, old, "source");
    rl__redis_close(c);
}

/* ---- failures ------------------------------------------------------------------------------ */

Test(cluster, a_lost_node_connection_reconnects)
{
    struct rl_redis *c = cluster_conn();
    char keys[3][96];
    for (int i = 0; i < 3; i++) {
        key_on(g_ports[i], "lost", keys[i], sizeof keys[i]);
        ok_cmd(c, "SET %s %s", keys[i], "x");
    }
    /* One master closes its rluser connections: that node's next call fails, the others are
     * not disturbed. */
    cr_assert_eq(admin_cmd(g_ports[1], "CLIENT KILL USER %s", "rluser", NULL), 0, "%s",
                 rl_errmsg());
    expect_get(c, keys[0], "x");
    int rc = rl__redis_cmd(c, NULL, "GET %s", keys[1]);
    cr_expect_eq(rc, -ECONNRESET, "%d: %s", rc, rl_errmsg());
    char where[64];
    cr_expect(strstr(rl_errmsg(), where_of(where, sizeof where, g_ports[1])) != NULL, "%s",
              rl_errmsg());
    /* The next calls reconnect (the map refreshed on the way). */
    for (int i = 0; i < 3; i++)
        expect_get(c, keys[i], "x");
    rl__redis_close(c);
}

Test(cluster, wrong_password_is_eacces_without_the_password)
{
    struct rl_redis_url u = parse_env_url("RL_TEST_CLUSTER_URL");
    expect_wrong_password_refused(&u); /* the first seed refuses */

    /* Through the public API: the STRICT check falls back, rl_health says why, no password. */
    char url[1024];
    snprintf(url, sizeof url, "redis-cluster://rluser:wr0ng-s3cret@127.0.0.1:%d", g_ports[0]);
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.capacity = 4096;
    o.redis_url = url;
    o.fallback = RL_FALLBACK_CLOSED;
    cr_assert_eq(rl_open(&g_rl, &o), 0, "%s", rl_errmsg());
    rl_limit l = strict_limit(RL_TOKEN_BUCKET, 5, MS_HOUR);
    rl_result r;
    cr_assert_eq(rl_acquire(g_rl, "k", 1, &l, 1, &r), 0, "%s", rl_errmsg());
    cr_expect(!r.allowed, "CLOSED fallback");
    rl_health_info h;
    cr_assert_eq(rl_health(g_rl, &h), 0);
    cr_expect(!h.connected);
    cr_expect(strstr(h.error, "authentication failed") != NULL, "%s", h.error);
    cr_expect(strstr(h.error, "s3cret") == NULL, "password leaked: %s", h.error);
}

Test(cluster, seeds_are_tried_in_turn)
{
    struct rl_redis_url u = parse_env_url("RL_TEST_CLUSTER_URL");
    /* A dead seed first. */
    memmove(&u.hosts[1], &u.hosts[0], u.nhosts * sizeof u.hosts[0]);
    u.hosts[0].port = closed_port();
    u.nhosts++;
    struct rl_redis *c = must_connect(&u, 1000, 1000);
    char key[96];
    key_on(g_ports[2], "seeds", key, sizeof key);
    ok_cmd(c, "SET %s %s", key, "y");
    expect_get(c, key, "y");
    rl__redis_close(c);

    /* Only dead seeds: refused, named; several: the last one's error, and how many. */
    char where[64];
    where_of(where, sizeof where, u.hosts[0].port);
    u.nhosts = 1;
    c = NULL;
    int rc = rl__redis_connect(&u, 300, 300, &c);
    cr_expect_eq(rc, -ECONNREFUSED, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), where) && strstr(rl_errmsg(), "refused"), "%s", rl_errmsg());
    cr_expect_null(c);
    u.hosts[1] = u.hosts[0];
    u.hosts[1].port = closed_port();
    u.nhosts = 2;
    rc = rl__redis_connect(&u, 300, 300, &c);
    cr_expect_eq(rc, -ECONNREFUSED, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "no node answered CLUSTER SLOTS (2 asked)") != NULL, "%s",
              rl_errmsg());
    cr_expect_null(c);
}

Test(cluster, misuse_is_named)
{
    /* A standalone server as a seed. */
    struct rl_redis_url s;
    cr_assert_eq(rl__redis_url_parse(env_str("RL_TEST_REDIS_ADMIN_URL"), &s), 0);
    s.kind = RL_REDIS_CLUSTER;
    s.db = 0;
    struct rl_redis *c = NULL;
    int rc = rl__redis_connect(&s, 1000, 1000, &c);
    cr_expect_eq(rc, -EINVAL, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "not a cluster node") != NULL, "%s", rl_errmsg());

    /* A db in a cluster URL (rl__redis_url_parse refuses it too). */
    struct rl_redis_url u = parse_env_url("RL_TEST_CLUSTER_URL");
    u.db = 1;
    rc = rl__redis_new(&u, 0, 0, &c);
    cr_expect_eq(rc, -EINVAL, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "db 0 only") != NULL, "%s", rl_errmsg());

    /* Pipelining is refused on a cluster connection. */
    u.db = 0;
    c = must_connect(&u, 1000, 1000);
    cr_expect_eq(rl__redis_append(c, "PING"), -ENOTSUP);
    cr_expect(strstr(rl_errmsg(), "pipelining") != NULL, "%s", rl_errmsg());
    cr_expect_eq(rl__redis_get_reply(c, NULL), -ENOTSUP);
    ok_cmd(c, "PING", NULL, NULL);
    rl__redis_close(c);

    /* A cluster node behind a redis:// URL: the redirect is explained. */
    char key[96];
    key_on(g_ports[1], "plain", key, sizeof key);
    u.kind = RL_REDIS_TCP;
    u.hosts[0].port = g_ports[0];
    u.nhosts = 1;
    c = must_connect(&u, 1000, 1000);
    rc = rl__redis_cmd(c, NULL, "GET %s", key);
    cr_expect_eq(rc, -EIO, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "MOVED") && strstr(rl_errmsg(), "redis-cluster://"), "%s",
              rl_errmsg());
    rl__redis_close(c);
}

/* ---- fork and the pool ------------------------------------------------------------------- */

Test(cluster, fork_child_uses_its_own_sockets)
{
    struct rl_redis *c = cluster_conn();
    char keys[3][96];
    for (int i = 0; i < 3; i++) {
        key_on(g_ports[i], "fork", keys[i], sizeof keys[i]);
        cr_expect_eq(incr(c, keys[i], "1"), 1);
    }
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* The inherited connection: every node reconnects, the parent's streams untouched. */
        int bad = 0;
        for (int i = 0; i < 3; i++) {
            const char *argv[2] = {keys[i], "10"};
            redisReply *r = NULL;
            if (rl__redis_evalsha(c, incr_script, NULL, 1, 2, argv, NULL, &r) != 0 ||
                r->integer != 11)
                bad |= 1 << i;
            freeReplyObject(r);
        }
        _exit(bad);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(incr(c, keys[i], "1"), 12, "key %d", i);
    rl__redis_close(c);
}

/* A pool_job's call (redis_env.h): the script adds 1 to the key. */
static int incr_one_by_script(struct rl_redis *c, const char *key)
{
    const char *argv[2] = {key, "1"};
    return rl__redis_evalsha(c, incr_script, NULL, 1, 2, argv, NULL, NULL);
}

Test(cluster, pool_of_cluster_connections)
{
    struct rl_redis_url u = parse_env_url("RL_TEST_CLUSTER_URL");
    struct rl_redis_pool *p = NULL;
    cr_assert_eq(rl__pool_open(&u, 3, 1000, 1000, &p), 0, "%s", rl_errmsg());
    static struct pool_job job;
    job.pool = p;
    job.call = incr_one_by_script;
    job.nkeys = 3;
    job.calls = 60;
    for (int i = 0; i < 3; i++)
        key_on(g_ports[i], "pool", job.keys[i], sizeof job.keys[i]);
    pool_run(&job, 4);
    cr_expect_eq(atomic_load(&job.errors), 0);
    struct rl_pool_stats st;
    rl__pool_stats(p, &st);
    cr_expect(st.idle == 3 && st.connected >= 1 && !st.breaker_open, "idle %u connected %u",
              st.idle, st.connected);
    struct rl_redis *c = NULL;
    cr_assert_eq(rl__pool_get(p, &c), 0);
    for (int i = 0; i < 3; i++)
        expect_get(c, job.keys[i], "80");
    rl__pool_put(p, c);
    rl__pool_close(p);
}

/* ---- a fake node: redirect loops and TRYAGAIN -------------------------------------------- */

enum fake_mode { FAKE_MOVED, FAKE_ASK, FAKE_TRYAGAIN };

struct fake {
    int lfd, port;
    enum fake_mode mode;
    _Atomic unsigned commands; /* answered with the mode's error */
    _Atomic unsigned asking;
    _Atomic bool stop;
    pthread_t thread;
};

/* One complete RESP array at buf[0..n): its length, its first word in name (upper-cased, at
 * most 15 bytes), or 0 when incomplete. */
static size_t resp_command(const char *buf, size_t n, char name[16])
{
    if (n < 4 || buf[0] != '*')
        return 0;
    size_t i = 1, count = 0;
    while (i < n && buf[i] >= '0' && buf[i] <= '9')
        count = count * 10 + (size_t)(buf[i++] - '0');
    if (i + 1 >= n || buf[i] != '\r')
        return 0;
    i += 2;
    name[0] = '\0';
    for (size_t w = 0; w < count; w++) {
        if (i >= n || buf[i] != '$')
            return 0;
        size_t len = 0;
        i++;
        while (i < n && buf[i] >= '0' && buf[i] <= '9')
            len = len * 10 + (size_t)(buf[i++] - '0');
        if (i + 2 + len + 2 > n)
            return 0;
        i += 2;
        if (w == 0) {
            size_t m = len < 15 ? len : 15;
            for (size_t k = 0; k < m; k++)
                name[k] =
                    (char)(buf[i + k] >= 'a' && buf[i + k] <= 'z' ? buf[i + k] - 32 : buf[i + k]);
            name[m] = '\0';
        }
        i += len + 2;
    }
    return i;
}

static void fake_answer(struct fake *f, int fd, const char *name)
{
    char out[256];
    if (strcmp(name, "PING") == 0) {
        snprintf(out, sizeof out, "+PONG\r\n");
    } else if (strcmp(name, "CLUSTER") == 0) {
        snprintf(out, sizeof out, "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n",
                 f->port);
    } else if (strcmp(name, "ASKING") == 0) {
        atomic_fetch_add(&f->asking, 1);
        snprintf(out, sizeof out, "+OK\r\n");
    } else {
        atomic_fetch_add(&f->commands, 1);
        if (f->mode == FAKE_MOVED)
            snprintf(out, sizeof out, "-MOVED 1 127.0.0.1:%d\r\n", f->port);
        else if (f->mode == FAKE_ASK)
            snprintf(out, sizeof out, "-ASK 1 :%d\r\n", f->port); /* empty host: this node */
        else
            snprintf(out, sizeof out, "-TRYAGAIN Multiple keys request during rehashing\r\n");
    }
    size_t len = strlen(out);
    if (write(fd, out, len) != (ssize_t)len)
        fprintf(stderr, "fake node: short write\n");
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        char buf[4096];
        size_t got = 0;
        while (!atomic_load(&f->stop)) {
            struct pollfd q = {.fd = fd, .events = POLLIN};
            if (poll(&q, 1, 50) <= 0)
                continue;
            ssize_t n = read(fd, buf + got, sizeof buf - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            char name[16];
            size_t used;
            while ((used = resp_command(buf, got, name)) > 0) {
                fake_answer(f, fd, name);
                memmove(buf, buf + used, got - used);
                got -= used;
            }
            if (got == sizeof buf)
                break;
        }
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f, enum fake_mode mode)
{
    memset(f, 0, sizeof *f);
    f->mode = mode;
    struct sockaddr_in a;
    f->lfd = loopback_listener(4, &a);
    f->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

static struct rl_redis *fake_conn(const struct fake *f)
{
    struct rl_redis_url u = local_url(f->port);
    u.kind = RL_REDIS_CLUSTER;
    return must_connect(&u, 1000, 1000);
}

Test(cluster, redirect_loops_are_bounded)
{
    static struct fake f;
    for (int mode = FAKE_MOVED; mode <= FAKE_ASK; mode++) {
        fake_start(&f, (enum fake_mode)mode);
        struct rl_redis *c = fake_conn(&f);
        int rc = rl__redis_cmd(c, NULL, "GET %s", "rl:loop");
        const char *m = rl_errmsg();
        cr_expect_eq(rc, -EIO, "%d: %s", rc, m);
        cr_expect(strstr(m, "more than 5 redirects") != NULL, "%s", m);
        cr_expect(strstr(m, mode == FAKE_MOVED ? "MOVED 1" : "ASK 1") != NULL, "%s", m);
        cr_expect_eq(atomic_load(&f.commands), 6, "sent %u times", atomic_load(&f.commands));
        if (mode == FAKE_ASK)
            cr_expect_eq(atomic_load(&f.asking), 5);
        rl__redis_close(c);
        fake_stop(&f);
    }
}

Test(cluster, tryagain_is_retried_once)
{
    static struct fake f;
    fake_start(&f, FAKE_TRYAGAIN);
    struct rl_redis *c = fake_conn(&f);
    uint64_t t0 = rl__mono_ns();
    int rc = rl__redis_cmd(c, NULL, "GET %s", "rl:busy");
    uint64_t ms = elapsed_ms(t0);
    cr_expect_eq(rc, -EIO, "%d: %s", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "TRYAGAIN") != NULL, "%s", rl_errmsg());
    cr_expect_eq(atomic_load(&f.commands), 2, "sent %u times", atomic_load(&f.commands));
    cr_expect(ms >= RL_CLUSTER_TRYAGAIN_MS, "retried after %" PRIu64 " ms", ms);
    rl__redis_close(c);
    fake_stop(&f);
}

/* Monitoring rollups through a Redis Cluster: the leader's push (a script whose two keys share
 * the minute's hash tag) and rl_stats_cluster's reads (one at a time: a cluster connection does
 * not pipeline) find each other. */
Test(cluster, monitoring_rollups_over_the_cluster)
{
    char yaml[256], pattern[64];
    snprintf(pattern, sizeof pattern, "/mon-%ld/*", (long)getpid());
    snprintf(yaml, sizeof yaml,
             "version: 1\nendpoints:\n  - pattern: \"%s\"\n"
             "    limits: [{requests: 3, window: 1h, algorithm: fixed_window}]\n",
             pattern);
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.capacity = 4096;
    o.redis_url = env_str("RL_TEST_CLUSTER_URL");
    o.monitoring = 1;
    o.sync_interval_ms = 50;
    cr_assert_eq(rl_open(&g_rl, &o), 0, "%s", rl_errmsg());
    char path[128];
    snprintf(path, sizeof path, "/tmp/rl-mon-%ld.yaml", (long)getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(yaml, f);
    fclose(f);
    int rc = rl_load_config(g_rl, path);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", rl_errmsg());
    rl_health_info h;
    for (int i = 0; i < 300 && (rl_health(g_rl, &h), !h.sync_leader_here || !h.sync_rounds); i++)
        usleep(10000);
    cr_assert(h.sync_leader_here, "this handle leads the sync");
    char req_path[80];
    snprintf(req_path, sizeof req_path, "/mon-%ld/x", (long)getpid());
    rl_request req = {.method = "GET", .path = req_path, .ip = "192.0.2.7"};
    unsigned allowed = 0;
    for (int i = 0; i < 10; i++) {
        rl_decision d;
        cr_assert_eq(rl_check(g_rl, &req, &d), 0, "%s", rl_errmsg());
        allowed += d.allowed;
    }
    cr_assert_eq(allowed, 3);
    rl_close(&g_rl); /* the leader pushes what it counted when it closes */
    o.flags = RL_OPEN_NO_SYNC;
    cr_assert_eq(rl_open(&g_rl, &o), 0, "%s", rl_errmsg());
    rl_endpoint_stats e[64];
    unsigned hosts = 0;
    int n = rl_stats_cluster(g_rl, 2, e, 64, &hosts);
    cr_assert_geq(n, 1, "%d: %s", n, rl_errmsg());
    const rl_endpoint_stats *mine = NULL;
    for (int i = 0; i < n && i < 64; i++)
        if (strcmp(e[i].endpoint, pattern) == 0)
            mine = &e[i];
    cr_assert(mine, "no %s among %d endpoints", pattern, n);
    cr_expect_eq(mine->allowed, 3);
    cr_expect_eq(mine->denied, 7);
    cr_expect_geq(hosts, 1);
}
