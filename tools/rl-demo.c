/*
 * rl-demo: an HTTP server whose worker processes share their rate limits through one segment.
 *
 * The parent binds 127.0.0.1:PORT once and forks N worker processes; each opens the segment
 * itself (rl_options_from_env: RL_SHM, RL_CONFIG, ENVIRONMENT, ...; the production preset by
 * default) and serves the listening socket with its own libmicrohttpd daemon. Whichever worker
 * accepts a connection, its requests are counted in the same segment.
 *
 * Routes: POST /api/test, GET /api/users, POST /auth/login, POST /upload/{name}, GET /health,
 * GET /rate-limits/health. Every request goes through rl_check() and every answer carries the
 * X-RateLimit-* headers; a denied request is a 429 with rl_format_body()'s JSON.
 *
 * The limiter's own time: each worker times (CLOCK_MONOTONIC: wall time, so a thread preempted
 * inside a timed call counts the wait and the figure is an upper bound on rl's CPU time; a
 * per-thread CPU clock is a system call per read here, costlier than what it would time) what
 * rl does for a request -
 * rl_client_ip(), rl_check(), rl_format_headers() with the headers' MHD_add_response_header()
 * calls, rl_format_body() for a 429 - and adds it, with the count of requests, to its own line
 * of a MAP_SHARED page the parent maps before forking. GET /rate-limits/health reports the sums
 * over all workers ("requests", "limiter_ns", of it "headers_ns") and the parent prints them when
 * it stops; scripts/bench divides them by the workers' CPU time for the HTTP row. --no-limiter
 * answers the same routes without rl (no rl_client_ip, rl_check or X-RateLimit headers; the client
 * is the peer): the baseline of that row, whose timed region is then empty (two clock reads: the
 * timer's own cost).
 *
 * Who the client is (a demo convention, not a recommendation): the IP is the peer, or the
 * X-Forwarded-For entry rl_client_ip() picks when the peer is a trusted proxy (127.0.0.1, ::1);
 * the user is the X-User header and the tier the X-Tier header, taken as sent. Anybody can send
 * them: a real service passes rl_check() only an identity it has verified.
 *
 *   rl-demo [--port N] [--workers N] [--shm NAME] [--config FILE] [--unlink] [--no-limiter]
 *
 * SIGINT or SIGTERM: the parent stops the workers, waits for them and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <rl/rl.h>
#include "support.h" /* the clock, signals, arguments */

#define DEMO_MAX_WORKERS 64u
#define DEMO_BODY_MAX    1024
#define DEMO_HEADERS_MAX 1024

static const char *const trusted_proxies[] = {"127.0.0.1", "::1"};
#define NTRUSTED (sizeof trusted_proxies / sizeof trusted_proxies[0])

/* One worker's time in rl: its own 64-byte line of the shared page (no false sharing between
 * workers); its connection threads add to it with relaxed atomics. */
struct demo_timing {
    _Atomic uint64_t requests;   /* requests answered (the last call of on_request per request) */
    _Atomic uint64_t limiter_ns; /* ns spent in rl for them (see the header comment) */
    _Atomic uint64_t headers_ns; /* the part of limiter_ns spent on the X-RateLimit headers */
    char pad[64 - 3 * sizeof(uint64_t)];
};

struct demo {
    rl_t *rl;
    const char *shm_name;
    unsigned worker;
    unsigned workers;
    int limiter;                /* 0 with --no-limiter */
    struct demo_timing *timing; /* [workers]: the MAP_SHARED page of main() */
};

/* The sums over all workers' lines (any process: the page is shared). */
static void timing_sum(const struct demo_timing *t, unsigned n, uint64_t *requests,
                       uint64_t *limiter_ns, uint64_t *headers_ns)
{
    *requests = *limiter_ns = *headers_ns = 0;
    for (unsigned i = 0; i < n; i++) {
        *requests += atomic_load_explicit(&t[i].requests, memory_order_relaxed);
        *limiter_ns += atomic_load_explicit(&t[i].limiter_ns, memory_order_relaxed);
        *headers_ns += atomic_load_explicit(&t[i].headers_ns, memory_order_relaxed);
    }
}

