/* Destinations: what qmail-send remembers about each remote domain it
 * delivers to, for backoff, "dead" marking and the per-destination
 * concurrency limit (Postfix's model, in qmail's shape).
 *
 * A destination is the recipient domain, lowercased. Its record lives
 * while anything refers to it (open jobs with a group for it, requests in
 * flight, parked messages) or while it remembers failures; a destination
 * with nothing going on and no failure is freed, so the table holds the
 * domains in use plus those that failed and have not succeeded since.
 *
 * Records are addressed by index (the table grows by realloc). Lookup is
 * a chained hash; the hold timers are a binary min-heap: every operation
 * is O(1) or O(log n) in the number of destinations. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "heap.h"
#include "send.h"

static struct dest *dv;
static size_t dn, dcap;              /* slots used (incl. free list), allocated */
static uint32_t dfree = NIL;
static uint32_t *bucket;             /* chain heads, NIL = empty; nbucket a power of two */
static size_t nbucket, dlive;
static uint32_t *dheap;              /* destinations with a hold, by hold time */
static size_t ndheap;

unsigned long long dest_delay(unsigned fails, unsigned long long min, unsigned long long max)
{
  unsigned long long d = min ? min : 1;
  if (!fails) return 0;
  while (--fails && d < max) d = d > ~0ULL / 2 ? ~0ULL : d * 2;
  return d > max ? max : d;
}

int dest_fail(struct dest *x, unsigned long long now, const struct backoff *b)
{
  unsigned long long d;
  if (x->fails < DEST_FAILS_MAX) x->fails++;
  x->gen++;
  if (x->fails >= b->deadthreshold) {
    x->dead = 1;
    d = b->deadtime;
  } else d = dest_delay(x->fails, b->min, b->max);
  x->delay = d;
  x->hold = now > ~0ULL - d ? ~0ULL : now + d;
  return x->dead ? DEST_DEAD : DEST_HELD;
}

int dest_ok(struct dest *x)
{
  int was = x->fails || x->dead || x->hold;
  x->fails /= 2;
  x->dead = 0;
  x->hold = 0;
  x->delay = 0;
  return was;
}

unsigned long dest_limit(const struct dest *x, unsigned long perdest)
{
  unsigned long l = x->fails >= 8 * sizeof l ? 0 : perdest >> x->fails;
  return l ? l : 1;
}

static size_t hashd(const char *s, size_t n)
{
  size_t h = 5381;
  while (n--) h = (h * 33) ^ (unsigned char)*s++;
  return h;
}

static int rehash(void)
{
  size_t cap = nbucket ? nbucket * 2 : 256, i, sz;
  uint32_t *b;
  if (size_mul(&sz, cap, sizeof *b) < 0 || !(b = malloc(sz))) { errno = ENOMEM; return -1; }
  memset(b, 0xff, sz);
  for (i = 0; i < dn; i++) {
    size_t h;
    if (!dv[i].name) continue;
    h = hashd(dv[i].name, dv[i].len) & (cap - 1);
    dv[i].hnext = b[h];
    b[h] = (uint32_t)i;
  }
  free(bucket);
  bucket = b;
  nbucket = cap;
  return 0;
}

/* Lowercases dom into low (at most 256 bytes: a domain is at most 255,
 * longer names share one record); the length used. */
static size_t lower(char low[256], const char *dom, size_t n)
{
  size_t k;
  if (n > 256) n = 256;
  for (k = 0; k < n; k++) {
    char c = dom[k];
    low[k] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
  }
  return n;
}

static uint32_t find(const char *low, size_t n)
{
  uint32_t i;
  if (!nbucket) return NIL;
  for (i = bucket[hashd(low, n) & (nbucket - 1)]; i != NIL; i = dv[i].hnext)
    if (dv[i].len == n && !memcmp(dv[i].name, low, n)) return i;
  return NIL;
}

uint32_t dest_find(const char *dom, size_t n)
{
  char low[256];
  n = lower(low, dom, n);
  return find(low, n);
}

static int name_ok(const char *s, size_t n)
{
  size_t k;
  if (!n || n > 255 || s[0] == '.' || s[n - 1] == '.') return 0;
  for (k = 0; k < n; k++) {
    char c = s[k];
    if (c == '.') { if (s[k + 1] == '.') return 0; continue; }
    if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') && c != '-')
      return 0;
  }
  return 1;
}

/* "[" IPv6 "]": hex digits, ':' and '.' between the brackets. */
static int v6_ok(const char *s, size_t n)
{
  size_t k;
  if (n < 4 || n > 50 || s[0] != '[' || s[n - 1] != ']' || !memchr(s, ':', n)) return 0;
  for (k = 1; k + 1 < n; k++)
    if (!s[k] || !strchr("0123456789abcdefABCDEF:.", s[k])) return 0;
  return 1;
}

