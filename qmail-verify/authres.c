/* Authentication-Results (see authres.h). */
#include <string.h>
#include "authres.h"

int ar_header(str *out, const char *id, const str *frags, size_t nfrags)
{
  size_t i;
  if (str_cats(out, "Authentication-Results: ") || str_cats(out, id) || str_catc(out, ';'))
    return -1;
  if (!nfrags) return str_cats(out, " none\n");
  for (i = 0; i < nfrags; i++)
    if ((i && str_catc(out, ';')) || str_cats(out, "\n\t") || str_catb(out, frags[i].s, frags[i].len))
      return -1;
  return str_catc(out, '\n');
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Skips CFWS (RFC 5322 3.2.2) from i; n if a comment is unclosed. */
static size_t skip_cfws(const char *v, size_t n, size_t i)
{
  unsigned depth = 0;
  for (; i < n; i++) {
    char c = v[i];
    if (depth && c == '\\') { i++; continue; }
    if (c == '(') { depth++; continue; }
    if (depth && c == ')') { depth--; continue; }
    if (depth || c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    break;
  }
  return depth ? n : i;
}

/* RFC 2045 token characters. */
static int tokenchar(unsigned char c)
{
  return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?=", c);
}

int ar_claims(const char *v, size_t n, const char *id)
{
  size_t i = skip_cfws(v, n, 0), k = 0, idn = strlen(id);

  if (i >= n) return 0;
  if (v[i] == '"') {
    for (i++; i < n && v[i] != '"'; i++) {
      if (v[i] == '\\' && ++i >= n) return 0;
      if (v[i] == '\r' || v[i] == '\n') continue;       /* folding inside quotes */
      if (k >= idn || lower((unsigned char)v[i]) != lower((unsigned char)id[k])) return 0;
      k++;
    }
    if (i >= n) return 0;
    return k == idn && idn > 0;
  }
  /* a token; RFC 8601 authserv-ids are domain names, and '.' is a token
   * character, so the whole id is one token */
  for (; i < n && tokenchar((unsigned char)v[i]); i++, k++)
    if (k >= idn || lower((unsigned char)v[i]) != lower((unsigned char)id[k])) return 0;
  return k == idn && idn > 0;
}
