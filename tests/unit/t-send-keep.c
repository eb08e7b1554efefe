/* qmail-send's schedule kept across restarts (keep.c): a save read back
 * gives each message its age, due times and attempts and each destination
 * its failures and hold, all shortened by the wall time elapsed since the
 * save and never lengthened (a wall clock gone back counts as none);
 * messages no longer in mess/ are dropped; a file cut short or damaged is
 * ignored whole. Runs in a temporary directory. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "../../qmail-send/send.h"

static struct plist *plist_of(uint32_t d) { return dest_plist(d); }

static void touch(const char *qid)
{
  char p[128];
  int fd;
  snprintf(p, sizeof p, "queue/mess/%s", qid);
  fd = open(p, O_WRONLY | O_CREAT, 0600);
  if (fd >= 0) close(fd);
}

static struct mtab fresh(void)
{
  struct mtab t = MTAB_INIT;
  t.plist = plist_of;
  return t;
}

int main(void)
{
  char dir[] = "/tmp/t-send-keep.XXXXXX";
  struct mtab t = fresh(), u;
  str s = STR_INIT;
  uint32_t a, b, c, d, i;
  unsigned long long now = 1000000, wall = 1700000000;
  struct dest *x;

  if (!mkdtemp(dir) || chdir(dir) < 0 || mkdir("queue", 0700) < 0 || mkdir("queue/sched", 0700) < 0 ||
      mkdir("queue/mess", 0700) < 0) {
    printf("FAIL setup\n");
    return 1;
  }
  CHECK(keep_load(&t, now, wall) == 0);        /* no file: nothing, no error */

  touch("1700000000.000001.1");
  touch("1700000000.000002.1");
  touch("1700000000.000003.1");
  a = mt_add(&t, "1700000000.000001.1", 19);   /* waiting: remote in 400 s, local none */
  b = mt_add(&t, "1700000000.000002.1", 19);   /* ready: due now */
  c = mt_add(&t, "1700000000.000003.1", 19);   /* finished, its file not removable */
  CHECK(mt_ready_pop(&t) == a && mt_ready_pop(&t) == b && mt_ready_pop(&t) == c);
  mt_ready_push(&t, b);
  t.m[a].born = (uint32_t)(now - 50);
  t.m[a].due[CH_LOCAL] = T_NEVER;
  t.m[a].due[CH_REMOTE] = (uint32_t)(now + 400);
  t.m[a].tries[CH_REMOTE] = 3;
  mt_wait(&t, a, now + 400);
  t.m[b].born = (uint32_t)(now - 5);
  t.m[c].state = M_STUCK;
  d = dest_get("Down.Test", 9);
  x = dest_at(d);
  x->fails = 3;
  x->delay = 240;
  x->hold = now + 200;
  dest_sethold(d);
  CHECK(keep_save(&s, &t, now, wall) == 0);

  /* A restart 100 s later, on a new scheduler clock. */
  u = fresh();
  dest_clear_all();
  x->fails = 0;
  dest_maybe_free(d);
  CHECK(dest_find("down.test", 9) == NIL);
  unlink("queue/mess/1700000000.000002.1");    /* finished meanwhile */
  CHECK(keep_load(&u, 5000, wall + 100) == 2);
  i = mt_find(&u, "1700000000.000001.1", 19);
  CHECK(i != NIL && u.m[i].state == M_WAIT);
  CHECK(i != NIL && u.m[i].due[CH_REMOTE] == 5000 + 300 && u.m[i].due[CH_LOCAL] == T_NEVER);
  CHECK(i != NIL && u.m[i].born == 5000 - 150 && u.m[i].tries[CH_REMOTE] == 3);
  CHECK(mt_find(&u, "1700000000.000002.1", 19) == NIL);
  i = mt_find(&u, "1700000000.000003.1", 19);
  CHECK(i != NIL && u.m[i].state == M_STUCK && u.nready == 0);
  d = dest_find("down.test", 9);
  CHECK(d != NIL && dest_at(d)->fails == 3 && dest_at(d)->hold == 5000 + 100 && dest_next() == 5100);
  CHECK(mt_due(&u, 5299, 0) == 5300 && mt_due(&u, 5300, 0) == ~0ULL && u.nready == 1);
  mt_free(&u);

  /* The wall clock went back: no time elapsed, nothing lengthened. */
  u = fresh();
  CHECK(keep_load(&u, 5000, wall - 86400) == 2);
  i = mt_find(&u, "1700000000.000001.1", 19);
  CHECK(i != NIL && u.m[i].due[CH_REMOTE] == 5000 + 400 && u.m[i].born == 5000 - 50);
  mt_free(&u);

  /* Far past every due time: due now, in the ready list. */
  u = fresh();
  CHECK(keep_load(&u, 5000, wall + 100000) == 2);
  i = mt_find(&u, "1700000000.000001.1", 19);
  CHECK(i != NIL && u.m[i].state == M_READY && u.nready == 1);
  mt_free(&u);

  /* Cut short (no end line), or damaged at the top: ignored whole. */
  {
    int fd = open("queue/sched/schedule", O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && write(fd, s.s, s.len / 2) == (ssize_t)(s.len / 2));
    if (fd >= 0) close(fd);
    u = fresh();
    CHECK(keep_load(&u, 5000, wall) == -1 && u.live == 0);
    mt_free(&u);
    fd = open("queue/sched/schedule", O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && write(fd, "junk\nend\n", 9) == 9);
    if (fd >= 0) close(fd);
    u = fresh();
    CHECK(keep_load(&u, 5000, wall) == -1 && u.live == 0);
    mt_free(&u);
    /* A bad line among good ones is skipped alone. */
    fd = open("queue/sched/schedule", O_WRONLY | O_TRUNC);
    {
      const char *f = "qmail-send schedule 1\nw 1700000000\nm ../x 1 2 3 4 5\nm 1700000000.000001.1 x 1 1 0 0\n"
                      "m 1700000000.000001.1 10 - 60 0 1\nend\n";
      CHECK(fd >= 0 && write(fd, f, strlen(f)) == (ssize_t)strlen(f));
    }
    if (fd >= 0) close(fd);
    u = fresh();
    CHECK(keep_load(&u, 5000, wall) == 1);
    i = mt_find(&u, "1700000000.000001.1", 19);
    CHECK(i != NIL && u.m[i].due[CH_REMOTE] == 5060 && u.m[i].born == 4990);
    mt_free(&u);
  }
  {
    /* queue/sched/later: appended lines come back the earliest first, up
     * to a count and a time; a torn last line is ignored; a compaction
     * drops what memory holds; SIGALRM's makes the rest due now. */
    static const char *q[5] = { "1700000100.000001.1", "1700000100.000002.1", "1700000100.000003.1",
                                "1700000100.000004.1", "1700000100.000005.1" };
    static const unsigned long long in[5] = { 300, 10, 0, 100, 5 };
    char look[4][QF_QID_MAX] = { "1700000100.000001.1", "1700000100.000002.1", "1700000100.000004.1",
                                 "1700000100.000009.1" };
    unsigned char known[4];
    struct later l = { 0, ~0ULL };
    struct mtab m = fresh();
    uint32_t v[5];
    int fd, k;

    for (k = 0; k < 5; k++) {
      v[k] = mt_add(&m, q[k], 19);
      m.m[v[k]].born = (uint32_t)(now - 50);
      m.m[v[k]].due[CH_LOCAL] = (uint32_t)(now + in[k]);
      m.m[v[k]].due[CH_REMOTE] = T_NEVER;
    }
    m.m[v[3]].tries[CH_LOCAL] = 3;
    CHECK(later_put(&l, &s, &m, v, 5, now, wall) == 0 && l.n == 5 && l.min == now);
    fd = open("queue/sched/later", O_WRONLY | O_APPEND);
    CHECK(fd >= 0 && write(fd, "m 1700000100.000009.1 0 1", 25) == 25);
    if (fd >= 0) close(fd);
    mt_free(&m);
    m = fresh();
    CHECK(later_take(&l, &m, 2, ~0ULL, now, wall) == 2 && m.live == 2);
    CHECK(mt_find(&m, q[2], 19) != NIL && mt_find(&m, q[4], 19) != NIL);
    CHECK(l.n == 3 && l.min == now + 10);
    i = mt_find(&m, q[4], 19);
    CHECK(i != NIL && m.m[i].state == M_WAIT && m.m[i].due[CH_LOCAL] == now + 5);
    CHECK(later_take(&l, &m, 10, now + 50, now, wall) == 1 && mt_find(&m, q[1], 19) != NIL);
    CHECK(l.n == 2 && l.min == now + 100);
    CHECK(later_compact(&l, &m, 0, now, wall) == 0 && l.n == 2);
    later_sort(look, 4);
    CHECK(later_known((const char (*)[QF_QID_MAX])look, 4, known) == 0);
    CHECK(known[0] && !known[1] && known[2] && !known[3]);
    /* 1 s later, SIGALRM: both due now, the rest of the line kept. */
    CHECK(later_compact(&l, &m, 1, now + 1, wall + 1) == 0 && l.n == 2 && l.min == now + 1);
    CHECK(later_take(&l, &m, 10, now + 1, now + 1, wall + 1) == 2 && l.n == 0 && l.min == ~0ULL);
    i = mt_find(&m, q[3], 19);
    CHECK(i != NIL && m.m[i].state == M_READY && m.m[i].due[CH_LOCAL] == now + 1 &&
          m.m[i].due[CH_REMOTE] == T_NEVER && m.m[i].tries[CH_LOCAL] == 3 && m.m[i].born == now - 50);
    mt_free(&m);
  }
  mt_free(&t);
  str_free(&s);
  {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (chdir("/") < 0 || system(cmd) < 0) {}
  }
  DONE();
}
