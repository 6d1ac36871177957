/*
 * Redis URLs (sync/url.c): rl__redis_url_parse and rl__redis_url_redact. Hermetic: no segment,
 * no network.
 *
 * Every expected value below is worked out by hand from the grammar in sync/url.h and the
 * decisions in the header comment of sync/url.c (userinfo split at the first ':' and running to
 * the last '@'; positions counted from 1; -ENAMETOOLONG only for a part longer than its field),
 * never read off the parser. Tables check every field of every row and name the row that fails.
 */
#include "rl_test.h"

#include "internal.h"
#include "url.h"

TestSuite(url);

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define SECRET  "s3cr3t-P4ss"
#define TLS_MSG                                                                                    \
    "TLS is not supported by this build (rediss://...); use redis:// on a trusted network or a "   \
    "TLS proxy"
#define TCP      RL_REDIS_TCP
#define UNIX     RL_REDIS_UNIX
#define SENTINEL RL_REDIS_SENTINEL
#define CLUSTER  RL_REDIS_CLUSTER

/* True when every byte of the struct is zero (what a failed parse leaves). */
static bool all_zero(const struct rl_redis_url *u)
{
    const unsigned char *b = (const unsigned char *)u;
    for (size_t i = 0; i < sizeof *u; i++)
        if (b[i])
            return false;
    return true;
}

/* Parses url into *u after filling it with garbage; returns the code. */
static int parse(const char *url, struct rl_redis_url *u)
{
    memset(u, 0xa5, sizeof *u);
    rl__err(0, "%s", "");
    return rl__redis_url_parse(url, u);
}

/* ---- good URLs: every field ----------------------------------------------------------------- */

struct good_row {
    const char *url;
    enum rl_redis_kind kind;
    size_t nhosts;
    struct {
        const char *host;
        int port;
    } h[3];
    const char *path, *master;
    int db;
    const char *user, *password;
};

/* clang-format off */
static const struct good_row good_rows[] = {
    /* redis:// */
    {"redis://localhost", TCP, 1, {{"localhost", 6379}}, "", "", 0, "", ""},
    {"redis://localhost:6380", TCP, 1, {{"localhost", 6380}}, "", "", 0, "", ""},
    {"redis://h:1/3", TCP, 1, {{"h", 1}}, "", "", 3, "", ""},
    {"redis://h:65535/0", TCP, 1, {{"h", 65535}}, "", "", 0, "", ""},
    {"redis://h/", TCP, 1, {{"h", 6379}}, "", "", 0, "", ""},
    {"redis://h/12", TCP, 1, {{"h", 6379}}, "", "", 12, "", ""},
    {"redis://h/1048576", TCP, 1, {{"h", 6379}}, "", "", 1048576, "", ""},
    {"redis://h:06380/007", TCP, 1, {{"h", 6380}}, "", "", 7, "", ""},   /* leading zeros */
    {"REDIS://Cache.Example.COM:7000", TCP, 1, {{"Cache.Example.COM", 7000}}, "", "", 0, "", ""},
    {"Redis://my_host-1.internal", TCP, 1, {{"my_host-1.internal", 6379}}, "", "", 0, "", ""},
    {"redis://10.1.2.3:6379/2", TCP, 1, {{"10.1.2.3", 6379}}, "", "", 2, "", ""},
    {"redis://[::1]", TCP, 1, {{"::1", 6379}}, "", "", 0, "", ""},
    {"redis://[::1]:6380", TCP, 1, {{"::1", 6380}}, "", "", 0, "", ""},
    {"redis://[2001:DB8::a]:7000/5", TCP, 1, {{"2001:DB8::a", 7000}}, "", "", 5, "", ""},
    {"redis://[::ffff:10.0.0.1]/1", TCP, 1, {{"::ffff:10.0.0.1", 6379}}, "", "", 1, "", ""},
    /* userinfo */
    {"redis://:pw@h", TCP, 1, {{"h", 6379}}, "", "", 0, "", "pw"},
    {"redis://user:pw@h:1/2", TCP, 1, {{"h", 1}}, "", "", 2, "user", "pw"},
    {"redis://user@h", TCP, 1, {{"h", 6379}}, "", "", 0, "user", ""},
    {"redis://user:@h", TCP, 1, {{"h", 6379}}, "", "", 0, "user", ""},
    {"redis://@h", TCP, 1, {{"h", 6379}}, "", "", 0, "", ""},
    {"redis://:@h", TCP, 1, {{"h", 6379}}, "", "", 0, "", ""},
    {"redis://u:p:q@h", TCP, 1, {{"h", 6379}}, "", "", 0, "u", "p:q"},     /* first ':' splits */
    {"redis://:p%40ss%3Aw%2f@h", TCP, 1, {{"h", 6379}}, "", "", 0, "", "p@ss:w/"},
    {"redis://us%65r%20x:%25@h", TCP, 1, {{"h", 6379}}, "", "", 0, "user x", "%"},
    {"redis://:a/b@c@h:1/2", TCP, 1, {{"h", 1}}, "", "", 2, "", "a/b@c"}, /* to the last '@' */
    {"redis://:ab?c#d,e[f]@h", TCP, 1, {{"h", 6379}}, "", "", 0, "", "ab?c#d,e[f]"},
    {"redis://:%C3%A9\xc3\xa9@h", TCP, 1, {{"h", 6379}}, "", "", 0, "", "\xc3\xa9\xc3\xa9"},
    {"redis://:" SECRET "@[::1]:6380/4", TCP, 1, {{"::1", 6380}}, "", "", 4, "", SECRET},
    /* unix:// */
    {"unix:///tmp/redis.sock", UNIX, 0, {{0}}, "/tmp/redis.sock", "", 0, "", ""},
    {"unix:///tmp/redis.sock?db=3", UNIX, 0, {{0}}, "/tmp/redis.sock", "", 3, "", ""},
    {"UNIX://:pw@/run/r.sock?db=1048576", UNIX, 0, {{0}}, "/run/r.sock", "", 1048576, "", "pw"},
    {"unix://u:p%2F@/a/b@c/s.sock", UNIX, 0, {{0}}, "/a/b@c/s.sock", "", 0, "u", "p/"},
    {"unix:///tmp/a@b.sock", UNIX, 0, {{0}}, "/tmp/a@b.sock", "", 0, "", ""},  /* no userinfo */
    {"unix://:p@/w@/s", UNIX, 0, {{0}}, "/s", "", 0, "", "p@/w"},              /* last "@/" */
    {"unix://%70%25/x:y@/s%41", UNIX, 0, {{0}}, "/s%41", "", 0, "p%/x", "y"},   /* path verbatim */
    {"unix:///x", UNIX, 0, {{0}}, "/x", "", 0, "", ""},
    /* redis-sentinel:// */
    {"redis-sentinel://s1:26379,s2:26380/mymaster/2", SENTINEL, 2,
     {{"s1", 26379}, {"s2", 26380}}, "", "mymaster", 2, "", ""},
    {"redis-sentinel://:pw@[::1]:26379,10.0.0.2:1,s3:65535/my.master_1~x-Y", SENTINEL, 3,
     {{"::1", 26379}, {"10.0.0.2", 1}, {"s3", 65535}}, "", "my.master_1~x-Y", 0, "", "pw"},
    {"Redis-Sentinel://s:1/m/", SENTINEL, 1, {{"s", 1}}, "", "m", 0, "", ""},
    {"redis-sentinel://u:p@s:1/m", SENTINEL, 1, {{"s", 1}}, "", "m", 0, "u", "p"},
    {"redis-sentinel://s:1/m/1048576", SENTINEL, 1, {{"s", 1}}, "", "m", 1048576, "", ""},
    /* redis-cluster:// */
    {"redis-cluster://a:7000,b:7001,[::1]:7002", CLUSTER, 3,
     {{"a", 7000}, {"b", 7001}, {"::1", 7002}}, "", "", 0, "", ""},
    {"REDIS-CLUSTER://default:p@a:7000/", CLUSTER, 1, {{"a", 7000}}, "", "", 0, "default", "p"},
};
/* clang-format on */

