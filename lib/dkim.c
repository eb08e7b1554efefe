/* DKIM signing (see dkim.h). */
#include <errno.h>
#include <string.h>
#include <sodium.h>
#include "base64.h"
#include "dkim.h"


const char *const dkim_signed_names[] = {
  "From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version",
  "Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References", 0
};

static int wsp(int c) { return c == ' ' || c == '\t'; }
static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* --- canonicalization ------------------------------------------------ */

int dkim_canon_header(str *out, const char *f, size_t n, int relaxed)
{
  const char *colon = memchr(f, ':', n);
  size_t i, nl;
  int pend = 0, started = 0;

  while (n && (f[n - 1] == '\n' || f[n - 1] == '\r')) n--;
  if (!relaxed) {
    for (i = 0; i < n; i++) {
      if (f[i] == '\r' && i + 1 < n && f[i + 1] == '\n') continue;
      if (f[i] == '\n' ? str_cats(out, "\r\n") : str_catc(out, f[i])) return -1;
    }
    return str_cats(out, "\r\n");
  }
  if (!colon) { errno = EINVAL; return -1; }
  nl = (size_t)(colon - f);
  while (nl && wsp(f[nl - 1])) nl--;
  for (i = 0; i < nl; i++)
    if (str_catc(out, (char)lower((unsigned char)f[i]))) return -1;
  if (str_catc(out, ':')) return -1;
  for (i = (size_t)(colon - f) + 1; i < n; i++) {
    char c = f[i];
    if (c == '\r' || c == '\n') continue;
    if (wsp(c)) { pend = 1; continue; }
    if (pend && started && str_catc(out, ' ')) return -1;
    if (str_catc(out, c)) return -1;
    pend = 0;
    started = 1;
  }
  return str_cats(out, "\r\n");
}

static void body_put(struct dkim_body *b, const void *p, size_t n)
{
  if (n > sizeof b->buf - b->blen) {
    b->sink(b->ctx, b->buf, b->blen);
    b->blen = 0;
  }
  memcpy(b->buf + b->blen, p, n);
  b->blen += n;
}

static void body_char(struct dkim_body *b, unsigned char c)
{
  if (b->relaxed && wsp(c)) { b->wsp = 1; return; }
  for (; b->empties; b->empties--) body_put(b, "\r\n", 2);
  if (b->wsp) body_put(b, " ", 1);
  b->wsp = 0;
  body_put(b, &c, 1);
  b->inline_ = 1;
  b->any = 1;
}

static void body_eol(struct dkim_body *b)
{
  b->wsp = 0;
  if (b->inline_) body_put(b, "\r\n", 2);
  else b->empties++;
  b->inline_ = 0;
}

void dkim_body_init(struct dkim_body *b, int relaxed,
                    void (*sink)(void *ctx, const void *p, size_t n), void *ctx)
{
  memset(b, 0, sizeof *b);
  b->relaxed = relaxed;
  b->sink = sink;
  b->ctx = ctx;
}

void dkim_body_update(struct dkim_body *b, const void *p, size_t n)
{
  const unsigned char *s = p;
  size_t i;

  for (i = 0; i < n; i++) {
    if (s[i] == '\n') { b->cr = 0; body_eol(b); continue; }
    if (b->cr) body_char(b, '\r');
    b->cr = s[i] == '\r';
    if (!b->cr) body_char(b, s[i]);
  }
}

void dkim_body_final(struct dkim_body *b)
{
  if (b->cr) body_char(b, '\r');
  b->cr = 0;
  if (b->inline_) body_eol(b);
  if (!b->relaxed && !b->any) body_put(b, "\r\n", 2);
  if (b->blen) b->sink(b->ctx, b->buf, b->blen);
  b->blen = 0;
}

static void sha_sink(void *ctx, const void *p, size_t n)
{
  br_sha256_update(ctx, p, n);
}

void dkim_body_hash(unsigned char out[32], const char *body, size_t n, int relaxed)
{
  br_sha256_context sha;
  struct dkim_body b;

  br_sha256_init(&sha);
  dkim_body_init(&b, relaxed, sha_sink, &sha);
  dkim_body_update(&b, body, n);
  dkim_body_final(&b);
  br_sha256_out(&sha, out);
}

/* --- tag lists ---------------------------------------------------------- */

