/* The schedule kept across restarts: queue/sched/schedule (send.h).
 *
 * One text file, replaced whole by atomic_write (lib/atomic.h), so a
 * crash leaves the previous copy or this one, never a mix:
 *
 *   qmail-send schedule 1
 *   w <wall clock at the write>
 *   d <domain> <failures> <dead 0|1> <hold left> <hold length>
 *   m <qid> <age> <local due in> <remote due in> <local tries> <remote tries>
 *   s <qid>           finished, its report sent, but its file not removed
 *   end
 *
 * Every time is in seconds relative to the write ("-" for none), so that
 * the file means the same on any clock; at load each shrinks by the wall
 * time elapsed since the write, never grows (a wall clock that went back
 * counts as no time elapsed). A file without its "end" line, a line that
 * does not parse, a message no longer in mess/: ignored. What the file
 * lacks is due now, so a stale or missing file can only make a retry
 * sooner, never lose a message. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic.h"
#include "control.h"
#include "send.h"

#define MAGIC "qmail-send schedule 1"

static int rel(str *s, uint32_t t, unsigned long long now)
{
  if (t == T_NEVER) return str_cats(s, " -");
  return str_catc(s, ' ') < 0 || str_catu(s, t > now ? t - now : 0) < 0 ? -1 : 0;
}

int keep_save(str *s, const struct mtab *t, unsigned long long now, unsigned long long wall)
{
  size_t i, n = dest_slots();
  char q[QF_QID_MAX];

  s->len = 0;
  if (str_cats(s, MAGIC "\nw ") < 0 || str_catu(s, wall) < 0 || str_catc(s, '\n') < 0) return -1;
  for (i = 0; i < n; i++) {
    const struct dest *x = dest_at((uint32_t)i);
    if (!x->name || (!x->fails && !x->hold)) continue;
    if (str_cats(s, "d ") < 0 || str_catb(s, x->name, x->len) < 0 || str_catc(s, ' ') < 0 ||
        str_catu(s, x->fails) < 0 || str_cats(s, x->dead ? " 1 " : " 0 ") < 0 ||
        str_catu(s, x->hold > now ? x->hold - now : 0) < 0 || str_catc(s, ' ') < 0 ||
        str_catu(s, x->delay) < 0 || str_catc(s, '\n') < 0)
      return -1;
  }
  for (i = 0; i < t->n; i++) {
    const struct send_msg *m = t->m + i;
    if (m->state == M_FREE) continue;
    if (m->state == M_STUCK) {
      if (str_cats(s, "s ") < 0 || str_cats(s, mt_qid(t, (uint32_t)i, q)) < 0 || str_catc(s, '\n') < 0)
        return -1;
      continue;
    }
    if (str_cats(s, "m ") < 0 || str_cats(s, mt_qid(t, (uint32_t)i, q)) < 0 || str_catc(s, ' ') < 0 ||
        str_catu(s, m->born < now ? now - m->born : 0) < 0 ||
        rel(s, m->due[CH_LOCAL], now) < 0 || rel(s, m->due[CH_REMOTE], now) < 0 ||
        str_catc(s, ' ') < 0 || str_catu(s, m->tries[CH_LOCAL]) < 0 || str_catc(s, ' ') < 0 ||
        str_catu(s, m->tries[CH_REMOTE]) < 0 || str_catc(s, '\n') < 0)
      return -1;
  }
  if (str_cats(s, "end\n") < 0) return -1;
  return atomic_write("queue/sched", "schedule", s->s, s->len, 0600);
}

/* Splits line p (NUL-terminated) into at most max fields at blanks. */
static size_t fields(char *p, char **f, size_t max)
{
  size_t n = 0;
  while (*p && n < max) {
    f[n++] = p;
    while (*p && *p != ' ') p++;
    if (*p) *p++ = 0;
  }
  return *p ? max + 1 : n;
}

static int num(const char *s, unsigned long long *u) { return scan_ulong(s, strlen(s), u); }

/* A relative time at load: "-" is none; else now + max(0, v - elapsed). */
static int due_of(const char *s, unsigned long long now, unsigned long long el, uint32_t *out)
{
  unsigned long long v;
  if (!strcmp(s, "-")) { *out = T_NEVER; return 0; }
  if (num(s, &v) < 0) return -1;
  *out = t32(v > el ? now + (v - el) : now);
  return 0;
}

