/*
 * A stand-in for the part of Criterion the suites use, for builds where Criterion cannot run:
 * under ThreadSanitizer Criterion aborts at start-up ("Could not initialize inheritable arena",
 * Snaipe/Criterion issue #274: BoxFort maps its arena at random fixed addresses that TSan has
 * reserved). tests/meson.build compiles the suites with -DRL_TEST_MINI_RUNNER in that case.
 *
 * Same semantics where the suites rely on them: each test runs in its own forked process with
 * its suite's .init before and .fini after (also after a failed cr_assert); cr_expect records a
 * failure and goes on. The run ends with the line "N passed, N failed, N skipped" and exits 1
 * when anything failed. Arguments: --jobs/-j N and --verbose are accepted and ignored (tests run
 * one at a time); any other argument is a substring a test's "suite::name" must contain.
 */
#ifndef RL_MINI_RUNNER_H
#define RL_MINI_RUNNER_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct mini_opts {
    void (*init)(void);
    void (*fini)(void);
    double timeout;
};

struct mini_test {
    const char *suite, *name;
    void (*fn)(void);
    const struct mini_opts *suite_opts, *opts;
};

#define MINI_MAX_TESTS 256
static struct mini_test mini_tests[MINI_MAX_TESTS];
static int mini_ntests;
static jmp_buf mini_jmp;
static int mini_failed;

