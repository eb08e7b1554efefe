/* Pure SMTP parsing for qmail-smtpd (see proto.h). */
#include <stdint.h>
#include <string.h>
#include "dsnparam.h"
#include "proto.h"

static const char *const verbs[V_NVERBS] = {
  [V_HELO] = "HELO", [V_EHLO] = "EHLO", [V_MAIL] = "MAIL", [V_RCPT] = "RCPT",
  [V_DATA] = "DATA", [V_BDAT] = "BDAT", [V_RSET] = "RSET", [V_NOOP] = "NOOP",
  [V_QUIT] = "QUIT", [V_VRFY] = "VRFY", [V_EXPN] = "EXPN", [V_HELP] = "HELP",
  [V_STARTTLS] = "STARTTLS", [V_AUTH] = "AUTH",
};

static unsigned char lower(unsigned char c)
{
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static int same_ci(const char *a, const char *b, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++)
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
  return 1;
}

int cmd_parse(const char *line, size_t n, struct cmd *c)
{
  size_t i, vlen, body;
  int v;

  c->verb = V_UNKNOWN;
  c->arg = "";
  c->arglen = 0;
  if (memchr(line, 0, n)) return CMD_NUL;
  if (n < 2 || line[n - 1] != '\n' || line[n - 2] != '\r') return CMD_BARELF;
  body = n - 2;
  if (memchr(line, '\r', body)) return CMD_BARECR;
  if (memchr(line, '\n', body)) return CMD_BARELF;
  for (vlen = 0; vlen < body && line[vlen] != ' '; vlen++) ;
  for (v = 1; v < V_NVERBS; v++)
    if (strlen(verbs[v]) == vlen && same_ci(line, verbs[v], vlen)) { c->verb = v; break; }
  i = vlen < body ? vlen + 1 : vlen;
  c->arg = line + i;
  c->arglen = body - i;
  return CMD_OK;
}

size_t cmd_prefix(const char *arg, size_t n, const char *word)
{
  size_t w = strlen(word);
  if (n < w || !same_ci(arg, word, w)) return 0;
  while (w < n && arg[w] == ' ') w++;
  return w;
}

static int keychar(unsigned char c, int first)
{
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return 1;
  return !first && c == '-';
}

static int scan_num(const char *s, size_t n, unsigned long long *out)
{
  unsigned long long u = 0;
  size_t i;
  if (n == 0 || n > 19) return -1;     /* 19 digits always fit in 64 bits */
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    u = u * 10 + (unsigned)(s[i] - '0');
  }
  *out = u;
  return 0;
}

/* One keyword: check it against what EHLO offers. */
static int one_param(const char *k, size_t kn, const char *v, size_t vn, int hasv,
                     struct mailparams *p)
{
  if (kn == 4 && same_ci(k, "SIZE", 4)) {
    if (!hasv || p->has_size || scan_num(v, vn, &p->size) < 0) return PARAM_SYNTAX;
    p->has_size = 1;
    return PARAM_OK;
  }
  if (kn == 4 && same_ci(k, "BODY", 4)) {
    if (!hasv) return PARAM_SYNTAX;
    if (vn == 4 && same_ci(v, "7BIT", 4)) { p->body8 = 0; return PARAM_OK; }
    if (vn == 8 && same_ci(v, "8BITMIME", 8)) { p->body8 = 1; return PARAM_OK; }
    return PARAM_UNKNOWN;              /* BINARYMIME is not offered */
  }
  if (kn == 8 && same_ci(k, "SMTPUTF8", 8)) {
    if (hasv) return PARAM_SYNTAX;
    p->utf8 = 1;
    return PARAM_OK;
  }
  return PARAM_UNKNOWN;
}

/* A DSN keyword kw (DSNP_*) with its value: checks it, and that it was
 * not given before (bit kw of *seen). */
