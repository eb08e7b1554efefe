#ifndef BASE64_H
#define BASE64_H
/* RFC 4648 section 4 base64, for SMTP AUTH (RFC 4954).
 *
 * The decoder is strict, since its input comes from the network and a
 * lenient one would let two encodings mean the same credentials: only the
 * 64 alphabet characters, a length that is a multiple of 4, '=' padding
 * only at the end (at most two), and zero bits under the padding. No
 * white space, no line breaks. Both functions replace out's contents. */
#include <stddef.h>
#include "str.h"

/* 0, or -1 with errno EINVAL (bad input), ENOMEM or EOVERFLOW. */
int base64_decode(str *out, const char *s, size_t n);
/* 0, or -1 with errno ENOMEM or EOVERFLOW. */
int base64_encode(str *out, const void *p, size_t n);

#endif
