/* DMARC without DNS: the Public Suffix List's rules (wildcards,
 * exceptions, the default rule, U-labels found by their A-label form)
 * over a small list and over Debian's, identifier alignment in both
 * modes, DMARC record parsing (RFC 7489 6.3, 6.6.3), and the From: domain
 * (6.6.1) through RFC 5322's grammar. dmarc_eval's lookups are covered by
 * tests/t-dmarc.py against a DNS server. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "dmarc.h"
#include "psl.h"

static struct psl small = PSL_INIT, real = PSL_INIT;

/* The organizational domain of d under p, as a string. */
static const char *org(const struct psl *p, const char *d)
{
  return d + psl_orgdomain(p, d, strlen(d));
}

static const char *suffix(const struct psl *p, const char *d)
{
  return d + psl_suffix(p, d, strlen(d));
}

static int load_text(struct psl *p, const char *text)
{
  char path[] = "/tmp/t-dmarc-psl.XXXXXX";
  int fd = mkstemp(path), r;
  size_t n = strlen(text);

  if (fd < 0 || write(fd, text, n) != (ssize_t)n) abort();
  close(fd);
  r = psl_load(p, path, 0);
  unlink(path);
  return r;
}

static void test_psl_small(void)
{
  struct psl bad = PSL_INIT;

  MUST(load_text(&small, "// comment\n\n// ===BEGIN ICANN DOMAINS===\ntest\nco.test\n"
                         "*.wild.test\n!www.wild.test\nUK\n\xe5\x85\xac\xe5\x8f\xb8.cn\ncn\n"
                         "private.example.test  trailing words ignored\n"));
  CHECK(!strcmp(suffix(&small, "a.b.test"), "test"));
  CHECK(!strcmp(org(&small, "a.b.test"), "b.test"));
  CHECK(!strcmp(org(&small, "b.test"), "b.test"));
  CHECK(!strcmp(org(&small, "x.y.co.test"), "y.co.test"));
  /* A wildcard makes each child a suffix; an exception undoes one. */
  CHECK(!strcmp(suffix(&small, "a.b.wild.test"), "b.wild.test"));
  CHECK(!strcmp(org(&small, "a.b.wild.test"), "a.b.wild.test"));
  CHECK(!strcmp(org(&small, "x.a.b.wild.test"), "a.b.wild.test"));
  CHECK(!strcmp(suffix(&small, "www.wild.test"), "wild.test"));
  CHECK(!strcmp(org(&small, "www.wild.test"), "www.wild.test"));
  CHECK(!strcmp(org(&small, "a.www.wild.test"), "www.wild.test"));
  /* A name that is itself a suffix is its own organizational domain. */
  CHECK(!strcmp(org(&small, "test"), "test"));
  CHECK(!strcmp(org(&small, "co.test"), "co.test"));
  /* No rule: "*", the last label. Case does not matter. */
  CHECK(!strcmp(org(&small, "a.b.example.org"), "example.org"));
  CHECK(!strcmp(org(&small, "Mail.Example.CO.UK"), "CO.UK"));
  CHECK(!strcmp(org(&small, "A.B.Co.Test"), "B.Co.Test"));
  /* A rule in U-labels, found by either form. */
  CHECK(!strcmp(org(&small, "a.b.xn--55qx5d.cn"), "b.xn--55qx5d.cn"));
  CHECK(!strcmp(org(&small, "a.b.\xe5\x85\xac\xe5\x8f\xb8.cn"), "b.\xe5\x85\xac\xe5\x8f\xb8.cn"));
  CHECK(!strcmp(org(&small, "a.b.xn--55qx5e.cn"), "xn--55qx5e.cn"));
  CHECK(!strcmp(org(&small, "q.private.example.test"), "q.private.example.test"));
  /* Lines that cannot be rules, and lists with none, are refused. */
  CHECK(load_text(&bad, "test\nfoo..test\n") < 0);
  CHECK(load_text(&bad, "test\n.test\n") < 0);
  CHECK(load_text(&bad, "test\nfoo_bar.test\n") < 0);
  CHECK(load_text(&bad, "test\n!\n") < 0);
  CHECK(load_text(&bad, "// only comments\n") < 0);
  CHECK(psl_load(&bad, "/nonexistent/psl.dat", 0) < 0);
  psl_free(&bad);
}

