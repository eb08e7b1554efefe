/* DANE for SMTP: TLSA lookups and the X.509 engine (dane.h).
 *
 * The engine buffers the chain the server sends (at most CHAIN_MAX
 * certificates, ARENA bytes), then decides in end_chain: a DANE-EE record
 * matching the server's own certificate, else a DANE-TA record matching a
 * certificate further up, which then anchors BearSSL's minimal engine for
 * the certificates below it. Hashes are BearSSL's; certificates are
 * decoded by BearSSL's decoder, and the only DER read here is the
 * walk to the SubjectPublicKeyInfo's bytes, which selector 1 hashes as
 * they are. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "dane.h"
#include "dns.h"

#define CHAIN_MAX 10
#define ARENA 65536
#define RR_MAX 16
#define DATA_MAX 2048              /* a Full(0) record: a certificate or SPKI */
#define DN_MAX 1024


struct tlsa {
  unsigned char usage, sel, mtype;
  size_t n;
  unsigned char data[DATA_MAX];
};

static struct tlsa rrs[RR_MAX];
static size_t nrr;
static char base[DNS_NAMEMAX];     /* the TLSA base domain */
static char mxhost[DNS_NAMEMAX];   /* the host name as the MX (or route) gave it */

/* ---- DER: the SubjectPublicKeyInfo of a certificate ---- */

/* The TLV at p[0..n): header and content lengths; -1 if malformed. */
static int der_tlv(const unsigned char *p, size_t n, size_t *hl, size_t *cl)
{
  size_t i, k, l = 0;

  if (n < 2 || (p[0] & 0x1f) == 0x1f) return -1;   /* no high tag numbers in X.509 */
  if (p[1] < 0x80) {
    *hl = 2;
    l = p[1];
  } else {
    k = p[1] & 0x7f;
    if (k == 0 || k > 3 || n < 2 + k) return -1;    /* certificates stay under 16 MiB */
    for (i = 0; i < k; i++) l = l << 8 | p[2 + i];
    *hl = 2 + k;
  }
  if (l > n - *hl) return -1;
  *cl = l;
  return 0;
}

/* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
 * OPTIONAL, serial, signature, issuer, validity, subject, spki, ... } }:
 * the whole spki TLV. 0 or -1. */
static int cert_spki(const unsigned char *c, size_t n, const unsigned char **out, size_t *outlen)
{
  size_t hl, cl, i;

  if (der_tlv(c, n, &hl, &cl) < 0 || c[0] != 0x30) return -1;
  c += hl;
  n = cl;
  if (der_tlv(c, n, &hl, &cl) < 0 || c[0] != 0x30) return -1;
  c += hl;
  n = cl;
  if (n && c[0] == 0xa0) {
    if (der_tlv(c, n, &hl, &cl) < 0) return -1;
    c += hl + cl;
    n -= hl + cl;
  }
  for (i = 0; i < 5; i++) {
    if (der_tlv(c, n, &hl, &cl) < 0) return -1;
    c += hl + cl;
    n -= hl + cl;
  }
  if (der_tlv(c, n, &hl, &cl) < 0 || c[0] != 0x30) return -1;
  *out = c;
  *outlen = hl + cl;
  return 0;
}

int dane_match(unsigned sel, unsigned mtype, const unsigned char *data, size_t n,
               const unsigned char *cert, size_t len)
{
  const unsigned char *p = cert;
  size_t pl = len;
  unsigned char h[br_sha512_SIZE];

  if (sel == 1 && cert_spki(cert, len, &p, &pl) < 0) return 0;
  if (sel > 1) return 0;
  if (mtype == 0) return n == pl && !memcmp(data, p, n);
  if (mtype == 1) {
    br_sha256_context c;
    br_sha256_init(&c);
    br_sha256_update(&c, p, pl);
    br_sha256_out(&c, h);
    return n == br_sha256_SIZE && !memcmp(data, h, n);
  }
  if (mtype == 2) {
    br_sha512_context c;
    br_sha512_init(&c);
    br_sha512_update(&c, p, pl);
    br_sha512_out(&c, h);
    return n == br_sha512_SIZE && !memcmp(data, h, n);
  }
  return 0;
}

/* ---- TLSA lookups ---- */

struct found {
  size_t seen;                    /* TLSA records in the answer */
  char name[DNS_NAMEMAX];         /* the owner the answer ended at */
};

static int usable(unsigned usage, unsigned sel, unsigned mtype, size_t n)
{
  if (usage != 2 && usage != 3) return 0;   /* PKIX-TA/EE: unusable in SMTP */
  if (sel > 1) return 0;
  if (mtype == 0) return n > 0 && n <= DATA_MAX;
  if (mtype == 1) return n == br_sha256_SIZE;
  if (mtype == 2) return n == br_sha512_SIZE;
  return 0;
}

