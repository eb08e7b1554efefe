/* qmail-smtpd-listen: qmail-smtpd's sessions without tcpserver; options,
 * environment, exit codes and log events are in qmail-smtpd-listen(8).
 *
 * Parent. Binds, drops to -u/-g (unless -t: each connection's TLS relay
 * reads the key as root, tlsd.h), then keeps SPARES children forked
 * ahead, each waiting to accept one connection, so that the fork is paid
 * while other sessions run. A spare that has accepted writes its pid on
 * the "taken" pipe and the parent forks the next; EOF on the "alive"
 * pipe tells the spares to exit without accepting (SIGTERM). At the -c
 * limit no spare is made and the parent accepts and answers 421 itself,
 * so no client waits in the backlog. SIGCHLD and SIGTERM come through a
 * signalfd: no signal handler ever runs. The parent reads no control
 * file and no client byte and keeps no state per connection but counts
 * and the spares' pids: its small image is what every fork copies.
 *
 * Descriptors. The parent and every spare hold a reserve descriptor
 * (/dev/null), given up to accept and answer a connection when accept
 * fails with EMFILE or ENFILE; a spare also checks that its session will
 * have HEADROOM descriptors before it starts it.
 *
 * Session (the child). The connection on fds 0 and 1, fd 2 the log, the
 * environment as tcpserver -H -R sets it, the -x table (tcprules.h),
 * then smtpd_session() or, with -t, tlsd_session(). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "ids.h"
#include "log.h"
#include "session.h"
#include "tcprules.h"
#include "tlsd.h"

#define PROG "qmail-smtpd-listen"
#define BACKLOG 64
#define SPARES 2
#define HEADROOM 16     /* descriptors a session may need at once, beyond its own */

#define BUSY_REPLY "421 4.3.2 too many connections, try again later\r\n"
#define NOFILES_REPLY "421 4.3.2 out of resources, try again later\r\n"


static const char *rules;       /* -x */
static const char *localname;   /* -l */
static int lfd = -1, sfd = -1;  /* listening socket, signalfd */
static int taken[2] = { -1, -1 };   /* spare -> parent: "<pid>" once it has a connection */
static int alive[2] = { -1, -1 };   /* parent -> spares: EOF when they must not accept */
static sigset_t oldmask;        /* restored in the child */
static unsigned long live, limit = 40;  /* children (spares included) and their limit */
static pid_t spare[SPARES];     /* 0: no spare in that slot */
static int tls, implicit;       /* -t, -i */
static int reserve = -1;        /* /dev/null, given up to accept when out of descriptors */
static unsigned long refused;   /* connections answered 421 at the limit in this episode */
static struct tlsd_ids tlsid, smtpdid;

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
  log_usage(PROG, "usage: qmail-smtpd-listen [-1] [-c limit] [-x rules.cdb] "
            "[-u uid] [-g gid] [-t tlsuid:gid [-i]] [-l localname] host port");
}

static unsigned long number(const char *s, unsigned long max)
{
  unsigned long long u;
  if (scan_ulong(s, strlen(s), &u) < 0 || u > max) usage();
  return (unsigned long)u;
}

/* --- the child: environment, rules, session ----------------------------- */

/* An address as tcpserver holds it: 16 bytes, IPv4 mapped; port, scope. */
struct peer { unsigned char ip[16]; unsigned port; unsigned scope; };

static void to_peer(const struct sockaddr_storage *ss, struct peer *p)
{
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    memset(p->ip, 0, 10);
    p->ip[10] = p->ip[11] = 0xff;
    memcpy(p->ip + 12, &a->sin_addr, 4);
    p->port = ntohs(a->sin_port);
    p->scope = 0;
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    memcpy(p->ip, &a->sin6_addr, 16);
    p->port = ntohs(a->sin6_port);
    p->scope = a->sin6_scope_id;
  }
}

static void set(const char *name, const char *value)
{
  if ((value ? setenv(name, value, 1) : unsetenv(name)) < 0) log_fatal(PROG, 111, "nomem");
}

