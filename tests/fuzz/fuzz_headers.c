/*
 * Headers and 429 bodies: an rl_decision built from the input (n clamped to RL_MAX_LAYERS,
 * limiting within [-1, n), enums within range, names NUL-terminated within RL_NAME_MAX) goes
 * through rl_format_headers_ex() with every flag combination and rl_format_body(), into buffers
 * of several sizes. Every result must fit and be NUL-terminated, no header value may hold a CR
 * or LF, and every body that fits must be valid JSON (checked below, no library).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "rl.h"

struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t byte(struct in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint64_t u64(struct in *in)
{
    /* A first byte picks the shape: small numbers are the common case, extremes the risky. */
    uint8_t kind = byte(in);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | byte(in);
    switch (kind % 4) {
    case 0:
        return v % 1000;
    case 1:
        return v % 100000000000ull;
    default:
        return v;
    }
}

static void name(struct in *in, char out[RL_NAME_MAX])
{
    size_t len = byte(in) % RL_NAME_MAX; /* at most RL_NAME_MAX - 1 bytes and a NUL */
    memset(out, 0, RL_NAME_MAX);
    for (size_t i = 0; i < len; i++)
        out[i] = (char)byte(in);
}

/* ---- a small JSON validator (RFC 8259, UTF-8 not checked) ---- */

struct js {
    const char *s;
    size_t i, n;
    int depth;
};

static void ws(struct js *j)
{
    while (j->i < j->n && strchr(" \t\r\n", j->s[j->i]) && j->s[j->i])
        j->i++;
}

static bool lit(struct js *j, const char *w)
{
    size_t l = strlen(w);
    if (j->n - j->i < l || memcmp(j->s + j->i, w, l) != 0)
        return false;
    j->i += l;
    return true;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool string(struct js *j)
{
    if (j->i >= j->n || j->s[j->i] != '"')
        return false;
    j->i++;
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i++];
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (j->i >= j->n)
                return false;
            char e = j->s[j->i++];
            if (e == 'u') {
                for (int k = 0; k < 4; k++)
                    if (j->i >= j->n || !is_hex(j->s[j->i++]))
                        return false;
            } else if (!strchr("\"\\/bfnrt", e) || !e) {
                return false;
            }
        }
    }
    return false;
}

static bool digits(struct js *j)
{
    size_t s = j->i;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
        j->i++;
    return j->i > s;
}

static bool number(struct js *j)
{
    if (j->i < j->n && j->s[j->i] == '-')
        j->i++;
    if (j->i < j->n && j->s[j->i] == '0')
        j->i++;
    else if (!digits(j))
        return false;
    if (j->i < j->n && j->s[j->i] == '.') {
        j->i++;
        if (!digits(j))
            return false;
    }
    if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
        j->i++;
        if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-'))
            j->i++;
        if (!digits(j))
            return false;
    }
    return true;
}

static bool value(struct js *j)
{
    if (++j->depth > 64)
        return false;
    ws(j);
    bool ok = false;
    if (j->i >= j->n) {
        ok = false;
    } else if (j->s[j->i] == '{') {
        j->i++;
        ws(j);
        if (j->i < j->n && j->s[j->i] == '}') {
            j->i++;
            ok = true;
        } else {
            for (;;) {
                ws(j);
                if (!string(j))
                    break;
                ws(j);
                if (!lit(j, ":") || !value(j))
                    break;
                ws(j);
                if (lit(j, "}")) {
                    ok = true;
                    break;
                }
                if (!lit(j, ","))
                    break;
            }
        }
    } else if (j->s[j->i] == '[') {
        j->i++;
        ws(j);
        if (lit(j, "]")) {
            ok = true;
        } else {
            for (;;) {
                if (!value(j))
                    break;
                ws(j);
                if (lit(j, "]")) {
                    ok = true;
                    break;
                }
                if (!lit(j, ","))
                    break;
            }
        }
    } else if (j->s[j->i] == '"') {
        ok = string(j);
    } else if (lit(j, "true") || lit(j, "false") || lit(j, "null")) {
        ok = true;
    } else {
        ok = number(j);
    }
    j->depth--;
    return ok;
}

