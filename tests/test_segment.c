/*
 * The shared-memory segment: create, attach, geometry, names, corruption, permissions and two
 * processes creating one new name at once.
 *
 * The segment of name "/x" is the file /dev/shm/x. Header (public part): offset 0 uint64 magic
 * "!RL SEG1", offset 8 uint32 layout_version (SEG_LAYOUT), offset 12 uint32 header_size.
 */
#include "rl_test.h"
#include "support.h" /* the monotonic clock (support/) */

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

/* The layout version this library writes (lib/internal.h RL_LAYOUT_VERSION; 2 since the GLOBAL
 * sync fields joined the header, 3 since the endpoint counters, 4 since the token bucket's state
 * is in exact-rate units). */
#define SEG_LAYOUT 4u

TestSuite(segment, .init = seg_setup, .fini = seg_teardown);

/* /dev/shm/<name without its slash> */
static const char *shm_path(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "/dev/shm/%s", name + 1);
    return buf;
}

static int open_opts(rl_t **out, const char *name, size_t capacity, mode_t mode, unsigned flags)
{
    rl_options o;
    rl_options_init(&o);
    o.shm_name = name;
    if (capacity)
        o.capacity = capacity;
    if (mode)
        o.mode = mode;
    o.flags = flags;
    return rl_open(out, &o);
}

static rl_segment_info info_of(const rl_t *rl)
{
    rl_segment_info info;
    memset(&info, 0, sizeof info);
    int rc = rl_segment_info_get(rl, &info);
    cr_assert_eq(rc, 0, "rl_segment_info_get: %d", rc);
    return info;
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * NS_S + (uint64_t)ts.tv_nsec;
}

static void report_count(const char *msg, void *arg)
{
    (void)msg;
    ++*(int *)arg;
}

/* ---- open, attach, geometry ------------------------------------------------------------------ */

/* Two handles on one name see one set of counters. Could fail: the attach path mapping a copy,
 * or a second open re-initialising an existing segment. */
Test(segment, two_handles_share_counts)
{
    rl_t *h2 = NULL;
    int rc = open_opts(&h2, g_name, 0, 0, RL_OPEN_NOCREATE);
    cr_assert_eq(rc, 0, "attach: %d %s", rc, rl_errmsg());
    rl_limit l = mk_limit(RL_FIXED_WINDOW, 10, 1000, 0);
    cr_assert(acq_at(g_rl, "shared", &l, 3, at_ms(0)).allowed);
    cr_expect_eq(acq_at(h2, "shared", &l, 0, at_ms(0)).remaining, 7, "h2 does not see h1's 3");
    cr_assert(acq_at(h2, "shared", &l, 2, at_ms(0)).allowed);
    cr_expect_eq(acq_at(g_rl, "shared", &l, 0, at_ms(0)).remaining, 5, "h1 does not see h2's 2");
    rl_segment_info a = info_of(g_rl), b = info_of(h2);
    cr_expect_eq(a.birth_ns, b.birth_ns);
    cr_expect_eq(a.capacity, b.capacity);
    cr_expect_eq(a.slots_in_use, 1);
    cr_expect_eq(b.slots_in_use, 1);
    /* A third open without NOCREATE attaches too, it does not re-create. */
    rl_t *h3 = NULL;
    cr_assert_eq(open_opts(&h3, g_name, 0, 0, 0), 0);
    cr_expect_eq(acq_at(h3, "shared", &l, 0, at_ms(0)).remaining, 5);
    rl_close(&h3);
    rl_close(&h2);
    /* Closing the other handles leaves this one working. */
    cr_expect_eq(acq_at(g_rl, "shared", &l, 0, at_ms(0)).remaining, 5);
}

/* Geometry of a default-capacity segment: capacity honoured, at most 80 bytes per key, the
 * file is the mapping, the counters start at zero and count what happens. */
