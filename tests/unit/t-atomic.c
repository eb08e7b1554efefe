/* lib/atomic.c: whole-file replacement, its temporary file, errors. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic.h"
#include "check.h"

static int contents(const char *path, const char *want, size_t n)
{
  char got[256];
  int fd = open(path, O_RDONLY);
  ssize_t r = fd < 0 ? -1 : read(fd, got, sizeof got);
  if (fd >= 0) close(fd);
  return r == (ssize_t)n && !memcmp(got, want, n);
}

/* Names in dir other than "." and "..": nothing may be left behind. */
static int entries(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  if (!d) return -1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

int main(void)
{
  char dir[] = "/tmp/t-atomic.XXXXXX", p[300], tmp[300];
  struct stat st;

  umask(022);
  CHECK(mkdtemp(dir) != 0);
  strcpy(p, dir); strcat(p, "/f");
  snprintf(tmp, sizeof tmp, "%s/.f.%ld.tmp", dir, (long)getpid());

  CHECK(atomic_write(dir, "f", "first\n", 6, 0640) == 0);
  CHECK(contents(p, "first\n", 6));
  CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0640);
  CHECK(access(tmp, F_OK) < 0 && errno == ENOENT);

  /* Replacing: shorter contents, no leftover bytes, new mode. */
  CHECK(atomic_write(dir, "f", "2", 1, 0600) == 0);
  CHECK(contents(p, "2", 1));
  CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600);
  CHECK(atomic_write(dir, "f", "", 0, 0644) == 0);
  CHECK(stat(p, &st) == 0 && st.st_size == 0);
  CHECK(access(tmp, F_OK) < 0);

  /* A stale temporary file from an earlier crash is overwritten. */
  CHECK(atomic_write(dir, "f", "x", 1, 0644) == 0);
  {
    int fd = open(tmp, O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0 && write(fd, "garbage-garbage", 15) == 15);
    close(fd);
  }
  CHECK(atomic_write(dir, "f", "new", 3, 0644) == 0 && contents(p, "new", 3));
  CHECK(access(tmp, F_OK) < 0);

  /* A link planted at the temporary name is removed, never followed: its
   * target is untouched and the write goes to a fresh file. */
  {
    char victim[300];
    strcpy(victim, dir); strcat(victim, "/victim");
    CHECK(close(open(victim, O_WRONLY | O_CREAT, 0644)) == 0);
    CHECK(symlink(victim, tmp) == 0);
    CHECK(atomic_write(dir, "f", "ok", 2, 0644) == 0 && contents(p, "ok", 2));
    CHECK(contents(victim, "", 0));
    CHECK(access(tmp, F_OK) < 0);
    CHECK(link(victim, tmp) == 0);
    CHECK(atomic_write(dir, "f", "new", 3, 0644) == 0 && contents(p, "new", 3));
    CHECK(contents(victim, "", 0));
    CHECK(unlink(victim) == 0);
  }

  /* Failure at the rename (target is a non-empty directory): old state kept,
   * temporary removed. */
  {
    char sub[300], inner[300];
    strcpy(sub, dir); strcat(sub, "/sub");
    strcpy(inner, sub); strcat(inner, "/x");
    CHECK(mkdir(sub, 0755) == 0 && close(open(inner, O_WRONLY | O_CREAT, 0644)) == 0);
    snprintf(tmp, sizeof tmp, "%s/.sub.%ld.tmp", dir, (long)getpid());
    CHECK(atomic_write(dir, "sub", "y", 1, 0644) == -1);
    CHECK(access(tmp, F_OK) < 0 && errno == ENOENT);
    CHECK(unlink(inner) == 0 && rmdir(sub) == 0);
  }
  /* A missing directory. */
  CHECK(atomic_write("/nonexistent-t-atomic", "f", "z", 1, 0644) == -1 && errno == ENOENT);

  CHECK(fsync_dir(dir) == 0);
  CHECK(fsync_dir("/nonexistent-t-atomic") == -1 && errno == ENOENT);
  CHECK(fsync_dir(p) == -1 && errno == ENOTDIR);

  CHECK(entries(dir) == 1);
  CHECK(unlink(p) == 0 && rmdir(dir) == 0);
  DONE();
}
