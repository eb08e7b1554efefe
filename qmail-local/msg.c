/* The message as a window of a seekable file, read with pread only. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "deliver.h"
#include "local.h"

#define CHUNK 65536

int fail(str *report, int code, const char *what, int err)
{
  if (str_cats(report, what) == 0 && err) {
    /* The report is best effort: the exit code carries the result. */
    if (str_cats(report, ": ") == 0) (void)!str_cats(report, strerror(err));
  }
  return code;
}

/* An unlinked file to hold a message read from a pipe. */
static int tmpfile_open(void)
{
  char name[] = "/tmp/qmail-local.XXXXXX";
  int fd = open("/tmp", O_RDWR | O_TMPFILE | O_EXCL | O_CLOEXEC, 0600);

  if (fd >= 0) return fd;
  fd = mkostemp(name, O_CLOEXEC);
  if (fd >= 0) unlink(name);
  return fd;
}

/* Copies at most len bytes (all, for DELIVER_TO_EOF) from the pipe in to
 * the file out; the copy's length goes to *got. */
static int copy_pipe(int in, int out, unsigned long long len, unsigned long long *got)
{
  static char b[CHUNK];
  ssize_t r;
  size_t want;

  *got = 0;
  while (*got < len) {
    want = len - *got < sizeof b ? (size_t)(len - *got) : sizeof b;
    r = read(in, b, want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    if (fd_write_all(out, b, (size_t)r, 0) < 0) return -1;
    *got += (unsigned long long)r;
  }
  if (len != DELIVER_TO_EOF && *got != len) { errno = EIO; return -1; }
  return 0;
}

int msg_open(struct local_msg *m, int fd, unsigned long long off, unsigned long long len, str *report)
{
  struct stat st;
  int t;

  if (fstat(fd, &st) < 0) return fail(report, 111, "cannot stat the message", errno);
  if (!S_ISREG(st.st_mode)) {
    /* A pipe or socket cannot be re-read: copy it once, then read that. */
    t = tmpfile_open();
    if (t < 0) return fail(report, 111, "cannot create a temporary file", errno);
    if (copy_pipe(fd, t, len, &m->len) < 0) {
      int e = errno;
      close(t);
      return fail(report, 111, "cannot read the message", e);
    }
    m->fd = t;
    m->off = 0;
    return 0;
  }
  if (off > (unsigned long long)st.st_size)
    return fail(report, 111, "message offset beyond the end of its file", 0);
  if (len == DELIVER_TO_EOF) len = (unsigned long long)st.st_size - off;
  else if (len > (unsigned long long)st.st_size - off)
    return fail(report, 111, "message file is shorter than its stated length", 0);
  m->fd = fd;
  m->off = off;
  m->len = len;
  return 0;
}

long msg_read(const struct local_msg *m, unsigned long long pos, char *p, size_t n)
{
  ssize_t r;

  if (pos >= m->len) return 0;
  if (n > m->len - pos) n = (size_t)(m->len - pos);
  if (n > CHUNK) n = CHUNK;
  do r = pread(m->fd, p, n, (off_t)(m->off + pos)); while (r < 0 && errno == EINTR);
  if (r < 0) return -1;
  if (r == 0) { errno = EIO; return -1; }  /* the file shrank under us */
  return (long)r;
}

int msg_copy(const struct local_msg *m, buf *out, int fromquote, int *lastnl)
{
  static const char from[] = "From ";
  char b[CHUNK];
  unsigned long long pos = 0;
  long r, i;
  size_t k = 0;   /* bytes of "From " matched at the start of a line */
  int bol = 1;    /* at the beginning of a line */

  *lastnl = 1;
  for (;;) {
    r = msg_read(m, pos, b, sizeof b);
    if (r < 0) return -1;
    if (r == 0) break;
    pos += (unsigned long long)r;
    if (!fromquote) {
      if (buf_put(out, b, (size_t)r) < 0) return -1;
      *lastnl = b[r - 1] == '\n';
      continue;
    }
    for (i = 0; i < r; i++) {
      char c = b[i];
      if (bol && c == from[k]) {
        if (++k == 5) {
          if (buf_put(out, ">From ", 6) < 0) return -1;
          k = 0;
          bol = 0;
        }
        continue;
      }
      /* A partial match turned out not to be "From ": write it as it was. */
      if (k && buf_put(out, from, k) < 0) return -1;
      k = 0;
      if (buf_put(out, &c, 1) < 0) return -1;
      bol = c == '\n';
    }
    *lastnl = bol;
  }
  if (k) {
    if (buf_put(out, from, k) < 0) return -1;
    *lastnl = 0;
  }
  return 0;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

int msg_header_has(const struct local_msg *m, const char *line, size_t n)
{
  char b[CHUNK];
  unsigned long long pos = 0;
  size_t len = 0;   /* bytes of the current line seen */
  int same = 1;     /* the current line still matches line[0..len) */
  long r, i;

  for (;;) {
    r = msg_read(m, pos, b, sizeof b);
    if (r < 0) return -1;
    if (r == 0) return 0;
    pos += (unsigned long long)r;
    for (i = 0; i < r; i++) {
      if (b[i] == '\n') {
        if (len == 0) return 0;          /* the blank line ends the header */
        if (same && len == n) return 1;
        len = 0;
        same = 1;
        continue;
      }
      if (same && (len >= n || lower((unsigned char)b[i]) != lower((unsigned char)line[len])))
        same = 0;
      if (len < n + 1) len++;            /* only "longer than n" matters */
    }
  }
}