Test(url, good_urls_every_field)
{
    for (size_t i = 0; i < N_OF(good_rows); i++) {
        const struct good_row *g = &good_rows[i];
        struct rl_redis_url u;
        int rc = parse(g->url, &u);
        cr_expect_eq(rc, 0, "row %zu %s: rc %d: %s", i, g->url, rc, rl_errmsg());
        if (rc)
            continue;
        cr_expect_eq(u.kind, g->kind, "row %zu %s: kind %d", i, g->url, (int)u.kind);
        cr_expect_eq(u.nhosts, g->nhosts, "row %zu %s: nhosts %zu", i, g->url, u.nhosts);
        for (size_t k = 0; k < g->nhosts && k < u.nhosts; k++) {
            cr_expect_str_eq(u.hosts[k].host, g->h[k].host, "row %zu %s: host %zu \"%s\"", i,
                             g->url, k, u.hosts[k].host);
            cr_expect_eq(u.hosts[k].port, g->h[k].port, "row %zu %s: port %zu %d", i, g->url, k,
                         u.hosts[k].port);
        }
        for (size_t k = g->nhosts; k < RL_REDIS_MAX_HOSTS; k++)
            cr_expect(u.hosts[k].host[0] == '\0' && u.hosts[k].port == 0,
                      "row %zu %s: unused host %zu not zeroed", i, g->url, k);
        cr_expect_str_eq(u.path, g->path, "row %zu %s: path \"%s\"", i, g->url, u.path);
        cr_expect_str_eq(u.master, g->master, "row %zu %s: master \"%s\"", i, g->url, u.master);
        cr_expect_eq(u.db, g->db, "row %zu %s: db %d", i, g->url, u.db);
        cr_expect_str_eq(u.user, g->user, "row %zu %s: user \"%s\"", i, g->url, u.user);
        cr_expect_str_eq(u.password, g->password, "row %zu %s: password \"%s\"", i, g->url,
                         u.password);
    }
}

/* ---- bad URLs: exact code and what the message says ------------------------------------------ */

