/*
 * Names of the enums (headers, configuration), durations, and the response formatting of a
 * decision: rate-limit headers (legacy X-RateLimit-* and the IETF RateLimit fields) and the JSON
 * body of a 429.
 *
 * Everything here writes into caller memory through a bounded writer and never allocates, never
 * blocks, and never calls into locale-dependent code. Output is all or nothing: on -ENOSPC (or any
 * error) the caller's buffer holds "" when it has room for the NUL.
 *
 * Header values are numbers, fixed names and sanitised policy names: none can contain CR, LF or
 * any other control character, whatever bytes a caller put in a decision.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lib/internal.h"
#include "lib/rules.h"

/* -------------------------------------------------------------------------------------------- */
/* Names                                                                                          */

static const char *const scope_names[RL_SCOPE_COUNT] = {
    [RL_SCOPE_IP] = "per_ip",
    [RL_SCOPE_USER] = "per_user",
    [RL_SCOPE_GLOBAL] = "global",
    [RL_SCOPE_ENDPOINT] = "per_endpoint",
    [RL_SCOPE_DESCRIPTOR] = "per_descriptor",
    [RL_SCOPE_USER_ENDPOINT] = "per_user_endpoint",
};

static const char *const algorithm_names[RL_ALGORITHM_COUNT] = {
    [RL_TOKEN_BUCKET] = "token_bucket",
    [RL_SLIDING_WINDOW] = "sliding_window",
    [RL_FIXED_WINDOW] = "fixed_window",
    [RL_GCRA] = "gcra",
};

#define RL_MODE_COUNT 3
static const char *const mode_names[RL_MODE_COUNT] = {
    [RL_MODE_LOCAL] = "local",
    [RL_MODE_GLOBAL] = "global",
    [RL_MODE_STRICT] = "strict",
};

RL_API const char *rl_scope_name(rl_scope s)
{
    return (unsigned)s < (unsigned)RL_SCOPE_COUNT ? scope_names[(unsigned)s] : NULL;
}

RL_API const char *rl_algorithm_name(rl_algorithm a)
{
    return (unsigned)a < (unsigned)RL_ALGORITHM_COUNT ? algorithm_names[(unsigned)a] : NULL;
}

const char *rl__mode_name(rl_mode m)
{
    return (unsigned)m < (unsigned)RL_MODE_COUNT ? mode_names[(unsigned)m] : NULL;
}

static int index_of(const char *const *names, int n, const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

int rl__algorithm_from_name(const char *s)
{
    return index_of(algorithm_names, RL_ALGORITHM_COUNT, s);
}

int rl__scope_from_name(const char *s)
{
    return index_of(scope_names, RL_SCOPE_COUNT, s);
}

int rl__mode_from_name(const char *s)
{
    return index_of(mode_names, RL_MODE_COUNT, s);
}

/* -------------------------------------------------------------------------------------------- */
/* Durations                                                                                      */

int rl__duration_ms(const char *s, uint64_t *ms)
{
    static const char expected[] = "expected a whole number of seconds, or a whole number "
                                   "followed by ms, s, m, h or d (\"250ms\", \"30s\", \"5m\")";
    if (!s || !ms)
        return rl__err(-EINVAL, "duration: missing value; %s", expected);
    const char *p = s;
    if (*p < '0' || *p > '9')
        return rl__err(-EINVAL, "duration \"%.64s\": %s", s, expected);
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return rl__err(-EINVAL, "duration \"%.64s\": too large", s);
        v = v * 10 + digit;
    }
    uint64_t mult;
    if (*p == '\0' || strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "m") == 0)
        mult = 60ULL * 1000;
    else if (strcmp(p, "h") == 0)
        mult = 3600ULL * 1000;
    else if (strcmp(p, "d") == 0)
        mult = 86400ULL * 1000;
    else
        return rl__err(-EINVAL, "duration \"%.64s\": %s", s, expected);
    if (v > UINT64_MAX / mult)
        return rl__err(-EINVAL, "duration \"%.64s\": too large (more than 2^64 - 1 ms)", s);
    *ms = v * mult;
    return 0;
}

/* -------------------------------------------------------------------------------------------- */
/* The bounded writer                                                                             */

/* Writes into buf[0, len) and keeps counting past the end, so the caller learns it overflowed;
 * a piece that does not fit whole is not written at all, and nothing after it either. */
