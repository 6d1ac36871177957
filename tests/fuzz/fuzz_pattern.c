/*
 * Patterns: the input up to its first NUL is a pattern, the rest a path. rl__pattern_check()
 * must return 0 or -EINVAL; rl__glob_match() must terminate quickly (libFuzzer's -timeout; the
 * replay measures it too) and agree with a simple reference matcher.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "rules.h"
#include "support.h" /* mono_s() */

/* Reference: '*' any run (including empty and '/'), '?' exactly one character, anything else
 * itself. Dynamic programming over (glob prefix, path prefix): quadratic, independent of the
 * library's backtracking matcher. row[j]: glob[0..i) matches s[0..j). */
static bool ref_match(const char *g, size_t gl, const char *s, size_t sl)
{
    bool *row = calloc(sl + 1, sizeof *row);
    if (!row)
        abort();
    row[0] = true;
    for (size_t i = 0; i < gl; i++) {
        if (g[i] == '*') {
            for (size_t j = 1; j <= sl; j++)
                row[j] = row[j] || row[j - 1];
        } else {
            for (size_t j = sl; j > 0; j--)
                row[j] = row[j - 1] && (g[i] == '?' || g[i] == s[j - 1]);
            row[0] = false;
        }
    }
    bool m = row[sl];
    free(row);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t plen = nul ? (size_t)(nul - data) : size;
    char *pattern = malloc(plen + 1);
    if (!pattern)
        return 0;
    memcpy(pattern, data, plen);
    pattern[plen] = '\0';
    const char *path = nul ? (const char *)nul + 1 : "";
    size_t slen = nul ? size - plen - 1 : 0;

    int r = rl__pattern_check(pattern);
    FUZZ_CHECK(r == 0 || r == -EINVAL, "rl__pattern_check returned %d", r);

    double t0 = mono_s();
    bool m = rl__glob_match(pattern, plen, path, slen);
    double dt = mono_s() - t0;
    /* Generous: a linear matcher does these sizes in microseconds, even under sanitizers. */
    FUZZ_CHECK(dt < 1.0, "rl__glob_match took %.3f s (pattern %zu bytes, path %zu)", dt, plen,
               slen);
    /* The reference is quadratic: only for inputs of moderate size. */
    if ((uint64_t)plen * slen <= 1000000)
        FUZZ_CHECK(m == ref_match(pattern, plen, path, slen),
                   "rl__glob_match(\"%s\", \"%.*s\") = %d, reference %d", pattern, (int)slen, path,
                   m, !m);
    free(pattern);
    return 0;
}