static void die_rl(const char *what, int rc)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s", rl_errmsg());
    fprintf(stderr, "rl-demo: %s: %s%s%s\n", what, rl_strerror(rc), detail[0] ? ": " : "", detail);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rl-demo [--port N] [--workers N] [--shm NAME] [--config FILE] [--unlink]\n"
            "               [--no-limiter]\n"
            "  An HTTP server on 127.0.0.1:PORT (default 8000; 0 picks a free port) whose N\n"
            "  worker processes (default 2) share their rate limits through one segment.\n"
            "  --shm NAME     the segment (default: RL_SHM, else /rl-default)\n"
            "  --config FILE  YAML rules for a new segment (default: RL_CONFIG, else the\n"
            "                 ENVIRONMENT preset, production by default)\n"
            "  --unlink       remove the segment name when the server stops\n"
            "  --no-limiter   answer the same routes without rl (no rl_check, no X-RateLimit\n"
            "                 headers; the client is the peer): the baseline that shows what\n"
            "                 the limiter costs per request (scripts/bench)\n"
            "Routes: POST /api/test, GET /api/users, POST /auth/login, POST /upload/{name},\n"
            "  GET /health, GET /rate-limits/health. The client is the peer address, or the\n"
            "  X-Forwarded-For client when the peer is 127.0.0.1 or ::1; X-User and X-Tier name\n"
            "  the user and tier (a demo convention: anybody can send them).\n"
            "The workers time what rl does per request (rl_client_ip, rl_check, the headers):\n"
            "  GET /rate-limits/health reports \"requests\", \"limiter_ns\" and \"headers_ns\"\n"
            "  (the headers' part) summed over them, and the server prints the averages when it\n"
            "  stops.\n"
            "Stop with SIGINT or SIGTERM.\n");
}

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                    */

/* Adds each "Name: value\r\n" line of rl_format_headers() to the response; the time it takes
 * is added to rl_ns[1] (the limiter's time in headers; rl_ns[0] is its time deciding). */
static void add_rl_headers(struct MHD_Response *resp, const rl_decision *d, uint64_t *rl_ns)
{
    uint64_t t0 = mono_ns();
    char buf[DEMO_HEADERS_MAX];
    if (rl_format_headers(d, buf, sizeof buf) < 0) {
        rl_ns[1] += mono_ns() - t0;
        return;
    }
    char *line = buf;
    while (*line) {
        char *eol = strstr(line, "\r\n");
        if (eol)
            *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            const char *value = colon + 1;
            while (*value == ' ')
                value++;
            MHD_add_response_header(resp, line, value);
        }
        if (!eol)
            break;
        line = eol + 2;
    }
    rl_ns[1] += mono_ns() - t0;
}

/* Queues a JSON answer; with d, its X-RateLimit-* headers (their time added to rl_ns[1]). */
static enum MHD_Result send_json_allow(struct MHD_Connection *conn, unsigned status,
                                       const char *body, const rl_decision *d, const char *allow,
                                       uint64_t *rl_ns)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (d)
        add_rl_headers(resp, d, rl_ns);
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, const char *body,
                                 const rl_decision *d, uint64_t *rl_ns)
{
    return send_json_allow(conn, status, body, d, NULL, rl_ns);
}

/* The peer's address as text ("" when unknown). */
static void peer_address(struct MHD_Connection *conn, char *out, size_t len)
{
    out[0] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)len);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)len);
    }
}

enum route { R_NONE, R_METHOD, R_API_TEST, R_API_USERS, R_LOGIN, R_UPLOAD, R_HEALTH, R_RL_HEALTH };

static const struct {
    const char *method;
    const char *path; /* ending in '/': a prefix followed by one more path segment */
    enum route route;
} routes[] = {
    {"POST", "/api/test", R_API_TEST}, {"GET", "/api/users", R_API_USERS},
    {"POST", "/auth/login", R_LOGIN},  {"POST", "/upload/", R_UPLOAD},
    {"GET", "/health", R_HEALTH},      {"GET", "/rate-limits/health", R_RL_HEALTH},
};

/* The route of a request; R_METHOD when the path is known but wants another method (*allow). */
static enum route find_route(const char *method, const char *url, const char **allow)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        size_t n = strlen(routes[i].path);
        int match = routes[i].path[n - 1] == '/'
                        ? strncmp(url, routes[i].path, n) == 0 && url[n] && !strchr(url + n, '/')
                        : strcmp(url, routes[i].path) == 0;
        if (!match)
            continue;
        *allow = routes[i].method;
        return strcmp(method, routes[i].method) == 0 ? routes[i].route : R_METHOD;
    }
    return R_NONE;
}

/* GET /rate-limits/health: the segment's state and counters, and the limiter's time summed over
 * all workers (read by scripts/bench). d is NULL with --no-limiter. */
