/* The spawners' resident loop (lib/spawner.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fdpass.h"
#include "log.h"
#include "spawner.h"
#include "str.h"

struct kid {
  pid_t pid;                /* 0: slot free */
  int rfd;                  /* the child's report; -1 once at EOF */
  int exited, status, overflow;
  size_t nrcpt;
  str report;               /* at most sp->reportmax bytes */
};

static const struct spawner *sp;
static struct kid kids[SPAWN_SLOTS];
static size_t busy;         /* slots with a pid */
static size_t live;         /* children forked and not yet reaped */
static int selfpipe[2] = { -1, -1 };
static char pkt[SPAWN_PKT_MAX];
static struct spawnreq req;

static void on_child(int sig)
{
  int e = errno;
  (void)sig;
  if (write(selfpipe[1], "", 1) < 0) {}   /* full pipe: a wakeup is pending */
  errno = e;
}

static void event(const char *ev, const struct spawnreq *r, const char *why)
{
  log_begin(sp->prog, ev);
  if (r) log_ku("slot", r->slot);
  log_kv("msg", why);
  log_end();
}

/* Replies once the report is complete and, with wait_exit, the child gone. */
static void finish(unsigned long s)
{
  struct kid *k = &kids[s];

  if (!k->pid || k->rfd >= 0 || (sp->wait_exit && !k->exited)) return;
  sp->done(s, k->nrcpt, k->report.s ? k->report.s : "", k->report.len, k->overflow,
           sp->wait_exit ? k->status : -1);
  k->pid = 0;
  busy--;
  /* Keep an ordinary buffer for the next delivery, not a huge one. */
  if (k->report.cap > 65536) str_free(&k->report);
}

static void reap(void)
{
  char b[64];
  unsigned long s;
  int st;
  pid_t pid;

  while (read(selfpipe[0], b, sizeof b) > 0) {}
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    live--;
    for (s = 0; s < SPAWN_SLOTS && kids[s].pid != pid; s++) {}
    if (s < SPAWN_SLOTS) {
      kids[s].exited = 1;
      kids[s].status = st;
      finish(s);
    }
    if (!sp->wait_exit && (!WIFEXITED(st) || WEXITSTATUS(st))) {
      log_begin(sp->prog, "child_died");
      log_ku("pid", (unsigned long long)pid);
      log_ku("status", (unsigned long long)st);
      log_end();
    }
  }
}

static void drain(unsigned long s)
{
  struct kid *k = &kids[s];
  char b[8192];
  size_t room;
  ssize_t r;

  if (!k->pid || k->rfd < 0) return;
  r = read(k->rfd, b, sizeof b);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r <= 0) {
    close(k->rfd);
    k->rfd = -1;
    finish(s);
    return;
  }
  room = sp->reportmax - k->report.len;
  if ((size_t)r > room) { k->overflow = 1; r = (ssize_t)room; }
  if (r && str_catb(&k->report, b, (size_t)r) < 0) k->overflow = 1;
}

/* In the child: the message on 0, the report pipe on 1, nothing else. */
static void run_child(int msgfd, int wfd)
{
  signal(SIGCHLD, SIG_DFL);
  if (dup2(msgfd, 0) < 0 || dup2(wfd, 1) < 0) _exit(111);
  close_range(3, ~0u, 0);
  sp->child(&req);
  _exit(111);
}

/* Why the message descriptor cannot serve r, or 0. */
static const char *message_bad(int fd, const struct spawnreq *r)
{
  struct stat st;

  if (fd < 0) return "no message descriptor";
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return "message is not a regular file";
  if (r->off > (unsigned long long)st.st_size || r->len > (unsigned long long)st.st_size - r->off)
    return "message window beyond the end of the file";
  return 0;
}

