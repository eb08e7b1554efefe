/* lib/str.c: growth, appends, overflow checks that leave the string as it was. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include "check.h"
#include "str.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_CLANG 1
#endif
#endif
#ifndef ASAN_CLANG
#define ASAN_CLANG 0
#endif

int main(void)
{
  str s = STR_INIT, t = STR_INIT;
  size_t r, i;
  char *before;

  /* Checked arithmetic. */
  CHECK(size_add(&r, 2, 3) == 0 && r == 5);
  CHECK(size_add(&r, SIZE_MAX, 0) == 0 && r == SIZE_MAX);
  errno = 0;
  CHECK(size_add(&r, SIZE_MAX, 1) == -1 && errno == EOVERFLOW);
  CHECK(size_mul(&r, 1u << 20, 1u << 10) == 0 && r == (size_t)1 << 30);
  CHECK(size_mul(&r, 0, SIZE_MAX) == 0 && r == 0);
  errno = 0;
  CHECK(size_mul(&r, SIZE_MAX / 2 + 1, 2) == -1 && errno == EOVERFLOW);

  /* Empty string: s NULL iff cap 0. */
  CHECK(s.s == 0 && s.len == 0 && s.cap == 0);
  CHECK(str_ready(&s, 0) == 0 && s.s == 0);
  CHECK(str_catb(&s, "", 0) == 0 && s.len == 0);

  CHECK(str_cats(&s, "abc") == 0 && s.len == 3 && s.cap >= 3 && !memcmp(s.s, "abc", 3));
  CHECK(str_catc(&s, 0) == 0 && s.len == 4 && s.s[3] == 0);   /* bytes, not C strings */
  CHECK(str_catu(&s, 0) == 0 && s.len == 5 && s.s[4] == '0');
  CHECK(str_catu(&s, 18446744073709551615ull) == 0 && s.len == 25 &&
        !memcmp(s.s + 5, "18446744073709551615", 20));
  {
    char d[24];
    CHECK(fmt_u(d, 42, 0) - d == 2 && !memcmp(d, "42", 2));
    CHECK(fmt_u(d, 42, 6) - d == 6 && !memcmp(d, "000042", 6));
    CHECK(fmt_u(d, 0, 0) - d == 1 && d[0] == '0');
    CHECK(fmt_u(d, 1234567, 3) - d == 7 && !memcmp(d, "1234567", 7));
    CHECK(fmt_u(d, 7, 20) - d == 20 && !memcmp(d, "00000000000000000007", 20));
    CHECK(fmt_u(d, 7, 99) - d == 20);           /* width is capped at 20 */
  }
  CHECK(str_copys(&s, "xy") == 0 && s.len == 2 && !memcmp(s.s, "xy", 2));
  CHECK(str_0(&s) == 0 && s.len == 2 && s.s[2] == 0 && !strcmp(s.s, "xy"));

  /* copyb from inside itself (memmove). */
  CHECK(str_copys(&s, "hello world") == 0);
  CHECK(str_copyb(&s, s.s + 6, 5) == 0 && s.len == 5 && !memcmp(s.s, "world", 5));

  /* Many appends: contents intact, len <= cap throughout. */
  s.len = 0;
  for (i = 0; i < 100000; i++) {
    if (str_catc(&s, (char)('a' + i % 26)) < 0 || s.len > s.cap) break;
  }
  CHECK(i == 100000 && s.len == 100000);
  for (i = 0; i < s.len && s.s[i] == (char)('a' + i % 26); i++) ;
  CHECK(i == 100000);

  /* Overflowing requests fail with the string untouched. */
  before = s.s;
  r = s.len;
  errno = 0;
  CHECK(str_readyplus(&s, SIZE_MAX) == -1 && errno == EOVERFLOW);
  CHECK(s.s == before && s.len == r);
  errno = 0;
  CHECK(str_ready(&s, SIZE_MAX) == -1 && errno == EOVERFLOW);   /* n + n/2 overflows */
  CHECK(str_ready(&s, SIZE_MAX / 3 * 2) == -1);                  /* + 30 slack overflows or ENOMEM */
  CHECK(s.s == before && s.len == r);
  errno = 0;
  CHECK(str_catb(&s, "x", SIZE_MAX - 5) == -1 && errno == EOVERFLOW && s.len == r);
  /* A huge but representable size: realloc fails, ENOMEM, unchanged.
   * (ASan aborts on such a request instead of returning NULL.) */
#if !defined(__SANITIZE_ADDRESS__) && !ASAN_CLANG
  errno = 0;
  CHECK(str_ready(&t, SIZE_MAX / 4) == -1 && errno == ENOMEM && t.s == 0 && t.cap == 0);
#endif

  str_free(&s);
  CHECK(s.s == 0 && s.len == 0 && s.cap == 0);
  str_free(&s);   /* twice is harmless */
  str_free(&t);
  /* str_wipe: empty and freed afterwards, and harmless on an empty str. */
  CHECK(str_copys(&t, "secret") == 0);
  str_wipe(&t);
  CHECK(t.s == 0 && t.len == 0 && t.cap == 0);
  str_wipe(&t);
  CHECK(t.s == 0);
  DONE();
}