static void set_ip(const char *name, const char *name6, const unsigned char ip[16])
{
  char s[IP_FMT];
  ip_fmt(s, ip);
  set(name, s);
  ip6_fmt(s, ip);
  set(name6, s);
}

static void set_port(const char *name, const char *name6, unsigned port)
{
  str s = STR_INIT;
  if (str_catu(&s, port) < 0 || str_0(&s) < 0) log_fatal(PROG, 111, "nomem");
  set(name, s.s);
  set(name6, s.s);
  str_free(&s);
}

static void tcp_env(const struct peer *local, const struct peer *remote)
{
  char ifname[IF_NAMESIZE];

  set("PROTO", ip_mapped(remote->ip) ? "TCP" : "TCP6");
  set_ip("TCPLOCALIP", "TCP6LOCALIP", local->ip);
  set_port("TCPLOCALPORT", "TCP6LOCALPORT", local->port);
  set("TCPLOCALHOST", localname);
  set("TCP6LOCALHOST", localname);
  if (local->scope && if_indextoname(local->scope, ifname)) set("TCP6INTERFACE", ifname);
  set_ip("TCPREMOTEIP", "TCP6REMOTEIP", remote->ip);
  set_port("TCPREMOTEPORT", "TCP6REMOTEPORT", remote->port);
  set("TCPREMOTEHOST", 0);
  set("TCP6REMOTEHOST", 0);
  set("TCPREMOTEINFO", 0);
  set("TCP6REMOTEINFO", 0);
}

/* tcpserver's -x: exits unless the rules let the client in. */
static void apply_rules(const struct peer *remote)
{
  static str rule;
  char ip[IP_FMT];
  int r;

  ip_fmt(ip, remote->ip);
  if (tcprules_find(rules, ip, &rule) < 0) {
    int e = errno;
    log_begin(PROG, "fatal");
    log_kv("msg", "cannot read the rules");
    log_kv("file", rules);
    log_kv("error", strerror(e));
    log_end();
    _exit(111);
  }
  r = tcprules_apply(&rule);
  if (r < 0) log_fatal(PROG, 111, "nomem");
  if (r) {
    log_begin(PROG, "deny");
    log_kv("ip", ip);
    log_end();
    _exit(100);
  }
}

static void session(int fd, const struct sockaddr_storage *from) __attribute__((noreturn));
static void session(int fd, const struct sockaddr_storage *from)
{
  struct sockaddr_storage here;
  socklen_t n = sizeof here;
  struct peer local, remote;

  if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0) log_fatal(PROG, 111, "cannot move the connection to fds 0 and 1");
  if (fd > 1) close(fd);
  if (getsockname(0, (struct sockaddr *)&here, &n) < 0) log_fatal(PROG, 111, "cannot get the local address");
  /* What ps and top show for a session (tlsd names its session child). */
  prctl(PR_SET_NAME, tls ? "qmail-tlsd" : "qmail-smtpd");
  to_peer(&here, &local);
  to_peer(from, &remote);
  tcp_env(&local, &remote);
  if (rules) apply_rules(&remote);
  if (tls) tlsd_session(implicit, &tlsid, &smtpdid);
  smtpd_session();
}

static int reserve_open(void)
{
  if (reserve < 0) reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return reserve;
}

/* Answers a connection that will not be served and closes it. Never
 * blocks: a client that does not read loses the line, not our time. */
static void turn_away(int fd, const char *reply)
{
  if (!implicit) {
    ssize_t r = send(fd, reply, strlen(reply), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)r;
  }
  close(fd);
}

static void log_nofiles(const char *msg, int e)
{
  log_begin(PROG, "nofiles");
  log_kv("msg", msg);
  log_kv("error", strerror(e));
  log_ku("pid", (unsigned long long)getpid());
  log_end();
}

