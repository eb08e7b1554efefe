/* SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, for qmail-smtpd.
 *
 * qmail-smtpd never sees a password hash: each attempt runs
 * bin/qmail-authcheck (setuid to the auth uid) with the checkpassword
 * interface, "user\0password\0timestamp\0" on its fd 3, and trusts its
 * exit code. The checker makes a failure cost a delay; here a connection
 * gets AUTH_MAXFAIL failures, then 421. Across connections the client's
 * address gets control/authmaxfail failures in control/authfailwindow
 * seconds, counted by qmail-smtpd-state (door.h), then 454 until the
 * window ends; a success resets the count.
 *
 * Offered only when control/authusers.cdb exists (qmail-passwd writes
 * it) and the session is under TLS, or comes from a loopback address
 * with control/authloopback "1": a password never crosses a network in
 * plaintext. Asked anyway: 538. SMTPD_AUTH=required in the environment
 * (the submission services) makes MAIL before AUTH a 530.
 *
 * The log has one event=auth line per attempt with the user, the client
 * address, the mechanism and the result; never a password, nor the
 * base64 that carries it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "auth.h"
#include "authlib.h"
#include "base64.h"
#include "control.h"
#include "door.h"
#include "log.h"
#include "proto.h"
#include "smtpd.h"

#define AUTH_MAXFAIL 3
#define CHECKER "bin/qmail-authcheck"
#define USERS_CDB "control/authusers.cdb"
#define SENDERS_CDB "control/authsenders.cdb"

static int loaded;
static int loopback_ok;      /* control/authloopback is 1 */
static int available;        /* the user database exists */
static int required;         /* SMTPD_AUTH=required */
static unsigned nfail;
static str user;             /* the authenticated user, NUL-terminated */
static str resp, line;       /* decoded client data; the raw line */

static void load(void)
{
  unsigned long v = 0;
  const char *e = getenv("SMTPD_AUTH");
  if (loaded) return;
  loaded = 1;
  if (control_ulong(&v, "control/authloopback", 0) < 0) v = 0;
  loopback_ok = v == 1;
  available = access(USERS_CDB, F_OK) == 0 && access(CHECKER, X_OK) == 0;
  required = e && !strcmp(e, "required");
}

static int loopback(void)
{
  const char *ip = ss.remoteip;
  return !strncmp(ip, "127.", 4) || !strcmp(ip, "::1") || !strncmp(ip, "::ffff:127.", 11);
}

static int secure(void) { return ss.tls || (loopback_ok && loopback()); }

int auth_offered(void)
{
  load();
  return available && secure();
}

const char *auth_user(void) { return ss.authed ? user.s : 0; }

static void logauth(const char *mech, const char *u, size_t un, const char *result)
{
  log_begin(PROG, "auth");
  log_kv("ip", ss.remoteip);
  log_kv("mech", mech);
  if (u) log_kb("user", u, un);
  log_kv("result", result);
  log_end();
}

static void forget(void)
{
  str_wipe(&resp);
  str_wipe(&line);
}

/* Sends the 334 challenge and decodes the answer into resp. 0, or -1
 * after replying (cancelled or undecodable). */
static int challenge(const char *mech, const char *prompt)
{
  size_t n;
  out_puts("334 ");
  reply(prompt);
  if (in_cmd(&line) == LINE_LONG) { bad_command("500 5.5.6 authentication line too long"); return -1; }
  n = line.len;
  if (n < 2 || line.s[n - 2] != '\r' || memchr(line.s, '\r', n - 2)) {
    bad_command("500 5.5.2 lines end in CRLF");
    return -1;
  }
  n -= 2;
  if (n == 1 && line.s[0] == '*') {
    logauth(mech, 0, 0, "cancelled");
    reply("501 5.0.0 authentication cancelled");
    return -1;
  }
  if (base64_decode(&resp, line.s, n) < 0) {
    if (errno != EINVAL) quit(1, "nomem");
    logauth(mech, 0, 0, "malformed");
    bad_command("501 5.5.2 cannot decode response");
    return -1;
  }
  return 0;
}

