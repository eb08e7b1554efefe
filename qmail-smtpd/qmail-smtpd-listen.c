/* qmail-smtpd-listen: qmail-smtpd's sessions without tcpserver; options,
 * environment, exit codes and log events are in qmail-smtpd-listen(8).
 *
 * Parent. Binds, drops to -u/-g (unless -t: each connection takes both
 * the TLS and the smtpd ids; the key is decoded once at start, and kept
 * out of the sessions, tlsd.h), then keeps SPARES children forked
 * ahead, each waiting to accept one connection, so that the fork is paid
 * while other sessions run. A spare that has accepted writes its pid on
 * the "taken" pipe and the parent forks the next; EOF on the "alive"
 * pipe tells the spares to exit without accepting (SIGTERM). At the -c
 * limit no spare is made and the parent accepts and answers 421 itself,
 * so no client waits in the backlog. SIGCHLD and SIGTERM come through a
 * signalfd: no signal handler ever runs; SIGPIPE is ignored (a reader
 * gone costs a write). The parent reads no control
 * file and no client byte and keeps no state per connection but counts
 * and the spares' pids: its small image is what every fork copies.
 *
 * Descriptors. The parent and every spare hold a reserve descriptor
 * (/dev/null), given up to accept and answer a connection when accept
 * fails with EMFILE or ENFILE; a spare also checks that its session will
 * have HEADROOM descriptors before it starts it.
 *
 * Clients. A spare that has accepted sets the environment and applies
 * the -x table, then asks the parent (a note on "taken", the answer one
 * byte on a pipe of that spare's own): the parent counts sessions and
 * new connections per client address (IPv6 by /64) and remembers who
 * passed the pregreet test, in a table of fixed size read from control
 * files once at start. Over a limit the spare answers 421 and exits; a
 * client not seen recently is made to wait for the greeting first
 * (-p), and one that talks in the pause is dropped. Only that code, run
 * before any client byte is read, writes to the parent: the session
 * never holds the pipe, so it cannot lie about other clients. Clients
 * made RELAYCLIENT by the table are neither counted nor tested; those
 * control/dnsbl allowlists are counted but not tested (dnsbl_verdict()).
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
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "door.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "session.h"
#include "tcprules.h"
#include "tlsd.h"

#define PROG "qmail-smtpd-listen"
#define BACKLOG 64
#define SPARES 2
#define HEADROOM 16     /* descriptors a session may need at once, beyond its own */

#define BUSY_REPLY "421 4.3.2 too many connections, try again later\r\n"
#define NOFILES_REPLY "421 4.3.2 out of resources, try again later\r\n"
#define CLIENT_REPLY "421 4.7.0 too many connections from your address, try again later\r\n"
#define PREGREET_REPLY "554 5.5.1 protocol error: you talked before the greeting\r\n"
#define CLIENTS 4096    /* clients remembered beyond those with a session */


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
static int verdict[SPARES] = { -1, -1 };  /* parent's end of each spare's answer pipe */
static void forget_clients(void);
static int answer = -1;         /* a spare's end of its own */

