/* The pool of durable names in queue/tmp/ (qpool.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>    /* PIPE_BUF */
#include <stdio.h>     /* renameat2 */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic.h"
#include "log.h"
#include "qpool.h"
#include "qwrite.h"
#include "str.h"

#define PROG "qmail-queued"
#define QP_FILL 64         /* names made per fsync of tmp/ */

static unsigned long long seq;          /* the next number to try */
static unsigned long long pool[QP_FILL];
static size_t have;

static void pname(char dst[QP_NAME], unsigned long long n)
{
  memcpy(dst, "tmp/p", 5);
  *fmt_u(dst + 5, n, 0) = 0;
}

/* Makes up to QP_FILL names, then one fsync of tmp/ for all of them. A
 * name taken already (a file qp_recover left) is skipped. mess/ is
 * fsynced first: tmp/'s fsync also writes the removal of the names
 * renamed into mess/ since, and must not reach the disk before their new
 * entries (the sync process's fsync of mess/ may still be on its way). */
static int refill(void)
{
  char path[QP_NAME];
  size_t tries;
  int fd, e;

  for (tries = 0; have < QP_FILL && tries < 2 * QP_FILL; tries++, seq++) {
    pname(path, seq);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0660);
    if (fd < 0 && errno == EEXIST) continue;
    if (fd < 0) break;
    /* The umask took the group bits; qmail-send reads as the group. */
    e = fchmod(fd, 0660);
    close(fd);
    if (e < 0) { unlink(path); break; }
    pool[have++] = seq;
  }
  if (have && qw_sync_mess() == 0 && fsync_dir("tmp") == 0) return 0;
  e = errno;
  while (have) { pname(path, pool[--have]); unlink(path); }
  errno = e;
  return -1;
}

/* The sum of [QF_HDR, EOF) as it was committed: every recipient's state
 * byte counts as QF_PENDING, since qmail-send may have marked some (in
 * place, the sum untouched) before a power cut undid the rename. rcpt is
 * in file order, as qf_read fills it. 0, or -1 with errno. */
static int committed_sum(int fd, unsigned long long size, const qf_env *e,
                         unsigned long long *sum)
{
  static unsigned char b[65536];
  unsigned long long got = 0;
  XXH64_state_t h;
  size_t i = 0;
  ssize_t r;

  XXH64_reset(&h, 0);
  while ((r = pread(fd, b, sizeof b, (off_t)(QF_HDR + got))) > 0) {
    unsigned long long at = QF_HDR + got, end = at + (unsigned long long)r;
    for (; i < e->nrcpt && (unsigned long long)e->rcpt[i].state_off < end; i++)
      b[(unsigned long long)e->rcpt[i].state_off - at] = QF_PENDING;
    XXH64_update(&h, b, (size_t)r);
    got += (unsigned long long)r;
  }
  if (r < 0) return -1;
  if (got != size - QF_HDR) { errno = EINVAL; return -1; }
  *sum = XXH64_digest(&h);
  return 0;
}

/* 1: a finished file, whole and as its sum says, its qid (or "" in an
 * older file without one) in qid; 0: anything else; -1: it could not be
 * read (errno). */
static int intact(int fd, char qid[QF_QID_MAX])
{
  unsigned char hdr[QF_HDR];
  unsigned long long size, msg_len, sum, got;
  qf_env e = QF_ENV_INIT;
  struct stat st;
  ssize_t r;
  int k;

  if (fstat(fd, &st) < 0) return -1;
  if (!S_ISREG(st.st_mode)) return 0;
  size = (unsigned long long)st.st_size;
  r = pread(fd, hdr, QF_HDR, 0);
  if (r < 0) return -1;
  if (r != QF_HDR || qf_header_ok(hdr, size, &msg_len, &sum) < 0) return 0;
  if (qf_read(fd, &e) < 0) k = errno == EINVAL ? 0 : -1;
  else if (committed_sum(fd, size, &e, &got) < 0) k = errno == EINVAL ? 0 : -1;
  else k = got == sum;
  if (k == 1) {
    /* qf_read checked it: under QF_QID_MAX bytes. */
    memcpy(qid, e.qid ? e.qid : "", e.qid_len);
    qid[e.qid_len] = 0;
  }
  qf_free(&e);
  return k;
}

