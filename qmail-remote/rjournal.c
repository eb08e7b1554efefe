/* qmail-rspawn's journal of finished remote deliveries (rjournal.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "atomic.h"
#include "log.h"
#include "rjournal.h"
#include "spawnproto.h"
#include "str.h"

enum { IN_NONE = 0, IN_CUR, IN_PREV };

static const char *prog;
static int jfd = -1, pfd = -1;       /* this file, the rotated one (or -1) */
static char cur[64], prev[64];
static unsigned long long jbytes;
static size_t prev_left;             /* replies in prev not yet followed by a request */
static unsigned char where[SPAWN_SLOTS]; /* the file holding the slot's last reply */
static int cleaned;                  /* earlier runs' files removed */
static str line;

static void error(const char *op, const char *name)
{
  log_begin(prog, "error");
  log_kv("op", op);
  if (name) log_kv("file", name);
  log_kv("error", strerror(errno));
  log_end();
}

/* Creates, locks and makes durable a new file named into name. */
static int create(char name[64])
{
  static unsigned seq;
  char path[sizeof RJ_DIR + 64];
  int fd;

  snprintf(name, 64, "%ld.%ld.%u", (long)getppid(), (long)getpid(), seq++);
  snprintf(path, sizeof path, RJ_DIR "/%s", name);
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) { error("journal create", name); return -1; }
  if (flock(fd, LOCK_EX) < 0 || fsync_dir(RJ_DIR) < 0) {
    error("journal create", name);
    close(fd);
    unlink(path);
    return -1;
  }
  return fd;
}

void rj_open(const char *p)
{
  prog = p;
  jfd = create(cur);
  if (jfd < 0) {
    log_begin(prog, "journal");
    log_kv("state", "off");
    log_kv("msg", "deliveries finished while qmail-send is down may be repeated");
    log_end();
  }
}

/* Removes a file every reply of which qmail-send has read. */
static void drop(int *fd, char name[64])
{
  char path[sizeof RJ_DIR + 64];
  snprintf(path, sizeof path, RJ_DIR "/%s", name);
  if (unlink(path) < 0) error("journal unlink", name);
  close(*fd);
  *fd = -1;
  name[0] = 0;
}

/* Removes the files of earlier runs that no spawner holds any more: the
 * first request of this run's qmail-send shows it has read them all. */
static void clean(void)
{
  DIR *d = opendir(RJ_DIR);
  struct dirent *e;

  if (!d) { error("journal clean", 0); return; }
  while ((e = readdir(d))) {
    int fd;
    if (e->d_name[0] == '.' || !strcmp(e->d_name, cur) || !strcmp(e->d_name, prev)) continue;
    fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dirfd(d), e->d_name, 0) < 0)
      error("journal unlink", e->d_name);
    close(fd);
  }
  closedir(d);
}

/* Starts a new file; the current one stays until every reply it holds is
 * known to be read. */
static void rotate(void)
{
  size_t s;
  char name[64];
  int fd = create(name);

  if (fd < 0) return;                /* keep appending to the current one */
  prev_left = 0;
  for (s = 0; s < SPAWN_SLOTS; s++)
    if (where[s] == IN_CUR) { where[s] = IN_PREV; prev_left++; }
  pfd = jfd;
  memcpy(prev, cur, sizeof prev);
  jfd = fd;
  memcpy(cur, name, sizeof cur);
  jbytes = 0;
  if (!prev_left) drop(&pfd, prev);
}

void rj_answered(unsigned long slot, const char *qid, const unsigned long long *idx, size_t n,
                 const char *items, size_t len)
{
  const char *p = items, *e = items + len;
  size_t k;

  if (jfd < 0 || slot >= SPAWN_SLOTS) return;
  line.len = 0;
  /* items are checked: exactly n of "<c><text>\0". */
  for (k = 0; k < n && p < e; k++) {
    if (*p == 'K' && (str_cats(&line, "K ") < 0 || str_cats(&line, qid) < 0 || str_catc(&line, ' ') < 0 ||
                      str_catu(&line, idx[k]) < 0 || str_catc(&line, '\n') < 0)) {
      error("journal", cur);
      return;
    }
    p += strlen(p) + 1;
  }
  if (!line.len) return;
  for (p = line.s, e = line.s + line.len; p < e;) {
    ssize_t w = write(jfd, p, (size_t)(e - p));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { error("journal write", cur); return; }
    p += w;
  }
  if (fdatasync(jfd) < 0) { error("journal fsync", cur); return; }
  if (where[slot] == IN_PREV && !--prev_left) drop(&pfd, prev);
  where[slot] = IN_CUR;
  jbytes += line.len;
  if (jbytes >= RJ_ROTATE && pfd < 0) rotate();
}

void rj_asked(unsigned long slot)
{
  if (jfd < 0 || slot >= SPAWN_SLOTS) return;
  if (!cleaned) { cleaned = 1; clean(); }
  if (where[slot] == IN_PREV && !--prev_left) drop(&pfd, prev);
  where[slot] = IN_NONE;
}