/* Debian's publicsuffix package: the list the programs read by default. */
static void test_psl_real(void)
{
  if (psl_load(&real, PSL_DEFAULT, 0) < 0) { printf("FAIL cannot read %s\n", PSL_DEFAULT); check_failed++; return; }
  CHECK(real.n > 5000);
  CHECK(!strcmp(org(&real, "mail.example.co.uk"), "example.co.uk"));
  CHECK(!strcmp(org(&real, "a.b.example.com"), "example.com"));
  CHECK(!strcmp(org(&real, "foo.bar.ck"), "foo.bar.ck"));          /* *.ck */
  CHECK(!strcmp(org(&real, "a.www.ck"), "www.ck"));                /* !www.ck */
  CHECK(!strcmp(org(&real, "x.y.kawasaki.jp"), "x.y.kawasaki.jp"));/* *.kawasaki.jp */
  CHECK(!strcmp(org(&real, "a.city.kawasaki.jp"), "city.kawasaki.jp"));
  CHECK(!strcmp(org(&real, "a.b.xn--55qx5d.cn"), "b.xn--55qx5d.cn"));
  CHECK(!strcmp(org(&real, "a.b.nosuchtld"), "b.nosuchtld"));
}

/* A load for some domains keeps their top-level domains' rules only and
 * answers for them as the whole list does. */
static void test_psl_only(void)
{
  static const char *const only[] = { "mail.example.co.uk", "x.y.ck", "a.b.xn--55qx5d.cn", "a.example.test", 0 };
  static const char *const tld[] = { "z.nosuchtld", 0 };
  static const char *const probe[] = {
    "mail.example.co.uk", "a.b.other.co.uk", "foo.bar.ck", "a.www.ck", "a.b.xn--55qx5d.cn",
    "x.example.test", 0
  };
  struct psl some = PSL_INIT, none = PSL_INIT;
  size_t i;

  CHECK(psl_load(&some, PSL_DEFAULT, only) == 0);
  CHECK(some.n > 2 && some.n < 200);
  for (i = 0; some.n && probe[i]; i++) {
    char a[256], b[256];
    snprintf(a, sizeof a, "%s", org(&some, probe[i]));
    snprintf(b, sizeof b, "%s", org(&real, probe[i]));
    CHECK(!strcmp(a, b));
  }
  /* no rule for the domain's top-level domain: the rule "*" */
  CHECK(psl_load(&none, PSL_DEFAULT, tld) == 0 && none.n == 0);
  CHECK(!strcmp(org(&none, "a.b.c.z.nosuchtld"), "z.nosuchtld"));
  psl_free(&some);
  psl_free(&none);
}

static void test_align(void)
{
  CHECK(dmarc_aligned(&small, "mail.example.test", "example.test", 0));
  CHECK(dmarc_aligned(&small, "a.example.test", "b.c.example.test", 0));
  CHECK(!dmarc_aligned(&small, "mail.example.test", "example.test", 1));
  CHECK(dmarc_aligned(&small, "Example.Test.", "example.test", 1));
  CHECK(dmarc_aligned(&small, "EXAMPLE.test", "example.test", 0));
  CHECK(!dmarc_aligned(&small, "example.test", "other.test", 0));
  CHECK(!dmarc_aligned(&small, "xexample.test", "example.test", 0));
  /* Two registrations under a suffix never align. */
  CHECK(!dmarc_aligned(&small, "a.co.test", "b.co.test", 0));
  CHECK(dmarc_aligned(&small, "x.a.co.test", "a.co.test", 0));
  CHECK(!dmarc_aligned(&small, "a.b.wild.test", "c.b.wild.test", 0));
  CHECK(!dmarc_aligned(&small, "", "example.test", 0));
  CHECK(!dmarc_aligned(&real, "a.example.co.uk", "b.other.co.uk", 0));
  CHECK(dmarc_aligned(&real, "a.example.co.uk", "example.co.uk", 0));
}

static int rec(const char *s, struct dmarc_record *r)
{
  memset(r, 0x55, sizeof *r);
  return dmarc_record_parse(s, strlen(s), r);
}

