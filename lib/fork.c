/*
 * The library's one fork registry: a single pthread_atfork, installed on first use; modules
 * register their handlers here (api.c: the open handles and, through them, each handle's remote
 * state). Registration happens at rl_open, never on a hot path.
 */
#include <pthread.h>

#include "lib/thread.h"

static pthread_mutex_t g_hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl_fork_hook *g_hooks; /* newest first */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* The hooks are only added (never removed), each one whole before it is linked under the lock;
 * fork() runs the handlers of one thread while the lock cannot be taken by another in the child. */
static void run_prepare(void)
{
    pthread_mutex_lock(&g_hooks_lock);
    for (struct rl_fork_hook *h = g_hooks; h; h = h->next) /* newest first: reverse order */
        if (h->prepare)
            h->prepare();
}

static void run_in_order(struct rl_fork_hook *h, int child)
{
    if (!h)
        return;
    run_in_order(h->next, child); /* oldest first; a handful of hooks, so recursion is fine */
    void (*fn)(void) = child ? h->child : h->parent;
    if (fn)
        fn();
}

static void run_parent(void)
{
    run_in_order(g_hooks, 0);
    pthread_mutex_unlock(&g_hooks_lock);
}

static void run_child(void)
{
    run_in_order(g_hooks, 1);
    /* The child has one thread: the lock the parent's prepare took is ours to reset. */
    pthread_mutex_init(&g_hooks_lock, NULL);
}

static void install(void)
{
    pthread_atfork(run_prepare, run_parent, run_child);
}

void rl__fork_register(struct rl_fork_hook *hook)
{
    pthread_once(&g_once, install);
    pthread_mutex_lock(&g_hooks_lock);
    if (!hook->registered) {
        hook->registered = 1;
        hook->next = g_hooks;
        g_hooks = hook;
    }
    pthread_mutex_unlock(&g_hooks_lock);
}
