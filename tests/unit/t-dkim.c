/* lib/dkim: canonicalization vectors (RFC 6376 3.4.5's example and edge
 * cases), body hashes of the empty body, split-feeding invariance, the
 * strict tag-list parser, key decoding (1024 bits refused) and signatures
 * with fixed keys and time checked byte for byte against outputs that
 * dkimpy verified (tests/t-dkim-verify.py runs that verification). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "base64.h"
#include "check.h"
#include "dkim.h"

static int hdr_is(const char *in, int relaxed, const char *want)
{
  str o = STR_INIT;
  int ok = dkim_canon_header(&o, in, strlen(in), relaxed) == 0 && o.len == strlen(want)
           && !memcmp(o.s, want, o.len);
  if (!ok) printf("got [%.*s]\n", (int)o.len, o.s);
  str_free(&o);
  return ok;
}

static void cat_sink(void *ctx, const void *p, size_t n) { MUST(str_catb(ctx, p, n)); }

/* The canonical body, fed whole or in pieces of `step` bytes. */
static int body_is(const char *in, size_t step, int relaxed, const char *want)
{
  struct dkim_body b;
  str o = STR_INIT;
  size_t i, n = strlen(in);
  int ok;
  dkim_body_init(&b, relaxed, cat_sink, &o);
  for (i = 0; i < n; i += step) dkim_body_update(&b, in + i, n - i < step ? n - i : step);
  dkim_body_final(&b);
  ok = o.len == strlen(want) && (!o.len || !memcmp(o.s, want, o.len));
  if (!ok) printf("got [%.*s]\n", (int)o.len, o.s);
  str_free(&o);
  return ok;
}

static int bh_is(const char *body, int relaxed, const char *b64)
{
  unsigned char h[32];
  str o = STR_INIT;
  int ok;
  dkim_body_hash(h, body, strlen(body), relaxed);
  ok = base64_encode(&o, h, 32) == 0 && o.len == strlen(b64) && !memcmp(o.s, b64, o.len);
  str_free(&o);
  return ok;
}

static int tags(const char *s, size_t *n)
{
  struct dkim_tag t[DKIM_TAGS_MAX];
  return dkim_tags_parse(s, strlen(s), t, DKIM_TAGS_MAX, n);
}

static int load(struct dkim_key *k, const char *file, const char **err)
{
  char buf[8192];
  FILE *f = fopen(file, "r");
  size_t n;
  if (!f) { *err = "cannot open"; return -1; }
  n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  return dkim_key_parse(k, buf, n, err);
}

static const char msg[] = "From: a@example.test\nTo: b@example.test\nSubject: hi\n\nbody \n\n\n";

static int signs_as(struct dkim_key *k, const char *want_b)
{
  struct dkim_sign_opts o = { "example.test", "sel", 1, 1, 1700000000 };
  const char *err;
  str out = STR_INIT;
  int ok = dkim_sign(&out, k, &o, msg, strlen(msg), &err) == 0 && str_0(&out) == 0
           && strstr(out.s, "\th=from:to:subject:from;\n")
           && strstr(out.s, "\tbh=Ck5SoRNWUpSR4X0COv7R5ub2pUTtl6xz4dTFz++ji4M=;\n")
           && strstr(out.s, want_b);
  if (!ok) printf("got [%.*s]\n", (int)out.len, out.s);
  str_free(&out);
  return ok;
}

