#ifndef HEAP_H
#define HEAP_H
/* A binary min-heap of element indexes (uint32_t) into the caller's
 * table, for timers: the earliest key at v[0], push and removal of any
 * element in O(log n). The caller owns the array v (room for every
 * element that may be in it) and its count *n, and keeps each element's
 * key and position in its own records, reached through ops; an element
 * not in the heap has position HEAP_NONE. */
#include <stddef.h>
#include <stdint.h>

#define HEAP_NONE UINT32_MAX

struct heap_ops {
  unsigned long long (*key)(void *ctx, uint32_t i);
  uint32_t *(*pos)(void *ctx, uint32_t i);   /* where i's position is kept */
  void *ctx;
};

/* Adds i (not in the heap) at its key. */
void heap_push(uint32_t *v, size_t *n, uint32_t i, const struct heap_ops *o);
/* Takes i (in the heap) out; its position becomes HEAP_NONE. */
void heap_del(uint32_t *v, size_t *n, uint32_t i, const struct heap_ops *o);

#endif
