/* qmail-queue: the only program that writes new messages into the queue.
 *
 * Interface (qmail-queue(8)): the message on fd 0, the envelope on fd 1 as
 * "F<sender>\0" then "T<recipient>\0" for each recipient, then "\0". No
 * output; the exit code is the whole answer:
 *
 *    0  queued
 *   11  an address is longer than QF_ADDR_MAX bytes        (permanent)
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
 *       recipients, or EOF before the final "\0"
 * Any failure leaves nothing in mess/ and removes what it made in tmp/.
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
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>     /* renameat2 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "qfile.h"

/* Below qmail-send's 36-hour limit for tmp/ debris, as in qmail. */
#define DEATH 86400

/* The file image is built here and written in few large writes; a small
 * message, its envelope and its Received line take one write. */
static char out[128 * 1024];
static size_t outlen;
static int qfd = -1;

static char tmpname[4 + QF_QID_MAX];    /* "tmp/<qid>" */
static char messname[5 + QF_QID_MAX];   /* "mess/<qid>" */
static volatile sig_atomic_t made;      /* tmpname is ours to remove */

static void die(int code)
{
  if (made) unlink(tmpname);
  _exit(code);
}

static void timeout(int sig)
{
  (void)sig;
  die(52);
}

/* Appends u in decimal, at least width digits, at dst; returns the end. */
static char *fmtu(char *dst, unsigned long long u, unsigned width)
{
  char tmp[24];
  size_t i = sizeof tmp;
  do { tmp[--i] = (char)('0' + u % 10); u /= 10; } while (u || sizeof tmp - i < width);
  memcpy(dst, tmp + i, sizeof tmp - i);
  return dst + (sizeof tmp - i);
}

static void flush(void)
{
  if (fd_write_all(qfd, out, outlen, 0) < 0) die(53);
  outlen = 0;
}

/* n is at most a record (5 + 1 + QF_ADDR_MAX bytes), far below sizeof out. */
static void put(const void *p, size_t n)
{
  if (n > sizeof out - outlen) flush();
  memcpy(out + outlen, p, n);
  outlen += n;
}

static void putu(unsigned long long u, unsigned width)
{
  char tmp[24];
  put(tmp, (size_t)(fmtu(tmp, u, width) - tmp));
}

static void puts_(const char *s) { put(s, strlen(s)); }

/* "Received: (qmail-queue <pid> invoked by uid <uid>); <RFC 5322 date>".
 * The date is in UTC and computed here: gmtime would read /etc/localtime
 * (seven system calls) and the zone would come from the caller anyway.
 * Civil date from a day count: the proleptic Gregorian calendar in eras
 * of 400 years (146097 days), with years starting on March 1st. */
static void received(long long t, pid_t pid)
{
  static const char wday[] = "ThuFriSatSunMonTueWed";   /* day 0 was a Thursday */
  static const char mon[] = "MarAprMayJunJulAugSepOctNovDecJanFeb";
  long long days = t / 86400, secs = t % 86400, z, era, doe, yoe, doy, mp, y;

  if (secs < 0) { secs += 86400; days--; }
  z = days + 719468;                        /* days since 0000-03-01 */
  era = (z >= 0 ? z : z - 146096) / 146097;
  doe = z - era * 146097;                   /* [0, 146096] */
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;   /* [0, 399] */
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                  /* [0, 365] */
  mp = (5 * doy + 2) / 153;                 /* month from March, [0, 11] */
  y = yoe + era * 400 + (mp >= 10);

  puts_("Received: (qmail-queue ");
  putu((unsigned long long)pid, 0);
  puts_(" invoked by uid ");
  putu((unsigned long long)getuid(), 0);
  puts_("); ");
  put(wday + 3 * (((days % 7) + 7) % 7), 3);
  puts_(", ");
  putu((unsigned long long)(doy - (153 * mp + 2) / 5 + 1), 0);
  put(" ", 1);
  put(mon + 3 * mp, 3);
  put(" ", 1);
  putu(y > 0 ? (unsigned long long)y : 0, 4);
  put(" ", 1);
  putu((unsigned long long)secs / 3600, 2);
  put(":", 1);
  putu((unsigned long long)secs / 60 % 60, 2);
  put(":", 1);
  putu((unsigned long long)secs % 60, 2);
  puts_(" +0000\n");
}

/* Copies fd 0 into the image; returns the message's length. */
static unsigned long long message(void)
{
  unsigned long long n = 0;
  ssize_t r;

  for (;;) {
    if (outlen == sizeof out) flush();
    r = read(0, out + outlen, sizeof out - outlen);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die(54);
    if (r == 0) return n;
    outlen += (size_t)r;
    n += (unsigned long long)r;
  }
}

