/* The in-memory index of queued messages: a table of fixed-size records,
 * an open-addressing hash by qid, a ready FIFO and a binary min-heap of
 * retry times. Every operation is O(1) or O(log n): nothing walks the
 * whole queue on an ordinary event.
 *
 * Records are addressed by index, never by pointer, because the table
 * grows by realloc. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "send.h"

unsigned long long retry_next(unsigned long long birth, unsigned long long now, unsigned skip)
{
  unsigned long long age = now > birth ? now - birth : 0, r;

  /* Integer square root: floor(sqrt(age)), exact for every 64-bit age. */
  r = 0;
  {
    unsigned long long bit = 1ULL << 62, x = age;
    while (bit > x) bit >>= 2;
    while (bit) {
      if (x >= r + bit) { x -= r + bit; r = (r >> 1) + bit; }
      else r >>= 1;
      bit >>= 2;
    }
  }
  r += skip;
  /* age < 2^64 so r < 2^32 + skip; r * r fits unless skip is absurd. */
  if (r > 0xffffffffULL) return ~0ULL;
  r *= r;
  return birth > ~0ULL - r ? ~0ULL : birth + r;
}

static size_t hashq(const char *s, size_t n)
{
  size_t h = 5381;
  while (n--) h = (h * 33) ^ (unsigned char)*s++;
  return h;
}

static int same(const struct msg *m, const char *qid, size_t n)
{
  return !memcmp(m->qid, qid, n) && !m->qid[n];
}

uint32_t mt_find(const struct mtab *t, const char *qid, size_t n)
{
  size_t h;
  if (!t->hcap || n >= QF_QID_MAX) return NIL;
  for (h = hashq(qid, n) & (t->hcap - 1);; h = (h + 1) & (t->hcap - 1)) {
    uint32_t i = t->hash[h];
    if (i == NIL) return NIL;
    if (same(t->m + i, qid, n)) return i;
  }
}

static void hput(uint32_t *hash, size_t hcap, const struct msg *m, uint32_t i)
{
  size_t h;
  for (h = hashq(m[i].qid, strlen(m[i].qid)) & (hcap - 1); hash[h] != NIL; h = (h + 1) & (hcap - 1)) {}
  hash[h] = i;
}

/* Keeps the load factor at most 1/2; capacity is a power of two. */
static int hgrow(struct mtab *t)
{
  size_t cap = t->hcap ? t->hcap : 1024, i, sz;
  uint32_t *h;

  if (t->live + 1 <= t->hcap / 2) return 0;
  while (cap / 2 < t->live + 1)
    if (size_mul(&cap, cap, 2) < 0) return -1;
  if (cap > (size_t)NIL || size_mul(&sz, cap, sizeof *h) < 0) { errno = ENOMEM; return -1; }
  h = malloc(sz);
  if (!h) { errno = ENOMEM; return -1; }
  memset(h, 0xff, sz);
  for (i = 0; i < t->n; i++)
    if (t->m[i].state != M_FREE) hput(h, cap, t->m, (uint32_t)i);
  free(t->hash);
  t->hash = h;
  t->hcap = cap;
  return 0;
}

static int tgrow(struct mtab *t)
{
  size_t cap, sz;
  void *p;

  if (t->n < t->cap) return 0;
  if (size_mul(&cap, t->cap ? t->cap : 512, 2) < 0 || cap >= (size_t)NIL) { errno = ENOMEM; return -1; }
  if (size_mul(&sz, cap, sizeof *t->m) < 0) return -1;
  p = realloc(t->m, sz);
  if (!p) { errno = ENOMEM; return -1; }
  t->m = p;
  if (size_mul(&sz, cap, sizeof *t->heap) < 0) return -1;
  p = realloc(t->heap, sz);
  if (!p) { errno = ENOMEM; return -1; }
  t->heap = p;
  t->cap = cap;
  return 0;
}

uint32_t mt_add(struct mtab *t, const char *qid, size_t n)
{
  uint32_t i;
  struct msg *m;

  if (n >= QF_QID_MAX) { errno = EINVAL; return NIL; }
  if (hgrow(t) < 0) return NIL;
  if (t->freel != NIL) {
    i = t->freel;
    t->freel = t->m[i].next;
  } else {
    if (tgrow(t) < 0) return NIL;
    i = (uint32_t)t->n++;
  }
  m = t->m + i;
  memset(m, 0, sizeof *m);
  memcpy(m->qid, qid, n);
  m->birth = qf_qid_birth(m->qid);
  m->heap = m->next = m->job = m->dest = m->pprev = m->pnext = NIL;
  m->state = M_READY;
  hput(t->hash, t->hcap, t->m, i);
  t->live++;
  mt_ready_push(t, i);
  return i;
}

static void heap_set(struct mtab *t, size_t pos, uint32_t i)
{
  t->heap[pos] = i;
  t->m[i].heap = (uint32_t)pos;
}

static void heap_up(struct mtab *t, size_t pos)
{
  uint32_t i = t->heap[pos];
  while (pos) {
    size_t up = (pos - 1) / 2;
    if (t->m[t->heap[up]].when <= t->m[i].when) break;
    heap_set(t, pos, t->heap[up]);
    pos = up;
  }
  heap_set(t, pos, i);
}

