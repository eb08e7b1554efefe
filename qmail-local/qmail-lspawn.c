/* qmail-lspawn defaultdelivery: the local spawner (lib/spawnproto.h).
 *
 * Root and resident. Reads requests from qmail-send on fd 0 (a
 * SOCK_SEQPACKET socket, the queue file attached), checks every field,
 * and forks one child per delivery. The child finds the recipient's
 * account (users/cdb, then the system accounts, then the users/cdb
 * catch-all), drops to its uid and gid with no supplementary groups, and
 * calls deliver(): .qmail files are only ever parsed by the recipient's
 * uid. Its exit code and one-line report come back here and go to
 * qmail-send as one reply datagram.
 *
 * Not root: single-uid mode, where only deliveries to our own uid run.
 * fd 0 at EOF: wait for the children, send their replies, exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "deliver.h"
#include "fdpass.h"
#include "log.h"
#include "qfile.h"
#include "spawnproto.h"
#include "users.h"

#define PROG "qmail-lspawn"
#define NFIELDS (6 + 2 * SPAWN_RCPTS)

struct kid {
  pid_t pid;         /* 0: slot free */
  int rfd;           /* the child's report; -1 once at EOF */
  int exited, status;
  size_t n;
  char text[SPAWN_TEXT];
};

static struct kid kids[SPAWN_SLOTS];
static unsigned nkids;
static int selfpipe[2] = { -1, -1 };
static char pkt[SPAWN_PKT_MAX];
static const char *defaultdelivery;
static int root;

static void on_child(int sig)
{
  int e = errno;
  (void)sig;
  if (write(selfpipe[1], "", 1) < 0) {}   /* full pipe: a wakeup is pending */
  errno = e;
}

static void reply(unsigned long slot, const char *items, size_t n)
{
  str r = STR_INIT;

  if (str_catu(&r, slot) < 0 || str_catc(&r, 0) < 0 || str_catb(&r, items, n) < 0 ||
      pkt_send(0, r.s, r.len, -1) < 0) {
    log_begin(PROG, "reply_failed");
    log_ku("slot", slot);
    log_kv("error", strerror(errno));
    log_end();
  }
  str_free(&r);
}

/* A request that cannot run: 'Z' for each of its nrcpt recipients. */
static void refuse(unsigned long slot, unsigned long nrcpt, const char *why)
{
  str items = STR_INIT;
  unsigned long i;

  log_begin(PROG, "bad_request");
  log_ku("slot", slot);
  log_kv("msg", why);
  log_end();
  if (!nrcpt) nrcpt = 1;
  for (i = 0; i < nrcpt; i++)
    if (str_catc(&items, 'Z') < 0 || str_cats(&items, why) < 0 || str_catc(&items, 0) < 0) break;
  reply(slot, items.s, items.len);
  str_free(&items);
}

/* --- the child: lookup, privilege drop, deliver ------------------------ */

static void child_exit(int code, const char *text)
{
  size_t n = strlen(text);
  if (n > SPAWN_TEXT) n = SPAWN_TEXT;
  fd_write_all(1, text, n, 0);
  _exit(code);
}

/* A system account named by local up to its first '-', not root, whose
 * home directory exists and belongs to it. 1 found, 0 not. */
static int system_user(const char *local, size_t n, struct uent *u)
{
  const char *dash = memchr(local, '-', n);
  size_t un = dash ? (size_t)(dash - local) : n;
  char name[33];
  struct passwd *pw;
  struct stat st;

  if (!un || un >= sizeof name) return 0;
  memcpy(name, local, un);
  name[un] = 0;
  pw = getpwnam(name);
  if (!pw || pw->pw_uid == 0 || strcmp(pw->pw_name, name)) return 0;
  if (!root && pw->pw_uid != geteuid()) return 0;
  if (!pw->pw_dir || pw->pw_dir[0] != '/' || stat(pw->pw_dir, &st) < 0 ||
      !S_ISDIR(st.st_mode) || st.st_uid != pw->pw_uid) return 0;
  u->uid = pw->pw_uid;
  u->gid = pw->pw_gid;
  u->buf.len = 0;
  if (str_catb(&u->buf, name, un + 1) < 0 || str_cats(&u->buf, pw->pw_dir) < 0 ||
      str_catc(&u->buf, 0) < 0 || str_cats(&u->buf, dash ? "-" : "") < 0 || str_catc(&u->buf, 0) < 0 ||
      (dash && str_catb(&u->buf, dash + 1, n - un - 1) < 0) || str_catc(&u->buf, 0) < 0)
    child_exit(111, "out of memory");
  u->user = u->buf.s;
  u->home = u->user + strlen(u->user) + 1;
  u->dash = u->home + strlen(u->home) + 1;
  u->ext = u->dash + strlen(u->dash) + 1;
  return 1;
}

