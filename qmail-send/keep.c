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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic.h"
#include "buf.h"
#include "control.h"
#include "send.h"

#define MAGIC "qmail-send schedule 1"

static int rel(str *s, uint32_t t, unsigned long long now)
{
  if (t == T_NEVER) return str_cats(s, " -");
  return str_catc(s, ' ') < 0 || str_catu(s, t > now ? t - now : 0) < 0 ? -1 : 0;
}

/* "m qid age local-due remote-due local-tries remote-tries", no newline. */
static int msg_line(str *s, const struct mtab *t, uint32_t i, unsigned long long now)
{
  const struct send_msg *m = t->m + i;
  char q[QF_QID_MAX];
  return str_cats(s, "m ") < 0 || str_cats(s, mt_qid(t, i, q)) < 0 || str_catc(s, ' ') < 0 ||
         str_catu(s, m->born < now ? now - m->born : 0) < 0 ||
         rel(s, m->due[CH_LOCAL], now) < 0 || rel(s, m->due[CH_REMOTE], now) < 0 ||
         str_catc(s, ' ') < 0 || str_catu(s, m->tries[CH_LOCAL]) < 0 || str_catc(s, ' ') < 0 ||
         str_catu(s, m->tries[CH_REMOTE]) < 0 ? -1 : 0;
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
    if (msg_line(s, t, (uint32_t)i, now) < 0 || str_catc(s, '\n') < 0) return -1;
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

/* A message's line parsed, its times on the scheduler's clock. */
struct mrec {
  char qid[QF_QID_MAX];
  size_t n;
  uint32_t born, due[CH_N], key;     /* key: its earliest due */
  uint8_t tries[CH_N];
  unsigned long long seq;            /* its line's place in the file */
};

/* Parses the fields of an "m" line, el seconds after its write. 0 or -1. */
static int parse_msg(char **f, unsigned long long now, unsigned long long el, struct mrec *r)
{
  unsigned long long age, tl, tr;

  r->n = strlen(f[1]);
  if (!qf_qid_ok(f[1], r->n) || num(f[2], &age) < 0 ||
      due_of(f[3], now, el, &r->due[CH_LOCAL]) < 0 || due_of(f[4], now, el, &r->due[CH_REMOTE]) < 0 ||
      num(f[5], &tl) < 0 || num(f[6], &tr) < 0)
    return -1;
  memcpy(r->qid, f[1], r->n + 1);
  r->key = r->due[CH_LOCAL] < r->due[CH_REMOTE] ? r->due[CH_LOCAL] : r->due[CH_REMOTE];
  /* Nothing pending on either channel: let a round find out what it is. */
  if (r->key == T_NEVER) r->due[CH_LOCAL] = r->due[CH_REMOTE] = r->key = t32(now);
  age = age > ~0ULL - el ? ~0ULL : age + el;
  r->born = t32(age < now ? now - age : 0);
  r->tries[CH_LOCAL] = tl > UINT8_MAX ? UINT8_MAX : (uint8_t)tl;
  r->tries[CH_REMOTE] = tr > UINT8_MAX ? UINT8_MAX : (uint8_t)tr;
  return 0;
}

/* Adds r to t, waiting or ready; -1 on ENOMEM. */
static int add_msg(struct mtab *t, const struct mrec *r, unsigned long long now)
{
  uint32_t i = r->key > now ? mt_add_wait(t, r->qid, r->n, r->key) : mt_add(t, r->qid, r->n);
  if (i == NIL) return -1;
  t->m[i].born = r->born;
  memcpy(t->m[i].due, r->due, sizeof r->due);
  /* Its destinations are not known until it is opened: a reset of any
   * one (qmail-qdest) retries it, an early retry at worst. */
  if (r->due[CH_REMOTE] != T_NEVER) t->m[i].dest = DEST_MANY;
  memcpy(t->m[i].tries, r->tries, sizeof r->tries);
  return 0;
}

static int load_msg(struct mtab *t, char **f, unsigned long long now, unsigned long long el, int dir)
{
  struct mrec r;
  if (parse_msg(f, now, el, &r) < 0 || mt_find(t, r.qid, r.n) != NIL || !queued(dir, r.qid)) return 0;
  return add_msg(t, &r, now) < 0 ? -1 : 1;
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

/* ---- queue/sched/later: the messages kept out of memory (send.h).
 *
 * One line per message, the "m" line of the schedule with the wall clock
 * of its write appended, so that lines written at different times can
 * share one file that grows by appends:
 *
 *   m <qid> <age> <local due in> <remote due in> <local tries> <remote tries> <wall>
 *
 * An append is fsynced before the messages leave memory, and the file is
 * replaced whole (written aside, fsynced, renamed) only to drop the lines
 * of messages taken back into memory after the schedule that lists them
 * is saved: so every message is, at every instant, in the schedule, in
 * this file or in both (a duplicate is ignored: the first copy wins). A
 * torn last line is ignored, and dropped at the next replacement. */

#define LATER_DIR "queue/sched"
#define LATER LATER_DIR "/later"
#define LATER_TMP LATER_DIR "/.later.tmp"
#define LATER_LINE 256                  /* bytes of a line, at most */

static char later_space[65536];

/* Calls each(ctx, f, line, len) for every whole line of the file with
 * the eight fields of an "m" line (f NUL-terminated copies, line the raw
 * line with its newline). 0, or -1 (errno; ENOENT: no file), or what
 * each returned when negative. */
static int later_each(int (*each)(void *, char **, const char *, size_t), void *ctx)
{
  str line = STR_INIT;
  buf b;
  int fd = open(LATER, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r = 0, e;

  if (fd < 0) return -1;
  buf_init(&b, fd, later_space, sizeof later_space);
  for (;;) {
    char *f[9], copy[LATER_LINE];
    int k = buf_line(&b, &line, LATER_LINE);
    if (k == LINE_EOF || k == LINE_PARTIAL) break;
    if (k == LINE_ERR) { r = -1; break; }
    if (k == LINE_LONG) continue;
    memcpy(copy, line.s, line.len - 1);
    copy[line.len - 1] = 0;
    if (fields(copy, f, 8) != 8 || strcmp(f[0], "m")) continue;
    if ((r = each(ctx, f, line.s, line.len)) < 0) break;
  }
  e = errno;
  close(fd);
  str_free(&line);
  errno = e;
  return r;
}

/* Parses the fields of a later line read at now, wall. 0 or -1. */
static int later_parse(char **f, unsigned long long now, unsigned long long wall, struct mrec *r)
{
  unsigned long long w;
  if (num(f[7], &w) < 0) return -1;
  return parse_msg(f, now, wall > w ? wall - w : 0, r);
}

static uint32_t msg_key(const struct send_msg *m, unsigned long long now)
{
  uint32_t k = m->due[CH_LOCAL] < m->due[CH_REMOTE] ? m->due[CH_LOCAL] : m->due[CH_REMOTE];
  return k == T_NEVER ? t32(now) : k;
}

int later_put(struct later *l, str *s, const struct mtab *t, const uint32_t *v, size_t n,
              unsigned long long now, unsigned long long wall)
{
  struct stat st;
  size_t k;
  int fd, e;

  s->len = 0;
  for (k = 0; k < n; k++)
    if (msg_line(s, t, v[k], now) < 0 || str_catc(s, ' ') < 0 || str_catu(s, wall) < 0 ||
        str_catc(s, '\n') < 0)
      return -1;
  fd = open(LATER, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  if (fstat(fd, &st) < 0) goto fail;
  if (fd_write_all(fd, s->s, s->len, 0) < 0 || fsync(fd) < 0) {
    e = errno;
    if (ftruncate(fd, st.st_size) < 0) {}   /* a torn tail is ignored anyway */
    errno = e;
    goto fail;
  }
  if (close(fd) < 0) return -1;
  /* A new file's name must be durable before the messages leave memory. */
  if (!st.st_size && fsync_dir(LATER_DIR) < 0) return -1;
  for (k = 0; k < n; k++) {
    uint32_t key = msg_key(t->m + v[k], now);
    if (key < l->min) l->min = key;
  }
  l->n += n;
  return 0;
fail:
  e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* later_take: the max earliest records (key, then line order) in a
 * max-heap, so that one pass over the file with bounded memory finds them. */
struct take {
  const struct mtab *t;
  struct mrec *h;
  size_t cap, n, rest;
  unsigned long long upto, now, wall, seq;
  uint32_t restmin;
};

static int later_gt(const struct mrec *a, const struct mrec *b)
{
  return a->key != b->key ? a->key > b->key : a->seq > b->seq;
}

static void take_sift(struct take *k, size_t i)
{
  for (;;) {
    size_t c = 2 * i + 1, m = i;
    struct mrec x;
    if (c < k->n && later_gt(k->h + c, k->h + m)) m = c;
    if (c + 1 < k->n && later_gt(k->h + c + 1, k->h + m)) m = c + 1;
    if (m == i) return;
    x = k->h[i]; k->h[i] = k->h[m]; k->h[m] = x;
    i = m;
  }
}

static void take_rest(struct take *k, const struct mrec *r)
{
  k->rest++;
  if (r->key < k->restmin) k->restmin = r->key;
}

static int take_one(void *ctx, char **f, const char *line, size_t len)
{
  struct take *k = ctx;
  struct mrec r;
  (void)line; (void)len;
  if (later_parse(f, k->now, k->wall, &r) < 0 || mt_find(k->t, r.qid, r.n) != NIL) return 0;
  r.seq = k->seq++;
  if (r.key > k->upto || !k->cap) { take_rest(k, &r); return 0; }
  if (k->n < k->cap) {
    size_t i = k->n++;
    k->h[i] = r;
    while (i && later_gt(k->h + i, k->h + (i - 1) / 2)) {
      struct mrec x = k->h[i];
      k->h[i] = k->h[(i - 1) / 2];
      k->h[(i - 1) / 2] = x;
      i = (i - 1) / 2;
    }
  } else if (later_gt(k->h, &r)) {
    take_rest(k, k->h);
    k->h[0] = r;
    take_sift(k, 0);
  } else take_rest(k, &r);
  return 0;
}

long later_take(struct later *l, struct mtab *t, size_t max, unsigned long long upto,
                unsigned long long now, unsigned long long wall)
{
  struct take k = { t, 0, max, 0, 0, upto, now, wall, 0, T_NEVER };
  long got = 0;
  size_t i, sz;

  if (max && (size_mul(&sz, max, sizeof *k.h) < 0 || !(k.h = malloc(sz)))) return -1;
  if (later_each(take_one, &k) < 0) {
    int e = errno;
    free(k.h);
    if (e == ENOENT) { l->n = 0; l->min = ~0ULL; return 0; }
    errno = e;
    return -1;
  }
  for (i = 0; i < k.n; i++) {
    if (mt_find(t, k.h[i].qid, k.h[i].n) != NIL) continue;   /* a duplicate line */
    if (add_msg(t, k.h + i, now) < 0) { free(k.h); return -1; }
    got++;
  }
  free(k.h);
  l->n = k.rest;
  l->min = k.rest ? k.restmin : ~0ULL;
  return got;
}

/* later_compact: the file again, without what is in memory. */
struct compact {
  const struct mtab *t;
  buf out;
  int alarm;
  size_t n;
  unsigned long long now, wall;
  uint32_t min;
};

static int compact_one(void *ctx, char **f, const char *line, size_t len)
{
  struct compact *c = ctx;
  struct mrec r;
  int k;

  if (later_parse(f, c->now, c->wall, &r) < 0 || mt_find(c->t, r.qid, r.n) != NIL) return 0;
  if (c->alarm) {
    /* Due now on each channel with work, as SIGALRM makes the messages
     * in memory: the rest of the line is kept. */
    for (k = 3; k <= 4; k++) if (strcmp(f[k], "-")) f[k] = "0";
    if (buf_puts(&c->out, "m") < 0) return -1;
    for (k = 1; k < 8; k++) if (buf_puts(&c->out, " ") < 0 || buf_puts(&c->out, f[k]) < 0) return -1;
    if (buf_puts(&c->out, "\n") < 0) return -1;
    r.key = t32(c->now);
  } else if (buf_put(&c->out, line, len) < 0) return -1;
  c->n++;
  if (r.key < c->min) c->min = r.key;
  return 0;
}

int later_compact(struct later *l, const struct mtab *t, int alarm, unsigned long long now,
                  unsigned long long wall)
{
  static char space[65536];
  struct compact c;
  int fd, e;

  if (unlink(LATER_TMP) < 0 && errno != ENOENT) return -1;
  fd = open(LATER_TMP, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  c.t = t;
  buf_init(&c.out, fd, space, sizeof space);
  c.alarm = alarm;
  c.n = 0;
  c.now = now;
  c.wall = wall;
  c.min = T_NEVER;
  if (later_each(compact_one, &c) < 0) {
    if (errno != ENOENT) goto fail;
    close(fd);
    unlink(LATER_TMP);
    l->n = 0;
    l->min = ~0ULL;
    return 0;
  }
  if (buf_flush(&c.out) < 0 || fsync(fd) < 0) goto fail;
  if (close(fd) < 0) { fd = -1; goto fail; }
  fd = -1;
  if (rename(LATER_TMP, LATER) < 0 || fsync_dir(LATER_DIR) < 0) goto fail;
  l->n = c.n;
  l->min = c.n ? c.min : ~0ULL;
  return 0;
fail:
  e = errno;
  if (fd >= 0) close(fd);
  unlink(LATER_TMP);
  errno = e;
  return -1;
}

/* later_known: which of a sorted array of qids have a line. */
struct known { const char (*q)[QF_QID_MAX]; size_t n; unsigned char *mark; };

static int qidcmp(const void *a, const void *b) { return strcmp(a, b); }

static int known_one(void *ctx, char **f, const char *line, size_t len)
{
  struct known *k = ctx;
  const char (*hit)[QF_QID_MAX];
  (void)line; (void)len;
  if (strlen(f[1]) >= QF_QID_MAX) return 0;
  hit = bsearch(f[1], k->q, k->n, sizeof *k->q, qidcmp);
  if (hit) k->mark[hit - k->q] = 1;
  return 0;
}

void later_sort(char (*q)[QF_QID_MAX], size_t n) { qsort(q, n, sizeof *q, qidcmp); }

int later_known(const char (*q)[QF_QID_MAX], size_t n, unsigned char *known)
{
  struct known k = { q, n, known };
  memset(known, 0, n);
  if (later_each(known_one, &k) < 0) return errno == ENOENT ? 0 : -1;
  return 0;
}
