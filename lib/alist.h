#ifndef ALIST_H
#define ALIST_H
/* RFC 5322 address lists (To:, Cc:, Bcc:, From: values; sendmail
 * arguments), parsed strictly: what is not understood is rejected, never
 * guessed at.
 *
 *   address-list = [address] *("," [address])      (empty members: obs)
 *   address      = mailbox / group
 *   group        = display-name ":" [mailbox-list] ";"   (not nested)
 *   mailbox      = [display-name] "<" addr-spec ">" / addr-spec
 *   addr-spec    = local-part ["@" domain]
 *   local-part   = word *("." word)  (a quoted-string only on its own)
 *   domain       = atom *("." atom) / "[" *dtext "]"
 *   display-name = word *(word / ".")                (obs-phrase)
 * with comments (nested at most ALIST_DEPTH deep) and folding white space
 * wherever RFC 5322 allows CFWS. A line break must be followed by a space
 * or a tab (a fold); a bare CR, NUL or other control byte is an error.
 *
 * Departures, all deliberate: "@domain" may be absent (the caller qualifies
 * such local names, as qmail-inject does); source routes "<@a:b@c>" are
 * refused; bytes over 127 are accepted in display names, quoted display
 * names and comments (RFC 6532) but never in an address.
 */
#include <stddef.h>

#define ALIST_DEPTH 32     /* comment nesting */
#define ALIST_ADDR_MAX 1000 /* local "@" domain, as QF_ADDR_MAX */
#define ALIST_DOMAIN_MAX 255

struct alist_addr {
  const char *local;   /* as written, folds removed; quotes kept */
  size_t llen;
  const char *domain;  /* NULL when there was no "@domain" */
  size_t dlen;
  int literal;         /* the domain is "[...]" */
  size_t start, end;   /* the addr-spec in the input: s[start..end), from
                          its first token to its last (a caller may
                          replace those bytes with the qualified address) */
};

/* Called once per address in order; a non-zero return stops the parse. */
typedef int alist_fn(void *ctx, const struct alist_addr *a);

enum {
  ALIST_OK = 0,
  ALIST_BAD = -1,      /* syntax error; *why says what */
  ALIST_NOMEM = -2,
  ALIST_STOP = -3      /* fn returned non-zero */
};

/* Parses all of s[0..n). *why (may be NULL) receives a static description
 * of the first error. */
int alist_parse(const char *s, size_t n, alist_fn *fn, void *ctx, const char **why);

#endif