static enum MHD_Result rl_health_answer(struct MHD_Connection *conn, const struct demo *demo,
                                        const rl_decision *d, uint64_t *rl_ns)
{
    rl_health_info h;
    rl_stats_info st;
    char body[DEMO_BODY_MAX];
    if (rl_health(demo->rl, &h) < 0 || rl_stats(demo->rl, &st) < 0) {
        snprintf(body, sizeof body, "{\"status\":\"unhealthy\",\"segment\":\"%s\"}",
                 demo->shm_name);
        return send_json(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body, d, rl_ns);
    }
    uint64_t requests, limiter_ns, headers_ns;
    timing_sum(demo->timing, demo->workers, &requests, &limiter_ns, &headers_ns);
    snprintf(body, sizeof body,
             "{\"status\":\"healthy\",\"segment\":\"%s\",\"mode\":\"%s\",\"worker_pid\":%ld,"
             "\"checks\":%" PRIu64 ",\"allowed\":%" PRIu64 ",\"denied\":%" PRIu64
             ",\"config_generation\":%" PRIu64 ",\"limiter\":\"%s\",\"requests\":%" PRIu64
             ",\"limiter_ns\":%" PRIu64 ",\"headers_ns\":%" PRIu64 "}\n",
             demo->shm_name, h.redis_configured ? "redis" : "local", (long)getpid(), st.checks,
             st.allowed, st.denied, st.config_generation, demo->limiter ? "on" : "off", requests,
             limiter_ns, headers_ns);
    return send_json(conn, MHD_HTTP_OK, body, d, rl_ns);
}

/* One complete request: rl's decision (unless --no-limiter), then the route's answer. The time
 * spent in rl is added to rl_ns[0] (rl_client_ip, rl_check, rl_format_body) and rl_ns[1] (the
 * X-RateLimit headers). */
static enum MHD_Result answer(struct MHD_Connection *conn, const struct demo *demo, const char *url,
                              const char *method, uint64_t *rl_ns)
{
    char peer[INET6_ADDRSTRLEN + 1], ip[64], body[DEMO_BODY_MAX];
    peer_address(conn, peer, sizeof peer);
    rl_decision d;
    const rl_decision *dp = NULL; /* the decision whose headers go out; none without rl */
    uint64_t t0 = mono_ns();
    if (demo->limiter) {
        const char *xff = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For");
        int rc = rl_client_ip(peer, xff, trusted_proxies, NTRUSTED, ip, sizeof ip);
        if (rc < 0) {
            rl_ns[0] += mono_ns() - t0;
            snprintf(body, sizeof body,
                     "{\"error\":\"bad_request\",\"message\":\"the client address or "
                     "X-Forwarded-For is not an IP address\"}\n");
            return send_json(conn, MHD_HTTP_BAD_REQUEST, body, NULL, rl_ns);
        }

        rl_request req = {0};
        req.method = method;
        req.path = url;
        req.ip = ip;
        req.user = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-User");
        req.tier = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Tier");
        if (req.user && !*req.user)
            req.user = NULL;
        if (req.tier && !*req.tier)
            req.tier = NULL;
        rc = rl_check(demo->rl, &req, &d);
        if (rc < 0) {
            rl_ns[0] += mono_ns() - t0;
            snprintf(body, sizeof body, "{\"error\":\"internal\",\"message\":\"rl_check: %s\"}\n",
                     rl_strerror(rc));
            return send_json(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, body, NULL, rl_ns);
        }
        if (!d.allowed) {
            if (rl_format_body(&d, body, sizeof body) < 0)
                snprintf(body, sizeof body, "{\"error\":\"rate_limited\"}");
            rl_ns[0] += mono_ns() - t0;
            return send_json(conn, MHD_HTTP_TOO_MANY_REQUESTS, body, &d, rl_ns);
        }
        dp = &d;
    } else {
        snprintf(ip, sizeof ip, "%s", peer);
    }
    rl_ns[0] += mono_ns() - t0;

    const char *allow = NULL;
    enum route r = find_route(method, url, &allow);
    const char *what = NULL;
    switch (r) {
    case R_NONE:
        snprintf(body, sizeof body, "{\"error\":\"not_found\"}\n");
        return send_json(conn, MHD_HTTP_NOT_FOUND, body, dp, rl_ns);
    case R_METHOD:
        snprintf(body, sizeof body, "{\"error\":\"method_not_allowed\",\"allow\":\"%s\"}\n", allow);
        return send_json_allow(conn, MHD_HTTP_METHOD_NOT_ALLOWED, body, dp, allow, rl_ns);
    case R_RL_HEALTH:
        return rl_health_answer(conn, demo, dp, rl_ns);
    case R_HEALTH:
        what = "healthy";
        break;
    case R_API_TEST:
        what = "test accepted";
        break;
    case R_API_USERS:
        what = "users listed";
        break;
    case R_LOGIN:
        what = "login accepted";
        break;
    case R_UPLOAD:
        what = "upload accepted";
        break;
    }
    snprintf(body, sizeof body,
             "{\"status\":\"ok\",\"message\":\"%s\",\"client_ip\":\"%s\",\"worker_pid\":%ld}\n",
             what, ip, (long)getpid());
    return send_json(conn, MHD_HTTP_OK, body, dp, rl_ns);
}

