#ifndef DANE_H
#define DANE_H
/* DANE for SMTP (RFC 7672): the TLSA records of one mail host and the
 * X.509 engine that matches a server's chain against them.
 *
 * Trust comes from DNSSEC as a validating resolver saw it: the caller
 * (deliver.c) asks only when dns_dnssec() said the AD bit can be
 * believed and the host's name came from a signed answer (the MX RRset,
 * or a static route's relay). One host's records at a time, kept here
 * for the handshake that follows (a delivery is one process, or one
 * worker doing deliveries one after another).
 *
 * Usable records are DANE-TA(2) and DANE-EE(3), selector Cert(0) or
 * SPKI(1), matching Full(0), SHA2-256(1) or SHA2-512(2); PKIX-TA(0) and
 * PKIX-EE(1) are unusable in SMTP (RFC 7672 3.1.3). DANE-EE checks the
 * server's own certificate only: no name, no dates, no chain (3.1.1).
 * DANE-TA needs the matched certificate in the chain sent, which becomes
 * the only trust anchor: chain, dates, and a name that is the TLSA base
 * domain or the MX host name (3.2.2, 3.2.3). */
#include <bearssl.h>
#include "str.h"

enum {
  DANE_TEMP = -1,       /* a lookup failed, or an answer was bogus: defer the host */
  DANE_NONE = 0,        /* no secure TLSA RRset: DANE does not apply */
  DANE_USABLE = 1,      /* usable records: TLS and a match are required */
  DANE_UNUSABLE = 2     /* a secure TLSA RRset, none usable: TLS, unauthenticated */
};

/* Looks up the TLSA records of host (a name, no trailing dot needed) for
 * port: first at the CNAME-expanded name of its addresses, then at host
 * (RFC 7672 2.2.2), each as _port._tcp.<base>, CNAMEs followed. The
 * address records must be signed too, else DANE_NONE. *why is a short
 * reason for the log: "tlsa", "no-tlsa", "addr-insecure", ... */
int dane_lookup(const char *host, unsigned long port, const char **why);

/* The engine for the handshake to the host of the last dane_lookup that
 * gave DANE_USABLE. */
const br_x509_class **dane_x509(void);
/* The TLSA base domain of that lookup: the name sent as SNI (RFC 7672
 * 8.1), so that a server with several certificates picks the one its
 * TLSA records describe. */
const char *dane_base(void);
/* After end_chain: "dane-ee" or "dane-ta" for what matched, NULL if
 * nothing did; and a reason text when the chain was refused. */
const char *dane_matched(void);
const char *dane_error(void);
/* The usable TLSA records of the last dane_lookup for the TLS-RPT day
 * file (mtasts.h): each "usage_selector_mtype_hex", comma-separated, set
 * in out (NUL-terminated); "-" when there are none. 0 or -1. */
int dane_rrset_field(str *out);

/* For the unit test: 1 if record (usage, selector, mtype, data[0..n))
 * matches the DER certificate cert[0..len). */
int dane_match(unsigned sel, unsigned mtype, const unsigned char *data, size_t n,
               const unsigned char *cert, size_t len);

#endif
