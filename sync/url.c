/*
 * Redis URLs: the grammar is in url.h. Decisions this parser makes where the usual conventions
 * differ or say nothing:
 *
 * Schemes. Case-insensitive; accepted: redis://, unix://, redis-sentinel://, redis-cluster://.
 * The TLS spellings rediss://, rediss-sentinel://, rediss-cluster:// and any of the three bases
 * with "+tls" or "+ssl" (redis-sentinel+tls://) are recognised only to answer -ENOTSUP ("TLS is
 * not supported by this build ..."); everything else is "unknown scheme" (-EINVAL).
 *
 * Userinfo ("user:password@"). Split at the first ':': "user:pw@" is an ACL user and its
 * password, ":pw@" a password alone (AUTH pw), "user@" and "user:@" a user with no password
 * (password ""), "@" and ":@" nothing. Both halves are percent-decoded; a '%' not followed by two
 * hex digits and %00 are rejected, so a literal '%' is written %25. Generated passwords often
 * contain '/', '@', '?' or '#', so the userinfo is not cut at the first '/': it runs to the LAST
 * '@' of the URL (unix://: to the last "@/", since a socket path may contain '@'), and any
 * printable ASCII or non-ASCII byte is accepted in it raw. Hosts, ports and master names cannot
 * contain '@', so nothing is lost; a password is never mistaken for a host or a path.
 *
 * Hosts. A name ([A-Za-z0-9._-]+, up to 255 characters; no DNS rules beyond that: the resolver
 * judges), an IPv4 address (a name, syntactically), or an IPv6 address in brackets, checked
 * with inet_pton and stored without them (no zone ids). redis:// takes one host, default port
 * 6379; redis-sentinel:// and redis-cluster:// take 1..RL_REDIS_MAX_HOSTS comma-separated hosts,
 * each with its port (26379 is not assumed for sentinels). Ports are decimal 1..65535.
 *
 * Paths. redis://: "", "/" or "/db". redis-sentinel://: "/master" or "/master/" or "/master/db";
 * a master name is [A-Za-z0-9._~-]+, up to 127 characters. redis-cluster://: "" or "/" (a db
 * number is refused: cluster mode has db 0 only). unix://: an absolute path of 2..107 bytes,
 * taken verbatim (not percent-decoded), then optionally "?db=N", the only query parameter any
 * scheme accepts. db is decimal 0..2^20 (leading zeros allowed).
 *
 * Errors. Spaces, control characters and DEL are refused anywhere (a trailing newline read from
 * a file is the usual one). Every message starts with "redis url: ", names the part that is
 * wrong and its position ("character N", counting from 1), and quotes nothing from the URL but
 * the scheme: not the password, and not a host or port either, since a URL written without its
 * '@' puts the password where a host or port would be. Too many hosts is -EINVAL; a part longer
 * than its field in struct rl_redis_url is -ENAMETOOLONG. On failure *out is zeroed.
 *
 * Redaction replaces the raw (still percent-encoded) bytes of a non-empty password by "***" and
 * copies the rest verbatim; TLS URLs are redacted too (they parse like their base scheme). It
 * leaves the thread's error message as it was, except for -ENOSPC.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/error.h"
#include "sync/url.h"

#define DB_MAX   (1UL << 20)
#define PORT_MAX 65535UL
#define INVALID  "<invalid redis url>"

#define URL_ERR(code, ...) rl__err((code), "redis url: " __VA_ARGS__)

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
    return is_alpha(c) || is_digit(c);
}

static char to_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int hex_value(char c)
{
    if (is_digit(c))
        return c - '0';
    c = to_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

struct scheme {
    const char *name;
    enum rl_redis_kind kind;
    bool tls;
};

static const struct scheme schemes[] = {
    {"redis", RL_REDIS_TCP, false},
    {"unix", RL_REDIS_UNIX, false},
    {"redis-sentinel", RL_REDIS_SENTINEL, false},
    {"redis-cluster", RL_REDIS_CLUSTER, false},
    {"rediss", RL_REDIS_TCP, true},
    {"redis+tls", RL_REDIS_TCP, true},
    {"redis+ssl", RL_REDIS_TCP, true},
    {"rediss-sentinel", RL_REDIS_SENTINEL, true},
    {"redis-sentinel+tls", RL_REDIS_SENTINEL, true},
    {"redis-sentinel+ssl", RL_REDIS_SENTINEL, true},
    {"rediss-cluster", RL_REDIS_CLUSTER, true},
    {"redis-cluster+tls", RL_REDIS_CLUSTER, true},
    {"redis-cluster+ssl", RL_REDIS_CLUSTER, true},
};

#define ACCEPTED "accepted: redis://, unix://, redis-sentinel://, redis-cluster://"

/* One parse: the URL, where the result goes, and where the password's raw bytes are. */
struct parser {
    const char *u;
    struct rl_redis_url *out;
    const char *scheme; /* canonical name, for messages */
    size_t pw_b, pw_e;  /* u[pw_b, pw_e): the password as written; empty: none */
};

