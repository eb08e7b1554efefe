#ifndef TCPRULES_H
#define TCPRULES_H
/* Client addresses and the tcprules(1) table exactly as tcpserver from
 * Debian's ucspi-tcp-ipv6 (0.88 with the IPv6 patch) handles them under
 * -H -R, for qmail-smtpd-listen. Addresses are 16 bytes, IPv4 ones in
 * their IPv4-mapped form (::ffff:a.b.c.d), as that tcpserver holds them.
 *
 * Its text form is not RFC 5952's, and rules are keyed by it: groups in
 * lowercase hex without leading zeros; the longest run of zero groups,
 * even a single one (the first of equal runs), written "::"; a dotted
 * quad only after ::ffff: (::1.2.3.4 is ::102:304). */
#include <stddef.h>
#include "str.h"

#define IP_FMT 46               /* the longest form and its NUL */

/* The TCP6* form: every address as IPv6 (::ffff:127.0.0.1). NUL-terminated;
 * returns the length. */
size_t ip6_fmt(char *s, const unsigned char ip[16]);
/* The TCP* form, also the rules key: a mapped address as its dotted quad. */
size_t ip_fmt(char *s, const unsigned char ip[16]);
int ip_mapped(const unsigned char ip[16]);

/* Looks ip (ip_fmt's form) up in the cdb file at path as tcpserver does:
 * the whole address, then each prefix that ends in '.' or ':', longest
 * first, then "". The first key found is the rule, its value in *rule.
 * 1 found, 0 none, -1 error (errno; a missing file is one, ENOENT, as
 * tcpserver without -X drops every connection then). */
int tcprules_find(const char *path, const char *ip, str *rule);

/* Carries out a rule's value, a sequence of NUL-terminated records: "D"
 * denies; "+NAME=value" sets NAME in the environment (a record without
 * '=' is ignored, as is any other). 1 deny, 0 allow, -1 out of memory. */
int tcprules_apply(str *rule);

#endif
