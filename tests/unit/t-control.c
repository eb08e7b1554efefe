/* lib/control.c: control files, cdb lookups (tables built here with
 * tinycdb's cdb_make), scan_ulong. Runs in a fresh temporary directory. */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "control.h"

static void put(const char *name, const char *s, size_t n)
{
  int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, s, n) != (ssize_t)n) CHECK(0 && "cannot write test file");
  close(fd);
}
#define PUT(name, lit) put(name, lit, sizeof lit - 1)

static int is(const str *s, const char *lit, size_t n)
{
  return s->len == n && !memcmp(s->s, lit, n);
}
#define IS(s, lit) is(s, lit, sizeof lit - 1)

static void lines(void)
{
  str s = STR_INIT;
  unsigned long u;

  PUT("me", "mail.example  \t\r\nsecond line\n");
  CHECK(control_line(&s, "me") == 1 && IS(&s, "mail.example"));
  PUT("me", "no-newline");
  CHECK(control_line(&s, "me") == 1 && IS(&s, "no-newline"));
  PUT("me", "");
  CHECK(control_line(&s, "me") == 1 && s.len == 0);
  PUT("me", "\nsecond\n");
  CHECK(control_line(&s, "me") == 1 && s.len == 0);
  CHECK(control_line(&s, "absent") == 0 && s.len == 0);
  CHECK(control_line(&s, ".") == -1 && errno == EISDIR);

  PUT("n", "123\n");
  CHECK(control_ulong(&u, "n", 7) == 1 && u == 123);
  CHECK(control_ulong(&u, "absent", 7) == 0 && u == 7);
  PUT("n", "4294967296 \n");
  CHECK(control_ulong(&u, "n", 7) == 1 && u == 4294967296ul);
  u = 5;
  PUT("n", "12x\n");
  CHECK(control_ulong(&u, "n", 7) == -1 && errno == EINVAL && u == 5);
  PUT("n", "\n");
  CHECK(control_ulong(&u, "n", 7) == -1 && errno == EINVAL);
  PUT("n", " 12\n");
  CHECK(control_ulong(&u, "n", 7) == -1 && errno == EINVAL);
  PUT("n", "-1\n");
  CHECK(control_ulong(&u, "n", 7) == -1 && errno == EINVAL);
  PUT("n", "99999999999999999999999\n");
  CHECK(control_ulong(&u, "n", 7) == -1 && errno == EINVAL);

  PUT("l", "# comment\n\nalpha  \nbeta\r\n   \n gamma\n#x\ndelta");
  CHECK(control_lines(&s, "l") == 1 && IS(&s, "alpha\0beta\0 gamma\0delta\0"));
  PUT("l", "");
  CHECK(control_lines(&s, "l") == 1 && s.len == 0);
  PUT("l", "\n\n\n");
  CHECK(control_lines(&s, "l") == 1 && s.len == 0);
  s.len = 3;
  CHECK(control_lines(&s, "absent") == 0 && s.len == 0);

  /* Over 16 MB is a configuration error, not something to read. */
  {
    int fd = open("huge", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (17 << 20)) == 0);
    close(fd);
    CHECK(control_line(&s, "huge") == -1 && errno == EFBIG);
    CHECK(control_lines(&s, "huge") == -1 && errno == EFBIG);
    unlink("huge");
  }
  str_free(&s);
}

static void cdbs(void)
{
  struct cdb_make m;
  str v = STR_INIT;
  int fd = open("t.cdb", O_RDWR | O_CREAT | O_TRUNC, 0644);

  CHECK(fd >= 0 && cdb_make_start(&m, fd) == 0);
  cdb_make_add(&m, "alpha", 5, "one", 3);
  cdb_make_add(&m, "empty", 5, "", 0);
  cdb_make_add(&m, "a\0b", 3, "bin\0ary", 7);
  cdb_make_add(&m, "dup", 3, "first", 5);
  cdb_make_add(&m, "dup", 3, "second", 6);
  CHECK(cdb_make_finish(&m) == 0);
  close(fd);

  CHECK(cdb_lookup("t.cdb", "alpha", 5, &v) == 1 && IS(&v, "one"));
  CHECK(cdb_lookup("t.cdb", "empty", 5, &v) == 1 && v.len == 0);
  CHECK(cdb_lookup("t.cdb", "a\0b", 3, &v) == 1 && IS(&v, "bin\0ary"));
  CHECK(cdb_lookup("t.cdb", "a", 1, &v) == 0 && v.len == 0);
  CHECK(cdb_lookup("t.cdb", "ALPHA", 5, &v) == 0);        /* keys are exact bytes */
  CHECK(cdb_lookup("t.cdb", "dup", 3, &v) == 1 && IS(&v, "first"));
  CHECK(cdb_lookup("t.cdb", "", 0, &v) == 0);
  CHECK(cdb_lookup("absent.cdb", "alpha", 5, &v) == 0);
  /* A damaged table is an error, not "absent". */
  PUT("bad.cdb", "short");
  v.len = 9;
  CHECK(cdb_lookup("bad.cdb", "alpha", 5, &v) == -1 && v.len == 0);
  str_free(&v);
}

static void scans(void)
{
  unsigned long long u = 42;
  CHECK(scan_ulong("0", 1, &u) == 0 && u == 0);
  CHECK(scan_ulong("007", 3, &u) == 0 && u == 7);
  CHECK(scan_ulong("123x", 3, &u) == 0 && u == 123);   /* n bounds the digits */
  CHECK(scan_ulong("18446744073709551615", 20, &u) == 0 && u == 18446744073709551615ull);
  u = 42;
  CHECK(scan_ulong("18446744073709551616", 20, &u) == -1 && errno == EOVERFLOW && u == 42);
  CHECK(scan_ulong("99999999999999999999", 20, &u) == -1 && errno == EOVERFLOW);
  CHECK(scan_ulong("", 0, &u) == -1 && errno == EINVAL);
  CHECK(scan_ulong("1a", 2, &u) == -1 && errno == EINVAL);
  CHECK(scan_ulong("+1", 2, &u) == -1 && errno == EINVAL);
  CHECK(scan_ulong(" 1", 2, &u) == -1 && errno == EINVAL);
  CHECK(u == 42);
}

int main(void)
{
  char dir[] = "/tmp/t-control.XXXXXX", cwd[PATH_MAX];

  CHECK(mkdtemp(dir) != 0 && chdir(dir) == 0);
  lines();
  cdbs();
  scans();
  unlink("me"); unlink("n"); unlink("l"); unlink("t.cdb"); unlink("bad.cdb");
  /* prefix_chdir goes to the compiled-in prefix, whatever the cwd. */
  if (prefix_chdir() == 0) CHECK(getcwd(cwd, sizeof cwd) && !strcmp(cwd, auto_prefix));
  else CHECK(errno == ENOENT);
  CHECK(rmdir(dir) == 0);
  DONE();
}
