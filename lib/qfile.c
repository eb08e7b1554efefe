#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "dsnparam.h"
#include "qfile.h"

/* The largest envelope a valid file can hold: one sender, a few options,
 * QF_RCPT_MAX recipients, the end record. Anything bigger is rejected
 * before a byte of it is allocated. */
#define QF_REC 5u                 /* type byte + u32 length */
#define QF_OPT_MAX 16u
#define QF_OPT_LEN 64u
#define QF_ENV_MAX ((unsigned long long)QF_REC + QF_ADDR_MAX + \
                    QF_OPT_MAX * (QF_REC + QF_OPT_LEN) + QF_REC + DSN_ENVID_MAX + \
                    (unsigned long long)QF_RCPT_MAX * (QF_REC + 1 + QF_ADDR_MAX + \
                                                       QF_REC + 1 + QF_REC + DSN_ORCPT_MAX) + QF_REC)

static const char magic[4] = { 'Q', 'M', 'Q', '1' };
static const char done[4] = { 'D', 'O', 'N', 'E' };

static void put_be64(unsigned char *p, unsigned long long u)
{
  int i;
  for (i = 7; i >= 0; i--) { p[i] = (unsigned char)(u & 255); u >>= 8; }
}

static unsigned long long get_be64(const unsigned char *p)
{
  unsigned long long u = 0;
  int i;
  for (i = 0; i < 8; i++) u = (u << 8) | p[i];
  return u;
}

static size_t get_be32(const unsigned char *p)
{
  return ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
}

void qf_header(unsigned char hdr[QF_HDR], unsigned long long msg_len, unsigned long long sum)
{
  memcpy(hdr, magic, 4);
  put_be64(hdr + 4, msg_len);
  put_be64(hdr + 12, msg_len + QF_HDR);
  put_be64(hdr + 20, sum);
  memcpy(hdr + 28, done, 4);
}

int qf_header_ok(const unsigned char hdr[QF_HDR], unsigned long long size,
                 unsigned long long *msg_len, unsigned long long *sum)
{
  unsigned long long m = get_be64(hdr + 4);

  /* env_off = QF_HDR + msg_len with no wrap, and inside the file. */
  if (size < QF_HDR || memcmp(hdr, magic, 4) || memcmp(hdr + 28, done, 4) ||
      m > size - QF_HDR || get_be64(hdr + 12) != m + QF_HDR) {
    errno = EINVAL;
    return -1;
  }
  *msg_len = m;
  *sum = get_be64(hdr + 20);
  return 0;
}

int qf_record(str *s, char type, const void *data, size_t n)
{
  unsigned char h[QF_REC];
  size_t need;

  if (n > 0xffffffffu) { errno = EINVAL; return -1; }
  if (size_add(&need, n, QF_REC) < 0 || str_readyplus(s, need) < 0) return -1;
  h[0] = (unsigned char)type;
  h[1] = (unsigned char)(n >> 24);
  h[2] = (unsigned char)(n >> 16);
  h[3] = (unsigned char)(n >> 8);
  h[4] = (unsigned char)n;
  /* Cannot fail: the room is reserved above. */
  (void)!str_catb(s, h, QF_REC);
  (void)!str_catb(s, data, n);
  return 0;
}


static int addr_ok(const char *a, size_t n)
{
  return n <= QF_ADDR_MAX && !memchr(a, 0, n) && !memchr(a, '\r', n) && !memchr(a, '\n', n);
}

/* One pass over the envelope bytes. With rcpt == NULL it only validates and
 * counts; with rcpt it also fills e (rcpt has room for the counted number).
 * Order: F, O*, R+, E, and E's last byte is the last byte of the file. */
