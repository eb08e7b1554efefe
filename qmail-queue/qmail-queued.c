/* qmail-queued: qmail-queue as one resident process, so that qmail-smtpd
 * does not start a process per message. Usage, exit codes and log events:
 * qmail-queued(8); the protocol: lib/qqclient.h. Runs as the queue uid,
 * never as root; its socket is mode 0666, as qmail-queue is setuid for
 * everyone.
 *
 * Each message is written by qwrite.c, qmail-queue's own code: the same
 * files, the same checks, the same exit codes (qmail-queue.c's table).
 * Its Received: line names qmail-queued's pid, which ends every qid it
 * makes, and the caller's uid and pid, from SO_PEERCRED.
 *
 * One poll() loop serves every client; each has its own state and its own
 * non-blocking pipes, so a slow client holds one slot and never delays
 * the others. Only the queue files are written with blocking calls (local
 * disk). Limits: QD_CLIENTS at once (fewer under a low descriptor limit;
 * a newcomer beyond them gets 'B' and runs qmail-queue itself, so a local
 * user holding slots costs the others a process each, not their mail);
 * QD_HELLO seconds to pass the descriptors; DEATH seconds in all, as
 * qmail-queue's timer (52).
 *
 * Commit, once per turn of the loop for every message complete in it:
 * each file is finished (header, writeback started), then each is fsynced
 * and renamed into mess/ (qwrite.h says why in two passes), each
 * qid goes to the trigger, each client gets 0 and its qid, then mess/ is
 * fsynced once for all of them in a child (qsync.h), while the loop goes
 * on. The files are written in names of a
 * pool (qpool.h) whose entries are on disk before use, so one fsync
 * stands between a message's last byte and its answer, and a power cut
 * that undoes a rename leaves the file whole under its pool name, for
 * qp_recover at the next start. A kill at any instant leaves at most pool
 * files: those not finished are removed at the next start, those fsynced
 * but not yet renamed are queued then. Every client not yet answered sees
 * its socket close: a temporary failure. A message fsynced but not yet
 * answered may then be delivered and, retried by its sender, delivered
 * twice: the safe side, as qmail-queue's 53 after its rename.
 *
 * qids are unique although they all end in this pid: each takes a time
 * (microseconds) later than the previous one's, and a check of mess/ at
 * the start and RENAME_NOREPLACE into mess/ refuse any clash with a file
 * left by an earlier process.
 *
 * SIGTERM: the socket stops listening (clients then run qmail-queue);
 * clients in flight get QD_GRACE seconds to finish, then are aborted.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>    /* PIPE_BUF */
#include <poll.h>
#include <signal.h>
#include <stdio.h>     /* rename */
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "date.h"
#include "control.h"
#include "fdpass.h"
#include "log.h"
#include "qpool.h"
#include "qspace.h"
#include "qqclient.h"
#include "qsync.h"
#include "qwrite.h"
#include "ready.h"
#include "seqsock.h"

#define PROG "qmail-queued"
#define QD_CLIENTS 256       /* at once; over three SMTP services' 40 each */
#define QD_OUT     32768     /* each client's image buffer */
#define QD_READS   8         /* reads per client per turn: fairness */
#define QD_HELLO   10        /* seconds from connect to both pipes */
#define QD_GRACE   10        /* seconds for clients in flight after SIGTERM */
#define DEATH      86400     /* seconds per message, as qmail-queue */
#define FDS_PER_CLIENT 4     /* socket, two pipes, the queue file */

enum { C_FREE, C_HELLO, C_MESSAGE, C_ENVELOPE, C_READY, C_COMMITTED };

struct client {
  int phase;
  int sock, mfd, efd;
  unsigned flags;
  struct ucred cred;
  unsigned long long deadline;     /* monotonic ms */
  struct qw w;
  char out[QD_OUT];
};

static struct client cl[QD_CLIENTS];
static size_t maxclients, nclients;
/* One past the highest slot in use: every loop over the clients stops
 * there. Slots are taken lowest first, so with few clients the loops
 * touch a few of these 33 KB slots, not all 256. */
static size_t top;
static int lfd = -1;
static unsigned long long accept_after;   /* monotonic ms: out of descriptors */
static pid_t mypid;
static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
  (void)sig;
  got_term = 1;
}

/* ---- one client */

static void drop(struct client *c)
{
  qw_abort(&c->w);
  if (c->mfd >= 0) close(c->mfd);
  if (c->efd >= 0) close(c->efd);
  close(c->sock);
  c->sock = c->mfd = c->efd = -1;
  c->phase = C_FREE;
  nclients--;
  while (top && cl[top - 1].phase == C_FREE) top--;
}

