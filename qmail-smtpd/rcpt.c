/* Control files, relay control and recipient checks for qmail-smtpd.
 *
 * Relay rule. A recipient is taken when
 *   - RELAYCLIENT is set (or, later, the client authenticated): any
 *     address, route dropped, RELAYCLIENT's value appended as in qmail;
 *   - otherwise only if its domain is listed in control/rcpthosts
 *     ("example.test" exact, ".example.test" any subdomain), in
 *     control/rcpthosts.cdb (same keys, lowercased; build it with
 *     `tr A-Z a-z < rcpthosts | cdb -c -m rcpthosts.cdb`), or in
 *     control/locals, and the address holds no relay trick: no source
 *     route, no '%' or '!' in the local part, no quoted local part holding
 *     '@', '%' or '!', no address literal. What the parser does not
 *     understand is refused before any of this (501 5.1.3).
 *
 * Local recipients (RCPT time, so that nothing is accepted and bounced
 * later: no backscatter). For a domain in control/locals (default: me) the
 * local part, lowercased, is known if any of these knows it:
 *   - "postmaster" (RFC 5321 4.5.1), always;
 *   - control/validrcptto.cdb: key "local@domain" or "@domain";
 *   - users/cdb (qmail-newu, qmail-local/users.h): an exact entry, a
 *     prefix entry, or the catch-all "+" entry, looked up with the same
 *     users_find() that qmail-lspawn uses;
 *   - a system account of that name (or of the part before its first
 *     '-') other than root;
 *   - alias/.qmail-<local> or alias/.qmail-default (a catch-all).
 * When neither users/cdb nor validrcptto.cdb exists no check is possible
 * and every local part is accepted. Unknown ones get 550 5.1.1. */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "smtpd.h"
#include "../qmail-local/users.h"

static void need(int r, const char *what)
{
  if (r < 0) {
    log_begin(PROG, "fatal");
    log_kv("msg", what);
    log_kv("errno", strerror(errno));
    log_end();
    out_puts("421 4.3.0 temporary configuration error, closing connection\r\n");
    out_flush();
    _exit(111);
  }
}

void config_load(void)
{
  int r;

  need(prefix_chdir(), "chdir prefix");
  r = control_line(&cf.me, "control/me");
  need(r, "control/me");
  if (r == 0 || cf.me.len == 0) need(str_copys(&cf.me, "localhost"), "nomem");
  r = control_line(&cf.greeting, "control/smtpgreeting");
  need(r, "control/smtpgreeting");
  if (r == 0 || cf.greeting.len == 0) need(str_copyb(&cf.greeting, cf.me.s, cf.me.len), "nomem");
  need(control_lines(&cf.rcpthosts, "control/rcpthosts"), "control/rcpthosts");
  r = control_lines(&cf.locals, "control/locals");
  need(r, "control/locals");
  if (r == 0 || cf.locals.len == 0) {
    need(str_copyb(&cf.locals, cf.me.s, cf.me.len), "nomem");
    need(str_catc(&cf.locals, 0), "nomem");
  }
  need(control_lines(&cf.badmailfrom, "control/badmailfrom"), "control/badmailfrom");
  need(control_ulong(&cf.databytes, "control/databytes", DATABYTES), "control/databytes");
  need(control_ulong(&cf.timeoutidle, "control/timeoutidle", 60), "control/timeoutidle");
  need(control_ulong(&cf.timeoutcmd, "control/timeoutcommand", 300), "control/timeoutcommand");
  need(control_ulong(&cf.timeout, "control/timeoutsmtpd", 600), "control/timeoutsmtpd");
  need(control_ulong(&cf.timeoutsession, "control/timeoutsession", 3600), "control/timeoutsession");
  need(control_ulong(&cf.maxrcpt, "control/maxrcpt", 100), "control/maxrcpt");
  need(control_ulong(&cf.maxbadcmds, "control/maxbadcmds", 10), "control/maxbadcmds");
  need(control_ulong(&cf.maxbadrcpts, "control/maxbadrcpts", 20), "control/maxbadrcpts");
  need(control_ulong(&cf.softbadrcpts, "control/softbadrcpts", 3), "control/softbadrcpts");
  need(control_ulong(&cf.errordelay, "control/errordelay", 1000), "control/errordelay");
  if (cf.timeoutidle == 0) cf.timeoutidle = 60;
  if (cf.timeoutcmd == 0) cf.timeoutcmd = 300;
  if (cf.timeout == 0) cf.timeout = 600;
  if (cf.maxbadrcpts == 0) cf.maxbadrcpts = 1;
  if (cf.errordelay > 60000) cf.errordelay = 60000;
  if (cf.maxbadcmds == 0) cf.maxbadcmds = 1;
  cf.users_cdb = access("users/cdb", F_OK) == 0;
  cf.validrcptto_cdb = access("control/validrcptto.cdb", F_OK) == 0;
}

/* 1 if domain d[0..n) matches a line of list (NUL-separated). */
static int in_list(const str *list, const char *d, size_t n)
{
  size_t i = 0;
  while (i < list->len) {
    size_t len = strlen(list->s + i);
    if (addr_domain_match(d, n, list->s + i, len)) return 1;
    i += len + 1;
  }
  return 0;
}

static void lowercase(char *s, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++) if (s[i] >= 'A' && s[i] <= 'Z') s[i] = (char)(s[i] + 32);
}

static int cdb_has(const char *path, const char *key, size_t n)
{
  static str val;
  int r = cdb_lookup(path, key, n, &val);
  need(r, path);
  return r;
}

