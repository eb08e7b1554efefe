/* qmail-queue: the only program that writes new messages into the queue;
 * the interface is in qmail-queue(8). The message on fd 0, the envelope
 * ("F<sender>\0", "T<rcpt>\0" each with optional DSN "P<KEY>=<value>\0"
 * fields, then "\0") on fd 1; the exit code is the whole answer, the same
 * from qwrite.c's steps here and in qmail-queued:
 *
 *    0  queued                  52  timeout (DEATH)
 *   11  address too long        53  write error, disk full, fsync of mess/
 *   12  not an RFC 5321 mailbox 54  cannot read the message
 *   31  refused (filters only)  55  cannot read the envelope
 *   51  out of memory (unused)  61  chdir prefix; 62 chdir queue/
 *   64  create or commit        81  internal bug
 *   91  envelope format error
 * 11..40 are permanent, the others temporary. Any failure leaves nothing
 * in mess/ and removes what it made in tmp/.
 *
 * Setuid qmailq in multi-uid installs: the caller controls the
 * environment, the descriptors and the signals. So every path is fixed
 * (prefix_chdir), the umask is set, nothing is read from the environment
 * but SMTPUTF8, nothing is allocated (memory use is the two static
 * buffers below), and fd 2 gets one line only for 53 and 64. If fd 0 or
 * 1 is closed, the queue file takes its number; it is opened write-only,
 * so reading it fails and the run ends in 54 or 55.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "qspace.h"
#include "qwrite.h"

/* Below qmail-send's 36-hour limit for tmp/ debris, as in qmail. */
#define DEATH 86400

/* The file image is built here and written in few large writes; a small
 * message, its envelope and its Received line take one write. */
static char out[128 * 1024];
static struct qw w;

/* A write or create failure (53, 64) is also logged on stderr, naming
 * what ran out on a full disk: the exit code alone cannot (the caller's
 * log, qmail-send's for a bounce, has the line). */
static void die(int code)
{
  int e = errno;
  qw_abort(&w);
  if ((code == QQ_WRITE || code == QQ_CREATE) && e) {
    log_begin("qmail-queue", "error");
    log_ku("code", (unsigned)code);
    log_kv("error", qspace_why(e, "."));
    log_end();
  }
  _exit(code);
}

static void timeout(int sig)
{
  (void)sig;
  die(52);
}

/* Runs one reading step to its end. QW_AGAIN means the caller gave a
 * non-blocking descriptor with nothing in it: a read error, as always. */
static void step(int (*fn)(struct qw *, int), int fd, int readerr)
{
  int c;
  while ((c = fn(&w, fd)) == QW_MORE) {}
  if (c == QW_AGAIN) die(readerr);
  if (c != QW_END) die(c);
}

int main(void)
{
  struct sigaction sa;
  struct timespec now;
  const char *utf8 = getenv("SMTPUTF8");
  char line[QF_QID_MAX + 1];
  pid_t pid = getpid();
  int c;

  w.fd = -1;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = timeout;
  sigaction(SIGALRM, &sa, 0);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, 0);   /* the trigger's reader may vanish */
  sigaction(SIGXFSZ, &sa, 0);   /* a caller's RLIMIT_FSIZE gives EFBIG: 53 */
  alarm(DEATH);

  if (prefix_chdir() < 0) die(61);
  if (chdir("queue") < 0) die(62);
  umask(077);

  if (clock_gettime(CLOCK_REALTIME, &now) < 0) die(QQ_BUG);
  if ((c = qw_create(&w, out, sizeof out, &now, pid, utf8 && *utf8))) die(c);
  qw_received(&w, "qmail-queue", (unsigned long long)pid, (unsigned long long)getuid(), 0,
              (long long)now.tv_sec);
  step(qw_message, 0, QQ_READ_MSG);
  step(qw_envelope, 1, QQ_READ_ENV);
  if ((c = qw_finish(&w)) || (c = qw_commit(&w))) die(c);
  if (qw_sync_mess()) _exit(QQ_WRITE);

  qw_trigger(line, qw_line(&w, line));
  _exit(QQ_OK);
}
