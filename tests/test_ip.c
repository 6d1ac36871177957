/*
 * Addresses, CIDR blocks and rl_client_ip() (lib/ip.c). Hermetic: no segment is opened.
 *
 * Every expected value below was worked out by hand from the rules in lib/ip.h and the comment
 * of rl_client_ip() in rl.h, not read off the library: RFC 5952 text (lower case, no leading
 * zeros, the longest run of two or more zero groups as "::", the first on a tie), masks written
 * out bit by bit where a prefix cuts a byte or a group, and X-Forwarded-For walked from the right
 * by hand. Tables check every row and name the row that fails.
 */
#include <arpa/inet.h>

#include "rl_test.h"

#include "internal.h"
#include "ip.h"

TestSuite(ip);

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define OK      0
#define BAD     (-EINVAL)

/* ---- rl__ip_parse + rl__ip_format: round trips ----------------------------------------------- */

struct parse_row {
    const char *in;
    int rc;
    const char *out; /* canonical text (rl__ip_format, whole address) when rc == 0 */
    int family;
};

/* clang-format off */
static const struct parse_row parse_rows[] = {
    /* IPv4 */
    {"1.2.3.4", OK, "1.2.3.4", 4},
    {"0.0.0.0", OK, "0.0.0.0", 4},
    {"255.255.255.255", OK, "255.255.255.255", 4},
    {"192.168.100.1", OK, "192.168.100.1", 4},
    {"10.0.0.0", OK, "10.0.0.0", 4},
    /* IPv6: compressed, uncompressed, upper case; RFC 5952 output */
    {"2001:db8::1", OK, "2001:db8::1", 6},
    {"2001:0db8:0000:0000:0000:0000:0000:0001", OK, "2001:db8::1", 6},
    {"2001:DB8::ABCD", OK, "2001:db8::abcd", 6},
    {"2001:Db8:0:0:0:0:0:1", OK, "2001:db8::1", 6},
    {"::", OK, "::", 6},
    {"0:0:0:0:0:0:0:0", OK, "::", 6},
    {"::1", OK, "::1", 6},
    {"1::", OK, "1::", 6},
    {"fe80::1", OK, "fe80::1", 6},
    {"2001:db8:0:0:1:0:0:1", OK, "2001:db8::1:0:0:1", 6},   /* tie: the first run */
    {"2001:0:0:1:0:0:0:1", OK, "2001:0:0:1::1", 6},         /* the longer run wins */
    {"2001:db8:0:1:1:1:1:1", OK, "2001:db8:0:1:1:1:1:1", 6}, /* one zero group: no "::" */
    {"1:2:3:4:5:6:7::", OK, "1:2:3:4:5:6:7:0", 6},          /* "::" for one group, read */
    {"::1:2:3:4:5:6:7", OK, "0:1:2:3:4:5:6:7", 6},
    {"1:2:3:4:5:6:7:8", OK, "1:2:3:4:5:6:7:8", 6},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", OK, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 6},
    {"0001:0020:0300:4000::", OK, "1:20:300:4000::", 6},
    /* dotted quad tails; IPv4-mapped becomes IPv4 */
    {"::ffff:1.2.3.4", OK, "1.2.3.4", 4},
    {"::FFFF:102:304", OK, "1.2.3.4", 4},
    {"0:0:0:0:0:ffff:10.0.0.1", OK, "10.0.0.1", 4},
    {"::ffff:0:0", OK, "0.0.0.0", 4},
    {"::1.2.3.4", OK, "::102:304", 6},        /* IPv4-compatible (deprecated): stays IPv6 */
    {"64:ff9b::1.2.3.4", OK, "64:ff9b::102:304", 6},
    {"1:2:3:4:5:6:1.2.3.4", OK, "1:2:3:4:5:6:102:304", 6},
    {"::fffe:1.2.3.4", OK, "::fffe:102:304", 6}, /* not mapped */
    /* brackets */
    {"[2001:db8::1]", OK, "2001:db8::1", 6},
    {"[::ffff:10.0.0.1]", OK, "10.0.0.1", 4},
    {"[::]", OK, "::", 6},
    /* garbage */
    {"", BAD, NULL, 0},
    {"1.2.3", BAD, NULL, 0},
    {"256.1.1.1", BAD, NULL, 0},
    {"1.256.1.1", BAD, NULL, 0},
    {"1.2.3.4.5", BAD, NULL, 0},
    {"1.2.3.4444", BAD, NULL, 0},
    {"01.2.3.4", BAD, NULL, 0},     /* octal to inet_aton: refused */
    {"1.2.3.00", BAD, NULL, 0},
    {"1..2.3", BAD, NULL, 0},
    {".1.2.3", BAD, NULL, 0},
    {"1.2.3.", BAD, NULL, 0},
    {"1.2.3.-4", BAD, NULL, 0},
    {"0x1.2.3.4", BAD, NULL, 0},
    {"1000", BAD, NULL, 0},
    {" 1.2.3.4", BAD, NULL, 0},     /* callers trim */
    {"1.2.3.4 ", BAD, NULL, 0},
    {"1.2.3.4\n", BAD, NULL, 0},
    {"1.2.3.4/8", BAD, NULL, 0},    /* a block is not an address */
    {"1.2.3.4:80", BAD, NULL, 0},   /* ports are rl_client_ip's business */
    {"[1.2.3.4]", BAD, NULL, 0},    /* brackets only around IPv6 */
    {"[::1]:443", BAD, NULL, 0},
    {"[::1", BAD, NULL, 0},
    {"::1]", BAD, NULL, 0},
    {"[]", BAD, NULL, 0},
    {"[", BAD, NULL, 0},
    {"::g", BAD, NULL, 0},
    {"g::", BAD, NULL, 0},
    {"fe80::1%eth0", BAD, NULL, 0}, /* zones refused */
    {"fe80::1%1", BAD, NULL, 0},
    {":::", BAD, NULL, 0},
    {"1:::2", BAD, NULL, 0},
    {"1::2::3", BAD, NULL, 0},
    {":1::", BAD, NULL, 0},
    {":1", BAD, NULL, 0},
    {"1:", BAD, NULL, 0},
    {"1:2:3:4:5:6:7", BAD, NULL, 0},
    {"1:2:3:4:5:6:7:8:9", BAD, NULL, 0},
    {"1:2:3:4:5:6:7:8::", BAD, NULL, 0}, /* "::" must stand for a group */
    {"::1:2:3:4:5:6:7:8", BAD, NULL, 0},
    {"12345::", BAD, NULL, 0},
    {"1:2:3:4:5:6:7:1.2.3.4", BAD, NULL, 0},
    {"::1.2.3", BAD, NULL, 0},
    {"::1.2.3.4:5", BAD, NULL, 0},
    {"1.2.3.4::", BAD, NULL, 0},
    {"::ffff:256.1.1.1", BAD, NULL, 0},
    {"::ffff:01.2.3.4", BAD, NULL, 0},
    {"2001:db8::1 ", BAD, NULL, 0},
};
/* clang-format on */

