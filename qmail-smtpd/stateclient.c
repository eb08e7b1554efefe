/* qmail-smtpd-state's client side: see stateproto.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "stateproto.h"

int state_ask(const char *req, size_t n, char *rep, size_t max, int timeout)
{
  struct sockaddr_un sa;
  size_t p = strlen(auto_prefix), sn = sizeof STATE_SOCKET;   /* sn counts the NUL */
  ssize_t r;
  int s, e;

  if (n > STATE_REQ_MAX || max < 1) { errno = EINVAL; return -1; }
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (p + 1 + sn > sizeof sa.sun_path) { errno = ENAMETOOLONG; return -1; }
  memcpy(sa.sun_path, auto_prefix, p);
  sa.sun_path[p] = '/';
  memcpy(sa.sun_path + p + 1, STATE_SOCKET, sn);
  /* Non-blocking throughout: a server whose backlog is full, or that
   * hangs, costs the session at most timeout seconds. */
  s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  do r = connect(s, (struct sockaddr *)&sa, sizeof sa); while (r < 0 && errno == EINTR);
  if (r < 0) goto fail;
  if (send(s, req, n, MSG_NOSIGNAL) != (ssize_t)n) goto fail;
  if (fd_wait(s, 0, timeout) < 0) goto fail;
  r = recv(s, rep, max - 1, 0);
  if (r <= 0) { if (r == 0) errno = EPIPE; goto fail; }
  rep[r] = 0;
  close(s);
  return (int)r;
fail:
  e = errno;
  close(s);
  errno = e;
  return -1;
}