/* The initial response of "AUTH MECH initial" into resp ("=" is empty). */
static int initial(const char *mech, const char *s, size_t n)
{
  resp.len = 0;
  if (n == 1 && s[0] == '=') return 0;
  if (base64_decode(&resp, s, n) < 0) {
    if (errno != EINVAL) quit(1, "nomem");
    logauth(mech, 0, 0, "malformed");
    bad_command("501 5.5.2 cannot decode response");
    return -1;
  }
  return 0;
}

/* Runs the checker: 0 right, 1 wrong, 2 cannot tell. */
static int check(const char *u, size_t un, const char *p, size_t pn)
{
  static str req;
  int fds[2], status, ok;
  pid_t pid;

  req.len = 0;
  if (str_catb(&req, u, un) < 0 || str_catc(&req, 0) < 0 || str_catb(&req, p, pn) < 0
      || str_catc(&req, 0) < 0 || str_catu(&req, (unsigned long long)time(0)) < 0
      || str_catc(&req, 0) < 0) quit(1, "nomem");
  if (pipe2(fds, O_CLOEXEC) < 0) { explicit_bzero(req.s, req.len); return 2; }
  pid = fork();
  if (pid == 0) {
    char *argv[] = { (char *)"qmail-authcheck", 0 }, *envp[] = { 0 };
    int null = open("/dev/null", O_RDWR);
    /* Only the request on fd 3 and the log on fd 2: never the client. */
    if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0) _exit(111);
    if (fds[0] == 3) { if (fcntl(3, F_SETFD, 0) < 0) _exit(111); }
    else if (dup2(fds[0], 3) < 0) _exit(111);
    close_range(4, ~0u, 0);
    execve(CHECKER, argv, envp);
    _exit(111);
  }
  close(fds[0]);
  ok = pid > 0 && fd_write_all(fds[1], req.s, req.len, 30) == 0;
  close(fds[1]);
  explicit_bzero(req.s, req.len);
  if (pid < 0) return 2;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 2;
  if (!ok || !WIFEXITED(status)) return 2;
  if (WEXITSTATUS(status) == 0) return 0;
  if (WEXITSTATUS(status) == 1 || WEXITSTATUS(status) == 2) return 1;
  return 2;
}

static void verdict(const char *mech, const char *u, size_t un, const char *p, size_t pn)
{
  int r = authuser_ok(u, un) && pn && pn <= AUTH_PASS_MAX && !memchr(p, 0, pn)
          ? check(u, un, p, pn) : (sleep(1), 1);
  /* u may point into resp: log first, then forget the password. */
  logauth(mech, u, un, r == 0 ? "ok" : r == 2 ? "tempfail" : "failed");
  if (r == 0 && (str_copyb(&user, u, un) < 0 || str_0(&user) < 0)) quit(1, "nomem");
  forget();
  if (r != 2) door_auth_result(r == 0);
  if (r == 0) {
    ss.authed = 1;
    reply("235 2.7.0 authentication successful");
    return;
  }
  if (r == 2) {
    reply("454 4.7.0 temporary authentication failure");
    return;
  }
  /* Each failure waits twice as long as the one before: 1, 2, 4 units. */
  error_delay(cf.errordelay << (++nfail - 1));
  if (nfail >= AUTH_MAXFAIL) {
    out_puts("421 4.7.0 ");
    out_put(cf.me.s, cf.me.len);
    reply(" too many authentication failures, closing connection");
    quit(1, "authfail");
  }
  reply("535 5.7.8 authentication credentials invalid");
}

/* PLAIN: [authzid] NUL authcid NUL passwd; an authzid other than the
 * authcid is refused (nobody may act for another user). */
