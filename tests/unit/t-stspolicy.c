/* qmail-remote/stspolicy.c: the MTA-STS policy grammar (RFC 8461 3.2),
 * mx patterns with their one-label wildcard, the _mta-sts and _smtp._tls
 * TXT records, and domain names fit to be file names. */
#include <string.h>
#include "check.h"
#include "../../qmail-remote/mtasts.h"

static struct sts_policy p;

static int parse(const char *s)
{
  const char *err = 0;
  return sts_parse(s, strlen(s), &p, &err) == 0;
}

static int id_of(const char *txt, const char *want)
{
  char id[STS_IDMAX];
  int r = sts_txt_id(txt, strlen(txt), id);
  return want ? r == 1 && !strcmp(id, want) : r;
}

int main(void)
{
  char d[STS_HOSTMAX];
  str rua = STR_INIT;

  /* The RFC's example, CRLF line ends, blanks around values. */
  CHECK(parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
              "mx: backupmx.example.com\r\nmax_age: 604800\r\n"));
  CHECK(p.mode == STS_MODE_ENFORCE && p.nmx == 3 && p.max_age == 604800);
  CHECK(sts_mx_match(&p, "mail.example.com") && sts_mx_match(&p, "MAIL.Example.COM."));
  CHECK(sts_mx_match(&p, "mx1.example.net"));
  /* The wildcard stands for exactly one label. */
  CHECK(!sts_mx_match(&p, "example.net") && !sts_mx_match(&p, "a.b.example.net"));
  CHECK(!sts_mx_match(&p, "xexample.net") && !sts_mx_match(&p, "mail.example.com.evil.test"));
  CHECK(!sts_mx_match(&p, "ail.example.com"));

  CHECK(parse("version: STSv1\nmode: testing\nmx: a.test\nmax_age: 9999999999\nfuture: x\n") &&
        p.mode == STS_MODE_TESTING && p.max_age == STS_MAXAGE_MAX);
  CHECK(parse("version: STSv1\nmode: none\nmax_age: 0\n") && p.mode == STS_MODE_NONE && !p.nmx);
  /* Required fields, and values that do not parse. */
  CHECK(!parse("mode: enforce\nmx: a.test\nmax_age: 1\n"));
  CHECK(!parse("version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n"));
  CHECK(!parse("version: STSv1\nmx: a.test\nmax_age: 1\n"));
  CHECK(!parse("version: STSv1\nmode: enforce\nmax_age: 1\n"));
  CHECK(!parse("version: STSv1\nmode: enforce\nmx: a.test\n"));
  CHECK(!parse("version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n"));
  CHECK(!parse("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n"));
  CHECK(!parse("version: STSv1\nmode: enforce\nmx: a test\nmax_age: 1\n"));
  CHECK(!parse("version: STSv1\nmode: enforce\nmx: *.\nmax_age: 1\n"));
  CHECK(!parse("version: STSv1\nmode: enforce\nno colon here\nmx: a.test\nmax_age: 1\n"));
  CHECK(!parse("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 12345678901\n"));
  CHECK(!parse(""));

  /* _mta-sts TXT records. */
  CHECK(id_of("v=STSv1; id=20160831085700Z;", "20160831085700Z"));
  CHECK(id_of("v=STSv1;id=abc", "abc"));
  CHECK(id_of("v=STSv1; id=a-b", 0) == -1);
  CHECK(id_of("v=STSv1; id=", 0) == -1);
  CHECK(id_of("v=STSv1; id=123456789012345678901234567890123", 0) == -1);
  CHECK(id_of("v=STSv1", 0) == -1);
  CHECK(id_of("v=spf1 -all", 0) == 0);
  CHECK(id_of("id=abc; v=STSv1", 0) == 0);

  /* One valid STSv1 record counts; two count as none. */
  {
    char id[STS_IDMAX] = "";
    const char *a = "v=STSv1; id=one", *b = "v=spf1 -all", *c = "v=STSv1; id=two";
    CHECK(sts_txt_collect(b, strlen(b), id) == 0 && id[0] == 0);
    CHECK(sts_txt_collect(a, strlen(a), id) == 0 && !strcmp(id, "one"));
    CHECK(sts_txt_collect(c, strlen(c), id) == 0 && id[0] == 1);
  }

  /* _smtp._tls TXT records. */
  {
    const char *r = "v=TLSRPTv1; rua=mailto:a@b.test,https://r.test/x";
    CHECK(rpt_txt_rua(r, strlen(r), &rua) == 1);
  }
  CHECK(rua.len == strlen("mailto:a@b.test,https://r.test/x") && !memcmp(rua.s, "mailto:a@b.test", 15));
  rua.len = 0;
  CHECK(rpt_txt_rua("v=STSv1; rua=mailto:a@b.test", 28, &rua) == 0 && rua.len == 0);
  str_free(&rua);

  /* Names that become cache file names. */
  CHECK(sts_domain_ok("Example.ORG.", d) && !strcmp(d, "example.org"));
  CHECK(!sts_domain_ok("../etc", d) && !sts_domain_ok(".x", d) && !sts_domain_ok("a..b", d));
  CHECK(!sts_domain_ok("a/b", d) && !sts_domain_ok("", d) && !sts_domain_ok("a b", d));
  DONE();
}
