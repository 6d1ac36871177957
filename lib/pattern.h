/*
 * Endpoint patterns: "[METHOD:]GLOB", where METHOD is [A-Z]+ or "*" and GLOB starts with '/' or
 * '*'; '*' matches any run of characters (including '/'), '?' exactly one. Internal.
 *
 * Both the rule file's checks (config_check.c) and the compiled matcher (rules.c) use these, so
 * they live apart: neither of those files calls the other for them. rl__glob_match is on
 * rl_check's hot path, hence inline here. Nothing here allocates or blocks; any thread.
 */
#ifndef RL_PATTERN_H
#define RL_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Returns 0 when pattern is well formed, else -EINVAL with a message (rl_errmsg). */
int rl__pattern_check(const char *pattern);

/* Splits "[METHOD:]GLOB": a ':' before the first '/' separates a method. */
static inline void rl__pattern_split(const char *p, const char **method, size_t *mlen,
                                     const char **glob)
{
    const char *slash = strchr(p, '/');
    const char *colon = strchr(p, ':');
    if (colon && (!slash || colon < slash)) {
        *method = p;
        *mlen = (size_t)(colon - p);
        *glob = colon + 1;
    } else {
        *method = NULL;
        *mlen = 0;
        *glob = p;
    }
}

/* Whether s[0..sl) matches the glob g[0..gl) ('*' any run, '?' one character). At worst
 * O(gl * sl): one backtrack point (the last '*'). */
static inline bool rl__glob_match(const char *g, size_t gl, const char *s, size_t sl)
{
    size_t gi = 0, si = 0, star = (size_t)-1, mark = 0;
    while (si < sl) {
        if (gi < gl && g[gi] == '*') {
            star = gi++;
            mark = si;
        } else if (gi < gl && (g[gi] == '?' || g[gi] == s[si])) {
            gi++;
            si++;
        } else if (star != (size_t)-1) {
            gi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (gi < gl && g[gi] == '*')
        gi++;
    return gi == gl;
}

#endif /* RL_PATTERN_H */
