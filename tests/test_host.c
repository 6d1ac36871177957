/*
 * rl inside a host process: what a host (an nginx worker, a Python server) relies on beyond
 * the decisions themselves.
 *  - signals: every thread rl starts blocks all signals, so a host whose main thread waits for
 *    SIGTERM and SIGHUP (sigsuspend, ppoll, epoll_pwait, as nginx workers do) receives them
 *    while rl's sync thread runs;
 *  - permissions: a world-writable segment needs RL_OPEN_WORLD_WRITABLE, and is logged;
 *  - messages that name what is wrong: a zero-filled segment file, a stuck rule-set writer (its
 *    pid), a Redis error longer than rl_health_info.error (whole through rl_errmsg()), options
 *    with a non-zero reserved word, a refused Redis URL (which also leaves no segment).
 * The sync thread needs a redis_url but no Redis: a unix socket path where nothing listens
 * (the thread keeps trying; nothing here depends on Redis answering).
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "rl_test.h"
#include "support.h" /* the monotonic clock (support/) */

TestSuite(host, .init = names_setup, .fini = seg_teardown);

/* A redis_url where nothing listens: a socket path of 100 bytes (long messages) under /tmp. */
static const char *dead_socket_url(char *buf, size_t n)
{
    char path[128];
    int k = snprintf(path, sizeof path, "/tmp/rl-host-%ld-", (long)getpid());
    while (k < 100)
        path[k++] = 'x';
    path[k] = '\0';
    unlink(path);
    snprintf(buf, n, "unix://%s", path);
    return buf;
}

/* ---- signals --------------------------------------------------------------------------------- */

static _Atomic pid_t g_term_tid, g_hup_tid;

static void on_signal(int sig)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    /* relaxed: read by the same thread after ppoll returns, or after the deadline. */
    atomic_store_explicit(sig == SIGTERM ? &g_term_tid : &g_hup_tid, tid, memory_order_relaxed);
}

/* The hex SigBlk of /proc/self/task/TID/status, and the thread's name; false when gone. */
static bool task_sigblk(const char *tid, unsigned long long *blk, char *comm, size_t n)
{
    char path[320], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    if (!fgets(comm, (int)n, f))
        comm[0] = '\0';
    comm[strcspn(comm, "\n")] = '\0';
    fclose(f);
    snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
    f = fopen(path, "r");
    if (!f)
        return false;
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "SigBlk: %llx", blk) == 1)
            found = true;
    fclose(f);
    return found;
}