static int dsn_value(int kw, const char *v, size_t vn, int hasv, unsigned *seen,
                     unsigned *bits, const char **why)
{
  if (!hasv) return PARAM_SYNTAX;
  if (*seen & (1u << kw)) { *why = "a DSN parameter is given twice"; return PARAM_DSN; }
  *seen |= 1u << kw;
  *why = dsnp_check(kw, v, vn, bits);
  return *why ? PARAM_DSN : PARAM_OK;
}

static int mail_param(const char *k, size_t kn, const char *v, size_t vn, int hasv, void *arg)
{
  struct mailparams *p = arg;
  unsigned seen = (p->ret ? 1u << DSNP_RET : 0) | (p->envid ? 1u << DSNP_ENVID : 0), bits;
  int kw = dsnp_keyword(k, kn), r;

  if (kw != DSNP_RET && kw != DSNP_ENVID) return one_param(k, kn, v, vn, hasv, p);
  r = dsn_value(kw, v, vn, hasv, &seen, &bits, &p->why);
  if (r != PARAM_OK) return r;
  if (kw == DSNP_RET) p->ret = bits;
  else { p->envid = v; p->envidn = vn; }
  return PARAM_OK;
}

static int rcpt_param(const char *k, size_t kn, const char *v, size_t vn, int hasv, void *arg)
{
  struct rcptparams *p = arg;
  unsigned seen = (p->notify ? 1u << DSNP_NOTIFY : 0) | (p->orcpt ? 1u << DSNP_ORCPT : 0), bits;
  int kw = dsnp_keyword(k, kn), r;

  if (kw != DSNP_NOTIFY && kw != DSNP_ORCPT) return PARAM_UNKNOWN;
  r = dsn_value(kw, v, vn, hasv, &seen, &bits, &p->why);
  if (r != PARAM_OK) return r;
  if (kw == DSNP_NOTIFY) p->notify = bits;
  else { p->orcpt = v; p->orcptn = vn; }
  return PARAM_OK;
}

/* Splits " KEY[=VALUE]..." and hands each to one; the first error. */
static int each_param(const char *s, size_t n,
                      int (*one)(const char *, size_t, const char *, size_t, int, void *), void *p)
{
  size_t i = 0;

  while (i < n) {
    size_t k, kn, v = 0, vn = 0;
    int hasv = 0, r;
    if (s[i] != ' ') return PARAM_SYNTAX;
    while (i < n && s[i] == ' ') i++;
    if (i == n) break;                 /* trailing spaces are tolerated */
    k = i;
    while (i < n && keychar((unsigned char)s[i], i == k)) i++;
    kn = i - k;
    if (!kn) return PARAM_SYNTAX;
    if (i < n && s[i] == '=') {
      hasv = 1;
      v = ++i;
      while (i < n && (unsigned char)s[i] >= 33 && (unsigned char)s[i] <= 126 && s[i] != '=') i++;
      vn = i - v;
      if (!vn) return PARAM_SYNTAX;
    }
    if (i < n && s[i] != ' ') return PARAM_SYNTAX;
    r = one(s + k, kn, s + v, vn, hasv, p);
    if (r != PARAM_OK) return r;
  }
  return PARAM_OK;
}

int mail_params(const char *s, size_t n, struct mailparams *p)
{
  memset(p, 0, sizeof *p);
  return each_param(s, n, mail_param, p);
}

int rcpt_params(const char *s, size_t n, struct rcptparams *p)
{
  memset(p, 0, sizeof *p);
  return each_param(s, n, rcpt_param, p);
}

int bdat_parse(const char *arg, size_t n, unsigned long long *size, int *last)
{
  size_t i = 0;
  while (i < n && arg[i] >= '0' && arg[i] <= '9') i++;
  if (scan_num(arg, i, size) < 0) return -1;
  *last = 0;
  if (i == n) return 0;
  if (n - i == 5 && arg[i] == ' ' && same_ci(arg + i + 1, "LAST", 4)) { *last = 1; return 0; }
  return -1;
}

