/* qmail-rspawn: the resident remote spawner, as the remote uid.
 *
 * fd 0 is a SOCK_SEQPACKET socket to qmail-send (lib/spawnproto.h). Each
 * request, with the queue file's descriptor attached, is checked, then
 * delivered by a forked child running the SMTP client (no exec: the
 * client is linked in). The child writes its results, "<c><text>\0" per
 * recipient, into a pipe and closes it as soon as they are final; the
 * parent checks them and answers "<slot>\0" + results. One poll loop
 * multiplexes fd 0 and the children's pipes. At EOF on fd 0, rspawn
 * answers what is running, waits for its children and exits 0.
 *
 * A request that cannot be parsed is answered, if its slot is readable and
 * free, with a single 'Z' ("local: bad request"); otherwise it is logged
 * and dropped, since there is nobody to answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "fdpass.h"
#include "log.h"
#include "qfile.h"
#include "remote.h"

static const char prog[] = "qmail-rspawn";

/* Output of a child: at most this many bytes for SPAWN_RCPTS results. */
#define OUT_MAX (SPAWN_RCPTS * (SPAWN_TEXT + 2))

struct slot {
  pid_t pid;
  int fd;           /* read end of the child's pipe; -1: slot free */
  size_t nrcpt;
  int bad;          /* the child wrote more than OUT_MAX, or no memory */
  str out;
};

static struct slot slots[SPAWN_SLOTS];
static char pkt[SPAWN_PKT_MAX];
static struct rresult res[SPAWN_RCPTS];
static const char *rcpts[SPAWN_RCPTS];
static int child_pipe = -1;

struct request {
  unsigned long long slot;
  const char *qid;
  unsigned long long off, len, opts;
  const char *sender;
  size_t nrcpt;
};

/* The next NUL-terminated field of [*p, end); 0 if there is none. */
static const char *field(const char **p, const char *end, size_t *len)
{
  const char *f = *p, *nul;
  if (f >= end || !(nul = memchr(f, 0, (size_t)(end - f)))) return 0;
  *len = (size_t)(nul - f);
  *p = nul + 1;
  return f;
}

static int number(const char **p, const char *end, unsigned long long *u)
{
  size_t n;
  const char *f = field(p, end, &n);
  return f && scan_ulong(f, n, u) == 0 ? 0 : -1;
}

static int qid_ok(const char *s, size_t n)
{
  size_t i, dots = 0;
  if (!n || n >= QF_QID_MAX) return 0;
  for (i = 0; i < n; i++) {
    if (s[i] == '.') dots++;
    else if (s[i] < '0' || s[i] > '9') return 0;
  }
  return dots == 2;
}

static const char *domain_of(const char *a)
{
  const char *at = strrchr(a, '@');
  return at ? at + 1 : 0;
}

/* Parses the request after its slot; 0, or -1 with *why set. */
static int parse(const char *p, const char *end, int msgfd, struct request *r, const char **why)
{
  size_t n;
  unsigned long long idx, stop;
  struct stat st;
  const char *f;

  *why = "malformed request";
  if (!(r->qid = field(&p, end, &n)) || !qid_ok(r->qid, n)) { *why = "bad qid"; return -1; }
  if (number(&p, end, &r->off) < 0 || number(&p, end, &r->len) < 0 || number(&p, end, &r->opts) < 0)
    return -1;
  if (!(r->sender = field(&p, end, &n)) || n > QF_ADDR_MAX) { *why = "bad sender"; return -1; }
  for (r->nrcpt = 0; p < end; r->nrcpt++) {
    const char *d;
    if (r->nrcpt == SPAWN_RCPTS) { *why = "too many recipients"; return -1; }
    if (number(&p, end, &idx) < 0) return -1;
    if (!(f = field(&p, end, &n)) || !n || n > QF_ADDR_MAX || !(d = domain_of(f)) || !*d) {
      *why = "bad recipient"; return -1;
    }
    if (r->nrcpt && strcasecmp(d, domain_of(rcpts[0]))) { *why = "recipients of different domains"; return -1; }
    rcpts[r->nrcpt] = f;
  }
  if (!r->nrcpt) { *why = "no recipient"; return -1; }
  if (msgfd < 0) { *why = "no message descriptor"; return -1; }
  if (fstat(msgfd, &st) < 0 || !S_ISREG(st.st_mode)) { *why = "message is not a regular file"; return -1; }
  if (__builtin_add_overflow(r->off, r->len, &stop) || stop > (unsigned long long)st.st_size) { *why = "message bounds beyond the file"; return -1; }
  return 0;
}