static void test_records(void)
{
  struct dmarc_record r;

  CHECK(rec("v=DMARC1; p=reject", &r) == DMARC_REC_OK && r.p == DMARC_P_REJECT &&
        r.sp == DMARC_P_REJECT && r.pct == 100 && !r.adkim_strict && !r.aspf_strict);
  CHECK(rec("v=DMARC1; p=quarantine; sp=none; pct=20; adkim=s; aspf=r; rua=mailto:d@example.test;", &r)
        == DMARC_REC_OK && r.p == DMARC_P_QUARANTINE && r.sp == DMARC_P_NONE && r.pct == 20 &&
        r.adkim_strict && !r.aspf_strict);
  CHECK(rec(" v = DMARC1 ;p=None; np=reject; xyz=1", &r) == DMARC_REC_OK && r.p == DMARC_P_NONE);
  CHECK(rec("v=DMARC1;p=REJECT;pct=0", &r) == DMARC_REC_OK && r.p == DMARC_P_REJECT && r.pct == 0);
  /* Not DMARC at all: discarded. v= must come first and match exactly. */
  CHECK(rec("v=spf1 -all", &r) == DMARC_REC_OTHER);
  CHECK(rec("p=reject; v=DMARC1", &r) == DMARC_REC_OTHER);
  CHECK(rec("v=dmarc1; p=reject", &r) == DMARC_REC_OTHER);
  CHECK(rec("v=DMARC10; p=reject", &r) == DMARC_REC_OTHER);
  CHECK(rec("", &r) == DMARC_REC_OTHER);
  /* 6.6.3 step 6: no valid p= or sp=: p=none with a valid rua=, else no DMARC. */
  CHECK(rec("v=DMARC1", &r) == DMARC_REC_NOPOLICY);
  CHECK(rec("v=DMARC1; p=bogus", &r) == DMARC_REC_NOPOLICY);
  CHECK(rec("v=DMARC1; p=reject; sp=bogus", &r) == DMARC_REC_NOPOLICY);
  CHECK(rec("v=DMARC1; p=bogus; rua=nonsense", &r) == DMARC_REC_NOPOLICY);
  CHECK(rec("v=DMARC1; p=bogus; rua=mailto:a@example.test", &r) == DMARC_REC_OK &&
        r.p == DMARC_P_NONE && r.sp == DMARC_P_NONE);
  CHECK(rec("v=DMARC1; rua=x, mailto:a@example.test!10m", &r) == DMARC_REC_OK && r.p == DMARC_P_NONE);
  /* v=DMARC1, then broken: permerror. */
  CHECK(rec("v=DMARC1; p=reject; pct=101", &r) == DMARC_REC_BAD);
  CHECK(rec("v=DMARC1; p=reject; pct=-1", &r) == DMARC_REC_BAD);
  CHECK(rec("v=DMARC1; p=reject; pct=", &r) == DMARC_REC_BAD);
  CHECK(rec("v=DMARC1; p=reject; adkim=x", &r) == DMARC_REC_BAD);
  CHECK(rec("v=DMARC1; p=reject; aspf=relaxed", &r) == DMARC_REC_BAD);
  CHECK(rec("v=DMARC1; p=reject; p=none", &r) == DMARC_REC_BAD);
  CHECK(rec("v=DMARC1; p reject", &r) == DMARC_REC_BAD);
}

static int from(const char *msg, char *dom)
{
  return dmarc_from(msg, strlen(msg), dom);
}

static void test_from(void)
{
  char d[DNS_NAMEMAX];

  CHECK(from("From: a@Example.TEST\nTo: b@x.test\n\nbody From: c@d.test\n", d) == DMARC_FROM_OK &&
        !strcmp(d, "example.test"));
  CHECK(from("Subject: x\r\nFROM: \"Joe, the \\\"boss\\\" <j@fake.test>\" (a@fake2.test) <joe@real.test>\r\n\r\n", d)
        == DMARC_FROM_OK && !strcmp(d, "real.test"));
  CHECK(from("From: (comment <x@fake.test>) \"a@b\"@quoted.test (c)\n\n", d) == DMARC_FROM_OK &&
        !strcmp(d, "quoted.test"));
  CHECK(from("From: Joe\n <joe@folded.test>\n\n", d) == DMARC_FROM_OK && !strcmp(d, "folded.test"));
  CHECK(from("From: joe@ (c) sub . example . test\n\n", d) == DMARC_FROM_OK &&
        !strcmp(d, "sub.example.test"));
  /* 6.6.1: none, several fields, several addresses: distinct results. */
  CHECK(from("To: b@x.test\n\nFrom: a@b.test\n", d) == DMARC_FROM_NONE && !d[0]);
  CHECK(from("From: a@b.test\nfrom: c@d.test\n\n", d) == DMARC_FROM_MANY);
  CHECK(from("From: a@b.test, c@d.test\n\n", d) == DMARC_FROM_ADDRS && !d[0]);
  CHECK(from("From: a@b.test, a@b.test\n\n", d) == DMARC_FROM_ADDRS);
  CHECK(from("From: undisclosed:;\n\n", d) == DMARC_FROM_ADDRS);
  CHECK(from("From: group: a@b.test, c@d.test;\n\n", d) == DMARC_FROM_ADDRS);
  CHECK(from("From: group: a@grp.test;\n\n", d) == DMARC_FROM_OK && !strcmp(d, "grp.test"));
  CHECK(from("From: joe\n\n", d) == DMARC_FROM_BAD);
  CHECK(from("From: joe@[192.0.2.1]\n\n", d) == DMARC_FROM_BAD);
  CHECK(from("From: <joe@bad..test>\n\n", d) == DMARC_FROM_BAD);
  CHECK(from("From: joe@a=b.test\n\n", d) == DMARC_FROM_BAD);
  CHECK(from("From: joe@_x-1.Test\n\n", d) == DMARC_FROM_OK && !strcmp(d, "_x-1.test"));
  CHECK(from("From: a@b.test (unclosed\n\n", d) == DMARC_FROM_BAD);
  CHECK(from("From: a@b.test\nnot a header line\n\n", d) == DMARC_FROM_BAD);
  CHECK(!strcmp(dmarc_from_why(DMARC_FROM_MANY), "multiple_from"));
}