static int parse(qf_env *e, struct qf_rcpt *rcpt, size_t *count)
{
  const unsigned char *p = (const unsigned char *)e->env.s;
  size_t len = e->env.len, i = 0, nr = 0, nopt = 0;
  int stage = 0;   /* 0 want F, 1 after F (O, V or R), 2 in R (R, N, Q or E) */
  unsigned seen = 0, bits;   /* option, V; then N, Q of the current R */

  for (;;) {
    unsigned char type;
    size_t n;
    const char *d;

    if (len - i < QF_REC) return -1;
    type = p[i];
    n = get_be32(p + i + 1);
    i += QF_REC;
    if (n > len - i) return -1;
    d = (const char *)p + i;
    i += n;
    switch (type) {
    case 'F':
      if (stage != 0 || !addr_ok(d, n)) return -1;
      e->sender = d;
      e->sender_len = n;
      stage = 1;
      break;
    case 'O':
      if (stage != 1 || ++nopt > QF_OPT_MAX) return -1;
      if (n == 8 && !memcmp(d, "SMTPUTF8", 8) && !(seen & QF_OPT_UTF8)) seen |= QF_OPT_UTF8;
      else if (n == 8 && !memcmp(d, "RET=FULL", 8) && !(seen & 6)) seen |= QF_OPT_RET_FULL;
      else if (n == 8 && !memcmp(d, "RET=HDRS", 8) && !(seen & 6)) seen |= QF_OPT_RET_HDRS;
      else return -1;   /* we are the only writer: an unknown option is damage */
      e->opts = seen & 7;
      break;
    case 'V':
      if (stage != 1 || (seen & 8) || dsnp_check(DSNP_ENVID, d, n, &bits)) return -1;
      seen |= 8;
      e->envid = d;
      e->envid_len = n;
      break;
    case 'N':
      if (stage != 2 || (seen & 1) || n != 1 || !d[0] || (d[0] & ~15) ||
          ((d[0] & DSN_NOTIFY_NEVER) && d[0] != DSN_NOTIFY_NEVER))
        return -1;
      seen |= 1;
      if (rcpt) rcpt[nr - 1].notify = (unsigned char)d[0];
      break;
    case 'Q':
      if (stage != 2 || (seen & 2) || dsnp_check(DSNP_ORCPT, d, n, &bits)) return -1;
      seen |= 2;
      if (rcpt) { rcpt[nr - 1].orcpt = d; rcpt[nr - 1].orcpt_len = n; }
      break;
    case 'R':
      if (stage == 0 || n < 2 || !addr_ok(d + 1, n - 1)) return -1;
      seen = 0;
      if (d[0] != QF_PENDING && d[0] != QF_DONE && d[0] != QF_FAILED) return -1;
      if (nr == QF_RCPT_MAX) return -1;
      if (rcpt) {
        rcpt[nr].state_off = (off_t)(e->env_off + (unsigned long long)(i - n));
        rcpt[nr].state = d[0];
        rcpt[nr].addr = d + 1;
        rcpt[nr].len = n - 1;
      }
      nr++;
      stage = 2;
      break;
    case 'E':
      if (stage != 2 || i != len || (n && !qf_qid_ok(d, n))) return -1;
      e->qid = n ? d : 0;
      e->qid_len = n;
      *count = nr;
      return 0;
    default:
      return -1;
    }
  }
}

int qf_read(int fd, qf_env *e)
{
  unsigned char h[QF_HDR];
  struct stat st;
  unsigned long long size, envlen, sum;
  size_t n;

  free(e->rcpt);
  e->rcpt = 0;
  e->nrcpt = 0;
  e->opts = 0;
  e->sender = 0;
  e->sender_len = 0;
  e->envid = 0;
  e->envid_len = 0;
  e->qid = 0;
  e->qid_len = 0;
  e->msg_len = e->env_off = 0;
  e->env.len = 0;

  if (fstat(fd, &st) < 0) return -1;
  if (!S_ISREG(st.st_mode) || st.st_size < QF_HDR) { errno = EINVAL; return -1; }
  size = (unsigned long long)st.st_size;
  if (pread_all(fd, h, QF_HDR, 0) < 0) return -1;
  if (qf_header_ok(h, size, &e->msg_len, &sum) < 0) return -1;
  e->env_off = e->msg_len + QF_HDR;
  envlen = size - e->env_off;
  if (envlen > QF_ENV_MAX) { errno = EINVAL; return -1; }
  if (str_ready(&e->env, (size_t)envlen) < 0) return -1;
  if (pread_all(fd, e->env.s, (size_t)envlen, (off_t)e->env_off) < 0) return -1;
  e->env.len = (size_t)envlen;

  if (parse(e, 0, &n) < 0) { errno = EINVAL; return -1; }
  e->rcpt = calloc(n, sizeof *e->rcpt);   /* n >= 1; calloc checks n * size */
  if (!e->rcpt) { errno = ENOMEM; return -1; }
  e->opts = 0;
  parse(e, e->rcpt, &n);
  e->nrcpt = n;
  return 0;
}

int qf_mark(int fd, qf_env *e, size_t i, char state)
{
  ssize_t w;

  if (i >= e->nrcpt || (state != QF_PENDING && state != QF_DONE && state != QF_FAILED)) {
    errno = EINVAL;
    return -1;
  }
  do w = pwrite(fd, &state, 1, e->rcpt[i].state_off); while (w < 0 && errno == EINTR);
  if (w < 0) return -1;
  if (w != 1) { errno = EIO; return -1; }
  e->rcpt[i].state = state;
  return 0;
}

