#ifndef MTASTS_H
#define MTASTS_H
/* MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) for qmail-remote.
 *
 *   stspolicy.c   what the three programs share: the policy's and the TXT
 *                 records' grammar, MX patterns, the cache file, the
 *                 TLS-RPT day file's lines
 *   mtasts.c      the delivery side (linked into qmail-remote and
 *                 qmail-rspawn's workers): the policy for a domain, from
 *                 the cache or by running qmail-mtasts, and a line per TLS
 *                 session under a policy in the day file
 *   qmail-mtasts.c  the fetcher: TXT id, HTTPS GET, the cache file
 *   qmail-tlsrpt.c  the daily reports, out of the delivery path
 *
 * State, all the remote uid's: mtasts/<domain> (the cache: a header line
 * "STS1 <fetched, unix seconds> <id>" then the policy as fetched, replaced
 * atomically) and tlsrpt/<YYYY-MM-DD> (UTC day; appended lines, each one
 * write(2) well under PIPE_BUF, "<policy-domain> <mode> <mx-host> <ip>
 * <result>", result "ok" or an RFC 8460 result-type; "-" for a field
 * that does not apply; DANE's lines add " <tlsa>", at most RPT_TLSAMAX
 * bytes, else "-").
 */
#include <stddef.h>
#include "str.h"

#define STS_MXMAX 32
#define STS_HOSTMAX 256
#define STS_IDMAX 33                /* 1..32 alphanumerics (RFC 8461 3.1) */
#define STS_POLICYMAX 65536         /* RFC 8461 3.3: at most 64 KiB */
#define STS_MAXAGE_MAX 31557600ul   /* RFC 8461 3.2 */
#define STS_CACHEDIR "mtasts"
#define RPT_DIR "tlsrpt"
#define RPT_TLSAMAX 2048           /* a day file line stays under PIPE_BUF */
#define RPT_DAYMAX (64ul << 20)    /* a day file grows no further */

enum { STS_MODE_NONE = 1, STS_MODE_TESTING, STS_MODE_ENFORCE };

struct sts_policy {
  int mode;                         /* STS_MODE_* */
  unsigned long max_age;
  size_t nmx;
  char mx[STS_MXMAX][STS_HOSTMAX];  /* lower case, "*." wildcards kept */
};

/* Parses a policy body of n bytes (RFC 8461 3.2: "key: value" lines, LF
 * or CRLF; version STSv1, mode and max_age required, at least one mx
 * unless mode is none; unknown keys ignored; mx patterns beyond
 * STS_MXMAX ignored). 0, or -1 with *err. */
int sts_parse(const char *s, size_t n, struct sts_policy *p, const char **err);
/* 1 if host (any case, a final dot ignored) matches one of p's patterns:
 * exactly, or "*.rest" for one more label in front of rest. */
int sts_mx_match(const struct sts_policy *p, const char *host);
/* A TXT record at _mta-sts.<domain>: 1 for a valid "v=STSv1; id=..." with
 * the id copied, 0 for a record that is not STSv1, -1 for an STSv1
 * record that does not parse. */
int sts_txt_id(const char *txt, size_t len, char id[STS_IDMAX]);
/* A dns_txt callback for _mta-sts.<domain>: ctx is a char[STS_IDMAX]
 * holding "" before the lookup; after it, the id of the only valid STSv1
 * record, "" when there is none, "\1" when there are two or more (RFC
 * 8461 3.1: then none counts). */
int sts_txt_collect(const char *txt, size_t len, void *ctx);
/* A TXT record at _smtp._tls.<domain>: 1 for "v=TLSRPTv1; rua=..." with
 * the rua value (comma-separated URIs) appended to rua, 0 otherwise. */
int rpt_txt_rua(const char *txt, size_t len, str *rua);
/* 1 if domain can name a file: letters, digits, '-', '.', no leading dot,
 * no "..", under 254 bytes; lower-cased into out (STS_HOSTMAX). */
int sts_domain_ok(const char *domain, char out[STS_HOSTMAX]);

struct sts_cached {
  unsigned long long fetched;       /* unix seconds */
  char id[STS_IDMAX];
  str body;                         /* the policy as fetched */
  struct sts_policy p;
};
/* Reads STS_CACHEDIR/<domain> (domain as sts_domain_ok gave it): 1 with c
 * filled, 0 when there is none, -1 when it cannot be read or does not
 * parse (treated as none by callers, logged). */
int sts_cache_read(const char *domain, struct sts_cached *c);
/* Replaces it atomically: 0 or -1. */
int sts_cache_write(const char *domain, unsigned long long now, const char *id,
                    const char *body, size_t n);

/* "YYYY-MM-DD" of unix time t (UTC), NUL-terminated. */
void rpt_day(char out[11], unsigned long long t);

/* The fetcher's exit codes, each a TLS-RPT result-type for the delivery
 * side to record; 100 (usage) and any other code: a fetch error. */
#define STS_FETCH_OK 0
#define STS_FETCH_ERROR 1           /* sts-policy-fetch-error */
#define STS_FETCH_INVALID 2         /* sts-policy-invalid */
#define STS_FETCH_WEBPKI 3          /* sts-webpki-invalid */

/* ---- mtasts.c: the delivery side ---- */
struct sts {
  int mode;                         /* 0: no policy applies, else STS_MODE_* */
  char domain[STS_HOSTMAX];
  struct sts_cached c;              /* the policy applied, when mode */
};
/* The policy for domain (rconf's resolver set up): the TXT record and the
 * cache; runs PREFIX/bin/qmail-mtasts when the cache is missing, expired,
 * past half its max_age, or of another id than the TXT record's (each run
 * bounded by the fetcher's own alarm). A cached policy that has not
 * expired is used when the fetch fails or the TXT record is gone.
 * control/mtasts 0 turns all of this off. Logs event=mtasts when a policy
 * applies or could not be had. Never fails the delivery itself. */
void sts_lookup(const char *domain, struct sts *s);
/* Under s's policy: 1 if MX host may be used (always outside enforce);
 * logs and records a mismatch. */
int sts_mx_allowed(struct sts *s, const char *host);
/* The TLS-RPT result-type for why a session to host failed before its
 * mail transaction, or 0 when the failure was not TLS's. */
const char *sts_failure_type(const char *why);
/* Appends a session's line to the day file (result "ok" or a result-type)
 * when s has a testing or enforce policy. */
void sts_record(const struct sts *s, const char *host, const char *ip, const char *result);
/* The same line for any policy: mode "enforce", "testing", or "dane" for
 * a session under DANE (TLS-RPT policy-type tlsa; result "ok" or e.g.
 * tlsa-invalid, dnssec-invalid, starttls-not-supported), whose line ends
 * in a sixth field, tlsa: the TLSA records (dane_rrset_field), the
 * report's policy-string. tlsa 0 for the other modes. For the DANE
 * check, which wins over MTA-STS where it applies (RFC 8461 section 2). */
void rpt_session(const char *domain, const char *mode, const char *host, const char *ip, const char *result,
                 const char *tlsa);
void sts_free(struct sts *s);

#endif
