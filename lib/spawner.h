#ifndef SPAWNER_H
#define SPAWNER_H
/* The resident loop of a spawner (lib/spawnproto.h), shared by
 * qmail-lspawn and qmail-rspawn: requests in on fd 0, one reply per
 * request. Each delivery goes to a resident worker of its uid, gid and
 * key (lib/spawnpool.h); workers are reaped through a SIGCHLD self-pipe.
 *
 * Every request is parsed by spawnreq_parse, then checked against the
 * message descriptor: present, a regular file, the window inside it.
 * A request with no valid slot, or whose slot is busy, is logged and
 * dropped (an answer would be taken for the busy slot's). Any other
 * refusal goes to the refuse callback, which must answer. */
#include <stddef.h>
#include "spawnreq.h"
#include "str.h"

/* Who serves a request, as route (below) decides it. */
struct spawnjob {
  unsigned long long uid, gid;
  /* Further affinity, or NULL: a worker serves only requests of its uid,
   * gid and key (e.g. qmail-rspawn's destination domain, so that a
   * worker's kept connection serves the next request there). Only the
   * first POOL_KEYMAX - 1 bytes count: a key says which worker is likely
   * to help, never what a worker may do. */
  const char *key;
  str data;                 /* the datagram the worker receives */
};

struct spawner {
  const char *prog;         /* names the log lines */
  size_t maxrcpt;           /* recipients per request, 1..SPAWN_RCPTS */
  /* Idle workers kept per (uid, gid, key) (lib/spawnpool.h): about the
   * concurrency one of them sees in steady use, so that a busy id keeps
   * its workers rather than forking them again. */
  size_t idle_per_id;
  /* Optional further checks of a parsed request: why to refuse it, or 0. */
  const char *(*check)(const struct spawnreq *r);
  /* Answers a request that will not run: bad = 1, the request is invalid;
   * bad = 0, no worker could take it (no socketpair, no fork, too many). */
  void (*refuse)(const struct spawnreq *r, int bad, const char *why);
  /* For each request that passed the checks: 1 with j's uid, gid, key and
   * data set (no longer than serve can receive), to hand the request to a
   * worker of that uid, gid and key; 0 when route has answered it itself
   * (spawnreq_reply). */
  int (*route)(struct spawnreq *r, struct spawnjob *j);
  /* Runs in a new worker, whose fd 0 is its socket, fd 1 /dev/null, fd 2
   * the log, nothing else open, SIGCHLD and SIGPIPE at their defaults.
   * Per datagram received (j's data, the message fd attached) it sends
   * one datagram back: the request's reply items, exactly as many as the
   * request has recipients (spawnreq_items_ok), without the slot. At EOF
   * it exits 0. Must not return. */
  void (*serve)(unsigned long long uid, unsigned long long gid);
  /* The text answered ('Z') for a request whose worker died, or answered
   * anything but items, before its reply. */
  const char *crashed;
  /* Optional, for a spawner that journals its results (qmail-rspawn): a
   * worker's checked reply (items of n recipients, len bytes), with the
   * request's qid and the recipients' indexes, just before it goes to
   * qmail-send; it must be durable when this returns. */
  void (*answered)(unsigned long slot, const char *qid, const unsigned long long *idx, size_t n,
                   const char *items, size_t len);
  /* Optional: a request came on slot, so qmail-send has read (and acted
   * on) every earlier reply of that slot. */
  void (*asked)(unsigned long slot);
};

/* Serves requests until EOF on fd 0, the last reply and the end of every
 * worker. Returns the exit code: 0, or 111 when reading requests failed. */
int spawner_run(const struct spawner *sp);

#endif