Test(host, rl_threads_block_every_signal_and_the_host_gets_its_own)
{
    /* The host's handlers, installed and unblocked before rl starts (an nginx worker's state
     * at init: it blocks its signals only around its event loop). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGTERM, &sa, NULL), 0);
    cr_assert_eq(sigaction(SIGHUP, &sa, NULL), 0);
    sigset_t none, both, before, after;
    sigemptyset(&none);
    sigemptyset(&both);
    sigaddset(&both, SIGTERM);
    sigaddset(&both, SIGHUP);
    cr_assert_eq(pthread_sigmask(SIG_SETMASK, &none, NULL), 0);
    pthread_sigmask(SIG_SETMASK, NULL, &before);

    char url[160];
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.capacity = 1024;
    o.redis_url = dead_socket_url(url, sizeof url);
    if (!RL_WITH_REDIS) { /* -Dredis=disabled: the URL is refused, and says why */
        cr_expect_eq(rl_open(&g_rl, &o), -ENOTSUP, "%s", rl_errmsg());
        cr_expect_not_null(strstr(rl_errmsg(), "built without Redis"), "%s", rl_errmsg());
        test_skip(seg_teardown,
                  "built without Redis (-Dredis=disabled): the rest needs the sync thread");
    }
    int rc = rl_open(&g_rl, &o);
    cr_assert_eq(rc, 0, "rl_open: %s", rl_errmsg());

    /* The caller's mask is the caller's again. */
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    cr_expect_eq(sigismember(&after, SIGTERM), 0, "rl_open left SIGTERM blocked in the caller");
    cr_expect_eq(sigismember(&after, SIGHUP), 0, "rl_open left SIGHUP blocked in the caller");
    cr_expect_eq(sigismember(&after, SIGUSR1), sigismember(&before, SIGUSR1));

    /* Every other thread of the process is rl's: each blocks SIGTERM, SIGHUP, SIGINT, SIGCHLD,
     * SIGALRM, SIGUSR1 and SIGPIPE. The sync thread shows up within the deadline. */
    pid_t me = (pid_t)syscall(SYS_gettid);
    int others = 0;
    bool sync_seen = false;
    for (uint64_t t0 = mono_ms(); !sync_seen && mono_ms() - t0 < 10000;) {
        DIR *d = opendir("/proc/self/task");
        cr_assert_not_null(d);
        struct dirent *e;
        others = 0;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.' || atoi(e->d_name) == me)
                continue;
            unsigned long long blk = 0;
            char comm[32];
            if (!task_sigblk(e->d_name, &blk, comm, sizeof comm))
                continue;
            others++;
            if (strcmp(comm, "rl-sync") == 0)
                sync_seen = true;
            static const int sigs[] = {SIGTERM, SIGHUP, SIGINT, SIGCHLD, SIGALRM, SIGUSR1, SIGPIPE};
            for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
                cr_expect(blk & (1ULL << (sigs[i] - 1)),
                          "thread %s (%s) does not block signal %d (SigBlk %016llx): the host's "
                          "signals could be delivered to it",
                          e->d_name, comm, sigs[i], blk);
        }
        closedir(d);
        if (!sync_seen) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    cr_assert(sync_seen, "no thread named rl-sync among %d other threads", others);

    /* The host's event loop: signals blocked, then waited for with ppoll (as epoll_pwait and
     * sigsuspend do: the wait's own mask unblocks them). Process-directed signals sent while
     * they are blocked here go to a thread that does not block them: rl's, without the fix. */
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &both, NULL), 0);
    cr_assert_eq(kill(getpid(), SIGTERM), 0);
    cr_assert_eq(kill(getpid(), SIGHUP), 0);
    uint64_t t0 = mono_ms();
    while ((!atomic_load_explicit(&g_term_tid, memory_order_relaxed) ||
            !atomic_load_explicit(&g_hup_tid, memory_order_relaxed)) &&
           mono_ms() - t0 < 5000) {
        struct timespec ts = {0, 100000000};
        ppoll(NULL, 0, &ts, &none);
    }
    cr_assert_eq(pthread_sigmask(SIG_SETMASK, &before, NULL), 0);
    cr_expect_eq(atomic_load_explicit(&g_term_tid, memory_order_relaxed), me,
                 "SIGTERM ran its handler on thread %d, not the host's main thread %d",
                 (int)atomic_load_explicit(&g_term_tid, memory_order_relaxed), (int)me);
    cr_expect_eq(atomic_load_explicit(&g_hup_tid, memory_order_relaxed), me,
                 "SIGHUP ran its handler on thread %d, not the host's main thread %d",
                 (int)atomic_load_explicit(&g_hup_tid, memory_order_relaxed), (int)me);
    rl_close(&g_rl);
}

/* ---- world-writable segments ----------------------------------------------------------------- */

static char g_log[2048];

static void capture_log(rl_log_level level, const char *msg, void *arg)
{
    (void)arg;
    if (level <= RL_LOG_WARN)
        snprintf(g_log + strlen(g_log), sizeof g_log - strlen(g_log), "%s\n", msg);
}

