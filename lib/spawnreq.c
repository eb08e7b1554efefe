/* Request parsing and replies for the spawners (lib/spawnreq.h). */
#include <errno.h>
#include <string.h>
#include "control.h"
#include "dsnparam.h"
#include "fdpass.h"
#include "log.h"
#include "qfile.h"
#include "spawnreq.h"

/* spawnproto.h's sizes, which it states in prose: SPAWN_RCPTS recipients
 * of QF_ADDR_MAX bytes each with an ORCPT of DSN_ORCPT_MAX, a generous
 * 64 bytes of fields per recipient and 4 KB for the rest; and a reply of
 * SPAWN_RCPTS items after the slot's digits. */
_Static_assert(SPAWN_RCPTS * (QF_ADDR_MAX + DSN_ORCPT_MAX + 64) + 4096 <= SPAWN_PKT_MAX,
               "the largest request must fit SPAWN_PKT_MAX");
_Static_assert(24 + SPAWN_ITEMS_MAX <= SPAWN_PKT_MAX, "the largest reply must fit SPAWN_PKT_MAX");

/* The next field of [*p, end), NUL-terminated; 0 if there is none. */
static char *field(char **p, char *end, size_t *len)
{
  char *f = *p, *nul;

  if (f >= end || !(nul = memchr(f, 0, (size_t)(end - f)))) return 0;
  *len = (size_t)(nul - f);
  *p = nul + 1;
  return f;
}

static int number(char **p, char *end, unsigned long long *u)
{
  size_t n;
  const char *f = field(p, end, &n);

  return f && scan_ulong(f, n, u) == 0 ? 0 : -1;
}

/* A number, then optionally "/" and the rest (*rest and *rn, else
 * NULL): spawnproto.h's DSN suffixes. The datagram is left as it is: the
 * spawner passes it on to its worker. */
static int number_rest(char **p, char *end, unsigned long long *u, const char **rest, size_t *rn)
{
  size_t n;
  char *f = field(p, end, &n), *slash;

  if (!f) return -1;
  *rest = 0;
  *rn = 0;
  if ((slash = memchr(f, '/', n))) {
    *rest = slash + 1;
    *rn = n - (size_t)(slash + 1 - f);
    n = (size_t)(slash - f);
  }
  return scan_ulong(f, n, u) == 0 ? 0 : -1;
}

static int dsn_ok(int kw, const char *v, size_t n)
{
  unsigned bits;
  return !dsnp_check(kw, v, n, &bits);
}

/* "<bits>[/<orcpt>]" of a recipient. 0 or -1. */
static int rcpt_dsn(struct spawnrcpt *x, const char *s, size_t n)
{
  const char *slash = memchr(s, '/', n);
  size_t bn = slash ? (size_t)(slash - s) : n;
  unsigned long long b;

  if (scan_ulong(s, bn, &b) < 0 || b > 15 || ((b & DSN_NOTIFY_NEVER) && b != DSN_NOTIFY_NEVER))
    return -1;
  x->notify = (unsigned)b;
  if (!slash) return 0;
  x->orcpt = slash + 1;
  x->orcptn = n - bn - 1;
  return dsn_ok(DSNP_ORCPT, x->orcpt, x->orcptn) ? 0 : -1;
}

/* One refusal item per recipient the request appears to hold: after the
 * slot come five fields, then (index, address) pairs. */
static size_t answers(const char *p, size_t n)
{
  size_t nf = 0, i;

  for (i = 0; i < n; i++) if (!p[i]) nf++;
  nf = nf > 5 ? (nf - 5) / 2 : 0;
  return nf < 1 ? 1 : nf > SPAWN_RCPTS ? SPAWN_RCPTS : nf;
}