Test(segment, info_geometry)
{
    const char *name = test_track_new();
    uint64_t before = realtime_ns();
    rl_t *h = test_open(name, 65536);
    uint64_t after = realtime_ns();
    rl_segment_info info = info_of(h);
    cr_expect_eq(info.layout_version, SEG_LAYOUT);
    cr_expect_geq(info.capacity, 65536, "capacity %" PRIu64, info.capacity);
    cr_expect_geq(info.slots, info.capacity, "slots %" PRIu64, info.slots);
    cr_expect_leq(info.segment_bytes / 65536, 80, "%" PRIu64 " bytes for 65536 keys",
                  info.segment_bytes);
    cr_expect_eq(info.slots_in_use, 0);
    cr_expect_eq(info.limits_in_use, 0);
    cr_expect_gt(info.limits_max, 0);
    cr_expect_eq(info.enospc, 0);
    cr_expect_eq(info.reclaimed, 0);
    cr_expect_eq(info.creator_pid, getpid());
    cr_expect(info.birth_ns + 5 * NS_S >= before && info.birth_ns <= after + 5 * NS_S,
              "birth_ns %" PRIu64 " is not the creation time %" PRIu64, info.birth_ns, before);
    char path[300];
    struct stat st;
    cr_assert_eq(stat(shm_path(name, path, sizeof path), &st), 0, "%s: %s", path, strerror(errno));
    cr_expect_eq((uint64_t)st.st_size, info.segment_bytes, "file %lld bytes, mapping %" PRIu64,
                 (long long)st.st_size, info.segment_bytes);
    cr_expect_eq(st.st_mode & 0777, 0600, "default mode %o", st.st_mode & 0777);

    /* 100 keys under each of two limits. */
    rl_limit a = mk_limit(RL_TOKEN_BUCKET, 5, 1000, 0), b = mk_limit(RL_GCRA, 5, 1000, 0);
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "key-%d", i);
        cr_assert(acq_at(h, key, &a, 1, at_ms(0)).allowed);
        cr_assert(acq_at(h, key, &b, 1, at_ms(0)).allowed);
    }
    info = info_of(h);
    cr_expect_eq(info.slots_in_use, 200, "slots_in_use %" PRIu64, info.slots_in_use);
    cr_expect_eq(info.limits_in_use, 2, "limits_in_use %" PRIu64, info.limits_in_use);
    cr_expect_eq(info.enospc, 0);
    int reports = 0;
    cr_expect_eq(rl_check_segment(h, report_count, &reports), 0);
    cr_expect_eq(reports, 0);

    /* An existing segment keeps its own capacity whatever the opener asks for. */
    rl_t *h2 = NULL;
    cr_assert_eq(open_opts(&h2, name, 1024, 0, 0), 0);
    cr_expect_eq(info_of(h2).capacity, info.capacity);
    cr_expect_eq(info_of(h2).slots_in_use, 200);
    rl_close(&h2);
    rl_close(&h);
}

/* A small segment is smaller: capacity is honoured, not rounded to the default. */
Test(segment, small_capacity_honoured)
{
    const char *name = test_track_new();
    rl_t *h = test_open(name, 1024);
    rl_segment_info info = info_of(h);
    cr_expect_geq(info.capacity, 1024);
    cr_expect_lt(info.capacity, 65536, "capacity 1024 became %" PRIu64, info.capacity);
    /* 80 bytes per key plus the fixed regions (header, rule-set buffers, audit ring, counters,
     * endpoint directory and counters: about 300 KiB, docs/design.md section 1). */
    cr_expect_leq(info.segment_bytes, 1024 * 80 + 320 * 1024, "%" PRIu64 " bytes",
                  info.segment_bytes);
    rl_close(&h);
}

Test(segment, close_sets_null)
{
    rl_close(&g_rl);
    cr_expect_null(g_rl);
    rl_close(&g_rl); /* *rl == NULL: no-op */
    rl_close(NULL);  /* no-op */
    cr_expect_null(g_rl);
}

/* rl_unlink removes the name; attached handles keep working; the name can be created anew. */
Test(segment, unlink)
{
    rl_limit l = mk_limit(RL_FIXED_WINDOW, 10, 1000, 0);
    cr_assert(acq_at(g_rl, "k", &l, 4, at_ms(0)).allowed);
    cr_expect_eq(rl_unlink(g_name), 0);
    cr_expect_eq(rl_unlink(g_name), -ENOENT);
    char path[300];
    cr_expect_neq(access(shm_path(g_name, path, sizeof path), F_OK), 0, "file still there");
    rl_t *h = NULL;
    cr_expect_eq(open_opts(&h, g_name, 0, 0, RL_OPEN_NOCREATE), -ENOENT);
    cr_expect_null(h);
    /* The old mapping still counts. */
    cr_expect_eq(acq_at(g_rl, "k", &l, 0, at_ms(0)).remaining, 6);
    /* A new segment under the same name is fresh. */
    cr_assert_eq(open_opts(&h, g_name, 0, 0, 0), 0);
    cr_expect_eq(acq_at(h, "k", &l, 0, at_ms(0)).remaining, 10);
    rl_close(&h);
}

