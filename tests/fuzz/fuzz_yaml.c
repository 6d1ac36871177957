/*
 * Rule-set YAML: rl__ruleset_parse() of the input must return 0 or a negative code; when it
 * parses, the canonical YAML (rl__ruleset_emit) must parse again and emit the same text.
 */
#include <string.h>

#include "fuzz.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rl_ruleset *rs = NULL;
    int r = rl__ruleset_parse((const char *)data, size, "fuzz", &rs);
    FUZZ_CHECK(r <= 0, "parse returned %d", r);
    if (r < 0)
        return 0;
    FUZZ_CHECK(rs != NULL, "parse returned 0 and no rule set");

    char *text = NULL, *text2 = NULL;
    size_t len = 0, len2 = 0;
    r = rl__ruleset_emit(rs, &text, &len);
    FUZZ_CHECK(r == 0, "emit returned %d", r);
    FUZZ_CHECK(strlen(text) == len, "emit: length %zu, text of %zu", len, strlen(text));

    struct rl_ruleset *rs2 = NULL;
    r = rl__ruleset_parse(text, len, "fuzz-emitted", &rs2);
    FUZZ_CHECK(r == 0, "the emitted YAML does not parse (%d: %s):\n%s", r, rl_errmsg(), text);
    r = rl__ruleset_emit(rs2, &text2, &len2);
    FUZZ_CHECK(r == 0, "second emit returned %d", r);
    FUZZ_CHECK(len == len2 && memcmp(text, text2, len) == 0,
               "emit is not stable:\n--- first\n%s\n--- second\n%s", text, text2);

    free(text);
    free(text2);
    rl__ruleset_free(rs);
    rl__ruleset_free(rs2);
    return 0;
}
