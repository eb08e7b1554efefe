/* SPF at MAIL (lib/spf): for clients neither RELAYCLIENT nor
 * authenticated, the HELO identity (once per HELO name) and the MAIL FROM
 * one (postmaster@HELO for <>, RFC 7208 2.4), both within one bound of
 * control/spftimeout seconds per MAIL command. Each check is one log
 * line; the verdict goes to the queue stage as SPF_RESULT, SPF_SCOPE and
 * SPF_DOMAIN in our environment, which qmail-queue's child inherits
 * (lib/qq.h). Those three are removed at every MAIL first, so that no
 * value from tcpserver's environment or an earlier transaction passes.
 *
 * control/spfpolicy, one word a line: "off" (no checks), "fail=reject"
 * (550 5.7.23 at MAIL for a fail of either identity), "temperror=defer"
 * (451 4.7.24 for a temperror). Without it only the verdict is reported:
 * SPF breaks plain forwarding, so refusing is the site's choice. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "control.h"
#include "date.h"
#include "dns.h"
#include "log.h"
#include "spf.h"
#include "smtpd.h"

#define SPF_TIMEOUT 20          /* seconds: RFC 7208 4.6.4's "at least 20" */
#define SPF_TIMEOUT_MAX 3600    /* larger values are cut to it */

static struct {
  int loaded, bad, off, rejectfail, defertemp;
  unsigned long timeout;
} pol;
static str helo_done;           /* the HELO name helo_res is for */
static enum spf_result helo_res;

static void config_warn(const char *what)
{
  log_begin(PROG, "warning");
  log_kv("msg", what);
  log_kv("errno", strerror(errno));
  log_end();
}

/* Reads the policy once per session; 0, or -1 on a bad configuration. */
static int load(void)
{
  static str lines, server;
  size_t i;

  if (pol.loaded) return pol.bad ? -1 : 0;
  pol.loaded = 1;
  if (control_lines(&lines, "control/spfpolicy") < 0) { config_warn("cannot read control/spfpolicy"); pol.bad = 1; }
  for (i = 0; i < lines.len; i += strlen(lines.s + i) + 1) {
    const char *w = lines.s + i;
    if (!strcmp(w, "off")) pol.off = 1;
    else if (!strcmp(w, "fail=reject")) pol.rejectfail = 1;
    else if (!strcmp(w, "temperror=defer")) pol.defertemp = 1;
    else if (strcmp(w, "report")) { errno = EINVAL; config_warn("bad line in control/spfpolicy"); pol.bad = 1; }
  }
  if (control_ulong(&pol.timeout, "control/spftimeout", SPF_TIMEOUT) < 0 || pol.timeout == 0) {
    config_warn("cannot read control/spftimeout");
    pol.bad = 1;
  }
  if (pol.timeout > SPF_TIMEOUT_MAX) pol.timeout = SPF_TIMEOUT_MAX;   /* no overflow in ms */
  if (!pol.off && !pol.bad &&
      (control_line(&server, "control/dnsserver") < 0 || dns_init(&server) < 0)) {
    config_warn("cannot set up the resolver (control/dnsserver)");
    pol.bad = 1;
  }
  return pol.bad ? -1 : 0;
}

static void log_check(const char *scope, const char *domain, enum spf_result r)
{
  log_begin(PROG, "spf");
  log_kv("ip", ss.remoteip);
  log_kv("scope", scope);
  log_kv("domain", domain);
  log_kv("result", spf_result_name(r));
  log_end();
}

/* A domain SPF can check: not an address literal, not one label. */
static int checkable(const char *d)
{
  return *d != '[' && strchr(d, '.') != 0;
}

static enum spf_result check(const char *scope, const char *local, const char *domain,
                             const struct spf_dns *dns, str *exp)
{
  struct spf_req q = { ss.remoteip, ss.helo.s, local, domain, cf.me.s, dns };
  enum spf_result r = checkable(domain) ? spf_check(&q, exp) : SPF_NONE;
  log_check(scope, domain, r);
  return r;
}

static void set(const char *k, const char *v)
{
  if (setenv(k, v, 1) < 0) quit(1, "nomem");
}

void spf_reset(void)
{
  unsetenv("SPF_RESULT");
  unsetenv("SPF_SCOPE");
  unsetenv("SPF_DOMAIN");
}

const char *spf_mail(const addr *a, const char **why)
{
  static str local, domain, exp, line;
  struct spf_realdns rd;
  struct spf_dns dns = { spf_dns_real, &rd };
  enum spf_result r;
  const char *scope = "mailfrom";

  spf_reset();
  if (ss.relayclient || ss.authed) return 0;
  if (load() < 0) { *why = "spf-config"; return "451 4.3.0 temporary configuration error, try again later"; }
  if (pol.off) return 0;
  if (str_0(&cf.me) < 0) quit(1, "nomem");
  rd.deadline_ms = mono_ms() + pol.timeout * 1000ULL;
  rd.per_query = pol.timeout < 5 ? (unsigned)pol.timeout : 5;
  exp.len = 0;
  if (!helo_done.s || strcmp(helo_done.s, ss.helo.s)) {
    helo_res = check("helo", "postmaster", ss.helo.s, &dns, &exp);
    if (str_copys(&helo_done, ss.helo.s) < 0 || str_0(&helo_done) < 0) quit(1, "nomem");
  }
  if (!a->mbox.len) {
    r = helo_res;
    scope = "helo";
    if (str_copys(&domain, ss.helo.s) < 0 || str_0(&domain) < 0) quit(1, "nomem");
  } else {
    if (str_copyb(&local, a->mbox.s, a->at) < 0 || str_0(&local) < 0) quit(1, "nomem");
    if (a->at < a->mbox.len) {
      if (str_copyb(&domain, a->mbox.s + a->at + 1, a->mbox.len - a->at - 1) < 0) quit(1, "nomem");
    } else if (str_copys(&domain, ss.helo.s) < 0) quit(1, "nomem");
    if (str_0(&domain) < 0) quit(1, "nomem");
    r = a->literal || a->utf8 ? SPF_NONE : check("mailfrom", local.len ? local.s : "postmaster", domain.s, &dns, &exp);
  }
  set("SPF_RESULT", spf_result_name(r));
  set("SPF_SCOPE", scope);
  set("SPF_DOMAIN", domain.s);
  if (pol.rejectfail && (r == SPF_FAIL || helo_res == SPF_FAIL)) {
    *why = r == SPF_FAIL ? "spf-fail" : "spf-helo-fail";
    line.len = 0;
    if (str_cats(&line, "550 5.7.23 ") < 0 ||
        str_cats(&line, exp.len ? "" : "SPF: the sender's domain does not allow this host to send its mail") < 0 ||
        str_catb(&line, exp.s, exp.len) < 0 || str_0(&line) < 0) quit(1, "nomem");
    return line.s;
  }
  if (pol.defertemp && r == SPF_TEMPERROR) {
    *why = "spf-temperror";
    return "451 4.7.24 SPF: temporary DNS error checking the sender, try again later";
  }
  return 0;
}