Test(ip, parse_format_round_trips)
{
    for (size_t i = 0; i < N_OF(parse_rows); i++) {
        const struct parse_row *r = &parse_rows[i];
        struct rl_ip ip;
        memset(&ip, 0xa5, sizeof ip);
        int rc = rl__ip_parse(r->in, strlen(r->in), &ip);
        cr_expect_eq(rc, r->rc, "row %zu: rl__ip_parse(\"%s\") = %d, expected %d", i, r->in, rc,
                     r->rc);
        if (rc != 0 || r->rc != 0)
            continue;
        cr_expect_eq(ip.family, r->family, "row %zu \"%s\": family %d, expected %d", i, r->in,
                     ip.family, r->family);
        char buf[RL_IP_TEXT_MAX];
        int n = rl__ip_format(&ip, 128, buf, sizeof buf);
        cr_expect_eq(n, (int)strlen(r->out), "row %zu \"%s\": format returned %d", i, r->in, n);
        if (n < 0)
            continue;
        cr_expect_str_eq(buf, r->out, "row %zu \"%s\": \"%s\", expected \"%s\"", i, r->in, buf,
                         r->out);
        /* The canonical text parses back to the same address. */
        struct rl_ip again;
        cr_expect_eq(rl__ip_parse(buf, (size_t)n, &again), 0, "row %zu: \"%s\" again", i, buf);
        cr_expect(memcmp(&again, &ip, sizeof ip) == 0, "row %zu: \"%s\" differs", i, buf);
    }
}

Test(ip, parse_counted_range_and_details)
{
    struct rl_ip ip;
    /* Exactly len bytes are read: the rest of the string is not looked at. */
    cr_expect_eq(rl__ip_parse("1.2.3.4xyz", 7, &ip), 0);
    cr_expect_eq(ip.family, 4);
    cr_expect_eq(rl__ip_parse("1.2.3.4", 6, &ip), BAD); /* "1.2.3." */
    /* A NUL inside the range is garbage. */
    cr_expect_eq(rl__ip_parse("1.2.3.4\0", 8, &ip), BAD);
    cr_expect_eq(rl__ip_parse("::1\0:2", 6, &ip), BAD);
    cr_expect_eq(rl__ip_parse(NULL, 3, &ip), BAD);
    cr_expect_eq(rl__ip_parse("1.2.3.4", 7, NULL), BAD);
    cr_expect_eq(rl__ip_parse("1.2.3.4", 0, &ip), BAD);

    /* IPv4 lies in addr[0..3], the rest zero; mapped addresses are stored the same way. */
    static const uint8_t want4[16] = {192, 0, 2, 1};
    cr_assert_eq(rl__ip_parse("::ffff:192.0.2.1", 16, &ip), 0);
    cr_expect_eq(ip.family, 4);
    cr_expect(memcmp(ip.addr, want4, 16) == 0);
    static const uint8_t want6[16] = {0x20, 0x01, 0x0d, 0xb8, [14] = 0xab, [15] = 0xcd};
    cr_assert_eq(rl__ip_parse("2001:db8::abcd", 14, &ip), 0);
    cr_expect_eq(ip.family, 6);
    cr_expect(memcmp(ip.addr, want6, 16) == 0);
    /* A failed parse leaves *out alone. */
    memset(&ip, 0x5a, sizeof ip);
    cr_expect_eq(rl__ip_parse("1.2.3", 5, &ip), BAD);
    cr_expect_eq(ip.family, 0x5a);
}

/* ---- rl__cidr_parse -----------------------------------------------------------------------------
 */

struct cidr_row {
    const char *in;
    int rc;
    const char *text; /* rl__ip_format(&net, prefix) */
    unsigned prefix;
};

