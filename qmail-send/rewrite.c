/* Recipient classification: control/locals and control/virtualdomains.
 *
 * Both tables are kept sorted with lowercased keys and searched by
 * bisection, so a large virtualdomains costs O(log n) per recipient. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "control.h"
#include "send.h"

static char lc(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

static int keycmp(const char *a, size_t an, const char *b, size_t bn)
{
  size_t i, n = an < bn ? an : bn;
  for (i = 0; i < n; i++) {
    unsigned char x = (unsigned char)lc(a[i]), y = (unsigned char)lc(b[i]);
    if (x != y) return x < y ? -1 : 1;
  }
  return an < bn ? -1 : an > bn;
}

static int entcmp(const void *a, const void *b)
{
  const struct rw_ent *x = a, *y = b;
  return keycmp(x->key, x->klen, y->key, y->klen);
}

/* Splits the NUL-separated lines of raw into a sorted table. With colon,
 * each line is "key:value" (lines without ':' are ignored, as in qmail);
 * otherwise the whole line is the key. */
static int table(str *raw, int colon, struct rw_ent **out, size_t *nout)
{
  size_t i, n = 0, k = 0, sz;
  struct rw_ent *t;

  for (i = 0; i < raw->len; i++) if (!raw->s[i]) n++;
  if (size_mul(&sz, n ? n : 1, sizeof *t) < 0) return -1;
  t = malloc(sz);
  if (!t) { errno = ENOMEM; return -1; }
  for (i = 0; i < raw->len;) {
    char *line = raw->s + i, *c;
    size_t len = strlen(line);
    i += len + 1;
    c = colon ? memchr(line, ':', len) : 0;
    if (colon && !c) continue;
    t[k].key = line;
    t[k].klen = c ? (size_t)(c - line) : len;
    t[k].val = c ? c + 1 : "";
    t[k].vlen = c ? len - t[k].klen - 1 : 0;
    k++;
  }
  qsort(t, k, sizeof *t, entcmp);
  *out = t;
  *nout = k;
  return 0;
}

static const struct rw_ent *find(const struct rw_ent *t, size_t n, const char *k, size_t kn)
{
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = keycmp(t[mid].key, t[mid].klen, k, kn);
    if (!c) return t + mid;
    if (c < 0) lo = mid + 1; else hi = mid;
  }
  return 0;
}

int rw_load(struct rw *r)
{
  struct rw n = RW_INIT;
  int x;

  x = control_line(&n.me, "control/me");
  if (x < 0) goto fail;
  if (x == 0 || !n.me.len) { errno = ENOENT; goto fail; }
  x = control_line(&n.envnoathost, "control/envnoathost");
  if (x < 0) goto fail;
  if ((x == 0 || !n.envnoathost.len) && str_copyb(&n.envnoathost, n.me.s, n.me.len) < 0) goto fail;
  x = control_lines(&n.locals_raw, "control/locals");
  if (x < 0) goto fail;
  if (x == 0 && (str_copyb(&n.locals_raw, n.me.s, n.me.len) < 0 || str_catc(&n.locals_raw, 0) < 0))
    goto fail;
  if (control_lines(&n.vd_raw, "control/virtualdomains") < 0) goto fail;
  if (table(&n.locals_raw, 0, &n.locals, &n.nlocals) < 0) goto fail;
  if (table(&n.vd_raw, 1, &n.vd, &n.nvd) < 0) goto fail;
  rw_free(r);
  *r = n;
  return 0;
fail:
  x = errno;
  rw_free(&n);
  errno = x;
  return -1;
}

void rw_free(struct rw *r)
{
  str_free(&r->me);
  str_free(&r->envnoathost);
  str_free(&r->locals_raw);
  str_free(&r->vd_raw);
  free(r->locals);
  free(r->vd);
  r->locals = r->vd = 0;
  r->nlocals = r->nvd = 0;
}

int rw_classify(const struct rw *r, const char *a, size_t n, str *out)
{
  const struct rw_ent *v;
  const char *at, *dom;
  size_t dn, i;

  out->len = 0;
  if (str_catb(out, a, n) < 0) return -1;
  at = memrchr(a, '@', n);
  if (!at) {
    if (str_catc(out, '@') < 0 || str_catb(out, r->envnoathost.s, r->envnoathost.len) < 0)
      return -1;
  }
  at = memrchr(out->s, '@', out->len);
  dom = at + 1;
  dn = out->len - (size_t)(dom - out->s);
  if (find(r->locals, r->nlocals, dom, dn)) return CH_LOCAL;

  /* Whole address, then the domain, then each ".suffix", then "". */
  v = find(r->vd, r->nvd, out->s, out->len);
  for (i = 0; !v && i <= dn; i++)
    if (i == 0 || i == dn || dom[i] == '.')
      v = find(r->vd, r->nvd, dom + i, dn - i);
  if (!v || !v->vlen) return CH_REMOTE;
  /* "prepend-" in front of the whole address: lspawn sees a local part
   * that names the virtual user. The address is moved, not copied, so
   * out's own buffer is never both source and destination. */
  {
    size_t len = out->len, need;
    if (size_add(&need, v->vlen, 1) < 0 || str_readyplus(out, need) < 0) return -1;
    memmove(out->s + need, out->s, len);
    memcpy(out->s, v->val, v->vlen);
    out->s[v->vlen] = '-';
    out->len = len + need;
  }
  return CH_LOCAL;
}
