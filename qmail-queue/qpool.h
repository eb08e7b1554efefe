#ifndef QPOOL_H
#define QPOOL_H
/* qmail-queued's pool: names in queue/tmp/ created, and tmp/ fsynced,
 * before any message needs them, so that a message's one fsync before
 * its answer is that of its own file.
 *
 * Why that is enough: qmail-queued answers a message after its file is
 * fsynced and renamed into mess/, and fsyncs mess/ only afterwards (once
 * for the turn). A power cut in between may undo the rename; the file is
 * then back under its pool name, whose entry was already on disk, whole
 * (its data was fsynced) and with a sum that matches. A pool file that
 * was never finished, or only partly written to disk, fails the sum.
 * qp_recover sorts them at the next start.
 *
 * qmail-queued pulls the trigger right after the renames, before mess/
 * is fsynced, so a message brought back by qp_recover may have had
 * deliveries, and qmail-send may have marked state bytes in place. So the
 * sum is checked with every state byte taken as QF_PENDING (as committed),
 * and the file goes back under the qid its end record names (lib/qfile.h):
 * a Maildir delivery repeated then finds its own file, as after a lost
 * state byte. Where both names made it to disk (mess/ written, tmp/ not),
 * the pool name is removed. Every fsync of tmp/ (a refill) comes after
 * one of mess/: it would also write the removal of renamed names, which
 * must not reach the disk before their new ones. Names: tmp/p<n>, never
 * a qid, so qmail-send's tmp/ cleanup leaves them alone.
 *
 * The caller's current directory is PREFIX/queue.
 */
#include <sys/types.h>
#include <time.h>

#define QP_NAME 32   /* "tmp/p" + 20 digits + NUL */

/* Once, at start, before qp_take: each tmp/p<n> whose sum holds is
 * renamed into mess/ under its own qid (a file without one: a qid from
 * qid_time and pid), the others removed; mess/ is fsynced and the
 * trigger pulled for what came back.
 * Each file is logged (but empty ones: names never used). A file that
 * cannot be read is left in place. Then the pool is made. */
void qp_recover(void (*qid_time)(struct timespec *), pid_t pid);

/* An empty pool file's name, "tmp/p<n>", in name. 0, or -1 with errno
 * when the pool was empty and could not be refilled. */
int qp_take(char name[QP_NAME]);

#endif
