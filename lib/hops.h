#ifndef HOPS_H
#define HOPS_H
/* Mail loops: the hop count of a message is the number of "Received:" and
 * "Delivered-To:" header lines (ASCII case ignored) in its text (LF line
 * ends), up to the empty line that ends the header. One limit for the
 * whole system: qmail-smtpd refuses a message that has MAXHOPS or more
 * (554 5.4.6), and qmail-remote will not send one (a permanent 5.4.6
 * failure), so a loop through a relay or a DNS record pointing back here
 * ends in a bounce after a few dozen passes. 50 is Postfix's
 * hopcount_limit; every pass through qmail-smtpd and the queue adds two. */
#include <stddef.h>

#define MAXHOPS 50

struct hops {
  int inhdr;           /* 1 until the empty line */
  size_t col;          /* bytes of the current line, saturating */
  char pre[13];        /* its first bytes, lowercased */
  unsigned long count;
};

void hops_init(struct hops *h);
/* Counts in the next n bytes; may be fed any pieces. */
void hops_feed(struct hops *h, const char *s, size_t n);

#endif