static inline void mini_register(const char *suite, const char *name, void (*fn)(void),
                                 const struct mini_opts *so, const struct mini_opts *o)
{
    if (mini_ntests < MINI_MAX_TESTS)
        mini_tests[mini_ntests++] = (struct mini_test){suite, name, fn, so, o};
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
/* fmt is the user's message; a trailing "" the macros add is ignored by vfprintf. */
static inline void mini_fail(bool fatal, const char *file, int line, const char *cond,
                             const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n[----]   ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    mini_failed = 1;
    if (fatal)
        longjmp(mini_jmp, 1);
}

static inline void mini_skip(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "[SKIP] ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    longjmp(mini_jmp, 2);
}

static inline void mini_log(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "[----] ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
#pragma GCC diagnostic pop

/* The last argument of the inner macros is never empty (ISO C wants one for "..."). */
#define TestSuite(...)        MINI_SUITE(__VA_ARGS__, .timeout = 0)
#define MINI_SUITE(Name, ...) static const struct mini_opts mini_suite_##Name = {__VA_ARGS__}

#define Test(...) MINI_TEST(__VA_ARGS__, .timeout = 0)
#define MINI_TEST(Suite, Name, ...)                                                                \
    static void mini_fn_##Suite##_##Name(void);                                                    \
    static const struct mini_opts mini_opts_##Suite##_##Name = {__VA_ARGS__};                      \
    __attribute__((constructor)) static void mini_reg_##Suite##_##Name(void)                       \
    {                                                                                              \
        mini_register(#Suite, #Name, mini_fn_##Suite##_##Name, &mini_suite_##Suite,                \
                      &mini_opts_##Suite##_##Name);                                                \
    }                                                                                              \
    static void mini_fn_##Suite##_##Name(void)

#define MINI_CHECK(fatal, cond, text, ...)                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            mini_fail((fatal), __FILE__, __LINE__, (text), __VA_ARGS__);                           \
    } while (0)
#define MINI_CMP(fatal, op, a, b, ...) MINI_CHECK(fatal, (a)op(b), #a " " #op " " #b, __VA_ARGS__)

#define cr_assert(...)              MINI_ONE(true, __VA_ARGS__, "")
#define cr_expect(...)              MINI_ONE(false, __VA_ARGS__, "")
#define MINI_ONE(fatal, cond, ...)  MINI_CHECK(fatal, cond, #cond, __VA_ARGS__)
#define cr_assert_eq(...)           MINI_CMP(true, ==, __VA_ARGS__, "")
#define cr_assert_neq(...)          MINI_CMP(true, !=, __VA_ARGS__, "")
#define cr_assert_lt(...)           MINI_CMP(true, <, __VA_ARGS__, "")
#define cr_assert_geq(...)          MINI_CMP(true, >=, __VA_ARGS__, "")
#define cr_assert_gt(...)           MINI_CMP(true, >, __VA_ARGS__, "")
#define cr_assert_leq(...)          MINI_CMP(true, <=, __VA_ARGS__, "")
#define cr_expect_eq(...)           MINI_CMP(false, ==, __VA_ARGS__, "")
#define cr_expect_neq(...)          MINI_CMP(false, !=, __VA_ARGS__, "")
#define cr_expect_lt(...)           MINI_CMP(false, <, __VA_ARGS__, "")
#define cr_expect_gt(...)           MINI_CMP(false, >, __VA_ARGS__, "")
#define cr_expect_leq(...)          MINI_CMP(false, <=, __VA_ARGS__, "")
#define cr_expect_geq(...)          MINI_CMP(false, >=, __VA_ARGS__, "")
#define cr_assert_not_null(...)     MINI_PTR(true, !=, __VA_ARGS__, "")
#define cr_expect_not_null(...)     MINI_PTR(false, !=, __VA_ARGS__, "")
#define cr_expect_null(...)         MINI_PTR(false, ==, __VA_ARGS__, "")
#define MINI_PTR(fatal, op, p, ...) MINI_CHECK(fatal, (p)op NULL, #p " " #op " NULL", __VA_ARGS__)
#define cr_expect_str_eq(...)       MINI_STR(false, ==, __VA_ARGS__, "")
#define cr_assert_str_eq(...)       MINI_STR(true, ==, __VA_ARGS__, "")
#define cr_expect_str_neq(...)      MINI_STR(false, !=, __VA_ARGS__, "")
#define MINI_STR(fatal, op, a, b, ...)                                                             \
    MINI_CHECK(fatal, strcmp((a), (b)) op 0, #a " " #op " " #b, __VA_ARGS__)
#define cr_assert_fail(...) mini_fail(true, __FILE__, __LINE__, "cr_assert_fail", __VA_ARGS__, "")
#define cr_skip_test(...)   mini_skip(__VA_ARGS__, "")
#define cr_log_info(...)    mini_log(__VA_ARGS__, "")

/* Runs one test in this (forked) process: 0 passed, 1 failed, 77 skipped. */
static inline int mini_run_one(const struct mini_test *t)
{
    void (*init)(void) = t->opts->init ? t->opts->init : t->suite_opts->init;
    void (*fini)(void) = t->opts->fini ? t->opts->fini : t->suite_opts->fini;
    static volatile int jumped; /* survives the longjmp */
    jumped = 0;
    int j = setjmp(mini_jmp);
    if (j == 0) {
        if (init)
            init();
        t->fn();
    } else {
        jumped = j;
    }
    if (fini && setjmp(mini_jmp) == 0)
        fini();
    return jumped == 2 ? 77 : mini_failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--jobs") == 0 || strcmp(argv[i], "-j") == 0) && i + 1 < argc)
            i++;
        else if (strncmp(argv[i], "--", 2) != 0)
            filter = argv[i];
    }
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < mini_ntests; i++) {
        const struct mini_test *t = &mini_tests[i];
        char full[256];
        snprintf(full, sizeof full, "%s::%s", t->suite, t->name);
        if (filter && !strstr(full, filter))
            continue;
        fprintf(stderr, "[RUN ] %s\n", full);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0)
            _exit(mini_run_one(t));
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
            ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            passed++;
            fprintf(stderr, "[PASS] %s\n", full);
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            skipped++;
            fprintf(stderr, "[SKIP] %s\n", full);
        } else {
            failed++;
            if (WIFSIGNALED(status))
                fprintf(stderr, "[FAIL] %s: crashed with signal %d\n", full, WTERMSIG(status));
            else
                fprintf(stderr, "[FAIL] %s\n", full);
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

#endif /* RL_MINI_RUNNER_H */
