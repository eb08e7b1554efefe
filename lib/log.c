#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "log.h"

/* One fixed buffer: logging allocates nothing and cannot fail the caller. */
static char line[2048];
static size_t len;

static void put(const char *p, size_t n)
{
  if (n > sizeof line - 4 - len) { n = sizeof line - 4 - len; }
  memcpy(line + len, p, n);
  len += n;
}

static int needs_quote(const char *v, unsigned long n)
{
  unsigned long i;
  if (!n) return 1;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 127) return 1;
  }
  return 0;
}

void log_begin(const char *prog, const char *event)
{
  len = 0;
  put(prog, strlen(prog));
  log_kv("event", event);
}

void log_kb(const char *key, const char *v, unsigned long n)
{
  static const char hex[] = "0123456789abcdef";
  unsigned long i;

  put(" ", 1);
  put(key, strlen(key));
  put("=", 1);
  if (!needs_quote(v, n)) { put(v, n); return; }
  put("\"", 1);
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < ' ' || c == 127) {
      char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
      put(e, 4);
    } else if (c == '"' || c == '\\') {
      char e[2] = { '\\', (char)c };
      put(e, 2);
    } else {
      put((const char *)&c, 1);
    }
  }
  put("\"", 1);
}

void log_kv(const char *key, const char *value)
{
  log_kb(key, value ? value : "", value ? strlen(value) : 0);
}

void log_ku(const char *key, unsigned long long u)
{
  char tmp[24];
  size_t i = sizeof tmp;
  do { tmp[--i] = (char)('0' + u % 10); u /= 10; } while (u);
  put(" ", 1);
  put(key, strlen(key));
  put("=", 1);
  put(tmp + i, sizeof tmp - i);
}

void log_end(void)
{
  ssize_t w;
  size_t off = 0;

  if (len == sizeof line - 4) { memcpy(line + len, "...", 3); len += 3; }
  line[len++] = '\n';
  while (off < len) {
    w = write(2, line + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
  len = 0;
}

void log_fatal(const char *prog, int code, const char *msg)
{
  int e = errno;
  log_begin(prog, "fatal");
  log_kv("msg", msg);
  if (e) log_kv("error", strerror(e));
  log_end();
  _exit(code);
}