struct bad_row {
    const char *url;
    int rc;
    const char *msg; /* a substring of rl_errmsg() */
};

/* clang-format off */
static const struct bad_row bad_rows[] = {
    /* scheme */
    {"", -EINVAL, "the URL is empty"},
    {"localhost:6379", -EINVAL, "no scheme at the start"},
    {"//h:1", -EINVAL, "no scheme at the start"},
    {"http://h", -EINVAL, "unknown scheme \"http\" at character 1 (accepted: redis://, unix://, "
                          "redis-sentinel://, redis-cluster://)"},
    {"redis-socket:///tmp/s", -EINVAL, "unknown scheme \"redis-socket\""},
    {"redis:/h", -EINVAL, "expected \"//\" after \"redis:\" at character 7"},
    {"Unix:/tmp/s", -EINVAL, "expected \"//\" after \"unix:\" at character 6"},
    /* TLS */
    {"rediss://h:6380", -ENOTSUP, TLS_MSG},
    {"REDISS://:pw@h", -ENOTSUP, TLS_MSG},
    {"redis+tls://h", -ENOTSUP, "TLS is not supported by this build (redis+tls://...)"},
    {"rediss-sentinel://s:1/m", -ENOTSUP, "(rediss-sentinel://...)"},
    {"redis-sentinel+tls://s:1/m", -ENOTSUP, "(redis-sentinel+tls://...)"},
    {"rediss-cluster://a:1", -ENOTSUP, "(rediss-cluster://...)"},
    {"redis-cluster+ssl://a:1", -ENOTSUP, "(redis-cluster+ssl://...)"},
    /* spaces and control characters anywhere */
    {" redis://h", -EINVAL, "space at character 1"},
    {"redis://h :1", -EINVAL, "space at character 10"},
    {"redis://:a b@h", -EINVAL, "space at character 11"},
    {"redis://h:1\n", -EINVAL, "control character 0x0a at character 12"},
    {"redis://\th", -EINVAL, "control character 0x09 at character 9"},
    {"redis://h\x7f", -EINVAL, "control character 0x7f at character 10"},
    {"unix:///tmp/\x01s", -EINVAL, "control character 0x01 at character 13"},
    /* hosts */
    {"redis://", -EINVAL, "the host at character 9 is empty"},
    {"redis://:6379", -EINVAL, "the host at character 9 is empty"},
    {"redis://:pw@", -EINVAL, "the host at character 13 is empty"},
    {"redis://u:pw@:1/2", -EINVAL, "the host at character 14 is empty"},
    {"redis://h!:1", -EINVAL, "invalid character in the host at character 10"},
    {"redis://h#x", -EINVAL, "invalid character in the host at character 10"},
    {"redis://h\xc3\xa9", -EINVAL, "invalid character in the host at character 10"},
    {"redis://a:1,b:2", -EINVAL, "redis:// takes one host (',' at character 12)"},
    {"redis://::1", -EINVAL, "the host at character 9 looks like an IPv6 address"},
    {"redis://fe80::1:6379", -EINVAL, "looks like an IPv6 address: write it in brackets"},
    {"redis://[::1", -EINVAL, "'[' of the host at character 9 has no matching ']'"},
    {"redis://[::1/0", -EINVAL, "has no matching ']'"},
    {"redis://[]:1", -EINVAL, "the host at character 9 is empty"},
    {"redis://[zz::1]:1", -EINVAL, "the host at character 9 is not an IPv6 address"},
    {"redis://[10.0.0.1]", -EINVAL, "is not an IPv6 address"},
    {"redis://[fe80::1%25eth0]:1", -EINVAL, "is not an IPv6 address"},
    {"redis://[::1]x", -EINVAL, "unexpected character after ']' at character 14"},
    /* ports */
    {"redis://h:0", -EINVAL, "the port of the host at character 11 is outside 1..65535"},
    {"redis://h:65536", -EINVAL, "the port of the host at character 11 is outside 1..65535"},
    {"redis://h:99999999999999999999999", -EINVAL, "is outside 1..65535"},
    {"redis://h:", -EINVAL, "the port of the host at character 11 is empty"},
    {"redis://h:/1", -EINVAL, "the port of the host at character 11 is empty"},
    {"redis://h:12a", -EINVAL, "the port of the host at character 11 is not a decimal number"},
    {"redis://h:-1", -EINVAL, "is not a decimal number"},
    {"redis://h:+1", -EINVAL, "is not a decimal number"},
    {"redis://h:1:2", -EINVAL, "looks like an IPv6 address"},
    /* db and query (redis://) */
    {"redis://h/1048577", -EINVAL, "the database at character 11 is outside 0..1048576"},
    {"redis://h/99999999999999999999999", -EINVAL, "is outside 0..1048576"},
    {"redis://h/x", -EINVAL, "the database at character 11 is not a decimal number"},
    {"redis://h/-1", -EINVAL, "is not a decimal number"},
    {"redis://h//1", -EINVAL, "the database at character 11 is not a decimal number"},
    {"redis://h/1/", -EINVAL, "unexpected character after the database number at character 12"},
    {"redis://h/1x", -EINVAL, "unexpected character after the database number at character 12"},
    {"redis://h?db=1", -EINVAL, "query parameters are not accepted by redis:// (character 10); "
                                "the db goes in the path"},
    {"redis://h:1/1?x", -EINVAL, "query parameters are not accepted by redis:// (character 14)"},
    {"redis://h:1?", -EINVAL, "query parameters are not accepted by redis://"},
    /* userinfo */
    {"redis://:p%zz@h", -EINVAL, "malformed percent escape in the password at character 11"},
    {"redis://:p%4@h", -EINVAL, "malformed percent escape in the password at character 11"},
    {"redis://:p%@h", -EINVAL, "malformed percent escape in the password at character 11"},
    {"redis://:p%4g@h", -EINVAL, "malformed percent escape in the password"},
    {"redis://:p%00@h", -EINVAL, "%00 (NUL byte) in the password at character 11"},
    {"redis://u%0@h", -EINVAL, "malformed percent escape in the user name at character 10"},
    {"redis://u%00:p@h", -EINVAL, "%00 (NUL byte) in the user name at character 10"},
    {"redis://%:p@h", -EINVAL, "malformed percent escape in the user name at character 9"},
    /* unix:// */
    {"unix://", -EINVAL, "unix:// takes an absolute socket path, not a host (character 8)"},
    {"unix://localhost/tmp/s", -EINVAL, "unix:// takes an absolute socket path, not a host"},
    {"unix://:pw@tmp/s", -EINVAL, "unix:// takes an absolute socket path"},
    {"unix:///", -EINVAL, "the socket path at character 8 is empty"},
    {"unix:///?db=1", -EINVAL, "the socket path at character 8 is empty"},
    {"unix://:pw@/", -EINVAL, "the socket path at character 12 is empty"},
    {"unix:///tmp/s?", -EINVAL, "unknown query parameter at character 15 (unix:// accepts only "
                                "?db=N)"},
    {"unix:///tmp/s?x=1", -EINVAL, "unknown query parameter at character 15"},
    {"unix:///tmp/s?DB=1", -EINVAL, "unknown query parameter at character 15"},
    {"unix:///tmp/s?db=", -EINVAL, "db at character 18 is not a decimal number"},
    {"unix:///tmp/s?db=1x", -EINVAL, "db at character 19 is not a decimal number"},
    {"unix:///tmp/s?db=-1", -EINVAL, "db at character 18 is not a decimal number"},
    {"unix:///tmp/s?db=1&db=2", -EINVAL, "unexpected '&' at character 19"},
    {"unix:///tmp/s?db=1048577", -EINVAL, "db at character 18 is outside 0..1048576"},
    {"unix://:p%zz@/tmp/s", -EINVAL, "malformed percent escape in the password at character 10"},
    /* redis-sentinel:// */
    {"redis-sentinel://s:1", -EINVAL, "the master name is missing (character 21)"},
    {"redis-sentinel://s:1/", -EINVAL, "the master name is missing (character 22)"},
    {"redis-sentinel://s:1//2", -EINVAL, "the master name is missing (character 22)"},
    {"redis-sentinel://s:1/?x", -EINVAL, "the master name is missing"},
    {"redis-sentinel://s/m", -EINVAL, "host 1 at character 18 has no port: redis-sentinel:// "
                                      "needs host:port for every host"},
    {"redis-sentinel://s:26379,t/m", -EINVAL, "host 2 at character 26 has no port"},
    {"redis-sentinel://s:1,/m", -EINVAL, "host 2 at character 22 is empty"},
    {"redis-sentinel://s:1,", -EINVAL, "host 2 at character 22 is empty"},
    {"redis-sentinel://s:1,t:0/m", -EINVAL, "the port of host 2 at character 24 is outside"},
    {"redis-sentinel://s:1/m!x", -EINVAL, "invalid character in the master name at character 23"},
    {"redis-sentinel://s:1/m%41", -EINVAL, "invalid character in the master name at character 23"},
    {"redis-sentinel://s:1/m/1048577", -EINVAL, "the database at character 24 is outside"},
    {"redis-sentinel://s:1/m/2/3", -EINVAL, "unexpected character after the database number"},
    {"redis-sentinel://s:1/m/x", -EINVAL, "the database at character 24 is not a decimal number"},
    {"redis-sentinel://s:1/m?x=1", -EINVAL, "query parameters are not accepted by "
                                            "redis-sentinel:// (character 23)"},
    {"redis-sentinel://s:1?x", -EINVAL, "query parameters are not accepted by redis-sentinel://"},
    /* redis-cluster:// */
    {"redis-cluster://a:1/0", -EINVAL, "redis-cluster:// takes no database number (character 21)"},
    {"redis-cluster://a:1/3", -EINVAL, "cluster mode has db 0 only"},
    {"redis-cluster://a:1/x", -EINVAL, "redis-cluster:// takes no path (character 21)"},
    {"redis-cluster://a", -EINVAL, "host 1 at character 17 has no port: redis-cluster:// needs "
                                   "host:port"},
    {"redis-cluster://a:1?x", -EINVAL, "query parameters are not accepted by redis-cluster:// "
                                       "(character 20)"},
    {"redis-cluster://a:1,", -EINVAL, "host 2 at character 21 is empty"},
    {"redis-cluster://a:1,,b:2", -EINVAL, "host 2 at character 21 is empty"},
};
/* clang-format on */

