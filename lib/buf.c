#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "str.h"

void buf_init(buf *b, int fd, char *array, size_t size)
{
  b->fd = fd;
  b->x = array;
  b->cap = size;
  b->pos = b->end = 0;
  b->timeout = 0;
}

int fd_wait(int fd, int want_write, int timeout)
{
  struct pollfd p;
  int r;

  if (timeout <= 0) return 0;
  p.fd = fd;
  p.events = want_write ? POLLOUT : POLLIN;
  for (;;) {
    r = poll(&p, 1, timeout > 2000000 ? 2000000000 : timeout * 1000);
    if (r > 0) return 0;
    if (r == 0) { errno = ETIMEDOUT; return -1; }
    if (errno != EINTR) return -1;
  }
}

size_t buf_ready(const buf *b) { return b->end - b->pos; }

ssize_t buf_fill(buf *b)
{
  ssize_t r;

  if (b->pos == b->end) b->pos = b->end = 0;
  if (b->end == b->cap) {
    /* Make room by moving unread bytes down; a full buffer of unread bytes
     * means the caller must consume first. */
    if (b->pos == 0) { errno = ENOBUFS; return -1; }
    memmove(b->x, b->x + b->pos, b->end - b->pos);
    b->end -= b->pos;
    b->pos = 0;
  }
  for (;;) {
    if (fd_wait(b->fd, 0, b->timeout) < 0) return -1;
    r = read(b->fd, b->x + b->end, b->cap - b->end);
    if (r >= 0) break;
    if (errno != EINTR) return -1;
  }
  b->end += (size_t)r;
  return r;
}

ssize_t buf_get(buf *b, void *dst, size_t n)
{
  size_t have;
  ssize_t r;

  if (b->pos == b->end) {
    r = buf_fill(b);
    if (r <= 0) return r;
  }
  have = b->end - b->pos;
  if (n > have) n = have;
  memcpy(dst, b->x + b->pos, n);
  b->pos += n;
  return (ssize_t)n;
}

int buf_line(buf *b, str *line, size_t max)
{
  int toolong = 0;
  ssize_t r;

  line->len = 0;
  for (;;) {
    char *start = b->x + b->pos;
    size_t have = b->end - b->pos;
    char *nl = have ? memchr(start, '\n', have) : 0;
    size_t take = nl ? (size_t)(nl - start) + 1 : have;

    if (!toolong) {
      if (line->len + take > max) {
        toolong = 1;
        line->len = 0;
      } else if (str_catb(line, start, take) < 0) {
        return LINE_ERR;
      }
    }
    b->pos += take;
    if (nl) return toolong ? LINE_LONG : LINE_OK;
    r = buf_fill(b);
    if (r < 0) return LINE_ERR;
    if (r == 0) {
      if (toolong) return LINE_LONG;
      return line->len ? LINE_PARTIAL : LINE_EOF;
    }
  }
}

int fd_write_all(int fd, const void *p, size_t n, int timeout)
{
  const char *c = p;
  ssize_t w;

  while (n) {
    if (fd_wait(fd, 1, timeout) < 0) return -1;
    w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int buf_flush(buf *b)
{
  size_t n = b->end;
  b->end = 0;
  return fd_write_all(b->fd, b->x, n, b->timeout);
}

int buf_put(buf *b, const void *p, size_t n)
{
  const char *c = p;

  if (n > b->cap - b->end) {
    if (buf_flush(b) < 0) return -1;
    /* Large writes bypass the buffer rather than being copied through it. */
    if (n >= b->cap) return fd_write_all(b->fd, c, n, b->timeout);
  }
  memcpy(b->x + b->end, c, n);
  b->end += n;
  return 0;
}

int buf_puts(buf *b, const char *s) { return buf_put(b, s, strlen(s)); }

int buf_putu(buf *b, unsigned long long u)
{
  char tmp[20];
  return buf_put(b, tmp, (size_t)(fmt_u(tmp, u, 0) - tmp));
}

int fd_nonblock(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

int pread_all(int fd, void *p, size_t n, off_t off)
{
  char *c = p;
  ssize_t r;

  while (n) {
    r = pread(fd, c, n, off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) { errno = EINVAL; return -1; }
    c += r;
    n -= (size_t)r;
    off += r;
  }
  return 0;
}

int fd_read_file(int fd, str *out, size_t max)
{
  out->len = 0;
  for (;;) {
    /* One byte past max, so that a file of exactly max bytes is whole. */
    size_t want = max - out->len + 1 < 65536 ? max - out->len + 1 : 65536;
    ssize_t r;
    if (str_readyplus(out, want) < 0) return -1;
    r = read(fd, out->s + out->len, want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) return 0;
    out->len += (size_t)r;
    if (out->len > max) { out->len = max; errno = EFBIG; return -1; }
  }
}

int file_read(const char *path, str *out, size_t max)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), r, e;

  out->len = 0;
  if (fd < 0) return -1;
  r = fd_read_file(fd, out, max);
  e = errno;
  close(fd);
  errno = e;
  return r;
}
