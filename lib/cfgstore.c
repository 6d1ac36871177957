/*
 * The rule set in the segment: its canonical YAML text, double-buffered, versioned, checksummed,
 * so that every attached process, the sync leader and rlctl see the same rules.
 *
 * Theory of operation:
 *  - Writers (rl_load_config, rl_configure_endpoint, rlctl) are rare and serialised by a writer
 *    word `cfg_writer` holding the writer's pid: CAS 0 -> pid to enter, store 0 to leave. A
 *    writer that died holding it is detected (kill(pid, 0) fails with ESRCH) and replaced by CAS;
 *    a live writer is waited for at most ~2 s. Readers never take it.
 *  - A writer fills the inactive buffer (text, len, check = XXH3(text) seeded with the new
 *    generation, gen), then stores cfg_active (release) and cfg_gen (release).
 *  - A reader loads cfg_gen (acquire, pairs with the writer's release store of cfg_gen: the
 *    buffer it names is complete), then cfg_active, then copies that buffer and verifies gen and
 *    check. A later writer may be overwriting that very buffer (two publications while we read):
 *    the check fails and the reader starts again. Every buffer word is an atomic read and written
 *    relaxed, so a torn read is detected, never undefined behaviour.
 *  - A writer killed half-way leaves the active buffer untouched (it only wrote the inactive
 *    one) and its pid in cfg_writer, which the next writer replaces.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "cfgstore.h"
#include "internal.h"

#define WRITER_WAIT_MS 2000
#define READ_TRIES     64

static bool writer_alive(uint32_t pid)
{
    return pid != 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

int rl__cfg_lock(struct rl *rl)
{
    uint32_t me = (uint32_t)getpid();
    for (int waited = 0;; waited++) {
        /* acquire: pairs with the release store in rl__cfg_unlock(): the previous writer's
         * buffer writes happen before ours. */
        uint32_t cur = atomic_load_explicit(&rl->hdr->cfg_writer, memory_order_acquire);
        if (cur == 0 || cur == me || !writer_alive(cur)) {
            if (atomic_compare_exchange_strong_explicit(&rl->hdr->cfg_writer, &cur, me,
                                                        memory_order_acquire, memory_order_relaxed))
                return 0;
            continue;
        }
        if (waited >= WRITER_WAIT_MS)
            return rl__err(-EAGAIN,
                           "segment %s: process %u has been writing the rule set for more than "
                           "%d ms; try again (or stop it if it is stuck)",
                           rl->name, cur, WRITER_WAIT_MS);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

void rl__cfg_unlock(struct rl *rl)
{
    /* release: pairs with the acquire in rl__cfg_lock(). */
    atomic_store_explicit(&rl->hdr->cfg_writer, 0, memory_order_release);
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
    /* relaxed: we hold the writer word, so these only change under us if we change them. */
    uint32_t active = atomic_load_explicit(&rl->hdr->cfg_active, memory_order_relaxed);
    uint64_t gen = atomic_load_explicit(&rl->hdr->cfg_gen, memory_order_relaxed) + 1;
    uint32_t b = active ^ 1u;
    struct rl_cfg_buf *buf = &rl->cfg_bufs[b];
    for (size_t w = 0; w * 8 < len; w++) {
        uint64_t word = 0;
        memcpy(&word, text + w * 8, len - w * 8 < 8 ? len - w * 8 : 8);
        /* relaxed: published by the release stores of cfg_active / cfg_gen below. */
        atomic_store_explicit(&buf->text[w], word, memory_order_relaxed);
    }
    atomic_store_explicit(&buf->len, len, memory_order_relaxed);
    atomic_store_explicit(&buf->check, text_check(text, len, gen), memory_order_relaxed);
    atomic_store_explicit(&buf->gen, gen, memory_order_relaxed);
    /* release: the buffer above is complete before either word names it; pairs with the
     * acquire loads in rl__cfg_read(). */
    atomic_store_explicit(&rl->hdr->cfg_active, b, memory_order_release);
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
        uint32_t a = atomic_load_explicit(&rl->hdr->cfg_active, memory_order_acquire) & 1u;
        struct rl_cfg_buf *buf = &rl->cfg_bufs[a];
        uint64_t bgen = atomic_load_explicit(&buf->gen, memory_order_relaxed);
        uint64_t n = atomic_load_explicit(&buf->len, memory_order_relaxed);
        uint64_t check = atomic_load_explicit(&buf->check, memory_order_relaxed);
        if (bgen != gen || n > RL_CFG_MAX)
            continue; /* a writer is between buffers: look again */
        for (size_t w = 0; w * 8 < n; w++) {
            uint64_t word = atomic_load_explicit(&buf->text[w], memory_order_relaxed);
            memcpy(out + w * 8, &word, n - w * 8 < 8 ? n - w * 8 : 8);
        }
        /* acquire fence: the text loads above are ordered before the re-check of gen below, so
         * a writer that started overwriting this buffer is seen (pairs with its release). */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&buf->gen, memory_order_relaxed) != gen ||
            text_check(out, n, gen) != check)
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