static int each_tlsa(const ns_msg *m, const ns_rr *rr, void *v)
{
  struct found *f = v;
  const unsigned char *d = ns_rr_rdata(*rr);
  size_t n = ns_rr_rdlen(*rr);
  struct tlsa *t;

  (void)m;
  f->seen++;
  if (n < 3 || !usable(d[0], d[1], d[2], n - 3) || nrr == RR_MAX) return 0;
  t = &rrs[nrr++];
  t->usage = d[0];
  t->sel = d[1];
  t->mtype = d[2];
  t->n = n - 3;
  memcpy(t->data, d + 3, t->n);
  return 0;
}

static int each_addr(const ns_msg *m, const ns_rr *rr, void *v)
{
  struct found *f = v;

  (void)m;
  if (strlen(ns_rr_name(*rr)) < sizeof f->name) strcpy(f->name, ns_rr_name(*rr));
  return 0;
}

/* The addresses of host, all signed: 1 with the CNAME-expanded name in
 * f->name, 0 insecure or none, -1 a failed lookup. */
static int addr_secure(const char *host, struct found *f)
{
  int r6, r4;

  f->name[0] = 0;
  dns_ad_begin();
  r6 = dns_lookup(host, ns_t_aaaa, each_addr, f);
  r4 = dns_lookup(host, ns_t_a, each_addr, f);
  if (r6 == DNS_TEMP || r4 == DNS_TEMP) return -1;
  if (!dns_ad_since() || !f->name[0]) return 0;
  return 1;
}

/* The TLSA RRset at _port._tcp.<b>: DANE_* as dane_lookup, or 3 when
 * there is none (the next base may have one). */
static int tlsa_at(const char *b, unsigned long port, const char **why)
{
  char q[DNS_NAMEMAX + 32];
  struct found f = { 0, "" };
  int r, n;

  n = snprintf(q, sizeof q, "_%lu._tcp.%s", port, b);
  if (n < 0 || (size_t)n >= DNS_NAMEMAX) { *why = "name-too-long"; return DANE_NONE; }
  nrr = 0;
  dns_ad_begin();
  r = dns_lookup(q, ns_t_tlsa, each_tlsa, &f);
  if (r == DNS_TEMP) { *why = "tlsa-lookup-failed"; return DANE_TEMP; }
  if (r == DNS_NX || r == DNS_NODATA || f.seen == 0) return 3;
  if (!dns_ad_since()) { *why = "tlsa-insecure"; return DANE_NONE; }
  if (!nrr) { *why = "tlsa-unusable"; return DANE_UNUSABLE; }
  *why = "tlsa";
  if (strlen(b) >= sizeof base) return DANE_NONE;
  strcpy(base, b);
  return DANE_USABLE;
}

int dane_lookup(const char *host, unsigned long port, const char **why)
{
  struct found f;
  size_t hl = strlen(host);
  int r;

  nrr = 0;
  if (hl >= sizeof mxhost) { *why = "name-too-long"; return DANE_NONE; }
  memcpy(mxhost, host, hl + 1);
  if (hl > 1 && mxhost[hl - 1] == '.') mxhost[hl - 1] = 0;
  r = addr_secure(mxhost, &f);
  if (r < 0) { *why = "addr-lookup-failed"; return DANE_TEMP; }
  if (!r) { *why = "addr-insecure"; return DANE_NONE; }
  if (strcasecmp(f.name, mxhost)) {
    r = tlsa_at(f.name, port, why);
    if (r != 3) return r;
  }
  r = tlsa_at(mxhost, port, why);
  if (r != 3) return r;
  *why = "no-tlsa";
  return DANE_NONE;
}

/* ---- the X.509 engine ---- */

static struct {
  const br_x509_class *vtable;
  size_t off[CHAIN_MAX], len[CHAIN_MAX];
  int n, over;
  size_t used;
  const char *matched, *err;
} e;
static unsigned char arena[ARENA];
static br_x509_decoder_context leaf, anchor;
static br_x509_minimal_context mc;
static unsigned char dn[DN_MAX];
static size_t dnlen;
static int dnover;

static void x_start_chain(const br_x509_class **ctx, const char *name)
{
  (void)ctx;
  (void)name;
  e.n = e.over = 0;
  e.used = 0;
  e.matched = 0;
  e.err = "no certificate";
}

static void x_start_cert(const br_x509_class **ctx, uint32_t len)
{
  (void)ctx;
  if (e.over || e.n == CHAIN_MAX || len > ARENA - e.used) { e.over = 1; return; }
  e.off[e.n] = e.used;
  e.len[e.n] = 0;
}

static void x_append(const br_x509_class **ctx, const unsigned char *b, size_t len)
{
  (void)ctx;
  if (e.over) return;
  if (len > ARENA - e.used) { e.over = 1; return; }
  memcpy(arena + e.used, b, len);
  e.used += len;
  e.len[e.n] += len;
}

static void x_end_cert(const br_x509_class **ctx)
{
  (void)ctx;
  if (!e.over) e.n++;
}

static void dn_add(void *ctx, const void *p, size_t n)
{
  (void)ctx;
  if (dnover || n > sizeof dn - dnlen) { dnover = 1; return; }
  memcpy(dn + dnlen, p, n);
  dnlen += n;
}