int dest_name_ok(const char *s, size_t n)
{
  size_t k = n;
  /* A relay's ":port" (1 to 5 digits) after its name or [IPv6]. */
  while (k > 0 && s[k - 1] >= '0' && s[k - 1] <= '9') k--;
  if (k > 0 && k < n && n - k <= 5 && s[k - 1] == ':' && (s[0] == '[' || !memchr(s, ':', k - 1))) n = k - 1;
  return name_ok(s, n) || v6_ok(s, n);
}

uint32_t dest_get(const char *dom, size_t n)
{
  char low[256];
  size_t h, sz;
  uint32_t i;
  struct dest *x;

  n = lower(low, dom, n);
  if ((i = find(low, n)) != NIL) return i;
  if (dlive + 1 > nbucket && rehash() < 0) return NIL;
  if (dfree != NIL) {
    i = dfree;
    dfree = dv[i].hnext;
  } else {
    if (dn == dcap) {
      size_t cap;
      void *p;
      if (size_mul(&cap, dcap ? dcap : 64, 2) < 0 || cap >= NIL || size_mul(&sz, cap, sizeof *dv) < 0 ||
          !(p = realloc(dv, sz))) { errno = ENOMEM; return NIL; }
      dv = p;
      if (size_mul(&sz, cap, sizeof *dheap) < 0 || !(p = realloc(dheap, sz))) { errno = ENOMEM; return NIL; }
      dheap = p;
      dcap = cap;
    }
    i = (uint32_t)dn++;
  }
  x = dv + i;
  memset(x, 0, sizeof *x);
  if (!(x->name = malloc(n ? n : 1))) {
    x->hnext = dfree;
    dfree = i;
    errno = ENOMEM;
    return NIL;
  }
  memcpy(x->name, low, n);
  x->len = n;
  x->heap = NIL;
  x->park.head = x->park.tail = NIL;
  h = hashd(low, n) & (nbucket - 1);
  x->hnext = bucket[h];
  bucket[h] = i;
  dlive++;
  return i;
}

struct dest *dest_at(uint32_t i) { return dv + i; }
struct plist *dest_plist(uint32_t i) { return &dv[i].park; }
size_t dest_count(void) { return dlive; }
size_t dest_slots(void) { return dn; }

void dest_counts(size_t *held, size_t *dead)
{
  size_t i;
  *held = *dead = 0;
  for (i = 0; i < dn; i++) {
    if (!dv[i].name) continue;
    if (dv[i].dead) (*dead)++;
    else if (dv[i].heap != NIL) (*held)++;
  }
}

void dest_maybe_free(uint32_t i)
{
  struct dest *x = dv + i;
  uint32_t *p;
  if (x->fails || x->dead || x->active || x->queued || x->park.n || x->heap != NIL) return;
  for (p = &bucket[hashd(x->name, x->len) & (nbucket - 1)]; *p != i; p = &dv[*p].hnext) {}
  *p = x->hnext;
  free(x->name);
  x->name = 0;
  x->hnext = dfree;
  dfree = i;
  dlive--;
}

/* ---- the hold heap */

static unsigned long long hkey(void *ctx, uint32_t i) { (void)ctx; return dv[i].hold; }
static uint32_t *hpos(void *ctx, uint32_t i) { (void)ctx; return &dv[i].heap; }
static const struct heap_ops hold_ops = { .key = hkey, .pos = hpos };

void dest_unhold(uint32_t i)
{
  if (dv[i].heap != NIL) heap_del(dheap, &ndheap, i, &hold_ops);
}

void dest_sethold(uint32_t i)
{
  dest_unhold(i);
  heap_push(dheap, &ndheap, i, &hold_ops);
}

unsigned long long dest_next(void) { return ndheap ? dv[dheap[0]].hold : ~0ULL; }

uint32_t dest_expired(unsigned long long now)
{
  uint32_t i;
  if (!ndheap || dv[dheap[0]].hold > now) return NIL;
  i = dheap[0];
  dest_unhold(i);
  return i;
}

void dest_clear_all(void)
{
  size_t i;
  while (ndheap) dest_unhold(dheap[0]);
  for (i = 0; i < dn; i++)
    if (dv[i].name) { dv[i].dead = 0; dv[i].hold = 0; dv[i].delay = 0; }
}

void dest_reset(uint32_t i, unsigned long long now)
{
  dv[i].dead = 0;
  dv[i].delay = 0;
  dv[i].hold = now;
  dest_sethold(i);
}
