/* lib/addr.c: the RFC 5321 path and mailbox grammar, what it accepts and
 * what it refuses. */
#include <stdarg.h>
#include <string.h>
#include "addr.h"
#include "check.h"

static addr a = ADDR_INIT;

static int path(const char *s, unsigned flags)
{
  size_t used = 0;
  int r = addr_path(s, strlen(s), flags, &a, &used);
  if (r == ADDR_OK && used != strlen(s)) return 99;   /* trailing bytes left */
  return r;
}

static int mbox(const char *s, unsigned flags)
{
  return addr_mailbox(s, strlen(s), flags, &a);
}

static int is(const char *s) { return a.mbox.len == strlen(s) && memcmp(a.mbox.s, s, a.mbox.len) == 0; }

static void repeat(char *out, char c, size_t n) { memset(out, c, n); out[n] = 0; }

/* Concatenates the NULL-terminated list of strings into a static buffer. */
static str joined = STR_INIT;
static const char *join(const char *first, ...)
{
  va_list ap;
  const char *p;
  joined.len = 0;
  va_start(ap, first);
  for (p = first; p; p = va_arg(ap, const char *)) MUST(str_cats(&joined, p));
  va_end(ap);
  CHECK(str_0(&joined) == 0);
  return joined.s;
}

int main(void)
{
  char big[600];
  const char *tp;
  size_t used;

  /* Dot-atoms. */
  CHECK(path("<a@b.c>", 0) == ADDR_OK && is("a@b.c") && a.at == 1);
  CHECK(!a.route && !a.quoted && !a.literal && !a.utf8);
  CHECK(path("<first.last+tag@sub.example.test>", 0) == ADDR_OK && is("first.last+tag@sub.example.test"));
  CHECK(path("<x!#$&'*+-/=?^_`{|}~@b>", 0) == ADDR_OK);
  CHECK(path("<.a@b>", 0) == ADDR_BAD);
  CHECK(path("<a.@b>", 0) == ADDR_BAD);
  CHECK(path("<a..b@c>", 0) == ADDR_BAD);
  CHECK(path("<a b@c>", 0) == ADDR_BAD);
  CHECK(path("<a(b)@c>", 0) == ADDR_BAD);
  CHECK(path("<a@b@c>", 0) == ADDR_BAD);
  CHECK(path("<@b>", 0) == ADDR_BAD);
  CHECK(path("<a@>", 0) == ADDR_BAD);
  CHECK(path("a@b", 0) == ADDR_BAD);
  CHECK(path("<a@b", 0) == ADDR_BAD);
  CHECK(path("<a@b>", 0) == ADDR_OK);
  CHECK(path("<>", 0) == ADDR_BAD);
  CHECK(path("<>", ADDR_EMPTY) == ADDR_OK && a.mbox.len == 0);
  CHECK(path("", ADDR_EMPTY) == ADDR_BAD);
  CHECK(path("<", ADDR_EMPTY) == ADDR_BAD);
  /* '%' and '!' are atext: legal syntax, judged by the caller. */
  CHECK(path("<a%b@c>", 0) == ADDR_OK && is("a%b@c"));
  CHECK(path("<b!a@c>", 0) == ADDR_OK);

  /* Trailing dots and empty labels. */
  CHECK(path("<a@b.c.>", 0) == ADDR_BAD);
  CHECK(path("<a@b..c>", 0) == ADDR_BAD);
  CHECK(path("<a@.b>", 0) == ADDR_BAD);
  CHECK(path("<a@-b.c>", 0) == ADDR_BAD);
  CHECK(path("<a@b-.c>", 0) == ADDR_BAD);
  CHECK(path("<a@b-c.d>", 0) == ADDR_OK);
  CHECK(path("<a@b_c.d>", 0) == ADDR_BAD);

  /* Quoted local parts. */
  CHECK(path("<\"a b\"@c>", 0) == ADDR_OK && a.quoted && is("\"a b\"@c") && a.at == 5);
  CHECK(path("<\"a@b\"@c>", 0) == ADDR_OK && a.quoted && a.at == 5);
  CHECK(path("<\"a\\\"b\"@c>", 0) == ADDR_OK);
  CHECK(path("<\"a\\\x01\"@c>", 0) == ADDR_BAD);
  CHECK(path("<\"a\x01\"@c>", 0) == ADDR_BAD);
  CHECK(path("<\"ab@c>", 0) == ADDR_BAD);
  CHECK(path("<\"\"@c>", 0) == ADDR_OK);
  CHECK(path("<\"a\"b@c>", 0) == ADDR_BAD);

  /* Address literals. */
  CHECK(path("<a@[192.0.2.1]>", 0) == ADDR_OK && a.literal);
  CHECK(path("<a@[255.255.255.255]>", 0) == ADDR_OK);
  CHECK(path("<a@[256.0.0.1]>", 0) == ADDR_BAD);
  CHECK(path("<a@[1.2.3]>", 0) == ADDR_BAD);
  CHECK(path("<a@[1.2.3.4.5]>", 0) == ADDR_BAD);
  CHECK(path("<a@[1.2.3.0004]>", 0) == ADDR_BAD);
  CHECK(path("<a@[1..3.4]>", 0) == ADDR_BAD);
  CHECK(path("<a@[]>", 0) == ADDR_BAD);
  CHECK(path("<a@[IPv6:2001:db8::1]>", 0) == ADDR_OK && a.literal);
  CHECK(path("<a@[ipv6:::1]>", 0) == ADDR_OK);
  CHECK(path("<a@[IPv6:2001:db8::192.0.2.1]>", 0) == ADDR_OK);
  CHECK(path("<a@[IPv6:2001:db8:::1]>", 0) == ADDR_BAD);
  CHECK(path("<a@[IPv6:]>", 0) == ADDR_BAD);
  CHECK(path("<a@[IPv6:g::1]>", 0) == ADDR_BAD);
  CHECK(path("<a@[2001:db8::1]>", 0) == ADDR_BAD);
  CHECK(path("<a@[x-tag:stuff]>", 0) == ADDR_BAD);
  CHECK(path("<a@[1.2.3.4]x>", 0) == ADDR_BAD);

  /* Source routes. */
  CHECK(path("<@r1.test:a@b>", 0) == ADDR_OK && a.route && is("a@b"));
  CHECK(path("<@r1.test,@r2.test:a@b>", 0) == ADDR_OK && a.route && is("a@b"));
  CHECK(path("<@r1.test:>", 0) == ADDR_BAD);
  CHECK(path("<@:a@b>", 0) == ADDR_BAD);
  CHECK(path("<@r1.test,r2.test:a@b>", 0) == ADDR_BAD);
  CHECK(path("<@r1.test a@b>", 0) == ADDR_BAD);

  /* UTF-8 (RFC 6531). */
  CHECK(path("<j\xc3\xb6rg@b\xc3\xa4r.test>", 0) == ADDR_BAD);
  CHECK(path("<j\xc3\xb6rg@b\xc3\xa4r.test>", ADDR_UTF8) == ADDR_OK && a.utf8);
  CHECK(path("<\xe6\x97\xa5\xe6\x9c\xac@\xf0\x9f\x98\x80.test>", ADDR_UTF8) == ADDR_OK);
  CHECK(path("<a@b>", ADDR_UTF8) == ADDR_OK && !a.utf8);
  CHECK(path("<\xc0\xaf@b>", ADDR_UTF8) == ADDR_BAD);           /* overlong '/' */
  CHECK(path("<\xe0\x80\xaf@b>", ADDR_UTF8) == ADDR_BAD);       /* overlong 3-byte */
  CHECK(path("<\xed\xa0\x80@b>", ADDR_UTF8) == ADDR_BAD);       /* surrogate */
  CHECK(path("<\xf4\x90\x80\x80@b>", ADDR_UTF8) == ADDR_BAD);   /* over U+10FFFF */
  CHECK(path("<\xc3@b>", ADDR_UTF8) == ADDR_BAD);               /* truncated */
  CHECK(path("<\x80@b>", ADDR_UTF8) == ADDR_BAD);               /* lone continuation */
  CHECK(path("<\xff@b>", ADDR_UTF8) == ADDR_BAD);
  CHECK(path("<\"\xc3\xb6\"@b>", ADDR_UTF8) == ADDR_OK && a.quoted);
  CHECK(path("<\"\xc3\xb6\"@b>", 0) == ADDR_BAD);

  /* Length limits: local part 64, domain 255, label 63, path 256. */
  repeat(big, 'x', 64);
  tp = join("<", big, "@b>", (char *)0);
  CHECK(path(tp, 0) == ADDR_OK);
  repeat(big, 'x', 65);
  tp = join("<", big, "@b>", (char *)0);
  CHECK(path(tp, 0) == ADDR_LONG);
  repeat(big, 'x', 63);
  tp = join("<a@", big, ".test>", (char *)0);
  CHECK(path(tp, 0) == ADDR_OK);
  repeat(big, 'x', 64);
  tp = join("<a@", big, ".test>", (char *)0);
  CHECK(path(tp, 0) == ADDR_BAD);
  /* A domain of 250 octets fits in a path of 256; one of 255 does not. */
  repeat(big, 'y', 61);
  tp = join("<a@", big, ".", big, ".", big, ".", big, ".yy>", (char *)0);
  CHECK(path(tp, 0) == ADDR_OK);
  repeat(big, 'y', 63);
  tp = join("<a@", big, ".", big, ".", big, ".", big, ">", (char *)0);
  CHECK(path(tp, 0) == ADDR_LONG);
  tp = join("<a@", big, ".", big, ".", big, ".", big, ".z>", (char *)0);
  CHECK(path(tp, 0) == ADDR_LONG);
  /* Local part 64 + '@' + 200 of domain: path over 256. */
  repeat(big, 'x', 64);
  {
    char d[240];
    repeat(d, 'y', 62);
    tp = join("<", big, "@", d, ".", d, ".", d, ".yy>", (char *)0);
    CHECK(path(tp, 0) == ADDR_LONG);
  }
  /* The path limit exactly: "<" + 64 + "@" + domain + ">" is 256 octets
   * with a domain of 189, 257 with 190; the bare mailbox 254 and 255. */
  {
    char d63[64], d61[62], d62[63];
    repeat(big, 'x', 64);
    repeat(d63, 'y', 63);
    repeat(d61, 'y', 61);
    repeat(d62, 'y', 62);
    tp = join("<", big, "@", d63, ".", d63, ".", d61, ">", (char *)0);
    CHECK(strlen(tp) == 256 && path(tp, 0) == ADDR_OK && a.mbox.len == 254);
    CHECK(mbox(tp + 1, 0) == ADDR_BAD);                    /* the '>' */
    CHECK(addr_mailbox(tp + 1, 254, 0, &a) == ADDR_OK);
    CHECK(addr_check(tp + 1, 254, 0) == ADDR_OK);
    tp = join("<", big, "@", d63, ".", d63, ".", d62, ">", (char *)0);
    CHECK(strlen(tp) == 257 && path(tp, 0) == ADDR_LONG);
    CHECK(addr_mailbox(tp + 1, 255, 0, &a) == ADDR_LONG);
    CHECK(addr_check(tp + 1, 255, 0) == ADDR_LONG);
  }

  /* Trailing ESMTP parameters after the path. */
  CHECK(addr_path("<a@b> SIZE=10", 13, 0, &a, &used) == ADDR_OK && used == 5);
  CHECK(addr_path("<> BODY=8BITMIME", 16, ADDR_EMPTY, &a, &used) == ADDR_OK && used == 2);

  /* Mailboxes without "@domain". */
  CHECK(path("<postmaster>", 0) == ADDR_BAD);
  CHECK(path("<postmaster>", ADDR_NOAT) == ADDR_OK && a.at == a.mbox.len && is("postmaster"));
  CHECK(mbox("user", ADDR_NOAT) == ADDR_OK && is("user"));
  CHECK(mbox("user", 0) == ADDR_BAD);
  CHECK(mbox("user@example.test", 0) == ADDR_OK && a.at == 4);
  CHECK(mbox("user@example.test ", 0) == ADDR_BAD);
  CHECK(mbox("<user@example.test>", 0) == ADDR_BAD);
  CHECK(mbox("", ADDR_NOAT) == ADDR_BAD);
  CHECK(addr_mailbox("a\0b@c", 5, 0, &a) == ADDR_BAD);
  CHECK(addr_path("<a@b\0>", 6, 0, &a, &used) == ADDR_BAD);
  CHECK(path("<a@b\r>", 0) == ADDR_BAD);

  /* The NUL after mbox (str_0). */
  CHECK(path("<a@b.c>", 0) == ADDR_OK && a.mbox.s[a.mbox.len] == 0);

  /* addr_check: addr_mailbox's verdict without allocating; a long
   * mailbox is ADDR_LONG only when nothing follows it. */
#define CHK(s, f) addr_check(s, strlen(s), f)
  CHECK(CHK("a@b.c", 0) == ADDR_OK);
  CHECK(CHK("\"a b>c\"@d", 0) == ADDR_OK);
  CHECK(CHK("root", 0) == ADDR_BAD && CHK("root", ADDR_NOAT) == ADDR_OK);
  CHECK(CHK("a@b> NOTIFY=NEVER", ADDR_NOAT) == ADDR_BAD);
  CHECK(CHK("a@[x>y]", 0) == ADDR_BAD);
  CHECK(CHK("\xc3\xa9@b", 0) == ADDR_BAD && CHK("\xc3\xa9@b", ADDR_UTF8) == ADDR_OK);
  {
    char longl[90];
    memset(longl, 'x', 70);
    memcpy(longl + 70, "@b.c", 5);
    CHECK(CHK(longl, 0) == ADDR_LONG);
    memcpy(longl + 70, "@b> X=Y", 8);
    CHECK(CHK(longl, 0) == ADDR_BAD);
  }

  /* Domain matching for rcpthosts. */
  CHECK(addr_domain_match("Example.TEST", 12, "example.test", 12));
  CHECK(!addr_domain_match("example.test", 12, ".example.test", 13));
  CHECK(addr_domain_match("a.example.test", 14, ".example.test", 13));
  CHECK(!addr_domain_match("aexample.test", 13, ".example.test", 13));
  CHECK(!addr_domain_match("example.test.evil", 17, "example.test", 12));
  CHECK(!addr_domain_match("example.test", 12, "", 0));

  addr_free(&a);
  str_free(&joined);
  DONE();
}
