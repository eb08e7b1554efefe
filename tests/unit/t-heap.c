/* lib/heap.c: random pushes and removals against a brute-force minimum;
 * positions always name where each element is. */
#include <stdint.h>
#include "check.h"
#include "heap.h"

#define N 2000

static unsigned long long key[N];
static uint32_t pos[N], v[N];
static size_t n;

static unsigned long long k_of(void *ctx, uint32_t i) { (void)ctx; return key[i]; }
static uint32_t *pos_of(void *ctx, uint32_t i) { (void)ctx; return &pos[i]; }
static const struct heap_ops ops = { k_of, pos_of, 0 };

/* The heap property and the positions, everywhere. */
static int sound(void)
{
  size_t j;
  for (j = 0; j < n; j++) {
    if (pos[v[j]] != j) return 0;
    if (j && key[v[(j - 1) / 2]] > key[v[j]]) return 0;
  }
  return 1;
}

int main(void)
{
  unsigned long long r = 88172645463325252ULL, prev = 0;
  uint32_t i;
  int ok = 1, order = 1;

  for (i = 0; i < N; i++) pos[i] = HEAP_NONE;
  for (i = 0; i < 20000; i++) {
    uint32_t e;
    r ^= r << 13; r ^= r >> 7; r ^= r << 17;
    e = (uint32_t)(r % N);
    if (pos[e] == HEAP_NONE) { key[e] = r % 1000; heap_push(v, &n, e, &ops); }
    else heap_del(v, &n, e, &ops);
    if (i % 97 == 0) ok &= sound();
  }
  CHECK(ok && sound() && n > 0);
  /* Draining from the top gives the keys in order. */
  while (n) {
    uint32_t top = v[0];
    order &= key[top] >= prev;
    prev = key[top];
    heap_del(v, &n, top, &ops);
    order &= pos[top] == HEAP_NONE;
  }
  CHECK(order);
  DONE();
}
