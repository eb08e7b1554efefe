/* /etc/aliases entries into dot-qmail lines (qmail-local/aliases.h). */
#include <string.h>
#include "aliases.h"
#include "rcptfind.h"

static int bad(const char **why, const char *w) { *why = w; return -1; }

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static int ctl(const char *s, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++)
    if (((unsigned char)s[i] < ' ' && s[i] != '\t') || s[i] == 127) return 1;
  return 0;
}

/* One value v[0..n), trimmed, appended to val as a dot-qmail line. */
static int value(const char *v, size_t n, str *val, const char **why)
{
  char kind = '&';

  if (n >= 2 && v[0] == '"' && v[n - 1] == '"') { v++; n -= 2; }
  if (!n) return bad(why, "empty value");
  if (n >= 9 && !strncmp(v, ":include:", 9)) return bad(why, ":include: is not supported");
  if (v[0] == '\\') return bad(why, "\\user is not supported: name the address");
  if (v[0] == '|') { kind = '|'; v++; n--; if (!n) return bad(why, "empty command"); }
  else if (v[0] == '/') kind = '/';
  else if (v[0] == '<' && v[n - 1] == '>') { v++; n -= 2; }
  if (kind == '&' && (!n || memchr(v, ' ', n) || memchr(v, '\t', n) || memchr(v, '"', n)))
    return bad(why, "not an address");
  if (kind == '/' && (memchr(v, ' ', n) || memchr(v, '\t', n))) return bad(why, "blank in a path");
  if ((kind == '&' && str_catc(val, '&') < 0) || (kind == '|' && str_catc(val, '|') < 0) ||
      str_catb(val, v, n) < 0 || str_catc(val, '\n') < 0)
    return bad(why, "out of memory");
  return 0;
}

int alias_entry(const char *s, size_t n, str *key, str *val, const char **why)
{
  const char *c = memchr(s, ':', n), *p, *end = s + n;
  size_t i, kn;

  if (ctl(s, n)) return bad(why, "control character in entry");
  if (!c) return bad(why, "expected name: value, ...");
  kn = (size_t)(c - s);
  while (kn && blank(s[kn - 1])) kn--;
  if (!kn) return bad(why, "empty name");
  key->len = 0;
  for (i = 0; i < kn; i++) {
    char ch = s[i];
    if (blank(ch) || ch == '@' || ch == '/' || ch == '"') return bad(why, "bad character in the name");
    if (str_catc(key, ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch) < 0) return bad(why, "out of memory");
  }
  val->len = 0;
  for (p = c + 1; p < end;) {
    const char *q = p;
    int quoted = 0;
    size_t vn;
    /* A value ends at a comma outside quotes. */
    while (q < end && (quoted || *q != ',')) { if (*q == '"') quoted = !quoted; q++; }
    if (quoted) return bad(why, "unbalanced quote");
    while (p < q && blank(*p)) p++;
    vn = (size_t)(q - p);
    while (vn && blank(p[vn - 1])) vn--;
    if (vn && value(p, vn, val, why) < 0) return -1;
    p = q + 1;
  }
  if (!val->len) return bad(why, "no value");
  if (val->len > RF_ALIAS_MAX) return bad(why, "entry too long");
  return 1;
}
