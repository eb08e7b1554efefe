/* Client I/O for qmail-smtpd.
 *
 * PIPELINING (RFC 2920): replies are buffered and written only when the
 * client has nothing more buffered for us to read, so a pipelined batch
 * gets its replies, in order, in one write; a client that waits for each
 * reply gets it at once, since we then have nothing to read.
 *
 * Timeouts by phase, so that idle connections cannot hold the listener's
 * slots: timeoutidle outside a transaction (after the greeting, between
 * messages), where a client that means to send has no reason to wait (a
 * minute, less than the five minutes RFC 5321 4.5.3.2.7 asks for, as
 * Postfix shortens its timeout under load: a client cut off retries);
 * timeoutcommand between the commands of a transaction (those five
 * minutes); timeoutsmtpd inside a message. A write takes the timeout of
 * the read before it. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "log.h"
#include "proto.h"
#include "smtpd.h"

static time_t deadline;        /* end of the session; 0 before it is set */
static time_t predata;         /* the first DATA or BDAT is due then; 0: none */
static unsigned long phase;    /* the current phase's timeout; 0: idle */

void session_deadline(unsigned long seconds)
{
  deadline = time(0) + (time_t)seconds;
}

void predata_deadline(unsigned long seconds)
{
  predata = seconds ? time(0) + (time_t)seconds : 0;
}

/* The nearer of the two deadlines; 0: none. */
static time_t due(void)
{
  if (!predata) return deadline;
  return deadline && deadline < predata ? deadline : predata;
}

static int clamp(unsigned long t)
{
  return t > 86400 ? 86400 : (int)t;
}

static int write_timeout(void)
{
  return clamp(phase ? phase : cf.timeoutidle);
}

/* The per-read timeout: the phase's, or less when the session cap is
 * nearer. At least one second, so the cap is reported as a timeout. */
static int read_timeout(unsigned long t)
{
  time_t now = time(0), end = due();
  phase = t;
  if (end) {
    unsigned long left = end > now ? (unsigned long)(end - now) : 0;
    if (left < t) t = left;
  }
  if (t == 0) t = 1;
  return clamp(t);
}

static void write_failed(void) __attribute__((noreturn));
static void write_failed(void)
{
  out.end = 0;                 /* nothing more can reach the client */
  quit(1, "write");
}

void out_put(const char *s, size_t n)
{
  out.timeout = write_timeout();
  if (buf_put(&out, s, n) < 0) write_failed();
}

void out_puts(const char *s) { out_put(s, strlen(s)); }

void reply(const char *line)
{
  out_puts(line);
  out_put("\r\n", 2);
}

void out_flush(void)
{
  out.timeout = write_timeout();
  if (out.end && buf_flush(&out) < 0) write_failed();
}

static void timed_out(void) __attribute__((noreturn));
static void timed_out(void)
{
  out_puts("421 4.4.2 ");
  out_put(cf.me.s, cf.me.len);
  reply(" timeout, closing connection");
  quit(1, "timeout");
}

int in_more(void)
{
  ssize_t r;
  if (buf_ready(&in)) return 1;
  out_flush();
  in.timeout = read_timeout(cf.timeout);
  r = buf_fill(&in);
  if (r < 0 && errno == ETIMEDOUT) timed_out();
  if (r < 0) quit(1, "read");
  if (due() && time(0) >= due()) timed_out();
  return r > 0;
}

int in_cmd(str *line)
{
  int r;
  /* Flush before any read that can block: a partial line may be all the
   * client has sent while it waits for our replies. */
  if (!memchr(in.x + in.pos, '\n', buf_ready(&in))) out_flush();
  in.timeout = read_timeout(ss.inmail ? cf.timeoutcmd : cf.timeoutidle);
  r = buf_line(&in, line, CMD_MAX);
  if (r == LINE_ERR && errno == ETIMEDOUT) timed_out();
  if (r == LINE_ERR) quit(1, "read");
  if (r == LINE_EOF || r == LINE_PARTIAL) quit(0, "eof");
  if (due() && time(0) >= due()) timed_out();
  return r;
}

/* The k-th offence beyond the first soft ones waits k units of
 * errordelay, at most ten: a client that errs now and then never
 * notices, one that keeps erring is slowed more at each. */
static void tarpit(unsigned long k, unsigned long soft)
{
  if (k <= soft) return;
  k -= soft;
  error_delay((k < 10 ? k : 10) * cf.errordelay);
}

void bad_command(const char *line)
{
  tarpit(++ss.badcmds, cf.maxbadcmds / 2);
  reply(line);
  if (ss.badcmds < cf.maxbadcmds) return;
  out_puts("421 4.7.0 ");
  out_put(cf.me.s, cf.me.len);
  reply(" too many bad commands, closing connection");
  quit(1, "badcmds");
}

void error_delay(unsigned long ms)
{
  struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
  out_flush();
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) ;
}

void bad_rcpt(const char *line)
{
  tarpit(++ss.badrcpts, cf.softbadrcpts);
  reply(line);
  if (ss.badrcpts < cf.maxbadrcpts) return;
  out_puts("421 4.7.0 ");
  out_put(cf.me.s, cf.me.len);
  reply(" too many refused recipients, closing connection");
  quit(1, "badrcpts");
}

void quit(int code, const char *why)
{
  txn_reset();
  /* The last reply to a client that may be gone: the session ends and
   * is logged either way. */
  if (out.end) (void)!buf_flush(&out);
  log_begin(PROG, "close");
  log_kv("ip", ss.remoteip);
  log_kv("reason", why);
  log_end();
  _exit(code);
}