/* clang-format off */
static const struct cidr_row cidr_rows[] = {
    {"10.0.0.0/8", OK, "10.0.0.0/8", 8},
    {"10.1.2.3/8", OK, "10.0.0.0/8", 8},           /* host bits cleared */
    {"0.0.0.0/0", OK, "0.0.0.0/0", 0},
    {"1.2.3.4/0", OK, "0.0.0.0/0", 0},
    {"192.168.1.77/32", OK, "192.168.1.77", 32},
    {"192.168.1.77", OK, "192.168.1.77", 32},      /* bare address: /32 */
    {"127.0.0.1", OK, "127.0.0.1", 32},
    {"172.31.255.255/12", OK, "172.16.0.0/12", 12}, /* 0x1f -> 0x10 */
    {"10.0.0.1/31", OK, "10.0.0.0/31", 31},
    {"192.168.1.200/25", OK, "192.168.1.128/25", 25},
    {"2001:db8::/32", OK, "2001:db8::/32", 32},
    {"2001:db8:1:2:3:4:5:6/64", OK, "2001:db8:1:2::/64", 64},
    {"2001:db8::1/128", OK, "2001:db8::1", 128},
    {"2001:db8::1", OK, "2001:db8::1", 128},       /* bare address: /128 */
    {"::/0", OK, "::/0", 0},
    {"::1", OK, "::1", 128},
    {"2001:db8:abcd:ef12::/20", OK, "2001::/20", 20}, /* 0x0db8 keeps its top nibble 0 */
    {"2001:db8::/31", OK, "2001:db8::/31", 31},
    {"2001:db9::/31", OK, "2001:db8::/31", 31},
    {"[2001:db8::]/48", OK, "2001:db8::/48", 48},
    {"2001:DB8::/32", OK, "2001:db8::/32", 32},
    {"10.0.0.0/08", OK, "10.0.0.0/8", 8},          /* decimal digits, not octal */
    /* IPv4-mapped blocks of /96 and longer are IPv4 blocks */
    {"::ffff:10.0.0.0/104", OK, "10.0.0.0/8", 8},
    {"::ffff:10.1.2.3/128", OK, "10.1.2.3", 32},
    {"::ffff:10.1.2.3", OK, "10.1.2.3", 32},
    {"::ffff:0:0/96", OK, "0.0.0.0/0", 0},
    {"::ffff:1.2.3.4/95", OK, "::fffe:0:0/95", 95}, /* shorter: IPv6, 0xffff -> 0xfffe */
    /* bad */
    {"10.0.0.0/33", BAD, NULL, 0},
    {"::/129", BAD, NULL, 0},
    {"::ffff:1.2.3.4/129", BAD, NULL, 0},
    {"10.0.0.0/-1", BAD, NULL, 0},
    {"10.0.0.0/+8", BAD, NULL, 0},
    {"10.0.0.0/x", BAD, NULL, 0},
    {"10.0.0.0/", BAD, NULL, 0},
    {"10.0.0.0/ 8", BAD, NULL, 0},
    {"10.0.0.0/8 ", BAD, NULL, 0},
    {"10.0.0.0/1000", BAD, NULL, 0},
    {"10.0.0.0/0008", BAD, NULL, 0},
    {"10.0.0.0/8/8", BAD, NULL, 0},
    {"/8", BAD, NULL, 0},
    {"10.0.0/8", BAD, NULL, 0},
    {"10.0.0.0.0/8", BAD, NULL, 0},
    {" 10.0.0.0/8", BAD, NULL, 0},
    {"", BAD, NULL, 0},
    {"/", BAD, NULL, 0},
    {"[10.0.0.0]/8", BAD, NULL, 0},
    {"fe80::%eth0/64", BAD, NULL, 0},
    {"10.0.0.0:80/8", BAD, NULL, 0},
};
/* clang-format on */

Test(ip, cidr_parse)
{
    for (size_t i = 0; i < N_OF(cidr_rows); i++) {
        const struct cidr_row *r = &cidr_rows[i];
        struct rl_cidr c;
        memset(&c, 0xa5, sizeof c);
        int rc = rl__cidr_parse(r->in, &c);
        cr_expect_eq(rc, r->rc, "row %zu: rl__cidr_parse(\"%s\") = %d, expected %d", i, r->in, rc,
                     r->rc);
        if (rc != 0 || r->rc != 0)
            continue;
        cr_expect_eq(c.prefix, r->prefix, "row %zu \"%s\": prefix %u, expected %u", i, r->in,
                     c.prefix, r->prefix);
        char buf[RL_IP_TEXT_MAX];
        int n = rl__ip_format(&c.net, c.prefix, buf, sizeof buf);
        cr_expect_eq(n, (int)strlen(r->text), "row %zu \"%s\": format returned %d", i, r->in, n);
        if (n >= 0)
            cr_expect_str_eq(buf, r->text, "row %zu \"%s\": \"%s\", expected \"%s\"", i, r->in, buf,
                             r->text);
        /* The network is stored masked: formatting it whole gives the same address. */
        char whole[RL_IP_TEXT_MAX];
        cr_expect_geq(rl__ip_format(&c.net, 128, whole, sizeof whole), 0);
        cr_expect_eq(strncmp(buf, whole, strlen(whole)), 0, "row %zu: net %s not masked", i, whole);
    }
    struct rl_cidr c;
    cr_expect_eq(rl__cidr_parse(NULL, &c), BAD);
    cr_expect_eq(rl__cidr_parse("10.0.0.0/8", NULL), BAD);
}

/* ---- rl__cidr_match -----------------------------------------------------------------------------
 */

struct match_row {
    const char *cidr;
    const char *ip;
    bool match;
};

