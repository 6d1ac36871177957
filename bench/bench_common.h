/*
 * bench_common.h: what rl-bench and rl-global share, so that both time, summarise and describe
 * their measurements the same way (docs/benchmarks.md):
 *
 *  - the method: a loop of n iterations timed as a whole with CLOCK_MONOTONIC
 *    (bench_acquire_loop() is the rl_acquire one), calibrated (which is the warm-up) to runs of
 *    ~run_ns (bench_calibrate()), then timed several times: the median and the spread
 *    ((max - min) / median) of the runs (bench_median_spread()); latencies timed call by call
 *    are summarised by their mean and p99 (bench_latency());
 *  - the report: plain text or Markdown, the header that describes the machine, its load, the
 *    compiler and the command (bench_print_header()), the private redis-server
 *    (bench_print_server()), durations (fmt_ns());
 *  - small helpers: qsort comparators, sleeping until a signal (the clock, the signal set-up and
 *    argument parsing are support/support.h's, shared with tools/ and tests/).
 *
 * Header-only: every function is static inline, one copy per program. RL_BENCH_CC,
 * RL_BENCH_BUILDTYPE and RL_BENCH_JEMALLOC come from bench/meson.build.
 */
#ifndef RL_BENCH_COMMON_H
#define RL_BENCH_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <rl/rl.h>

#include "support.h" /* mono_ns(), catch_signals(), block_signals(), parse_uint_arg() */

#ifndef RL_BENCH_CC
#ifdef __VERSION__
#define RL_BENCH_CC __VERSION__
#else
#define RL_BENCH_CC "unknown compiler"
#endif
#endif
#ifndef RL_BENCH_BUILDTYPE
#define RL_BENCH_BUILDTYPE "unknown"
#endif
#ifndef RL_BENCH_JEMALLOC
#define RL_BENCH_JEMALLOC 0
#endif

/* ---- small helpers ------------------------------------------------------------------------ */

/* Sleeps up to ns, in steps of at most 20 ms, returning early once *stop is non-zero (a signal
 * handler sets it; the signal also cuts the current step short). */
static inline void bench_sleep_ns(uint64_t ns, const volatile sig_atomic_t *stop)
{
    uint64_t end = mono_ns() + ns;
    for (uint64_t now = mono_ns(); now < end && *stop == 0; now = mono_ns()) {
        uint64_t d = end - now < 20000000u ? end - now : 20000000u;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)d};
        nanosleep(&ts, NULL);
    }
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The STRICT checks a handle answered from its fallback so far (0 when rl_health fails). */
static inline uint64_t strict_fallbacks(rl_t *rl)
{
    rl_health_info h;
    if (rl_health(rl, &h) != 0)
        return 0;
    return h.strict_fallbacks;
}

/* ---- the method --------------------------------------------------------------------------- */

/* n iterations of what a row measures; the elapsed ns of the whole loop. */
typedef uint64_t (*bench_loop_fn)(void *arg, uint64_t n);

/* n calls of rl_acquire(rl, key, lim, cost 1), timed as a whole: the elapsed ns. *allowed and
 * *errors get the counts of this loop; *last_error the last failure's code, when one failed. */
static inline uint64_t bench_acquire_loop(rl_t *rl, const char *key, size_t keylen,
                                          const rl_limit *lim, uint64_t n, uint64_t *allowed_out,
                                          uint64_t *errors_out, int *last_error)
{
    uint64_t allowed = 0, errors = 0;
    int last = 0;
    rl_result r;
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        int rc = rl_acquire(rl, key, keylen, lim, 1, &r);
        if (rc == 0) {
            allowed += r.allowed;
        } else {
            errors++;
            last = rc;
        }
    }
    uint64_t t = mono_ns() - t0;
    *allowed_out = allowed;
    *errors_out = errors;
    if (errors)
        *last_error = last;
    return t;
}

/* The calibration, which is also the warm-up: n doubles (x8 while a run takes less than a
 * sixteenth of it) until one run of fn takes a quarter of run_ns, then is scaled so that a run
 * takes ~run_ns. Stops early (with the n so far, scaled) once *stop is non-zero. */
