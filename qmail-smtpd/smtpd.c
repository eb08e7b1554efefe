/* The SMTP session of qmail-smtpd: an ESMTP server for one connection on
 * fds 0 and 1, as an unprivileged uid, with the environment tcpserver sets
 * (TCPREMOTEIP, RELAYCLIENT, ...). smtpd_session() is the whole process:
 * qmail-smtpd.c calls it under tcpserver, qmail-smtpd-listen.c in each
 * forked child, tlsd.c in the session half of a TLS connection. It reads
 * control files once per session (queueminfree at the first MAIL), speaks
 * RFC 5321 with the extensions EHLO lists, and reaches the queue only
 * through qmail-queued or qmail-queue (data.c).
 *
 * States: before HELO/EHLO (seenhelo 0); idle; in a transaction after MAIL
 * (inmail); with recipients (nrcpt > 0); inside BDAT chunks (bdat). Every
 * command is checked against the state it needs; replies carry RFC 3463
 * enhanced status codes except the greeting and the EHLO/HELO lines,
 * which RFC 2034 leaves without them.
 *
 * STARTTLS is starttls.c's, offered only under the TLS relay (tlsd.c:
 * qmail-tlsd, qmail-smtpd-listen -t) and not yet in use. AUTH is
 * auth.c's: its verb and EHLO keyword come from the tables below, and
 * ss.authed selects the Received: protocol name (ESMTPA) and relaying.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "auth.h"
#include "control.h"
#include "log.h"
#include "proto.h"
#include "qspace.h"
#include "session.h"
#include "door.h"
#include "dsnparam.h"
#include "smtpd.h"
#include "metrics.h"

struct config cf;
struct session ss;
static char inbuf[8192], outbuf[4096];
buf in = BUF_INIT(0, inbuf, sizeof inbuf);
buf out = BUF_INIT(1, outbuf, sizeof outbuf);

/* The class (metrics.h MR_*) of a MAIL or RCPT refusal's logged reason. */
static unsigned refusal_class(const char *why)
{
  static const struct { const char *why; unsigned cls; } map[] = {
    { "relay", MR_RELAY }, { "trick", MR_RELAY }, { "unknown", MR_UNKNOWN }, { "nodomain", MR_UNKNOWN },
    { "maxrcpt", MR_LIMITS }, { "size", MR_LIMITS }, { "authrequired", MR_AUTH },
    { "authsenders", MR_AUTH }, { "notowner", MR_AUTH },
  };
  size_t i;
  if (!why) return MR_OTHER;
  if (!strncmp(why, "spf-", 4)) return MR_SPF;
  for (i = 0; i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(why, map[i].why)) return map[i].cls;
  return MR_OTHER;
}

static void logaddr(const char *event, const char *key, const char *a, size_t n,
                    const char *result, const char *why)
{
  if (result && !strcmp(result, "refused")) metrics_inc(MP_REFUSED + refusal_class(why));
  log_begin(PROG, event);
  log_kv("ip", ss.remoteip);
  log_kb(key, a, n);
  if (result) log_kv("result", result);
  if (why) log_kv("reason", why);
  log_end();
}

/* --- EHLO keywords: a table so that STARTTLS and AUTH can add theirs. */
static int always(void) { return 1; }
static void kw_size(void)
{
  static str s;
  s.len = 0;
  if (str_cats(&s, "SIZE") < 0 || (cf.databytes && (str_catc(&s, ' ') < 0
      || str_catu(&s, cf.databytes) < 0))) quit(1, "nomem");
  out_put(s.s, s.len);
}

static const struct {
  const char *keyword;
  int (*offered)(void);
  void (*print)(void);         /* instead of keyword, when set */
} extensions[] = {
  { .keyword = "PIPELINING", .offered = always },
  { .keyword = "8BITMIME", .offered = always },
  { .keyword = "SIZE", .offered = always, .print = kw_size },
  { .keyword = "ENHANCEDSTATUSCODES", .offered = always },
  { .keyword = "SMTPUTF8", .offered = always },
  { .keyword = "STARTTLS", .offered = tls_offered },
  { .keyword = "AUTH PLAIN LOGIN", .offered = auth_offered },
  { .keyword = "DSN", .offered = always },
  { .keyword = "CHUNKING", .offered = always },     /* last: always offered, ends the reply */
};

