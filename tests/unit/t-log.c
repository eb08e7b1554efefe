/* lib/log.c: line format, quoting that no value can use to forge a key or
 * a line, truncation of long lines, log_fatal. stderr goes to a file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "log.h"

static char path[] = "/tmp/t-log.XXXXXX";
static char got[8192];
static size_t gotlen;

/* Points fd 2 at an empty file. */
static void start(void)
{
  int fd = open(path, O_RDWR | O_TRUNC);
  dup2(fd, 2);
  close(fd);
}

/* Reads back what was logged since start(). */
static void finish(void)
{
  int fd = open(path, O_RDONLY);
  ssize_t n = read(fd, got, sizeof got - 1);
  gotlen = n > 0 ? (size_t)n : 0;
  got[gotlen] = 0;
  close(fd);
}

static int lines_in(void)
{
  size_t i;
  int n = 0;
  for (i = 0; i < gotlen; i++) if (got[i] == '\n') n++;
  return n;
}

/* Counts the keys of the logged line: words outside quotes, up to '='.
 * Returns -1 if a quoted value is unbalanced. */
static int keys(const char *want_last)
{
  size_t i = 0;
  int n = 0, inq = 0;
  const char *last = 0;

  while (i < gotlen && got[i] != ' ') i++;   /* the program name */
  for (; i < gotlen && got[i] != '\n'; i++) {
    char c = got[i];
    if (inq) {
      if (c == '\\') i++;
      else if (c == '"') inq = 0;
    } else if (c == '"') {
      inq = 1;
    } else if (c == ' ') {
      n++;
      last = got + i + 1;
    }
  }
  if (inq) return -1;
  if (want_last && (!last || strncmp(last, want_last, strlen(want_last)))) return -2;
  return n;
}

static int logged(const char *key, const char *v, size_t n, const char *expect)
{
  start();
  log_begin("p", "e");
  log_kb(key, v, n);
  log_end();
  finish();
  if (strcmp(got, expect)) { printf("got: %s", got); return 0; }
  return 1;
}

