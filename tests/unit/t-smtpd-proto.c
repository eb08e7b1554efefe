/* qmail-smtpd/proto.c: command splitting, MAIL parameters, BDAT
 * arguments, and the DATA decoder's handling of smuggling attempts. */
#include <string.h>
#include "check.h"
#include "dsnparam.h"
#include "../../qmail-smtpd/proto.h"

static struct cmd c;

static int cmd(const char *s) { return cmd_parse(s, strlen(s), &c); }
static int argis(const char *s) { return c.arglen == strlen(s) && memcmp(c.arg, s, c.arglen) == 0; }

static char out[8192];
static size_t outlen;

/* Decodes all of s in one piece (chunk 0) or byte by byte (chunk 1);
 * returns bytes consumed, with the decoded text in out. */
static size_t decode(struct dd *d, const char *s, size_t n, int bytewise, int *done)
{
  size_t used = 0, o;
  outlen = 0;
  *done = 0;
  while (used < n && !*done) {
    size_t k = bytewise ? 1 : n - used;
    used += dd_feed(d, s + used, k, out + outlen, &o, done);
    outlen += o;
  }
  return used;
}

/* For both chunkings: does DATA end, where, with which flags, giving what. */
static int data(const char *s, size_t endpos, unsigned flags, const char *text)
{
  int ok = 1, bw;
  for (bw = 0; bw < 2; bw++) {
    struct dd d;
    int done;
    size_t used;
    dd_init(&d, 0);
    used = decode(&d, s, strlen(s), bw, &done);
    if (endpos) ok &= done && used == endpos;
    else ok &= !done && used == strlen(s);
    ok &= d.flags == flags;
    if (text) ok &= outlen == strlen(text) && memcmp(out, text, outlen) == 0;
  }
  return ok;
}

/* The decoder as it was first written, one byte at a time through the
 * state machine: dd_feed, which copies runs of plain bytes at once, must
 * give the same bytes, flags, line length and end on any input. */
enum { R_BOL, R_MID, R_CR, R_DOT, R_DOTCR };
struct refdd { int state, chunking; unsigned flags; size_t linelen; };

static void ref_count(struct refdd *d, size_t k)
{
  d->linelen = d->linelen > TEXT_MAX ? d->linelen : d->linelen + k;
  if (d->linelen > TEXT_MAX) d->flags |= DD_LONG;
}

static size_t ref_feed(struct refdd *d, const char *in, size_t n, char *o, size_t *olen, int *done)
{
  size_t i, k = 0;
  *done = 0;
  for (i = 0; i < n; i++) {
    char ch = in[i];
    if (ch == 0) d->flags |= DD_NUL;
    if (d->state == R_DOTCR) {
      if (ch == '\n') { *olen = k; *done = 1; return i + 1; }
      d->flags |= DD_BARECR; o[k++] = '\r'; ref_count(d, 1); d->state = R_MID;
    } else if (d->state == R_CR) {
      if (ch == '\n') { o[k++] = '\n'; ref_count(d, 2); d->linelen = 0; d->state = R_BOL; continue; }
      d->flags |= DD_BARECR; o[k++] = '\r'; ref_count(d, 1); d->state = R_MID;
    } else if (d->state == R_BOL) {
      if (ch == '.' && !d->chunking) { d->state = R_DOT; continue; }
      d->state = R_MID;
    } else if (d->state == R_DOT) {
      if (ch == '\r') { d->state = R_DOTCR; continue; }
      d->state = R_MID;
    }
    if (ch == '\r') { d->state = R_CR; continue; }
    if (ch == '\n') { d->flags |= DD_BARELF; o[k++] = '\n'; d->linelen = 0; continue; }
    o[k++] = ch;
    ref_count(d, 1);
  }
  *olen = k;
  return n;
}

static unsigned long long rnd = 88172645463325252ULL;
static unsigned long long next_rnd(void)
{
  rnd ^= rnd << 13; rnd ^= rnd >> 7; rnd ^= rnd << 17;
  return rnd;
}

/* Random text over the bytes that matter, with long runs of other bytes
 * now and then, fed to both decoders in the same random pieces. */
