/*
 * Where rule text comes from: a rule file (rl__ruleset_load_file, and rl_check_config_file for
 * callers that only want the verdict) and the built-in presets (rl__preset_yaml). Called by
 * rules.c (rl_open's config_path and environment, rl_load_config) and rlctl (config check).
 *
 * A rule file is read whole (at most 1 MiB, regular files only; a FIFO is refused without
 * blocking), parsed (config_parse.c), and its canonical form (config_emit.c) is checked to fit a
 * segment before anyone tries to publish it. Blocks on the file's read; allocates.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/internal.h"
#include "lib/rules.h"

#define CONFIG_FILE_MAX (1u << 20) /* bytes a rule file may have */

extern const char rl__embed_development[], rl__embed_staging[], rl__embed_production[];

const char *rl__preset_yaml(const char *environment)
{
    if (!environment || strcmp(environment, "production") == 0)
        return rl__embed_production;
    if (strcmp(environment, "staging") == 0)
        return rl__embed_staging;
    if (strcmp(environment, "development") == 0)
        return rl__embed_development;
    return NULL;
}

static const char *errno_text(int e, char *buf, size_t len)
{
    switch (e) {
    case ENOENT:
        return "no such file";
    case EACCES:
        return "permission denied";
    case EISDIR:
        return "is a directory";
    default:
        return strerror_r(e, buf, len); /* GNU: returns the text */
    }
}

/* Opens path for reading: a regular file of at most CONFIG_FILE_MAX bytes. Returns the fd. */
static int open_rule_file(const char *path)
{
    char eb[128];
    /* O_NONBLOCK: a FIFO must not block the open; only regular files are read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return rl__err(-e, "%s: cannot open the rule file: %s", path, errno_text(e, eb, sizeof eb));
    }
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        r = rl__err(-e, "%s: cannot stat the rule file: %s", path, errno_text(e, eb, sizeof eb));
    } else if (S_ISDIR(st.st_mode)) {
        r = rl__err(-EISDIR, "%s: is a directory, not a rule file", path);
    } else if (!S_ISREG(st.st_mode)) {
        r = rl__err(-EINVAL, "%s: not a regular file", path);
    } else if (st.st_size > (off_t)CONFIG_FILE_MAX) {
        r = rl__err(-EFBIG, "%s: %lld bytes; a rule file may have at most 1 MiB (%u bytes)", path,
                    (long long)st.st_size, CONFIG_FILE_MAX);
    }
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* Reads all of fd (at most CONFIG_FILE_MAX bytes: it may have grown since the stat) into a
 * malloc'd, NUL-terminated *buf. */
static int read_rule_file(int fd, const char *path, char **buf, size_t *n)
{
    char eb[128];
    char *b = malloc(CONFIG_FILE_MAX + 1);
    if (!b)
        return rl__err(-ENOMEM, "%s: out of memory", path);
    size_t have = 0;
    for (;;) {
        ssize_t got = read(fd, b + have, CONFIG_FILE_MAX + 1 - have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(b);
            return rl__err(-e, "%s: cannot read the rule file: %s", path,
                           errno_text(e, eb, sizeof eb));
        }
        if (got == 0)
            break;
        have += (size_t)got;
        if (have > CONFIG_FILE_MAX) {
            free(b);
            return rl__err(-EFBIG, "%s: more than 1 MiB; a rule file may have at most %u bytes",
                           path, CONFIG_FILE_MAX);
        }
    }
    b[have] = '\0';
    *buf = b;
    *n = have;
    return 0;
}

/* What a segment stores is the canonical form: it must fit before anyone publishes it. */
static int check_fits(const struct rl_ruleset *rs, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int r = rl__ruleset_emit(rs, &text, &len);
    free(text);
    if (r == 0 && len > RL_CFG_MAX)
        r = rl__err(-E2BIG,
                    "%s: the rule set takes %zu bytes in canonical form; a segment holds at most "
                    "%u. Use fewer rules or shorter descriptions",
                    path, len, RL_CFG_MAX);
    return r;
}

int rl__ruleset_load_file(const char *path, struct rl_ruleset **out)
{
    if (!path || !out)
        return rl__err(-EINVAL, "rl__ruleset_load_file: path and out must not be NULL");
    *out = NULL;
    int fd = open_rule_file(path);
    if (fd < 0)
        return fd;
    char *buf = NULL;
    size_t n = 0;
    int r = read_rule_file(fd, path, &buf, &n);
    close(fd);
    if (r < 0)
        return r;
    r = rl__ruleset_parse(buf, n, path, out);
    free(buf);
    if (r < 0)
        return r;
    r = rl__ruleset_check_build(*out, path, NULL);
    if (r == 0)
        r = check_fits(*out, path);
    if (r < 0) {
        rl__ruleset_free(*out);
        *out = NULL;
    }
    return r;
}

RL_API int rl_check_config_file(const char *path)
{
    rl__clear_err();
    if (!path)
        return rl__err(-EINVAL, "rl_check_config_file: path is NULL");
    struct rl_ruleset *rs = NULL;
    int r = rl__ruleset_load_file(path, &rs);
    rl__ruleset_free(rs);
    return r;
}
