/*
 * What every rlctl command shares for its output: the report stream (g_out), rl errors as
 * messages, JSON emission (jansson), time, window, algorithm and scope formatting, and the
 * SIGINT/SIGTERM flag of the long-running commands.
 */
#include <signal.h>
#include <string.h>
#include <time.h>

#include "rlctl.h"

/* Where commands write their report: stdout, or a memory stream while `serve` answers a request
 * (one request at a time, on the server's single thread). */
FILE *g_out;

volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* SIGINT and SIGTERM end the long-running commands (tail -f, top, serve) cleanly. */
void catch_stop_signals(void)
{
    catch_signals(on_signal, SIGINT, SIGTERM, 0);
}

void fail_rl(const char *what, int rc)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s", rl_errmsg());
    fprintf(stderr, "rlctl: %s: %s%s%s\n", what, rl_strerror(rc), detail[0] ? ": " : "", detail);
}

/* Prints and frees a JSON document; 0, or EXIT_FAIL when it could not be built or written. */
int emit_json(json_t *doc)
{
    if (!doc) {
        fputs("rlctl: out of memory building JSON\n", stderr);
        return EXIT_FAIL;
    }
    int rc = json_dumpf(doc, g_out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (rc != 0 || fputc('\n', g_out) == EOF) {
        fputs("rlctl: cannot write JSON to stdout\n", stderr);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static json_t *jint(uint64_t v)
{
    return json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v));
}

void set_u64(json_t *obj, const char *key, uint64_t v)
{
    json_object_set_new(obj, key, jint(v));
}

void fmt_time(uint64_t ns, char *buf, size_t len)
{
    time_t s = (time_t)(ns / 1000000000u);
    struct tm tm;
    if (!gmtime_r(&s, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(buf, len, "?");
        return;
    }
    size_t n = strlen(buf);
    snprintf(buf + n, len - n, ".%03uZ", (unsigned)(ns / 1000000u % 1000u));
}

/* "1m", "300s", "1500ms": a window as the rule files write it. */
void fmt_window(uint64_t ms, char *buf, size_t len)
{
    if (ms % 3600000u == 0)
        snprintf(buf, len, "%" PRIu64 "h", ms / 3600000u);
    else if (ms % 60000u == 0)
        snprintf(buf, len, "%" PRIu64 "m", ms / 60000u);
    else if (ms % 1000u == 0)
        snprintf(buf, len, "%" PRIu64 "s", ms / 1000u);
    else
        snprintf(buf, len, "%" PRIu64 "ms", ms);
}

const char *alg_name(rl_algorithm a)
{
    const char *s = rl_algorithm_name(a);
    return s ? s : "unknown";
}

const char *scope_name(rl_scope s)
{
    const char *n = rl_scope_name(s);
    return n ? n : "unknown";
}
