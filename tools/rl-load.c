/*
 * rl-load: the seed's load test, against a server on this host.
 *
 * C threads each keep one HTTP/1.1 connection alive to 127.0.0.1 (or localhost) and send
 * requests until N have been sent or --timeout seconds have passed, then print the seed's
 * table: total requests, duration, throughput, average latency, 99th percentile, error rate,
 * followed by the allowed (2xx) and denied (429) counts. Other answers and failed requests are
 * errors. Loopback only: it is a testing tool, not a way to load someone else's server.
 *
 *   rl-load [-n N] [-c C] [-H 'Name: value']... [-X METHOD] [-d BODY] [--timeout S] [--json] URL
 *
 * Exits 0 when every request was answered (2xx or 429 included), 1 when some failed or the
 * timeout cut the run short, 2 on a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "support.h" /* the clock, signals, arguments */

#define LOAD_MAX_REQUESTS 10000000u
#define LOAD_MAX_CONC     1024u
#define LOAD_MAX_HEADERS  64
#define LOAD_MAX_TIMEOUT  3600u
#define LOAD_REQ_MAX      16384
#define LOAD_BUF          65536

struct config {
    unsigned n, c, timeout_s;
    int json;
    uint16_t port;
    char request[LOAD_REQ_MAX];
    size_t request_len;
    uint64_t deadline_ns;
};

struct shared {
    const struct config *cfg;
    _Atomic uint64_t next;      /* requests handed out */
    _Atomic uint64_t done;      /* requests finished (any outcome) */
    _Atomic uint64_t allowed;   /* 2xx */
    _Atomic uint64_t denied;    /* 429 */
    _Atomic uint64_t errors;    /* other statuses, connection or protocol failures */
    _Atomic uint64_t first_err; /* set once: the first error is reported */
    _Atomic int refused;        /* nobody listens: stop at once */
    uint64_t *latency_ns;       /* [n]: one slot per request, written by its thread */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: rl-load [-n N] [-c C] [-H 'Name: value']... [-X METHOD] [-d BODY]\n"
               "               [--timeout SECONDS] [--json] URL\n"
               "  Sends N requests (default 10000) over C keep-alive connections (default 8) to\n"
               "  URL, which must be http://127.0.0.1[:PORT]/PATH or http://localhost[:PORT]/PATH\n"
               "  (a loopback testing tool), and prints the load-test table. -X defaults to GET,\n"
               "  or POST with -d (then Content-Type: application/json unless -H sets one).\n"
               "  Stops after --timeout seconds (default 30). --json prints one JSON object.\n");
}

/* Splits http://HOST[:PORT]/PATH; only loopback hosts. Returns 0 or -1 (message printed). */
static int parse_url(const char *url, uint16_t *port, const char **path)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        fprintf(stderr, "rl-load: '%s': only http:// URLs (plain HTTP to this host)\n", url);
        return -1;
    }
    p += 7;
    size_t hl = strcspn(p, ":/");
    if (!((hl == 9 && strncmp(p, "127.0.0.1", 9) == 0) ||
          (hl == 9 && strncasecmp(p, "localhost", 9) == 0))) {
        fprintf(stderr,
                "rl-load: '%.*s': refused: this tool is for loopback testing; the URL's host must "
                "be 127.0.0.1 or localhost\n",
                (int)hl, p);
        return -1;
    }
    p += hl;
    unsigned long v = 80;
    if (*p == ':') {
        char *end = NULL;
        errno = 0;
        v = strtoul(p + 1, &end, 10);
        if (end == p + 1 || errno || v == 0 || v > 65535 || (*end != '/' && *end != '\0')) {
            fprintf(stderr, "rl-load: '%s': bad port\n", url);
            return -1;
        }
        p = end;
    }
    *port = (uint16_t)v;
    *path = *p ? p : "/";
    return 0;
}

static void fail_once(struct shared *sh, const char *what)
{
    uint64_t expected = 0;
    if (atomic_compare_exchange_strong(&sh->first_err, &expected, 1))
        fprintf(stderr, "rl-load: first error: %s\n", what);
}

static int connect_loopback(const struct config *cfg)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(cfg->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* No single read or write waits past the run's own bound. */
    struct timeval tv = {.tv_sec = cfg->timeout_s, .tv_usec = 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        close(s);
        return -1;
    }
    return s;
}

