#ifndef VERIFY_DMARC_H
#define VERIFY_DMARC_H
/* DMARC in qmail-verify: lib/dmarc over the message's header, the DKIM
 * results just found and qmail-smtpd's SPF verdict (SPF_RESULT,
 * SPF_DOMAIN: the MAIL FROM domain, or the HELO name for a <> sender, as
 * RFC 7208 2.4 has it), under control/dmarc:
 *
 *   reject       (the default) a fail whose applied policy is reject is
 *                refused: exit QQ_DMARC, 550 5.7.1 from qmail-smtpd; so is
 *                a message whose From: shows the reader a domain that
 *                cannot be judged (several From: fields or addresses, or
 *                one that does not parse: RFC 7489 6.6.1), whatever the
 *                domain publishes; a message without From: shows none
 *                and is only reported
 *   quarantine   those are marked instead, as a fail whose applied policy
 *                is quarantine always is
 *   report       only the Authentication-Results entry and the log line
 *   off          no DMARC at all (no lookups, no entry)
 *
 * The mark is the header field "X-Quarantine: dmarc" (with the domain in
 * a comment) for a .qmail or Sieve rule; qmail-verify removes received
 * ones. The Public Suffix List is read from the file control/publicsuffix
 * names (default psl.h's PSL_DEFAULT, Debian's publicsuffix package). */
#include "dkimverify.h"
#include "str.h"

#define VDMARC_MARK "X-Quarantine"

/* Judges the header block hdr with v's results: appends the dmarc=
 * entry to frag (nothing under off), the mark field to mark when the
 * message is to be quarantined, logs event=dmarc, and returns
 * DMARC_ACT_ACCEPT, DMARC_ACT_QUARANTINE or DMARC_ACT_REJECT. Dies
 * (QQ_BUG) on a control/dmarc it does not understand, (QQ_NOMEM) out of
 * memory. */
int vdmarc_check(const str *hdr, const struct dkim_verify *v, str *frag, str *mark);

#endif
