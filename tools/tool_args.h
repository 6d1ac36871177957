/* Small helpers shared by the command-line tools (not part of the library). */
#ifndef RL_TOOL_ARGS_H
#define RL_TOOL_ARGS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* Parses s as a whole number in lo..hi into *out; on error says so on stderr, naming the tool
 * (prog) and the option, and returns -1. */
static inline int tool_parse_uint(const char *prog, const char *opt, const char *s, unsigned lo,
                                  unsigned hi, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = s ? strtoul(s, &end, 10) : 0;
    if (!s || *s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "%s: %s wants a whole number from %u to %u\n", prog, opt, lo, hi);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

#endif