Test(url, bad_urls_code_and_message)
{
    for (size_t i = 0; i < N_OF(bad_rows); i++) {
        const struct bad_row *b = &bad_rows[i];
        struct rl_redis_url u;
        int rc = parse(b->url, &u);
        cr_expect_eq(rc, b->rc, "row %zu %s: rc %d, expected %d (%s)", i, b->url, rc, b->rc,
                     rl_errmsg());
        cr_expect(strncmp(rl_errmsg(), "redis url: ", 11) == 0,
                  "row %zu %s: message \"%s\" lacks the prefix", i, b->url, rl_errmsg());
        cr_expect(strstr(rl_errmsg(), b->msg) != NULL,
                  "row %zu %s: message \"%s\" does not contain \"%s\"", i, b->url, rl_errmsg(),
                  b->msg);
        cr_expect(all_zero(&u), "row %zu %s: *out not zeroed on failure", i, b->url);
    }
}

Test(url, tls_message_exact)
{
    struct rl_redis_url u;
    cr_assert_eq(parse("rediss://:" SECRET "@cache.example.com:6380/1", &u), -ENOTSUP);
    cr_expect_str_eq(rl_errmsg(), "redis url: " TLS_MSG, "message: %s", rl_errmsg());
}

Test(url, null_arguments)
{
    struct rl_redis_url u;
    cr_expect_eq(rl__redis_url_parse(NULL, &u), -EINVAL);
    cr_expect(strstr(rl_errmsg(), "NULL") != NULL, "message: %s", rl_errmsg());
    cr_expect_eq(rl__redis_url_parse("redis://h", NULL), -EINVAL);
}

