#ifndef DSNPARAM_H
#define DSNPARAM_H
/* The DSN parameters of RFC 3461, in their SMTP spelling, for the three
 * programs that carry them: qmail-smtpd takes them on MAIL and RCPT,
 * qmail-queue(d) takes them in the envelope (qmail-queue.c) and keeps them
 * in the queue file (qfile.h), qmail-send puts them in its reports.
 *
 *   MAIL  RET=FULL|HDRS           return the whole message or its headers
 *         ENVID=<xtext>           the sender's id of the transaction, at
 *                                 most DSN_ENVID_MAX bytes, decoding to
 *                                 printable ASCII (RFC 3461 4.4)
 *   RCPT  NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY
 *         ORCPT=<type>;<xtext>    the original recipient, at most
 *                                 DSN_ORCPT_MAX bytes; type an atom
 *                                 ("rfc822", "utf-8"); decoding to no
 *                                 ASCII control byte (it becomes a header
 *                                 field); UTF-8 allowed (RFC 6533)
 * Keywords and NOTIFY/RET values are case-insensitive; xtext is "+HH"
 * (upper-case hex) for '+', '=', and bytes outside 33..126. */
#include <stddef.h>
#include "str.h"

#define DSN_NOTIFY_SUCCESS 1u
#define DSN_NOTIFY_FAILURE 2u
#define DSN_NOTIFY_DELAY   4u
#define DSN_NOTIFY_NEVER   8u
#define DSN_ENVID_MAX 100
#define DSN_ORCPT_MAX 500

enum { DSNP_RET = 1, DSNP_ENVID, DSNP_NOTIFY, DSNP_ORCPT };

/* Which DSN keyword k[0..kn) is (any case): DSNP_*, or 0 for none. */
int dsnp_keyword(const char *k, size_t kn);
/* Checks the value v[0..n) of keyword kw (DSNP_*). Returns NULL when it
 * is valid, else a short reason for a 501 reply. On success *bits gets
 * NOTIFY's DSN_NOTIFY_* bits, or for RET 'F' or 'H'. */
const char *dsnp_check(int kw, const char *v, size_t n, unsigned *bits);
/* "KEY=VALUE" as one string: the keyword into *kw, the value into v
 * and vn; NULL or the reason, as dsnp_check. */
const char *dsnp_split(const char *s, size_t n, int *kw, const char **v, size_t *vn, unsigned *bits);
/* Appends the decoded xtext s[0..n) (valid, as checked) to out. 0 or -1. */
int xtext_decode(str *out, const char *s, size_t n);

#endif
