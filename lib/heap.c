/* The timer heap: see heap.h. */
#include "heap.h"

static void set(uint32_t *v, size_t pos, uint32_t i, const struct heap_ops *o)
{
  v[pos] = i;
  *o->pos(o->ctx, i) = (uint32_t)pos;
}

static void up(uint32_t *v, size_t pos, const struct heap_ops *o)
{
  uint32_t i = v[pos];
  unsigned long long k = o->key(o->ctx, i);
  while (pos) {
    size_t p = (pos - 1) / 2;
    if (o->key(o->ctx, v[p]) <= k) break;
    set(v, pos, v[p], o);
    pos = p;
  }
  set(v, pos, i, o);
}

static void down(uint32_t *v, size_t n, size_t pos, const struct heap_ops *o)
{
  uint32_t i = v[pos];
  unsigned long long k = o->key(o->ctx, i);
  for (;;) {
    size_t c = 2 * pos + 1;
    if (c >= n) break;
    if (c + 1 < n && o->key(o->ctx, v[c + 1]) < o->key(o->ctx, v[c])) c++;
    if (o->key(o->ctx, v[c]) >= k) break;
    set(v, pos, v[c], o);
    pos = c;
  }
  set(v, pos, i, o);
}

void heap_push(uint32_t *v, size_t *n, uint32_t i, const struct heap_ops *o)
{
  v[*n] = i;
  up(v, (*n)++, o);
}

void heap_del(uint32_t *v, size_t *n, uint32_t i, const struct heap_ops *o)
{
  uint32_t *p = o->pos(o->ctx, i), last = v[--*n];
  size_t pos = *p;
  *p = HEAP_NONE;
  if (last == i) return;
  set(v, pos, last, o);
  up(v, pos, o);
  down(v, *n, *o->pos(o->ctx, last), o);
}
