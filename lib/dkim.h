#ifndef DKIM_H
#define DKIM_H
/* DKIM signatures (RFC 6376) with RSA-SHA256 (BearSSL) and Ed25519-SHA256
 * (RFC 8463, libsodium): canonicalization, the tag-list parser, and the
 * signer. Pure functions over buffers, no I/O: the key bytes come from the
 * caller, which alone decides who may read them.
 *
 * Messages are qmail's: lines end in LF (a CR before the LF is accepted
 * and dropped, so CRLF input canonicalizes the same); the output header is
 * LF-terminated too, as the queue stores it. A program using dkim_sign
 * links -lbearssl -lsodium. */
#include <stddef.h>
#include <bearssl.h>
#include "str.h"

enum { DKIM_SIMPLE = 0, DKIM_RELAXED = 1 };

/* Appends the canonical form of one header field (name, colon, value,
 * continuation lines, with or without its final line end) and CRLF. */
int dkim_canon_header(str *out, const char *f, size_t n, int relaxed);

/* Streaming body canonicalizer: bytes go through sink (in pieces of any
 * size) as RFC 6376 3.4.3/3.4.4 say, trailing empty lines dropped. The
 * input may be fed in any split; the output does not depend on it. */
struct dkim_body {
  void (*sink)(void *ctx, const void *p, size_t n);
  void *ctx;
  int relaxed;
  int cr;                 /* a CR is held back: it may start a CRLF */
  int wsp;                /* relaxed: white space is held back */
  int inline_;            /* the current line has content */
  int any;                /* simple: anything at all was emitted */
  unsigned long long empties;   /* empty lines held back */
  size_t blen;
  unsigned char buf[2048];
};
void dkim_body_init(struct dkim_body *b, int relaxed,
                    void (*sink)(void *ctx, const void *p, size_t n), void *ctx);
void dkim_body_update(struct dkim_body *b, const void *p, size_t n);
void dkim_body_final(struct dkim_body *b);
/* The body hash (bh=) of a whole body. */
void dkim_body_hash(unsigned char out[32], const char *body, size_t n, int relaxed);

/* Tag lists (RFC 6376 3.2), strict: tag names ALPHA *(ALNUM / "_"),
 * values of VALCHAR with folding white space between them, no duplicate
 * names, at most max tags. Names and values point into the input; the
 * value has its surrounding white space removed. 0, or -1 (EINVAL for bad
 * syntax or a duplicate, E2BIG for too many tags). */
struct dkim_tag {
  const char *name, *val;
  size_t nlen, vlen;
};
#define DKIM_TAGS_MAX 32
int dkim_tags_parse(const char *s, size_t n, struct dkim_tag *t, size_t max, size_t *count);
const struct dkim_tag *dkim_tag_get(const struct dkim_tag *t, size_t count, const char *name);

/* The header block of msg: fields[i] is the byte range of field i, its
 * continuation lines and final LF included. *hdrlen is where the body
 * starts (after the empty line; n when there is none). 0, or -1 (E2BIG:
 * more than max fields; EINVAL: a line that is neither a field nor a
 * continuation). */
struct dkim_field { size_t off, len, nlen; };
#define DKIM_FIELDS_MAX 512       /* a message with more fields is neither signed nor verified */
int dkim_fields(const char *msg, size_t n, struct dkim_field *f, size_t max,
                size_t *count, size_t *hdrlen);

/* Feeds sha the canonical form of every field that the h= list h (names
 * separated by ':', FWS around them allowed) names, each picked bottom-up
 * among the fields of msg not yet used (RFC 6376 5.4.2); a name with no
 * field left adds nothing. nf <= DKIM_FIELDS_MAX. 0 or -1 (ENOMEM). */
int dkim_hash_fields(br_sha256_context *sha, const char *msg, const struct dkim_field *f,
                     size_t nf, const char *h, size_t hlen, int relaxed);

enum { DKIM_KEY_RSA = 1, DKIM_KEY_ED25519 = 2 };
#define DKIM_RSA_MIN 2048
#define DKIM_RSA_MAX 4096
struct dkim_key {
  int type;
  unsigned bits;
  br_skey_decoder_context dec;        /* holds the RSA key */
  unsigned char ed[64];               /* libsodium's secret key: seed || public */
};
/* Decodes a PEM private key: RSA ("RSA PRIVATE KEY" or PKCS#8 "PRIVATE
 * KEY") of DKIM_RSA_MIN..DKIM_RSA_MAX bits, or Ed25519 in PKCS#8 (as
 * openssl genpkey writes it). 0, or -1 with *err. */
int dkim_key_parse(struct dkim_key *k, const char *pem, size_t n, const char **err);
void dkim_key_wipe(struct dkim_key *k);
/* Appends the public key in the form of the DNS record's p= (base64 of
 * the SubjectPublicKeyInfo for RSA, of the 32 raw bytes for Ed25519). */
int dkim_key_public(str *out, const struct dkim_key *k);

struct dkim_sign_opts {
  const char *domain, *selector;
  int hrelaxed, brelaxed;
  unsigned long long t;               /* t=, the signing time */
};
/* Appends to out one "DKIM-Signature: ...\n" header (LF line ends) for
 * msg, which must not be altered afterwards: the signed headers are those
 * of dkim_signed_names present in msg, From once more (oversigned, so a
 * From added later breaks the signature), never l=. 0, or -1 with *err. */
int dkim_sign(str *out, const struct dkim_key *k, const struct dkim_sign_opts *o,
              const char *msg, size_t n, const char **err);
extern const char *const dkim_signed_names[];

#endif
