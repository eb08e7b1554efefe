/* Writing one message into the queue (qwrite.h): qmail-queue's steps,
 * shared with qmail-queued. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>     /* renameat2 */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "addr.h"
#include "buf.h"
#include "date.h"
#include "dsnparam.h"
#include "str.h"
#include "qwrite.h"

/* The envelope parser's states. */
enum { E_FIRST, E_ADDR, E_NEXT, E_PARAM, E_DONE };

/* The sum covers what follows the header: the header holds it. The first
 * flush starts with the header's reserved bytes, and every buffer holds
 * at least them (len starts at QF_HDR). */
static int flush(struct qw *w)
{
  size_t skip = w->written ? 0 : QF_HDR;

  if (fd_write_all(w->fd, w->out, w->len, 0) < 0) return 53;
  XXH64_update(&w->sum, w->out + skip, w->len - skip);
  w->written += w->len;
  w->len = 0;
  return 0;
}

/* n is at most a record (5 + 1 + QF_ADDR_MAX bytes), below QW_OUT_MIN. */
static int put(struct qw *w, const void *p, size_t n)
{
  if (n > w->cap - w->len && flush(w)) return 53;
  memcpy(w->out + w->len, p, n);
  w->len += n;
  return 0;
}

static void putu(struct qw *w, unsigned long long u, unsigned width)
{
  char tmp[20];
  put(w, tmp, (size_t)(fmt_u(tmp, u, width) - tmp));
}

static void puts_(struct qw *w, const char *s) { put(w, s, strlen(s)); }

void qw_name(char *dst, const char *dir, const struct timespec *t, pid_t pid)
{
  size_t n = strlen(dir);
  memcpy(dst, dir, n);
  dst += n;
  *dst++ = '/';
  *qf_qid_fmt(dst, (unsigned long long)t->tv_sec, (uint32_t)(t->tv_nsec / 1000), (uint32_t)pid) = 0;
}

static void init(struct qw *w, char *out, size_t cap, const struct timespec *t, pid_t pid, int utf8)
{
  w->fd = -1;
  w->made = 0;
  w->out = out;
  w->cap = cap;
  w->written = w->msg_len = 0;
  w->utf8 = utf8;
  w->est = E_FIRST;
  w->nrcpt = 0;
  w->an = 0;
  qw_name(w->tmp, "tmp", t, pid);
  qw_name(w->mess, "mess", t, pid);
  XXH64_reset(&w->sum, 0);
  memset(out, 0, QF_HDR);                   /* reserved; the header is written last */
  w->len = QF_HDR;
}

int qw_create(struct qw *w, char *out, size_t cap, const struct timespec *t, pid_t pid, int utf8)
{
  init(w, out, cap, t, pid, utf8);
  w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0660);
  if (w->fd < 0) return 64;
  w->made = 1;
  if (fchmod(w->fd, 0660) < 0) return 64;   /* the umask took the group bits */
  return 0;
}

