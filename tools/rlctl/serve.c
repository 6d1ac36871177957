/*
 * rlctl serve: the seed's monitoring REST endpoints over HTTP (libmicrohttpd, one thread): the
 * routes, the embedded dashboard at /, the admin token (constant-time compare) for POST
 * /rate-limits/reset, the connection limits and the rate-limited log of refused connections.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "rlctl.h"

/* Connections: at most SERVE_MAX_CONN in all (fewer when the descriptor limit is lower) and
 * SERVE_MAX_PER_IP from one address (beyond, a new connection is closed at once); one idle for
 * SERVE_IDLE_S seconds is closed (a response that streams must send something, e.g. a
 * heartbeat, more often than that). Each connection's buffer is SERVE_CONN_MEM bytes (requests
 * are small: a POST body is at most 4 KiB), so all of them take at most 32 MiB. */
#define SERVE_MAX_CONN     2048
#define SERVE_MAX_PER_IP   64
#define SERVE_IDLE_S       5
#define SERVE_CONN_MEM     16384
#define SERVE_LOG_EVERY_NS (10ull * 1000000000u)

/* Constant time in the token's content: every byte of the longer of the two is looked at. */
bool token_ok(const struct server *sv, const char *given, size_t n)
{
    size_t m = n > sv->token_len ? n : sv->token_len;
    unsigned char diff = (unsigned char)(n != sv->token_len);
    for (size_t i = 0; i < m; i++) {
        unsigned char a = i < n ? (unsigned char)given[i] : 0;
        unsigned char b = i < sv->token_len ? (unsigned char)sv->token[i] : 0;
        diff |= (unsigned char)(a ^ b);
    }
    return diff == 0 && sv->token_len > 0;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *type,
                              const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result answer_error(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    json_t *doc = json_pack("{s:s, s:i}", "error", msg, "status", (int)status);
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    enum MHD_Result r =
        answer(conn, status, "application/json", body ? body : "{}", body ? strlen(body) : 2);
    free(body);
    return r;
}

/* Runs one report command with options o into memory and answers with it; HTTP status from
 * its exit code. */
static enum MHD_Result answer_cmd_opts(struct MHD_Connection *conn, struct server *sv,
                                       int (*fn)(rl_t *, const struct opts *), const struct opts *o,
                                       unsigned fail_status)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return answer_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    g_out = m;
    int rc = fn(sv->rl, o);
    g_out = stdout;
    fclose(m);
    enum MHD_Result r =
        answer(conn, rc == EXIT_OK ? MHD_HTTP_OK : fail_status,
               o->json ? "application/json" : "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
    return r;
}

static enum MHD_Result answer_cmd(struct MHD_Connection *conn, struct server *sv,
                                  int (*fn)(rl_t *, const struct opts *), bool json,
                                  unsigned fail_status)
{
    struct opts o = sv->o;
    o.json = json;
    return answer_cmd_opts(conn, sv, fn, &o, fail_status);
}

static int cmd_health_rl(rl_t *rl, const struct opts *o)
{
    (void)rl; /* health attaches by itself: it must also answer when the segment is gone */
    return cmd_health(o);
}

/* The real-time figures: the counters now and their rates since the previous request. */
static enum MHD_Result answer_realtime(struct MHD_Connection *conn, struct server *sv)
{
    rl_stats_info st;
    if (rl_stats(sv->rl, &st) != 0)
        return answer_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, rl_errmsg());
    uint64_t now = mono_ns();
    double dt = (double)(now - sv->last_ns) / 1e9;
    double per_min = dt > 0 ? (double)(st.checks - sv->last.checks) * 60.0 / dt : 0.0;
    uint64_t dchecks = st.checks - sv->last.checks, ddenied = st.denied - sv->last.denied;
    json_t *doc = json_object();
    json_object_set_new(doc, "segment", json_string(sv->o.shm));
    set_u64(doc, "total_requests", st.checks);
    set_u64(doc, "allowed_requests", st.allowed);
    set_u64(doc, "denied_requests", st.denied);
    json_object_set_new(doc, "interval_seconds", json_real(dt));
    json_object_set_new(doc, "requests_per_minute", json_real(per_min));
    json_object_set_new(doc, "denial_rate",
                        json_real(dchecks ? (double)ddenied / (double)dchecks : 0.0));
    sv->last = st;
    sv->last_ns = now;
    char *body = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!body)
        return answer_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    enum MHD_Result r = answer(conn, MHD_HTTP_OK, "application/json", body, strlen(body));
    free(body);
    return r;
}

/* `in` made safe for a log line: printable ASCII stays (a quote and a backslash get a
 * backslash), anything else becomes \n, \r, \t or \xHH, so a request cannot forge a line or
 * a field. Cut (ending "...") to fit out[n]. */
