/* lib/buf.c: reads, buf_line's hard limit, EOF cases, timeouts, writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "check.h"

/* A pipe already holding data, write end closed: reads end in EOF. */
static int feed(const char *data, size_t n)
{
  int p[2];
  if (pipe(p) < 0) return -1;
  if (n && write(p[1], data, n) != (ssize_t)n) return -1;
  close(p[1]);
  return p[0];
}

static void lines(size_t bufsize)
{
  static const char in[] =
    "abcd\n"              /* exactly max (5) with its \n */
    "abcde\n"             /* one over */
    "ok\n"
    "\n"                  /* an empty line is a line */
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
    "yes\n"
    "tail";               /* no \n before EOF */
  char arr[256];
  buf b;
  str line = STR_INIT;
  int fd = feed(in, sizeof in - 1);

  buf_init(&b, fd, arr, bufsize);
  CHECK(buf_line(&b, &line, 5) == LINE_OK && line.len == 5 && !memcmp(line.s, "abcd\n", 5));
  CHECK(buf_line(&b, &line, 5) == LINE_LONG && line.len == 0);
  CHECK(buf_line(&b, &line, 5) == LINE_OK && line.len == 3 && !memcmp(line.s, "ok\n", 3));
  CHECK(buf_line(&b, &line, 5) == LINE_OK && line.len == 1 && line.s[0] == '\n');
  CHECK(buf_line(&b, &line, 5) == LINE_LONG && line.len == 0);
  CHECK(buf_line(&b, &line, 5) == LINE_OK && line.len == 4 && !memcmp(line.s, "yes\n", 4));
  CHECK(buf_line(&b, &line, 5) == LINE_PARTIAL && line.len == 4 && !memcmp(line.s, "tail", 4));
  CHECK(buf_line(&b, &line, 5) == LINE_EOF && line.len == 0);
  CHECK(buf_line(&b, &line, 5) == LINE_EOF);
  close(fd);

  /* An overlong line cut by EOF is still reported as too long. */
  fd = feed("0123456789", 10);
  buf_init(&b, fd, arr, bufsize);
  CHECK(buf_line(&b, &line, 5) == LINE_LONG && line.len == 0);
  CHECK(buf_line(&b, &line, 5) == LINE_EOF);
  close(fd);
  /* A partial line of exactly max bytes is partial, not long. */
  fd = feed("01234", 5);
  buf_init(&b, fd, arr, bufsize);
  CHECK(buf_line(&b, &line, 5) == LINE_PARTIAL && line.len == 5);
  close(fd);
  /* Empty input. */
  fd = feed("", 0);
  buf_init(&b, fd, arr, bufsize);
  CHECK(buf_line(&b, &line, 5) == LINE_EOF && line.len == 0);
  close(fd);
  str_free(&line);
}

static void reads(void)
{
  char arr[4], out[16];
  buf b;
  int fd = feed("hello", 5);

  buf_init(&b, fd, arr, sizeof arr);
  CHECK(buf_ready(&b) == 0);
  CHECK(buf_get(&b, out, 2) == 2 && !memcmp(out, "he", 2));
  CHECK(buf_ready(&b) == 2);
  CHECK(buf_get(&b, out, 16) == 2 && !memcmp(out, "ll", 2));   /* only what is buffered */
  CHECK(buf_get(&b, out, 16) == 1 && out[0] == 'o');
  CHECK(buf_get(&b, out, 16) == 0);
  close(fd);

  /* A full buffer of unread bytes cannot be filled further. */
  fd = feed("abcdefgh", 8);
  buf_init(&b, fd, arr, sizeof arr);
  CHECK(buf_fill(&b) == 4);
  errno = 0;
  CHECK(buf_fill(&b) == -1 && errno == ENOBUFS);
  CHECK(buf_get(&b, out, 1) == 1);
  CHECK(buf_fill(&b) == 1 && buf_ready(&b) == 4);   /* unread bytes moved down */
  CHECK(buf_get(&b, out, 4) == 4 && !memcmp(out, "bcde", 4));
  close(fd);

  /* A closed descriptor is an error, not EOF. */
  buf_init(&b, 999, arr, sizeof arr);
  CHECK(buf_fill(&b) == -1 && errno == EBADF);
}

