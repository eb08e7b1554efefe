/* qmail-lspawn defaultdelivery: the local spawner (lib/spawnproto.h); see
 * qmail-lspawn(8).
 *
 * Root and resident. It finds the recipient's account itself (rf_find,
 * the lookup qmail-smtpd's RCPT check shares), answering an unknown one
 * 'D' at once, and hands the delivery (qmail-local/job.h) with the
 * message fd to a worker of the account's uid and gid (lib/spawnpool.h,
 * qmail-local/worker.h), so .qmail files are only ever parsed by the
 * recipient's uid. A worker that dies before it answers costs that
 * delivery a 'Z'. Not root: single-uid mode, only our own uid receives.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "control.h"
#include "job.h"
#include "log.h"
#include "qfile.h"
#include "spawner.h"
#include "rcptfind.h"
#include "worker.h"

#define PROG "qmail-lspawn"

static const char *defaultdelivery;
static unsigned long timeoutprogram;   /* control/timeoutprogram, read at start */
static int root;

/* --- the account, found here, as root ------------------------------------
 * The input is one recipient's local part, at most QF_ADDR_MAX bytes
 * (spawnreq_parse), lowercased. rf_find (qmail-local/rcptfind.h) decides,
 * the same function qmail-smtpd's RCPT check calls. */

/* users/cdb and users/aliases.cdb stay open and mapped while they are the
 * same files: a stat per request instead of an open, a mapping, its page
 * faults and an unmap. qmail-newu and qmail-newaliases replace a file by a
 * rename (a new inode); a change in place shows in the size or the mtime. */
struct table {
  const char *path;
  int mapped;
  int fd;
  struct cdb c;
  struct stat st;
};
static struct table users = { "users/cdb", 0, -1, { 0 }, { 0 } };
static struct table aliases = { "users/aliases.cdb", 0, -1, { 0 }, { 0 } };

static void table_close(struct table *t)
{
  if (!t->mapped) return;
  cdb_free(&t->c);
  close(t->fd);
  t->mapped = 0;
}

static int same(const struct stat *a, const struct stat *b)
{
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* 1 with t->c ready, 0 when the file does not exist, 111 with *why. */
static int table_open(struct table *t, const char **why)
{
  struct stat st;

  if (stat(t->path, &st) == 0 && t->mapped && same(&st, &t->st)) return 1;
  table_close(t);
  t->fd = open(t->path, O_RDONLY | O_CLOEXEC);
  if (t->fd < 0 && errno == ENOENT) return 0;
  if (t->fd < 0) { *why = "cannot open users/cdb or users/aliases.cdb"; return 111; }
  if (fstat(t->fd, &t->st) < 0 || cdb_init(&t->c, t->fd) < 0) {
    close(t->fd);
    *why = "cannot read users/cdb or users/aliases.cdb";
    return 111;
  }
  t->mapped = 1;
  return 1;
}

static int lookup(const char *local, size_t n, struct rf_dest *d, const char **why)
{
  struct rf_ctx c = { 0, 0, getpwnam, root ? -1 : (long long)geteuid(), rf_alias_home() };
  int hu, ha;

  hu = table_open(&users, why);
  if (hu > 1) return hu;
  ha = table_open(&aliases, why);
  if (ha > 1) return ha;
  c.users = hu ? &users.c : 0;
  c.aliases = ha ? &aliases.c : 0;
  return rf_find(&c, local, n, d, why);
}

/* --- the spawner's callbacks ------------------------------------------- */

static void answer(unsigned long slot, char c, const char *text)
{
  char item[SPAWN_TEXT + 2];

  spawnreq_reply(PROG, slot, item, spawnreq_item(item, c, text, strlen(text)));
}

static int route(struct spawnreq *r, struct spawnjob *sj)
{
  static struct rf_dest dest;
  struct uent *up = &dest.u;
  struct local_job j;
  char *rcpt = r->rcpt[0].addr, *at = strrchr(rcpt, '@'), *p;
  const char *why = 0;
  int code;

  *at = 0;
  for (p = rcpt; *p; p++) if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  code = lookup(rcpt, (size_t)(at - rcpt), &dest, &why);
  if (!code && up->uid == 0) { code = 111; why = "refusing to deliver as root: fix users/assign"; }
  if (!code && !root && up->uid != geteuid()) { code = 111; why = "single-uid mode: cannot deliver to another uid"; }
  if (!code) {
    memset(&j, 0, sizeof j);
    j.uid = up->uid; j.gid = up->gid;
    j.d.user = up->user; j.d.home = up->home; j.d.dash = up->dash; j.d.ext = up->ext;
    j.d.local = rcpt; j.d.domain = at + 1; j.d.sender = r->sender;
    j.d.text = dest.text;
    j.d.qid = r->qid; j.d.rcptno = (unsigned long)r->rcpt[0].i;
    j.d.off = r->off; j.d.len = r->len; j.d.opts = (unsigned)(r->opts & QF_OPT_UTF8);
    if (job_make(&sj->data, &j) < 0) {
      code = 111;
      why = errno == EMSGSIZE ? "users/cdb entry too long" : "out of memory";
    }
  }
  if (code) {
    answer(r->slot, code == 100 ? 'D' : 'Z', why);
    return 0;
  }
  sj->uid = up->uid;
  sj->gid = up->gid;
  return 1;
}

/* A worker needs nothing of the lookups. */
static void serve(unsigned long long uid, unsigned long long gid)
{
  table_close(&users);
  table_close(&aliases);
  worker_serve(uid, gid, defaultdelivery, timeoutprogram, root);
}

static int clean(const char *s)
{
  return !strchr(s, '\n') && !strchr(s, '\r');
}

/* Addresses go into header lines (Delivered-To, Return-Path). */
static const char *check(const struct spawnreq *r)
{
  if (!clean(r->sender)) return "bad sender";
  if (!clean(r->rcpt[0].addr)) return "bad recipient";
  return 0;
}

static void refuse(const struct spawnreq *r, int bad, const char *why)
{
  (void)bad;
  spawnreq_refuse(PROG, r->slot, r->nanswer, "", why);
}

int main(int argc, char **argv)
{
  /* 16 idle workers per uid: above concurrencylocal's default (10), so
   * that deliveries to one busy user reuse their workers. */
  static const struct spawner sp = {
    .prog = PROG, .maxrcpt = 1, .idle_per_id = 16,
    .check = check, .refuse = refuse, .route = route, .serve = serve,
    .crashed = "delivery process crashed",
  };

  if (argc != 2 || !*argv[1]) log_usage(PROG, "usage: qmail-lspawn defaultdelivery");
  defaultdelivery = argv[1];
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  root = geteuid() == 0;
  if (control_ulong(&timeoutprogram, "control/timeoutprogram", DELIVER_TIMEOUT) < 0)
    log_fatal(PROG, 111, "cannot read control/timeoutprogram");
  /* Loads the NSS modules once, here, at start, so that the first
   * delivery to a system account does not pay for loading them. */
  (void)getpwnam("root");
  endpwent();
  return spawner_run(&sp);
}