/* Skips FWS: white space, and line ends only where white space follows. */
static size_t skip_fws(const char *s, size_t n, size_t i)
{
  for (;;) {
    size_t j = i;
    while (j < n && wsp(s[j])) j++;
    if (j + 2 < n && s[j] == '\r' && s[j + 1] == '\n' && wsp(s[j + 2])) { i = j + 2; continue; }
    if (j + 1 < n && s[j] == '\n' && wsp(s[j + 1])) { i = j + 1; continue; }
    return j;
  }
}

static int valchar(unsigned char c) { return c >= 0x21 && c <= 0x7e && c != ';'; }
static int alpha(unsigned char c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }
static int alnum_(unsigned char c) { return alpha(c) || (c >= '0' && c <= '9') || c == '_'; }

int dkim_tags_parse(const char *s, size_t n, struct dkim_tag *t, size_t max, size_t *count)
{
  size_t i = skip_fws(s, n, 0), k = 0;

  *count = 0;
  while (i < n) {
    struct dkim_tag g;
    size_t j, end;
    if (!alpha((unsigned char)s[i])) goto bad;
    g.name = s + i;
    while (i < n && alnum_((unsigned char)s[i])) i++;
    g.nlen = (size_t)(s + i - g.name);
    i = skip_fws(s, n, i);
    if (i >= n || s[i] != '=') goto bad;
    i = skip_fws(s, n, i + 1);
    g.val = s + i;
    end = i;
    while (i < n) {
      if (valchar((unsigned char)s[i])) { end = ++i; continue; }
      j = skip_fws(s, n, i);
      if (j == i) break;
      i = j;
    }
    g.vlen = end - (size_t)(g.val - s);
    if (i < n && s[i] != ';') goto bad;
    for (j = 0; j < k; j++)
      if (t[j].nlen == g.nlen && !memcmp(t[j].name, g.name, g.nlen)) goto bad;
    if (k >= max) { errno = E2BIG; return -1; }
    t[k++] = g;
    if (i < n) i = skip_fws(s, n, i + 1);
  }
  if (!k) goto bad;
  *count = k;
  return 0;
bad:
  errno = EINVAL;
  return -1;
}

const struct dkim_tag *dkim_tag_get(const struct dkim_tag *t, size_t count, const char *name)
{
  size_t i, l = strlen(name);
  for (i = 0; i < count; i++)
    if (t[i].nlen == l && !memcmp(t[i].name, name, l)) return &t[i];
  return 0;
}

/* --- header fields ------------------------------------------------------ */

int dkim_fields(const char *msg, size_t n, struct dkim_field *f, size_t max,
                size_t *count, size_t *hdrlen)
{
  size_t i = 0, k = 0;

  *count = 0;
  while (i < n) {
    const char *nl = memchr(msg + i, '\n', n - i);
    size_t end = nl ? (size_t)(nl - msg) + 1 : n, j;
    if (msg[i] == '\n' || (msg[i] == '\r' && i + 1 < n && msg[i + 1] == '\n')) {
      *count = k;
      *hdrlen = end;
      return 0;
    }
    if (wsp(msg[i])) {
      if (!k) goto bad;
      f[k - 1].len = end - f[k - 1].off;
    } else {
      for (j = i; j < end && msg[j] != ':' && (unsigned char)msg[j] > 32 && msg[j] != 127; j++) ;
      if (j == i) goto bad;
      size_t nlen = j - i;
      while (j < end && wsp(msg[j])) j++;
      if (j >= end || msg[j] != ':') goto bad;
      if (k >= max) { errno = E2BIG; return -1; }
      f[k].off = i;
      f[k].nlen = nlen;
      f[k].len = end - i;
      k++;
    }
    i = end;
  }
  *count = k;
  *hdrlen = n;
  return 0;
bad:
  errno = EINVAL;
  return -1;
}

/* --- keys --------------------------------------------------------------- */

/* PKCS#8 for Ed25519 (RFC 8410): this prefix, then the 32-byte seed. */
static const unsigned char ed_pkcs8[16] = {
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20
};

struct pemobj { str der; int over; };

static void pem_add(void *ctx, const void *p, size_t n)
{
  struct pemobj *o = ctx;
  if (o->over || o->der.len + n > 16384 || str_catb(&o->der, p, n)) o->over = 1;
}

static void wipe(str *s)
{
  if (s->s) explicit_bzero(s->s, s->cap);
  str_free(s);
}

