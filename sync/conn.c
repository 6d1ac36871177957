/*
 * Redis connections over hiredis's synchronous API, and the pool: the contract is in conn.h.
 *
 * Deadlines, not timeouts. hiredis only formats commands (its output buffer) and parses
 * replies (its reader); every byte goes through exchange() below: the socket is non-blocking,
 * and each write and read waits in poll(2) for at most what is left until an absolute
 * CLOCK_MONOTONIC deadline. A per-read timeout (SO_RCVTIMEO) would be reset by every byte, so
 * a peer that trickles one byte per 50 ms would hold a call forever; a deadline cannot be
 * stretched by anything the peer does. The deadlines (conn.h, "Time bounds"): a connect and
 * its handshake end at min(call deadline, start + connect_ms), a command at min(call
 * deadline, start + command_ms), and every call through conn.h's entry points gets a call
 * deadline of connect_ms + command_ms unless its caller set an earlier one.
 *
 * Replies have a byte budget (RL_REDIS_REPLY_MAX): hiredis 0.14 would wait for, and allocate,
 * whatever a bulk length or an array count announces. Every byte read is first run through a
 * small RESP header scanner (struct rx): a "$N" above the budget or a "*N" that cannot fit in
 * it is refused as soon as its header arrives, before hiredis sees it.
 *
 * The poll also watches the connection's cancel fd (rl__redis_set_cancel): a sync thread whose
 * handle closes leaves its exchange at once (-ECANCELED). After any I/O error the state of the
 * stream is unknown (a late reply would be read as the answer to the next command), so the
 * connection is closed, never reused.
 *
 * SIGPIPE: hiredis writes with write(2), and a write to a peer that reset the connection raises
 * SIGPIPE, whose default action kills the process. A library must not do that to its host, so
 * every hiredis call that may write runs with SIGPIPE blocked in the calling thread, and a
 * SIGPIPE it raised is consumed (sigtimedwait) before the mask is restored: the call fails with
 * EPIPE instead (-ECONNRESET). Two pthread_sigmask calls per command; nothing else changes for
 * an application that ignores or blocks SIGPIPE itself.
 *
 * Why one file of ~2,300 lines: every section below (connecting, one connection, Redis Cluster,
 * scripts, pipelining, the pool) does its I/O through exchange() and reads struct rl_redis's
 * private fields; split, those would become a private interface exported to every part, and
 * the one place that enforces the deadline and the reply budget would no longer be the only
 * code that touches a socket. The sections stand in that order, each opening with what it
 * holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "sync/conn.h"
#include "lib/clock.h"
#include "lib/error.h"

#define WHERE_MAX   300
#define MSG_MAX     400
#define SCRIPTS_MAX 16
#define POOL_MAX    4096u
#define MS_NS       ((uint64_t)1000000)

/* Redis Cluster. */
#define CLUSTER_SLOTS     16384
#define CLUSTER_MAX_NODES 1024u /* masters one connection keeps; the slot map is 16 bits wide */
#define CLUSTER_TRIES     3u    /* unconnected known nodes tried for CLUSTER SLOTS, then seeds */
#define SLOT_ANY          (-1)  /* a command without a key: any node */
#define SLOT_GUESS        (-2)  /* the slot of the command's first key, as far as rl knows it */

struct script_sha {
    uint64_t hash; /* XXH3 of the source; 0 with len 0: empty entry */
    size_t len;
    char sha[41];
};

/* A redis-cluster:// connection's nodes and slot map (see "Redis Cluster" below). */
struct cluster {
    struct rl_redis **node; /* one standalone connection per master seen (and the seeds) */
    unsigned nnodes, cap;
    uint16_t slot[CLUSTER_SLOTS]; /* index + 1 into node of the slot's master; 0: unknown */
    bool loaded;                  /* a CLUSTER SLOTS answer has been applied */
    bool stale;                   /* refresh the map at the next call (at most every 100 ms) */
    uint64_t refreshed_at;        /* monotonic ns of the last refresh attempt */
};

/* What rl has read of one stream: a RESP header scanner that runs ahead of hiredis's reader
 * (see the top of this file). */
struct rx {
    uint64_t skip; /* bytes of a bulk string's payload (and its CRLF) still to pass over */
    unsigned line; /* bytes of the current header line so far (0: at the start of an item) */
    char head[24]; /* its first bytes */
};

struct rl_redis {
    struct rl_redis_url url;
    unsigned connect_ms, command_ms;
    redisContext *ctx; /* NULL: not connected */
    struct rx rx;      /* ctx's stream */
    uint64_t call_dl;  /* monotonic ns: the current call's deadline (0: none yet) */
    int cancel_fd;     /* readable: leave every exchange at once (-ECANCELED); -1: none */
    void (*hook)(
        void *); /* called every hook_ns while an exchange waits (rl__redis_set_wait_hook) */
    void *hook_arg;
    uint64_t hook_ns;
    pid_t pid; /* the process that opened ctx */
    char where[WHERE_MAX];

    /* Backoff after failed connects. */
    unsigned streak;   /* consecutive failed connects */
    uint64_t retry_at; /* monotonic ns before which no connect is attempted */
    char last_msg[MSG_MAX];
    uint64_t rng;

    /* Pipelining. */
    unsigned pending; /* appended commands whose reply is not read yet */
    unsigned lost;    /* replies of a broken batch still to be reported as lost */
    int lost_err;     /* their code */
    bool drop_after;  /* READONLY seen inside a batch: drop once it is read */

    struct script_sha scripts[SCRIPTS_MAX];
    unsigned script_next;

    /* Pool membership (NULL: standalone connection). */
    struct rl_redis_pool *pool;
    bool in_use, probe;

    /* Redis Cluster: the nodes and slot map of a redis-cluster:// connection (else NULL), and
     * for one of its per-node connections the cluster connection that owns it (else NULL). */
    struct cluster *cl;
    struct rl_redis *parent;
};

struct rl_redis_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned size, nidle, command_ms;
    struct rl_redis **conns; /* all of them */
    struct rl_redis **idle;  /* stack of the free ones */
    /* Circuit breaker (under mu; `fails` is also read without it on the fast path). */
    _Atomic unsigned fails;
    uint64_t open_until; /* monotonic ns; 0: closed */
    bool probing;        /* a probe is out */
    uint64_t trips;
    char last_msg[MSG_MAX];
};

/* ---- small helpers ------------------------------------------------------------------------- */

static struct timeval ms_tv(unsigned ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000u);
    tv.tv_usec = (suseconds_t)((ms % 1000u) * 1000u);
    return tv;
}

static void fmt_where(char *buf, size_t n, const char *host, int port)
{
    if (strchr(host, ':'))
        snprintf(buf, n, "[%s]:%d", host, port);
    else
        snprintf(buf, n, "%s:%d", host, port);
}

static bool has_prefix(const char *s, const char *p)
{
    return s && strncmp(s, p, strlen(p)) == 0;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000u), .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- SIGPIPE -------------------------------------------------------------------------------- */

struct pipe_guard {
    sigset_t old;
};

static void pipe_block(struct pipe_guard *g)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

