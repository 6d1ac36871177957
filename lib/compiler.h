/*
 * Compiler and sanitizer helpers of the hot path: TSan annotations, initial-exec thread-locals,
 * the spin-wait hint. Internal.
 */
#ifndef RL_LIB_COMPILER_H
#define RL_LIB_COMPILER_H

/* ThreadSanitizer cannot see that an RCU grace period orders every reader's accesses before the
 * writer's free: readers "release" the object they used at read-unlock and the writer
 * "acquires" it after the grace period (no code in other builds). */
#if defined(__SANITIZE_THREAD__)
#define RL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RL_TSAN 1
#endif
#endif
#ifdef RL_TSAN
#include <sanitizer/tsan_interface.h>
#define RL_TSAN_RELEASE(p) __tsan_release((void *)(p))
#define RL_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define RL_TSAN_RELEASE(p) ((void)(p))
#define RL_TSAN_ACQUIRE(p) ((void)(p))
#endif

/* Thread-locals read on the hot path: the initial-exec model makes them one instruction instead of
 * a __tls_get_addr call in the shared library (glibc keeps static TLS room for this). */
#define RL_TLS _Thread_local __attribute__((tls_model("initial-exec")))

static inline void rl__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