Test(segment, nocreate_missing_is_enoent)
{
    const char *name = test_track_new();
    rl_t *h = (rl_t *)&h; /* must be left alone or set to NULL, never to garbage */
    int rc = open_opts(&h, name, 0, 0, RL_OPEN_NOCREATE);
    cr_expect_eq(rc, -ENOENT, "%d", rc);
    cr_expect(h == NULL || h == (rl_t *)&h, "a failed rl_open wrote a dangling handle");
    cr_expect_gt(strlen(rl_errmsg()), 0);
    char path[300];
    cr_expect_neq(access(shm_path(name, path, sizeof path), F_OK), 0, "NOCREATE created it");
    cr_expect_eq(rl_unlink(name), -ENOENT);
}

/* Bad names are refused before anything is created. */
Test(segment, bad_names)
{
    /* "/" + 201 characters is too long; "/" + 200 is the longest valid name */
    static char long201[203];
    long201[0] = '/';
    memset(long201 + 1, 'a', 201);
    char long200[202];
    int n = snprintf(long200, sizeof long200, "/rl-t-%ld-", (long)getpid());
    memset(long200 + n, 'b', (size_t)(201 - n));
    long200[201] = '\0';
    cr_assert_eq(strlen(long200), 201);
    cr_assert_eq(strlen(long201), 202);
    const char *bad[] = {
        "",           "noslash", "/a/b", "/",   "/with space", "/tab\tname",
        "/new\nline", "/ü",      "//x",  "/a/", long201,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rl_t *h = NULL;
        int rc = open_opts(&h, bad[i], 0, 0, 0);
        cr_expect_eq(rc, -EINVAL, "rl_open(\"%.20s\") = %d", bad[i], rc);
        cr_expect_null(h);
        cr_expect_gt(strlen(rl_errmsg()), 0, "no message after a failed rl_open");
        cr_expect_eq(rl_unlink(bad[i]), -EINVAL, "rl_unlink(\"%.20s\")", bad[i]);
    }
    /* The edges that are valid: 200 characters, and each allowed punctuation. */
    char ok[64];
    snprintf(ok, sizeof ok, "/rl-t-%ld_A.z-9", (long)getpid());
    const char *good[] = {long200, ok};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        rl_t *h = NULL;
        int rc = open_opts(&h, good[i], 1024, 0, 0);
        cr_expect_eq(rc, 0, "rl_open(\"%.30s...\") = %d %s", good[i], rc, rl_errmsg());
        rl_close(&h);
        cr_expect_eq(rl_unlink(good[i]), rc == 0 ? 0 : -ENOENT);
    }
    rl_options o;
    rl_options_init(&o);
    o.shm_name = g_name;
    cr_expect_eq(rl_open(NULL, &o), -EINVAL);
}

Test(segment, options_defaults)
{
    rl_options o;
    memset(&o, 0xff, sizeof o);
    rl_options_init(&o);
    cr_expect_eq(o.size, sizeof o);
    cr_expect_str_eq(o.shm_name, "/rl-default");
    cr_expect_eq(o.capacity, 65536);
    cr_expect_eq(o.mode, 0600);
    cr_expect_eq(o.flags, 0);
    for (size_t i = 0; i < sizeof o.reserved / sizeof o.reserved[0]; i++)
        cr_expect_eq(o.reserved[i], 0);
}

/* ---- corruption ------------------------------------------------------------------------------ */

/* Creates the fixture's segment file fresh (closed), returns its path. */
static const char *closed_segment_path(char *path, size_t n)
{
    rl_limit l = mk_limit(RL_TOKEN_BUCKET, 5, 1000, 0);
    acq_at(g_rl, "k", &l, 1, at_ms(0));
    rl_close(&g_rl);
    return shm_path(g_name, path, n);
}

