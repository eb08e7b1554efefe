#ifndef IDS_H
#define IDS_H
/* Giving up root for good: the one way every program of ours changes ids. */
#include <sys/types.h>

/* As root: no supplementary groups, then gid, then uid, real and
 * effective alike, each checked to have stuck; for a uid other than 0,
 * also that root cannot be taken back. 0, or -1 (errno when a call
 * failed, EPERM when a check did). */
int ids_drop(uid_t uid, gid_t gid);

/* 1 when the real and effective uid and gid are these, else 0. */
int ids_are(uid_t uid, gid_t gid);

#endif
