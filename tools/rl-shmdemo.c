/*
 * rl-shmdemo: several processes share one rate limiter through one shared-memory segment.
 *
 * The parent creates a private segment "/rl-demo-<pid>", forks worker processes that each fire
 * paced requests for three clients against one token bucket (10 per second, burst 15), and
 * counts allowed and denied requests per client in a shared anonymous mapping. However many
 * workers there are, each client is held to the bucket's ceiling: burst + rate * seconds. The
 * parent prints the table and the segment's counters, unlinks the segment and exits 0, or 1
 * when a ceiling was exceeded (2 on any error).
 *
 *   rl-shmdemo [--seconds N] [--workers N]
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rl/rl.h>
#include "support.h" /* the clock, signals, arguments */

#define DEMO_RATE         10u  /* tokens per second */
#define DEMO_BURST        15u  /* bucket capacity */
#define DEMO_PACE_PER_SEC 200u /* requests per second per worker */
#define DEMO_MAX_WORKERS  64u
#define DEMO_MAX_SECONDS  3600u

static const char *const clients[] = {"alice", "bob", "203.0.113.7"};
#define NCLIENTS (sizeof clients / sizeof clients[0])

/* Lives in a MAP_SHARED | MAP_ANONYMOUS mapping: every worker adds to the same counters. */
struct tally {
    _Atomic uint64_t allowed[NCLIENTS];
    _Atomic uint64_t denied[NCLIENTS];
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void report_rl_error(const char *what, int rc)
{
    /* Copy the thread's detailed message first: it is valid until the next rl call. */
    char detail[512];
    snprintf(detail, sizeof detail, "%s", rl_errmsg());
    fprintf(stderr, "rl-shmdemo: %s: %s%s%s\n", what, rl_strerror(rc), detail[0] ? ": " : "",
            detail);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rl-shmdemo [--seconds N] [--workers N]\n"
            "  Forks N worker processes (default 4) that share one token bucket per client\n"
            "  (%u/s, burst %u) through a shared-memory segment for N seconds (default 2).\n",
            DEMO_RATE, DEMO_BURST);
}

/* One worker: round-robin over the clients at DEMO_PACE_PER_SEC until the deadline. */
static int run_worker(rl_t *rl, const rl_limit *lim, struct tally *t, uint64_t deadline_ns,
                      unsigned id)
{
    const struct timespec pace = {0, (long)(1000000000u / DEMO_PACE_PER_SEC)};
    size_t c = id % NCLIENTS;
    while (!stop_requested && mono_ns() < deadline_ns) {
        rl_result res;
        int rc = rl_acquire(rl, clients[c], strlen(clients[c]), lim, 1, &res);
        if (rc < 0) {
            report_rl_error("rl_acquire", rc);
            return 2;
        }
        if (res.allowed) {
            atomic_fetch_add_explicit(&t->allowed[c], 1, memory_order_relaxed);
        } else {
            atomic_fetch_add_explicit(&t->denied[c], 1, memory_order_relaxed);
        }
        c = (c + 1) % NCLIENTS;
        nanosleep(&pace, NULL);
    }
    return 0;
}