static int helo_arg(const char *arg, size_t n)
{
  if (!n) { bad_command("501 5.5.4 syntax: HELO/EHLO hostname"); return -1; }
  txn_reset();
  if (str_copyb(&ss.helo, arg, n) < 0 || str_0(&ss.helo) < 0) quit(1, "nomem");
  ss.seenhelo = 1;
  return 0;
}

static void smtp_helo(const char *arg, size_t n)
{
  if (helo_arg(arg, n) < 0) return;
  ss.esmtp = 0;
  logaddr("helo", "name", arg, n, "helo", 0);
  out_puts("250 ");
  out_put(cf.me.s, cf.me.len);
  out_puts("\r\n");
}

static void smtp_ehlo(const char *arg, size_t n)
{
  size_t i, k = sizeof extensions / sizeof extensions[0];
  if (helo_arg(arg, n) < 0) return;
  ss.esmtp = 1;
  logaddr("helo", "name", arg, n, "ehlo", 0);
  out_puts("250-");
  out_put(cf.me.s, cf.me.len);
  out_puts("\r\n");
  for (i = 0; i < k; i++) {
    if (!extensions[i].offered()) continue;
    out_puts(i + 1 == k ? "250 " : "250-");
    if (extensions[i].print) extensions[i].print();
    else out_puts(extensions[i].keyword);
    out_puts("\r\n");
  }
}

static int need_helo(void)
{
  if (ss.seenhelo) return 1;
  reply("503 5.5.1 send HELO or EHLO first");
  return 0;
}

static const char *addr_error(int r)
{
  if (r == ADDR_LONG) return "501 5.1.3 address too long";
  if (r == ADDR_NOMEM) quit(1, "nomem");
  return "501 5.1.3 bad address syntax";
}

/* The queue's file system must hold the declared size plus
 * control/queueminfree (read at the first MAIL), as Postfix's
 * queue_minfree: a client then learns at MAIL, not after uploading the
 * message, that it must try later. The reserve keeps room for bounces
 * and local submissions once SMTP stops. The reply when it cannot, or 0;
 * a file system that cannot be measured does not stop mail. */
static const char *queue_full(const addr *a, unsigned long long size)
{
  static unsigned long minfree;
  static int loaded;
  struct qspace q;
  int r;

  if (!loaded) {
    if (control_ulong(&minfree, "control/queueminfree", QSPACE_MINFREE) < 0) {
      log_begin(PROG, "warning");
      log_kv("msg", "cannot read control/queueminfree");
      log_kv("errno", strerror(errno));
      log_end();
      return "451 4.3.0 temporary configuration error, try again later";
    }
    loaded = 1;
  }
  r = qspace_check(QSPACE_DIR, size, minfree, &q);
  if (r <= 0) return 0;
  metrics_inc(MP_REFUSED + MR_LIMITS);
  log_begin(PROG, "mail");
  log_kv("ip", ss.remoteip);
  log_kb("from", a->mbox.s, a->mbox.len);
  log_kv("result", "refused");
  log_kv("reason", r == QSPACE_INODES ? "queue-inodes" : "queue-space");
  log_ku("free_bytes", q.bytes);
  if (q.inodes != ~0ULL) log_ku("free_inodes", q.inodes);
  log_ku("size", size);
  log_end();
  return "452 4.3.1 insufficient system storage, try again later";
}

/* A DSN parameter's bad value (RFC 3461): 501 naming what is wrong. */
static void dsn_refuse(const char *why)
{
  static str line;
  line.len = 0;
  if (str_cats(&line, "501 5.5.4 ") < 0 || str_cats(&line, why) < 0 || str_0(&line) < 0)
    quit(1, "nomem");
  bad_command(line.s);
}

