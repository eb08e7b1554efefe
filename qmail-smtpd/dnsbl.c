/* DNS block- and allowlists before the greeting, as Postfix's postscreen.
 *
 * control/dnsbl, one zone a line (at most DNS_PARMAX):
 *
 *   zone[=answer[,answer...]][*weight][ log]
 *
 * answer is an IPv4 address, or a range of its last octet written
 * "127.0.0.2..11"; none means any A record. weight is a whole number,
 * default 1, negative for an allowlist. " log" makes a zone log-only: its
 * listing is logged, its weight not counted. The client's score is the
 * sum of the weights of the zones that list it; at control/dnsblthreshold
 * (default 1) or more the session gets 554 5.7.1 with the TXT record of
 * the heaviest listing zone; below 0 the client is allowlisted.
 *
 * Every zone is asked at once (dns_parallel), the whole bounded by
 * control/dnsbltimeout seconds (default 5); a zone that does not answer
 * counts nothing and is logged. Nothing is cached here: answers live for
 * their TTL in the resolver of control/dnsserver, which a site using
 * public lists runs locally anyway (the large lists refuse queries that
 * come through public resolvers). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "control.h"
#include "dns.h"
#include "door.h"
#include "log.h"
#include "metrics.h"
#include "proto.h"
#include "smtpd.h"

#define TXT_MAX 300              /* octets of a list's text in the reply */
#define ANSWERS_MAX 8

struct zone {
  char name[256];
  long weight;
  int logonly;
  size_t nans;
  unsigned char ans[ANSWERS_MAX][4];   /* low end */
  unsigned char hi[ANSWERS_MAX];       /* last octet's high end */
  int listed;
};

static struct zone zones[DNS_PARMAX];
static size_t nzones;
static int result = -1;
static str refusal;

static void warn(const char *msg, const char *line)
{
  log_begin(PROG, "warning");
  log_kv("msg", msg);
  if (line) log_kv("line", line);
  log_end();
}

/* "a.b.c.d" or "a.b.c.d..e" into z's next answer; 0 or -1. */
static int parse_answer(struct zone *z, const char *s, size_t n)
{
  char a[32];
  const char *dots = 0;
  size_t i;
  unsigned long long hi;

  for (i = 0; i + 1 < n; i++) if (s[i] == '.' && s[i + 1] == '.') { dots = s + i; break; }
  if (z->nans == ANSWERS_MAX) return -1;
  i = dots ? (size_t)(dots - s) : n;
  if (i >= sizeof a) return -1;
  memcpy(a, s, i);
  a[i] = 0;
  if (inet_pton(AF_INET, a, z->ans[z->nans]) != 1) return -1;
  hi = z->ans[z->nans][3];
  if (dots && (scan_ulong(dots + 2, n - i - 2, &hi) < 0 || hi > 255 || hi < z->ans[z->nans][3]))
    return -1;
  z->hi[z->nans++] = (unsigned char)hi;
  return 0;
}

/* One line of control/dnsbl into zones[nzones]; 0 or -1. */
static int parse_zone(const char *line)
{
  struct zone *z = &zones[nzones];
  const char *sp = strchr(line, ' '), *star, *eq, *p, *end;
  size_t len = sp ? (size_t)(sp - line) : strlen(line), n;
  long long w = 1;

  memset(z, 0, sizeof *z);
  if (sp) {
    while (*sp == ' ' || *sp == '\t') sp++;
    if (strcmp(sp, "log")) return -1;
    z->logonly = 1;
  }
  eq = memchr(line, '=', len);
  star = memchr(line, '*', len);
  if (star && eq && star < eq) return -1;
  n = eq ? (size_t)(eq - line) : star ? (size_t)(star - line) : len;
  if (!n || n >= sizeof z->name) return -1;
  memcpy(z->name, line, n);
  if (star) {
    unsigned long long u;
    const char *ws = star + 1;
    int neg = *ws == '-';
    if (scan_ulong(ws + neg, len - (size_t)(ws + neg - line), &u) < 0 || u > 1000000) return -1;
    w = neg ? -(long long)u : (long long)u;
  }
  z->weight = (long)w;
  if (eq) {
    end = star ? star : line + len;
    for (p = eq + 1; p < end; ) {
      const char *c = memchr(p, ',', (size_t)(end - p));
      const char *e = c ? c : end;
      if (parse_answer(z, p, (size_t)(e - p)) < 0) return -1;
      p = c ? c + 1 : end;
    }
    if (!z->nans) return -1;
  }
  return 0;
}

