/* DKIM verification (see dkimverify.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "base64.h"
#include "dkimverify.h"
#include "dns.h"

struct dkim_vsig {
  struct dkim_verify *top;
  int alg;                        /* DKIM_KEY_RSA or DKIM_KEY_ED25519 */
  int over;                       /* the hashing cap was reached */
  int has_l;
  unsigned long long l, fed;      /* l=; canonical body bytes hashed */
  br_sha256_context bsha;
  struct dkim_body body;
  unsigned char bh[32], hh[32];   /* bh= decoded; the header hash */
  str sig;                        /* b= decoded */
};

static const char *const names[] = {
  "none", "pass", "fail", "neutral", "policy", "permerror", "temperror"
};

const char *dkim_result_name(int r)
{
  return r >= 0 && r <= DKIM_TEMPERROR ? names[r] : "permerror";
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static int fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* v (n bytes) equals the lower-case word w, but for case. */
static int is(const char *v, size_t n, const char *w)
{
  size_t i;
  if (strlen(w) != n) return 0;
  for (i = 0; i < n; i++)
    if (lower((unsigned char)v[i]) != w[i]) return 0;
  return 1;
}

static int tag_is(const struct dkim_tag *t, const char *w) { return t && is(t->val, t->vlen, w); }

/* Is w one of the ':'-separated items of t (FWS around them)? */
static int tag_has(const struct dkim_tag *t, const char *w)
{
  size_t i = 0;
  while (t && i <= t->vlen) {
    size_t s = i, n;
    while (i < t->vlen && t->val[i] != ':') i++;
    n = i - s;
    while (n && fws(t->val[s])) { s++; n--; }
    while (n && fws(t->val[s + n - 1])) n--;
    if (is(t->val + s, n, w)) return 1;
    i++;
  }
  return 0;
}

/* Base64 with FWS anywhere in it (RFC 6376 2.10). */
static int b64(str *out, const struct dkim_tag *t)
{
  str c = STR_INIT;
  size_t i;
  int r;
  for (i = 0; i < t->vlen; i++)
    if (!fws(t->val[i]) && str_catc(&c, t->val[i])) { str_free(&c); return -1; }
  r = base64_decode(out, c.s ? c.s : "", c.len);
  str_free(&c);
  return r;
}

/* A domain or selector: dot-separated labels of letters, digits, '-'
 * and '_', lower-cased into out; out is "" when t is not one. */
static int dname(char out[DKIM_DOMAIN_MAX], const struct dkim_tag *t)
{
  size_t i;
  out[0] = 0;
  if (!t || !t->vlen || t->vlen >= DKIM_DOMAIN_MAX || t->val[0] == '.' || t->val[t->vlen - 1] == '.')
    return -1;
  for (i = 0; i < t->vlen; i++) {
    unsigned char c = (unsigned char)t->val[i];
    if (!((c | 32) >= 'a' && (c | 32) <= 'z') && !(c >= '0' && c <= '9') && c != '-' && c != '_'
        && !(c == '.' && t->val[i + 1] != '.')) {
      out[0] = 0;
      return -1;
    }
    out[i] = (char)lower(c);
  }
  out[i] = 0;
  return 0;
}

static int decimal(const struct dkim_tag *t, unsigned long long *u)
{
  size_t i;
  if (!t->vlen || t->vlen > 18) return -1;
  for (*u = 0, i = 0; i < t->vlen; i++) {
    if (t->val[i] < '0' || t->val[i] > '9') return -1;
    *u = *u * 10 + (unsigned)(t->val[i] - '0');
  }
  return 0;
}

static void body_sink(void *ctx, const void *p, size_t n)
{
  struct dkim_vsig *g = ctx;
  struct dkim_verify *v = g->top;
  if (g->over) return;
  if (g->has_l && n > g->l - g->fed) n = (size_t)(g->l - g->fed);
  if (v->hashed + n > v->o.maxhash) { g->over = 1; return; }
  br_sha256_update(&g->bsha, p, n);
  g->fed += n;
  v->hashed += n;
}

/* The value of the field at f: after the colon, line end dropped. */
static void field_value(const char *m, const struct dkim_field *f, const char **p, size_t *n)
{
  size_t v = f->off + f->nlen, end = f->off + f->len;
  while (v < end && m[v] != ':') v++;
  if (v < end) v++;
  while (end > v && (m[end - 1] == '\n' || m[end - 1] == '\r')) end--;
  *p = m + v;
  *n = end - v;
}

/* Hashes the signed fields, then the signature's own field with b='s
 * value (all of it, up to ';' or the end) left out, without its CRLF. */
static int header_hash(struct dkim_vsig *g, const char *m, const struct dkim_field *f, size_t nf,
                       size_t self, const struct dkim_tag *h, const struct dkim_tag *b, int relaxed)
{
  br_sha256_context sha;
  str c = STR_INIT, fld = STR_INIT;
  const char *start = b->val, *end = b->val + b->vlen, *fend = m + f[self].off + f[self].len;
  int r = -1;

  while (start > m && start[-1] != '=') start--;
  /* after the value only FWS can come before ';' (dkim_tags_parse) */
  while (end < fend && *end != ';') end++;
  br_sha256_init(&sha);
  if (dkim_hash_fields(&sha, m, f, nf, h->val, h->vlen, relaxed) < 0) goto out;
  if (str_catb(&fld, m + f[self].off, (size_t)(start - (m + f[self].off)))
      || str_catb(&fld, end, (size_t)(fend - end)))
    goto out;
  if (dkim_canon_header(&c, fld.s, fld.len, relaxed) < 0 || c.len < 2) goto out;
  br_sha256_update(&sha, c.s, c.len - 2);
  br_sha256_out(&sha, g->hh);
  r = 0;
out:
  str_free(&c);
  str_free(&fld);
  return r;
}

/* Reads one DKIM-Signature into r and g; returns the result decided now
 * (DKIM_NEUTRAL, DKIM_POLICY), DKIM_NONE when it goes on to hashing, or
 * -1 (ENOMEM). */
static int sig_parse(struct dkim_verify *v, struct dkim_sigresult *r, struct dkim_vsig *g,
                     const char *m, const struct dkim_field *f, size_t nf, size_t self)
{
  struct dkim_tag t[DKIM_TAGS_MAX];
  const struct dkim_tag *a, *b, *bh, *c, *d, *h, *i, *l, *q, *s, *x, *ts;
  const char *val;
  size_t n, vn, k, j;
  int hrel = 0, brel = 0;
  unsigned long long xv, tv;
  str tmp = STR_INIT;

  r->why = "bad signature syntax";
  field_value(m, &f[self], &val, &vn);
  if (dkim_tags_parse(val, vn, t, DKIM_TAGS_MAX, &n) < 0) return DKIM_NEUTRAL;
  a = dkim_tag_get(t, n, "a"); b = dkim_tag_get(t, n, "b"); bh = dkim_tag_get(t, n, "bh");
  c = dkim_tag_get(t, n, "c"); d = dkim_tag_get(t, n, "d"); h = dkim_tag_get(t, n, "h");
  i = dkim_tag_get(t, n, "i"); l = dkim_tag_get(t, n, "l"); q = dkim_tag_get(t, n, "q");
  s = dkim_tag_get(t, n, "s"); x = dkim_tag_get(t, n, "x"); ts = dkim_tag_get(t, n, "t");
  if (d) (void)dname(r->d, d);
  if (s) (void)dname(r->s, s);
  if (b)
    for (k = j = 0; k < b->vlen && j < 8; k++)
      if (!fws(b->val[k])) r->b[j++] = b->val[k];
  if (!tag_is(dkim_tag_get(t, n, "v"), "1") || !a || !b || !bh || !d || !h || !s) return DKIM_NEUTRAL;
  if (!r->d[0] || !r->s[0]) return DKIM_NEUTRAL;
  if (tag_is(a, "rsa-sha1")) { r->why = "rsa-sha1"; return DKIM_POLICY; }
  if (tag_is(a, "rsa-sha256")) g->alg = DKIM_KEY_RSA;
  else if (tag_is(a, "ed25519-sha256")) g->alg = DKIM_KEY_ED25519;
  else { r->why = "unknown algorithm"; return DKIM_NEUTRAL; }
  if (c) {
    const char *slash = memchr(c->val, '/', c->vlen);
    size_t hn = slash ? (size_t)(slash - c->val) : c->vlen;
    if (is(c->val, hn, "relaxed")) hrel = 1;
    else if (!is(c->val, hn, "simple")) return DKIM_NEUTRAL;
    if (slash) {
      if (is(slash + 1, c->vlen - hn - 1, "relaxed")) brel = 1;
      else if (!is(slash + 1, c->vlen - hn - 1, "simple")) return DKIM_NEUTRAL;
    }
  }
  if (!tag_has(h, "from")) { r->why = "From not signed"; return DKIM_NEUTRAL; }
  if (q && !tag_has(q, "dns/txt")) { r->why = "unknown query method"; return DKIM_NEUTRAL; }
  if (i) {          /* i='s domain is d= or below it */
    const char *at = memchr(i->val, '@', i->vlen);
    size_t dl = strlen(r->d), il;
    if (!at) return DKIM_NEUTRAL;
    il = i->vlen - (size_t)(at + 1 - i->val);
    if (il < dl || !is(at + 1 + il - dl, dl, r->d) || (il > dl && at[il - dl] != '.')) {
      r->why = "i= not in d=";
      return DKIM_NEUTRAL;
    }
  }
  if (l) {
    if (decimal(l, &g->l) < 0) return DKIM_NEUTRAL;
    g->has_l = 1;
  }
  if (x) {
    if (decimal(x, &xv) < 0) return DKIM_NEUTRAL;
    if (ts && (decimal(ts, &tv) < 0 || tv > xv)) return DKIM_NEUTRAL;
    if (xv < v->o.now) { r->why = "signature expired"; return DKIM_NEUTRAL; }
  }
  if (b64(&tmp, bh) < 0 || tmp.len != 32) {
    str_free(&tmp);
    if (errno == ENOMEM) return -1;
    r->why = "bad bh=";
    return DKIM_NEUTRAL;
  }
  memcpy(g->bh, tmp.s, 32);
  str_free(&tmp);
  if (b64(&g->sig, b) < 0) {
    if (errno == ENOMEM) return -1;
    r->why = "bad b= base64";
    return DKIM_NEUTRAL;
  }
  if (header_hash(g, m, f, nf, self, h, b, hrel) < 0) return -1;
  g->top = v;
  br_sha256_init(&g->bsha);
  dkim_body_init(&g->body, brel, body_sink, g);
  r->why = 0;
  return DKIM_NONE;
}

int dkim_verify_start(struct dkim_verify *v, const char *hdr, size_t hlen,
                      const struct dkim_verify_opts *o)
{
  struct dkim_field *f;
  size_t nf, hl, k;

  memset(v, 0, sizeof *v);
  v->o = *o;
  f = malloc(DKIM_FIELDS_MAX * sizeof *f);
  v->v = calloc(DKIM_VERIFY_MAX, sizeof *v->v);
  if (!f || !v->v) goto nomem;
  if (dkim_fields(hdr, hlen, f, DKIM_FIELDS_MAX, &nf, &hl) < 0) goto fail;
  for (k = 0; k < nf; k++) {
    struct dkim_sigresult *r = &v->r[v->n];
    int res;
    if (!is(hdr + f[k].off, f[k].nlen, "dkim-signature")) continue;
    if (v->nsigs++ >= DKIM_VERIFY_MAX) continue;
    res = sig_parse(v, r, &v->v[v->n], hdr, f, nf, k);
    if (res < 0) goto nomem;
    r->result = res;
    v->n++;
  }
  free(f);
  return 0;
nomem:
  errno = ENOMEM;
fail:
  free(f);
  dkim_verify_free(v);
  return -1;
}

void dkim_verify_body(struct dkim_verify *v, const void *p, size_t n)
{
  size_t k;
  for (k = 0; k < v->n; k++) {
    struct dkim_vsig *g = &v->v[k];
    if (v->r[k].result != DKIM_NONE || g->over || (g->has_l && g->fed >= g->l)) continue;
    dkim_body_update(&g->body, p, n);
  }
}

/* A key record's tags; "p=" empty means revoked. */
struct key { int type; br_rsa_public_key rsa; const unsigned char *ed; unsigned bits; };

/* One DER element at p: its tag, contents and the byte after it. */
static int der(const unsigned char **p, const unsigned char *end, int tag,
               const unsigned char **c, size_t *n)
{
  const unsigned char *s = *p;
  size_t len, k;
  if (end - s < 2 || s[0] != tag) return -1;
  len = s[1];
  s += 2;
  if (len & 0x80) {
    k = len & 0x7f;
    if (!k || k > 3 || (size_t)(end - s) < k) return -1;
    for (len = 0; k; k--) len = len << 8 | *s++;
  }
  if ((size_t)(end - s) < len) return -1;
  *c = s;
  *n = len;
  *p = s + len;
  return 0;
}

/* RSAPublicKey (PKCS#1) or a SubjectPublicKeyInfo around one. */
static int rsa_key(struct key *k, const unsigned char *p, size_t n)
{
  static const unsigned char rsa_oid[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
  const unsigned char *end = p + n, *seq, *c, *alg, *oid;
  size_t sn, cn, an, on;

  if (der(&p, end, 0x30, &seq, &sn) < 0 || p != end) return -1;
  p = seq;
  end = seq + sn;
  if (p < end && *p == 0x30) {  /* SPKI: AlgorithmIdentifier, BIT STRING */
    if (der(&p, end, 0x30, &alg, &an) < 0 || der(&alg, alg + an, 0x06, &oid, &on) < 0
        || on != sizeof rsa_oid || memcmp(oid, rsa_oid, on)
        || der(&p, end, 0x03, &c, &cn) < 0 || p != end || cn < 1 || c[0] != 0)
      return -1;
    p = c + 1;
    end = c + cn;
    if (der(&p, end, 0x30, &seq, &sn) < 0 || p != end) return -1;
    p = seq;
    end = seq + sn;
  }
  if (der(&p, end, 0x02, &c, &cn) < 0) return -1;
  while (cn && !*c) { c++; cn--; }
  k->rsa.n = (unsigned char *)c;
  k->rsa.nlen = cn;
  if (der(&p, end, 0x02, &c, &cn) < 0 || p != end) return -1;
  while (cn && !*c) { c++; cn--; }
  k->rsa.e = (unsigned char *)c;
  k->rsa.elen = cn;
  if (!k->rsa.nlen || !k->rsa.elen) return -1;
  k->bits = (unsigned)(k->rsa.nlen * 8);
  for (unsigned char top = k->rsa.n[0]; !(top & 0x80); top <<= 1) k->bits--;
  return 0;
}

/* Parses the key record txt (its first record) for algorithm alg; the
 * key points into pd. Returns DKIM_NONE or the result it decides. */
static int key_parse(struct key *k, str *pd, const char *txt, size_t len, int alg, const char **why)
{
  struct dkim_tag t[DKIM_TAGS_MAX];
  const struct dkim_tag *v, *kt, *h, *p, *s;
  size_t n;

  *why = "bad key record";
  if (memchr(txt, 0, len)) len = strlen(txt);
  if (dkim_tags_parse(txt, len, t, DKIM_TAGS_MAX, &n) < 0) return DKIM_PERMERROR;
  v = dkim_tag_get(t, n, "v"); kt = dkim_tag_get(t, n, "k"); h = dkim_tag_get(t, n, "h");
  p = dkim_tag_get(t, n, "p"); s = dkim_tag_get(t, n, "s");
  if (v && (v != &t[0] || !is(v->val, v->vlen, "dkim1"))) return DKIM_PERMERROR;
  if (!p) return DKIM_PERMERROR;
  if (!p->vlen) { *why = "key revoked"; return DKIM_PERMERROR; }
  if (h && !tag_has(h, "sha256")) { *why = "key not for sha256"; return DKIM_PERMERROR; }
  if (s && !tag_has(s, "*") && !tag_has(s, "email")) { *why = "key not for email"; return DKIM_PERMERROR; }
  k->type = !kt || tag_is(kt, "rsa") ? DKIM_KEY_RSA : tag_is(kt, "ed25519") ? DKIM_KEY_ED25519 : 0;
  if (k->type != alg) { *why = "key type mismatch"; return DKIM_PERMERROR; }
  if (b64(pd, p) < 0) { *why = "bad key base64"; return DKIM_PERMERROR; }
  if (alg == DKIM_KEY_ED25519) {
    if (pd->len != 32) return DKIM_PERMERROR;
    k->ed = (const unsigned char *)pd->s;
    k->bits = 256;
    return DKIM_NONE;
  }
  if (rsa_key(k, (const unsigned char *)pd->s, pd->len) < 0) return DKIM_PERMERROR;
  if (k->bits < DKIM_VERIFY_RSA_MIN) { *why = "key too short"; return DKIM_FAIL; }
  if (k->bits > DKIM_VERIFY_RSA_MAX) { *why = "key too long"; return DKIM_PERMERROR; }
  return DKIM_NONE;
}

/* The key lookup and the signature check of one hashed signature. */
static int check(struct dkim_verify *v, struct dkim_sigresult *r, struct dkim_vsig *g)
{
  unsigned char bh[32], out[32];
  str name = STR_INIT, txt = STR_INIT, pd = STR_INIT;
  struct key k;
  int res, dr;

  memset(&k, 0, sizeof k);
  dkim_body_final(&g->body);
  if (g->over) { r->why = "body over the hashing limit"; return DKIM_POLICY; }
  if (g->has_l && g->fed < g->l) { r->why = "body shorter than l="; return DKIM_FAIL; }
  br_sha256_out(&g->bsha, bh);
  if (memcmp(bh, g->bh, 32)) { r->why = "body hash mismatch"; return DKIM_FAIL; }
  if (str_cats(&name, r->s) || str_cats(&name, "._domainkey.") || str_cats(&name, r->d)
      || str_0(&name)) {
    r->why = "out of memory";
    res = DKIM_TEMPERROR;
    goto out;
  }
  dr = v->o.key(name.s, &txt, v->o.keyctx);
  if (dr == DNS_TEMP || (dr >= 0 && str_0(&txt))) { r->why = "key lookup failed"; res = DKIM_TEMPERROR; goto out; }
  if (dr < 0) { r->why = "no key"; res = DKIM_PERMERROR; goto out; }
  res = key_parse(&k, &pd, txt.s, txt.len, g->alg, &r->why);
  if (res != DKIM_NONE) goto out;
  r->why = "signature mismatch";
  res = DKIM_FAIL;
  if (g->alg == DKIM_KEY_ED25519) {
    if (sodium_init() >= 0 && g->sig.len == 64
        && crypto_sign_verify_detached((const unsigned char *)g->sig.s, g->hh, 32, k.ed) == 0)
      res = DKIM_PASS;
  } else if (g->sig.len == k.rsa.nlen
             && br_rsa_pkcs1_vrfy_get_default()((const unsigned char *)g->sig.s, g->sig.len,
                                                BR_HASH_OID_SHA256, 32, &k.rsa, out)
             && !memcmp(out, g->hh, 32)) {
    res = DKIM_PASS;
  }
  if (res == DKIM_PASS) r->why = 0;
out:
  str_free(&name);
  str_free(&txt);
  str_free(&pd);
  return res;
}

void dkim_verify_finish(struct dkim_verify *v)
{
  size_t k;
  for (k = 0; k < v->n; k++)
    if (v->r[k].result == DKIM_NONE) v->r[k].result = check(v, &v->r[k], &v->v[k]);
  dkim_verify_free(v);
}

void dkim_verify_free(struct dkim_verify *v)
{
  size_t k;
  if (!v->v) return;
  for (k = 0; k < DKIM_VERIFY_MAX; k++) str_free(&v->v[k].sig);
  free(v->v);
  v->v = 0;
}

/* A property value: as it is when it is a MIME token, else quoted. */
static int pvalue(str *out, const char *s)
{
  size_t i;
  if (*s && strcspn(s, "()<>@,;:\\\"/[]?= \t") == strlen(s)) return str_cats(out, s);
  if (str_catc(out, '"')) return -1;
  for (i = 0; s[i]; i++)
    if (((s[i] == '"' || s[i] == '\\') && str_catc(out, '\\')) || str_catc(out, s[i])) return -1;
  return str_catc(out, '"');
}

int dkim_resinfo(str *out, const struct dkim_sigresult *r)
{
  if (!r) return str_cats(out, "dkim=none");
  if (str_cats(out, "dkim=") || str_cats(out, dkim_result_name(r->result))) return -1;
  if (r->why && (str_cats(out, " (") || str_cats(out, r->why) || str_catc(out, ')'))) return -1;
  if (r->d[0] && (str_cats(out, " header.d=") || pvalue(out, r->d))) return -1;
  if (r->s[0] && (str_cats(out, " header.s=") || pvalue(out, r->s))) return -1;
  if (r->b[0] && (str_cats(out, " header.b=") || pvalue(out, r->b))) return -1;
  return 0;
}