/* The DER of the single private-key PEM object in pem; 0 or -1. */
static int pem_key(struct pemobj *o, char name[64], const char *pem, size_t n, const char **err)
{
  br_pem_decoder_context pc;
  size_t off = 0;
  int state = 0;

  br_pem_decoder_init(&pc);
  while (off < n) {
    off += br_pem_decoder_push(&pc, pem + off, n - off);
    switch (br_pem_decoder_event(&pc)) {
    case BR_PEM_BEGIN_OBJ:
      if (state) { *err = "more than one PEM object"; return -1; }
      if (strlen(br_pem_decoder_name(&pc)) >= 64) { *err = "PEM name too long"; return -1; }
      strcpy(name, br_pem_decoder_name(&pc));
      br_pem_decoder_setdest(&pc, pem_add, o);
      state = 1;
      break;
    case BR_PEM_END_OBJ:
      state = 2;
      break;
    case BR_PEM_ERROR:
      *err = "malformed PEM";
      return -1;
    default:
      break;
    }
  }
  if (state != 2) { *err = "no complete PEM object"; return -1; }
  if (o->over) { *err = "PEM object too large"; return -1; }
  return 0;
}

int dkim_key_parse(struct dkim_key *k, const char *pem, size_t n, const char **err)
{
  struct pemobj o = { STR_INIT, 0 };
  char name[64];
  int r = -1;

  memset(k, 0, sizeof *k);
  if (pem_key(&o, name, pem, n, err) < 0) goto out;
  if (!strcmp(name, "PRIVATE KEY") && o.der.len == sizeof ed_pkcs8 + 32
      && !memcmp(o.der.s, ed_pkcs8, sizeof ed_pkcs8)) {
    unsigned char pk[32];
    if (sodium_init() < 0) { *err = "libsodium failed to start"; goto out; }
    crypto_sign_seed_keypair(pk, k->ed, (const unsigned char *)o.der.s + sizeof ed_pkcs8);
    k->type = DKIM_KEY_ED25519;
    k->bits = 256;
    r = 0;
    goto out;
  }
  if (strcmp(name, "PRIVATE KEY") && strcmp(name, "RSA PRIVATE KEY")) { *err = "not a private key"; goto out; }
  br_skey_decoder_init(&k->dec);
  br_skey_decoder_push(&k->dec, o.der.s, o.der.len);
  if (br_skey_decoder_last_error(&k->dec) || br_skey_decoder_key_type(&k->dec) != BR_KEYTYPE_RSA) {
    *err = "not an RSA or Ed25519 private key";
    goto out;
  }
  k->bits = br_skey_decoder_get_rsa(&k->dec)->n_bitlen;
  if (k->bits < DKIM_RSA_MIN) { *err = "RSA key too short (at least 2048 bits)"; goto out; }
  if (k->bits > DKIM_RSA_MAX) { *err = "RSA key too long (at most 4096 bits)"; goto out; }
  k->type = DKIM_KEY_RSA;
  r = 0;
out:
  wipe(&o.der);
  if (r < 0) dkim_key_wipe(k);
  return r;
}

void dkim_key_wipe(struct dkim_key *k)
{
  explicit_bzero(k, sizeof *k);
}

/* A DER tag and length. */
static int der_hdr(str *o, unsigned char tag, size_t len)
{
  unsigned char h[4] = { tag, 0, 0, 0 };
  if (len < 128) { h[1] = (unsigned char)len; return str_catb(o, h, 2); }
  if (len < 256) { h[1] = 0x81; h[2] = (unsigned char)len; return str_catb(o, h, 3); }
  h[1] = 0x82; h[2] = (unsigned char)(len >> 8); h[3] = (unsigned char)len;
  return str_catb(o, h, 4);
}

/* An unsigned big-endian integer as a DER INTEGER. */
static int der_uint(str *o, const unsigned char *p, size_t n)
{
  while (n > 1 && !*p) { p++; n--; }
  if (*p & 0x80) return der_hdr(o, 0x02, n + 1) || str_catc(o, 0) || str_catb(o, p, n);
  return der_hdr(o, 0x02, n) || str_catb(o, p, n);
}

