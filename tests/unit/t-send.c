/* qmail-send's pure parts: the retry schedule, the message index, recipient
 * classification, failure records and the report's structure. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "../../qmail-send/send.h"

static void put(const char *name, const char *text)
{
  int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) abort();
  close(fd);
}

static int cls(const struct rw *r, const char *a, const char *want)
{
  str o = STR_INIT;
  int c = rw_classify(r, a, strlen(a), &o);
  int ok = o.len == strlen(want) && !memcmp(o.s, want, o.len);
  if (!ok) printf("  %s -> %.*s (want %s)\n", a, (int)o.len, o.s, want);
  str_free(&o);
  return ok ? c : -2;
}

static void t_retry(void)
{
  /* local: 0, 100, 400, 900 s after birth; remote 0, 400, 1600. */
  CHECK(retry_next(1000, 1000, 10) == 1100);
  CHECK(retry_next(1000, 1100, 10) == 1400);
  CHECK(retry_next(1000, 1399, 10) == 1000 + 29 * 29);
  CHECK(retry_next(1000, 1400, 10) == 1900);
  CHECK(retry_next(1000, 1000, 20) == 1400);
  CHECK(retry_next(1000, 1400, 20) == 2600);
  CHECK(retry_next(1000, 500, 10) == 1100);            /* clock before birth */
  CHECK(retry_next(0, ~0ULL, 10) == ~0ULL);
  CHECK(retry_next(~0ULL - 5, ~0ULL, 10) == ~0ULL);    /* no wrap */
}

static void t_mtab(void)
{
  struct mtab t = MTAB_INIT;
  char q[QF_QID_MAX];
  uint32_t i, k, idx[5000];
  unsigned long long last = 0, w;
  int ok = 1;

  for (k = 0; k < 5000; k++) {
    int n = snprintf(q, sizeof q, "%u.%06u.%u", 1700000000 + k, k * 7 % 1000000, k);
    idx[k] = mt_add(&t, q, (size_t)n);
    if (idx[k] == NIL) ok = 0;
  }
  CHECK(ok);
  CHECK(t.live == 5000 && t.nready == 5000);
  CHECK(mt_find(&t, "1700000042.000294.42", 20) == idx[42]);
  CHECK(mt_birth(&t, idx[42]) == 1700000042);
  CHECK(!strcmp(mt_qid(&t, idx[42], q), "1700000042.000294.42"));
  CHECK(mt_find(&t, "1.2.3", 5) == NIL);
  CHECK(t.odd == 0);                                   /* none made by hand yet */
  /* Pop all, wait them with pseudo-random times, take them back in order. */
  for (k = 0; k < 5000; k++) {
    i = mt_ready_pop(&t);
    mt_wait(&t, i, (k * 7919ULL) % 10007);
  }
  CHECK(mt_ready_pop(&t) == NIL && t.nheap == 5000);
  /* Delete every third (from the heap and the hash). */
  for (k = 0; k < 5000; k += 3) mt_del(&t, idx[k]);
  CHECK(t.live == 5000 - 1667);
  for (k = 0; k < 5000; k++) {
    snprintf(q, sizeof q, "%u.%06u.%u", 1700000000 + k, k * 7 % 1000000, k);
    if ((mt_find(&t, q, strlen(q)) == NIL) != (k % 3 == 0)) ok = 0;
  }
  CHECK(ok);
  w = mt_due(&t, 5000, 0);
  CHECK(w > 5000 && w != ~0ULL);
  while ((i = mt_ready_pop(&t)) != NIL) {
    if (t.m[i].when < last || t.m[i].when > 5000) ok = 0;
    last = t.m[i].when;
  }
  CHECK(ok);
  CHECK(mt_due(&t, 0, 1) == ~0ULL && t.nheap == 0);
  /* Slots are reused after deletion. */
  i = mt_ready_pop(&t);
  mt_wait(&t, i, 1);
  mt_due(&t, 1, 0);
  CHECK(t.rtail == i);
  i = mt_ready_pop(&t);
  t.m[i].state = M_OPEN;
  mt_del(&t, i);
  CHECK(mt_add(&t, "9.9.9", 5) == i);
  CHECK(!strcmp(mt_qid(&t, i, q), "9.9.9") && mt_birth(&t, i) == 9);
  mt_free(&t);
}

