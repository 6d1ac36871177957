/*
 * rlctl check [--repair]: the structural check of a segment, its report, and the repair that
 * is refused while another process maps the segment.
 */
#include <errno.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rlctl.h"

struct report_ctx {
    json_t *arr;
    bool print;
};

static void on_report(const char *msg, void *arg)
{
    struct report_ctx *c = arg;
    if (c->arr)
        json_array_append_new(c->arr, json_string(msg));
    if (c->print)
        fprintf(g_out, "  %s\n", msg);
}

/* Other processes that map the segment (its /dev/shm file in /proc/PID/maps), for the message
 * of a refused repair (the library's attach lock decides): writes the pids into out (a list)
 * and returns how many. Processes whose maps we may not read are not listed. */
static int segment_users(const char *shm, char *out, size_t outlen)
{
    char want[300];
    snprintf(want, sizeof want, "/dev/shm%s", shm);
    size_t wl = strlen(want);
    DIR *d = opendir("/proc");
    int n = 0;
    out[0] = '\0';
    if (!d)
        return 0;
    struct dirent *de;
    char path[64], line[4096];
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid())
            continue;
        snprintf(path, sizeof path, "/proc/%ld/maps", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool maps = false;
        while (!maps && fgets(line, sizeof line, f)) {
            char *p = strstr(line, want);
            maps = p && (p[wl] == '\n' || p[wl] == ' ' || p[wl] == '\0');
        }
        fclose(f);
        if (maps) {
            size_t l = strlen(out);
            if (l + 24 < outlen)
                snprintf(out + l, outlen - l, "%s%ld", n ? ", " : "", pid);
            n++;
        }
    }
    closedir(d);
    return n;
}

int cmd_check(rl_t *rl, const struct opts *o)
{
    struct report_ctx c = {.arr = o->json ? json_array() : NULL, .print = !o->json};
    long n = o->repair ? rl_repair_segment(rl, on_report, &c) : rl_check_segment(rl, on_report, &c);
    if (n == -EBUSY) {
        /* The library knows that someone is attached (its lock); /proc says who, if it can. */
        json_decref(c.arr);
        char pids[256];
        int users = segment_users(o->shm, pids, sizeof pids);
        fprintf(stderr,
                "rlctl: check --repair: other processes are attached to %s%s%s%s: stop them "
                "first, or run rlctl check without --repair to only look\n",
                o->shm, users ? " (pid " : "", users ? pids : "", users ? ")" : "");
        return EXIT_FAIL;
    }
    if (n < 0) {
        json_decref(c.arr);
        fail_rl("rl_check_segment", (int)n);
        return EXIT_FAIL;
    }
    /* After a repair, what is left (damaged limit records are reported, not changed). */
    long after = o->repair && n > 0 ? rl_check_segment(rl, NULL, NULL) : n;
    if (o->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "segment", json_string(o->shm));
        json_object_set_new(doc, "sound", json_boolean(n == 0));
        set_u64(doc, "damaged_slots", (uint64_t)n);
        json_object_set_new(doc, "repaired", json_boolean(o->repair && n > 0 && after == 0));
        json_object_set_new(doc, "problems", c.arr);
        int rc = emit_json(doc);
        return rc != 0 ? rc : (after == 0 ? EXIT_OK : EXIT_FAIL);
    }
    if (n == 0) {
        fprintf(g_out, "segment %s: sound\n", o->shm);
        return EXIT_OK;
    }
    if (o->repair) {
        fprintf(g_out,
                "segment %s: %ld problem%s (above); damaged slots were removed (their keys "
                "start afresh): %s\n",
                o->shm, n, n == 1 ? "" : "s",
                after == 0 ? "sound now"
                           : "still damaged (limit records): stop its users and remove it");
        return after == 0 ? EXIT_OK : EXIT_FAIL;
    }
    fprintf(g_out,
            "segment %s: %ld damaged slot%s (above); stop its users, then rlctl check --repair "
            "(or remove the segment to start fresh)\n",
            o->shm, n, n == 1 ? "" : "s");
    return EXIT_FAIL;
}
