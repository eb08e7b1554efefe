/* control/smtproutes, one route per line:
 *
 *   example.test:relay.example.net        this domain via that host, port 25
 *   example.test:relay.example.net:2525   ... on port 2525
 *   .example.test:[2001:db8::1]:2525      every subdomain; IPv6 literal
 *   example.test:                         empty relay: use the MX (an
 *                                         exception to a wider route)
 *   :smarthost.example.net:587            everything else (default route)
 *
 * The first line matching a key wins; keys are tried from the most
 * specific: the exact domain, then ".parent" for each parent from the
 * longest, then "" (the default). Without a port, control/smtpport.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include "control.h"
#include "remote.h"

int route_parse_relay(const char *s, size_t n, struct route *r)
{
  const char *host = s, *rest;
  size_t hlen;
  unsigned long long port;
  struct raddr a;

  memset(r, 0, sizeof *r);
  if (n == 0) { r->mx = 1; return 0; }
  if (s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (!close) { errno = EINVAL; return -1; }
    host = s + 1;
    hlen = (size_t)(close - host);
    rest = close + 1;
  } else {
    const char *colon = memchr(s, ':', n);
    hlen = colon ? (size_t)(colon - s) : n;
    rest = s + hlen;
  }
  if (hlen == 0 || hlen >= sizeof r->host) { errno = EINVAL; return -1; }
  memcpy(r->host, host, hlen);
  r->host[hlen] = 0;
  if (memchr(r->host, 0, hlen)) { errno = EINVAL; return -1; }
  if (rest < s + n) {
    if (*rest != ':' || scan_ulong(rest + 1, (size_t)(s + n - rest - 1), &port) < 0 ||
        port == 0 || port > 65535) { errno = EINVAL; return -1; }
    r->port = (unsigned long)port;
  }
  r->literal = ip_parse(r->host, &a);
  /* A bracketed name is not a literal: refuse rather than guess. */
  if (s[0] == '[' && !r->literal) { errno = EINVAL; return -1; }
  return 0;
}

/* The line in routes whose key equals key[0..klen), ignoring ASCII case. */
static const char *find_key(const str *routes, const char *key, size_t klen, size_t *linelen)
{
  size_t i = 0;

  while (i < routes->len) {
    const char *line = routes->s + i;
    size_t n = strlen(line);
    const char *colon = memchr(line, ':', n);
    if (colon && (size_t)(colon - line) == klen && !strncasecmp(line, key, klen)) {
      *linelen = n;
      return line;
    }
    i += n + 1;
  }
  return 0;
}

int route_find(const str *routes, const char *domain, struct route *r)
{
  size_t dlen = strlen(domain), n;
  const char *line, *p;

  line = find_key(routes, domain, dlen, &n);
  for (p = domain; !line && (p = memchr(p, '.', dlen - (size_t)(p - domain))); p++)
    line = find_key(routes, p, dlen - (size_t)(p - domain), &n);
  if (!line) line = find_key(routes, "", 0, &n);
  if (!line) return 0;
  p = (const char *)memchr(line, ':', n) + 1;
  if (route_parse_relay(p, n - (size_t)(p - line), r) < 0) return -1;
  return 1;
}
