/* Replaying qmail-rspawn's journal at start (send.h; the journal's format
 * and life in qmail-remote/rjournal.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "send.h"

#define PROG "qmail-send"
#define RJ_DIR "rjournal"

/* Waits up to wait seconds for the exclusive lock of a spawner still
 * finishing its deliveries; 1 once the file is free, 0 if still held. */
static int unlocked(int fd, const char *name, unsigned wait)
{
  unsigned k;
  for (k = 0; k < wait * 10; k++) {
    struct timespec ts = { 0, 100000000 };
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) return 1;
    if (errno != EWOULDBLOCK && errno != EINTR) return 1;   /* no lock to wait for */
    if (!k) {
      log_begin(PROG, "journal"); log_kv("file", name);
      log_kv("msg", "waiting for the previous qmail-rspawn to finish its deliveries"); log_end();
    }
    nanosleep(&ts, 0);
  }
  return flock(fd, LOCK_SH | LOCK_NB) == 0;
}

static const struct rw *rwt;
static str scratch;

/* Marks recipient i of qid done if it is still pending and remote (the
 * journal's writer is trusted with remote deliveries only); 1 marked, 0
 * not. */
static int mark(const char *qid, unsigned long long i)
{
  char path[sizeof "queue/mess/" + QF_QID_MAX];
  qf_env e = QF_ENV_INIT;
  int fd, r = 0;

  snprintf(path, sizeof path, "queue/mess/%s", qid);
  if ((fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0) return 0;   /* finished since */
  if (qf_read(fd, &e) == 0 && i < e.nrcpt && e.rcpt[i].state == QF_PENDING &&
      rw_classify(rwt, e.rcpt[i].addr, e.rcpt[i].len, &scratch) == CH_REMOTE) {
    if (qf_mark(fd, &e, (size_t)i, QF_DONE) == 0 && fsync(fd) == 0) r = 1;
    else {
      log_begin(PROG, "error"); log_kv("qid", qid); log_kv("op", "journal mark");
      log_kv("error", strerror(errno)); log_end();
    }
  }
  if (r) {
    log_begin(PROG, "delivery"); log_kv("qid", qid); log_ku("i", i);
    log_kb("rcpt", e.rcpt[i].addr, e.rcpt[i].len); log_kv("channel", "remote");
    log_kv("result", "delivered"); log_kv("text", "from qmail-rspawn's journal: delivered before qmail-send stopped");
    log_end();
  }
  qf_free(&e);
  close(fd);
  return r;
}

/* Applies one file's "K <qid> <i>" lines; torn or foreign lines are skipped. */
static size_t apply(const char *name)
{
  char path[sizeof RJ_DIR + 256];
  str s = STR_INIT;
  size_t n = 0;
  char *p, *e;

  snprintf(path, sizeof path, RJ_DIR "/%s", name);
  if (control_lines(&s, path) < 0) {
    log_begin(PROG, "error"); log_kv("op", "journal read"); log_kv("file", name);
    log_kv("error", strerror(errno)); log_end();
  }
  for (p = s.s, e = s.len ? s.s + s.len : s.s; p < e; p += strlen(p) + 1) {
    char *q, *sp;
    unsigned long long i;
    if (p[0] != 'K' || p[1] != ' ') continue;
    q = p + 2;
    if (!(sp = strchr(q, ' ')) || !qf_qid_ok(q, (size_t)(sp - q)) || scan_ulong(sp + 1, strlen(sp + 1), &i) < 0)
      continue;
    *sp = 0;
    n += (size_t)mark(q, i);
  }
  str_free(&s);
  return n;
}

void journal_replay(const struct rw *r, unsigned wait)
{
  char mine[32];
  DIR *d = opendir(RJ_DIR);
  struct dirent *x;
  size_t mlen;

  if (!d) {
    if (errno != ENOENT) { log_begin(PROG, "error"); log_kv("op", "journal"); log_kv("error", strerror(errno)); log_end(); }
    return;
  }
  rwt = r;
  mlen = (size_t)snprintf(mine, sizeof mine, "%ld.", (long)getpid());
  while ((x = readdir(d))) {
    int fd;
    size_t n;
    if (x->d_name[0] == '.' || !strncmp(x->d_name, mine, mlen)) continue;
    fd = openat(dirfd(d), x->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    if (!unlocked(fd, x->d_name, wait)) {
      log_begin(PROG, "journal"); log_kv("file", x->d_name);
      log_kv("msg", "still held by a qmail-rspawn: its later results may be repeated"); log_end();
    }
    n = apply(x->d_name);
    close(fd);
    if (n) { log_begin(PROG, "journal"); log_kv("file", x->d_name); log_ku("delivered", n); log_end(); }
  }
  closedir(d);
  str_free(&scratch);
}