struct out {
    char *buf;
    size_t len;
    size_t pos;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->pos <= o->len && n <= o->len - o->pos)
        memcpy(o->buf + o->pos, s, n);
    o->pos += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putc_(struct out *o, char c)
{
    put(o, &c, 1);
}

static void put_u64(struct out *o, uint64_t v)
{
    char tmp[20]; /* UINT64_MAX has 20 digits */
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, tmp + i, sizeof tmp - i);
}

/* NUL-terminates and returns the length, or clears the buffer and returns -ENOSPC. */
static int finish(struct out *o)
{
    if (o->pos >= o->len || o->pos > (size_t)INT_MAX) {
        if (o->len > 0)
            o->buf[0] = '\0';
        return rl__err(-ENOSPC, "output needs %zu bytes with its NUL, the buffer has %zu",
                       o->pos + 1, o->len);
    }
    o->buf[o->pos] = '\0';
    return (int)o->pos;
}

static int fail(char *buf, size_t len, int err)
{
    if (buf && len > 0)
        buf[0] = '\0';
    return err;
}

/* -------------------------------------------------------------------------------------------- */
/* Decisions                                                                                      */

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* Unix seconds at which the layer is fresh again: ceil((now_ns + reset_after_ms * 1e6) / 1e9),
 * in 128 bits (the largest inputs give about 1.8e16 s, which fits). */
static uint64_t reset_unix_s(const rl_decision *d, const rl_layer *l)
{
    rl_u128 ns = (rl_u128)d->now_ns + (rl_u128)l->reset_after_ms * 1000000u;
    rl_u128 s = ns / 1000000000u + (ns % 1000000000u != 0);
    return s > UINT64_MAX ? UINT64_MAX : (uint64_t)s;
}

/*
 * The layer that decides the output, or NULL when there is none (bypassed, no layer: *err 0), or
 * NULL with *err set when the decision is not one rl_check could have produced.
 */
static const rl_layer *limiting_layer(const rl_decision *d, int *err)
{
    *err = 0;
    if (d->limiting < 0 || d->n == 0)
        return NULL;
    if (d->n > RL_MAX_LAYERS || (size_t)d->limiting >= d->n) {
        *err = rl__err(-EINVAL, "decision: limiting layer %d outside layers[0..%zu)", d->limiting,
                       d->n);
        return NULL;
    }
    const rl_layer *l = &d->layers[d->limiting];
    if (!rl_scope_name(l->scope) || !rl_algorithm_name(l->algorithm)) {
        *err = rl__err(-EINVAL, "decision: layer %d has an unknown scope (%u) or algorithm (%u)",
                       d->limiting, (unsigned)l->scope, (unsigned)l->algorithm);
        return NULL;
    }
    return l;
}

/* Length of a decision's name field: they are meant to be NUL-terminated, but never read past
 * the array. */
static size_t name_len(const char s[RL_NAME_MAX])
{
    return strnlen(s, RL_NAME_MAX);
}

/* -------------------------------------------------------------------------------------------- */
/* Headers                                                                                        */

static void put_header_u64(struct out *o, const char *name, uint64_t v)
{
    puts_(o, name);
    put(o, ": ", 2);
    put_u64(o, v);
    put(o, "\r\n", 2);
}

static void put_header_str(struct out *o, const char *name, const char *v)
{
    puts_(o, name);
    put(o, ": ", 2);
    puts_(o, v);
    put(o, "\r\n", 2);
}

static bool policy_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

static void put_policy_part(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        putc_(o, policy_char((unsigned char)s[i]) ? s[i] : '_');
}

/*
 * The policy name, an sf-string (RFC 9651 section 3.3.3) in double quotes: "RULE:LAYER" with every
 * byte outside [A-Za-z0-9_.:-] replaced by '_' (so no escape is ever needed and no CR/LF can get
 * through). The rule keeps names unique across the rule set (layer names are only unique within
 * their rule). An empty part is left out with its ':'; both empty gives "default".
 */
static void put_policy_name(struct out *o, const rl_layer *l)
{
    size_t rn = name_len(l->rule), nn = name_len(l->name);
    putc_(o, '"');
    put_policy_part(o, l->rule, rn);
    if (rn && nn)
        putc_(o, ':');
    put_policy_part(o, l->name, nn);
    if (!rn && !nn)
        puts_(o, "default");
    putc_(o, '"');
}

