/* DMARC evaluation; the contract and what is followed are in dmarc.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "alist.h"
#include "control.h"
#include "dkim.h"
#include "dmarc.h"

/* --- the RFC5322.From domain ------------------------------------------ */

struct from_ctx {
  size_t count;
  int bad;
  char *dom;
};

static int one_from(void *ctx, const struct alist_addr *a)
{
  struct from_ctx *c = ctx;
  size_t i;

  if (++c->count > 1) return 1;
  if (!a->domain || a->literal || !a->dlen || a->dlen >= DNS_NAMEMAX - 8) { c->bad = 1; return 1; }
  for (i = 0; i < a->dlen; i++) {
    char ch = a->domain[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.')) { c->bad = 1; return 1; }
    c->dom[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
  }
  c->dom[i] = 0;
  return 0;
}

/* The value of field f: after the colon, without the final line end;
 * -1 if it has no colon (dkim_fields splits only fields that have). */
static int field_value(const char *msg, const struct dkim_field *f, const char **v, size_t *vn)
{
  const char *colon = memchr(msg + f->off, ':', f->len);
  size_t end = f->off + f->len;

  if (!colon) return -1;
  while (end > f->off && (msg[end - 1] == '\n' || msg[end - 1] == '\r')) end--;
  *v = colon + 1;
  *vn = end > (size_t)(*v - msg) ? end - (size_t)(*v - msg) : 0;
  return 0;
}

int dmarc_from(const char *msg, size_t n, char dom[DNS_NAMEMAX])
{
  struct dkim_field *f = calloc(DMARC_FIELDS_MAX, sizeof *f);
  struct from_ctx c = { 0, 0, dom };
  size_t nf, hl, i, which = 0, froms = 0;
  const char *v;
  size_t vn;
  int r;

  dom[0] = 0;
  if (!f) return DMARC_FROM_NOMEM;
  if (dkim_fields(msg, n, f, DMARC_FIELDS_MAX, &nf, &hl) < 0) { free(f); return DMARC_FROM_BAD; }
  for (i = 0; i < nf; i++)
    if (f[i].nlen == 4 && !strncasecmp(msg + f[i].off, "from", 4)) { froms++; which = i; }
  if (froms != 1) { free(f); return froms ? DMARC_FROM_MANY : DMARC_FROM_NONE; }
  r = field_value(msg, &f[which], &v, &vn);
  free(f);
  if (r < 0) return DMARC_FROM_BAD;
  r = alist_parse(v, vn, one_from, &c, 0);
  if (r == ALIST_NOMEM) return DMARC_FROM_NOMEM;
  if (c.bad || r == ALIST_BAD) { dom[0] = 0; return DMARC_FROM_BAD; }
  if (c.count != 1) { dom[0] = 0; return DMARC_FROM_ADDRS; }
  return DMARC_FROM_OK;
}

const char *dmarc_from_why(int r)
{
  switch (r) {
  case DMARC_FROM_OK: return "ok";
  case DMARC_FROM_NONE: return "no_from";
  case DMARC_FROM_MANY: return "multiple_from";
  case DMARC_FROM_ADDRS: return "multiple_addresses";
  case DMARC_FROM_NOMEM: return "nomem";
  default: return "bad_from";
  }
}

/* --- records ------------------------------------------------------------ */

static size_t skip_wsp(const char *s, size_t n, size_t i)
{
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  return i;
}

/* Whether s[0..n) starts with the tag v=DMARC1 (6.6.3 step 3: exact). */
static int is_dmarc(const char *s, size_t n)
{
  size_t i = skip_wsp(s, n, 0);
  if (i >= n || s[i] != 'v') return 0;
  i = skip_wsp(s, n, i + 1);
  if (i >= n || s[i] != '=') return 0;
  i = skip_wsp(s, n, i + 1);
  if (n - i < 6 || memcmp(s + i, "DMARC1", 6)) return 0;
  i = skip_wsp(s, n, i + 6);
  return i == n || s[i] == ';';
}

static int tag_is(const struct dkim_tag *t, const char *v)
{
  return t->vlen == strlen(v) && !strncasecmp(t->val, v, t->vlen);
}

static int policy_of(const struct dkim_tag *t)
{
  if (tag_is(t, "none")) return DMARC_P_NONE;
  if (tag_is(t, "quarantine")) return DMARC_P_QUARANTINE;
  if (tag_is(t, "reject")) return DMARC_P_REJECT;
  return -1;
}

/* 1 for r, 0 for s (or absent), -1 otherwise. */
static int mode_of(const struct dkim_tag *t)
{
  if (!t || tag_is(t, "r")) return 0;
  return tag_is(t, "s") ? 1 : -1;
}

/* Whether rua= holds at least one URI of the form scheme ":" rest (RFC
 * 3986 3.1; the "!size" suffix of 6.2 is allowed in rest). */
static int rua_ok(const struct dkim_tag *t)
{
  size_t i = 0, j;

  while (t && i < t->vlen) {
    const char *u;
    size_t un;
    for (j = i; j < t->vlen && t->val[j] != ','; j++) {}
    u = t->val + i;
    un = j - i;
    while (un && (*u == ' ' || *u == '\t')) { u++; un--; }
    if (un && ((*u | 32) >= 'a' && (*u | 32) <= 'z')) {
      size_t k = 1;
      while (k < un && (((u[k] | 32) >= 'a' && (u[k] | 32) <= 'z') ||
                        (u[k] >= '0' && u[k] <= '9') || u[k] == '+' || u[k] == '-' || u[k] == '.'))
        k++;
      if (k < un && u[k] == ':' && k + 1 < un) return 1;
    }
    i = j + 1;
  }
  return 0;
}

int dmarc_record_parse(const char *txt, size_t n, struct dmarc_record *r)
{
  struct dkim_tag t[DKIM_TAGS_MAX];
  const struct dkim_tag *p, *sp, *pct;
  size_t count;
  unsigned long long u;
  int pv, spv;

  if (!is_dmarc(txt, n)) return DMARC_REC_OTHER;
  if (dkim_tags_parse(txt, n, t, DKIM_TAGS_MAX, &count) < 0) return DMARC_REC_BAD;
  r->adkim_strict = mode_of(dkim_tag_get(t, count, "adkim"));
  r->aspf_strict = mode_of(dkim_tag_get(t, count, "aspf"));
  if (r->adkim_strict < 0 || r->aspf_strict < 0) return DMARC_REC_BAD;
  r->pct = 100;
  if ((pct = dkim_tag_get(t, count, "pct"))) {
    if (scan_ulong(pct->val, pct->vlen, &u) < 0 || u > 100) return DMARC_REC_BAD;
    r->pct = (unsigned)u;
  }
  p = dkim_tag_get(t, count, "p");
  sp = dkim_tag_get(t, count, "sp");
  pv = p ? policy_of(p) : -1;
  spv = sp ? policy_of(sp) : pv;
  if (pv < 0 || spv < 0) {
    if (!rua_ok(dkim_tag_get(t, count, "rua"))) return DMARC_REC_NOPOLICY;
    pv = spv = DMARC_P_NONE;
  }
  r->p = pv;
  r->sp = spv;
  return DMARC_REC_OK;
}

/* --- alignment ---------------------------------------------------------- */

static size_t dlen(const char *d)
{
  size_t n = strlen(d);
  while (n && d[n - 1] == '.') n--;
  return n;
}

int dmarc_aligned(const struct psl *p, const char *a, const char *b, int strict)
{
  size_t an = dlen(a), bn = dlen(b), ao, bo;

  if (!an || !bn) return 0;
  if (strict) return an == bn && !strncasecmp(a, b, an);
  ao = psl_orgdomain(p, a, an);
  bo = psl_orgdomain(p, b, bn);
  return an - ao == bn - bo && !strncasecmp(a + ao, b + bo, an - ao);
}

/* --- policy discovery and the verdict ------------------------------------ */

struct found {
  size_t count;              /* records that start with v=DMARC1 */
  int parsed;                /* the first one's dmarc_record_parse result */
  struct dmarc_record rec;
};

static int each_txt(const char *txt, size_t len, void *ctx)
{
  struct found *f = ctx;
  struct dmarc_record r;
  int k = dmarc_record_parse(txt, len, &r);

  if (k == DMARC_REC_OTHER) return 0;
  if (f->count++ == 0) { f->parsed = k; f->rec = r; }
  return 0;
}

/* Looks up _dmarc.d: 1 with one DMARC record in *f, 0 with none, -1 on a
 * temporary DNS failure. */
static int discover(const char *d, struct found *f)
{
  char name[DNS_NAMEMAX];
  int r;

  f->count = 0;
  if (strlen(d) + 8 > sizeof name) return 0;
  memcpy(name, "_dmarc.", 7);
  memcpy(name + 7, d, strlen(d) + 1);
  r = dns_txt(name, each_txt, f);
  if (r == DNS_TEMP) return -1;
  return f->count > 0;
}

static int lower(int policy)
{
  return policy == DMARC_P_REJECT ? DMARC_P_QUARANTINE : DMARC_P_NONE;
}

int dmarc_eval(const struct psl *p, const struct dmarc_in *in, struct dmarc_out *out)
{
  struct found f;
  size_t n = dlen(in->from), o, i;
  int r, sub = 0;

  memset(out, 0, sizeof *out);
  if (!n || n >= DNS_NAMEMAX - 8) return out->result = DMARC_PERMERROR;
  o = psl_orgdomain(p, in->from, n);
  memcpy(out->org, in->from + o, n - o);
  out->org[n - o] = 0;
  memcpy(out->where, in->from, n);
  out->where[n] = 0;
  r = discover(out->where, &f);
  if (r == 0 && o > 0) {
    memcpy(out->where, out->org, n - o + 1);
    sub = 1;
    r = discover(out->where, &f);
  }
  /* No record applies after a DNS failure, without one, with several
   * (6.6.3 step 5 ends discovery) or with one that is unusable. */
  if (r <= 0 || f.count > 1 || f.parsed != DMARC_REC_OK) {
    out->where[0] = 0;
    if (r < 0) return out->result = DMARC_TEMPERROR;
    return out->result = r > 0 && f.count == 1 && f.parsed == DMARC_REC_BAD ? DMARC_PERMERROR : DMARC_NONE;
  }
  out->policy = sub ? f.rec.sp : f.rec.p;
  out->spf_aligned = in->spf_pass && in->spf_domain &&
                     dmarc_aligned(p, in->spf_domain, in->from, f.rec.aspf_strict);
  for (i = 0; i < in->ndkim && !out->dkim_aligned; i++)
    out->dkim_aligned = in->dkim[i].pass && in->dkim[i].d &&
                        dmarc_aligned(p, in->dkim[i].d, in->from, f.rec.adkim_strict);
  if (out->spf_aligned || out->dkim_aligned) return out->result = DMARC_PASS;
  out->applied = in->roll < f.rec.pct ? out->policy : lower(out->policy);
  return out->result = DMARC_FAIL;
}

const char *dmarc_result_name(int result)
{
  static const char *const names[] = { "none", "pass", "fail", "temperror", "permerror" };
  return result >= 0 && result <= DMARC_PERMERROR ? names[result] : "permerror";
}

const char *dmarc_policy_name(int policy)
{
  static const char *const names[] = { "none", "quarantine", "reject" };
  return policy >= 0 && policy <= DMARC_P_REJECT ? names[policy] : "none";
}

/* --- what this host does ----------------------------------------------- */

int dmarc_mode(const char *s, size_t n)
{
  static const char *const words[] = { "reject", "quarantine", "report" };
  int i;
  for (i = 0; i < 3; i++)
    if (n == strlen(words[i]) && !memcmp(s, words[i], n)) return i;
  return -1;
}

int dmarc_action(const struct dmarc_out *out, int mode)
{
  if (out->result != DMARC_FAIL || mode == DMARC_MODE_REPORT) return DMARC_ACT_ACCEPT;
  if (out->applied == DMARC_P_REJECT)
    return mode == DMARC_MODE_REJECT ? DMARC_ACT_REJECT : DMARC_ACT_QUARANTINE;
  return out->applied == DMARC_P_QUARANTINE ? DMARC_ACT_QUARANTINE : DMARC_ACT_ACCEPT;
}

const char *dmarc_action_name(int action)
{
  static const char *const names[] = { "accept", "quarantine", "reject" };
  return action >= 0 && action <= DMARC_ACT_REJECT ? names[action] : "accept";
}

int dmarc_ar(str *s, const struct dmarc_out *out, const char *from, const char *why)
{
  if (str_cats(s, "dmarc=") < 0 || str_cats(s, dmarc_result_name(out->result)) < 0) return -1;
  if (out->where[0]) {
    if (str_cats(s, " (p=") < 0 || str_cats(s, dmarc_policy_name(out->policy)) < 0 ||
        str_catc(s, ')') < 0)
      return -1;
  } else if (why) {
    if (str_cats(s, " (") < 0 || str_cats(s, why) < 0 || str_catc(s, ')') < 0) return -1;
  }
  if (from && (str_cats(s, " header.from=") < 0 || str_cats(s, from) < 0)) return -1;
  return 0;
}
