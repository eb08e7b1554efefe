#ifndef DATE_H
#define DATE_H
/* The date of a header line, in UTC, computed here: gmtime_r reads
 * /etc/localtime on its first call in a process, seven system calls in
 * every fresh SMTP session. */
#include <stddef.h>

#define DATE822_MAX 48      /* 27 + a year of at most 21 digits */

/* "Thu, 01 Jan 1970 00:00:00 +0000" (RFC 5322) for t seconds since the
 * epoch, into out, without a NUL; returns its length. */
size_t date822(char out[DATE822_MAX], long long t);

/* Milliseconds on CLOCK_MONOTONIC: for timers, deadlines and lifetimes,
 * which a step of the wall clock must not move. */
unsigned long long mono_ms(void);

#endif