/* d[0..n) lowercased; "example.test", then ".test" ... in rcpthosts.cdb. */
static int in_rcpthosts_cdb(const char *d, size_t n)
{
  size_t i;
  if (cdb_has("control/rcpthosts.cdb", d, n)) return 1;
  for (i = 1; i < n; i++)
    if (d[i] == '.' && cdb_has("control/rcpthosts.cdb", d + i, n - i)) return 1;
  return 0;
}

static int users_known(const char *lp, size_t n)
{
  static struct uent u;
  struct cdb c;
  int fd = open("users/cdb", O_RDONLY | O_CLOEXEC), r;

  if (fd < 0) { need(errno == ENOENT ? 0 : -1, "users/cdb"); return 0; }
  need(cdb_init(&c, fd), "users/cdb");
  r = users_find(&c, lp, n, 0, &u);
  if (r == 0) r = users_find(&c, lp, n, 1, &u);
  cdb_free(&c);
  close(fd);
  need(r, "users/cdb");
  return r;
}

/* 1 if /etc/passwd names an account other than root. glibc's own parser
 * (fgetpwent) reads it, not NSS: qmail-smtpd is linked static, which
 * halves the cost of its exec per connection, and a static program cannot
 * load NSS modules. Accounts only in LDAP and the like are therefore not
 * seen here; list them in users/assign. */
static int passwd_has(const char *name, size_t n)
{
  struct passwd *pw;
  int found = 0;
  FILE *f = fopen("/etc/passwd", "re");

  if (!f) {
    need(errno == ENOENT ? 0 : -1, "/etc/passwd");
    return 0;
  }
  while (!found && (pw = fgetpwent(f)))
    found = pw->pw_uid != 0 && strlen(pw->pw_name) == n && !memcmp(pw->pw_name, name, n);
  fclose(f);
  return found;
}

static int account_known(const char *lp, size_t n)
{
  const char *dash = memchr(lp, '-', n);
  return passwd_has(lp, n) || (dash && passwd_has(lp, (size_t)(dash - lp)));
}

static int alias_known(const char *lp, size_t n)
{
  static str path;
  size_t i;

  if (access("alias/.qmail-default", F_OK) == 0) return 1;
  need(str_copys(&path, "alias/.qmail-"), "nomem");
  for (i = 0; i < n; i++) {
    char c = lp[i] == '.' ? ':' : lp[i];
    if (c == '/') return 0;
    need(str_catc(&path, c), "nomem");
  }
  need(str_0(&path), "nomem");
  return access(path.s, F_OK) == 0;
}

/* full[0..n) is "local@domain", lowercased; at is the '@'. */
static int local_known(const char *full, size_t n, size_t at)
{
  if (at == 10 && memcmp(full, "postmaster", 10) == 0) return 1;
  if (!cf.users_cdb && !cf.validrcptto_cdb) return 1;
  if (cf.validrcptto_cdb &&
      (cdb_has("control/validrcptto.cdb", full, n) ||
       cdb_has("control/validrcptto.cdb", full + at, n - at))) return 1;
  if (cf.users_cdb && users_known(full, at)) return 1;
  if (account_known(full, at)) return 1;
  return alias_known(full, at);
}

static int trick(const addr *a)
{
  if (a->route || a->literal) return 1;
  return memchr(a->mbox.s, '%', a->at) || memchr(a->mbox.s, '!', a->at)
         || (a->quoted && memchr(a->mbox.s, '@', a->at));
}

const char *rcpt_check(const addr *a, str *final, const char **why)
{
  static str low;
  const char *dom;
  size_t dn;
  int local;

  if (a->at == a->mbox.len) {
    /* Only "<postmaster>" may come without a domain (RFC 5321 4.1.1.3). */
    if (a->mbox.len != 10 || strncasecmp(a->mbox.s, "postmaster", 10) != 0) {
      *why = "nodomain";
      return "501 5.1.3 a recipient needs a domain";
    }
    need(str_copys(final, "postmaster@"), "nomem");
    need(str_catb(final, cf.me.s, cf.me.len), "nomem");
    return 0;
  }
  need(str_copyb(&low, a->mbox.s, a->mbox.len), "nomem");
  lowercase(low.s, low.len);
  dom = low.s + a->at + 1;
  dn = low.len - a->at - 1;
  local = !a->literal && in_list(&cf.locals, dom, dn);
  if (!ss.relayclient && !ss.authed) {
    if (trick(a)) { *why = "trick"; return "553 5.7.1 sorry, relaying denied"; }
    if (!local && !in_list(&cf.rcpthosts, dom, dn) && !in_rcpthosts_cdb(dom, dn)) {
      *why = "relay";
      return "553 5.7.1 sorry, relaying denied";
    }
  }
  if (local && !local_known(low.s, low.len, a->at)) {
    *why = "unknown";
    return "550 5.1.1 no such user here";
  }
  need(str_copyb(final, a->mbox.s, a->mbox.len), "nomem");
  if (ss.relayclient) need(str_cats(final, ss.relayclient), "nomem");
  return 0;
}

int sender_bad(const addr *a)
{
  static str low;
  size_t i = 0;

  if (!cf.badmailfrom.len || !a->mbox.len) return 0;
  need(str_copyb(&low, a->mbox.s, a->mbox.len), "nomem");
  lowercase(low.s, low.len);
  while (i < cf.badmailfrom.len) {
    const char *b = cf.badmailfrom.s + i;
    size_t len = strlen(b);
    if (len == low.len && strncasecmp(b, low.s, len) == 0) return 1;
    if (b[0] == '@' && a->at < low.len && len == low.len - a->at
        && strncasecmp(b, low.s + a->at, len) == 0) return 1;
    i += len + 1;
  }
  return 0;
}
