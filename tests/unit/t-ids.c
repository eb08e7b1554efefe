/* lib/ids: dropping root for good, checked in a child so that the test
 * itself keeps its ids. Root-only checks are skipped as a user. */
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "ids.h"

#define NOBODY 65534

/* In a child: what ids_drop(uid, gid) left, as a bit mask of failures. */
static int child_drop(uid_t uid, gid_t gid)
{
  int st;
  pid_t pid = fork();
  if (pid == 0) {
    int bad = 0;
    if (ids_drop(uid, gid) < 0) _exit(64);
    if (!ids_are(uid, gid)) bad |= 1;
    if (getgroups(0, 0) != 0) bad |= 2;
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) bad |= 4;
    _exit(bad);
  }
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

int main(void)
{
  CHECK(ids_are(getuid(), getgid()) == 1);
  CHECK(ids_are(getuid() + 1, getgid()) == 0);
  CHECK(ids_are(getuid(), getgid() + 1) == 0);

  if (geteuid() != 0) {
    /* A user cannot drop to another uid. */
    CHECK(ids_drop(getuid() + 1, getgid()) < 0);
    SKIP(3);
    DONE();
  }
  CHECK(child_drop(NOBODY, NOBODY) == 0);
  /* The gid alone (-g without -u): still root, in that group only. */
  CHECK(child_drop(0, NOBODY) == 0);
  /* A uid other than 0 with gid 0: the gid is taken as given. */
  CHECK(child_drop(NOBODY, 0) == 0);
  DONE();
}
