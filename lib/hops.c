/* Hop counting (hops.h). */
#include <string.h>
#include "hops.h"

void hops_init(struct hops *h)
{
  h->inhdr = 1;
  h->col = 0;
  h->count = 0;
}

void hops_feed(struct hops *h, const char *s, size_t n)
{
  size_t i;
  for (i = 0; i < n && h->inhdr; i++) {
    if (s[i] != '\n') {
      unsigned char c = (unsigned char)s[i];
      if (h->col < sizeof h->pre) h->pre[h->col++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
      continue;
    }
    if (h->col == 0) { h->inhdr = 0; break; }
    if ((h->col >= 9 && memcmp(h->pre, "received:", 9) == 0)
        || (h->col >= 13 && memcmp(h->pre, "delivered-to:", 13) == 0))
      h->count++;
    h->col = 0;
  }
}