/* The per-client limits (control files, read once at start). */
static unsigned long perip;     /* control/maxperip: sessions per address; 0: limit / 2 */
static unsigned long rateperip;        /* control/maxrateperip: connections per minute; 0: none */
static int pregreet;            /* -p: the pregreet test, on port 25 only */
static unsigned long greetwait = 6000;  /* control/pregreetdelay, milliseconds */
static unsigned long greetttl = 86400;  /* control/pregreetttl: seconds a pass is remembered */
static unsigned long tlsttl = 3600;     /* control/tlssessiontimeout: resumption, seconds */

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
  log_usage(PROG, "usage: qmail-smtpd-listen [-1] [-p] [-c limit] [-x rules.cdb] "
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

/* A file that cannot be read (errno): logged, exit 111. */
static void fatal_file(const char *msg, const char *file) __attribute__((noreturn));
static void fatal_file(const char *msg, const char *file)
{
  int e = errno;
  log_begin(PROG, "fatal");
  log_kv("msg", msg);
  log_kv("file", file);
  log_kv("error", strerror(e));
  log_end();
  _exit(111);
}

/* tcpserver's -x: exits unless the rules let the client in. */
static void apply_rules(const struct peer *remote)
{
  static str rule;
  char ip[IP_FMT];
  int r;

  ip_fmt(ip, remote->ip);
  if (tcprules_find(rules, ip, &rule) < 0) fatal_file("cannot read the rules", rules);
  r = tcprules_apply(&rule);
  if (r < 0) log_fatal(PROG, 111, "nomem");
  if (r) {
    log_begin(PROG, "deny");
    log_kv("ip", ip);
    log_end();
    _exit(100);
  }
}

/* Moves the connection to fds 0 and 1 and sets the session's environment
 * from the address and the rules table (a denied client ends here). */
static void session_env(int fd, const struct sockaddr_storage *from, struct peer *remote)
{
  struct sockaddr_storage here;
  socklen_t n = sizeof here;
  struct peer local;

  if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0) log_fatal(PROG, 111, "cannot move the connection to fds 0 and 1");
  if (fd > 1) close(fd);
  if (getsockname(0, (struct sockaddr *)&here, &n) < 0) log_fatal(PROG, 111, "cannot get the local address");
  /* What ps and top show for a session (tlsd names its session child). */
  prctl(PR_SET_NAME, tls ? "qmail-tlsd" : "qmail-smtpd");
  to_peer(&here, &local);
  to_peer(from, remote);
  tcp_env(&local, remote);
  if (rules) apply_rules(remote);
}

