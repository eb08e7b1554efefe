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
#include "heap.h"
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

_Static_assert(NIL == HEAP_NONE, "the heap marks an element out of it with NIL");
_Static_assert(sizeof(struct send_msg) == 52, "struct send_msg is the queue's memory: keep it small");

/* A qid being looked up or added: split, or odd with its text. */
struct key { uint32_t q[3]; const char *s; size_t n; };

static void key_of(struct key *k, const char *qid, size_t n)
{
  if (!qf_qid_split(qid, n, k->q)) k->q[1] = Q_ODD;
  k->s = qid;
  k->n = n;
}

static void key_at(const struct mtab *t, uint32_t i, struct key *k)
{
  memcpy(k->q, t->m[i].q, sizeof k->q);
  k->s = k->q[1] == Q_ODD ? t->odd[i] : 0;
  k->n = k->s ? strlen(k->s) : 0;
}

static size_t hashk(const struct key *k)
{
  uint64_t h = 5381;
  size_t i;

  if (k->q[1] == Q_ODD)
    for (i = 0; i < k->n; i++) h = (h * 33) ^ (unsigned char)k->s[i];
  else
    h = ((uint64_t)k->q[0] << 32 | k->q[2]) ^ (uint64_t)k->q[1] * 0x9e3779b97f4a7c15ULL;
  /* Linear probing wants the low bits mixed: qids differ mostly in usec. */
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return (size_t)h;
}

static size_t home(const struct mtab *t, uint32_t i)
{
  struct key k;
  key_at(t, i, &k);
  return hashk(&k) & (t->hcap - 1);
}

static int same(const struct mtab *t, uint32_t i, const struct key *k)
{
  const struct send_msg *m = t->m + i;
  if (m->q[1] != Q_ODD)
    return k->q[1] != Q_ODD && m->q[0] == k->q[0] && m->q[1] == k->q[1] && m->q[2] == k->q[2];
  return k->q[1] == Q_ODD && !strncmp(t->odd[i], k->s, k->n) && !t->odd[i][k->n];
}

uint32_t mt_find(const struct mtab *t, const char *qid, size_t n)
{
  struct key k;
  size_t h;

  if (!t->hcap || n >= QF_QID_MAX) return NIL;
  key_of(&k, qid, n);
  for (h = hashk(&k) & (t->hcap - 1);; h = (h + 1) & (t->hcap - 1)) {
    uint32_t i = t->hash[h];
    if (i == NIL) return NIL;
    if (same(t, i, &k)) return i;
  }
}

const char *mt_qid(const struct mtab *t, uint32_t i, char buf[QF_QID_MAX])
{
  const struct send_msg *m = t->m + i;
  if (m->q[1] == Q_ODD) memcpy(buf, t->odd[i], strlen(t->odd[i]) + 1);
  else *qf_qid_fmt(buf, m->q[0], m->q[1], m->q[2]) = 0;
  return buf;
}

unsigned long long mt_birth(const struct mtab *t, uint32_t i)
{
  return t->m[i].q[1] == Q_ODD ? qf_qid_birth(t->odd[i]) : t->m[i].q[0];
}

static void hput(const struct mtab *t, uint32_t *hash, size_t hcap, uint32_t i)
{
  struct key k;
  size_t h;
  key_at(t, i, &k);
  for (h = hashk(&k) & (hcap - 1); hash[h] != NIL; h = (h + 1) & (hcap - 1)) {}
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
    if (t->m[i].state != M_FREE) hput(t, h, cap, (uint32_t)i);
  free(t->hash);
  t->hash = h;
  t->hcap = cap;
  return 0;
}

/* Makes odd hold cap entries, the ones past old zeroed. */
static int odd_grow(struct mtab *t, size_t old, size_t cap)
{
  size_t sz;
  char **p;

  if (size_mul(&sz, cap, sizeof *p) < 0) return -1;
  p = realloc(t->odd, sz);
  if (!p) { errno = ENOMEM; return -1; }
  memset(p + old, 0, (cap - old) * sizeof *p);
  t->odd = p;
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
  if (t->odd && odd_grow(t, t->cap, cap) < 0) return -1;
  t->cap = cap;
  return 0;
}

/* Stores the text of odd qid k for slot i. */
static int odd_put(struct mtab *t, uint32_t i, const struct key *k)
{
  char *s;
  if (!t->odd && odd_grow(t, 0, t->cap) < 0) return -1;
  if (!(s = malloc(k->n + 1))) { errno = ENOMEM; return -1; }
  memcpy(s, k->s, k->n);
  s[k->n] = 0;
  t->odd[i] = s;
  return 0;
}

/* Adds qid in no list; its index or NIL. */
static uint32_t add(struct mtab *t, const char *qid, size_t n)
{
  struct key k;
  uint32_t i;
  struct send_msg *m;

  if (n >= QF_QID_MAX) { errno = EINVAL; return NIL; }
  key_of(&k, qid, n);
  if (hgrow(t) < 0 || (t->freel == NIL && tgrow(t) < 0)) return NIL;
  i = t->freel != NIL ? t->freel : (uint32_t)t->n;
  if (k.q[1] == Q_ODD && odd_put(t, i, &k) < 0) return NIL;
  if (i == t->freel) t->freel = t->m[i].next; else t->n++;
  m = t->m + i;
  memset(m, 0, sizeof *m);
  memcpy(m->q, k.q, sizeof m->q);
  m->heap = m->next = m->dest = m->pprev = m->pnext = NIL;
  hput(t, t->hash, t->hcap, i);
  t->live++;
  return i;
}

