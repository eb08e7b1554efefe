/* The Public Suffix List: a sorted array of rules and binary search. A
 * lookup tries each suffix of the domain (at most 127 labels) against the
 * rule set, so its cost is a few hundred string compares, whatever the
 * list holds. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "psl.h"

#define PSL_RULE_MAX 1100        /* a domain (255) in A-labels, with "!" */
#define PSL_FILE_MAX (16u << 20) /* the list is about 250 KB */

static int cmp(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* --- Punycode (RFC 3492), for rules written in U-labels ----------------- */

enum { PB = 36, PTMIN = 1, PTMAX = 26, PSKEW = 38, PDAMP = 700 };

static uint32_t adapt(uint32_t delta, uint32_t points, int first)
{
  uint32_t k = 0;
  delta = first ? delta / PDAMP : delta / 2;
  delta += delta / points;
  while (delta > ((PB - PTMIN) * PTMAX) / 2) { delta /= PB - PTMIN; k += PB; }
  return k + (PB - PTMIN + 1) * delta / (delta + PSKEW);
}

static int digit(str *out, uint32_t d)
{
  return str_catc(out, (char)(d < 26 ? 'a' + d : '0' + d - 26));
}

/* Appends the Punycode of cp[0..n) (n <= 64, so no sum can overflow). */
static int puny(str *out, const uint32_t *cp, uint32_t n)
{
  uint32_t i, b = 0, h, m, q, k, t, cur = 128, delta = 0, bias = 72;

  for (i = 0; i < n; i++)
    if (cp[i] < 128 && str_catc(out, (char)cp[i]) < 0) return -1;
    else if (cp[i] < 128) b++;
  if (b && str_catc(out, '-') < 0) return -1;
  for (h = b; h < n; delta++, cur++) {
    for (m = UINT32_MAX, i = 0; i < n; i++)
      if (cp[i] >= cur && cp[i] < m) m = cp[i];
    if ((m - cur) > (UINT32_MAX - delta) / (h + 1)) return -1;
    delta += (m - cur) * (h + 1);
    cur = m;
    for (i = 0; i < n; i++) {
      if (cp[i] < cur) delta++;
      if (cp[i] != cur) continue;
      for (q = delta, k = PB;; k += PB) {
        t = k <= bias ? PTMIN : k >= bias + PTMAX ? PTMAX : k - bias;
        if (q < t) break;
        if (digit(out, t + (q - t) % (PB - t)) < 0) return -1;
        q = (q - t) / (PB - t);
      }
      if (digit(out, q) < 0) return -1;
      bias = adapt(delta, h + 1, h == b);
      delta = 0;
      h++;
    }
  }
  return 0;
}

/* Decodes one UTF-8 sequence at s[0..n): its length, or 0 if invalid. */
static size_t utf8(const unsigned char *s, size_t n, uint32_t *c)
{
  size_t len, i;
  uint32_t min;

  if (s[0] < 0x80) { *c = s[0]; return 1; }
  if ((s[0] & 0xe0) == 0xc0) { len = 2; *c = s[0] & 0x1f; min = 0x80; }
  else if ((s[0] & 0xf0) == 0xe0) { len = 3; *c = s[0] & 0x0f; min = 0x800; }
  else if ((s[0] & 0xf8) == 0xf0) { len = 4; *c = s[0] & 0x07; min = 0x10000; }
  else return 0;
  if (len > n) return 0;
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    *c = *c << 6 | (s[i] & 0x3f);
  }
  return *c < min || *c > 0x10ffff || (*c >= 0xd800 && *c < 0xe000) ? 0 : len;
}

/* The rule r[0..n) with each non-ASCII label as "xn--" Punycode. */
static int alabels(str *out, const char *r, size_t n)
{
  size_t i = 0, j, k;
  uint32_t cp[64], m;

  while (i <= n) {
    for (j = i; j < n && r[j] != '.'; j++) {}
    for (k = i; k < j && (unsigned char)r[k] < 0x80; k++) {}
    if (k == j) {
      if (str_catb(out, r + i, j - i) < 0) return -1;
    } else {
      for (m = 0, k = i; k < j; m++) {
        size_t l = m < 64 ? utf8((const unsigned char *)r + k, j - k, &cp[m]) : 0;
        if (!l) { errno = EINVAL; return -1; }
        k += l;
      }
      if (str_cats(out, "xn--") < 0 || puny(out, cp, m) < 0) return -1;
    }
    if (j < n && str_catc(out, '.') < 0) return -1;
    i = j + 1;
  }
  return 0;
}

/* --- loading -------------------------------------------------------------- */

static int rule_ok(const char *r, size_t n)
{
  size_t i = 0, s;
  if (n && r[0] == '!') i = 1;
  if (n - i >= 2 && r[i] == '*' && r[i + 1] == '.') i += 2;
  if (i >= n || n > PSL_RULE_MAX / 4) return 0;
  for (s = i; i < n; i++) {
    unsigned char c = (unsigned char)r[i];
    if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
          (c == '.' && i > s && i + 1 < n && r[i + 1] != '.')))
      return 0;
  }
  return 1;
}

