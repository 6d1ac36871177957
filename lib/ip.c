/*
 * IP addresses, CIDR blocks and rl_client_ip(). See ip.h.
 *
 * The parsers are written out here rather than calling inet_pton(): they read a counted range
 * (no NUL-terminated copy), accept exactly the forms ip.h lists on every libc, and cannot be
 * changed by the locale. Nothing in this file allocates.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/internal.h"
#include "lib/ip.h"

/* Longest X-Forwarded-For rl_client_ip() reads. */
#define RL_XFF_MAX 8192
/* Trusted blocks rl_client_ip() keeps parsed on the stack; later ones are parsed again when
 * needed (they were validated once already). */
#define RL_TRUST_CACHE 32

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A dotted quad filling exactly s[0..len): four parts of 1-3 digits, 0..255, no leading zero
 * (a leading zero means octal to some parsers: "010.0.0.1" is 8.0.0.1 to inet_aton). */
static bool parse4(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.')
                return false;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < len && is_digit(s[i]) && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t digits = i - start;
        if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0'))
            return false;
        out[part] = (uint8_t)v;
    }
    return i == len;
}

/* IPv6 text (RFC 4291 section 2.2) filling exactly s[0..len). */
static bool parse6(const char *s, size_t len, uint8_t out[16])
{
    uint16_t w[8] = {0};
    int n = 0;    /* groups read */
    int gap = -1; /* where "::" stands, in groups */
    size_t i = 0;

    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        i = 2;
    } else if (len >= 1 && s[0] == ':') {
        return false;
    }
    while (i < len) {
        /* A dotted quad may end the address: look past the hex digits for a '.'. */
        size_t j = i;
        while (j < len && hex_val(s[j]) >= 0)
            j++;
        if (j < len && s[j] == '.') {
            uint8_t q[4];
            if (n > 6 || !parse4(s + i, len - i, q))
                return false;
            w[n++] = (uint16_t)(q[0] << 8 | q[1]);
            w[n++] = (uint16_t)(q[2] << 8 | q[3]);
            i = len;
            break;
        }
        size_t digits = j - i;
        if (digits == 0 || digits > 4 || n == 8)
            return false;
        unsigned v = 0;
        for (; i < j; i++)
            v = v << 4 | (unsigned)hex_val(s[i]);
        w[n++] = (uint16_t)v;
        if (i == len)
            break;
        if (s[i] != ':')
            return false;
        i++;
        if (i < len && s[i] == ':') {
            if (gap >= 0)
                return false; /* a second "::" */
            gap = n;
            i++;
        } else if (i == len) {
            return false; /* a single trailing ':' */
        }
    }
    if (gap >= 0) {
        if (n == 8)
            return false; /* "::" must stand for at least one group */
        int tail = n - gap;
        memmove(&w[8 - tail], &w[gap], (size_t)tail * sizeof w[0]);
        for (int k = gap; k < 8 - tail; k++)
            w[k] = 0;
    } else if (n != 8) {
        return false;
    }
    for (int k = 0; k < 8; k++) {
        out[2 * k] = (uint8_t)(w[k] >> 8);
        out[2 * k + 1] = (uint8_t)w[k];
    }
    return true;
}

static bool is_mapped(const uint8_t a[16])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, prefix, sizeof prefix) == 0;
}

/* Parses without turning IPv4-mapped IPv6 into IPv4. */
static int parse_raw(const char *s, size_t len, struct rl_ip *out)
{
    if (!s || !out || len == 0)
        return -EINVAL;
    struct rl_ip ip;
    memset(&ip, 0, sizeof ip);
    if (s[0] == '[') {
        if (len < 2 || s[len - 1] != ']' || !memchr(s + 1, ':', len - 2))
            return -EINVAL; /* brackets only around IPv6 */
        if (!parse6(s + 1, len - 2, ip.addr))
            return -EINVAL;
        ip.family = 6;
    } else if (memchr(s, ':', len)) {
        if (!parse6(s, len, ip.addr))
            return -EINVAL;
        ip.family = 6;
    } else {
        if (!parse4(s, len, ip.addr))
            return -EINVAL;
        ip.family = 4;
    }
    *out = ip;
    return 0;
}