static void lookup(const char *local, size_t n, struct uent *u)
{
  struct cdb c;
  int fd, r = 0, have = 0;

  fd = open("users/cdb", O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) child_exit(111, "cannot open users/cdb");
  if (fd >= 0) {
    if (cdb_init(&c, fd) < 0) child_exit(111, "cannot read users/cdb");
    have = 1;
    r = users_find(&c, local, n, 0, u);
  }
  if (r == 0) r = system_user(local, n, u);
  if (r == 0 && have) r = users_find(&c, local, n, 1, u);
  if (r < 0) child_exit(111, errno == EINVAL ? "users/cdb holds a malformed entry" : "cannot read users/cdb");
  if (r == 0) child_exit(100, "no such user here");
  if (have) cdb_free(&c);
  if (fd >= 0) close(fd);
}

static void become(const struct uent *u)
{
  if (u->uid == 0) child_exit(111, "refusing to deliver as root: fix users/assign");
  if (!root) {
    if (u->uid != geteuid()) child_exit(111, "single-uid mode: cannot deliver to another uid");
    return;
  }
  if (setgroups(0, 0) < 0 || setgid((gid_t)u->gid) < 0 || setuid((uid_t)u->uid) < 0 ||
      getuid() != (uid_t)u->uid || geteuid() != (uid_t)u->uid || getegid() != (gid_t)u->gid)
    child_exit(111, "cannot switch to the recipient's uid");
}

/* Runs in the child: fd 0 becomes the message, fd 1 the report pipe,
 * nothing else of the parent's (the request socket, other children's
 * pipes) stays open. */
static void child(int msgfd, int wfd, const char *qid, unsigned long long off,
                  unsigned long long len, unsigned long long opts, const char *sender,
                  unsigned long long rcptno, char *rcpt)
{
  struct uent u = { 0, 0, 0, 0, 0, 0, STR_INIT };
  struct delivery d;
  str report = STR_INIT;
  char *at = strrchr(rcpt, '@'), *p;
  int code;

  signal(SIGCHLD, SIG_DFL);
  if (dup2(msgfd, 0) < 0 || dup2(wfd, 1) < 0) _exit(111);
  close_range(3, ~0u, 0);
  *at = 0;
  for (p = rcpt; *p; p++) if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  lookup(rcpt, (size_t)(at - rcpt), &u);
  become(&u);

  memset(&d, 0, sizeof d);
  d.user = u.user; d.home = u.home; d.dash = u.dash; d.ext = u.ext;
  d.local = rcpt; d.domain = at + 1; d.sender = sender;
  d.defaultdelivery = defaultdelivery;
  d.qid = qid; d.rcptno = (unsigned long)rcptno;
  d.fd = 0; d.off = off; d.len = len; d.opts = (unsigned)(opts & QF_OPT_UTF8);
  code = deliver(&d, &report);
  if (str_0(&report) < 0) child_exit(code, "");
  child_exit(code, report.s);
}

/* --- the parent: requests in, replies out ------------------------------ */

static int clean(const char *s, size_t n)
{
  return !memchr(s, '\n', n) && !memchr(s, '\r', n);
}

static void request(size_t n, int fd)
{
  const char *f[NFIELDS];
  size_t len[NFIELDS], nf = 0, i = 0;
  unsigned long long slot, off, mlen, opts, rcptno;
  unsigned long nrcpt;
  struct stat st;
  struct kid *k;
  int p[2];
  pid_t pid;

  /* Fields are NUL-terminated, so the last byte must be a NUL. */
  while (n && pkt[n - 1] == 0 && i < n && nf < NFIELDS) {
    f[nf] = pkt + i;
    len[nf] = strlen(pkt + i);
    i += len[nf++] + 1;
  }
  if (!n || pkt[n - 1] != 0 || nf < 1 || scan_ulong(f[0], len[0], &slot) < 0 ||
      slot >= SPAWN_SLOTS) {
    /* Without a slot there is nobody to answer. */
    log_begin(PROG, "bad_request");
    log_kv("msg", "malformed request or slot");
    log_end();
    if (fd >= 0) close(fd);
    return;
  }
  nrcpt = nf >= 6 ? (unsigned long)(nf - 6) / 2 : 0;
#define REFUSE(why) do { refuse((unsigned long)slot, nrcpt, why); if (fd >= 0) close(fd); return; } while (0)
  if (kids[slot].pid) REFUSE("slot already in use");
  if (i != n || nf < 8 || (nf - 6) % 2) REFUSE("malformed request");
  if (nf != 8) REFUSE("local delivery takes exactly one recipient");
  if (!qf_qid_ok(f[1], len[1])) REFUSE("bad qid");
  if (scan_ulong(f[2], len[2], &off) < 0 || scan_ulong(f[3], len[3], &mlen) < 0 ||
      scan_ulong(f[4], len[4], &opts) < 0 || scan_ulong(f[6], len[6], &rcptno) < 0 ||
      rcptno > QF_RCPT_MAX)
    REFUSE("bad number");
  if (len[5] > QF_ADDR_MAX || !clean(f[5], len[5])) REFUSE("bad sender");
  if (!len[7] || len[7] > QF_ADDR_MAX || !clean(f[7], len[7]) || !strchr(f[7], '@'))
    REFUSE("bad recipient");
  if (fd < 0) REFUSE("no message descriptor");
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) REFUSE("message is not a regular file");
  if (off > (unsigned long long)st.st_size || mlen > (unsigned long long)st.st_size - off)
    REFUSE("message window beyond the end of the file");
  if (pipe2(p, O_CLOEXEC) < 0) REFUSE("cannot make a pipe");
  pid = fork();
  if (pid < 0) { close(p[0]); close(p[1]); REFUSE("cannot fork"); }
  if (pid == 0) child(fd, p[1], f[1], off, mlen, opts, f[5], rcptno, (char *)f[7]);
  close(p[1]);
  close(fd);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  k = &kids[slot];
  k->pid = pid;
  k->rfd = p[0];
  k->exited = 0;
  k->n = 0;
  nkids++;
