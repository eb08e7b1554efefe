/* Running qmail-queue for the injector, and reading its exit code. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "str.h"
#include "inject.h"

#define QQ_NOEXEC 120

int qq_start(struct qq *q)
{
  static str path = STR_INIT;
  const char *env = getenv("QMAILQUEUE");
  int m[2], e[2];
  pid_t pid;

  /* Injection is unprivileged, so a replacement qmail-queue (a filter) is
   * the caller's business, as in qmail. */
  if (env && *env) {
    if (str_copys(&path, env) < 0) return -1;
  } else if (str_copys(&path, auto_prefix) < 0 || str_cats(&path, "/bin/qmail-queue") < 0) {
    return -1;
  }
  if (str_0(&path) < 0) return -1;
  if (pipe2(m, O_CLOEXEC) < 0) return -1;
  if (pipe2(e, O_CLOEXEC) < 0) {
    close(m[0]);
    close(m[1]);
    return -1;
  }
  pid = fork();
  if (pid < 0) {
    close(m[0]); close(m[1]); close(e[0]); close(e[1]);
    return -1;
  }
  if (pid == 0) {
    char *argv[2];
    argv[0] = path.s;
    argv[1] = 0;
    /* Pipes are above 2 (inject_run made sure 0-2 are open), so the dup2
     * calls cannot overwrite each other; dup2 clears close-on-exec. */
    if (dup2(m[0], 0) < 0 || dup2(e[0], 1) < 0) _exit(QQ_NOEXEC);
    signal(SIGPIPE, SIG_DFL);
    execv(path.s, argv);
    _exit(QQ_NOEXEC);
  }
  close(m[0]);
  close(e[0]);
  signal(SIGPIPE, SIG_IGN);
  q->pid = (int)pid;
  q->msg = m[1];
  q->env = e[1];
  return 0;
}

int qq_wait(struct qq *q)
{
  int status;

  if (q->msg >= 0) close(q->msg);
  if (q->env >= 0) close(q->env);
  q->msg = q->env = -1;
  while (waitpid((pid_t)q->pid, &status, 0) < 0)
    if (errno != EINTR) return QQ_NOEXEC;
  q->pid = 0;
  if (WIFSIGNALED(status)) return 256 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

/* qmail-queue(8)'s table; codes 11-40 are permanent, the rest temporary. */
static const char *reason(int code)
{
  switch (code) {
  case 11: return "address too long";
  case 12: return "an address is not an RFC 5321 mailbox";
  case 31: return "mail server permanently rejected message";
  case 51: return "qmail-queue out of memory";
  case 52: return "qmail-queue timeout";
  case 53: return "qmail-queue write error or disk full";
  case 54: return "qmail-queue unable to read the message or envelope";
  case 55: return "qmail-queue unable to read a configuration file";
  case 56: return "qmail-queue network problem";
  case 61: return "qmail-queue trouble in its home directory";
  case 62: case 63: case 64: case 65: case 66:
    return "qmail-queue trouble with the queue";
  case 71: return "mail server temporarily rejected message";
  case 72: return "connection to mail server timed out";
  case 73: return "connection to mail server rejected";
  case 74: return "communication with mail server failed";
  case 81: return "qmail-queue internal bug";
  case 91: return "qmail-queue envelope format error";
  case QQ_NOEXEC: return "unable to run qmail-queue";
  }
  if (code >= 256) return "qmail-queue was killed by a signal";
  return code >= 11 && code <= 40 ? "qmail-queue refused the message permanently"
                                  : "qmail-queue failed temporarily";
}

void qq_exit(const char *prog, int code)
{
  int out;

  if (code == 0) _exit(0);
  out = code >= 11 && code <= 40 ? 100 : 111;
  log_begin(prog, "fatal");
  log_kv("msg", reason(code));
  if (code >= 256) log_ku("signal", (unsigned)code - 256);
  else log_ku("qq", (unsigned)code);
  log_ku("exit", (unsigned)out);
  log_end();
  _exit(out);
}