static void session(void) __attribute__((noreturn));
static void session(void)
{
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
  if (fd >= 0) { metrics_inc(MP_REFUSED + MR_LIMITS); turn_away(fd, NOFILES_REPLY); }
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

/* --- a spare and the parent: notes, verdicts, the pregreet test ----------- */

/* A spare's note to the parent: one write of fewer than PIPE_BUF bytes,
 * so atomic among the spares. */
struct note {
  pid_t pid;
  unsigned char kind;           /* N_TAKEN or N_PASSED */
  unsigned char exempt;         /* N_TAKEN: RELAYCLIENT is set */
  unsigned char ip[16];
};
enum { N_TAKEN = 'T', N_PASSED = 'P' };
/* The parent's verdict on N_TAKEN: serve, test first, or refuse. */
enum { V_GO = 'g', V_GREET = 'p', V_BUSY = 'b' };

/* Clients the limits and the pregreet test leave alone: those the rules
 * table trusts to relay. */
static int exempt(void)
{
  return getenv("RELAYCLIENT") != 0;
}

static void tell(pid_t me, int kind, const struct peer *remote)
{
  struct note n;
  memset(&n, 0, sizeof n);
  n.pid = me;
  n.kind = (unsigned char)kind;
  n.exempt = exempt();
  memcpy(n.ip, remote->ip, 16);
  if (write(taken[1], &n, sizeof n) != (ssize_t)sizeof n) log_fatal(PROG, 111, "cannot tell the parent");
}

/* Tells the parent about the client and waits for its verdict; a parent
 * gone (EOF) means a stop: the client is let go without a word. */
static int ask(pid_t me, const struct peer *remote)
{
  char v;
  ssize_t r;
  tell(me, N_TAKEN, remote);
  do r = read(answer, &v, 1); while (r < 0 && errno == EINTR);
  if (r != 1) _exit(0);
  return v;
}

/* Whether the client stays silent for ms milliseconds: 1 silent, 0 it
 * sent something. A client that hangs up is let go. */
static int silent(unsigned long ms)
{
  struct timespec t0, t;
  char c;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct pollfd p = { 0, POLLIN, 0 };
    long spent;
    int r;
    clock_gettime(CLOCK_MONOTONIC, &t);
    spent = (long)(t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
    if (spent >= (long)ms) return 1;
    r = poll(&p, 1, (int)((long)ms - spent));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) _exit(111);
    if (r == 0) return 1;
    if (recv(0, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1) return 0;
    _exit(0);                   /* EOF or an error: the client is gone */
  }
}

static void log_pregreet(const struct peer *remote, const char *stage)
{
  char ip[IP_FMT];
  ip_fmt(ip, remote->ip);
  log_begin(PROG, "pregreet");
  log_kv("ip", ip);
  log_kv("stage", stage);
  log_end();
}

/* The pregreet test: half the pause in silence, a "220-" line (the first
 * of a multi-line greeting, which a client must wait to see end), the
 * other half. A client that talks in either is dropped; one that passes
 * is reported, so that it never waits again while it is remembered, and
 * PREGREETED tells the session that its greeting is open. A client the
 * lists refuse waits the whole pause in silence: its greeting will be
 * the 554 alone (a reply's lines share one code, RFC 5321 4.2.1). */
static void pregreet_test(pid_t me, const struct peer *remote, int listed)
{
  static const char first[] = "220-";
  const char *name = localname ? localname : "ESMTP";
  if (!silent(listed ? greetwait : greetwait / 2)) {
    log_pregreet(remote, "wait");
    metrics_inc(MP_REFUSED + MR_PREGREET);
    turn_away(1, PREGREET_REPLY);
    _exit(0);
  }
  if (listed) return;
  if (fd_write_all(1, first, sizeof first - 1, 10) < 0 || fd_write_all(1, name, strlen(name), 10) < 0
      || fd_write_all(1, "\r\n", 2, 10) < 0) _exit(0);
  if (!silent(greetwait - greetwait / 2)) {
    /* The reply is open: no other code can end it. */
    log_pregreet(remote, "multiline");
    _exit(0);
  }
  set("PREGREETED", "1");
  tell(me, N_PASSED, remote);
}

/* control/dnsbl's verdict on the client (dnsbl_run's DNSBL_*), asked
 * before the pause: an allowlisted client skips it, as postscreen's
 * dnsbl_whitelist_threshold, and a listed one is never shown a "220-".
 * Without -t this process already has the session's ids and is the
 * session: the lookup is the session's own (dnsbl_run keeps its result).
 * With -t it is root and reads the key later, so a child with the
 * session's ids parses the answers, and the session asks again (the
 * resolver's cache answers; should the answer change, the session ends
 * the open greeting before it refuses, dnsbl_refuse). */
static int dnsbl_verdict(void)
{
  const char *ip = getenv("TCPREMOTEIP");
  int status;
  pid_t pid;

  /* The session's directory: control/dnsbl is read there, and a lookup
   * that found no zones would be the session's result too. */
  if (!ip || prefix_chdir() < 0) return DNSBL_NONE;
  if (!tls) return dnsbl_run(ip);
  pid = fork();
  if (pid < 0) return DNSBL_NONE;
  if (pid == 0) {
    /* The parser of DNS answers never holds the pipes to the parent. */
    close(taken[1]);
    close(answer);
    if (ids_drop((uid_t)smtpdid.uid, (gid_t)smtpdid.gid) < 0) _exit(0);
    _exit(dnsbl_run(ip));
  }
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return DNSBL_NONE;
  return WIFEXITED(status) ? WEXITSTATUS(status) : DNSBL_NONE;
}

/* Waits for one connection; a spare that has one tells the parent, drops
 * everything of the parent's and becomes its session. */
static void spare_child(void) __attribute__((noreturn));
static void spare_child(void)
{
  struct sockaddr_storage from;
  struct peer remote;
  pid_t me = getpid();
  int fd;
  size_t i;

  close(sfd);
  close(taken[0]);
  close(alive[1]);
  for (i = 0; i < SPARES; i++)
    if (verdict[i] >= 0) close(verdict[i]);
  forget_clients();
  if (tls) tlsd_spare();      /* before any fork: the key stays here */
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
      metrics_inc(MP_REFUSED + MR_LIMITS);
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
  close(alive[0]);
  close(lfd);
  if (reserve >= 0) close(reserve);
  session_env(fd, &from, &remote);
  set("PREGREETED", 0);          /* only a "220-" of ours sets it */
  switch (ask(me, &remote)) {
  case V_BUSY: metrics_inc(MP_REFUSED + MR_LIMITS); turn_away(0, CLIENT_REPLY); _exit(0);
  case V_GREET: {
    int v = dnsbl_verdict();
    if (v != DNSBL_ALLOWED) pregreet_test(me, &remote, v == DNSBL_LISTED);
    break;
  }
  default: break;
  }
  close(taken[1]);
  close(answer);
  session();
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

/* --- the parent's clients ----------------------------------------------- */

/* What the parent knows of one client address (IPv6: its /64). An entry
 * with sessions is never reused; the others go oldest first. */
struct client {
  unsigned char key[16];
  int used;
  time_t seen;                  /* last connection (monotonic seconds) */
  time_t window;                /* start of the current minute of connections */
  unsigned long conns;          /* connections in that minute, refused ones too */
  unsigned long sessions;       /* counted sessions running now */
  unsigned long refused;        /* in the open episode; 0: none open */
  time_t passed;                /* passed the pregreet test then; 0: never */
};
/* A counted session: its pid and its client. */
struct counted { pid_t pid; struct client *c; };

static struct client *clients;  /* nclients entries */
static size_t nclients;
static struct counted *counted; /* limit entries, ncounted used */
static size_t ncounted;
static size_t clients_size;     /* one mapping holds both */

/* In a spare: the clients seen so far are none of a session's business. */
static void forget_clients(void)
{
  if (clients && munmap(clients, clients_size) < 0) log_fatal(PROG, 111, "munmap");
  clients = 0;
  counted = 0;
}

static time_t now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec;
}

static void client_key(unsigned char key[16], const unsigned char ip[16])
{
  memcpy(key, ip, 16);
  if (!ip_mapped(ip)) memset(key + 8, 0, 8);
}

/* The key as logged: an IPv4 address, or an IPv6 /64 ("2001:db8::/64"). */
static void log_key(const struct client *c)
{
  char ip[IP_FMT + 3];
  size_t n = ip_fmt(ip, c->key);
  if (!ip_mapped(c->key)) memcpy(ip + n, "/64", 4);
  log_kv("ip", ip);
}

static void log_client(const struct client *c, const char *state)
{
  log_begin(PROG, "clientlimit");
  log_kv("state", state);
  log_key(c);
  log_ku("refused", c->refused);
  log_end();
}

/* The client's entry, made (or taken over from the least recently seen
 * client without a session) when there is none. NULL only when every
 * entry has a session, which the table's size excludes. Entries are
 * used from the first on and never freed: the first unused one ends the
 * search. */
static struct client *client_find(const unsigned char ip[16])
{
  unsigned char key[16];
  struct client *old = 0, *c;
  size_t i;

  client_key(key, ip);
  for (i = 0; i < nclients; i++) {
    c = &clients[i];
    if (!c->used) { old = c; break; }
    if (!memcmp(c->key, key, 16)) return c;
    if (!c->sessions && (!old || c->seen < old->seen)) old = c;
  }
  if (!old) return 0;
  if (old->used && old->refused) log_client(old, "ok");
  memset(old, 0, sizeof *old);
  memcpy(old->key, key, 16);
  old->used = 1;
  return old;
}

static int client_over(struct client *c, time_t t, const char **why, unsigned long *max)
{
  unsigned long most = perip ? perip : (limit / 2 ? limit / 2 : 1);
  if (t - c->window >= 60 || !c->conns) { c->window = t; c->conns = 0; }
  c->conns++;
  c->seen = t;
  if (c->sessions >= most) { *why = "sessions"; *max = most; return 1; }
  if (c->conns > rateperip) { *why = "rate"; *max = rateperip; return 1; }
  return 0;
}

/* The verdict on a spare's new client; a refusal opens or extends the
 * client's episode, logged at its first refusal and at its end. */
static int judge(const struct note *n, pid_t pid)
{
  struct client *c;
  const char *why;
  unsigned long max;
  time_t t = now();

  if (n->exempt) return V_GO;
  c = client_find(n->ip);
  if (!c) return V_GO;
  if (client_over(c, t, &why, &max)) {
    if (!c->refused++) {
      log_begin(PROG, "clientlimit");
      log_kv("state", "full");
      log_key(c);
      log_kv("why", why);
      log_ku("limit", max);
      log_end();
    }
    return V_BUSY;
  }
  if (c->refused) { log_client(c, "ok"); c->refused = 0; }
  if (ncounted < limit) {
    counted[ncounted].pid = pid;
    counted[ncounted++].c = c;
    c->sessions++;
  }
  return pregreet && !(c->passed && t - c->passed < (time_t)greetttl) ? V_GREET : V_GO;
}

static void passed(const struct note *n)
{
  struct client *c = client_find(n->ip);
  if (c) c->passed = now() ? now() : 1;
}

/* A counted session has ended. */
static void uncount(pid_t pid)
{
  size_t i;
  for (i = 0; i < ncounted; i++)
    if (counted[i].pid == pid) {
      if (counted[i].c->sessions) counted[i].c->sessions--;
      counted[i] = counted[--ncounted];
      return;
    }
}

/* A spare that took a connection, or died, leaves its slot; returns the
 * slot's answer pipe (-1: pid was no spare), which the caller closes. */
static int forget_spare(pid_t pid)
{
  size_t i;
  int v;
  for (i = 0; i < SPARES; i++)
    if (pid && spare[i] == pid) {
      spare[i] = 0;
      v = verdict[i];
      verdict[i] = -1;
      return v;
    }
  return -1;
}

/* Reads the spares' notes: one that has a connection is a session now
 * and gets its verdict; one whose client passed the pregreet test makes
 * the client known. */
static void on_taken(void)
{
  struct note n;
  while (read(taken[0], &n, sizeof n) == (ssize_t)sizeof n) {
    if (n.kind == N_PASSED) { passed(&n); continue; }
    int v = forget_spare(n.pid);
    if (v < 0) continue;
    char c = (char)judge(&n, n.pid);
    /* One byte into an empty pipe: never blocks, never short. EPIPE: the
     * spare died after its note; reap() counts it out. */
    if (write(v, &c, 1) != 1 && errno != EPIPE) log_fatal(PROG, 111, "cannot answer a spare");
    close(v);
  }
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
    int v = forget_spare(pid);
    if (v >= 0) close(v);
    if (live) live--;
    uncount(pid);
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
    int v[2];
    if (spare[i]) continue;
    if (pipe2(v, O_CLOEXEC) < 0) {
      log_begin(PROG, "error");
      log_kv("msg", "cannot make a pipe");
      log_kv("error", strerror(errno));
      log_end();
      return -1;
    }
    pid = fork();
    if (pid == 0) { answer = v[0]; close(v[1]); spare_child(); }
    close(v[0]);
    if (pid < 0) {
      close(v[1]);
      log_begin(PROG, "error");
      log_kv("msg", "cannot fork");
      log_kv("error", strerror(errno));
      log_end();
      return -1;
    }
    spare[i] = pid;
    verdict[i] = v[1];
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
  metrics_inc(MP_REFUSED + MR_LIMITS);
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
    /* Reaped first: a client's ended sessions no longer count against
     * its next connection. */
    if (p[0].revents) signals();
    if (p[1].revents) on_taken();
    if (p[2].revents && full()) refuse();
  }
}