Test(segment, other_layout_version_is_eproto)
{
    char path[300];
    int fd = open(closed_segment_path(path, sizeof path), O_RDWR);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    uint32_t v = 0;
    cr_assert_eq(pread(fd, &v, sizeof v, 8), 4);
    cr_expect_eq(v, SEG_LAYOUT, "layout version on disk %u", v);
    v = 99;
    cr_assert_eq(pwrite(fd, &v, sizeof v, 8), 4);
    close(fd);
    rl_t *h = NULL;
    int rc = open_opts(&h, g_name, 0, 0, 0);
    cr_expect_eq(rc, -EPROTO, "rl_open of a version-99 segment: %d (%s)", rc, rl_strerror(rc));
    cr_expect_null(h);
    cr_expect(strstr(rl_errmsg(), "version") != NULL, "message does not mention the version: %s",
              rl_errmsg());
    rc = open_opts(&h, g_name, 0, 0, RL_OPEN_NOCREATE);
    cr_expect_eq(rc, -EPROTO);
}

Test(segment, magic_is_as_documented)
{
    char path[300];
    int fd = open(closed_segment_path(path, sizeof path), O_RDONLY);
    cr_assert_geq(fd, 0);
    unsigned char magic[8];
    uint32_t hs = 0;
    cr_assert_eq(pread(fd, magic, 8, 0), 8);
    cr_assert_eq(pread(fd, &hs, 4, 12), 4);
    close(fd);
    cr_expect_eq(memcmp(magic, "!RL SEG1", 8), 0, "magic bytes %.8s", (const char *)magic);
    cr_expect_geq(hs, 16, "header_size %u", hs);
}

Test(segment, truncated_is_ebadmsg)
{
    char path[300];
    int fd = open(closed_segment_path(path, sizeof path), O_RDWR);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(ftruncate(fd, st.st_size / 2), 0);
    close(fd);
    rl_t *h = NULL;
    int rc = open_opts(&h, g_name, 0, 0, 0);
    cr_expect_eq(rc, -EBADMSG, "half-size segment: %d (%s)", rc, rl_strerror(rc));
    cr_expect_null(h);
    cr_expect_gt(strlen(rl_errmsg()), 0);
}

/* Writes a 1 MiB file of pseudo-random bytes as segment `name`; `with_magic` puts a valid magic,
 * version and header size in front (a header that is garbage beyond its first 16 bytes). */
static void write_garbage_segment(const char *name, bool with_magic, uint64_t seed)
{
    char path[300];
    int fd = open(shm_path(name, path, sizeof path), O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    static uint64_t buf[(1 << 20) / 8];
    for (size_t i = 0; i < sizeof buf / 8; i++)
        buf[i] = prng_next(&seed);
    if (with_magic) {
        memcpy(buf, "!RL SEG1", 8);
        uint32_t v = SEG_LAYOUT, hs = 4096;
        memcpy((char *)buf + 8, &v, 4);
        memcpy((char *)buf + 12, &hs, 4);
    }
    cr_assert_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    close(fd);
}

Test(segment, garbage_is_ebadmsg)
{
    for (int with_magic = 0; with_magic <= 1; with_magic++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            const char *name = test_track_new();
            write_garbage_segment(name, with_magic, seed * 0x1234567ULL);
            rl_t *h = NULL;
            int rc = open_opts(&h, name, 0, 0, 0);
            cr_expect_eq(rc, -EBADMSG,
                         "1 MiB of random bytes (magic %d, seed %" PRIu64 "): %d (%s)", with_magic,
                         seed, rc, rl_strerror(rc));
            cr_expect_null(h);
            rl_close(&h);
        }
    }
}

/* A zero-length file whose creator is long gone: re-initialised or refused, promptly and
 * without a crash. */