/* Decoder states. BOL is reached only through a real CRLF (or at the
 * start), which is what makes the end marker unambiguous. */
enum { S_BOL, S_MID, S_CR, S_DOT, S_DOTCR };

void dd_init(struct dd *d, int chunking)
{
  d->state = S_BOL;
  d->chunking = chunking;
  d->flags = 0;
  d->linelen = 0;
}

static void count(struct dd *d, size_t k)
{
  d->linelen = d->linelen > TEXT_MAX ? d->linelen : d->linelen + k;
  if (d->linelen > TEXT_MAX) d->flags |= DD_LONG;
}

/* Whether one of the 8 bytes of w is CR, LF or NUL: (x - 0x01..) & ~x &
 * 0x80.. is nonzero exactly when some byte of x is zero, applied to w and
 * to w with every byte XORed with CR, then LF. */
static int special8(uint64_t w)
{
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  uint64_t cr = w ^ (ones * '\r'), lf = w ^ (ones * '\n');
  return ((((w - ones) & ~w) | ((cr - ones) & ~cr) | ((lf - ones) & ~lf)) & highs) != 0;
}

/* The bytes of in[0..n) before the first CR, LF or NUL: in the middle of
 * a line they are copied as they are, so the state machine below sees
 * only the bytes that can change its state. Linear whatever the input:
 * 8 bytes at a time, then one at a time within the word that has one. */
static size_t plain(const char *in, size_t n)
{
  size_t k = 0;
  uint64_t w;
  for (; n - k >= 8; k += 8) {
    memcpy(&w, in + k, 8);
    if (special8(w)) break;
  }
  while (k < n && in[k] != '\r' && in[k] != '\n' && in[k] != 0) k++;
  return k;
}

size_t dd_feed(struct dd *d, const char *in, size_t n, char *out, size_t *outlen, int *done)
{
  size_t i, o = 0, k;

  *done = 0;
  for (i = 0; i < n; i++) {
    char c;
    if (d->state == S_MID && (k = plain(in + i, n - i))) {
      memcpy(out + o, in + i, k);
      o += k;
      count(d, k);
      i += k;
      if (i == n) break;
    }
    c = in[i];
    if (c == 0) d->flags |= DD_NUL;
    switch (d->state) {
    case S_DOTCR:
      if (c == '\n') { *outlen = o; *done = 1; return i + 1; }
      /* ".\r" then something else: the dot was stuffing, the CR is bare. */
      d->flags |= DD_BARECR;
      out[o++] = '\r';
      count(d, 1);
      d->state = S_MID;
      break;
    case S_CR:
      if (c == '\n') {
        out[o++] = '\n';
        count(d, 2);
        d->linelen = 0;
        d->state = S_BOL;
        continue;
      }
      d->flags |= DD_BARECR;
      out[o++] = '\r';
      count(d, 1);
      d->state = S_MID;
      break;
    case S_BOL:
      if (c == '.' && !d->chunking) { d->state = S_DOT; continue; }
      d->state = S_MID;
      break;
    case S_DOT:
      if (c == '\r') { d->state = S_DOTCR; continue; }
      d->state = S_MID;                /* the first dot was stuffing */
      break;
    default:
      break;
    }
    /* S_MID, with c not yet consumed. */
    if (c == '\r') { d->state = S_CR; continue; }
    if (c == '\n') {
      /* A bare LF ends nothing: the next byte is not at a line start. */
      d->flags |= DD_BARELF;
      out[o++] = '\n';
      d->linelen = 0;
      continue;
    }
    out[o++] = c;
    count(d, 1);
  }
  *outlen = o;
  return n;
}

unsigned dd_finish(struct dd *d)
{
  if (d->state == S_CR || d->state == S_DOTCR) d->flags |= DD_BARECR;
  return d->flags;
}
