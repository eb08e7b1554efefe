/* qmail-queue's client side and exit codes: see qq.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "control.h"
#include "qq.h"
#include "qspace.h"
#include "str.h"

extern char **environ;

/* qmail-queue(8)'s table (qmail-queue/qmail-queue.c says when each is
 * used); codes it never exits with are those of filters set as
 * $QMAILQUEUE, as in qmail. */
static const char *const qq_texts[] = {
  [11] = "address too long",
  [12] = "an address is not an RFC 5321 mailbox",
  [31] = "mail server permanently rejected message",
  [32] = "refused by the From: domain's DMARC policy",
  [51] = "qmail-queue out of memory",
  [52] = "qmail-queue timeout",
  [53] = "qmail-queue write error or disk full",
  [54] = "qmail-queue unable to read the message",
  [55] = "qmail-queue unable to read the envelope",
  [56] = "qmail-queue network problem",
  [61] = "qmail-queue trouble in its home directory",
  [62] = "qmail-queue trouble with the queue",
  [63] = "qmail-queue trouble with the queue",
  [64] = "qmail-queue trouble with the queue",
  [65] = "qmail-queue trouble with the queue",
  [66] = "qmail-queue trouble with the queue",
  [71] = "mail server temporarily rejected message",
  [72] = "connection to mail server timed out",
  [73] = "connection to mail server rejected",
  [74] = "communication with mail server failed",
  [81] = "qmail-queue internal bug",
  [91] = "qmail-queue envelope format error",
};

int qq_permanent(int code)
{
  return code >= 11 && code <= 40;
}

const char *qq_text(int code)
{
  if (code == 0) return "queued";
  if (code >= QQ_SIGNAL) return "qmail-queue was killed by a signal";
  if (code > 0 && (size_t)code < sizeof qq_texts / sizeof *qq_texts && qq_texts[code])
    return qq_texts[code];
  return qq_permanent(code) ? "qmail-queue refused the message permanently"
                            : "qmail-queue failed temporarily";
}

int qq_short(int code, unsigned long long bytes)
{
  struct qspace s;
  return (code == 53 || code == 64) && qspace_check(QSPACE_DIR, bytes, 0, &s) > 0;
}

/* The environment for the child: environ without SMTPUTF8 and
 * SMTPAUTHENTICATED, plus SMTPUTF8=1 with QQ_UTF8 and SMTPAUTHENTICATED=1
 * with QQ_AUTH. Only the array is allocated. */
static char **child_env(unsigned flags)
{
  static char utf8[] = "SMTPUTF8=1", auth[] = "SMTPAUTHENTICATED=1";
  size_t n = 0, k = 0, total;
  char **e;

  while (environ[n]) n++;
  if (size_add(&total, n, 3) < 0 || size_mul(&total, total, sizeof *e) < 0) return 0;
  e = malloc(total);
  if (!e) return 0;
  for (n = 0; environ[n]; n++)
    if (strncmp(environ[n], "SMTPUTF8=", 9) != 0 && strncmp(environ[n], "SMTPAUTHENTICATED=", 18) != 0)
      e[k++] = environ[n];
  if (flags & QQ_UTF8) e[k++] = utf8;
  if (flags & QQ_AUTH) e[k++] = auth;
  e[k] = 0;
  return e;
}

/* A pipe whose ends are above 2, so that the child's dup2 onto 0 and 1
 * can neither be a no-op (which would keep close-on-exec) nor overwrite
 * the other read end. */
static int pipe_high(int p[2])
{
  int i, fd;

  if (pipe2(p, O_CLOEXEC) < 0) return -1;
  for (i = 0; i < 2; i++) {
    if (p[i] > 2) continue;
    fd = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
    if (fd < 0) { int e = errno; close(p[0]); close(p[1]); errno = e; return -1; }
    close(p[i]);
    p[i] = fd;
  }
  return 0;
}

static int spawn(pid_t *pid, const char *path, int m, int e, unsigned flags)
{
  static const int sigs[] = { SIGPIPE, SIGTERM, SIGHUP, SIGALRM, SIGCHLD, SIGINT };
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t def, none;
  char *argv[] = { (char *)"qmail-queue", 0 };
  char **env = child_env(flags);
  size_t i;
  int r;

  if (!env) return -1;
  if ((r = posix_spawn_file_actions_init(&fa)) != 0) { free(env); errno = r; return -1; }
  if ((r = posix_spawnattr_init(&at)) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    errno = r;
    return -1;
  }
  sigemptyset(&def);
  for (i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&def, sigs[i]);
  sigemptyset(&none);
  /* Each step must hold: a child started without its dup2s would read
   * the caller's fd 0 and 1 (an SMTP session's socket) as its input. */
  if ((r = posix_spawn_file_actions_adddup2(&fa, m, 0)) == 0 &&
      (r = posix_spawn_file_actions_adddup2(&fa, e, 1)) == 0 &&
      (r = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) == 0 &&
      (r = posix_spawnattr_setsigdefault(&at, &def)) == 0 &&
      (r = posix_spawnattr_setsigmask(&at, &none)) == 0 &&
      (r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)) == 0)
    r = posix_spawn(pid, path, &fa, &at, argv, env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  free(env);
  if (r != 0) { errno = r; return -1; }
  return 0;
}

int qq_open(struct qq *q, unsigned flags)
{
  static str path = STR_INIT;
  const char *alt = flags & QQ_QMAILQUEUE ? getenv("QMAILQUEUE") : 0;
  int m[2], e[2], err;
  pid_t pid;

  q->pid = 0;
  q->msg = q->env = -1;
  path.len = 0;
  if (alt && *alt ? str_cats(&path, alt) < 0
                  : str_cats(&path, auto_prefix) < 0 || str_cats(&path, "/bin/qmail-queue") < 0)
    return -1;
  if (!(alt && *alt) && flags & QQ_SIGN) {
    /* The signer's name is fixed at build time, like qmail-queue's. */
    if (str_copys(&path, auto_prefix) < 0 || str_cats(&path, "/bin/qmail-dkim") < 0 || str_0(&path) < 0)
      return -1;
    if (access(path.s, X_OK) != 0 &&
        (str_copys(&path, auto_prefix) < 0 || str_cats(&path, "/bin/qmail-queue") < 0)) return -1;
  }
  if (str_0(&path) < 0 || pipe_high(m) < 0) return -1;
  if (pipe_high(e) < 0) { err = errno; close(m[0]); close(m[1]); errno = err; return -1; }
  err = spawn(&pid, path.s, m[0], e[0], flags) < 0 ? errno : 0;
  close(m[0]);
  close(e[0]);
  if (err) { close(m[1]); close(e[1]); errno = err; return -1; }
  q->pid = pid;
  q->msg = m[1];
  q->env = e[1];
  return 0;
}

int qq_wait(struct qq *q)
{
  int st;

  if (q->msg >= 0) close(q->msg);
  if (q->env >= 0) close(q->env);
  q->msg = q->env = -1;
  if (q->pid <= 0) { errno = ECHILD; return -1; }
  while (waitpid(q->pid, &st, 0) < 0)
    if (errno != EINTR) { q->pid = 0; return -1; }
  q->pid = 0;
  if (WIFSIGNALED(st)) return QQ_SIGNAL + WTERMSIG(st);
  return WEXITSTATUS(st);
}