/*
 * IETF fields, after draft-ietf-httpapi-ratelimit-headers-10 (27 September 2025), the latest
 * revision whose text was checked; -11 (23 May 2026) was seen by its metadata only. Since -08 both
 * fields are Lists of Items whose value names the policy, a String (the working group later also
 * allowed a Token; a String stays valid either way):
 *
 *   RateLimit-Policy: "NAME";q=LIMIT;w=SECS   q = quota (required); w = the layer's window in
 *                                             seconds, rounded up (omitted when unknown: 0)
 *   RateLimit: "NAME";r=REMAINING;t=SECONDS    r = remaining quota units; t = seconds (a delta)
 *                                             until the layer is fresh again (reset_after_ms,
 *                                             rounded up): an upper bound of -10's "until
 *                                             additional quota is made available"
 *
 * Only the limiting layer is described (one policy per response).
 */
static void put_ietf(struct out *o, const rl_layer *l)
{
    puts_(o, "RateLimit-Policy: ");
    put_policy_name(o, l);
    puts_(o, ";q=");
    put_u64(o, l->limit);
    if (l->window_ms) {
        puts_(o, ";w=");
        put_u64(o, ceil_div(l->window_ms, 1000));
    }
    put(o, "\r\n", 2);

    puts_(o, "RateLimit: ");
    put_policy_name(o, l);
    puts_(o, ";r=");
    put_u64(o, l->remaining);
    puts_(o, ";t=");
    put_u64(o, ceil_div(l->reset_after_ms, 1000));
    put(o, "\r\n", 2);
}

RL_API int rl_format_headers_ex(const rl_decision *d, unsigned flags, char *buf, size_t len)
{
    if (!d || !buf)
        return fail(buf, len, rl__err(-EINVAL, "rl_format_headers: NULL decision or buffer"));
    if (flags & ~(unsigned)(RL_HEADERS_LEGACY | RL_HEADERS_IETF))
        return fail(buf, len, rl__err(-EINVAL, "rl_format_headers_ex: unknown flags 0x%x", flags));
    int err;
    const rl_layer *l = limiting_layer(d, &err);
    if (err)
        return fail(buf, len, err);
    struct out o = {buf, len, 0};
    if (l) {
        if (flags & RL_HEADERS_LEGACY) {
            put_header_u64(&o, "X-RateLimit-Limit", l->limit);
            put_header_u64(&o, "X-RateLimit-Remaining", l->remaining);
            put_header_u64(&o, "X-RateLimit-Reset", reset_unix_s(d, l));
            put_header_str(&o, "X-RateLimit-Scope", rl_scope_name(l->scope));
            put_header_str(&o, "X-RateLimit-Algorithm", rl_algorithm_name(l->algorithm));
        }
        if (flags & RL_HEADERS_IETF)
            put_ietf(&o, l);
        /* Retry-After (RFC 9110 section 10.2.3) belongs to both sets: once, when denied, unless
         * the request can never be allowed (no wait would help). */
        if (flags && !d->allowed && l->retry_after_ms != RL_RETRY_NEVER)
            put_header_u64(&o, "Retry-After", ceil_div(l->retry_after_ms, 1000));
    }
    return finish(&o);
}

RL_API int rl_format_headers(const rl_decision *d, char *buf, size_t len)
{
    return rl_format_headers_ex(d, RL_HEADERS_LEGACY, buf, len);
}

/* -------------------------------------------------------------------------------------------- */
/* JSON body                                                                                      */

static void put_u_escape(struct out *o, unsigned c)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\',       'u', hex[(c >> 12) & 15], hex[(c >> 8) & 15], hex[(c >> 4) & 15],
                 hex[c & 15]};
    put(o, e, sizeof e);
}

/*
 * Length of the valid UTF-8 sequence at s[0, n) (Unicode 15, table 3-7: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not valid; then *bad is the length of its
 * maximal ill-formed subpart (at least 1), which is replaced by one U+FFFD.
 */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < need && i < n; i++) {
        unsigned char b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf))
            break;
    }
    if (i == need)
        return need;
    *bad = i;
    return 0;
}

/* s[0, n) as a JSON string: '"' and '\\' escaped, control characters and DEL as \u00XX, valid
 * UTF-8 kept as is, every ill-formed subpart as \ufffd. */