/* Child side: hand the results to the parent as soon as they are final. */
static void child_done(struct rjob *j)
{
  char out[OUT_MAX];
  size_t i, n = 0;

  for (i = 0; i < j->nrcpt; i++) {
    out[n++] = j->res[i].code;
    memcpy(out + n, j->res[i].text, j->res[i].len);
    n += j->res[i].len;
    out[n++] = 0;
  }
  fd_write_all(child_pipe, out, n, 0);
  close(child_pipe);
  child_pipe = -1;
}

static void run_child(const struct request *r, int msgfd)
{
  struct rjob j;
  size_t i;

  close(0);
  for (i = 0; i < SPAWN_SLOTS; i++)
    if (slots[i].fd >= 0) close(slots[i].fd);
  j.domain = domain_of(rcpts[0]);
  j.sender = r->sender;
  j.rcpt = rcpts;
  j.nrcpt = r->nrcpt;
  j.msgfd = msgfd;
  j.msgoff = (off_t)r->off;
  j.msglen = r->len;
  j.utf8 = (r->opts & QF_OPT_UTF8) != 0;
  j.res = res;
  j.done = child_done;
  remote_deliver(&j);
  _exit(0);
}

static void reply(unsigned long long slot, const char *body, size_t n)
{
  str s = STR_INIT;
  if (str_catu(&s, slot) < 0 || str_catc(&s, 0) < 0 || str_catb(&s, body, n) < 0 ||
      pkt_send(0, s.s, s.len, -1) < 0) {
    log_begin(prog, "reply_failed");
    log_ku("slot", slot);
    log_kv("error", strerror(errno));
    log_end();
  }
  str_free(&s);
}

/* Every recipient of a delivery that could not run gets the same 'Z'. */
static void reply_z(unsigned long long slot, size_t nrcpt, const char *why)
{
  str s = STR_INIT;
  size_t i;
  int bad = 0;
  for (i = 0; i < nrcpt; i++)
    if (str_cats(&s, "Z" SPAWN_TAG_LOCAL ": ") < 0 || str_cats(&s, why) < 0 || str_catc(&s, 0) < 0) bad = 1;
  if (!bad) reply(slot, s.s, s.len);
  str_free(&s);
}

static void request(ssize_t n, int msgfd)
{
  const char *p = pkt, *end = pkt + n, *why;
  struct request r;
  int pfd[2];
  pid_t pid;

  if (number(&p, end, &r.slot) < 0 || r.slot >= SPAWN_SLOTS || slots[r.slot].fd >= 0) {
    log_begin(prog, "bad_request");
    log_kv("msg", "no valid free slot");
    log_end();
    if (msgfd >= 0) close(msgfd);
    return;
  }
  if (parse(p, end, msgfd, &r, &why) < 0) {
    log_begin(prog, "bad_request");
    log_ku("slot", r.slot);
    log_kv("msg", why);
    log_end();
    reply_z(r.slot, 1, "bad request");
    if (msgfd >= 0) close(msgfd);
    return;
  }
  if (pipe2(pfd, O_CLOEXEC) < 0) {
    reply_z(r.slot, r.nrcpt, "cannot make a pipe");
    close(msgfd);
    return;
  }
  pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    child_pipe = pfd[1];
    run_child(&r, msgfd);
  }
  close(pfd[1]);
  close(msgfd);
  if (pid < 0) {
    close(pfd[0]);
    reply_z(r.slot, r.nrcpt, "cannot fork");
    return;
  }
  slots[r.slot].pid = pid;
  slots[r.slot].fd = pfd[0];
  slots[r.slot].nrcpt = r.nrcpt;
  slots[r.slot].out.len = 0;
  slots[r.slot].bad = 0;
}