/* ---- the password never appears in a message ------------------------------------------------- */

Test(url, password_never_in_messages)
{
    /* clang-format off */
    static const char *const urls[] = {
        "redis://:" SECRET "@h:0",
        "redis://:" SECRET "@h:65536",
        "redis://:" SECRET "@h:x",
        "redis://user:" SECRET "@",
        "redis://user:" SECRET "@h!",
        "redis://user:" SECRET "@h/1048577",
        "redis://user:" SECRET "@h/1?db=2",
        "redis://user:" SECRET "@h\n",
        "redis://:" SECRET "@a:1,b:2",
        "redis://:" SECRET "%zz@h",
        "redis://:" SECRET "%00@h",
        "redis://:" SECRET "%@h",
        "redis://:" SECRET " @h",
        "redis://:" SECRET "\x01@h",
        "redis://:s3cr3t%2DP4ss@h:0",          /* encoded: neither form appears */
        "redis://:" SECRET,                    /* '@' forgotten: the password is where a host is */
        "redis://default:" SECRET,             /* ... or where a port is */
        "redis://default:" SECRET "/0",
        "redis://" SECRET ":" SECRET,
        "redis://:" SECRET "@[" SECRET "]",
        "rediss://:" SECRET "@h",
        "redis-sentinel+tls://:" SECRET "@h:1/m",
        "http://:" SECRET "@h",
        SECRET,
        ":" SECRET "@h:6379",
        "unix://:" SECRET "@/",
        "unix://:" SECRET "@/s?db=x",
        "unix://:" SECRET "@/s?pw=" SECRET,
        "unix://:" SECRET,
        "redis-sentinel://:" SECRET "@s:1",
        "redis-sentinel://:" SECRET "@s:1/" SECRET "!",
        "redis-cluster://:" SECRET "@a",
        "redis-cluster://:" SECRET "@a:1/0",
    };
    /* clang-format on */
    for (size_t i = 0; i < N_OF(urls); i++) {
        struct rl_redis_url u;
        int rc = parse(urls[i], &u);
        const char *m = rl_errmsg();
        cr_expect_neq(rc, 0, "row %zu %s parsed", i, urls[i]);
        cr_expect(m[0] != '\0', "row %zu %s: no message", i, urls[i]);
        cr_expect(strstr(m, "s3cr3t") == NULL && strstr(m, "P4ss") == NULL,
                  "row %zu: the message shows the password: %s", i, m);
        char red[512];
        int n = rl__redis_url_redact(urls[i], red, sizeof red);
        cr_expect(n > 0 && strstr(red, "s3cr3t") == NULL, "row %zu: redacted \"%s\"", i, red);
    }

    /* Too long: the message gives the limit, not the text. */
    char url[1024] = "redis://:";
    for (int k = 0; k < 30; k++)
        strcat(url, SECRET);
    strcat(url, "@h");
    struct rl_redis_url u;
    cr_expect_eq(parse(url, &u), -ENAMETOOLONG);
    cr_expect(strstr(rl_errmsg(), "s3cr3t") == NULL, "message: %s", rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "the password is longer than 255 bytes") != NULL, "message: %s",
              rl_errmsg());
}

/* ---- redaction ------------------------------------------------------------------------------- */

struct redact_row {
    const char *in, *out;
};