#undef REFUSE
}

/* Sends the reply once the child has both exited and closed its report. */
static void finish(unsigned long slot)
{
  struct kid *k = &kids[slot];
  char item[SPAWN_TEXT + 2];
  size_t i, n = k->n;
  char c;

  if (!k->pid || !k->exited || k->rfd >= 0) return;
  if (WIFEXITED(k->status) && WEXITSTATUS(k->status) == 0) c = 'K';
  else if (WIFEXITED(k->status) && WEXITSTATUS(k->status) == 100) c = 'D';
  else c = 'Z';
  item[0] = c;
  memcpy(item + 1, k->text, n);
  for (i = 1; i <= n; i++) if (!item[i]) item[i] = ' ';
  if (!n) {
    const char *t = WIFEXITED(k->status) ? "delivery process failed" : "delivery process crashed";
    n = strlen(t);
    memcpy(item + 1, t, n);
  }
  item[n + 1] = 0;
  reply(slot, item, n + 2);
  k->pid = 0;
  nkids--;
}

static void reap(void)
{
  char b[64];
  unsigned long s;
  int status;
  pid_t pid;

  while (read(selfpipe[0], b, sizeof b) > 0) {}
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
    for (s = 0; s < SPAWN_SLOTS; s++)
      if (kids[s].pid == pid) {
        kids[s].exited = 1;
        kids[s].status = status;
        finish(s);
        break;
      }
}

static void drain(unsigned long s)
{
  struct kid *k = &kids[s];
  char b[4096];
  ssize_t r;

  if (!k->pid || k->rfd < 0) return;
  r = read(k->rfd, b, sizeof b);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r <= 0) {
    close(k->rfd);
    k->rfd = -1;
    finish(s);
    return;
  }
  if ((size_t)r > SPAWN_TEXT - k->n) r = (ssize_t)(SPAWN_TEXT - k->n);
  memcpy(k->text + k->n, b, (size_t)r);
  k->n += (size_t)r;
}

int main(int argc, char **argv)
{
  static struct pollfd pf[SPAWN_SLOTS + 2];
  static unsigned long who[SPAWN_SLOTS + 2];
  struct sigaction sa;
  unsigned long s;
  int eof = 0, np, i, fd;
  ssize_t r;

  if (argc != 2 || !*argv[1]) log_fatal(PROG, 111, "usage: qmail-lspawn defaultdelivery");
  defaultdelivery = argv[1];
  /* fds 1 and 2 must be open, or a pipe could take their number. */
  while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2) {}
  if (fd > 2) close(fd);
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  root = geteuid() == 0;
  if (pipe2(selfpipe, O_CLOEXEC | O_NONBLOCK) < 0) log_fatal(PROG, 111, "cannot make a pipe");
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_child;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGCHLD, &sa, 0) < 0) log_fatal(PROG, 111, "cannot catch SIGCHLD");
  signal(SIGPIPE, SIG_IGN);

  for (;;) {
    if (eof && !nkids) return 0;
    np = 0;
    if (!eof) { pf[np].fd = 0; pf[np].events = POLLIN; who[np++] = SPAWN_SLOTS; }
    pf[np].fd = selfpipe[0]; pf[np].events = POLLIN; who[np++] = SPAWN_SLOTS + 1;
    for (s = 0; s < SPAWN_SLOTS; s++)
      if (kids[s].pid && kids[s].rfd >= 0) { pf[np].fd = kids[s].rfd; pf[np].events = POLLIN; who[np++] = s; }
    if (poll(pf, (nfds_t)np, -1) < 0) {
      if (errno == EINTR) continue;
      log_fatal(PROG, 111, "poll failed");
    }
    for (i = 0; i < np; i++) {
      if (!pf[i].revents) continue;
      if (who[i] == SPAWN_SLOTS + 1) { reap(); continue; }
      if (who[i] < SPAWN_SLOTS) { drain(who[i]); continue; }
      r = pkt_recv(0, pkt, sizeof pkt, &fd);
      if (r > 0) { request((size_t)r, fd); continue; }
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (r < 0 && errno == EMSGSIZE) {
        log_begin(PROG, "bad_request");
        log_kv("msg", "request too long");
        log_end();
        continue;
      }
      eof = 1;
    }
  }
}
