/* Maildir names: deterministic with a qid, unique without; host cleaning. */
#include <string.h>
#include "check.h"
#include "../../qmail-local/local.h"

int main(void)
{
  str s = STR_INIT;

  CHECK(maildir_name(&s, "1795420800.004211.3117", 5, 1795420800, 0, 0, "mx.example") == 0);
  CHECK(!strcmp(s.s, "1795420800.Q1795420800_004211_3117R5.mx.example"));
  /* The name does not depend on time or pid: a retry finds it. */
  CHECK(maildir_name(&s, "1795420800.004211.3117", 5, 1795420800, 999, 42, "mx.example") == 0);
  CHECK(!strcmp(s.s, "1795420800.Q1795420800_004211_3117R5.mx.example"));
  /* Another recipient of the same message gets another name. */
  CHECK(maildir_name(&s, "1795420800.004211.3117", 6, 1795420800, 0, 0, "mx.example") == 0);
  CHECK(!strcmp(s.s, "1795420800.Q1795420800_004211_3117R6.mx.example"));

  CHECK(maildir_name(&s, 0, 0, 1700000000, 12345, 678, "host") == 0);
  CHECK(!strcmp(s.s, "1700000000.M12345P678.host"));
  CHECK(s.len == strlen(s.s));

  /* '/' and ':' cannot appear in a Maildir name (":" starts the info). */
  CHECK(maildir_name(&s, 0, 0, 1, 2, 3, "a/b:c") == 0);
  CHECK(!strcmp(s.s, "1.M2P3.a\\057b\\072c"));
  CHECK(!strchr(s.s, '/') && !strchr(s.s, ':'));
  str_free(&s);
  DONE();
}
