/*
 * Creating and attaching segments.
 *
 * Theory of operation (creation race and crash recovery):
 *  1. Everybody opens the name with O_CREAT; whoever created the file has no special right.
 *  2. The file is grown to at least one page with posix_fallocate (never shrinks, idempotent),
 *     and the header page is mapped.
 *  3. One process becomes the initialiser by taking an open-file-description lock (fcntl
 *     F_OFD_SETLK) on the file's first byte, and re-checks that magic is still 0. The kernel
 *     releases the lock when its holder dies or closes the file, in whatever PID namespace it
 *     lives, so a creator that died half-way is replaced by the next opener, and a failed
 *     initialiser (e.g. /dev/shm full) leaves nothing behind. A live one is waited for ~5 s.
 *  4. The initialiser reserves the whole segment (posix_fallocate: a full /dev/shm fails here
 *     with ENOSPC, not later with SIGBUS), maps it, writes every static header field, and
 *     publishes RL_MAGIC with a release store. Everybody else polls magic (acquire, pairs with
 *     that release) for a bounded time, then validates every static field before trusting any.
 *  Since slots are only used after magic is published, a re-initialisation after a crash never
 *  loses state that anybody relied on.
 *  5. Every attached handle holds a shared OFD lock on byte 2 of the file for as long as it is
 *     open (the kernel drops it when the process dies): rl_repair_segment() upgrades its own to
 *     an exclusive lock, which succeeds only when no other handle, in any process, is attached.
 */
#include <limits.h>
#include <linux/futex.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "lib/clock.h"
#include "lib/compiler.h"
#include "lib/error.h"
#include "lib/handle.h"
#include "lib/segment.h"

#define WAIT_TOTAL_MS 5000
#define MAX_CAPACITY  (1ULL << 32)
/* An attach-only opener that finds magic 0 and nobody holding the initialisation lock for this
 * long is looking at a zero-filled file, not at a creator at work (a creator takes the lock
 * microseconds after creating the file; 500 ms leaves room for a preempted one). */
#define ABANDONED_MS 500

/* Whether a lock line of /proc/locks or of an fdinfo file ("[lock:\t]N: OFDLCK ADVISORY WRITE
 * PID MAJ:MIN:INODE START END") covers `byte` of the file (dev, ino); its pid into *pid. */
static bool lock_line_covers(const char *line, dev_t dev, ino_t ino, off_t byte, int *pid)
{
    const char *p = strchr(line, ':');
    if (strncmp(line, "lock:", 5) == 0)
        p = strchr(line + 5, ':');
    if (!p)
        return false;
    char kind[16], adv[16], rw[16], end[32];
    unsigned maj, min;
    unsigned long long i, start;
    if (sscanf(p + 1, " %15s %15s %15s %d %x:%x:%llu %llu %31s", kind, adv, rw, pid, &maj, &min, &i,
               &start, end) != 9)
        return false;
    return i == (unsigned long long)ino && maj == major(dev) && min == minor(dev) &&
           start <= (unsigned long long)byte &&
           (strcmp(end, "EOF") == 0 || strtoull(end, NULL, 10) >= (unsigned long long)byte);
}

int rl__lock_holder_pid(int fd, off_t byte)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return 0;
    char line[256];
    int pid = 0, found = 0;
    /* /proc/locks names the process that took a lock, on kernels that fill in the pid of OFD
     * locks; others print -1 there. */
    FILE *f = fopen("/proc/locks", "re");
    if (f) {
        while (!found && fgets(line, sizeof line, f))
            if (lock_line_covers(line, st.st_dev, st.st_ino, byte, &pid) && pid > 0)
                found = pid;
        fclose(f);
    }
    if (found)
        return found;
    /* Else the processes whose open files show the lock in /proc/PID/fdinfo/FD (those this
     * user may read): an error path only, after a wait of seconds. */
    DIR *procs = opendir("/proc");
    if (!procs)
        return 0;
    struct dirent *pe;
    while (!found && (pe = readdir(procs))) {
        int p = atoi(pe->d_name);
        if (p <= 0)
            continue;
        char dir[64];
        snprintf(dir, sizeof dir, "/proc/%d/fdinfo", p);
        DIR *fds = opendir(dir);
        if (!fds)
            continue;
        struct dirent *fe;
        while (!found && (fe = readdir(fds))) {
            if (fe->d_name[0] == '.')
                continue;
            char path[128];
            snprintf(path, sizeof path, "%s/%.32s", dir, fe->d_name);
            FILE *fi = fopen(path, "re");
            if (!fi)
                continue;
            while (!found && fgets(line, sizeof line, fi))
                if (strncmp(line, "lock:", 5) == 0 &&
                    lock_line_covers(line, st.st_dev, st.st_ino, byte, &pid) &&
                    strstr(line, "WRITE"))
                    found = p;
            fclose(fi);
        }
        closedir(fds);
    }
    closedir(procs);
    return found;
}

