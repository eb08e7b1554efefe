/* MTA-STS and TLS-RPT grammar and files shared by qmail-remote,
 * qmail-mtasts and qmail-tlsrpt (mtasts.h). */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "atomic.h"
#include "buf.h"
#include "control.h"
#include "mtasts.h"

static int is_alnum(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

/* Trims blanks (space, tab) around [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
  while (*n && (**s == ' ' || **s == '\t')) { (*s)++; (*n)--; }
  while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

static int key_is(const char *k, size_t kn, const char *want)
{
  return kn == strlen(want) && !strncmp(k, want, kn);
}

/* An mx pattern: a host name, optionally "*." then one. */
static int pattern_ok(const char *v, size_t n)
{
  size_t i = 0;
  if (n >= 2 && v[0] == '*' && v[1] == '.') i = 2;
  if (i == n || n >= STS_HOSTMAX) return 0;
  for (; i < n; i++)
    if (!is_alnum(v[i]) && v[i] != '-' && v[i] != '.' && v[i] != '_') return 0;
  return 1;
}

int sts_parse(const char *s, size_t n, struct sts_policy *p, const char **err)
{
  const char *end = s + n;
  int version = 0, age = 0;
  size_t i;

  memset(p, 0, sizeof *p);
  while (s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s)), *colon;
    const char *next = nl ? nl + 1 : end, *v;
    size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s), kn, vn;
    if (len && s[len - 1] == '\r') len--;
    colon = memchr(s, ':', len);
    if (len && !colon) { *err = "a line without a colon"; return -1; }
    if (len) {
      kn = (size_t)(colon - s);
      v = colon + 1;
      vn = len - kn - 1;
      trim(&v, &vn);
      if (key_is(s, kn, "version")) {
        if (vn != 5 || strncmp(v, "STSv1", 5)) { *err = "version is not STSv1"; return -1; }
        version = 1;
      } else if (key_is(s, kn, "mode")) {
        if (vn == 7 && !strncmp(v, "enforce", 7)) p->mode = STS_MODE_ENFORCE;
        else if (vn == 7 && !strncmp(v, "testing", 7)) p->mode = STS_MODE_TESTING;
        else if (vn == 4 && !strncmp(v, "none", 4)) p->mode = STS_MODE_NONE;
        else { *err = "mode is not enforce, testing or none"; return -1; }
      } else if (key_is(s, kn, "max_age")) {
        unsigned long long a;
        if (!vn || vn > 10 || scan_ulong(v, vn, &a) < 0) { *err = "max_age is not a number"; return -1; }
        p->max_age = a > STS_MAXAGE_MAX ? STS_MAXAGE_MAX : (unsigned long)a;
        age = 1;
      } else if (key_is(s, kn, "mx")) {
        if (!pattern_ok(v, vn)) { *err = "an mx pattern is not a host name"; return -1; }
        if (p->nmx < STS_MXMAX) {
          for (i = 0; i < vn; i++) p->mx[p->nmx][i] = lower(v[i]);
          p->mx[p->nmx][vn] = 0;
          p->nmx++;
        }
      }
    }
    s = next;
  }
  if (!version) { *err = "no version"; return -1; }
  if (!p->mode) { *err = "no mode"; return -1; }
  if (!age) { *err = "no max_age"; return -1; }
  if (p->mode != STS_MODE_NONE && !p->nmx) { *err = "no mx"; return -1; }
  return 0;
}

int sts_mx_match(const struct sts_policy *p, const char *host)
{
  size_t hl = strlen(host), i, pl;
  const char *dot;

  if (hl && host[hl - 1] == '.') hl--;
  for (i = 0; i < p->nmx; i++) {
    const char *m = p->mx[i];
    pl = strlen(m);
    if (m[0] == '*') {
      /* "*.example.net" stands for exactly one label before example.net. */
      dot = memchr(host, '.', hl);
      if (!dot || dot == host) continue;
      if ((size_t)(host + hl - dot) == pl - 1 && !strncasecmp(dot, m + 1, pl - 1)) return 1;
    } else if (pl == hl && !strncasecmp(host, m, hl)) {
      return 1;
    }
  }
  return 0;
}

/* The fields of a "v=...; k=v; ..." record: calls each for every
 * key=value after v, both trimmed; 1 if v's value was want. */
static int tag_record(const char *txt, size_t len, const char *want,
                      int (*each)(const char *k, size_t kn, const char *v, size_t vn, void *ctx), void *ctx)
{
  const char *end = txt + len, *p = txt;
  int first = 1, r = 1;

  while (p < end) {
    const char *semi = memchr(p, ';', (size_t)(end - p)), *eq, *k = p, *v;
    size_t n = semi ? (size_t)(semi - p) : (size_t)(end - p), kn, vn;
    p += n + (semi ? 1 : 0);
    trim(&k, &n);
    if (!n) continue;
    eq = memchr(k, '=', n);
    if (!eq) { if (first) return 0; r = -1; continue; }
    kn = (size_t)(eq - k);
    v = eq + 1;
    vn = n - kn - 1;
    trim(&k, &kn);
    trim(&v, &vn);
    if (first) {
      if (!key_is(k, kn, "v") || vn != strlen(want) || strncmp(v, want, vn)) return 0;
      first = 0;
      continue;
    }
    if (each(k, kn, v, vn, ctx) < 0) r = -1;
  }
  return first ? 0 : r;
}

