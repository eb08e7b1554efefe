#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "log.h"
#include "str.h"

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

/* One byte of a quoted value in its escaped form; returns its length. */
static size_t escape(unsigned char c, char e[4])
{
  static const char hex[] = "0123456789abcdef";
  if (c < ' ' || c == 127) {
    e[0] = '\\'; e[1] = 'x'; e[2] = hex[c >> 4]; e[3] = hex[c & 15];
    return 4;
  }
  if (c == '"' || c == '\\') { e[0] = '\\'; e[1] = (char)c; return 2; }
  e[0] = (char)c;
  return 1;
}

/* Whether v[0..n) ends in "...", the mark of a cut value. */
static int ends_in_mark(const char *v, unsigned long n)
{
  return n >= 3 && !memcmp(v + n - 3, "...", 3);
}

void log_kb(const char *key, const char *v, unsigned long n)
{
  unsigned long i;
  size_t out = 0;

  put(" ", 1);
  put(key, strlen(key));
  put("=", 1);
  if (n <= LOG_VALUE_MAX && !needs_quote(v, n)) { put(v, n); return; }
  put("\"", 1);
  for (i = 0; i < n; i++) {
    char e[4];
    size_t k = escape((unsigned char)v[i], e);
    /* A value's own final "..." is written "..\x2e", so that a quoted
     * value ending in "..." was always cut here. */
    if (i + 1 == n && ends_in_mark(v, n)) { memcpy(e, "\\x2e", 4); k = 4; }
    if (out + k > LOG_VALUE_MAX) { put("...", 3); break; }
    put(e, k);
    out += k;
  }
  put("\"", 1);
}

void log_kv(const char *key, const char *value)
{
  log_kb(key, value ? value : "", value ? strlen(value) : 0);
}

void log_ku(const char *key, unsigned long long u)
{
  char tmp[20];
  size_t n = (size_t)(fmt_u(tmp, u, 0) - tmp);
  put(" ", 1);
  put(key, strlen(key));
  put("=", 1);
  put(tmp, n);
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

static void fatal(const char *prog, int code, const char *msg, int e) __attribute__((noreturn));
static void fatal(const char *prog, int code, const char *msg, int e)
{
  log_begin(prog, "fatal");
  log_kv("msg", msg);
  if (e) log_kv("error", strerror(e));
  log_end();
  _exit(code);
}

void log_fatal(const char *prog, int code, const char *msg) { fatal(prog, code, msg, errno); }
void log_die(const char *prog, int code, const char *msg) { fatal(prog, code, msg, 0); }
void log_usage(const char *prog, const char *usage) { fatal(prog, EXIT_USAGE, usage, 0); }

void log_die_line(const char *prog, int code, const char *file, unsigned long no, const char *msg)
{
  log_begin(prog, "fatal");
  log_kv("file", file);
  log_ku("line", no);
  log_kv("msg", msg);
  log_end();
  _exit(code);
}