Test(segment, zero_length_stale_file)
{
    char path[300];
    rl_close(&g_rl);
    rl_unlink(g_name);
    int fd = open(shm_path(g_name, path, sizeof path), O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0, "%s", strerror(errno));
    struct timespec old[2];
    clock_gettime(CLOCK_REALTIME, &old[0]);
    old[0].tv_sec -= 3600;
    old[1] = old[0];
    cr_assert_eq(futimens(fd, old), 0);
    close(fd);
    double t = mono_s();
    rl_t *h = NULL;
    int rc = open_opts(&h, g_name, 1024, 0, 0);
    double took = mono_s() - t;
    cr_expect_leq(took, 8.0, "rl_open took %.1f s", took);
    cr_expect(rc == 0 || rc < 0, "rc %d", rc);
    if (rc == 0) {
        rl_limit l = mk_limit(RL_TOKEN_BUCKET, 5, 1000, 0);
        cr_expect(acq_at(h, "k", &l, 5, at_ms(0)).allowed);
        cr_expect_eq(rl_check_segment(h, NULL, NULL), 0);
        cr_expect_eq(info_of(h).layout_version, SEG_LAYOUT);
    } else {
        cr_expect_null(h);
        cr_expect_gt(strlen(rl_errmsg()), 0);
    }
    cr_log_info("zero-length stale segment: rl_open = %d after %.2f s", rc, took);
    rl_close(&h);
}

/* ---- permissions ----------------------------------------------------------------------------- */

/* The mode is applied exactly, whatever the umask. */
Test(segment, mode_ignores_umask)
{
    const char *name = test_track_new();
    mode_t old = umask(0077); /* would strip the group bit */
    rl_t *h = NULL;
    int rc = open_opts(&h, name, 1024, 0640, 0);
    umask(old);
    cr_assert_eq(rc, 0, "%d %s", rc, rl_errmsg());
    char path[300];
    struct stat st;
    cr_assert_eq(stat(shm_path(name, path, sizeof path), &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0640, "mode %o, expected 0640", st.st_mode & 0777);
    rl_close(&h);
}

/* A segment owned by another uid is refused unless RL_OPEN_ALLOW_FOREIGN. */
Test(segment, foreign_owner)
{
    char path[300];
    rl_limit l = mk_limit(RL_FIXED_WINDOW, 10, 1000, 0);
    acq_at(g_rl, "k", &l, 3, at_ms(0));
    rl_close(&g_rl);
    cr_assert_eq(chown(shm_path(g_name, path, sizeof path), 65534, 65534), 0, "%s",
                 strerror(errno));
    rl_t *h = NULL;
    int rc = open_opts(&h, g_name, 0, 0, 0);
    cr_expect_eq(rc, -EPERM, "foreign segment without the flag: %d (%s)", rc, rl_strerror(rc));
    cr_expect_null(h);
    cr_expect_gt(strlen(rl_errmsg()), 0);
    rc = open_opts(&h, g_name, 0, 0, RL_OPEN_ALLOW_FOREIGN);
    cr_assert_eq(rc, 0, "foreign segment with RL_OPEN_ALLOW_FOREIGN: %d %s", rc, rl_errmsg());
    cr_expect_eq(acq_at(h, "k", &l, 0, at_ms(0)).remaining, 7, "not the same counters");
    rl_close(&h);
}

/* A process of another uid cannot open a root-owned 0600 segment: -EACCES. */
Test(segment, unprivileged_user_gets_eacces)
{
    if (geteuid() != 0)
        test_skip(seg_teardown, "needs root to drop to uid 65534");
    rl_close(&g_rl); /* 0600, owned by root */
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(pipefd[0]);
        int rcs[2] = {1, 1};
        if (setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0) {
            rl_t *h = NULL;
            rcs[0] = open_opts(&h, g_name, 0, 0, 0);
            rl_close(&h);
            rcs[1] = open_opts(&h, g_name, 0, 0, RL_OPEN_NOCREATE);
            rl_close(&h);
        }
        ssize_t w = write(pipefd[1], rcs, sizeof rcs);
        _exit(w == (ssize_t)sizeof rcs ? 0 : 1);
    }
    close(pipefd[1]);
    int rcs[2] = {0, 0}, status = 0;
    ssize_t r = read(pipefd[0], rcs, sizeof rcs);
    close(pipefd[0]);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    cr_assert_eq(r, (ssize_t)sizeof rcs);
    cr_expect_eq(rcs[0], -EACCES, "uid 65534 opening a root 0600 segment: %d (%s)", rcs[0],
                 rl_strerror(rcs[0]));
    cr_expect_eq(rcs[1], -EACCES, "same with RL_OPEN_NOCREATE: %d (%s)", rcs[1],
                 rl_strerror(rcs[1]));
}

/* ---- two processes creating one new name ----------------------------------------------------- */

struct race {
    atomic_int ready;
    atomic_int go;
    int rc[4];
    int allowed[4];
};

