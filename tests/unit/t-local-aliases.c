/* /etc/aliases entries (qmail-local/aliases.h): what each kind of value
 * becomes as dot-qmail lines, and what is refused. */
#include <string.h>
#include "check.h"
#include "../../qmail-local/aliases.h"

/* 1 if entry s parses to key k and instructions v. */
static int is(const char *s, const char *k, const char *v)
{
  str key = STR_INIT, val = STR_INIT;
  const char *why = 0;
  int ok = alias_entry(s, strlen(s), &key, &val, &why) == 1 && key.len == strlen(k) &&
           !memcmp(key.s, k, key.len) && val.len == strlen(v) && !memcmp(val.s, v, val.len);
  if (!ok) printf("  %s -> [%.*s] [%.*s] %s\n", s, (int)key.len, key.s, (int)val.len, val.s, why ? why : "");
  str_free(&key); str_free(&val);
  return ok;
}

static int refused(const char *s)
{
  str key = STR_INIT, val = STR_INIT;
  const char *why = 0;
  int r = alias_entry(s, strlen(s), &key, &val, &why);
  str_free(&key); str_free(&val);
  return r == -1 && why && *why;
}

int main(void)
{
  CHECK(is("postmaster: root", "postmaster", "&root\n"));
  CHECK(is("Root:\tjoe@example.org , <ann@example.org>", "root", "&joe@example.org\n&ann@example.org\n"));
  CHECK(is("cron: |/usr/bin/logger -t cron", "cron", "|/usr/bin/logger -t cron\n"));
  CHECK(is("list: \"|/bin/prog a, b\", joe", "list", "|/bin/prog a, b\n&joe\n"));
  CHECK(is("log: /var/mail/log, /srv/Maildir/", "log", "/var/mail/log\n/srv/Maildir/\n"));
  CHECK(is("joe: ann,  bob   ", "joe", "&ann\n&bob\n"));
  CHECK(refused("joe: :include:/etc/list"));
  CHECK(refused("joe: \\joe"));
  CHECK(refused("joe:"));
  CHECK(refused("joe: ,"));
  CHECK(refused("no colon here"));
  CHECK(refused(": joe"));
  CHECK(refused("a b: joe"));
  CHECK(refused("a@b: joe"));
  CHECK(refused("../x: joe"));
  CHECK(refused("joe: \"|unbalanced"));
  CHECK(refused("joe: two words"));
  CHECK(refused("joe: |"));
  CHECK(refused("joe: a\001b"));
  DONE();
}
