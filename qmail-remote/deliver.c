/* One remote delivery: read the control files, pick the hosts (route, MX,
 * or address literal), connect to their addresses in order until one
 * session gives final results, and report.
 *
 * A host is abandoned for the next only when the connection or the SMTP
 * handshake fails; once a mail transaction has begun, its results stand.
 * When no host could be used the results are 'Z' ("connect:" or "dns:")
 * unless the DNS said for certain that the domain cannot take mail.
 *
 * The TLS policy is decided per host (host_policy): under dane and
 * dane-only, DANE (dane.h) applies to a host whose name came from a
 * signed MX answer or a route, when the resolver's AD bit is believed.
 *
 * A worker's delivery (j->keep) first offers the connection kept from its
 * last delivery (smtp_reuse), under a key naming everything that chose
 * the server and the session: the domain, the route's relay and port (or
 * the MX), the TLS policy and options, the credentials, the HELO name and
 * the source address. Reuse skips the DNS: the kept connection goes to
 * the host the lookup gave at most KEEP_AGE_MS ago (smtpclient.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "dane.h"
#include "log.h"
#include "hops.h"
#include "mtasts.h"
#include "remote.h"

/* Connection attempts per delivery, whatever the DNS returns: with a 60 s
 * connect timeout this bounds one delivery to about 16 minutes. */
#define MAX_ATTEMPTS 16
#define TIMEOUT_MAX 86400ul

void result_set(struct rresult *r, char code, const char *tag, const char *a,
                const char *b, size_t blen)
{
  size_t i;
  r->code = code;
  r->len = 0;
  /* Append tag, ": ", a, b, cutting at SPAWN_TEXT bytes. */
  for (i = 0; tag[i] && r->len < SPAWN_TEXT; i++) r->text[r->len++] = tag[i];
  for (i = 0; i < 2 && r->len < SPAWN_TEXT; i++) r->text[r->len++] = ": "[i];
  for (i = 0; a[i] && r->len < SPAWN_TEXT; i++) r->text[r->len++] = a[i];
  for (i = 0; i < blen && r->len < SPAWN_TEXT; i++) r->text[r->len++] = b[i];
  for (i = 0; i < r->len; i++) {
    unsigned char c = (unsigned char)r->text[i];
    if ((c < 32 && c != '\n') || c == 127) r->text[i] = '?';
  }
}

/* Every recipient gets "<tag>: <a><b>". */
static void all(struct rjob *j, char code, const char *tag, const char *a, const char *b)
{
  size_t i;
  for (i = 0; i < j->nrcpt; i++) result_set(&j->res[i], code, tag, a, b, strlen(b));
}

static int timeout_file(unsigned long *out, const char *path, unsigned long def)
{
  if (control_ulong(out, path, def) < 0) return -1;
  if (*out == 0) *out = 1;   /* 0 would mean "no timeout" to buf.h */
  if (*out > TIMEOUT_MAX) *out = TIMEOUT_MAX;
  return 0;
}

int rconf_load(struct rconf *c, str *err)
{
  str ip = STR_INIT;
  struct raddr a;
  const char *bad = 0;
  size_t i;
  int r;

  if (timeout_file(&c->timeoutconnect, "control/timeoutconnect", 60) < 0) bad = "control/timeoutconnect";
  else if (timeout_file(&c->timeoutremote, "control/timeoutremote", 1200) < 0) bad = "control/timeoutremote";
  else if (control_ulong(&c->port, "control/smtpport", 25) < 0 || !c->port || c->port > 65535) bad = "control/smtpport";
  else if ((r = control_line(&c->helohost, "control/helohost")) < 0 ||
           (!r && control_line(&c->helohost, "control/me") <= 0) || !c->helohost.len) bad = "control/helohost or control/me";
  else if (control_lines(&c->routes, "control/smtproutes") < 0) bad = "control/smtproutes";
  else if (control_line(&c->dnsserver, "control/dnsserver") < 0) bad = "control/dnsserver";
  else if (control_lines(&c->tlspolicy, "control/tlspolicy") < 0) bad = "control/tlspolicy";
  else if (control_ulong(&c->dnsloopback, "control/dnsloopback", 0) < 0 || c->dnsloopback > 1) bad = "control/dnsloopback";
  else if (timeout_file(&c->timeoutreply, "control/timeoutreply", 300) < 0) bad = "control/timeoutreply";
  else if (control_ulong(&c->datarate, "control/datarate", 500) < 0 || !c->datarate) bad = "control/datarate";
  else if ((r = control_line(&ip, "control/outgoingip")) < 0 || (r && (str_0(&ip) < 0 || !ip_parse(ip.s, &a))))
    bad = "control/outgoingip";
  else if (r) memcpy(&c->bind, &a.sa, sizeof c->bind);
  if (c->datarate > 1000000000ul) c->datarate = 1000000000ul;   /* keeps the deadline's sum in range */
  for (i = 0; !bad && i < c->helohost.len; i++)
    if ((unsigned char)c->helohost.s[i] <= ' ' || c->helohost.s[i] == 127) bad = "control/helohost";
  str_free(&ip);
  if (!bad) return 0;
  err->len = 0;
  if (str_cats(err, "cannot use ") < 0 || str_cats(err, bad) < 0) err->len = 0;
  return -1;
}