/* clang-format off */
static const struct redact_row redact_rows[] = {
    {"redis://:" SECRET "@h:1/2", "redis://:***@h:1/2"},
    {"redis://user:" SECRET "@h", "redis://user:***@h"},
    {"REDIS://User:p%40ss@Cache.Example:6379/0", "REDIS://User:***@Cache.Example:6379/0"},
    {"redis://:a/b@c@h:1", "redis://:***@h:1"},
    {"redis://u:p:q@h", "redis://u:***@h"},
    {"redis://user@h", "redis://user@h"},                   /* no password: verbatim */
    {"redis://user:@h", "redis://user:@h"},
    {"redis://:@h", "redis://:@h"},
    {"redis://h", "redis://h"},
    {"redis://[::1]:6380/3", "redis://[::1]:6380/3"},
    {"unix://:pw@/tmp/s?db=1", "unix://:***@/tmp/s?db=1"},
    {"unix:///tmp/a@b.sock", "unix:///tmp/a@b.sock"},
    {"redis-sentinel://:" SECRET "@s:1,t:2/m/3", "redis-sentinel://:***@s:1,t:2/m/3"},
    {"redis-cluster://u:p@a:1,b:2", "redis-cluster://u:***@a:1,b:2"},
    {"rediss://:" SECRET "@h:6380", "rediss://:***@h:6380"},  /* TLS URLs are redacted too */
    {"redis-sentinel+tls://:pw@s:1/m", "redis-sentinel+tls://:***@s:1/m"},
    {"redis://h:0", "<invalid redis url>"},
    {"redis://:" SECRET "@h:0", "<invalid redis url>"},
    {"redis://:" SECRET "%zz@h", "<invalid redis url>"},
    {"http://:" SECRET "@h", "<invalid redis url>"},
    {"", "<invalid redis url>"},
};
/* clang-format on */

Test(url, redact)
{
    for (size_t i = 0; i < N_OF(redact_rows); i++) {
        const struct redact_row *r = &redact_rows[i];
        char out[256];
        memset(out, 'x', sizeof out);
        int n = rl__redis_url_redact(r->in, out, sizeof out);
        cr_expect_eq(n, (int)strlen(r->out), "row %zu %s: %d", i, r->in, n);
        cr_expect_str_eq(out, r->out, "row %zu %s: \"%s\"", i, r->in, out);
    }
    char out[64];
    cr_expect_eq(rl__redis_url_redact(NULL, out, sizeof out), 19);
    cr_expect_str_eq(out, "<invalid redis url>");
}

Test(url, redact_sizes)
{
    const char *in = "redis://:" SECRET "@h:1";
    const char *want = "redis://:***@h:1"; /* 16 bytes */
    char out[32];
    cr_expect_eq(rl__redis_url_redact(in, out, 17), 16);
    cr_expect_str_eq(out, want);
    memset(out, 'x', sizeof out);
    cr_expect_eq(rl__redis_url_redact(in, out, 16), -ENOSPC);
    cr_expect_eq(out[0], '\0', "nothing half-written");
    cr_expect(strstr(rl_errmsg(), "needs 17 bytes") != NULL, "message: %s", rl_errmsg());
    cr_expect_eq(rl__redis_url_redact(in, out, 0), -ENOSPC);
    cr_expect_eq(rl__redis_url_redact(in, NULL, 0), -ENOSPC);
    cr_expect_eq(rl__redis_url_redact("redis://h:0", out, 20), 19); /* "<invalid redis url>" */
    cr_expect_eq(rl__redis_url_redact("redis://h:0", out, 19), -ENOSPC);
}

Test(url, redact_keeps_the_thread_message)
{
    rl__err(-EINVAL, "%s", "earlier message");
    char out[64];
    cr_expect_eq(rl__redis_url_redact("redis://h:0", out, sizeof out), 19);
    cr_expect_str_eq(rl_errmsg(), "earlier message");
    cr_expect_eq(rl__redis_url_redact("redis://:pw@h", out, sizeof out), 14);
    cr_expect_str_eq(rl_errmsg(), "earlier message");
}

/* ---- boundary lengths ------------------------------------------------------------------------ */

/* buf = a + n copies of c + b. */
static const char *build(char *buf, size_t cap, const char *a, char c, size_t n, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    cr_assert_lt(la + n + lb, cap, "test buffer too small");
    memcpy(buf, a, la);
    memset(buf + la, c, n);
    memcpy(buf + la + n, b, lb + 1);
    return buf;
}

/* The same with n copies of the string s. */
static const char *build_s(char *buf, size_t cap, const char *a, const char *s, size_t n,
                           const char *b)
{
    size_t ls = strlen(s);
    cr_assert_lt(strlen(a) + n * ls + strlen(b), cap, "test buffer too small");
    strcpy(buf, a);
    for (size_t i = 0; i < n; i++)
        strcat(buf, s);
    strcat(buf, b);
    return buf;
}

