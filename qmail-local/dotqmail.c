/* .qmail file names and line syntax (dot-qmail(5)). Pure functions. */
#include <string.h>
#include "local.h"

/* ".qmail" dash ext[0..n) suffix, the extension lowercased with '.' as ':'
 * (so no extension can name "..": a name never leaves the home directory). */
static int build(str *out, const char *dash, const char *ext, size_t n, const char *suffix)
{
  size_t i;

  out->len = 0;
  if (str_cats(out, ".qmail") < 0 || str_cats(out, dash) < 0) return -1;
  for (i = 0; i < n; i++) {
    char c = ext[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    if (c == '.') c = ':';
    if (str_catc(out, c) < 0) return -1;
  }
  if (str_cats(out, suffix) < 0 || str_0(out) < 0) return -1;
  return 0;
}

int dq_candidate(str *out, const char *dash, const char *ext, unsigned i, long *deflen)
{
  size_t n = strlen(ext), k;
  unsigned seen = 0;   /* candidates before this one */

  /* Without a dash there is no extension: only ".qmail" itself. */
  if (!*dash) n = 0;
  if (!memchr(ext, '/', n)) {
    if (i == seen) {
      *deflen = -1;
      return build(out, dash, ext, n, "") < 0 ? -1 : 1;
    }
    seen++;
  }
  if (!*dash) return 0;
  /* Then each prefix ending just after a '-', longest first; prefix
   * length 0 ("default" alone) comes last. */
  for (k = n + 1; k-- > 0;) {
    if (k && ext[k - 1] != '-') continue;
    if (memchr(ext, '/', k)) continue;
    if (seen++ == i) {
      *deflen = (long)(n - k);
      return build(out, dash, ext, k, "default") < 0 ? -1 : 1;
    }
  }
  return 0;
}

static size_t rtrim(const char *s, size_t n)
{
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
  return n;
}

int dq_line(const char *s, size_t n, const char **arg, size_t *argn)
{
  if (!n || s[0] == '#') return DQ_SKIP;
  if (s[0] == '|') {
    *arg = s + 1;
    *argn = n - 1;
    return DQ_PROGRAM;
  }
  n = rtrim(s, n);
  if (!n) return DQ_SKIP;
  if (s[0] == '/' || s[0] == '.') {
    *arg = s;
    *argn = n;
    return s[n - 1] == '/' ? DQ_MAILDIR : DQ_MBOX;
  }
  if (s[0] == '&') { s++; n--; }
  *arg = s;
  *argn = n;
  return n ? DQ_FORWARD : DQ_SKIP;
}

const char *dq_extn(const char *ext, unsigned k)
{
  while (--k) {
    const char *d = strchr(ext, '-');
    if (!d) return "";
    ext = d + 1;
  }
  return ext;
}

size_t dq_hostn(const char *host, unsigned k)
{
  size_t n = strlen(host);

  while (--k) {
    while (n && host[n - 1] != '.') n--;
    if (!n) return 0;
    n--;
  }
  return n;
}
