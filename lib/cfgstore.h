/* The rule set's canonical text in the segment (cfgstore.c). Internal. */
#ifndef RL_CFGSTORE_H
#define RL_CFGSTORE_H

#include <stddef.h>
#include <stdint.h>

struct rl;

/* Writer lock (cross-process; waits at most ~2 s for a live writer, then -EAGAIN). */
int rl__cfg_lock(struct rl *rl);
void rl__cfg_unlock(struct rl *rl);
/* With the lock held: publish `text` as the next generation (-E2BIG beyond RL_CFG_MAX). */
int rl__cfg_publish_locked(struct rl *rl, const char *text, size_t len, uint64_t *gen_out);
/* The published generation; 0 = none yet. Lock-free. */
uint64_t rl__cfg_generation(const struct rl *rl);
/* A malloc'd, NUL-terminated copy of the published text. -ENOENT when there is none. */
int rl__cfg_read(struct rl *rl, char **text, size_t *len, uint64_t *gen_out);

#endif