static void put_json_str(struct out *o, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    putc_(o, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(o, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            put_u_escape(o, c);
            i++;
        } else {
            size_t bad = 0, k = utf8_seq(s + i, n - i, &bad);
            if (k) {
                put(o, str + i, k);
                i += k;
            } else {
                put_u_escape(o, 0xfffd);
                i += bad;
            }
        }
    }
    putc_(o, '"');
}

static void put_json_key(struct out *o, const char *key, bool first)
{
    if (!first)
        putc_(o, ',');
    putc_(o, '"');
    puts_(o, key);
    put(o, "\":", 2);
}

static void put_json_u64(struct out *o, const char *key, uint64_t v)
{
    put_json_key(o, key, false);
    put_u64(o, v);
}

static void put_json_name(struct out *o, const char *key, const char *s, size_t n)
{
    put_json_key(o, key, false);
    put_json_str(o, s, n);
}

/* Builds the human-readable message in m (plain ASCII, no character that needs escaping). */
static void put_message(struct out *m, const rl_decision *d, const rl_layer *l)
{
    if (!l) {
        if (!d->allowed)
            puts_(m, "Rate limit exceeded");
        else if (d->bypassed)
            puts_(m, "Request allowed: on the bypass list");
        else if (d->disabled)
            puts_(m, "Request allowed: rate limiting is disabled");
        else
            puts_(m, "Request allowed: no rate limit applies");
        return;
    }
    if (d->allowed) {
        puts_(m, "Request allowed: ");
        put_u64(m, l->remaining);
        puts_(m, " of ");
        put_u64(m, l->limit);
        puts_(m, " remaining (");
        puts_(m, rl_scope_name(l->scope));
        putc_(m, ')');
        return;
    }
    puts_(m, "Rate limit exceeded: ");
    if (l->retry_after_ms == RL_RETRY_NEVER) {
        puts_(m, "this request exceeds the limit of ");
        put_u64(m, l->limit);
        puts_(m, " (");
        puts_(m, rl_scope_name(l->scope));
        puts_(m, ") and can never be allowed");
        return;
    }
    uint64_t secs = ceil_div(l->retry_after_ms, 1000);
    puts_(m, "limit of ");
    put_u64(m, l->limit);
    puts_(m, " reached (");
    puts_(m, rl_scope_name(l->scope));
    puts_(m, "); try again in ");
    put_u64(m, secs);
    puts_(m, secs == 1 ? " second" : " seconds");
}

RL_API int rl_format_body(const rl_decision *d, char *buf, size_t len)
{
    if (!d || !buf)
        return fail(buf, len, rl__err(-EINVAL, "rl_format_body: NULL decision or buffer"));
    int err;
    const rl_layer *l = limiting_layer(d, &err);
    if (err)
        return fail(buf, len, err);

    char msg[256]; /* the longest message is about 150 bytes */
    struct out m = {msg, sizeof msg, 0};
    put_message(&m, d, l);
    if (m.pos >= m.len) /* cannot happen: the message has a fixed shape */
        return fail(buf, len, rl__err(-EINVAL, "rl_format_body: message too long"));

    struct out o = {buf, len, 0};
    putc_(&o, '{');
    put_json_key(&o, "error", true);
    puts_(&o, d->allowed ? "\"ok\"" : "\"rate_limited\"");
    put_json_name(&o, "message", msg, m.pos);
    if (l) {
        put_json_u64(&o, "limit", l->limit);
        put_json_u64(&o, "remaining", l->remaining);
        put_json_u64(&o, "reset", reset_unix_s(d, l));
        /* Seconds to wait: 0 when allowed, null when no wait will ever do. */
        put_json_key(&o, "retry_after", false);
        if (d->allowed)
            put_u64(&o, 0);
        else if (l->retry_after_ms == RL_RETRY_NEVER)
            puts_(&o, "null");
        else
            put_u64(&o, ceil_div(l->retry_after_ms, 1000));
        put_json_name(&o, "scope", rl_scope_name(l->scope), strlen(rl_scope_name(l->scope)));
        put_json_name(&o, "algorithm", rl_algorithm_name(l->algorithm),
                      strlen(rl_algorithm_name(l->algorithm)));
        put_json_name(&o, "rule", l->rule, name_len(l->rule));
        put_json_name(&o, "layer", l->name, name_len(l->name));
    }
    putc_(&o, '}');
    return finish(&o);
}
