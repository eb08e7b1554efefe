/* Maildir delivery: write an unnamed file in tmp/ (O_TMPFILE), fsync,
 * link it to new/<name>, fsync new/. Where the filesystem cannot make
 * unnamed files, tmp/<unique> stands in and is linked, then removed. With
 * a qid the final name is fixed by (qid, rcptno), so a delivery repeated
 * after a crash finds its own earlier file and stops. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "local.h"
#include "qfile.h"

static int cat_host(str *out, const char *host)
{
  for (; *host; host++) {
    int r;
    if (*host == '/') r = str_cats(out, "\\057");
    else if (*host == ':') r = str_cats(out, "\\072");
    else r = str_catc(out, *host);
    if (r < 0) return -1;
  }
  return 0;
}

int maildir_name(str *out, const char *qid, unsigned long rcptno,
                 unsigned long long sec, unsigned long usec, unsigned long pid,
                 const char *host)
{
  out->len = 0;
  if (str_catu(out, sec) < 0 || str_catc(out, '.') < 0) return -1;
  if (qid) {
    if (str_catc(out, 'Q') < 0) return -1;
    for (; *qid; qid++)
      if (str_catc(out, *qid == '.' ? '_' : *qid) < 0) return -1;
    if (str_catc(out, 'R') < 0 || str_catu(out, rcptno) < 0) return -1;
  } else {
    if (str_catc(out, 'M') < 0 || str_catu(out, usec) < 0 ||
        str_catc(out, 'P') < 0 || str_catu(out, pid) < 0) return -1;
  }
  if (str_catc(out, '.') < 0 || cat_host(out, host) < 0 || str_0(out) < 0) return -1;
  return 0;
}

static int exists(int dfd, const char *path)
{
  struct stat st;
  return fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* 1 if a reader already moved the message to cur/ unread or read only
 * (":2," or ":2,S"). A repeat can only happen in the instant of a crash,
 * so two stats stand in for a scan of cur/, which would cost the size of
 * the mailbox on every delivery. */
static int in_cur(int dfd, const char *name, size_t n)
{
  static const char *const flags[] = { ":2,", ":2,S" };
  str p = STR_INIT;
  size_t i;
  int found = 0;

  for (i = 0; i < sizeof flags / sizeof *flags && !found; i++) {
    p.len = 0;
    if (str_cats(&p, "cur/") < 0 || str_catb(&p, name, n) < 0 ||
        str_cats(&p, flags[i]) < 0 || str_0(&p) < 0) break;
    found = exists(dfd, p.s);
  }
  str_free(&p);
  return found;
}


static void hostname(char *h, size_t n)
{
  if (gethostname(h, n - 1) < 0 || !*h) strcpy(h, "localhost");
  h[n - 1] = 0;
}

/* The file in tmp/ without a name: no entry in tmp/ is made or removed,
 * so deliveries to one Maildir at once do not wait on tmp/'s lock (each
 * took it twice), and a crash leaves no debris. It gets its name in new/
 * through /proc (linkat by descriptor needs a capability). -1 with
 * EOPNOTSUPP, EISDIR or EINVAL where that cannot be: no /proc, or a
 * filesystem without unnamed files; the caller then names it. */
