/*
 * Segment attach: the input becomes the first bytes of a fresh shm segment
 * (/dev/shm/rl-fz-PID, the input's length rounded up to a page, at most 1 MiB), which
 * rl_open(RL_OPEN_NOCREATE) must attach (0) or refuse (a negative code), never crash. An
 * attached segment is inspected (rl_segment_info_get, rl_check_segment) and closed.
 *
 * Inputs whose first 8 bytes (the magic) are zero are skipped: rl_open() then waits 5 s for the
 * creator that would be initialising the segment, by design.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "rl.h"

#define PAGE    4096u
#define MAX_LEN (1u << 20)

static void ignore_report(const char *msg, void *arg)
{
    (void)msg;
    (void)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_LEN)
        size = MAX_LEN;
    uint8_t magic[8] = {0};
    memcpy(magic, data, size < 8 ? size : 8);
    static const uint8_t zero[8];
    if (memcmp(magic, zero, 8) == 0)
        return 0;

    char name[64];
    snprintf(name, sizeof name, "/rl-fz-%ld", (long)getpid());
    shm_unlink(name);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0, "shm_open %s failed", name);
    size_t total = (size + PAGE - 1) / PAGE * PAGE;
    if (total == 0)
        total = PAGE;
    FUZZ_CHECK(ftruncate(fd, (off_t)total) == 0, "ftruncate");
    for (size_t off = 0; off < size;) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        FUZZ_CHECK(w > 0, "pwrite");
        off += (size_t)w;
    }
    close(fd);

    rl_options o;
    rl_options_init(&o);
    o.shm_name = name;
    o.flags = RL_OPEN_NOCREATE;
    rl_t *rl = NULL;
    int r = rl_open(&rl, &o);
    FUZZ_CHECK(r <= 0, "rl_open returned %d", r);
    if (r == 0) {
        FUZZ_CHECK(rl != NULL, "rl_open returned 0 and no handle");
        rl_segment_info info;
        FUZZ_CHECK(rl_segment_info_get(rl, &info) == 0, "rl_segment_info_get failed");
        long damaged = rl_check_segment(rl, ignore_report, NULL);
        (void)damaged;
        rl_close(&rl);
    }
    shm_unlink(name);
    return 0;
}
