/* qmail-remote host sender rcpt...: one SMTP delivery of fd 0, with the
 * client code qmail-rspawn's workers run (remote.h); see qmail-remote(8)
 * for the reports on stdout, the exit codes and the control files. */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "log.h"
#include "metrics.h"
#include "remote.h"

#define PROG "qmail-remote"
static struct rresult res[SPAWN_RCPTS];
static int reported;

static void report(struct rjob *j)
{
  char out[8192];
  buf b = BUF_INIT(1, out, sizeof out);
  size_t i, first = j->nrcpt;
  char msg = 'D';

  for (i = 0; i < j->nrcpt; i++) {
    char c = res[i].code == 'K' ? 'r' : res[i].code == 'D' ? 'h' : 's';
    if (buf_put(&b, &c, 1) < 0 || buf_put(&b, res[i].text, res[i].len) < 0 || buf_put(&b, "", 1) < 0) return;
  }
  /* The message report quotes the most telling recipient result. */
  for (i = 0; i < j->nrcpt; i++)
    if (res[i].code == 'K') { msg = 'K'; first = i; break; }
  for (i = 0; msg != 'K' && i < j->nrcpt; i++)
    if (res[i].code == 'Z') { msg = 'Z'; first = i; break; }
  if (first == j->nrcpt) first = 0;
  if (buf_put(&b, &msg, 1) < 0 || buf_put(&b, res[first].text, res[first].len) < 0 ||
      buf_put(&b, "", 1) < 0 || buf_flush(&b) < 0) return;
  reported = 1;
}

/* The message as a file readable with pread: fd 0 itself when it is a
 * regular file (from its current offset), else a copy in a memfd. */
static int message(struct rjob *j)
{
  struct stat st;
  char tmp[65536];
  ssize_t r;
  off_t off;
  int fd;

  if (fstat(0, &st) < 0) return -1;
  if (S_ISREG(st.st_mode) && (off = lseek(0, 0, SEEK_CUR)) >= 0 && off <= st.st_size) {
    j->msgfd = 0;
    j->msgoff = off;
    j->msglen = (unsigned long long)(st.st_size - off);
    return 0;
  }
  fd = memfd_create("message", MFD_CLOEXEC);
  if (fd < 0) return -1;
  j->msglen = 0;
  for (;;) {
    r = read(0, tmp, sizeof tmp);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    if (fd_write_all(fd, tmp, (size_t)r, 0) < 0) return -1;
    j->msglen += (unsigned long long)r;
  }
  j->msgfd = fd;
  j->msgoff = 0;
  return 0;
}

int main(int argc, char **argv)
{
  struct rjob j;
  size_t i;

  if (argc < 4) log_usage(PROG, "usage: qmail-remote host sender rcpt...");
  if ((size_t)(argc - 3) > SPAWN_RCPTS) log_die(PROG, EXIT_PERM, "too many recipients");
  signal(SIGPIPE, SIG_IGN);
  j.domain = argv[1];
  j.sender = argv[2];
  j.rcpt = (const char *const *)argv + 3;
  j.nrcpt = (size_t)(argc - 3);
  j.utf8 = 0;
  j.req = 0;
  j.keep = 0;
  j.res = res;
  j.done = report;
  if (prefix_chdir() < 0 || message(&j) < 0) {
    static const char why[] = "cannot read the message or chdir to the prefix";
    for (i = 0; i < j.nrcpt; i++) result_set(&res[i], 'Z', SPAWN_TAG_LOCAL, why, "", 0);
    report(&j);
  } else {
    metrics_open(MF_REMOTE);
    remote_deliver(&j);
  }
  return reported ? 0 : 111;
}