/* failed: the call failed (only a failed write raises SIGPIPE). */
static void pipe_restore(struct pipe_guard *g, bool failed)
{
    int saved = errno;
    /* When the caller had SIGPIPE blocked already, a pending one may be theirs: leave it. */
    if (failed && sigismember(&g->old, SIGPIPE) != 1) {
        sigset_t set, pending;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
            struct timespec zero = {0, 0};
            while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
                ;
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
    errno = saved;
}

/* ---- deadline-bound I/O ------------------------------------------------------------------ */

static uint64_t min_dl(uint64_t a, uint64_t b)
{
    return a && (!b || a < b) ? a : b;
}

/* The call deadline that binds c (a cluster node: its cluster connection's). */
static uint64_t call_dl(const struct rl_redis *c)
{
    return c->parent ? c->parent->call_dl : c->call_dl;
}

static int cancel_fd_of(const struct rl_redis *c)
{
    return c->parent ? c->parent->cancel_fd : c->cancel_fd;
}

static const struct rl_redis *hook_of(const struct rl_redis *c)
{
    return c->parent ? c->parent : c;
}

/* Starts a call: sets c's call deadline (connect + command budgets from now) unless one binds
 * it already; true when this call set it (and end_call clears it). */
static bool begin_call(struct rl_redis *c)
{
    if (call_dl(c))
        return false;
    c->call_dl = rl__mono_ns() + ((uint64_t)c->connect_ms + c->command_ms) * MS_NS;
    return true;
}

static void end_call(struct rl_redis *c, bool owned)
{
    if (owned)
        c->call_dl = 0;
}

/* The deadline of one exchange (a command) or of one connect, starting now. */
static uint64_t cmd_deadline(const struct rl_redis *c)
{
    return min_dl(call_dl(c), rl__mono_ns() + (uint64_t)c->command_ms * MS_NS);
}

static uint64_t connect_deadline(const struct rl_redis *c)
{
    return min_dl(call_dl(c), rl__mono_ns() + (uint64_t)c->connect_ms * MS_NS);
}

static unsigned left_ms(uint64_t dl)
{
    uint64_t now = rl__mono_ns();
    return now >= dl ? 0u : (unsigned)((dl - now + MS_NS - 1) / MS_NS);
}

/* Makes a connected context's socket non-blocking and takes the blocking flag off hiredis (so
 * that its buffer functions treat EAGAIN as "later"); only exchange() does I/O on it. */
static int make_nonblocking(redisContext *ctx)
{
    int fl = fcntl(ctx->fd, F_GETFL);
    if (fl < 0 || fcntl(ctx->fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    ctx->flags &= ~REDIS_BLOCK;
    return 0;
}

/* Waits until fd is ready for ev, the deadline passes (-ETIMEDOUT) or c's cancel fd is
 * readable (-ECANCELED), calling c's wait hook every hook_ns meanwhile (*hook_at: when next,
 * kept by the caller across the waits of one exchange, so that a peer trickling bytes faster
 * than hook_ns does not starve the hook; 0: from now). EINTR (a signal to this
 * thread) just waits again for the time left. */
static int wait_fd(const struct rl_redis *c, int fd, short ev, uint64_t dl, uint64_t *hook_at)
{
    int cancel_fd = cancel_fd_of(c);
    const struct rl_redis *h = hook_of(c);
    if (h->hook && !*hook_at)
        *hook_at = rl__mono_ns() + h->hook_ns;
    for (;;) {
        uint64_t now = rl__mono_ns();
        if (now >= dl)
            return -ETIMEDOUT;
        if (h->hook && now >= *hook_at) {
            h->hook(h->hook_arg);
            *hook_at = now + h->hook_ns;
        }
        uint64_t until = h->hook && *hook_at < dl ? *hook_at : dl;
        uint64_t ms = until > now ? (until - now + MS_NS - 1) / MS_NS : 0;
        struct pollfd pf[2] = {{.fd = fd, .events = ev}, {.fd = cancel_fd, .events = POLLIN}};
        int n = poll(pf, cancel_fd >= 0 ? 2 : 1, ms > 60000 ? 60000 : (int)ms);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0 && cancel_fd >= 0 && pf[1].revents)
            return -ECANCELED;
        if (n > 0 && pf[0].revents)
            return 0; /* ready, or an error/hang-up that the read or write will name */
    }
}

/* Runs the header scanner over freshly read bytes: -EMSGSIZE (message set by the caller from
 * *announced) when a header announces more than the budget. */
static int rx_scan(struct rx *x, const char *p, size_t n, long long *announced)
{
    size_t i = 0;
    while (i < n) {
        if (x->skip) {
            size_t take = n - i < x->skip ? n - i : (size_t)x->skip;
            x->skip -= take;
            i += take;
            continue;
        }
        char ch = p[i++];
        if (x->line < sizeof x->head)
            x->head[x->line] = ch;
        x->line++;
        if (ch != '\n')
            continue;
        char type = x->head[0];
        unsigned len = x->line;
        x->line = 0;
        if (type != '$' && type != '*')
            continue; /* simple strings, errors, integers: no payload; hiredis checks the rest */
        if (len > sizeof x->head)
            return *announced = LLONG_MAX, -EMSGSIZE; /* a length of 20+ digits */
        char num[sizeof x->head];
        memcpy(num, x->head + 1, len - 1);
        num[len - 1] = '\0';
        long long v = strtoll(num, NULL, 10);
        if (type == '$' && v > (long long)RL_REDIS_REPLY_MAX)
            return *announced = v, -EMSGSIZE;
        /* An element takes 3 bytes at least ("+\r\n"): a count that cannot fit is refused
         * before hiredis allocates an array for it. */
        if (type == '*' && v > (long long)(RL_REDIS_REPLY_MAX / 3))
            return *announced = v, -EMSGSIZE;
        if (type == '$' && v >= 0)
            x->skip = (uint64_t)v + 2;
    }
    return 0;
}

/*
 * One exchange on ctx: sends what hiredis has buffered (ctx->obuf), then reads until one
 * reply is complete, all by dl. 0 and *out (any reply type, errors included), or a negative
 * code with the message set: -ETIMEDOUT (dl passed: silent, trickling or not reading),
 * -ECANCELED (c's cancel fd), -ECONNRESET (reset, closed, garbage, or a reply over the byte
 * budget), -ENOMEM. After an error the stream is unusable: the caller closes ctx.
 */
static int exchange(const struct rl_redis *c, redisContext *ctx, struct rx *x, const char *where,
                    const char *what, uint64_t dl, const char *kind, unsigned kind_ms, void **out)
{
    uint64_t start = rl__mono_ns(), hook_at = 0;
    unsigned budget = dl > start ? (unsigned)((dl - start + MS_NS / 2) / MS_NS) : 0;
    *out = NULL;
    int done = 0;
    while (!done) {
        if (redisBufferWrite(ctx, &done) != REDIS_OK)
            return rl__err(-ECONNRESET, "Redis at %s: sending %s failed: %s", where, what,
                           ctx->errstr[0] ? ctx->errstr : "connection lost");
        if (done)
            break;
        int rc = wait_fd(c, ctx->fd, POLLOUT, dl, &hook_at);
        if (rc == -ETIMEDOUT)
            return rl__err(rc,
                           "Redis at %s: could not send %s within %u ms (%s budget %u ms: the "
                           "peer does not read)",
                           where, what, budget, kind, kind_ms);
        if (rc == -ECANCELED)
            return rl__err(rc, "Redis at %s: %s cancelled (the handle is closing)", where, what);
        if (rc < 0)
            return rl__err(-ECONNRESET, "Redis at %s: poll: %s", where, strerror(-rc));
    }
    size_t got = 0;
    for (;;) {
        void *r = NULL;
        if (redisGetReplyFromReader(ctx, &r) != REDIS_OK)
            return rl__err(ctx->err == REDIS_ERR_OOM ? -ENOMEM : -ECONNRESET,
                           "Redis at %s: bad reply to %s (%s): is a Redis server there?", where,
                           what, ctx->errstr);
        if (r) {
            *out = r;
            return 0;
        }
        int rc = wait_fd(c, ctx->fd, POLLIN, dl, &hook_at);
        if (rc == -ETIMEDOUT) {
            if (got)
                return rl__err(rc,
                               "Redis at %s: the reply to %s was still incomplete after %u ms "
                               "(%s budget %u ms; %zu bytes received: the peer is too slow)",
                               where, what, budget, kind, kind_ms, got);
            return rl__err(rc, "Redis at %s: no reply to %s within %u ms (%s budget %u ms)", where,
                           what, budget, kind, kind_ms);
        }
        if (rc == -ECANCELED)
            return rl__err(rc, "Redis at %s: %s cancelled (the handle is closing)", where, what);
        if (rc < 0)
            return rl__err(-ECONNRESET, "Redis at %s: poll: %s", where, strerror(-rc));
        char buf[16384];
        ssize_t n = read(ctx->fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        if (n < 0)
            return rl__err(-ECONNRESET, "Redis at %s: reading the reply to %s failed: %s", where,
                           what, strerror(errno));
        if (n == 0)
            return rl__err(-ECONNRESET, "Redis at %s: the server closed the connection during %s%s",
                           where, what, got ? " (reply cut short)" : "");
        got += (size_t)n;
        long long announced = 0;
        if (rx_scan(x, buf, (size_t)n, &announced) < 0 || got > 2 * RL_REDIS_REPLY_MAX)
            return rl__err(-ECONNRESET,
                           "Redis at %s: the reply to %s announces %lld bytes or elements, "
                           "more than rl's budget of %u bytes per reply: refused (is a Redis "
                           "server there?)",
                           where, what, announced ? announced : (long long)got,
                           (unsigned)RL_REDIS_REPLY_MAX);
        if (redisReaderFeed(ctx->reader, buf, (size_t)n) != REDIS_OK)
            return rl__err(-ENOMEM, "Redis at %s: out of memory reading the reply to %s", where,
                           what);
    }
}

/* The command's name for messages: argv[0], or a format's first word. */
static const char *cmd_name(const char *s, char out[24])
{
    size_t n = strcspn(s, " %");
    if (n >= 24)
        n = 23;
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* The errno behind a hiredis I/O error: recovered from the text hiredis made of it (strerror,
 * same locale), else errno as the failing call left it. */
static int io_errno(const redisContext *ctx, int saved)
{
    static const int known[] = {EAGAIN, ETIMEDOUT,    ECONNREFUSED, ECONNRESET,
                                EPIPE,  EHOSTUNREACH, ENETUNREACH,  ENOENT,
                                EACCES, EINPROGRESS,  ECONNABORTED, EADDRNOTAVAIL};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strstr(ctx->errstr, strerror(known[i])))
            return known[i];
    return saved == EWOULDBLOCK ? EAGAIN : saved;
}

/* A negative code for the error in ctx (connect: while connecting). */
static int ctx_code(const redisContext *ctx, int saved, bool connecting)
{
    switch (ctx->err) {
    case REDIS_ERR_IO:
        switch (io_errno(ctx, saved)) {
        case EAGAIN:
        case ETIMEDOUT:
        case EINPROGRESS:
            return -ETIMEDOUT;
        case ECONNREFUSED:
        case ENOENT: /* a unix socket that is not there: no server */
            return connecting ? -ECONNREFUSED : -ECONNRESET;
        case EHOSTUNREACH:
        case ENETUNREACH:
        case EADDRNOTAVAIL:
            return -EHOSTUNREACH;
        case EACCES:
            return connecting ? -EACCES : -ECONNRESET;
        default:
            return connecting ? -ECONNREFUSED : -ECONNRESET;
        }
    case REDIS_ERR_OOM:
        return -ENOMEM;
    case REDIS_ERR_OTHER:
        /* Connecting: name resolution ("Name or service not known"); else a format string
         * hiredis does not understand (a bug in the caller). */
        return connecting ? -EHOSTUNREACH : -EINVAL;
    default: /* EOF (the server closed it), protocol garbage */
        return -ECONNRESET;
    }
}

/* The code of an error reply. */
static int reply_code(const redisReply *r)
{
    const char *s = r->str ? r->str : "";
    if (has_prefix(s, "NOAUTH") || has_prefix(s, "WRONGPASS"))
        return -EACCES;
    if (has_prefix(s, "NOPERM") || strstr(s, " NOPERM "))
        return -EPERM;
    if (has_prefix(s, "READONLY") || strstr(s, "READONLY You can't write"))
        return -EROFS;
    if (has_prefix(s, "NOSCRIPT"))
        return -ENOENT;
    if (has_prefix(s, "CROSSSLOT"))
        return -EINVAL;
    return -EIO;
}

static const char *user_name(const struct rl_redis_url *u)
{
    return u->user[0] ? u->user : "default";
}

/* rl__err() for an error reply: a message saying what to do for the codes that have one. */
static int reply_err(const struct rl_redis *c, const char *where, const redisReply *r)
{
    int rc = reply_code(r);
    const char *s = r->str ? r->str : "";
    switch (rc) {
    case -EACCES:
        if (has_prefix(s, "NOAUTH"))
            return rl__err(rc,
                           "Redis at %s requires authentication (NOAUTH): put the credentials in "
                           "REDIS_URL (redis://user:password@host:port)",
                           where);
        return rl__err(rc,
                       "authentication failed for user %s at %s: check REDIS_URL's credentials "
                       "(%s)",
                       user_name(&c->url), where, s);
    case -EPERM:
        return rl__err(rc, "user %s lacks a permission at %s: %s (grant it with ACL SETUSER)",
                       user_name(&c->url), where, s);
    case -EROFS:
        return rl__err(rc, "Redis at %s is a read-only replica now (%s): re-resolving the master",
                       where, s);
    case -EINVAL:
        return rl__err(rc,
                       "Redis Cluster at %s refused a command whose keys are in different hash "
                       "slots (%s): give the keys of one command one hash tag, e.g. {id}:a and "
                       "{id}:b",
                       where, s);
    default:
        if (!c->cl && !c->parent && (has_prefix(s, "MOVED ") || has_prefix(s, "ASK ")))
            return rl__err(rc,
                           "Redis at %s is a Redis Cluster node (%s): use a redis-cluster:// URL",
                           where, s);
        return rl__err(rc, "Redis at %s: %s", where, s);
    }
}

/* ---- connecting ---------------------------------------------------------------------------- */

/* A command on a raw context by dl: 0 and *out (any reply type) or an I/O error's code and
 * message. */
static int raw_cmd(const struct rl_redis *c, redisContext *ctx, struct rx *x, const char *where,
                   uint64_t dl, redisReply **out, int argc, const char **argv)
{
    if (redisAppendCommandArgv(ctx, argc, argv, NULL) != REDIS_OK)
        return rl__err(-ENOMEM, "redis: out of memory");
    struct pipe_guard g;
    pipe_block(&g);
    void *r = NULL;
    int rc = exchange(c, ctx, x, where, argv[0], dl, "connect", c->connect_ms, &r);
    pipe_restore(&g, rc != 0);
    *out = r;
    return rc;
}

/* A socket to host:port (path: a unix socket), connected by dl and made non-blocking. */
static int open_socket(const struct rl_redis *c, const char *host, int port, const char *path,
                       const char *where, uint64_t dl, redisContext **out)
{
    *out = NULL;
    unsigned ms = left_ms(dl);
    if (ms == 0)
        return rl__err(-ETIMEDOUT, "cannot connect to Redis at %s: no time left (%u ms budget)",
                       where, c->connect_ms);
    struct timeval tv = ms_tv(ms);
    errno = 0;
    redisContext *ctx =
        path ? redisConnectUnixWithTimeout(path, tv) : redisConnectWithTimeout(host, port, tv);
    int saved = errno;
    if (!ctx)
        return rl__err(-ENOMEM, "out of memory connecting to Redis at %s", where);
    if (ctx->err) {
        int rc = ctx_code(ctx, saved, true);
        if (rc == -ETIMEDOUT)
            rl__err(rc, "cannot connect to Redis at %s: timed out after %u ms", where, ms);
        else if (rc == -ECONNREFUSED)
            rl__err(rc, "cannot connect to Redis at %s: %s (is the server running there?)", where,
                    ctx->errstr);
        else
            rl__err(rc, "cannot connect to Redis at %s: %s", where, ctx->errstr);
        redisFree(ctx);
        return rc;
    }
    int e = make_nonblocking(ctx);
    if (e) {
        int rc = rl__err(-ECONNRESET, "Redis at %s: cannot make the socket non-blocking: %s", where,
                         strerror(-e));
        redisFree(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

static int auth(const struct rl_redis *c, redisContext *ctx, struct rx *x, const char *where,
                uint64_t dl)
{
    const struct rl_redis_url *u = &c->url;
    const char *argv[3] = {"AUTH", u->user, u->password};
    int argc = 3;
    if (!u->user[0]) {
        argv[1] = u->password;
        argc = 2;
    }
    redisReply *r = NULL;
    int rc = raw_cmd(c, ctx, x, where, dl, &r, argc, argv);
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_ERROR) {
        /* WRONGPASS, or "ERR AUTH <password> called without any password configured": either
         * way REDIS_URL's credentials do not match the server's. */
        rc = rl__err(-EACCES,
                     "authentication failed for user %s at %s: check REDIS_URL's credentials (%s)",
                     user_name(u), where, r->str ? r->str : "");
    }
    freeReplyObject(r);
    return rc;
}

/* AUTH, SELECT, PING, and ROLE when the server must be a master. */
static int handshake(const struct rl_redis *c, redisContext *ctx, struct rx *x, const char *where,
                     uint64_t dl, bool want_master)
{
    const struct rl_redis_url *u = &c->url;
    redisReply *r;
    int rc;
    if (u->password[0] && (rc = auth(c, ctx, x, where, dl)) != 0)
        return rc;
    if (u->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        const char *argv[2] = {"SELECT", db};
        if ((rc = raw_cmd(c, ctx, x, where, dl, &r, 2, argv)) != 0)
            return rc;
        if (r->type == REDIS_REPLY_ERROR) {
            rc = reply_code(r);
            if (rc == -EIO)
                rc = rl__err(-EINVAL, "Redis at %s refused SELECT %d (REDIS_URL's /db): %s", where,
                             u->db, r->str ? r->str : "");
            else
                rc = reply_err(c, where, r);
        }
        freeReplyObject(r);
        if (rc)
            return rc;
    }
    {
        const char *argv[1] = {"PING"};
        if ((rc = raw_cmd(c, ctx, x, where, dl, &r, 1, argv)) != 0)
            return rc;
        if (r->type == REDIS_REPLY_ERROR)
            rc = reply_err(c, where, r);
        freeReplyObject(r);
        if (rc)
            return rc;
    }
    if (want_master) {
        const char *argv[1] = {"ROLE"};
        if ((rc = raw_cmd(c, ctx, x, where, dl, &r, 1, argv)) != 0)
            return rc;
        if (r->type == REDIS_REPLY_ERROR) {
            rc = reply_err(c, where, r);
        } else if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
                   r->element[0]->type != REDIS_REPLY_STRING ||
                   strcmp(r->element[0]->str, "master") != 0) {
            rc = rl__err(-EROFS, "Redis at %s is not a master (ROLE: %s)", where,
                         r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                                 r->element[0]->type == REDIS_REPLY_STRING
                             ? r->element[0]->str
                             : "unexpected reply");
        }
        freeReplyObject(r);
        if (rc)
            return rc;
    }
    return 0;
}

/* Asks one sentinel for the master's address. */
static int ask_sentinel(const struct rl_redis *c, redisContext *s, const char *swhere, uint64_t dl,
                        char *host, size_t hostlen, int *port)
{
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", c->url.master};
    redisReply *r;
    struct rx x = {0};
    int rc = raw_cmd(c, s, &x, swhere, dl, &r, 3, argv);
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_ERROR && has_prefix(r->str, "NOAUTH") && c->url.password[0]) {
        /* A sentinel with requirepass: it takes the URL's credentials too. */
        freeReplyObject(r);
        if ((rc = auth(c, s, &x, swhere, dl)) != 0 ||
            (rc = raw_cmd(c, s, &x, swhere, dl, &r, 3, argv)) != 0)
            return rc;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        rc = reply_err(c, swhere, r);
    } else if (r->type == REDIS_REPLY_NIL) {
        rc = rl__err(-ENXIO, "sentinel %s does not know a master named '%s' (REDIS_URL's path)",
                     swhere, c->url.master);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
               r->element[0]->type != REDIS_REPLY_STRING ||
               r->element[1]->type != REDIS_REPLY_STRING || r->element[0]->len >= hostlen) {
        rc = rl__err(-EIO, "sentinel %s: unexpected reply to SENTINEL get-master-addr-by-name",
                     swhere);
    } else {
        char *end;
        long p = strtol(r->element[1]->str, &end, 10);
        if (*end || p < 1 || p > 65535) {
            rc =
                rl__err(-EIO, "sentinel %s gave a bad port for master '%s'", swhere, c->url.master);
        } else {
            memcpy(host, r->element[0]->str, r->element[0]->len);
            host[r->element[0]->len] = '\0';
            *port = (int)p;
        }
    }
    freeReplyObject(r);
    return rc;
}

/* Errors a retry cannot fix: stop asking the other sentinels. */
static bool is_config_error(int rc)
{
    return rc == -EACCES || rc == -EPERM || rc == -EINVAL || rc == -ENOMEM;
}

/* Resolves the master through the sentinels (each in turn, a few rounds) and connects to it,
 * all by dl. */
static int connect_sentinel(struct rl_redis *c, uint64_t dl, redisContext **out)
{
    const struct rl_redis_url *u = &c->url;
    char last[MSG_MAX] = "no sentinel in REDIS_URL";
    int last_rc = -EHOSTUNREACH;
    for (unsigned round = 0; round < RL_REDIS_SENTINEL_ROUNDS && left_ms(dl); round++) {
        if (round > 0) {
            unsigned ms = left_ms(dl);
            sleep_ms(ms < 100 ? ms : 100);
        }
        for (size_t i = 0; i < u->nhosts && left_ms(dl); i++) {
            char swhere[WHERE_MAX], mwhere[WHERE_MAX], host[256];
            int port = 0, rc;
            redisContext *s, *m;
            fmt_where(swhere, sizeof swhere, u->hosts[i].host, u->hosts[i].port);
            rc = open_socket(c, u->hosts[i].host, u->hosts[i].port, NULL, swhere, dl, &s);
            if (rc == 0) {
                rc = ask_sentinel(c, s, swhere, dl, host, sizeof host, &port);
                redisFree(s);
            }
            if (rc == 0) {
                fmt_where(mwhere, sizeof mwhere, host, port);
                struct rx mx = {0};
                rc = open_socket(c, host, port, NULL, mwhere, dl, &m);
                if (rc == 0) {
                    rc = handshake(c, m, &mx, mwhere, dl, true);
                    if (rc == 0) {
                        snprintf(c->where, sizeof c->where, "%s", mwhere);
                        *out = m;
                        rl__log(RL_LOG_DEBUG, "redis: master '%s' is %s (sentinel %s)", u->master,
                                mwhere, swhere);
                        return 0;
                    }
                    redisFree(m);
                }
            }
            last_rc = rc;
            snprintf(last, sizeof last, "%s", rl_errmsg());
            if (is_config_error(rc))
                return rc; /* the message is still the thread's */
        }
    }
    /* A replica where the master should be, every time: no master now (mid-failover). */
    if (last_rc == -EROFS)
        last_rc = -EHOSTUNREACH;
    return rl__err(last_rc,
                   "no sentinel gave a reachable master '%s' within %u rounds or %u ms; last: %s",
                   u->master, RL_REDIS_SENTINEL_ROUNDS, c->connect_ms, last);
}

static int connect_direct(struct rl_redis *c, uint64_t dl, redisContext **out)
{
    const struct rl_redis_url *u = &c->url;
    redisContext *ctx;
    int rc;
    if (u->kind == RL_REDIS_UNIX)
        rc = open_socket(c, NULL, 0, u->path, c->where, dl, &ctx);
    else
        rc = open_socket(c, u->hosts[0].host, u->hosts[0].port, NULL, c->where, dl, &ctx);
    if (rc)
        return rc;
    memset(&c->rx, 0, sizeof c->rx);
    if ((rc = handshake(c, ctx, &c->rx, c->where, dl, false)) != 0) {
        redisFree(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

static void drop_ctx(struct rl_redis *c)
{
    if (c->cl) /* a cluster connection: every node's socket (the slot map stays) */
        for (unsigned i = 0; i < c->cl->nnodes; i++)
            drop_ctx(c->cl->node[i]);
    if (c->ctx)
        redisFree(c->ctx); /* close(2) only: no QUIT */
    c->ctx = NULL;
    memset(&c->rx, 0, sizeof c->rx);
    c->pending = 0;
    c->drop_after = false;
}

static bool is_failure(int rc)
{
    return rc == -ETIMEDOUT || rc == -ECONNRESET || rc == -ECONNREFUSED || rc == -EHOSTUNREACH ||
           rc == -ENXIO;
}

static void pool_report(struct rl_redis *c, int rc);
static int cluster_ensure(struct rl_redis *c);

/* Connected, or an error: -EAGAIN while backing off, else the connect's own. A cluster
 * connection: its slot map is loaded (its nodes connect on use). */
static int ensure(struct rl_redis *c)
{
    if (c->cl)
        return cluster_ensure(c);
    if (c->ctx) {
        if (c->pid == getpid())
            return 0;
        drop_ctx(c); /* inherited through fork(): the parent's stream */
    }
    uint64_t now = rl__mono_ns();
    if (now < c->retry_at)
        return rl__err(-EAGAIN,
                       "Redis at %s: backing off, next connect attempt in %" PRIu64
                       " ms; last error: %s",
                       c->where, (uint64_t)((c->retry_at - now + MS_NS - 1) / MS_NS), c->last_msg);
    redisContext *ctx = NULL;
    uint64_t dl = connect_deadline(c);
    memset(&c->rx, 0, sizeof c->rx);
    int rc = c->url.kind == RL_REDIS_SENTINEL ? connect_sentinel(c, dl, &ctx)
                                              : connect_direct(c, dl, &ctx);
    if (rc == 0) {
        if (c->streak)
            rl__log(RL_LOG_INFO, "redis: reconnected to %s after %u failed attempts", c->where,
                    c->streak);
        c->ctx = ctx;
        c->pid = getpid();
        c->streak = 0;
        c->retry_at = 0;
        return 0;
    }
    snprintf(c->last_msg, sizeof c->last_msg, "%s", rl_errmsg());
    unsigned shift = c->streak < 6 ? c->streak : 6;
    unsigned d = RL_REDIS_BACKOFF_MIN_MS << shift;
    if (d > RL_REDIS_BACKOFF_MAX_MS)
        d = RL_REDIS_BACKOFF_MAX_MS;
    uint64_t delay = d / 2 + rng_next(&c->rng) % (d / 2 + 1);
    c->retry_at = rl__mono_ns() + delay * MS_NS;
    if (c->streak++ == 0)
        rl__log(RL_LOG_WARN, "redis: %s", c->last_msg);
    pool_report(c, rc);
    return rc;
}

/* ---- one connection ------------------------------------------------------------------------ */

static int new_conn(const struct rl_redis_url *u, unsigned connect_ms, unsigned command_ms,
                    struct rl_redis **out)
{
    *out = NULL;
    if (!u)
        return rl__err(-EINVAL, "redis: no URL");
    switch (u->kind) {
    case RL_REDIS_TCP:
        if (u->nhosts < 1)
            return rl__err(-EINVAL, "redis: URL without a host");
        break;
    case RL_REDIS_UNIX:
        if (!u->path[0])
            return rl__err(-EINVAL, "redis: unix URL without a socket path");
        break;
    case RL_REDIS_SENTINEL:
        if (u->nhosts < 1 || !u->master[0])
            return rl__err(-EINVAL, "redis: sentinel URL without sentinels or master name");
        break;
    case RL_REDIS_CLUSTER:
        if (u->nhosts < 1)
            return rl__err(-EINVAL, "redis: cluster URL without seed nodes");
        if (u->db != 0)
            return rl__err(-EINVAL,
                           "redis: Redis Cluster has db 0 only (SELECT is refused there): remove "
                           "the db %d from REDIS_URL",
                           u->db);
        break;
    default:
        return rl__err(-EINVAL, "redis: unknown URL kind %d", (int)u->kind);
    }
    struct rl_redis *c = calloc(1, sizeof *c);
    if (!c)
        return rl__err(-ENOMEM, "redis: out of memory");
    if (u->kind == RL_REDIS_CLUSTER && !(c->cl = calloc(1, sizeof *c->cl))) {
        free(c);
        return rl__err(-ENOMEM, "redis: out of memory");
    }
    c->url = *u;
    if (c->url.nhosts > RL_REDIS_MAX_HOSTS)
        c->url.nhosts = RL_REDIS_MAX_HOSTS;
    c->connect_ms = connect_ms ? connect_ms : RL_REDIS_CONNECT_MS_DEF;
    c->command_ms = command_ms ? command_ms : RL_REDIS_COMMAND_MS_DEF;
    c->cancel_fd = -1;
    c->rng = rl__mono_ns() ^ (uint64_t)(uintptr_t)c ^ ((uint64_t)getpid() << 32);
    if (!c->rng)
        c->rng = 1;
    if (u->kind == RL_REDIS_UNIX)
        snprintf(c->where, sizeof c->where, "%s", u->path);
    else if (u->kind == RL_REDIS_SENTINEL)
        snprintf(c->where, sizeof c->where, "master '%s' (sentinels)", u->master);
    else
        fmt_where(c->where, sizeof c->where, u->hosts[0].host, u->hosts[0].port);
    *out = c;
    return 0;
}

int rl__redis_new(const struct rl_redis_url *u, unsigned connect_ms, unsigned command_ms,
                  struct rl_redis **out)
{
    if (!out)
        return rl__err(-EINVAL, "redis: no output pointer");
    return new_conn(u, connect_ms, command_ms, out);
}

int rl__redis_connect(const struct rl_redis_url *u, unsigned connect_ms, unsigned command_ms,
                      struct rl_redis **out)
{
    if (!out)
        return rl__err(-EINVAL, "redis: no output pointer");
    struct rl_redis *c;
    int rc = new_conn(u, connect_ms, command_ms, &c);
    if (rc)
        return rc;
    bool own = begin_call(c);
    rc = ensure(c);
    end_call(c, own);
    if (rc != 0) {
        rl__redis_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void rl__redis_close(struct rl_redis *c)
{
    if (!c)
        return;
    if (c->cl) {
        for (unsigned i = 0; i < c->cl->nnodes; i++)
            rl__redis_close(c->cl->node[i]);
        free(c->cl->node);
        free(c->cl);
        c->cl = NULL;
    }
    drop_ctx(c);
    /* The URL copy holds the password: do not leave it in freed memory. */
    memset(&c->url, 0, sizeof c->url);
    free(c);
}

void rl__redis_drop(struct rl_redis *c)
{
    if (c) {
        drop_ctx(c);
        c->lost = 0;
    }
}

/* An open socket: c's own, or (cluster) one node's. */
static bool is_open(const struct rl_redis *c)
{
    if (c->ctx)
        return true;
    if (c->cl)
        for (unsigned i = 0; i < c->cl->nnodes; i++)
            if (c->cl->node[i]->ctx)
                return true;
    return false;
}

/* Connects at the next call without waiting for the backoff (cluster: every node too). */
static void reset_backoff(struct rl_redis *c)
{
    c->retry_at = 0;
    if (c->cl)
        for (unsigned i = 0; i < c->cl->nnodes; i++)
            c->cl->node[i]->retry_at = 0;
}

bool rl__redis_connected(const struct rl_redis *c)
{
    return c && is_open(c);
}

const char *rl__redis_where(const struct rl_redis *c)
{
    return c ? c->where : "";
}

static int take_reply(struct rl_redis *c, redisReply *r, redisReply **reply);

/* After an exchange (rc 0 and its reply r, or an I/O error's code with the message set): the
 * code, with *reply set on success; an I/O error closes the connection. */
static int finish(struct rl_redis *c, redisReply *r, int rc, redisReply **reply)
{
    if (rc) {
        drop_ctx(c);
        pool_report(c, rc);
        return rc;
    }
    pool_report(c, 0); /* the server answered */
    return take_reply(c, r, reply);
}

/* Sends c's buffered command(s) and reads one reply, by the command deadline. */
static int cmd_exchange(struct rl_redis *c, const char *what, redisReply **r)
{
    struct pipe_guard g;
    pipe_block(&g);
    void *v = NULL;
    int rc =
        exchange(c, c->ctx, &c->rx, c->where, what, cmd_deadline(c), "command", c->command_ms, &v);
    pipe_restore(&g, rc != 0);
    *r = v;
    return rc;
}

/* The reply half of finish(): an error reply's code and message (READONLY: the connection is
 * dropped), or 0 with *reply set (r freed when reply is NULL). */
static int take_reply(struct rl_redis *c, redisReply *r, redisReply **reply)
{
    if (!r) /* rc 0 always comes with a reply: a guard, never taken */
        return -EPROTO;
    if (r->type == REDIS_REPLY_ERROR) {
        int rc = reply_err(c, c->where, r);
        freeReplyObject(r);
        if (rc == -EROFS) {
            /* A replica now: the next call re-resolves (sentinel) or reconnects. */
            if (c->pending)
                c->drop_after = true;
            else
                drop_ctx(c);
        }
        return rc;
    }
    if (reply)
        *reply = r;
    else
        freeReplyObject(r);
    return 0;
}

static int cmd_precheck(struct rl_redis *c, redisReply **reply)
{
    if (reply)
        *reply = NULL;
    if (!c)
        return rl__err(-EINVAL, "redis: no connection");
    if (c->pending)
        return rl__err(-EINVAL, "redis: %u pipelined replies are still to be read", c->pending);
    c->lost = 0;
    return ensure(c);
}

static int cluster_vcmd(struct rl_redis *c, const void *key, size_t keylen, bool keyed,
                        redisReply **reply, const char *fmt, va_list ap);
static int cluster_argv(struct rl_redis *c, int slot, int argc, const char **argv,
                        const size_t *argvlen, redisReply **reply, struct rl_redis **answered);

/* rl__redis_cmd on one server. */
static int vcmd(struct rl_redis *c, redisReply **reply, const char *fmt, va_list ap)
{
    int rc = cmd_precheck(c, reply);
    if (rc)
        return rc;
    int st = redisvAppendCommand(c->ctx, fmt, ap);
    if (st != REDIS_OK)
        return rl__err(c->ctx->err == REDIS_ERR_OOM ? -ENOMEM : -EINVAL,
                       "redis: cannot format the command '%s'", fmt);
    char name[24];
    redisReply *r = NULL;
    rc = cmd_exchange(c, cmd_name(fmt, name), &r);
    return finish(c, r, rc, reply);
}

int rl__redis_cmd(struct rl_redis *c, redisReply **reply, const char *fmt, ...)
{
    if (reply)
        *reply = NULL;
    if (!c || !fmt)
        return rl__err(-EINVAL, "redis: %s", !c ? "no connection" : "no command");
    bool own = begin_call(c);
    va_list ap;
    va_start(ap, fmt);
    int rc = c->cl ? cluster_vcmd(c, NULL, 0, false, reply, fmt, ap) : vcmd(c, reply, fmt, ap);
    va_end(ap);
    end_call(c, own);
    return rc;
}

int rl__redis_cmd_key(struct rl_redis *c, const void *key, size_t keylen, redisReply **reply,
                      const char *fmt, ...)
{
    if (reply)
        *reply = NULL;
    if (!c || !fmt || (!key && keylen))
        return rl__err(-EINVAL, "redis: cmd_key: %s",
                       !c     ? "no connection"
                       : !fmt ? "no command"
                              : "NULL key with a non-zero length");
    bool own = begin_call(c);
    va_list ap;
    va_start(ap, fmt);
    int rc = c->cl ? cluster_vcmd(c, key, keylen, true, reply, fmt, ap) : vcmd(c, reply, fmt, ap);
    va_end(ap);
    end_call(c, own);
    return rc;
}

static int cmd_argv(struct rl_redis *c, redisReply **reply, int argc, const char **argv,
                    const size_t *argvlen)
{
    if (c && c->cl)
        return cluster_argv(c, SLOT_GUESS, argc, argv, argvlen, reply, NULL);
    int rc = cmd_precheck(c, reply);
    if (rc)
        return rc;
    if (redisAppendCommandArgv(c->ctx, argc, argv, argvlen) != REDIS_OK)
        return rl__err(-ENOMEM, "redis: out of memory");
    char name[24];
    size_t n = argvlen ? argvlen[0] : strlen(argv[0]);
    snprintf(name, sizeof name, "%.*s", (int)(n < 23 ? n : 23), argv[0]);
    redisReply *r = NULL;
    rc = cmd_exchange(c, name, &r);
    return finish(c, r, rc, reply);
}

int rl__redis_cmd_argv(struct rl_redis *c, redisReply **reply, int argc, const char **argv,
                       const size_t *argvlen)
{
    if (reply)
        *reply = NULL;
    if (argc < 1 || !argv)
        return rl__err(-EINVAL, "redis: empty command");
    if (!c)
        return rl__err(-EINVAL, "redis: no connection");
    bool own = begin_call(c);
    int rc = cmd_argv(c, reply, argc, argv, argvlen);
    end_call(c, own);
    return rc;
}

void rl__redis_set_deadline(struct rl_redis *c, uint64_t deadline_ns)
{
    if (c)
        c->call_dl = deadline_ns;
}

void rl__redis_set_cancel(struct rl_redis *c, int fd)
{
    if (c)
        c->cancel_fd = fd;
}

void rl__redis_set_wait_hook(struct rl_redis *c, void (*fn)(void *), void *arg, uint64_t every_ns)
{
    if (c) {
        c->hook = every_ns ? fn : NULL;
        c->hook_arg = arg;
        c->hook_ns = every_ns;
    }
}

/* ---- Redis Cluster ------------------------------------------------------------------------- */

/*
 * A redis-cluster:// connection (c->cl) has no socket of its own. It keeps one standalone
 * connection (kind TCP, the URL's credentials, db 0) per master that the slot map or a redirect
 * names, created on demand and connected on first use, each with its own backoff; their
 * outcomes count for the pool's circuit breaker through c (pool_report follows ->parent).
 *
 * The slot map comes from CLUSTER SLOTS: connected nodes are asked first, then up to
 * CLUSTER_TRIES unconnected ones, then the URL's seeds. A refresh drops (closes) the nodes that
 * no longer own a slot. It is marked stale by -MOVED, a lost or refused node connection, a
 * READONLY or CLUSTERDOWN reply, and refreshed at the next call, at most every
 * RL_CLUSTER_REFRESH_MS; a failed refresh keeps the old map.
 */

#define CLUSTER_REFRESH_NS ((uint64_t)RL_CLUSTER_REFRESH_MS * MS_NS)

static uint16_t crc16_xmodem(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc = (uint16_t)(crc ^ (unsigned)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000u ? (unsigned)crc << 1 ^ 0x1021u : (unsigned)crc << 1);
    }
    return crc;
}

/* The hash slot of key[0..n): CRC16 of its hash tag (the bytes between the first '{' and the
 * next '}', when not empty) or of the whole key, mod 16384. */
static int key_slot(const char *k, size_t n)
{
    if (n == 0)
        return 0;
    const char *open = memchr(k, '{', n);
    if (open) {
        size_t s = (size_t)(open - k) + 1;
        const char *close = s < n ? memchr(k + s, '}', n - s) : NULL;
        if (close && close > k + s) {
            k += s;
            n = (size_t)(close - k);
        }
    }
    return crc16_xmodem((const unsigned char *)k, n) & (CLUSTER_SLOTS - 1);
}

int rl__redis_key_slot(const void *key, size_t len)
{
    if (!key && len)
        return rl__err(-EINVAL, "redis: key_slot: NULL key of %zu bytes", len);
    return key_slot(key, len);
}

/* A key for a message: at most 48 bytes, non-printable bytes as '?'. */
static const char *printable(const char *k, size_t n, char out[56])
{
    size_t m = n < 48 ? n : 48;
    for (size_t i = 0; i < m; i++)
        out[i] = k[i] >= 0x20 && k[i] < 0x7f ? k[i] : '?';
    snprintf(out + m, 8, "%s", n > m ? "..." : "");
    return out;
}

/* The one slot of keys argv[0..nkeys): -EINVAL (CROSSSLOT) when they are in several. */
static int cluster_keys_slot(int nkeys, const char **argv, const size_t *argvlen, int *slot)
{
    size_t l0 = argvlen ? argvlen[0] : strlen(argv[0]);
    int s0 = key_slot(argv[0], l0);
    for (int i = 1; i < nkeys; i++) {
        size_t li = argvlen ? argvlen[i] : strlen(argv[i]);
        int si = key_slot(argv[i], li);
        if (si != s0) {
            char a[56], b[56];
            return rl__err(-EINVAL,
                           "Redis Cluster: the keys of one script call must share a hash slot "
                           "(CROSSSLOT): key 1 '%s' is in slot %d, key %d '%s' in slot %d; give "
                           "them one hash tag, e.g. {id}:a and {id}:b (nothing was sent)",
                           printable(argv[0], l0, a), s0, i + 1, printable(argv[i], li, b), si);
        }
    }
    *slot = s0;
    return 0;
}

/* A command's words (at most max of them) from its RESP form; returns how many were found. */
struct word {
    const char *p;
    size_t n;
};

static size_t read_len(const char *cmd, size_t len, size_t *i, size_t *out)
{
    size_t v = 0, start = *i;
    while (*i < len && cmd[*i] >= '0' && cmd[*i] <= '9' && v <= len)
        v = v * 10 + (size_t)(cmd[(*i)++] - '0');
    if (*i == start || *i + 1 >= len || cmd[*i] != '\r' || cmd[*i + 1] != '\n')
        return 0;
    *i += 2;
    *out = v;
    return 1;
}

static int formatted_words(const char *cmd, size_t len, struct word *w, int max)
{
    size_t i = 1, count, n;
    if (len < 1 || cmd[0] != '*' || !read_len(cmd, len, &i, &count))
        return 0;
    int got = 0;
    while (got < max && (size_t)got < count && i < len && cmd[i] == '$') {
        i++;
        if (!read_len(cmd, len, &i, &n) || n > len - i)
            break;
        w[got].p = cmd + i;
        w[got].n = n;
        got++;
        i += n + 2;
    }
    return got;
}

static bool word_is(const struct word *w, const char *name)
{
    return w->n == strlen(name) && strncasecmp(w->p, name, w->n) == 0;
}

/* The slot of a command's first key as far as rl knows it, from its first words (n <= 4), or
 * SLOT_ANY. Most commands' first key is their first argument; one whose key is elsewhere
 * (OBJECT ENCODING k, XREAD ... STREAMS k) reaches some other node first and its -MOVED
 * corrects that; multi-key commands are checked by the server (-CROSSSLOT). */
static int command_slot(const struct word *w, int n)
{
    static const char *const keyless[] = {
        "PING",     "ECHO",      "INFO",    "TIME",      "ROLE",     "SCRIPT",  "CLUSTER",
        "CONFIG",   "CLIENT",    "COMMAND", "DBSIZE",    "FLUSHALL", "FLUSHDB", "SCAN",
        "KEYS",     "ACL",       "AUTH",    "HELLO",     "SELECT",   "DEBUG",   "MEMORY",
        "OBJECT",   "SLOWLOG",   "LATENCY", "LASTSAVE",  "FUNCTION", "PUBLISH", "WAIT",
        "READONLY", "READWRITE", "ASKING",  "RANDOMKEY", "SAVE",     "BGSAVE",  "QUIT"};
    static const char *const evals[] = {"EVAL",  "EVALSHA",    "EVAL_RO",
                                        "FCALL", "EVALSHA_RO", "FCALL_RO"};
    if (n < 2)
        return SLOT_ANY;
    for (size_t i = 0; i < sizeof keyless / sizeof keyless[0]; i++)
        if (word_is(&w[0], keyless[i]))
            return SLOT_ANY;
    for (size_t i = 0; i < sizeof evals / sizeof evals[0]; i++)
        if (word_is(&w[0], evals[i])) {
            /* EVAL script numkeys key...: the first key, if any. */
            if (n < 4 || w[2].n == 0 || (w[2].n == 1 && w[2].p[0] == '0'))
                return SLOT_ANY;
            return key_slot(w[3].p, w[3].n);
        }
    return key_slot(w[1].p, w[1].n);
}

/* command_slot() of a command in RESP form. */
static int guess_slot(const char *cmd, size_t len)
{
    struct word w[4] = {{NULL, 0}};
    int n = formatted_words(cmd, len, w, 4);
    return command_slot(w, n);
}

static int node_find(const struct cluster *cl, const char *host, int port)
{
    for (unsigned i = 0; i < cl->nnodes; i++)
        if (cl->node[i]->url.hosts[0].port == port &&
            strcmp(cl->node[i]->url.hosts[0].host, host) == 0)
            return (int)i;
    return -1;
}

/* The index of host:port's node connection, created (not connected) when new. */
static int node_get(struct rl_redis *c, const char *host, int port)
{
    struct cluster *cl = c->cl;
    int i = node_find(cl, host, port);
    if (i >= 0)
        return i;
    if (strlen(host) >= sizeof c->url.hosts[0].host || port < 1 || port > 65535)
        return rl__err(-EIO, "Redis Cluster: a node has a bad address (%.64s:%d)", host, port);
    if (cl->nnodes >= CLUSTER_MAX_NODES)
        return rl__err(-EIO, "Redis Cluster: more than %u masters: rl supports up to %u",
                       CLUSTER_MAX_NODES, CLUSTER_MAX_NODES);
    if (cl->nnodes == cl->cap) {
        unsigned cap = cl->cap ? 2 * cl->cap : 8;
        struct rl_redis **node = realloc(cl->node, cap * sizeof *node);
        if (!node)
            return rl__err(-ENOMEM, "redis: out of memory");
        cl->node = node;
        cl->cap = cap;
    }
    /* The cluster URL with this host only: same credentials and timeouts, db 0. */
    struct rl_redis_url *u = malloc(sizeof *u);
    if (!u)
        return rl__err(-ENOMEM, "redis: out of memory");
    *u = c->url;
    u->kind = RL_REDIS_TCP;
    memset(u->hosts, 0, sizeof u->hosts);
    snprintf(u->hosts[0].host, sizeof u->hosts[0].host, "%s", host);
    u->hosts[0].port = port;
    u->nhosts = 1;
    u->db = 0;
    struct rl_redis *n = NULL;
    int rc = new_conn(u, c->connect_ms, c->command_ms, &n);
    memset(u->password, 0, sizeof u->password);
    free(u);
    if (rc)
        return rc;
    n->parent = c;
    cl->node[cl->nnodes] = n;
    return (int)cl->nnodes++;
}

/* Checks one CLUSTER SLOTS range: [start, end, [host, port, ...], replicas...]. */
static bool slot_range_ok(const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
        return false;
    const redisReply *s = e->element[0], *t = e->element[1], *m = e->element[2];
    return s->type == REDIS_REPLY_INTEGER && t->type == REDIS_REPLY_INTEGER && s->integer >= 0 &&
           s->integer <= t->integer && t->integer < CLUSTER_SLOTS && m->type == REDIS_REPLY_ARRAY &&
           m->elements >= 2 && m->element[0]->type == REDIS_REPLY_STRING &&
           m->element[0]->len < sizeof((struct rl_redis_host *)0)->host &&
           m->element[1]->type == REDIS_REPLY_INTEGER && m->element[1]->integer >= 1 &&
           m->element[1]->integer <= 65535;
}

/* Applies a CLUSTER SLOTS reply from the node at src_host (an empty address means that node;
 * "?" an unknown one: the range is left unmapped). Nodes that own no slot are closed. */
static int apply_slots(struct rl_redis *c, const redisReply *r, const char *src_host,
                       const char *src_where)
{
    struct cluster *cl = c->cl;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return rl__err(-EIO,
                       "Redis Cluster at %s: CLUSTER SLOTS lists no slot (is the cluster created? "
                       "redis-cli --cluster create)",
                       src_where);
    for (size_t i = 0; i < r->elements; i++)
        if (!slot_range_ok(r->element[i]))
            return rl__err(-EIO, "Redis Cluster at %s: unexpected reply to CLUSTER SLOTS",
                           src_where);
    uint16_t *slot = calloc(CLUSTER_SLOTS, sizeof *slot);
    if (!slot)
        return rl__err(-ENOMEM, "redis: out of memory");
    char host[256];
    bool any = false;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *m = e->element[2];
        if (strcmp(m->element[0]->str, "?") == 0)
            continue;
        snprintf(host, sizeof host, "%s", m->element[0]->len ? m->element[0]->str : src_host);
        int k = node_get(c, host, (int)m->element[1]->integer);
        if (k < 0) {
            free(slot);
            return k;
        }
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
            slot[s] = (uint16_t)(k + 1);
        any = true;
    }
    if (!any) {
        free(slot);
        return rl__err(-EIO, "Redis Cluster at %s: CLUSTER SLOTS names no master's address",
                       src_where);
    }
    /* Keep the nodes that own a slot, in order; close the others. */
    unsigned *remap = calloc(cl->nnodes, sizeof *remap);
    if (!remap) {
        free(slot);
        return rl__err(-ENOMEM, "redis: out of memory");
    }
    for (int s = 0; s < CLUSTER_SLOTS; s++)
        if (slot[s])
            remap[slot[s] - 1] = 1;
    unsigned kept = 0;
    for (unsigned i = 0; i < cl->nnodes; i++) {
        if (remap[i]) {
            cl->node[kept] = cl->node[i];
            remap[i] = ++kept;
        } else {
            rl__redis_close(cl->node[i]);
        }
    }
    cl->nnodes = kept;
    for (int s = 0; s < CLUSTER_SLOTS; s++)
        cl->slot[s] = slot[s] ? (uint16_t)remap[slot[s] - 1] : 0;
    free(remap);
    free(slot);
    cl->loaded = true;
    cl->stale = false;
    return 0;
}

/* Loads the slot map: asks the connected nodes, then up to CLUSTER_TRIES others, then the
 * URL's seeds, until one answers. */
static int cluster_refresh(struct rl_redis *c)
{
    struct cluster *cl = c->cl;
    cl->refreshed_at = rl__mono_ns();
    bool tried[CLUSTER_MAX_NODES] = {false};
    char last[MSG_MAX] = "no node to ask";
    int last_rc = -EHOSTUNREACH;
    unsigned unconnected = 0, asked = 0;
    for (int phase = 0; phase < 3; phase++) {
        unsigned n = phase < 2 ? cl->nnodes : (unsigned)c->url.nhosts;
        for (unsigned i = 0; i < n; i++) {
            int k = (int)i;
            if (phase < 2) {
                if ((cl->node[i]->ctx != NULL) != (phase == 0))
                    continue;
                if (phase == 1 && unconnected++ >= CLUSTER_TRIES)
                    break;
            } else if ((k = node_get(c, c->url.hosts[i].host, c->url.hosts[i].port)) < 0) {
                return k;
            }
            if (tried[k])
                continue;
            tried[k] = true;
            asked++;
            struct rl_redis *node = cl->node[k];
            const char *argv[2] = {"CLUSTER", "SLOTS"};
            redisReply *r = NULL;
            int rc = rl__redis_cmd_argv(node, &r, 2, argv, NULL);
            if (rc == 0) {
                char host[256], where[WHERE_MAX];
                snprintf(host, sizeof host, "%s", node->url.hosts[0].host);
                snprintf(where, sizeof where, "%s", node->where);
                rc = apply_slots(c, r, host, where); /* may close node */
                freeReplyObject(r);
                if (rc == 0) {
                    rl__log(RL_LOG_DEBUG, "redis: cluster slot map from %s: %u masters", where,
                            cl->nnodes);
                    return 0;
                }
            } else if (rc == -EIO && strstr(rl_errmsg(), "cluster support disabled")) {
                rc = rl__err(-EINVAL,
                             "Redis at %s is not a cluster node (cluster support disabled): use "
                             "redis:// for a standalone server",
                             node->where);
            }
            if (is_config_error(rc))
                return rc; /* its message is the thread's */
            last_rc = rc;
            snprintf(last, sizeof last, "%s", rl_errmsg());
        }
    }
    if (asked == 1) /* the one node's own message says it best */
        return rl__err(last_rc, "%s", last);
    return rl__err(last_rc, "Redis Cluster: no node answered CLUSTER SLOTS (%u asked); last: %s",
                   asked, last);
}

static int cluster_ensure(struct rl_redis *c)
{
    struct cluster *cl = c->cl;
    if (!cl->loaded)
        return cluster_refresh(c);
    if (cl->stale && rl__mono_ns() - cl->refreshed_at >= CLUSTER_REFRESH_NS &&
        cluster_refresh(c) != 0)
        rl__log(RL_LOG_DEBUG, "redis: cluster slot map not refreshed (keeping it): %s",
                rl_errmsg());
    return 0;
}

/* Marks the map stale after an error that may mean a master is gone (unreachable, backing
 * off, a replica now); returns rc. */
static int cluster_failed(struct rl_redis *c, int rc)
{
    if (c->cl && (is_failure(rc) || rc == -EAGAIN || rc == -EROFS))
        c->cl->stale = true;
    return rc;
}

/* A node to send a keyless command to: a connected one, else one free to connect. */
static struct rl_redis *any_node(const struct cluster *cl)
{
    uint64_t now = rl__mono_ns();
    struct rl_redis *best = NULL;
    int best_rank = 3;
    for (unsigned i = 0; i < cl->nnodes && best_rank > 0; i++) {
        const struct rl_redis *n = cl->node[i];
        int rank = n->ctx ? 0 : now >= n->retry_at ? 1 : 2;
        if (rank < best_rank) {
            best_rank = rank;
            best = cl->node[i];
        }
    }
    return best;
}

/* The node serving slot (SLOT_ANY: any node), the map loaded first. */
static int cluster_node(struct rl_redis *c, int slot, struct rl_redis **out)
{
    int rc = cluster_ensure(c);
    if (rc)
        return rc;
    struct cluster *cl = c->cl;
    *out = slot >= 0 ? (cl->slot[slot] ? cl->node[cl->slot[slot] - 1] : NULL) : any_node(cl);
    if (*out)
        return 0;
    cl->stale = true;
    if (slot >= 0)
        return rl__err(-EIO,
                       "Redis Cluster: no master serves slot %d (the slot map does not cover it: "
                       "check CLUSTER SLOTS and cluster_state)",
                       slot);
    return rl__err(-EIO, "Redis Cluster: no known node");
}

/* One command, in RESP form, on one node (after ASKING when asking): 0 and the reply, error
 * replies included, or an I/O error's code (the node's connection is dropped). */
static int node_send(struct rl_redis *n, bool asking, const char *cmd, size_t len, redisReply **out)
{
    int rc = cmd_precheck(n, NULL);
    if (rc)
        return rc;
    int st = asking ? redisAppendCommand(n->ctx, "ASKING") : REDIS_OK;
    if (st == REDIS_OK)
        st = redisAppendFormattedCommand(n->ctx, cmd, len);
    if (st != REDIS_OK)
        return rl__err(-ENOMEM, "redis: out of memory");
    redisReply *a = NULL, *r = NULL;
    struct word w[1] = {{NULL, 0}};
    char name[24] = "command";
    if (formatted_words(cmd, len, w, 1) == 1)
        snprintf(name, sizeof name, "%.*s", (int)(w[0].n < 23 ? w[0].n : 23), w[0].p);
    if (asking)
        rc = cmd_exchange(n, "ASKING", &a);
    if (rc == 0)
        rc = cmd_exchange(n, name, &r);
    if (rc) {
        freeReplyObject(a);
        return finish(n, NULL, rc, NULL);
    }
    pool_report(n, 0);                       /* the server answered */
    if (a && a->type == REDIS_REPLY_ERROR) { /* ASKING refused (an ACL without +asking) */
        freeReplyObject(r);
        return take_reply(n, a, NULL);
    }
    freeReplyObject(a);
    *out = r;
    return 0;
}

enum redirect { REDIR_NONE, REDIR_MOVED, REDIR_ASK, REDIR_TRYAGAIN };

/* "MOVED slot host:port", "ASK slot host:port" (an empty host: the node that answered; IPv6
 * without brackets, the port after the last ':'), "TRYAGAIN ...". */
static enum redirect parse_redirect(const char *s, int *slot, char *host, size_t hostlen, int *port)
{
    enum redirect k;
    if (has_prefix(s, "MOVED ")) {
        k = REDIR_MOVED;
        s += 6;
    } else if (has_prefix(s, "ASK ")) {
        k = REDIR_ASK;
        s += 4;
    } else {
        return has_prefix(s, "TRYAGAIN") ? REDIR_TRYAGAIN : REDIR_NONE;
    }
    char *end;
    long sl = strtol(s, &end, 10);
    if (end == s || *end != ' ' || sl < 0 || sl >= CLUSTER_SLOTS)
        return REDIR_NONE;
    const char *addr = end + 1, *colon = strrchr(addr, ':');
    if (!colon)
        return REDIR_NONE;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p < 1 || p > 65535)
        return REDIR_NONE;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
        addr++;
        hl -= 2;
    }
    if (hl >= hostlen)
        return REDIR_NONE;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    *slot = (int)sl;
    *port = (int)p;
    return k;
}

/* One command (RESP form) on the master of slot (SLOT_ANY: any node), following -MOVED (map
 * updated, then refreshed when allowed) and -ASK (ASKING there, map unchanged) up to
 * RL_CLUSTER_MAX_REDIRECTS times, and -TRYAGAIN once. *answered: the node whose reply is
 * returned. */
static int cluster_exec(struct rl_redis *c, int slot, const char *cmd, size_t len,
                        redisReply **reply, struct rl_redis **answered)
{
    struct rl_redis *n;
    int rc = cluster_node(c, slot, &n);
    if (rc)
        return rc;
    struct cluster *cl = c->cl;
    bool asking = false, retried = false;
    unsigned redirects = 0;
    for (;;) {
        redisReply *r = NULL;
        snprintf(c->where, sizeof c->where, "%s", n->where);
        if ((rc = node_send(n, asking, cmd, len, &r)) != 0)
            return cluster_failed(c, rc);
        int rs = 0, port = 0;
        char host[256];
        enum redirect k = r->type == REDIS_REPLY_ERROR && r->str
                              ? parse_redirect(r->str, &rs, host, sizeof host, &port)
                              : REDIR_NONE;
        if (k == REDIR_MOVED || k == REDIR_ASK) {
            if (redirects++ == RL_CLUSTER_MAX_REDIRECTS) {
                rc = rl__err(-EIO,
                             "Redis Cluster: more than %u redirects for one command (the slot "
                             "map keeps changing?); last, from %s: %s",
                             RL_CLUSTER_MAX_REDIRECTS, n->where, r->str);
                freeReplyObject(r);
                cl->stale = true;
                return rc;
            }
            if (!host[0])
                snprintf(host, sizeof host, "%s", n->url.hosts[0].host);
            rl__log(RL_LOG_DEBUG, "redis: %s from %s", r->str, n->where);
            freeReplyObject(r);
            if (k == REDIR_MOVED) {
                /* The slot has a new master: refresh the whole map when allowed (n may be
                 * closed by it), and trust the redirect for this slot whatever it says. */
                cl->stale = true;
                cluster_ensure(c);
            }
            int i = node_get(c, host, port);
            if (i < 0)
                return i;
            if (k == REDIR_MOVED)
                cl->slot[rs] = (uint16_t)(i + 1);
            n = cl->node[i];
            asking = k == REDIR_ASK;
            continue;
        }
        if (k == REDIR_TRYAGAIN && !retried) {
            /* A multi-key command during a slot migration: once more, a little later. */
            retried = true;
            freeReplyObject(r);
            sleep_ms(c->command_ms < RL_CLUSTER_TRYAGAIN_MS ? c->command_ms
                                                            : RL_CLUSTER_TRYAGAIN_MS);
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR && r->str && has_prefix(r->str, "CLUSTERDOWN"))
            cl->stale = true;
        if (answered)
            *answered = n;
        return cluster_failed(c, take_reply(n, r, reply));
    }
}

/* An argv command on a cluster connection (slot SLOT_GUESS: from the command's words). */
static int cluster_argv(struct rl_redis *c, int slot, int argc, const char **argv,
                        const size_t *argvlen, redisReply **reply, struct rl_redis **answered)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return rl__err(-ENOMEM, "redis: out of memory");
    if (slot == SLOT_GUESS)
        slot = guess_slot(cmd, (size_t)len);
    int rc = cluster_exec(c, slot, cmd, (size_t)len, reply, answered);
    redisFreeCommand(cmd);
    return rc;
}

/* rl__redis_cmd and _cmd_key on a cluster connection. */
static int cluster_vcmd(struct rl_redis *c, const void *key, size_t keylen, bool keyed,
                        redisReply **reply, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0)
        return len == -1 ? rl__err(-ENOMEM, "redis: out of memory")
                         : rl__err(-EINVAL, "redis: cannot format the command '%s'", fmt);
    int slot = keyed ? key_slot(key, keylen) : guess_slot(cmd, (size_t)len);
    int rc = cluster_exec(c, slot, cmd, (size_t)len, reply, NULL);
    redisFreeCommand(cmd);
    return rc;
}

/* ---- scripts ------------------------------------------------------------------------------- */

static const char *cached_sha(const struct rl_redis *c, uint64_t h, size_t len)
{
    for (unsigned i = 0; i < SCRIPTS_MAX; i++)
        if (c->scripts[i].len == len && c->scripts[i].hash == h && c->scripts[i].sha[0])
            return c->scripts[i].sha;
    return NULL;
}

static void cache_sha(struct rl_redis *c, uint64_t h, size_t len, const char *sha)
{
    struct script_sha *e = NULL;
    for (unsigned i = 0; i < SCRIPTS_MAX && !e; i++)
        if (c->scripts[i].len == len && c->scripts[i].hash == h)
            e = &c->scripts[i];
    if (!e)
        e = &c->scripts[c->script_next++ % SCRIPTS_MAX];
    e->hash = h;
    e->len = len;
    memcpy(e->sha, sha, 41);
}

static bool is_sha_hex(const char *s)
{
    for (int i = 0; i < 40; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return s[40] == '\0';
}

static int script_load(struct rl_redis *c, const char *src, size_t len, char sha[41])
{
    const char *argv[3] = {"SCRIPT", "LOAD", src};
    size_t argvlen[3] = {6, 4, len};
    redisReply *r;
    int rc = rl__redis_cmd_argv(c, &r, 3, argv, argvlen);
    if (rc)
        return rc;
    if (r->type != REDIS_REPLY_STRING || r->len != 40 || !is_sha_hex(r->str))
        rc = rl__err(-EIO, "Redis at %s: unexpected reply to SCRIPT LOAD", c->where);
    else
        memcpy(sha, r->str, 41);
    freeReplyObject(r);
    return rc;
}

/* EVALSHA sha with argv[0..nkeys) as keys: on c, or on a cluster connection at the master of
 * slot (*answered: the node that ran it, for NOSCRIPT). */
static int evalsha_once(struct rl_redis *c, int slot, const char *sha, int nkeys, int argc,
                        const char **argv, const size_t *argvlen, redisReply **reply,
                        struct rl_redis **answered)
{
    enum { STACK_ARGS = 32 };
    const char *sav[STACK_ARGS];
    size_t sal[STACK_ARGS];
    const char **av = sav;
    size_t *al = sal;
    size_t n = (size_t)argc + 3;
    if (n > STACK_ARGS) {
        av = malloc(n * sizeof *av);
        al = malloc(n * sizeof *al);
        if (!av || !al) {
            free(av);
            free(al);
            return rl__err(-ENOMEM, "redis: out of memory");
        }
    }
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = sha;
    al[1] = 40;
    av[2] = nk;
    al[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        av[i + 3] = argv[i];
        al[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    int rc;
    if (c->cl) {
        rc = cluster_argv(c, slot, (int)n, av, al, reply, answered);
    } else {
        rc = rl__redis_cmd_argv(c, reply, (int)n, av, al);
        *answered = c;
    }
    if (av != sav) {
        free(av);
        free(al);
    }
    return rc;
}

static int evalsha(struct rl_redis *c, const char *script_src, const char *sha1_hex, int nkeys,
                   int argc, const char **argv, const size_t *argvlen, redisReply **reply);

int rl__redis_evalsha(struct rl_redis *c, const char *script_src, const char *sha1_hex, int nkeys,
                      int argc, const char **argv, const size_t *argvlen, redisReply **reply)
{
    if (reply)
        *reply = NULL;
    if (!c)
        return rl__err(-EINVAL, "redis: evalsha: bad arguments");
    bool own = begin_call(c);
    int rc = evalsha(c, script_src, sha1_hex, nkeys, argc, argv, argvlen, reply);
    end_call(c, own);
    return rc;
}

static int evalsha(struct rl_redis *c, const char *script_src, const char *sha1_hex, int nkeys,
                   int argc, const char **argv, const size_t *argvlen, redisReply **reply)
{
    if (reply)
        *reply = NULL;
    if (!c || !script_src || nkeys < 0 || argc < nkeys || (argc > 0 && !argv) || argc > 1000000)
        return rl__err(-EINVAL, "redis: evalsha: bad arguments");
    if (sha1_hex && !is_sha_hex(sha1_hex))
        return rl__err(-EINVAL, "redis: evalsha: the SHA1 must be 40 hex digits");
    for (int i = 0; i < argc; i++)
        if (!argv[i])
            return rl__err(-EINVAL, "redis: evalsha: argument %d is NULL", i);
    int slot = SLOT_ANY, rc;
    if (c->cl && nkeys > 0 && (rc = cluster_keys_slot(nkeys, argv, argvlen, &slot)) != 0)
        return rc;
    size_t len = strlen(script_src);
    uint64_t h = XXH3_64bits(script_src, len);
    char sha[41];
    const char *known = sha1_hex ? sha1_hex : cached_sha(c, h, len);
    if (known) {
        memcpy(sha, known, 41);
    } else {
        /* Learn the SHA1 where the script will run (a cluster: the master of its slot). */
        struct rl_redis *at = c;
        if (c->cl && (rc = cluster_node(c, slot, &at)) != 0)
            return rc;
        if ((rc = script_load(at, script_src, len, sha)) != 0)
            return cluster_failed(c, rc);
        cache_sha(c, h, len, sha);
    }
    /* NOSCRIPT (a restarted or failed-over server, SCRIPT FLUSH): load the script on the server
     * that answered and retry; a cluster may redirect the retry to another node that lacks it
     * too (a slot being migrated): one more round there. */
    for (unsigned reloads = 0;; reloads++) {
        struct rl_redis *ran = c;
        rc = evalsha_once(c, slot, sha, nkeys, argc, argv, argvlen, reply, &ran);
        if (rc != -ENOENT || reloads == (c->cl ? 2u : 1u))
            return rc;
        rl__log(RL_LOG_DEBUG, "redis: NOSCRIPT at %s: loading the script again", ran->where);
        char loaded[41];
        if ((rc = script_load(ran, script_src, len, loaded)) != 0)
            return cluster_failed(c, rc);
        if (sha1_hex && strcasecmp(loaded, sha1_hex) != 0)
            return rl__err(-EINVAL, "redis: the script's SHA1 is %s, not the %s given", loaded,
                           sha1_hex);
        cache_sha(c, h, len, loaded);
        memcpy(sha, loaded, 41);
    }
}

/* ---- pipelining ---------------------------------------------------------------------------- */

static int append_precheck(struct rl_redis *c)
{
    if (!c)
        return rl__err(-EINVAL, "redis: no connection");
    if (c->cl)
        return rl__err(-ENOTSUP, "redis: pipelining is not supported on a redis-cluster:// "
                                 "connection: send the commands one at a time");
    if (c->pending == 0) {
        c->lost = 0;
        bool own = begin_call(c);
        int rc = ensure(c);
        end_call(c, own);
        return rc;
    }
    return 0;
}

int rl__redis_append(struct rl_redis *c, const char *fmt, ...)
{
    if (!fmt)
        return rl__err(-EINVAL, "redis: no command");
    int rc = append_precheck(c);
    if (rc)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    int st = redisvAppendCommand(c->ctx, fmt, ap);
    va_end(ap);
    if (st != REDIS_OK)
        return rl__err(c->ctx->err == REDIS_ERR_OOM ? -ENOMEM : -EINVAL,
                       "redis: cannot format the command: %s", c->ctx->errstr);
    c->pending++;
    return 0;
}

int rl__redis_append_argv(struct rl_redis *c, int argc, const char **argv, const size_t *argvlen)
{
    if (argc < 1 || !argv)
        return rl__err(-EINVAL, "redis: empty command");
    int rc = append_precheck(c);
    if (rc)
        return rc;
    if (redisAppendCommandArgv(c->ctx, argc, argv, argvlen) != REDIS_OK)
        return rl__err(-ENOMEM, "redis: out of memory");
    c->pending++;
    return 0;
}

int rl__redis_get_reply(struct rl_redis *c, redisReply **reply)
{
    if (reply)
        *reply = NULL;
    if (!c)
        return rl__err(-EINVAL, "redis: no connection");
    if (c->cl)
        return rl__err(-ENOTSUP, "redis: pipelining is not supported on a redis-cluster:// "
                                 "connection: send the commands one at a time");
    if (c->lost) {
        c->lost--;
        return rl__err(c->lost_err, "Redis at %s: connection lost during a pipelined batch: %s",
                       c->where, c->last_msg);
    }
    if (!c->pending || !c->ctx)
        return rl__err(-EINVAL, "redis: no pipelined reply to read");
    bool own = begin_call(c);
    redisReply *r = NULL;
    int rc = cmd_exchange(c, "a pipelined command", &r);
    end_call(c, own);
    if (rc) {
        unsigned rest = c->pending - 1;
        rc = finish(c, NULL, rc, NULL);
        c->lost = rest;
        c->lost_err = rc;
        snprintf(c->last_msg, sizeof c->last_msg, "%s", rl_errmsg());
        return rc;
    }
    c->pending--;
    rc = finish(c, r, 0, reply);
    if (c->pending == 0 && c->drop_after)
        drop_ctx(c);
    return rc;
}

/* ---- the pool ------------------------------------------------------------------------------ */

static int pool_sync_init(struct rl_redis_pool *p)
{
    pthread_condattr_t ca;
    int e = pthread_condattr_init(&ca);
    if (e)
        return e;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    e = pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (e)
        return e;
    e = pthread_mutex_init(&p->mu, NULL);
    if (e)
        pthread_cond_destroy(&p->cv);
    return e;
}

int rl__pool_open(const struct rl_redis_url *u, unsigned size, unsigned connect_ms,
                  unsigned command_ms, struct rl_redis_pool **out)
{
    if (!out)
        return rl__err(-EINVAL, "redis pool: no output pointer");
    *out = NULL;
    if (size == 0)
        size = 20;
    if (size > POOL_MAX)
        return rl__err(-EINVAL, "redis pool: size %u is more than %u (REDIS_POOL_SIZE)", size,
                       POOL_MAX);
    struct rl_redis_pool *p = calloc(1, sizeof *p);
    if (!p)
        return rl__err(-ENOMEM, "redis pool: out of memory");
    p->conns = calloc(size, sizeof *p->conns);
    p->idle = calloc(size, sizeof *p->idle);
    int rc = 0;
    if (!p->conns || !p->idle) {
        free(p->conns);
        free(p->idle);
        free(p);
        return rl__err(-ENOMEM, "redis pool: out of memory");
    }
    if (pool_sync_init(p) != 0) {
        free(p->conns);
        free(p->idle);
        free(p);
        return rl__err(-ENOMEM, "redis pool: cannot create its lock");
    }
    p->size = size;
    for (unsigned i = 0; i < size && rc == 0; i++) {
        rc = new_conn(u, connect_ms, command_ms, &p->conns[i]);
        if (rc == 0) {
            p->conns[i]->pool = p;
            p->idle[p->nidle++] = p->conns[i];
        }
    }
    if (rc) {
        rl__pool_close(p);
        return rc;
    }
    p->command_ms = p->conns[0]->command_ms;
    *out = p;
    return 0;
}

static uint64_t mono_deadline_ts(uint64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
    return ns;
}

/* Index in p->idle of the best free connection: a connected one, else one free to connect. */
static unsigned pick_idle(const struct rl_redis_pool *p, uint64_t now)
{
    unsigned best = p->nidle - 1;
    int best_rank = 3;
    for (unsigned i = p->nidle; i-- > 0;) {
        const struct rl_redis *c = p->idle[i];
        int rank = is_open(c) ? 0 : now >= c->retry_at ? 1 : 2;
        if (rank < best_rank) {
            best_rank = rank;
            best = i;
            if (rank == 0)
                break;
        }
    }
    return best;
}

int rl__pool_get(struct rl_redis_pool *p, struct rl_redis **out)
{
    if (!out)
        return rl__err(-EINVAL, "redis pool: no output pointer");
    *out = NULL;
    if (!p)
        return rl__err(-EINVAL, "redis pool: no pool");
    pthread_mutex_lock(&p->mu);
    uint64_t now = rl__mono_ns();
    bool probe = false;
    if (p->open_until) {
        if (now < p->open_until || p->probing) {
            uint64_t left = now < p->open_until ? (p->open_until - now + MS_NS - 1) / MS_NS : 0;
            int rc =
                rl__err(-EAGAIN,
                        "Redis circuit breaker open after %u consecutive failures (next "
                        "probe in %" PRIu64 " ms); last error: %s",
                        atomic_load_explicit(&p->fails, memory_order_relaxed), left, p->last_msg);
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
        probe = true; /* half-open: this caller tries the server for everybody */
        p->probing = true;
    }
    struct timespec ts;
    uint64_t deadline = mono_deadline_ts(now + (uint64_t)p->command_ms * MS_NS, &ts);
    while (p->nidle == 0) {
        int e = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        if (p->nidle == 0 && (e == ETIMEDOUT || rl__mono_ns() >= deadline)) {
            if (probe)
                p->probing = false;
            int rc = rl__err(-EAGAIN,
                             "redis pool: no free connection within %u ms (all %u busy: raise "
                             "REDIS_POOL_SIZE)",
                             p->command_ms, p->size);
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
    }
    unsigned i = pick_idle(p, rl__mono_ns());
    struct rl_redis *c = p->idle[i];
    p->idle[i] = p->idle[--p->nidle];
    c->in_use = true;
    c->probe = probe;
    /* One bound for the caller's whole use, the wait above included (conn.h, "Time bounds"). */
    c->call_dl = now + ((uint64_t)c->connect_ms + c->command_ms) * MS_NS;
    if (probe)
        reset_backoff(c); /* the breaker already spaced the attempts */
    pthread_mutex_unlock(&p->mu);
    *out = c;
    return 0;
}

void rl__pool_put(struct rl_redis_pool *p, struct rl_redis *c)
{
    if (!p || !c)
        return;
    if (c->pending || c->lost)
        drop_ctx(c); /* unread replies: the stream is not reusable */
    c->lost = 0;
    c->call_dl = 0;
    pthread_mutex_lock(&p->mu);
    if (c->probe) { /* the probe ran no command: the next caller probes */
        c->probe = false;
        p->probing = false;
    }
    if (c->in_use && p->nidle < p->size) {
        c->in_use = false;
        p->idle[p->nidle++] = c;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

/* A pooled connection's outcome, for the breaker: rc 0 is "the server answered". */
static void pool_report(struct rl_redis *c, int rc)
{
    if (c->parent) /* a cluster node: it counts for its cluster connection */
        c = c->parent;
    struct rl_redis_pool *p = c->pool;
    if (!p)
        return;
    bool fail = is_failure(rc);
    if (!fail && !c->probe && atomic_load_explicit(&p->fails, memory_order_relaxed) == 0)
        return; /* the common case: nothing to change, no lock */
    pthread_mutex_lock(&p->mu);
    if (fail) {
        unsigned n = atomic_load_explicit(&p->fails, memory_order_relaxed) + 1;
        atomic_store_explicit(&p->fails, n, memory_order_relaxed);
        snprintf(p->last_msg, sizeof p->last_msg, "%s", rl_errmsg());
        bool was_open = p->open_until != 0;
        if (c->probe || (!was_open && n >= RL_POOL_BREAKER_FAILURES)) {
            p->open_until = rl__mono_ns() + RL_POOL_BREAKER_OPEN_MS * MS_NS;
            if (!was_open) {
                p->trips++;
                rl__log(RL_LOG_WARN,
                        "redis: circuit breaker open after %u consecutive failures: failing fast "
                        "for %u ms; last: %s",
                        n, RL_POOL_BREAKER_OPEN_MS, p->last_msg);
            }
        }
    } else {
        if (p->open_until)
            rl__log(RL_LOG_INFO, "redis: circuit breaker closed: %s answers again", c->where);
        atomic_store_explicit(&p->fails, 0, memory_order_relaxed);
        p->open_until = 0;
    }
    if (c->probe) {
        c->probe = false;
        p->probing = false;
    }
    pthread_mutex_unlock(&p->mu);
}

void rl__pool_close(struct rl_redis_pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->size; i++)
        rl__redis_close(p->conns[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->conns);
    free(p->idle);
    free(p);
}

void rl__pool_after_fork_child(struct rl_redis_pool *p)
{
    if (!p)
        return;
    /* The lock may have been held by a thread that does not exist here: start it afresh. */
    if (pool_sync_init(p) != 0)
        abort(); /* cannot happen with default attributes short of ENOMEM */
    p->nidle = 0;
    for (unsigned i = 0; i < p->size; i++) {
        struct rl_redis *c = p->conns[i];
        drop_ctx(c);
        c->lost = 0;
        c->in_use = false;
        c->probe = false;
        p->idle[p->nidle++] = c;
    }
    p->probing = false;
}

void rl__pool_stats(struct rl_redis_pool *p, struct rl_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    out->size = p->size;
    out->idle = p->nidle;
    for (unsigned i = 0; i < p->nidle; i++)
        out->connected += is_open(p->idle[i]);
    out->consecutive_failures = atomic_load_explicit(&p->fails, memory_order_relaxed);
    out->breaker_open = p->open_until != 0;
    out->breaker_trips = p->trips;
    pthread_mutex_unlock(&p->mu);
}
