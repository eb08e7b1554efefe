#include <string.h>
#include "authlib.h"

int authuser_ok(const char *u, size_t n)
{
  size_t i;
  if (n == 0 || n > AUTH_USER_MAX) return 0;
  for (i = 0; i < n; i++)
    if ((unsigned char)u[i] <= ' ' || (unsigned char)u[i] >= 0x7f || u[i] == ':') return 0;
  return 1;
}

int cp_parse(const char *b, size_t n, const char **user, size_t *un,
             const char **pass, size_t *pn)
{
  const char *z1, *z2, *z3;

  if (n > AUTH_CP_MAX) return -1;
  z1 = memchr(b, 0, n);
  if (!z1) return -1;
  z2 = memchr(z1 + 1, 0, n - (size_t)(z1 + 1 - b));
  if (!z2) return -1;
  /* The timestamp is optional; if anything follows, it ends in the last
   * byte and holds no other NUL. */
  if ((size_t)(z2 + 1 - b) < n) {
    z3 = memchr(z2 + 1, 0, n - (size_t)(z2 + 1 - b));
    if (!z3 || (size_t)(z3 + 1 - b) != n) return -1;
  }
  *user = b;
  *un = (size_t)(z1 - b);
  *pass = z1 + 1;
  *pn = (size_t)(z2 - z1 - 1);
  if (!authuser_ok(*user, *un) || *pn == 0 || *pn > AUTH_PASS_MAX) return -1;
  return 0;
}

int hash_equal(const char *a, const char *b)
{
  size_t na = strlen(a), nb = strlen(b), n = na > nb ? na : nb, i;
  unsigned char d = na != nb;
  /* Reads past neither string: a shorter one contributes zeros. */
  for (i = 0; i < n; i++)
    d |= (unsigned char)((i < na ? a[i] : 0) ^ (i < nb ? b[i] : 0));
  return d == 0;
}
