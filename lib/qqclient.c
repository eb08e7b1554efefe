/* qmail-queued's client side: see qqclient.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "fdpass.h"
#include "qqclient.h"
#include "seqsock.h"

/* Non-blocking for the connect only (seqsock.h): a server that stopped
 * accepting gives EAGAIN at once. Blocking after it, so that a timeout
 * of 0 waits for ever. */
static int sock_connect(void)
{
  int s = seqsock_connect(QQD_SOCKET);
  if (s >= 0 && fcntl(s, F_SETFL, 0) < 0) { int e = errno; close(s); errno = e; return -1; }
  return s;
}

/* One datagram from the server, within timeout seconds; its length, or
 * -1 (EPIPE when the server closed). */
static ssize_t answer(int sock, char *p, size_t n, int timeout)
{
  ssize_t r;
  int fd;

  if (fd_wait(sock, 0, timeout) < 0) return -1;
  r = pkt_recv(sock, p, n, &fd);
  if (fd >= 0) { close(fd); errno = EPROTO; return -1; }
  if (r == 0) { errno = EPIPE; return -1; }
  return r;
}

int qqd_open(int msg_r, int env_r, unsigned flags, int timeout)
{
  char q[2] = { 'Q', (char)flags }, k;
  int s = sock_connect(), e;
  ssize_t r;

  if (s < 0) return -1;
  /* A busy server says 'B' and shuts its side: a send then fails with
   * EPIPE, and the 'B' is still there to be read. */
  if ((pkt_send(s, q, sizeof q, msg_r) < 0 || pkt_send(s, "E", 1, env_r) < 0) && errno != EPIPE)
    goto fail;
  r = answer(s, &k, 1, timeout);
  if (r < 0) goto fail;
  if (k == 'K') return s;
  errno = k == 'B' ? EBUSY : EPROTO;
fail:
  e = errno;
  close(s);
  errno = e;
  return -1;
}

int qqd_result(int sock, char *qid, int timeout)
{
  char a[1 + QF_QID_MAX];
  ssize_t r = answer(sock, a, sizeof a, timeout);

  if (r < 0) return -1;
  if (a[0] != 0) {
    if (r != 1) { errno = EPROTO; return -1; }
    return (unsigned char)a[0];
  }
  if (!qf_qid_ok(a + 1, (size_t)r - 1)) { errno = EPROTO; return -1; }
  memcpy(qid, a + 1, (size_t)r - 1);
  qid[r - 1] = 0;
  return 0;
}
