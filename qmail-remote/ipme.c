/* "Is this address this host?" for the MX list (remote.h, "ipme.c"), as
 * qmail's ipme: every address of every interface, from getifaddrs, read
 * again for each delivery that looks up an MX. Loopback (127.0.0.0/8,
 * ::1) and unspecified (0.0.0.0/8, ::) addresses, also IPv4-mapped, are
 * this host too: from the DNS they can only point back here. */
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include "remote.h"

#define IPME_MAX 256

static struct raddr me[IPME_MAX];
static size_t nme;

/* The IPv4 address of a (a v4 one or a v4-mapped v6 one) in *v4, host
 * order: 1, or 0 for a real IPv6 address. */
static int v4of(const struct raddr *a, unsigned long *v4)
{
  const unsigned char *b;

  if (a->sa.ss_family == AF_INET) {
    b = (const unsigned char *)&((const struct sockaddr_in *)&a->sa)->sin_addr;
  } else {
    const struct in6_addr *x = &((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
    if (!IN6_IS_ADDR_V4MAPPED(x)) return 0;
    b = x->s6_addr + 12;
  }
  *v4 = (unsigned long)b[0] << 24 | (unsigned long)b[1] << 16 | (unsigned long)b[2] << 8 | b[3];
  return 1;
}

int ip_loopback(const struct raddr *a)
{
  unsigned long v4;

  if (v4of(a, &v4)) return (v4 >> 24) == 127 || (v4 >> 24) == 0;
  return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr) ||
         IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
}

/* Same address, ignoring the port (and v4 against v4-mapped). */
static int same(const struct raddr *a, const struct raddr *b)
{
  unsigned long x, y;
  int ax = v4of(a, &x), bx = v4of(b, &y);

  if (ax || bx) return ax && bx && x == y;
  return !memcmp(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr,
                 &((const struct sockaddr_in6 *)&b->sa)->sin6_addr, sizeof(struct in6_addr));
}

int ipme_load(void)
{
  struct ifaddrs *ifa, *p;

  nme = 0;
  if (getifaddrs(&ifa) < 0) return -1;
  for (p = ifa; p && nme < IPME_MAX; p = p->ifa_next) {
    if (!p->ifa_addr || (p->ifa_addr->sa_family != AF_INET && p->ifa_addr->sa_family != AF_INET6)) continue;
    memset(&me[nme], 0, sizeof me[nme]);
    me[nme].len = p->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    memcpy(&me[nme].sa, p->ifa_addr, me[nme].len);
    nme++;
  }
  freeifaddrs(ifa);
  return 0;
}

int ipme(const struct raddr *a, int loopback_ok)
{
  size_t i;

  if (ip_loopback(a)) return !loopback_ok;
  for (i = 0; i < nme; i++)
    if (!ip_loopback(&me[i]) && same(a, &me[i])) return 1;
  return 0;
}
