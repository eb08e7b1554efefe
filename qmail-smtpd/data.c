/* DATA and BDAT for qmail-smtpd: the message goes to the queue while it
 * is read, so memory stays bounded whatever its size.
 *
 * When the first byte of the message is due, two pipes are made: the
 * message's and the envelope's (qmail-queue(8)). Their read ends go to
 * qmail-queued over its socket (lib/qqclient.h), which saves a process
 * per message; when $QMAILQUEUE is set, or qmail-queued does not run or
 * is full, they become fd 0 and fd 1 of qmail-queue (or $QMAILQUEUE)
 * instead. Both answer with qmail-queue's exit codes. The message is
 * decoded (CRLF -> LF, dots unstuffed) and checked as it streams; if it
 * turns out bad, too big, or the client goes away, both pipes are closed
 * without the envelope's final NUL, so nothing is queued. Every bad
 * message is read to its end before the reply, so the client's next bytes
 * are a command.
 *
 * Replies after the message:
 *   250 2.0.0   qmail-queue exited 0: the message is queued
 *   554 5.6.0   bare CR or LF, NUL, or a line over 1000 octets
 *   552 5.3.4   over control/databytes
 *   554 5.4.6   MAXHOPS Received:/Delivered-To: header lines: a loop
 *   550 5.7.1   a filter refused it for its From: domain's DMARC policy
 *               (exit QQ_DMARC)
 *   554 5.3.0   qmail-queue refused it for good (exit 11..40)
 *   451 4.3.0   any other qmail-queue failure (temporary)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "auth.h"
#include "control.h"
#include "date.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "qq.h"
#include "qqclient.h"
#include "smtpd.h"

#define QQD_WAIT 10            /* seconds for qmail-queued's go-ahead */

static struct {
  struct qq child;             /* qmail-queue; its pipes are msg and envfd */
  int sock;                    /* qmail-queued's socket, -1 when none */
  pid_t last;                  /* the last qmail-queue started: the qid it
                                  makes ends in ".<pid>", so logging it ties
                                  this session's message to qmail-send's
                                  lines about it */
  char qid[QF_QID_MAX];        /* qmail-queued's answer, "" when none */
  int envfd;
  int broken;                  /* a write to it failed: it is gone */
  buf msg;
  char msgbuf[16384];
} qq = { .child = QQ_INIT, .sock = -1 };

static struct dd dec;
static struct hops hops;
static unsigned long long msgbytes;   /* the message's size as SIZE counts it */
static int over;               /* over databytes */

static void qq_close(void)
{
  if (qq.msg.fd >= 0) close(qq.msg.fd);
  if (qq.envfd >= 0) close(qq.envfd);
  qq.msg.fd = qq.envfd = -1;
}

static int qq_running(void)
{
  return qq.child.pid || qq.sock >= 0;
}

/* Waits for the answer: qmail-queue's exit code, or -1 if there is none
 * (it was killed; qmail-queued closed or did not answer in time). */
static int qq_answer(void)
{
  int st;
  if (qq.sock >= 0) {
    st = qqd_result(qq.sock, qq.qid, qq.msg.timeout);
    close(qq.sock);
    qq.sock = -1;
    return st;
  }
  if (!qq.child.pid) return -1;
  st = qq_wait(&qq.child);
  return st >= QQ_SIGNAL ? -1 : st;
}

/* Closing both pipes before the envelope is complete makes qmail-queue
 * give up: nothing is queued. */
static void qq_abort(void)
{
  if (!qq_running()) return;
  qq_close();
  if (qq.sock >= 0) {          /* a hang-up: qmail-queued drops the message */
    close(qq.sock);
    qq.sock = -1;
  }
  qq_answer();
}

void txn_reset(void)
{
  qq_abort();
  ss.inmail = ss.utf8 = ss.bdat = 0;
  ss.sender.len = ss.env.len = ss.mailp.len = 0;
  ss.nrcpt = 0;
}

/* The two pipes: the message's and the envelope's; the write ends are
 * ours (qq.msg, qq.envfd), the read ends m[0], e[0] go to the writer. */
static int qq_pipes(int m[2], int e[2])
{
  if (pipe2(m, O_CLOEXEC) < 0) return -1;
  if (pipe2(e, O_CLOEXEC) < 0) { close(m[0]); close(m[1]); return -1; }
  return 0;
}

static void qq_close4(int m[2], int e[2])
{
  close(m[0]); close(m[1]); close(e[0]); close(e[1]);
}

/* Why qmail-queued was not used, as a word: each of these is a normal
 * fallback (the message goes through qmail-queue), not an error. */
