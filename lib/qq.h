#ifndef QQ_H
#define QQ_H
/* The client side of qmail-queue(8), for every program that queues a
 * message through it (qmail-smtpd's fallback, the injector, forwards,
 * bounces), and qmail-queue's exit codes, read in one place.
 *
 * qq_open starts qmail-queue with the read ends of two pipes as its fd 0
 * (the message) and fd 1 (the envelope: "F<sender>\0T<rcpt>\0...\0");
 * the caller writes the message, closes q->msg, writes the envelope and
 * calls qq_wait. Closing both without the envelope's final "\0" queues
 * nothing. The caller ignores SIGPIPE, so that a write to a qmail-queue
 * that stopped reading fails with EPIPE; its exit code then says why.
 *
 * The child gets the caller's environment without SMTPUTF8 and
 * SMTPAUTHENTICATED, plus SMTPUTF8=1 with QQ_UTF8 (the only variable
 * qmail-queue reads) and SMTPAUTHENTICATED=1 with QQ_AUTH, default
 * signal dispositions and mask, and no descriptor above 2. */
#include <sys/types.h>

#define QQ_UTF8       1u   /* the message asked for SMTPUTF8 (RFC 6531) */
#define QQ_QMAILQUEUE 2u   /* $QMAILQUEUE, when set and not empty, replaces
                              PREFIX/bin/qmail-queue: a filter, chosen by
                              whoever sets the caller's environment (the
                              injector's user, qmail-smtpd's tcprules) */
#define QQ_AUTH       4u   /* the SMTP client authenticated: the child gets
                              SMTPAUTHENTICATED=1, for a signer
                              (qmail-dkim); an inherited one is dropped */
#define QQ_SIGN       8u   /* mail this host writes itself (bounces): through
                              PREFIX/bin/qmail-dkim, the signer, when it is
                              installed (it signs when the From: domain has
                              a key, else passes the message on), else
                              qmail-queue; ignored with $QMAILQUEUE */
#define QQ_SIGNAL     256  /* qq_wait: QQ_SIGNAL + n, killed by signal n */

struct qq {
  pid_t pid;               /* 0: none running */
  int msg;                 /* write end of its fd 0, or -1 */
  int env;                 /* write end of its fd 1, or -1 */
};
#define QQ_INIT { 0, -1, -1 }

/* Starts qmail-queue. 0, or -1 with errno (nothing left open). */
int qq_open(struct qq *q, unsigned flags);
/* Closes the pipes still open and waits for the child: its exit code,
 * QQ_SIGNAL + n when signal n killed it, or -1 with errno when none ran
 * or waitpid failed. */
int qq_wait(struct qq *q);

/* qmail-queue(8)'s exit codes: 11..40 are permanent, any other non-zero
 * code (and a signal) temporary. */
int qq_permanent(int code);
/* What a code means, for a log line or a report; never 0. */
const char *qq_text(int code);
/* Whether a write (53) or create (64) failure came from the queue's file
 * system being short of space or inodes now for bytes more (RFC 3463's
 * 4.3.1 rather than a bare failure). Reads QSPACE_DIR: the caller's
 * working directory is the prefix. */
int qq_short(int code, unsigned long long bytes);

#endif
