#ifndef READY_H
#define READY_H
/* s6 readiness for daemons started with -dFD (s6's notification-fd).
 *
 * ready_arg checks "-dFD" before the daemon opens anything, so that a
 * number that was not open cannot be taken by one of its own descriptors:
 * only an inherited pipe or fifo is ever written to. It returns the fd
 * (made close-on-exec), or -1 with an error logged when FD is not an open
 * pipe (the daemon runs on, without readiness). A malformed argument, or
 * FD outside [minfd, 1023], is a usage error: exit 100 with usage logged.
 *
 * ready_notify writes one newline to fd and closes it (nothing when fd is
 * -1); a failed write is logged, never fatal. */
int ready_arg(const char *prog, const char *arg, int minfd, const char *usage);
void ready_notify(const char *prog, int fd);

#endif
