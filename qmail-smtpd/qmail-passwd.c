/* qmail-passwd add|change|remove USER | list | rebuild: the SMTP AUTH
 * user database (qmail-passwd(8)). users/authusers ("user:hash" lines,
 * root 0600) is the source; every change rewrites it atomically, then
 * rebuilds control/authusers.cdb, owned by the auth uid (control/ids),
 * 0400, so that only qmail-authcheck reads it: temporary name, fsync,
 * rename, fsync of control/. Exit 0, 100 usage or bad input, 111. */
#include <cdb.h>
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic.h"
#include "authlib.h"
#include "buf.h"
#include "control.h"
#include "log.h"
#include "str.h"

#define PROG "qmail-passwd"
#define SOURCE_DIR "users"
#define SOURCE "authusers"
#define SOURCE_MAX (64u << 20)   /* a million users at 64 bytes a line */
#define CDB "control/authusers.cdb"
#define CDB_TMP "control/.authusers.cdb.tmp"

static void die(int code, const char *msg) __attribute__((noreturn));
static void die(int code, const char *msg) { log_fatal(PROG, code, msg); }
/* Bad usage or input: permanent, and no system call's errno to tell. */
static void refuse(const char *msg) __attribute__((noreturn));
static void refuse(const char *msg) { log_die(PROG, EXIT_PERM, msg); }
static void nomem(int r) { if (r < 0) die(111, "out of memory"); }

static str db;         /* users/authusers, "user:hash\n" lines */

static void db_read(void)
{
  if (file_read(SOURCE_DIR "/" SOURCE, &db, SOURCE_MAX) < 0) {
    if (errno == ENOENT) return;
    die(111, errno == EFBIG ? "users/authusers is too big" : "cannot read users/authusers");
  }
  if (db.len && db.s[db.len - 1] != '\n') nomem(str_catc(&db, '\n'));
}

/* The line of user u, as its offset and length (newline included), or -1. */
static long db_find(const char *u, size_t un, size_t *len)
{
  size_t i = 0;
  while (i < db.len) {
    const char *nl = memchr(db.s + i, '\n', db.len - i);
    size_t n = (size_t)(nl - (db.s + i)) + 1;
    if (n > un + 1 && db.s[i + un] == ':' && !memcmp(db.s + i, u, un)) { *len = n; return (long)i; }
    i += n;
  }
  return -1;
}

static void db_remove(long at, size_t len)
{
  memmove(db.s + at, db.s + at + len, db.len - (size_t)at - len);
  db.len -= len;
}

/* Reads the uid that owns the cdb from control/ids ("auth=uid:gid"). */
static uid_t auth_uid(void)
{
  static str ids;
  unsigned long long u;
  size_t i = 0;
  if (control_lines(&ids, "control/ids") <= 0) die(111, "cannot read control/ids");
  while (i < ids.len) {
    const char *l = ids.s + i;
    size_t n = strlen(l);
    const char *c = memchr(l, ':', n);
    if (n > 5 && !memcmp(l, "auth=", 5) && c && scan_ulong(l + 5, (size_t)(c - l - 5), &u) == 0
        && u <= 0x7fffffffu) return (uid_t)u;
    i += n + 1;
  }
  die(111, "control/ids has no auth line");
}