/* clang-format off */
static const struct match_row match_rows[] = {
    {"10.0.0.0/8", "10.0.0.1", true},
    {"10.0.0.0/8", "10.255.255.255", true},
    {"10.0.0.0/8", "10.0.0.0", true},
    {"10.0.0.0/8", "11.0.0.0", false},
    {"10.0.0.0/8", "9.255.255.255", false},
    {"10.0.0.0/8", "::ffff:10.0.0.1", true},    /* mapped: IPv4 */
    {"10.0.0.0/8", "::a00:1", false},           /* ::10.0.0.1 is IPv6 */
    {"10.1.2.3/8", "10.200.0.0", true},         /* host bits of the block cleared */
    {"0.0.0.0/0", "1.2.3.4", true},
    {"0.0.0.0/0", "255.255.255.255", true},
    {"0.0.0.0/0", "::1", false},                /* families differ */
    {"0.0.0.0/0", "::", false},
    {"127.0.0.1", "127.0.0.1", true},
    {"127.0.0.1", "127.0.0.2", false},
    {"127.0.0.1/32", "127.0.0.0", false},
    {"192.168.1.0/25", "192.168.1.127", true},
    {"192.168.1.0/25", "192.168.1.128", false},
    {"172.16.0.0/12", "172.31.255.255", true},
    {"172.16.0.0/12", "172.32.0.0", false},
    {"2001:db8:1:2::/64", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
    {"2001:db8:1:2::/64", "2001:db8:1:2::", true},
    {"2001:db8:1:2::/64", "2001:db8:1:3::", false},
    {"2001:db8:1:2::/64", "2001:db8:1:1:ffff:ffff:ffff:ffff", false},
    {"2001:db8::1/128", "2001:db8::1", true},
    {"2001:db8::1/128", "2001:db8::2", false},
    {"2001:db8::/31", "2001:db9:ffff::", true},  /* 0xdb9 >> 1 == 0xdb8 >> 1 */
    {"2001:db8::/31", "2001:dba::", false},
    {"::/0", "2001:db8::1", true},
    {"::/0", "::", true},
    {"::/0", "1.2.3.4", false},
    {"::/0", "::ffff:1.2.3.4", false},          /* that is 1.2.3.4: IPv4 */
    {"::1", "::1", true},
    {"::1", "127.0.0.1", false},
    {"::ffff:10.0.0.0/104", "10.9.9.9", true},
    {"::ffff:10.0.0.0/104", "11.0.0.0", false},
};
/* clang-format on */

Test(ip, cidr_match)
{
    for (size_t i = 0; i < N_OF(match_rows); i++) {
        const struct match_row *r = &match_rows[i];
        struct rl_cidr c;
        struct rl_ip ip;
        cr_assert_eq(rl__cidr_parse(r->cidr, &c), 0, "row %zu: %s", i, r->cidr);
        cr_assert_eq(rl__ip_parse(r->ip, strlen(r->ip), &ip), 0, "row %zu: %s", i, r->ip);
        cr_expect_eq(rl__cidr_match(&c, &ip), r->match, "row %zu: %s in %s: %d, expected %d", i,
                     r->ip, r->cidr, !r->match, r->match);
    }
    struct rl_cidr c;
    struct rl_ip ip;
    cr_assert_eq(rl__cidr_parse("0.0.0.0/0", &c), 0);
    cr_assert_eq(rl__ip_parse("1.2.3.4", 7, &ip), 0);
    cr_expect(!rl__cidr_match(NULL, &ip));
    cr_expect(!rl__cidr_match(&c, NULL));
    ip.family = 5; /* neither family */
    cr_expect(!rl__cidr_match(&c, &ip));
}

/* ---- rl__ip_format: grouping by prefix, sizes ----------------------------------------------- */

struct format_row {
    const char *ip;
    unsigned prefix;
    const char *out;
};

/* clang-format off */
static const struct format_row format_rows[] = {
    {"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
    {"2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"},  /* same /64, same key */
    {"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6"},
    {"2001:db8:1:2:3:4:5:6", 200, "2001:db8:1:2:3:4:5:6"},          /* >= 128: whole */
    {"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"},
    {"2001:db8:1:2:3:4:5:6", 56, "2001:db8:1::/56"},                /* 0x0002 & 0xff00 */
    {"2001:db8:1:2ff:3:4:5:6", 56, "2001:db8:1:200::/56"},          /* 0x02ff & 0xff00 */
    {"2001:db8:1:2:3:4:5:6", 0, "::/0"},
    {"2001:db8:1:2:3:4:5:6", 127, "2001:db8:1:2:3:4:5:6/127"},      /* 6 & ~1 = 6 */
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 127,
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"},                 /* the longest text */
    {"1.2.3.4", 64, "1.2.3.4"},                                     /* v4: 64 >= 32, whole */
    {"1.2.3.4", 32, "1.2.3.4"},
    {"1.2.3.4", 24, "1.2.3.0/24"},
    {"1.2.3.255", 31, "1.2.3.254/31"},
    {"1.2.3.4", 0, "0.0.0.0/0"},
    {"::ffff:1.2.3.4", 64, "1.2.3.4"},                              /* mapped: IPv4 */
};
/* clang-format on */

Test(ip, format_prefix_grouping)
{
    for (size_t i = 0; i < N_OF(format_rows); i++) {
        const struct format_row *r = &format_rows[i];
        struct rl_ip ip;
        cr_assert_eq(rl__ip_parse(r->ip, strlen(r->ip), &ip), 0, "row %zu: %s", i, r->ip);
        char buf[RL_IP_TEXT_MAX];
        int n = rl__ip_format(&ip, r->prefix, buf, sizeof buf);
        cr_expect_eq(n, (int)strlen(r->out), "row %zu: %s /%u returned %d", i, r->ip, r->prefix, n);
        if (n >= 0)
            cr_expect_str_eq(buf, r->out, "row %zu: %s /%u: \"%s\", expected \"%s\"", i, r->ip,
                             r->prefix, buf, r->out);
        /* The input is not modified by the masking. */
        struct rl_ip again;
        cr_assert_eq(rl__ip_parse(r->ip, strlen(r->ip), &again), 0);
        cr_expect(memcmp(&again, &ip, sizeof ip) == 0, "row %zu: ip changed", i);
    }
}

Test(ip, format_sizes_and_bad_arguments)
{
    struct rl_ip ip;
    char buf[64];
    cr_assert_eq(rl__ip_parse("1.2.3.4", 7, &ip), 0);
    memset(buf, 'x', sizeof buf);
    cr_expect_eq(rl__ip_format(&ip, 32, buf, 7), -ENOSPC); /* 7 characters + NUL = 8 */
    cr_expect_eq(buf[0], '\0', "out holds \"\" after -ENOSPC");
    cr_expect_eq(rl__ip_format(&ip, 32, buf, 8), 7);
    cr_expect_str_eq(buf, "1.2.3.4");
    cr_expect_eq(rl__ip_format(&ip, 32, NULL, 0), -ENOSPC);
    cr_expect_eq(rl__ip_format(&ip, 32, NULL, 8), -EINVAL);
    cr_expect_eq(rl__ip_format(NULL, 32, buf, sizeof buf), -EINVAL);

    cr_assert_eq(rl__ip_parse("2001:db8:1:2:3:4:5:6", 20, &ip), 0);
    cr_expect_eq(rl__ip_format(&ip, 64, buf, 17), -ENOSPC); /* "2001:db8:1:2::/64" is 17 */
    cr_expect_eq(rl__ip_format(&ip, 64, buf, 18), 17);
    cr_expect_str_eq(buf, "2001:db8:1:2::/64");

    /* The longest text fits RL_IP_TEXT_MAX. */
    cr_assert_eq(rl__ip_parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 39, &ip), 0);
    cr_expect_eq(rl__ip_format(&ip, 1, buf, RL_IP_TEXT_MAX), 8); /* "8000::/1" */
    cr_expect_str_eq(buf, "8000::/1");
    cr_expect_eq(rl__ip_format(&ip, 127, buf, 44), 43);
    cr_expect_lt(43, RL_IP_TEXT_MAX);

    /* A family-6 address holding ::ffff:a.b.c.d (made by hand; the parser never gives one) is
     * written in mixed notation (RFC 5952 section 5). */
    struct rl_ip m = {.family = 6, .addr = {[10] = 0xff, [11] = 0xff, 1, 2, 3, 4}};
    cr_expect_eq(rl__ip_format(&m, 128, buf, sizeof buf), 14);
    cr_expect_str_eq(buf, "::ffff:1.2.3.4");

    struct rl_ip bad = {.family = 5};
    cr_expect_eq(rl__ip_format(&bad, 128, buf, sizeof buf), -EINVAL);
    bad.family = 0;
    cr_expect_eq(rl__ip_format(&bad, 128, buf, sizeof buf), -EINVAL);
}

/* ---- rl_client_ip: X-Forwarded-For ------------------------------------------------------------
 */

static const char *const trusted[] = {"10.0.0.0/8", "127.0.0.1"};

struct xff_row {
    const char *peer;
    const char *xff;
    int rc;
    const char *out; /* when rc == 0 */
};

/* clang-format off */
static const struct xff_row xff_rows[] = {
    /* An untrusted peer: the header is the client's own, never read. */
    {"203.0.113.7", "1.1.1.1", OK, "203.0.113.7"},
    {"203.0.113.7", "10.0.0.1", OK, "203.0.113.7"},          /* forged "I am your proxy" */
    {"203.0.113.7", "garbage, ,::g", OK, "203.0.113.7"},      /* not even parsed */
    {"203.0.113.7", NULL, OK, "203.0.113.7"},
    {"::1", "1.1.1.1", OK, "::1"},                            /* only 127.0.0.1 is trusted */
    {"127.0.0.2", "1.1.1.1", OK, "127.0.0.2"},
    /* A trusted peer: from the right, the first untrusted entry. */
    {"10.0.0.2", "1.1.1.1", OK, "1.1.1.1"},
    {"127.0.0.1", "1.1.1.1", OK, "1.1.1.1"},
    {"10.0.0.2", "6.6.6.6, 1.1.1.1", OK, "1.1.1.1"},          /* client prepended a fake */
    {"10.0.0.2", "10.0.0.9, 1.1.1.1", OK, "1.1.1.1"},         /* a fake trusted one too */
    {"10.0.0.2", "1.1.1.1, 10.0.0.5", OK, "1.1.1.1"},         /* a chain of proxies */
    {"127.0.0.1", "1.1.1.1, 10.0.0.5, 10.9.9.9", OK, "1.1.1.1"},
    {"10.0.0.2", "10.0.0.5,1.1.1.1,10.0.0.6", OK, "1.1.1.1"}, /* no spaces */
    {"10.0.0.2", "\t1.1.1.1\t", OK, "1.1.1.1"},
    {"10.0.0.2", "1.1.1.1 ,   10.0.0.5  ", OK, "1.1.1.1"},
    {"10.0.0.2", "1.1.1.1,,, ,\t,10.0.0.5", OK, "1.1.1.1"},   /* empty entries skipped */
    /* Every entry trusted: the leftmost; no entry at all: the peer. */
    {"10.0.0.2", "10.0.0.7, 127.0.0.1", OK, "10.0.0.7"},
    {"10.0.0.2", "10.0.0.7,,  ,127.0.0.1,", OK, "10.0.0.7"},
    {"10.0.0.2", "127.0.0.1", OK, "127.0.0.1"},
    {"10.0.0.2", NULL, OK, "10.0.0.2"},
    {"10.0.0.2", "", OK, "10.0.0.2"},
    {"10.0.0.2", " , ,\t", OK, "10.0.0.2"},
    {"10.0.0.2", ",", OK, "10.0.0.2"},
    /* Garbage to the right of the client is reached: an error. */
    {"10.0.0.2", "1.1.1.1, bogus", BAD, NULL},
    {"10.0.0.2", "1.1.1.1, 10.0.0.5, unknown", BAD, NULL},
    {"10.0.0.2", "1.1.1.1, 10.0.0.5 extra", BAD, NULL},
    {"10.0.0.2", "1.1.1.1, 1.2.3.4.5", BAD, NULL},
    {"10.0.0.2", "1.1.1.1, [10.0.0.5]", BAD, NULL},           /* brackets around IPv4 */
    {"10.0.0.2", "1.1.1.1:99999", BAD, NULL},                 /* port above 65535 */
    {"10.0.0.2", "1.1.1.1:", BAD, NULL},
    {"10.0.0.2", "1.1.1.1:80x", BAD, NULL},
    {"10.0.0.2", "[2001:db8::1]:", BAD, NULL},
    {"10.0.0.2", "[2001:db8::1]x", BAD, NULL},
    {"10.0.0.2", "[2001:db8::1", BAD, NULL},
    {"10.0.0.2", "fe80::1%eth0", BAD, NULL},
    {"10.0.0.2", "1.1.1.1\r\n", BAD, NULL},                   /* only spaces and tabs trimmed */
    {"10.0.0.2", "1.1.1.1/32", BAD, NULL},
    {"10.0.0.2", "01.1.1.1", BAD, NULL},
    /* Garbage to the left of the client is never reached. */
    {"10.0.0.2", "bogus, 1.1.1.1", OK, "1.1.1.1"},
    {"10.0.0.2", "<script>, ::g, 1.1.1.1, 10.0.0.5", OK, "1.1.1.1"},
    /* IPv6, brackets, ports, mapped addresses, normalised output */
    {"10.0.0.2", "2001:db8::1", OK, "2001:db8::1"},
    {"10.0.0.2", "6.6.6.6, 2001:DB8:0:0:0:0:0:1", OK, "2001:db8::1"},
    {"10.0.0.2", "[2001:DB8::1]:443", OK, "2001:db8::1"},
    {"10.0.0.2", "[2001:db8::1]", OK, "2001:db8::1"},
    {"10.0.0.2", "1.1.1.1:5678", OK, "1.1.1.1"},
    {"10.0.0.2", "1.1.1.1:0", OK, "1.1.1.1"},
    {"10.0.0.2", "1.1.1.1:65535, 10.0.0.5:80", OK, "1.1.1.1"},
    {"10.0.0.2", "::ffff:1.1.1.1", OK, "1.1.1.1"},
    {"10.0.0.2", "[::ffff:1.1.1.1]:80", OK, "1.1.1.1"},
    {"10.0.0.2", "1.1.1.1, ::ffff:10.0.0.9", OK, "1.1.1.1"},  /* mapped proxy: trusted */
    {"10.0.0.2", "1.1.1.1, ::ffff:a00:9", OK, "1.1.1.1"},     /* same, hex */
    {"10.0.0.2", "1.1.1.1, ::a00:9", OK, "::a00:9"},          /* ::10.0.0.9 is not mapped */
    {"10.0.0.2", "::ffff:10.0.0.9", OK, "10.0.0.9"},          /* all trusted: leftmost */
    {"::ffff:10.0.0.2", "1.1.1.1", OK, "1.1.1.1"},            /* mapped peer: trusted */
    {"::ffff:127.0.0.1", "1.1.1.1", OK, "1.1.1.1"},
    {"10.0.0.2:5555", "1.1.1.1", OK, "1.1.1.1"},              /* peer with a port */
    {"[::1]:80", "1.1.1.1", OK, "::1"},
    {"::ffff:203.0.113.7", "1.1.1.1", OK, "203.0.113.7"},
    {"2001:0db8::0001", NULL, OK, "2001:db8::1"},             /* the peer is normalised too */
    /* A bad peer. */
    {"bogus", "1.1.1.1", BAD, NULL},
    {"", "1.1.1.1", BAD, NULL},
    {" 10.0.0.2", "1.1.1.1", BAD, NULL},
    {"10.0.0.0/8", "1.1.1.1", BAD, NULL},
};
/* clang-format on */

static int client_ip(const char *peer, const char *xff, char *out, size_t outlen)
{
    return rl_client_ip(peer, xff, trusted, N_OF(trusted), out, outlen);
}

Test(ip, x_forwarded_for)
{
    for (size_t i = 0; i < N_OF(xff_rows); i++) {
        const struct xff_row *r = &xff_rows[i];
        char out[64];
        memset(out, 'x', sizeof out);
        int rc = client_ip(r->peer, r->xff, out, sizeof out);
        cr_expect_eq(rc, r->rc == OK ? (int)strlen(r->out) : r->rc,
                     "row %zu: peer \"%s\", X-Forwarded-For \"%s\": %d (%s)", i, r->peer,
                     r->xff ? r->xff : "(null)", rc, rl_errmsg());
        if (rc >= 0 && r->rc == OK)
            cr_expect_str_eq(out, r->out, "row %zu: \"%s\", expected \"%s\"", i, out, r->out);
        if (rc < 0)
            cr_expect_neq(rl_errmsg()[0], '\0', "row %zu: no message", i);
        else
            cr_expect_eq(rl_errmsg()[0], '\0', "row %zu: success left \"%s\"", i, rl_errmsg());
    }
}

/* A trust list of IPv6 blocks. */
Test(ip, x_forwarded_for_ipv6_proxies)
{
    static const char *const v6[] = {"2001:db8:ffff::/48", "::1", "fd00::/8"};
    char out[64];
    int rc = rl_client_ip("::1", "2001:db8:ffff::9, 2001:db8:aaaa::5, 2001:db8:ffff::1", v6, 3, out,
                          sizeof out);
    cr_expect_eq(rc, 16);
    cr_expect_str_eq(out, "2001:db8:aaaa::5");
    rc = rl_client_ip("[fd12::1]:8443", "1.1.1.1, [fd00::2]:1", v6, 3, out, sizeof out);
    cr_expect_eq(rc, 7);
    cr_expect_str_eq(out, "1.1.1.1");
    /* 127.0.0.1 is not in this list; ::1 is, and is not 127.0.0.1 either. */
    rc = rl_client_ip("127.0.0.1", "1.1.1.1", v6, 3, out, sizeof out);
    cr_expect_eq(rc, 9);
    cr_expect_str_eq(out, "127.0.0.1");
    /* No trusted proxy at all (NULL with n = 0 is allowed): always the peer. */
    rc = rl_client_ip("10.0.0.2", "1.1.1.1", NULL, 0, out, sizeof out);
    cr_expect_eq(rc, 8);
    cr_expect_str_eq(out, "10.0.0.2");
}

Test(ip, x_forwarded_for_messages)
{
    char out[64];
    cr_expect_eq(client_ip("10.0.0.2", "1.1.1.1, bogus, 10.0.0.5", out, sizeof out), BAD);
    cr_expect(strstr(rl_errmsg(), "entry 2 of 3") != NULL, "%s", rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "\"bogus\"") != NULL, "%s", rl_errmsg());
    /* Empty entries count in the numbering: it is the position in the header as written. */
    cr_expect_eq(client_ip("10.0.0.2", "1.1.1.1,, bogus", out, sizeof out), BAD);
    cr_expect(strstr(rl_errmsg(), "entry 3 of 3") != NULL, "%s", rl_errmsg());
    /* Control bytes from the header are not copied into the message; long entries are cut. */
    cr_expect_eq(client_ip("10.0.0.2", "1.1.1.1, \x01\x1b[2Jx", out, sizeof out), BAD);
    cr_expect(strstr(rl_errmsg(), "\"??[2Jx\"") != NULL, "%s", rl_errmsg());
    char big[200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_expect_eq(client_ip("10.0.0.2", big, out, sizeof out), BAD);
    cr_expect(strstr(rl_errmsg(), "aaaa...\"") != NULL, "%s", rl_errmsg());
    cr_expect_lt(strlen(rl_errmsg()), 400);

    cr_expect_eq(client_ip("bogus:1:2", NULL, out, sizeof out), BAD);
    cr_expect(strstr(rl_errmsg(), "peer \"bogus:1:2\"") != NULL, "%s", rl_errmsg());
    cr_expect_eq(client_ip(NULL, "1.1.1.1", out, sizeof out), BAD);
    cr_expect(strstr(rl_errmsg(), "peer is NULL") != NULL, "%s", rl_errmsg());

    static const char *const bad_list[] = {"10.0.0.0/8", "10.0.0.0/33"};
    cr_expect_eq(rl_client_ip("10.0.0.2", NULL, bad_list, 2, out, sizeof out), BAD);
    cr_expect(strstr(rl_errmsg(), "trusted_cidrs[1] \"10.0.0.0/33\"") != NULL, "%s", rl_errmsg());
    static const char *const null_entry[] = {"10.0.0.0/8", NULL};
    cr_expect_eq(rl_client_ip("10.0.0.2", NULL, null_entry, 2, out, sizeof out), BAD);
    cr_expect(strstr(rl_errmsg(), "trusted_cidrs[1] is NULL") != NULL, "%s", rl_errmsg());
    cr_expect_eq(rl_client_ip("10.0.0.2", NULL, NULL, 1, out, sizeof out), BAD);
    cr_expect(strstr(rl_errmsg(), "trusted_cidrs is NULL") != NULL, "%s", rl_errmsg());
    /* A bad trust list is refused even when the peer would not need it. */
    cr_expect_eq(rl_client_ip("203.0.113.7", NULL, bad_list, 2, out, sizeof out), BAD);
}

Test(ip, x_forwarded_for_sizes)
{
    /* 8192 bytes are read; one more is refused, before any entry is looked at. */
    static char h[8194];
    memset(h, ' ', sizeof h);
    memcpy(h, "1.1.1.1", 7);
    h[8192] = '\0';
    char out[64];
    cr_expect_eq(client_ip("10.0.0.2", h, out, sizeof out), 7);
    cr_expect_str_eq(out, "1.1.1.1");
    h[8192] = ' ';
    h[8193] = '\0';
    cr_expect_eq(client_ip("10.0.0.2", h, out, sizeof out), BAD);
    cr_expect(strstr(rl_errmsg(), "X-Forwarded-For too long") != NULL, "%s", rl_errmsg());
    /* From an untrusted peer the header is not read at all. */
    cr_expect_eq(client_ip("203.0.113.7", h, out, sizeof out), 11);

    /* A long chain of trusted proxies: 800 x ", 10.0.0.5" (10 bytes) after the client. */
    size_t n = 0;
    n += (size_t)snprintf(h + n, sizeof h - n, "6.6.6.6, 1.1.1.1");
    for (int i = 0; i < 800; i++)
        n += (size_t)snprintf(h + n, sizeof h - n, ", 10.0.0.5");
    cr_assert_lt(n, 8192);
    cr_expect_eq(client_ip("10.0.0.2", h, out, sizeof out), 7);
    cr_expect_str_eq(out, "1.1.1.1");

    /* out too small: -ENOSPC and ""; the exact size works; 46 always does. */
    memset(out, 'x', sizeof out);
    cr_expect_eq(client_ip("10.0.0.2", "1.1.1.1", out, 7), -ENOSPC);
    cr_expect_eq(out[0], '\0');
    cr_expect(strstr(rl_errmsg(), "needs 8 bytes") != NULL, "%s", rl_errmsg());
    cr_expect_eq(client_ip("10.0.0.2", "1.1.1.1", out, 8), 7);
    cr_expect_eq(client_ip("10.0.0.2", "1.1.1.1", NULL, 0), -ENOSPC);
    cr_expect_eq(client_ip("10.0.0.2", "1.1.1.1", NULL, 8), BAD);
    cr_expect_eq(client_ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", NULL, out, 46), 39);
    cr_expect_str_eq(out, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
    cr_expect_eq(client_ip("10.0.0.2", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", out, 39),
                 -ENOSPC);
}

/* More trusted blocks than rl_client_ip() keeps parsed on the stack (32): the later ones are
 * parsed again where needed and still count. */
Test(ip, many_trusted_proxies)
{
    static char texts[40][24];
    const char *list[40];
    for (int i = 0; i < 39; i++) {
        snprintf(texts[i], sizeof texts[i], "192.0.2.%d/32", i);
        list[i] = texts[i];
    }
    list[39] = "10.0.0.0/8";
    char out[64];
    cr_expect_eq(
        rl_client_ip("10.0.0.2", "1.1.1.1, 192.0.2.38, 192.0.2.1", list, 40, out, sizeof out), 7);
    cr_expect_str_eq(out, "1.1.1.1");
    cr_expect_eq(rl_client_ip("192.0.2.35", "192.0.2.39, 192.0.2.38", list, 40, out, sizeof out),
                 10);
    cr_expect_str_eq(out, "192.0.2.39");
}

/* ---- random input: no crash, and agreement with inet_pton ------------------------------------ */

Test(ip, random_text)
{
    static const char alphabet[] = "0123456789abcdefABCDEFg:::...[]/%, \t";
    uint64_t seed = 0x1234abcd5678ef01ULL;
    char s[48];
    int parsed = 0;
    for (int iter = 0; iter < 100000; iter++) {
        size_t len = (size_t)prng_below(&seed, sizeof s - 1);
        for (size_t i = 0; i < len; i++)
            s[i] = alphabet[prng_below(&seed, sizeof alphabet - 1)];
        s[len] = '\0';

        struct rl_ip ip;
        int rc = rl__ip_parse(s, len, &ip);
        /* The oracle: inet_pton, on text without the brackets it does not take. */
        unsigned char want[16];
        int pton = strchr(s, ':') ? inet_pton(AF_INET6, s, want) : inet_pton(AF_INET, s, want);
        if (!strchr(s, '[') && !strchr(s, ']')) {
            cr_expect_eq(rc == 0, pton == 1, "\"%s\": rl__ip_parse %d, inet_pton %d", s, rc, pton);
            if (rc == 0 && pton == 1) {
                parsed++;
                const uint8_t *a = ip.family == 4 ? want + (strchr(s, ':') ? 12 : 0) : want;
                cr_expect(memcmp(ip.addr, a, ip.family == 4 ? 4 : 16) == 0, "\"%s\"", s);
            }
        }
        if (rc == 0) {
            char buf[RL_IP_TEXT_MAX], buf2[RL_IP_TEXT_MAX];
            int n = rl__ip_format(&ip, 128, buf, sizeof buf);
            cr_assert_geq(n, 0);
            struct rl_ip again;
            cr_expect_eq(rl__ip_parse(buf, (size_t)n, &again), 0, "\"%s\" -> \"%s\"", s, buf);
            cr_expect(memcmp(&again, &ip, sizeof ip) == 0, "\"%s\" -> \"%s\"", s, buf);
            cr_expect_geq(rl__ip_format(&ip, (unsigned)prng_below(&seed, 130), buf2, sizeof buf2),
                          0);
        }
        struct rl_cidr c;
        if (rl__cidr_parse(s, &c) == 0) {
            struct rl_ip probe = c.net;
            cr_expect(rl__cidr_match(&c, &probe), "\"%s\": its own network does not match", s);
        }
        char out[64];
        rl_client_ip(iter % 2 ? "10.0.0.1" : s, s, trusted, N_OF(trusted), out, sizeof out);
    }
    cr_expect_gt(parsed, 100, "the random text parsed too rarely (%d) to test much", parsed);
}