static char envarray[4096];
static buf env = BUF_INIT(1, envarray, sizeof envarray);

/* Next envelope byte; EOF anywhere in the envelope is a format error. */
static unsigned char next(void)
{
  ssize_t r;
  if (env.pos == env.end) {
    r = buf_fill(&env);
    if (r < 0) die(55);
    if (r == 0) die(91);
  }
  return (unsigned char)env.x[env.pos++];
}

/* Reads one address up to its "\0" and appends it as a record of the
 * given type, with a state byte first when state is non-zero. */
static void address(char type, char state, int may_be_empty)
{
  char a[1 + QF_ADDR_MAX];
  unsigned char h[5];
  size_t n = 0, len, max = QF_ADDR_MAX;
  unsigned char c;

  if (state) { a[n++] = state; max++; }
  while ((c = next()) != 0) {
    if (c == '\r' || c == '\n') die(91);
    if (n == max) die(11);
    a[n++] = (char)c;
  }
  if (!may_be_empty && n == (state ? 1u : 0u)) die(91);
  len = n;
  h[0] = (unsigned char)type;
  h[1] = (unsigned char)(len >> 24);
  h[2] = (unsigned char)(len >> 16);
  h[3] = (unsigned char)(len >> 8);
  h[4] = (unsigned char)len;
  put(h, sizeof h);
  put(a, len);
}

static void envelope(void)
{
  const char *utf8 = getenv("SMTPUTF8");
  static const unsigned char opt[] = { 'O', 0, 0, 0, 8, 'S', 'M', 'T', 'P', 'U', 'T', 'F', '8' };
  static const unsigned char end[] = { 'E', 0, 0, 0, 0 };
  unsigned long nrcpt = 0;
  unsigned char c;

  if (next() != 'F') die(91);
  address('F', 0, 1);
  if (utf8 && *utf8) put(opt, sizeof opt);
  while ((c = next()) != 0) {
    if (c != 'T' || ++nrcpt > QF_RCPT_MAX) die(91);
    address('R', QF_PENDING, 0);
  }
  if (!nrcpt) die(91);
  put(end, sizeof end);
}

/* "<dir>/<seconds>.<microseconds>.<pid>": at most 20 + 1 + 6 + 1 + 10
 * bytes after the slash, under QF_QID_MAX - 1, so both names fit. */
static void name(char *dst, const char *dir, const struct timespec *t, pid_t pid)
{
  size_t n = strlen(dir);
  memcpy(dst, dir, n);
  dst += n;
  *dst++ = '/';
  dst = fmtu(dst, (unsigned long long)t->tv_sec, 0);
  *dst++ = '.';
  dst = fmtu(dst, (unsigned long long)t->tv_nsec / 1000, 6);
  *dst++ = '.';
  dst = fmtu(dst, (unsigned long long)pid, 0);
  *dst = 0;
}

int main(void)
{
  struct sigaction sa;
  struct timespec now;
  unsigned char hdr[QF_HDR];
  unsigned long long msg_len;
  pid_t pid = getpid();
  int dfd;

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
  name(tmpname, "tmp", &now, pid);
  name(messname, "mess", &now, pid);
  qfd = open(tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0660);
  if (qfd < 0) die(64);
  made = 1;
  if (fchmod(qfd, 0660) < 0) die(64);   /* the umask took the group bits */

  memset(out, 0, QF_HDR);   /* reserved; the header is written last */
  outlen = QF_HDR;
  received((long long)now.tv_sec, pid);
  msg_len = outlen - QF_HDR;
  msg_len += message();
  envelope();
  flush();
  qf_header(hdr, msg_len);
  if (pwrite(qfd, hdr, QF_HDR, 0) != QF_HDR) die(53);
  if (fsync(qfd) < 0) die(53);

  /* The commit. RENAME_NOREPLACE: a name in mess/ is never overwritten. */
  if (renameat2(AT_FDCWD, tmpname, AT_FDCWD, messname, RENAME_NOREPLACE) < 0) die(64);
  made = 0;
  dfd = open("mess", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) < 0) _exit(53);

  /* A full fifo (qmail-send stalled) just loses this notice: qmail-send
   * rescans mess/ when it finds the fifo was full. */
  dfd = open("lock/trigger", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (dfd >= 0) {
    size_t n = strlen(messname + 5);
    ssize_t w;
    messname[5 + n] = '\n';
    w = write(dfd, messname + 5, n + 1);
    (void)w;
  }
  _exit(0);
}
