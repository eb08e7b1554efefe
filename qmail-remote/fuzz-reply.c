/* libFuzzer target for qmail-remote's reading of SMTP replies (make
 * fuzz-remote): the input is everything a server says, read as replies
 * one after another until the end (get_reply_within, as in a session),
 * each one's EHLO keywords parsed (parse_ehlo) and its text formatted
 * for a result (what, result_set). smtpclient.c is included so that its
 * static functions are driven as they are, reading from a memfd instead
 * of a socket.
 *
 * Checks besides memory safety: a code is three digits, 100..599; the
 * kept text is bounded and holds no control byte but LF; the extension
 * bits are known ones; a result's text is within SPAWN_TEXT. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "smtpclient.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int fd = -1;
  static struct rconf c = RCONF_INIT;
  struct smtp *s = &conn;
  struct rresult res;
  str w = STR_INIT;
  size_t i;
  int n;

  if (fd < 0 && (fd = memfd_create("replies", 0)) < 0) abort();
  if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size || lseek(fd, 0, SEEK_SET) < 0)
    abort();
  if (!c.helohost.len && str_cats(&c.helohost, "fuzz.test") < 0) abort();
  begin(s, fd, "192.0.2.1", &c);
  for (n = 0; n < 1000; n++) {
    int code = get_reply(s);
    if (code < 0) break;
    if (code < 100 || code > 999 || s->reply.len > REPLY_KEEP + 1) abort();
    for (i = 0; i < s->reply.len; i++)
      if ((unsigned char)s->reply.s[i] < 32 && s->reply.s[i] != '\n') abort();
    parse_ehlo(s);
    if (s->ext & ~(2 * EXT_DSN - 1)) abort();   /* no bit beyond the known extensions */
    if (what(s, "", &w) == 0) {
      result_set(&res, failcode(s), SPAWN_TAG_RCPT, "", w.s, w.len);
      if (res.len > SPAWN_TEXT) abort();
    }
  }
  str_free(&w);
  str_free(&s->reply);
  str_free(&s->line);
  return 0;
}