static void unmap(struct rl_ip *ip)
{
    if (ip->family == 6 && is_mapped(ip->addr)) {
        memmove(ip->addr, ip->addr + 12, 4);
        memset(ip->addr + 4, 0, 12);
        ip->family = 4;
    }
}

int rl__ip_parse(const char *s, size_t len, struct rl_ip *out)
{
    struct rl_ip ip;
    if (!out)
        return -EINVAL;
    int rc = parse_raw(s, len, &ip);
    if (rc < 0)
        return rc;
    unmap(&ip);
    *out = ip;
    return 0;
}

static unsigned family_bits(uint8_t family)
{
    return family == 4 ? 32u : 128u;
}

/* Clears every bit of a[] after the first `prefix` ones. */
static void mask_host(uint8_t a[16], unsigned prefix)
{
    for (unsigned byte = 0; byte < 16; byte++) {
        unsigned first = byte * 8; /* first bit of this byte */
        if (prefix <= first)
            a[byte] = 0;
        else if (prefix < first + 8)
            a[byte] &= (uint8_t)(0xffu << (8 - (prefix - first)));
    }
}

int rl__cidr_parse(const char *s, struct rl_cidr *out)
{
    if (!s || !out)
        return -EINVAL;
    size_t len = strlen(s);
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    struct rl_cidr c;
    memset(&c, 0, sizeof c);
    if (parse_raw(s, alen, &c.net) < 0)
        return -EINVAL;
    unsigned bits = family_bits(c.net.family);
    unsigned prefix = bits;
    if (slash) {
        const char *p = slash + 1;
        size_t plen = len - alen - 1;
        if (plen == 0 || plen > 3)
            return -EINVAL;
        prefix = 0;
        for (size_t i = 0; i < plen; i++) {
            if (!is_digit(p[i]))
                return -EINVAL;
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        }
        if (prefix > bits)
            return -EINVAL;
    }
    mask_host(c.net.addr, prefix);
    /* ::ffff:0:0/96 and longer are IPv4 blocks; shorter ones stay IPv6 (and, as rl__ip_parse
     * never gives a mapped address, match IPv6 addresses outside ::ffff:0:0/96 only). */
    if (c.net.family == 6 && prefix >= 96 && is_mapped(c.net.addr)) {
        unmap(&c.net);
        prefix -= 96;
    }
    c.prefix = prefix;
    *out = c;
    return 0;
}