uint32_t mt_add(struct mtab *t, const char *qid, size_t n)
{
  uint32_t i = add(t, qid, n);
  if (i != NIL) mt_ready_push(t, i);
  return i;
}

uint32_t mt_add_stuck(struct mtab *t, const char *qid, size_t n)
{
  uint32_t i = add(t, qid, n);
  if (i != NIL) t->m[i].state = M_STUCK;
  return i;
}

uint32_t mt_add_wait(struct mtab *t, const char *qid, size_t n, unsigned long long when)
{
  uint32_t i = add(t, qid, n);
  if (i != NIL) mt_wait(t, i, when);
  return i;
}

void mt_free(struct mtab *t)
{
  size_t i;
  if (t->odd) for (i = 0; i < t->n; i++) free(t->odd[i]);
  free(t->odd);
  free(t->m);
  free(t->hash);
  free(t->heap);
  t->odd = 0;
  t->m = 0;
  t->hash = t->heap = 0;
  t->n = t->cap = t->hcap = t->live = t->nheap = t->nready = 0;
  t->freel = t->rhead = t->rtail = NIL;
}

/* The timer heap (lib/heap.h): messages keyed by when. */
static unsigned long long mkey(void *ctx, uint32_t i) { return ((struct mtab *)ctx)->m[i].when; }
static uint32_t *mpos(void *ctx, uint32_t i) { return &((struct mtab *)ctx)->m[i].heap; }

static void heap_add(struct mtab *t, uint32_t i)
{
  const struct heap_ops o = { .key = mkey, .pos = mpos, .ctx = t };
  heap_push(t->heap, &t->nheap, i, &o);
}

static void heap_remove(struct mtab *t, uint32_t i)
{
  const struct heap_ops o = { .key = mkey, .pos = mpos, .ctx = t };
  heap_del(t->heap, &t->nheap, i, &o);
}

void mt_wait(struct mtab *t, uint32_t i, unsigned long long when)
{
  t->m[i].when = t32(when);
  t->m[i].state = M_WAIT;
  heap_add(t, i);
}

/* The ready FIFO is linked forward by next and backward by pprev (free
 * while a message is not parked), so that any one can leave it in O(1). */
void mt_ready_push(struct mtab *t, uint32_t i)
{
  t->m[i].state = M_READY;
  t->m[i].next = NIL;
  t->m[i].pprev = t->rtail;
  if (t->rtail == NIL) t->rhead = i; else t->m[t->rtail].next = i;
  t->rtail = i;
  t->nready++;
}

void mt_ready_remove(struct mtab *t, uint32_t i)
{
  struct send_msg *m = t->m + i;
  if (m->pprev == NIL) t->rhead = m->next; else t->m[m->pprev].next = m->next;
  if (m->next == NIL) t->rtail = m->pprev; else t->m[m->next].pprev = m->pprev;
  m->next = m->pprev = NIL;
  t->nready--;
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
  if (t->rhead == NIL) t->rtail = NIL; else t->m[t->rhead].pprev = NIL;
  t->m[i].next = t->m[i].pprev = NIL;
  t->nready--;
  return i;
}

static void unlink_park(struct mtab *t, uint32_t i, struct plist *l)
{
  struct send_msg *m = t->m + i;
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
    if (!all && t->m[i].when > now) return t->m[i].when == T_NEVER ? ~0ULL : t->m[i].when;
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
  t->m[i].pprev = NIL;
  if (t->rhead != NIL) t->m[t->rhead].pprev = i;
  t->rhead = i;
  if (t->rtail == NIL) t->rtail = i;
  t->nready++;
}

void mt_park(struct mtab *t, uint32_t i, struct plist *l, uint32_t d, unsigned long long expire)
{
  struct send_msg *m = t->m + i;
  m->when = t32(expire);
  heap_add(t, i);
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
 * an open job, or a waiting one it found by scanning; a ready one is
 * taken out with mt_ready_remove first). */
void mt_del(struct mtab *t, uint32_t i)
{
  size_t h, j, k;

  if (t->m[i].heap != NIL) heap_remove(t, i);
  if (t->m[i].state == M_HELD) unlink_park(t, i, t->plist(t->m[i].dest));
  h = home(t, i);
  while (t->hash[h] != i) h = (h + 1) & (t->hcap - 1);
  /* Backward-shift deletion keeps every probe chain unbroken. */
  j = h;
  for (k = (j + 1) & (t->hcap - 1); t->hash[k] != NIL; k = (k + 1) & (t->hcap - 1)) {
    size_t hk = home(t, t->hash[k]);
    /* Move k into the hole j unless its home lies cyclically in (j, k]. */
    if ((k > j && (hk <= j || hk > k)) || (k < j && hk <= j && hk > k)) {
      t->hash[j] = t->hash[k];
      j = k;
    }
  }
  t->hash[j] = NIL;
  if (t->m[i].q[1] == Q_ODD) {
    free(t->odd[i]);
    t->odd[i] = 0;
  }
  t->m[i].state = M_FREE;
  t->m[i].next = t->freel;
  t->freel = i;
  t->live--;
}
