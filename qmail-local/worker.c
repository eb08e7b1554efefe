/* qmail-lspawn's delivery worker (qmail-local/worker.h). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "deliver.h"
#include "fdpass.h"
#include "ids.h"
#include "job.h"
#include "spawnreq.h"
#include "worker.h"

/* Why the worker cannot deliver as uid and gid, or 0 once it does. */
static const char *become(unsigned long long uid, unsigned long long gid, int root)
{
  if (uid == 0) return "refusing to deliver as root: fix users/assign";
  if (!root) return uid == geteuid() ? 0 : "single-uid mode: cannot deliver to another uid";
  if (ids_drop((uid_t)uid, (gid_t)gid) < 0) return "cannot switch to the recipient's uid";
  return 0;
}

static mode_t mask;         /* the umask the worker started with */
static unsigned long prog_timeout;

static void reset(void)
{
  sigset_t none;

  close_range(3, ~0u, 0);
  if (chdir("/") < 0) _exit(111);
  umask(mask);
  alarm(0);
  signal(SIGALRM, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, 0);
}

/* Ends a job: the state is reset before the answer, so that a worker
 * whose answer is in is already what it will be when the next job comes. */
static void answer(char c, const char *text, size_t n)
{
  char item[SPAWN_TEXT + 2];

  reset();
  if (!n) {
    text = "delivery gave no report";
    n = strlen(text);
  }
  if (pkt_send(0, item, spawnreq_item(item, c, text, n), -1) < 0) _exit(111);
}

static void refuse(const char *why) { answer('Z', why, strlen(why)); }

/* One job of n bytes at p, the message on fd. */
static void one(char *p, size_t n, int fd, unsigned long long uid, unsigned long long gid,
                const char *defaultdelivery)
{
  static str report;       /* deliver() keeps it to one short line */
  struct local_job j;
  int code;

  if (fd < 0 || job_parse(p, n, &j) < 0) { refuse("bad delivery job"); return; }
  if (j.uid != uid || j.gid != gid) { refuse("delivery job for another uid or gid"); return; }
  j.d.fd = fd;
  j.d.defaultdelivery = defaultdelivery;
  j.d.timeout = prog_timeout;
  code = deliver(&j.d, &report);
  answer(code == 0 ? 'K' : code == 100 ? 'D' : 'Z', report.s, report.len);
}

void worker_serve(unsigned long long uid, unsigned long long gid, const char *defaultdelivery,
                  unsigned long timeout, int root)
{
  static char p[JOB_MAX];
  const char *broken = become(uid, gid, root);
  ssize_t n;
  int fd;

  prog_timeout = timeout;
  mask = umask(077);
  reset();
  for (;;) {
    n = pkt_recv(0, p, sizeof p, &fd);
    if (n == 0) _exit(0);
    if (n < 0 && errno != EMSGSIZE) _exit(111);
    if (broken) {
      refuse(broken);
      _exit(111);
    }
    if (n < 0) refuse("delivery job too long");
    else one(p, (size_t)n, fd, uid, gid, defaultdelivery);
  }
}