/*
 * 4 children rl_open the same brand-new name at the same instant and take 1 each from a key
 * that cannot refill (fixed time). Afterwards exactly 4 are consumed: a child that initialised
 * a second copy, or re-initialised the segment under another child's feet, loses counts.
 * Repeated on fresh names to give the race a chance.
 */
Test(segment, concurrent_create_of_new_name)
{
    enum { ROUNDS = 25, KIDS = 4 };
    struct race *rc =
        mmap(NULL, sizeof *rc, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(rc, MAP_FAILED);
    const rl_limit l = mk_limit(RL_TOKEN_BUCKET, 1000, 1000 * MS_DAY, 0);
    for (int round = 0; round < ROUNDS; round++) {
        const char *name = test_track_new();
        memset(rc, 0, sizeof *rc);
        pid_t pids[KIDS];
        for (int k = 0; k < KIDS; k++) {
            pids[k] = fork();
            cr_assert_geq(pids[k], 0);
            if (pids[k] == 0) {
                atomic_fetch_add(&rc->ready, 1);
                while (!atomic_load(&rc->go))
                    ;
                rl_t *h = NULL;
                rc->rc[k] = open_opts(&h, name, 1024, 0, 0);
                if (rc->rc[k] == 0) {
                    rl_result r;
                    rc->rc[k] = rl_acquire_at(h, "shared", 6, &l, 1, T0, &r);
                    rc->allowed[k] = r.allowed;
                }
                rl_close(&h);
                _exit(0);
            }
        }
        while (atomic_load(&rc->ready) < KIDS)
            usleep(100);
        atomic_store(&rc->go, 1);
        for (int k = 0; k < KIDS; k++) {
            int status;
            cr_assert_eq(waitpid(pids[k], &status, 0), pids[k]);
            cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "round %d child %d died: status %d", round, k, status);
            cr_expect_eq(rc->rc[k], 0, "round %d child %d: %d (%s)", round, k, rc->rc[k],
                         rl_strerror(rc->rc[k]));
            cr_expect(rc->allowed[k], "round %d child %d denied", round, k);
        }
        rl_t *h = NULL;
        cr_assert_eq(open_opts(&h, name, 0, 0, RL_OPEN_NOCREATE), 0);
        rl_result r = acq_at(h, "shared", &l, 0, T0);
        cr_expect_eq(r.limit - r.remaining, KIDS, "round %d: %" PRIu64 " consumed, expected 4",
                     round, r.limit - r.remaining);
        rl_segment_info info = info_of(h);
        bool by_child = false;
        for (int k = 0; k < KIDS; k++)
            by_child |= info.creator_pid == pids[k];
        cr_expect(by_child, "round %d: creator_pid %d is none of the children", round,
                  (int)info.creator_pid);
        cr_expect_eq(info.slots_in_use, 1);
        cr_expect_eq(rl_check_segment(h, NULL, NULL), 0);
        rl_close(&h);
        cr_expect_eq(rl_unlink(name), 0);
    }
    munmap(rc, sizeof *rc);
}

/* ---- inspection ------------------------------------------------------------------------------ */

struct seen {
    int n;
    int stop_at;
    char keys[8][32];
    uint64_t remaining[8];
    uint64_t requests[8];
};

static int collect(const rl_key_view *kv, void *arg)
{
    struct seen *s = arg;
    if (s->n < 8) {
        snprintf(s->keys[s->n], sizeof s->keys[0], "%s", kv->key);
        s->remaining[s->n] = kv->state.remaining;
        s->requests[s->n] = kv->limit.requests;
    }
    s->n++;
    return s->n == s->stop_at ? 42 : 0;
}

