/* The RFC 5322 address-list parser of qmail-inject and sendmail, fed with
 * ordinary, odd and hostile input. */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "str.h"
#include "alist.h"

static str got;
static int stop_after = -1;
static int seen;

/* Renders each address as local "@" domain (or local alone), literal
 * domains marked with '!', addresses separated by '|'. */
static int collect(void *ctx, const struct alist_addr *a)
{
  (void)ctx;
  if (stop_after >= 0 && seen >= stop_after) return 1;
  seen++;
  if (got.len) MUST(str_catc(&got, '|'));
  MUST(str_catb(&got, a->local, a->llen));
  if (a->domain) {
    MUST(str_catc(&got, a->literal ? '!' : '@'));
    MUST(str_catb(&got, a->domain, a->dlen));
  }
  return 0;
}

static int parse(const char *s, size_t n, const char **why)
{
  got.len = 0;
  seen = 0;
  return alist_parse(s, n, collect, 0, why);
}

/* The spans of the addresses, "start-end" each, '|' between. */
static str spans;
static int span(void *ctx, const struct alist_addr *a)
{
  (void)ctx;
  if (spans.len) MUST(str_catc(&spans, '|'));
  MUST(str_catu(&spans, a->start));
  MUST(str_catc(&spans, '-'));
  MUST(str_catu(&spans, a->end));
  return 0;
}

static int spans_are(const char *s, const char *want)
{
  spans.len = 0;
  if (alist_parse(s, strlen(s), span, 0, 0) != ALIST_OK) return 0;
  if (spans.len == strlen(want) && !memcmp(spans.s, want, spans.len)) return 1;
  printf("  %s: spans %.*s\n", s, (int)spans.len, spans.s ? spans.s : "");
  return 0;
}

/* 1 if s parses and yields exactly want. */
static int ok(const char *s, const char *want)
{
  const char *why = 0;
  int r = parse(s, strlen(s), &why);
  if (r != ALIST_OK) {
    printf("  %s: %s\n", s, why ? why : "?");
    return 0;
  }
  if (got.len != strlen(want) || memcmp(got.s, want, got.len)) {
    printf("  %s: got %.*s\n", s, (int)got.len, got.s ? got.s : "");
    return 0;
  }
  return 1;
}

/* 1 if s is refused as bad syntax, with a reason, and nothing is
 * delivered after the error point is reached. */
static int bad(const char *s)
{
  const char *why = 0;
  int r = parse(s, strlen(s), &why);
  if (r != ALIST_BAD || !why) {
    printf("  accepted: %s -> %.*s\n", s, (int)got.len, got.s ? got.s : "");
    return 0;
  }
  return 1;
}