/* libmicrohttpd's handler, called from the worker's connection threads: waits for the whole
 * request, answers it, and adds the request and its time in rl to this worker's line. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    static int started;
    const struct demo *demo = cls;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) { /* headers only so far: wait for (and discard) the body */
        *con_cls = &started;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    uint64_t rl_ns[2] = {0, 0};
    enum MHD_Result res = answer(conn, demo, url, method, rl_ns);
    struct demo_timing *t = &demo->timing[demo->worker];
    atomic_fetch_add_explicit(&t->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->limiter_ns, rl_ns[0] + rl_ns[1], memory_order_relaxed);
    atomic_fetch_add_explicit(&t->headers_ns, rl_ns[1], memory_order_relaxed);
    return res;
}

/* ------------------------------------------------------------------------------------------ */
/* Processes                                                                                   */

static int open_segment(const char *shm, const char *config, rl_options *o, rl_t **rl)
{
    rl_options_init(o);
    int rc = rl_options_from_env(o);
    if (rc < 0) {
        die_rl("environment", rc);
        return rc;
    }
    if (shm)
        o->shm_name = shm;
    if (config)
        o->config_path = config;
    rc = rl_open(rl, o);
    if (rc < 0)
        die_rl(o->shm_name, rc);
    return rc;
}

/* One worker (tmpl: its number, the options, the timing page): its own segment handle and
 * daemon on the shared socket, until SIGTERM/SIGINT. */
static int run_worker(int lsock, const struct demo *tmpl, const char *shm, const char *config,
                      const sigset_t *stop)
{
    rl_options o;
    struct demo demo = *tmpl;
    unsigned id = demo.worker;
    if (open_segment(shm, config, &o, &demo.rl) < 0)
        return 2;
    demo.shm_name = o.shm_name;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, &demo, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)lsock,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "rl-demo: worker %u: libmicrohttpd did not start\n", id);
        rl_close(&demo.rl);
        return 2;
    }
    int sig = 0;
    sigwait(stop, &sig);
    MHD_stop_daemon(d);
    rl_close(&demo.rl);
    return 0;
}

static int listen_on(unsigned port, unsigned *bound)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        fprintf(stderr, "rl-demo: socket: %s\n", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 512) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &alen) < 0) {
        fprintf(stderr, "rl-demo: 127.0.0.1:%u: %s%s\n", port, strerror(errno),
                errno == EADDRINUSE ? " (pick another --port, or 0 for a free one)" : "");
        close(s);
        return -1;
    }
    /* Every worker polls this socket: whoever loses the race to accept() must not block. */
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    *bound = ntohs(a.sin_port);
    return s;
}

static void stop_workers(const pid_t *pids, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
}

/* Waits for every worker; returns the number that exited other than with status 0. */
static unsigned reap_workers(pid_t *pids, unsigned n)
{
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) {
        if (pids[i] <= 0)
            continue;
        int st = 0;
        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
        pids[i] = 0;
    }
    return bad;
}