int main(int argc, char **argv)
{
    unsigned seconds = 2, workers = 4;
    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--seconds") == 0) {
            if (parse_uint_arg("rl-shmdemo", "--seconds", next, 1, DEMO_MAX_SECONDS, &seconds) < 0)
                return 2;
            i++;
        } else if (strcmp(argv[i], "--workers") == 0) {
            if (parse_uint_arg("rl-shmdemo", "--workers", next, 1, DEMO_MAX_WORKERS, &workers) < 0)
                return 2;
            i++;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "rl-shmdemo: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    /* Ctrl-C reaches the parent and the workers alike: all stop, and the parent cleans up. */
    catch_signals(on_signal, SIGINT, SIGTERM, 0);

    char name[64];
    snprintf(name, sizeof name, "/rl-demo-%ld", (long)getpid());

    struct tally *t =
        mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) {
        perror("rl-shmdemo: mmap");
        return 2;
    }
    for (size_t c = 0; c < NCLIENTS; c++) {
        atomic_init(&t->allowed[c], 0);
        atomic_init(&t->denied[c], 0);
    }

    rl_options o;
    rl_options_init(&o);
    o.shm_name = name;
    o.capacity = 1024;
    rl_t *rl = NULL;
    int rc = rl_open(&rl, &o);
    if (rc < 0) {
        report_rl_error("rl_open", rc);
        munmap(t, sizeof *t);
        return 2;
    }

    rl_limit lim;
    memset(&lim, 0, sizeof lim);
    lim.algorithm = RL_TOKEN_BUCKET;
    lim.requests = DEMO_RATE;
    lim.window_ms = 1000;
    lim.burst = DEMO_BURST;

    printf("segment %s: %u workers x %u requests/s for %u s, clients share a token bucket of "
           "%u/s, burst %u\n",
           name, workers, DEMO_PACE_PER_SEC, seconds, DEMO_RATE, DEMO_BURST);
    fflush(stdout);

    /* Every acquire happens in [start, deadline): a key can take at most burst + rate*seconds. */
    const uint64_t start_ns = mono_ns();
    const uint64_t deadline_ns = start_ns + (uint64_t)seconds * 1000000000u;
    int status = 0;
    unsigned started = 0;
    for (unsigned w = 0; w < workers; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("rl-shmdemo: fork");
            status = 2;
            stop_requested = 1;
            break;
        }
        if (pid == 0) {
            /* The child uses the inherited handle: the mapping is shared (see rl_open). */
            int wrc = run_worker(rl, &lim, t, deadline_ns, w);
            rl_close(&rl);
            _exit(wrc);
        }
        started++;
    }
    for (unsigned w = 0; w < started; w++) {
        int ws;
        pid_t pid;
        do {
            pid = wait(&ws);
        } while (pid < 0 && errno == EINTR);
        if (pid < 0) {
            perror("rl-shmdemo: wait");
            status = 2;
            break;
        }
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
            fprintf(stderr, "rl-shmdemo: worker %ld failed (status 0x%x)\n", (long)pid,
                    (unsigned)ws);
            status = 2;
        }
    }
    const double elapsed = (double)(mono_ns() - start_ns) / 1e9;
    if (stop_requested && status == 0) {
        fprintf(stderr, "rl-shmdemo: interrupted\n");
        status = 130;
    }

    const uint64_t ceiling = DEMO_BURST + (uint64_t)DEMO_RATE * seconds;
    int exceeded = 0;
    printf("\n%-14s %8s %8s %8s  %s\n", "client", "allowed", "denied", "ceiling", "check");
    for (size_t c = 0; c < NCLIENTS; c++) {
        uint64_t a = atomic_load(&t->allowed[c]);
        uint64_t d = atomic_load(&t->denied[c]);
        int ok = a <= ceiling;
        if (!ok)
            exceeded = 1;
        printf("%-14s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "  %s\n", clients[c], a, d, ceiling,
               ok ? "OK" : "EXCEEDED");
    }
    printf("ceiling = burst %u + %u/s x %u s; the workers ran %.2f s\n", DEMO_BURST, DEMO_RATE,
           seconds, elapsed);

    rl_segment_info info;
    rc = rl_segment_info_get(rl, &info);
    if (rc < 0) {
        report_rl_error("rl_segment_info_get", rc);
        status = 2;
    } else {
        printf("\nsegment: layout v%" PRIu32 ", %" PRIu64 " bytes, capacity %" PRIu64
               " keys in %" PRIu64 " slots, %" PRIu64 " in use, %" PRIu64 "/%" PRIu64
               " limits, max probe %" PRIu64 ", enospc %" PRIu64 ", reclaimed %" PRIu64
               ", creator pid %ld\n",
               info.layout_version, info.segment_bytes, info.capacity, info.slots,
               info.slots_in_use, info.limits_in_use, info.limits_max, info.max_probe, info.enospc,
               info.reclaimed, (long)info.creator_pid);
    }

    rl_close(&rl);
    rc = rl_unlink(name);
    if (rc < 0) {
        report_rl_error("rl_unlink", rc);
        status = 2;
    }
    munmap(t, sizeof *t);

    if (status != 0)
        return status;
    return exceeded ? 1 : 0;
}
