#ifndef AUTHRES_H
#define AUTHRES_H
/* Authentication-Results (RFC 8601) for qmail-verify: one header built
 * from result fragments, and the test that removes a received one
 * claiming our authserv-id. */
#include <stddef.h>
#include "str.h"

/* Appends "Authentication-Results: ID;\n\tFRAG1;\n\tFRAG2\n" (LF, as the
 * queue stores it): frags are resinfo strings ("spf=pass smtp.mailfrom=x",
 * "dkim=pass header.d=..."), in order; with none, "ID; none". id is
 * control/me, a host name. 0 or -1 (ENOMEM). */
int ar_header(str *out, const char *id, const str *frags, size_t nfrags);

/* 1 when the Authentication-Results field value v (n bytes, after the
 * colon, folding included) names id as its authserv-id, compared without
 * regard to case: CFWS (comments nest, quoted-pairs) skipped before it,
 * a token or a quoted-string read. 0 otherwise, an unreadable value
 * included (it claims nothing). */
int ar_claims(const char *v, size_t n, const char *id);

#endif