static const char *fallback_reason(int e)
{
  switch (e) {
  case EBUSY: return "busy";                 /* all its slots taken: 'B' */
  case EAGAIN: return "backlog-full";        /* it does not accept fast enough */
  case ETIMEDOUT: return "no-answer";        /* stopped, or too slow */
  case EPIPE: case ECONNRESET: return "closed";   /* it dropped us (stopping, or out of resources) */
  case ETOOMANYREFS: return "fd-passing-limit";   /* descriptors in flight to it: the kernel's cap */
  default: return 0;
  }
}

/* qmail-queued. On failure its pipes are dropped, never passed on: a
 * server that did not answer in time may still hold their read ends, and
 * two readers of one message would each take part of it. Without a
 * server (ENOENT, ECONNREFUSED) qmail-queue is the normal way, not
 * logged; a server that runs but cannot take this message is logged as
 * the fallback it is, with its reason. */
static int qq_daemon(int m[2], int e[2])
{
  const char *why;

  if (qq_pipes(m, e) < 0) return -1;
  qq.sock = qqd_open(m[0], e[0], ss.utf8 ? QQD_UTF8 : 0, QQD_WAIT);
  if (qq.sock >= 0) return 0;
  if (errno != ENOENT && errno != ECONNREFUSED) {
    int err = errno;
    why = fallback_reason(err);
    log_begin(PROG, "fallback");
    log_kv("to", "qmail-queue");
    log_kv("reason", why ? why : "error");
    if (!why) log_kv("errno", strerror(err));   /* unforeseen: say what it was */
    log_end();
  }
  qq_close4(m, e);
  return -1;
}

static int qq_start(void)
{
  const char *qqpath = getenv("QMAILQUEUE");
  int m[2], e[2];

  qq.qid[0] = 0;
  qq.last = 0;                 /* no earlier message's pid in this one's log line */
  if (qqpath && !*qqpath) qqpath = 0;
  if (qqpath || qq_daemon(m, e) < 0) {
    if (qq_open(&qq.child, QQ_QMAILQUEUE | (ss.utf8 ? QQ_UTF8 : 0) | (ss.authed ? QQ_AUTH : 0)) < 0)
      return -1;
    qq.last = qq.child.pid;
    m[1] = qq.child.msg;
    e[1] = qq.child.env;
    qq.child.msg = qq.child.env = -1;   /* closed by qq_close */
  } else {
    close(m[0]);
    close(e[0]);
  }
  buf_init(&qq.msg, m[1], qq.msgbuf, sizeof qq.msgbuf);
  qq.msg.timeout = (int)(cf.timeout > 86400 ? 86400 : cf.timeout);
  qq.envfd = e[1];
  qq.broken = 0;
  return 0;
}

static void qq_put(const char *s, size_t n)
{
  if (!qq_running() || qq.broken) return;
  if (buf_put(&qq.msg, s, n) < 0) qq.broken = 1;
}

/* Header values are printed only from a safe set of bytes, so no client
 * string can break or forge the Received: line. */