Test(host, world_writable_segment_needs_the_flag_and_is_logged)
{
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.capacity = 256;
    o.mode = 0666;
    int rc = rl_open(&g_rl, &o);
    cr_assert_eq(rc, -EPERM, "mode 0666 without RL_OPEN_WORLD_WRITABLE: %d (%s)", rc, rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "RL_OPEN_WORLD_WRITABLE") && strstr(rl_errmsg(), "0660"),
              "message: %s", rl_errmsg());
    char path[96];
    snprintf(path, sizeof path, "/dev/shm%s", g_name);
    cr_expect_neq(access(path, F_OK), 0, "a refused open left %s behind", path);

    o.mode = 0662; /* others may write, not read: still refused */
    cr_expect_eq(rl_open(&g_rl, &o), -EPERM);
    o.mode = 0664; /* others may read: allowed (no rewriting) */
    cr_assert_eq(rl_open(&g_rl, &o), 0, "%s", rl_errmsg());
    rl_close(&g_rl);
    rl_unlink(g_name);

    g_log[0] = '\0';
    rl_set_log(capture_log, NULL, RL_LOG_WARN);
    o.mode = 0666;
    o.flags = RL_OPEN_WORLD_WRITABLE;
    rc = rl_open(&g_rl, &o);
    rl_set_log(NULL, NULL, RL_LOG_ERROR);
    cr_assert_eq(rc, 0, "with RL_OPEN_WORLD_WRITABLE: %s", rl_errmsg());
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0666, "mode %o", st.st_mode & 0777);
    cr_expect(strstr(g_log, g_name) && strstr(g_log, "world-writable"), "log: '%s'", g_log);
}

Test(host, reserved_option_words_are_refused)
{
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.capacity = 256;
    o.reserved[0] = 1;
    int rc = rl_open(&g_rl, &o);
    cr_expect_eq(rc, -EINVAL, "reserved[0] = 1: %d", rc);
    cr_expect(strstr(rl_errmsg(), "reserved[0]"), "message: %s", rl_errmsg());
    o.reserved[0] = 0;
    o.reserved[6] = 7;
    cr_expect_eq(rl_open(&g_rl, &o), -EINVAL);
    cr_expect(strstr(rl_errmsg(), "reserved[6]"), "message: %s", rl_errmsg());
}

/* A Redis URL rl_open refuses (malformed; or any URL, built without Redis) is refused before
 * the segment is touched: a host that retries with a fixed URL finds no stray empty segment,
 * and the message names the URL, never the segment. */
Test(host, refused_redis_url_leaves_no_segment)
{
    char path[96];
    snprintf(path, sizeof path, "/dev/shm%s", g_name);
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.capacity = 256;
    o.redis_url = "redis://:pw-secret@127.0.0.1:99999/0"; /* port above 65535 */
    int rc = rl_open(&g_rl, &o);
    cr_expect_eq(rc, RL_WITH_REDIS ? -EINVAL : -ENOTSUP, "rl_open = %d: %s", rc, rl_errmsg());
    cr_expect_null(g_rl);
    cr_expect_neq(access(path, F_OK), 0, "a refused URL left %s behind", path);
    cr_expect_null(strstr(rl_errmsg(), g_name), "message names the segment: %s", rl_errmsg());
    cr_expect_null(strstr(rl_errmsg(), "pw-secret"), "message shows the password: %s", rl_errmsg());
    o.redis_url = "rediss://127.0.0.1:6379"; /* TLS: not in this build */
    rc = rl_open(&g_rl, &o);
    cr_expect_eq(rc, -ENOTSUP, "rediss: rl_open = %d: %s", rc, rl_errmsg());
    cr_expect_neq(access(path, F_OK), 0, "a refused rediss:// URL left %s behind", path);
    /* The same options without the URL open (and create) the segment. */
    o.redis_url = NULL;
    cr_assert_eq(rl_open(&g_rl, &o), 0, "%s", rl_errmsg());
    cr_expect_eq(access(path, F_OK), 0, "%s not created", path);
}

/* ---- messages that name the cause ------------------------------------------------------------ */

Test(host, zero_filled_segment_is_named_at_once)
{
    /* A file of the right size and all zeros, that no process is initialising. */
    int fd = shm_open(g_name, O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 1 << 16), 0);
    close(fd);
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.flags = RL_OPEN_NOCREATE; /* as rlctl attaches */
    int rc = rl_open(&g_rl, &o);
    cr_expect_eq(rc, -EBADMSG, "rl_open = %d (%s): %s", rc, rl_strerror(rc), rl_errmsg());
    cr_expect(strstr(rl_errmsg(), "all zeros") && strstr(rl_errmsg(), "no process"), "message: %s",
              rl_errmsg());
    cr_expect_null(strstr(rl_errmsg(), "another process"), "message: %s", rl_errmsg());
    /* A creator (no NOCREATE) still initialises such a file, as before. */
    o.flags = 0;
    rc = rl_open(&g_rl, &o);
    cr_expect_eq(rc, 0, "creating over a zero-filled file: %s", rl_errmsg());
}

