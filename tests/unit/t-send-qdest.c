/* The parts of a destination reset (qmail-qdest) that live in dest.c:
 * the strict domain-name check, lookup without creating a record, and a
 * reset that makes a dead destination's hold expire now while keeping its
 * failure count. */
#include <string.h>
#include "check.h"
#include "../../qmail-send/send.h"

static int ok(const char *s) { return dest_name_ok(s, strlen(s)); }

static void t_name(void)
{
  char big[300];

  CHECK(ok("example.org") && ok("A-B.Example.ORG") && ok("x") && ok("1.2.3.4") && ok("xn--bcher-kva.test"));
  CHECK(!ok("") && !ok(".") && !ok("..") && !ok(".a") && !ok("a.") && !ok("a..b"));
  CHECK(!ok("a/b") && !ok("a_b") && !ok("a b") && !ok("[127.0.0.1]") && !ok("a\nb") && !ok("\xc3\xa9.test"));
  CHECK(!dest_name_ok("a\0b", 3));
  /* A relay's key (qmail-send's hop_key): host or [IPv6], ":port". */
  CHECK(ok("smarthost.test:587") && ok("127.0.0.1:2525") && ok("[::1]") && ok("[2001:db8::1]:25"));
  CHECK(!ok("a.test:") && !ok(":25") && !ok("a:b:25") && !ok("::1") && !ok("a.test:123456") && !ok("[::1]x"));
  memset(big, 'a', sizeof big);
  CHECK(dest_name_ok(big, 255) && !dest_name_ok(big, 256));
}

static void t_find_reset(void)
{
  struct backoff b = { 60, 3600, 600, 1, 8 };
  uint32_t i, j;
  struct dest *x;

  CHECK(dest_find("a.test", 6) == NIL && dest_count() == 0);   /* makes nothing */
  i = dest_get("A.Test", 6);
  j = dest_get("b.test", 6);
  CHECK(i != NIL && j != NIL && dest_count() == 2);
  CHECK(dest_find("a.TEST", 6) == i && dest_find("b.test", 6) == j && dest_find("c.test", 6) == NIL);
  CHECK(dest_count() == 2);

  x = dest_at(i);
  CHECK(dest_fail(x, 1000, &b) == DEST_DEAD);
  dest_sethold(i);
  x = dest_at(j);
  CHECK(dest_fail(x, 1000, &b) == DEST_DEAD);
  dest_sethold(j);
  CHECK(dest_expired(1001) == NIL);

  dest_reset(i, 1001);
  x = dest_at(i);
  CHECK(!x->dead && x->hold == 1001 && x->fails == 1);   /* the count stays */
  CHECK(dest_expired(1001) == i && dest_expired(1001) == NIL);
  CHECK(dest_at(j)->dead && dest_at(j)->hold == 1600);   /* the other is untouched */
  CHECK(dest_next() == 1600);

  /* Forgotten once they recover: the table frees their names. */
  dest_unhold(j);
  dest_ok(dest_at(i));
  dest_ok(dest_at(j));
  dest_maybe_free(i);
  dest_maybe_free(j);
  CHECK(dest_count() == 0 && dest_find("a.test", 6) == NIL);
}

int main(void)
{
  t_name();
  t_find_reset();
  DONE();
}
