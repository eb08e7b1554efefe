#ifndef QSPACE_H
#define QSPACE_H
/* Free space and inodes on the queue's file system: one check for
 * qmail-smtpd (before it takes a message, so that a client learns at MAIL,
 * not after uploading it, that the queue is full) and for the logs that
 * report a failed write (which of the two ran out).
 *
 * statvfs on the queue directory needs no permission on the directory
 * itself, only on the path to it, so qmail-smtpd's uid (not in the queue's
 * group) can make it. Counts are those left to unprivileged writers
 * (f_bavail, f_favail): the queue uid is one.
 */

#define QSPACE_DIR "queue"              /* relative to the prefix */
#define QSPACE_MINFREE 16000000ull      /* control/queueminfree's default: bytes */
#define QSPACE_MININODES 100ull         /* inodes kept free (a message needs 2 at most) */

enum { QSPACE_OK = 0, QSPACE_BYTES = 1, QSPACE_INODES = 2 };

struct qspace {
  unsigned long long bytes;     /* free to unprivileged writers */
  unsigned long long inodes;    /* free; ~0ULL where the file system has no count */
};

/* Measures dir's file system into *q. QSPACE_OK when at least need +
 * reserve bytes and QSPACE_MININODES inodes are free, QSPACE_BYTES or
 * QSPACE_INODES for the one short (inodes first: without one nothing can
 * be written at all), -1 with errno when statvfs fails. */
int qspace_check(const char *dir, unsigned long long need, unsigned long long reserve, struct qspace *q);

/* For a write to dir's file system that failed with errno e: for ENOSPC
 * a text naming the file system and what ran out, measured now, e.g.
 * "queue file system out of inodes (0 free)"; for EDQUOT the quota;
 * strerror(e) for any other e. Static storage. */
const char *qspace_why(int e, const char *dir);

#endif
