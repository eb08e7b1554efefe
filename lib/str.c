#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "str.h"

int size_add(size_t *r, size_t a, size_t b)
{
  if (__builtin_add_overflow(a, b, r)) { errno = EOVERFLOW; return -1; }
  return 0;
}

int size_mul(size_t *r, size_t a, size_t b)
{
  if (__builtin_mul_overflow(a, b, r)) { errno = EOVERFLOW; return -1; }
  return 0;
}

int str_ready(str *x, size_t n)
{
  size_t want;
  char *p;

  if (n <= x->cap) return 0;
  /* Grow by half again plus slack so appends stay amortised O(1). */
  if (size_add(&want, n, n / 2) < 0 || size_add(&want, want, 30) < 0) return -1;
  p = realloc(x->s, want);
  if (!p) { errno = ENOMEM; return -1; }
  x->s = p;
  x->cap = want;
  return 0;
}

int str_readyplus(str *x, size_t n)
{
  size_t want;
  if (size_add(&want, x->len, n) < 0) return -1;
  return str_ready(x, want);
}

int str_catb(str *x, const void *p, size_t n)
{
  if (str_readyplus(x, n) < 0) return -1;
  if (n) memcpy(x->s + x->len, p, n);
  x->len += n;
  return 0;
}

int str_cats(str *x, const char *s) { return str_catb(x, s, strlen(s)); }
int str_catc(str *x, char c) { return str_catb(x, &c, 1); }

char *fmt_u(char *dst, unsigned long long u, unsigned width)
{
  char tmp[20];
  size_t i = sizeof tmp;
  do { tmp[--i] = (char)('0' + u % 10); u /= 10; } while (i && (u || sizeof tmp - i < width));
  memcpy(dst, tmp + i, sizeof tmp - i);
  return dst + (sizeof tmp - i);
}

int str_catu(str *x, unsigned long long u)
{
  char tmp[20];
  return str_catb(x, tmp, (size_t)(fmt_u(tmp, u, 0) - tmp));
}

int str_copyb(str *x, const void *p, size_t n)
{
  if (str_ready(x, n) < 0) return -1;
  if (n) memmove(x->s, p, n);
  x->len = n;
  return 0;
}

int str_copys(str *x, const char *s) { return str_copyb(x, s, strlen(s)); }

int str_0(str *x)
{
  if (str_readyplus(x, 1) < 0) return -1;
  x->s[x->len] = 0;
  return 0;
}

void str_free(str *x)
{
  free(x->s);
  x->s = 0;
  x->len = x->cap = 0;
}

void str_wipe(str *x)
{
  if (x->s) explicit_bzero(x->s, x->cap);
  str_free(x);
}