/* 1-based position of u[i], as messages print it. */
static size_t at(size_t i)
{
    return i + 1;
}

/* Reads decimal digits from u[*p]; returns how many. *val saturates at max + 1. */
static size_t read_number(const char *u, size_t *p, unsigned long max, unsigned long *val)
{
    size_t n = 0;
    unsigned long v = 0;
    while (is_digit(u[*p])) {
        if (v <= max)
            v = v * 10 + (unsigned long)(u[*p] - '0');
        (*p)++;
        n++;
    }
    *val = v > max ? max + 1 : v;
    return n;
}

/* Percent-decodes u[b, e) into dst (capacity cap, NUL-terminated). `part` names it in messages;
 * the text itself is never printed. */
static int decode(const char *u, size_t b, size_t e, char *dst, size_t cap, const char *part)
{
    size_t n = 0;
    for (size_t i = b; i < e; i++) {
        char c = u[i];
        if (c == '%') {
            int hi = i + 1 < e ? hex_value(u[i + 1]) : -1;
            int lo = i + 2 < e ? hex_value(u[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return URL_ERR(-EINVAL,
                               "malformed percent escape in the %s at character %zu (write %%XX "
                               "with two hex digits; %%25 for a literal %%)",
                               part, at(i));
            if (hi == 0 && lo == 0)
                return URL_ERR(-EINVAL, "%%00 (NUL byte) in the %s at character %zu", part, at(i));
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= cap)
            return URL_ERR(-ENAMETOOLONG, "the %s is longer than %zu bytes (after decoding)", part,
                           cap - 1);
        dst[n++] = c;
    }
    dst[n] = '\0';
    return 0;
}

/* Userinfo u[b, e): "user", "user:password", ":password". */
static int parse_userinfo(struct parser *ps, size_t b, size_t e)
{
    const char *colon = memchr(ps->u + b, ':', e - b);
    size_t ue = colon ? (size_t)(colon - ps->u) : e;
    int rc = decode(ps->u, b, ue, ps->out->user, sizeof ps->out->user, "user name");
    if (rc)
        return rc;
    if (!colon)
        return 0;
    rc = decode(ps->u, ue + 1, e, ps->out->password, sizeof ps->out->password, "password");
    if (rc)
        return rc;
    if (ue + 1 < e) {
        ps->pw_b = ue + 1;
        ps->pw_e = e;
    }
    return 0;
}

/* The character that ends a host entry (and its port). */
static bool ends_host(char c)
{
    return c == ',' || c == '/' || c == '?' || c == '\0';
}

static bool is_host_char(char c)
{
    return is_alnum(c) || c == '.' || c == '-' || c == '_';
}

/* One "host[:port]" at u[*p]; fills out->hosts[out->nhosts]. */
static int parse_host(struct parser *ps, size_t *p)
{
    const char *u = ps->u;
    struct rl_redis_url *out = ps->out;
    struct rl_redis_host *h = &out->hosts[out->nhosts];
    size_t start = *p, i = *p;
    char what[32];
    if (out->kind == RL_REDIS_TCP)
        snprintf(what, sizeof what, "the host");
    else
        snprintf(what, sizeof what, "host %zu", out->nhosts + 1);

    if (u[i] == '[') {
        size_t b = ++i;
        while (u[i] != ']' && !ends_host(u[i]))
            i++;
        if (u[i] != ']')
            return URL_ERR(-EINVAL, "'[' of %s at character %zu has no matching ']'", what,
                           at(start));
        size_t len = i - b;
        if (len == 0)
            return URL_ERR(-EINVAL, "%s at character %zu is empty", what, at(start));
        if (len >= sizeof h->host)
            return URL_ERR(-ENAMETOOLONG, "%s at character %zu is longer than %zu characters", what,
                           at(start), sizeof h->host - 1);
        memcpy(h->host, u + b, len);
        h->host[len] = '\0';
        unsigned char addr[16];
        if (inet_pton(AF_INET6, h->host, addr) != 1)
            return URL_ERR(-EINVAL,
                           "%s at character %zu is not an IPv6 address (brackets are for IPv6 "
                           "only, without a zone id)",
                           what, at(start));
        i++; /* ']' */
        if (u[i] != ':' && !ends_host(u[i]))
            return URL_ERR(-EINVAL, "unexpected character after ']' at character %zu", at(i));
    } else {
        size_t colons = 0;
        for (size_t j = i; !ends_host(u[j]); j++)
            colons += u[j] == ':';
        if (colons > 1)
            return URL_ERR(-EINVAL,
                           "%s at character %zu looks like an IPv6 address: write it in brackets "
                           "([::1]:6379)",
                           what, at(start));
        while (is_host_char(u[i]))
            i++;
        if (u[i] != ':' && !ends_host(u[i]))
            return URL_ERR(-EINVAL,
                           "invalid character in %s at character %zu (a name, an IPv4 "
                           "address or [IPv6] is expected)",
                           what, at(i));
        size_t len = i - start;
        if (len == 0)
            return URL_ERR(-EINVAL, "%s at character %zu is empty", what, at(start));
        if (len >= sizeof h->host)
            return URL_ERR(-ENAMETOOLONG, "%s at character %zu is longer than %zu characters", what,
                           at(start), sizeof h->host - 1);
        memcpy(h->host, u + start, len);
        h->host[len] = '\0';
    }

    if (u[i] == ':') {
        size_t pb = ++i;
        unsigned long port;
        size_t n = read_number(u, &i, PORT_MAX, &port);
        if (n == 0 && ends_host(u[i]))
            return URL_ERR(-EINVAL, "the port of %s at character %zu is empty", what, at(pb));
        if (n == 0 || !ends_host(u[i]))
            return URL_ERR(-EINVAL, "the port of %s at character %zu is not a decimal number", what,
                           at(pb));
        if (port < 1 || port > PORT_MAX)
            return URL_ERR(-EINVAL, "the port of %s at character %zu is outside 1..65535", what,
                           at(pb));
        h->port = (int)port;
    } else if (out->kind == RL_REDIS_TCP) {
        h->port = 6379;
    } else {
        return URL_ERR(-EINVAL,
                       "%s at character %zu has no port: %s:// needs host:port for every host "
                       "(no default port is assumed%s)",
                       what, at(start), ps->scheme,
                       out->kind == RL_REDIS_SENTINEL ? ", not even 26379" : "");
    }
    out->nhosts++;
    *p = i;
    return 0;
}

/* An optional db number at u[*p] up to the end of the URL. */
static int parse_db(struct parser *ps, size_t p)
{
    const char *u = ps->u;
    if (u[p] == '\0')
        return 0;
    unsigned long db;
    size_t b = p;
    size_t n = read_number(u, &p, DB_MAX, &db);
    if (n == 0)
        return URL_ERR(-EINVAL, "the database at character %zu is not a decimal number", at(b));
    if (u[p] == '?')
        return URL_ERR(-EINVAL, "query parameters are not accepted by %s:// (character %zu)",
                       ps->scheme, at(p));
    if (u[p] != '\0')
        return URL_ERR(-EINVAL, "unexpected character after the database number at character %zu",
                       at(p));
    if (db > DB_MAX)
        return URL_ERR(-EINVAL, "the database at character %zu is outside 0..%lu", at(b), DB_MAX);
    ps->out->db = (int)db;
    return 0;
}

static bool is_master_char(char c)
{
    return is_alnum(c) || c == '.' || c == '-' || c == '_' || c == '~';
}

/* After the hosts: u[p] is '/', '?' or NUL. */
static int parse_tail(struct parser *ps, size_t p)
{
    const char *u = ps->u;
    struct rl_redis_url *out = ps->out;
    if (u[p] == '?')
        return URL_ERR(-EINVAL, "query parameters are not accepted by %s:// (character %zu)%s",
                       ps->scheme, at(p),
                       out->kind == RL_REDIS_TCP ? "; the db goes in the path: /N" : "");
    switch (out->kind) {
    case RL_REDIS_TCP:
        return u[p] == '\0' ? 0 : parse_db(ps, p + 1);
    case RL_REDIS_CLUSTER:
        if (u[p] == '\0' || u[p + 1] == '\0')
            return 0;
        if (is_digit(u[p + 1]))
            return URL_ERR(-EINVAL,
                           "redis-cluster:// takes no database number (character %zu): cluster "
                           "mode has db 0 only",
                           at(p + 1));
        return URL_ERR(-EINVAL, "redis-cluster:// takes no path (character %zu)", at(p + 1));
    case RL_REDIS_SENTINEL: {
        if (u[p] == '\0' || u[p + 1] == '\0' || u[p + 1] == '/' || u[p + 1] == '?')
            return URL_ERR(-EINVAL,
                           "the master name is missing (character %zu): "
                           "redis-sentinel://host:port[,host:port...]/master-name[/db]",
                           at(u[p] ? p + 1 : p));
        size_t b = ++p;
        while (is_master_char(u[p]))
            p++;
        if (u[p] == '?')
            return URL_ERR(-EINVAL, "query parameters are not accepted by %s:// (character %zu)",
                           ps->scheme, at(p));
        if (u[p] != '/' && u[p] != '\0')
            return URL_ERR(-EINVAL,
                           "invalid character in the master name at character %zu "
                           "([A-Za-z0-9._~-] are accepted)",
                           at(p));
        if (p - b >= sizeof out->master)
            return URL_ERR(-ENAMETOOLONG,
                           "the master name at character %zu is longer than %zu characters", at(b),
                           sizeof out->master - 1);
        memcpy(out->master, u + b, p - b);
        out->master[p - b] = '\0';
        return u[p] == '\0' ? 0 : parse_db(ps, p + 1);
    }
    case RL_REDIS_UNIX:
        break;
    }
    return URL_ERR(-EINVAL, "internal error: unexpected kind");
}

/* unix://: the socket path at u[p] ('/'), then an optional "?db=N". */
static int parse_unix(struct parser *ps, size_t p)
{
    const char *u = ps->u;
    struct rl_redis_url *out = ps->out;
    size_t b = p;
    while (u[p] != '?' && u[p] != '\0')
        p++;
    size_t len = p - b;
    if (len < 2)
        return URL_ERR(-EINVAL,
                       "the socket path at character %zu is empty (unix:///path/to/socket)", at(b));
    if (len >= sizeof out->path)
        return URL_ERR(-ENAMETOOLONG, "the socket path at character %zu is longer than %zu bytes",
                       at(b), sizeof out->path - 1);
    memcpy(out->path, u + b, len);
    out->path[len] = '\0';
    if (u[p] == '\0')
        return 0;
    p++; /* '?' */
    if (strncmp(u + p, "db=", 3) != 0)
        return URL_ERR(-EINVAL,
                       "unknown query parameter at character %zu (unix:// accepts only ?db=N)",
                       at(p));
    p += 3;
    unsigned long db;
    size_t d = p;
    size_t n = read_number(u, &p, DB_MAX, &db);
    if (n == 0 || (u[p] != '\0' && u[p] != '&'))
        return URL_ERR(-EINVAL, "db at character %zu is not a decimal number", at(n ? p : d));
    if (u[p] == '&')
        return URL_ERR(-EINVAL,
                       "unexpected '&' at character %zu (unix:// accepts only one parameter, "
                       "?db=N)",
                       at(p));
    if (db > DB_MAX)
        return URL_ERR(-EINVAL, "db at character %zu is outside 0..%lu", at(d), DB_MAX);
    out->db = (int)db;
    return 0;
}

/* Parses u into *out. With tls_ok, TLS schemes parse like their base (for redaction). */
static int parse(struct parser *ps, bool tls_ok)
{
    const char *u = ps->u;
    struct rl_redis_url *out = ps->out;
    memset(out, 0, sizeof *out);
    ps->pw_b = ps->pw_e = 0;
    if (u[0] == '\0')
        return URL_ERR(-EINVAL,
                       "the URL is empty (expected redis://host:port or another scheme; " ACCEPTED
                       ")");
    for (size_t i = 0; u[i]; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c == ' ')
            return URL_ERR(-EINVAL,
                           "space at character %zu (a URL has none; write %%20 in a user name or "
                           "password)",
                           at(i));
        if (c < 0x20 || c == 0x7f)
            return URL_ERR(-EINVAL, "control character 0x%02x at character %zu", c, at(i));
    }

    /* scheme "://" */
    size_t s = 0;
    if (is_alpha(u[0]))
        while (is_alnum(u[s]) || u[s] == '+' || u[s] == '-' || u[s] == '.')
            s++;
    char name[32];
    size_t n = s < sizeof name ? s : sizeof name - 1;
    for (size_t i = 0; i < n; i++)
        name[i] = to_lower(u[i]);
    name[n] = '\0';
    const struct scheme *sc = NULL;
    if (s < sizeof name)
        for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
            if (strcmp(schemes[i].name, name) == 0)
                sc = &schemes[i];
    bool slashes = s > 0 && u[s] == ':' && u[s + 1] == '/' && u[s + 2] == '/';
    if (!slashes) {
        if (sc && u[s] == ':')
            return URL_ERR(-EINVAL, "expected \"//\" after \"%s:\" at character %zu", name,
                           at(s + 1));
        return URL_ERR(-EINVAL,
                       "no scheme at the start (expected redis://host:port; " ACCEPTED ")");
    }
    if (!sc)
        return URL_ERR(-EINVAL, "unknown scheme \"%s%s\" at character 1 (" ACCEPTED ")", name,
                       s < sizeof name ? "" : "...");
    if (sc->tls && !tls_ok)
        return URL_ERR(-ENOTSUP,
                       "TLS is not supported by this build (%s://...); use redis:// on a trusted "
                       "network or a TLS proxy",
                       sc->name);
    out->kind = sc->kind;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (!schemes[i].tls && schemes[i].kind == sc->kind)
            ps->scheme = schemes[i].name;

    /* userinfo "@" */
    size_t r = s + 3, p = r;
    if (out->kind == RL_REDIS_UNIX) {
        if (u[r] != '/') {
            const char *a = NULL;
            for (const char *q = strstr(u + r, "@/"); q; q = strstr(q + 1, "@/"))
                a = q;
            if (!a)
                return URL_ERR(-EINVAL,
                               "unix:// takes an absolute socket path, not a host (character "
                               "%zu): unix:///path/to/socket",
                               at(r));
            p = (size_t)(a - u) + 1;
        }
    } else {
        const char *a = strrchr(u + r, '@');
        if (a)
            p = (size_t)(a - u) + 1;
    }
    if (p > r) {
        int rc = parse_userinfo(ps, r, p - 1);
        if (rc)
            return rc;
    }

    if (out->kind == RL_REDIS_UNIX)
        return parse_unix(ps, p);

    for (;;) {
        if (out->nhosts == RL_REDIS_MAX_HOSTS)
            return URL_ERR(-EINVAL, "more than %d hosts (host %d starts at character %zu)",
                           RL_REDIS_MAX_HOSTS, RL_REDIS_MAX_HOSTS + 1, at(p));
        int rc = parse_host(ps, &p);
        if (rc)
            return rc;
        if (u[p] != ',')
            break;
        if (out->kind == RL_REDIS_TCP)
            return URL_ERR(-EINVAL,
                           "redis:// takes one host (',' at character %zu); use "
                           "redis-sentinel:// or redis-cluster:// for several",
                           at(p));
        p++;
    }
    return parse_tail(ps, p);
}

int rl__redis_url_parse(const char *url, struct rl_redis_url *out)
{
    if (!url || !out)
        return URL_ERR(-EINVAL, "rl__redis_url_parse: url and out must not be NULL");
    struct parser ps = {.u = url, .out = out};
    int rc = parse(&ps, false);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

int rl__redis_url_redact(const char *url, char *out, size_t len)
{
    char saved[512];
    snprintf(saved, sizeof saved, "%s", rl_errmsg());
    struct rl_redis_url tmp;
    struct parser ps = {.u = url, .out = &tmp};
    int rc = url ? parse(&ps, true) : -EINVAL;
    memset(&tmp, 0, sizeof tmp);
    __asm__ __volatile__("" : : "r"(&tmp) : "memory"); /* the password copy is really wiped */
    rl__err(0, "%s", saved);

    const char *src = rc ? INVALID : url;
    size_t n = strlen(src), cut_b = n, cut_e = n;
    const char *mask = "";
    if (!rc && ps.pw_e > ps.pw_b) {
        cut_b = ps.pw_b;
        cut_e = ps.pw_e;
        mask = "***";
    }
    size_t mlen = strlen(mask), total = cut_b + mlen + (n - cut_e);
    if (!out || total >= len || total > INT_MAX) {
        if (out && len)
            out[0] = '\0';
        return rl__err(-ENOSPC, "redis url: the redacted URL needs %zu bytes, the buffer has %zu",
                       total + 1, len);
    }
    memcpy(out, src, cut_b);
    memcpy(out + cut_b, mask, mlen);
    memcpy(out + cut_b + mlen, src + cut_e, n - cut_e);
    out[total] = '\0';
    return (int)total;
}
