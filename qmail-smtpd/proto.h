#ifndef SMTPD_PROTO_H
#define SMTPD_PROTO_H
/* The SMTP grammar of qmail-smtpd as pure functions over byte ranges: no
 * I/O, no global state, no allocation. The server and the fuzz target
 * (fuzz-smtpd.c) drive the same code. */
#include <stddef.h>

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF. */
#define CMD_MAX 512
/* RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with CRLF. */
#define TEXT_MAX 1000

enum verb {
  V_UNKNOWN, V_HELO, V_EHLO, V_MAIL, V_RCPT, V_DATA, V_BDAT, V_RSET,
  V_NOOP, V_QUIT, V_VRFY, V_EXPN, V_HELP, V_STARTTLS, V_AUTH, V_NVERBS
};

enum {
  CMD_OK = 0,
  CMD_BARELF,     /* the line ends in LF without CR */
  CMD_BARECR,     /* a CR not followed by LF inside the line */
  CMD_NUL         /* a NUL byte */
};

struct cmd {
  int verb;
  const char *arg;     /* after the verb and one space; "" if none */
  size_t arglen;       /* CRLF excluded */
};

/* Splits line[0..n), which ends in "\n" (as buf_line returns it), into a
 * verb and its argument. Anything but one CRLF at the very end, or a NUL,
 * makes an error: the caller replies 500 and never guesses a verb. */
int cmd_parse(const char *line, size_t n, struct cmd *c);

/* If arg starts with word (ASCII case ignored), followed by optional
 * spaces, returns the length consumed; else 0. Used for "FROM:"/"TO:". */
size_t cmd_prefix(const char *arg, size_t n, const char *word);

/* MAIL FROM parameters (RFC 5321 4.1.2 esmtp-param, space separated). */
struct mailparams {
  unsigned long long size;   /* SIZE=, 0 when absent */
  int has_size;
  int body8;                 /* BODY=8BITMIME */
  int utf8;                  /* SMTPUTF8 */
  unsigned ret;              /* RET= (RFC 3461): 'F', 'H', 0 when absent */
  const char *envid;         /* ENVID= as sent (into s), or NULL */
  size_t envidn;
  const char *why;           /* PARAM_DSN: what is wrong, for the reply */
};
/* RCPT TO parameters: the DSN ones (RFC 3461). */
struct rcptparams {
  unsigned notify;           /* DSN_NOTIFY_* bits, 0 when absent */
  const char *orcpt;         /* ORCPT= as sent (into s), or NULL */
  size_t orcptn;
  const char *why;
};
enum {
  PARAM_OK = 0,
  PARAM_SYNTAX = -1,         /* 501: not esmtp-param syntax */
  PARAM_UNKNOWN = -2,        /* 555: a keyword or value we do not offer */
  PARAM_DSN = -3             /* 501: a DSN parameter's bad value, or one
                                given twice; why says which */
};
/* s[0..n) is what follows the path: empty, or " KEY[=VALUE]..." */
int mail_params(const char *s, size_t n, struct mailparams *p);
int rcpt_params(const char *s, size_t n, struct rcptparams *p);

/* "BDAT" SP chunk-size [SP "LAST"] (RFC 3030); arg is after "BDAT ".
 * 0 or -1. */
int bdat_parse(const char *arg, size_t n, unsigned long long *size, int *last);

/* --- message text ------------------------------------------------------
 * A decoder for the bytes after DATA's 354 (dot-terminated, dot-stuffed)
 * or inside BDAT chunks (counted, no dots). It turns CRLF into LF and
 * notes, without stopping, anything that makes the message unacceptable,
 * so that the caller always reads to the end before it replies.
 *
 * Invariant: only CR LF "." CR LF, where the first CR LF is a real line
 * end or the start of the data, ends DATA. A bare LF or bare CR never
 * starts a line, so "\n.\n", "\r.\r\n", "\n.\r\n" and the like do not end
 * the message and cannot smuggle commands after it. */
enum {
  DD_BARELF = 1,
  DD_BARECR = 2,
  DD_NUL = 4,
  DD_LONG = 8
};

struct dd {
  int state;
  int chunking;        /* BDAT: no dot-stuffing, no end marker */
  unsigned flags;      /* DD_* seen so far */
  size_t linelen;      /* octets of the current decoded line, saturating */
};

void dd_init(struct dd *d, int chunking);
/* Decodes in[0..n) into out, which has room for 2*n bytes; *outlen gets
 * the bytes written. Returns the input bytes consumed: all n, or fewer
 * when the end of DATA was reached, in which case *done is set to 1 and
 * the bytes after the end are left for the command reader. */
size_t dd_feed(struct dd *d, const char *in, size_t n, char *out, size_t *outlen, int *done);
/* At the end of the last BDAT chunk: a CR still pending is bare. Returns
 * the final flags. */
unsigned dd_finish(struct dd *d);

/* --- mail loops: lib/hops.h ------------------------------------------- */
#include "hops.h"

#endif
