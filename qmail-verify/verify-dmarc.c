/* DMARC in qmail-verify; what it does is in verify-dmarc.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "control.h"
#include "dmarc.h"
#include "exitcode.h"
#include "log.h"
#include "psl.h"
#include "verify-dmarc.h"

#define PROG "qmail-verify"

#define OFF (-1)

/* control/dmarc: a dmarc_mode, or OFF. */
static int mode(void)
{
  str s = STR_INIT;
  int r = control_line(&s, "control/dmarc"), m;

  if (r < 0) log_fatal(PROG, QQ_BUG, "cannot read control/dmarc");
  if (r == 0 || !s.len) m = DMARC_MODE_REJECT;
  else if (s.len == 3 && !memcmp(s.s, "off", 3)) m = OFF;
  else if ((m = dmarc_mode(s.s, s.len)) < 0) {
    str_free(&s);
    log_die(PROG, QQ_BUG, "control/dmarc is not reject, quarantine, report or off");
  }
  str_free(&s);
  return m;
}

/* The list named by control/publicsuffix (or the default), for the
 * domains of in: 0 or -1. */
static int load_psl(struct psl *p, const struct dmarc_in *in)
{
  const char *only[DKIM_VERIFY_MAX + 3];
  str path = STR_INIT;
  size_t i, n = 0;
  int r = control_line(&path, "control/publicsuffix");

  if (r < 0 || (r > 0 && path.len && str_0(&path) < 0)) { str_free(&path); return -1; }
  only[n++] = in->from;
  if (in->spf_domain) only[n++] = in->spf_domain;
  for (i = 0; i < in->ndkim; i++) only[n++] = in->dkim[i].d;
  only[n] = 0;
  r = psl_load(p, r > 0 && path.len ? path.s : PSL_DEFAULT, only);
  str_free(&path);
  return r;
}

static unsigned roll(void)
{
  unsigned u = 0;
  if (getrandom(&u, sizeof u, 0) != (ssize_t)sizeof u) u = 0;   /* apply the policy */
  return u % 100;
}

static void log_dmarc(const struct dmarc_out *o, const char *from, const char *why, int action)
{
  log_begin(PROG, "dmarc");
  log_kv("result", dmarc_result_name(o->result));
  log_kv("from", from ? from : "");
  if (why) log_kv("reason", why);
  if (o->where[0]) {
    log_kv("policy", dmarc_policy_name(o->policy));
    log_kv("record", o->where);
  }
  log_kv("spf_aligned", o->spf_aligned ? "yes" : "no");
  log_kv("dkim_aligned", o->dkim_aligned ? "yes" : "no");
  log_kv("action", dmarc_action_name(action));
  log_end();
}

int vdmarc_check(const str *hdr, const struct dkim_verify *v, str *frag, str *mark)
{
  static struct psl psl = PSL_INIT;
  struct dmarc_dkim dk[DKIM_VERIFY_MAX];
  struct dmarc_in in;
  struct dmarc_out o;
  char from[DNS_NAMEMAX];
  const char *spf = getenv("SPF_RESULT"), *why = 0, *fromp = from;
  int m = mode(), r, action;
  size_t i;

  if (m == OFF) return DMARC_ACT_ACCEPT;
  memset(&o, 0, sizeof o);
  r = dmarc_from(hdr->s, hdr->len, from);
  if (r == DMARC_FROM_NOMEM) log_fatal(PROG, QQ_NOMEM, "out of memory");
  if (r != DMARC_FROM_OK) {
    /* 6.6.1: no single From: domain to judge. Without From: the reader
     * sees no domain either, so nothing is forged; otherwise it may see
     * one that was never judged. */
    o.result = DMARC_PERMERROR;
    why = dmarc_from_why(r);
    fromp = 0;
    action = r == DMARC_FROM_NONE || m == DMARC_MODE_REPORT ? DMARC_ACT_ACCEPT
           : m == DMARC_MODE_REJECT ? DMARC_ACT_REJECT : DMARC_ACT_QUARANTINE;
  } else {
    memset(&in, 0, sizeof in);
    in.from = from;
    in.spf_pass = spf && !strcmp(spf, "pass");
    in.spf_domain = getenv("SPF_DOMAIN");
    for (i = 0; i < v->n; i++) {
      dk[i].pass = v->r[i].result == DKIM_PASS;
      dk[i].d = v->r[i].d;
    }
    in.dkim = dk;
    in.ndkim = v->n;
    in.roll = roll();
    if (load_psl(&psl, &in) < 0) {
      o.result = DMARC_TEMPERROR;
      why = "no_public_suffix_list";
      action = DMARC_ACT_ACCEPT;
    } else {
      dmarc_eval(&psl, &in, &o);
      action = dmarc_action(&o, m);
    }
  }
  if (dmarc_ar(frag, &o, fromp, why) < 0) log_fatal(PROG, QQ_NOMEM, "out of memory");
  if (action == DMARC_ACT_QUARANTINE &&
      (str_cats(mark, VDMARC_MARK ": dmarc (") < 0 || str_cats(mark, fromp ? fromp : why) < 0 ||
       str_cats(mark, ")\n") < 0))
    log_fatal(PROG, QQ_NOMEM, "out of memory");
  log_dmarc(&o, fromp, why, action);
  psl_free(&psl);
  return action;
}
