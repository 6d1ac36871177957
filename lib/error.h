/*
 * Errors and the debug log (lib/error.c): what every layer may use, the Redis client included.
 * Internal; nothing here is ABI. Needs nothing of the segment.
 */
#ifndef RL_LIB_ERROR_H
#define RL_LIB_ERROR_H

#include <stddef.h>

#include "rl.h"

/* Sets the calling thread's detailed message; returns err for `return rl__err(...)`. */
int rl__err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rl__clear_err(void);
/* Copies src into dst[n]; when it does not fit, ends it with "..." (visibly cut). */
void rl__strcut(char *dst, size_t n, const char *src);
/* The debug log (rl_set_log / RL_LOG_LEVEL). */
void rl__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
