/* libFuzzer target for qmail-smtpd's grammar (make fuzz): the command
 * splitter, MAIL/RCPT paths and parameters, BDAT arguments and the
 * DATA/BDAT decoder, all pure functions, driven without I/O.
 *
 * Besides memory safety (ASan/UBSan) it checks the decoder's contract:
 * the same input fed whole or in small pieces gives the same result, a
 * clean message holds no CR, and the end of DATA is always right after
 * a CRLF "." CRLF. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "addr.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void lines(const char *s, size_t n)
{
  static addr a = ADDR_INIT;
  size_t i = 0;

  while (i < n) {
    const char *nl = memchr(s + i, '\n', n - i);
    size_t len = nl ? (size_t)(nl - (s + i)) + 1 : n - i;
    struct cmd c;
    if (len <= CMD_MAX && cmd_parse(s + i, len, &c) == CMD_OK) {
      struct mailparams p;
      struct rcptparams rp;
      unsigned long long sz;
      int last;
      size_t k, used;
      if (c.verb == V_MAIL && (k = cmd_prefix(c.arg, c.arglen, "FROM:")) != 0
          && addr_path(c.arg + k, c.arglen - k, ADDR_EMPTY | ADDR_UTF8, &a, &used) == ADDR_OK) {
        if (used > c.arglen - k) abort();
        mail_params(c.arg + k + used, c.arglen - k - used, &p);
      }
      if (c.verb == V_RCPT && (k = cmd_prefix(c.arg, c.arglen, "TO:")) != 0
          && addr_path(c.arg + k, c.arglen - k, ADDR_NOAT, &a, &used) == ADDR_OK) {
        if (a.at > a.mbox.len || a.mbox.s[a.mbox.len] != 0) abort();
        rcpt_params(c.arg + k + used, c.arglen - k - used, &rp);
      }
      if (c.verb == V_BDAT) bdat_parse(c.arg, c.arglen, &sz, &last);
    }
    i += len;
  }
  if (addr_mailbox(s, n, ADDR_UTF8 | ADDR_NOAT, &a) == ADDR_OK && a.mbox.len != n) abort();
  {
    struct hops h;
    hops_init(&h);
    hops_feed(&h, s, n);
    if (h.count > n / 10) abort();     /* every counted line has 10+ bytes */
  }
}

struct run { size_t used, outlen; int done; unsigned flags; };

static char *out1, *out2;

static struct run decode(const char *s, size_t n, int chunking, size_t step, char *out)
{
  struct dd d;
  struct run r = { 0, 0, 0, 0 };
  dd_init(&d, chunking);
  while (r.used < n && !r.done) {
    size_t k = n - r.used < step ? n - r.used : step, o;
    r.used += dd_feed(&d, s + r.used, k, out + r.outlen, &o, &r.done);
    r.outlen += o;
  }
  r.flags = d.flags;
  return r;
}

static void decoder(const char *s, size_t n, size_t step, int chunking)
{
  struct run a = decode(s, n, chunking, n ? n : 1, out1);
  struct run b = decode(s, n, chunking, step, out2);

  if (a.used != b.used || a.done != b.done || a.flags != b.flags || a.outlen != b.outlen
      || memcmp(out1, out2, a.outlen) != 0) abort();
  if (a.outlen > 2 * a.used) abort();
  if (!a.flags && memchr(out1, '\r', a.outlen)) abort();
  if (a.done && (chunking || a.used < 3 || memcmp(s + a.used - 3, ".\r\n", 3) != 0
                 || (a.used > 3 && memcmp(s + a.used - 5, "\r\n", 2) != 0))) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data;
  size_t step = size ? (size_t)(data[0] % 7) + 1 : 1;

  out1 = malloc(2 * size + 1);
  out2 = malloc(2 * size + 1);
  if (!out1 || !out2) abort();
  lines(s, size);
  decoder(s, size, step, 0);
  decoder(s, size, step, 1);
  free(out1);
  free(out2);
  return 0;
}
