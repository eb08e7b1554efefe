/* libFuzzer target for the verifier (make fuzz-verify): lib/dkimverify's
 * DKIM-Signature and key-record parsers, the header hashing over
 * lib/dkim's canonicalizers, and qmail-verify's authserv-id parser. The
 * input is a message; the key lookup answers with a record chosen by the
 * first byte (a real RSA or Ed25519 key, a revoked one, a temporary
 * failure, or the input's last line as the record). Besides memory
 * safety it checks contracts: results in range, d= and s= NUL-terminated
 * names, b= at most 8 characters, and the same results whatever the
 * split of the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "authres.h"
#include "dkimverify.h"
#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[] = {
  "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCua6BG3Xi0fQVK9oRPlIB1y1bCwQkJBQPyuKeM4SYBED5J1NijeG"
  "QCtXgBhhL3F/FqK8RQmT1My4FpwYSzii+hQquZLeTti71OiLmATeR0Ceod1fgN0C2o/FBEGJMRrPuX1rExsHCSUgVZ"
  "hN88npawbToQsZ560H4Kc8i8WnqTUQIDAQAB",
  "v=DKIM1; k=ed25519; p=7yxuZmLMNAjkvKpFgoX68BUyEHPQqEUYh1wJEbG5RDg=",
  "v=DKIM1; p=",
};

struct ctx { const char *txt; size_t n; int mode; };

static int key(const char *name, str *txt, void *c)
{
  struct ctx *k = c;
  if (!name[0] || strlen(name) > 600) abort();
  txt->len = 0;
  if (k->mode == 3) return DNS_TEMP;
  if (k->mode == 4) return DNS_NX;
  if (k->mode == 5) return str_catb(txt, k->txt, k->n) ? DNS_TEMP : DNS_OK;
  return str_cats(txt, keys[k->mode]) ? DNS_TEMP : DNS_OK;
}

static void run(struct dkim_verify *v, const char *s, size_t n, size_t step, struct ctx *k)
{
  struct dkim_verify_opts o = { 1800000000ull, 1u << 20, key, k };
  size_t hl = n, i;
  const char *e = memmem(s, n, "\n\n", 2);
  if (e) hl = (size_t)(e - s) + 2;
  if (dkim_verify_start(v, s, hl, &o) < 0) { memset(v, 0, sizeof *v); return; }
  for (i = hl; i < n; i += step) dkim_verify_body(v, s + i, n - i < step ? n - i : step);
  dkim_verify_finish(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data;
  struct dkim_verify a, b;
  struct ctx k = { 0, 0, size ? data[0] % 6 : 0 };
  const char *last = size ? memrchr(s, '\n', size) : 0;
  size_t i;
  str out = STR_INIT;

  k.txt = last ? last + 1 : s;
  k.n = size - (size_t)(k.txt - s);
  run(&a, s, size, size + 1, &k);
  run(&b, s, size, size ? data[size - 1] % 13 + 1 : 1, &k);
  if (a.n != b.n || a.nsigs != b.nsigs || a.n > DKIM_VERIFY_MAX) abort();
  for (i = 0; i < a.n; i++) {
    const struct dkim_sigresult *r = &a.r[i];
    if (r->result != b.r[i].result || r->result < DKIM_PASS || r->result > DKIM_TEMPERROR) abort();
    if (strnlen(r->d, sizeof r->d) == sizeof r->d || strnlen(r->s, sizeof r->s) == sizeof r->s
        || strnlen(r->b, sizeof r->b) == sizeof r->b || strcmp(r->d, b.r[i].d))
      abort();
    if (dkim_resinfo(&out, r) < 0) abort();
  }
  (void)ar_claims(s, size, "mx.example.test");
  if (ar_claims(s, size, "") != 0) abort();
  str_free(&out);
  return 0;
}