/* Appends the envelope field "P<key><value>\0" (qmail-queue's DSN
 * extension). 0 or -1. */
static int dsn_field(str *env, const char *key, const char *v, size_t vn)
{
  return str_catc(env, 'P') < 0 || str_cats(env, key) < 0 || str_catb(env, v, vn) < 0 ||
         str_catc(env, 0) < 0 ? -1 : 0;
}

/* NOTIFY's bits in the envelope's spelling. */
static const char *dsn_notify(unsigned bits)
{
  static char nb[32];
  size_t n = 0;
  if (bits & DSN_NOTIFY_NEVER) return "NEVER";
  nb[0] = 0;
  if (bits & DSN_NOTIFY_SUCCESS) { memcpy(nb + n, "SUCCESS,", 8); n += 8; }
  if (bits & DSN_NOTIFY_FAILURE) { memcpy(nb + n, "FAILURE,", 8); n += 8; }
  if (bits & DSN_NOTIFY_DELAY) { memcpy(nb + n, "DELAY,", 6); n += 6; }
  nb[n ? n - 1 : 0] = 0;
  return nb;
}

static void smtp_mail(const char *arg, size_t n)
{
  static addr a = ADDR_INIT;
  struct mailparams p;
  size_t k = cmd_prefix(arg, n, "FROM:"), used;
  const char *no, *why = 0;
  int r;

  if (!need_helo()) return;
  if (ss.inmail) { reply("503 5.5.1 nested MAIL command"); return; }
  if (!k) { bad_command("501 5.5.4 syntax: MAIL FROM:<address>"); return; }
  r = addr_path(arg + k, n - k, ADDR_EMPTY | ADDR_UTF8, &a, &used);
  if (r != ADDR_OK) { bad_command(addr_error(r)); return; }
  r = mail_params(arg + k + used, n - k - used, &p);
  if (r == PARAM_OK && !ss.esmtp && n - k - used) r = PARAM_UNKNOWN;
  if (r == PARAM_SYNTAX) { bad_command("501 5.5.4 bad MAIL parameter syntax"); return; }
  if (r == PARAM_UNKNOWN) { bad_command("555 5.5.4 MAIL parameter not recognised"); return; }
  if (r == PARAM_DSN) { dsn_refuse(p.why); return; }
  if (a.utf8 && !p.utf8) {
    logaddr("mail", "from", a.mbox.s, a.mbox.len, "refused", "utf8");
    reply("553 5.6.7 non-ASCII address needs SMTPUTF8");
    return;
  }
  if (p.has_size && cf.databytes && p.size > cf.databytes) {
    logaddr("mail", "from", a.mbox.s, a.mbox.len, "refused", "size");
    reply("552 5.3.4 message size exceeds fixed maximum message size");
    return;
  }
  if ((no = queue_full(&a, p.has_size ? p.size : 0))) {
    reply(no);
    return;
  }
  if (sender_bad(&a)) {
    logaddr("mail", "from", a.mbox.s, a.mbox.len, "refused", "badmailfrom");
    reply("553 5.7.1 sender refused");
    return;
  }
  if ((no = auth_mail_check(&a, &why))) {
    logaddr("mail", "from", a.mbox.s, a.mbox.len, "refused", why);
    reply(no);
    return;
  }
  if ((no = spf_mail(&a, &why))) {
    logaddr("mail", "from", a.mbox.s, a.mbox.len, "refused", why);
    reply(no);
    return;
  }
  if (str_copyb(&ss.sender, a.mbox.s, a.mbox.len) < 0) quit(1, "nomem");
  ss.mailp.len = 0;
  if (p.ret && dsn_field(&ss.mailp, "RET=", p.ret == 'F' ? "FULL" : "HDRS", 4) < 0) quit(1, "nomem");
  if (p.envid && dsn_field(&ss.mailp, "ENVID=", p.envid, p.envidn) < 0) quit(1, "nomem");
  ss.inmail = 1;
  ss.utf8 = p.utf8;
  logaddr("mail", "from", a.mbox.s, a.mbox.len, "accepted", 0);
  reply("250 2.1.0 sender ok");
}