static int id_field(const char *k, size_t kn, const char *v, size_t vn, void *ctx)
{
  char *id = ctx;
  size_t i;
  if (!key_is(k, kn, "id")) return 0;
  if (!vn || vn >= STS_IDMAX) return -1;
  for (i = 0; i < vn; i++)
    if (!is_alnum(v[i])) return -1;
  memcpy(id, v, vn);
  id[vn] = 0;
  return 0;
}

int sts_txt_id(const char *txt, size_t len, char id[STS_IDMAX])
{
  int r;
  id[0] = 0;
  r = tag_record(txt, len, "STSv1", id_field, id);
  if (r == 1 && !id[0]) return -1;
  return r;
}

int sts_txt_collect(const char *txt, size_t len, void *ctx)
{
  char id[STS_IDMAX], *out = ctx;
  if (sts_txt_id(txt, len, id) != 1) return 0;
  if (out[0]) out[0] = 1;
  else memcpy(out, id, STS_IDMAX);
  return 0;
}

static int rua_field(const char *k, size_t kn, const char *v, size_t vn, void *ctx)
{
  str *rua = ctx;
  if (!key_is(k, kn, "rua")) return 0;
  if (rua->len && str_catc(rua, ',') < 0) return -1;
  return str_catb(rua, v, vn);
}

int rpt_txt_rua(const char *txt, size_t len, str *rua)
{
  return tag_record(txt, len, "TLSRPTv1", rua_field, rua) == 1;
}

int sts_domain_ok(const char *domain, char out[STS_HOSTMAX])
{
  size_t n = strlen(domain), i;
  if (n && domain[n - 1] == '.') n--;
  if (!n || n >= STS_HOSTMAX || domain[0] == '.' || domain[0] == '-') return 0;
  for (i = 0; i < n; i++) {
    char c = domain[i];
    if (!is_alnum(c) && c != '-' && c != '.') return 0;
    if (c == '.' && (i + 1 == n || domain[i + 1] == '.')) return 0;
    out[i] = lower(c);
  }
  out[n] = 0;
  return 1;
}

int sts_cache_read(const char *domain, struct sts_cached *c)
{
  str path = STR_INIT;
  const char *nl, *sp1, *sp2, *err;
  unsigned long long t;
  size_t hl;
  int r = -1;

  c->body.len = 0;
  if (str_copys(&path, STS_CACHEDIR "/") < 0 || str_cats(&path, domain) < 0 || str_0(&path) < 0) goto out;
  if (file_read(path.s, &c->body, STS_POLICYMAX + 128) < 0) { r = errno == ENOENT ? 0 : -1; goto out; }
  nl = memchr(c->body.s, '\n', c->body.len);
  if (!nl || c->body.len < 5 || memcmp(c->body.s, "STS1 ", 5)) goto out;
  hl = (size_t)(nl - c->body.s);
  sp1 = c->body.s + 4;
  sp2 = memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1));
  if (!sp2 || scan_ulong(sp1 + 1, (size_t)(sp2 - sp1 - 1), &t) < 0) goto out;
  if ((size_t)(nl - sp2 - 1) >= STS_IDMAX) goto out;
  memcpy(c->id, sp2 + 1, (size_t)(nl - sp2 - 1));
  c->id[nl - sp2 - 1] = 0;
  c->fetched = t;
  memmove(c->body.s, nl + 1, c->body.len - hl - 1);
  c->body.len -= hl + 1;
  if (sts_parse(c->body.s, c->body.len, &c->p, &err) < 0) goto out;
  r = 1;
out:
  str_free(&path);
  return r;
}

int sts_cache_write(const char *domain, unsigned long long now, const char *id,
                    const char *body, size_t n)
{
  str s = STR_INIT;
  int r = -1;
  if (str_copys(&s, "STS1 ") == 0 && str_catu(&s, now) == 0 && str_catc(&s, ' ') == 0 &&
      str_cats(&s, id) == 0 && str_catc(&s, '\n') == 0 && str_catb(&s, body, n) == 0)
    r = atomic_write(STS_CACHEDIR, domain, s.s, s.len, 0640);
  str_free(&s);
  return r;
}

void rpt_day(char out[11], unsigned long long t)
{
  struct tm tm;
  time_t tt = (time_t)t;
  if (!gmtime_r(&tt, &tm) || !strftime(out, 11, "%Y-%m-%d", &tm)) memcpy(out, "1970-01-01", 11);
}