/* Times are kept in 32 bits: a later one saturates to T_NEVER, which
 * mt_due reports as "none" (~0), as it did the 64-bit ~0. */
static void t_mtab_times(void)
{
  struct mtab t = MTAB_INIT;
  uint32_t a = mt_add(&t, "1700000000.000001.7", 19), b = mt_add(&t, "1700000000.000002.7", 19);

  CHECK(t32(0) == 0 && t32(4294967294ULL) == 4294967294u && t32(4294967295ULL) == T_NEVER &&
        t32(~0ULL) == T_NEVER);
  mt_ready_pop(&t);
  mt_ready_pop(&t);
  mt_wait(&t, a, ~0ULL);
  mt_wait(&t, b, 1ULL << 40);
  CHECK(t.m[a].when == T_NEVER && t.m[b].when == T_NEVER);
  CHECK(mt_due(&t, 4000000000ULL, 0) == ~0ULL && t.nheap == 2);
  CHECK(mt_due(&t, 0, 1) == ~0ULL && t.nready == 2);
  mt_free(&t);
}

/* Qids that do not split (leading zeros, a short usec, numbers past 32
 * bits) keep their own text, side by side with split ones that would
 * read alike as numbers. */
static void t_mtab_odd(void)
{
  static const char *const odd[] = {
    "1700000000.1.7", "01700000000.000001.7", "1700000000.000001.07",
    "4294967296.000001.7", "1700000000.000001.4294967296",
    "18446744073709551615.999999.1", "0.0000001.7",
  };
  struct mtab t = MTAB_INIT;
  char q[QF_QID_MAX];
  uint32_t split, o[7], i, k;
  int ok = 1;

  split = mt_add(&t, "1700000000.000001.7", 19);
  for (k = 0; k < 7; k++) {
    o[k] = mt_add(&t, odd[k], strlen(odd[k]));
    if (o[k] == NIL || t.m[o[k]].q[1] != Q_ODD || strcmp(mt_qid(&t, o[k], q), odd[k])) ok = 0;
  }
  CHECK(ok && t.m[split].q[1] != Q_ODD && t.live == 8);
  for (k = 0; k < 7; k++) if (mt_find(&t, odd[k], strlen(odd[k])) != o[k]) ok = 0;
  CHECK(ok);
  CHECK(mt_find(&t, "1700000000.000001.7", 19) == split);
  CHECK(mt_birth(&t, o[5]) == 18446744073709551615ULL);
  CHECK(mt_birth(&t, o[3]) == 4294967296ULL);
  /* The largest split numbers, and growth past the first table with odd
   * ones in it: every name is still found, with its own text. */
  CHECK((i = mt_add(&t, "4294967295.999999.4294967295", 28)) != NIL && t.m[i].q[1] != Q_ODD);
  CHECK(mt_birth(&t, i) == 4294967295ULL);
  for (k = 0; k < 3000; k++) {
    int n = snprintf(q, sizeof q, k % 2 ? "%u.%u.%u" : "%u.%06u.%u", 1800000000 + k, k, k);
    if (mt_add(&t, q, (size_t)n) == NIL) ok = 0;
  }
  CHECK(ok && t.cap > 1024);
  for (k = 0; k < 3000; k++) {
    char want[QF_QID_MAX];
    int n = snprintf(want, sizeof want, k % 2 ? "%u.%u.%u" : "%u.%06u.%u", 1800000000 + k, k, k);
    i = mt_find(&t, want, (size_t)n);
    if (i == NIL || strcmp(mt_qid(&t, i, q), want)) ok = 0;
  }
  CHECK(ok);
  for (k = 0; k < 7; k++) {
    t.m[o[k]].state = M_OPEN;
    mt_del(&t, o[k]);
    if (t.odd[o[k]] || mt_find(&t, odd[k], strlen(odd[k])) != NIL) ok = 0;
  }
  CHECK(ok && mt_find(&t, "1700000000.000001.7", 19) == split);
  mt_free(&t);
}

