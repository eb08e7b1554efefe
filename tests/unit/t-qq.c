/* lib/qq.c: qmail-queue's client with a shell script as $QMAILQUEUE,
 * which sees what qmail-queue would, and the exit-code table. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "qq.h"
#include "str.h"

static char dir[] = "/tmp/t-qq.XXXXXX";
static char script[64], out[64];

/* The fake writes its fd 0, its fd 1's bytes, SMTPUTF8 and whether it
 * holds descriptor DEAD into out, then exits with $QQ_CODE. */
#define DEAD 40
static int fake(void)
{
  FILE *f;
  snprintf(script, sizeof script, "%s/qq", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  f = fopen(script, "w");
  if (!f) return -1;
  fprintf(f, "#!/bin/sh\nexec 3<&1\n{ cat; echo '|'; tr '\\0' '^' <&3; echo \"|$SMTPUTF8|\";"
             " [ -e /proc/$$/fd/%d ] && echo leak; } >%s 2>&1\n"
             "[ -n \"$QQ_SLEEP\" ] && sleep 5\nexit ${QQ_CODE:-0}\n", DEAD, out);
  fclose(f);
  return chmod(script, 0755);
}

static int out_is(const char *want)
{
  char got[256];
  FILE *f = fopen(out, "r");
  size_t n = f ? fread(got, 1, sizeof got - 1, f) : 0;
  if (f) fclose(f);
  got[n] = 0;
  if (strcmp(got, want)) printf("got [%s]\n", got);
  return !strcmp(got, want);
}

static int run(unsigned flags, const char *msg, const char *env, size_t envlen)
{
  struct qq q = QQ_INIT;
  if (qq_open(&q, flags) < 0) return -2;
  if (write(q.msg, msg, strlen(msg)) != (ssize_t)strlen(msg)) return -3;
  close(q.msg);
  q.msg = -1;
  if (write(q.env, env, envlen) != (ssize_t)envlen) return -3;
  return qq_wait(&q);
}

static void t_client(void)
{
  struct qq q = QQ_INIT;
  int dead = dup2(2, DEAD);   /* a descriptor the child must not inherit */

  CHECK(fake() == 0);
  setenv("QMAILQUEUE", script, 1);
  setenv("SMTPUTF8", "x", 1);   /* never passed on as it is */
  CHECK(run(QQ_QMAILQUEUE, "hi\n", "Fa\0Tb\0\0", 7) == 0);
  CHECK(out_is("hi\n|\nFa^Tb^^||\n"));
  CHECK(run(QQ_QMAILQUEUE | QQ_UTF8, "x", "F\0\0", 3) == 0);
  CHECK(out_is("x|\nF^^|1|\n"));
  setenv("QQ_CODE", "12", 1);
  CHECK(run(QQ_QMAILQUEUE, "x", "F\0\0", 3) == 12);
  unsetenv("QQ_CODE");
  /* Killed: QQ_SIGNAL + the signal. */
  setenv("QQ_SLEEP", "1", 1);
  CHECK(qq_open(&q, QQ_QMAILQUEUE) == 0);
  kill(q.pid, SIGKILL);
  CHECK(qq_wait(&q) == QQ_SIGNAL + SIGKILL);
  CHECK(q.pid == 0 && q.msg == -1 && q.env == -1);
  unsetenv("QQ_SLEEP");
  CHECK(qq_wait(&q) == -1 && errno == ECHILD);
  /* Without QQ_QMAILQUEUE the variable is not read: PREFIX/bin/qmail-queue,
   * which a unit test's prefix may lack; either way not the script. */
  unlink(out);
  if (qq_open(&q, 0) == 0) qq_wait(&q);
  CHECK(access(out, F_OK) < 0);
  /* A path that cannot run: an error at once, nothing left open. */
  setenv("QMAILQUEUE", "/nonexistent/qq", 1);
  CHECK(qq_open(&q, QQ_QMAILQUEUE) < 0 && errno == ENOENT && q.pid == 0 && q.msg == -1);
  close(dead);
}

static void t_codes(void)
{
  CHECK(!qq_permanent(0) && qq_permanent(11) && qq_permanent(12) && qq_permanent(40));
  CHECK(!qq_permanent(41) && !qq_permanent(53) && !qq_permanent(QQ_SIGNAL + 9));
  CHECK(!strcmp(qq_text(12), "an address is not an RFC 5321 mailbox"));
  CHECK(!strcmp(qq_text(64), "qmail-queue trouble with the queue"));
  CHECK(!strcmp(qq_text(39), "qmail-queue refused the message permanently"));
  CHECK(!strcmp(qq_text(99), "qmail-queue failed temporarily"));
  CHECK(!strcmp(qq_text(255), "qmail-queue failed temporarily"));
  CHECK(!strcmp(qq_text(QQ_SIGNAL + 9), "qmail-queue was killed by a signal"));
  CHECK(!strcmp(qq_text(-1), "qmail-queue failed temporarily"));
  CHECK(!qq_short(12, 0) && !qq_short(0, 0));
}

int main(void)
{
  signal(SIGPIPE, SIG_IGN);
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
  t_client();
  t_codes();
  unlink(script);
  unlink(out);
  rmdir(dir);
  DONE();
}