/* Chain k-1 .. 0 under certificate k as the only trust anchor, its name
 * checked against the TLSA base domain, then the MX host name: 0 or
 * BearSSL's X.509 error. */
static unsigned ta_chain(int k)
{
  br_x509_trust_anchor ta;
  const br_x509_pkey *pk;
  const char *names[2] = { base, mxhost };
  unsigned r = BR_ERR_X509_NOT_TRUSTED;
  int i, j;

  dnlen = 0;
  dnover = 0;
  br_x509_decoder_init(&anchor, dn_add, 0);
  br_x509_decoder_push(&anchor, arena + e.off[k], e.len[k]);
  pk = br_x509_decoder_get_pkey(&anchor);
  if (!pk || dnover) return BR_ERR_X509_UNSUPPORTED;
  ta.dn.data = dn;
  ta.dn.len = dnlen;
  ta.flags = BR_X509_TA_CA;
  ta.pkey = *pk;
  for (j = 0; j < 2; j++) {
    if (j == 1 && !strcasecmp(base, mxhost)) break;
    br_x509_minimal_init_full(&mc, &ta, 1);
    mc.vtable->start_chain(&mc.vtable, names[j]);
    for (i = 0; i < k; i++) {
      mc.vtable->start_cert(&mc.vtable, (uint32_t)e.len[i]);
      mc.vtable->append(&mc.vtable, arena + e.off[i], e.len[i]);
      mc.vtable->end_cert(&mc.vtable);
    }
    r = mc.vtable->end_chain(&mc.vtable);
    if (r != BR_ERR_X509_BAD_SERVER_NAME) break;
  }
  return r;
}

static unsigned x_end_chain(const br_x509_class **ctx)
{
  unsigned r, last = 0;
  size_t i;
  int k;

  (void)ctx;
  if (e.over) { e.err = "certificate chain too long for DANE"; return BR_ERR_X509_LIMIT_EXCEEDED; }
  if (!e.n) return BR_ERR_X509_EMPTY_CHAIN;
  br_x509_decoder_init(&leaf, 0, 0);
  br_x509_decoder_push(&leaf, arena + e.off[0], e.len[0]);
  if (!br_x509_decoder_get_pkey(&leaf)) { e.err = "server certificate unreadable"; return BR_ERR_X509_UNSUPPORTED; }
  for (i = 0; i < nrr; i++)
    if (rrs[i].usage == 3 &&
        dane_match(rrs[i].sel, rrs[i].mtype, rrs[i].data, rrs[i].n, arena + e.off[0], e.len[0])) {
      e.matched = "dane-ee";
      return 0;
    }
  for (k = 1; k < e.n; k++)
    for (i = 0; i < nrr; i++) {
      if (rrs[i].usage != 2 ||
          !dane_match(rrs[i].sel, rrs[i].mtype, rrs[i].data, rrs[i].n, arena + e.off[k], e.len[k]))
        continue;
      r = ta_chain(k);
      if (!r) { e.matched = "dane-ta"; return 0; }
      last = r;
    }
  if (last == BR_ERR_X509_BAD_SERVER_NAME) e.err = "DANE-TA matched, certificate names neither the TLSA base domain nor the MX host";
  else if (last == BR_ERR_X509_EXPIRED) e.err = "DANE-TA matched, certificate expired or not yet valid";
  else if (last) e.err = "DANE-TA matched, chain does not verify under it";
  else e.err = "no TLSA record matches the certificate chain";
  return last ? last : BR_ERR_X509_NOT_TRUSTED;
}

static const br_x509_pkey *x_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
  (void)ctx;
  if (usages) *usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
  return br_x509_decoder_get_pkey(&leaf);
}

static const br_x509_class dane_class = {
  sizeof e, x_start_chain, x_start_cert, x_append, x_end_cert, x_end_chain, x_get_pkey
};

const br_x509_class **dane_x509(void)
{
  e.vtable = &dane_class;
  e.matched = 0;
  e.err = "no certificate";
  return &e.vtable;
}

const char *dane_base(void)
{
  return base;
}

const char *dane_matched(void)
{
  return e.matched;
}

const char *dane_error(void)
{
  return e.err;
}

int dane_rrset_field(str *out)
{
  static const char hex[] = "0123456789abcdef";
  size_t i, k;

  out->len = 0;
  if (!nrr) return str_copys(out, "-") < 0 || str_0(out) < 0 ? -1 : 0;
  for (i = 0; i < nrr; i++) {
    if ((i && str_catc(out, ',') < 0) || str_catu(out, rrs[i].usage) < 0 || str_catc(out, '_') < 0 ||
        str_catu(out, rrs[i].sel) < 0 || str_catc(out, '_') < 0 || str_catu(out, rrs[i].mtype) < 0 ||
        str_catc(out, '_') < 0)
      return -1;
    for (k = 0; k < rrs[i].n; k++)
      if (str_catc(out, hex[rrs[i].data[k] >> 4]) < 0 || str_catc(out, hex[rrs[i].data[k] & 15]) < 0) return -1;
  }
  return str_0(out);
}