static void t_rewrite(void)
{
  struct rw r = RW_INIT;
  char dir[] = "/tmp/t-send.XXXXXX";

  if (!mkdtemp(dir) || chdir(dir) < 0 || mkdir("control", 0755) < 0 || mkdir("queue", 0755) < 0 ||
      mkdir("queue/bounce", 0700) < 0) abort();
  CHECK(rw_load(&r) < 0);                              /* no control/me */
  put("control/me", "Mail.Example.TEST\n");
  CHECK(rw_load(&r) == 0);
  CHECK(cls(&r, "joe@mail.example.test", "joe@mail.example.test") == CH_LOCAL);
  CHECK(cls(&r, "joe@MAIL.example.Test", "joe@MAIL.example.Test") == CH_LOCAL);
  CHECK(cls(&r, "joe", "joe@Mail.Example.TEST") == CH_LOCAL);
  CHECK(cls(&r, "joe@other.test", "joe@other.test") == CH_REMOTE);
  put("control/locals", "# comment\nexample.test\nlocalhost\n");
  put("control/envnoathost", "elsewhere.test\n");
  put("control/virtualdomains",
      "virt.test:vuser\nbob@virt.test:bobby\n.sub.test:subu\nno.sub.test:\nnocolon\n");
  CHECK(rw_load(&r) == 0);
  CHECK(cls(&r, "joe@mail.example.test", "joe@mail.example.test") == CH_REMOTE);
  CHECK(cls(&r, "joe@EXAMPLE.test", "joe@EXAMPLE.test") == CH_LOCAL);
  CHECK(cls(&r, "joe", "joe@elsewhere.test") == CH_REMOTE);
  CHECK(cls(&r, "ann@Virt.Test", "vuser-ann@Virt.Test") == CH_LOCAL);
  CHECK(cls(&r, "Bob@virt.test", "bobby-Bob@virt.test") == CH_LOCAL);
  CHECK(cls(&r, "x@a.sub.test", "subu-x@a.sub.test") == CH_LOCAL);
  CHECK(cls(&r, "x@no.sub.test", "x@no.sub.test") == CH_REMOTE);   /* exception */
  CHECK(cls(&r, "x@sub.test", "x@sub.test") == CH_REMOTE);
  CHECK(cls(&r, "\"a@b\"@virt.test", "vuser-\"a@b\"@virt.test") == CH_LOCAL);
  put("control/virtualdomains", ":catch\n");
  CHECK(rw_load(&r) == 0);
  CHECK(cls(&r, "x@any.test", "catch-x@any.test") == CH_LOCAL);
  rw_free(&r);
}

static int why_is(const char *text, int ch, const char *status, const char *type, const char *diag)
{
  struct dsn_why w;
  dsn_why(text, strlen(text), ch, &w);
  return !strcmp(w.status, status) && !strcmp(w.type, type) &&
         w.tn == strlen(diag) && !memcmp(w.text, diag, w.tn);
}

/* The texts qmail-remote and qmail-local give (spawnproto.h), as the
 * bounce file holds them. */
