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
 * later: no backscatter). For a domain in control/locals (default: me),
 * or one that control/virtualdomains maps to a prepend (the local part
 * then being "prepend-local", as qmail-send hands it to qmail-lspawn),
 * the address is known if
 *   - control/validrcptto.cdb has "local@domain" or "@domain" (the
 *     address as the client gave it), or
 *   - rf_find() (qmail-local/rcptfind.h), the very function qmail-lspawn
 *     routes deliveries with, finds a deliverable account for the local
 *     part: /etc/aliases, users/cdb, system accounts, the alias account's
 *     .qmail files, postmaster.
 * Unknown ones get 550 5.1.1.
 *
 * Relayed recipients (a backup MX). For a domain this host relays for
 * (control/rcpthosts or rcpthosts.cdb, not local) that has at least one
 * key in control/validrcptto.cdb ("local@domain" or "@domain", as the
 * primary's copy holds them), the address is known only if the cdb has
 * "local@domain" or "@domain"; unknown ones get 550 5.1.1 as for a local
 * domain, whoever the client is, rather than a bounce from the queue. A
 * relayed domain without keys there is not checked. Whether a domain has
 * keys takes one pass over the cdb's records (it has no index by
 * domain), made once per domain per session and only for a domain of
 * rcpthosts. */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "smtpd.h"
#include "../qmail-local/rcptfind.h"
#include "../qmail-send/send.h"

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

static struct rw cf_rw = RW_INIT;

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
  need(control_ulong(&cf.timeoutpredata, "control/timeoutpredata", 300), "control/timeoutpredata");
  if (cf.timeoutidle == 0) cf.timeoutidle = 60;
  if (cf.timeoutcmd == 0) cf.timeoutcmd = 300;
  if (cf.timeout == 0) cf.timeout = 600;
  if (cf.maxbadrcpts == 0) cf.maxbadrcpts = 1;
  if (cf.errordelay > 60000) cf.errordelay = 60000;
  if (cf.maxbadcmds == 0) cf.maxbadcmds = 1;
  /* virtualdomains as qmail-send reads it; without control/me (ENOENT)
   * there is nothing qmail-send could deliver, so no virtual domain. */
  if (rw_load(&cf_rw) < 0 && errno != ENOENT) need(-1, "control/virtualdomains");
  cf.validrcptto_cdb = access("control/validrcptto.cdb", F_OK) == 0;
}

int domain_in_list(const str *list, const char *d, size_t n)
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

/* An open cdb for rf_find, or NULL when path does not exist. */
static struct cdb *table_open(const char *path, struct cdb *c, int *fd)
{
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) { need(errno == ENOENT ? 0 : -1, path); return 0; }
  need(cdb_init(c, *fd), path);
  return c;
}

static void table_close(struct cdb *c, int fd)
{
  if (!c) return;
  cdb_free(c);
  close(fd);
}

/* The account of that name in /etc/passwd. glibc's own parser
 * (fgetpwent) reads it, not NSS: qmail-smtpd is linked static, which
 * halves the cost of its exec per connection, and a static program cannot
 * load NSS modules. Accounts only in LDAP and the like are therefore not
 * seen here; list them in users/assign. */
static struct passwd *passwd_file(const char *name)
{
  struct passwd *pw;
  FILE *f = fopen("/etc/passwd", "re");

  if (!f) {
    need(errno == ENOENT ? 0 : -1, "/etc/passwd");
    return 0;
  }
  while ((pw = fgetpwent(f)) && strcmp(pw->pw_name, name)) {}
  fclose(f);
  return pw;
}

/* 1 if rf_find() finds local[0..n), 0 if not; an error closes the
 * session with 421 (need), as delivery would defer it. */
