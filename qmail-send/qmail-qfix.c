/* qmail-qfix [-n]: checks PREFIX/queue and PREFIX/rjournal against the
 * layout service/install creates, and repairs it; see qmail-qfix(8) for
 * the layout, the findings and the exit codes. Damaged messages, foreign
 * names and stale tmp/ files are reported, never removed.
 *
 * Runs as root (multi-uid instances) or as the single user. The queue's
 * directories belong to less trusted uids, which could plant symbolic or
 * hard links there to make root change some other file: so every name is
 * opened relative to its directory's descriptor with O_NOFOLLOW, checked
 * with fstat on the open descriptor, and changed only through it
 * (fchown, fchmod); a regular file with more than one link is reported
 * and left alone. control/ids must be root's (or the caller's) and
 * writable by nobody else. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "qfile.h"
#include "str.h"

#define PROG "qmail-qfix"
#define STALE (36 * 3600)

static int dry;
static unsigned long findings, errors;
static uid_t u_q, u_s, u_r;
static gid_t g_q;

static void report(const char *event, const char *path)
{
  log_begin(PROG, event);
  log_kv("path", path);
}

static void error(const char *path, const char *what)
{
  int e = errno;
  report("error", path);
  log_kv("op", what);
  log_kv("error", strerror(e));
  log_end();
  errors++;
}

static void finding(const char *event, const char *path)
{
  report(event, path);
  log_end();
  findings++;
}

static void octal(char out[6], mode_t m)
{
  int i;
  for (i = 3; i >= 0; i--) { out[i] = (char)('0' + (m & 7)); m >>= 3; }
  out[4] = 0;
}

/* Brings fd's owner and mode to u:g and mode, reporting each change. */
static void fix(int fd, const char *path, uid_t u, gid_t g, mode_t mode)
{
  struct stat st;
  char was[6], want[6];

  if (fstat(fd, &st) < 0) { error(path, "fstat"); return; }
  if (st.st_uid != u || st.st_gid != g) {
    report("owner", path);
    log_ku("uid", st.st_uid); log_ku("gid", st.st_gid);
    log_ku("want_uid", u); log_ku("want_gid", g);
    log_kv("fixed", dry ? "no" : "yes");
    log_end();
    findings++;
    if (!dry) {
      /* chown may clear set-id bits, so the mode is read again below. */
      if (fchown(fd, u, g) < 0 || fstat(fd, &st) < 0) { error(path, "fchown"); return; }
    }
  }
  if ((st.st_mode & 07777) != mode) {
    octal(was, st.st_mode & 07777);
    octal(want, mode);
    report("mode", path);
    log_kv("mode", was); log_kv("want", want);
    log_kv("fixed", dry ? "no" : "yes");
    log_end();
    findings++;
    if (!dry && fchmod(fd, mode) < 0) error(path, "fchmod");
  }
}

static int create(int dir, const char *name, mode_t type)
{
  int fd;
  if (type == S_IFDIR) return mkdirat(dir, name, 0700);
  if (type == S_IFIFO) return mkfifoat(dir, name, 0600);
  fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  return close(fd);
}

/* Opens name in dir as type, creating it when missing, and fixes it.
 * Returns the descriptor, or -1 when it is absent, the wrong type, or
 * cannot be opened (each reported). */
static int node(int dir, const char *name, const char *path, mode_t type, uid_t u, gid_t g, mode_t mode)
{
  struct stat st;
  int fd;

  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno != ENOENT) { error(path, "stat"); return -1; }
    if (dry) { finding("missing", path); return -1; }
    if (create(dir, name, type) < 0) { error(path, "create"); return -1; }
    finding("created", path);
  } else if ((st.st_mode & S_IFMT) != type) {
    finding("badtype", path);   /* symlinks, sockets, ...: never opened */
    return -1;
  }
  /* O_NONBLOCK: opening the fifo must not wait for a writer. The type is
   * checked again on the descriptor: the name may have changed since. */
  fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 && errno == ELOOP) { finding("badtype", path); return -1; }
  if (fd < 0) { error(path, "open"); return -1; }
  if (fstat(fd, &st) < 0) { error(path, "fstat"); close(fd); return -1; }
  if ((st.st_mode & S_IFMT) != type) { finding("badtype", path); close(fd); return -1; }
  if (type == S_IFREG && st.st_nlink != 1) {
    report("links", path);
    log_ku("nlink", (unsigned long long)st.st_nlink);
    log_end();
    findings++;
    close(fd);
    return -1;
  }
  fix(fd, path, u, g, mode);
  return fd;
}

static int join(str *p, const char *dir, const char *name)
{
  p->len = 0;
  return str_cats(p, dir) < 0 || str_catc(p, '/') < 0 || str_cats(p, name) < 0 || str_0(p) < 0 ? -1 : 0;
}

/* Calls each(dirfd, name, path) for every entry of the directory dirfd
 * named by a qid, or by qmail-queued's pool if pool is set. */
