/* dane_match (qmail-remote/dane.c): selector Cert(0) or SPKI(1), matching
 * Full(0), SHA-256(1), SHA-512(2), on a hand-built certificate-shaped DER;
 * every truncation and a lying length must neither match nor read out of
 * bounds (the sanitizer build checks the latter). */
#include <string.h>
#include <bearssl.h>
#include "check.h"
#include "../../qmail-remote/dane.h"

/* SEQ { SEQ { [0] { INT 2 }, INT 1, SEQ alg, SEQ issuer, SEQ validity,
 * SEQ subject, SEQ spki { ... } } } with a long-form length on the spki. */
static const unsigned char spki[] = { 0x30, 0x81, 0x04, 0x02, 0x02, 0xab, 0xcd };
static unsigned char cert[64];
static size_t certlen;

static void build(void)
{
  static const unsigned char head[] = {
    0xa0, 0x03, 0x02, 0x01, 0x02,          /* [0] version */
    0x02, 0x01, 0x01,                      /* serial */
    0x30, 0x00, 0x30, 0x00, 0x30, 0x00, 0x30, 0x00 /* alg, issuer, validity, subject */
  };
  size_t tbs = sizeof head + sizeof spki;

  cert[0] = 0x30;
  cert[1] = (unsigned char)(tbs + 2);
  cert[2] = 0x30;
  cert[3] = (unsigned char)tbs;
  memcpy(cert + 4, head, sizeof head);
  memcpy(cert + 4 + sizeof head, spki, sizeof spki);
  certlen = 4 + tbs;
}

int main(void)
{
  unsigned char h256[32], h512[64], bad[32];
  br_sha256_context c;
  br_sha512_context d;
  size_t n;
  int any = 0;

  build();
  br_sha256_init(&c);
  br_sha256_update(&c, spki, sizeof spki);
  br_sha256_out(&c, h256);
  br_sha512_init(&d);
  br_sha512_update(&d, cert, certlen);
  br_sha512_out(&d, h512);
  memcpy(bad, h256, sizeof bad);
  bad[31] ^= 1;

  CHECK(dane_match(1, 0, spki, sizeof spki, cert, certlen));
  CHECK(dane_match(1, 1, h256, sizeof h256, cert, certlen));
  CHECK(!dane_match(1, 1, bad, sizeof bad, cert, certlen));
  CHECK(dane_match(0, 2, h512, sizeof h512, cert, certlen));
  CHECK(dane_match(0, 0, cert, certlen, cert, certlen));
  CHECK(!dane_match(0, 1, h256, sizeof h256, cert, certlen));   /* SPKI hash against Cert */
  CHECK(!dane_match(2, 1, h256, sizeof h256, cert, certlen));   /* no selector 2 */
  CHECK(!dane_match(1, 3, h256, sizeof h256, cert, certlen));   /* no matching type 3 */
  CHECK(!dane_match(1, 1, h256, 31, cert, certlen));            /* a short hash */
  for (n = 0; n < certlen; n++) any |= dane_match(1, 1, h256, sizeof h256, cert, n);
  CHECK(!any);
  cert[1] = 0x84;                                               /* a length of 4 octets */
  CHECK(!dane_match(1, 1, h256, sizeof h256, cert, certlen));
  DONE();
}