/* The query name for ip under zone: reversed octets or nibbles. */
static int query_name(char *qn, size_t max, const char *ip, const char *zone)
{
  struct raddr a;
  const unsigned char *b;
  size_t n = 0, i;
  int r;

  if (!ip_parse(ip, &a)) return -1;
  if (a.sa.ss_family == AF_INET6) {
    b = ((struct sockaddr_in6 *)&a.sa)->sin6_addr.s6_addr;
    if (!memcmp(b, "\0\0\0\0\0\0\0\0\0\0\377\377", 12)) {
      r = snprintf(qn, max, "%u.%u.%u.%u.%s", b[15], b[14], b[13], b[12], zone);
      return r < 0 || (size_t)r >= max ? -1 : 0;
    }
    for (i = 16; i-- > 0; ) {
      if (n + 4 >= max) return -1;
      qn[n++] = "0123456789abcdef"[b[i] & 15];
      qn[n++] = '.';
      qn[n++] = "0123456789abcdef"[b[i] >> 4];
      qn[n++] = '.';
    }
    r = snprintf(qn + n, max - n, "%s", zone);
    return r < 0 || (size_t)r >= max - n ? -1 : 0;
  }
  b = (const unsigned char *)&((struct sockaddr_in *)&a.sa)->sin_addr;
  r = snprintf(qn, max, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], zone);
  return r < 0 || (size_t)r >= max ? -1 : 0;
}

static int each_a(size_t i, const ns_msg *m, const ns_rr *rr, void *ctx)
{
  struct zone *z = &zones[i];
  const unsigned char *d = ns_rr_rdata(*rr);
  size_t k;

  (void)m; (void)ctx;
  if (ns_rr_rdlen(*rr) != 4) return 0;
  if (!z->nans) { z->listed = 1; return 0; }
  for (k = 0; k < z->nans; k++)
    if (!memcmp(d, z->ans[k], 3) && d[3] >= z->ans[k][3] && d[3] <= z->hi[k]) z->listed = 1;
  return 0;
}

static int each_txt(size_t i, const ns_msg *m, const ns_rr *rr, void *ctx)
{
  str *t = ctx;
  const unsigned char *p = ns_rr_rdata(*rr), *end = p + ns_rr_rdlen(*rr);

  (void)i; (void)m;
  if (t->len) return 0;      /* the first record is enough */
  while (p < end) {
    size_t l = *p++;
    if (l > (size_t)(end - p)) return 0;
    for (; l; l--, p++) {
      if (t->len >= TXT_MAX) return 0;
      /* Only printable ASCII reaches the client: a list's text cannot
       * end the reply line or forge another. */
      if (str_catc(t, *p >= 0x20 && *p < 0x7f ? (char)*p : '?') < 0) return -1;
    }
  }
  return 0;
}

static void load(void)
{
  static str lines, server;
  const char *l;
  int r;

  nzones = 0;
  r = control_lines(&lines, "control/dnsbl");
  if (r < 0) { warn("cannot read control/dnsbl", 0); return; }
  for (l = lines.s; r > 0 && l < lines.s + lines.len; l += strlen(l) + 1) {
    if (nzones == DNS_PARMAX) { warn("control/dnsbl: too many zones, the rest ignored", l); break; }
    if (parse_zone(l) < 0) { warn("control/dnsbl: bad line, ignored", l); continue; }
    nzones++;
  }
  if (!nzones) return;
  if (control_line(&server, "control/dnsserver") < 0 || dns_init(&server) < 0) {
    warn("cannot set up the resolver", 0);
    nzones = 0;
    return;
  }
}

static void log_zone(const char *ip, const struct zone *z, const char *res)
{
  log_begin(PROG, "dnsbl");
  log_kv("ip", ip);
  log_kv("zone", z->name);
  log_kv("result", res);
  log_end();
}

