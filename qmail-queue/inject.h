#ifndef INJECT_H
#define INJECT_H
/* The injector shared by qmail-inject and sendmail: one implementation of
 * header fixing, recipient extraction and the hand-over to qmail-queue.
 * Both programs only translate their options into struct inject.
 *
 * It runs as the calling user and trusts nothing it reads; the privilege
 * boundary is qmail-queue. Exit codes: 0 queued; 100 permanent (bad
 * message, bad address, no recipient, qmail-queue codes 11-40); 111
 * temporary (resources, configuration, any other qmail-queue code). Every
 * failure is one "prog event=fatal msg=..." line on stderr.
 *
 * Message: stdin, CRLF or LF line ends (CRLF becomes LF; a lone CR is
 * kept), no NUL byte. The header is every line up to the first empty line
 * or the first line that is neither a field ("name:") nor a continuation;
 * its lines may hold at most 998 bytes and it at most INJECT_HDR_MAX in
 * all. A first line starting "From " (an mbox separator) is dropped.
 * Fields removed: Bcc, Resent-Bcc, Return-Path, Content-Length.
 * Fields added when missing, after the others: Date (local time with
 * offset), From, Message-ID <sec.usec.pid@idhost>. A last line without
 * a line end gets one.
 *
 * Addresses (arguments, To/Cc/Bcc, -f) are RFC 5322 address lists
 * (alist.h). One without "@" gets "@defaulthost"; a domain without
 * a dot (not a literal) gets "." defaultdomain, as qmail-inject(8) does.
 * A recipient repeated byte for byte after that is queued once. In the
 * header, the addresses of From, Sender, Reply-To, To, Cc, Resent-* and
 * the other address fields are qualified the same way ("To: root" becomes
 * "To: root@defaulthost"); display names, comments and folds stay as
 * written, and a field that does not parse is left alone.
 *
 * Control files, read from PREFIX/control (compiled in): defaulthost,
 * defaultdomain, idhost, each defaulting to me; defaulthost gets
 * "." defaultdomain when it has no dot.
 *
 * control/rewritesender (absent: nothing happens): an address that
 * replaces a local envelope sender (not the null sender) and a From:
 * field whose every address is local, display name included; a
 * generated From: gets it too. Local: a domain of control/locals, me,
 * defaulthost, localhost, localhost.defaultdomain. For containers that
 * send as root or a daemon through a smarthost (README, the recipe).
 *
 * Envelope sender: -f (empty or "<>" is the null sender), else
 * user@host with user the first of $QMAILSUSER $QMAILUSER $USER $LOGNAME
 * or the passwd name of the real uid, and host the first of $QMAILSHOST
 * $QMAILHOST or defaulthost. A missing From: is "name <user@host>" from
 * $QMAILUSER $USER $LOGNAME / passwd and $QMAILHOST / defaulthost, the
 * name from -F, $QMAILNAME or $NAME (none: the bare address).
 *
 * qmail-queue is $QMAILQUEUE when set and not empty, else
 * PREFIX/bin/qmail-queue; it gets the message on fd 0 through a pipe and
 * the envelope on fd 1. A message refused part-way (NUL byte) is
 * abandoned by closing both pipes without the envelope's final NUL, which
 * makes qmail-queue queue nothing.
 */
#include <stddef.h>

#define INJECT_HDR_MAX (1u << 20)

#define INJ_ARGS   1u   /* recipients from the arguments */
#define INJ_HEADER 2u   /* recipients from To, Cc, Bcc */
#define INJ_DOT    4u   /* a line holding only "." ends the input */
#define INJ_PRINT  8u   /* write the fixed message to stdout, queue nothing */

struct inject {
  const char *prog;      /* name in messages */
  unsigned flags;        /* INJ_* */
  const char *sender;    /* -f, or NULL */
  const char *name;      /* -F, or NULL */
  char *const *args;     /* recipient arguments, each an address list */
  size_t nargs;
  /* DSN requests (RFC 3461), as the envelope's P fields (qmail-queue.c):
   * "RET=...", "ENVID=<xtext>" for the sender, "NOTIFY=..." for every
   * recipient; NULL when not given. Checked by the caller. */
  const char *ret, *envid, *notify;
};

/* Does the whole job and exits with the codes above. */
void inject_run(const struct inject *in) __attribute__((noreturn));

/* Reports qmail-queue's exit code (lib/qq.h's qq_wait) on stderr unless
 * 0 and exits 0, 100 (permanent) or 111 (inject-qq.c). */
void qq_exit(const char *prog, int code) __attribute__((noreturn));

#endif