Test(url, field_lengths_at_and_over_capacity)
{
    char buf[2048];
    struct rl_redis_url u;

    /* host: 255 characters fit host[256] */
    cr_expect_eq(parse(build(buf, sizeof buf, "redis://", 'h', 255, ":1"), &u), 0, "%s",
                 rl_errmsg());
    cr_expect_eq(strlen(u.hosts[0].host), 255);
    cr_expect_eq(parse(build(buf, sizeof buf, "redis://", 'h', 256, ":1"), &u), -ENAMETOOLONG);
    cr_expect(strstr(rl_errmsg(), "the host at character 9 is longer than 255 characters") != NULL,
              "%s", rl_errmsg());
    cr_expect_eq(parse(build(buf, sizeof buf, "redis-cluster://a:1,", 'h', 256, ":1"), &u),
                 -ENAMETOOLONG);
    cr_expect(strstr(rl_errmsg(), "host 2 at character 21 is longer than 255") != NULL, "%s",
              rl_errmsg());
    /* IPv6 text of 255 and 256 characters: the length is judged first */
    cr_expect_eq(parse(build(buf, sizeof buf, "redis://[", '1', 255, "]"), &u), -EINVAL);
    cr_expect_eq(parse(build(buf, sizeof buf, "redis://[", '1', 256, "]"), &u), -ENAMETOOLONG);

    /* user: 127 bytes fit user[128], raw or encoded */
    cr_expect_eq(parse(build(buf, sizeof buf, "redis://", 'u', 127, ":p@h"), &u), 0);
    cr_expect_eq(strlen(u.user), 127);
    cr_expect_eq(parse(build(buf, sizeof buf, "redis://", 'u', 128, ":p@h"), &u), -ENAMETOOLONG);
    cr_expect(strstr(rl_errmsg(), "the user name is longer than 127 bytes") != NULL, "%s",
              rl_errmsg());
    cr_expect_eq(parse(build(buf, sizeof buf, "redis://", 'u', 128, "@h"), &u), -ENAMETOOLONG);
    cr_expect_eq(parse(build_s(buf, sizeof buf, "redis://", "%41", 127, "@h"), &u), 0);
    cr_expect_eq(strlen(u.user), 127);
    cr_expect_eq(u.user[126], 'A');
    cr_expect_eq(parse(build_s(buf, sizeof buf, "redis://", "%41", 128, "@h"), &u), -ENAMETOOLONG);

    /* password: 255 bytes fit password[256], raw or encoded */
    cr_expect_eq(parse(build(buf, sizeof buf, "redis://:", 'p', 255, "@h"), &u), 0);
    cr_expect_eq(strlen(u.password), 255);
    cr_expect_eq(parse(build(buf, sizeof buf, "redis://:", 'p', 256, "@h"), &u), -ENAMETOOLONG);
    cr_expect(strstr(rl_errmsg(), "the password is longer than 255 bytes") != NULL, "%s",
              rl_errmsg());
    cr_expect_eq(parse(build_s(buf, sizeof buf, "redis://:", "%7e", 255, "@h"), &u), 0);
    cr_expect_eq(strlen(u.password), 255);
    cr_expect_eq(u.password[254], '~');
    cr_expect_eq(parse(build_s(buf, sizeof buf, "redis://:", "%7e", 256, "@h"), &u), -ENAMETOOLONG);

    /* socket path: 107 bytes fit path[108] ("/" and 106 more) */
    cr_expect_eq(parse(build(buf, sizeof buf, "unix:///", 's', 106, "?db=1"), &u), 0);
    cr_expect_eq(strlen(u.path), 107);
    cr_expect_eq(u.db, 1);
    cr_expect_eq(parse(build(buf, sizeof buf, "unix:///", 's', 107, ""), &u), -ENAMETOOLONG);
    cr_expect(strstr(rl_errmsg(), "the socket path at character 8 is longer than 107 bytes") !=
                  NULL,
              "%s", rl_errmsg());

    /* master name: 127 characters fit master[128] */
    cr_expect_eq(parse(build(buf, sizeof buf, "redis-sentinel://s:1/", 'm', 127, "/2"), &u), 0);
    cr_expect_eq(strlen(u.master), 127);
    cr_expect_eq(u.db, 2);
    cr_expect_eq(parse(build(buf, sizeof buf, "redis-sentinel://s:1/", 'm', 128, ""), &u),
                 -ENAMETOOLONG);
    cr_expect(strstr(rl_errmsg(), "the master name at character 22 is longer than 127") != NULL,
              "%s", rl_errmsg());

    /* an unknown scheme longer than the parser's scheme buffer */
    cr_expect_eq(parse(build(buf, sizeof buf, "", 'x', 100, "://h"), &u), -EINVAL);
    cr_expect(strstr(rl_errmsg(), "unknown scheme \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\"") != NULL,
              "%s", rl_errmsg());
}

/* n hosts "hK:(7000+K)" after prefix, then suffix. */
static const char *hosts_url(char *buf, size_t cap, const char *prefix, int n, const char *suffix)
{
    int len = snprintf(buf, cap, "%s", prefix);
    for (int k = 0; k < n; k++)
        len += snprintf(buf + len, cap - (size_t)len, "%sh%d:%d", k ? "," : "", k, 7000 + k);
    snprintf(buf + len, cap - (size_t)len, "%s", suffix);
    return buf;
}