static void timeouts(void)
{
  char arr[64];
  buf b;
  str line = STR_INIT;
  int p[2];
  time_t t0;

  CHECK(pipe(p) == 0);
  buf_init(&b, p[0], arr, sizeof arr);
  b.timeout = 1;
  t0 = time(0);
  errno = 0;
  CHECK(buf_line(&b, &line, 100) == LINE_ERR && errno == ETIMEDOUT);
  CHECK(time(0) - t0 <= 3);
  /* A partial line then silence: still a timeout, not a line. */
  CHECK(write(p[1], "abc", 3) == 3);
  errno = 0;
  CHECK(buf_line(&b, &line, 100) == LINE_ERR && errno == ETIMEDOUT);
  /* The write side: a full pipe times out. */
  fcntl(p[1], F_SETFL, O_NONBLOCK);
  while (write(p[1], arr, sizeof arr) > 0) ;
  fcntl(p[1], F_SETFL, 0);
  errno = 0;
  CHECK(fd_write_all(p[1], "x", 1, 1) == -1 && errno == ETIMEDOUT);
  CHECK(fd_wait(p[0], 0, 1) == 0);   /* readable */
  close(p[0]);
  close(p[1]);
  str_free(&line);
}

static void writes(void)
{
  char arr[8], big[100], got[256];
  buf b;
  int p[2];
  ssize_t n;
  size_t i;

  for (i = 0; i < sizeof big; i++) big[i] = (char)('A' + i % 26);
  CHECK(pipe(p) == 0);
  buf_init(&b, p[1], arr, sizeof arr);
  CHECK(buf_puts(&b, "ab") == 0);
  CHECK(buf_putu(&b, 0) == 0);
  CHECK(buf_putu(&b, 1234567) == 0);       /* crosses the buffer's end */
  CHECK(buf_put(&b, big, sizeof big) == 0); /* bypasses the buffer */
  CHECK(buf_put(&b, "", 0) == 0);
  CHECK(buf_puts(&b, "z") == 0);
  CHECK(buf_flush(&b) == 0);
  CHECK(buf_flush(&b) == 0);                /* nothing left: no-op */
  close(p[1]);
  n = read(p[0], got, sizeof got);
  CHECK(n == 2 + 1 + 7 + 100 + 1);
  CHECK(!memcmp(got, "ab01234567", 10) && !memcmp(got + 10, big, 100) && got[110] == 'z');
  close(p[0]);

  /* Writing into a pipe with no reader is an error (EPIPE once SIGPIPE is ignored). */
  CHECK(pipe(p) == 0);
  close(p[0]);
  signal(SIGPIPE, SIG_IGN);
  errno = 0;
  CHECK(fd_write_all(p[1], "x", 1, 0) == -1 && errno == EPIPE);
  close(p[1]);
}

/* pread_all, fd_read_file and file_read on a file of 100000 bytes. */
static void files(void)
{
  static char big[100000], path[] = "/tmp/t-buf.XXXXXX";
  char b[8];
  str s = STR_INIT;
  size_t i;
  int fd = mkstemp(path);

  for (i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
  CHECK(fd >= 0 && write(fd, big, sizeof big) == (ssize_t)sizeof big);
  CHECK(pread_all(fd, b, 3, 27) == 0 && !memcmp(b, "bcd", 3));
  CHECK(pread_all(fd, b, 8, sizeof big - 4) < 0 && errno == EINVAL);   /* past the end */
  CHECK(lseek(fd, 0, SEEK_SET) == 0 && fd_read_file(fd, &s, sizeof big) == 0);
  CHECK(s.len == sizeof big && !memcmp(s.s, big, sizeof big));
  CHECK(lseek(fd, 0, SEEK_SET) == 0 && fd_read_file(fd, &s, sizeof big - 1) < 0 && errno == EFBIG);
  CHECK(s.len == sizeof big - 1 && !memcmp(s.s, big, s.len));
  CHECK(file_read(path, &s, 1 << 20) == 0 && s.len == sizeof big);
  CHECK(file_read(path, &s, 10) < 0 && errno == EFBIG && s.len == 10);
  close(fd);
  unlink(path);
  CHECK(file_read(path, &s, 10) < 0 && errno == ENOENT && s.len == 0);
  str_free(&s);
}

int main(void)
{
  lines(256);
  lines(3);   /* a buffer smaller than the lines: every path through buf_fill */
  lines(1);
  reads();
  writes();
  timeouts();
  files();
  DONE();
}