Test(segment, foreach_key)
{
    rl_limit l = mk_limit(RL_FIXED_WINDOW, 10, 1000, 0);
    const char *keys[] = {"alpha", "beta", "gamma"};
    for (int i = 0; i < 3; i++)
        cr_assert(acq_at(g_rl, keys[i], &l, (uint64_t)i + 1, at_ms(0)).allowed);
    struct seen s;
    memset(&s, 0, sizeof s);
    cr_expect_eq(rl_foreach_key(g_rl, at_ms(0), collect, &s), 0);
    cr_assert_eq(s.n, 3, "%d keys seen", s.n);
    for (int i = 0; i < 3; i++) {
        int found = -1;
        for (int j = 0; j < 3; j++)
            if (strcmp(s.keys[j], keys[i]) == 0)
                found = j;
        cr_expect_geq(found, 0, "%s not listed", keys[i]);
        if (found >= 0) {
            cr_expect_eq(s.remaining[found], 10 - (uint64_t)i - 1, "%s remaining", keys[i]);
            cr_expect_eq(s.requests[found], 10);
        }
    }
    /* A later time: the window rolled, the view shows the peek at that time. */
    memset(&s, 0, sizeof s);
    cr_expect_eq(rl_foreach_key(g_rl, at_ms(1000), collect, &s), 0);
    for (int j = 0; j < s.n && j < 8; j++)
        cr_expect_eq(s.remaining[j], 10, "%s at the next window", s.keys[j]);
    /* Early stop returns the callback's value. */
    memset(&s, 0, sizeof s);
    s.stop_at = 2;
    cr_expect_eq(rl_foreach_key(g_rl, at_ms(0), collect, &s), 42);
    cr_expect_eq(s.n, 2);
}

Test(segment, clocks)
{
    uint64_t prev = rl_clock_ns(g_rl);
    for (int i = 0; i < 10000; i++) {
        uint64_t now = rl_clock_ns(g_rl);
        cr_assert_geq(now, prev, "segment clock went back by %" PRIu64 " ns", prev - now);
        prev = now;
    }
    uint64_t rt = realtime_ns();
    uint64_t c = rl_clock_ns(g_rl), n = rl_now_ns();
    cr_expect(c + 5 * NS_S > rt && c < rt + 5 * NS_S,
              "segment clock %" PRIu64 " is not near the epoch time %" PRIu64, c, rt);
    cr_expect(n + 5 * NS_S > rt && n < rt + 5 * NS_S, "rl_now_ns %" PRIu64, n);
    /* rl_acquire uses that clock: a fixed window's reset matches rl_clock_ns within 1 s. */
    rl_limit l = mk_limit(RL_FIXED_WINDOW, 10, 60000, 0);
    rl_result r;
    uint64_t before = rl_clock_ns(g_rl);
    cr_assert_eq(rl_acquire(g_rl, "real", 4, &l, 1, &r), 0);
    uint64_t to_end_ms = (60 * NS_S - before % (60 * NS_S)) / NS_MS;
    cr_expect(r.allowed && r.remaining == 9);
    cr_expect(r.reset_after_ms <= to_end_ms + 1 && r.reset_after_ms + 1000 >= to_end_ms,
              "reset %" PRIu64 " ms, window ends in %" PRIu64 " ms", r.reset_after_ms, to_end_ms);
}

/* The slot keeps a key's first 24 bytes, zero-padded (the table builds them in registers from
 * overlapping loads): rl_foreach_key shows exactly those, for every length and byte position. */
struct prefix_seen {
    char key[64];
    size_t keylen;
    int n;
};

static int one_key(const rl_key_view *kv, void *arg)
{
    struct prefix_seen *s = arg;
    snprintf(s->key, sizeof s->key, "%s", kv->key);
    s->keylen = kv->keylen;
    s->n++;
    return 0;
}

Test(segment, key_prefix_every_length)
{
    rl_limit l = mk_limit(RL_FIXED_WINDOW, 10, 1000, 0);
    for (size_t len = 1; len <= 30; len++) {
        char key[31];
        for (size_t i = 0; i < len; i++)
            key[i] = (char)('a' + (i * 7 + len) % 26); /* every position differs from its
                                                           neighbours */
        key[len] = '\0';
        cr_assert(acq_at(g_rl, key, &l, 1, at_ms(0)).allowed, "len %zu", len);
        struct prefix_seen s;
        memset(&s, 0, sizeof s);
        cr_assert_eq(rl_foreach_key(g_rl, at_ms(0), one_key, &s), 0);
        cr_assert_eq(s.n, 1, "len %zu: %d keys listed", len, s.n);
        cr_expect_eq(s.keylen, len);
        char want[25];
        size_t n = len < 24 ? len : 24;
        memcpy(want, key, n);
        want[n] = '\0';
        cr_expect_str_eq(s.key, want, "len %zu: the listed prefix", len);
        cr_assert_eq(rl_reset(g_rl, key, len, &l), 0);
    }
}