static void t_dsn_why(void)
{
  CHECK(why_is("rcpt: 192.0.2.1 said: 550 5.1.1 <a@b.test> no such user", CH_REMOTE,
               "5.1.1", "smtp", "550 5.1.1 <a@b.test> no such user"));
  CHECK(why_is("rcpt: 192.0.2.1 said: 550-5.7.1 first line 550 5.7.1 second", CH_REMOTE,
               "5.7.1", "smtp", "550-5.7.1 first line 550 5.7.1 second"));
  CHECK(why_is("data: 192.0.2.1 said: 554 transaction failed", CH_REMOTE,
               "5.0.0", "smtp", "554 transaction failed"));
  /* An enhanced code of another class than the reply's is not believed. */
  CHECK(why_is("rcpt: 192.0.2.1 said: 550 2.1.5 odd", CH_REMOTE, "5.0.0", "smtp", "550 2.1.5 odd"));
  CHECK(why_is("dns: null.test: does not accept mail, null MX (5.1.10, RFC 7505)", CH_REMOTE,
               "5.1.10", "X-qmail", "dns: null.test: does not accept mail, null MX (5.1.10, RFC 7505)"));
  CHECK(why_is("dns: nx.test: no such domain (5.1.2)", CH_REMOTE,
               "5.1.2", "X-qmail", "dns: nx.test: no such domain (5.1.2)"));
  CHECK(why_is("mail: 192.0.2.1 does not support SMTPUTF8, which this message needs (5.6.7)",
               CH_REMOTE, "5.6.7", "X-qmail",
               "mail: 192.0.2.1 does not support SMTPUTF8, which this message needs (5.6.7)"));
  CHECK(why_is("local: bad address in the envelope", CH_REMOTE, "5.0.0", "X-qmail",
               "local: bad address in the envelope"));
  CHECK(why_is("no mailbox here by that name (5.1.1)", CH_LOCAL, "5.1.1", "X-qmail",
               "no mailbox here by that name (5.1.1)"));
  /* A local text is never an SMTP reply, whatever it looks like. */
  CHECK(why_is("x: 1 said: 550 5.1.1 no", CH_LOCAL, "5.0.0", "X-qmail", "x: 1 said: 550 5.1.1 no"));
  CHECK(why_is(DSN_EXPIRED "rcpt: 192.0.2.1 said: 451 4.3.0 try later", CH_REMOTE,
               "4.4.7", "smtp", "451 4.3.0 try later"));
  CHECK(why_is(DSN_EXPIRED "connect: 192.0.2.1: connection refused", CH_REMOTE,
               "4.4.7", "X-qmail", "connect: 192.0.2.1: connection refused"));
  CHECK(why_is(DSN_EXPIRED "mailbox full", CH_LOCAL, "4.4.7", "X-qmail", "mailbox full"));
}