static int open_unnamed(int dfd)
{
  static int proc = -1;
  if (proc < 0) proc = access("/proc/self/fd", X_OK) == 0;
  if (!proc) { errno = EOPNOTSUPP; return -1; }
  return openat(dfd, "tmp", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
}

static int link_unnamed(int fd, int dfd, const char *n)
{
  char p[32];
  snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
  return linkat(AT_FDCWD, p, dfd, n, AT_SYMLINK_FOLLOW);
}

/* Moves tmp/<t> to new/<n> without ever replacing a file: link, or where
 * the filesystem has no hard links, rename that refuses to overwrite. */
static int publish(int dfd, const char *t, const char *n)
{
  if (linkat(dfd, t, dfd, n, 0) == 0) { unlinkat(dfd, t, 0); return 0; }
  if (errno != EPERM && errno != EOPNOTSUPP && errno != EMLINK) return -1;
  return renameat2(dfd, t, dfd, n, RENAME_NOREPLACE);
}

/* A name unique in time and pid: tmp/<t> for a named file, new/<t> when
 * there is no qid. 0, or -1 with errno. */
static int unique_name(str *t, const char *host)
{
  struct timeval tv;
  gettimeofday(&tv, 0);
  return maildir_name(t, 0, 0, (unsigned long long)tv.tv_sec, (unsigned long)tv.tv_usec,
                      (unsigned long)getpid(), host);
}

/* tmp/<unique>, into name. The name is unique in time and pid; a
 * collision (pid reuse within a microsecond, or an old crash) is retried
 * a few times. The fd, or -1 with errno. */
static int open_named(int dfd, const char *host, str *tname, str *name)
{
  int fd, tries;
  for (tries = 0;; tries++) {
    if (unique_name(tname, host) < 0 || str_copys(name, "tmp/") < 0 ||
        str_cats(name, tname->s) < 0 || str_0(name) < 0) return -1;
    fd = openat(dfd, name->s, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0 || errno != EEXIST || tries >= 3) return fd;
    usleep(100000);
  }
}

int maildir_deliver(const struct local_msg *m, const char *dir, const struct lines *l,
                    const char *qid, unsigned long rcptno, str *report)
{
  str tname = STR_INIT, nname = STR_INIT, name = STR_INIT;
  char host[256], out[8192];
  buf b;
  int dfd, fd = -1, code = 111, named = 0, lastnl, e;

  hostname(host, sizeof host);
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail(report, 111, "cannot open the Maildir", errno);

  if (qid) {
    if (maildir_name(&name, qid, rcptno, qf_qid_birth(qid), 0, 0, host) < 0 ||
        str_copys(&nname, "new/") < 0 || str_cats(&nname, name.s) < 0 || str_0(&nname) < 0) {
      fail(report, 111, "Maildir", errno);
      goto out;
    }
    if (exists(dfd, nname.s) || in_cur(dfd, name.s, name.len)) {
      /* Best effort: the exit code 0 is the result. */
      (void)!str_cats(report, "duplicate suppressed");
      code = 0;
      goto out;
    }
  }

  fd = open_unnamed(dfd);
  named = fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL);
  if (named) fd = open_named(dfd, host, &tname, &name);
  else if (fd >= 0 && !qid && unique_name(&tname, host) < 0) {
    fail(report, 111, "Maildir", errno);
    goto out;
  }
  if (fd < 0) {
    fail(report, 111, "cannot create a file in Maildir/tmp", errno);
    goto out;
  }
  if (!qid &&
      (str_copys(&nname, "new/") < 0 || str_cats(&nname, tname.s) < 0 || str_0(&nname) < 0)) {
    fail(report, 111, "Maildir", errno);
    goto unlink;
  }

  buf_init(&b, fd, out, sizeof out);
  if (buf_put(&b, l->rp.s, l->rp.len) < 0 || buf_put(&b, l->dt.s, l->dt.len) < 0 ||
      msg_copy(m, &b, 0, &lastnl) < 0 || buf_flush(&b) < 0 || fsync(fd) < 0) {
    fail(report, 111, "cannot write to Maildir/tmp", errno);
    goto unlink;
  }
  /* An unnamed file stays open until it is linked; its fsync has
   * reported any write error. */
  if (named) {
    e = close(fd);
    fd = -1;
    if (e < 0) { fail(report, 111, "cannot write to Maildir/tmp", errno); goto unlink; }
  }

  if ((named ? publish(dfd, name.s, nname.s) : link_unnamed(fd, dfd, nname.s)) < 0) {
    if (errno == EEXIST && qid) {
      /* Best effort: the exit code 0 is the result. */
      (void)!str_cats(report, "duplicate suppressed");
      code = 0;
    } else {
      fail(report, 111, "cannot link into Maildir/new", errno);
    }
    goto unlink;
  }
  if (fd >= 0) close(fd);
  fd = openat(dfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) < 0) {
    /* The file is in new/ but may not survive a crash: say so, and let the
     * retry find it (with a qid) rather than claim success. */
    fail(report, 111, "cannot fsync Maildir/new", errno);
    goto out;
  }
  code = 0;
  goto out;

unlink:
  if (named) unlinkat(dfd, name.s, 0);
out:
  if (fd >= 0) close(fd);
  close(dfd);
  str_free(&tname);
  str_free(&nname);
  str_free(&name);
  return code;
}