void rconf_free(struct rconf *c)
{
  str_free(&c->helohost);
  str_free(&c->routes);
  str_free(&c->dnsserver);
  str_free(&c->tlspolicy);
}

/* Closes fd, keeping errno: -1. */
static int close_fail(int fd)
{
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* The connected fd made blocking: the session uses blocking I/O bounded
 * by poll (buf.h). fd, or -1 (closed). */
static int blocking(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) return close_fail(fd);
  return fd;
}

/* Connects to a:port within the connect timeout, from control/outgoingip
 * when its family matches. The socket, or -1 with errno set. */
static int tcp_connect(const struct raddr *a, unsigned long port, const struct rconf *c)
{
  struct sockaddr_storage sa = a->sa;
  int fd, e = 0, on = 1;
  socklen_t elen = sizeof e;

  if (sa.ss_family == AF_INET) ((struct sockaddr_in *)&sa)->sin_port = htons((unsigned short)port);
  else ((struct sockaddr_in6 *)&sa)->sin6_port = htons((unsigned short)port);
  fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  /* Every write is a whole command, or a chunk of the message ending in a
   * whole line: none should wait for the server's delayed ACK. */
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0) goto fail;
  if (c->bind.ss_family == sa.ss_family &&
      bind(fd, (const struct sockaddr *)&c->bind,
           sa.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) < 0)
    goto fail;
  if (connect(fd, (struct sockaddr *)&sa, a->len) < 0) {
    if (errno != EINPROGRESS) goto fail;
    if (fd_wait(fd, 1, (int)c->timeoutconnect) < 0) goto fail;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0) goto fail;
    if (e) { errno = e; goto fail; }
  }
  return blocking(fd);
fail:
  return close_fail(fd);
}