static void t_dsn(void)
{
  char st[16];
  struct dsn_fail f[4];
  struct dsn_cfg c = { "me.test", "MAILER-DAEMON", "bh.test", "postmaster", "dbh.test", 0, 0, 0, "", "" };
  const char *text = "550 5.1.1 no such user here, really, and this sentence goes on long enough to need folding";
  str o = STR_INIT;
  int fd;
  char buf[4096];
  ssize_t n;

  dsn_status("5.1.1 unknown", 13, st); CHECK(!strcmp(st, "5.1.1"));
  dsn_status("550 5.7.1 no", 12, st); CHECK(!strcmp(st, "5.7.1"));
  dsn_status("4.2.2 full", 10, st); CHECK(!strcmp(st, "5.2.2"));
  dsn_status("550-5.1.10 x", 12, st); CHECK(!strcmp(st, "5.1.10"));
  dsn_status("5.1.1234 x", 10, st); CHECK(!strcmp(st, "5.0.0"));
  dsn_status("user unknown", 12, st); CHECK(!strcmp(st, "5.0.0"));
  dsn_status("5.1", 3, st); CHECK(!strcmp(st, "5.0.0"));
  dsn_status("", 0, st); CHECK(!strcmp(st, "5.0.0"));
  t_dsn_why();

  CHECK(bounce_append("1.2.3", 2, CH_REMOTE, "a@b.test", 8, "550 no\nsuch", 11) == 0);
  /* A torn record, then a good one, then a second record for index 2. */
  fd = open("queue/bounce/1.2.3", O_WRONLY | O_APPEND);
  CHECK(fd >= 0 && write(fd, "\n0\0L\0torn@x", 11) == 11);
  close(fd);
  CHECK(bounce_append("1.2.3", 0, CH_LOCAL, "c@d.test", 8, "5.1.1 gone", 10) == 0);
  CHECK(bounce_append("1.2.3", 2, CH_REMOTE, "a@b.test", 8, "554 second", 10) == 0);
  CHECK(bounce_append("1.2.3", 9, CH_REMOTE, "z@b.test", 8, "554 out of range", 16) == 0);
  fd = open("queue/bounce/1.2.3", O_RDONLY);
  n = read(fd, buf, sizeof buf);
  close(fd);
  memset(f, 0, sizeof f);
  dsn_parse(buf, n > 0 ? (size_t)n : 0, f, 4);
  CHECK(f[0].rcpt && f[0].rn == 8 && !memcmp(f[0].rcpt, "c@d.test", 8) && f[0].ch == CH_LOCAL);
  CHECK(f[0].tn == 10 && !memcmp(f[0].text, "5.1.1 gone", 10));
  CHECK(!f[1].rcpt && !f[3].rcpt);
  CHECK(f[2].rcpt && f[2].tn == 10 && !memcmp(f[2].text, "554 second", 10));
  CHECK(memmem(buf, (size_t)n, "550 no such", 11) != 0);   /* newline made a space */

  f[0].rcpt = "a@b.test"; f[0].rn = 8; f[0].ch = CH_REMOTE; f[0].text = text; f[0].tn = strlen(text);
  CHECK(dsn_build(&o, &c, "1.2.3", "s@x.test", 1000, 2000, f, 1, 0, 0,
                  "Received: x\nSubject: hi\n", 24, 0) == 0);
  CHECK(str_0(&o) == 0);
  CHECK(strstr(o.s, "From: MAILER-DAEMON@bh.test\n") != 0);
  CHECK(strstr(o.s, "To: s@x.test\n") != 0);
  CHECK(strstr(o.s, "multipart/report; report-type=delivery-status;") != 0);
  CHECK(strstr(o.s, "\nReporting-MTA: dns; me.test\n") != 0);
  CHECK(strstr(o.s, "\nFinal-Recipient: rfc822; a@b.test\nAction: failed\nStatus: 5.1.1\n") != 0);
  CHECK(strstr(o.s, "Diagnostic-Code: smtp; 550 5.1.1") != 0);
  CHECK(strstr(o.s, "Content-Type: message/delivery-status\n") != 0);
  CHECK(strstr(o.s, "Content-Type: text/rfc822-headers\n\nReceived: x\nSubject: hi\n") != 0);
  {
    /* No line over 998; the folded header unfolds to the text. */
    const char *p = o.s, *nl;
    int longest = 0;
    for (; (nl = strchr(p, '\n')); p = nl + 1) if (nl - p > longest) longest = (int)(nl - p);
    CHECK(longest <= 998);
  }
  /* A UTF-8 recipient: message/global-delivery-status, type utf-8. */
  memset(f, 0, sizeof f);
  f[0].rcpt = "j\xc3\xb6rg@b.test"; f[0].rn = strlen(f[0].rcpt); f[0].ch = CH_REMOTE;
  f[0].text = "rcpt: 192.0.2.1 said: 550 5.1.1 unknown"; f[0].tn = strlen(f[0].text);
  f[1].rcpt = "a@b.test"; f[1].rn = 8; f[1].ch = CH_LOCAL;
  f[1].text = "no mailbox here by that name (5.1.1)"; f[1].tn = strlen(f[1].text);
  CHECK(dsn_build(&o, &c, "1.2.3", "s@x.test", 1000, 2000, f, 2, 0, 0, "Subject: hi\n", 12, 0) == 0);
  CHECK(str_0(&o) == 0);
  CHECK(strstr(o.s, "Content-Type: message/global-delivery-status\n") != 0);
  CHECK(strstr(o.s, "message/delivery-status") == 0);
  CHECK(strstr(o.s, "\nFinal-Recipient: utf-8; j\xc3\xb6rg@b.test\nAction: failed\nStatus: 5.1.1\n"
                    "Diagnostic-Code: smtp; 550 5.1.1 unknown\n") != 0);
  CHECK(strstr(o.s, "\nFinal-Recipient: rfc822; a@b.test\nAction: failed\nStatus: 5.1.1\n"
                    "Diagnostic-Code: X-qmail; no mailbox here by that name (5.1.1)\n") != 0);
  str_free(&o);
}

int main(void)
{
  t_retry();
  t_mtab();
  t_mtab_odd();
  t_mtab_times();
  t_rewrite();
  t_dsn();
  DONE();
}