static void scan(int dirfd, const char *dirpath, int pool, void (*each)(int, const char *, const char *))
{
  str path = STR_INIT;
  struct dirent *d;
  DIR *dir;
  size_t n;
  int fd = dup(dirfd);

  if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0 || !(dir = fdopendir(fd))) {
    if (fd >= 0) close(fd);
    error(dirpath, "opendir");
    return;
  }
  for (;;) {
    errno = 0;
    d = readdir(dir);
    if (!d) { if (errno) error(dirpath, "readdir"); break; }
    if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")) continue;
    if (join(&path, dirpath, d->d_name) < 0) { error(dirpath, "path"); break; }
    n = strlen(d->d_name);
    if (!qf_qid_ok(d->d_name, n) && !(pool && qf_pool_ok(d->d_name, n))) { finding("badname", path.s); continue; }
    each(dirfd, d->d_name, path.s);
  }
  closedir(dir);
  str_free(&path);
}

static void mess_one(int dir, const char *name, const char *path)
{
  qf_env e = QF_ENV_INIT;
  struct stat st;
  const char *why;
  int fd = node(dir, name, path, S_IFREG, u_q, g_q, 0660);

  if (fd < 0) return;
  /* After node()'s repair, unless -n: fstat sees the inode as it is now. */
  if (fstat(fd, &st) == 0 && (why = qf_send_cannot(&st, u_s, g_q))) {
    report("unusable", path);      /* what qmail-qstat counts as unreadable */
    log_kv("why", why);
    log_end();
    findings++;
  }
  if (qf_read(fd, &e) < 0) {
    int err = errno;
    report("invalid", path);
    log_kv("error", err == EINVAL ? "malformed" : strerror(err));
    log_end();
    if (err == EINVAL) findings++; else errors++;
  }
  qf_free(&e);
  close(fd);
}

static void tmp_one(int dir, const char *name, const char *path)
{
  struct stat st;
  time_t now = time(0);

  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno != ENOENT) error(path, "stat");   /* ENOENT: committed meanwhile */
    return;
  }
  if (qf_pool_unused(name, &st)) return;
  if (now - st.st_mtime > STALE) {
    report("stale", path);
    log_ku("age", (unsigned long long)(now - st.st_mtime));
    log_end();
    findings++;
  }
}

static void read_ids(void)
{
  str ids = STR_INIT;
  struct stat st;
  gid_t g_s, g_r;

  if (lstat("control/ids", &st) < 0) log_fatal(PROG, 111, "cannot stat control/ids");
  if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
    errno = 0;
    log_die(PROG, EXIT_TEMP, "control/ids is not a regular file owned by root, writable only by it");
  }
  if (control_lines(&ids, "control/ids") <= 0) log_fatal(PROG, 111, "cannot read control/ids");
  errno = 0;
  if (qf_ids_role(&ids, "queue", &u_q, &g_q) < 0 || qf_ids_role(&ids, "send", &u_s, &g_s) < 0 ||
      qf_ids_role(&ids, "remote", &u_r, &g_r) < 0)
    log_die(PROG, EXIT_TEMP, "control/ids has no valid queue=, send= or remote= line");
  str_free(&ids);
}

/* Everything under queue/, given its descriptor. */
static void queue(int q)
{
  int d, f;

  d = node(q, "tmp", "queue/tmp", S_IFDIR, u_q, g_q, 02770);
  if (d >= 0) { scan(d, "queue/tmp", 1, tmp_one); close(d); }
  d = node(q, "mess", "queue/mess", S_IFDIR, u_q, g_q, 02770);
  if (d >= 0) { scan(d, "queue/mess", 0, mess_one); close(d); }
  d = node(q, "bounce", "queue/bounce", S_IFDIR, u_s, g_q, 0700);
  if (d >= 0) close(d);
  d = node(q, "flushdest", "queue/flushdest", S_IFDIR, u_s, g_q, 0700);
  if (d >= 0) close(d);
  d = node(q, "sched", "queue/sched", S_IFDIR, u_s, g_q, 0700);
  if (d >= 0) close(d);
  d = node(q, "lock", "queue/lock", S_IFDIR, u_q, g_q, 0750);
  if (d < 0) return;
  f = node(d, "trigger", "queue/lock/trigger", S_IFIFO, u_s, g_q, 0622);
  if (f >= 0) close(f);
  f = node(d, "sendmutex", "queue/lock/sendmutex", S_IFREG, u_s, g_q, 0600);
  if (f >= 0) close(f);
  close(d);
}

int main(int argc, char **argv)
{
  int q;

  if (argc == 2 && !strcmp(argv[1], "-n")) dry = 1;
  else if (argc != 1) log_usage(PROG, "usage: qmail-qfix [-n]");
  umask(077);
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  read_ids();

  q = node(AT_FDCWD, "queue", "queue", S_IFDIR, u_q, g_q, 0750);
  if (q >= 0) { queue(q); close(q); }
  /* qmail-rspawn's journal, outside the queue (qmail-remote/rjournal.h). */
  q = node(AT_FDCWD, "rjournal", "rjournal", S_IFDIR, u_r, g_q, 02750);
  if (q >= 0) close(q);

  log_begin(PROG, "done");
  log_ku("findings", findings);
  log_ku("errors", errors);
  log_end();
  return errors ? 111 : findings ? 1 : 0;
}
