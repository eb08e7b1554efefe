/* The spawners' resident loop (lib/spawner.h), its workers in
 * lib/spawnpool.h. */
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
#include "qfile.h"
#include "log.h"
#include "spawner.h"
#include "spawnpool.h"
#include "str.h"

struct slot {
  struct worker *w;         /* the worker serving the slot; 0: slot free */
  size_t nrcpt;
  /* With sp->answered only: what the reply is about. */
  char qid[QF_QID_MAX];
  unsigned long long idx[SPAWN_RCPTS];
};

static const struct spawner *sp;
static int eof;             /* no more requests: finish and exit */
static struct slot slots[SPAWN_SLOTS];
static size_t busy;         /* slots with a worker */
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

static void reap(void)
{
  char b[64];
  int st;
  pid_t pid;

  while (read(selfpipe[0], b, sizeof b) > 0) {}
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
    if (pool_reaped(pid) && (!WIFEXITED(st) || WEXITSTATUS(st))) {
      log_begin(sp->prog, "worker_died");
      log_ku("pid", (unsigned long long)pid);
      log_ku("status", (unsigned long long)st);
      log_end();
    }
}

/* The worker of slot s answered, or died, or broke the protocol: then
 * the delivery is a temporary failure and the worker is retired. */
static void reply(unsigned long s)
{
  static char b[SPAWN_ITEMS_MAX];
  struct slot *k = &slots[s];
  ssize_t r;
  int fd;

  r = pkt_recv(k->w->sock, b, sizeof b, &fd);
  if (fd >= 0) close(fd);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (r > 0 && spawnreq_items_ok(b, (size_t)r, k->nrcpt)) {
    if (sp->answered) sp->answered(s, k->qid, k->idx, k->nrcpt, b, (size_t)r);
    spawnreq_reply(sp->prog, s, b, (size_t)r);
    pool_release(sp, k->w, eof);
  } else {
    log_begin(sp->prog, "worker_failed");
    log_ku("slot", s);
    log_kv("msg", r > 0 ? "bad reply" : "no reply");
    log_end();
    spawnreq_refuse(sp->prog, s, k->nrcpt, "", sp->crashed);
    pool_retire(k->w);
  }
  k->w = 0;
  busy--;
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

/* Hands req to a worker, unless route answers it; why that failed, or 0.
 * An idle worker that died since its last request fails the send, and is
 * replaced once. */
static const char *to_worker(int fd)
{
  static struct spawnjob job;
  struct worker *w;
  const char *why = 0;
  int tries;

  job.data.len = 0;
  job.key = 0;
  if (!sp->route(&req, &job)) return 0;
  for (tries = 0; tries < 2; tries++) {
    w = pool_get(sp, &job, &why);
    if (!w) return why;
    if (pkt_send(w->sock, job.data.s, job.data.len, fd) == 0) {
      struct slot *k = &slots[req.slot];
      k->w = w;
      k->nrcpt = req.nrcpt;
      if (sp->answered) {
        size_t i;
        /* qf_qid_ok: shorter than QF_QID_MAX. */
        memcpy(k->qid, req.qid, strlen(req.qid) + 1);
        for (i = 0; i < req.nrcpt; i++) k->idx[i] = req.rcpt[i].i;
      }
      busy++;
      return 0;
    }
    why = "cannot reach the delivery process";
    pool_retire(w);
  }
  return why;
}

static void request(size_t n, int fd)
{
  const char *why;
  int rc;

  rc = spawnreq_parse(&req, pkt, n, sp->maxrcpt, &why);
  if (rc == SPAWNREQ_NOSLOT || slots[req.slot].w) {
    event("bad_request", rc == SPAWNREQ_NOSLOT ? 0 : &req, rc == SPAWNREQ_NOSLOT ? why : "slot already in use");
    if (fd >= 0) close(fd);
    return;
  }
  if (sp->asked) sp->asked(req.slot);
  if (rc == SPAWNREQ_OK && sp->check) why = sp->check(&req);
  if (!why) why = message_bad(fd, &req);
  if (why) {
    event("bad_request", &req, why);
    sp->refuse(&req, 1, why);
    if (fd >= 0) close(fd);
    return;
  }
  why = to_worker(fd);
  if (why) {
    event("spawn_failed", &req, why);
    sp->refuse(&req, 0, why);
  }
  /* The worker has its own copy. */
  close(fd);
}

static void setup(void)
{
  struct sigaction sa;
  struct rlimit rl;
  int fd;

  /* fds 1 and 2 must be open, or a socket could take their number. */
  while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2) {}
  if (fd > 2) close(fd);
  /* One socket per worker, plus fd 0, the self-pipe and the few a lookup
   * opens. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < POOL_SIZE + 64) {
    rl.rlim_cur = rl.rlim_max < POOL_SIZE + 64 ? rl.rlim_max : POOL_SIZE + 64;
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

static int loop(void)
{
  static struct pollfd pf[SPAWN_SLOTS + 2];
  static unsigned long who[SPAWN_SLOTS + 2];
  enum { REQUESTS = SPAWN_SLOTS, SIGNALS = SPAWN_SLOTS + 1 };
  int code = 0, np, i, fd, timeout;
  unsigned long k;
  ssize_t r;

  setup();
  for (;;) {
    timeout = pool_expire(eof);
    if (eof && !busy && !pool_live()) return code;
    np = 0;
    if (!eof) { pf[np].fd = 0; pf[np].events = POLLIN; who[np++] = REQUESTS; }
    pf[np].fd = selfpipe[0]; pf[np].events = POLLIN; who[np++] = SIGNALS;
    for (k = 0; k < SPAWN_SLOTS; k++)
      if (slots[k].w) { pf[np].fd = slots[k].w->sock; pf[np].events = POLLIN; who[np++] = k; }
    if (poll(pf, (nfds_t)np, timeout) < 0) {
      if (errno == EINTR) continue;
      log_fatal(sp->prog, 111, "poll failed");
    }
    for (i = 0; i < np; i++) {
      if (!pf[i].revents) continue;
      if (who[i] == SIGNALS) { reap(); continue; }
      if (who[i] < SPAWN_SLOTS) { reply(who[i]); continue; }
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

int spawner_run(const struct spawner *s)
{
  sp = s;
  return loop();
}
