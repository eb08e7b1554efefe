#ifndef DMARC_H
#define DMARC_H
/* DMARC (RFC 7489) for one message, with nothing of SMTP: the caller
 * gives the message's header, the SPF verdict and the DKIM verdicts it
 * has, and gets the DMARC result and the policy to apply.
 *
 *   dmarc_from     the RFC5322.From domain (exactly one address, 6.6.1)
 *   dmarc_eval     policy discovery at _dmarc.<from>, then at the
 *                  organizational domain (6.6.3, psl.h), identifier
 *                  alignment (3.1), the verdict and p=/sp=/pct= (6.6.4)
 *
 * RFC 7489 only: DMARCbis's np= (for non-existent From domains) and its
 * tree walk are not followed, np= is ignored as an unknown tag. Report
 * tags (rua=, ruf=, fo=, rf=, ri=) are read only as 6.6.3 step 6 needs.
 * DNS goes through dns.h, so the caller sets it up (dns_init, dns_limits)
 * and each of the at most two TXT lookups is bounded by it. */
#include <stddef.h>
#include "dns.h"
#include "psl.h"

enum { DMARC_NONE = 0, DMARC_PASS, DMARC_FAIL, DMARC_TEMPERROR, DMARC_PERMERROR };
enum { DMARC_P_NONE = 0, DMARC_P_QUARANTINE, DMARC_P_REJECT };

/* dmarc_from's results: anything but DMARC_FROM_OK is a message RFC 7489
 * 6.6.1 says is "typically rejected"; the caller decides. */
enum {
  DMARC_FROM_OK = 0,
  DMARC_FROM_NONE = -1,     /* no From: field */
  DMARC_FROM_MANY = -2,     /* more than one From: field */
  DMARC_FROM_ADDRS = -3,    /* not exactly one address (a list, an empty group) */
  DMARC_FROM_BAD = -4,      /* unparsable, no domain, an address literal, a
                               domain of other than letters, digits, '-',
                               '_' and dots, or a header block that does
                               not parse */
  DMARC_FROM_NOMEM = -5
};
#define DMARC_FIELDS_MAX 4096      /* header fields looked at */

/* The domain of the one From: address in the header of msg[0..n) (the
 * body may follow), lower case, into dom (NUL-terminated). Addresses are
 * read with RFC 5322's grammar (alist.h): comments, quoted strings, groups
 * and folding count as they should. */
int dmarc_from(const char *msg, size_t n, char dom[DNS_NAMEMAX]);
const char *dmarc_from_why(int r);    /* "no_from", "multiple_from", ... */

/* A DMARC record (6.3). */
struct dmarc_record {
  int p, sp;                 /* DMARC_P_*; sp is p when absent */
  int adkim_strict, aspf_strict;
  unsigned pct;              /* 0..100, 100 when absent */
};
enum {
  DMARC_REC_OK = 0,
  DMARC_REC_OTHER = -1,      /* does not start with v=DMARC1: not a DMARC
                                record, discarded (6.6.3 step 3) */
  DMARC_REC_NOPOLICY = -2,   /* p= missing or invalid, or sp= invalid, and
                                no valid rua= URI: no DMARC (6.6.3 step 6) */
  DMARC_REC_BAD = -3         /* v=DMARC1, then a syntax error or an invalid
                                adkim=, aspf= or pct=: permerror */
};
/* Parses the TXT record txt[0..n). A record whose p= (or sp=) is invalid
 * but which has a valid rua= URI is DMARC_REC_OK with p=none (6.6.3). */
int dmarc_record_parse(const char *txt, size_t n, struct dmarc_record *r);

/* Whether domains a and b are aligned (3.1): equal (strict), or of the
 * same organizational domain (relaxed). ASCII case and a trailing dot are
 * ignored. */
int dmarc_aligned(const struct psl *p, const char *a, const char *b, int strict);

/* One DKIM signature's outcome, as the verifier found it. */
struct dmarc_dkim {
  int pass;                  /* dkim=pass */
  const char *d;             /* its d= */
};

struct dmarc_in {
  const char *from;          /* from dmarc_from */
  int spf_pass;              /* SPF gave pass for spf_domain */
  const char *spf_domain;    /* the MAIL FROM domain, or the HELO name when
                                MAIL FROM was <> (RFC 7208 2.4); may be 0 */
  const struct dmarc_dkim *dkim;
  size_t ndkim;
  unsigned roll;             /* uniform in 0..99: the pct= sample */
};

struct dmarc_out {
  int result;                /* DMARC_NONE .. DMARC_PERMERROR */
  int policy;                /* the record's p= (or sp= for a subdomain);
                                DMARC_P_NONE when there is no record */
  int applied;               /* what to do: policy when the result is fail
                                and roll < pct, one step lower when the
                                sample spares it; otherwise DMARC_P_NONE */
  int spf_aligned, dkim_aligned;
  char org[DNS_NAMEMAX];     /* the From domain's organizational domain */
  char where[DNS_NAMEMAX];   /* the domain whose record applied, or "" */
};

/* Evaluates DMARC for in. Returns out->result. A DNS failure (DNS_TEMP)
 * of either lookup is temperror, so that the caller can defer. */
int dmarc_eval(const struct psl *p, const struct dmarc_in *in, struct dmarc_out *out);

const char *dmarc_result_name(int result);   /* "pass", "fail", ... */
const char *dmarc_policy_name(int policy);   /* "none", "quarantine", "reject" */

/* What this host makes of a failure whose applied policy is reject (a
 * control file's word): refuse it (550 5.7.1 at the end of DATA), take it
 * with a quarantine mark, or only report it in Authentication-Results. */
enum { DMARC_MODE_REJECT = 0, DMARC_MODE_QUARANTINE, DMARC_MODE_REPORT };
/* "reject", "quarantine" or "report" in s[0..n): the mode, or -1. */
int dmarc_mode(const char *s, size_t n);

enum { DMARC_ACT_ACCEPT = 0, DMARC_ACT_QUARANTINE, DMARC_ACT_REJECT };
/* The action for out under mode: a fail with applied=reject is REJECT in
 * mode reject and QUARANTINE in mode quarantine; a fail with
 * applied=quarantine is QUARANTINE in both; in mode report, and for every
 * other outcome, ACCEPT. */
int dmarc_action(const struct dmarc_out *out, int mode);
const char *dmarc_action_name(int action);   /* "accept", "quarantine", "reject" */

/* Appends the DMARC method of an Authentication-Results field (RFC 7489
 * 11.2, RFC 8601): "dmarc=<result> (p=<policy>) header.from=<from>". The
 * comment is the record's policy when a record applied, else why (which
 * may be 0: no comment); header.from is left out when from is 0 (no
 * single From: domain). from and why hold no byte that needs quoting
 * (dmarc_from's domains and dmarc_from_why's words). 0 or -1. */
MUST_USE int dmarc_ar(str *s, const struct dmarc_out *out, const char *from, const char *why);

#endif
