/*
 * Endpoint patterns: the well-formedness check (rl__pattern_check). The splitting and matching
 * helpers, which rl_check uses on its hot path, are inline in pattern.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "lib/internal.h"
#include "lib/pattern.h"

int rl__pattern_check(const char *pattern)
{
    if (!pattern || !*pattern)
        return rl__err(-EINVAL, "pattern is empty; expected \"[METHOD:]/path\", e.g. "
                                "\"POST:/auth/login\" or \"/api/*\"");
    size_t n = strlen(pattern);
    if (n > RL_KEY_MAX)
        return rl__err(-EINVAL, "pattern is %zu bytes long; at most %d are allowed", n, RL_KEY_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)pattern[i] <= 0x20 || (unsigned char)pattern[i] >= 0x7f)
            return rl__err(-EINVAL, "pattern \"%.64s\": byte %zu is a space or not printable ASCII",
                           pattern, i);
    const char *method, *glob;
    size_t mlen;
    rl__pattern_split(pattern, &method, &mlen, &glob);
    if (method) {
        if (mlen == 0)
            return rl__err(-EINVAL, "pattern \"%.64s\": empty method before ':'", pattern);
        bool star = mlen == 1 && method[0] == '*';
        for (size_t i = 0; i < mlen && !star; i++)
            if (method[i] < 'A' || method[i] > 'Z')
                return rl__err(-EINVAL,
                               "pattern \"%.64s\": the method must be upper-case letters (GET, "
                               "POST, ...) or '*'",
                               pattern);
    }
    if (!*glob)
        return rl__err(-EINVAL, "pattern \"%.64s\": no path after the method", pattern);
    if (glob[0] != '/' && glob[0] != '*')
        return rl__err(-EINVAL, "pattern \"%.64s\": the path must start with '/' or '*'", pattern);
    return 0;
}