/* Accepts one connection non-blocking; when the descriptors have run
 * out, takes it with the reserve's and turns it away (-1, ECONNABORTED;
 * EMFILE or ENFILE when even that failed). */
static int accept_one(struct sockaddr_storage *from)
{
  socklen_t n = sizeof *from;
  int fd = accept4(lfd, (struct sockaddr *)from, &n, SOCK_CLOEXEC);
  int e = errno;

  if (fd >= 0 || (e != EMFILE && e != ENFILE) || reserve < 0) { errno = e; return fd; }
  close(reserve);
  reserve = -1;
  n = sizeof *from;
  fd = accept4(lfd, (struct sockaddr *)from, &n, SOCK_CLOEXEC);
  if (fd >= 0) turn_away(fd, NOFILES_REPLY);
  log_nofiles(fd >= 0 ? "cannot accept: a client was answered 421" : "cannot accept", e);
  reserve_open();
  /* Answered: go on at once; otherwise the caller pauses. */
  errno = fd >= 0 ? ECONNABORTED : e;
  return -1;
}

/* Whether HEADROOM more descriptors can be had now. */
static int headroom(int fd)
{
  int got[HEADROOM], i, k = 0, ok = 1;
  for (i = 0; i < HEADROOM && ok; i++) {
    got[k] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (got[k] < 0) ok = 0; else k++;
  }
  while (k) close(got[--k]);
  return ok;
}

/* Waits for one connection; a spare that has one tells the parent, drops
 * everything of the parent's and becomes its session. */
static void spare_child(void) __attribute__((noreturn));
static void spare_child(void)
{
  struct sockaddr_storage from;
  pid_t me = getpid();
  int fd;

  close(sfd);
  close(taken[0]);
  close(alive[1]);
  if (sigprocmask(SIG_SETMASK, &oldmask, 0) < 0) log_fatal(PROG, 111, "cannot restore the signal mask");
  for (;;) {
    struct pollfd p[2] = { { alive[0], POLLIN, 0 }, { lfd, POLLIN, 0 } };
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log_fatal(PROG, 111, "poll");
    }
    if (p[0].revents) _exit(0);          /* the parent is stopping or gone */
    if (!p[1].revents) continue;
    fd = accept_one(&from);
    if (fd >= 0 && !headroom(fd)) {
      int e = errno;
      turn_away(fd, NOFILES_REPLY);
      log_nofiles("too few descriptors for a session: a client was answered 421", e);
      continue;
    }
    if (fd >= 0) break;
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE) { sleep(1); continue; }   /* logged */
    log_begin(PROG, "error");
    log_kv("msg", "cannot accept");
    log_kv("error", strerror(errno));
    log_end();
    sleep(1);                             /* a lack of resources: no busy loop */
  }
  /* One write of sizeof(pid_t) < PIPE_BUF bytes: atomic among the spares. */
  if (write(taken[1], &me, sizeof me) != (ssize_t)sizeof me) log_fatal(PROG, 111, "cannot tell the parent");
  close(taken[1]);
  close(alive[0]);
  close(lfd);
  if (reserve >= 0) close(reserve);
  session(fd, &from);
}

/* --- the parent ----------------------------------------------------------- */

/* Binds and listens; returns the socket. "0" and "::" are the dual-stack
 * wildcard, or IPv4's alone where the kernel has no IPv6. */