static int str_is(const str *s, const char *want)
{
  return s->len == strlen(want) && !memcmp(s->s, want, s->len);
}

/* The action for each (result, applied) under each mode, and the
 * Authentication-Results text. */
static void test_action(void)
{
  struct dmarc_out o;
  str ar = STR_INIT;

  memset(&o, 0, sizeof o);
  CHECK(dmarc_mode("reject", 6) == DMARC_MODE_REJECT);
  CHECK(dmarc_mode("quarantine", 10) == DMARC_MODE_QUARANTINE);
  CHECK(dmarc_mode("report", 6) == DMARC_MODE_REPORT);
  CHECK(dmarc_mode("Reject", 6) < 0 && dmarc_mode("rejectx", 7) < 0 && dmarc_mode("", 0) < 0);
  o.result = DMARC_FAIL;
  o.applied = DMARC_P_REJECT;
  CHECK(dmarc_action(&o, DMARC_MODE_REJECT) == DMARC_ACT_REJECT);
  CHECK(dmarc_action(&o, DMARC_MODE_QUARANTINE) == DMARC_ACT_QUARANTINE);
  CHECK(dmarc_action(&o, DMARC_MODE_REPORT) == DMARC_ACT_ACCEPT);
  o.applied = DMARC_P_QUARANTINE;
  CHECK(dmarc_action(&o, DMARC_MODE_REJECT) == DMARC_ACT_QUARANTINE);
  CHECK(dmarc_action(&o, DMARC_MODE_QUARANTINE) == DMARC_ACT_QUARANTINE);
  CHECK(dmarc_action(&o, DMARC_MODE_REPORT) == DMARC_ACT_ACCEPT);
  o.applied = DMARC_P_NONE;
  CHECK(dmarc_action(&o, DMARC_MODE_REJECT) == DMARC_ACT_ACCEPT);
  o.result = DMARC_TEMPERROR;
  o.applied = DMARC_P_REJECT;     /* never set so by dmarc_eval; still no action */
  CHECK(dmarc_action(&o, DMARC_MODE_REJECT) == DMARC_ACT_ACCEPT);
  CHECK(!strcmp(dmarc_action_name(DMARC_ACT_QUARANTINE), "quarantine"));

  o.result = DMARC_PASS;
  o.policy = DMARC_P_REJECT;
  strcpy(o.where, "example.test");
  MUST(dmarc_ar(&ar, &o, "mail.example.test", "ignored"));
  CHECK(str_is(&ar, "dmarc=pass (p=reject) header.from=mail.example.test"));
  ar.len = 0;
  o.result = DMARC_NONE;
  o.where[0] = 0;
  MUST(dmarc_ar(&ar, &o, "example.test", 0));
  CHECK(str_is(&ar, "dmarc=none header.from=example.test"));
  ar.len = 0;
  o.result = DMARC_PERMERROR;
  MUST(dmarc_ar(&ar, &o, 0, "multiple_from"));
  CHECK(str_is(&ar, "dmarc=permerror (multiple_from)"));
  str_free(&ar);
}

static void test_names(void)
{
  CHECK(!strcmp(dmarc_result_name(DMARC_PASS), "pass"));
  CHECK(!strcmp(dmarc_result_name(DMARC_TEMPERROR), "temperror"));
  CHECK(!strcmp(dmarc_policy_name(DMARC_P_QUARANTINE), "quarantine"));
}

int main(void)
{
  test_psl_small();
  test_psl_real();
  test_psl_only();
  test_align();
  test_records();
  test_from();
  test_action();
  test_names();
  psl_free(&small);
  psl_free(&real);
  DONE();
}
