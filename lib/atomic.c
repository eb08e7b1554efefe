#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include "atomic.h"
#include "buf.h"
#include "str.h"

int fsync_dir(const char *path)
{
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r;
  if (fd < 0) return -1;
  r = fsync(fd);
  close(fd);
  return r;
}

static int build(str *s, const char *dir, const char *a, const char *b, const char *c)
{
  s->len = 0;
  return (str_cats(s, dir) < 0 || str_catc(s, '/') < 0 || str_cats(s, a) < 0 ||
          str_cats(s, b) < 0 || str_cats(s, c) < 0 || str_0(s) < 0) ? -1 : 0;
}

int atomic_write(const char *dir, const char *name, const void *p, size_t n, mode_t mode)
{
  str tmp = STR_INIT, dst = STR_INIT;
  char pid[24];
  int fd = -1, e, r = -1;

  snprintf(pid, sizeof pid, ".%ld.tmp", (long)getpid());
  if (build(&tmp, dir, ".", name, pid) < 0 || build(&dst, dir, "", name, "") < 0) goto out;
  /* O_EXCL after removing a leftover: a name planted there (a link to
   * another file) is never opened, let alone truncated. */
  if (unlink(tmp.s) < 0 && errno != ENOENT) goto out;
  fd = open(tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) goto out;
  if (fd_write_all(fd, p, n, 0) < 0 || fsync(fd) < 0) goto fail;
  if (close(fd) < 0) { fd = -1; goto fail; }
  fd = -1;
  if (rename(tmp.s, dst.s) < 0) goto fail;
  r = fsync_dir(dir);
  goto out;
fail:
  e = errno;
  if (fd >= 0) close(fd);
  unlink(tmp.s);
  errno = e;
out:
  str_free(&tmp);
  str_free(&dst);
  return r;
}
