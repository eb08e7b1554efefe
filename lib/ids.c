/* Changing ids (ids.h). */
#include <errno.h>
#include <grp.h>
#include <unistd.h>
#include "ids.h"

int ids_are(uid_t uid, gid_t gid)
{
  return getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid;
}

int ids_drop(uid_t uid, gid_t gid)
{
  if (setgroups(0, 0) < 0 || setgid(gid) < 0 || setuid(uid) < 0) return -1;
  if (!ids_are(uid, gid) || getgroups(0, 0) != 0 || (uid != 0 && setuid(0) == 0)) {
    errno = EPERM;
    return -1;
  }
  return 0;
}