static void ip_text(const struct raddr *a, char *out, size_t n)
{
  const void *p = a->sa.ss_family == AF_INET
    ? (const void *)&((const struct sockaddr_in *)&a->sa)->sin_addr
    : (const void *)&((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
  if (!inet_ntop(a->sa.ss_family, p, out, (socklen_t)n)) strcpy(out, "?");
}

/* What the delivery loop learnt about the hosts it could not use. */
struct tried {
  int attempts;
  int soft;        /* a temporary DNS failure or a failed connection */
  const char *tag; /* of the last failure */
  str why;         /* its text */
  int tlspolicy;   /* the domain's, from control/tlspolicy */
  struct sessopts o; /* TLS and AUTH for the hosts tried */
  int explicit;    /* a line of control/tlspolicy gave tlspolicy */
  int dflt;        /* o.policy is the MX default, no line of tlspolicy */
  int secure;      /* the resolver's AD bit is believed (dns_dnssec) */
  int signedname;  /* the hosts' names came from a signed MX answer, or a route */
};

static void note(struct tried *t, const char *tag, const char *a, const char *b, const char *c)
{
  t->soft = 1;
  t->tag = tag;
  t->why.len = 0;
  if (str_cats(&t->why, a) < 0 || str_cats(&t->why, b) < 0 || str_cats(&t->why, c) < 0) t->why.len = 0;
}

/* The last failure's text, NUL-terminated. */
static const char *why(struct tried *t)
{
  return t->why.len && str_0(&t->why) == 0 ? t->why.s : "no usable host";
}

/* Under the may policy a server whose STARTTLS is broken gets the mail in
 * plaintext, as Postfix does, on a new connection to the same address
 * (the failed one is in an unknown state): otherwise the mail would wait
 * for TLS that may never work and bounce when it expires. Never under a
 * policy that requires TLS: smtp_session_opts gives SMTP_NOTLS only for
 * may. The plaintext connection may be kept under the same key: may
 * accepts plaintext. SMTP_FINAL or SMTP_NEXTHOST. */
static int plain_retry(struct rjob *j, const struct rconf *c, const struct raddr *a, const char *ip,
                       const char *host, int literal, unsigned long port, struct tried *t, str *why)
{
  struct sessopts o = t->o;
  int fd;

  log_begin("qmail-remote", "tls_fallback");
  log_kv("ip", ip);
  log_kv("host", host);
  log_kb("reason", why->s, why->len);
  log_end();
  if (t->attempts >= MAX_ATTEMPTS) return SMTP_NEXTHOST;
  t->attempts++;
  fd = tcp_connect(a, port, c);
  if (fd < 0) {
    const char *e = errno == ETIMEDOUT ? "connection timed out" : strerror(errno);
    why->len = 0;
    if (str_cats(why, ip) < 0 || str_cats(why, ": ") < 0 || str_cats(why, e) < 0) why->len = 0;
    return SMTP_NEXTHOST;
  }
  o.policy = TLS_NONE;
  return smtp_session_opts(fd, ip, host, literal, &o, c, j, why);
}

/* The MTA-STS policy of the delivery's domain (mtasts.h), MX deliveries
 * only: a static route is the operator's choice, as in Postfix. */
static struct sts sts;

/* After a session to host under a testing or enforce policy: its line in
 * the TLS-RPT day file, and under testing, when TLS failed the policy, at
 * once a new connection under the domain's own TLS policy (never kept:
 * its key says verify). SMTP_* as smtp_session_opts. A host whose
 * policy the DANE check set (host_policy) is DANE's alone (RFC 8461
 * section 2) and is left as it is. */
static int sts_session(struct rjob *j, const struct rconf *c, const struct raddr *a, const char *ip,
                       const char *host, unsigned long port, struct tried *t, const struct sessopts *ho,
                       int r, str *why)
{
  struct sessopts o = *ho;
  const char *type;
  int fd;

  if ((sts.mode != STS_MODE_TESTING && sts.mode != STS_MODE_ENFORCE) || ho->policy >= TLS_DANE) return r;
  /* An MX outside a testing policy has its failure line already. */
  if (r == SMTP_FINAL) {
    if (sts_mx_match(&sts.c.p, host)) sts_record(&sts, host, ip, "ok");
    return r;
  }
  if (str_0(why) < 0 || !(type = sts_failure_type(why->s))) return r;
  sts_record(&sts, host, ip, type);
  log_begin("qmail-remote", "mtasts_fail");
  log_kv("domain", sts.domain);
  log_kv("host", host);
  log_kv("ip", ip);
  log_kv("result", type);
  log_kv("action", sts.mode == STS_MODE_TESTING ? "delivered-anyway" : "deferred");
  log_end();
  if (sts.mode != STS_MODE_TESTING || t->attempts >= MAX_ATTEMPTS) return r;
  t->attempts++;
  if ((fd = tcp_connect(a, port, c)) < 0) return SMTP_NEXTHOST;
  o.policy = t->tlspolicy;
  o.key = 0;
  return smtp_session_opts(fd, ip, host, 0, &o, c, j, why);
}

/* The delivery's domain as TLS-RPT names it (sts_domain_ok), MX
 * deliveries only, as for MTA-STS; "" otherwise. */
static char rpt_domain[STS_HOSTMAX];

/* A DANE session's line in the TLS-RPT day file: "ok" after a session
 * that gave final results, else the RFC 8460 result-type of a TLS
 * failure (none for a failure that was not TLS's). */
static void dane_record(const char *host, const char *ip, int r, const char *why)
{
  const char *e = dane_error(), *type = "ok";
  str f = STR_INIT;

  if (!rpt_domain[0]) return;
  if (r != SMTP_FINAL) {
    if (strstr(why, "STARTTLS not offered")) type = "starttls-not-supported";
    else if (!dane_matched() && e && strstr(why, e)) type = "tlsa-invalid";
    else if (!(type = sts_failure_type(why))) return;
  }
  if (dane_rrset_field(&f) < 0 || f.len > RPT_TLSAMAX) f.len = 0;
  rpt_session(rpt_domain, "dane", host, ip, type, f.len ? f.s : "-");
  str_free(&f);
}

/* A host's addresses, looked up ahead (the MX list, mx_cut). */
struct haddrs {
  int r;                          /* dns_addrs's result */
  size_t n;
  struct raddr a[DNS_ADDRMAX];
};

/* The session policy for host under the delivery's (t->o.policy), the
 * DANE decision of RFC 7672 2.2 for dane and dane-only, logged as
 * event=tls_policy: 0 with *policy, or -1 when the host must not be used
 * (noted in t): a failed or bogus TLSA lookup, or dane-only without
 * usable TLSA. dane without DANE is may; TLSA records none of which is
 * usable make it encrypt (as Postfix). */
static int host_policy(struct tried *t, const struct rconf *c, const char *host, int literal,
                       unsigned long port, int *policy)
{
  int cfg = t->o.policy, only = cfg == TLS_DANE_ONLY, r = DANE_NONE;
  const char *why = t->dflt || (!t->explicit && cfg == t->tlspolicy) ? "default"
                  : cfg == t->tlspolicy ? "tlspolicy" : "route";

  *policy = cfg;
  if (cfg == TLS_DANE || cfg == TLS_DANE_ONLY) {
    if (literal) why = "address-literal";
    else if (dns_init(&c->dnsserver) < 0) { note(t, SPAWN_TAG_LOCAL, "cannot set up the resolver", "", ""); return -1; }
    else if (!(t->secure = dns_dnssec())) why = t->dflt ? "default" : "resolver-not-validating";
    else if (!t->signedname) why = "mx-insecure";
    else r = dane_lookup(host, port, &why);
    *policy = r == DANE_USABLE ? TLS_DANE : r == DANE_UNUSABLE ? TLS_ENCRYPT : TLS_MAY;
  }
  log_begin("qmail-remote", "tls_policy");
  log_kv("host", host);
  log_kv("policy", t->dflt ? "default" : tls_policy_name(cfg));
  log_kv("tls", r == DANE_TEMP || (only && r != DANE_USABLE) ? "defer" : tls_policy_name(*policy));
  log_kv("why", why);
  log_end();
  if (r == DANE_TEMP && rpt_domain[0]) rpt_session(rpt_domain, "dane", host, "-", "dnssec-invalid", "-");
  if (r == DANE_TEMP) { note(t, SPAWN_TAG_DNS, "DANE: TLSA lookup failed or bogus for ", host, ""); return -1; }
  if (only && r != DANE_USABLE) { note(t, SPAWN_TAG_CONNECT, "TLS policy dane-only: no usable TLSA for ", host, ""); return -1; }
  return 0;
}

/* Tries every address of one host (those of pre when given); 1 when a
 * session gave final results. */
static int try_host(struct rjob *j, const struct rconf *c, const char *host, int literal,
                    unsigned long port, struct tried *t, int *noaddr, const struct haddrs *pre)
{
  struct raddr addrs[DNS_ADDRMAX];
  size_t n = 0, i;
  char ip[INET6_ADDRSTRLEN];
  str why = STR_INIT;
  struct sessopts o = t->o;
  int r, fd;

  if (host_policy(t, c, host, literal, port, &o.policy) < 0) return 0;
  if (!literal && sts.mode >= STS_MODE_TESTING && o.policy < TLS_VERIFY) o.policy = TLS_VERIFY;
  if (literal) {
    n = ip_parse(host, addrs);
  } else {
    if (pre) {
      r = pre->r;
      n = pre->n;
      memcpy(addrs, pre->a, n * sizeof addrs[0]);
    } else if (dns_init(&c->dnsserver) < 0) {
      note(t, SPAWN_TAG_LOCAL, "cannot set up the resolver", "", "");
      return 0;
    } else {
      r = dns_addrs(host, addrs, DNS_ADDRMAX, &n);
    }
    if (r == DNS_TEMP) { note(t, SPAWN_TAG_DNS, "temporary failure looking up the address of ", host, ""); return 0; }
    if (r != DNS_OK) { *noaddr = 1; return 0; }
  }
  for (i = 0; i < n && t->attempts < MAX_ATTEMPTS; i++) {
    t->attempts++;
    ip_text(&addrs[i], ip, sizeof ip);
    fd = tcp_connect(&addrs[i], port, c);
    if (fd < 0) {
      note(t, SPAWN_TAG_CONNECT, ip, ": ", errno == ETIMEDOUT ? "connection timed out" : strerror(errno));
      continue;
    }
    r = smtp_session_opts(fd, ip, host, literal, &o, c, j, &why);
    if (!literal && o.policy == TLS_DANE) dane_record(host, ip, r, str_0(&why) < 0 ? "" : why.s);
    if (!literal) r = sts_session(j, c, &addrs[i], ip, host, port, t, &o, r, &why);
    if (r == SMTP_NOTLS) r = plain_retry(j, c, &addrs[i], ip, host, literal, port, t, &why);
    if (r == SMTP_FINAL) { str_free(&why); return 1; }
    if (str_0(&why) < 0) why.len = 0;
    note(t, SPAWN_TAG_CONNECT, why.len ? why.s : ip, "", "");
  }
  str_free(&why);
  return 0;
}

/* The key of a connection for the domain through host (empty: its MX) at
 * port with t's session options: NUL-separated fields, the domain in
 * lower case. The password is in it: remote_deliver wipes it. */
static int conn_key(str *k, const char *domain, const char *host, unsigned long port,
                    const struct tried *t, const struct rconf *c)
{
  const struct sessopts *o = &t->o;
  size_t i;

  k->len = 0;
  if (str_cats(k, domain) < 0) return -1;
  for (i = 0; i < k->len; i++)
    if (k->s[i] >= 'A' && k->s[i] <= 'Z') k->s[i] = (char)(k->s[i] + 32);
  if (str_catc(k, 0) < 0 || str_cats(k, host) < 0 || str_catc(k, 0) < 0 || str_catu(k, port) < 0 ||
      str_catc(k, 0) < 0 || str_catu(k, (unsigned long long)o->policy) < 0 ||
      str_catc(k, (char)('0' + o->lmtp)) < 0 || str_catc(k, (char)('0' + o->implicit)) < 0 || str_catc(k, (char)('0' + o->plainauth)) < 0 ||
      str_catc(k, 0) < 0 || str_cats(k, o->user ? o->user : "") < 0 || str_catc(k, 0) < 0 ||
      str_cats(k, o->pass ? o->pass : "") < 0 || str_catc(k, 0) < 0 ||
      str_catb(k, c->helohost.s, c->helohost.len) < 0 || str_catc(k, 0) < 0 ||
      str_catb(k, (const char *)&c->bind, sizeof c->bind) < 0)
    return -1;
  return 0;
}

static str key;

/* Delivers over the kept connection, if it was made for exactly this: 1
 * when that gave final results. Sets t->o's key for a new connection. */
static int reuse(struct rjob *j, const struct rconf *c, struct tried *t, const char *domain,
                 const char *host, unsigned long port)
{
  t->o.key = 0;
  if (!j->keep || conn_key(&key, domain, host, port, t, c) < 0) {
    smtp_drop(1);
    return 0;
  }
  t->o.key = key.s;
  t->o.keylen = key.len;
  return smtp_reuse(&t->o, c, j) == SMTP_FINAL;
}

/* The recipients' domain may be an address literal, "[192.0.2.1]" or
 * "[IPv6:2001:db8::1]" (RFC 5321 4.1.3): fills host and returns 1. */
static int domain_literal(const char *d, char *host, size_t n)
{
  size_t len = strlen(d);
  struct raddr a;

  if (len < 3 || d[0] != '[' || d[len - 1] != ']') return 0;
  d++;
  len -= 2;
  if (len > 5 && !strncasecmp(d, "IPv6:", 5)) { d += 5; len -= 5; }
  if (len >= n) return 0;
  memcpy(host, d, len);
  host[len] = 0;
  return ip_parse(host, &a);
}

/* Envelope addresses that cannot be written as an RFC 5321 path as they
 * are (smtp_path_ok) fail for good, each with its reason, and are never
 * sent: a space or '>' in one would add parameters to the command. The
 * others go on in a job of their own (sub), whose results are copied
 * back (sub_done) before the caller's done. */
static struct rjob sub, *outer;
static struct rresult subres[SPAWN_RCPTS];
static const char *subrcpt[SPAWN_RCPTS];
static size_t submap[SPAWN_RCPTS];

static void sub_done(struct rjob *s)
{
  size_t i;
  for (i = 0; i < s->nrcpt; i++) outer->res[submap[i]] = s->res[i];
  outer->done(outer);
}

static const char badpath[] = ": cannot be sent: a space, '<', '>' or control byte in it would break the SMTP path (5.1.3)";

/* The job to deliver: j, or sub with j's good recipients, or NULL when
 * none is left (the results set). Sets utf8 for 8-bit addresses. */
static struct rjob *envelope(struct rjob *j)
{
  size_t i, k;
  const unsigned char *p;

  for (i = 0; i <= j->nrcpt; i++)
    for (p = (const unsigned char *)(i < j->nrcpt ? j->rcpt[i] : j->sender); *p; p++)
      if (*p >= 128) j->utf8 = 1;
  if (!smtp_path_ok(j->sender)) {
    for (i = 0; i < j->nrcpt; i++) result_set(&j->res[i], 'D', SPAWN_TAG_MAIL, j->sender, badpath, strlen(badpath));
    return 0;
  }
  sub = *j;
  sub.rcpt = subrcpt;
  sub.res = subres;
  sub.done = sub_done;
  outer = j;
  for (i = k = 0; i < j->nrcpt; i++) {
    if (!smtp_path_ok(j->rcpt[i])) {
      result_set(&j->res[i], 'D', SPAWN_TAG_RCPT, j->rcpt[i], badpath, strlen(badpath));
      continue;
    }
    subrcpt[k] = j->rcpt[i];
    subres[k] = j->res[i];
    submap[k++] = i;
  }
  sub.nrcpt = k;
  return k == j->nrcpt ? j : k ? &sub : 0;
}

/* A route's session options. With credentials, the route decides the TLS
 * policy, not control/tlspolicy: verify (chain and name), so that a
 * password goes only to the server it is meant for; verify=no makes it
 * encrypt, auth=plain-ok leaves the domain's policy. tls=starttls and
 * tls=implicit need at least encrypt; tls=none is none. */
static void route_sessopts(const struct route *rt, int creds, struct sessopts *o)
{
  o->implicit = rt->tls == ROUTE_TLS_IMPLICIT;
  o->plainauth = rt->plainauth;
  if (rt->tls == ROUTE_TLS_NONE) { o->policy = TLS_NONE; return; }
  /* tls=dane: the relay's TLSA records authenticate it, or it is not used. */
  if (rt->tls == ROUTE_TLS_DANE) { o->policy = TLS_DANE_ONLY; return; }
  if (creds && !rt->plainauth) o->policy = TLS_VERIFY;
  if (rt->tls != ROUTE_TLS_DEFAULT && o->policy < TLS_ENCRYPT) o->policy = TLS_ENCRYPT;
  if (rt->noverify && o->policy == TLS_VERIFY) o->policy = TLS_ENCRYPT;
}

/* A certificate is verified against a host name: an address literal has
 * none (BearSSL checks no IP subjectAltName), so verify to a literal
 * would accept any valid certificate of anyone, and send the password to
 * it. Such a configuration defers with this reason instead. */
static const char noname[] = "TLS policy verify (the default with control/smtpauth) needs a host name, not an address literal; name the relay in control/smtproutes, or say verify=no: ";

static struct haddrs hosts;

/* Delivers through a static route's relay, with its credentials. */
static int relay(struct rjob *j, const struct rconf *c, struct tried *t, const char *domain,
                 const struct route *rt, unsigned long port)
{
  str creds = STR_INIT;
  int r, noaddr = 0, ok;

  r = auth_find(&creds, rt->host, &t->o.user, &t->o.pass);
  if (r < 0) {
    str_wipe(&creds);
    all(j, 'Z', SPAWN_TAG_AUTH, "cannot use control/smtpauth", "");
    return 0;
  }
  route_sessopts(rt, r, &t->o);
  t->signedname = 1;   /* the relay's name is ours; its addresses must be signed (dane.c) */
  if (rt->literal && t->o.policy == TLS_VERIFY) {
    str_wipe(&creds);
    t->o.user = t->o.pass = 0;
    all(j, 'Z', r ? SPAWN_TAG_AUTH : SPAWN_TAG_LOCAL, noname, rt->host);
    return 0;
  }
  /* A relay named in /etc/hosts (a container's --add-host) is reached
   * there; otherwise, and for every MX, the DNS answers. */
  hosts.n = 0;
  hosts.r = rt->literal ? DNS_NX : dns_hosts(DNS_HOSTS, rt->host, hosts.a, DNS_ADDRMAX, &hosts.n);
  ok = reuse(j, c, t, domain, rt->host, port) ||
       try_host(j, c, rt->host, rt->literal, port, t, &noaddr, hosts.r == DNS_OK ? &hosts : 0);
  str_wipe(&creds);
  t->o.user = t->o.pass = 0;
  if (ok) return 1;
  /* A static route's host is never bounced for, only retried. */
  if (noaddr && !t->soft) note(t, SPAWN_TAG_DNS, "relay host ", rt->host, " has no address");
  all(j, 'Z', t->tag, why(t), "");
  return 0;
}

/* Connects to the unix socket path within the connect timeout (a full
 * backlog fails at once, EAGAIN, rather than block). The socket, or -1. */
static int unix_connect(const char *path)
{
  struct sockaddr_un sa;
  size_t n = strlen(path);
  int fd;

  if (n >= sizeof sa.sun_path) { errno = ENAMETOOLONG; return -1; }
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, n);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return close_fail(fd);
  return blocking(fd);
}

/* Delivers through an LMTP route (RFC 2033): to a unix socket, or to a
 * TCP relay as relay() does but without credentials (LMTP has no AUTH)
 * and, unless the route asks for it, without TLS: the server is this
 * host's delivery agent or one beside it. A delivery agent that cannot be
 * reached is retried, never bounced for. */
static int lmtp_route(struct rjob *j, const struct rconf *c, struct tried *t, const char *domain,
                      const struct route *rt, unsigned long port)
{
  str err = STR_INIT;
  int fd, r, noaddr = 0;

  t->o.lmtp = 1;
  t->o.policy = TLS_NONE;
  route_sessopts(rt, 0, &t->o);
  if (rt->lmtp == ROUTE_LMTP_TCP) {
    if (!rt->port) port = LMTP_PORT;
    t->signedname = 1;
    hosts.n = 0;
    hosts.r = rt->literal ? DNS_NX : dns_hosts(DNS_HOSTS, rt->host, hosts.a, DNS_ADDRMAX, &hosts.n);
    if (reuse(j, c, t, domain, rt->host, port) ||
        try_host(j, c, rt->host, rt->literal, port, t, &noaddr, hosts.r == DNS_OK ? &hosts : 0))
      return 1;
    if (noaddr && !t->soft) note(t, SPAWN_TAG_DNS, "LMTP host ", rt->host, " has no address");
    all(j, 'Z', t->tag, why(t), "");
    return 0;
  }
  if (reuse(j, c, t, domain, rt->host, 0)) return 1;
  fd = unix_connect(rt->host);
  if (fd < 0) {
    const char *e = errno == EAGAIN ? "busy (backlog full)" : strerror(errno);
    if (str_cats(&err, ": ") < 0 || str_cats(&err, e) < 0 || str_0(&err) < 0) err.len = 0;
    all(j, 'Z', SPAWN_TAG_CONNECT, rt->host, err.len ? err.s : "");
    str_free(&err);
    return 0;
  }
  r = smtp_session_opts(fd, rt->host, "localhost", 1, &t->o, c, j, &err);
  if (r == SMTP_FINAL) { str_free(&err); return 1; }
  if (str_0(&err) < 0) err.len = 0;
  all(j, 'Z', SPAWN_TAG_CONNECT, err.len ? err.s : rt->host, "");
  str_free(&err);
  return 0;
}

static struct haddrs hx[DNS_MXMAX];

/* qmail's rule for an MX list that names this host: the hosts of the
 * lowest preference that has one of this host's addresses (ipme: also
 * loopback and unspecified ones unless control/dnsloopback), and every
 * host after them, are dropped, since mail to them would come back here.
 * Looks up the hosts' addresses in order into hx (up to the first that
 * is this host); returns how many hosts remain, 0 when the best is this
 * host. */
static size_t mx_cut(const struct mx *mx, size_t n, const struct rconf *c)
{
  size_t i, k;

  for (i = 0; i < n; i++) {
    hx[i].r = dns_addrs(mx[i].name, hx[i].a, DNS_ADDRMAX, &hx[i].n);
    for (k = 0; hx[i].r == DNS_OK && k < hx[i].n; k++)
      if (ipme(&hx[i].a[k], (int)c->dnsloopback)) {
        while (i > 0 && mx[i - 1].pref == mx[i].pref) i--;
        return i;
      }
  }
  return n;
}

/* 1 when the message has been through MAXHOPS hops (hops.h), its
 * results then set: a loop is never sent on. Reads the header only. */
static int looping(struct rjob *j)
{
  char b[4096];
  struct hops h;
  unsigned long long done = 0;
  char n[24];
  ssize_t r;

  hops_init(&h);
  while (h.inhdr && done < j->msglen) {
    size_t want = j->msglen - done > sizeof b ? sizeof b : (size_t)(j->msglen - done);
    r = pread(j->msgfd, b, want, j->msgoff + (off_t)done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;           /* the transaction's read reports it */
    hops_feed(&h, b, (size_t)r);
    done += (unsigned long long)r;
  }
  if (h.count < MAXHOPS) return 0;
  *fmt_u(n, h.count, 1) = 0;
  all(j, 'D', SPAWN_TAG_LOCAL, n, " Received:/Delivered-To: header lines: a mail loop, not sent (5.4.6)");
  return 1;
}

static int deliver(struct rjob *j, const struct rconf *c, struct tried *t)
{
  struct mx mx[DNS_MXMAX];
  struct route rt;
  char domain[DNS_NAMEMAX];
  size_t n, i, k, len = strlen(j->domain);
  unsigned long port;
  int r, noaddr = 0;

  if (!len || len >= sizeof domain) { all(j, 'D', SPAWN_TAG_DNS, "bad domain", ""); return 0; }
  memcpy(domain, j->domain, len + 1);
  if (len > 1 && domain[len - 1] == '.') domain[len - 1] = 0;   /* absolute form */
  if ((r = tls_policy(&c->tlspolicy, domain, &t->tlspolicy)) < 0) {
    all(j, 'Z', SPAWN_TAG_LOCAL, "malformed control/tlspolicy", "");
    return 0;
  }
  t->o.policy = t->tlspolicy;
  t->explicit = r;
  rpt_domain[0] = 0;

  r = route_find(&c->routes, domain, &rt);
  if (r < 0) { all(j, 'Z', SPAWN_TAG_LOCAL, "malformed control/smtproutes for ", domain); return 0; }
  port = r && rt.port ? rt.port : c->port;
  /* Routes first, address literals included: a default route sends
   * everything through its relay ("[192.0.2.7]:" exempts one literal). */
  if (r && rt.lmtp) return lmtp_route(j, c, t, domain, &rt, port);
  if (r && !rt.mx) return relay(j, c, t, domain, &rt, port);
  if (domain_literal(j->domain, mx[0].name, sizeof mx[0].name)) {
    struct raddr a;
    if (t->o.policy == TLS_VERIFY) { all(j, 'Z', SPAWN_TAG_LOCAL, noname, mx[0].name); return 0; }
    /* As an MX naming this host: a loop (qmail checks literals too). */
    if (ipme_load() < 0) { all(j, 'Z', SPAWN_TAG_LOCAL, "cannot list this host's addresses", ""); return 0; }
    if (ip_parse(mx[0].name, &a) && ipme(&a, (int)c->dnsloopback)) {
      all(j, 'D', SPAWN_TAG_DNS, domain, ": is this host or loopback, and not local here: a loop (5.4.6)");
      return 0;
    }
    if (reuse(j, c, t, domain, mx[0].name, c->port) || try_host(j, c, mx[0].name, 1, c->port, t, &noaddr, 0))
      return 1;
    all(j, 'Z', t->tag, why(t), "");
    return 0;
  }
  t->dflt = !t->explicit;   /* only MX delivery gets the DANE default */
  if (!sts_domain_ok(domain, rpt_domain)) rpt_domain[0] = 0;
  /* MX delivery without a tlspolicy line: dane, which is may unless the
   * resolver validates and the zone is signed. */
  if (t->dflt) t->o.policy = TLS_DANE;
  if (dns_init(&c->dnsserver) < 0) { all(j, 'Z', SPAWN_TAG_LOCAL, "cannot set up the resolver", ""); return 0; }
  /* MTA-STS testing or enforce: each host's session asks for a verified
   * chain and the MX host's name (try_host; testing falls back,
   * sts_session), unless DANE decided the host's policy: DANE wins (RFC
   * 8461 section 2). A kept connection is not reused for such a domain:
   * its key does not say under which policy it was made. */
  sts_lookup(domain, &sts);
  if (sts.mode < STS_MODE_TESTING && reuse(j, c, t, domain, "", port)) return 1;
  t->secure = dns_dnssec();
  dns_ad_begin();
  r = dns_mx(domain, mx, DNS_MXMAX, &n);
  t->signedname = t->secure && dns_ad_since();
  if (r == DNS_TEMP) { all(j, 'Z', SPAWN_TAG_DNS, "temporary failure looking up the MX of ", domain); return 0; }
  if (r == DNS_NX) { all(j, 'D', SPAWN_TAG_DNS, domain, ": no such domain (5.1.2)"); return 0; }
  if (r == DNS_NULLMX) { all(j, 'D', SPAWN_TAG_DNS, domain, ": does not accept mail, null MX (5.1.10, RFC 7505)"); return 0; }
  if (ipme_load() < 0) { all(j, 'Z', SPAWN_TAG_LOCAL, "cannot list this host's addresses", ""); return 0; }
  n = mx_cut(mx, n, c);
  if (!n) {
    all(j, 'D', SPAWN_TAG_DNS, domain, ": its best mail host is this host or loopback, and the domain is not local here: a loop (5.4.6)");
    return 0;
  }
  for (i = 0, k = 0; i < n && t->attempts < MAX_ATTEMPTS; i++)
    if (sts_mx_allowed(&sts, mx[i].name) && ++k && try_host(j, c, mx[i].name, 0, port, t, &noaddr, &hx[i]))
      return 1;
  if (!k && n) note(t, SPAWN_TAG_CONNECT, "MTA-STS policy (enforce) of ", domain, ": no MX host matches its mx patterns");
  if (t->soft) all(j, 'Z', t->tag, why(t), "");
  else all(j, 'D', SPAWN_TAG_DNS, domain, ": no mail host has an address (5.1.2)");
  return 0;
}

void remote_deliver(struct rjob *j)
{
  struct rconf c = RCONF_INIT;
  struct tried t = { 0, 0, SPAWN_TAG_CONNECT, STR_INIT, TLS_MAY, { TLS_MAY, 0, 0, 0, 0, 0, 0, 0 }, 0, 0, 0, 0 };
  str err = STR_INIT;
  struct rjob *d;

  /* Results start as a temporary failure, so that none is ever left
   * undefined. */
  all(j, 'Z', SPAWN_TAG_LOCAL, "delivery did not run", "");
  if (rconf_load(&c, &err) < 0) {
    if (str_0(&err) < 0) err.len = 0;
    all(j, 'Z', SPAWN_TAG_LOCAL, err.len ? err.s : "cannot read control files", "");
    j->done(j);
  } else if (!(d = envelope(j)) || looping(j)) {
    j->done(j);
  } else if (!deliver(d, &c, &t)) {
    d->done(d);
  }
  str_free(&err);
  str_free(&t.why);
  str_wipe(&key);
  sts_free(&sts);
  rconf_free(&c);
}
