/* qmail-lspawn defaultdelivery: the local spawner (lib/spawnproto.h).
 *
 * Root and resident. Reads requests from qmail-send on fd 0 (a
 * SOCK_SEQPACKET socket, the queue file attached), checks every field,
 * and forks one child per delivery. The child finds the recipient's
 * account (users/cdb, then the system accounts, then the users/cdb
 * catch-all), drops to its uid and gid with no supplementary groups, and
 * calls deliver(): .qmail files are only ever parsed by the recipient's
 * uid. Its exit code and one-line report come back here and go to
 * qmail-send as one reply datagram.
 *
 * Not root: single-uid mode, where only deliveries to our own uid run.
 * fd 0 at EOF: wait for the children, send their replies, exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "deliver.h"
#include "log.h"
#include "qfile.h"
#include "spawner.h"
#include "users.h"

#define PROG "qmail-lspawn"

static const char *defaultdelivery;
static int root;

/* --- the child: lookup, privilege drop, deliver ------------------------ */

static void child_exit(int code, const char *text)
{
  size_t n = strlen(text);
  if (n > SPAWN_TEXT) n = SPAWN_TEXT;
  fd_write_all(1, text, n, 0);
  _exit(code);
}

/* A system account named by local up to its first '-', not root, whose
 * home directory exists and belongs to it. 1 found, 0 not. */
static int system_user(const char *local, size_t n, struct uent *u)
{
  const char *dash = memchr(local, '-', n);
  size_t un = dash ? (size_t)(dash - local) : n;
  char name[33];
  struct passwd *pw;
  struct stat st;

  if (!un || un >= sizeof name) return 0;
  memcpy(name, local, un);
  name[un] = 0;
  pw = getpwnam(name);
  if (!pw || pw->pw_uid == 0 || strcmp(pw->pw_name, name)) return 0;
  if (!root && pw->pw_uid != geteuid()) return 0;
  if (!pw->pw_dir || pw->pw_dir[0] != '/' || stat(pw->pw_dir, &st) < 0 ||
      !S_ISDIR(st.st_mode) || st.st_uid != pw->pw_uid) return 0;
  u->uid = pw->pw_uid;
  u->gid = pw->pw_gid;
  u->buf.len = 0;
  if (str_catb(&u->buf, name, un + 1) < 0 || str_cats(&u->buf, pw->pw_dir) < 0 ||
      str_catc(&u->buf, 0) < 0 || str_cats(&u->buf, dash ? "-" : "") < 0 || str_catc(&u->buf, 0) < 0 ||
      (dash && str_catb(&u->buf, dash + 1, n - un - 1) < 0) || str_catc(&u->buf, 0) < 0)
    child_exit(111, "out of memory");
  u->user = u->buf.s;
  u->home = u->user + strlen(u->user) + 1;
  u->dash = u->home + strlen(u->home) + 1;
  u->ext = u->dash + strlen(u->dash) + 1;
  return 1;
}

static void lookup(const char *local, size_t n, struct uent *u)
{
  struct cdb c;
  int fd, r = 0, have = 0;

  fd = open("users/cdb", O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) child_exit(111, "cannot open users/cdb");
  if (fd >= 0) {
    if (cdb_init(&c, fd) < 0) child_exit(111, "cannot read users/cdb");
    have = 1;
    r = users_find(&c, local, n, 0, u);
  }
  if (r == 0) r = system_user(local, n, u);
  if (r == 0 && have) r = users_find(&c, local, n, 1, u);
  if (r < 0) child_exit(111, errno == EINVAL ? "users/cdb holds a malformed entry" : "cannot read users/cdb");
  if (r == 0) child_exit(100, "no such user here");
  if (have) cdb_free(&c);
  if (fd >= 0) close(fd);
}

static void become(const struct uent *u)
{
  if (u->uid == 0) child_exit(111, "refusing to deliver as root: fix users/assign");
  if (!root) {
    if (u->uid != geteuid()) child_exit(111, "single-uid mode: cannot deliver to another uid");
    return;
  }
  if (setgroups(0, 0) < 0 || setgid((gid_t)u->gid) < 0 || setuid((uid_t)u->uid) < 0 ||
      getuid() != (uid_t)u->uid || geteuid() != (uid_t)u->uid || getegid() != (gid_t)u->gid)
    child_exit(111, "cannot switch to the recipient's uid");
}

/* Runs in the child (lib/spawner.h): fd 0 is the message, fd 1 the
 * report pipe. */
static void child(struct spawnreq *r)
{
  struct uent u = { 0, 0, 0, 0, 0, 0, STR_INIT };
  struct delivery d;
  str report = STR_INIT;
  char *rcpt = r->rcpt[0].addr, *at = strrchr(rcpt, '@'), *p;
  int code;

  *at = 0;
  for (p = rcpt; *p; p++) if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  lookup(rcpt, (size_t)(at - rcpt), &u);
  become(&u);

  memset(&d, 0, sizeof d);
  d.user = u.user; d.home = u.home; d.dash = u.dash; d.ext = u.ext;
  d.local = rcpt; d.domain = at + 1; d.sender = r->sender;
  d.defaultdelivery = defaultdelivery;
  d.qid = r->qid; d.rcptno = (unsigned long)r->rcpt[0].i;
  d.fd = 0; d.off = r->off; d.len = r->len; d.opts = (unsigned)(r->opts & QF_OPT_UTF8);
  code = deliver(&d, &report);
  if (str_0(&report) < 0) child_exit(code, "");
  child_exit(code, report.s);
}

/* --- the parent: lib/spawner.h does the rest --------------------------- */

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

/* One item from the child's exit status and report. */
static void done(unsigned long slot, size_t nrcpt, const char *report, size_t n, int overflow,
                 int status)
{
  char item[SPAWN_TEXT + 2];
  char c = 'Z';

  (void)nrcpt;
  (void)overflow;                    /* a longer report is cut */
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) c = 'K';
  if (WIFEXITED(status) && WEXITSTATUS(status) == 100) c = 'D';
  if (!n) {
    report = WIFEXITED(status) ? "delivery process failed" : "delivery process crashed";
    n = strlen(report);
  }
  spawnreq_reply(PROG, slot, item, spawnreq_item(item, c, report, n));
}

int main(int argc, char **argv)
{
  static const struct spawner sp = { PROG, 1, SPAWN_TEXT, 1, check, refuse, child, done };

  if (argc != 2 || !*argv[1]) log_fatal(PROG, 111, "usage: qmail-lspawn defaultdelivery");
  defaultdelivery = argv[1];
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  root = geteuid() == 0;
  /* Loads the NSS modules once, here: otherwise every delivery child that
   * asks for a system account loads them anew (some 80 syscalls and ~4 ms
   * of CPU each), since a fork starts from the parent's state. */
  (void)getpwnam("root");
  endpwent();
  return spawner_run(&sp);
}