static int deliverable(const char *local, size_t n)
{
  static struct rf_dest d;
  struct cdb uc, ac;
  struct rf_ctx c;
  const char *why = 0;
  int ufd, afd, r;
  struct stat st;

  c.users = table_open("users/cdb", &uc, &ufd);
  c.aliases = table_open("users/aliases.cdb", &ac, &afd);
  c.getpw = passwd_file;
  c.alias = rf_alias_home();
  /* Single-uid mode (the alias directory is our own): qmail-lspawn then
   * delivers only to that uid. */
  c.only_uid = stat("alias", &st) == 0 && st.st_uid == geteuid() ? (long long)geteuid() : -1;
  r = rf_find(&c, local, n, &d, &why);
  table_close(c.users, ufd);
  table_close(c.aliases, afd);
  if (r == RF_ERROR) { errno = EIO; need(-1, why); }
  return r == RF_FOUND;
}

/* full[0..n) is "local@domain", lowercased; at is the '@'; lp[0..lpn)
 * the local part delivery will see (after a virtualdomains prepend). */
static int local_known(const char *full, size_t n, size_t at, const char *lp, size_t lpn)
{
  if (cf.validrcptto_cdb &&
      (cdb_has("control/validrcptto.cdb", full, n) ||
       cdb_has("control/validrcptto.cdb", full + at, n - at))) return 1;
  return deliverable(lp, lpn);
}

/* 1 if some key of validrcptto.cdb ends in "@" d[0..n) (case ignored);
 * the answer for the last domain is kept for the session. */
static int vr_has_domain(const char *d, size_t n)
{
  static str last;
  static int last_r = -1;
  struct cdb c;
  unsigned pos;
  int fd, r = 0, more = 0;

  if (last_r >= 0 && last.len == n && !memcmp(last.s, d, n)) return last_r;
  if (!table_open("control/validrcptto.cdb", &c, &fd)) return 0;
  cdb_seqinit(&pos, &c);
  while (!r && (more = cdb_seqnext(&pos, &c)) > 0) {
    unsigned kl = cdb_keylen(&c);
    const char *k = kl > n ? cdb_getkey(&c) : 0;
    r = k && k[kl - n - 1] == '@' && !strncasecmp(k + kl - n, d, n);
  }
  table_close(&c, fd);
  need(!r && more < 0 ? -1 : 0, "control/validrcptto.cdb");   /* a damaged file: 421, as delivery would defer */
  need(str_copyb(&last, d, n), "nomem");
  return last_r = r;
}

/* For a relayed domain with keys in validrcptto.cdb: 1 if full[0..n)
 * ("local@domain", lowercased, '@' at at) is one, or "@domain" is. */
static int relayed_known(const char *full, size_t n, size_t at)
{
  if (!cf.validrcptto_cdb || !vr_has_domain(full + at + 1, n - at - 1)) return 1;
  return cdb_has("control/validrcptto.cdb", full, n) ||
         cdb_has("control/validrcptto.cdb", full + at, n - at);
}

static int trick(const addr *a)
{
  if (a->route || a->literal) return 1;
  return memchr(a->mbox.s, '%', a->at) || memchr(a->mbox.s, '!', a->at)
         || (a->quoted && memchr(a->mbox.s, '@', a->at));
}

const char *rcpt_check(const addr *a, str *final, const char **why)
{
  static str low, mapped;
  const char *dom;
  size_t dn;
  int local, hosted;

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
  local = !a->literal && domain_in_list(&cf.locals, dom, dn);
  hosted = !local && !a->literal && (domain_in_list(&cf.rcpthosts, dom, dn) || in_rcpthosts_cdb(dom, dn));
  if (!ss.relayclient && !ss.authed) {
    if (trick(a)) { *why = "trick"; return "553 5.7.1 sorry, relaying denied"; }
    if (!local && !hosted) {
      *why = "relay";
      return "553 5.7.1 sorry, relaying denied";
    }
  }
  if (local) {
    need(str_copyb(&mapped, low.s, low.len), "nomem");
  } else if (!a->literal && cf_rw.nvd) {
    int ch = rw_classify(&cf_rw, low.s, low.len, &mapped);
    need(ch, "nomem");
    local = ch == CH_LOCAL;
  }
  if (local && !local_known(low.s, low.len, a->at, mapped.s,
                            (size_t)((char *)memrchr(mapped.s, '@', mapped.len) - mapped.s))) {
    *why = "unknown";
    return "550 5.1.1 no such user here";
  }
  if (!local && hosted && !relayed_known(low.s, low.len, a->at)) {
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