/* Reads one response from s (buf keeps what follows it). Returns the status or -1. */
struct conn {
    int fd;
    char buf[LOAD_BUF];
    size_t len;
};

static int read_more(struct conn *c)
{
    if (c->len >= sizeof c->buf)
        return -1;
    ssize_t r;
    do {
        r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    } while (r < 0 && errno == EINTR);
    if (r <= 0)
        return -1;
    c->len += (size_t)r;
    return 0;
}

static int read_response(struct conn *c, int *keep_alive, const char **why)
{
    char *end;
    for (;;) {
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end)
            break;
        if (read_more(c) < 0) {
            *why = "connection closed or timed out before a full response";
            return -1;
        }
    }
    size_t head = (size_t)(end - c->buf) + 4;
    int status = 0;
    if (c->len < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0 ||
        sscanf(c->buf + 9, "%3d", &status) != 1) {
        *why = "not an HTTP/1.x response";
        return -1;
    }
    long clen = -1;
    *keep_alive = c->buf[7] == '1';
    for (char *line = memchr(c->buf, '\n', head); line && line + 1 < c->buf + head;
         line = memchr(line + 1, '\n', (size_t)(c->buf + head - line - 1))) {
        const char *h = line + 1;
        if (strncasecmp(h, "Content-Length:", 15) == 0) {
            clen = strtol(h + 15, NULL, 10);
        } else if (strncasecmp(h, "Transfer-Encoding:", 18) == 0) {
            *why = "chunked responses are not supported";
            return -1;
        } else if (strncasecmp(h, "Connection:", 11) == 0) {
            const char *v = h + 11;
            while (*v == ' ')
                v++;
            if (strncasecmp(v, "close", 5) == 0)
                *keep_alive = 0;
        }
    }
    if (clen < 0) {
        if (!(status == 204 || status == 304)) {
            *why = "a response without Content-Length";
            return -1;
        }
        clen = 0;
    }
    if ((size_t)clen > sizeof c->buf - head) {
        *why = "a response larger than 64 KiB";
        return -1;
    }
    while (c->len < head + (size_t)clen)
        if (read_more(c) < 0) {
            *why = "connection closed or timed out inside a response body";
            return -1;
        }
    size_t used = head + (size_t)clen;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    return status;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *client_thread(void *arg)
{
    struct shared *sh = arg;
    const struct config *cfg = sh->cfg;
    struct conn *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->fd = -1;
    c->len = 0;
    for (;;) {
        if (mono_ns() >= cfg->deadline_ns || atomic_load(&sh->refused))
            break;
        uint64_t i = atomic_fetch_add(&sh->next, 1);
        if (i >= cfg->n)
            break;
        uint64_t t0 = mono_ns();
        const char *why = NULL;
        int status = -1, keep = 0;
        if (c->fd < 0) {
            c->fd = connect_loopback(cfg);
            c->len = 0;
            if (c->fd < 0) {
                why = "cannot connect (is the server running?)";
                if (errno == ECONNREFUSED)
                    atomic_store(&sh->refused, 1);
            }
        }
        if (c->fd >= 0) {
            if (send_all(c->fd, cfg->request, cfg->request_len) < 0)
                why = "send failed";
            else
                status = read_response(c, &keep, &why);
        }
        sh->latency_ns[i] = mono_ns() - t0;
        if (status >= 200 && status < 300) {
            atomic_fetch_add(&sh->allowed, 1);
        } else if (status == 429) {
            atomic_fetch_add(&sh->denied, 1);
        } else {
            atomic_fetch_add(&sh->errors, 1);
            if (status > 0) {
                char s[32];
                snprintf(s, sizeof s, "HTTP status %d", status);
                fail_once(sh, s);
            } else {
                fail_once(sh, why ? why : "unknown");
            }
        }
        if ((status < 0 || !keep) && c->fd >= 0) {
            close(c->fd);
            c->fd = -1;
        }
        atomic_fetch_add(&sh->done, 1);
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* 1234567 -> "1,234,567" (the seed's "Total requests: 10,000"). */
static const char *grouped(uint64_t v, char *buf, size_t len)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%" PRIu64, v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static void progress(uint64_t done, uint64_t n, int final)
{
    const int width = 40;
    int fill = n ? (int)(done * (uint64_t)width / n) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %" PRIu64 "/%" PRIu64 "%s", bar, done, n, final ? "\n" : "");
    fflush(stderr);
}

int main(int argc, char **argv)
{
    static struct config cfg;
    cfg.n = 10000;
    cfg.c = 8;
    cfg.timeout_s = 30;
    const char *method = NULL, *body = NULL, *url = NULL;
    const char *headers[LOAD_MAX_HEADERS];
    unsigned nheaders = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(a, "-n") == 0 || strcmp(a, "-c") == 0 || strcmp(a, "-H") == 0 ||
                    strcmp(a, "-X") == 0 || strcmp(a, "-d") == 0 || strcmp(a, "--timeout") == 0;
        if (takes && !next) {
            fprintf(stderr, "rl-load: %s wants a value\n", a);
            return 2;
        }
        if (strcmp(a, "-n") == 0) {
            if (parse_uint_arg("rl-load", "-n", next, 1, LOAD_MAX_REQUESTS, &cfg.n) < 0)
                return 2;
        } else if (strcmp(a, "-c") == 0) {
            if (parse_uint_arg("rl-load", "-c", next, 1, LOAD_MAX_CONC, &cfg.c) < 0)
                return 2;
        } else if (strcmp(a, "--timeout") == 0) {
            if (parse_uint_arg("rl-load", "--timeout", next, 1, LOAD_MAX_TIMEOUT, &cfg.timeout_s) <
                0)
                return 2;
        } else if (strcmp(a, "-H") == 0) {
            if (nheaders == LOAD_MAX_HEADERS || !strchr(next, ':') || strpbrk(next, "\r\n")) {
                fprintf(stderr, "rl-load: -H wants 'Name: value' (at most %d of them)\n",
                        LOAD_MAX_HEADERS);
                return 2;
            }
            headers[nheaders++] = next;
        } else if (strcmp(a, "-X") == 0) {
            method = next;
        } else if (strcmp(a, "-d") == 0) {
            body = next;
        } else if (strcmp(a, "--json") == 0) {
            cfg.json = 1;
            continue;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-' || url) {
            fprintf(stderr, "rl-load: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            url = a;
            continue;
        }
        i++;
    }
    if (!url) {
        fprintf(stderr, "rl-load: no URL\n");
        usage(stderr);
        return 2;
    }
    const char *path = NULL;
    if (parse_url(url, &cfg.port, &path) < 0)
        return 2;
    if (!method)
        method = body ? "POST" : "GET";
    if (!*method || strpbrk(method, " \r\n") || strpbrk(path, " \r\n")) {
        fprintf(stderr, "rl-load: bad method or path\n");
        return 2;
    }
    int has_ctype = 0;
    for (unsigned i = 0; i < nheaders; i++)
        if (strncasecmp(headers[i], "Content-Type:", 13) == 0)
            has_ctype = 1;

    /* The request, built once. */
    size_t blen = body ? strlen(body) : 0;
    int w = snprintf(cfg.request, sizeof cfg.request, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n",
                     method, path, (unsigned)cfg.port);
    for (unsigned i = 0; i < nheaders && w > 0 && (size_t)w < sizeof cfg.request; i++)
        w += snprintf(cfg.request + w, sizeof cfg.request - (size_t)w, "%s\r\n", headers[i]);
    if (w > 0 && (size_t)w < sizeof cfg.request && body && !has_ctype)
        w += snprintf(cfg.request + w, sizeof cfg.request - (size_t)w,
                      "Content-Type: application/json\r\n");
    if (w > 0 && (size_t)w < sizeof cfg.request)
        w += snprintf(cfg.request + w, sizeof cfg.request - (size_t)w,
                      "Content-Length: %zu\r\n\r\n%s", blen, body ? body : "");
    if (w <= 0 || (size_t)w >= sizeof cfg.request) {
        fprintf(stderr, "rl-load: the request is longer than %d bytes\n", LOAD_REQ_MAX);
        return 2;
    }
    cfg.request_len = (size_t)w;

    static struct shared sh;
    sh.cfg = &cfg;
    sh.latency_ns = calloc(cfg.n, sizeof *sh.latency_ns);
    unsigned nthreads = cfg.c < cfg.n ? cfg.c : cfg.n;
    pthread_t *tids = calloc(nthreads, sizeof *tids);
    if (!sh.latency_ns || !tids) {
        fprintf(stderr, "rl-load: out of memory\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    uint64_t t0 = mono_ns();
    cfg.deadline_ns = t0 + (uint64_t)cfg.timeout_s * 1000000000u;
    unsigned started = 0;
    for (; started < nthreads; started++) {
        int rc = pthread_create(&tids[started], NULL, client_thread, &sh);
        if (rc != 0) {
            fprintf(stderr, "rl-load: pthread_create: %s\n", strerror(rc));
            break;
        }
    }
    if (started == 0)
        return 2;
    int tty = isatty(STDERR_FILENO);
    if (tty) {
        const struct timespec tick = {0, 100 * 1000 * 1000};
        while (atomic_load(&sh.done) < cfg.n && mono_ns() < cfg.deadline_ns + 1000000000u) {
            progress(atomic_load(&sh.done), cfg.n, 0);
            nanosleep(&tick, NULL);
            /* All threads may have stopped early (timeout): done then stays below n. */
            if (atomic_load(&sh.next) >= cfg.n + started || atomic_load(&sh.refused))
                break;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    uint64_t elapsed = mono_ns() - t0;
    uint64_t total = atomic_load(&sh.done);
    if (tty)
        progress(total, cfg.n, 1);

    uint64_t sum = 0, p99 = 0;
    if (total) {
        /* Threads take indexes in order, so the finished requests are exactly [0, total). */
        for (uint64_t i = 0; i < total; i++)
            sum += sh.latency_ns[i];
        qsort(sh.latency_ns, total, sizeof *sh.latency_ns, cmp_u64);
        uint64_t rank = (total * 99 + 99) / 100; /* nearest rank */
        p99 = sh.latency_ns[rank ? rank - 1 : 0];
    }
    uint64_t allowed = atomic_load(&sh.allowed), denied = atomic_load(&sh.denied),
             errors = atomic_load(&sh.errors);
    double secs = (double)elapsed / 1e9;
    double rps = secs > 0 ? (double)total / secs : 0;
    double avg_ms = total ? (double)sum / (double)total / 1e6 : 0;
    double p99_ms = (double)p99 / 1e6;
    double err_pct = total ? 100.0 * (double)errors / (double)total : 0;

    if (cfg.json) {
        printf("{\"total\":%" PRIu64 ",\"requested\":%u,\"duration_s\":%.3f,"
               "\"throughput_rps\":%.1f,\"avg_latency_ms\":%.3f,\"p99_latency_ms\":%.3f,"
               "\"error_rate_pct\":%.2f,\"allowed\":%" PRIu64 ",\"denied\":%" PRIu64
               ",\"errors\":%" PRIu64 "}\n",
               total, cfg.n, secs, rps, avg_ms, p99_ms, err_pct, allowed, denied, errors);
    } else {
        char g[3][40];
        printf("Total requests: %s\n", grouped(total, g[0], sizeof g[0]));
        printf("Duration: %.2fs\n", secs);
        printf("Throughput: %.1f req/s\n", rps);
        printf("Average latency: %.2fms\n", avg_ms);
        printf("99th percentile: %.2fms\n", p99_ms);
        printf("Error rate: %.1f%%\n", err_pct);
        printf("Allowed (2xx): %s\n", grouped(allowed, g[1], sizeof g[1]));
        printf("Denied (429): %s\n", grouped(denied, g[2], sizeof g[2]));
        printf("Errors: %" PRIu64 "\n", errors);
    }
    int status = 0;
    if (atomic_load(&sh.refused)) {
        fprintf(stderr, "rl-load: nothing listens on 127.0.0.1:%u: stopped\n", (unsigned)cfg.port);
        status = 1;
    } else if (total < cfg.n) {
        fprintf(stderr, "rl-load: stopped by --timeout %u after %" PRIu64 " of %u requests\n",
                cfg.timeout_s, total, cfg.n);
        status = 1;
    }
    if (errors)
        status = 1;
    free(sh.latency_ns);
    free(tids);
    return status;
}