int dkim_key_public(str *out, const struct dkim_key *k)
{
  static const unsigned char alg[] = {
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00
  };
  unsigned char nbuf[DKIM_RSA_MAX / 8], e[4];
  str ints = STR_INIT, spki = STR_INIT, b = STR_INIT;
  const br_rsa_private_key *sk;
  uint32_t pe;
  size_t nlen;
  int r = -1;

  if (k->type == DKIM_KEY_ED25519) {
    if (base64_encode(&b, k->ed + 32, 32) == 0) r = str_catb(out, b.s, b.len);
    str_free(&b);
    return r;
  }
  sk = br_skey_decoder_get_rsa(&k->dec);
  nlen = br_rsa_compute_modulus_get_default()(0, sk);
  pe = br_rsa_compute_pubexp_get_default()(sk);
  if (!nlen || nlen > sizeof nbuf || !pe) { errno = EINVAL; return -1; }
  br_rsa_compute_modulus_get_default()(nbuf, sk);
  e[0] = (unsigned char)(pe >> 24); e[1] = (unsigned char)(pe >> 16);
  e[2] = (unsigned char)(pe >> 8); e[3] = (unsigned char)pe;
  if (der_uint(&ints, nbuf, nlen) || der_uint(&ints, e, 4)) goto out;
  /* BIT STRING { 0 unused bits, SEQUENCE { n, e } } after the algorithm */
  if (str_catb(&spki, alg, sizeof alg) || der_hdr(&spki, 0x03, ints.len + 1 + (ints.len < 128 ? 2 : ints.len < 256 ? 3 : 4))
      || str_catc(&spki, 0) || der_hdr(&spki, 0x30, ints.len) || str_catb(&spki, ints.s, ints.len))
    goto out;
  if (der_hdr(&b, 0x30, spki.len) || str_catb(&b, spki.s, spki.len)) goto out;
  if (base64_encode(&spki, b.s, b.len)) goto out;
  r = str_catb(out, spki.s, spki.len);
out:
  str_free(&ints);
  str_free(&spki);
  str_free(&b);
  return r;
}

/* --- signing -------------------------------------------------------------- */

/* Two header field names, equal but for case. */
static int name_is(const char *p, size_t n, const char *q, size_t qn)
{
  size_t i;
  if (qn != n) return 0;
  for (i = 0; i < n; i++)
    if (lower((unsigned char)p[i]) != lower((unsigned char)q[i])) return 0;
  return 1;
}

static int signed_name(const char *p, size_t n)
{
  size_t i;
  for (i = 0; dkim_signed_names[i]; i++)
    if (name_is(p, n, dkim_signed_names[i], strlen(dkim_signed_names[i]))) return 1;
  return n > 5 && lower((unsigned char)p[0]) == 'l' && lower((unsigned char)p[1]) == 'i'
         && lower((unsigned char)p[2]) == 's' && lower((unsigned char)p[3]) == 't' && p[4] == '-';
}

/* d= and s=: dot-separated labels of letters, digits, '-' and '_'. */
static int dns_name(const char *s)
{
  size_t i, n = strlen(s);
  if (!n || n > 253 || s[0] == '.' || s[n - 1] == '.') return 0;
  for (i = 0; i < n; i++)
    if (!alnum_((unsigned char)s[i]) && s[i] != '-' && !(s[i] == '.' && s[i + 1] != '.')) return 0;
  return 1;
}

/* Appends h= (lower-case names of the signed fields, From once more),
 * folded so that no line grows past about 76 columns. */
static int hlist(str *h, const char *msg, const struct dkim_field *f, size_t nf, size_t col)
{
  size_t i, j;
  int from = 0;

  for (i = 0; i <= nf; i++) {
    const char *p = i < nf ? msg + f[i].off : "from";
    size_t n = i < nf ? f[i].nlen : 4;
    if (i < nf && !signed_name(p, n)) continue;
    if (i < nf && name_is(p, n, "from", 4)) from = 1;
    if (h->len && str_catc(h, ':')) return -1;
    if (col + n > 75 && h->len) { if (str_cats(h, "\n\t")) return -1; col = 1; }
    for (j = 0; j < n; j++)
      if (str_catc(h, (char)lower((unsigned char)p[j]))) return -1;
    col += n + 1;
  }
  if (!from) { errno = ENOENT; return -1; }
  return 0;
}