int dnsbl_run(const char *ip)
{
  static char qn[DNS_PARMAX][DNS_NAMEMAX];
  const char *names[DNS_PARMAX];
  int res[DNS_PARMAX];
  unsigned long timeout, threshold;
  long long score = 0;
  size_t i, top = DNS_PARMAX;
  static str txt;
  char sb[24];

  if (result >= 0) return result;
  result = DNSBL_NONE;
  if (getenv("RELAYCLIENT")) return result;
  load();
  if (!nzones) return result;
  if (control_ulong(&timeout, "control/dnsbltimeout", 5) < 0 || !timeout) timeout = 5;
  if (control_ulong(&threshold, "control/dnsblthreshold", 1) < 0 || !threshold) threshold = 1;
  if (timeout > 60) timeout = 60;
  for (i = 0; i < nzones; i++) {
    if (query_name(qn[i], sizeof qn[i], ip, zones[i].name) < 0) return result;   /* "unknown": no address */
    names[i] = qn[i];
  }
  dns_parallel(names, nzones, ns_t_a, (unsigned)timeout * 1000, res, each_a, 0);
  for (i = 0; i < nzones; i++) {
    struct zone *z = &zones[i];
    if (res[i] == DNS_TEMP) { log_zone(ip, z, "timeout"); continue; }
    if (!z->listed) continue;
    log_zone(ip, z, z->logonly ? "logged" : z->weight < 0 ? "allowlisted" : "listed");
    if (z->logonly) continue;
    score += z->weight;
    if (z->weight > 0 && (top == DNS_PARMAX || z->weight > zones[top].weight)) top = i;
  }
  if (score >= (long long)threshold && top < DNS_PARMAX) result = DNSBL_LISTED;
  else if (score < 0) result = DNSBL_ALLOWED;
  log_begin(PROG, "dnsbl");
  log_kv("ip", ip);
  snprintf(sb, sizeof sb, "%lld", score);
  log_kv("score", sb);
  log_kv("result", result == DNSBL_LISTED ? "refused" : result == DNSBL_ALLOWED ? "allowlisted" : "passed");
  log_end();
  if (result == DNSBL_ALLOWED && setenv("DNSWL", "1", 1) < 0) quit(1, "nomem");
  if (result != DNSBL_LISTED) return result;
  txt.len = 0;
  names[0] = qn[top];
  dns_parallel(names, 1, ns_t_txt, (unsigned)timeout * 1000, res, each_txt, &txt);
  refusal.len = 0;
  if (str_cats(&refusal, "5.7.1 Service unavailable; client [") < 0 || str_cats(&refusal, ip) < 0
      || str_cats(&refusal, "] blocked using ") < 0 || str_cats(&refusal, zones[top].name) < 0
      || (txt.len && (str_cats(&refusal, "; ") < 0 || str_catb(&refusal, txt.s, txt.len) < 0))
      || str_0(&refusal) < 0) quit(1, "nomem");
  return result;
}

int dnsbl_allowed(void) { return result == DNSBL_ALLOWED; }

/* The greeting is the 554. When qmail-smtpd-listen has sent a "220-"
 * line (PREGREETED), no other code may end that reply: it ends as 220
 * and every command but QUIT gets the refusal as 550 instead. */
void dnsbl_refuse(void)
{
  static str line;
  struct cmd c;
  int i, open = getenv("PREGREETED") != 0;

  metrics_inc(MP_REFUSED + MR_DNSBL);
  if (open) {
    out_puts("220 ");
    out_put(cf.greeting.s, cf.greeting.len);
    reply(" ESMTP");
  } else {
    out_puts("554 ");
    reply(refusal.s);
  }
  for (i = 0; i < 10; i++) {
    if (in_cmd(&line) == LINE_OK && cmd_parse(line.s, line.len, &c) == CMD_OK && c.verb == V_QUIT) {
      reply("221 2.0.0 closing connection");
      quit(0, "dnsbl");
    }
    if (open) {
      out_puts("550 ");
      reply(refusal.s);
    } else reply("503 5.5.1 no SMTP service for you here: see the greeting");
  }
  quit(1, "dnsbl");
}
