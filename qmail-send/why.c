/* The last deferral reason of each pending recipient: queue/sched/why.<qid>
 * (send.h, qmail-queuefile(5)). Only for people (qmail-qread): qmail-send
 * never reads it to decide anything, so it is replaced without fsync and a
 * file lost or cut by a crash costs only the text. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "send.h"

int why_add(str *s, size_t k, unsigned long long t, const char *text, size_t tn)
{
  size_t i, at;
  if (tn > WHY_TEXT) tn = WHY_TEXT;
  if (str_catu(s, k) < 0 || str_catc(s, ' ') < 0 || str_catu(s, t) < 0 || str_catc(s, ' ') < 0)
    return -1;
  at = s->len;
  if (str_catb(s, text, tn) < 0 || str_catc(s, '\n') < 0) return -1;
  /* One line per record: a control byte (a newline above all) in a
   * reply cannot forge another record. */
  for (i = at; i < at + tn; i++)
    if ((unsigned char)s->s[i] < 32 || s->s[i] == 127) s->s[i] = ' ';
  return 0;
}

/* Parses a decimal number ending at a space, at most 19 digits (so it
 * cannot overflow); 0 or -1. */
static int num(const char *b, size_t n, size_t *p, unsigned long long *v)
{
  size_t s = *p;
  *v = 0;
  while (*p < n && b[*p] >= '0' && b[*p] <= '9' && *p - s < 19) *v = *v * 10 + (unsigned)(b[(*p)++] - '0');
  if (*p == s || *p >= n || b[*p] != ' ' || *p - s >= 19) return -1;
  (*p)++;
  return 0;
}

int why_next(const char *b, size_t n, size_t *pos, struct why_rec *r)
{
  while (*pos < n) {
    const char *nl = memchr(b + *pos, '\n', n - *pos);
    size_t p = *pos, end;
    unsigned long long k;
    if (!nl) { *pos = n; return 0; }       /* a cut last line */
    end = (size_t)(nl - b);
    *pos = end + 1;
    if (num(b, end, &p, &k) < 0 || k > SIZE_MAX || num(b, end, &p, &r->t) < 0) continue;
    if (end - p > WHY_TEXT) continue;
    r->k = (size_t)k;
    r->text = b + p;
    r->tn = end - p;
    return 1;
  }
  return 0;
}

/* s = "queue/sched/why.<qid>", NUL-terminated; 0 or -1. */
static int why_name(str *s, const char *qid)
{
  return str_copys(s, "queue/sched/" WHY_PREFIX) < 0 || str_cats(s, qid) < 0 || str_0(s) < 0 ? -1 : 0;
}

int why_read(const char *qid, str *out)
{
  str name = STR_INIT;
  int r = -1, e;

  out->len = 0;
  if (why_name(&name, qid) == 0) {
    r = file_read(name.s, out, WHY_MAX);
    if (r < 0 && errno == EFBIG) r = 0;    /* the records read so far */
    if (r < 0) out->len = 0;
  }
  e = errno;
  str_free(&name);
  errno = e;
  return r;
}

int why_save(const char *qid, const char *p, size_t n)
{
  char tmp[sizeof "queue/sched/." WHY_PREFIX + QF_QID_MAX];
  str dst = STR_INIT;
  int fd, e;
  size_t off = 0;

  if ((size_t)snprintf(tmp, sizeof tmp, "queue/sched/.%s%s", WHY_PREFIX, qid) >= sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  if (why_name(&dst, qid) < 0) return -1;
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) goto fail;
  while (off < n) {
    ssize_t w = write(fd, p + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { close(fd); goto fail_unlink; }
    off += (size_t)w;
  }
  if (close(fd) < 0 || rename(tmp, dst.s) < 0) goto fail_unlink;
  str_free(&dst);
  return 0;
fail_unlink:
  e = errno;
  unlink(tmp);
  errno = e;
fail:
  e = errno;
  str_free(&dst);
  errno = e;
  return -1;
}