static unsigned long rcpt_checked;

/* The client's address sent too many unknown recipients (door.h): a
 * temporary refusal, so that a legitimate sender behind the same address
 * retries later rather than bounces, and the end of the session, so that
 * a prober gets no further answer. a: the recipient refused for it. */
static void dictionary(const addr *a) __attribute__((noreturn));
static void dictionary(const addr *a)
{
  if (a) logaddr("rcpt", "to", a->mbox.s, a->mbox.len, "refused", "dictionary");
  out_puts("421 4.7.0 ");
  out_put(cf.me.s, cf.me.len);
  reply(" too many unknown recipients from your address, try again later");
  quit(1, "dictionary");
}

static void smtp_rcpt(const char *arg, size_t n)
{
  static addr a = ADDR_INIT;
  static str final;
  struct rcptparams rp;
  size_t k = cmd_prefix(arg, n, "TO:"), used;
  const char *no, *why = 0;
  int r;

  if (!ss.inmail) { reply("503 5.5.1 need MAIL first"); return; }
  if (!k) { bad_command("501 5.5.4 syntax: RCPT TO:<address>"); return; }
  r = addr_path(arg + k, n - k, ADDR_NOAT | ADDR_UTF8, &a, &used);
  if (r != ADDR_OK) {
    logaddr("rcpt", "to", arg + k, n - k, "refused", "syntax");
    bad_command(addr_error(r));
    return;
  }
  r = rcpt_params(arg + k + used, n - k - used, &rp);
  if (r == PARAM_DSN) { dsn_refuse(rp.why); return; }
  if (r != PARAM_OK) {
    bad_command(r == PARAM_SYNTAX ? "501 5.5.4 bad RCPT parameter syntax" : "555 5.5.4 RCPT parameter not recognised");
    return;
  }
  if (a.utf8 && !ss.utf8) {
    logaddr("rcpt", "to", a.mbox.s, a.mbox.len, "refused", "utf8");
    bad_rcpt("553 5.6.7 non-ASCII address needs SMTPUTF8");
    return;
  }
  if (ss.nrcpt >= cf.maxrcpt) {
    logaddr("rcpt", "to", a.mbox.s, a.mbox.len, "refused", "maxrcpt");
    reply("452 4.5.3 too many recipients");
    return;
  }
  /* Once per session, then at each unknown recipient: the address's
   * unknown recipients across connections (door.h). */
  if (!rcpt_checked++ && door_rcpt_locked()) dictionary(&a);
  no = rcpt_check(&a, &final, &why);
  if (no) {
    logaddr("rcpt", "to", a.mbox.s, a.mbox.len, "refused", why);
    if (!strcmp(why, "unknown") && door_rcpt_unknown()) {
      reply(no);
      dictionary(0);
    }
    bad_rcpt(no);              /* counted and slowed: probing (reply.c) */
    return;
  }
  if ((no = door_greylist(ss.sender.s, ss.sender.len, a.mbox.s, a.mbox.len))) {
    metrics_inc(MP_REFUSED + MR_GREYLIST);
    reply(no);                 /* logged as event=greylist */
    return;
  }
  if (str_catc(&ss.env, 'T') < 0 || str_catb(&ss.env, final.s, final.len) < 0
      || str_catc(&ss.env, 0) < 0) quit(1, "nomem");
  if (rp.notify && dsn_field(&ss.env, "NOTIFY=", dsn_notify(rp.notify), strlen(dsn_notify(rp.notify))) < 0)
    quit(1, "nomem");
  if (rp.orcpt && dsn_field(&ss.env, "ORCPT=", rp.orcpt, rp.orcptn) < 0) quit(1, "nomem");
  ss.nrcpt++;
  logaddr("rcpt", "to", final.s, final.len, "accepted", 0);
  reply("250 2.1.5 recipient ok");
}