static int listen_on(const char *host, unsigned port)
{
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  struct sockaddr *sa = (struct sockaddr *)&a6;
  socklen_t salen = sizeof a6;
  int any = !strcmp(host, "0") || !strcmp(host, "::"), fd, one = 1, zero = 0;

  memset(&a4, 0, sizeof a4);
  memset(&a6, 0, sizeof a6);
  a4.sin_family = AF_INET;
  a4.sin_port = htons((unsigned short)port);
  a6.sin6_family = AF_INET6;
  a6.sin6_port = htons((unsigned short)port);
  if (any) a6.sin6_addr = in6addr_any;
  else if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) { sa = (struct sockaddr *)&a4; salen = sizeof a4; }
  else if (inet_pton(AF_INET6, host, &a6.sin6_addr) != 1) usage();

  fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 && any && errno == EAFNOSUPPORT) {
    sa = (struct sockaddr *)&a4;
    salen = sizeof a4;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  }
  if (fd < 0) log_fatal(PROG, 111, "cannot make a socket");
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
      || (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0))
    log_fatal(PROG, 111, "cannot set socket options");
  if (bind(fd, sa, salen) < 0) log_fatal(PROG, 111, "cannot bind");
  if (listen(fd, BACKLOG) < 0) log_fatal(PROG, 111, "cannot listen");
  return fd;
}

/* Takes the ids for good: no supplementary group, then gid, then uid. */
static void drop(int has_gid, gid_t gid, int has_uid, uid_t uid)
{
  if (!has_gid && !has_uid) return;
  if (ids_drop(has_uid ? uid : getuid(), has_gid ? gid : getgid()) < 0)
    log_fatal(PROG, 111, "cannot take the uid and gid");
}

static unsigned bound_port(void)
{
  struct sockaddr_storage ss;
  socklen_t n = sizeof ss;
  struct peer p;
  if (getsockname(lfd, (struct sockaddr *)&ss, &n) < 0) log_fatal(PROG, 111, "cannot get the bound address");
  to_peer(&ss, &p);
  return p.port;
}

static void ready(unsigned port)
{
  str s = STR_INIT;
  if (str_catu(&s, port) < 0 || str_catc(&s, '\n') < 0
      || fd_write_all(1, s.s, s.len, 0) < 0) log_fatal(PROG, 111, "cannot write the port");
  str_free(&s);
}

/* A spare that took a connection, or died, leaves its slot. */
static void forget_spare(pid_t pid)
{
  size_t i;
  for (i = 0; i < SPARES; i++)
    if (pid && spare[i] == pid) spare[i] = 0;
}

/* Reads which spares have taken a connection: they are sessions now. */
static void on_taken(void)
{
  pid_t pid;
  while (read(taken[0], &pid, sizeof pid) == (ssize_t)sizeof pid) forget_spare(pid);
}

static unsigned long spares(void)
{
  unsigned long n = 0;
  size_t i;
  for (i = 0; i < SPARES; i++) n += spare[i] != 0;
  return n;
}

static void reap(void)
{
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (live) live--;
    forget_spare(pid);
    if (WIFSIGNALED(status)) {
      log_begin(PROG, WTERMSIG(status) == SIGTERM ? "killed" : "crash");
      log_ku("pid", (unsigned long long)pid);
      log_ku("signal", (unsigned long long)WTERMSIG(status));
      log_end();
    }
  }
}

/* Drains the signalfd: SIGCHLD reaps, SIGTERM ends the parent. */
static void signals(void)
{
  struct signalfd_siginfo si;
  while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGTERM) {
      close(lfd);
      close(alive[1]);
      reap();
      on_taken();
      log_begin(PROG, "stop");
      log_ku("sessions", live - spares());
      if (refused) log_ku("refused", refused);
      log_end();
      _exit(0);
    }
  }
  reap();
}

/* Forks spares into the free slots while under the limit. Returns -1 when
 * fork fails (a pause is due, not a busy loop). */
static int top_up(void)
{
  size_t i;
  pid_t pid;
  for (i = 0; i < SPARES && live < limit; i++) {
    if (spare[i]) continue;
    pid = fork();
    if (pid == 0) spare_child();
    if (pid < 0) {
      log_begin(PROG, "error");
      log_kv("msg", "cannot fork");
      log_kv("error", strerror(errno));
      log_end();
      return -1;
    }
    spare[i] = pid;
    live++;
  }
  return 0;
}

/* At the limit with no spare waiting, the parent answers new clients
 * itself; the first refusal and the end of the episode are logged. */
static int full(void) { return live >= limit && !spares(); }

