/* qmail-start [-dFD] SENDUID:GID REMOTEUID:GID [defaultdelivery]: see
 * qmail-start(8).
 *
 * As root, once: one SOCK_SEQPACKET socketpair per spawner; qmail-lspawn
 * keeps root, qmail-rspawn becomes REMOTE, then this process becomes SEND
 * and execs qmail-send with the sockets on fds 3 and 4. The -dFD
 * notification-fd goes to qmail-send only. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "control.h"
#include "ids.h"
#include "log.h"

#define PROG "qmail-start"

struct ids { uid_t uid; gid_t gid; };

static int parse_ids(const char *s, struct ids *id)
{
  const char *c = strchr(s, ':');
  unsigned long long u, g;
  if (!c || scan_ulong(s, (size_t)(c - s), &u) < 0 || scan_ulong(c + 1, strlen(c + 1), &g) < 0)
    return -1;
  if (u > 0x7fffffffULL || g > 0x7fffffffULL) return -1;
  id->uid = (uid_t)u;
  id->gid = (gid_t)g;
  return 0;
}

/* Drops every privilege to id; checks that it stuck. */
static void become(const struct ids *id)
{
  if (ids_drop(id->uid, id->gid) < 0) log_fatal(PROG, 111, "cannot change uid");
}

/* A copy of fd at 10 or above, close-on-exec, so that the dup2 to its
 * final number in a child is never a no-op that would keep the flag. */
static int high(int fd)
{
  int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  if (h < 0) log_fatal(PROG, 111, "cannot duplicate a socket");
  close(fd);
  return h;
}

static int ready_fd = -1;

static void spawner(const char *prog, const char *fail, int sock, const char *arg,
                    const struct ids *id)
{
  pid_t pid = fork();
  if (pid < 0) log_fatal(PROG, 111, "cannot fork");
  if (pid) return;
  if (ready_fd >= 0) close(ready_fd);
  if (id) become(id);
  if (dup2(sock, 0) < 0) log_fatal(PROG, 111, "cannot dup2");
  execl(prog, prog + 4, arg, (char *)0);
  log_fatal(PROG, 111, fail);
}

int main(int argc, char **argv)
{
  struct ids send, remote;
  int l[2], r[2], root = geteuid() == 0;
  const char *dd, *dopt = 0;
  unsigned long long fd;
  int bad = 0;

  if (argc > 1 && !strncmp(argv[1], "-d", 2)) {
    dopt = argv[1];
    if (scan_ulong(dopt + 2, strlen(dopt + 2), &fd) < 0 || fd < 5 || fd > 1023) bad = 1;
    else ready_fd = (int)fd;
    argv++;
    argc--;
  }
  dd = argc > 3 ? argv[3] : "./Maildir/";
  if (bad || argc < 3 || argc > 4 || parse_ids(argv[1], &send) < 0 || parse_ids(argv[2], &remote) < 0) {
    log_begin(PROG, "usage");
    log_kv("usage", "qmail-start [-dFD] SENDUID:GID REMOTEUID:GID [defaultdelivery]");
    log_end();
    return 100;
  }
  if (!*dd || strchr(dd, '\n')) {
    log_begin(PROG, "usage"); log_kv("error", "bad defaultdelivery"); log_end();
    return 100;
  }
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  signal(SIGPIPE, SIG_DFL);
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, l) < 0 ||
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, r) < 0)
    log_fatal(PROG, 111, "cannot make the spawner sockets");
  l[0] = high(l[0]); l[1] = high(l[1]);
  r[0] = high(r[0]); r[1] = high(r[1]);

  if (!root) {
    log_begin(PROG, "single-uid");
    log_ku("uid", getuid());
    log_kv("msg", "not started as root: every program runs as this uid");
    log_end();
  }
  spawner("bin/qmail-lspawn", "cannot exec bin/qmail-lspawn", l[1], dd, 0);
  spawner("bin/qmail-rspawn", "cannot exec bin/qmail-rspawn", r[1], 0, root ? &remote : 0);
  close(l[1]);
  close(r[1]);

  if (root) become(&send);
  if (dup2(l[0], 3) < 0 || dup2(r[0], 4) < 0) log_fatal(PROG, 111, "cannot dup2");
  execl("bin/qmail-send", "qmail-send", dopt, (char *)0);
  log_fatal(PROG, 111, "cannot exec bin/qmail-send");
}