static void load_dest(char **f, unsigned long long now, unsigned long long el)
{
  unsigned long long fails, dead, hold, delay;
  uint32_t d;
  struct dest *x;

  if (!dest_name_ok(f[1], strlen(f[1])) || num(f[2], &fails) < 0 || num(f[3], &dead) < 0 ||
      num(f[4], &hold) < 0 || num(f[5], &delay) < 0 || (d = dest_get(f[1], strlen(f[1]))) == NIL)
    return;
  x = dest_at(d);
  x->fails = fails > DEST_FAILS_MAX ? DEST_FAILS_MAX : (uint32_t)fails;
  x->dead = dead ? 1 : 0;
  x->delay = delay;
  if (hold > el) {
    x->hold = now + (hold - el);
    dest_sethold(d);
  }
  dest_maybe_free(d);
}

/* 1 if mess/<qid> exists. */
static int queued(int dir, const char *qid)
{
  struct stat st;
  return fstatat(dir, qid, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int load_msg(struct mtab *t, char **f, unsigned long long now, unsigned long long el, int dir)
{
  unsigned long long age, tl, tr;
  uint32_t due[CH_N], i, when;
  size_t n = strlen(f[1]);

  if (!qf_qid_ok(f[1], n) || mt_find(t, f[1], n) != NIL || num(f[2], &age) < 0 ||
      due_of(f[3], now, el, &due[CH_LOCAL]) < 0 || due_of(f[4], now, el, &due[CH_REMOTE]) < 0 ||
      num(f[5], &tl) < 0 || num(f[6], &tr) < 0 || !queued(dir, f[1]))
    return 0;
  when = due[CH_LOCAL] < due[CH_REMOTE] ? due[CH_LOCAL] : due[CH_REMOTE];
  /* Nothing pending on either channel: let a round find out what it is. */
  if (when == T_NEVER) due[CH_LOCAL] = due[CH_REMOTE] = when = t32(now);
  i = when > now ? mt_add_wait(t, f[1], n, when) : mt_add(t, f[1], n);
  if (i == NIL) return -1;
  age = age > ~0ULL - el ? ~0ULL : age + el;
  t->m[i].born = t32(age < now ? now - age : 0);
  memcpy(t->m[i].due, due, sizeof due);
  /* Its destinations are not known until it is opened: a reset of any
   * one (qmail-qdest) retries it, an early retry at worst. */
  if (due[CH_REMOTE] != T_NEVER) t->m[i].dest = DEST_MANY;
  t->m[i].tries[CH_LOCAL] = tl > UINT8_MAX ? UINT8_MAX : (uint8_t)tl;
  t->m[i].tries[CH_REMOTE] = tr > UINT8_MAX ? UINT8_MAX : (uint8_t)tr;
  return 1;
}

long keep_load(struct mtab *t, unsigned long long now, unsigned long long wall)
{
  str s = STR_INIT;
  char *p, *e, *next, *f[8];
  unsigned long long w, el = 0;
  long got = 0;
  int r, dir = -1, ok = 0;

  r = control_lines(&s, "queue/sched/schedule");
  if (r <= 0) { str_free(&s); return r < 0 ? -1 : 0; }
  if (s.len < 5) goto out;
  p = s.s;
  e = s.s + s.len;
  /* The last line must be "end": a file is whole or ignored. */
  if (s.len < 5 || memcmp(e - 4, "end", 4) || (s.len > 5 && e[-5]) || strcmp(p, MAGIC)) goto out;
  p += strlen(p) + 1;
  next = p + strlen(p) + 1;
  if (fields(p, f, 2) != 2 || strcmp(f[0], "w") || num(f[1], &w) < 0) goto out;
  el = wall > w ? wall - w : 0;
  p = next;
  if ((dir = open("queue/mess", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) goto out;
  ok = 1;
  for (; p < e - 4; p = next) {
    size_t n;
    next = p + strlen(p) + 1;
    n = fields(p, f, 7);
    if (n == 6 && !strcmp(f[0], "d")) load_dest(f, now, el);
    else if (n == 2 && !strcmp(f[0], "s")) {
      size_t qn = strlen(f[1]);
      if (!qf_qid_ok(f[1], qn) || mt_find(t, f[1], qn) != NIL || !queued(dir, f[1])) continue;
      if (mt_add_stuck(t, f[1], qn) == NIL) { got = -1; break; }
      got++;
    }
    else if (n == 7 && !strcmp(f[0], "m")) {
      int k = load_msg(t, f, now, el, dir);
      if (k < 0) { got = -1; break; }
      got += k;
    }
  }
out:
  if (dir >= 0) close(dir);
  str_free(&s);
  if (!ok) { errno = EINVAL; return -1; }
  return got;
}