static void cdb_build(void)
{
  struct cdb_make cm;
  uid_t uid = auth_uid();
  size_t i = 0;
  int fd;

  if (unlink(CDB_TMP) < 0 && errno != ENOENT) die(111, "cannot remove " CDB_TMP);
  fd = open(CDB_TMP, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
  if (fd < 0) die(111, "cannot create " CDB_TMP);
  if (cdb_make_start(&cm, fd) < 0) die(111, "cdb_make_start");
  while (i < db.len) {
    const char *l = db.s + i, *nl = memchr(l, '\n', db.len - i);
    size_t n = (size_t)(nl - l);
    const char *c = memchr(l, ':', n);
    i += n + 1;
    if (!c || !authuser_ok(l, (size_t)(c - l))) continue;   /* not a user line */
    if (cdb_make_add(&cm, l, (unsigned)(c - l), c + 1, (unsigned)(n - (size_t)(c - l) - 1)) < 0)
      die(111, "cdb_make_add");
  }
  if (cdb_make_finish(&cm) < 0 || fchown(fd, uid, (gid_t)-1) < 0 || fchmod(fd, 0400) < 0
      || fsync(fd) < 0 || close(fd) < 0) {
    unlink(CDB_TMP);
    die(111, "cannot write " CDB_TMP);
  }
  if (rename(CDB_TMP, CDB) < 0) { unlink(CDB_TMP); die(111, "cannot rename " CDB); }
  if (fsync_dir("control") < 0) die(111, "cannot fsync control");
}

static void db_write(void)
{
  if (atomic_write(SOURCE_DIR, SOURCE, db.s, db.len, 0600) < 0) die(111, "cannot write users/authusers");
  cdb_build();
}

/* The password: stdin's first line, without its line end. */
static void read_password(str *pw)
{
  char b[AUTH_PASS_MAX + 2];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(0, b + n, sizeof b - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die(111, "cannot read stdin");
    if (r == 0) break;
    n += (size_t)r;
    if (memchr(b, '\n', n) || n == sizeof b) break;
  }
  {
    char *nl = memchr(b, '\n', n);
    if (nl) n = (size_t)(nl - b);
    else if (n == sizeof b) refuse("password too long");
  }
  if (n && b[n - 1] == '\r') n--;
  if (n == 0) refuse("empty password");
  if (n > AUTH_PASS_MAX || memchr(b, 0, n)) refuse("bad password (too long or NUL)");
  nomem(str_copyb(pw, b, n));
  nomem(str_0(pw));
  explicit_bzero(b, sizeof b);
}

static void hash_password(const str *pw, str *line)
{
  static struct crypt_data cd;
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  const char *h;

  if (!crypt_gensalt_rn("$y$", 0, 0, 0, salt, sizeof salt)
      && !crypt_gensalt_rn("$6$", 0, 0, 0, salt, sizeof salt)) die(111, "crypt_gensalt");
  h = crypt_rn(pw->s, salt, &cd, sizeof cd);
  if (!h || h[0] == '*') die(111, "crypt");
  nomem(str_cats(line, h));
  nomem(str_catc(line, '\n'));
  explicit_bzero(&cd, sizeof cd);
}

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
  refuse("usage: qmail-passwd add|change|remove USER | list | rebuild");
}

int main(int argc, char **argv)
{
  static str pw, line;
  const char *cmd, *u;
  size_t un = 0, len = 0;
  long at;

  umask(077);
  if (argc < 2) usage();
  cmd = argv[1];
  u = argc > 2 ? argv[2] : 0;
  if (u) un = strlen(u);
  if (prefix_chdir() < 0) die(111, "cannot chdir to the prefix");
  db_read();
  if (!strcmp(cmd, "list") && argc == 2) {
    size_t i = 0;
    while (i < db.len) {
      const char *l = db.s + i, *nl = memchr(l, '\n', db.len - i);
      const char *c = memchr(l, ':', (size_t)(nl - l));
      if (c && write(1, l, (size_t)(c - l)) < 0) die(111, "write");
      if (c && write(1, "\n", 1) < 0) die(111, "write");
      i = (size_t)(nl - db.s) + 1;
    }
    return 0;
  }
  if (!strcmp(cmd, "rebuild") && argc == 2) { cdb_build(); return 0; }
  if (argc != 3) usage();
  if (!authuser_ok(u, un)) refuse("bad user name (printable ASCII, no space or ':', at most 255)");
  at = db_find(u, un, &len);
  if (!strcmp(cmd, "remove")) {
    if (at < 0) refuse("no such user");
    db_remove(at, len);
  } else if (!strcmp(cmd, "add") || !strcmp(cmd, "change")) {
    if (cmd[0] == 'a' && at >= 0) refuse("user exists (use change)");
    if (cmd[0] == 'c' && at < 0) refuse("no such user (use add)");
    read_password(&pw);
    nomem(str_copyb(&line, u, un));
    nomem(str_catc(&line, ':'));
    hash_password(&pw, &line);
    explicit_bzero(pw.s, pw.len);
    if (at >= 0) db_remove(at, len);
    nomem(str_catb(&db, line.s, line.len));
  } else usage();
  db_write();
  log_begin(PROG, cmd);
  log_kb("user", u, un);
  log_end();
  return 0;
}