int main(void)
{
  static struct dkim_key k;
  struct dkim_tag t[DKIM_TAGS_MAX];
  const struct dkim_tag *g;
  const char *err, *s;
  size_t n;
  char many[400];
  int i;

  /* RFC 6376 3.4.5 */
  CHECK(hdr_is("A: X\r\n", 1, "a:X\r\n"));
  CHECK(hdr_is("B : Y\t\r\n\tZ  \r\n", 1, "b:Y Z\r\n"));
  CHECK(hdr_is("B : Y\t\n\tZ  \n", 1, "b:Y Z\r\n"));
  CHECK(hdr_is("SubJect:   a \t b  ", 1, "subject:a b\r\n"));
  CHECK(hdr_is("B : Y\t\n\tZ  \n", 0, "B : Y\t\r\n\tZ  \r\n"));
  CHECK(body_is(" C \r\nD \t E\r\n\r\n\r\n", 1000, 1, " C\r\nD E\r\n"));
  CHECK(body_is(" C \r\nD \t E\r\n\r\n\r\n", 1, 1, " C\r\nD E\r\n"));
  CHECK(body_is(" C \nD \t E\n\n\n", 1, 0, " C \r\nD \t E\r\n"));
  CHECK(body_is("a\r\rb\r", 1, 0, "a\r\rb\r\r\n"));
  CHECK(body_is("a\n \t\nb\n \n\n", 2, 1, "a\r\n\r\nb\r\n"));
  CHECK(body_is("a\n \t\nb\n \n\n", 3, 0, "a\r\n \t\r\nb\r\n \r\n"));
  CHECK(body_is("", 1, 1, ""));
  CHECK(body_is("\n\n", 1, 0, "\r\n"));
  CHECK(body_is("x", 1, 1, "x\r\n"));
  CHECK(bh_is("", 1, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="));
  CHECK(bh_is("", 0, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY="));

  /* tag lists */
  s = "v=1; a=rsa-sha256;\n\tb=abc\n\t def ; h = from : to;";
  CHECK(dkim_tags_parse(s, strlen(s), t, DKIM_TAGS_MAX, &n) == 0 && n == 4);
  g = dkim_tag_get(t, n, "b");
  CHECK(g && g->vlen == 9 && !memcmp(g->val, "abc\n\t def", 9));
  g = dkim_tag_get(t, n, "h");
  CHECK(g && g->vlen == 9 && !memcmp(g->val, "from : to", 9));
  CHECK(tags("v=1; v=2", &n) < 0 && errno == EINVAL);
  CHECK(tags("1a=x", &n) < 0);
  CHECK(tags("a", &n) < 0);
  CHECK(tags("a=b;;", &n) < 0);
  CHECK(tags("", &n) < 0);
  CHECK(tags("a=\x80", &n) < 0);
  CHECK(tags("a=b\nc=d", &n) < 0);
  CHECK(tags("a=b\n", &n) < 0);
  CHECK(tags("a=b;\n c=", &n) == 0 && n == 2);
  for (i = 0, n = 0; i < 40; i++) n += (size_t)sprintf(many + n, "t%d=x;", i);
  CHECK(tags(many, &n) < 0 && errno == E2BIG);

  /* keys and fixed signatures (deterministic: PKCS#1 v1.5 and Ed25519) */
  CHECK(load(&k, "tests/dkim-keys/rsa1024.pem", &err) < 0 && strstr(err, "too short"));
  CHECK(load(&k, "tests/dkim-keys/rsa3072p8.pem", &err) == 0 && k.type == DKIM_KEY_RSA && k.bits == 3072);
  CHECK(load(&k, "tests/dkim-keys/ed.pem", &err) == 0 && k.type == DKIM_KEY_ED25519);
  CHECK(signs_as(&k, "\tb=Q53d1HBZf9uNltqRWSY6x3Po2blPA4X4F/ywzvdJ3fTP38aqFNMYpJOkhQ0snfQVNnF0h1cy9UAiCO4ZL+XKCg==\n"));
  CHECK(load(&k, "tests/dkim-keys/rsa2048.pem", &err) == 0 && k.type == DKIM_KEY_RSA && k.bits == 2048);
  CHECK(signs_as(&k, "\tb=WzhA3+5jrEoB4NnZoXob4/hntFJ8BAZgs3gSeA0xqFKONCBMMTCQG2h+3z1syXnwsN20QcokNLACY3jReC0lvYPd0XL02VRQrKVw5Mx65hhiVJt2mJGiAHkUpcgzc/X/zSEN+PQpfuZ9eZmXPRalsOYRZy7jOTbhpdyhVKekg5ETd9qVehcgzuWEhonWj+9OVMqVXHCvGkQECCNFdEfh66AKdjNTBS4RrVCsUJIH2RDz7EFOSxxKaqNphr+8NltJNj9uVqH6qJtwTpaxHdsbxxM0pksAs6w8vUIU5wwX7w3bt78tN5uMwo5xbLAYCmnHGa+26Lwky6NYWQ4y6TG3Mw==\n"));
  {
    struct dkim_sign_opts o = { "example.test", "sel", 1, 1, 1 };
    str out = STR_INIT;
    CHECK(dkim_sign(&out, &k, &o, "To: x\n\nb\n", 9, &err) < 0 && !strcmp(err, "no From field"));
    CHECK(dkim_sign(&out, &k, &o, "From x\n\nb\n", 10, &err) < 0 && !strcmp(err, "malformed header"));
    o.domain = "a;b.test";
    CHECK(dkim_sign(&out, &k, &o, msg, strlen(msg), &err) < 0);
    str_free(&out);
  }
  dkim_key_wipe(&k);
  DONE();
}