/* 1 if out holds exactly nrcpt well-formed results. */
static int results_ok(const str *out, size_t nrcpt)
{
  const char *p = out->s, *end = out->s + out->len;
  size_t n, k;

  for (k = 0; k < nrcpt; k++) {
    const char *f = field(&p, end, &n);
    if (!f || n < 1 || n > SPAWN_TEXT + 1 || (f[0] != 'K' && f[0] != 'Z' && f[0] != 'D')) return 0;
  }
  return p == end;
}

/* The child's pipe is readable: collect, and answer at EOF. */
static void collect(unsigned long long i)
{
  struct slot *s = &slots[i];
  char tmp[8192];
  ssize_t r;

  r = read(s->fd, tmp, sizeof tmp);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r > 0) {
    if (!s->bad && (s->out.len + (size_t)r > OUT_MAX || str_catb(&s->out, tmp, (size_t)r) < 0)) s->bad = 1;
    return;
  }
  close(s->fd);
  s->fd = -1;
  if (!s->bad && results_ok(&s->out, s->nrcpt)) {
    reply(i, s->out.s, s->out.len);
  } else {
    log_begin(prog, "child_failed");
    log_ku("slot", i);
    log_ku("pid", (unsigned long long)s->pid);
    log_end();
    reply_z(i, s->nrcpt, "delivery process failed");
  }
  if (s->out.cap > 65536) str_free(&s->out);
}

static void reap(void)
{
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
      log_begin(prog, "child_died");
      log_ku("pid", (unsigned long long)pid);
      log_ku("status", (unsigned long long)st);
      log_end();
    }
}

int main(void)
{
  static struct pollfd pfd[SPAWN_SLOTS + 1];
  static unsigned short who[SPAWN_SLOTS + 1];
  struct rlimit rl;
  int eof = 0;
  size_t i, n;

  signal(SIGPIPE, SIG_IGN);
  if (prefix_chdir() < 0) log_fatal(prog, 111, "cannot chdir to the prefix");
  /* One pipe per busy slot, plus fd 0 and the few a child opens. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < SPAWN_SLOTS + 64) {
    rl.rlim_cur = rl.rlim_max < SPAWN_SLOTS + 64 ? rl.rlim_max : SPAWN_SLOTS + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  for (i = 0; i < SPAWN_SLOTS; i++) slots[i].fd = -1;
  for (;;) {
    reap();
    n = 0;
    if (!eof) { pfd[n].fd = 0; pfd[n].events = POLLIN; who[n++] = SPAWN_SLOTS; }
    for (i = 0; i < SPAWN_SLOTS; i++)
      if (slots[i].fd >= 0) { pfd[n].fd = slots[i].fd; pfd[n].events = POLLIN; who[n++] = (unsigned short)i; }
    if (!n) break;
    if (poll(pfd, n, -1) < 0) {
      if (errno == EINTR) continue;
      log_fatal(prog, 111, "poll failed");
    }
    for (i = 0; i < n; i++) {
      if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (who[i] < SPAWN_SLOTS) { collect(who[i]); continue; }
      {
        int msgfd;
        ssize_t r = pkt_recv(0, pkt, sizeof pkt, &msgfd);
        if (r == 0) eof = 1;
        else if (r > 0) request(r, msgfd);
        else if (errno == EMSGSIZE) {
          log_begin(prog, "bad_request");
          log_kv("msg", "request too long");
          log_end();
        } else if (errno != EINTR && errno != EAGAIN) {
          log_fatal(prog, 111, "cannot read requests");
        }
      }
    }
  }
  while (wait(0) > 0 || errno == EINTR) {}
  return 0;
}
