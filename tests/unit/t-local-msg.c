/* The message window: pread bounds, From quoting, the loop check. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "../../qmail-local/deliver.h"
#include "../../qmail-local/local.h"

static int tmp_with(const char *data)
{
  char name[] = "/tmp/t-local-msg.XXXXXX";
  int fd = mkstemp(name);
  unlink(name);
  if (fd >= 0 && write(fd, data, strlen(data)) != (ssize_t)strlen(data)) { close(fd); return -1; }
  return fd;
}

/* Runs msg_copy on m into a pipe-free temp file and returns its text. */
static char *copy(const struct local_msg *m, int quote, int *lastnl)
{
  static char out[4096];
  char b[64];
  buf w;
  int fd = tmp_with("");
  ssize_t n;

  buf_init(&w, fd, b, sizeof b);
  if (msg_copy(m, &w, quote, lastnl) < 0 || buf_flush(&w) < 0) return 0;
  n = pread(fd, out, sizeof out - 1, 0);
  close(fd);
  out[n < 0 ? 0 : n] = 0;
  return out;
}

int main(void)
{
  const char *text = "XXXXFrom: a\nSubject: b\n\nFrom here\nFro\n>From x\nFrom";
  str rep = STR_INIT;
  struct local_msg m;
  int fd = tmp_with(text), lastnl;
  char *o;

  /* A window that starts at 4 and stops before the end. */
  CHECK(msg_open(&m, fd, 4, 10, &rep) == 0);
  CHECK(m.len == 10);
  o = copy(&m, 0, &lastnl);
  CHECK(o && !strcmp(o, "From: a\nSu"));
  /* Off the end: refused. */
  CHECK(msg_open(&m, fd, 4, 1000, &rep) == 111);
  CHECK(msg_open(&m, fd, 1000, DELIVER_TO_EOF, &rep) == 111);
  /* To EOF. */
  CHECK(msg_open(&m, fd, 4, DELIVER_TO_EOF, &rep) == 0);
  CHECK(m.len == strlen(text) - 4);
  o = copy(&m, 1, &lastnl);
  /* "From:" is not "From "; ">From " is left alone (qmail's quoting). */
  CHECK(o && !strcmp(o, "From: a\nSubject: b\n\n>From here\nFro\n>From x\nFrom"));
  CHECK(!lastnl);
  o = copy(&m, 0, &lastnl);
  CHECK(o && !strcmp(o, text + 4));

  CHECK(msg_header_has(&m, "subject: B", 10) == 1);
  CHECK(msg_header_has(&m, "Subject: b", 9) == 0);
  CHECK(msg_header_has(&m, "Subject: bc", 11) == 0);
  /* Only the header counts: a body line never matches. */
  CHECK(msg_header_has(&m, "From here", 9) == 0);

  /* A pipe is copied into a file first and read from there. */
  {
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(write(p[1], "Delivered-To: x@y\n\nbody\n", 24) == 24);
    close(p[1]);
    CHECK(msg_open(&m, p[0], 0, DELIVER_TO_EOF, &rep) == 0);
    CHECK(m.len == 24 && m.fd != p[0]);
    CHECK(msg_header_has(&m, "Delivered-To: x@y", 17) == 1);
    o = copy(&m, 0, &lastnl);
    CHECK(o && !strcmp(o, "Delivered-To: x@y\n\nbody\n") && lastnl);
    close(m.fd);
    close(p[0]);
  }
  str_free(&rep);
  DONE();
}
