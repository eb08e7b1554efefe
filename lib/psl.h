#ifndef PSL_H
#define PSL_H
/* The Public Suffix List (publicsuffix.org), for the organizational domain
 * of DMARC (RFC 7489 3.2). The list is data, read from a file at start:
 * Debian's publicsuffix package installs PSL_DEFAULT; nothing here knows a
 * suffix by itself. Both the ICANN and the PRIVATE sections are used, as
 * OpenDMARC and libpsl's registrable-domain lookup do.
 *
 * Rules as the list's own algorithm says: a domain matches a rule when
 * the rule's labels equal its rightmost labels, "*" matching any one
 * label; an exception rule ("!") prevails over every other and its public
 * suffix is the rule without its leftmost label; otherwise the matching
 * rule with the most labels prevails; with none, the rule "*" (the
 * rightmost label). Domains are compared in ASCII lower case; a rule with
 * non-ASCII labels is stored in its A-label (xn--) form as well, so that
 * both forms of a domain find it. */
#include <stddef.h>
#include "str.h"

#define PSL_DEFAULT "/usr/share/publicsuffix/public_suffix_list.dat"

struct psl {
  str buf;                 /* the rules, each NUL-terminated */
  const char **rule;       /* sorted by strcmp; point into buf */
  size_t n;
};
#define PSL_INIT { STR_INIT, 0, 0 }

/* Reads the list at path: 0, or -1 with errno (ENOENT and other open and
 * read errors; EINVAL: a rule with a byte that cannot be in a domain, or
 * no rule at all; EFBIG: over 16 MB; ENOMEM).
 * With only (domains, the list ending in 0), just the rules whose
 * rightmost label is that of one of them are kept: lookups are then
 * right for those domains and any other under the same top-level
 * domains, and the load costs one pass over the file, not a sort of all
 * of it. */
int psl_load(struct psl *p, const char *path, const char *const *only);
void psl_free(struct psl *p);

/* The public suffix of the domain d[0..n) (no trailing dot): the offset in
 * d where it starts. */
size_t psl_suffix(const struct psl *p, const char *d, size_t n);
/* The organizational domain of d[0..n): the offset where it starts, the
 * public suffix and one more label. A domain that is itself a public
 * suffix is its own organizational domain (RFC 7489 leaves that case
 * open; DMARCbis's tree walk gives the same). */
size_t psl_orgdomain(const struct psl *p, const char *d, size_t n);

#endif
