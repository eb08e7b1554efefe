/* qmail-rspawn: the resident remote spawner, as the remote uid; see
 * qmail-rspawn(8).
 *
 * fd 0 is a SOCK_SEQPACKET socket to qmail-send (lib/spawnproto.h); the
 * loop, the checks common to both spawners and the workers' bookkeeping
 * are lib/spawner.h and lib/spawnpool.h. Each request goes, as it came,
 * to a resident worker (rworker.c) of its recipients' domain, the one
 * whose connection there is still open if any. Every delivery a worker
 * reports done is journaled (rjournal.h) before its reply goes out. */
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "metrics.h"
#include "remote.h"
#include "rjournal.h"
#include "spawner.h"
#include "spawnpool.h"

#define PROG "qmail-rspawn"

/* One SMTP transaction: every recipient in the same, non-empty, domain. */
static const char *check(const struct spawnreq *r)
{
  size_t i;

  if (!*r->rcpt[0].domain) return "bad recipient";
  for (i = 1; i < r->nrcpt; i++)
    if (strcasecmp(r->rcpt[i].domain, r->rcpt[0].domain)) return "recipients of different domains";
  return 0;
}

static void refuse(const struct spawnreq *r, int bad, const char *why)
{
  if (bad) spawnreq_refuse(PROG, r->slot, 1, SPAWN_TAG_LOCAL ": ", "bad request");
  else spawnreq_refuse(PROG, r->slot, r->nrcpt, SPAWN_TAG_LOCAL ": ", why);
}

static int field(str *d, const char *s)
{
  return str_cats(d, s) < 0 || str_catc(d, 0) < 0 ? -1 : 0;
}

static int number(str *d, unsigned long long u)
{
  return str_catu(d, u) < 0 || str_catc(d, 0) < 0 ? -1 : 0;
}

/* The request again, slot 0, for the worker of its domain (lower case). */
static int route(struct spawnreq *r, struct spawnjob *j)
{
  static char key[POOL_KEYMAX];
  size_t i, n;
  int bad;

  bad = number(&j->data, 0) || field(&j->data, r->qid) || number(&j->data, r->off) ||
        number(&j->data, r->len) || spawnreq_cat_opts(&j->data, r) < 0 || field(&j->data, r->sender);
  for (i = 0; !bad && i < r->nrcpt; i++)
    bad = spawnreq_cat_index(&j->data, &r->rcpt[i]) < 0 || field(&j->data, r->rcpt[i].addr);
  if (bad) {
    spawnreq_refuse(PROG, r->slot, r->nrcpt, SPAWN_TAG_LOCAL ": ", "out of memory");
    return 0;
  }
  n = strnlen(r->rcpt[0].domain, sizeof key - 1);
  for (i = 0; i < n; i++) {
    char c = r->rcpt[0].domain[i];
    key[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
  }
  key[n] = 0;
  j->key = key;
  j->uid = j->gid = 0;       /* every worker runs as this process does */
  return 1;
}

static void serve(unsigned long long uid, unsigned long long gid)
{
  (void)uid;
  (void)gid;
  rworker_serve();
}

int main(void)
{
  /* 4 idle workers per domain, each keeping its connection open. */
  static const struct spawner sp = {
    .prog = PROG, .maxrcpt = SPAWN_RCPTS, .idle_per_id = 4,
    .check = check, .refuse = refuse, .route = route, .serve = serve,
    .crashed = SPAWN_TAG_LOCAL ": delivery process crashed",
    .answered = rj_answered, .asked = rj_asked,
  };

  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  metrics_open(MF_REMOTE);     /* the workers add into it: forks, no exec */
  rj_open(PROG);
  return spawner_run(&sp);
}