/* true when some process holds a lock on byte `byte` of fd that conflicts with a write lock. */
static bool byte_locked(int fd, off_t byte)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return true; /* cannot tell: keep waiting as before */
    return fl.l_type != F_UNLCK;
}

int rl__validate_name(const char *name)
{
    if (!name)
        return rl__err(-EINVAL, "segment name is NULL");
    size_t n = strlen(name);
    if (n < 2 || name[0] != '/')
        return rl__err(-EINVAL,
                       "segment name \"%.64s\" must be \"/\" followed by 1..200 of "
                       "[A-Za-z0-9._-], e.g. \"/rl-default\"",
                       name);
    if (n > 201)
        return rl__err(-EINVAL, "segment name is %zu bytes long; at most 201 are allowed", n);
    for (size_t i = 1; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return rl__err(-EINVAL, "segment name \"%.64s\": byte %zu is not one of [A-Za-z0-9._-]",
                           name, i);
    }
    if (strcmp(name, "/.") == 0 || strcmp(name, "/..") == 0)
        return rl__err(-EINVAL, "segment name \"%s\" is reserved", name);
    return 0;
}

uint64_t rl__slots_for(uint64_t capacity)
{
    /* 12.5 % headroom keeps linear probing short at full capacity (load <= 0.89). */
    return capacity + capacity / 8 + 1;
}

uint64_t rl__limits_for(uint64_t capacity)
{
    uint64_t n = capacity / 64;
    if (n < 64)
        n = 64;
    if (n > 4096)
        n = 4096;
    return n;
}

struct rl_geometry rl__geometry_for(uint64_t capacity)
{
    struct rl_geometry g;
    g.nslots = rl__slots_for(capacity);
    g.nlimits = rl__limits_for(capacity);
    g.limits_off = RL_HEADER_SIZE;
    g.cfg_off = g.limits_off + g.nlimits * sizeof(struct rl_limit_rec);
    g.audit_off = g.cfg_off + 2 * sizeof(struct rl_cfg_buf);
    g.stats_off = g.audit_off + RL_AUDIT_RECORDS * sizeof(struct rl_audit_rec);
    g.ep_dir_off = g.stats_off + RL_STATS_STRIPES * sizeof(struct rl_stats_stripe);
    g.ep_ctr_off = g.ep_dir_off + RL_EP_MAX * sizeof(struct rl_ep_rec);
    g.slots_off = g.ep_ctr_off + RL_EP_STRIPES * RL_EP_MAX * sizeof(struct rl_ep_ctr);
    g.total = g.slots_off + g.nslots * sizeof(struct rl_slot);
    return g;
}

