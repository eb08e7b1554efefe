/* qmail-rspawn's delivery worker (remote.h, "rworker.c").
 *
 * Forked by qmail-rspawn for one destination domain (lib/spawnpool.h),
 * with its uid; fd 0 is its socket to qmail-rspawn, fd 2 the log. Per
 * datagram: a request exactly as qmail-send sent it (lib/spawnproto.h),
 * checked again by spawnreq_parse, with the message fd attached; the
 * reply items go back as one datagram as soon as the results are final.
 *
 * Between requests it watches the kept connection (smtpclient.c): after
 * SMTP_KEEP_IDLE_MS it says QUIT; a connection that turns readable while
 * idle was closed by the server or spoken on unasked and is dropped at
 * once. At EOF on fd 0 (qmail-rspawn retired it or is gone) it says QUIT
 * and exits 0, so no connection outlives the spawner for long.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "fdpass.h"
#include "qfile.h"
#include "remote.h"
#include "spawnreq.h"

static struct rresult res[SPAWN_RCPTS];
static const char *rcpts[SPAWN_RCPTS];
static char out[SPAWN_ITEMS_MAX];

static void reply(struct rjob *j)
{
  size_t i, n = 0;

  for (i = 0; i < j->nrcpt; i++) n += spawnreq_item(out + n, j->res[i].code, j->res[i].text, j->res[i].len);
  if (pkt_send(0, out, n, -1) < 0) _exit(111);
}

/* One request of n bytes at p, the message on fd (-1: none came). */
static void one(char *p, size_t n, int fd)
{
  static struct spawnreq r;
  struct rjob j;
  const char *why;
  size_t i, k = 0;

  if (spawnreq_parse(&r, p, n, SPAWN_RCPTS, &why) != SPAWNREQ_OK || fd < 0) {
    /* qmail-rspawn checked it: this cannot happen, but must answer. */
    for (i = 0; i < r.nanswer; i++)
      k += spawnreq_item(out + k, 'Z', SPAWN_TAG_LOCAL ": bad delivery job", strlen(SPAWN_TAG_LOCAL ": bad delivery job"));
    if (pkt_send(0, out, k, -1) < 0) _exit(111);
    return;
  }
  for (i = 0; i < r.nrcpt; i++) rcpts[i] = r.rcpt[i].addr;
  j.domain = r.rcpt[0].domain;
  j.sender = r.sender;
  j.rcpt = rcpts;
  j.nrcpt = r.nrcpt;
  j.msgfd = fd;
  j.msgoff = (off_t)r.off;
  j.msglen = r.len;
  j.utf8 = (r.opts & QF_OPT_UTF8) != 0;
  j.req = &r;
  j.keep = 1;
  j.res = res;
  j.done = reply;
  remote_deliver(&j);
}

void rworker_serve(void)
{
  static char p[SPAWN_PKT_MAX];
  struct pollfd pf[2];
  int timeout, r, fd;
  ssize_t n;

  /* A server that closes while we write must not kill the worker. */
  signal(SIGPIPE, SIG_IGN);
  for (;;) {
    timeout = smtp_kept(&pf[1].fd);
    pf[0].fd = 0;
    pf[0].events = pf[1].events = POLLIN;
    r = poll(pf, pf[1].fd >= 0 ? 2 : 1, timeout);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) _exit(111);
    if (r == 0) smtp_drop(1);
    else if (pf[1].fd >= 0 && pf[1].revents) smtp_drop(0);
    if (r == 0 || !pf[0].revents) continue;
    n = pkt_recv(0, p, sizeof p, &fd);
    if (n == 0) {
      smtp_drop(1);
      _exit(0);
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) _exit(111);
    one(p, (size_t)n, fd);
    if (fd >= 0) close(fd);
  }
}