static inline uint64_t bench_calibrate(bench_loop_fn fn, void *arg, uint64_t run_ns,
                                       const volatile sig_atomic_t *stop)
{
    uint64_t n = 1024, t = 0, warm = run_ns / 4;
    for (;;) {
        t = fn(arg, n);
        if (t >= warm || n >= (1ull << 40) || *stop != 0)
            break;
        n = t < warm / 16 ? n * 8 : n * 2;
    }
    if (t == 0)
        t = 1;
    n = (uint64_t)((double)n * (double)run_ns / (double)t);
    return n ? n : 1;
}

/* The median of the runs v[0..n) (sorted in place); their spread, (max - min) / median in
 * percent, in *spread. */
static inline double bench_median_spread(double *v, size_t n, double *spread)
{
    qsort(v, n, sizeof v[0], cmp_double);
    double median = v[n / 2];
    *spread = (v[n - 1] - v[0]) / median * 100.0;
    return median;
}

/* The mean and the 99th percentile of the latencies v[0..n) (sorted in place); both left as
 * they are when n is 0. */
static inline void bench_latency(uint32_t *v, size_t n, double *mean_ns, double *p99_ns)
{
    if (n == 0)
        return;
    qsort(v, n, sizeof v[0], cmp_u32);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    *mean_ns = sum / (double)n;
    size_t i99 = (size_t)((double)n * 0.99);
    *p99_ns = v[i99 < n ? i99 : n - 1];
}

/* ---- the report --------------------------------------------------------------------------- */

/* The first line of file path that starts with prefix, after its ':' (the whole first line for
 * an empty prefix), without leading blanks; "unknown" when there is none. */
static inline void read_first_line(const char *path, const char *prefix, char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    size_t pl = strlen(prefix);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, prefix, pl) != 0)
            continue;
        char *p = line + pl;
        if (pl > 0) {
            p = strchr(p, ':');
            if (p == NULL)
                break;
            p++;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        p[strcspn(p, "\n")] = '\0';
        snprintf(out, n, "%s", p);
        break;
    }
    fclose(f);
}

/* argv as one line, an argument with blanks, quotes or shell characters in single quotes. */
static inline void command_line(int argc, char **argv, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < argc && used + 1 < n; i++) {
        bool quote = argv[i][0] == '\0' || strpbrk(argv[i], " \t\"'\\$`") != NULL;
        int w = snprintf(out + used, n - used, "%s%s%s%s", i ? " " : "", quote ? "'" : "", argv[i],
                         quote ? "'" : "");
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* The report's first lines, plain or Markdown (a title, then a list): `prog`, librl's version
 * and the date; the command; the machine (CPU model, nproc, kernel, clocksource); `load`, what
 * /proc/loadavg said when the bench started, followed by load_note; the compiler and build. */
static inline void bench_print_header(bool markdown, const char *prog, const char *cmd,
                                      const char *load, const char *load_note)
{
    char model[256], clocksrc[64], date[64];
    struct utsname un;
    read_first_line("/proc/cpuinfo", "model name", model, sizeof model);
    read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", "",
                    clocksrc, sizeof clocksrc);
    if (uname(&un) != 0)
        memset(&un, 0, sizeof un);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
    const char *li = markdown ? "- " : "";
    printf("%s%s, librl %s, %s\n", markdown ? "#### " : "", prog, rl_version(), date);
    if (markdown)
        printf("\n");
    printf("%scommand:  %s%s%s\n", li, markdown ? "`" : "", cmd, markdown ? "`" : "");
    printf("%smachine:  %s, nproc %ld, %s %s, clocksource %s\n", li, model,
           sysconf(_SC_NPROCESSORS_ONLN), un.sysname, un.release, clocksrc);
    printf("%sload:     %s (/proc/loadavg at the start%s)\n", li, load, load_note);
    printf("%scompiler: %s, buildtype %s, jemalloc %s\n", li, RL_BENCH_CC, RL_BENCH_BUILDTYPE,
           RL_BENCH_JEMALLOC ? "linked" : "no");
}

/* The report's line on the redis-server of bench/redis_child.h (li: the list item prefix). */
static inline void bench_print_server(const char *li, const char *version, int port)
{
    printf("%sserver:   redis-server %s, started by the bench on 127.0.0.1:%d (--save '' "
           "--appendonly no), same machine\n",
           li, version, port);
}

/* ns as "850 ns", "12.5 us" or "3.20 ms". */
static inline void fmt_ns(double ns, char *out, size_t n)
{
    if (ns < 1000)
        snprintf(out, n, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(out, n, "%.1f us", ns / 1e3);
    else
        snprintf(out, n, "%.2f ms", ns / 1e6);
}

#endif