static void answer(struct client *c, const void *p, size_t n)
{
  if (pkt_send(c->sock, p, n, -1) < 0) {}   /* a client gone hears nothing */
}

/* Ends a client with an exit code; failures of the system are logged,
 * those of the client (its envelope, its pipes, its timer) are its own. */
static void fail(struct client *c, int code)
{
  unsigned char b = (unsigned char)code;
  if (code == 53 || code == 64 || code == 81) {
    log_begin(PROG, "error");
    log_ku("code", (unsigned)code);
    log_kv("qid", qw_qid(&c->w));
    log_kv("error", qspace_why(errno, "."));   /* says space or inodes */
    log_end();
  }
  answer(c, &b, 1);
  drop(c);
}

/* A time for a new qid, in microseconds later than the last one's. */
static void qid_time(struct timespec *t)
{
  static struct timespec last;
  clock_gettime(CLOCK_REALTIME, t);
  t->tv_nsec -= t->tv_nsec % 1000;
  if (t->tv_sec < last.tv_sec || (t->tv_sec == last.tv_sec && t->tv_nsec <= last.tv_nsec)) {
    *t = last;
    t->tv_nsec += 1000;
    if (t->tv_nsec >= 1000000000) { t->tv_sec++; t->tv_nsec = 0; }
  }
  last = *t;
}

/* A passed descriptor must be a pipe: a read from anything else could
 * block the whole server (a file on a stalled FUSE mount). */
static int take_pipe(int fd)
{
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) return -1;
  return fcntl(fd, F_SETFL, O_NONBLOCK);
}

/* Both read ends are here: a pool file (qpool.h), the Received: line, the
 * go-ahead. Anything wrong closes the socket without an answer: the
 * client runs qmail-queue instead, which reports its own error. */
static void start(struct client *c)
{
  char tmp[QP_NAME];
  struct timespec t;
  int code = 64, tries;

  if (take_pipe(c->mfd) < 0 || take_pipe(c->efd) < 0) { drop(c); return; }
  if (qp_take(tmp) == 0) {
    for (tries = 1;; tries++) {
      qid_time(&t);
      code = qw_create_in(&c->w, tmp, c->out, sizeof c->out, &t, mypid, c->flags & QQD_UTF8);
      if (!code || errno != EEXIST || tries == 8) break;
    }
  }
  if (code) {
    log_begin(PROG, "error"); log_kv("op", "create"); log_kv("error", qspace_why(errno, ".")); log_end();
    drop(c);
    return;
  }
  qw_received(&c->w, PROG, (unsigned long long)mypid, (unsigned long long)c->cred.uid,
              (unsigned long long)c->cred.pid, (long long)t.tv_sec);
  answer(c, "K", 1);
  c->phase = C_MESSAGE;
  c->deadline = mono_ms() + DEATH * 1000ULL;
}

/* Reads the two datagrams: {'Q', flags} and {'E'}, each with a pipe. */
static void hello(struct client *c)
{
  char b[4];
  int fd;
  ssize_t r;

  while (c->efd < 0) {
    r = pkt_recv(c->sock, b, sizeof b, &fd);
    if (r < 0 && errno == EAGAIN) return;
    if (fd >= 0 && c->mfd < 0 && r == 2 && b[0] == 'Q' && !((unsigned char)b[1] & ~QQD_UTF8)) {
      c->mfd = fd;
      c->flags = (unsigned char)b[1];
    } else if (fd >= 0 && c->mfd >= 0 && r == 1 && b[0] == 'E') {
      c->efd = fd;
    } else {
      if (fd >= 0) close(fd);
      drop(c);
      return;
    }
  }
  start(c);
}

/* Runs one reading step as far as the pipe allows this turn. */
static int step(struct client *c, int (*fn)(struct qw *, int), int fd)
{
  int k, r = QW_MORE;
  for (k = 0; k < QD_READS && r == QW_MORE; k++) r = fn(&c->w, fd);
  return r;
}

static void pump(struct client *c)
{
  int r;

  if (c->phase == C_MESSAGE) {
    r = step(c, qw_message, c->mfd);
    if (r == QW_MORE || r == QW_AGAIN) return;
    if (r != QW_END) { fail(c, r); return; }
    close(c->mfd);
    c->mfd = -1;
    c->phase = C_ENVELOPE;
  }
  r = step(c, qw_envelope, c->efd);
  if (r == QW_MORE || r == QW_AGAIN) return;
  if (r != QW_END) { fail(c, r); return; }
  close(c->efd);
  c->efd = -1;
  c->phase = C_READY;
}

