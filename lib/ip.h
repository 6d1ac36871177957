/*
 * IP addresses and CIDR blocks: parsing, matching, canonical text. Internal.
 *
 * Nothing here allocates, locks or touches the segment; every function is safe on any input
 * (NULL pointers included) and on any thread. rl__ip_parse() and rl__cidr_parse() set no
 * message (rl_errmsg): their callers know where the text came from and say so.
 */
#ifndef RL_IP_H
#define RL_IP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest text rl__ip_format() writes, NUL included: a full IPv6 address (39) + "/128" (4). */
#define RL_IP_TEXT_MAX 48

/* One address. IPv4 is in addr[0..3] (network order) and addr[4..15] are zero; an IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d) is always stored as IPv4. */
struct rl_ip {
    uint8_t family; /* 4 or 6 */
    uint8_t addr[16];
};

/* A block: net has its host bits zero; prefix is 0..32 (IPv4) or 0..128 (IPv6). */
struct rl_cidr {
    struct rl_ip net;
    unsigned prefix;
};

/*
 * Parses exactly s[0..len): a dotted quad ("192.0.2.1": four decimal parts 0..255, no leading
 * zeros), or IPv6 in any RFC 4291 text form (compressed, uncompressed, upper or lower case,
 * trailing dotted quad), optionally in brackets ("[2001:db8::1]"). IPv4-mapped IPv6 becomes
 * IPv4. Rejected with -EINVAL: ports, zones ("fe80::1%eth0"), prefixes ("/8"), white space
 * anywhere (callers trim), NUL bytes, brackets around IPv4, empty text, s NULL. Returns 0.
 */
int rl__ip_parse(const char *s, size_t len, struct rl_ip *out);

/*
 * Parses a block: "10.0.0.0/8", "2001:db8::/32", or a bare address (= /32 or /128). The prefix
 * is 1 to 3 decimal digits within the family's bits (/33, /129, /-1, /x, "/" -> -EINVAL). Host
 * bits set ("10.1.2.3/8") are accepted and cleared. An IPv4-mapped block with a prefix of 96 or
 * more ("::ffff:10.0.0.0/104") becomes the IPv4 block (10.0.0.0/8), so it matches what
 * rl__ip_parse() gives for those addresses. Returns 0 or -EINVAL.
 */
int rl__cidr_parse(const char *s, struct rl_cidr *out);

/* True when ip lies in c. The families must match: an IPv4 block never matches an IPv6 address
 * and the other way round (::/0 matches no IPv4 address). False for NULLs. */
bool rl__cidr_match(const struct rl_cidr *c, const struct rl_ip *ip);

/*
 * Writes the canonical text of ip into out (NUL-terminated): IPv4 as a dotted quad, IPv6 as
 * RFC 5952 says (lower case, no leading zeros, the longest run of two or more zero groups, the
 * first one on a tie, as "::"). When prefix is below the family's bits (32 or 128), the host
 * bits are cleared and "/prefix" is appended: ("2001:db8:1:2:3:4:5:6", 64) gives
 * "2001:db8:1:2::/64", which is how per-IP keys group IPv6 clients. A prefix at or above the
 * family's bits writes the address alone, so one prefix (say 64) can be passed for both
 * families. Returns the length (NUL not counted), -ENOSPC when len is too small (out then holds
 * "" if len > 0; RL_IP_TEXT_MAX always suffices), -EINVAL for a NULL ip, a NULL out with
 * len > 0, or a family other than 4 and 6.
 */
int rl__ip_format(const struct rl_ip *ip, unsigned prefix, char *out, size_t len);

#endif /* RL_IP_H */