static const char *log_escape(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        char e[5];
        if (*p == '\n')
            snprintf(e, sizeof e, "\\n");
        else if (*p == '\r')
            snprintf(e, sizeof e, "\\r");
        else if (*p == '\t')
            snprintf(e, sizeof e, "\\t");
        else if (*p == '"' || *p == '\\')
            snprintf(e, sizeof e, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            snprintf(e, sizeof e, "\\x%02x", *p);
        else
            snprintf(e, sizeof e, "%c", *p);
        size_t k = strlen(e);
        if (o + k + 4 > n) { /* room for "..." and the terminator */
            snprintf(out + o, n - o, "...");
            return out;
        }
        memcpy(out + o, e, k);
        o += k;
    }
    out[o] = '\0';
    return out;
}

/* libmicrohttpd's messages ("Server reached connection limit...", once per refused
 * connection): the first in each 10 s goes to stderr, the others are counted and the count is
 * printed with the next one, so that a flood of connections cannot flood the log. */
__attribute__((format(printf, 2, 0))) static void serve_log(void *cls, const char *fmt, va_list ap)
{
    struct server *sv = cls;
    uint64_t now = mono_ns();
    if (now < sv->log_next_ns) {
        sv->log_suppressed++;
        return;
    }
    sv->log_next_ns = now + SERVE_LOG_EVERY_NS;
    char msg[512], safe[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (sv->log_suppressed)
        fprintf(stderr, "rlctl serve: %s (and %lu similar messages in the last %llu s)\n",
                log_escape(msg, safe, sizeof safe), sv->log_suppressed,
                (unsigned long long)(SERVE_LOG_EVERY_NS / 1000000000u));
    else
        fprintf(stderr, "rlctl serve: %s\n", log_escape(msg, safe, sizeof safe));
    sv->log_suppressed = 0;
}

struct post_ctx {
    char *body;
    size_t len;
    bool too_big;
};

static void peer_of(struct MHD_Connection *conn, char *out, size_t n)
{
    snprintf(out, n, "?");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)n);
}

/* POST /rate-limits/reset {"key": "..."} or {"all": true}: needs the admin bearer token. */
static enum MHD_Result answer_reset(struct MHD_Connection *conn, struct server *sv,
                                    const struct post_ctx *pc)
{
    char peer[64];
    peer_of(conn, peer, sizeof peer);
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0) {
        fprintf(stderr, "rlctl serve: reset from %s refused: no bearer token\n", peer);
        return answer_error(conn, MHD_HTTP_UNAUTHORIZED,
                            "an admin bearer token is required (Authorization: Bearer TOKEN)");
    }
    if (!token_ok(sv, auth + 7, strlen(auth + 7))) {
        fprintf(stderr, "rlctl serve: reset from %s refused: wrong token\n", peer);
        return answer_error(conn, MHD_HTTP_FORBIDDEN,
                            sv->token_len ? "wrong admin token"
                                          : "no admin token is configured (--token-file or "
                                            "RLCTL_ADMIN_TOKEN): resets are refused");
    }
    if (pc->too_big)
        return answer_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body over 4 KiB");
    json_error_t jerr;
    json_t *req = pc->len ? json_loadb(pc->body, pc->len, 0, &jerr) : NULL;
    const char *key = req ? json_string_value(json_object_get(req, "key")) : NULL;
    bool all = req && json_is_true(json_object_get(req, "all"));
    if (!req || (!key == !all)) {
        json_decref(req);
        return answer_error(conn, MHD_HTTP_BAD_REQUEST,
                            "expected a JSON body {\"key\": \"KEY\"} or {\"all\": true}");
    }
    struct opts o = sv->o;
    o.json = true;
    o.all = all;
    o.yes = all;
    o.npos = 0;
    if (key)
        o.pos[o.npos++] = key;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) {
        json_decref(req);
        return answer_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    g_out = m;
    int rc = cmd_reset(sv->rl, &o);
    g_out = stdout;
    fclose(m);
    char safe_key[600]; /* the key came from the request: escaped (no forged log lines) */
    fprintf(stderr, "rlctl serve: %s reset %s%s%s (exit %d)\n", peer, all ? "every key" : "key \"",
            all ? "" : log_escape(key, safe_key, sizeof safe_key), all ? "" : "\"", rc);
    json_decref(req);
    enum MHD_Result r = answer(conn, rc == EXIT_OK ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND,
                               "application/json", buf, len);
    free(buf);
    return r;
}

/* The dashboard page (tools/dashboard/dashboard.html, compiled in by scripts/embed.py): static,
 * it polls the JSON and Prometheus routes below from the browser. */