static void smtp_rset(const char *arg, size_t n)
{
  txn_reset();
  reply("250 2.0.0 ok");
}

static void smtp_noop(const char *arg, size_t n) { reply("250 2.0.0 ok"); }
static void smtp_vrfy(const char *arg, size_t n)
{
  reply("252 2.0.0 cannot verify, but will accept the message and try");
}
static void smtp_help(const char *arg, size_t n) { reply("214 2.0.0 see RFC 5321"); }
static void smtp_quit(const char *arg, size_t n)
{
  out_puts("221 2.0.0 ");
  out_put(cf.me.s, cf.me.len);
  reply(" closing connection");
  out_flush();
  quit(0, "quit");
}

static void smtp_data_checked(const char *arg, size_t n)
{
  if (need_helo()) smtp_data(arg, n);
}

/* Verbs with no handler are known but not offered here: 502. */
static void (*const handlers[V_NVERBS])(const char *, size_t) = {
  [V_HELO] = smtp_helo, [V_EHLO] = smtp_ehlo, [V_MAIL] = smtp_mail,
  [V_RCPT] = smtp_rcpt, [V_DATA] = smtp_data_checked, [V_BDAT] = smtp_bdat, /* consumes its chunk in any state */
  [V_RSET] = smtp_rset, [V_NOOP] = smtp_noop, [V_QUIT] = smtp_quit,
  [V_VRFY] = smtp_vrfy, [V_HELP] = smtp_help, [V_STARTTLS] = smtp_starttls,
  [V_AUTH] = smtp_auth,          /* auth.c */
  /* V_EXPN: refused on purpose. */
};

static void command(const str *line)
{
  struct cmd c;
  switch (cmd_parse(line->s, line->len, &c)) {
  case CMD_BARELF: bad_command("500 5.5.2 bare LF: lines end in CRLF"); return;
  case CMD_BARECR: bad_command("500 5.5.2 bare CR: lines end in CRLF"); return;
  case CMD_NUL: bad_command("500 5.5.2 NUL in command"); return;
  default: break;
  }
  if (c.verb == V_UNKNOWN) { bad_command("500 5.5.1 command unrecognised"); return; }
  if (!handlers[c.verb]) { reply("502 5.5.1 command not implemented"); return; }
  handlers[c.verb](c.arg, c.arglen);
}

static const char *env_or(const char *name, const char *def)
{
  const char *v = getenv(name);
  return v && *v ? v : def;
}

void smtpd_session(void)
{
  static str line;
  int listed;

  signal(SIGPIPE, SIG_IGN);
  ss.remoteip = env_or("TCPREMOTEIP", "unknown");
  ss.remotehost = env_or("TCPREMOTEHOST", "unknown");
  ss.relayclient = getenv("RELAYCLIENT");
  spf_reset();                 /* only this session's verdicts reach the queue */
  /* Under qmail-smtpd-listen the mapping came with the fork. */
  metrics_open(MF_SMTPD);
  metrics_inc(MP_SESSIONS);
  config_load();
  session_deadline(cf.timeoutsession);
  predata_deadline(cf.timeoutpredata);
  log_begin(PROG, "connect");
  log_kv("ip", ss.remoteip);
  log_kv("host", ss.remotehost);
  log_kv("relayclient", ss.relayclient ? "yes" : "no");
  log_end();
  /* Before the greeting, as postscreen: a listed client never gets to
   * speak SMTP. */
  listed = dnsbl_run(ss.remoteip) == DNSBL_LISTED;
  tls_init();
  if (listed) dnsbl_refuse();
  out_puts("220 ");
  out_put(cf.greeting.s, cf.greeting.len);
  reply(" ESMTP");
  for (;;) {
    if (in_cmd(&line) == LINE_LONG) {
      bad_command("500 5.5.2 line too long");
      continue;
    }
    command(&line);
  }
}
