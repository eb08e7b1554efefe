#ifndef QQCLIENT_H
#define QQCLIENT_H
/* qmail-queued's protocol, and its client side (qmail-smtpd).
 *
 * qmail-queued writes queue files exactly as qmail-queue(8) does, for
 * callers that would otherwise start qmail-queue once per message. The
 * message and the envelope still travel through two pipes, written as for
 * qmail-queue; only their read ends go to the server instead of a child:
 *
 *   client                                     server
 *   connect PREFIX/QQD_SOCKET (SOCK_SEQPACKET)
 *   {'Q', flags} + the message pipe's read end  ->
 *   {'E'}        + the envelope pipe's read end ->
 *                                           <-  {'K'}: tmp/<qid> made, go on
 *                                               {'B'}: busy, use qmail-queue
 *   the message into its pipe, close it;
 *   "F<sender>\0T<rcpt>\0...\0" into the other, close it
 *                                           <-  {code} + qid when code is 0
 *
 * code is qmail-queue's exit code (0 queued, 11..40 permanent, others
 * temporary). The server answers 0 only once the file is fsynced and
 * renamed into mess/ from a name whose entry is on disk, so that a power
 * cut leaves it whole in one of the two (qmail-queue/qpool.h). A socket
 * closed without an answer (the server died) is a temporary failure; the
 * client closing its socket, or its pipes without the envelope's final
 * "\0", queues nothing. The server learns the caller's uid and pid from
 * the socket (SO_PEERCRED) for the Received: line, as qmail-queue names
 * its real uid.
 */
#include "qfile.h"

#define QQD_SOCKET "queued/socket"   /* under the prefix */
#define QQD_UTF8   1u                 /* flags: the SMTPUTF8 option record */

/* Connects, hands over the two read ends (still the caller's to close)
 * and waits up to timeout seconds for the go-ahead. The socket, or -1
 * with errno: ENOENT or ECONNREFUSED when no server runs, EBUSY when it
 * is full, EAGAIN when it does not accept, ETIMEDOUT, EPROTO, or the
 * system call's. A timeout of 0 waits for ever, here and below. */
int qqd_open(int msg_r, int env_r, unsigned flags, int timeout);
/* Waits up to timeout seconds for the answer. The exit code, or -1 when
 * none came (EPIPE: the server closed; ETIMEDOUT; EPROTO). On 0, qid[]
 * (QF_QID_MAX bytes) receives the qid, NUL-terminated and checked with
 * qf_qid_ok. Does not close sock. */
int qqd_result(int sock, char *qid, int timeout);

#endif
