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
 *
 * Options may follow the relay, separated by blanks:
 *
 *   :smtp.example.net:587 tls=starttls    STARTTLS required (the default
 *                                         with credentials)
 *   :smtp.example.net:465 tls=implicit    TLS right after connecting
 *   :relay.example.net tls=none           never TLS
 *   ... verify=no                         TLS without checking the
 *                                         certificate (chain and name)
 *   ... auth=plain-ok                     credentials may be sent without
 *                                         TLS (and TLS falls back to
 *                                         control/tlspolicy)
 *
 * LMTP (RFC 2033) instead of SMTP, to a local delivery agent such as
 * Dovecot's lmtp service:
 *
 *   example.test:lmtp:/run/dovecot/lmtp   a unix socket (absolute path)
 *   example.test:lmtp:127.0.0.1:24        TCP; the port defaults to 24
 *   example.test:lmtp:[::1]:24 tls=starttls
 *
 * "lmtp:" followed by digits alone is still the host "lmtp" and a port.
 *
 * control/smtpauth holds the credentials, "host:user:password" per line,
 * readable by the remote uid only (install makes it 0400). A route whose
 * relay has a line there (or a "*" line) authenticates; its TLS policy is
 * then verify, whatever control/tlspolicy says, unless the route says
 * otherwise.
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

/* One option word w[0..n). */
static int route_opt(const char *w, size_t n, struct route *r, unsigned *seen)
{
  static const struct { const char *word; unsigned bit; int tls; } opts[] = {
    { "tls=starttls", 1, ROUTE_TLS_STARTTLS }, { "tls=implicit", 1, ROUTE_TLS_IMPLICIT },
    { "tls=none", 1, ROUTE_TLS_NONE }, { "tls=dane", 1, ROUTE_TLS_DANE }, { "verify=no", 2, 0 }, { "auth=plain-ok", 4, 0 },
  };
  size_t k;

  for (k = 0; k < sizeof opts / sizeof opts[0]; k++) {
    if (strlen(opts[k].word) != n || strncasecmp(w, opts[k].word, n)) continue;
    if (*seen & opts[k].bit) break;           /* said twice: refuse, never guess */
    *seen |= opts[k].bit;
    if (opts[k].bit == 1) r->tls = opts[k].tls;
    else if (opts[k].bit == 2) r->noverify = 1;
    else r->plainauth = 1;
    return 0;
  }
  errno = EINVAL;
  return -1;
}

int route_parse_opts(const char *s, size_t n, struct route *r)
{
  size_t i = 0, start;
  unsigned seen = 0;

  r->tls = ROUTE_TLS_DEFAULT;
  r->noverify = r->plainauth = 0;
  while (i < n) {
    if (s[i] == ' ' || s[i] == '\t') { i++; continue; }
    for (start = i; i < n && s[i] != ' ' && s[i] != '\t'; i++) ;
    if (route_opt(s + start, i - start, r, &seen) < 0) return -1;
  }
  return 0;
}

/* The relay p[0..n) after "lmtp:" (already removed), into r: a unix
 * socket's absolute path, or a TCP relay. */
static int lmtp_relay(const char *p, size_t n, struct route *r)
{
  if (n && p[0] == '/') {
    memset(r, 0, sizeof *r);
    if (n >= ROUTE_PATHMAX || memchr(p, 0, n)) { errno = EINVAL; return -1; }
    memcpy(r->host, p, n);
    r->host[n] = 0;
    r->lmtp = ROUTE_LMTP_UNIX;
    return 0;
  }
  /* No host name has a '/': a relative socket path is a mistake. */
  if (memchr(p, '/', n) || route_parse_relay(p, n, r) < 0 || r->mx) { errno = EINVAL; return -1; }
  r->lmtp = ROUTE_LMTP_TCP;
  return 0;
}

/* 1 if the relay p[0..n) names LMTP: "lmtp:" and not digits alone. */
static int is_lmtp(const char *p, size_t n)
{
  size_t i;

  if (n <= 5 || strncasecmp(p, "lmtp:", 5)) return 0;
  for (i = 5; i < n; i++)
    if (p[i] < '0' || p[i] > '9') return 1;
  return 0;
}

int route_find(const str *routes, const char *domain, struct route *r)
{
  size_t dlen = strlen(domain), n, rl;
  const char *line, *p;

  line = find_key(routes, domain, dlen, &n);
  /* An address literal has no parent domains: its own key or the default. */
  for (p = domain; !line && *domain != '[' && (p = memchr(p, '.', dlen - (size_t)(p - domain))); p++)
    line = find_key(routes, p, dlen - (size_t)(p - domain), &n);
  if (!line) line = find_key(routes, "", 0, &n);
  if (!line) return 0;
  p = (const char *)memchr(line, ':', n) + 1;
  n -= (size_t)(p - line);
  for (rl = 0; rl < n && p[rl] != ' ' && p[rl] != '\t'; rl++) ;
  if (is_lmtp(p, rl) ? lmtp_relay(p + 5, rl - 5, r) < 0 : route_parse_relay(p, rl, r) < 0) return -1;
  if (route_parse_opts(p + rl, n - rl, r) < 0) return -1;
  /* Options on an MX entry would be silently meaningless: refuse them;
   * so with a unix socket (no TLS), and auth=plain-ok with LMTP (no AUTH). */
  if ((r->mx || r->lmtp == ROUTE_LMTP_UNIX) && (r->tls || r->noverify || r->plainauth)) { errno = EINVAL; return -1; }
  if (r->lmtp && r->plainauth) { errno = EINVAL; return -1; }
  return 1;
}

/* The host key of a control/smtpauth line, brackets removed: its length
 * and where the user starts, or 0 for a malformed line. */
static size_t auth_key(const char *line, const char **key, const char **rest)
{
  const char *end;

  if (line[0] == '[') {
    end = strchr(line, ']');
    if (!end || end[1] != ':') return 0;
    *key = line + 1;
    *rest = end + 2;
    return (size_t)(end - line - 1);
  }
  end = strchr(line, ':');
  if (!end || end == line) return 0;
  *key = line;
  *rest = end + 1;
  return (size_t)(end - line);
}

int auth_find(str *buf, const char *host, const char **user, const char **pass)
{
  const char *line, *key, *rest, *colon, *any = 0;
  size_t i, kl, hl = strlen(host);
  int r;

  *user = *pass = 0;
  r = control_lines(buf, "control/smtpauth");
  if (r <= 0) return r;
  for (i = 0; i < buf->len; i += strlen(line) + 1) {
    line = buf->s + i;
    kl = auth_key(line, &key, &rest);
    colon = kl ? strchr(rest, ':') : 0;
    if (!colon || colon == rest) { errno = EINVAL; return -1; }
    if (kl == hl && !strncasecmp(key, host, hl)) { any = line; break; }
    if (kl == 1 && *key == '*' && !any) any = line;
  }
  if (!any) return 0;
  auth_key(any, &key, &rest);
  /* The user ends at the next ':'; the password is all the rest, which
   * control_lines has stripped of trailing white space. */
  colon = strchr(rest, ':');
  buf->s[colon - buf->s] = 0;
  *user = rest;
  *pass = colon + 1;
  return 1;
}
