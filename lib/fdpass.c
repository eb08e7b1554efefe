#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "fdpass.h"

int pkt_send(int sock, const void *p, size_t n, int fd)
{
  struct msghdr m;
  struct iovec v;
  union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } c;
  ssize_t w;

  memset(&m, 0, sizeof m);
  v.iov_base = (void *)p;
  v.iov_len = n;
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  if (fd >= 0) {
    memset(&c, 0, sizeof c);
    m.msg_control = c.b;
    m.msg_controllen = sizeof c.b;
    c.h.cmsg_level = SOL_SOCKET;
    c.h.cmsg_type = SCM_RIGHTS;
    c.h.cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(&c.h), &fd, sizeof fd);
  }
  do w = sendmsg(sock, &m, MSG_NOSIGNAL); while (w < 0 && errno == EINTR);
  if (w < 0) return -1;
  if ((size_t)w != n) { errno = EMSGSIZE; return -1; }
  return 0;
}

ssize_t pkt_recv(int sock, void *p, size_t n, int *fd)
{
  struct msghdr m;
  struct iovec v;
  struct cmsghdr *h;
  union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int)) * 4]; } c;
  ssize_t r;

  *fd = -1;
  memset(&m, 0, sizeof m);
  v.iov_base = p;
  v.iov_len = n;
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  m.msg_control = c.b;
  m.msg_controllen = sizeof c.b;
  do r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC); while (r < 0 && errno == EINTR);
  if (r < 0) return -1;
  for (h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
      int *fds = (int *)CMSG_DATA(h);
      size_t k, nfd = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (k = 0; k < nfd; k++) {
        int got;
        memcpy(&got, fds + k, sizeof got);
        if (*fd < 0) *fd = got; else close(got);
      }
    }
  }
  if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
    errno = EMSGSIZE;
    return -1;
  }
  return r;
}
