/* Deliveries that run another program: "|command" through /bin/sh, and
 * forwarding through qmail-queue. Both get the message on a pipe, written
 * here from the seekable window, so the child never shares a file offset
 * with anybody. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "control.h"
#include "local.h"
#include "qfile.h"
#include "qq.h"

#define OUT_MAX 900   /* program output kept for the report */

/* In the child: fds 0 and 1 (and 2 when err >= 0) become in, out, err,
 * everything else is closed, signals are back to their defaults. */
static void child_fds(int in, int out, int err)
{
  sigset_t none;

  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || (err >= 0 && dup2(err, 2) < 0)) _exit(111);
  close_range(3, ~0u, 0);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGALRM, SIG_DFL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, 0);
}

/* The program's time limit: the handler kills its process group itself
 * (kill is async-signal-safe), so that no blocking call can outlive it. */
static volatile sig_atomic_t expired;
static volatile pid_t victim;

static void on_alarm(int sig)
{
  (void)sig;
  expired = 1;
  if (victim > 0) kill(-victim, SIGKILL);
}

static int wait_child(pid_t pid, int *status)
{
  while (waitpid(pid, status, 0) < 0)
    if (errno != EINTR) return -1;
  return 0;
}

/* The bytes fed to a child: head (the added lines) then the message. */
struct feed {
  const struct local_msg *m;
  const char *head;
  size_t headlen;
  unsigned long long pos;   /* over head then message */
  char b[65536];
  size_t have, done;        /* b[done..have) not yet written */
};

/* Refills f->b; returns 0 at the end, 1 when there is data, -1 on error. */
static int feed_more(struct feed *f)
{
  long r;

  if (f->done < f->have) return 1;
  f->done = f->have = 0;
  if (f->pos < f->headlen) {
    f->have = f->headlen - (size_t)f->pos;
    if (f->have > sizeof f->b) f->have = sizeof f->b;
    memcpy(f->b, f->head + f->pos, f->have);
  } else {
    r = msg_read(f->m, f->pos - f->headlen, f->b, sizeof f->b);
    if (r < 0) return -1;
    f->have = (size_t)r;
  }
  f->pos += f->have;
  return f->have ? 1 : 0;
}

static void keep_output(str *out, const char *p, size_t n)
{
  if (out->len >= OUT_MAX) return;
  if (n > OUT_MAX - out->len) n = OUT_MAX - out->len;
  /* Best effort: the output only explains the exit code. */
  (void)!str_catb(out, p, n);
}

/* Feeds f into wfd and collects rfd into out until both are done: a
 * program may write before it reads, so neither side may block. SIGALRM
 * is blocked but while waiting (ppoll with mask), so the time limit
 * cannot fire between the check of expired and the wait. */
static int pump(struct feed *f, int wfd, int rfd, str *out, const sigset_t *mask)
{
  struct pollfd p[2];
  char b[4096];
  ssize_t r;
  int n;

  fcntl(wfd, F_SETFL, O_WRONLY | O_NONBLOCK);
  while (wfd >= 0 || rfd >= 0) {
    n = 0;
    if (wfd >= 0) { p[n].fd = wfd; p[n].events = POLLOUT; n++; }
    if (rfd >= 0) { p[n].fd = rfd; p[n].events = POLLIN; n++; }
    if (expired) {
      /* A process that left the group may still hold the pipes. */
      if (wfd >= 0) close(wfd);
      if (rfd >= 0) close(rfd);
      return 0;
    }
    if (ppoll(p, (nfds_t)n, 0, mask) < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    for (n--; n >= 0; n--) {
      if (!p[n].revents) continue;
      if (p[n].fd == rfd) {
        r = read(rfd, b, sizeof b);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) { close(rfd); rfd = -1; continue; }
        keep_output(out, b, (size_t)r);
        continue;
      }
      r = feed_more(f);
      if (r < 0) { close(wfd); if (rfd >= 0) close(rfd); return -1; }
      if (r > 0) {
        r = write(wfd, f->b + f->done, f->have - f->done);
        if (r > 0) { f->done += (size_t)r; continue; }
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      }
      /* All written, or the program stopped reading (EPIPE): its exit
       * code says whether that was fine. */
      close(wfd);
      wfd = -1;
    }
  }
  return 0;
}

static int prog_code(int status)
{
  if (!WIFEXITED(status)) return 111;
  switch (WEXITSTATUS(status)) {
  case 0: return 0;
  case 99: return 99;
  case 64: case 65: case 70: case 76: case 77: case 78: case 100: case 112: return 100;
  default: return 111;
  }
}

