#ifndef SPF_H
#define SPF_H
/* SPF (RFC 7208): check_host() for one identity, the MAIL FROM or the
 * HELO one, with every mechanism, modifier, macro and processing limit of
 * the RFC. The DNS is behind struct spf_dns, so that the same code runs on
 * lib/dns (spf_dns_real) and on records a test or a fuzz target feeds.
 *
 * Bounds: at most SPF_LOOKUPS DNS-querying terms (include, a, mx, ptr,
 * exists, redirect), SPF_VOIDS lookups that find nothing, SPF_NAMES MX
 * names (more: permerror) and PTR names (more: ignored) per term; every
 * expanded name is at most SPF_EXPMAX octets while it is built. Time is
 * the DNS side's: spf_dns_real answers DNS_TEMP (so temperror) once its
 * deadline has passed, and no single query outlives it.
 *
 * Where RFC 7208 leaves a choice: the "i" macro of an IPv6 client is in
 * lower case; an IPv4-mapped IPv6 client is checked as IPv4; modifier
 * names are case-insensitive; a DNS error on a name of a "ptr" mechanism
 * skips that name (5.5); a macro's digit transformer of 0 is a syntax
 * error; the whole record is checked for syntax before any term is
 * evaluated (4.6). */
#include <stddef.h>
#include "str.h"

enum spf_result {
  SPF_NONE, SPF_NEUTRAL, SPF_PASS, SPF_FAIL, SPF_SOFTFAIL, SPF_TEMPERROR, SPF_PERMERROR
};

#define SPF_LOOKUPS 10
#define SPF_VOIDS 2
#define SPF_NAMES 10
#define SPF_EXPMAX 4096
#define SPF_EXPLAIN_MAX 512     /* an exp= text is cut here */

/* lookup(ctx, name, type, each, arg) calls each(arg, rd, len) for every
 * record of type (ns_t_txt: the strings concatenated; ns_t_a: 4 octets;
 * ns_t_aaaa: 16; ns_t_mx, ns_t_ptr: the target name, NUL-terminated,
 * without a trailing dot) and returns their count, DNS_NX, DNS_NODATA or
 * DNS_TEMP (lib/dns.h). each returns 0, or -1 to stop: DNS_TEMP. rd is
 * valid only during the call. */
typedef int spf_each(void *arg, const char *rd, size_t len);
struct spf_dns {
  int (*lookup)(void *ctx, const char *name, int type, spf_each *each, void *arg);
  void *ctx;
};

struct spf_req {
  const char *ip;          /* the client, an IPv4 or IPv6 literal */
  const char *helo;        /* %{h}: the HELO/EHLO argument, or "" */
  const char *local;       /* %{l}: "postmaster" for the HELO identity and <> */
  const char *domain;      /* %{o}, the first %{d}: the identity's domain */
  const char *receiver;    /* %{r} in explanations: our host name */
  const struct spf_dns *dns;
};

/* check_host(ip, domain, local@domain). An explanation (exp=, after a
 * fail only) goes to exp, made printable ASCII; exp->len 0 when none.
 * A client address that does not parse is permerror. */
enum spf_result spf_check(const struct spf_req *q, str *exp);

/* "pass", "fail", ... as RFC 7208 2.6 spells them. */
const char *spf_result_name(enum spf_result r);

/* lib/dns behind the interface: every query ends by deadline_ms
 * (lib/date's mono_ms), each try at most per_query seconds; once the
 * deadline has passed, every lookup is DNS_TEMP without a query. The
 * caller has called dns_init. */
struct spf_realdns {
  unsigned long long deadline_ms;
  unsigned per_query;
};
int spf_dns_real(void *ctx, const char *name, int type, spf_each *each, void *arg);

#endif
