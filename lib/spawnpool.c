/* The resident workers of a spawner (lib/spawnpool.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "date.h"
#include "spawnpool.h"

/* An entry is free when its socket is closed (sock 0: fd 0 is always the
 * requests' socket) and its process reaped (pid 0). */
static struct worker pool[POOL_SIZE];
static size_t top;          /* entries [0, top) have been used */
static size_t nidle, alive;

static long long (*clock_fn)(void);

void pool_clock(long long (*fn)(void)) { clock_fn = fn; }

/* The pool's clock: mono_ms, or the hook a test set. */
static long long now_ms(void) { return clock_fn ? clock_fn() : (long long)mono_ms(); }

static int idle(const struct worker *w) { return w->sock > 0 && w->pid > 0 && !w->busy; }

/* In the new worker: nothing of the spawner's but the log stays open, and
 * the spawner's SIGCHLD handler, which writes to its self-pipe, is gone. */
static void run_worker(const struct spawner *sp, int sock, unsigned long long uid,
                       unsigned long long gid)
{
  int null;

  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  null = open("/dev/null", O_WRONLY);
  if (null < 0 || dup2(sock, 0) < 0 || dup2(null, 1) < 0) _exit(111);
  close_range(3, ~0u, 0);
  sp->serve(uid, gid);
  _exit(111);
}

/* The key as a worker keeps it: cut to POOL_KEYMAX - 1 bytes. */
static void key_set(struct worker *w, const char *key)
{
  size_t n = key ? strnlen(key, POOL_KEYMAX - 1) : 0;

  memcpy(w->key, key ? key : "", n);
  w->key[n] = 0;
}

static int same(const struct worker *w, unsigned long long uid, unsigned long long gid,
                const char *key)
{
  return w->uid == uid && w->gid == gid && !strncmp(w->key, key ? key : "", POOL_KEYMAX - 1);
}

static struct worker *spawn(const struct spawner *sp, const struct spawnjob *j,
                            const char **why)
{
  struct worker *w;
  size_t i;
  int s[2];
  pid_t pid;

  for (i = 0; i < POOL_SIZE && (pool[i].sock || pool[i].pid); i++) {}
  if (i == POOL_SIZE) { *why = "too many delivery processes"; return 0; }
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s) < 0) {
    *why = "cannot make a socketpair";
    return 0;
  }
  pid = fork();
  if (pid < 0) {
    close(s[0]);
    close(s[1]);
    *why = "cannot fork";
    return 0;
  }
  if (pid == 0) run_worker(sp, s[1], j->uid, j->gid);
  close(s[1]);
  fcntl(s[0], F_SETFL, O_NONBLOCK);
  w = &pool[i];
  if (i >= top) top = i + 1;
  w->sock = s[0];
  w->pid = pid;
  w->busy = 1;
  w->uid = j->uid;
  w->gid = j->gid;
  key_set(w, j->key);
  w->uses = 1;
  alive++;
  return w;
}

/* An idle worker has nothing to say: one whose socket is readable has
 * died (EOF) or broken the protocol, and its words would be taken for the
 * reply to its next request. */
static int quiet(const struct worker *w)
{
  char c;
  return recv(w->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

struct worker *pool_get(const struct spawner *sp, const struct spawnjob *j, const char **why)
{
  struct worker *w;
  size_t i;

  for (;;) {
    /* The one idle the shortest time: the others age out when few are needed. */
    w = 0;
    for (i = 0; i < top; i++)
      if (idle(&pool[i]) && same(&pool[i], j->uid, j->gid, j->key) &&
          (!w || pool[i].idle_since > w->idle_since))
        w = &pool[i];
    if (!w) return spawn(sp, j, why);
    if (quiet(w)) break;
    pool_retire(w);
  }
  nidle--;
  w->busy = 1;
  w->uses++;
  return w;
}

void pool_retire(struct worker *w)
{
  if (idle(w)) nidle--;
  if (w->sock > 0) close(w->sock);
  w->sock = 0;
  w->busy = 0;
}

void pool_release(const struct spawner *sp, struct worker *w, int closing)
{
  size_t i, mine = 0;

  for (i = 0; i < top; i++)
    if (idle(&pool[i]) && same(&pool[i], w->uid, w->gid, w->key)) mine++;
  if (closing || !w->pid || w->uses >= POOL_USES || nidle >= POOL_IDLE_MAX ||
      mine >= sp->idle_per_id) {
    pool_retire(w);
    return;
  }
  w->busy = 0;
  w->idle_since = now_ms();
  nidle++;
}

int pool_reaped(pid_t pid)
{
  size_t i;

  for (i = 0; i < top && pool[i].pid != pid; i++) {}
  if (i == top) return 0;
  alive--;
  if (idle(&pool[i])) pool_retire(&pool[i]);
  pool[i].pid = 0;
  return 1;
}

int pool_expire(int closing)
{
  long long now, left, next = -1;
  size_t i;

  if (!nidle) return -1;
  now = now_ms();
  for (i = 0; i < top; i++) {
    if (!idle(&pool[i])) continue;
    left = pool[i].idle_since + POOL_IDLE_MS - now;
    if (closing || left <= 0) pool_retire(&pool[i]);
    else if (next < 0 || left < next) next = left;
  }
  return (int)next;
}

size_t pool_live(void) { return alive; }