extern const char rl__embed_dashboard[];

static enum MHD_Result on_http(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)version;
    struct server *sv = cls;
    bool post = strcmp(method, "POST") == 0;
    if (post) {
        struct post_ctx *pc = *con_cls;
        if (!pc) {
            pc = calloc(1, sizeof *pc);
            if (!pc)
                return MHD_NO;
            *con_cls = pc;
            return MHD_YES;
        }
        if (*upload_size) {
            if (pc->len + *upload_size > 4096) {
                pc->too_big = true;
            } else {
                char *b = realloc(pc->body, pc->len + *upload_size + 1);
                if (!b)
                    return MHD_NO;
                memcpy(b + pc->len, upload, *upload_size);
                pc->body = b;
                pc->len += *upload_size;
            }
            *upload_size = 0;
            return MHD_YES;
        }
        if (strcmp(url, "/rate-limits/reset") == 0)
            return answer_reset(conn, sv, pc);
        return answer_error(conn, MHD_HTTP_NOT_FOUND, "no such endpoint (POST)");
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD or POST");
    static const char ep[] = "/rate-limits/metrics/endpoint/";
    if (strcmp(url, "/") == 0)
        return answer(conn, MHD_HTTP_OK, "text/html; charset=utf-8", rl__embed_dashboard,
                      strlen(rl__embed_dashboard));
    if (strcmp(url, "/health") == 0 || strcmp(url, "/rate-limits/health") == 0)
        return answer_cmd(conn, sv, cmd_health_rl, true, MHD_HTTP_SERVICE_UNAVAILABLE);
    if (strcmp(url, "/metrics") == 0)
        return answer_cmd(conn, sv, cmd_metrics, false, MHD_HTTP_INTERNAL_SERVER_ERROR);
    if (strcmp(url, "/rate-limits/metrics") == 0)
        return answer_cmd(conn, sv, cmd_stats, true, MHD_HTTP_INTERNAL_SERVER_ERROR);
    if (strcmp(url, "/rate-limits/metrics/real-time") == 0)
        return answer_realtime(conn, sv);
    if (strcmp(url, "/rate-limits/config") == 0)
        return answer_cmd(conn, sv, cmd_config_show, true, MHD_HTTP_INTERNAL_SERVER_ERROR);
    if (strncmp(url, ep, sizeof ep - 1) == 0 && url[sizeof ep - 1]) {
        /* The path arrives percent-decoded (%2Fapi%2Fusers is /api/users). */
        struct opts eo = sv->o;
        eo.json = true;
        eo.npos = 1;
        eo.pos[0] = url + sizeof ep - 1;
        return answer_cmd_opts(conn, sv, cmd_endpoint, &eo, MHD_HTTP_NOT_FOUND);
    }
    return answer_error(conn, MHD_HTTP_NOT_FOUND,
                        "no such endpoint: /health, /metrics, /rate-limits/metrics, "
                        "/rate-limits/metrics/real-time, /rate-limits/metrics/endpoint/{endpoint}, "
                        "/rate-limits/config, /rate-limits/health, POST /rate-limits/reset");
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    struct post_ctx *pc = *con_cls;
    if (pc) {
        free(pc->body);
        free(pc);
        *con_cls = NULL;
    }
}

static int load_token(struct server *sv, const struct opts *o)
{
    const char *t = getenv("RLCTL_ADMIN_TOKEN");
    char buf[sizeof sv->token];
    const char *path = o->token_file;
    char cred[4096];
    const char *creds = getenv("CREDENTIALS_DIRECTORY");
    if (!path && !t && creds && *creds) {
        /* systemd: LoadCredential=rlctl-admin-token:/etc/rl/admin-token */
        snprintf(cred, sizeof cred, "%s/rlctl-admin-token", creds);
        if (access(cred, F_OK) == 0)
            path = cred;
    }
    if (path) {
        FILE *f = fopen(path, "r");
        if (!f) {
            fprintf(stderr, "rlctl serve: --token-file %s: %s\n", path, strerror(errno));
            return EXIT_FAIL;
        }
        /* As ssh with its keys: a token others can read (or replace) is no secret. */
        struct stat st;
        if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
            fprintf(stderr, "rlctl serve: --token-file %s: not a regular file\n", path);
            fclose(f);
            return EXIT_FAIL;
        }
        if (st.st_mode & 0006) {
            fprintf(stderr,
                    "rlctl serve: --token-file %s is %s by other users (mode %04o): refusing "
                    "it. Make it the service user's alone: chmod 600 %s (or use systemd "
                    "credentials: LoadCredential=rlctl-admin-token:FILE)\n",
                    path, (st.st_mode & 0004) ? "readable" : "writable",
                    (unsigned)(st.st_mode & 07777), path);
            fclose(f);
            return EXIT_FAIL;
        }
        if (st.st_mode & 0060)
            fprintf(stderr,
                    "rlctl serve: warning: --token-file %s is %s by its group (mode %04o): "
                    "every member can reset counters; chmod 600 %s unless that is meant\n",
                    path, (st.st_mode & 0040) ? "readable" : "writable",
                    (unsigned)(st.st_mode & 07777), path);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        buf[n] = '\0';
        t = buf;
    }
    if (t && strlen(t) >= sizeof sv->token) {
        fprintf(stderr, "rlctl serve: the admin token is longer than %zu bytes\n",
                sizeof sv->token - 1);
        return EXIT_USAGE;
    }
    snprintf(sv->token, sizeof sv->token, "%s", t ? t : "");
    sv->token_len = strlen(sv->token);
    return EXIT_OK;
}