/* The client spoke or hung up out of turn: it gave up, nothing is queued. */
static void sock_event(struct client *c)
{
  if (c->phase == C_HELLO) hello(c);
  else drop(c);
}

/* ---- the group commit */

/* Hands the qids of the turn's committed messages to f, as "<qid>\n"
 * lines, at most PIPE_BUF bytes a call. */
static void committed_lines(void (*f)(const char *, size_t))
{
  char lines[PIPE_BUF];
  size_t i, n = 0;

  for (i = 0; i < top; i++) {
    if (cl[i].phase != C_COMMITTED) continue;
    if (n > sizeof lines - (QF_QID_MAX + 1)) { f(lines, n); n = 0; }
    n += qw_line(&cl[i].w, lines + n);
  }
  if (n) f(lines, n);
}

static void commit(void)
{
  size_t i, done = 0;
  int code;

  for (i = 0; i < top; i++)
    if (cl[i].phase == C_READY && (code = qw_finish(&cl[i].w))) fail(cl + i, code);
  for (i = 0; i < top; i++) {
    if (cl[i].phase != C_READY) continue;
    if ((code = qw_commit(&cl[i].w))) fail(cl + i, code);
    else { cl[i].phase = C_COMMITTED; done++; }
  }
  if (!done) return;
  /* Each file is on disk under mess/ or, if a power cut undoes the
   * rename, under its pool name, and comes back from there under the
   * same qid (qpool.h). So qmail-send may start on it now, without
   * waiting for the fsync of mess/: a delivery that a power cut makes
   * repeat is recognised by its qid, as after a lost state byte. */
  committed_lines(qw_trigger);
  for (i = 0; i < top; i++) {
    char a[1 + QF_QID_MAX];
    size_t len;
    if (cl[i].phase != C_COMMITTED) continue;
    len = strlen(qw_qid(&cl[i].w));
    a[0] = 0;
    memcpy(a + 1, qw_qid(&cl[i].w), len);
    answer(cl + i, a, 1 + len);
  }
  /* mess/'s fsync, off the loop (qsync.h), bounds what recovery has to
   * bring back; the pool's next fsync of tmp/ waits for one (qpool.c). */
  committed_lines(qs_send);
  for (i = 0; i < top; i++)
    if (cl[i].phase == C_COMMITTED) drop(cl + i);
}

/* ---- the listening socket */

/* 'B', then the client's datagrams (and descriptors) are read and
 * dropped before the close: a close with unread data would reset the
 * connection, and the client would lose the 'B' with it. SHUT_RD makes
 * its later sends fail at once, so the reads end. */
static void busy(int s)
{
  char b[4];
  int fd;

  if (pkt_send(s, "B", 1, -1) < 0) {}
  shutdown(s, SHUT_RD);
  while (pkt_recv(s, b, sizeof b, &fd) > 0)
    if (fd >= 0) close(fd);
  close(s);
}

static void accept_all(void)
{
  struct client *c;
  socklen_t n;
  size_t i;
  int s;

  while ((s = accept4(lfd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
    if (nclients == maxclients) { busy(s); continue; }
    for (i = 0; cl[i].phase != C_FREE; i++) {}
    c = cl + i;
    n = sizeof c->cred;
    if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &c->cred, &n) < 0) { close(s); continue; }
    if (i >= top) top = i + 1;
    c->phase = C_HELLO;
    c->sock = s;
    c->mfd = c->efd = -1;
    c->w.fd = -1;
    c->w.made = 0;
    c->deadline = mono_ms() + QD_HELLO * 1000ULL;
    nclients++;
  }
  /* The listener stays readable: wait a second rather than spin. */
  if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
    log_begin(PROG, "error"); log_kv("op", "accept"); log_kv("error", strerror(errno)); log_end();
    accept_after = mono_ms() + 1000;
  }
}

static void expire(unsigned long long now)
{
  size_t i;
  for (i = 0; i < top; i++) {
    if (cl[i].phase == C_FREE || cl[i].deadline > now) continue;
    if (cl[i].phase == C_HELLO) drop(cl + i);
    else fail(cl + i, 52);
  }
}

/* ---- setup */

static int ready_fd = -1;

static void args(int argc, char **argv)
{
  if (argc == 1) return;
  if (argc != 2) log_usage(PROG, "usage: qmail-queued [-dFD] (FD from 3 to 1023)");
  ready_fd = ready_arg(PROG, argv[1], 3, "usage: qmail-queued [-dFD] (FD from 3 to 1023)");
}

