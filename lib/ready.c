/* s6 readiness: see ready.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "ready.h"

int ready_arg(const char *prog, const char *arg, int minfd, const char *usage)
{
  unsigned long long fd;
  struct stat st;

  if (strncmp(arg, "-d", 2) || scan_ulong(arg + 2, strlen(arg + 2), &fd) < 0
      || fd < (unsigned long long)minfd || fd > 1023) {
    log_usage(prog, usage);
  }
  if (fstat((int)fd, &st) < 0 || !S_ISFIFO(st.st_mode) || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0) {
    log_begin(prog, "error"); log_kv("op", "readiness"); log_ku("fd", fd);
    log_kv("error", "not an open pipe: no readiness notification"); log_end();
    return -1;
  }
  return (int)fd;
}

void ready_notify(const char *prog, int fd)
{
  ssize_t r;
  if (fd < 0) return;
  do r = write(fd, "\n", 1); while (r < 0 && errno == EINTR);
  if (r != 1) {
    log_begin(prog, "error"); log_kv("op", "readiness"); log_kv("error", strerror(errno)); log_end();
  }
  close(fd);
}
