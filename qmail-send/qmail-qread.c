/* qmail-qread: every queued message, oldest first, with its recipients;
 * see qmail-qread(8).
 *
 * A failed recipient shows the failure qmail-send recorded for its bounce
 * (queue/bounce/<qid>), a pending one its last deferral reason
 * (queue/sched/why.<qid>, why.c); both are readable by root only. Addresses and texts are
 * printed with control bytes escaped (qtool_put_safe). Read-only. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "log.h"
#include "qtool.h"
#include "send.h"

#define PROG "qmail-qread"

/* Every write to stdout is checked: a listing cut short must not exit 0. */
static void wr(int r)
{
  if (r < 0) log_fatal(PROG, 111, "cannot write to stdout");
}
/* A bounce file holds at most one record per recipient attempt, each
 * under a few KB; more than this is not read (the texts are then left
 * out, never guessed). */
#define BOUNCE_MAX (8u << 20)

static char space[8192];
static buf out = BUF_INIT(1, space, sizeof space);

struct ctx {
  struct rw rw;
  str scratch, bounce, why;
  unsigned long long now;
};

/* "3d04h", "2h03m", "4m10s", "12s": two units are enough to judge a queue. */
static void age(unsigned long long s)
{
  static const struct { unsigned long long n; char c; } u[] = {
    { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' } };
  size_t i;

  for (i = 0; i < 3 && s < u[i].n; i++) ;
  wr(buf_putu(&out, s / u[i].n));
  wr(buf_put(&out, &u[i].c, 1));
  if (i < 3) {
    unsigned long long r = s % u[i].n / u[i + 1].n;
    if (r < 10) wr(buf_puts(&out, "0"));
    wr(buf_putu(&out, r));
    wr(buf_put(&out, &u[i + 1].c, 1));
  }
}

/* The failure records of queue/bounce/<qid> into c->bounce; empty when
 * there is none or it cannot be read (not root). */
static void read_bounce(struct ctx *c, const char *qid)
{
  struct stat st;
  int fd;

  c->bounce.len = 0;
  if (str_copys(&c->scratch, "queue/bounce/") < 0 || str_cats(&c->scratch, qid) < 0 ||
      str_0(&c->scratch) < 0)
    return;
  fd = open(c->scratch.s, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= (off_t)BOUNCE_MAX) {
    /* Over the limit, the records read so far are shown. */
    if (fd_read_file(fd, &c->bounce, BOUNCE_MAX) < 0 && errno != EFBIG) c->bounce.len = 0;
  }
  close(fd);
}

/* The last deferral record of each recipient of queue/sched/why.<qid>
 * into w[0..n) (w[k].text 0 for none); nothing when the file is missing
 * or cannot be read. */
static void read_why(struct ctx *c, const char *qid, struct why_rec *w, size_t n)
{
  struct why_rec r;
  size_t pos = 0;

  if (why_read(qid, &c->why) < 0) return;
  while (why_next(c->why.s, c->why.len, &pos, &r)) if (r.k < n) w[r.k] = r;
}

static int show(void *ctx, const char *qid, int fd, const qf_env *e)
{
  struct ctx *c = ctx;
  unsigned long long birth = qf_qid_birth(qid);
  struct dsn_fail *f = 0;
  struct why_rec *w = 0;
  size_t i;

  (void)fd;
  wr(buf_puts(&out, qid));
  if (!e) {
    wr(buf_puts(&out, "  damaged: "));
    wr(buf_puts(&out, strerror(errno)));
    wr(buf_puts(&out, " (see qmail-qfix)\n"));
    return 0;
  }
  wr(buf_puts(&out, "  age "));
  age(c->now > birth ? c->now - birth : 0);
  wr(buf_puts(&out, "  "));
  wr(buf_putu(&out, e->msg_len));
  wr(buf_puts(&out, " bytes  from <"));
  qtool_put_safe(&out, e->sender, e->sender_len);
  wr(buf_puts(&out, ">"));
  if (e->opts & QF_OPT_UTF8) wr(buf_puts(&out, "  SMTPUTF8"));
  wr(buf_puts(&out, "\n"));

  read_bounce(c, qid);
  if (c->bounce.len && (f = calloc(e->nrcpt, sizeof *f)))
    dsn_parse(c->bounce.s, c->bounce.len, f, e->nrcpt);
  if ((w = calloc(e->nrcpt ? e->nrcpt : 1, sizeof *w))) read_why(c, qid, w, e->nrcpt);
  for (i = 0; i < e->nrcpt; i++) {
    const struct qf_rcpt *r = e->rcpt + i;
    int ch = rw_classify(&c->rw, r->addr, r->len, &c->scratch);
    if (ch < 0) { free(f); free(w); return -1; }
    wr(buf_puts(&out, ch == CH_LOCAL ? "  local   " : "  remote  "));
    wr(buf_puts(&out, r->state == QF_PENDING ? "pending  " : r->state == QF_FAILED ? "failed   " : "done     "));
    qtool_put_safe(&out, r->addr, r->len);
    if (r->state == QF_FAILED && f && f[i].rcpt) {
      wr(buf_puts(&out, ": "));
      qtool_put_safe(&out, f[i].text, f[i].tn);
    }
    if (r->state == QF_PENDING && w && w[i].text) {
      wr(buf_puts(&out, ": deferred "));
      age(c->now > w[i].t ? c->now - w[i].t : 0);
      wr(buf_puts(&out, " ago: "));
      qtool_put_safe(&out, w[i].text, w[i].tn);
    }
    wr(buf_puts(&out, "\n"));
  }
  free(f);
  free(w);
  return 0;
}

int main(int argc, char **argv)
{
  struct ctx c = { RW_INIT, STR_INIT, STR_INIT, STR_INIT, 0 };
  size_t other = 0;

  (void)argv;
  if (argc > 1) log_usage(PROG, "usage: qmail-qread (no arguments)");
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  if (rw_load(&c.rw) < 0) log_fatal(PROG, 111, "cannot read control/me, locals or virtualdomains");
  c.now = (unsigned long long)time(0);
  if (qtool_each(show, &c, &other) < 0) log_fatal(PROG, 111, "cannot read queue/mess");
  if (other) {
    wr(buf_putu(&out, other));
    wr(buf_puts(&out, " name(s) in queue/mess are not queue ids (see qmail-qfix)\n"));
  }
  if (buf_flush(&out) < 0) log_fatal(PROG, 111, "cannot write to stdout");
  rw_free(&c.rw);
  str_free(&c.scratch);
  str_free(&c.bounce);
  str_free(&c.why);
  return 0;
}