/* A file brought back under its own qid, whose rename was on disk after
 * all (a power cut wrote mess/ but not tmp/): the same inode under both
 * names. 1 if so. */
static int same_file(const char *a, const char *b)
{
  struct stat sa, sb;
  return lstat(a, &sa) == 0 && lstat(b, &sb) == 0 &&
         sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* One pool file at start: 2 an unused name, removed; 1 queued as mess;
 * 3 already in mess/ under its qid, the pool name removed; 0 removed; -1
 * left (errno). A file keeps the qid it was written for, so that a
 * delivery made before the cut (the trigger does not wait for mess/'s
 * fsync) is recognised when it is repeated; an older file without one
 * gets a new qid. */
static int recover(const char *path, char *mess, void (*qid_time)(struct timespec *), pid_t pid)
{
  struct timespec t;
  struct stat st;
  char qid[QF_QID_MAX];
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), k, e;

  if (fd < 0) return -1;
  k = fstat(fd, &st) < 0 ? -1 : qf_pool_unused(path + 4, &st) ? 2 : intact(fd, qid);
  e = errno;
  close(fd);
  errno = e;
  if (k == 2 || k == 0) return unlink(path) < 0 ? -1 : k;
  if (k < 0) return -1;
  if (*qid) {
    memcpy(mess, "mess/", 5);
    memcpy(mess + 5, qid, strlen(qid) + 1);
  } else {
    qid_time(&t);
    qw_name(mess, "mess", &t, pid);
  }
  if (renameat2(AT_FDCWD, path, AT_FDCWD, mess, RENAME_NOREPLACE) == 0) return 1;
  if (errno != EEXIST || !*qid || !same_file(path, mess)) return -1;
  return unlink(path) < 0 ? -1 : 3;
}

/* As after a turn of qmail-queued's loop: qmail-send hears of a message
 * only once its rename is on disk. */
static void notify(const char *lines, size_t n)
{
  if (qw_sync_mess()) log_fatal(PROG, 111, "cannot fsync queue/mess");
  qw_trigger(lines, n);
}

void qp_recover(void (*qid_time)(struct timespec *), pid_t pid)
{
  char path[QP_NAME], mess[5 + QF_QID_MAX], lines[PIPE_BUF];
  size_t n = 0, len;
  struct dirent *d;
  DIR *dir = opendir("tmp");
  int k;

  if (!dir) log_fatal(PROG, 111, "cannot open queue/tmp");
  while ((d = readdir(dir))) {
    if (!qf_pool_ok(d->d_name, strlen(d->d_name))) continue;
    memcpy(path, "tmp/", 4);
    memcpy(path + 4, d->d_name, strlen(d->d_name) + 1);
    k = recover(path, mess, qid_time, pid);
    if (k == 2) continue;
    log_begin(PROG, "recover");
    log_kv("file", path);
    log_kv("result", k == 3 ? "present" : k > 0 ? "queued" : k == 0 ? "removed" : "left");
    if (k > 0) log_kv("qid", mess + 5);
    if (k < 0) log_kv("error", strerror(errno));
    log_end();
    if (k <= 0 || k == 3) continue;
    len = strlen(mess + 5);
    if (len + 1 > sizeof lines - n) { notify(lines, n); n = 0; }
    memcpy(lines + n, mess + 5, len);
    n += len;
    lines[n++] = '\n';
  }
  closedir(dir);
  if (n) notify(lines, n);
  /* The first message need not wait for it; qp_take tries again. */
  (void)refill();
}

int qp_take(char name[QP_NAME])
{
  if (!have && refill() < 0) return -1;
  pname(name, pool[--have]);
  return 0;
}
