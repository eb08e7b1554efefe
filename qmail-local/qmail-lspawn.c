/* qmail-lspawn defaultdelivery: the local spawner (lib/spawnproto.h).
 *
 * Root and resident. Reads requests from qmail-send on fd 0 (a
 * SOCK_SEQPACKET socket, the queue file attached) and checks every field.
 * It finds the recipient's account itself (users/cdb, then the system
 * accounts, then the users/cdb catch-all), answering an unknown one
 * 'D' at once, and hands the delivery (qmail-local/job.h) with the message
 * fd to a worker of the account's uid and gid (lib/spawnpool.h,
 * qmail-local/worker.h): a child that took that uid and gid with no
 * supplementary groups and calls deliver() job after job, so .qmail files
 * are only ever parsed by the recipient's uid. The worker's one-line
 * report comes back here and goes to qmail-send as one reply datagram; a
 * worker that dies before it answers costs that delivery a 'Z'.
 *
 * Not root: single-uid mode, where only deliveries to our own uid run.
 * fd 0 at EOF: wait for the deliveries, send their replies, retire the
 * workers, exit 0.
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
#include "users.h"
#include "worker.h"

#define PROG "qmail-lspawn"

static const char *defaultdelivery;
static int root;

/* --- the account, found here, as root ------------------------------------
 * The input is one recipient's local part, at most QF_ADDR_MAX bytes
 * (spawnreq_parse), lowercased; a system account name is at most 32 bytes.
 * Each returns 0 found, 100 no such user, 111 with *why on an error. */

/* A system account named by local up to its first '-', not root, whose
 * home directory exists and belongs to it. */
static int system_user(const char *local, size_t n, struct uent *u, const char **why)
{
  const char *dash = memchr(local, '-', n);
  size_t un = dash ? (size_t)(dash - local) : n;
  char name[33];
  struct passwd *pw;
  struct stat st;

  if (!un || un >= sizeof name) return 100;
  memcpy(name, local, un);
  name[un] = 0;
  pw = getpwnam(name);
  if (!pw || pw->pw_uid == 0 || strcmp(pw->pw_name, name)) return 100;
  if (!root && pw->pw_uid != geteuid()) return 100;
  if (!pw->pw_dir || pw->pw_dir[0] != '/' || stat(pw->pw_dir, &st) < 0 ||
      !S_ISDIR(st.st_mode) || st.st_uid != pw->pw_uid) return 100;
  u->uid = pw->pw_uid;
  u->gid = pw->pw_gid;
  u->buf.len = 0;
  if (str_catb(&u->buf, name, un + 1) < 0 || str_cats(&u->buf, pw->pw_dir) < 0 ||
      str_catc(&u->buf, 0) < 0 || str_cats(&u->buf, dash ? "-" : "") < 0 || str_catc(&u->buf, 0) < 0 ||
      (dash && str_catb(&u->buf, dash + 1, n - un - 1) < 0) || str_catc(&u->buf, 0) < 0) {
    *why = "out of memory";
    return 111;
  }
  u->user = u->buf.s;
  u->home = u->user + strlen(u->user) + 1;
  u->dash = u->home + strlen(u->home) + 1;
  u->ext = u->dash + strlen(u->dash) + 1;
  return 0;
}

/* users/cdb stays open and mapped while it is the same file: a stat per
 * request instead of an open, a mapping, its page faults and an unmap.
 * qmail-newu replaces the file by a rename (a new inode); a change in
 * place shows in the size or the mtime. */
static struct {
  int mapped;
  int fd;
  struct cdb c;
  struct stat st;
} users;

static void users_close(void)
{
  if (!users.mapped) return;
  cdb_free(&users.c);
  close(users.fd);
  users.mapped = 0;
}

static int same(const struct stat *a, const struct stat *b)
{
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* 1 with users.c ready, 0 when there is no users/cdb, 111 with *why. */
static int users_open(const char **why)
{
  struct stat st;

  if (stat("users/cdb", &st) == 0 && users.mapped && same(&st, &users.st)) return 1;
  users_close();
  users.fd = open("users/cdb", O_RDONLY | O_CLOEXEC);
  if (users.fd < 0 && errno == ENOENT) return 0;
  if (users.fd < 0) { *why = "cannot open users/cdb"; return 111; }
  if (fstat(users.fd, &users.st) < 0 || cdb_init(&users.c, users.fd) < 0) {
    close(users.fd);
    *why = "cannot read users/cdb";
    return 111;
  }
  users.mapped = 1;
  return 1;
}

static int lookup(const char *local, size_t n, struct uent *u, const char **why)
{
  int have, r = 0, code;

  have = users_open(why);
  if (have > 1) return have;
  if (have) r = users_find(&users.c, local, n, 0, u);
  code = r ? 0 : system_user(local, n, u, why);
  if (code == 100 && have && (r = users_find(&users.c, local, n, 1, u)) > 0) code = 0;
  if (r < 0) {
    *why = errno == EINVAL ? "users/cdb holds a malformed entry" : "cannot read users/cdb";
    code = 111;
  }
  if (code == 100) *why = "no such user here";
  return code;
}

/* --- the spawner's callbacks ------------------------------------------- */

static void answer(unsigned long slot, char c, const char *text)
{
  char item[SPAWN_TEXT + 2];

  spawnreq_reply(PROG, slot, item, spawnreq_item(item, c, text, strlen(text)));
}

static int route(struct spawnreq *r, struct spawnjob *sj)
{
  static struct uent u;
  struct job j;
  char *rcpt = r->rcpt[0].addr, *at = strrchr(rcpt, '@'), *p;
  const char *why = 0;
  int code;

  *at = 0;
  for (p = rcpt; *p; p++) if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  code = lookup(rcpt, (size_t)(at - rcpt), &u, &why);
  if (!code && u.uid == 0) { code = 111; why = "refusing to deliver as root: fix users/assign"; }
  if (!code && !root && u.uid != geteuid()) { code = 111; why = "single-uid mode: cannot deliver to another uid"; }
  if (!code) {
    memset(&j, 0, sizeof j);
    j.uid = u.uid; j.gid = u.gid;
    j.d.user = u.user; j.d.home = u.home; j.d.dash = u.dash; j.d.ext = u.ext;
    j.d.local = rcpt; j.d.domain = at + 1; j.d.sender = r->sender;
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
  sj->uid = u.uid;
  sj->gid = u.gid;
  return 1;
}

/* A worker needs nothing of the lookups. */
static void serve(unsigned long long uid, unsigned long long gid)
{
  users_close();
  worker_serve(uid, gid, defaultdelivery, root);
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
  static const struct spawner sp = { PROG, 1, 16, check, refuse, route, serve, "delivery process crashed", 0, 0 };

  if (argc != 2 || !*argv[1]) log_fatal(PROG, 111, "usage: qmail-lspawn defaultdelivery");
  defaultdelivery = argv[1];
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  root = geteuid() == 0;
  /* Loads the NSS modules once, here, at start: the first lookup of a
   * system account costs some 80 syscalls and ~4 ms of CPU. */
  (void)getpwnam("root");
  endpwent();
  return spawner_run(&sp);
}
