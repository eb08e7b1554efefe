#ifndef ADDR_H
#define ADDR_H
/* RFC 5321 paths and mailboxes, parsed strictly: what is not understood is
 * rejected, never guessed at.
 *
 *   Path     = "<" [ A-d-l ":" ] Mailbox ">"
 *   Mailbox  = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string       (RFC 5321 4.1.2)
 *   Domain   = sub-domain *("." sub-domain)      (no trailing dot)
 *   address-literal = "[" IPv4 / "IPv6:" IPv6 "]"
 * With ADDR_UTF8, RFC 6531: valid UTF-8 sequences (no overlongs, no
 * surrogates) are also allowed in atoms, quoted strings and domain labels.
 * A domain label over 63 octets is a syntax error (RFC 1035).
 */
#include <stddef.h>
#include "str.h"

#define ADDR_UTF8   1u   /* SMTPUTF8 was given: accept UTF-8 */
#define ADDR_EMPTY  2u   /* "<>" is acceptable (MAIL FROM) */
#define ADDR_NOAT   4u   /* a mailbox without "@domain" is acceptable
                            ("<postmaster>" in RCPT; sendmail arguments) */

typedef struct {
  str mbox;            /* the mailbox as written, without <>, route, or the
                          NUL that follows it (str_0 is applied) */
  size_t at;           /* index of the '@' in mbox; mbox.len if none */
  unsigned route : 1;  /* a source route "@a,@b:" preceded the mailbox */
  unsigned quoted : 1; /* the local part is a Quoted-string */
  unsigned literal : 1;/* the domain is an address literal */
  unsigned utf8 : 1;   /* bytes over 127 appear */
} addr;

#define ADDR_INIT { STR_INIT, 0, 0, 0, 0, 0 }

enum {
  ADDR_OK = 0,
  ADDR_BAD = -1,       /* syntax error */
  ADDR_LONG = -2,      /* local part over 64, domain over 255, a path over
                          256 octets (brackets and source route included)
                          or a bare mailbox over 254 (RFC 5321 4.5.3.1) */
  ADDR_NOMEM = -3
};

/* Parses a Path at s[0..n). *used receives the number of bytes consumed
 * (through the closing '>'), so that ESMTP parameters can follow. */
int addr_path(const char *s, size_t n, unsigned flags, addr *a, size_t *used);
/* Parses a bare Mailbox that is all of s[0..n) (no angle brackets). */
int addr_mailbox(const char *s, size_t n, unsigned flags, addr *a);
/* addr_mailbox's verdict on all of s[0..n), without allocating (for the
 * setuid qmail-queue): ADDR_OK, ADDR_BAD, or ADDR_LONG when only a length
 * limit is exceeded (the syntax is complete and correct). */
int addr_check(const char *s, size_t n, unsigned flags);
void addr_free(addr *a);

/* 1 if the domain d[0..n) equals or is a subdomain of pattern p: p is
 * "example.test" (exact) or ".example.test" (any subdomain); ASCII case is
 * ignored. */
int addr_domain_match(const char *d, size_t n, const char *p, size_t pn);

#endif
