/* qmail-send's destination state: backoff arithmetic, dead marking,
 * gradual recovery, the record table and its hold heap, and parking
 * messages on a destination. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "../../qmail-send/send.h"

static void t_delay(void)
{
  CHECK(dest_delay(0, 60, 3600) == 0);
  CHECK(dest_delay(1, 60, 3600) == 60);
  CHECK(dest_delay(2, 60, 3600) == 120);
  CHECK(dest_delay(6, 60, 3600) == 1920);
  CHECK(dest_delay(7, 60, 3600) == 3600);
  CHECK(dest_delay(64, 60, 3600) == 3600);
  CHECK(dest_delay(200, 1, ~0ULL) > 0);     /* no overflow to 0 */
  CHECK(dest_delay(1, 0, 10) == 1);
}

static void t_fail_ok(void)
{
  struct backoff b = { 60, 3600, 600, 5, 8 };
  struct dest x;
  unsigned long long t = 1000;
  int k;

  memset(&x, 0, sizeof x);
  CHECK(dest_limit(&x, 8) == 8);
  CHECK(dest_fail(&x, t, &b) == DEST_HELD && x.hold == t + 60 && x.fails == 1);
  CHECK(dest_limit(&x, 8) == 4);
  CHECK(dest_fail(&x, t, &b) == DEST_HELD && x.hold == t + 120);
  CHECK(dest_fail(&x, t, &b) == DEST_HELD && x.hold == t + 240);
  CHECK(dest_fail(&x, t, &b) == DEST_HELD && x.hold == t + 480);
  CHECK(dest_fail(&x, t, &b) == DEST_DEAD && x.dead && x.hold == t + 600 && x.fails == 5);
  CHECK(dest_limit(&x, 8) == 1);            /* a probe at a time */
  CHECK(x.gen == 5);
  /* Recovery is gradual: 5 -> 2 -> 1 -> 0. */
  CHECK(dest_ok(&x) == 1 && x.fails == 2 && !x.dead && !x.hold);
  CHECK(dest_limit(&x, 8) == 2);
  CHECK(dest_fail(&x, t, &b) == DEST_HELD && x.hold == t + 240);
  CHECK(dest_ok(&x) == 1 && x.fails == 1);
  CHECK(dest_ok(&x) == 1 && x.fails == 0);
  CHECK(dest_ok(&x) == 0);
  for (k = 0; k < 1000; k++) dest_fail(&x, t, &b);
  CHECK(x.fails == DEST_FAILS_MAX && x.dead);
  b.deadthreshold = 1000;
  memset(&x, 0, sizeof x);
  for (k = 0; k < 20; k++) dest_fail(&x, t, &b);
  CHECK(x.hold == t + 3600 && !x.dead);      /* capped at backoffmax */
}

static void t_table(void)
{
  uint32_t a = dest_get("Example.ORG", 11), b, c, i, d[3000];
  char name[32];
  int ok = 1, k;

  CHECK(a != NIL && dest_get("example.org", 11) == a);
  CHECK(dest_at(a)->len == 11 && !memcmp(dest_at(a)->name, "example.org", 11));
  b = dest_get("example.net", 11);
  CHECK(b != a && dest_count() == 2);
  dest_maybe_free(b);                        /* nothing refers to it */
  CHECK(dest_count() == 1);
  c = dest_get("example.com", 11);
  CHECK(c == b);                             /* the freed slot is reused */
  dest_at(c)->fails = 1;
  dest_maybe_free(c);                        /* remembers a failure: kept */
  CHECK(dest_count() == 2 && dest_get("example.com", 11) == c);
  for (k = 0; k < 3000; k++) {
    snprintf(name, sizeof name, "d%d.test", k);
    d[k] = dest_get(name, strlen(name));
    if (d[k] == NIL) ok = 0;
  }
  CHECK(ok && dest_count() == 3002);
  for (k = 0; k < 3000; k++) {
    snprintf(name, sizeof name, "D%d.TEST", k);
    if (dest_get(name, strlen(name)) != d[k]) ok = 0;
  }
  CHECK(ok);

  /* The hold heap gives destinations back in hold order. */
  for (k = 0; k < 3000; k++) {
    dest_at(d[k])->hold = 10000 + (unsigned long long)((k * 7919) % 3000);
    dest_sethold(d[k]);
  }
  dest_at(d[5])->hold = 5;                   /* moved earlier */
  dest_sethold(d[5]);
  dest_unhold(d[7]);
  CHECK(dest_next() == 5);
  CHECK(dest_expired(4) == NIL);
  CHECK(dest_expired(5) == d[5]);
  {
    unsigned long long last = 0;
    size_t n = 0;
    while ((i = dest_expired(~0ULL)) != NIL) {
      if (dest_at(i)->hold < last) ok = 0;
      last = dest_at(i)->hold;
      n++;
    }
    CHECK(ok && n == 2998 && dest_next() == ~0ULL);
  }
  dest_at(a)->hold = 50;
  dest_at(a)->dead = 1;
  dest_sethold(a);
  dest_clear_all();
  CHECK(dest_next() == ~0ULL && !dest_at(a)->hold && !dest_at(a)->dead && dest_at(c)->fails == 1);
}

static void t_park(void)
{
  struct mtab t = MTAB_INIT;
  uint32_t dx = dest_get("park.test", 9), m[10], i;
  char q[32];
  int k;

  t.plist = dest_plist;
  for (k = 0; k < 10; k++) {
    int n = snprintf(q, sizeof q, "1700000000.%06d.1", k);
    m[k] = mt_add(&t, q, (size_t)n);
  }
  for (k = 0; k < 10; k++) {
    i = mt_ready_pop(&t);
    CHECK(i == m[k]);
    mt_park(&t, i, dest_plist(dx), dx, 1000 + (unsigned long long)k);
  }
  CHECK(dest_plist(dx)->n == 10 && t.nheap == 10 && t.m[m[3]].state == M_HELD);
  /* Released in order, out of the heap too. */
  i = mt_unpark_head(&t, dest_plist(dx));
  CHECK(i == m[0] && t.nheap == 9 && dest_plist(dx)->n == 9);
  mt_ready_push_front(&t, i);
  CHECK(mt_ready_pop(&t) == m[0]);
  /* The end of a lifetime takes a message off the list. */
  CHECK(mt_due(&t, 1002, 0) == 1003);
  CHECK(dest_plist(dx)->n == 7 && dest_plist(dx)->head == m[3]);
  CHECK(mt_ready_pop(&t) == m[1] && mt_ready_pop(&t) == m[2] && mt_ready_pop(&t) == NIL);
  mt_del(&t, m[5]);                          /* from the middle */
  CHECK(dest_plist(dx)->n == 6 && t.m[m[4]].pnext == m[6] && t.m[m[6]].pprev == m[4]);
  mt_due(&t, 0, 1);
  CHECK(dest_plist(dx)->n == 0 && dest_plist(dx)->head == NIL && dest_plist(dx)->tail == NIL);
  CHECK(t.nready == 6 && mt_ready_pop(&t) == m[3]);
  free(t.m);
  free(t.hash);
  free(t.heap);
}

int main(void)
{
  t_delay();
  t_fail_ok();
  t_table();
  t_park();
  DONE();
}