static int same_as_ref(int chunking)
{
  static char in[6000], a[12000], b[12000];
  static const char alpha[] = "ab.\r\n\r\n.\0";
  size_t n = 0, used = 0, la = 0, lb = 0;
  struct dd d;
  struct refdd r = { R_BOL, 0, 0, 0 };
  int da = 0, db = 0;

  while (n < sizeof in) {
    if (next_rnd() % 16 == 0) {
      /* Bytes next to the special ones, and high ones, for the 8-byte test. */
      static const char run[] = "x\x80\xff\x01\x0b\x0e\x0c\x09.";
      size_t k = next_rnd() % 1100, j;
      if (k > sizeof in - n) k = sizeof in - n;
      for (j = 0; j < k; j++) in[n + j] = next_rnd() % 4 ? 'x' : run[next_rnd() % (sizeof run - 1)];
      n += k;
    } else {
      in[n++] = alpha[next_rnd() % (sizeof alpha - 1)];
    }
  }
  dd_init(&d, chunking);
  r.chunking = chunking;
  while (used < n && !da) {
    size_t k = 1 + next_rnd() % 200, oa, ob, ua, ub;
    if (k > n - used) k = n - used;
    ua = dd_feed(&d, in + used, k, a + la, &oa, &da);
    ub = ref_feed(&r, in + used, k, b + lb, &ob, &db);
    if (ua != ub || da != db || oa != ob) return 0;
    la += oa;
    lb += ob;
    used += ua;
  }
  /* Past TEXT_MAX a line's length only has to stay past it. */
  return la == lb && memcmp(a, b, la) == 0 && d.flags == r.flags && d.state == r.state
         && (d.linelen > TEXT_MAX ? r.linelen > TEXT_MAX : d.linelen == r.linelen);
}

