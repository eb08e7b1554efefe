#ifndef DKIMVERIFY_H
#define DKIMVERIFY_H
/* DKIM verification (RFC 6376, 8301, 8463) over lib/dkim's canonicalizers
 * and tag parser: RSA-SHA256 (BearSSL) and Ed25519-SHA256 (libsodium).
 * RSA-SHA1 is reported as "policy", never checked (RFC 8301); an RSA key
 * under DKIM_VERIFY_RSA_MIN bits fails.
 *
 * Bounded: at most DKIM_VERIFY_MAX signatures per message are judged
 * (later ones are counted, not checked), one key lookup each through the
 * caller's function, and at most opts.maxhash body bytes hashed over all
 * signatures together; a signature whose body did not fit is "policy".
 *
 * Streaming: dkim_verify_start gets the header block (in memory, as
 * dkim_fields splits it), dkim_verify_body the body in pieces of any
 * size, dkim_verify_finish looks the keys up and fills the results. The
 * results are plain data, so that a later check (DMARC: which d= passed)
 * reads them without knowing DKIM. A program using this links
 * -lbearssl -lsodium. */
#include <stddef.h>
#include "dkim.h"
#include "str.h"

enum dkim_result {
  DKIM_NONE = 0,        /* no signature */
  DKIM_PASS,
  DKIM_FAIL,            /* body hash or signature mismatch; key too short */
  DKIM_NEUTRAL,         /* unusable signature: syntax, unknown algorithm, expired */
  DKIM_POLICY,          /* rsa-sha1; body over the hashing cap */
  DKIM_PERMERROR,       /* no key, revoked key, bad key record */
  DKIM_TEMPERROR        /* key lookup failed for now (DNS) */
};
/* "none", "pass", ... as RFC 8601 spells them. */
const char *dkim_result_name(int r);

#define DKIM_VERIFY_MAX 5
#define DKIM_VERIFY_RSA_MIN 1024
#define DKIM_VERIFY_RSA_MAX 4096      /* BearSSL's largest RSA */
#define DKIM_DOMAIN_MAX 254

struct dkim_sigresult {
  int result;                     /* enum dkim_result */
  const char *why;                /* a short static reason, or 0 on pass */
  char d[DKIM_DOMAIN_MAX];        /* d=, lower case ("" if unreadable) */
  char s[DKIM_DOMAIN_MAX];        /* s= */
  char b[9];                      /* the first 8 characters of b= */
};

/* A key lookup: the TXT record(s) at name, concatenated and separated by
 * NUL when there are several, into *txt. Returns DNS_OK, DNS_NX,
 * DNS_NODATA or DNS_TEMP (lib/dns.h). */
typedef int (*dkim_keyfn)(const char *name, str *txt, void *ctx);

struct dkim_verify_opts {
  unsigned long long now;         /* for x= */
  unsigned long long maxhash;     /* body bytes hashed, all signatures together */
  dkim_keyfn key;
  void *keyctx;
};

struct dkim_vsig;                 /* one signature's state (dkimverify.c) */
struct dkim_verify {
  struct dkim_verify_opts o;
  size_t nsigs;                   /* DKIM-Signature fields seen */
  size_t n;                       /* results: min(nsigs, DKIM_VERIFY_MAX) */
  struct dkim_sigresult r[DKIM_VERIFY_MAX];
  unsigned long long hashed;
  struct dkim_vsig *v;            /* n of them */
};

/* Parses every DKIM-Signature of the header block hdr (hlen bytes, up to
 * and including the empty line) and hashes its signed fields. 0, or -1
 * (ENOMEM; EINVAL for a header block dkim_fields cannot split, E2BIG for
 * too many fields: then nothing is judged). */
int dkim_verify_start(struct dkim_verify *v, const char *hdr, size_t hlen,
                      const struct dkim_verify_opts *o);
void dkim_verify_body(struct dkim_verify *v, const void *p, size_t n);
/* Ends the body, fetches the keys, fills r[]. Frees the state: only r,
 * n and nsigs remain. */
void dkim_verify_finish(struct dkim_verify *v);
void dkim_verify_free(struct dkim_verify *v);

/* Appends one RFC 8601 resinfo for r: "dkim=pass header.d=... header.s=...
 * header.b=..." (a reason in a comment when not pass); "dkim=none" for 0. */
int dkim_resinfo(str *out, const struct dkim_sigresult *r);

#endif