int main(void)
{
  char big[5000];
  const char *why;
  int i;

  /* Ordinary forms. */
  CHECK(ok("a@b.test", "a@b.test"));
  CHECK(ok("Bob <bob@x.test>", "bob@x.test"));
  CHECK(ok("\"Doe, John\" <jd@x.test>, b@y.test", "jd@x.test|b@y.test"));
  CHECK(ok("<a@b.test>", "a@b.test"));
  CHECK(ok("a@b.test (Alice)", "a@b.test"));
  CHECK(ok("(c) a (d) @ (e) b.test (f)", "a@b.test"));
  CHECK(ok("John Q. Public <jqp@x.test>", "jqp@x.test"));
  CHECK(ok("first.last@sub.x.test", "first.last@sub.x.test"));
  CHECK(ok("\"odd local\"@x.test", "\"odd local\"@x.test"));
  CHECK(ok("\"a\\\"b\"@x.test", "\"a\\\"b\"@x.test"));
  CHECK(ok("user@[192.0.2.1]", "user![192.0.2.1]"));
  CHECK(ok("user@[IPv6:2001:db8::1]", "user![IPv6:2001:db8::1]"));
  CHECK(ok("root", "root"));
  CHECK(ok("root, postmaster", "root|postmaster"));
  CHECK(ok("Root <root>", "root"));
  CHECK(ok("", ""));
  CHECK(ok("   ", ""));
  CHECK(ok("a@b.test,", "a@b.test"));
  CHECK(ok(", , a@b.test ,,", "a@b.test"));
  CHECK(ok("undisclosed-recipients:;", ""));
  CHECK(ok("Team: a@x.test, B <b@y.test>;, c@z.test", "a@x.test|b@y.test|c@z.test"));
  CHECK(ok("Team: ;, c@z.test", "c@z.test"));
  CHECK(ok("a@b.test,\n c@d.test", "a@b.test|c@d.test"));
  CHECK(ok("a@b.test,\r\n\tc@d.test", "a@b.test|c@d.test"));
  CHECK(ok("\"folded\r\n name\" <a@b.test>", "a@b.test"));
  CHECK(ok("((nested (comments)) here) a@b.test", "a@b.test"));
  CHECK(ok("J\xc3\xb6rg <j@x.test>", "j@x.test"));
  CHECK(ok("\"J\xc3\xb6rg\" <j@x.test>", "j@x.test"));
  CHECK(ok("a@b.test (J\xc3\xb6rg)", "a@b.test"));
  CHECK(ok("a+tag@b-c.test", "a+tag@b-c.test"));

  /* Refused. */
  CHECK(bad("a@b.test c@d.test"));          /* missing comma */
  CHECK(bad("John Smith"));                  /* words, no address */
  CHECK(bad("John Smith a@b.test"));
  CHECK(bad("a@b.test <a@b.test>"));
  CHECK(bad("<a@b.test"));
  CHECK(bad("<>"));
  CHECK(bad("<@route.test:a@b.test>"));
  CHECK(bad("a@"));
  CHECK(bad("a@b..test"));
  CHECK(bad("a@.b.test"));
  CHECK(bad("a@b.test."));
  CHECK(bad(".a@b.test"));
  CHECK(bad("a.@b.test"));
  CHECK(bad("a..b@c.test"));
  CHECK(bad("\"a\".b@c.test"));
  CHECK(bad("a@b!c.test"));
  CHECK(bad("a@[1.2.3.4"));
  CHECK(bad("a@[1.2[3].4]"));
  CHECK(bad("a@[1.2 3.4]"));
  CHECK(bad("\"unterminated@x.test"));
  CHECK(bad("(unterminated a@x.test"));
  CHECK(bad("a@x.test)"));
  CHECK(bad("G: a@x.test"));                 /* unterminated group */
  CHECK(bad("G: H: a@x.test;;"));            /* nested group */
  CHECK(bad(": a@x.test;"));                 /* group without a name */
  CHECK(bad("a@x.test;"));
  CHECK(bad("Team: a@x.test; c@z.test"));     /* comma needed after a group */
  CHECK(bad("a@x.test\nb@y.test"));          /* line break not a fold */
  CHECK(bad("a@x.test,\n"));
  CHECK(bad("a@x.test\r b@y.test"));         /* bare CR */
  CHECK(bad("a\x01@x.test"));
  CHECK(bad("\"a\x01\"@x.test"));
  CHECK(bad("\"a\\"));                       /* backslash at the end */
  CHECK(bad("\"a\\\n\"@x.test"));            /* quoted line break */
  CHECK(bad("j\xc3\xb6rg@x.test"));          /* 8-bit local part */
  CHECK(bad("\"j\xc3\xb6rg\"@x.test"));
  CHECK(bad("a@b\xc3\xb6.test"));            /* 8-bit domain */
  CHECK(bad("<a@b.test> trailing"));
  CHECK(bad("Bob <bob@x.test"));
  CHECK(bad(". <a@b.test>"));                /* phrase starting with a dot */

  /* NUL inside the given length is data, and refused. */
  why = 0;
  CHECK(parse("a@b.test\0c@d.test", 17, &why) == ALIST_BAD && why);
  CHECK(parse("a@b\0.test", 9, &why) == ALIST_BAD);

  /* Exactly at and just over the limits. */
  memset(big, 'a', sizeof big);
  memcpy(big + 994, "@x.test", 8);            /* 994 + 7 = 1001 */
  CHECK(bad(big));
  memcpy(big + 993, "@x.test", 8);            /* 1000 */
  CHECK(parse(big, strlen(big), &why) == ALIST_OK && got.len == 1000);
  memset(big, 'a', sizeof big);
  big[0] = 'u';
  big[1] = '@';
  for (i = 2; i < 300; i += 2) big[i + 1] = '.';
  big[300] = 0;                               /* a 298-byte domain */
  CHECK(bad(big));

  /* Comment nesting: ALIST_DEPTH deep is fine, one more is refused, and a
   * flood of '(' costs no stack. */
  memset(big, 0, sizeof big);
  for (i = 0; i < ALIST_DEPTH; i++) big[i] = '(';
  for (i = 0; i < ALIST_DEPTH; i++) big[ALIST_DEPTH + i] = ')';
  strcpy(big + 2 * ALIST_DEPTH, "a@b.test");
  CHECK(ok(big, "a@b.test"));
  memset(big, 0, sizeof big);
  for (i = 0; i <= ALIST_DEPTH; i++) big[i] = '(';
  for (i = 0; i <= ALIST_DEPTH; i++) big[ALIST_DEPTH + 1 + i] = ')';
  strcpy(big + 2 * ALIST_DEPTH + 2, "a@b.test");
  CHECK(bad(big));
  memset(big, '(', sizeof big - 1);
  big[sizeof big - 1] = 0;
  CHECK(bad(big));

  /* Long runs of separators and of words stay linear and are refused or
   * accepted as the grammar says. */
  memset(big, ',', sizeof big - 1);
  CHECK(ok(big, ""));
  for (i = 0; i + 1 < (int)sizeof big - 1; i += 2) { big[i] = 'w'; big[i + 1] = ' '; }
  CHECK(bad(big));
  memset(big, '"', sizeof big - 1);
  CHECK(bad(big));
  memset(big, '<', sizeof big - 1);
  CHECK(bad(big));
  memset(big, ':', sizeof big - 1);
  CHECK(bad(big));

  /* Every byte value alone and as an address's first byte: never crashes,
   * never yields an address holding a control byte. */
  for (i = 0; i < 256; i++) {
    char s[16];
    size_t k;
    int r;
    s[0] = (char)i;
    memcpy(s + 1, "a@b.test", 8);
    r = parse(s, 9, &why);
    if (r == ALIST_OK)
      for (k = 0; k < got.len; k++) CHECK((unsigned char)got.s[k] >= 32 && got.s[k] != 127);
    r = parse(s, 1, &why);
    CHECK(r == ALIST_OK || r == ALIST_BAD);
  }

  /* The callback can stop the parse. */
  stop_after = 1;
  CHECK(parse("a@b.test, c@d.test", 18, &why) == ALIST_STOP && seen == 1);
  stop_after = -1;

  /* Random bytes from a fixed seed: only OK or BAD, never a crash (run
   * under ASan in make check-asan). */
  srand(5322);
  for (i = 0; i < 20000; i++) {
    static const char alpha[] = "ab.@<>()\",:;\\ \t\r\n[]\x01\xc3\xb6";
    char s[40];
    size_t k, n = (size_t)(rand() % 40);
    int r;
    for (k = 0; k < n; k++) s[k] = alpha[rand() % (int)(sizeof alpha - 1)];
    r = parse(s, n, &why);
    if (r != ALIST_OK && r != ALIST_BAD) CHECK(0);
  }

  str_free(&got);
  /* Spans: the addr-spec from its first token to its last, without the
   * angle brackets, comments or space around it. */
  CHECK(spans_are("root", "0-4"));
  CHECK(spans_are(" root (Cron Daemon)", "1-5"));
  CHECK(spans_are("\"Bob\" <bob>, carol@x.test (C)", "7-10|13-25"));
  CHECK(spans_are("G: a, \"q r\"@h ;", "3-4|6-13"));
  CHECK(spans_are("<x@[1.2.3.4]>", "1-12"));
  str_free(&spans);
  DONE();
}
