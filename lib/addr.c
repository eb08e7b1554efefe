/* RFC 5321 paths and mailboxes (see addr.h). A recursive-descent parser
 * over a byte range: every function takes [p, e) and returns the position
 * after what it accepted, or 0 when the input does not match. Nothing is
 * guessed: an input is either exactly one of the grammar's forms or it is
 * refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include "addr.h"

#define LOCAL_MAX 64
#define DOMAIN_MAX 255
#define LABEL_MAX 63
#define PATH_MAX_SMTP 256

/* Length of the valid UTF-8 sequence of 2..4 bytes at p (p < e, *p > 127),
 * or 0: no overlong forms, no surrogates, nothing over U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *e)
{
  size_t n, i;
  unsigned long c;

  if (p[0] >= 0xc2 && p[0] <= 0xdf) { n = 2; c = p[0] & 0x1fu; }
  else if (p[0] >= 0xe0 && p[0] <= 0xef) { n = 3; c = p[0] & 0x0fu; }
  else if (p[0] >= 0xf0 && p[0] <= 0xf4) { n = 4; c = p[0] & 0x07u; }
  else return 0;
  if ((size_t)(e - p) < n) return 0;
  for (i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    c = (c << 6) | (p[i] & 0x3fu);
  }
  if (n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) return 0;
  if (n == 4 && (c < 0x10000 || c > 0x10ffff)) return 0;
  return n;
}

static int atext(unsigned char c)
{
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != 0;
}

static int letdig(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* One non-ASCII character at p if UTF-8 is allowed; its length or 0. */
static size_t wide(const unsigned char *p, const unsigned char *e, unsigned flags)
{
  if (!(flags & ADDR_UTF8) || *p < 128) return 0;
  return utf8_seq(p, e);
}

/* Dot-string = Atom *("." Atom) */
static const unsigned char *dot_string(const unsigned char *p, const unsigned char *e,
                                       unsigned flags)
{
  for (;;) {
    const unsigned char *start = p;
    size_t w;
    while (p < e) {
      if (atext(*p)) p++;
      else if ((w = wide(p, e, flags)) != 0) p += w;
      else break;
    }
    if (p == start) return 0;          /* empty atom: leading, double or trailing dot */
    if (p == e || *p != '.') return p;
    p++;
  }
}

/* Quoted-string = DQUOTE *( qtextSMTP / quoted-pairSMTP ) DQUOTE */
static const unsigned char *quoted(const unsigned char *p, const unsigned char *e,
                                   unsigned flags)
{
  size_t w;

  p++;                                 /* the opening quote */
  while (p < e) {
    unsigned char c = *p;
    if (c == '"') return p + 1;
    if (c == '\\') {
      if (e - p < 2 || p[1] < 32 || p[1] > 126) return 0;
      p += 2;
    } else if (c >= 32 && c <= 126) {
      p++;
    } else if ((w = wide(p, e, flags)) != 0) {
      p += w;
    } else {
      return 0;
    }
  }
  return 0;
}

/* sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]. Labels
 * over 63 octets are refused outright (RFC 1035). */
static const unsigned char *domain(const unsigned char *p, const unsigned char *e,
                                   unsigned flags)
{
  for (;;) {
    const unsigned char *start = p;
    int last_hyphen = 0;
    size_t w;
    while (p < e) {
      if (letdig(*p)) { p++; last_hyphen = 0; }
      else if (*p == '-' && p != start) { p++; last_hyphen = 1; }
      else if ((w = wide(p, e, flags)) != 0) { p += w; last_hyphen = 0; }
      else break;
    }
    if (p == start || last_hyphen || p - start > LABEL_MAX) return 0;
    if (p == e || *p != '.') return p;
    p++;                               /* a dot must be followed by a label */
  }
}

/* ASCII-only case folding: bytes over 127 compare exactly. */
static int same_ci(const char *a, const char *b, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
    if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
    if (x != y) return 0;
  }
  return 1;
}

/* "[" ( IPv4-address-literal / "IPv6:" IPv6-addr ) "]"; general address
 * literals (other tags) are not understood and so refused. */
static const unsigned char *literal(const unsigned char *p, const unsigned char *e)
{
  const unsigned char *close = memchr(p, ']', (size_t)(e - p));
  char tmp[64];
  size_t n;
  int dots = 0;
  const unsigned char *q;

  if (!close) return 0;
  p++;
  n = (size_t)(close - p);
  if (n >= 5 && same_ci((const char *)p, "IPv6:", 5)) {
    unsigned char a6[16];
    n -= 5;
    if (n == 0 || n >= sizeof tmp) return 0;
    for (q = p + 5; q < close; q++)
      if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') || (*q >= 'A' && *q <= 'F')
            || *q == ':' || *q == '.')) return 0;
    memcpy(tmp, p + 5, n);
    tmp[n] = 0;
    return inet_pton(AF_INET6, tmp, a6) == 1 ? close + 1 : 0;
  }
  /* IPv4: four Snum of 1..3 digits, each at most 255. */
  q = p;
  for (;;) {
    unsigned v = 0;
    int digits = 0;
    while (q < close && *q >= '0' && *q <= '9' && digits < 4) { v = v * 10 + (unsigned)(*q - '0'); q++; digits++; }
    if (digits == 0 || digits > 3 || v > 255) return 0;
    if (q == close) break;
    if (*q != '.' || ++dots > 3) return 0;
    q++;
  }
  return dots == 3 ? close + 1 : 0;
}

