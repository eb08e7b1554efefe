/* s6-svc on a service directory (svc.h). */
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "svc.h"

static const char *const svc[] = { "/usr/bin/s6-svc", "/usr/local/bin/s6-svc", "/command/s6-svc", 0 };

int svc_send(const char *option, const char *dir)
{
  struct stat st;
  int status, k;
  pid_t pid;

  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) return 0;
  pid = fork();
  if (pid < 0) return 0;
  if (!pid) {
    for (k = 0; svc[k]; k++) execl(svc[k], "s6-svc", option, "--", dir, (char *)0);
    _exit(127);
  }
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