Test(url, sixteen_and_seventeen_hosts)
{
    char buf[1024];
    struct rl_redis_url u;
    const char *prefixes[] = {"redis-sentinel://", "redis-cluster://"};
    const char *suffixes[] = {"/mymaster/1", ""};
    for (int s = 0; s < 2; s++) {
        int rc = parse(hosts_url(buf, sizeof buf, prefixes[s], 16, suffixes[s]), &u);
        cr_expect_eq(rc, 0, "%s: %s", buf, rl_errmsg());
        cr_expect_eq(u.nhosts, 16);
        for (int k = 0; k < 16; k++) {
            char want[16];
            snprintf(want, sizeof want, "h%d", k);
            cr_expect_str_eq(u.hosts[k].host, want);
            cr_expect_eq(u.hosts[k].port, 7000 + k);
        }
        cr_expect_eq(u.db, s == 0 ? 1 : 0);

        hosts_url(buf, sizeof buf, prefixes[s], 17, suffixes[s]);
        cr_expect_eq(parse(buf, &u), -EINVAL, "%s", buf);
        /* the 17th host, "h16:7016", starts right after the 16th comma */
        const char *h16 = strstr(buf, ",h16:");
        char want[96];
        snprintf(want, sizeof want, "more than 16 hosts (host 17 starts at character %zu)",
                 (size_t)(h16 - buf) + 2);
        cr_expect(strstr(rl_errmsg(), want) != NULL, "%s: \"%s\", wanted \"%s\"", buf, rl_errmsg(),
                  want);
        cr_expect(all_zero(&u));
    }
    /* the hand count of one: "redis-cluster://" is 16 characters; hosts 0..9 take 7 + 1 each,
     * hosts 10..15 take 8 + 1 each: 16 + 80 + 54 = 150 characters before "h16" */
    hosts_url(buf, sizeof buf, "redis-cluster://", 17, "");
    cr_expect_eq(parse(buf, &u), -EINVAL);
    cr_expect(strstr(rl_errmsg(), "starts at character 151") != NULL, "%s", rl_errmsg());
}

Test(url, ports_at_the_edges)
{
    static const struct {
        const char *url;
        int rc, port;
    } rows[] = {
        {"redis://h:0", -EINVAL, 0},
        {"redis://h:1", 0, 1},
        {"redis://h:65535", 0, 65535},
        {"redis://h:65536", -EINVAL, 0},
        {"redis://[::1]:0", -EINVAL, 0},
        {"redis://[::1]:65535", 0, 65535},
        {"redis-cluster://a:1,b:0", -EINVAL, 0},
        {"redis-cluster://a:65535", 0, 65535},
        {"redis-sentinel://a:65536/m", -EINVAL, 0},
        {"redis-sentinel://a:1/m", 0, 1},
        {"redis://h:000001", 0, 1},
        {"redis://h:4294967297", -EINVAL, 0},
    };
    for (size_t i = 0; i < N_OF(rows); i++) {
        struct rl_redis_url u;
        int rc = parse(rows[i].url, &u);
        cr_expect_eq(rc, rows[i].rc, "%s: %d %s", rows[i].url, rc, rl_errmsg());
        if (rc == 0)
            cr_expect_eq(u.hosts[u.nhosts - 1].port, rows[i].port, "%s", rows[i].url);
        else
            cr_expect(strstr(rl_errmsg(), "is outside 1..65535") != NULL, "%s: %s", rows[i].url,
                      rl_errmsg());
    }
}

/* ---- percent-decoding ------------------------------------------------------------------------ */

Test(url, percent_decoding_every_byte)
{
    /* %01..%FF in the password decode to bytes 1..255, in order; upper and lower case hex. */
    for (int lowercase = 0; lowercase < 2; lowercase++) {
        char url[1024] = "redis://u:";
        size_t n = strlen(url);
        for (int c = 1; c < 256; c++)
            n += (size_t)snprintf(url + n, sizeof url - n, lowercase ? "%%%02x" : "%%%02X", c);
        strcat(url, "@h");
        struct rl_redis_url u;
        cr_assert_eq(parse(url, &u), 0, "%s", rl_errmsg());
        cr_assert_eq(strlen(u.password), 255);
        for (int c = 1; c < 256; c++)
            cr_expect_eq((unsigned char)u.password[c - 1], c, "byte %d", c);
        char red[64];
        cr_expect_eq(rl__redis_url_redact(url, red, sizeof red), 15);
        cr_expect_str_eq(red, "redis://u:***@h");
    }
    /* The user is decoded the same way, and decoded ':' and '@' do not split anything. */
    struct rl_redis_url u;
    cr_assert_eq(parse("redis://a%3Ab%40c:d%3ae%40f@h", &u), 0, "%s", rl_errmsg());
    cr_expect_str_eq(u.user, "a:b@c");
    cr_expect_str_eq(u.password, "d:e@f");
    /* A decoded "%41" stays "%41": decoding happens once. */
    cr_assert_eq(parse("redis://:%2541@h", &u), 0);
    cr_expect_str_eq(u.password, "%41");
}
