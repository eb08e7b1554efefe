#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "control.h"
#include "qfile.h"
#include "qtool.h"
#include "send.h"

/* qsort_r comparison: a and b are offsets into the names at base. */
static int by_birth(const void *x, const void *y, void *base)
{
  const char *a = (const char *)base + *(const size_t *)x;
  const char *b = (const char *)base + *(const size_t *)y;
  unsigned long long ba = qf_qid_birth(a), bb = qf_qid_birth(b);

  if (ba != bb) return ba < bb ? -1 : 1;
  return strcmp(a, b);
}

int qtool_list(const char *dir, str *names, size_t **at, size_t *n, size_t *other)
{
  DIR *d = opendir(dir);
  struct dirent *de;
  size_t count = 0, i, off, bytes;

  names->len = 0;
  *at = 0;
  *n = 0;
  *other = 0;
  if (!d) return -1;
  for (;;) {
    errno = 0;
    de = readdir(d);
    if (!de) break;
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (!qf_qid_ok(de->d_name, strlen(de->d_name))) { ++*other; continue; }
    if (str_cats(names, de->d_name) < 0 || str_catc(names, 0) < 0) break;
    count++;
  }
  if (errno) { int e = errno; closedir(d); errno = e; return -1; }
  closedir(d);
  if (!count) return 0;
  if (size_mul(&bytes, count, sizeof **at) < 0) return -1;
  *at = malloc(bytes);
  if (!*at) { errno = ENOMEM; return -1; }
  for (i = off = 0; i < count; i++) {
    (*at)[i] = off;
    off += strlen(names->s + off) + 1;
  }
  qsort_r(*at, count, sizeof **at, by_birth, names->s);
  *n = count;
  return 0;
}

int qtool_each(qtool_fn *fn, void *ctx, size_t *other)
{
  str names = STR_INIT, path = STR_INIT;
  qf_env e = QF_ENV_INIT;
  size_t *at = 0, n = 0, i;
  int r = qtool_list("queue/mess", &names, &at, &n, other);

  for (i = 0; r == 0 && i < n; i++) {
    const char *qid = names.s + at[i];
    int fd, ok;
    if (str_copys(&path, "queue/mess/") < 0 || str_cats(&path, qid) < 0 || str_0(&path) < 0) {
      r = -1;
      break;
    }
    /* O_NONBLOCK: nothing in mess/ may make a reader hang (a fifo is
     * refused by qf_read's regular-file check). */
    fd = open(path.s, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT) continue;
    ok = fd >= 0 && qf_read(fd, &e) == 0;
    if (fd >= 0 && !ok && errno == ENOENT) { close(fd); continue; }
    r = fn(ctx, qid, fd, ok ? &e : 0);
    if (fd >= 0) close(fd);
  }
  qf_free(&e);
  str_free(&names);
  str_free(&path);
  free(at);
  return r;
}

int qtool_put_safe(buf *b, const char *a, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  size_t i;

  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)a[i];
    char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
    if (c == '\\') { if (buf_put(b, "\\\\", 2) < 0) return -1; }
    else if (c < 32 || c > 126) { if (buf_put(b, esc, 4) < 0) return -1; }
    else if (buf_put(b, a + i, 1) < 0) return -1;
  }
  return 0;
}

struct counting {
  struct qtool_stat *s;
  struct rw rw;
  str scratch;
  uid_t send_uid;
  gid_t queue_gid;
};

static int count(void *ctx, const char *qid, int fd, const qf_env *e)
{
  struct counting *c = ctx;
  struct qtool_stat *s = c->s;
  struct stat st;
  size_t i;

  if (!e) { s->damaged++; return 0; }
  /* Root reads any file; what counts is whether qmail-send can. */
  if (fstat(fd, &st) < 0 || qf_send_cannot(&st, c->send_uid, c->queue_gid)) { s->damaged++; return 0; }
  /* qtool_each goes in birth order: the first usable one is the oldest. */
  if (!s->msgs++) s->oldest = qf_qid_birth(qid);
  for (i = 0; i < e->nrcpt; i++) {
    const struct qf_rcpt *r = e->rcpt + i;
    int ch;
    switch (r->state) {
    case QF_PENDING:
      ch = rw_classify(&c->rw, r->addr, r->len, &c->scratch);
      if (ch < 0) return -1;
      if (ch == CH_LOCAL) s->local++; else s->remote++;
      break;
    case QF_FAILED: s->failed++; break;
    default: s->done++; break;
    }
  }
  return 0;
}

/* Files in queue/tmp/ other than qmail-queued's unused pool names
 * (empty); 0 or -1. */
static int writing(unsigned long long *n)
{
  DIR *d = opendir("queue/tmp");
  struct dirent *de;
  struct stat st;
  int e;

  *n = 0;
  if (!d) return -1;
  for (;;) {
    errno = 0;
    de = readdir(d);
    if (!de) break;
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && qf_pool_unused(de->d_name, &st))
      continue;
    ++*n;
  }
  e = errno;
  closedir(d);
  errno = e;
  return e ? -1 : 0;
}

int qtool_stat(struct qtool_stat *s, const char **why)
{
  struct counting c = { s, RW_INIT, STR_INIT, 0, 0 };
  str ids = STR_INIT;
  size_t other = 0;
  int r = -1;

  memset(s, 0, sizeof *s);
  if (rw_load(&c.rw) < 0) { *why = "cannot read control/me, locals or virtualdomains"; return -1; }
  if (control_lines(&ids, "control/ids") <= 0 || qf_ids_role(&ids, "send", &c.send_uid, &c.queue_gid) < 0)
    *why = "cannot read qmail-send's ids in control/ids";
  else if (qtool_each(count, &c, &other) < 0) *why = "cannot read queue/mess";
  else if (writing(&s->tmp) < 0) *why = "cannot read queue/tmp";
  else r = 0;
  s->damaged += other;
  str_free(&ids);
  str_free(&c.scratch);
  rw_free(&c.rw);
  return r;
}
