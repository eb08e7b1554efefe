/* .qmail name search order and line syntax (dot-qmail(5)). */
#include <string.h>
#include "check.h"
#include "../../qmail-local/local.h"

/* Candidate i as a C string, "" when there is none. */
static const char *cand(const char *dash, const char *ext, unsigned i, long *deflen)
{
  static str s;
  int r = dq_candidate(&s, dash, ext, i, deflen);
  return r == 1 ? s.s : "";
}

static int line(const char *s, const char *want)
{
  const char *a = 0;
  size_t n = 0;
  int k = dq_line(s, strlen(s), &a, &n);
  if (k == DQ_SKIP) return want == 0 ? k : -1;
  if (!want || n != strlen(want) || memcmp(a, want, n)) return -1;
  return k;
}

int main(void)
{
  long dl = 7;

  /* No dash: only .qmail. */
  CHECK(!strcmp(cand("", "", 0, &dl), ".qmail") && dl == -1);
  CHECK(!strcmp(cand("", "ignored", 0, &dl), ".qmail"));
  CHECK(!strcmp(cand("", "", 1, &dl), ""));

  /* foo-bar: exact, then foo-default, then default. */
  CHECK(!strcmp(cand("-", "foo-bar", 0, &dl), ".qmail-foo-bar") && dl == -1);
  CHECK(!strcmp(cand("-", "foo-bar", 1, &dl), ".qmail-foo-default") && dl == 3);
  CHECK(!strcmp(cand("-", "foo-bar", 2, &dl), ".qmail-default") && dl == 7);
  CHECK(!strcmp(cand("-", "foo-bar", 3, &dl), ""));

  /* Three levels. */
  CHECK(!strcmp(cand("-", "a-b-c", 1, &dl), ".qmail-a-b-default") && dl == 1);
  CHECK(!strcmp(cand("-", "a-b-c", 2, &dl), ".qmail-a-default") && dl == 3);
  CHECK(!strcmp(cand("-", "a-b-c", 3, &dl), ".qmail-default") && dl == 5);

  /* Empty extension with a dash (a wildcard user): .qmail-, .qmail-default. */
  CHECK(!strcmp(cand("-", "", 0, &dl), ".qmail-"));
  CHECK(!strcmp(cand("-", "", 1, &dl), ".qmail-default") && dl == 0);
  CHECK(!strcmp(cand("-", "", 2, &dl), ""));

  /* Lowercased; '.' becomes ':' so ".." can never be a path component. */
  CHECK(!strcmp(cand("-", "Foo.Bar", 0, &dl), ".qmail-foo:bar"));
  CHECK(!strcmp(cand("-", "..", 0, &dl), ".qmail-::"));
  /* A '/' never reaches a file name. */
  CHECK(!strcmp(cand("-", "x/y-z", 0, &dl), ".qmail-default") && dl == 5);
  CHECK(!strcmp(cand("-", "x/y-z", 1, &dl), ""));
  CHECK(!strcmp(cand("-", "a-x/y", 0, &dl), ".qmail-a-default") && dl == 3);
  CHECK(!strcmp(cand("-", "a-x/y", 1, &dl), ".qmail-default") && dl == 5);

  /* Lines. */
  CHECK(line("", 0) == DQ_SKIP);
  CHECK(line("# comment", 0) == DQ_SKIP);
  CHECK(line("   ", 0) == DQ_SKIP);
  CHECK(line("|exec foo  ", "exec foo  ") == DQ_PROGRAM);
  CHECK(line("./Maildir/", "./Maildir/") == DQ_MAILDIR);
  CHECK(line("./Maildir/ \t", "./Maildir/") == DQ_MAILDIR);
  CHECK(line("/var/mail/joe", "/var/mail/joe") == DQ_MBOX);
  CHECK(line("./Mailbox", "./Mailbox") == DQ_MBOX);
  CHECK(line("&joe@example.com", "joe@example.com") == DQ_FORWARD);
  CHECK(line("joe@example.com ", "joe@example.com") == DQ_FORWARD);
  CHECK(line("&", 0) == DQ_SKIP);

  /* $EXT2..4 and $HOST2..4. */
  CHECK(!strcmp(dq_extn("a-b-c", 2), "b-c"));
  CHECK(!strcmp(dq_extn("a-b-c", 3), "c"));
  CHECK(!strcmp(dq_extn("a-b-c", 4), ""));
  CHECK(!strcmp(dq_extn("abc", 2), ""));
  CHECK(dq_hostn("mail.example.com", 2) == 12);
  CHECK(dq_hostn("mail.example.com", 3) == 4);
  CHECK(dq_hostn("mail.example.com", 4) == 0);
  DONE();
}
