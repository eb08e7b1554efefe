/* qmail-smtpd-state's client side: see stateproto.h. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "buf.h"
#include "seqsock.h"
#include "stateproto.h"

int state_ask(const char *req, size_t n, char *rep, size_t max, int timeout)
{
  ssize_t r;
  int s, e;

  if (n > STATE_REQ_MAX || max < 1) { errno = EINVAL; return -1; }
  /* Non-blocking throughout: a server whose backlog is full, or that
   * hangs, costs the session at most timeout seconds. */
  s = seqsock_connect(STATE_SOCKET);
  if (s < 0) return -1;
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
