/* lib/spawnpool.c: a worker's lifetimes, driven by a fake clock: retired
 * after POOL_IDLE_MS idle and not a millisecond before, after POOL_USES
 * requests, and beyond the spawner's idle_per_id idle workers of an id.
 * The workers are real children that wait for EOF, as spawner's do. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "spawnpool.h"
#include "check.h"

static long long fake_now;
static long long fake_clock(void) { return fake_now; }

static void serve(unsigned long long uid, unsigned long long gid)
{
  char c;

  while (read(0, &c, 1) > 0) {}
  _exit(0);
}

static const struct spawner sp = { .prog = "t-spawnpool", .maxrcpt = 1, .idle_per_id = 2,
                                   .serve = serve };

static pid_t forked[16];    /* every worker get() saw, for end_all */
static size_t nforked;

/* Reaps the workers that exit once their socket is closed, for at most
 * 5 s: a worker still alive then was never retired, and pool_live says so. */
static void reap_all(void)
{
  pid_t pid;
  int k;

  for (k = 0; k < 500 && pool_live(); k++) {
    while ((pid = waitpid(-1, 0, WNOHANG)) > 0) pool_reaped(pid);
    if (pool_live()) usleep(10000);
  }
}

/* Ends the workers a failed check left behind. */
static void end_all(void)
{
  pid_t pid;

  size_t i;

  for (i = 0; i < nforked; i++) kill(forked[i], SIGKILL);
  while ((pid = waitpid(-1, 0, 0)) > 0) pool_reaped(pid);
}

static struct worker *get(struct spawnjob *j)
{
  const char *why = 0;
  struct worker *w = pool_get(&sp, j, &why);
  size_t i;

  CHECK(w && w->busy && !why);
  for (i = 0; i < nforked && forked[i] != w->pid; i++) {}
  if (i == nforked && nforked < sizeof forked / sizeof *forked) forked[nforked++] = w->pid;
  return w;
}

static void idle_time(void)
{
  struct spawnjob j = { .uid = 1, .gid = 1, .key = "a" };
  struct worker *w = get(&j);

  fake_now = 1000;
  pool_release(&sp, w, 0);
  CHECK(w->sock > 0 && !w->busy && w->idle_since == 1000);
  CHECK(pool_expire(0) == POOL_IDLE_MS);
  fake_now = 1000 + POOL_IDLE_MS - 1;
  CHECK(pool_expire(0) == 1 && w->sock > 0);                 /* a millisecond early */
  CHECK(get(&j) == w && w->uses == 2);                         /* reused, not forked */
  pool_release(&sp, w, 0);
  CHECK(w->idle_since == fake_now);                            /* its time starts again */
  fake_now += POOL_IDLE_MS;
  CHECK(pool_expire(0) == -1 && w->sock == 0);                 /* retired on time */
  reap_all();
  CHECK(pool_live() == 0 && w->pid == 0);
}

static void uses(void)
{
  struct spawnjob j = { .uid = 2, .gid = 2, .key = 0 };
  struct worker *w = get(&j), *first = w;
  unsigned long k;
  int same = 1;

  for (k = 1; k < POOL_USES; k++) {
    pool_release(&sp, w, 0);
    if (w->sock == 0) break;
    w = get(&j);
    same &= w == first;
  }
  CHECK(same && k == POOL_USES && w->uses == POOL_USES && w->sock > 0);
  pool_release(&sp, w, 0);
  CHECK(w->sock == 0);                                         /* retired after its last */
  reap_all();
  CHECK(pool_live() == 0);
}

static void per_id(void)
{
  struct spawnjob j = { .uid = 3, .gid = 3, .key = "b" }, other = { .uid = 3, .gid = 3, .key = "c" };
  struct worker *w[3], *o;
  int k;

  for (k = 0; k < 3; k++) w[k] = get(&j);
  o = get(&other);
  CHECK(w[0] != w[1] && w[1] != w[2] && pool_live() == 4);
  for (k = 0; k < 3; k++) pool_release(&sp, w[k], 0);
  CHECK(w[0]->sock > 0 && w[1]->sock > 0 && w[2]->sock == 0);  /* idle_per_id is 2 */
  pool_release(&sp, o, 0);
  CHECK(o->sock > 0);                                          /* another key: its own count */
  pool_release(&sp, get(&j), 1);                               /* closing: never kept */
  CHECK(pool_expire(0) > 0);
  CHECK(pool_expire(1) == -1 && w[0]->sock == 0 && w[1]->sock == 0 && o->sock == 0);
  reap_all();
  CHECK(pool_live() == 0);
}

int main(void)
{
  signal(SIGPIPE, SIG_IGN);
  pool_clock(fake_clock);
  idle_time();
  uses();
  per_id();
  if (check_failed) end_all();
  DONE();
}