/* --listen ADDRESS:PORT (default 127.0.0.1:9090) into *sa; 0 or EXIT_USAGE after a message.
 * Checked before attaching: a typo is a usage error whatever the segment's state. */
int parse_listen(const char *listen_at, struct sockaddr_in *sa)
{
    char host[64];
    unsigned port = 0;
    const char *colon = strrchr(listen_at, ':');
    /* The port: 1 to 5 digits and nothing else ("9x", "+9091", " 9091" are refused). */
    size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
    if (colon && digits >= 1 && digits <= 5 && colon[1 + digits] == '\0')
        port = (unsigned)strtoul(colon + 1, NULL, 10);
    if (!colon || (size_t)(colon - listen_at) >= sizeof host || colon == listen_at || port == 0 ||
        port > 65535)
        return usage_error("--listen wants ADDRESS:PORT, PORT 1 to 65535 in digits, e.g. "
                           "127.0.0.1:9090, not '%s'",
                           listen_at);
    memcpy(host, listen_at, (size_t)(colon - listen_at));
    host[colon - listen_at] = '\0';
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return usage_error("--listen: '%s' is not an IPv4 address", host);
    return 0;
}

int cmd_serve(rl_t *rl, const struct opts *o)
{
    const char *listen_at = o->listen ? o->listen : "127.0.0.1:9090";
    struct sockaddr_in sa;
    if (parse_listen(listen_at, &sa) != 0)
        return EXIT_USAGE;
    struct server sv = {.rl = rl, .o = *o, .last_ns = mono_ns()};
    sv.o.has_interval = true; /* /rate-limits/metrics answers at once: rates are /real-time's */
    sv.o.interval_s = 0;
    int rc = load_token(&sv, o);
    if (rc != EXIT_OK)
        return rc;
    rl_stats(rl, &sv.last);
    /* Descriptors for SERVE_MAX_CONN connections plus rl's own: raise the soft limit towards
     * the hard one if needed, else serve fewer connections. */
    unsigned max_conn = SERVE_MAX_CONN;
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
        rlim_t want = SERVE_MAX_CONN + 64;
        if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < want) {
            nofile.rlim_cur =
                nofile.rlim_max == RLIM_INFINITY || nofile.rlim_max > want ? want : nofile.rlim_max;
            setrlimit(RLIMIT_NOFILE, &nofile);
            getrlimit(RLIMIT_NOFILE, &nofile);
        }
        if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < want)
            max_conn = nofile.rlim_cur > 128 ? (unsigned)(nofile.rlim_cur - 64) : 64;
    }
    /* One internal thread answers every request in turn (the report commands write to g_out),
     * waiting with epoll (MHD_USE_AUTO: epoll on Linux, else poll), never select(): select()
     * cannot watch a descriptor above 1023, so 1,024 idle connections made /health
     * unreachable. Limits and the idle timeout: SERVE_*. */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG, ntohs(sa.sin_port),
        NULL, NULL, on_http, &sv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)SERVE_IDLE_S, MHD_OPTION_CONNECTION_LIMIT, max_conn,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVE_CONN_MEM,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)SERVE_MAX_PER_IP, MHD_OPTION_EXTERNAL_LOGGER,
        serve_log, &sv, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "rlctl serve: cannot listen on %s (in use? permission?)\n", listen_at);
        return EXIT_FAIL;
    }
    catch_stop_signals();
    fprintf(stderr, "rlctl serve: %s on http://%s/ (admin token %s)\n", o->shm, listen_at,
            sv.token_len ? "configured" : "not configured: POST /rate-limits/reset is refused");
    double until = o->has_for ? (double)o->for_seconds : -1.0;
    uint64_t t0 = mono_ns();
    while (!stop_requested && (until < 0 || (double)(mono_ns() - t0) / 1e9 < until)) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(d);
    return EXIT_OK;
}
