/* qmail-smtpd/authlib: user names, the checkpassword request parser and
 * the constant-time hash comparison. */
#include <string.h>
#include "../../qmail-smtpd/authlib.h"
#include "check.h"

static int parses(const char *b, size_t n, const char *u, const char *p)
{
  const char *uu, *pp;
  size_t un, pn;
  if (cp_parse(b, n, &uu, &un, &pp, &pn) < 0) return 0;
  return un == strlen(u) && !memcmp(uu, u, un) && pn == strlen(p) && !memcmp(pp, p, pn);
}

static int refused(const char *b, size_t n)
{
  const char *uu, *pp;
  size_t un, pn;
  return cp_parse(b, n, &uu, &un, &pp, &pn) < 0;
}

int main(void)
{
  char big[600];

  CHECK(authuser_ok("joe", 3));
  CHECK(authuser_ok("joe@example.org", 15));
  CHECK(!authuser_ok("", 0));
  CHECK(!authuser_ok("jo e", 4));
  CHECK(!authuser_ok("jo:e", 4));
  CHECK(!authuser_ok("jo\ne", 4));
  CHECK(!authuser_ok("jo\0e", 4));
  CHECK(!authuser_ok("jo\x7f", 3));
  CHECK(!authuser_ok("j\xc3\xa9", 3));
  memset(big, 'a', sizeof big);
  CHECK(authuser_ok(big, 255));
  CHECK(!authuser_ok(big, 256));

  CHECK(parses("joe\0secret\0" "1700000000\0", 22, "joe", "secret"));
  CHECK(parses("joe\0secret\0", 11, "joe", "secret"));
  CHECK(parses("joe\0sec ret:x\0\0", 15, "joe", "sec ret:x"));     /* empty timestamp */
  CHECK(refused("joe\0secret", 10));                 /* no NUL after the password */
  CHECK(refused("joe", 3));
  CHECK(refused("", 0));
  CHECK(refused("\0secret\0", 8));                   /* empty user */
  CHECK(refused("joe\0\0", 5));                      /* empty password */
  CHECK(refused("jo e\0secret\0", 12));              /* bad user */
  CHECK(refused("joe\0secret\0" "17\0x", 16));       /* bytes after the timestamp */
  CHECK(refused("joe\0secret\0" "17", 13));          /* timestamp without NUL */
  memset(big, 'p', sizeof big);
  memcpy(big, "joe", 4);
  big[4 + 255] = 0;
  CHECK(parses(big, 4 + 256, "joe", big + 4));       /* a 255-byte password */
  big[4 + 255] = 'p';
  big[4 + 256] = 0;
  CHECK(refused(big, 4 + 257));                      /* 256 bytes */
  big[599] = 0;
  CHECK(refused(big, 600));                          /* over 512 */

  CHECK(hash_equal("$y$abc", "$y$abc"));
  CHECK(hash_equal("", ""));
  CHECK(!hash_equal("$y$abc", "$y$abd"));
  CHECK(!hash_equal("$y$abc", "$y$ab"));
  CHECK(!hash_equal("$y$ab", "$y$abc"));
  CHECK(!hash_equal("", "x"));
  DONE();
}
