/* lib/dkimverify and qmail-verify's authserv-id parser: signatures made
 * by lib/dkim (RSA and Ed25519, relaxed and simple) verify, with the body
 * fed in any split; a changed body fails; the bounds hold (at most
 * DKIM_VERIFY_MAX signatures judged and looked up, the hashing cap gives
 * policy); key records (revoked, wrong type, short key, lookup failures)
 * give their results; resinfo quotes what is no MIME token; ar_claims
 * reads authserv-ids behind comments, quoted, in any case. The
 * cross-checks against dkimpy and OpenDKIM are in tests/t-verify.py. */
#include <stdio.h>
#include <string.h>
#include "../../qmail-verify/authres.h"
#include "check.h"
#include "dkimverify.h"
#include "dns.h"

static str rsa_rec, ed_rec;
static const char *answer;          /* the record served, 0 for rsa_rec/ed_rec by selector */
static int answer_code = DNS_OK;
static unsigned lookups;

static int key(const char *name, str *txt, void *ctx)
{
  (void)ctx;
  lookups++;
  txt->len = 0;
  if (answer_code != DNS_OK) return answer_code;
  if (answer) return str_cats(txt, answer) ? DNS_TEMP : DNS_OK;
  if (!strcmp(name, "r._domainkey.example.test")) return str_catb(txt, rsa_rec.s, rsa_rec.len) ? DNS_TEMP : DNS_OK;
  if (!strcmp(name, "e._domainkey.example.test")) return str_catb(txt, ed_rec.s, ed_rec.len) ? DNS_TEMP : DNS_OK;
  return DNS_NX;
}

static struct dkim_verify v;

/* Verifies m, its body fed step bytes at a time; the first result. */
static int verify(const char *m, size_t step, unsigned long long maxhash)
{
  struct dkim_verify_opts o = { 1800000000ull, maxhash, key, 0 };
  const char *e = strstr(m, "\n\n");
  size_t hl = e ? (size_t)(e - m) + 2 : strlen(m), n = strlen(m), i;
  if (dkim_verify_start(&v, m, hl, &o) < 0) return -1;
  for (i = hl; i < n; i += step) dkim_verify_body(&v, m + i, n - i < step ? n - i : step);
  dkim_verify_finish(&v);
  return v.n ? v.r[0].result : DKIM_NONE;
}

static int load(struct dkim_key *k, const char *file)
{
  char buf[8192];
  const char *err;
  FILE *f = fopen(file, "r");
  size_t n;
  if (!f) return -1;
  n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  return dkim_key_parse(k, buf, n, &err);
}

static const char body[] = "From: Joe <joe@example.test>\nTo: z@example.test\nSubject:  hi \n\n"
                           "Hello  there \n\n\nmore\n\n\n";

/* body signed with k as selector sel; the whole message in out. */
static void sign(str *out, struct dkim_key *k, const char *sel, int relaxed)
{
  struct dkim_sign_opts o = { "example.test", sel, relaxed, relaxed, 1700000000 };
  const char *err;
  out->len = 0;
  MUST(dkim_sign(out, k, &o, body, strlen(body), &err));
  MUST(str_cats(out, body));
  MUST(str_0(out));
}

static int claims(const char *v_, const char *id) { return ar_claims(v_, strlen(v_), id); }

