/* lib/fdpass.c: datagrams with and without a descriptor, boundaries,
 * oversize datagrams, extra descriptors, peer close. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"
#include "fdpass.h"

static int open_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (!d) return -1;
  while ((e = readdir(d))) if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1;   /* the directory's own descriptor */
}

int main(void)
{
  int sv[2], p[2], fd, base;
  char buf[64];
  ssize_t r;

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
  CHECK(pipe(p) == 0);
  base = open_fds();

  /* No descriptor. */
  CHECK(pkt_send(sv[0], "hello", 5, -1) == 0);
  fd = 123;
  CHECK(pkt_recv(sv[1], buf, sizeof buf, &fd) == 5 && !memcmp(buf, "hello", 5) && fd == -1);

  /* With a descriptor: a new fd for the same pipe, close-on-exec. */
  CHECK(pkt_send(sv[0], "1.2.3\0x", 7, p[1]) == 0);
  r = pkt_recv(sv[1], buf, sizeof buf, &fd);
  CHECK(r == 7 && !memcmp(buf, "1.2.3\0x", 7));
  CHECK(fd >= 0 && fd != p[1]);
  CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC);
  CHECK(write(fd, "z", 1) == 1 && read(p[0], buf, 1) == 1 && buf[0] == 'z');
  close(fd);
  CHECK(open_fds() == base);

  /* Record boundaries are kept. */
  CHECK(pkt_send(sv[0], "ab", 2, -1) == 0 && pkt_send(sv[0], "cde", 3, -1) == 0);
  CHECK(pkt_recv(sv[1], buf, sizeof buf, &fd) == 2 && !memcmp(buf, "ab", 2));
  CHECK(pkt_recv(sv[1], buf, sizeof buf, &fd) == 3 && !memcmp(buf, "cde", 3));

  /* Too long for the reader: EMSGSIZE, and the passed fd does not leak.
   * The next datagram is read normally. */
  CHECK(pkt_send(sv[0], "0123456789", 10, p[1]) == 0);
  errno = 0;
  CHECK(pkt_recv(sv[1], buf, 4, &fd) == -1 && errno == EMSGSIZE && fd == -1);
  CHECK(open_fds() == base);
  CHECK(pkt_send(sv[0], "ok", 2, -1) == 0);
  CHECK(pkt_recv(sv[1], buf, sizeof buf, &fd) == 2 && !memcmp(buf, "ok", 2));

  /* Several descriptors in one datagram: the first is kept, the others closed. */
  {
    struct msghdr m;
    struct iovec v;
    union { struct cmsghdr h; char b[CMSG_SPACE(3 * sizeof(int))]; } c;
    int fds[3] = { p[0], p[1], p[1] };
    memset(&m, 0, sizeof m);
    memset(&c, 0, sizeof c);
    v.iov_base = "m";
    v.iov_len = 1;
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    m.msg_control = c.b;
    m.msg_controllen = sizeof c.b;
    c.h.cmsg_level = SOL_SOCKET;
    c.h.cmsg_type = SCM_RIGHTS;
    c.h.cmsg_len = CMSG_LEN(3 * sizeof(int));
    memcpy(CMSG_DATA(&c.h), fds, sizeof fds);
    CHECK(sendmsg(sv[0], &m, 0) == 1);
    CHECK(pkt_recv(sv[1], buf, sizeof buf, &fd) == 1 && fd >= 0);
    CHECK(open_fds() == base + 1);
    close(fd);
  }

  /* A descriptor that is not open cannot be sent. */
  errno = 0;
  CHECK(pkt_send(sv[0], "x", 1, 999) == -1 && errno == EBADF);

  /* A big datagram arrives whole. */
  {
    static char big[200000], got[200000];
    memset(big, 'q', sizeof big);
    big[sizeof big - 1] = 'e';
    int ok = pkt_send(sv[0], big, sizeof big, -1) == 0;
    CHECK(ok);
    if (ok) CHECK(pkt_recv(sv[1], got, sizeof got, &fd) == (ssize_t)sizeof got && got[sizeof got - 1] == 'e');
  }

  /* Peer closed: 0. Sending to a closed peer: error, no SIGPIPE. */
  close(sv[0]);
  CHECK(pkt_recv(sv[1], buf, sizeof buf, &fd) == 0 && fd == -1);
  CHECK(pkt_send(sv[1], "x", 1, -1) == -1 && errno == EPIPE);
  close(sv[1]);
  close(p[0]);
  close(p[1]);
  DONE();
}
