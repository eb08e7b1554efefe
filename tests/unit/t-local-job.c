/* Delivery jobs, qmail-lspawn -> worker: what job_make writes job_parse
 * reads back, and job_parse takes nothing else. */
#include <errno.h>
#include <string.h>
#include "check.h"
#include "../../qmail-local/job.h"

static struct local_job sample(void)
{
  struct local_job j;

  memset(&j, 0, sizeof j);
  j.uid = 1001;
  j.gid = 1002;
  j.d.qid = "1795420800.000001.4242";
  j.d.rcptno = 7;
  j.d.off = 123;
  j.d.len = 4567;
  j.d.opts = 1;
  j.d.sender = "";
  j.d.local = "joe-list";
  j.d.domain = "example.org";
  j.d.user = "joe";
  j.d.home = "/home/joe";
  j.d.dash = "-";
  j.d.ext = "list";
  j.d.text = "&root\n";
  return j;
}

/* Parses a copy of the n bytes at p: 0 or -1. */
static int parse(const char *p, size_t n)
{
  char b[JOB_MAX];
  struct local_job j;

  memcpy(b, p, n);
  return job_parse(b, n, &j);
}

/* job_make of sample() with field k (0..14) replaced by v, parsed. */
static int with_field(unsigned k, const char *v)
{
  struct local_job j = sample();
  str s = STR_INIT, t = STR_INIT;
  size_t i = 0;
  unsigned f;
  int r;

  job_make(&s, &j);
  for (f = 0; f < 15; f++) {
    const char *x = s.s + i;
    MUST(str_cats(&t, f == k ? v : x));
    MUST(str_catc(&t, 0));
    i += strlen(x) + 1;
  }
  r = parse(t.s, t.len);
  str_free(&s);
  str_free(&t);
  return r;
}

int main(void)
{
  struct local_job j = sample(), back;
  str s = STR_INIT;
  char b[JOB_MAX], big[JOB_MAX + 1];

  CHECK(job_make(&s, &j) == 0);
  CHECK(s.len < sizeof b);
  memcpy(b, s.s, s.len);
  CHECK(job_parse(b, s.len, &back) == 0);
  CHECK(back.uid == 1001 && back.gid == 1002);
  CHECK(!strcmp(back.d.qid, j.d.qid) && back.d.rcptno == 7);
  CHECK(back.d.off == 123 && back.d.len == 4567 && back.d.opts == 1);
  CHECK(!strcmp(back.d.sender, "") && !strcmp(back.d.local, "joe-list"));
  CHECK(!strcmp(back.d.domain, "example.org") && !strcmp(back.d.user, "joe"));
  CHECK(!strcmp(back.d.home, "/home/joe") && !strcmp(back.d.dash, "-"));
  CHECK(!strcmp(back.d.ext, "list") && !strcmp(back.d.text, "&root\n"));
  CHECK(back.d.fd == 0 && back.d.defaultdelivery == 0);

  /* The whole range of the numbers. */
  j.uid = j.gid = 4294967294ull;
  j.d.off = j.d.len = ~0ull;
  CHECK(job_make(&s, &j) == 0);
  memcpy(b, s.s, s.len);
  CHECK(job_parse(b, s.len, &back) == 0 && back.uid == 4294967294ull && back.d.len == ~0ull);

  /* Shape: empty, unterminated, a field short, a field over. */
  CHECK(parse("", 0) < 0);
  j = sample();
  job_make(&s, &j);
  CHECK(parse(s.s, s.len - 1) < 0);
  CHECK(parse(s.s, s.len - 5) < 0);
  MUST(str_catc(&s, 0));
  CHECK(parse(s.s, s.len) < 0);

  /* Fields: numbers strict decimal, a real qid, a bounded index, dash. */
  CHECK(with_field(0, "1001") == 0);
  CHECK(with_field(0, "") < 0);
  CHECK(with_field(0, "-1") < 0);
  CHECK(with_field(1, "1x") < 0);
  CHECK(with_field(2, "1.2.3/../x") < 0);
  CHECK(with_field(2, "") < 0);
  CHECK(with_field(3, "100001") < 0);
  CHECK(with_field(3, "100000") == 0);
  CHECK(with_field(4, "18446744073709551616") < 0);
  CHECK(with_field(6, "4294967296") < 0);
  CHECK(with_field(12, "--") < 0);
  CHECK(with_field(12, "") == 0);

  /* Too long for the worker's buffer: refused when made. */
  memset(big, 'h', sizeof big - 1);
  big[sizeof big - 1] = 0;
  j = sample();
  j.d.home = big;
  errno = 0;
  CHECK(job_make(&s, &j) < 0 && errno == EMSGSIZE);
  str_free(&s);
  DONE();
}
