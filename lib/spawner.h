#ifndef SPAWNER_H
#define SPAWNER_H
/* The resident loop of a spawner (lib/spawnproto.h), shared by
 * qmail-lspawn and qmail-rspawn: requests in on fd 0, one reply per
 * request, children reaped through a SIGCHLD self-pipe. spawner_run forks
 * one child per delivery and collects its report through a pipe
 * (qmail-rspawn); spawner_run_work hands each delivery to a resident
 * worker of the delivery's uid and gid (qmail-lspawn, lib/spawnpool.h).
 *
 * Every request is parsed by spawnreq_parse, then checked against the
 * message descriptor: present, a regular file, the window inside it.
 * A request with no valid slot, or whose slot is busy, is logged and
 * dropped (an answer would be taken for the busy slot's). Any other
 * refusal goes to the refuse callback, which must answer.
 *
 * The child starts with fd 0 the message, fd 1 the write end of its
 * report pipe, fd 2 the log, and nothing else of the parent's open. */
#include <stddef.h>
#include "spawnreq.h"
#include "str.h"

struct spawner {
  const char *prog;         /* names the log lines */
  size_t maxrcpt;           /* recipients per request, 1..SPAWN_RCPTS */
  size_t reportmax;         /* report bytes kept; more sets overflow */
  /* 1: the reply waits for the child's exit too, and done gets its wait
   * status; 0: the reply goes at EOF of the report (the child may go on,
   * e.g. to say QUIT), and an abnormal exit is only logged. */
  int wait_exit;
  /* Optional further checks of a parsed request: why to refuse it, or 0. */
  const char *(*check)(const struct spawnreq *r);
  /* Answers a request that will not run: bad = 1, the request is invalid;
   * bad = 0, it could not be started (no pipe, no fork). */
  void (*refuse)(const struct spawnreq *r, int bad, const char *why);
  /* Runs the delivery in the child; must not return (if it does, the
   * child exits 111). */
  void (*child)(struct spawnreq *r);
  /* The report of the child for slot is complete: send the reply. status
   * is the wait status with wait_exit, else -1. */
  void (*done)(unsigned long slot, size_t nrcpt, const char *report, size_t n, int overflow,
               int status);
};

/* Serves requests until EOF on fd 0 and the end of every child. Returns
 * the exit code: 0, or 111 when reading requests failed. */
int spawner_run(const struct spawner *sp);

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

/* Resident workers instead of a child per request. The spawner's child,
 * done, wait_exit and reportmax are then unused. */
struct spawnwork {
  /* In the spawner, for each request that passed the checks: 1 with j's
   * uid, gid, key and data set (no longer than serve can receive), to hand
   * the request to a worker of that uid, gid and key; 0 when route has answered it
   * itself (spawnreq_reply). */
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
};

/* As spawner_run, with workers; returns once every worker is gone too. */
int spawner_run_work(const struct spawner *sp, const struct spawnwork *w);

#endif
