#ifndef QWRITE_H
#define QWRITE_H
/* Writing one message into the queue: the code shared by qmail-queue (one
 * message per process, blocking descriptors) and qmail-queued (many
 * messages at once, non-blocking pipes), so that both make the same files
 * through the same steps, with qmail-queue's exit codes (qmail-queue.c).
 *
 * The caller's current directory is PREFIX/queue. Steps, in this order:
 *
 *   qw_create    tmp/<qid> created O_EXCL, mode 0660, QF_HDR bytes reserved
 *                (qw_create_in: a file of qmail-queued's pool instead)
 *   qw_received  the Received: line, first line of the message
 *   qw_message   the message, from fd, until EOF
 *   qw_envelope  the envelope, from fd, until its final "\0", appended as
 *                records (lib/qfile.h) after the sender's and recipients'
 *                checks; bytes after the final "\0" are never read
 *   qw_finish    the header written last, with the sum of the rest (XXH64,
 *                computed as it was written); the writeback started
 *   qw_commit    the file fsynced, then renamed into mess/<qid>: the
 *                commit; a name in mess/ is never replaced
 *
 * qmail-queued finishes every message of a turn (qw_finish starts its
 * writeback) before it commits the first, so the later fsyncs find their
 * data written or in flight; on a journaled ext4, which allocates blocks
 * at writeback, the first fsync's commit also takes the allocations of
 * all of them.
 *
 * then, once for any number of commits, qw_sync_mess (fsync of mess/) and
 * qw_trigger: qmail-queue both before it exits 0; qmail-queued the
 * trigger first, before its answers, and the fsync after them (qpool.h
 * says why that is safe). After a failure at any step
 * the caller calls qw_abort, which removes tmp/<qid> (or the pool file);
 * it is async-signal-safe (qmail-queue's timer).
 *
 * Return values: 0 or an exit code (11..91), except qw_message and
 * qw_envelope, which do one read each and return QW_MORE (call again),
 * QW_AGAIN (a non-blocking fd has nothing yet), QW_END (EOF of the
 * message; the envelope's final "\0"), or an exit code: every exit code is
 * at least 11, so none is mistaken for a status.
 *
 * Memory: the caller supplies the image buffer (cap >= QW_OUT_MIN); the
 * file is written from it in few large writes (a small message, its
 * envelope and its Received: line take one). Nothing is allocated.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#define XXH_STATIC_LINKING_ONLY   /* XXH64_state_t in struct qw: no allocation */
#include <xxhash.h>
#include "qfile.h"

#define QW_MORE  0
#define QW_AGAIN 1
#define QW_END   2

/* Bigger than any record (5 + 1 + QF_ADDR_MAX bytes) plus the header. */
#define QW_OUT_MIN 4096
_Static_assert(QW_OUT_MIN >= QF_HDR + 5 + 1 + QF_ADDR_MAX, "QW_OUT_MIN must hold any record and the header");

struct qw {
  int fd;                          /* tmp/<qid>, -1 when closed */
  volatile sig_atomic_t made;      /* tmp/<qid> exists and is ours to remove */
  char tmp[4 + QF_QID_MAX];        /* "tmp/<qid>" */
  char mess[5 + QF_QID_MAX];       /* "mess/<qid>"; the qid is mess + 5 */
  char *out;                       /* the image not yet written */
  size_t len, cap;
  unsigned long long written;      /* bytes of the file already written */
  unsigned long long msg_len;      /* set when the envelope starts */
  int utf8;                        /* add the SMTPUTF8 option record */
  XXH64_state_t sum;               /* of what follows the header */
  /* envelope parser */
  int est;                         /* where it is: see qwrite.c */
  unsigned long nrcpt;
  unsigned pseen;                  /* DSN parameters taken for this F or T */
  size_t an;
  char a[1 + QF_ADDR_MAX];         /* the address being read, state byte first */
};

/* qid "<t seconds>.<t microseconds>.<pid>". 0, or 64 with errno set
 * (EEXIST: that qid's file exists; the caller may try another time). */
int qw_create(struct qw *w, char *out, size_t cap, const struct timespec *t, pid_t pid, int utf8);
/* "Received: (<prog> <pid> invoked by uid <uid>[ pid <cpid>]); <date>"
 * with cpid shown when non-zero; the date of t, in UTC. */
void qw_received(struct qw *w, const char *prog, unsigned long long pid,
                 unsigned long long uid, unsigned long long cpid, long long t);
/* The same, in tmp, an existing file of the caller's (qmail-queued's
 * pool); EEXIST: mess/<qid> exists. */
int qw_create_in(struct qw *w, const char *tmp, char *out, size_t cap,
                 const struct timespec *t, pid_t pid, int utf8);
int qw_message(struct qw *w, int fd);
int qw_envelope(struct qw *w, int fd);
int qw_finish(struct qw *w);
int qw_commit(struct qw *w);
void qw_abort(struct qw *w);

/* "<dir>/<qid>" in dst[strlen(dir) + 1 + QF_QID_MAX]. */
void qw_name(char *dst, const char *dir, const struct timespec *t, pid_t pid);

/* The committed qid, and "<qid>\n" in dst[QF_QID_MAX + 1]: its length. */
const char *qw_qid(const struct qw *w);
size_t qw_line(const struct qw *w, char *dst);

/* fsync of mess/: 0, or 53 (a committed message may then be lost by a
 * power cut: the caller must not report it queued). */
int qw_sync_mess(void);
/* Writes "<qid>\n" lines (n <= PIPE_BUF, so never mixed with another
 * writer's) to lock/trigger, without blocking. A full fifo or no reader
 * just loses the notice: qmail-send then scans mess/. */
void qw_trigger(const char *lines, size_t n);

#endif