int main(void)
{
  struct mailparams p;
  struct rcptparams rp;
  unsigned long long size;
  int last;
  char longline[1100];

  /* Commands. */
  CHECK(cmd("HELO x.test\r\n") == CMD_OK && c.verb == V_HELO && argis("x.test"));
  CHECK(cmd("ehlo x\r\n") == CMD_OK && c.verb == V_EHLO);
  CHECK(cmd("MAIL FROM:<a@b>\r\n") == CMD_OK && c.verb == V_MAIL && argis("FROM:<a@b>"));
  CHECK(cmd("QUIT\r\n") == CMD_OK && c.verb == V_QUIT && c.arglen == 0);
  CHECK(cmd("STARTTLS\r\n") == CMD_OK && c.verb == V_STARTTLS);
  CHECK(cmd("QUITX\r\n") == CMD_OK && c.verb == V_UNKNOWN);
  CHECK(cmd("\r\n") == CMD_OK && c.verb == V_UNKNOWN);
  CHECK(cmd("QUIT\n") == CMD_BARELF);
  CHECK(cmd("NOOP\rQUIT\r\n") == CMD_BARECR);
  CHECK(cmd("NOOP\r\r\n") == CMD_BARECR);
  CHECK(cmd_parse("NO\0OP\r\n", 7, &c) == CMD_NUL);
  CHECK(cmd("NOOP") == CMD_BARELF);
  CHECK(cmd_prefix("from: <a>", 9, "FROM:") == 6);
  CHECK(cmd_prefix("FROM:<a>", 8, "FROM:") == 5);
  CHECK(cmd_prefix("FRO:<a>", 7, "FROM:") == 0);

  /* MAIL parameters. */
  CHECK(mail_params("", 0, &p) == PARAM_OK && !p.has_size && !p.utf8 && !p.ret && !p.envid);
  CHECK(mail_params(" SIZE=1000", 10, &p) == PARAM_OK && p.has_size && p.size == 1000);
  CHECK(mail_params(" size=1 body=8bitmime smtputf8", 30, &p) == PARAM_OK && p.body8 && p.utf8);
  CHECK(mail_params(" BODY=7BIT", 10, &p) == PARAM_OK && !p.body8);
  CHECK(mail_params(" BODY=BINARYMIME", 16, &p) == PARAM_UNKNOWN);
  CHECK(mail_params(" FOO=BAR", 8, &p) == PARAM_UNKNOWN);
  CHECK(mail_params(" SIZE=", 6, &p) == PARAM_SYNTAX);
  CHECK(mail_params(" SIZE=12x", 9, &p) == PARAM_SYNTAX);
  CHECK(mail_params(" SIZE=99999999999999999999", 26, &p) == PARAM_SYNTAX);
  CHECK(mail_params(" SIZE=1 SIZE=2", 14, &p) == PARAM_SYNTAX);
  CHECK(mail_params(" SMTPUTF8=1", 11, &p) == PARAM_SYNTAX);
  CHECK(mail_params("SIZE=1", 6, &p) == PARAM_SYNTAX);
  CHECK(mail_params(" =1", 3, &p) == PARAM_SYNTAX);
  CHECK(mail_params(" -X", 3, &p) == PARAM_SYNTAX);
  CHECK(rcpt_params("", 0, &rp) == PARAM_OK && !rp.notify && !rp.orcpt);
  CHECK(rcpt_params(" NOTIFY=NEVER", 13, &rp) == PARAM_OK && rp.notify == DSN_NOTIFY_NEVER);
  CHECK(rcpt_params(" notify=success,Delay ORCPT=rfc822;a+2Bb@x.test", 47, &rp) == PARAM_OK &&
        rp.notify == (DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY) && rp.orcptn == 19 &&
        !memcmp(rp.orcpt, "rfc822;a+2Bb@x.test", 19));
  CHECK(rcpt_params(" NOTIFY=NEVER,SUCCESS", 21, &rp) == PARAM_DSN && rp.why);
  CHECK(rcpt_params(" NOTIFY=SUCCESS,SUCCESS", 23, &rp) == PARAM_DSN);
  CHECK(rcpt_params(" NOTIFY=SOMETIMES", 17, &rp) == PARAM_DSN);
  CHECK(rcpt_params(" NOTIFY=", 8, &rp) == PARAM_SYNTAX);
  CHECK(rcpt_params(" NOTIFY", 7, &rp) == PARAM_SYNTAX);
  CHECK(rcpt_params(" NOTIFY=NEVER NOTIFY=NEVER", 26, &rp) == PARAM_DSN);
  CHECK(rcpt_params(" ORCPT=rfc822", 13, &rp) == PARAM_DSN);
  CHECK(rcpt_params(" ORCPT=;a@b", 11, &rp) == PARAM_DSN);
  CHECK(rcpt_params(" ORCPT=rfc822;a+01b", 19, &rp) == PARAM_DSN);     /* a control byte */
  CHECK(rcpt_params(" ORCPT=utf-8;j+C3+B6rg@x", 24, &rp) == PARAM_OK);
  CHECK(rcpt_params(" ORCPT=rfc822;a+2g@b", 20, &rp) == PARAM_DSN);      /* lower-case hex */
  CHECK(rcpt_params(" ORCPT=rfc822;a+0D@b", 20, &rp) == PARAM_DSN);      /* CR */
  CHECK(rcpt_params(" ORCPT=rfc822;a+", 16, &rp) == PARAM_DSN);
  CHECK(rcpt_params(" RET=FULL", 9, &rp) == PARAM_UNKNOWN);
  CHECK(rcpt_params(" FOO=1", 6, &rp) == PARAM_UNKNOWN);
  CHECK(mail_params(" RET=hdrs ENVID=QQ+2B1", 22, &p) == PARAM_OK && p.ret == 'H' &&
        p.envidn == 6 && !memcmp(p.envid, "QQ+2B1", 6));
  CHECK(mail_params(" RET=FULL", 9, &p) == PARAM_OK && p.ret == 'F' && !p.envid);
  CHECK(mail_params(" RET=SOME", 9, &p) == PARAM_DSN && p.why);
  CHECK(mail_params(" RET=FULL RET=HDRS", 18, &p) == PARAM_DSN);
  CHECK(mail_params(" ENVID=a+0Ab", 12, &p) == PARAM_DSN);             /* LF */
  CHECK(mail_params(" ENVID=a+C3b", 12, &p) == PARAM_DSN);             /* not ASCII */
  CHECK(mail_params(" ENVID=0123456789012345678901234567890123456789012345678901234567890123456789"
                    "0123456789012345678901234567890", 108, &p) == PARAM_DSN);  /* 101 */
  CHECK(mail_params(" NOTIFY=NEVER", 13, &p) == PARAM_UNKNOWN);

  /* BDAT. */
  CHECK(bdat_parse("100", 3, &size, &last) == 0 && size == 100 && !last);
  CHECK(bdat_parse("0 LAST", 6, &size, &last) == 0 && size == 0 && last);
  CHECK(bdat_parse("5 last", 6, &size, &last) == 0 && last);
  CHECK(bdat_parse("", 0, &size, &last) < 0);
  CHECK(bdat_parse("x", 1, &size, &last) < 0);
  CHECK(bdat_parse("5 LAST x", 8, &size, &last) < 0);
  CHECK(bdat_parse("5  LAST", 7, &size, &last) < 0);
  CHECK(bdat_parse("-1", 2, &size, &last) < 0);

  /* DATA: the normal cases. */
  CHECK(data(".\r\n", 3, 0, ""));
  CHECK(data("a\r\n.\r\n", 6, 0, "a\n"));
  CHECK(data("a\r\n.\r\nQUIT\r\n", 6, 0, "a\n"));
  CHECK(data("..x\r\n.\r\n", 8, 0, ".x\n"));
  CHECK(data("...\r\n.\r\n", 8, 0, "..\n"));
  CHECK(data(".x\r\n.\r\n", 7, 0, "x\n"));
  CHECK(data("a\r\n.\r", 0, 0, "a\n"));
  CHECK(data("\r\n\r\n.\r\n", 7, 0, "\n\n"));
  /* Smuggling: none of these ends the message; each is flagged. */
  CHECK(data("a\n.\nMAIL FROM:<x>\r\n", 0, DD_BARELF, 0));
  CHECK(data("a\r\n.\nMAIL\r\n", 0, DD_BARELF, 0));
  CHECK(data("a\n.\r\nMAIL\r\n", 0, DD_BARELF, 0));
  CHECK(data("a\r.\r\nMAIL\r\n", 0, DD_BARECR, 0));
  CHECK(data("a\r\n.\rMAIL\r\n", 0, DD_BARECR, 0));
  CHECK(data("a\r.\rMAIL\r\n", 0, DD_BARECR, 0));
  CHECK(data("a\r\r\n.\r\n", 7, DD_BARECR, 0));  /* CR CR LF: the first CR is bare */
  CHECK(data("a\n\r\n.\r\n", 7, DD_BARELF, 0));  /* after LF CRLF, "." is at a line start */
  CHECK(data("a\r\n.\n.\r\n", 0, DD_BARELF, 0));
  CHECK(data("a\r\n.\n\r\n.\r\n", 10, DD_BARELF, 0));
  CHECK(data(".\n", 0, DD_BARELF, 0));
  CHECK(data(".\r", 0, 0, 0));
  CHECK(data(".\rx", 0, DD_BARECR, 0));
  {
    struct dd d;
    int done;
    dd_init(&d, 0);
    CHECK(decode(&d, "a\0b\r\n.\r\n", 8, 0, &done) == 8 && done && d.flags == DD_NUL);
  }
  /* Line length: 998 + CRLF is fine; 999 + CRLF is not. */
  memset(longline, 'x', 998);
  memcpy(longline + 998, "\r\n.\r\n", 6);
  CHECK(data(longline, 1003, 0, 0));
  memset(longline, 'x', 999);
  memcpy(longline + 999, "\r\n.\r\n", 6);
  CHECK(data(longline, 1004, DD_LONG, 0));
  /* A stuffed dot does not count. */
  longline[0] = '.';
  memset(longline + 1, 'x', 998);
  memcpy(longline + 999, "\r\n.\r\n", 6);
  CHECK(data(longline, 1004, 0, 0));

  /* BDAT chunks: no dots, no end, same line checks. */
  {
    struct dd d;
    int done;
    dd_init(&d, 1);
    CHECK(decode(&d, ".\r\n..x\r\n", 8, 0, &done) == 8 && !done && d.flags == 0);
    CHECK(outlen == 6 && memcmp(out, ".\n..x\n", 6) == 0);
    CHECK(decode(&d, "a\r", 2, 0, &done) == 2 && dd_finish(&d) == DD_BARECR);
    dd_init(&d, 1);
    CHECK(decode(&d, "a\r", 2, 0, &done) == 2 && decode(&d, "\nb", 2, 0, &done) == 2);
    CHECK(dd_finish(&d) == 0);
    dd_init(&d, 1);
    decode(&d, "a\nb", 3, 1, &done);
    CHECK(dd_finish(&d) == DD_BARELF);
  }
  /* The run-copying decoder against the byte-at-a-time one. */
  {
    int i, same = 1;
    for (i = 0; i < 400; i++) same &= same_as_ref(i & 1);
    CHECK(same);
  }
  /* Hop counting: header lines only, case ignored, continuation lines not. */
  {
    struct hops h;
    const char *m = "Received: a\nDELIVERED-TO: b\n received: c\nX-Received: d\nreceived:e\n"
                    "\nReceived: in the body\n";
    hops_init(&h);
    hops_feed(&h, m, strlen(m));
    CHECK(h.count == 3 && !h.inhdr);
    hops_init(&h);
    hops_feed(&h, "Recei", 5);
    hops_feed(&h, "ved: x\nRe", 9);
    hops_feed(&h, "ceived: y\n", 10);
    CHECK(h.count == 2 && h.inhdr);
    hops_init(&h);
    hops_feed(&h, "Received:\n", 10);
    CHECK(h.count == 1);
  }
  DONE();
}
