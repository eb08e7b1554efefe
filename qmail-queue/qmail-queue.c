/* qmail-queue: the only program that writes new messages into the queue.
 *
 * Interface (qmail-queue(8)): the message on fd 0, the envelope on fd 1 as
 * "F<sender>\0" then "T<recipient>\0" for each recipient, then "\0". No
 * output; the exit code is the whole answer:
 *
 *    0  queued
 *   11  an address is longer than QF_ADDR_MAX bytes        (permanent)
 *   12  an address is not one RFC 5321 mailbox (qwrite.c: so no
 *       "> NOTIFY=..." can reach an SMTP command); a name without "@",
 *       the null and the double-bounce sender "#@[]" are allowed
 *                                                          (permanent)
 *   31  refused permanently: never used here; for filters   (permanent)
 *   51  out of memory: never used here, nothing is allocated
 *   52  timeout: still running DEATH seconds after start
 *   53  write error or disk full (also: fsync of mess/ failed after the
 *       rename, when the message may be queued; a retry can then deliver
 *       twice, which is the safe side of losing it)
 *   54  cannot read the message
 *   55  cannot read the envelope
 *   61  cannot chdir to the prefix; 62 to queue/
 *   64  cannot create or commit a file in the queue
 *   81  internal bug
 *   91  envelope format error: bad first byte, no recipient, an empty
 *       recipient, an address holding CR or LF, more than QF_RCPT_MAX
 *       recipients, a bad DSN parameter, or EOF before the final "\0"
 * Any failure leaves nothing in mess/ and removes what it made in tmp/.
 *
 * Extension: DSN parameters (RFC 3461, lib/dsnparam.h). The sender field
 * and each recipient field may be followed by "P<KEY>=<value>\0" fields
 * in their SMTP spelling: "PRET=HDRS\0", "PENVID=<xtext>\0" after F;
 * "PNOTIFY=SUCCESS,FAILURE\0", "PORCPT=rfc822;<xtext>\0" after a T, e.g.
 *   "Fa@x.test\0PRET=HDRS\0Tb@y.test\0PNOTIFY=NEVER\0Tc@y.test\0\0"
 * A filter that copies the envelope passes them on; one that rebuilds it
 * from F and T fields drops them, which only loses the DSN requests. A
 * bad value, a keyword in the wrong place or given twice: exit 91.
 *
 * Extension: when the environment variable SMTPUTF8 is non-empty, the
 * envelope gets an "SMTPUTF8" option record (RFC 6531: the sender asked
 * for it). It is the only thing read from the environment, and it is
 * harmless in a setuid program: any caller may send an SMTPUTF8 message
 * through qmail-smtpd anyway, and the flag only changes how deliveries
 * are offered to the next hop.
 *
 * Setuid qmailq in multi-uid installs: the caller controls the
 * environment, the descriptors and the signals. So every path is fixed
 * (prefix_chdir), the umask is set, nothing is written to fd 2, and
 * nothing is allocated: memory use is the two static buffers below.
 * If fd 0 or 1 is closed, the queue file takes its number; it is opened
 * write-only, so reading it fails and the run ends in 54 or 55.
 *
 * Life of a message (README): tmp/<qid> created O_EXCL, QF_HDR bytes
 * reserved, the Received: line, the message, the envelope records, the
 * header pwritten last; fsync; rename into mess/<qid>; fsync mess/;
 * "<qid>\n" into lock/trigger, so that qmail-send picks up this one file
 * without scanning mess/ (one write of under PIPE_BUF bytes: atomic, never
 * mixed with another writer's). Two fsyncs, one rename: the rename commits.
 * Those steps are qwrite.c's, shared with qmail-queued, which makes the
 * same files for qmail-smtpd without a process per message.
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
  if ((code == 53 || code == 64) && e) {
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

  if (clock_gettime(CLOCK_REALTIME, &now) < 0) die(81);
  if ((c = qw_create(&w, out, sizeof out, &now, pid, utf8 && *utf8))) die(c);
  qw_received(&w, "qmail-queue", (unsigned long long)pid, (unsigned long long)getuid(), 0,
              (long long)now.tv_sec);
  step(qw_message, 0, 54);
  step(qw_envelope, 1, 55);
  if ((c = qw_finish(&w)) || (c = qw_commit(&w))) die(c);
  if (qw_sync_mess()) _exit(53);

  qw_trigger(line, qw_line(&w, line));
  _exit(0);
}