int main(void)
{
  char big[5000];
  int fd = mkstemp(path), saved = dup(2), st;
  pid_t pid;

  CHECK(fd >= 0);
  close(fd);

  start();
  log_begin("prog", "delivery");
  log_kv("id", "1.2.3");
  log_ku("bytes", 0);
  log_ku("max", 18446744073709551615ull);
  log_kv("null", 0);
  log_end();
  finish();
  CHECK(!strcmp(got, "prog event=delivery id=1.2.3 bytes=0 max=18446744073709551615 null=\"\"\n"));

  CHECK(logged("k", "plain", 5, "p event=e k=plain\n"));
  CHECK(logged("k", "", 0, "p event=e k=\"\"\n"));
  CHECK(logged("k", "a b", 3, "p event=e k=\"a b\"\n"));
  CHECK(logged("k", "a=b", 3, "p event=e k=\"a=b\"\n"));
  CHECK(logged("k", "say \"hi\"", 8, "p event=e k=\"say \\\"hi\\\"\"\n"));
  CHECK(logged("k", "back\\slash", 10, "p event=e k=\"back\\\\slash\"\n"));
  CHECK(logged("k", "a\nb\rc\td", 7, "p event=e k=\"a\\x0ab\\x0dc\\x09d\"\n"));
  CHECK(logged("k", "nul\0x", 5, "p event=e k=\"nul\\x00x\"\n"));
  CHECK(logged("k", "del\177", 4, "p event=e k=\"del\\x7f\"\n"));
  CHECK(logged("k", "\xc3\xa9t\xc3\xa9", 5, "p event=e k=\xc3\xa9t\xc3\xa9\n"));   /* UTF-8 passes */

  /* Forgery attempts: a value cannot add a key or a line. */
  start();
  log_begin("p", "e");
  log_kv("from", "x event=forged\nq event=evil user=root");
  log_kv("next", "\" admin=yes \"");
  log_kv("last", "z");
  log_end();
  finish();
  CHECK(lines_in() == 1);
  CHECK(keys("last=z") == 4);   /* event, from, next, last */
  CHECK(!strstr(got, "\nq"));

  /* A value over LOG_VALUE_MAX is cut and marked, so that the keys after
   * it (the verdict) stay on the line, whatever the client sent. */
  memset(big, 'a', sizeof big);
  big[100] = ' ';
  start();
  log_begin("p", "e");
  log_kb("big", big, sizeof big);
  log_kv("result", "refused");
  log_end();
  finish();
  CHECK(lines_in() == 1);
  CHECK(keys("result=refused") == 3);   /* event, big, result */
  CHECK(strstr(got, "aaaa...\" result=refused\n") != 0);
  CHECK(gotlen < 600);
  memset(big, 1, sizeof big);              /* each byte escaped as \x01 */
  start();
  log_begin("p", "e");
  log_kb("to", big, 2000);
  log_kv("result", "refused");
  log_kv("reason", "syntax");
  log_end();
  finish();
  CHECK(keys("reason=syntax") == 4);
  CHECK(strstr(got, "\\x01...\" result=refused reason=syntax\n") != 0);
  CHECK(strlen(got) <= 10 + 5 + LOG_VALUE_MAX + 3 + 1 + 40);
  /* Only a cut value ends in "..." inside quotes: a value's own is escaped. */
  CHECK(logged("k", "wait ...", 8, "p event=e k=\"wait ..\\x2e\"\n"));
  CHECK(logged("k", "abc...", 6, "p event=e k=abc...\n"));
  memset(big, 'b', LOG_VALUE_MAX);
  start();
  log_begin("p", "e");
  log_kb("k", big, LOG_VALUE_MAX);         /* at the bound: whole */
  log_end();
  finish();
  CHECK(gotlen == 13 + LOG_VALUE_MAX && !strstr(got, "..."));

  /* A line over the buffer is still cut, ends in "...", stays one line. */
  memset(big, 'a', sizeof big);
  start();
  log_begin("p", "e");
  log_kb("a", big, 600);
  log_kb("b", big, 600);
  log_kb("c", big, 600);
  log_kb("d", big, 600);
  log_kv("after", "lost");
  log_end();
  finish();
  CHECK(lines_in() == 1);
  CHECK(gotlen <= 2048 && gotlen > 2000);
  CHECK(gotlen >= 4 && !memcmp(got + gotlen - 4, "...\n", 4));
  CHECK(!strstr(got, "after="));
  /* The next line starts clean. */
  start();
  log_begin("p", "e");
  log_end();
  finish();
  CHECK(!strcmp(got, "p event=e\n"));

  /* log_fatal: one line with the message and errno's text, then the code. */
  start();
  pid = fork();
  if (pid == 0) {
    errno = ENOENT;
    log_fatal("p", 37, "cannot open x");
  }
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 37);
  finish();
  CHECK(!strcmp(got, "p event=fatal msg=\"cannot open x\" error=\"No such file or directory\"\n"));
  start();
  pid = fork();
  if (pid == 0) {
    errno = 0;
    log_fatal("p", 3, "usage");
  }
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 3);
  finish();
  CHECK(!strcmp(got, "p event=fatal msg=usage\n"));
  /* log_die and log_usage never print errno, whatever it holds. */
  start();
  pid = fork();
  if (pid == 0) {
    errno = EACCES;
    log_die("p", 5, "control/x has no valid line");
  }
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 5);
  finish();
  CHECK(!strcmp(got, "p event=fatal msg=\"control/x has no valid line\"\n"));
  start();
  pid = fork();
  if (pid == 0) {
    errno = ENOENT;
    log_usage("p", "usage: p x");
  }
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == EXIT_USAGE);
  finish();
  CHECK(EXIT_USAGE == 100 && !strcmp(got, "p event=fatal msg=\"usage: p x\"\n"));

  dup2(saved, 2);
  unlink(path);
  DONE();
}
