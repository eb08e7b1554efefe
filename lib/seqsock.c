/* lib/seqsock.h's sockets. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stdio.h>
#include <unistd.h>
#include "control.h"
#include "seqsock.h"

int seqsock_connect(const char *rel)
{
  struct sockaddr_un sa;
  size_t p = strlen(auto_prefix), n = strlen(rel) + 1;   /* n counts the NUL */
  int s, r;

  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (p + 1 + n > sizeof sa.sun_path) { errno = ENAMETOOLONG; return -1; }
  memcpy(sa.sun_path, auto_prefix, p);
  sa.sun_path[p] = '/';
  memcpy(sa.sun_path + p + 1, rel, n);
  s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  do r = connect(s, (struct sockaddr *)&sa, sizeof sa); while (r < 0 && errno == EINTR);
  if (r < 0) { int e = errno; close(s); errno = e; return -1; }
  return s;
}

int seqsock_listen(const char *tmp, const char *name, const char **step)
{
  struct sockaddr_un sa;
  size_t n = strlen(tmp) + 1;
  int fd, e;

  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  *step = "socket";
  if (n > sizeof sa.sun_path) { errno = ENAMETOOLONG; return -1; }
  memcpy(sa.sun_path, tmp, n);
  fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  *step = "unlink";
  if (unlink(tmp) < 0 && errno != ENOENT) goto fail;
  *step = "bind";
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) goto fail;
  *step = "listen";
  if (chmod(tmp, 0666) < 0 || listen(fd, 128) < 0 || rename(tmp, name) < 0) goto fail;
  return fd;
fail:
  e = errno;
  close(fd);
  errno = e;
  return -1;
}
