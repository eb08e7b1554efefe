/* Event counters in mapped files; see metrics.h. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "control.h"
#include "metrics.h"
#include "str.h"

const char *const metrics_names[MF_N] = { "send", "smtpd", "remote" };

/* This process's file, or 0: adds are then no-ops. */
static uint64_t *map;

/* Opens PREFIX/metrics/<name of f> with flags; the fd or -1. A file that
 * is not a regular file of exactly METRICS_BYTES (owned by the caller's
 * euid when own is set) is refused with EINVAL. */
static int mopen(enum metrics_file f, int flags, int own)
{
  str path = STR_INIT;
  struct stat st;
  int fd = -1, e;

  if ((unsigned)f >= MF_N) { errno = EINVAL; return -1; }
  if (str_copys(&path, auto_prefix) == 0 && str_cats(&path, "/metrics/") == 0 &&
      str_cats(&path, metrics_names[f]) == 0 && str_0(&path) == 0)
    fd = open(path.s, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  e = errno;
  str_free(&path);
  if (fd < 0) { errno = e; return -1; }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != METRICS_BYTES ||
      (own && st.st_uid != geteuid())) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  return fd;
}

int metrics_open(enum metrics_file f)
{
  void *p;
  int fd;

  if (map) return 0;
  /* Owned by this uid: the SMTP parser's uid never writes a file another
   * uid wrote and trusts. */
  fd = mopen(f, O_RDWR, 1);
  if (fd < 0) return -1;
  p = mmap(0, METRICS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return -1;
  map = p;
  return 0;
}

void metrics_inc(unsigned slot)
{
  if (map && slot < METRICS_SLOTS) __atomic_fetch_add(&map[slot], 1, __ATOMIC_RELAXED);
}

void metrics_set(unsigned slot, uint64_t v)
{
  if (map && slot < METRICS_SLOTS) __atomic_store_n(&map[slot], v, __ATOMIC_RELAXED);
}

int metrics_read(enum metrics_file f, uint64_t out[METRICS_SLOTS])
{
  int fd = mopen(f, O_RDONLY, 0);
  ssize_t n;
  int e;

  if (fd < 0) return -1;
  n = pread(fd, out, METRICS_BYTES, 0);
  e = errno;
  close(fd);
  if (n == METRICS_BYTES) return 0;
  errno = n < 0 ? e : EINVAL;
  return -1;
}
