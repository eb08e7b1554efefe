#ifndef EXITCODE_H
#define EXITCODE_H
/* Exit codes, one table for every program.
 *
 * qmail's convention: 0 done, 100 a permanent failure (the same run would
 * fail again: bad usage, a bad argument), 111 a temporary one (try again
 * later: no memory, a file that cannot be read, a peer that died). A
 * usage error is permanent everywhere.
 *
 * qmail-queue answers with its exit code alone (qmail-queue(8)): 11..40
 * permanent, the others temporary. The same codes come from qwrite.c's
 * steps in qmail-queue and from qmail-queued over its socket.
 */
#define EXIT_OK    0
#define EXIT_PERM  100
#define EXIT_TEMP  111
#define EXIT_USAGE EXIT_PERM

#define QQ_OK          0
#define QQ_ADDR_LONG   11   /* address too long */
#define QQ_ADDR_BAD    12   /* not an RFC 5321 mailbox */
#define QQ_REFUSED     31   /* refused (filters only) */
#define QQ_DMARC       32   /* refused: the From: domain's DMARC policy is
                               reject and the message fails it (filters) */
#define QQ_NOMEM       51
#define QQ_TIMEOUT     52
#define QQ_WRITE       53   /* write error, disk full, fsync of mess/ */
#define QQ_READ_MSG    54   /* cannot read the message */
#define QQ_READ_ENV    55   /* cannot read the envelope */
#define QQ_CHDIR       61   /* cannot chdir to the prefix */
#define QQ_CHDIR_QUEUE 62   /* cannot chdir to queue/ */
#define QQ_CREATE      64   /* cannot create or commit the queue file */
#define QQ_BUG         81   /* internal bug */
#define QQ_ENVELOPE    91   /* envelope format error */

/* 1 if qmail-queue's code says the message will never be accepted. */
#define QQ_PERMANENT(code) ((code) >= 11 && (code) <= 40)

#endif
