#ifndef CHECK_H
#define CHECK_H
/* The whole unit-test framework: CHECK(cond) counts, DONE() reports in the
 * "N passed, N failed" form that tests/run reads, and exits non-zero on
 * any failure. */
#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond) do { \
    if (cond) check_passed++; \
    else { check_failed++; printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
  } while (0)

#define DONE() do { \
    printf("%d passed, %d failed\n", check_passed, check_failed); \
    return check_failed ? 1 : 0; \
  } while (0)

#endif
