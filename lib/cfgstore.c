/*
 * The rule set in the segment: its canonical YAML text, double-buffered, versioned, checksummed,
 * so that every attached process, the sync leader and rlctl see the same rules.
 *
 * Theory of operation:
 *  - Writers (rl_load_config, rl_configure_endpoint, rlctl) are rare. They are serialised within
 *    a process by a mutex and between processes by an open-file-description lock (fcntl
 *    F_OFD_SETLK) on byte 1 of the segment's file: the kernel releases it when its holder dies,
 *    whatever PID namespace it lives in. A live writer is waited for at most ~2 s (-EAGAIN).
 *  - Generation g lives in buffer g & 1. A writer fills buffer (g+1) & 1 — never the one in
 *    force — with relaxed atomic stores (text, len, check = XXH3(text) seeded with g+1, gen),
 *    then publishes with ONE release store of cfg_gen = g+1. A writer killed at any point
 *    before that store leaves generation g intact and readable.
 *  - A reader loads cfg_gen (acquire, pairs with that release: the buffer it names is
 *    complete), copies buffer gen & 1 and accepts it only if the buffer's gen and checksum
 *    match. A reader slow enough to overlap two later publications (the buffer it reads is
 *    being refilled) sees a mismatch and reads again. Every buffer word is an atomic, so such a
 *    race is detected, never undefined behaviour.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "lib/cfgstore.h"
#include "lib/internal.h"

#define WRITER_WAIT_MS 2000
#define READ_TRIES     64

static pthread_mutex_t g_writers = PTHREAD_MUTEX_INITIALIZER;

static int ofd_lock(int fd, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1};
    return fcntl(fd, F_OFD_SETLK, &fl);
}

int rl__cfg_lock(struct rl *rl)
{
    pthread_mutex_lock(&g_writers);
    for (int waited = 0;; waited++) {
        if (ofd_lock(rl->fd, F_WRLCK) == 0)
            return 0;
        if (errno != EAGAIN && errno != EACCES) {
            int e = errno;
            pthread_mutex_unlock(&g_writers);
            return rl__err(-e, "segment %s: cannot lock it for writing the rule set: %s", rl->name,
                           strerror(e));
        }
        if (waited >= WRITER_WAIT_MS) {
            pthread_mutex_unlock(&g_writers);
            int pid = rl__lock_holder_pid(rl->fd, 1);
            char who[48] = "another process";
            if (pid > 0)
                snprintf(who, sizeof who, "process %d", pid);
            return rl__err(-EAGAIN,
                           "segment %s: %s has been writing the rule set for more than %d ms; "
                           "try again, and if it persists, that process is stuck: stop it",
                           rl->name, who, WRITER_WAIT_MS);
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

void rl__cfg_unlock(struct rl *rl)
{
    ofd_lock(rl->fd, F_UNLCK);
    pthread_mutex_unlock(&g_writers);
}

static uint64_t text_check(const char *text, size_t len, uint64_t gen)
{
    return XXH3_64bits_withSeed(text, len, gen);
}

int rl__cfg_publish_locked(struct rl *rl, const char *text, size_t len, uint64_t *gen_out)
{
    if (len > RL_CFG_MAX)
        return rl__err(-E2BIG,
                       "segment %s: the rule set is %zu bytes as YAML; a segment holds at most "
                       "%u. Use fewer rules, or shorter descriptions",
                       rl->name, len, RL_CFG_MAX);
    /* acquire: pairs with the previous writer's release store of cfg_gen. */
    uint64_t gen = atomic_load_explicit(&rl->hdr->cfg_gen, memory_order_acquire) + 1;
    struct rl_cfg_buf *buf = &rl->cfg_bufs[gen & 1];
    for (size_t w = 0; w * 8 < len; w++) {
        uint64_t word = 0;
        memcpy(&word, text + w * 8, len - w * 8 < 8 ? len - w * 8 : 8);
        /* relaxed: published by the release store of cfg_gen below. */
        atomic_store_explicit(&buf->text[w], word, memory_order_relaxed);
    }
    atomic_store_explicit(&buf->len, len, memory_order_relaxed);
    atomic_store_explicit(&buf->check, text_check(text, len, gen), memory_order_relaxed);
    atomic_store_explicit(&buf->gen, gen, memory_order_relaxed);
    /* release: the buffer above is complete before the generation names it; pairs with the
     * acquire loads of cfg_gen in rl__cfg_read() and rl__cfg_generation(). */
    atomic_store_explicit(&rl->hdr->cfg_gen, gen, memory_order_release);
    if (gen_out)
        *gen_out = gen;
    return 0;
}

uint64_t rl__cfg_generation(const struct rl *rl)
{
    /* acquire: pairs with the release store of cfg_gen in rl__cfg_publish_locked(). */
    return atomic_load_explicit(&rl->hdr->cfg_gen, memory_order_acquire);
}

int rl__cfg_read(struct rl *rl, char **text, size_t *len, uint64_t *gen_out)
{
    char *out = malloc(RL_CFG_MAX + 1);
    if (!out)
        return rl__err(-ENOMEM, "out of memory reading the rule set");
    for (int tries = 0; tries < READ_TRIES; tries++) {
        /* acquire: pairs with the writer's release stores; the named buffer is complete. */
        uint64_t gen = atomic_load_explicit(&rl->hdr->cfg_gen, memory_order_acquire);
        if (gen == 0) {
            free(out);
            return rl__err(-ENOENT, "segment %s has no rule set yet", rl->name);
        }
        struct rl_cfg_buf *buf = &rl->cfg_bufs[gen & 1];
        uint64_t bgen = atomic_load_explicit(&buf->gen, memory_order_relaxed);
        uint64_t n = atomic_load_explicit(&buf->len, memory_order_relaxed);
        uint64_t check = atomic_load_explicit(&buf->check, memory_order_relaxed);
        if (bgen != gen || n > RL_CFG_MAX)
            continue; /* a writer is between buffers: look again */
        for (size_t w = 0; w * 8 < n; w++) {
            uint64_t word = atomic_load_explicit(&buf->text[w], memory_order_relaxed);
            memcpy(out + w * 8, &word, n - w * 8 < 8 ? n - w * 8 : 8);
        }
        /* The checksum is the guard: a writer refilling this buffer while we copied it (two
         * publications overlapped our read) leaves text that does not match `check`. */
        if (text_check(out, n, gen) != check)
            continue;
        out[n] = '\0';
        *text = out;
        *len = n;
        if (gen_out)
            *gen_out = gen;
        return 0;
    }
    free(out);
    return rl__err(-EAGAIN, "segment %s: the rule set kept changing while it was read", rl->name);
}
