/* mbox delivery: append under flock, "From " line first, body lines that
 * start with "From " quoted, a blank line after; on any error the file is
 * cut back to its old size so a half-written message never stays. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "local.h"

#define LOCK_TIMEOUT 30

static void on_alarm(int sig) { (void)sig; }

/* Takes the lock, giving up after LOCK_TIMEOUT seconds. A filesystem
 * without flock (ENOLCK, EINVAL) is tolerated, as in qmail: O_APPEND
 * still keeps each write whole. 0, or -1 with errno EINTR on timeout. */
static int lock(int fd)
{
  struct sigaction sa, old;
  int r, e;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;   /* no SA_RESTART: the alarm interrupts flock */
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGALRM, &sa, &old) < 0) return -1;
  alarm(LOCK_TIMEOUT);
  r = flock(fd, LOCK_EX);
  e = errno;
  alarm(0);
  sigaction(SIGALRM, &old, 0);
  if (r < 0 && e != EINTR) return 0;
  errno = e;
  return r;
}

int mbox_deliver(const struct local_msg *m, const char *path, const struct lines *l, str *report)
{
  char out[8192];
  struct stat st;
  off_t size;
  buf b;
  int fd, lastnl, e;

  /* O_NONBLOCK: a FIFO in the mailbox's place must not hang the delivery. */
  fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0) return fail(report, 111, "cannot open the mailbox", errno);
  if (fstat(fd, &st) < 0) { e = errno; close(fd); return fail(report, 111, "cannot stat the mailbox", e); }
  if (!S_ISREG(st.st_mode)) { close(fd); return fail(report, 111, "the mailbox is not a regular file", 0); }
  if (fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) < 0 || lock(fd) < 0) {
    e = errno;
    close(fd);
    return fail(report, 111, e == EINTR ? "timed out locking the mailbox" : "cannot lock the mailbox", e == EINTR ? 0 : e);
  }
  size = lseek(fd, 0, SEEK_END);
  if (size < 0) { e = errno; close(fd); return fail(report, 111, "cannot seek in the mailbox", e); }

  buf_init(&b, fd, out, sizeof out);
  if (buf_put(&b, l->uf.s, l->uf.len) < 0 || buf_put(&b, l->rp.s, l->rp.len) < 0 ||
      buf_put(&b, l->dt.s, l->dt.len) < 0 || msg_copy(m, &b, 1, &lastnl) < 0 ||
      (!lastnl && buf_put(&b, "\n", 1) < 0) || buf_put(&b, "\n", 1) < 0 ||
      buf_flush(&b) < 0 || fsync(fd) < 0) {
    e = errno;
    if (ftruncate(fd, size) == 0) fsync(fd);
    close(fd);
    return fail(report, 111, "cannot write to the mailbox", e);
  }
  if (close(fd) < 0) return fail(report, 111, "cannot write to the mailbox", errno);
  return 0;
}
