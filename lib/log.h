#ifndef LOG_H
#define LOG_H
#include "exitcode.h"
/* One line per event on stderr, as key=value pairs, for s6-log:
 *
 *   log_begin("qmail-send", "delivery");   -> "qmail-send event=delivery"
 *   log_kv("id", id); log_ku("bytes", n); log_end();
 *
 * Values are quoted when they hold a space, '"', '=', or a control byte;
 * inside quotes '"' and '\' are escaped and control bytes become \xHH, so
 * no value can forge a line break or a second key. A value longer than
 * LOG_VALUE_MAX octets once escaped is cut, quoted, and ends in "..."
 * inside its quotes (a quoted value's own final "..." is written
 * "..\x2e"), so that no client-sized value can push the keys after it
 * (result=, reason=) off the line. A line still longer than the internal
 * buffer is cut and ends in "...". Logging never fails the caller.
 */
#define LOG_VALUE_MAX 512
void log_begin(const char *prog, const char *event);
void log_kv(const char *key, const char *value);
void log_kb(const char *key, const char *value, unsigned long len);
void log_ku(const char *key, unsigned long long value);
void log_end(void);

/* A one-shot "prog event=fatal msg=... error=..." line, then _exit(code):
 * for a failed call whose errno says why. error= is errno's text, left
 * out when errno is 0; so a caller whose failure is not a system call's
 * uses log_die, which never prints errno. */
void log_fatal(const char *prog, int code, const char *msg) __attribute__((noreturn));
/* "prog event=fatal msg=..." without errno, then _exit(code). */
void log_die(const char *prog, int code, const char *msg) __attribute__((noreturn));
/* "prog event=fatal file=... line=N msg=...", then _exit(code): a bad
 * line in an input file, named so the operator can fix it. */
void log_die_line(const char *prog, int code, const char *file, unsigned long line,
                  const char *msg) __attribute__((noreturn));
/* A usage error: log_die with EXIT_USAGE (lib/exitcode.h), the same
 * code for every program. */
void log_usage(const char *prog, const char *usage) __attribute__((noreturn));

#endif
