#ifndef CHECK_H
#define CHECK_H
/* The whole unit-test framework: CHECK(cond) counts, SKIP(n) counts
 * checks that cannot run here (root-only ones run as a user), DONE()
 * reports in the "N passed, N failed[, N skipped]" form that tests/run
 * reads, and exits non-zero on any failure. */
#include <stdio.h>
#include <stdlib.h>

static int check_passed, check_failed, check_skipped;

#define CHECK(cond) do { \
    if (cond) check_passed++; \
    else { check_failed++; printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
  } while (0)

/* For a step that builds a test's input (str_cat*): a failure there is
 * no result to count, so the test stops. */
#define MUST(x) do { if ((x) < 0) { printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #x); abort(); } } while (0)

#define SKIP(n) (check_skipped += (n))

#define DONE() do { \
    if (check_skipped) \
      printf("%d passed, %d failed, %d skipped\n", check_passed, check_failed, check_skipped); \
    else \
      printf("%d passed, %d failed\n", check_passed, check_failed); \
    return check_failed ? 1 : 0; \
  } while (0)

#endif