static void request(size_t n, int fd)
{
  const char *why;
  struct kid *k;
  int p[2], rc;
  pid_t pid;

  rc = spawnreq_parse(&req, pkt, n, sp->maxrcpt, &why);
  if (rc == SPAWNREQ_NOSLOT || kids[req.slot].pid) {
    event("bad_request", rc == SPAWNREQ_NOSLOT ? 0 : &req, rc == SPAWNREQ_NOSLOT ? why : "slot already in use");
    if (fd >= 0) close(fd);
    return;
  }
  if (rc == SPAWNREQ_OK && sp->check) why = sp->check(&req);
  if (!why) why = message_bad(fd, &req);
  if (why) {
    event("bad_request", &req, why);
    sp->refuse(&req, 1, why);
    if (fd >= 0) close(fd);
    return;
  }
  if (pipe2(p, O_CLOEXEC) < 0) {
    why = "cannot make a pipe";
  } else if ((pid = fork()) < 0) {
    close(p[0]);
    close(p[1]);
    why = "cannot fork";
  } else {
    if (pid == 0) run_child(fd, p[1]);
    close(p[1]);
    close(fd);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    k = &kids[req.slot];
    k->pid = pid;
    k->rfd = p[0];
    k->exited = k->overflow = 0;
    k->nrcpt = req.nrcpt;
    k->report.len = 0;
    busy++;
    live++;
    return;
  }
  event("spawn_failed", &req, why);
  sp->refuse(&req, 0, why);
  close(fd);
}

static void setup(void)
{
  struct sigaction sa;
  struct rlimit rl;
  int fd;

  /* fds 1 and 2 must be open, or a pipe could take their number. */
  while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2) {}
  if (fd > 2) close(fd);
  /* One pipe per busy slot, plus fd 0 and the few a child opens. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < SPAWN_SLOTS + 64) {
    rl.rlim_cur = rl.rlim_max < SPAWN_SLOTS + 64 ? rl.rlim_max : SPAWN_SLOTS + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (pipe2(selfpipe, O_CLOEXEC | O_NONBLOCK) < 0) log_fatal(sp->prog, 111, "cannot make a pipe");
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_child;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGCHLD, &sa, 0) < 0) log_fatal(sp->prog, 111, "cannot catch SIGCHLD");
  signal(SIGPIPE, SIG_IGN);
}

int spawner_run(const struct spawner *s)
{
  static struct pollfd pf[SPAWN_SLOTS + 2];
  static unsigned long who[SPAWN_SLOTS + 2];
  enum { REQUESTS = SPAWN_SLOTS, SIGNALS = SPAWN_SLOTS + 1 };
  int eof = 0, code = 0, np, i, fd;
  unsigned long k;
  ssize_t r;

  sp = s;
  setup();
  for (;;) {
    if (eof && !busy && !live) return code;
    np = 0;
    if (!eof) { pf[np].fd = 0; pf[np].events = POLLIN; who[np++] = REQUESTS; }
    pf[np].fd = selfpipe[0]; pf[np].events = POLLIN; who[np++] = SIGNALS;
    for (k = 0; k < SPAWN_SLOTS; k++)
      if (kids[k].pid && kids[k].rfd >= 0) { pf[np].fd = kids[k].rfd; pf[np].events = POLLIN; who[np++] = k; }
    if (poll(pf, (nfds_t)np, -1) < 0) {
      if (errno == EINTR) continue;
      log_fatal(sp->prog, 111, "poll failed");
    }
    for (i = 0; i < np; i++) {
      if (!pf[i].revents) continue;
      if (who[i] == SIGNALS) { reap(); continue; }
      if (who[i] < SPAWN_SLOTS) { drain(who[i]); continue; }
      r = pkt_recv(0, pkt, sizeof pkt, &fd);
      if (r > 0) request((size_t)r, fd);
      /* qmail-send killed with requests unread: ECONNRESET, an EOF too. */
      else if (r == 0 || errno == ECONNRESET) eof = 1;
      else if (errno == EMSGSIZE) event("bad_request", 0, "request too long");
      else if (errno != EINTR && errno != EAGAIN) {
        log_begin(sp->prog, "error");
        log_kv("msg", "cannot read requests");
        log_kv("error", strerror(errno));
        log_end();
        eof = 1;
        code = 111;
      }
    }
  }
}
