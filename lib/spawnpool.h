#ifndef SPAWNPOOL_H
#define SPAWNPOOL_H
/* The resident workers of spawner_run (lib/spawner.h).
 *
 * A worker is a child forked for one (uid, gid, key), which it alone
 * serves, one request at a time, over a SOCK_SEQPACKET socketpair: our end
 * here (non-blocking, close-on-exec), its end as its fd 0. A worker whose
 * request is answered stays idle for the next request of its (uid, gid,
 * key), unless it has served POOL_USES requests, or the spawner's
 * idle_per_id workers of its own or POOL_IDLE_MAX in all are idle
 * already: past those limits a worker serves one request and is retired,
 * so busy workers are bounded by the requests in flight (SPAWN_SLOTS) and
 * idle ones by POOL_IDLE_MAX. An idle worker is retired after
 * POOL_IDLE_MS. Retiring closes our end: the worker reads EOF and exits.
 * A spawner that dies closes every end as well, so no worker outlives it.
 */
#include <stddef.h>
#include <sys/types.h>
#include "spawner.h"

#define POOL_USES 1000
#define POOL_IDLE_MAX 64
#define POOL_IDLE_MS 10000
#define POOL_KEYMAX 256
/* Entries: one per request in flight, plus the idle ones. */
#define POOL_SIZE (SPAWN_SLOTS + POOL_IDLE_MAX)

struct worker {
  int sock;                 /* our end; -1: the entry is free */
  pid_t pid;                /* 0 once reaped (a busy entry lives on until its socket reads EOF) */
  int busy;
  unsigned long long uid, gid;
  char key[POOL_KEYMAX];    /* NUL-terminated, "" for none */
  unsigned long uses;       /* requests handed to it */
  long long idle_since;     /* monotonic ms */
};

/* A busy worker for j's uid, gid and key: the idle one of them last used,
 * or a new one forked to run sp->serve. NULL with *why set when none can
 * be made (no socketpair, no fork, too many). */
struct worker *pool_get(const struct spawner *sp, const struct spawnjob *j, const char **why);
/* w's request is answered: w goes idle, or is retired by the rules above
 * (always with closing set: the spawner is on its way out). */
void pool_release(const struct spawner *sp, struct worker *w, int closing);
/* Closes our end of w's socket and frees the entry; the process is reaped
 * later, as any child. */
void pool_retire(struct worker *w);
/* pid has been reaped: 1 if it was a worker (retired here if idle; if busy
 * the entry waits for EOF on its socket), 0 if not. */
int pool_reaped(pid_t pid);
/* Retires the idle workers whose time is up, every idle one with closing
 * set. Returns the milliseconds until the next one's time is up, -1 when
 * none is idle. */
int pool_expire(int closing);
/* Workers forked and not yet reaped. */
size_t pool_live(void);
/* The clock of idle times, monotonic milliseconds: clock_gettime's
 * CLOCK_MONOTONIC, or fn when not NULL (a unit test's fake clock). */
void pool_clock(long long (*fn)(void));

#endif