void qf_free(qf_env *e)
{
  free(e->rcpt);
  e->rcpt = 0;
  e->nrcpt = 0;
  str_free(&e->env);
}

/* One field of digits; its length, or 0 when empty or over 20 digits. */
static size_t digits(const char *s, size_t n)
{
  size_t i = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  return i > 20 ? 0 : i;
}

int qf_pool_ok(const char *s, size_t n)
{
  return n >= 2 && n <= 1 + QF_POOL_DIGITS && s[0] == 'p' && digits(s + 1, n - 1) == n - 1;
}

int qf_pool_unused(const char *name, const struct stat *st)
{
  return S_ISREG(st->st_mode) && st->st_size == 0 && qf_pool_ok(name, strlen(name));
}

int qf_qid_ok(const char *s, size_t n)
{
  unsigned long long u;
  size_t a, b, c;

  if (n == 0 || n > QF_QID_MAX - 1) return 0;
  a = digits(s, n);
  if (!a || a == n || s[a] != '.') return 0;
  b = digits(s + a + 1, n - a - 1);
  if (!b || a + 1 + b == n || s[a + 1 + b] != '.') return 0;
  c = digits(s + a + b + 2, n - a - b - 2);
  if (!c || a + b + 2 + c != n) return 0;
  /* The birth must be representable, so qf_qid_birth cannot overflow. */
  return scan_ulong(s, a, &u) == 0;
}

char *qf_qid_fmt(char *dst, unsigned long long sec, uint32_t usec, uint32_t pid)
{
  /* A caller's usec past 10^6 - 1 would spell seven digits, a qid that
   * qf_qid_split refuses: it is held at the last microsecond. */
  if (usec > 999999) usec = 999999;
  dst = fmt_u(dst, sec, 0);
  *dst++ = '.';
  dst = fmt_u(dst, usec, 6);
  *dst++ = '.';
  return fmt_u(dst, pid, 0);
}

int qf_qid_split(const char *s, size_t n, uint32_t v[3])
{
  unsigned long long u[3];
  char again[QF_QID_MAX];
  size_t i, k = 0, start = 0;

  if (!qf_qid_ok(s, n)) return 0;
  for (i = 0; i <= n; i++) {
    if (i < n && s[i] != '.') continue;
    if (scan_ulong(s + start, i - start, &u[k]) < 0 || u[k] > UINT32_MAX) return 0;
    k++;
    start = i + 1;
  }
  if (u[1] > 999999) return 0;
  /* Only a qid spelt as qf_qid_fmt spells it: no leading zeros, six digits. */
  if ((size_t)(qf_qid_fmt(again, u[0], (uint32_t)u[1], (uint32_t)u[2]) - again) != n ||
      memcmp(again, s, n)) return 0;
  for (k = 0; k < 3; k++) v[k] = (uint32_t)u[k];
  return 1;
}

unsigned long long qf_qid_birth(const char *qid)
{
  unsigned long long u = 0;
  size_t n = 0;

  while (qid[n] >= '0' && qid[n] <= '9') n++;
  if (scan_ulong(qid, n, &u) < 0) return 0;
  return u;
}

const char *qf_send_cannot(const struct stat *st, uid_t send_uid, gid_t queue_gid)
{
  mode_t rw;

  if (!S_ISREG(st->st_mode)) return "type";
  if (st->st_nlink != 1) return "links";
  /* The first class that matches decides, as in the kernel's check. */
  if (st->st_uid == send_uid) rw = S_IRUSR | S_IWUSR;
  else if (st->st_gid == queue_gid) rw = S_IRGRP | S_IWGRP;
  else rw = S_IROTH | S_IWOTH;
  return (st->st_mode & rw) == rw ? 0 : "access";
}

int qf_ids_role(const str *ids, const char *role, uid_t *u, gid_t *g)
{
  size_t i = 0, n = strlen(role);
  unsigned long long a, b;

  while (i < ids->len) {
    const char *l = ids->s + i;
    size_t len = strlen(l);
    const char *colon = memchr(l, ':', len);
    if (len > n && !memcmp(l, role, n) && l[n] == '=' && colon &&
        scan_ulong(l + n + 1, (size_t)(colon - l) - n - 1, &a) == 0 &&
        scan_ulong(colon + 1, len - (size_t)(colon - l) - 1, &b) == 0 &&
        a < (uid_t)-1 && b < (gid_t)-1) {
      *u = (uid_t)a;
      *g = (gid_t)b;
      return 0;
    }
    i += len + 1;
  }
  return -1;
}
