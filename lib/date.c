/* RFC 5322 dates in UTC (date.h). The civil date from a day count: the
 * proleptic Gregorian calendar in eras of 400 years (146097 days), with
 * years starting on March 1st, so that the leap day ends a year. */
#include <string.h>
#include <time.h>
#include "date.h"
#include "str.h"

static char *two(char *p, long long v)
{
  return fmt_u(p, (unsigned long long)v % 100, 2);
}

size_t date822(char out[DATE822_MAX], long long t)
{
  static const char wday[] = "ThuFriSatSunMonTueWed";   /* day 0 was a Thursday */
  static const char mon[] = "MarAprMayJunJulAugSepOctNovDecJanFeb";
  long long days = t / 86400, secs = t % 86400, z, era, doe, yoe, doy, mp, y;
  char *p = out;

  if (secs < 0) { secs += 86400; days--; }
  z = days + 719468;                        /* days since 0000-03-01 */
  era = (z >= 0 ? z : z - 146096) / 146097;
  doe = z - era * 146097;                   /* [0, 146096] */
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;   /* [0, 399] */
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                  /* [0, 365] */
  mp = (5 * doy + 2) / 153;                 /* month from March, [0, 11] */
  y = yoe + era * 400 + (mp >= 10);

  memcpy(p, wday + 3 * (((days % 7) + 7) % 7), 3);
  memcpy(p + 3, ", ", 2);
  p = two(p + 5, doy - (153 * mp + 2) / 5 + 1);
  *p++ = ' ';
  memcpy(p, mon + 3 * mp, 3);
  p[3] = ' ';
  p = fmt_u(p + 4, y > 0 ? (unsigned long long)y : 0, 4);
  *p++ = ' ';
  p = two(p, secs / 3600);
  *p++ = ':';
  p = two(p, secs / 60 % 60);
  *p++ = ':';
  p = two(p, secs % 60);
  memcpy(p, " +0000", 6);
  return (size_t)(p + 6 - out);
}

unsigned long long mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}
