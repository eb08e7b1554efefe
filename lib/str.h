#ifndef STR_H
#define STR_H
/* Growable byte strings.
 *
 * Invariants: len <= cap; s == NULL iff cap == 0. Every size computation is
 * checked for overflow (qmail's CVE-2005-1513 was an unchecked one). Every
 * function that grows returns 0 on success and -1 with errno set (ENOMEM or
 * EOVERFLOW) on failure, leaving the string as it was. Contents are bytes,
 * not C strings: use str_0() before handing s to a function that wants NUL.
 */
#include <stddef.h>

/* A result the caller must look at: the compiler refuses code that drops
 * it. Where dropping it is right, write (void)! before the call and a
 * comment saying why (GCC, unlike clang, does not accept a plain (void)). */
#define MUST_USE __attribute__((warn_unused_result))

typedef struct {
  char *s;
  size_t len;
  size_t cap;
} str;

#define STR_INIT { 0, 0, 0 }

MUST_USE int str_ready(str *x, size_t n);        /* cap >= n */
MUST_USE int str_readyplus(str *x, size_t n);    /* cap >= len + n */
MUST_USE int str_catb(str *x, const void *p, size_t n);
MUST_USE int str_cats(str *x, const char *s);
MUST_USE int str_catc(str *x, char c);
MUST_USE int str_catu(str *x, unsigned long long u);
MUST_USE int str_copyb(str *x, const void *p, size_t n);
MUST_USE int str_copys(str *x, const char *s);
/* Ensures a NUL follows the contents without counting it in len. */
MUST_USE int str_0(str *x);
void str_free(str *x);
/* For a secret (a password, a key): overwrites all of x's memory, in a
 * way the compiler may not drop as a dead store, then frees it. */
void str_wipe(str *x);

/* Writes u in decimal at dst, zero-padded to width digits (at most 20
 * are written, whatever width), without a NUL; returns the end. */
char *fmt_u(char *dst, unsigned long long u, unsigned width);

/* Checked arithmetic on sizes: 0 on success, -1 (errno EOVERFLOW) on overflow. */
MUST_USE int size_add(size_t *r, size_t a, size_t b);
MUST_USE int size_mul(size_t *r, size_t a, size_t b);

#endif
