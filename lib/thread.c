/*
 * The one place rl starts a thread (rl__thread_start). A library thread inside a host process
 * (an nginx worker, a Python server) must never take the host's signals: the kernel delivers a
 * process-directed signal (SIGTERM, SIGHUP, SIGCHLD, SIGALRM, ...) to any thread that does not
 * block it, and a host that waits for signals in its main thread (sigsuspend, sigwaitinfo,
 * epoll_pwait, signalfd) would then never see them, or see its handler run on rl's thread. So
 * every rl thread is created with all signals blocked: the creating thread blocks them, creates
 * (the new thread inherits the mask) and restores its own mask before returning, so the caller
 * sees no change. Synchronous faults (SIGSEGV, SIGBUS, SIGFPE on the rl thread itself) are still
 * delivered: the kernel forces them through a blocked mask.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "lib/error.h"
#include "lib/thread.h"

int rl__thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
    sigset_t all, old;
    sigfillset(&all);
    int r = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (r)
        return r;
    r = pthread_create(t, NULL, fn, arg);
    /* The caller's mask back, whatever pthread_create answered. */
    int r2 = pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r)
        return r;
    if (name)
        pthread_setname_np(*t, name); /* top -H, /proc/PID/task/TID/comm; 15 bytes at most */
    (void)r2;                         /* restoring a mask that was just read cannot fail */
    return 0;
}
