/*
 * Addresses: rl__ip_parse() of the whole input, rl__cidr_parse() of the input up to its first
 * NUL, and rl_client_ip() with the input split at NULs into peer and X-Forwarded-For, a fixed
 * trusted list and output buffers of several sizes. Whatever parses must format and parse back
 * to the same value; rl_client_ip() must write a NUL-terminated address of the length it
 * returns, which parses.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "ip.h"
#include "rl.h"

static const char *const trusted[] = {"10.0.0.0/8", "192.168.0.0/16", "127.0.0.1",    "::1",
                                      "fd00::/8",   "2001:db8::/32",  "172.16.0.0/12"};

static void check_roundtrip(const struct rl_ip *ip, unsigned prefix)
{
    char text[RL_IP_TEXT_MAX];
    int n = rl__ip_format(ip, prefix, text, sizeof text);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof text && strlen(text) == (size_t)n,
               "rl__ip_format returned %d", n);
    struct rl_cidr c;
    FUZZ_CHECK(rl__cidr_parse(text, &c) == 0, "formatted \"%s\" does not parse", text);
    unsigned bits = ip->family == 4 ? 32 : 128;
    FUZZ_CHECK(c.net.family == ip->family, "\"%s\": family %u, was %u", text, c.net.family,
               ip->family);
    FUZZ_CHECK(c.prefix == (prefix < bits ? prefix : bits), "\"%s\": prefix %u", text, c.prefix);
    FUZZ_CHECK(rl__cidr_match(&c, ip), "\"%s\" does not match the address it came from", text);
    if (prefix >= bits)
        FUZZ_CHECK(memcmp(c.net.addr, ip->addr, 16) == 0, "\"%s\" parses to another address", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rl_ip ip;
    if (rl__ip_parse((const char *)data, size, &ip) == 0) {
        FUZZ_CHECK(ip.family == 4 || ip.family == 6, "family %u", ip.family);
        check_roundtrip(&ip, 128);
        check_roundtrip(&ip, 64);
        check_roundtrip(&ip, 24);
        check_roundtrip(&ip, 0);
    }

    /* NUL-terminated parts: part[0] up to the first NUL, part[1] up to the second. */
    char *copy = malloc(size + 2);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = copy[size + 1] = '\0';
    const char *peer = copy;
    const uint8_t *nul = memchr(data, 0, size);
    const char *xff = nul ? copy + (nul - data) + 1 : NULL;

    struct rl_cidr c;
    int r = rl__cidr_parse(peer, &c);
    FUZZ_CHECK(r == 0 || r == -EINVAL, "rl__cidr_parse returned %d", r);
    if (r == 0) {
        FUZZ_CHECK((c.net.family == 4 && c.prefix <= 32) || (c.net.family == 6 && c.prefix <= 128),
                   "family %u prefix %u", c.net.family, c.prefix);
        check_roundtrip(&c.net, c.prefix);
    }

    static const size_t sizes[] = {0, 1, 8, 16, 46, 64};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len = sizes[i];
        char *out = malloc(len ? len : 1);
        if (!out)
            break;
        size_t nt = sizeof trusted / sizeof trusted[0];
        r = rl_client_ip(peer, xff, trusted, nt, len ? out : NULL, len);
        FUZZ_CHECK(r == -EINVAL || r == -ENOSPC || (r > 0 && (size_t)r < len),
                   "rl_client_ip returned %d for a buffer of %zu", r, len);
        if (r > 0) {
            FUZZ_CHECK(strlen(out) == (size_t)r, "returned %d, wrote %zu bytes", r, strlen(out));
            struct rl_ip got;
            FUZZ_CHECK(rl__ip_parse(out, (size_t)r, &got) == 0, "returned \"%s\"", out);
        }
        /* 46 bytes always suffice. */
        if (len >= 46)
            FUZZ_CHECK(r != -ENOSPC, "-ENOSPC with %zu bytes", len);
        free(out);
    }
    free(copy);
    return 0;
}