int qw_create_in(struct qw *w, const char *tmp, char *out, size_t cap,
                 const struct timespec *t, pid_t pid, int utf8)
{
  size_t n = strlen(tmp);

  init(w, out, cap, t, pid, utf8);
  if (n >= sizeof w->tmp) { errno = ENAMETOOLONG; return 64; }
  memcpy(w->tmp, tmp, n + 1);
  if (faccessat(AT_FDCWD, w->mess, F_OK, AT_SYMLINK_NOFOLLOW) == 0) { errno = EEXIST; return 64; }
  w->fd = open(w->tmp, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
  if (w->fd < 0) return 64;
  w->made = 1;
  return 0;
}

void qw_received(struct qw *w, const char *prog, unsigned long long pid,
                 unsigned long long uid, unsigned long long cpid, long long t)
{
  char date[DATE822_MAX];

  puts_(w, "Received: (");
  puts_(w, prog);
  put(w, " ", 1);
  putu(w, pid, 0);
  puts_(w, " invoked by uid ");
  putu(w, uid, 0);
  if (cpid) {
    puts_(w, " pid ");
    putu(w, cpid, 0);
  }
  puts_(w, "); ");
  put(w, date, date822(date, t));
  puts_(w, "\n");
}

int qw_message(struct qw *w, int fd)
{
  ssize_t r;

  if (w->len == w->cap && flush(w)) return 53;
  r = read(fd, w->out + w->len, w->cap - w->len);
  if (r < 0) return errno == EINTR ? QW_MORE : errno == EAGAIN ? QW_AGAIN : 54;
  if (r == 0) return QW_END;
  w->len += (size_t)r;
  return QW_MORE;
}

/* Appends a record of type t holding p[0..n), n < QW_OUT_MIN - 5. */
static int rec(struct qw *w, char t, const void *p, size_t n)
{
  unsigned char h[5];
  h[0] = (unsigned char)t;
  h[1] = (unsigned char)(n >> 24);
  h[2] = (unsigned char)(n >> 16);
  h[3] = (unsigned char)(n >> 8);
  h[4] = (unsigned char)n;
  if (put(w, h, sizeof h) || put(w, p, n)) return 53;
  return 0;
}

/* Whether the address a[0..n) can go out as one RFC 5321 path, so that
 * no address can carry a ">" and ESMTP parameters into qmail-remote's MAIL
 * or RCPT: a mailbox (lib/addr.h; UTF-8 allowed, as qmail-smtpd allows it
 * with SMTPUTF8 and a bounce to such a sender carries no flag), a local
 * name without "@" (qualified later by qmail-send), or for the sender the
 * null sender and qmail-send's double-bounce sender "#@[]". Length limits
 * are the queue's (QF_ADDR_MAX), not RFC 5321's. */
static int sendable(const char *a, size_t n, int sender)
{
  if (sender && (n == 0 || (n == 4 && !memcmp(a, "#@[]", 4)))) return 1;
  return addr_check(a, n, ADDR_UTF8 | ADDR_NOAT) != ADDR_BAD;
}

/* The address in w->a is complete: appends it as a record of type t. */
static int record(struct qw *w, char t) { return rec(w, t, w->a, w->an); }

/* The DSN parameter in w->a is complete ("P" fields, qmail-queue.c): RET
 * and ENVID after the sender, NOTIFY and ORCPT after a recipient, each at
 * most once there, become their records (qfile.h). 0, 91 or 53. */
static int param(struct qw *w)
{
  const char *v;
  size_t vn;
  unsigned bits;
  int kw;
  unsigned char nb;

  if (dsnp_split(w->a, w->an, &kw, &v, &vn, &bits)) return 91;
  if ((w->nrcpt == 0) != (kw == DSNP_RET || kw == DSNP_ENVID)) return 91;
  if (w->pseen & (1u << kw)) return 91;
  w->pseen |= 1u << kw;
  switch (kw) {
  case DSNP_RET: return rec(w, 'O', bits == 'F' ? "RET=FULL" : "RET=HDRS", 8);
  case DSNP_ENVID: return rec(w, 'V', v, vn);
  case DSNP_NOTIFY: nb = (unsigned char)bits; return rec(w, 'N', &nb, 1);
  default: return rec(w, 'Q', v, vn);
  }
}

/* One envelope byte. The sender's record is F (it may be empty); each
 * recipient's is R with QF_PENDING first (never empty). */
static int env_byte(struct qw *w, unsigned char c)
{
  static const unsigned char opt[] = { 'O', 0, 0, 0, 8, 'S', 'M', 'T', 'P', 'U', 'T', 'F', '8' };
  int sender = w->nrcpt == 0;
  size_t max = sender ? QF_ADDR_MAX : 1 + QF_ADDR_MAX;

  switch (w->est) {
  case E_FIRST:
    if (c != 'F') return 91;
    w->msg_len = w->written + w->len - QF_HDR;
    w->an = 0;
    w->pseen = 0;
    w->est = E_ADDR;
    return QW_MORE;
  case E_NEXT:
    if (c == 0) {
      if (!w->nrcpt) return 91;
      if (rec(w, 'E', qw_qid(w), strlen(qw_qid(w)))) return 53;
      w->est = E_DONE;
      return QW_END;
    }
    if (c == 'P') {
      w->an = 0;
      w->est = E_PARAM;
      return QW_MORE;
    }
    if (c != 'T' || w->nrcpt == QF_RCPT_MAX) return 91;
    w->nrcpt++;
    w->pseen = 0;
    w->a[0] = QF_PENDING;
    w->an = 1;
    w->est = E_ADDR;
    return QW_MORE;
  case E_PARAM:
    if (c == 0) {
      int r = param(w);
      w->est = E_NEXT;
      return r ? r : QW_MORE;
    }
    if (c == '\r' || c == '\n' || w->an == QF_ADDR_MAX) return 91;
    w->a[w->an++] = (char)c;
    return QW_MORE;
  default:   /* E_ADDR */
    if (c == 0) {
      if (!sender && w->an == 1) return 91;
      if (!sendable(w->a + !sender, w->an - !sender, sender)) return 12;
      if (record(w, sender ? 'F' : 'R')) return 53;
      if (sender && w->utf8 && put(w, opt, sizeof opt)) return 53;
      w->est = E_NEXT;
      return QW_MORE;
    }
    if (c == '\r' || c == '\n') return 91;
    if (w->an == max) return 11;
    w->a[w->an++] = (char)c;
    return QW_MORE;
  }
}

/* One read of up to 4096 bytes, as qmail-queue always did: what follows
 * the final "\0" in it is ignored. */
int qw_envelope(struct qw *w, int fd)
{
  char b[4096];
  ssize_t r, i;
  int c;

  if (w->est == E_DONE) return QW_END;
  r = read(fd, b, sizeof b);
  if (r < 0) return errno == EINTR ? QW_MORE : errno == EAGAIN ? QW_AGAIN : 55;
  if (r == 0) return 91;
  for (i = 0; i < r; i++) {
    c = env_byte(w, (unsigned char)b[i]);
    if (c != QW_MORE) return c;
  }
  return QW_MORE;
}

int qw_finish(struct qw *w)
{
  unsigned char hdr[QF_HDR];

  if (w->est != E_DONE) return 81;
  if (flush(w)) return 53;
  qf_header(hdr, w->msg_len, XXH64_digest(&w->sum));
  if (pwrite(w->fd, hdr, QF_HDR, 0) != QF_HDR) return 53;
  /* Only a head start for the fsync in qw_commit: an error shows there. */
  (void)sync_file_range(w->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  return 0;
}

int qw_commit(struct qw *w)
{
  if (fsync(w->fd) < 0) return 53;
  if (renameat2(AT_FDCWD, w->tmp, AT_FDCWD, w->mess, RENAME_NOREPLACE) < 0) return 64;
  w->made = 0;
  close(w->fd);
  w->fd = -1;
  return 0;
}

void qw_abort(struct qw *w)
{
  if (w->made) unlink(w->tmp);
  w->made = 0;
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
}

const char *qw_qid(const struct qw *w)
{
  return w->mess + 5;
}

size_t qw_line(const struct qw *w, char *dst)
{
  size_t n = strlen(w->mess + 5);
  memcpy(dst, w->mess + 5, n);
  dst[n] = '\n';
  return n + 1;
}

int qw_sync_mess(void)
{
  int fd = open("mess", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;
  if (fd < 0) return 53;
  r = fsync(fd);
  close(fd);
  return r < 0 ? 53 : 0;
}

void qw_trigger(const char *lines, size_t n)
{
  int fd = open("lock/trigger", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  ssize_t w;
  if (fd < 0) return;
  w = write(fd, lines, n);
  (void)w;
  close(fd);
}
