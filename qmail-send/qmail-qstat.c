/* qmail-qstat: counts of what the queue holds; see qmail-qstat(8).
 *
 * Unreadable means by qmail-send (qf_send_cannot, the check qmail-qfix
 * reports as "unusable"), whoever runs qmail-qstat: as root it could
 * read them all. qmail-send's ids come from control/ids. Read-only. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "log.h"
#include "qfile.h"
#include "qtool.h"
#include "send.h"

#define PROG "qmail-qstat"

/* Every write to stdout is checked: a listing cut short must not exit 0. */
static void wr(int r)
{
  if (r < 0) log_fatal(PROG, 111, "cannot write to stdout");
}

struct counts {
  struct rw rw;
  str scratch;
  unsigned long long msgs, local, remote, failed, done, damaged;
  uid_t send_uid;
  gid_t queue_gid;
};

static int count(void *ctx, const char *qid, int fd, const qf_env *e)
{
  struct counts *c = ctx;
  struct stat st;
  size_t i;

  (void)qid;
  if (!e) { c->damaged++; return 0; }
  /* Root reads any file; what counts is whether qmail-send can. */
  if (fstat(fd, &st) < 0 || qf_send_cannot(&st, c->send_uid, c->queue_gid)) { c->damaged++; return 0; }
  c->msgs++;
  for (i = 0; i < e->nrcpt; i++) {
    const struct qf_rcpt *r = e->rcpt + i;
    int ch;
    switch (r->state) {
    case QF_PENDING:
      ch = rw_classify(&c->rw, r->addr, r->len, &c->scratch);
      if (ch < 0) return -1;
      if (ch == CH_LOCAL) c->local++; else c->remote++;
      break;
    case QF_FAILED: c->failed++; break;
    default: c->done++; break;
    }
  }
  return 0;
}

/* Files in queue/tmp/ other than qmail-queued's unused pool names
 * (empty), or -1. */
static long long writing(void)
{
  DIR *d = opendir("queue/tmp");
  struct dirent *de;
  struct stat st;
  long long n = 0;

  if (!d) return -1;
  for (;;) {
    errno = 0;
    de = readdir(d);
    if (!de) break;
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && qf_pool_unused(de->d_name, &st))
      continue;
    n++;
  }
  if (errno) n = -1;
  closedir(d);
  return n;
}

static void line(buf *b, const char *label, unsigned long long n)
{
  wr(buf_puts(b, label));
  wr(buf_putu(b, n));
  wr(buf_puts(b, "\n"));
}

int main(int argc, char **argv)
{
  static char space[4096];
  buf out = BUF_INIT(1, space, sizeof space);
  struct counts c = { RW_INIT, STR_INIT, 0, 0, 0, 0, 0, 0, 0, 0 };
  str ids = STR_INIT;
  size_t other = 0;
  long long tmp;

  (void)argv;
  if (argc > 1) log_usage(PROG, "usage: qmail-qstat (no arguments)");
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  if (rw_load(&c.rw) < 0) log_fatal(PROG, 111, "cannot read control/me, locals or virtualdomains");
  if (control_lines(&ids, "control/ids") <= 0 || qf_ids_role(&ids, "send", &c.send_uid, &c.queue_gid) < 0)
    log_fatal(PROG, 111, "cannot read qmail-send's ids in control/ids");
  str_free(&ids);
  if (qtool_each(count, &c, &other) < 0) log_fatal(PROG, 111, "cannot read queue/mess");
  tmp = writing();
  if (tmp < 0) log_fatal(PROG, 111, "cannot read queue/tmp");

  line(&out, "messages in queue: ", c.msgs);
  wr(buf_puts(&out, "recipients pending: "));
  wr(buf_putu(&out, c.local + c.remote));
  wr(buf_puts(&out, " (local "));
  wr(buf_putu(&out, c.local));
  wr(buf_puts(&out, ", remote "));
  wr(buf_putu(&out, c.remote));
  wr(buf_puts(&out, ")\n"));
  line(&out, "recipients failed, bounce not yet sent: ", c.failed);
  line(&out, "recipients done, message not yet removed: ", c.done);
  line(&out, "messages being written (queue/tmp): ", (unsigned long long)tmp);
  line(&out, "damaged or unreadable queue files: ", c.damaged + other);
  if (buf_flush(&out) < 0) log_fatal(PROG, 111, "cannot write to stdout");
  rw_free(&c.rw);
  str_free(&c.scratch);
  return 0;
}