int prog_deliver(const struct local_msg *m, const char *cmd, const struct lines *l,
                 char *const envp[], unsigned long timeout, str *report)
{
  static struct feed f;
  struct sigaction sa;
  str head = STR_INIT, out = STR_INIT;
  sigset_t alrm, mask;
  int in[2], o[2], status, code, e, r;
  pid_t pid;

  if (str_catb(&head, l->rp.s, l->rp.len) < 0 || str_catb(&head, l->dt.s, l->dt.len) < 0)
    return fail(report, 111, "program", errno);
  if (pipe2(in, O_CLOEXEC) < 0) { e = errno; str_free(&head); return fail(report, 111, "cannot make a pipe", e); }
  if (pipe2(o, O_CLOEXEC) < 0) {
    e = errno;
    close(in[0]); close(in[1]); str_free(&head);
    return fail(report, 111, "cannot make a pipe", e);
  }
  expired = 0;
  victim = 0;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;   /* no SA_RESTART: waitpid and poll see EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, 0);
  pid = fork();
  if (pid == 0) {
    char *argv[] = { (char *)"sh", (char *)"-c", (char *)cmd, 0 };
    setpgid(0, 0);
    child_fds(in[0], o[1], o[1]);
    execve("/bin/sh", argv, envp);
    _exit(111);
  }
  e = errno;
  close(in[0]);
  close(o[1]);
  if (pid < 0) {
    close(in[1]); close(o[0]); str_free(&head);
    return fail(report, 111, "cannot fork", e);
  }
  /* Also here: the group must exist before anything could signal it. */
  setpgid(pid, pid);
  victim = pid;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  sigprocmask(SIG_BLOCK, &alrm, &mask);
  alarm(timeout > 100000000 ? 100000000 : (unsigned)timeout);
  memset(&f, 0, sizeof f);
  f.m = m;
  f.head = head.s;
  f.headlen = head.len;
  r = pump(&f, in[1], o[0], &out, &mask);
  e = errno;
  /* From here the handler may run at any time: it kills the group itself. */
  sigprocmask(SIG_SETMASK, &mask, 0);
  if (r < 0) {
    kill(-pid, SIGKILL);
    wait_child(pid, &status);
    alarm(0);
    victim = 0;
    str_free(&head); str_free(&out);
    return fail(report, 111, "cannot feed the program", e);
  }
  if (wait_child(pid, &status) < 0) status = 111 << 8;
  alarm(0);
  victim = 0;
  code = prog_code(status);
  if (expired) {
    /* Whatever it said or exited with, it did not finish in time. */
    kill(-pid, SIGKILL);
    /* The report is best effort, as in fail(): 111 is the result. */
    (void)!str_cats(report, "program timed out after ");
    (void)!str_catu(report, timeout);
    (void)!str_cats(report, " seconds");
    str_free(&head);
    str_free(&out);
    return 111;
  }
  /* The report is best effort, as in fail(): code is the result. */
  if (out.len) (void)!str_catb(report, out.s, out.len);
  else if (code != 0 && code != 99) {
    (void)!str_cats(report, WIFEXITED(status) ? "program exited " : "program killed by signal ");
    (void)!str_catu(report, WIFEXITED(status) ? (unsigned)WEXITSTATUS(status) : (unsigned)WTERMSIG(status));
  }
  str_free(&head);
  str_free(&out);
  return code;
}

int forward_deliver(const struct local_msg *m, const char *sender, const str *addrs,
                    unsigned long count, int utf8, const struct lines *l, str *report)
{
  static char b[8192];
  str env = STR_INIT;
  struct qq q;
  int code, lastnl, werr = 0;
  size_t i;
  buf out;

  /* The envelope as qmail-queue(8) reads it: F<sender>\0 T<addr>\0 ... \0 */
  if (str_catc(&env, 'F') < 0 || str_cats(&env, sender) < 0 || str_catc(&env, 0) < 0)
    return fail(report, 111, "forward", errno);
  for (i = 0; i < addrs->len; i += strlen(addrs->s + i) + 1)
    if (str_catc(&env, 'T') < 0 || str_cats(&env, addrs->s + i) < 0 || str_catc(&env, 0) < 0) {
      str_free(&env);
      return fail(report, 111, "forward", errno);
    }
  if (str_catc(&env, 0) < 0) { str_free(&env); return fail(report, 111, "forward", errno); }
  if (qq_open(&q, utf8 ? QQ_UTF8 : 0) < 0) {
    int e = errno;
    str_free(&env);
    return fail(report, 111, "cannot start qmail-queue", e);
  }

  /* qmail-queue reads the whole message, then the envelope. A write error
   * (it exited early) is judged by its exit code below. */
  buf_init(&out, q.msg, b, sizeof b);
  if (buf_put(&out, l->dt.s, l->dt.len) < 0 || msg_copy(m, &out, 0, &lastnl) < 0 ||
      buf_flush(&out) < 0) werr = errno;
  close(q.msg);
  q.msg = -1;
  if (!werr && fd_write_all(q.env, env.s, env.len, 0) < 0) werr = errno;
  code = qq_wait(&q);
  str_free(&env);
  if (code == 0 && !werr) {
    /* Best effort, as in fail(): the forward is done. */
    (void)!str_cats(report, "forwarded to ");
    (void)!str_catu(report, count);
    (void)!str_cats(report, count == 1 ? " address" : " addresses");
    return 0;
  }
  if (code < 0 || code >= QQ_SIGNAL) return fail(report, 111, "qmail-queue crashed", 0);
  if (code == 0) return fail(report, 111, "cannot write to qmail-queue", werr);
  /* The report is best effort, as in fail(): the code returned is the result. */
  (void)!str_cats(report, "qmail-queue refused the forward, exit code ");
  (void)!str_catu(report, (unsigned)code);
  (void)!str_cats(report, ": ");
  (void)!str_cats(report, qq_text(code));
  return qq_permanent(code) ? 100 : 111;
}
