#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"

/* Control files are small; anything over this is a configuration error
 * rather than something to read into memory. */
#define CONTROL_MAX (16u << 20)

int prefix_chdir(void) { return chdir(auto_prefix); }

static int slurp(str *out, const char *path)
{
  if (file_read(path, out, CONTROL_MAX) < 0) return errno == ENOENT ? 0 : -1;
  return 1;
}

static size_t trim(const char *s, size_t n)
{
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
  return n;
}

int control_line(str *out, const char *path)
{
  int r = slurp(out, path);
  char *nl;
  if (r <= 0) return r;
  nl = memchr(out->s, '\n', out->len);
  if (nl) out->len = (size_t)(nl - out->s);
  out->len = trim(out->s, out->len);
  return 1;
}

int control_ulong(unsigned long *out, const char *path, unsigned long def)
{
  str s = STR_INIT;
  unsigned long long u;
  int r = control_line(&s, path);

  if (r == 0) { *out = def; str_free(&s); return 0; }
  if (r > 0) {
    if (scan_ulong(s.s, s.len, &u) < 0 || u > (unsigned long)-1) { errno = EINVAL; r = -1; }
    else *out = (unsigned long)u;
  }
  str_free(&s);
  return r;
}

int control_lines(str *out, const char *path)
{
  str raw = STR_INIT;
  size_t i = 0;
  int r = slurp(&raw, path);

  out->len = 0;
  while (r > 0 && i < raw.len) {
    char *nl = memchr(raw.s + i, '\n', raw.len - i);
    size_t n = nl ? (size_t)(nl - (raw.s + i)) : raw.len - i;
    size_t t = trim(raw.s + i, n);
    if (t && raw.s[i] != '#')
      if (str_catb(out, raw.s + i, t) < 0 || str_catc(out, 0) < 0) r = -1;
    i += n + 1;
  }
  str_free(&raw);
  return r;
}

int cdb_getfd(int fd, const void *key, size_t klen, str *val)
{
  unsigned dlen;
  int r;

  val->len = 0;
  if (klen > 0xffffffffu) { errno = EINVAL; return -1; }
  r = cdb_seek(fd, key, (unsigned)klen, &dlen);
  if (r <= 0) { if (r < 0) errno = EIO; return r; }
  if (dlen > 0x7fffffffu) { errno = EFBIG; return -1; }
  if (str_ready(val, dlen) < 0 || cdb_bread(fd, val->s, (int)dlen) < 0) return -1;
  val->len = dlen;
  return 1;
}

int cdb_lookup(const char *path, const void *key, size_t klen, str *val)
{
  int fd, r, e;

  val->len = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  r = cdb_getfd(fd, key, klen, val);
  e = errno;
  close(fd);
  errno = e;
  return r;
}

int cdb_value(struct cdb *c, const void *key, size_t klen, const char **v, size_t *vn)
{
  int r;

  if (klen > 0xffffffffu) { errno = EINVAL; return -1; }
  r = cdb_find(c, key, (unsigned)klen);
  if (r <= 0) { if (r < 0) errno = EIO; return r; }
  *v = cdb_getdata(c);
  if (!*v) { errno = EIO; return -1; }
  *vn = cdb_datalen(c);
  return 1;
}

int scan_ulong(const char *s, size_t n, unsigned long long *out)
{
  unsigned long long u = 0;
  size_t i;

  if (!n) { errno = EINVAL; return -1; }
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') { errno = EINVAL; return -1; }
    if (__builtin_mul_overflow(u, 10, &u) || __builtin_add_overflow(u, (unsigned)(s[i] - '0'), &u)) {
      errno = EOVERFLOW;
      return -1;
    }
  }
  *out = u;
  return 0;
}
