/*
 * Threads rl starts (thread.c) and the library's fork registry (fork.c). Internal.
 */
#ifndef RL_LIB_THREAD_H
#define RL_LIB_THREAD_H

#include <pthread.h>

/* thread.c: starts fn(arg) on a new thread *t with every signal blocked (the caller's mask is
 * restored before it returns), named `name` (15 bytes at most; NULL: unnamed). Every thread rl
 * starts goes through here, so none takes the host process's signals. Returns 0 or a positive
 * errno from pthread_create (EAGAIN: no more threads). Any thread. */
int rl__thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *name);

/* fork.c: the library's one pthread_atfork. A module registers its handlers once (static
 * storage; registration is idempotent); prepare runs in the reverse order of registration,
 * parent and child in order, as pthread_atfork's own. Child handlers run with one thread and
 * must not allocate or block. */
struct rl_fork_hook {
    void (*prepare)(void);
    void (*parent)(void);
    void (*child)(void);
    struct rl_fork_hook *next; /* fork.c's */
    int registered;            /* fork.c's */
};
void rl__fork_register(struct rl_fork_hook *hook);

#endif