static int any_high(const unsigned char *p, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++) if (p[i] > 127) return 1;
  return 0;
}

/* Mailbox at [p, e); *end receives where it stopped, for ADDR_LONG too
 * (the syntax was complete). Fills a->mbox unless a is NULL. */
static int mailbox(const unsigned char *p, const unsigned char *e, unsigned flags,
                   addr *a, const unsigned char **end)
{
  const unsigned char *start = p, *lend, *dstart;
  size_t local_len, dom_len = 0;
  int has_at = 0, isquoted = 0, isliteral = 0;

  if (p == e) return ADDR_BAD;
  if (*p == '"') { lend = quoted(p, e, flags); isquoted = 1; }
  else lend = dot_string(p, e, flags);
  if (!lend) return ADDR_BAD;
  local_len = (size_t)(lend - start);
  p = lend;
  if (p < e && *p == '@') {
    has_at = 1;
    dstart = ++p;
    if (p < e && *p == '[') { p = literal(p, e); isliteral = 1; }
    else p = domain(p, e, flags);
    if (!p) return ADDR_BAD;
    dom_len = (size_t)(p - dstart);
  } else if (!(flags & ADDR_NOAT)) {
    return ADDR_BAD;
  }
  *end = p;
  if (local_len > LOCAL_MAX || dom_len > DOMAIN_MAX) return ADDR_LONG;
  if (!a) return ADDR_OK;
  a->quoted = (unsigned)isquoted;
  a->literal = (unsigned)isliteral;
  if (str_copyb(&a->mbox, start, (size_t)(p - start)) < 0 || str_0(&a->mbox) < 0)
    return ADDR_NOMEM;
  a->at = has_at ? local_len : a->mbox.len;
  a->utf8 = any_high(start, (size_t)(p - start));
  return ADDR_OK;
}

/* A-d-l = At-domain *( "," At-domain ) ":" ; At-domain = "@" Domain */
static const unsigned char *route(const unsigned char *p, const unsigned char *e,
                                  unsigned flags)
{
  for (;;) {
    if (p == e || *p != '@') return 0;
    p = domain(p + 1, e, flags);
    if (!p || p == e) return 0;
    if (*p == ':') return p + 1;
    if (*p != ',') return 0;
    p++;
  }
}

static void reset(addr *a)
{
  a->mbox.len = 0;
  a->at = 0;
  a->route = a->quoted = a->literal = a->utf8 = 0;
}

int addr_path(const char *s, size_t n, unsigned flags, addr *a, size_t *used)
{
  const unsigned char *p = (const unsigned char *)s, *e = p + n, *end;
  int r;

  reset(a);
  if (n < 2 || *p != '<') return ADDR_BAD;
  p++;
  if (*p == '>') {
    if (!(flags & ADDR_EMPTY)) return ADDR_BAD;
    if (str_copyb(&a->mbox, "", 0) < 0 || str_0(&a->mbox) < 0) return ADDR_NOMEM;
    *used = 2;
    return ADDR_OK;
  }
  if (*p == '@') {
    p = route(p, e, flags);
    if (!p) return ADDR_BAD;
    a->route = 1;
  }
  r = mailbox(p, e, flags & ~ADDR_EMPTY, a, &end);
  if (r != ADDR_OK) { reset(a); return r; }
  if (end == e || *end != '>') { reset(a); return ADDR_BAD; }
  end++;
  if ((size_t)(end - (const unsigned char *)s) > PATH_MAX_SMTP) { reset(a); return ADDR_LONG; }
  *used = (size_t)(end - (const unsigned char *)s);
  return ADDR_OK;
}

int addr_mailbox(const char *s, size_t n, unsigned flags, addr *a)
{
  const unsigned char *p = (const unsigned char *)s, *end;
  int r;

  reset(a);
  r = mailbox(p, p + n, flags, a, &end);
  if (r != ADDR_OK) { reset(a); return r; }
  if (end != p + n) { reset(a); return ADDR_BAD; }
  if (n > PATH_MAX_SMTP - 2) { reset(a); return ADDR_LONG; }
  return ADDR_OK;
}

int addr_check(const char *s, size_t n, unsigned flags)
{
  const unsigned char *p = (const unsigned char *)s, *end = p;
  int r = mailbox(p, p + n, flags, 0, &end);

  if (r == ADDR_BAD || end != p + n) return ADDR_BAD;
  if (r == ADDR_LONG || n > PATH_MAX_SMTP - 2) return ADDR_LONG;
  return ADDR_OK;
}

void addr_free(addr *a)
{
  str_free(&a->mbox);
  reset(a);
}

int addr_domain_match(const char *d, size_t n, const char *p, size_t pn)
{
  if (pn == 0) return 0;
  if (p[0] == '.') {
    /* ".example.test" matches "a.example.test", not "example.test". */
    if (n <= pn) return 0;
    return same_ci(d + n - pn, p, pn);
  }
  return n == pn && same_ci(d, p, n);
}
