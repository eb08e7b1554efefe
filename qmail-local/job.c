/* Delivery jobs between qmail-lspawn and its workers (qmail-local/job.h). */
#include <errno.h>
#include <string.h>
#include "control.h"
#include "job.h"
#include "qfile.h"

#define FIELDS 15

static int put(str *out, const char *s) { return str_cats(out, s) < 0 || str_catc(out, 0) < 0 ? -1 : 0; }

static int putu(str *out, unsigned long long u) { return str_catu(out, u) < 0 || str_catc(out, 0) < 0 ? -1 : 0; }

int job_make(str *out, const struct local_job *j)
{
  const struct delivery *d = &j->d;

  out->len = 0;
  if (putu(out, j->uid) < 0 || putu(out, j->gid) < 0 || put(out, d->qid) < 0 ||
      putu(out, d->rcptno) < 0 || putu(out, d->off) < 0 || putu(out, d->len) < 0 ||
      putu(out, d->opts) < 0 || put(out, d->sender) < 0 || put(out, d->local) < 0 ||
      put(out, d->domain) < 0 || put(out, d->user) < 0 || put(out, d->home) < 0 ||
      put(out, d->dash) < 0 || put(out, d->ext) < 0 || put(out, d->text ? d->text : "") < 0)
    return -1;
  if (out->len > JOB_MAX) { errno = EMSGSIZE; return -1; }
  return 0;
}

static int num(const char *s, unsigned long long max, unsigned long long *u)
{
  return scan_ulong(s, strlen(s), u) < 0 || *u > max ? -1 : 0;
}

int job_parse(char *p, size_t n, struct local_job *j)
{
  const char *f[FIELDS];
  unsigned long long rcptno, opts;
  struct delivery *d = &j->d;
  size_t i = 0, k;

  if (!n || p[n - 1]) return -1;
  for (k = 0; k < FIELDS; k++) {
    if (i >= n) return -1;
    f[k] = p + i;
    i += strlen(p + i) + 1;
  }
  if (i != n) return -1;
  memset(d, 0, sizeof *d);
  if (num(f[0], ~0ull, &j->uid) < 0 || num(f[1], ~0ull, &j->gid) < 0 ||
      !qf_qid_ok(f[2], strlen(f[2])) || num(f[3], QF_RCPT_MAX, &rcptno) < 0 ||
      num(f[4], ~0ull, &d->off) < 0 || num(f[5], ~0ull, &d->len) < 0 ||
      num(f[6], ~0u, &opts) < 0)
    return -1;
  if (strcmp(f[12], "") && strcmp(f[12], "-")) return -1;
  d->qid = f[2];
  d->rcptno = (unsigned long)rcptno;
  d->opts = (unsigned)opts;
  d->sender = f[7];
  d->local = f[8];
  d->domain = f[9];
  d->user = f[10];
  d->home = f[11];
  d->dash = f[12];
  d->ext = f[13];
  d->text = f[14];
  return 0;
}
