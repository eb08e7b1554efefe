/* qmail-rspawn: the resident remote spawner, as the remote uid.
 *
 * fd 0 is a SOCK_SEQPACKET socket to qmail-send (lib/spawnproto.h); the
 * loop, the checks common to both spawners and the children's bookkeeping
 * are lib/spawner.h. Each request is delivered by a forked child running
 * the SMTP client (no exec: the client is linked in). The child writes its
 * results, "<c><text>\0" per recipient, into its report pipe and closes it
 * as soon as they are final, before the server's QUIT; the parent checks
 * them and answers "<slot>\0" + results.
 *
 * A request that cannot be parsed is answered, if its slot is readable and
 * free, with a single 'Z' ("local: bad request"); otherwise it is logged
 * and dropped, since there is nobody to answer.
 */
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "log.h"
#include "qfile.h"
#include "remote.h"
#include "spawner.h"

static const char prog[] = "qmail-rspawn";

static struct rresult res[SPAWN_RCPTS];
static const char *rcpts[SPAWN_RCPTS];

/* Child side: hand the results to the parent as soon as they are final. */
static void child_done(struct rjob *j)
{
  static char out[SPAWN_ITEMS_MAX];
  size_t i, n = 0;

  for (i = 0; i < j->nrcpt; i++) n += spawnreq_item(out + n, j->res[i].code, j->res[i].text, j->res[i].len);
  fd_write_all(1, out, n, 0);
  close(1);
}

static void child(struct spawnreq *r)
{
  struct rjob j;
  size_t i;

  for (i = 0; i < r->nrcpt; i++) rcpts[i] = r->rcpt[i].addr;
  j.domain = r->rcpt[0].domain;
  j.sender = r->sender;
  j.rcpt = rcpts;
  j.nrcpt = r->nrcpt;
  j.msgfd = 0;
  j.msgoff = (off_t)r->off;
  j.msglen = r->len;
  j.utf8 = (r->opts & QF_OPT_UTF8) != 0;
  j.res = res;
  j.done = child_done;
  remote_deliver(&j);
  _exit(0);
}

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
  if (bad) spawnreq_refuse(prog, r->slot, 1, SPAWN_TAG_LOCAL ": ", "bad request");
  else spawnreq_refuse(prog, r->slot, r->nrcpt, SPAWN_TAG_LOCAL ": ", why);
}

static void done(unsigned long slot, size_t nrcpt, const char *report, size_t n, int overflow,
                 int status)
{
  (void)status;
  if (!overflow && spawnreq_items_ok(report, n, nrcpt)) {
    spawnreq_reply(prog, slot, report, n);
    return;
  }
  log_begin(prog, "child_failed");
  log_ku("slot", slot);
  log_end();
  spawnreq_refuse(prog, slot, nrcpt, SPAWN_TAG_LOCAL ": ", "delivery process failed");
}

int main(void)
{
  static const struct spawner sp = { prog, SPAWN_RCPTS, SPAWN_ITEMS_MAX, 0, check, refuse, child, done };

  if (prefix_chdir() < 0) log_fatal(prog, 111, "cannot chdir to the prefix");
  return spawner_run(&sp);
}