int spawnreq_parse(struct spawnreq *r, char *p, size_t n, size_t maxrcpt, const char **why)
{
  char *end = p + n, *f, *at;
  const char *rest;
  unsigned long long slot;
  size_t len, rn;

  *why = "malformed request";
  if (!n || p[n - 1]) return SPAWNREQ_NOSLOT;
  *why = "bad slot";
  if (number(&p, end, &slot) < 0 || slot >= SPAWN_SLOTS) return SPAWNREQ_NOSLOT;
  r->slot = (unsigned long)slot;
  r->nanswer = answers(p, (size_t)(end - p));
  r->nrcpt = 0;
  *why = "bad qid";
  if (!(r->qid = field(&p, end, &len)) || !qf_qid_ok(r->qid, len)) return SPAWNREQ_BAD;
  *why = "bad number";
  if (number(&p, end, &r->off) < 0 || number(&p, end, &r->len) < 0 ||
      number_rest(&p, end, &r->opts, &r->envid, &r->envidn) < 0) return SPAWNREQ_BAD;
  *why = "bad ENVID";
  if (r->envid && !dsn_ok(DSNP_ENVID, r->envid, r->envidn)) return SPAWNREQ_BAD;
  *why = "bad sender";
  if (!(r->sender = field(&p, end, &len)) || len > QF_ADDR_MAX) return SPAWNREQ_BAD;
  /* The datagram ends in a NUL, so each pair is two whole fields or none. */
  while (p < end) {
    struct spawnrcpt *x = &r->rcpt[r->nrcpt];
    *why = "too many recipients";
    if (r->nrcpt >= maxrcpt || r->nrcpt >= SPAWN_RCPTS) return SPAWNREQ_BAD;
    *why = "bad recipient index";
    if (number_rest(&p, end, &x->i, &rest, &rn) < 0 || x->i > QF_RCPT_MAX) return SPAWNREQ_BAD;
    *why = "bad DSN parameters";
    x->notify = 0;
    x->orcpt = 0;
    x->orcptn = 0;
    if (rest && rcpt_dsn(x, rest, rn) < 0) return SPAWNREQ_BAD;
    *why = "bad recipient";
    if (!(f = field(&p, end, &len)) || !len || len > QF_ADDR_MAX || !(at = strrchr(f, '@')))
      return SPAWNREQ_BAD;
    x->addr = f;
    x->domain = at + 1;
    r->nrcpt++;
  }
  *why = "no recipient";
  if (!r->nrcpt) return SPAWNREQ_BAD;
  *why = 0;
  return SPAWNREQ_OK;
}

int spawnreq_cat_opts(str *d, const struct spawnreq *r)
{
  if (str_catu(d, r->opts) < 0) return -1;
  if (r->envid && (str_catc(d, '/') < 0 || str_catb(d, r->envid, r->envidn) < 0)) return -1;
  return str_catc(d, 0);
}

int spawnreq_cat_index(str *d, const struct spawnrcpt *x)
{
  if (str_catu(d, x->i) < 0) return -1;
  if ((x->notify || x->orcpt) && (str_catc(d, '/') < 0 || str_catu(d, x->notify) < 0)) return -1;
  if (x->orcpt && (str_catc(d, '/') < 0 || str_catb(d, x->orcpt, x->orcptn) < 0)) return -1;
  return str_catc(d, 0);
}

size_t spawnreq_item(char *out, char c, const char *text, size_t n)
{
  size_t i;

  if (n > SPAWN_TEXT) n = SPAWN_TEXT;
  out[0] = c;
  for (i = 0; i < n; i++) out[i + 1] = text[i] ? text[i] : ' ';
  out[n + 1] = 0;
  return n + 2;
}

int spawnreq_items_ok(const char *p, size_t n, size_t count)
{
  const char *end = p + n, *nul;
  size_t k;

  for (k = 0; k < count; k++) {
    if (p >= end || !(nul = memchr(p, 0, (size_t)(end - p)))) return 0;
    if (nul == p || (size_t)(nul - p) > SPAWN_TEXT + 1 || (*p != 'K' && *p != 'Z' && *p != 'D'))
      return 0;
    p = nul + 1;
  }
  return p == end;
}

/* Room for the slot's digits and NUL, then the items. */
static char reply_buf[24 + SPAWN_ITEMS_MAX];

void spawnreq_reply(const char *prog, unsigned long slot, const char *items, size_t n)
{
  size_t d = (size_t)(fmt_u(reply_buf, slot, 0) - reply_buf);

  if (n > SPAWN_ITEMS_MAX) n = SPAWN_ITEMS_MAX;
  reply_buf[d] = 0;
  memmove(reply_buf + d + 1, items, n);
  if (pkt_send(0, reply_buf, d + 1 + n, -1) < 0) {
    log_begin(prog, "reply_failed");
    log_ku("slot", slot);
    log_kv("error", strerror(errno));
    log_end();
  }
}

void spawnreq_refuse(const char *prog, unsigned long slot, size_t count, const char *tag,
                     const char *why)
{
  static char items[SPAWN_ITEMS_MAX];
  char text[SPAWN_TEXT];
  size_t t = strlen(tag), w = strlen(why), n = 0, k;

  if (t > SPAWN_TEXT) t = SPAWN_TEXT;
  if (w > SPAWN_TEXT - t) w = SPAWN_TEXT - t;
  memcpy(text, tag, t);
  memcpy(text + t, why, w);
  if (count < 1) count = 1;
  if (count > SPAWN_RCPTS) count = SPAWN_RCPTS;
  for (k = 0; k < count; k++) n += spawnreq_item(items + n, 'Z', text, t + w);
  spawnreq_reply(prog, slot, items, n);
}