/* Whether the rule r[0..n) can apply to a domain of only (a list ending
 * in 0; none means all): whether their rightmost labels are equal. */
static int wanted(const char *r, size_t n, const char *const *only)
{
  const char *t;
  size_t tn;

  if (!only) return 1;
  t = memrchr(r, '.', n);
  t = t ? t + 1 : r;
  tn = n - (size_t)(t - r);
  for (; *only; only++) {
    const char *d = strrchr(*only, '.');
    d = d ? d + 1 : *only;
    if (strlen(d) == tn && !strncasecmp(d, t, tn)) return 1;
  }
  return 0;
}

/* Appends rule r[0..n), lower-cased, NUL-terminated, and its A-label form
 * too when it has non-ASCII labels; neither when the rule is not wanted. */
static int add_rule(str *out, char *r, size_t n, size_t *count, const char *const *only)
{
  size_t i, ascii = 1, mark = out->len, a;

  for (i = 0; i < n; i++) {
    if (r[i] >= 'A' && r[i] <= 'Z') r[i] = (char)(r[i] + 32);
    if ((unsigned char)r[i] >= 0x80) ascii = 0;
  }
  if (!rule_ok(r, n)) { errno = EINVAL; return -1; }
  if (ascii && !wanted(r, n, only)) return 0;
  if (str_catb(out, r, n) < 0 || str_catc(out, 0) < 0) return -1;
  ++*count;
  if (ascii) return 0;
  a = out->len;
  if (alabels(out, r, n) < 0 || str_catc(out, 0) < 0) return -1;
  if (!wanted(r, n, only) && !wanted(out->s + a, out->len - a - 1, only)) {
    out->len = mark;
    --*count;
    return 0;
  }
  ++*count;
  return 0;
}

int psl_load(struct psl *p, const char *path, const char *const *only)
{
  str raw = STR_INIT;
  size_t i, count = 0, seen = 0;
  int r = file_read(path, &raw, PSL_FILE_MAX) < 0 ? -1 : 1;

  p->n = 0;
  p->buf.len = 0;
  /* The lines are taken in place: each is a rule up to its first blank,
   * or a comment ("//"), or empty. */
  for (i = 0; r > 0 && i < raw.len;) {
    char *l = raw.s + i, *nl = memchr(l, '\n', raw.len - i);
    size_t len = nl ? (size_t)(nl - l) : raw.len - i, n;
    i += len + 1;
    for (n = 0; n < len && l[n] != ' ' && l[n] != '\t' && l[n] != '\r'; n++) {}
    if (!n || (n >= 2 && l[0] == '/' && l[1] == '/')) continue;
    seen++;
    if (add_rule(&p->buf, l, n, &count, only) < 0) r = -1;
  }
  str_free(&raw);
  if (r > 0 && !seen) { errno = EINVAL; r = -1; }
  if (r > 0 && count) {
    free(p->rule);
    p->rule = calloc(count, sizeof *p->rule);
    if (!p->rule) r = -1;
  }
  if (r <= 0) { psl_free(p); return -1; }
  for (i = 0; i < p->buf.len; i += strlen(p->buf.s + i) + 1) p->rule[p->n++] = p->buf.s + i;
  if (p->n) qsort(p->rule, p->n, sizeof *p->rule, cmp);
  return 0;
}

void psl_free(struct psl *p)
{
  str_free(&p->buf);
  free(p->rule);
  p->rule = 0;
  p->n = 0;
}

/* --- lookups -------------------------------------------------------------- */

/* Whether prefix followed by d[0..n), lower-cased, is a rule. */
static int has(const struct psl *p, const char *prefix, const char *d, size_t n)
{
  char key[PSL_RULE_MAX + 3];
  const char *k = key;
  size_t i, pl = strlen(prefix);

  if (pl + n >= sizeof key) return 0;
  memcpy(key, prefix, pl);
  for (i = 0; i < n; i++) key[pl + i] = (char)(d[i] >= 'A' && d[i] <= 'Z' ? d[i] + 32 : d[i]);
  key[pl + n] = 0;
  return p->n && bsearch(&k, p->rule, p->n, sizeof *p->rule, cmp) != 0;
}

/* The start of the label after the one at i, or n. */
static size_t next_label(const char *d, size_t n, size_t i)
{
  const char *dot = memchr(d + i, '.', n - i);
  return dot ? (size_t)(dot - d) + 1 : n;
}

size_t psl_suffix(const struct psl *p, const char *d, size_t n)
{
  size_t i, j, best = n;

  for (i = 0; i < n; i = next_label(d, n, i))
    if (has(p, "!", d + i, n - i)) return next_label(d, n, i);
  for (i = 0; i < n; i = j) {
    j = next_label(d, n, i);
    if (has(p, "", d + i, n - i) || (j < n && has(p, "*.", d + j, n - j))) return i;
    best = i;
  }
  return best;           /* the rule "*": the rightmost label */
}

size_t psl_orgdomain(const struct psl *p, const char *d, size_t n)
{
  size_t s = psl_suffix(p, d, n), i;

  if (s == 0) return 0;
  for (i = s - 1; i > 0 && d[i - 1] != '.'; i--) {}
  return i;
}