static uint64_t header_check(const struct rl_shm_header *h)
{
    unsigned char buf[104 - 8 + RL_SECRET_SIZE];
    memcpy(buf, (const unsigned char *)h + 8, 104 - 8);
    memcpy(buf + 104 - 8, h->secret, RL_SECRET_SIZE);
    return XXH3_64bits(buf, sizeof buf);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int sys_err(int e, const char *what, const char *name)
{
    switch (e) {
    case EACCES:
        return rl__err(-EACCES,
                       "segment %s: %s: permission denied (the segment's mode or owner does "
                       "not let this user in; see rl_options.mode)",
                       name, what);
    case ENOSPC:
        return rl__err(-ENOSPC, "segment %s: %s: /dev/shm is full (free space or lower capacity)",
                       name, what);
    case ENOMEM:
        return rl__err(-ENOMEM, "segment %s: %s: out of memory", name, what);
    default:
        return rl__err(-e, "segment %s: %s: %s", name, what, strerror(e));
    }
}

/* Initialise the segment behind fd; we hold the initialiser lock. */
static int initialise(struct rl *rl, int fd, const rl_options *o, struct rl_shm_header *page)
{
    struct rl_geometry g = rl__geometry_for(o->capacity);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return sys_err(errno, "fstat", rl->name);
    if ((uint64_t)st.st_size > g.total && ftruncate(fd, (off_t)g.total) < 0)
        return sys_err(errno, "ftruncate", rl->name);
    int e = posix_fallocate(fd, 0, (off_t)g.total);
    if (e)
        return sys_err(e, "reserving memory (posix_fallocate)", rl->name);
    void *m = mmap(NULL, g.total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return sys_err(errno, "mmap", rl->name);
    struct rl_shm_header *h = m;
    /* A previous initialiser may have died half-way: start from zero everywhere. */
    memset((unsigned char *)m + RL_HEADER_SIZE, 0, g.total - RL_HEADER_SIZE);
    memset((unsigned char *)h + 8, 0, offsetof(struct rl_shm_header, init_owner) - 8);
    atomic_store_explicit(&h->used, 0, memory_order_relaxed);
    atomic_store_explicit(&h->max_probe, 0, memory_order_relaxed);
    atomic_store_explicit(&h->enospc, 0, memory_order_relaxed);
    atomic_store_explicit(&h->reclaimed, 0, memory_order_relaxed);
    atomic_store_explicit(&h->limits_used, 0, memory_order_relaxed);
    atomic_store_explicit(&h->cfg_gen, 0, memory_order_relaxed);
    atomic_store_explicit(&h->audit_head, 0, memory_order_relaxed);
    atomic_store_explicit(&h->audit_dropped, 0, memory_order_relaxed);
    h->layout_version = RL_LAYOUT_VERSION;
    h->header_size = RL_HEADER_SIZE;
    h->slot_size = sizeof(struct rl_slot);
    h->limit_size = sizeof(struct rl_limit_rec);
    h->capacity = o->capacity;
    h->nslots = g.nslots;
    h->nlimits = g.nlimits;
    h->limits_off = g.limits_off;
    h->slots_off = g.slots_off;
    h->total_size = g.total;
    struct timespec rt, mo;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mo);
    h->birth_ns = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
    h->clock_offset_ns =
        (int64_t)h->birth_ns - ((int64_t)mo.tv_sec * 1000000000 + (int64_t)mo.tv_nsec);
    h->time_base_ns = RL_TIME_BASE_NS;
    h->creator_pid = (uint32_t)getpid();
    h->creator_uid = (uint32_t)geteuid();
    size_t got = 0;
    while (got < sizeof h->secret) {
        ssize_t r = getrandom(h->secret + got, sizeof h->secret - got, 0);
        if (r < 0 && errno != EINTR) {
            munmap(m, g.total);
            return sys_err(errno, "getrandom", rl->name);
        }
        if (r > 0)
            got += (size_t)r;
    }
    h->static_check = header_check(h);
    /* release: publishes every field above; pairs with the acquire load of magic in
     * rl__segment_open() of every other process. */
    atomic_store_explicit(&h->magic, RL_MAGIC, memory_order_release);
    (void)page;
    rl->base = m;
    rl->map_size = g.total;
    rl->geo = g;
    rl->capacity = h->capacity;
    rl->clock_offset_ns = h->clock_offset_ns;
    rl->static_check = h->static_check;
    return 0;
}

/* Validates a private copy of a published header; on success maps the whole segment into rl
 * and keeps the validated geometry there (rl->geo). */
static int attach(struct rl *rl, int fd, const struct rl_shm_header *shared, uint64_t file_size)
{
    struct rl_shm_header hc;
    memcpy(&hc, shared, offsetof(struct rl_shm_header, init_owner));
    const struct rl_shm_header *h = &hc;
    if (h->layout_version != RL_LAYOUT_VERSION)
        return rl__err(-EPROTO,
                       "segment %s has layout version %u; this library (rl %s) reads version "
                       "%u. Stop the processes of the other version and remove the segment "
                       "(rlctl or rl_unlink), or run matching versions (docs/design.md, "
                       "\"Upgrades\")",
                       rl->name, h->layout_version, RL_VERSION_STRING, RL_LAYOUT_VERSION);
    if (h->header_size != RL_HEADER_SIZE || h->slot_size != sizeof(struct rl_slot) ||
        h->limit_size != sizeof(struct rl_limit_rec) || h->time_base_ns != RL_TIME_BASE_NS)
        return rl__err(-EBADMSG, "segment %s: header sizes do not match layout version %u",
                       rl->name, RL_LAYOUT_VERSION);
    if (h->capacity == 0 || h->capacity > MAX_CAPACITY)
        return rl__err(-EBADMSG, "segment %s: capacity %llu is out of range (corrupted header)",
                       rl->name, (unsigned long long)h->capacity);
    struct rl_geometry g = rl__geometry_for(h->capacity);
    if (h->nslots != g.nslots || h->nlimits != g.nlimits || h->limits_off != g.limits_off ||
        h->slots_off != g.slots_off || h->total_size != g.total)
        return rl__err(-EBADMSG, "segment %s: geometry does not match its capacity (corrupted)",
                       rl->name);
    if (header_check(h) != h->static_check)
        return rl__err(-EBADMSG,
                       "segment %s: header checksum mismatch (corrupted); remove it "
                       "with rl_unlink once no process uses it",
                       rl->name);
    if (file_size < g.total)
        return rl__err(-EBADMSG,
                       "segment %s is truncated: %llu bytes, its header says %llu; remove it "
                       "with rl_unlink once no process uses it",
                       rl->name, (unsigned long long)file_size, (unsigned long long)g.total);
    int64_t off = h->clock_offset_ns;
    if (off < -(INT64_C(1) << 62) || off > (INT64_C(1) << 62))
        return rl__err(-EBADMSG, "segment %s: clock offset out of range (corrupted)", rl->name);
    void *m = mmap(NULL, g.total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return sys_err(errno, "mmap", rl->name);
    rl->base = m;
    rl->map_size = g.total;
    rl->geo = g;
    rl->capacity = h->capacity;
    rl->clock_offset_ns = off;
    rl->static_check = h->static_check;
    return 0;
}

static int open_fd(struct rl *rl, const rl_options *o, int *fd_out)
{
    int fd;
    if (o->flags & RL_OPEN_NOCREATE) {
        fd = shm_open(rl->name, O_RDWR | O_CLOEXEC, 0);
        if (fd < 0 && errno == ENOENT)
            return rl__err(-ENOENT,
                           "no segment %s (is a worker running? choose another with --shm NAME "
                           "or RL_SHM)",
                           rl->name);
    } else {
        fd = shm_open(rl->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, o->mode);
        if (fd >= 0) {
            /* The umask must not apply: the operator chose the mode. */
            if (fchmod(fd, o->mode) < 0) {
                int e = errno;
                close(fd);
                return sys_err(e, "fchmod", rl->name);
            }
            if (o->mode & 0002) /* rl_open refuses this without RL_OPEN_WORLD_WRITABLE */
                rl__log(RL_LOG_WARN,
                        "segment %s: created world-writable (mode %o, RL_OPEN_WORLD_WRITABLE): "
                        "every local user can rewrite its rules, bypass list and counters",
                        rl->name, (unsigned)o->mode);
        } else if (errno == EEXIST) {
            fd = shm_open(rl->name, O_RDWR | O_CLOEXEC, 0);
        }
    }
    if (fd < 0)
        return sys_err(errno, "shm_open", rl->name);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return sys_err(e, "fstat", rl->name);
    }
    if (st.st_uid != geteuid() && !(o->flags & RL_OPEN_ALLOW_FOREIGN)) {
        close(fd);
        return rl__err(-EPERM,
                       "segment %s belongs to uid %u, not to this process (uid %u); refusing "
                       "it. Set RL_OPEN_ALLOW_FOREIGN to share a segment between users",
                       rl->name, (unsigned)st.st_uid, (unsigned)geteuid());
    }
    *fd_out = fd;
    return 0;
}

int rl__segment_open(struct rl *rl, const rl_options *o)
{
    int fd = -1, r;
    r = open_fd(rl, o, &fd);
    if (r < 0)
        return r;
    if (!(o->flags & RL_OPEN_NOCREATE)) {
        int e = posix_fallocate(fd, 0, RL_HEADER_SIZE);
        if (e) {
            close(fd);
            return sys_err(e, "posix_fallocate", rl->name);
        }
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        r = sys_err(errno, "fstat", rl->name);
        goto out_fd;
    }
    if ((uint64_t)st.st_size < RL_HEADER_SIZE) {
        r = rl__err(-EBADMSG, "segment %s is %lld bytes: too small to be an rl segment", rl->name,
                    (long long)st.st_size);
        goto out_fd;
    }
    struct rl_shm_header *page =
        mmap(NULL, RL_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (page == MAP_FAILED) {
        r = sys_err(errno, "mmap", rl->name);
        goto out_fd;
    }
    long waited = 0, unlocked_ms = 0;
    for (;;) {
        /* acquire: pairs with the release store of magic in initialise(). */
        uint64_t magic = atomic_load_explicit(&page->magic, memory_order_acquire);
        if (magic == RL_MAGIC) {
            if (fstat(fd, &st) < 0) {
                r = sys_err(errno, "fstat", rl->name);
                break;
            }
            r = attach(rl, fd, page, (uint64_t)st.st_size);
            break;
        }
        if (magic != 0) {
            r = rl__err(-EBADMSG,
                        "segment %s is not an rl segment (bad magic 0x%016llx); remove it "
                        "with rl_unlink if nothing else uses the name",
                        rl->name, (unsigned long long)magic);
            break;
        }
        if (!(o->flags & RL_OPEN_NOCREATE)) {
            /* One initialiser at a time: an open-file-description lock on the segment's first
             * byte. The kernel drops it when its holder dies, whatever PID namespace it lives
             * in, so a creator that died half-way is replaced, and a live one is waited for. */
            struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
            if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
                /* acquire: as above; somebody may have finished while we took the lock. */
                if (atomic_load_explicit(&page->magic, memory_order_acquire) == 0)
                    r = initialise(rl, fd, o, page);
                else
                    r = 1; /* published meanwhile: attach on the next turn */
                fl.l_type = F_UNLCK;
                fcntl(fd, F_OFD_SETLK, &fl);
                if (r <= 0)
                    break;
                continue;
            }
            if (errno != EAGAIN && errno != EACCES) {
                r = sys_err(errno, "locking the segment for initialisation", rl->name);
                break;
            }
        }
        if (!byte_locked(fd, 0))
            unlocked_ms++;
        else
            unlocked_ms = 0;
        if (unlocked_ms >= ABANDONED_MS) {
            /* Only an attach-only opener gets here (anybody else takes the lock and initialises
             * the segment). */
            r = rl__err(-EBADMSG,
                        "segment %s is all zeros and no process is initialising it (a creator "
                        "died before writing its header, or something else wrote the file); "
                        "start a worker (it initialises the segment), or remove it with "
                        "rl_unlink (rm /dev/shm%s) if nothing else uses the name",
                        rl->name, rl->name);
            break;
        }
        if (waited >= WAIT_TOTAL_MS) {
            char who[48] = "another process";
            int holder = rl__lock_holder_pid(fd, 0); /* a scan of /proc: only now */
            if (holder > 0)
                snprintf(who, sizeof who, "process %d", holder);
            r = rl__err(-EAGAIN,
                        "segment %s is being initialised by %s for more than %d ms; if that "
                        "process is stuck, stop it and rl_unlink the segment",
                        rl->name, who, WAIT_TOTAL_MS);
            break;
        }
        sleep_ms(1);
        waited += 1;
    }
    munmap(page, RL_HEADER_SIZE);
out_fd:
    if (r < 0) {
        close(fd);
        return r;
    }
    rl->fd = fd; /* kept: rule-set writers lock a byte of it (cfgstore.c) */
    {
        /* Attached: a shared lock on byte 2 (see 5. above). A repair in progress holds it
         * exclusively for a moment: wait for it, briefly. */
        struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 2, .l_len = 1};
        int tries = 0;
        while (fcntl(fd, F_OFD_SETLK, &fl) != 0 && (errno == EAGAIN || errno == EACCES) &&
               ++tries < 2000)
            sleep_ms(1);
    }
    /* Everything below derives from the capacity validated in attach() (rl->geo), never from
     * a second read of the shared header, which another process could change meanwhile. */
    struct rl_geometry g = rl->geo;
    rl->hdr = (struct rl_shm_header *)rl->base;
    rl->limits = (struct rl_limit_rec *)(rl->base + g.limits_off);
    rl->slots = (struct rl_slot *)(rl->base + g.slots_off);
    rl->cfg_bufs = (struct rl_cfg_buf *)(rl->base + g.cfg_off);
    rl->audit = (struct rl_audit_rec *)(rl->base + g.audit_off);
    rl->stats = (struct rl_stats_stripe *)(rl->base + g.stats_off);
    rl->ep_dir = (struct rl_ep_rec *)(rl->base + g.ep_dir_off);
    rl->ep_ctr = (struct rl_ep_ctr *)(rl->base + g.ep_ctr_off);
    rl->nslots = g.nslots;
    rl->nlimits = g.nlimits;
    rl->uid = rl->hdr->static_check ^ (uint64_t)(uintptr_t)rl->base;
    rl__log(RL_LOG_INFO, "segment %s: attached (capacity %llu, %llu bytes, created by pid %u)",
            rl->name, (unsigned long long)rl->hdr->capacity, (unsigned long long)rl->map_size,
            rl->hdr->creator_pid);
    rl__adopt_clock_offset(rl->clock_offset_ns);
    return 0;
}

void rl__segment_close(struct rl *rl)
{
    if (rl->base)
        munmap(rl->base, rl->map_size);
    rl->base = NULL;
    if (rl->fd >= 0)
        close(rl->fd);
    rl->fd = -1;
}

void rl__futex_wake(_Atomic uint32_t *word)
{
    /* Not FUTEX_PRIVATE_FLAG: the word is in a MAP_SHARED mapping, waited on by another
     * process. */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
