/*
 * Redis URLs: rl__redis_url_parse() and rl__redis_url_redact() of the input up to its first NUL,
 * redacted into buffers of several sizes. The password must appear neither in rl_errmsg() after
 * a failed parse nor in the redacted URL (check_leaks: candidates of 4 bytes or more).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"
#include "url.h"

/* What may leak: the message of a failed parse ("" when it parses), or the redacted URL. */
static void output_of(const char *url, bool message, char *out, size_t len)
{
    if (message) {
        struct rl_redis_url u;
        rl__err(0, "%s", "");
        int r = rl__redis_url_parse(url, &u);
        snprintf(out, len, "%s", r ? rl_errmsg() : "");
    } else if (rl__redis_url_redact(url, out, len) < 0) {
        out[0] = '\0';
    }
}

static const char INVALID[] = "<invalid redis url>";

/* Another character of the same kind, so that the URL keeps its shape: digits within 1..9 (a
 * percent escape never becomes %00), hex letters within a..f, other letters within g..z. */
static char change(char c)
{
    if (c >= '0' && c <= '9')
        return c == '9' ? '1' : (char)(c + 1);
    if ((c >= 'a' && c <= 'e') || (c >= 'A' && c <= 'E'))
        return (char)(c + 1);
    if (c == 'f' || c == 'F')
        return (char)(c - 5);
    if ((c >= 'g' && c <= 'y') || (c >= 'G' && c <= 'Y'))
        return (char)(c + 1);
    if (c == 'z' || c == 'Z')
        return (char)(c - 19);
    return c;
}

/*
 * The text between the first ':' and each '@' of the authority (after "://", before the first
 * '/') is a candidate password. When it appears in the output, the same URL with the candidate's
 * letters and digits changed (change()) must give an output where it still appears: otherwise
 * the output copied it from the password (and not from fixed text, or another part of the URL
 * that repeats it).
 */
static void check_leaks(const char *url, bool message)
{
    const char *auth = strstr(url, "://");
    if (!auth)
        return;
    auth += 3;
    size_t alen = strcspn(auth, "/");
    const char *colon = memchr(auth, ':', alen);
    if (!colon)
        return;
    static char out[4096], out2[4096];
    output_of(url, message, out, sizeof out);
    for (const char *at = colon; (at = memchr(at + 1, '@', alen - (size_t)(at + 1 - auth)));) {
        size_t b = (size_t)(colon + 1 - url), n = (size_t)(at - colon - 1);
        if (n < 4)
            continue;
        char *pw = strndup(url + b, n);
        char *other = strdup(url);
        if (!pw || !other)
            abort();
        if (strstr(out, pw)) {
            for (size_t i = 0; i < n; i++)
                other[b + i] = change(url[b + i]);
            output_of(other, message, out2, sizeof out2);
            /* When the change made the URL parse differently, nothing can be said. */
            bool same = message ? out2[0] != '\0' : strcmp(out2, INVALID) != 0;
            FUZZ_CHECK(!same || strstr(out2, pw), "password \"%s\" in the %s \"%s\"", pw,
                       message ? "message" : "redacted URL", out);
        }
        free(pw);
        free(other);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = strndup((const char *)data, size);
    if (!url)
        return 0;

    rl__err(0, "%s", "");
    struct rl_redis_url *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    int r = rl__redis_url_parse(url, u);
    FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOTSUP || r == -ENAMETOOLONG,
               "rl__redis_url_parse returned %d", r);
    if (r == 0) {
        FUZZ_CHECK(u->nhosts <= RL_REDIS_MAX_HOSTS, "%zu hosts", u->nhosts);
        FUZZ_CHECK(u->kind == RL_REDIS_UNIX || u->nhosts >= 1, "no host");
        FUZZ_CHECK(memchr(u->password, 0, sizeof u->password) &&
                       memchr(u->user, 0, sizeof u->user) && memchr(u->path, 0, sizeof u->path) &&
                       memchr(u->master, 0, sizeof u->master),
                   "a field without its NUL");
        for (size_t i = 0; i < u->nhosts; i++)
            FUZZ_CHECK(u->hosts[i].port >= 0 && u->hosts[i].port <= 65535, "port %d",
                       u->hosts[i].port);
    } else {
        check_leaks(url, true);
    }
    free(u);

    static const size_t sizes[] = {0, 1, 8, 32, 256, 4096};
    int full = -1;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len = sizes[i];
        char *out = malloc(len ? len : 1);
        if (!out)
            abort();
        int n = rl__redis_url_redact(url, len ? out : NULL, len);
        FUZZ_CHECK(n == -ENOSPC || (n >= 0 && (size_t)n < len), "redact returned %d for %zu", n,
                   len);
        if (n >= 0) {
            FUZZ_CHECK(strlen(out) == (size_t)n, "redact returned %d, wrote %zu", n, strlen(out));
            FUZZ_CHECK(full < 0 || full == n, "redact lengths differ: %d, %d", full, n);
            full = n;

        } else if (len) {
            FUZZ_CHECK(out[0] == '\0', "-ENOSPC left \"%.*s\"", (int)len, out);
        }
        free(out);
    }
    check_leaks(url, false);
    free(url);
    return 0;
}
