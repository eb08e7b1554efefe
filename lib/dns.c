/* lib/dns.h's lookups. Error mapping as stated there. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "control.h"
#include "date.h"
#include "dns.h"

/* Longest CNAME chain followed, across queries. */
#define CNAME_HOPS 8

static struct __res_state rs;
static int ready;
static int last_ad;
static unsigned long long deadline;   /* dns_deadline's; 0: none */
static int ad_all;
static int own_server;             /* control/dnsserver named the server */
static unsigned char ans[NS_MAXMSG];

int ip_parse(const char *s, struct raddr *a)
{
  struct sockaddr_in *v4 = (struct sockaddr_in *)&a->sa;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->sa;

  memset(a, 0, sizeof *a);
  if (inet_pton(AF_INET, s, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    a->len = sizeof *v4;
    return 1;
  }
  if (inet_pton(AF_INET6, s, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    a->len = sizeof *v6;
    return 1;
  }
  return 0;
}

/* Cuts the next blank-separated word of *p in place; NULL at the end. */
static char *word(char **p)
{
  char *w = *p;
  while (*w == ' ' || *w == '\t') w++;
  if (!*w) return 0;
  *p = w;
  while (**p && **p != ' ' && **p != '\t') (*p)++;
  if (**p) *(*p)++ = 0;
  return w;
}

int dns_hosts(const char *path, const char *host, struct raddr *out, size_t max, size_t *n)
{
  str lines = STR_INIT;
  size_t i, len, hl = strlen(host);
  char *line, *p, *addr, *name;

  *n = 0;
  if (hl && host[hl - 1] == '.') hl--;            /* absolute form */
  if (control_lines(&lines, path) <= 0) { str_free(&lines); return DNS_NX; }
  for (i = 0; i < lines.len && *n < max; i += len + 1) {
    line = lines.s + i;
    len = strlen(line);                           /* before the cuts below */
    p = strchr(line, '#');
    if (p) *p = 0;
    p = line;
    if (!(addr = word(&p))) continue;
    while ((name = word(&p)))
      if (strlen(name) == hl && !strncasecmp(name, host, hl)) {
        if (ip_parse(addr, &out[*n])) (*n)++;
        break;
      }
  }
  str_free(&lines);
  return *n ? DNS_OK : DNS_NX;
}

int dns_init(const str *server)
{
  char ip[64];
  const char *colon;
  size_t iplen;
  unsigned long long port = NS_DEFAULTPORT;
  struct sockaddr_in sin;

  /* Once per process: a delivery is one process. */
  if (ready) return 0;
  if (server->len) {
    /* control/dnsserver replaces every configured server, so that a test
     * (or a site) talks to exactly this one, never to resolv.conf's. */
    colon = memchr(server->s, ':', server->len);
    iplen = colon ? (size_t)(colon - server->s) : server->len;
    if (iplen >= sizeof ip) { errno = EINVAL; return -1; }
    memcpy(ip, server->s, iplen);
    ip[iplen] = 0;
    if (colon && (scan_ulong(colon + 1, server->len - iplen - 1, &port) < 0 ||
                  port == 0 || port > 65535)) { errno = EINVAL; return -1; }
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1) { errno = EINVAL; return -1; }
  }
  if (res_ninit(&rs) != 0) return -1;
  /* Names are absolute: never try search-list suffixes. */
  rs.options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
  if (server->len) {
    rs.nsaddr_list[0] = sin;
    rs.nscount = 1;
    own_server = 1;
  }
  ready = 1;
  return 0;
}

void dns_limits(unsigned timeout, unsigned tries)
{
  rs.retrans = timeout ? (int)timeout : 1;
  rs.retry = tries ? (int)tries : 1;
}

void dns_deadline(unsigned long long deadline_ms)
{
  deadline = deadline_ms;
}

/* Fits rs's tries and timeout into the time left before the deadline:
 * libresolv waits retrans << try seconds on try, so the sum over tries
 * is retrans * (2^retry - 1). 0, or -1 when no time is left. */
static int fit_deadline(void)
{
  unsigned long long now = mono_ms(), left;

  if (now >= deadline) return -1;
  left = (deadline - now + 999) / 1000;
  while (rs.retry > 1 && (unsigned long long)rs.retrans * ((1ULL << rs.retry) - 1) > left)
    rs.retry--;
  if ((unsigned long long)rs.retrans > left) rs.retrans = (int)left;
  return 0;
}

void dns_interrupt(void)
{
  /* rs is zeroed until res_ninit, which sets _vcsock to -1: fd 0 is
   * never touched. */
  if (ready && rs._vcsock >= 0) shutdown(rs._vcsock, SHUT_RDWR);
}

int dns_last_ad(void)
{
  return last_ad;
}

int dns_dnssec(void)
{
  const struct sockaddr_in *s = &rs.nsaddr_list[0];

  rs.options |= RES_USE_EDNS0 | RES_USE_DNSSEC;
#ifdef RES_TRUSTAD
  rs.options |= RES_TRUSTAD;
#endif
  return own_server && rs.nscount == 1 && s->sin_family == AF_INET &&
         (ntohl(s->sin_addr.s_addr) >> 24) == 127;
}

void dns_ad_begin(void)
{
  ad_all = 1;
}

int dns_ad_since(void)
{
  return ad_all;
}

/* One query. Returns the answer length, or DNS_NX / DNS_NODATA / DNS_TEMP. */
static int query(const char *name, int type)
{
  int n, retrans = rs.retrans, retry = rs.retry;

  /* Without dns_init the state is zeroed: never a query through it. */
  if (!ready) return DNS_TEMP;
  if (deadline && fit_deadline() < 0) return DNS_TEMP;
  /* A truncated answer (TC) is never an answer: libresolv retries it over
   * TCP, and what comes back truncated even there (or an error code on a
   * truncated reply) says nothing certain, so a "no such domain" in it
   * must not bounce mail. libresolv fills ans also when it returns -1 for
   * NXDOMAIN or NODATA. */
  memset(ans, 0, NS_HFIXEDSZ);
  n = res_nquery(&rs, name, ns_c_in, type, ans, sizeof ans);
  rs.retrans = retrans;
  rs.retry = retry;
  last_ad = ((const HEADER *)ans)->ad;
  ad_all &= last_ad;
  if (((const HEADER *)ans)->tc) return DNS_TEMP;
  if (n >= 0) return n;
  switch (rs.res_h_errno) {
  case HOST_NOT_FOUND: return DNS_NX;
  case NO_DATA: return DNS_NODATA;
  default: return DNS_TEMP;   /* TRY_AGAIN, NO_RECOVERY, NETDB_INTERNAL */
  }
}

/* Calls each(rr, ctx) for every answer record of type that belongs to name
 * once the CNAMEs in the answer are followed; a CNAME target with no
 * record in this answer is returned in next (re-query it). Returns the
 * number of records passed to each, or DNS_TEMP if the answer is bad. */
static int walk(int len, const char *name, int type, char next[DNS_NAMEMAX],
                int (*each)(const ns_msg *m, const ns_rr *rr, void *ctx), void *ctx)
{
  ns_msg m;
  ns_rr rr;
  char cur[DNS_NAMEMAX];
  int i, count, hops, found = 0, moved = 0;

  if (ns_initparse(ans, len, &m) < 0) return DNS_TEMP;
  count = ns_msg_count(m, ns_s_an);
  if (strlen(name) >= sizeof cur) return DNS_TEMP;
  strcpy(cur, name);
  /* Follow the chain inside this answer; each hop must move forward. */
  for (hops = 0; hops < CNAME_HOPS; hops++) {
    int step = 0;
    for (i = 0; i < count; i++) {
      if (ns_parserr(&m, ns_s_an, i, &rr) < 0) return DNS_TEMP;
      if (ns_rr_type(rr) != ns_t_cname || strcasecmp(ns_rr_name(rr), cur)) continue;
      if (ns_name_uncompress(ns_msg_base(m), ns_msg_end(m), ns_rr_rdata(rr), cur, sizeof cur) < 0)
        return DNS_TEMP;
      step = moved = 1;
      break;
    }
    if (!step) break;
  }
  for (i = 0; i < count; i++) {
    if (ns_parserr(&m, ns_s_an, i, &rr) < 0) return DNS_TEMP;
    if ((int)ns_rr_type(rr) != type || strcasecmp(ns_rr_name(rr), cur)) continue;
    if (each(&m, &rr, ctx) < 0) return DNS_TEMP;
    found++;
  }
  next[0] = 0;
  if (!found && moved) strcpy(next, cur);
  return found;
}

int dns_lookup(const char *name, int type,
                  int (*each)(const ns_msg *m, const ns_rr *rr, void *ctx), void *ctx)
{
  char cur[DNS_NAMEMAX], next[DNS_NAMEMAX];
  int hop, len, r;

  if (strlen(name) >= sizeof cur) return DNS_NX;
  strcpy(cur, name);
  for (hop = 0; hop < CNAME_HOPS; hop++) {
    len = query(cur, type);
    if (len < 0) return len;
    r = walk(len, cur, type, next, each, ctx);
    if (r != 0 || !next[0]) return r ? r : DNS_NODATA;
    strcpy(cur, next);
  }
  return DNS_TEMP;   /* a loop or an absurd chain: somebody will fix it */
}

struct mxctx {
  struct mx *out;
  size_t max, n;
  int nullmx;
};

static int each_mx(const ns_msg *m, const ns_rr *rr, void *v)
{
  struct mxctx *c = v;
  struct mx *x;

  if (ns_rr_rdlen(*rr) < 3) return -1;
  if (c->n == c->max) return 0;   /* more than we would ever try */
  x = c->out + c->n;
  x->pref = ns_get16(ns_rr_rdata(*rr));
  if (ns_name_uncompress(ns_msg_base(*m), ns_msg_end(*m), ns_rr_rdata(*rr) + 2,
                         x->name, sizeof x->name) < 0) return -1;
  /* RFC 7505: the root as exchange means "this domain takes no mail". */
  if (!x->name[0] || !strcmp(x->name, ".")) { c->nullmx = 1; return 0; }
  c->n++;
  return 0;
}

static void sort_mx(struct mx *x, size_t n)
{
  size_t i, j, start;
  struct mx t;

  for (i = 1; i < n; i++)
    for (j = i; j > 0 && x[j - 1].pref > x[j].pref; j--) {
      t = x[j]; x[j] = x[j - 1]; x[j - 1] = t;
    }
  /* RFC 5321 5.1: hosts of equal preference are tried in random order,
   * spreading the load. Fisher-Yates within each run of equal pref. */
  for (start = 0; start < n; start = i) {
    for (i = start + 1; i < n && x[i].pref == x[start].pref; i++) {}
    for (j = i - 1; j > start; j--) {
      size_t k = start + arc4random_uniform((unsigned)(j - start + 1));
      t = x[j]; x[j] = x[k]; x[k] = t;
    }
  }
}

int dns_mx(const char *domain, struct mx *out, size_t max, size_t *n)
{
  struct mxctx c = { out, max, 0, 0 };
  int r;

  *n = 0;
  r = dns_lookup(domain, ns_t_mx, each_mx, &c);
  if (r == DNS_NX || r == DNS_TEMP) return r;
  if (c.nullmx && !c.n) return DNS_NULLMX;
  if (c.n) {
    sort_mx(out, c.n);
    *n = c.n;
    return DNS_OK;
  }
  /* RFC 5321 5.1: no MX records, so the domain itself is the host. */
  if (max == 0 || strlen(domain) >= sizeof out->name) return DNS_NX;
  out->pref = 0;
  strcpy(out->name, domain);
  *n = 1;
  return DNS_OK;
}

struct addrctx {
  struct raddr *out;
  size_t max, n;
};

static int each_addr(const ns_msg *m, const ns_rr *rr, void *v)
{
  struct addrctx *c = v;
  struct raddr *a;

  (void)m;
  if (c->n == c->max) return 0;
  a = c->out + c->n;
  memset(a, 0, sizeof *a);
  if (ns_rr_type(*rr) == ns_t_aaaa) {
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->sa;
    if (ns_rr_rdlen(*rr) != 16) return -1;
    v6->sin6_family = AF_INET6;
    memcpy(&v6->sin6_addr, ns_rr_rdata(*rr), 16);
    a->len = sizeof *v6;
  } else {
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a->sa;
    if (ns_rr_rdlen(*rr) != 4) return -1;
    v4->sin_family = AF_INET;
    memcpy(&v4->sin_addr, ns_rr_rdata(*rr), 4);
    a->len = sizeof *v4;
  }
  c->n++;
  return 0;
}

int dns_addrs(const char *host, struct raddr *out, size_t max, size_t *n)
{
  struct addrctx c = { out, max, 0 };
  int r6, r4;

  *n = 0;
  r6 = dns_lookup(host, ns_t_aaaa, each_addr, &c);
  if (r6 == DNS_NX) return DNS_NX;   /* the name does not exist at all */
  r4 = dns_lookup(host, ns_t_a, each_addr, &c);
  *n = c.n;
  if (c.n) return DNS_OK;
  if (r6 == DNS_TEMP || r4 == DNS_TEMP) return DNS_TEMP;
  return r4 == DNS_NX ? DNS_NX : DNS_NODATA;
}

struct txtctx {
  int (*each)(const char *txt, size_t len, void *ctx);
  void *ctx;
};

static char txtbuf[DNS_TXTMAX + 1];

static int each_txt(const ns_msg *m, const ns_rr *rr, void *v)
{
  struct txtctx *c = v;
  const unsigned char *p = ns_rr_rdata(*rr), *end = p + ns_rr_rdlen(*rr);
  size_t n = 0;

  (void)m;
  /* rdata is a sequence of <length octet, octets>; the rdlen bound keeps
   * the total under 64 KiB, so txtbuf always has room. */
  while (p < end) {
    size_t l = *p++;
    if (l > (size_t)(end - p)) return -1;
    memcpy(txtbuf + n, p, l);
    n += l;
    p += l;
  }
  txtbuf[n] = 0;
  return c->each(txtbuf, n, c->ctx);
}

int dns_txt(const char *name, int (*each)(const char *txt, size_t len, void *ctx), void *ctx)
{
  struct txtctx c = { each, ctx };

  return dns_lookup(name, ns_t_txt, each_txt, &c);
}

/* --- dns_parallel ------------------------------------------------------- */

/* Milliseconds on the monotonic clock. */
static long long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The answer in p (len octets) to query id for name: the result as
 * dns_parallel's res[i], calling each for its records. */
static int par_answer(const unsigned char *p, int len, unsigned id, const char *name, int type,
                      size_t i, int (*each)(size_t, const ns_msg *, const ns_rr *, void *), void *ctx)
{
  ns_msg m;
  ns_rr rr;
  int k, count, found = 0;

  if (ns_initparse(p, len, &m) < 0 || ns_msg_id(m) != id || ns_msg_getflag(m, ns_f_qr) != 1)
    return DNS_TEMP;
  if (ns_msg_getflag(m, ns_f_tc)) return DNS_TEMP;
  if (ns_msg_count(m, ns_s_qd) != 1 || ns_parserr(&m, ns_s_qd, 0, &rr) < 0
      || (int)ns_rr_type(rr) != type || strcasecmp(ns_rr_name(rr), name)) return DNS_TEMP;
  if (ns_msg_getflag(m, ns_f_rcode) == ns_r_nxdomain) return DNS_NX;
  if (ns_msg_getflag(m, ns_f_rcode) != ns_r_noerror) return DNS_TEMP;
  count = ns_msg_count(m, ns_s_an);
  for (k = 0; k < count; k++) {
    if (ns_parserr(&m, ns_s_an, k, &rr) < 0) return DNS_TEMP;
    if ((int)ns_rr_type(rr) != type || strcasecmp(ns_rr_name(rr), name)) continue;
    if (each(i, &m, &rr, ctx) < 0) return DNS_TEMP;
    found++;
  }
  return found ? found : DNS_NODATA;
}

void dns_parallel(const char *const *names, size_t n, int type, unsigned ms, int *res,
                  int (*each)(size_t i, const ns_msg *m, const ns_rr *rr, void *ctx), void *ctx)
{
  static unsigned char q[NS_PACKETSZ], a[NS_PACKETSZ];
  struct pollfd pf[DNS_PARMAX];
  unsigned id[DNS_PARMAX];
  size_t i, pending = 0;
  long long end = now_ms() + ms, left;
  int len;

  if (n > DNS_PARMAX) n = DNS_PARMAX;
  for (i = 0; i < n; i++) {
    res[i] = DNS_TEMP;
    pf[i].fd = -1;
    pf[i].events = POLLIN;
    if (!ready || rs.nscount < 1 || rs.nsaddr_list[0].sin_family != AF_INET) continue;
    len = res_nmkquery(&rs, ns_o_query, names[i], ns_c_in, type, 0, 0, 0, q, sizeof q);
    if (len < NS_HFIXEDSZ) continue;
    id[i] = ns_get16(q);
    pf[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (pf[i].fd < 0) continue;
    if (connect(pf[i].fd, (struct sockaddr *)&rs.nsaddr_list[0], sizeof rs.nsaddr_list[0]) < 0
        || send(pf[i].fd, q, (size_t)len, 0) != len) {
      close(pf[i].fd);
      pf[i].fd = -1;
      continue;
    }
    pending++;
  }
  /* Each socket gets one answer: a stray datagram that is not it ends
   * that lookup as DNS_TEMP rather than letting a flood extend the wait. */
  while (pending && (left = end - now_ms()) > 0) {
    if (poll(pf, n, (int)left) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (i = 0; i < n; i++) {
      ssize_t r;
      if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
      r = recv(pf[i].fd, a, sizeof a, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r >= NS_HFIXEDSZ) res[i] = par_answer(a, (int)r, id[i], names[i], type, i, each, ctx);
      close(pf[i].fd);
      pf[i].fd = -1;
      pending--;
    }
  }
  for (i = 0; i < n; i++)
    if (pf[i].fd >= 0) close(pf[i].fd);
}