Test(host, stuck_rule_set_writer_is_named_by_pid)
{
    g_rl = test_open(g_name, 256);
    /* Hold the rule-set writer lock (byte 1, an open-file-description lock) through a file
     * description of our own, as a writer stopped in the middle would. */
    int fd = shm_open(g_name, O_RDWR, 0);
    cr_assert_geq(fd, 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1};
    cr_assert_eq(fcntl(fd, F_OFD_SETLK, &fl), 0);
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 10, 1000, 10);
    int rc = rl_configure_endpoint(g_rl, "/stuck", &l, 1);
    close(fd);
    cr_expect_eq(rc, -EAGAIN, "%d: %s", rc, rl_errmsg());
    char want[48];
    snprintf(want, sizeof want, "process %ld", (long)getpid());
    cr_expect(strstr(rl_errmsg(), want), "message names no pid (%s): %s", want, rl_errmsg());
    cr_expect_eq(rl_configure_endpoint(g_rl, "/stuck", &l, 1), 0, "after the writer let go: %s",
                 rl_errmsg());
}

Test(host, health_error_longer_than_the_struct_is_whole_in_errmsg)
{
    char url[160];
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.capacity = 256;
    o.redis_url = dead_socket_url(url, sizeof url);
    o.flags = RL_OPEN_NO_SYNC;
    if (!RL_WITH_REDIS) { /* -Dredis=disabled: the URL is refused, and says why */
        cr_expect_eq(rl_open(&g_rl, &o), -ENOTSUP, "%s", rl_errmsg());
        cr_expect_not_null(strstr(rl_errmsg(), "built without Redis"), "%s", rl_errmsg());
        test_skip(seg_teardown,
                  "built without Redis (-Dredis=disabled): the rest needs the sync thread");
    }
    cr_assert_eq(rl_open(&g_rl, &o), 0, "%s", rl_errmsg());
    rl_health_info hi;
    cr_assert_eq(rl_health(g_rl, &hi), 0, "%s", rl_errmsg());
    cr_expect(!hi.connected, "connected to a socket where nothing listens");
    const char *whole = rl_errmsg();
    const char *path = url + strlen("unix://");
    cr_assert_gt(strlen(whole), sizeof hi.error, "a message this test expects to be long: %s",
                 whole);
    cr_expect(strstr(whole, path), "the whole message names the socket path: %s", whole);
    cr_expect_eq(strlen(hi.error), sizeof hi.error - 1, "error: '%s'", hi.error);
    cr_expect_eq(strncmp(hi.error, whole, sizeof hi.error - 4), 0, "error is a prefix: '%s'",
                 hi.error);
    cr_expect_str_eq(hi.error + sizeof hi.error - 4, "...", "a cut message ends with ...: '%s'",
                     hi.error);
}

Test(host, stuck_initialiser_is_named_by_pid)
{
    /* A zero-filled file whose initialisation lock (byte 0) a live process holds, as a creator
     * stopped half-way would: an attach waits ~5 s, then names that process. */
    int fd = shm_open(g_name, O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 1 << 16), 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    cr_assert_eq(fcntl(fd, F_OFD_SETLK, &fl), 0);
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    o.flags = RL_OPEN_NOCREATE;
    int rc = rl_open(&g_rl, &o);
    close(fd);
    cr_expect_eq(rc, -EAGAIN, "rl_open = %d: %s", rc, rl_errmsg());
    char want[48];
    snprintf(want, sizeof want, "process %ld", (long)getpid());
    cr_expect(strstr(rl_errmsg(), want), "message names no pid (%s): %s", want, rl_errmsg());
}