bool rl__cidr_match(const struct rl_cidr *c, const struct rl_ip *ip)
{
    if (!c || !ip || c->net.family != ip->family || (ip->family != 4 && ip->family != 6))
        return false;
    unsigned bits = family_bits(ip->family);
    unsigned prefix = c->prefix < bits ? c->prefix : bits;
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(c->net.addr, ip->addr, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t m = (uint8_t)(0xffu << (8 - rest));
    return ((c->net.addr[whole] ^ ip->addr[whole]) & m) == 0;
}

/* RFC 5952 text of a 16-byte address into buf (at least 40 bytes); returns the length. */
static int format6(const uint8_t a[16], char *buf, size_t size)
{
    if (is_mapped(a)) /* RFC 5952 section 5: mixed notation */
        return snprintf(buf, size, "::ffff:%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
    unsigned w[8];
    for (int k = 0; k < 8; k++)
        w[k] = (unsigned)a[2 * k] << 8 | a[2 * k + 1];
    /* The longest run of zero groups, the first one on a tie; a single zero group stays. */
    int best = -1, best_len = 1;
    for (int k = 0; k < 8;) {
        if (w[k] != 0) {
            k++;
            continue;
        }
        int start = k;
        while (k < 8 && w[k] == 0)
            k++;
        if (k - start > best_len) {
            best = start;
            best_len = k - start;
        }
    }
    size_t n = 0;
    for (int k = 0; k < 8; k++) {
        if (k == best) {
            buf[n++] = ':';
            buf[n++] = ':';
            k += best_len - 1;
            continue;
        }
        if (n > 0 && buf[n - 1] != ':')
            buf[n++] = ':';
        n += (size_t)snprintf(buf + n, size - n, "%x", w[k]);
    }
    buf[n] = '\0';
    return (int)n;
}

int rl__ip_format(const struct rl_ip *ip, unsigned prefix, char *out, size_t len)
{
    if (!ip || (!out && len > 0) || (ip->family != 4 && ip->family != 6))
        return -EINVAL;
    char buf[RL_IP_TEXT_MAX];
    unsigned bits = family_bits(ip->family);
    uint8_t a[16];
    memcpy(a, ip->addr, sizeof a);
    if (prefix < bits)
        mask_host(a, prefix);
    int n;
    if (ip->family == 4) {
        /* By hand: this runs on every rl_check with a per-IP layer, and snprintf costs ~60 ns. */
        char *p = buf;
        for (int i = 0; i < 4; i++) {
            unsigned v = a[i];
            if (v >= 100)
                *p++ = (char)('0' + v / 100);
            if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
            *p++ = (char)('0' + v % 10);
            if (i < 3)
                *p++ = '.';
        }
        *p = '\0';
        n = (int)(p - buf);
    } else
        n = format6(a, buf, sizeof buf);
    if (prefix < bits)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "/%u", prefix);
    if ((size_t)n >= len) {
        if (len > 0)
            out[0] = '\0';
        return -ENOSPC;
    }
    memcpy(out, buf, (size_t)n + 1);
    return n;
}

/* ---- rl_client_ip -------------------------------------------------------------------------- */

/* A copy of untrusted text fit for a message: at most 64 bytes, bytes outside printable ASCII
 * shown as '?', "..." when cut. */
struct shown {
    char s[72];
};

static struct shown show(const char *s, size_t len)
{
    struct shown r;
    size_t n = len < 64 ? len : 64;
    for (size_t i = 0; i < n; i++)
        r.s[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (n < len)
        memcpy(r.s + n, "...", 4);
    else
        r.s[n] = '\0';
    return r;
}

/* A port after an address: 1 to 5 digits, at most 65535. */
static bool parse_port(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535;
}

/* An address as proxies write it: "192.0.2.1", "192.0.2.1:5678", "2001:db8::1",
 * "[2001:db8::1]", "[2001:db8::1]:443". A bare IPv6 address takes no port (it would be
 * ambiguous). */
static int parse_hostport(const char *s, size_t len, struct rl_ip *out)
{
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return -EINVAL;
        size_t hlen = (size_t)(close - s) + 1;
        if (hlen < len && (s[hlen] != ':' || !parse_port(s + hlen + 1, len - hlen - 1)))
            return -EINVAL;
        return rl__ip_parse(s, hlen, out);
    }
    const char *colon = memchr(s, ':', len);
    if (colon) {
        size_t hlen = (size_t)(colon - s);
        if (!memchr(colon + 1, ':', len - hlen - 1)) { /* one colon: IPv4 and a port */
            if (!parse_port(colon + 1, len - hlen - 1))
                return -EINVAL;
            len = hlen;
        }
    }
    return rl__ip_parse(s, len, out);
}

struct trust {
    const char *const *cidrs;
    size_t n;
    struct rl_cidr cache[RL_TRUST_CACHE];
};

static bool is_trusted(const struct trust *t, const struct rl_ip *ip)
{
    for (size_t i = 0; i < t->n; i++) {
        struct rl_cidr c;
        if (i < RL_TRUST_CACHE)
            c = t->cache[i];
        else if (rl__cidr_parse(t->cidrs[i], &c) < 0)
            continue; /* cannot happen: validated before */
        if (rl__cidr_match(&c, ip))
            return true;
    }
    return false;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int emit(const struct rl_ip *ip, char *out, size_t outlen)
{
    int n = rl__ip_format(ip, 128, out, outlen);
    if (n == -ENOSPC) {
        char buf[RL_IP_TEXT_MAX];
        int need = rl__ip_format(ip, 128, buf, sizeof buf);
        return rl__err(-ENOSPC,
                       "rl_client_ip: the answer \"%s\" needs %d bytes with its NUL but out has "
                       "%zu; pass a buffer of at least 46 bytes",
                       buf, need + 1, outlen);
    }
    return n;
}

RL_API int rl_client_ip(const char *peer, const char *x_forwarded_for,
                        const char *const *trusted_cidrs, size_t n, char *out, size_t outlen)
{
    rl__clear_err();
    if (!out && outlen > 0)
        return rl__err(-EINVAL, "rl_client_ip: out is NULL but outlen is %zu", outlen);
    if (!peer)
        return rl__err(-EINVAL, "rl_client_ip: peer is NULL; pass the connection's remote "
                                "address (\"192.0.2.1\" or \"2001:db8::1\")");
    if (!trusted_cidrs && n > 0)
        return rl__err(-EINVAL,
                       "rl_client_ip: trusted_cidrs is NULL but n is %zu; pass n = 0 "
                       "when no proxy is trusted",
                       n);

    struct trust t;
    t.cidrs = trusted_cidrs;
    t.n = n;
    for (size_t i = 0; i < n; i++) {
        struct rl_cidr c;
        if (!trusted_cidrs[i])
            return rl__err(-EINVAL, "rl_client_ip: trusted_cidrs[%zu] is NULL", i);
        if (rl__cidr_parse(trusted_cidrs[i], &c) < 0) {
            struct shown sh = show(trusted_cidrs[i], strlen(trusted_cidrs[i]));
            return rl__err(-EINVAL,
                           "rl_client_ip: trusted_cidrs[%zu] \"%s\" is not an address or CIDR "
                           "block; write it as \"10.0.0.0/8\", \"2001:db8::/32\" or \"127.0.0.1\"",
                           i, sh.s);
        }
        if (i < RL_TRUST_CACHE)
            t.cache[i] = c;
    }

    struct rl_ip peer_ip;
    size_t plen = strnlen(peer, RL_IP_TEXT_MAX * 2); /* longer is never an address */
    if (parse_hostport(peer, plen, &peer_ip) < 0) {
        struct shown sh = show(peer, plen);
        return rl__err(-EINVAL,
                       "rl_client_ip: peer \"%s\" is not an IP address; pass the connection's "
                       "remote address (\"192.0.2.1\", \"2001:db8::1\", a port may follow)",
                       sh.s);
    }
    if (!is_trusted(&t, &peer_ip) || !x_forwarded_for)
        return emit(&peer_ip, out, outlen);

    const char *h = x_forwarded_for;
    size_t hlen = strnlen(h, RL_XFF_MAX + 1);
    if (hlen > RL_XFF_MAX)
        return rl__err(-EINVAL,
                       "rl_client_ip: X-Forwarded-For too long (more than %d bytes); no proxy "
                       "chain needs that many, reject the request",
                       RL_XFF_MAX);
    size_t nentries = 1;
    for (size_t i = 0; i < hlen; i++)
        nentries += h[i] == ',';

    /* From the right: every entry was appended by the hop to its right, trusted so far. */
    struct rl_ip answer = peer_ip; /* the leftmost trusted entry so far, else the peer */
    size_t end = hlen, index = nentries;
    for (;;) {
        size_t start = end;
        while (start > 0 && h[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && is_blank(h[a]))
            a++;
        while (b > a && is_blank(h[b - 1]))
            b--;
        if (a < b) {
            struct rl_ip ip;
            if (parse_hostport(h + a, b - a, &ip) < 0) {
                struct shown sh = show(h + a, b - a);
                return rl__err(-EINVAL,
                               "rl_client_ip: X-Forwarded-For entry %zu of %zu (from the left) "
                               "\"%s\" is not an IP address, and every address to its right is "
                               "a trusted proxy; make the proxy that appends it write the "
                               "client's address, or check the trusted proxy list",
                               index, nentries, sh.s);
            }
            if (!is_trusted(&t, &ip))
                return emit(&ip, out, outlen);
            answer = ip;
        }
        if (start == 0)
            break;
        end = start - 1; /* before the comma */
        index--;
    }
    return emit(&answer, out, outlen);
}
