/* lib/date: RFC 5322 dates in UTC, against fixed values and against the C
 * library's gmtime_r on random times from year 1000 to 9999. */
#include <string.h>
#include <time.h>
#include "check.h"
#include "date.h"

static int is(long long t, const char *want)
{
  char d[DATE822_MAX];
  size_t n = date822(d, t);
  return n == strlen(want) && memcmp(d, want, n) == 0;
}

static int same_as_libc(long long t)
{
  char d[DATE822_MAX], want[64];
  time_t tt = (time_t)t;
  struct tm tm;
  size_t n;
  if (!gmtime_r(&tt, &tm) || !strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S +0000", &tm))
    return 0;
  n = date822(d, t);
  return n == strlen(want) && memcmp(d, want, n) == 0;
}

int main(void)
{
  unsigned long long r = 0x9e3779b97f4a7c15ULL;
  int i, same = 1;

  CHECK(is(0, "Thu, 01 Jan 1970 00:00:00 +0000"));
  CHECK(is(-1, "Wed, 31 Dec 1969 23:59:59 +0000"));
  CHECK(is(951782400, "Tue, 29 Feb 2000 00:00:00 +0000"));
  CHECK(is(951868799, "Tue, 29 Feb 2000 23:59:59 +0000"));
  CHECK(is(4107542400LL, "Mon, 01 Mar 2100 00:00:00 +0000"));   /* 2100 is no leap year */
  CHECK(is(253402300799LL, "Fri, 31 Dec 9999 23:59:59 +0000"));
  CHECK(is(253402300800LL, "Sat, 01 Jan 10000 00:00:00 +0000"));
  for (i = 0; i < 100000; i++) {
    r ^= r << 13; r ^= r >> 7; r ^= r << 17;
    same &= same_as_libc(-30610224000LL + (long long)(r % 284012524800ULL));
  }
  CHECK(same);
  {
    /* mono_ms: the kernel's monotonic clock in milliseconds, never back. */
    struct timespec ts;
    unsigned long long a = mono_ms(), b;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    b = mono_ms();
    CHECK(a <= b && (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000 <= b);
    CHECK(a / 1000 <= (unsigned long long)ts.tv_sec);
  }
  DONE();
}