static bool json_valid(const char *s, size_t n)
{
    struct js j = {.s = s, .n = n};
    if (!value(&j))
        return false;
    ws(&j);
    return j.i == n;
}

/* ---- the target ---- */

static void check_headers(const char *buf, size_t n, unsigned flags)
{
    FUZZ_CHECK(n == 0 || (n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n'),
               "flags %u: the headers do not end in CRLF:\n%s", flags, buf);
    for (size_t b = 0; b < n;) {
        const char *crlf = strstr(buf + b, "\r\n");
        FUZZ_CHECK(crlf != NULL, "flags %u: a line without CRLF", flags);
        size_t e = (size_t)(crlf - buf);
        const char *colon = memchr(buf + b, ':', e - b);
        FUZZ_CHECK(colon && colon > buf + b, "flags %u: not a header line: %.*s", flags,
                   (int)(e - b), buf + b);
        for (size_t k = b; k < e; k++)
            FUZZ_CHECK(buf[k] != '\r' && buf[k] != '\n', "flags %u: CR or LF in line %.*s", flags,
                       (int)(e - b), buf + b);
        b = e + 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size};
    rl_decision *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    uint8_t bits = byte(&in);
    d->allowed = bits & 1;
    d->bypassed = bits & 2;
    d->disabled = bits & 4;
    d->n = byte(&in) % (RL_MAX_LAYERS + 1);
    d->limiting = (int)(byte(&in) % (d->n + 1)) - 1;
    d->now_ns = u64(&in);
    d->config_generation = u64(&in);
    for (size_t i = 0; i < d->n; i++) {
        rl_layer *l = &d->layers[i];
        uint8_t lb = byte(&in);
        l->allowed = lb & 1;
        l->shadow = lb & 2;
        l->warning = lb & 4;
        l->table_full = lb & 8;
        l->limit = u64(&in);
        l->remaining = u64(&in);
        l->retry_after_ms = u64(&in);
        l->reset_after_ms = u64(&in);
        l->window_ms = u64(&in);
        l->scope = (rl_scope)(byte(&in) % RL_SCOPE_COUNT);
        l->algorithm = (rl_algorithm)(byte(&in) % RL_ALGORITHM_COUNT);
        l->mode = (rl_mode)(byte(&in) % 3);
        name(&in, l->rule);
        name(&in, l->name);
    }

    static const size_t sizes[] = {0, 1, 16, 64, 200, 512, 4096};
    for (unsigned flags = 0; flags < 4; flags++) {
        int full = -1;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t len = sizes[s];
            char *buf = malloc(len ? len : 1);
            if (!buf)
                abort();
            int r = rl_format_headers_ex(d, flags, len ? buf : NULL, len);
            FUZZ_CHECK(r == -ENOSPC || r == -EINVAL || (r >= 0 && (size_t)r < len),
                       "headers flags %u: returned %d for %zu bytes", flags, r, len);
            if (r >= 0) {
                FUZZ_CHECK(strlen(buf) == (size_t)r, "returned %d, wrote %zu", r, strlen(buf));
                FUZZ_CHECK(full < 0 || full == r, "lengths differ: %d, %d", full, r);
                full = r;
                check_headers(buf, (size_t)r, flags);
            } else if (r == -ENOSPC && len) {
                FUZZ_CHECK(buf[0] == '\0', "-ENOSPC left text");
            }
            free(buf);
        }
    }
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t len = sizes[s];
        char *buf = malloc(len ? len : 1);
        if (!buf)
            abort();
        int r = rl_format_body(d, len ? buf : NULL, len);
        FUZZ_CHECK(r == -ENOSPC || r == -EINVAL || (r >= 0 && (size_t)r < len),
                   "body: returned %d for %zu bytes", r, len);
        if (r >= 0) {
            FUZZ_CHECK(strlen(buf) == (size_t)r, "body: returned %d, wrote %zu", r, strlen(buf));
            FUZZ_CHECK(json_valid(buf, (size_t)r), "body is not JSON:\n%s", buf);
        } else if (r == -ENOSPC && len) {
            FUZZ_CHECK(buf[0] == '\0', "body: -ENOSPC left text");
        }
        free(buf);
    }
    free(d);
    return 0;
}