static void plain(void)
{
  const char *z1, *z2;
  size_t n = resp.len;

  /* An empty response ("=") may leave resp.s NULL: no memchr on it. */
  z1 = n ? memchr(resp.s, 0, n) : 0;
  z2 = z1 ? memchr(z1 + 1, 0, n - (size_t)(z1 + 1 - resp.s)) : 0;
  if (!z2) {
    forget();
    logauth("PLAIN", 0, 0, "malformed");
    bad_command("501 5.5.2 malformed PLAIN response");
    return;
  }
  if (z1 != resp.s && ((size_t)(z1 - resp.s) != (size_t)(z2 - z1 - 1)
                       || memcmp(resp.s, z1 + 1, (size_t)(z1 - resp.s)))) {
    logauth("PLAIN", z1 + 1, (size_t)(z2 - z1 - 1), "authzid");
    forget();
    reply("535 5.7.8 authorization identity refused");
    return;
  }
  verdict("PLAIN", z1 + 1, (size_t)(z2 - z1 - 1), z2 + 1, n - (size_t)(z2 + 1 - resp.s));
}

static void login(int have_user)
{
  static str u;
  if (!have_user && challenge("LOGIN", "VXNlcm5hbWU6") < 0) return;   /* "Username:" */
  if (str_copyb(&u, resp.s ? resp.s : "", resp.len) < 0) quit(1, "nomem");
  if (challenge("LOGIN", "UGFzc3dvcmQ6") < 0) return;                  /* "Password:" */
  verdict("LOGIN", u.s ? u.s : "", u.len, resp.s ? resp.s : "", resp.len);
}

void smtp_auth(const char *arg, size_t n)
{
  const char *sp = memchr(arg, ' ', n);
  size_t mn = sp ? (size_t)(sp - arg) : n;
  const char *init = sp ? sp + 1 : 0;
  size_t in_n = sp ? n - mn - 1 : 0;

  load();
  if (!available) { reply("502 5.5.1 command not implemented"); return; }
  if (!ss.seenhelo || !ss.esmtp) { reply("503 5.5.1 send EHLO first"); return; }
  if (ss.authed) { reply("503 5.5.1 already authenticated"); return; }
  if (ss.inmail) { reply("503 5.5.1 not during a mail transaction"); return; }
  if (!secure()) {
    logauth("-", 0, 0, "notls");
    reply("538 5.7.11 encryption required for requested authentication mechanism");
    return;
  }
  if (door_auth_locked()) {
    logauth("-", 0, 0, "locked");
    reply("454 4.7.0 too many authentication failures from your address, try again later");
    return;
  }
  if (mn == 5 && !strncasecmp(arg, "PLAIN", 5)) {
    if (init ? initial("PLAIN", init, in_n) < 0 : challenge("PLAIN", "") < 0) return;
    plain();
  } else if (mn == 5 && !strncasecmp(arg, "LOGIN", 5)) {
    if (init && initial("LOGIN", init, in_n) < 0) return;
    login(init != 0);
  } else if (!mn) bad_command("501 5.5.4 syntax: AUTH mechanism [initial-response]");
  else reply("504 5.5.4 unrecognised authentication mechanism");
}

static void lower(str *s, size_t from)
{
  size_t i;
  for (i = from; i < s->len; i++) if (s->s[i] >= 'A' && s->s[i] <= 'Z') s->s[i] = (char)(s->s[i] + 32);
}

/* 1 if control/authsenders.cdb has key "user:" + tail; -1 on error. */
static int sender_key(const char *tail, size_t n)
{
  static str key, val;
  if (str_copyb(&key, user.s, user.len) < 0 || str_catc(&key, ':') < 0
      || str_catb(&key, tail, n) < 0) quit(1, "nomem");
  lower(&key, user.len + 1);
  return cdb_lookup(SENDERS_CDB, key.s, key.len, &val);
}

const char *auth_mail_check(const addr *a, const char **why)
{
  int r;
  load();
  if (!ss.authed) {
    if (!required) return 0;
    *why = "authrequired";
    return "530 5.7.0 authentication required";
  }
  if (access(SENDERS_CDB, F_OK) < 0) return 0;
  r = sender_key("*", 1);
  if (r == 0) r = sender_key(a->mbox.len ? a->mbox.s : "", a->mbox.len);
  if (r == 0 && a->at < a->mbox.len) r = sender_key(a->mbox.s + a->at, a->mbox.len - a->at);
  if (r > 0) return 0;
  *why = r < 0 ? "authsenders" : "notowner";
  return r < 0 ? "451 4.3.0 temporary failure reading the sender table"
               : "553 5.7.1 sender address not allowed for this user";
}