static void heap_down(struct mtab *t, size_t pos)
{
  uint32_t i = t->heap[pos];
  for (;;) {
    size_t c = 2 * pos + 1;
    if (c >= t->nheap) break;
    if (c + 1 < t->nheap && t->m[t->heap[c + 1]].when < t->m[t->heap[c]].when) c++;
    if (t->m[t->heap[c]].when >= t->m[i].when) break;
    heap_set(t, pos, t->heap[c]);
    pos = c;
  }
  heap_set(t, pos, i);
}

static void heap_remove(struct mtab *t, uint32_t i)
{
  size_t pos = t->m[i].heap;
  uint32_t last = t->heap[--t->nheap];
  t->m[i].heap = NIL;
  if (last == i) return;
  heap_set(t, pos, last);
  heap_up(t, pos);
  heap_down(t, t->m[last].heap);
}

void mt_wait(struct mtab *t, uint32_t i, unsigned long long when)
{
  t->m[i].when = when;
  t->m[i].state = M_WAIT;
  t->heap[t->nheap] = i;
  heap_up(t, t->nheap++);
}

void mt_ready_push(struct mtab *t, uint32_t i)
{
  t->m[i].state = M_READY;
  t->m[i].next = NIL;
  if (t->rtail == NIL) t->rhead = i; else t->m[t->rtail].next = i;
  t->rtail = i;
  t->nready++;
}

void mt_ready_now(struct mtab *t, uint32_t i)
{
  heap_remove(t, i);
  mt_ready_push(t, i);
}

uint32_t mt_ready_pop(struct mtab *t)
{
  uint32_t i = t->rhead;
  if (i == NIL) return NIL;
  t->rhead = t->m[i].next;
  if (t->rhead == NIL) t->rtail = NIL;
  t->m[i].next = NIL;
  t->nready--;
  return i;
}

static void unlink_park(struct mtab *t, uint32_t i, struct plist *l)
{
  struct msg *m = t->m + i;
  if (m->pprev == NIL) l->head = m->pnext; else t->m[m->pprev].pnext = m->pnext;
  if (m->pnext == NIL) l->tail = m->pprev; else t->m[m->pnext].pprev = m->pprev;
  m->pprev = m->pnext = NIL;
  m->dest = NIL;
  l->n--;
}

unsigned long long mt_due(struct mtab *t, unsigned long long now, int all)
{
  while (t->nheap) {
    uint32_t i = t->heap[0];
    if (!all && t->m[i].when > now) return t->m[i].when;
    heap_remove(t, i);
    if (t->m[i].state == M_HELD) unlink_park(t, i, t->plist(t->m[i].dest));
    mt_ready_push(t, i);
  }
  return ~0ULL;
}

void mt_ready_push_front(struct mtab *t, uint32_t i)
{
  t->m[i].state = M_READY;
  t->m[i].next = t->rhead;
  t->rhead = i;
  if (t->rtail == NIL) t->rtail = i;
  t->nready++;
}

void mt_park(struct mtab *t, uint32_t i, struct plist *l, uint32_t d, unsigned long long expire)
{
  struct msg *m = t->m + i;
  m->when = expire;
  t->heap[t->nheap] = i;
  heap_up(t, t->nheap++);
  m->state = M_HELD;
  m->dest = d;
  m->pnext = NIL;
  m->pprev = l->tail;
  if (l->tail == NIL) l->head = i; else t->m[l->tail].pnext = i;
  l->tail = i;
  l->n++;
}

uint32_t mt_unpark_head(struct mtab *t, struct plist *l)
{
  uint32_t i = l->head;
  if (i == NIL) return NIL;
  unlink_park(t, i, l);
  if (t->m[i].heap != NIL) heap_remove(t, i);
  t->m[i].state = M_READY;
  return i;
}

/* Only messages not in the ready list are deleted (the caller holds them:
 * an open job, or a waiting one it found by scanning). */
void mt_del(struct mtab *t, uint32_t i)
{
  size_t h, j, k;

  if (t->m[i].heap != NIL) heap_remove(t, i);
  if (t->m[i].state == M_HELD) unlink_park(t, i, t->plist(t->m[i].dest));
  h = hashq(t->m[i].qid, strlen(t->m[i].qid)) & (t->hcap - 1);
  while (t->hash[h] != i) h = (h + 1) & (t->hcap - 1);
  /* Backward-shift deletion keeps every probe chain unbroken. */
  j = h;
  for (k = (j + 1) & (t->hcap - 1); t->hash[k] != NIL; k = (k + 1) & (t->hcap - 1)) {
    size_t home = hashq(t->m[t->hash[k]].qid, strlen(t->m[t->hash[k]].qid)) & (t->hcap - 1);
    /* Move k into the hole j unless its home lies cyclically in (j, k]. */
    if ((k > j && (home <= j || home > k)) || (k < j && home <= j && home > k)) {
      t->hash[j] = t->hash[k];
      j = k;
    }
  }
  t->hash[j] = NIL;
  t->m[i].state = M_FREE;
  t->m[i].qid[0] = 0;
  t->m[i].next = t->freel;
  t->freel = i;
  t->live--;
}
