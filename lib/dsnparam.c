/* RFC 3461 DSN parameters (dsnparam.h). */
#include <string.h>
#include <strings.h>
#include "dsnparam.h"

static int hexval(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Valid xtext whose decoded bytes are within lo..126 (lo 32: printable
 * ASCII); with any8 also bytes over 127, encoded or raw (RFC 6533's
 * UTF-8 ORCPT); never NUL, CR or LF. 1 or 0. */
static int xtext_ok(const char *s, size_t n, int lo, int any8)
{
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int d;
    if (c == '+') {
      if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) return 0;
      d = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
      i += 2;
      if (d == 0 || d == '\r' || d == '\n' || d < lo || (d > 126 && !any8)) return 0;
    } else if (c < 33 || c == 127 || (c > 127 && !any8) || c == '=') return 0;
  }
  return 1;
}

int dsnp_keyword(const char *k, size_t kn)
{
  if (kn == 3 && !strncasecmp(k, "RET", 3)) return DSNP_RET;
  if (kn == 5 && !strncasecmp(k, "ENVID", 5)) return DSNP_ENVID;
  if (kn == 6 && !strncasecmp(k, "NOTIFY", 6)) return DSNP_NOTIFY;
  if (kn == 5 && !strncasecmp(k, "ORCPT", 5)) return DSNP_ORCPT;
  return 0;
}

static const char *notify(const char *v, size_t n, unsigned *bits)
{
  static const struct { const char *w; unsigned b; } words[] = {
    { "NEVER", DSN_NOTIFY_NEVER }, { "SUCCESS", DSN_NOTIFY_SUCCESS },
    { "FAILURE", DSN_NOTIFY_FAILURE }, { "DELAY", DSN_NOTIFY_DELAY } };
  size_t i = 0, k;

  *bits = 0;
  if (!n) return "NOTIFY needs a value";
  while (i <= n) {
    const char *c = memchr(v + i, ',', n - i);
    size_t wn = c ? (size_t)(c - v) - i : n - i;
    for (k = 0; k < 4; k++)
      if (strlen(words[k].w) == wn && !strncasecmp(v + i, words[k].w, wn)) break;
    if (k == 4) return "NOTIFY takes NEVER, or SUCCESS, FAILURE and DELAY";
    if (*bits & words[k].b) return "NOTIFY names a value twice";
    *bits |= words[k].b;
    i += wn + 1;
  }
  if ((*bits & DSN_NOTIFY_NEVER) && *bits != DSN_NOTIFY_NEVER) return "NOTIFY=NEVER stands alone";
  return 0;
}

const char *dsnp_check(int kw, const char *v, size_t n, unsigned *bits)
{
  const char *semi;
  size_t i;

  *bits = 0;
  switch (kw) {
  case DSNP_RET:
    if (n == 4 && !strncasecmp(v, "FULL", 4)) { *bits = 'F'; return 0; }
    if (n == 4 && !strncasecmp(v, "HDRS", 4)) { *bits = 'H'; return 0; }
    return "RET takes FULL or HDRS";
  case DSNP_ENVID:
    if (!n || n > DSN_ENVID_MAX) return "ENVID must be 1 to 100 characters";
    return xtext_ok(v, n, 32, 0) ? 0 : "ENVID is not xtext of printable ASCII";
  case DSNP_NOTIFY:
    return notify(v, n, bits);
  case DSNP_ORCPT:
    if (!n || n > DSN_ORCPT_MAX) return "ORCPT must be 1 to 500 characters";
    semi = memchr(v, ';', n);
    if (!semi || semi == v) return "ORCPT needs <address type>;<address>";
    for (i = 0; v + i < semi; i++)
      if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
            (v[i] >= '0' && v[i] <= '9') || v[i] == '-'))
        return "ORCPT's address type is not an atom";
    if (semi + 1 == v + n) return "ORCPT needs an address";
    return xtext_ok(semi + 1, n - (size_t)(semi + 1 - v), 32, 1) ? 0 : "ORCPT's address is not xtext";
  }
  return "not a DSN parameter";
}

const char *dsnp_split(const char *s, size_t n, int *kw, const char **v, size_t *vn, unsigned *bits)
{
  const char *eq = memchr(s, '=', n);
  if (!eq) return "a DSN parameter needs a value";
  *kw = dsnp_keyword(s, (size_t)(eq - s));
  if (!*kw) return "not a DSN parameter";
  *v = eq + 1;
  *vn = n - (size_t)(eq + 1 - s);
  return dsnp_check(*kw, *v, *vn, bits);
}

int xtext_decode(str *out, const char *s, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (c == '+' && n - i >= 3 && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    }
    if (str_catc(out, c) < 0) return -1;
  }
  return 0;
}