static int fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int dkim_hash_fields(br_sha256_context *sha, const char *msg, const struct dkim_field *f,
                     size_t nf, const char *h, size_t hlen, int relaxed)
{
  unsigned char used[DKIM_FIELDS_MAX] = { 0 };
  str c = STR_INIT;
  size_t i = 0;

  if (nf > DKIM_FIELDS_MAX) { errno = E2BIG; return -1; }
  while (i < hlen) {
    size_t s = i, n, k;
    while (i < hlen && h[i] != ':') i++;
    n = i - s;
    i++;
    while (n && fws(h[s])) { s++; n--; }
    while (n && fws(h[s + n - 1])) n--;
    for (k = nf; k-- > 0;) {
      if (used[k] || f[k].nlen != n || !name_is(msg + f[k].off, n, h + s, n)) continue;
      used[k] = 1;
      c.len = 0;
      if (dkim_canon_header(&c, msg + f[k].off, f[k].len, relaxed)) { str_free(&c); return -1; }
      br_sha256_update(sha, c.s, c.len);
      break;
    }
  }
  str_free(&c);
  return 0;
}

int dkim_sign(str *out, const struct dkim_key *k, const struct dkim_sign_opts *o,
              const char *msg, size_t n, const char **err)
{
  struct dkim_field f[DKIM_FIELDS_MAX];
  unsigned char bh[32], hash[32], sig[DKIM_RSA_MAX / 8];
  size_t nf, hdrlen, siglen;
  br_sha256_context sha;
  str hdr = STR_INIT, h = STR_INIT, b = STR_INIT, c = STR_INIT;
  int r = -1;

  *err = "out of memory";
  if (!dns_name(o->domain) || !dns_name(o->selector)) { *err = "bad domain or selector"; return -1; }
  if (k->type != DKIM_KEY_RSA && k->type != DKIM_KEY_ED25519) { *err = "no key"; return -1; }
  if (dkim_fields(msg, n, f, DKIM_FIELDS_MAX, &nf, &hdrlen) < 0) {
    *err = errno == E2BIG ? "too many header fields" : "malformed header";
    return -1;
  }
  dkim_body_hash(bh, msg + hdrlen, n - hdrlen, o->brelaxed);
  if (hlist(&h, msg, f, nf, 4) < 0) {
    if (errno == ENOENT) *err = "no From field";
    goto out;
  }
  if (base64_encode(&b, bh, sizeof bh)) goto out;
  if (str_cats(&hdr, "DKIM-Signature: v=1; a=")
      || str_cats(&hdr, k->type == DKIM_KEY_RSA ? "rsa-sha256" : "ed25519-sha256")
      || str_cats(&hdr, o->hrelaxed ? "; c=relaxed/" : "; c=simple/")
      || str_cats(&hdr, o->brelaxed ? "relaxed" : "simple")
      || str_cats(&hdr, ";\n\td=") || str_cats(&hdr, o->domain)
      || str_cats(&hdr, "; s=") || str_cats(&hdr, o->selector)
      || str_cats(&hdr, "; t=") || str_catu(&hdr, o->t)
      || str_cats(&hdr, ";\n\th=") || str_catb(&hdr, h.s, h.len)
      || str_cats(&hdr, ";\n\tbh=") || str_catb(&hdr, b.s, b.len)
      || str_cats(&hdr, ";\n\tb="))
    goto out;

  br_sha256_init(&sha);
  if (dkim_hash_fields(&sha, msg, f, nf, h.s, h.len, o->hrelaxed) < 0) goto out;
  if (dkim_canon_header(&c, hdr.s, hdr.len, o->hrelaxed) < 0) goto out;
  br_sha256_update(&sha, c.s, c.len - 2);         /* without its CRLF */
  br_sha256_out(&sha, hash);

  if (k->type == DKIM_KEY_RSA) {
    const br_rsa_private_key *sk = br_skey_decoder_get_rsa(&k->dec);
    siglen = (sk->n_bitlen + 7) / 8;
    if (!br_rsa_pkcs1_sign_get_default()(BR_HASH_OID_SHA256, hash, sizeof hash, sk, sig)) {
      *err = "RSA signing failed";
      goto out;
    }
  } else {
    siglen = 64;
    if (crypto_sign_detached(sig, 0, hash, sizeof hash, k->ed) != 0) {
      *err = "Ed25519 signing failed";
      goto out;
    }
  }
  if (base64_encode(&b, sig, siglen)) goto out;
  if (str_catb(&hdr, b.s, b.len) || str_catc(&hdr, '\n') || str_catb(out, hdr.s, hdr.len)) goto out;
  r = 0;
out:
  str_free(&hdr);
  str_free(&h);
  str_free(&b);
  str_free(&c);
  return r;
}