static int put_safe(str *s, const char *v, size_t n, size_t max)
{
  size_t i;
  for (i = 0; i < n && i < max; i++) {
    unsigned char c = (unsigned char)v[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
             || strchr(".-_:[]@+=", c);
    if (str_catc(s, ok ? (char)c : '?') < 0) return -1;
  }
  return 0;
}

/* RFC 3848 / RFC 6531 protocol names. */
static const char *proto_name(void)
{
  static char name[16];
  strcpy(name, ss.utf8 ? "UTF8SMTP" : ss.esmtp ? "ESMTP" : "SMTP");
  if (ss.tls) strcat(name, "S");
  if (ss.authed) strcat(name, "A");
  return name;
}

static void received(void)
{
  static str r;
  char date[DATE822_MAX];
  int bad = 0;   /* any piece lost: the line would be wrong */
  r.len = 0;
  bad |= str_cats(&r, "Received: from ") < 0;
  if (ss.helo.len) bad |= put_safe(&r, ss.helo.s, ss.helo.len, 255) < 0;
  else bad |= str_cats(&r, "unknown") < 0;
  bad |= str_cats(&r, " (") < 0;
  bad |= put_safe(&r, ss.remotehost, strlen(ss.remotehost), 255) < 0;
  bad |= str_cats(&r, " [") < 0;
  if (strchr(ss.remoteip, ':')) bad |= str_cats(&r, "IPv6:") < 0;   /* RFC 5321 4.1.3 */
  bad |= put_safe(&r, ss.remoteip, strlen(ss.remoteip), 64) < 0;
  bad |= str_cats(&r, "])\n  by ") < 0;
  bad |= put_safe(&r, cf.me.s, cf.me.len, 255) < 0;
  bad |= str_cats(&r, " with ") < 0;
  bad |= str_cats(&r, proto_name()) < 0;
  if (ss.tls && ss.tlsinfo[0]) {       /* RFC 8314 7.4: "(TLS1.2 cipher NAME)" */
    const char *sp = strchr(ss.tlsinfo, ' ');
    size_t vn = sp ? (size_t)(sp - ss.tlsinfo) : strlen(ss.tlsinfo);
    bad |= str_cats(&r, " (") < 0;
    bad |= put_safe(&r, ss.tlsinfo, vn, 16) < 0;
    if (sp) {
      bad |= str_cats(&r, " cipher ") < 0;
      bad |= put_safe(&r, sp + 1, strlen(sp + 1), 64) < 0;
    }
    bad |= str_cats(&r, ")") < 0;
  }
  if (auth_user()) {                   /* RFC 3848: who sent it (auth.c) */
    bad |= str_cats(&r, " (authenticated user ") < 0;
    bad |= put_safe(&r, auth_user(), strlen(auth_user()), 255) < 0;
    bad |= str_cats(&r, ")") < 0;
  }
  bad |= str_cats(&r, "; ") < 0;
  bad |= str_catb(&r, date, date822(date, (long long)time(0))) < 0;
  if (str_catc(&r, '\n') < 0 || bad) { qq.broken = 1; return; }
  qq_put(r.s, r.len);
}

/* Starts a message: qmail-queue, then the Received: line. A failure to
 * start is remembered as broken and reported at the end. */
static void msg_begin(int chunking)
{
  dd_init(&dec, chunking);
  hops_init(&hops);
  msgbytes = 0;
  over = 0;
  qq.msg.fd = qq.envfd = -1;
  if (qq_start() < 0) {
    log_begin(PROG, "warning");
    log_kv("msg", "cannot start qmail-queue");
    log_kv("errno", strerror(errno));
    log_end();
    qq.broken = 1;
    return;
  }
  received();
}

/* The size counted against databytes is the one SIZE declares (RFC 1870):
 * the message's octets with CRLF line ends, after dot-unstuffing, without
 * the end marker or our Received: line. The decoded text has LF for each
 * CRLF, so each LF counts two. */
static void msg_bytes(const char *s, size_t n)
{
  const char *p = s, *end = s + n;
  if (over) return;
  msgbytes += n;
  while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) { msgbytes++; p++; }
  if (cf.databytes && msgbytes > cf.databytes) {
    over = 1;
    qq_abort();                /* nothing more will be queued */
    return;
  }
  hops_feed(&hops, s, n);
  if (!dec.flags) qq_put(s, n);
}

/* Decodes input until the end of DATA, or for BDAT until want bytes are
 * taken. Ends the session at end of input: nothing is queued. */
static void msg_read(int chunking, unsigned long long want)
{
  char tmp[8192];
  int done = 0;

  while (!done) {
    size_t n, used, outlen = 0;
    if (chunking && want == 0) return;
    if (!in_more()) quit(1, "eof in message");
    n = buf_ready(&in);
    if (n > sizeof tmp / 2) n = sizeof tmp / 2;
    if (chunking && n > want) n = (size_t)want;
    used = dd_feed(&dec, in.x + in.pos, n, tmp, &outlen, &done);
    in.pos += used;
    if (chunking) want -= used;
    msg_bytes(tmp, outlen);
  }
}

/* A message's counter (metrics.h), by log_msg's result. */
static void count_msg(const char *result)
{
  unsigned c = MR_OTHER;
  if (!strcmp(result, "accepted")) { metrics_inc(MP_ACCEPTED); return; }
  if (!strcmp(result, "refused-content") || !strcmp(result, "refused-loop")) c = MR_CONTENT;
  else if (!strcmp(result, "refused-size") || !strcmp(result, "deferred-storage")) c = MR_LIMITS;
  else if (!strcmp(result, "refused-dmarc")) c = MR_DMARC;
  metrics_inc(MP_REFUSED + c);
}

static void log_msg(const char *result, int code)
{
  count_msg(result);
  log_begin(PROG, "message");
  log_kv("ip", ss.remoteip);
  log_kv("result", result);
  log_ku("bytes", msgbytes);
  log_ku("rcpts", ss.nrcpt);
  if (code >= 0) {
    log_ku("qq", (unsigned)code);
    if (qq.qid[0]) log_kv("qid", qq.qid);
    else if (qq.last) log_ku("qqpid", (unsigned long long)qq.last);
  }
  log_end();
}

/* Content problems, judged once the whole message has been read. */
static const char *msg_verdict(unsigned flags)
{
  if (flags & DD_BARELF) return "554 5.6.0 message refused: bare LF (only CRLF ends a line)";
  if (flags & DD_BARECR) return "554 5.6.0 message refused: bare CR (only CRLF ends a line)";
  if (flags & DD_NUL) return "554 5.6.0 message refused: NUL byte";
  if (flags & DD_LONG) return "554 5.6.0 message refused: line over 1000 octets";
  if (over) return "552 5.3.4 message refused: over the size limit";
  if (hops.count >= MAXHOPS) return "554 5.4.6 message refused: too many hops, a mail loop";
  return 0;
}

