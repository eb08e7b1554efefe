/* lib/base64: RFC 4648 test vectors both ways, and the strict decoder
 * refusing every non-canonical or malformed input. */
#include <string.h>
#include "base64.h"
#include "check.h"

static int dec(const char *in, const char *want, size_t wn)
{
  str o = STR_INIT;
  int ok = base64_decode(&o, in, strlen(in)) == 0 && o.len == wn && (!wn || !memcmp(o.s, want, wn));
  str_free(&o);
  return ok;
}

static int bad(const char *in)
{
  str o = STR_INIT;
  int r = base64_decode(&o, in, strlen(in));
  str_free(&o);
  return r < 0;
}

static int enc(const char *in, size_t n, const char *want)
{
  str o = STR_INIT;
  int ok = base64_encode(&o, in, n) == 0 && o.len == strlen(want) && (!o.len || !memcmp(o.s, want, o.len));
  str_free(&o);
  return ok;
}

int main(void)
{
  static const char *v[][2] = {
    { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
  };
  size_t i;
  for (i = 0; i < sizeof v / sizeof v[0]; i++) {
    CHECK(enc(v[i][0], strlen(v[i][0]), v[i][1]));
    CHECK(dec(v[i][1], v[i][0], strlen(v[i][0])));
  }
  /* AUTH PLAIN: "\0user\0pass" */
  CHECK(enc("\0user\0pass", 10, "AHVzZXIAcGFzcw=="));
  CHECK(dec("AHVzZXIAcGFzcw==", "\0user\0pass", 10));
  CHECK(enc("\xff\xfe\xfd", 3, "//79"));
  CHECK(dec("//79", "\xff\xfe\xfd", 3));
  CHECK(dec("VXNlcm5hbWU6", "Username:", 9));

  CHECK(bad("Zg="));          /* length not a multiple of 4 */
  CHECK(bad("Zg"));
  CHECK(bad("Z"));
  CHECK(bad("Zh=="));         /* non-zero bits under the padding */
  CHECK(bad("Zm9="));
  CHECK(bad("Zm9v Zg=="));    /* white space */
  CHECK(bad("Zm9v\r\n"));
  CHECK(bad("Zg==Zg=="));     /* padding before the end */
  CHECK(bad("=Zg="));
  CHECK(bad("Z=g="));
  CHECK(bad("===="));
  CHECK(bad("Zm-v"));         /* base64url alphabet */
  CHECK(bad("Zm_v"));
  CHECK(bad("Zm9\x80"));
  CHECK(bad("Zm9\0"));
  {
    str o = STR_INIT;
    CHECK(base64_decode(&o, "Zm\0v", 4) < 0);   /* NUL inside */
    str_free(&o);
  }
  DONE();
}