static void refuse(void)
{
  struct sockaddr_storage from;
  int fd = accept_one(&from);

  if (fd < 0) return;
  turn_away(fd, BUSY_REPLY);
  if (!refused++) {
    log_begin(PROG, "limit");
    log_kv("state", "full");
    log_ku("limit", limit);
    log_ku("sessions", live);
    log_end();
  }
}

static void episode_end(void)
{
  if (!refused || full()) return;
  log_begin(PROG, "limit");
  log_kv("state", "ok");
  log_ku("refused", refused);
  log_ku("sessions", live - spares());
  log_end();
  refused = 0;
}

static void serve(void) __attribute__((noreturn));
static void serve(void)
{
  int pause = 0;
  for (;;) {
    struct pollfd p[3] = { { sfd, POLLIN, 0 }, { taken[0], POLLIN, 0 }, { lfd, POLLIN, 0 } };
    int r;
    if (!pause && top_up() < 0) pause = 1;
    episode_end();
    r = poll(p, full() ? 3 : 2, pause ? 1000 : -1);
    if (r < 0 && errno != EINTR) log_fatal(PROG, 111, "poll");
    pause = 0;
    if (r <= 0) continue;
    if (p[1].revents) on_taken();
    if (p[0].revents) signals();
    if (p[2].revents && full()) refuse();
  }
}

/* fds 0 to 2 open, so that no socket of ours takes the place of the log. */
static void std_fds(void)
{
  int fd;
  do fd = open("/dev/null", O_RDWR); while (fd >= 0 && fd <= 2);
  if (fd < 0) log_fatal(PROG, 111, "cannot open /dev/null");
  close(fd);
}

int main(int argc, char **argv)
{
  unsigned long uid = 0, gid = 0, port;
  int c, has_uid = 0, has_gid = 0, announce = 0;
  sigset_t set;

  while ((c = getopt(argc, argv, "+1c:x:u:g:t:il:")) != -1) {
    switch (c) {
    case '1': announce = 1; break;
    case 'c': limit = number(optarg, 1000000); if (!limit) usage(); break;
    case 'x': rules = optarg; break;
    case 'u': uid = number(optarg, 0x7fffffff); has_uid = 1; break;
    case 'g': gid = number(optarg, 0x7fffffff); has_gid = 1; break;
    case 't': if (tlsd_ids(optarg, &tlsid) < 0) usage(); tls = 1; break;
    case 'i': implicit = 1; break;
    case 'l': localname = optarg; break;
    default: usage();
    }
  }
  if (argc - optind != 2 || (implicit && !tls) || (tls && (!has_uid || !has_gid))) usage();
  smtpdid.uid = uid;
  smtpdid.gid = gid;
  port = number(argv[optind + 1], 65535);
  std_fds();

  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &set, &oldmask) < 0
      || (sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
    log_fatal(PROG, 111, "cannot make the signalfd");
  lfd = listen_on(argv[optind], (unsigned)port);
  /* Only the parent's end of "taken" is non-blocking: a spare's write
   * must never fail because the parent is slow to read. */
  if (pipe2(taken, O_CLOEXEC) < 0 || pipe2(alive, O_CLOEXEC) < 0
      || fcntl(taken[0], F_SETFL, O_NONBLOCK) < 0)
    log_fatal(PROG, 111, "cannot make a pipe");
  if (!tls) drop(has_gid, (gid_t)gid, has_uid, (uid_t)uid);
  port = bound_port();
  if (reserve_open() < 0) log_fatal(PROG, 111, "cannot open /dev/null");

  log_begin(PROG, "start");
  log_kv("host", argv[optind]);
  log_ku("port", port);
  log_ku("limit", limit);
  log_ku("uid", getuid());
  log_ku("gid", getgid());
  if (tls) log_kv("tls", implicit ? "implicit" : "starttls");
  log_end();
  if (tls) tlsd_prepare();
  if (announce) ready((unsigned)port);
  serve();
}
