/* The queue's free space and inodes: see qspace.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include "qspace.h"

static unsigned long long mul_sat(unsigned long long a, unsigned long long b)
{
  return b && a > ~0ULL / b ? ~0ULL : a * b;
}

int qspace_check(const char *dir, unsigned long long need, unsigned long long reserve, struct qspace *q)
{
  struct statvfs v;
  unsigned long long want = need > ~0ULL - reserve ? ~0ULL : need + reserve;

  if (statvfs(dir, &v) < 0) return -1;
  q->bytes = mul_sat(v.f_bavail, v.f_frsize ? v.f_frsize : v.f_bsize);
  /* A file system without inode counts (btrfs, some network ones) says 0. */
  q->inodes = v.f_files ? v.f_favail : ~0ULL;
  if (q->inodes < QSPACE_MININODES) return QSPACE_INODES;
  if (q->bytes < want) return QSPACE_BYTES;
  return QSPACE_OK;
}

const char *qspace_why(int e, const char *dir)
{
  static char text[128];
  struct qspace q;

  if (e == EDQUOT) return "disk quota exceeded on the queue's file system";
  if (e != ENOSPC) return strerror(e);
  if (qspace_check(dir, 0, 0, &q) < 0) return "no space left on the queue's file system";
  /* Whichever is (nearly) gone now ran out. */
  if (q.inodes < QSPACE_MININODES)
    snprintf(text, sizeof text, "queue file system out of inodes (%llu free)", q.inodes);
  else
    snprintf(text, sizeof text, "queue file system out of space (%llu bytes free)", q.bytes);
  return text;
}
