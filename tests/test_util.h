/* Tiny assertion helpers for the C tests: every failure prints file:line and the expression,
 * and the test exits non-zero at the end (CHECK) or at once (REQUIRE). */
#ifndef CS_TEST_UTIL_H
#define CS_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One counter per program, not per file: a weak definition in every file that includes this
 * (a static one would let the checks of a second file, e.g. test_gpu_graph.c, fail unseen). */
__attribute__((weak)) int cs_test_failures = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
            cs_test_failures++;                                                         \
        }                                                                               \
    } while (0)

#define REQUIRE(cond)                                                                   \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);  \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

/* A call that must succeed; prints clipskip_last_error() when it does not. */
#define CHECK_OK(call)                                                                  \
    do {                                                                                \
        clipskip_status st_ = (call);                                                   \
        if (st_ != CLIPSKIP_OK) {                                                       \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #call,    \
                    clipskip_status_str(st_), clipskip_last_error());                   \
            cs_test_failures++;                                                         \
        }                                                                               \
    } while (0)

/* A call that must fail with status s and a message containing substr. */
#define CHECK_ERR(call, s, substr)                                                      \
    do {                                                                                \
        clipskip_status st_ = (call);                                                   \
        if (st_ != (s) || !strstr(clipskip_last_error(), (substr))) {                   \
            fprintf(stderr, "%s:%d: %s: expected %s containing \"%s\", got %s: \"%s\"\n", \
                    __FILE__, __LINE__, #call, clipskip_status_str(s), (substr),        \
                    clipskip_status_str(st_), clipskip_last_error());                   \
            cs_test_failures++;                                                         \
        }                                                                               \
    } while (0)

#define TEST_DONE(name)                                                                 \
    do {                                                                                \
        if (cs_test_failures) {                                                         \
            fprintf(stderr, "%s: %d check(s) failed\n", name, cs_test_failures);        \
            return 1;                                                                   \
        }                                                                               \
        printf("%s: all checks passed\n", name);                                        \
        return 0;                                                                       \
    } while (0)

#endif