/* Commits the message and replies; the transaction ends either way. */
static void msg_end(unsigned flags)
{
  const char *bad = msg_verdict(flags);
  int code;

  if (bad) {
    qq_abort();
    log_msg(flags ? "refused-content" : over ? "refused-size" : "refused-loop", -1);
    reply(bad);
    txn_reset();
    return;
  }
  if (qq_running() && !qq.broken && buf_flush(&qq.msg) < 0) qq.broken = 1;
  if (qq.msg.fd >= 0) close(qq.msg.fd);
  qq.msg.fd = -1;
  if (qq_running() && !qq.broken) {
    static str env;
    env.len = 0;
    if (str_catc(&env, 'F') < 0 || str_catb(&env, ss.sender.s, ss.sender.len) < 0
        || str_catc(&env, 0) < 0 || str_catb(&env, ss.mailp.s, ss.mailp.len) < 0
        || str_catb(&env, ss.env.s, ss.env.len) < 0
        || str_catc(&env, 0) < 0
        || fd_write_all(qq.envfd, env.s, env.len, qq.msg.timeout) < 0)
      qq.broken = 1;
  }
  qq_close();
  code = qq_answer();
  if (code == 0) {
    log_msg("accepted", code);
    out_puts("250 2.0.0 ok ");
    out_put(cf.me.s, cf.me.len);
    reply(" accepted the message");
  } else if (code == QQ_DMARC) {
    log_msg("refused-dmarc", code);
    reply("550 5.7.1 message refused: it fails the DMARC policy of its From: domain");
  } else if (qq_permanent(code)) {
    log_msg("refused-queue", code);
    reply("554 5.3.0 message refused by the queue");
  } else if (qq_short(code, msgbytes)) {
    log_msg("deferred-storage", code);
    reply("452 4.3.1 insufficient system storage, try again later");
  } else {
    log_msg("deferred", code);
    reply("451 4.3.0 queue failure, please try again later");
  }
  txn_reset();
}

void smtp_data(const char *arg, size_t n)
{
  if (n) { bad_command("501 5.5.4 DATA takes no argument"); return; }
  if (ss.bdat) { reply("503 5.5.1 DATA cannot follow BDAT in a transaction"); return; }
  if (!ss.inmail) { reply("503 5.5.1 need MAIL first"); return; }
  if (!ss.nrcpt) { reply("503 5.5.1 need RCPT first"); return; }
  /* 354 first: the client's first bytes are then on their way while the
   * queue writer is reached (a round trip to qmail-queued, or a spawn).
   * A writer that cannot be started is reported after the message. */
  reply("354 go ahead, end with <CRLF>.<CRLF>");
  predata_deadline(0);
  msg_begin(0);
  msg_read(0, 0);
  msg_end(dec.flags);
}

/* Reads and drops a chunk that cannot be taken, so that its bytes are
 * never read as commands. */
static void bdat_discard(unsigned long long size)
{
  char tmp[4096];
  while (size) {
    ssize_t r;
    if (!in_more()) quit(1, "eof in chunk");
    r = buf_get(&in, tmp, size < sizeof tmp ? (size_t)size : sizeof tmp);
    if (r <= 0) quit(1, "read");
    size -= (unsigned long long)r;
  }
}

void smtp_bdat(const char *arg, size_t n)
{
  unsigned long long size;
  int last;
  const char *bad;

  if (bdat_parse(arg, n, &size, &last) < 0) {
    bad_command("501 5.5.4 syntax: BDAT size [LAST]");
    return;
  }
  if (!ss.inmail || !ss.nrcpt) {
    bdat_discard(size);
    reply(ss.inmail ? "503 5.5.1 need RCPT first" : "503 5.5.1 need MAIL first");
    return;
  }
  if (!ss.bdat) { ss.bdat = 1; predata_deadline(0); msg_begin(1); }
  msg_read(1, size);
  if (last) { msg_end(dd_finish(&dec)); return; }
  bad = msg_verdict(dec.flags);
  if (bad) {
    /* RFC 3030: after an error reply the client sends no more chunks;
     * any it had pipelined get 503 and are dropped. */
    qq_abort();
    log_msg(dec.flags ? "refused-content" : over ? "refused-size" : "refused-loop", -1);
    reply(bad);
    txn_reset();
    return;
  }
  out_puts("250 2.0.0 ");
  out_put(arg, n);
  reply(" octets received");
}