int main(int argc, char **argv)
{
    /* SIGINT and SIGTERM are taken with sigwait() (by the workers too, which inherit the mask,
     * as do libmicrohttpd's threads); SIGCHLD tells the parent a worker died. Blocked from the
     * start: a signal that arrives while the server starts up stops it once it is up. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigset_t parent_set = stop;
    sigaddset(&parent_set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &parent_set, NULL);
    signal(SIGPIPE, SIG_IGN);

    unsigned port = 8000, workers = 2;
    const char *shm = NULL, *config = NULL;
    int unlink_at_exit = 0, limiter = 1;
    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--port") == 0) {
            if (parse_uint_arg("rl-demo", "--port", next, 0, 65535, &port) < 0)
                return 2;
            i++;
        } else if (strcmp(argv[i], "--workers") == 0) {
            if (parse_uint_arg("rl-demo", "--workers", next, 1, DEMO_MAX_WORKERS, &workers) < 0)
                return 2;
            i++;
        } else if (strcmp(argv[i], "--shm") == 0 || strcmp(argv[i], "--config") == 0) {
            if (!next) {
                fprintf(stderr, "rl-demo: %s wants a value\n", argv[i]);
                return 2;
            }
            *(argv[i][2] == 's' ? &shm : &config) = next;
            i++;
        } else if (strcmp(argv[i], "--unlink") == 0) {
            unlink_at_exit = 1;
        } else if (strcmp(argv[i], "--no-limiter") == 0) {
            limiter = 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "rl-demo: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    /* The port first (a busy port creates no segment), then the segment, opened once here: a
     * bad configuration or segment is reported before anything starts, and the segment exists
     * (with its rules) before the workers attach. */
    unsigned bound = 0;
    int lsock = listen_on(port, &bound);
    if (lsock < 0)
        return 2;
    rl_options o;
    rl_t *rl = NULL;
    if (open_segment(shm, config, &o, &rl) < 0) {
        close(lsock);
        return 2;
    }
    rl_health_info h;
    int redis = rl_health(rl, &h) == 0 && h.redis_configured;
    char shm_name[256];
    snprintf(shm_name, sizeof shm_name, "%s", o.shm_name);
    rl_close(&rl);

    /* The workers' time in rl: one line each in a page they all share (fork keeps MAP_SHARED). */
    struct demo_timing *timing = mmap(NULL, workers * sizeof *timing, PROT_READ | PROT_WRITE,
                                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (timing == MAP_FAILED) {
        fprintf(stderr, "rl-demo: mmap: %s\n", strerror(errno));
        close(lsock);
        return 2;
    }

    pid_t pids[DEMO_MAX_WORKERS] = {0};
    for (unsigned i = 0; i < workers; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "rl-demo: fork: %s\n", strerror(errno));
            stop_workers(pids, i);
            reap_workers(pids, i);
            close(lsock);
            return 2;
        }
        if (pid == 0) {
            struct demo tmpl = {
                .worker = i, .workers = workers, .limiter = limiter, .timing = timing};
            int st = run_worker(lsock, &tmpl, shm_name, config, &stop);
            fflush(NULL);
            _exit(st);
        }
        pids[i] = pid;
    }
    close(lsock);
    printf("rl-demo: listening on http://127.0.0.1:%u with %u worker processes, segment %s, "
           "%s%s\n",
           bound, workers, shm_name,
           redis ? "Redis configured (GLOBAL and STRICT layers go through Redis)"
                 : "LOCAL mode (no Redis)",
           limiter ? "" : "; --no-limiter: requests are answered without rl_check");
    fflush(stdout);

    int sig = 0, status = 0;
    sigwait(&parent_set, &sig);
    if (sig == SIGCHLD) {
        fprintf(stderr, "rl-demo: a worker exited; stopping\n");
        status = 1;
    }
    stop_workers(pids, workers);
    unsigned bad = reap_workers(pids, workers);
    if (bad && status == 0) {
        fprintf(stderr, "rl-demo: %u worker(s) did not stop cleanly\n", bad);
        status = 1;
    }
    if (unlink_at_exit)
        rl_unlink(shm_name);
    uint64_t requests, limiter_ns, headers_ns;
    timing_sum(timing, workers, &requests, &limiter_ns, &headers_ns);
    /* Wall time, not CPU time: a worker thread preempted inside a timed call counts its wait
     * (8 connections on 2 cores do that often), so the figure is an upper bound on rl's CPU
     * time per request. The line says so. */
    printf("rl-demo: %" PRIu64
           " requests, %.0f ns per request in rl, %.0f of them on headers (%s; wall time "
           "inside the timed calls, preemption included: an upper bound on rl's CPU time)\n",
           requests, requests ? (double)limiter_ns / (double)requests : 0.0,
           requests ? (double)headers_ns / (double)requests : 0.0,
           limiter ? "rl_client_ip + rl_check + X-RateLimit headers"
                   : "--no-limiter: the timer alone");
    munmap(timing, workers * sizeof *timing);
    if (status == 0)
        printf("rl-demo: stopped\n");
    return status;
}
