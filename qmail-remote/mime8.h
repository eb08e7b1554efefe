#ifndef MIME8_H
#define MIME8_H
/* Converting a message for a receiver that must not get it as stored
 * (RFC 5321 4.5.3.1.6: no line over 998 octets; RFC 6152 3: no 8-bit
 * byte to a server without 8BITMIME), the way Postfix's SMTP client does.
 *
 * What changes, part by part (RFC 2045/2046; multipart and message/rfc822
 * are followed down to MIME8_DEPTH multipart levels):
 *   - a header line over MIME8_LINE is folded before a blank, or where
 *     there is none by inserting LF and a space;
 *   - a leaf part in 7bit/8bit/binary (or no encoding) with a long line,
 *     or with an 8-bit byte when seven is set, is re-encoded in
 *     quoted-printable (every type: QP is lossless for line-structured
 *     content), its Content-Transfer-Encoding replaced; a message
 *     gaining an encoding also gets "MIME-Version: 1.0" if it had none,
 *     and "Content-Type: text/plain; charset=unknown-8bit" (RFC 1428) if
 *     it had no type and 8-bit bytes;
 *   - a part already in quoted-printable gets soft line breaks and its
 *     8-bit bytes as =XX; one in base64 is re-wrapped at 76 columns;
 *   - preamble and epilogue (which readers ignore, RFC 2046 5.1.1) are
 *     cut at MIME8_LINE octets a line, their 8-bit bytes made '?'.
 * What cannot be converted, only when it would have to be (MIME8_HEADER8,
 * MIME8_CANNOT): an 8-bit byte in a header with seven set (raw UTF-8 or
 * legacy 8-bit header text: RFC 2047 encoding is not attempted); a part
 * in another encoding or of a type that must not be encoded (multipart
 * without a boundary or too deep, message/partial...); 8-bit in base64;
 * a part past the first MIME8_PARTS.
 *
 * A message with no line over MIME8_LINE (and, with seven, no 8-bit
 * byte) comes out byte for byte as it went in: the caller need not even
 * run it. A converted message no longer matches a DKIM signature made
 * before: a signer must sign what it sends after conversion, or sign only
 * messages that need none (qmail-remote converts only when the receiver
 * requires it).
 *
 * Two passes over the same bytes, each in pieces of any size: MIME8_SCAN
 * decides which parts change (the decision must precede the part's
 * header, which names the encoding) and what cannot be converted; after
 * mime8_rewind, MIME8_WRITE appends the converted message (LF line ends,
 * for smtp_blast) to out. Memory is the struct, whatever the message. */
#include <stddef.h>
#include "str.h"

#define MIME8_LINE 998        /* octets a line, CRLF not counted */
#define MIME8_DEPTH 16        /* nested multiparts followed */
#define MIME8_BOUNDARY 200    /* longest boundary kept (RFC 2046: 70) */
#define MIME8_PARTS 8192      /* parts whose decision is recorded */
#define MIME8_FIELD 1024      /* bytes of a header field parsed */

enum { MIME8_OK = 0, MIME8_NOMEM = -1, MIME8_HEADER8 = -2, MIME8_CANNOT = -3 };

struct mime8_level {
  char b[MIME8_BOUNDARY];
  size_t blen;
  int digest;                 /* multipart/digest: parts default to message/rfc822 */
};

struct mime8 {
  int seven;                  /* 8-bit bytes must go too */
  int write;                  /* 0: MIME8_SCAN, 1: MIME8_WRITE */
  int err;                    /* MIME8_* once something failed */
  unsigned char need[MIME8_PARTS];  /* per part, from the scan: its body's flags */
  unsigned long parts;        /* parts begun in this pass */
  struct mime8_level stack[MIME8_DEPTH];
  size_t depth, lneed;        /* multipart levels; bytes a boundary check needs */
  int state, next;            /* where the input is; after a boundary line's end */
  /* the current part */
  unsigned long idx;
  int msg, dflt_msg;          /* a message's header; default type message/rfc822 */
  int seen_ver, seen_type, type, cte, kind, digest;
  char bnd[MIME8_BOUNDARY];
  size_t bndlen;
  /* its header: the current line (a fold emits its first MIME8_LINE), the field */
  char h[MIME8_LINE + 1];
  size_t hlen;
  int drop;                   /* -1 undecided, 1: the field is left out */
  int hfold;                  /* the current line was folded: not a boundary */
  char f[MIME8_FIELD];
  size_t flen;
  /* its body */
  char l[2 + MIME8_BOUNDARY + 2];  /* a line's start, until it is known not a boundary */
  size_t llen;
  int chk;                    /* at a line's start, collecting into l */
  int mode;
  size_t col;
  unsigned char flags;        /* scan: the body's long lines and 8-bit */
  int cr, ws, soft;           /* quoted-printable: CR and blank pending, after a soft break */
  int esc;
};

/* Starts a scan; seven: the receiver takes 7-bit only. */
void mime8_init(struct mime8 *m, int seven);
/* Starts the write pass over the same bytes, keeping the scan's decisions. */
void mime8_rewind(struct mime8 *m);
/* n more bytes of the message; the write pass appends to out (unused when
 * scanning). MIME8_OK or the first error, which sticks. */
int mime8_feed(struct mime8 *m, const char *p, size_t n, str *out);
/* The end of the message: what was held back goes out. MIME8_OK or error. */
int mime8_end(struct mime8 *m, str *out);
/* A message needs this module when, stored, its longest line (CR before
 * LF not counted) is over MIME8_LINE, or it has an 8-bit byte for a
 * receiver without 8BITMIME. */
int mime8_needed(size_t longest, int eight, int peer8bit);

#endif