static void need_control(int r, const char *file)
{
  if (r < 0) fatal_file("cannot read a control file", file);
}

/* The per-client limits, from the control files under the prefix; the
 * working directory is left as it was (a relative -x stays valid). */
static void client_config(void)
{
  int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (here < 0 || prefix_chdir() < 0) log_fatal(PROG, 111, "chdir prefix");
  need_control(control_ulong(&perip, "control/maxperip", 0), "control/maxperip");
  need_control(control_ulong(&rateperip, "control/maxrateperip", 0), "control/maxrateperip");
  need_control(control_ulong(&greetwait, "control/pregreetdelay", 6000), "control/pregreetdelay");
  need_control(control_ulong(&greetttl, "control/pregreetttl", 86400), "control/pregreetttl");
  if (tls) need_control(control_ulong(&tlsttl, "control/tlssessiontimeout", 3600), "control/tlssessiontimeout");
  if (fchdir(here) < 0) log_fatal(PROG, 111, "cannot return to the working directory");
  close(here);
  if (!rateperip) rateperip = (unsigned long)-1;
  if (greetwait > 60000) greetwait = 60000;
  if (tlsttl > 86400) tlsttl = 86400;   /* RFC 5246: at most a day */
  if (!greetwait) pregreet = 0;
  /* Every counted session has an entry, so one can always be had. */
  nclients = limit + CLIENTS;
  clients_size = nclients * sizeof *clients + limit * sizeof *counted;
  clients = mmap(0, clients_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (clients == MAP_FAILED) log_fatal(PROG, 111, "nomem");
  counted = (struct counted *)(clients + nclients);
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

  while ((c = getopt(argc, argv, "+1c:x:u:g:t:il:p")) != -1) {
    switch (c) {
    case '1': announce = 1; break;
    case 'c': limit = number(optarg, 1000000); if (!limit) usage(); break;
    case 'x': rules = optarg; break;
    case 'u': uid = number(optarg, 0x7fffffff); has_uid = 1; break;
    case 'g': gid = number(optarg, 0x7fffffff); has_gid = 1; break;
    case 't': if (tlsd_ids(optarg, &tlsid) < 0) usage(); tls = 1; break;
    case 'i': implicit = 1; break;
    case 'l': localname = optarg; break;
    case 'p': pregreet = 1; break;
    default: usage();
    }
  }
  if (argc - optind != 2 || (implicit && !tls) || (tls && (!has_uid || !has_gid)) || (pregreet && implicit))
    usage();
  smtpdid.uid = uid;
  smtpdid.gid = gid;
  port = number(argv[optind + 1], 65535);
  std_fds();
  /* A reader that goes (the log's, a spare's, a client's) costs a
   * write, never the resident process; the children inherit it, and
   * lib/qq restores the default for what they exec. */
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) log_fatal(PROG, 111, "cannot ignore SIGPIPE");
  client_config();

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
  /* As qmaild, once: every spare and session adds into this mapping. The
   * root parent of -t maps nothing (the file is qmaild's to truncate). */
  if (!tls) metrics_open(MF_SMTPD);
  port = bound_port();
  if (reserve_open() < 0) log_fatal(PROG, 111, "cannot open /dev/null");

  log_begin(PROG, "start");
  log_kv("host", argv[optind]);
  log_ku("port", port);
  log_ku("limit", limit);
  log_ku("perip", perip ? perip : (limit / 2 ? limit / 2 : 1));
  if (pregreet) log_ku("pregreet", greetwait);
  log_ku("uid", getuid());
  log_ku("gid", getgid());
  if (tls) log_kv("tls", implicit ? "implicit" : "starttls");
  log_end();
  if (tls) {
    tlsd_prepare();
    tlsd_preload(tlsttl);
  }
  if (announce) ready((unsigned)port);
  serve();
}