/* Every client may hold FDS_PER_CLIENT descriptors; a few more are the
 * server's own and those of a commit (mess/, the trigger). */
static void fd_limit(void)
{
  struct rlimit rl;
  rlim_t want = QD_CLIENTS * FDS_PER_CLIENT + 16;

  maxclients = QD_CLIENTS;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
  if (rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < want) maxclients = rl.rlim_cur > 16 + FDS_PER_CLIENT ? (rl.rlim_cur - 16) / FDS_PER_CLIENT : 1;
}

/* The socket, 0666 (seqsock.h). */
static void listen_socket(void)
{
  const char *step;
  lfd = seqsock_listen(QQD_SOCKET ".new", QQD_SOCKET, &step);
  if (lfd < 0) {
    log_begin(PROG, "fatal");
    log_kv("msg", "cannot listen on " QQD_SOCKET);
    log_kv("step", step);
    log_kv("error", strerror(errno));
    log_end();
    _exit(111);
  }
}

static void setup(void)
{
  struct sigaction sa;
  sigset_t term;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, 0);
  sigaction(SIGXFSZ, &sa, 0);   /* a file size limit gives EFBIG: 53 */
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, 0);
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, 0);   /* delivered only inside ppoll */

  mypid = getpid();
  fd_limit();
  umask(077);
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  listen_socket();
  if (chdir("queue") < 0) log_fatal(PROG, 111, "cannot chdir to queue");
  qp_recover(qid_time, mypid);
  log_begin(PROG, "start"); log_ku("clients", maxclients); log_end();
  qs_start();
  ready_notify(PROG, ready_fd);
}

/* ---- the loop */

static struct pollfd pf[1 + 2 * QD_CLIENTS];
static struct client *owner[1 + 2 * QD_CLIENTS];

/* Fills pf; returns the number of entries and the poll timeout. */
static nfds_t gather(unsigned long long now, unsigned long long stop_by, int *timeout)
{
  unsigned long long next = stop_by;
  nfds_t n = 0;
  size_t i;

  if (lfd >= 0 && now >= accept_after) { pf[n].fd = lfd; pf[n].events = POLLIN; owner[n++] = 0; }
  else if (lfd >= 0 && accept_after < next) next = accept_after;
  for (i = 0; i < top; i++) {
    struct client *c = cl + i;
    if (c->phase == C_FREE) continue;
    pf[n].fd = c->sock; pf[n].events = POLLIN; owner[n++] = c;
    if (c->phase == C_MESSAGE || c->phase == C_ENVELOPE) {
      pf[n].fd = c->phase == C_MESSAGE ? c->mfd : c->efd;
      pf[n].events = POLLIN;
      owner[n++] = c;
    }
    if (c->deadline < next) next = c->deadline;
  }
  *timeout = next == ~0ULL ? -1 : next <= now ? 0 : next - now > 60000 ? 60000 : (int)(next - now);
  return n;
}

int main(int argc, char **argv)
{
  unsigned long long stop_by = ~0ULL, now;
  struct timespec ts;
  sigset_t none;
  nfds_t n, k;
  int timeout;

  args(argc, argv);
  setup();
  sigemptyset(&none);
  for (;;) {
    n = gather(mono_ms(), stop_by, &timeout);
    ts.tv_sec = timeout / 1000;
    ts.tv_nsec = (long)(timeout % 1000) * 1000000;
    if (ppoll(pf, n, timeout < 0 ? 0 : &ts, &none) < 0) {
      if (errno != EINTR) log_fatal(PROG, 111, "poll failed");
      for (k = 0; k < n; k++) pf[k].revents = 0;
    }
    if (got_term && lfd >= 0) {
      close(lfd);
      lfd = -1;
      stop_by = mono_ms() + QD_GRACE * 1000ULL;
      log_begin(PROG, "stopping"); log_ku("inflight", nclients); log_end();
    }
    for (k = 0; k < n; k++) {
      struct client *c = owner[k];
      if (!pf[k].revents) continue;
      if (!c) { if (lfd >= 0) accept_all(); continue; }
      if (c->phase == C_FREE) continue;
      if (pf[k].fd == c->sock) sock_event(c);
      else if (pf[k].fd == c->mfd || pf[k].fd == c->efd) pump(c);
    }
    commit();
    now = mono_ms();
    expire(now);
    if (lfd < 0 && (!nclients || now >= stop_by)) break;
  }
  for (k = top; k > 0; k--)
    if (cl[k - 1].phase != C_FREE) drop(cl + k - 1);
  qs_stop();
  log_begin(PROG, "stop"); log_end();
  return 0;
}
