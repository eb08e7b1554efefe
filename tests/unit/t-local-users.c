/* users/assign lines and users/cdb lookups: exact beats prefix, longest
 * prefix wins, the empty prefix only as the catch-all. */
#include <cdb.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "../../qmail-local/users.h"

static const char *const lines[] = {
  "=joe:joe:1001:1001:/home/joe:::",
  "=Joe-List:list:1002:1002:/home/list:-:joe:",
  "+joe-:joe:1001:1001:/home/joe:-::",
  "+joe-x-:jx:1003:1003:/home/jx:-:pre-:",
  "+:alias:1004:1004:/var/qmail/alias:-::",
};

static int bad(const char *s)
{
  str k = STR_INIT, v = STR_INIT;
  const char *why = 0;
  int r = assign_line(s, strlen(s), &k, &v, &why);
  str_free(&k); str_free(&v);
  return r == -1 && why && *why;
}

int main(void)
{
  char name[] = "/tmp/t-local-users.XXXXXX";
  struct cdb_make cm;
  struct cdb c;
  struct uent u = { 0, 0, 0, 0, 0, 0, STR_INIT };
  str k = STR_INIT, v = STR_INIT;
  const char *why;
  size_t i;
  int fd = mkstemp(name);

  CHECK(fd >= 0);
  unlink(name);
  CHECK(cdb_make_start(&cm, fd) == 0);
  for (i = 0; i < sizeof lines / sizeof *lines; i++) {
    CHECK(assign_line(lines[i], strlen(lines[i]), &k, &v, &why) == 1);
    CHECK(cdb_make_add(&cm, k.s, (unsigned)k.len, v.s, (unsigned)v.len) == 0);
  }
  CHECK(cdb_make_finish(&cm) == 0);
  CHECK(assign_line(".", 1, &k, &v, &why) == 0);
  /* Keys are lowercased. */
  CHECK(assign_line(lines[1], strlen(lines[1]), &k, &v, &why) == 1 && k.len == 9 && !memcmp(k.s, "=joe-list", 9));

  CHECK(bad("joe:joe:1:1:/h:::"));
  CHECK(bad("=joe:joe:1:1:/h::"));        /* six fields */
  CHECK(bad("=joe:joe:1:1:/h:::x"));      /* text after */
  CHECK(bad("=joe:joe:x:1:/h:::"));
  CHECK(bad("=joe:joe:1:-1:/h:::"));
  CHECK(bad("=joe:joe:0:0:/root:::"));    /* root never receives mail */
  CHECK(bad("=joe:joe:1:1:home:::"));
  CHECK(bad("=joe:joe:1:1:/h:+::"));
  CHECK(bad("=joe::1:1:/h:::"));
  CHECK(bad("=:joe:1:1:/h:::"));
  CHECK(bad("=joe:jo\te:1:1:/h:::"));
  CHECK(bad("=joe:joe:99999999999:1:/h:::"));

  CHECK(cdb_init(&c, fd) == 0);
  CHECK(users_find(&c, "joe", 3, 0, &u) == 1);
  CHECK(!strcmp(u.user, "joe") && u.uid == 1001 && !strcmp(u.home, "/home/joe") &&
        !strcmp(u.dash, "") && !strcmp(u.ext, ""));
  /* Exact beats the "joe-" prefix. */
  CHECK(users_find(&c, "joe-list", 8, 0, &u) == 1);
  CHECK(!strcmp(u.user, "list") && !strcmp(u.dash, "-") && !strcmp(u.ext, "joe"));
  /* Prefix: ext is pre followed by the rest. */
  CHECK(users_find(&c, "joe-foo-bar", 11, 0, &u) == 1);
  CHECK(!strcmp(u.user, "joe") && !strcmp(u.dash, "-") && !strcmp(u.ext, "foo-bar"));
  /* Longest prefix wins. */
  CHECK(users_find(&c, "joe-x-y", 7, 0, &u) == 1);
  CHECK(!strcmp(u.user, "jx") && u.uid == 1003 && !strcmp(u.ext, "pre-y"));
  /* The empty prefix is not part of the normal search... */
  CHECK(users_find(&c, "nobody", 6, 0, &u) == 0);
  /* ...only of the catch-all one. */
  CHECK(users_find(&c, "nobody", 6, 1, &u) == 1);
  CHECK(!strcmp(u.user, "alias") && u.uid == 1004 && !strcmp(u.ext, "nobody") && !strcmp(u.dash, "-"));
  cdb_free(&c);
  close(fd);
  str_free(&k); str_free(&v); str_free(&u.buf);
  DONE();
}