int main(void)
{
  static struct dkim_key rk, ek;
  str m = STR_INIT, m2 = STR_INIT, r = STR_INIT;
  size_t i;

  MUST(load(&rk, "tests/dkim-keys/rsa2048.pem"));
  MUST(load(&ek, "tests/dkim-keys/ed.pem"));
  MUST(str_cats(&rsa_rec, "v=DKIM1; k=rsa; p="));
  MUST(dkim_key_public(&rsa_rec, &rk));
  MUST(str_cats(&ed_rec, "v=DKIM1; k=ed25519; p="));
  MUST(dkim_key_public(&ed_rec, &ek));

  /* pass, both key types and canonicalizations, any split */
  for (i = 0; i < 4; i++) {
    sign(&m, i & 1 ? &ek : &rk, i & 1 ? "e" : "r", i < 2);
    CHECK(verify(m.s, 1, 1 << 20) == DKIM_PASS && !v.r[0].why);
    CHECK(verify(m.s, 7, 1 << 20) == DKIM_PASS);
    CHECK(verify(m.s, 1 << 20, 1 << 20) == DKIM_PASS && !strcmp(v.r[0].d, "example.test")
          && !strcmp(v.r[0].s, i & 1 ? "e" : "r") && strlen(v.r[0].b) == 8);
  }
  /* relaxed body: trailing white space and empty lines do not count; a byte does */
  sign(&m, &rk, "r", 1);
  MUST(str_copyb(&m2, m.s, m.len - 1));
  MUST(str_cats(&m2, " \n\n"));
  MUST(str_0(&m2));
  CHECK(verify(m2.s, 3, 1 << 20) == DKIM_PASS);
  m2.s[m2.len - 6] ^= 1;
  CHECK(verify(m2.s, 3, 1 << 20) == DKIM_FAIL && !strcmp(v.r[0].why, "body hash mismatch"));

  /* the hashing cap: policy, never pass */
  CHECK(verify(m.s, 5, 10) == DKIM_POLICY);

  /* at most DKIM_VERIFY_MAX judged and looked up */
  {
    const char *end = strstr(m.s, "From: Joe");
    size_t sl = (size_t)(end - m.s);
    m2.len = 0;
    for (i = 0; i < 7; i++) MUST(str_catb(&m2, m.s, sl));
    MUST(str_cats(&m2, end));
    MUST(str_0(&m2));
    lookups = 0;
    CHECK(verify(m2.s, 64, 1 << 20) == DKIM_PASS && v.n == DKIM_VERIFY_MAX && v.nsigs == 7
          && lookups == DKIM_VERIFY_MAX);
    for (i = 0; i < v.n; i++) CHECK(v.r[i].result == DKIM_PASS);
  }

  /* key records */
  answer = "v=DKIM1; k=rsa; p=";
  CHECK(verify(m.s, 64, 1 << 20) == DKIM_PERMERROR && !strcmp(v.r[0].why, "key revoked"));
  MUST(str_0(&ed_rec));
  answer = ed_rec.s;
  CHECK(verify(m.s, 64, 1 << 20) == DKIM_PERMERROR && !strcmp(v.r[0].why, "key type mismatch"));
  answer = "v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBANxDRpeXgmYaDpAjhcBL0W2PC4zngdi/4zjDXk"
           "3CulZU67VEgFlLoovW3naBd744UkZjsl2C4nJ0EF9YxBiXMmECAwEAAQ==";
  CHECK(verify(m.s, 64, 1 << 20) == DKIM_FAIL && !strcmp(v.r[0].why, "key too short"));
  answer = "v=DKIM1; h=sha1; p=AAAA";
  CHECK(verify(m.s, 64, 1 << 20) == DKIM_PERMERROR);
  answer = "k=rsa; v=DKIM1; p=AAAA";           /* v= not first */
  CHECK(verify(m.s, 64, 1 << 20) == DKIM_PERMERROR && !strcmp(v.r[0].why, "bad key record"));
  answer = 0;
  answer_code = DNS_TEMP;
  CHECK(verify(m.s, 64, 1 << 20) == DKIM_TEMPERROR);
  answer_code = DNS_NX;
  CHECK(verify(m.s, 64, 1 << 20) == DKIM_PERMERROR && !strcmp(v.r[0].why, "no key"));
  answer_code = DNS_OK;

  /* signature syntax: neutral; no signature: none */
  CHECK(verify("DKIM-Signature: v=1; a=rsa-sha256; d=example.test\nFrom: a@example.test\n\nx\n", 64, 1 << 20)
        == DKIM_NEUTRAL && !strcmp(v.r[0].d, "example.test"));
  /* a d= that is no name is not cut down to one */
  CHECK(verify("DKIM-Signature: v=1; a=rsa-sha256; b=AAAA; bh=AAAA; d=exa$mple.test; h=from; s=s\n"
               "From: a@example.test\n\nx\n", 64, 1 << 20) == DKIM_NEUTRAL && v.r[0].d[0] == 0);
  answer = "v=DKIM1; p=MAA=";               /* an empty SEQUENCE */
  CHECK(verify(m.s, 64, 1 << 20) == DKIM_PERMERROR);
  answer = 0;
  CHECK(verify("DKIM-Signature: v=1; a=rsa-sha1; b=AAAA; bh=AAAA; d=example.test; h=from; s=s\n"
               "From: a@example.test\n\nx\n", 64, 1 << 20) == DKIM_POLICY);
  CHECK(verify("From: a@example.test\n\nx\n", 64, 1 << 20) == DKIM_NONE && v.nsigs == 0);

  /* resinfo */
  {
    struct dkim_sigresult s = { DKIM_FAIL, "body hash mismatch", "example.test", "s1", "ab/cd+12" };
    CHECK(dkim_resinfo(&r, &s) == 0 && str_0(&r) == 0 && !strcmp(r.s,
          "dkim=fail (body hash mismatch) header.d=example.test header.s=s1 header.b=\"ab/cd+12\""));
    r.len = 0;
    CHECK(dkim_resinfo(&r, 0) == 0 && r.len == 9 && !memcmp(r.s, "dkim=none", 9));
  }
  {
    str f[2] = { STR_INIT, STR_INIT };
    MUST(str_cats(&f[0], "spf=pass smtp.mailfrom=example.test"));
    MUST(str_cats(&f[1], "dkim=none"));
    r.len = 0;
    CHECK(ar_header(&r, "mx.test", f, 2) == 0 && str_0(&r) == 0 && !strcmp(r.s,
          "Authentication-Results: mx.test;\n\tspf=pass smtp.mailfrom=example.test;\n\tdkim=none\n"));
    r.len = 0;
    CHECK(ar_header(&r, "mx.test", f, 0) == 0 && str_0(&r) == 0
          && !strcmp(r.s, "Authentication-Results: mx.test; none\n"));
    str_free(&f[0]);
    str_free(&f[1]);
  }

  /* authserv-ids */
  CHECK(claims(" mx.example.test; dkim=pass", "mx.example.test"));
  CHECK(claims("MX.Example.TEST;", "mx.example.test"));
  CHECK(claims(" (c (nested) \\) ) mx.example.test (x); spf=pass", "mx.example.test"));
  CHECK(claims("\n\tmx.example.test 1; none", "mx.example.test"));
  CHECK(claims(" \"mx.example.test\"; dkim=pass", "mx.example.test"));
  CHECK(claims(" \"mx.exa\\mple.test\"; dkim=pass", "mx.example.test"));
  CHECK(!claims(" mx.example.test.evil; dkim=pass", "mx.example.test"));
  CHECK(!claims(" mx.example.tes; dkim=pass", "mx.example.test"));
  CHECK(!claims(" other.test; dkim=pass (mx.example.test)", "mx.example.test"));
  CHECK(!claims(" (unclosed mx.example.test", "mx.example.test"));
  CHECK(!claims(" \"mx.example.test", "mx.example.test"));
  CHECK(!claims("", "mx.example.test"));
  CHECK(!claims(" x;", ""));

  str_free(&m);
  str_free(&m2);
  str_free(&r);
  str_free(&rsa_rec);
  str_free(&ed_rec);
  dkim_key_wipe(&rk);
  dkim_key_wipe(&ek);
  DONE();
}
