#ifndef DNS_H
#define DNS_H
/* DNS lookups for every program that needs them (qmail-remote's MX and
 * addresses; the inbound checks' TXT, A and PTR), through glibc's
 * libresolv: res_nquery sends (retries, TCP on truncation), ns_initparse
 * and ns_parserr read. Nothing here parses packets by hand.
 *
 * One resolver per process, set up by dns_init; one answer buffer, so
 * calls are not reentrant (each callback must copy what it keeps before
 * returning). Programs that use this link -lresolv.
 *
 * Results: DNS_OK (or a count >= 0), DNS_NX (the name does not exist:
 * permanent), DNS_NODATA (it exists, no record of that type), DNS_TEMP
 * (anything else: SERVFAIL, REFUSED, timeout, an answer that does not
 * parse or is still truncated after TCP), so a broken resolver defers
 * and never bounces. */
#include <arpa/nameser.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "str.h"

enum { DNS_OK = 0, DNS_TEMP = -1, DNS_NX = -2, DNS_NODATA = -3, DNS_NULLMX = -4 };
#define DNS_MXMAX 16
#define DNS_ADDRMAX 16
#define DNS_NAMEMAX 1025
#define DNS_TXTMAX 65536          /* a TXT record's strings, concatenated */

struct mx {
  unsigned pref;
  char name[DNS_NAMEMAX];
};
struct raddr {
  struct sockaddr_storage sa;     /* port not set */
  socklen_t len;
};

/* Sets up the resolver once per process; server is control/dnsserver
 * ("IP" or "IP:port", IPv4), which then replaces every server of
 * /etc/resolv.conf, or empty for resolv.conf. Search lists are never
 * used: names are absolute. 0 or -1. */
int dns_init(const str *server);
/* Bounds each later query: timeout seconds per try (>= 1), tries >= 1.
 * A lookup that follows CNAMEs across queries may take several queries. */
void dns_limits(unsigned timeout, unsigned tries);

/* Calls each(m, rr, ctx) for every answer record of type owned by name
 * once CNAMEs are followed (within an answer and across queries, at most
 * 8 hops). each returns 0, or -1 to make the lookup DNS_TEMP. Returns the
 * number of records passed, DNS_NX, DNS_NODATA or DNS_TEMP. */
int dns_lookup(const char *name, int type,
               int (*each)(const ns_msg *m, const ns_rr *rr, void *ctx), void *ctx);
/* 1 if the last answer received had the AD (authenticated data) bit. */
int dns_last_ad(void);
/* DNSSEC through a validating resolver (RFC 7672 2.1, as Postfix does):
 * asks for it in every later query (EDNS0 with the DO bit, and glibc's
 * RES_TRUSTAD so that the AD bit of answers is kept). Returns 1 when the
 * AD bit can be believed: control/dnsserver named one server and it is on
 * loopback (127.0.0.0/8), a path no one else on the network can forge;
 * else 0, and AD must never be taken as proof. After dns_init. */
int dns_dnssec(void);
/* Starts a span of lookups; dns_ad_since() is then 1 while every answer
 * received since (each query of a CNAME chain, both families of
 * dns_addrs) had the AD bit, 0 as soon as one did not. */
void dns_ad_begin(void);
int dns_ad_since(void);
/* The TTL of the last record passed to an each callback is ns_rr_ttl(*rr). */

/* Each TXT record of name, its character-strings concatenated (RFC 7208
 * 3.3, RFC 6376 3.6.2.2), as each(txt, len, ctx); txt is NUL-terminated
 * after len and valid only during the call. Returns as dns_lookup. */
int dns_txt(const char *name, int (*each)(const char *txt, size_t len, void *ctx), void *ctx);

/* The MX hosts of domain, by preference, equal preferences shuffled.
 * A domain with no MX gets itself as the only host (implicit MX).
 * DNS_OK, DNS_TEMP, DNS_NX (no such domain), DNS_NULLMX (RFC 7505). */
int dns_mx(const char *domain, struct mx *out, size_t max, size_t *n);
/* The IPv6 then IPv4 addresses of host. DNS_OK with *n > 0, DNS_TEMP, or
 * DNS_NX / DNS_NODATA when it has no address. */
int dns_addrs(const char *host, struct raddr *out, size_t max, size_t *n);
/* Parses an IPv4 or IPv6 literal (no brackets); 1 if it is one. */
int ip_parse(const char *s, struct raddr *a);

#endif
