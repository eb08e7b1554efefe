/* qmail-tlsrpt [day]: the daily TLS-RPT reports (RFC 8460) of the remote
 * uid's day files, tlsrpt/<YYYY-MM-DD> (mtasts.h); see qmail-tlsrpt(8).
 *
 * Run once a day, in the remote uid, out of the delivery path: for every
 * day file before today (UTC), or the one day named, one report per
 * policy domain, JSON gzipped, mailed through qmail-queue to the mailto:
 * addresses of the domain's _smtp._tls TXT record. A day whose every
 * domain was sent (or has nowhere to send to) becomes <day>.sent; after a
 * temporary failure it stays, and the next run sends it again under the
 * same Report-ID, which lets a receiver drop the duplicate. */
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include "base64.h"
#include "buf.h"
#include "control.h"
#include "date.h"
#include "dns.h"
#include "log.h"
#include "mtasts.h"
#include "qq.h"

#define PROG "qmail-tlsrpt"
#define RUA_MAX 8
#define KEEP_DAYS 31ull             /* <day>.sent files kept, for the operator */
#define TRY_DAYS 7ull               /* a day not sent by then is given up */

static str me, org, from;
static int temp;

/* A day file's line, split: domain mode host ip result [tlsa]; tlsa ""
 * outside DANE, "-" under DANE without records, so that it keys the
 * policy a session belongs to. */
enum { F_DOMAIN, F_MODE, F_HOST, F_IP, F_RESULT, F_TLSA, NF };
struct rec { char *f[NF]; };

/* By domain, policy, then result, host, ip: a policy's equal failures
 * adjacent. */
static int cmp_rec(const void *a, const void *b)
{
  static const int order[] = { F_DOMAIN, F_TLSA, F_RESULT, F_HOST, F_IP };
  const struct rec *x = a, *y = b;
  size_t i;
  int c;
  for (i = 0; i < sizeof order / sizeof order[0]; i++)
    if ((c = strcmp(x->f[order[i]], y->f[order[i]]))) return c;
  return 0;
}

static int same_failure(const struct rec *x, const struct rec *y) { return cmp_rec(x, y) == 0; }

/* Splits a NUL-terminated line in place; -1 unless it has the five
 * fields, and the sixth exactly when the mode is dane. */
static int split(char *line, struct rec *r)
{
  static char dash[] = "-", none[] = "";
  int i;
  for (i = 0; i < F_TLSA; i++) {
    r->f[i] = line;
    line = strchr(line, ' ');
    if (i < F_TLSA - 1) { if (!line) return -1; *line++ = 0; }
  }
  if (!*r->f[F_RESULT]) return -1;
  r->f[F_TLSA] = strcmp(r->f[F_MODE], "dane") ? none : dash;
  if (!line) return 0;
  *line++ = 0;
  if (r->f[F_TLSA] == none || !*line || strchr(line, ' ')) return -1;
  r->f[F_TLSA] = line;
  return 0;
}

/* A JSON string of n bytes: quotes, escapes, control bytes as \u00XX,
 * bytes above 127 as '?' (the policy is ASCII; what is not cannot make
 * the report invalid UTF-8). */
static int json_str(str *o, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  size_t i;
  if (str_catc(o, '"') < 0) return -1;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') { if (str_catc(o, '\\') < 0 || str_catc(o, (char)c) < 0) return -1; }
    else if (c < 32 || c == 127) {
      char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
      if (str_catb(o, u, 6) < 0) return -1;
    } else if (str_catc(o, c > 127 ? '?' : (char)c) < 0) return -1;
  }
  return str_catc(o, '"');
}

static int json_key(str *o, const char *k)
{
  return json_str(o, k, strlen(k)) < 0 || str_catc(o, ':') < 0 ? -1 : 0;
}

/* policy-string of a tlsa policy (RFC 8460 4.3: the TLSA RRset): each
 * record of the day file's field "u_s_m_hex,..." in presentation form. */
static int json_tlsa(str *o, const char *f)
{
  const char *p, *end;
  size_t i;

  if (json_key(o, "policy-string") < 0 || str_catc(o, '[') < 0) return -1;
  for (p = f; *p; p = *end ? end + 1 : end) {
    str rr = STR_INIT;
    end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    if (str_catb(&rr, p, (size_t)(end - p)) < 0) return -1;
    for (i = 0; i < rr.len; i++)
      if (rr.s[i] == '_') rr.s[i] = ' ';
    i = (p != f && str_catc(o, ',') < 0) || json_str(o, rr.s, rr.len) < 0;
    str_free(&rr);
    if (i) return -1;
  }
  return str_cats(o, "],");
}

/* The "policy" object: tlsa for sessions under DANE (tlsa their TLSA
 * field, "-": records unknown), else the cached policy's lines and
 * patterns, or no-policy-found when none is cached any more. */
static int json_policy(str *o, const char *domain, const char *tlsa)
{
  struct sts_cached c = { 0, "", STR_INIT, { 0, 0, 0, { { 0 } } } };
  const char *p, *end, *nl;
  size_t i, n;
  int have = !*tlsa && sts_cache_read(domain, &c) == 1, r = -1;

  if (str_cats(o, "{") < 0 || json_key(o, "policy-type") < 0 ||
      str_cats(o, *tlsa ? "\"tlsa\"," : have ? "\"sts\"," : "\"no-policy-found\",") < 0)
    goto out;
  if (*tlsa && strcmp(tlsa, "-") && json_tlsa(o, tlsa) < 0) goto out;
  if (have) {
    if (json_key(o, "policy-string") < 0 || str_catc(o, '[') < 0) goto out;
    for (p = c.body.s, end = p + c.body.len, i = 0; p < end; p = nl ? nl + 1 : end) {
      nl = memchr(p, '\n', (size_t)(end - p));
      n = nl ? (size_t)(nl - p) : (size_t)(end - p);
      if (n && p[n - 1] == '\r') n--;
      if (!n) continue;
      if ((i++ && str_catc(o, ',') < 0) || json_str(o, p, n) < 0) goto out;
    }
    if (str_cats(o, "],") < 0 || json_key(o, "mx-host") < 0 || str_catc(o, '[') < 0) goto out;
    for (i = 0; i < c.p.nmx; i++)
      if ((i && str_catc(o, ',') < 0) || json_str(o, c.p.mx[i], strlen(c.p.mx[i])) < 0) goto out;
    if (str_cats(o, "],") < 0) goto out;
  }
  if (json_key(o, "policy-domain") < 0 || json_str(o, domain, strlen(domain)) < 0 || str_catc(o, '}') < 0) goto out;
  r = 0;
out:
  str_free(&c.body);
  return r;
}

/* One entry of "policies" from the n sorted records of one policy. */
static int json_one(str *o, const char *domain, const struct rec *r, size_t n)
{
  unsigned long long ok = 0, fail = 0;
  size_t i, j, details = 0;

  for (i = 0; i < n; i++) {
    if (!strcmp(r[i].f[F_RESULT], "ok")) ok++;
    else fail++;
  }
  if (str_cats(o, "{\"policy\":") < 0 || json_policy(o, domain, r[0].f[F_TLSA]) < 0 ||
      str_cats(o, ",\"summary\":{\"total-successful-session-count\":") < 0 || str_catu(o, ok) < 0 ||
      str_cats(o, ",\"total-failure-session-count\":") < 0 || str_catu(o, fail) < 0 ||
      str_cats(o, "},\"failure-details\":[") < 0)
    return -1;
  for (i = 0; i < n; i = j) {
    for (j = i + 1; j < n && same_failure(&r[i], &r[j]); j++) ;
    if (!strcmp(r[i].f[F_RESULT], "ok")) continue;
    if ((details++ && str_catc(o, ',') < 0) || str_catc(o, '{') < 0 || json_key(o, "result-type") < 0 ||
        json_str(o, r[i].f[F_RESULT], strlen(r[i].f[F_RESULT])) < 0)
      return -1;
    if (strcmp(r[i].f[F_HOST], "-") && (str_catc(o, ',') < 0 || json_key(o, "receiving-mx-hostname") < 0 ||
                                        json_str(o, r[i].f[F_HOST], strlen(r[i].f[F_HOST])) < 0))
      return -1;
    if (strcmp(r[i].f[F_IP], "-") && (str_catc(o, ',') < 0 || json_key(o, "receiving-ip") < 0 ||
                                      json_str(o, r[i].f[F_IP], strlen(r[i].f[F_IP])) < 0))
      return -1;
    if (str_cats(o, ",\"failed-session-count\":") < 0 || str_catu(o, (unsigned long long)(j - i)) < 0 ||
        str_catc(o, '}') < 0)
      return -1;
  }
  return str_cats(o, "]}");
}

/* The report for domain from its n sorted records: one policy for its
 * MTA-STS sessions (or those under none), one per TLSA RRset seen. */
static int json_report(str *o, const char *day, const char *domain, const char *id, const struct rec *r, size_t n)
{
  size_t i, j;

  if (str_copys(o, "{") < 0 || json_key(o, "organization-name") < 0 || json_str(o, org.s, org.len) < 0 ||
      str_catc(o, ',') < 0 || json_key(o, "date-range") < 0 || str_cats(o, "{\"start-datetime\":\"") < 0 ||
      str_cats(o, day) < 0 || str_cats(o, "T00:00:00Z\",\"end-datetime\":\"") < 0 || str_cats(o, day) < 0 ||
      str_cats(o, "T23:59:59Z\"},") < 0 || json_key(o, "contact-info") < 0 || json_str(o, from.s, from.len) < 0 ||
      str_catc(o, ',') < 0 || json_key(o, "report-id") < 0 || json_str(o, id, strlen(id)) < 0 ||
      str_cats(o, ",\"policies\":[") < 0)
    return -1;
  for (i = 0; i < n; i = j) {
    for (j = i + 1; j < n && !strcmp(r[j].f[F_TLSA], r[i].f[F_TLSA]); j++) ;
    if ((i && str_catc(o, ',') < 0) || json_one(o, domain, r + i, j - i) < 0) return -1;
  }
  return str_cats(o, "]}\n");
}

/* gzip (RFC 1952) of n bytes into out. */
static int gzip(str *out, const char *p, size_t n)
{
  z_stream z;
  uLong bound;
  int r;

  memset(&z, 0, sizeof z);
  if (n > 0xffffffffu || deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
  bound = deflateBound(&z, (uLong)n) + 64;
  if (str_ready(out, bound) < 0) { deflateEnd(&z); return -1; }
  z.next_in = (Bytef *)p;
  z.avail_in = (uInt)n;
  z.next_out = (Bytef *)out->s;
  z.avail_out = (uInt)bound;
  r = deflate(&z, Z_FINISH);
  out->len = z.total_out;
  deflateEnd(&z);
  return r == Z_STREAM_END ? 0 : -1;
}

static int rua_each(const char *txt, size_t len, void *ctx)
{
  /* A record that is not TLSRPTv1 is someone else's: skipped. */
  if (!rpt_txt_rua(txt, len, ctx)) return 0;
  return 0;
}

/* The mailto: addresses of rua (comma-separated URIs), NUL-separated
 * into to; how many. https: URIs are not used (RFC 8460 allows either). */
static size_t mailtos(const str *rua, str *to)
{
  const char *p = rua->s, *end = rua->len ? rua->s + rua->len : p;   /* s is NULL when empty */
  size_t n = 0;

  to->len = 0;
  while (p < end && n < RUA_MAX) {
    const char *comma = memchr(p, ',', (size_t)(end - p)), *e = comma ? comma : end, *q, *at = 0;
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    if ((size_t)(e - p) > 7 && !strncasecmp(p, "mailto:", 7)) {
      int bad = 0;
      for (q = p + 7; q < e && *q != '?' && *q != ' ' && *q != '!'; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '@' && !at) { at = q; continue; }
        /* The local part in printable ASCII without what would end a
         * path; the domain a host name (no %-escapes decoded). */
        if (c < 33 || c > 126 || c == '<' || c == '>' || c == '"' || c == '%' || c == '@' ||
            (at && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.')))
          bad = 1;
      }
      if (!bad && at && at > p + 7 && at + 1 < q) {
        if (str_catb(to, p + 7, (size_t)(q - p - 7)) < 0 || str_catc(to, 0) < 0) return n;
        n++;
      }
    }
    p = comma ? comma + 1 : end;
  }
  return n;
}

static long long day_start(const char *day)
{
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (!strptime(day, "%Y-%m-%d", &tm)) return 0;
  return (long long)timegm(&tm);
}

/* The report mail (RFC 8460 5.3): LF line ends, as the queue stores. */
static int mail(str *m, const char *domain, const char *day, const char *id, const str *to, size_t nto,
                const str *gz)
{
  char date[DATE822_MAX];
  str b64 = STR_INIT;
  long long t0 = day_start(day);
  size_t i, k;
  const char *a;
  int r = -1;

  if (base64_encode(&b64, gz->s, gz->len) < 0) goto out;
  m->len = 0;
  if (str_cats(m, "From: ") < 0 || str_catb(m, from.s, from.len) < 0 || str_cats(m, "\nTo: ") < 0) goto out;
  for (i = 0, a = to->s; i < nto; i++, a += strlen(a) + 1)
    if ((i && str_cats(m, ", ") < 0) || str_cats(m, a) < 0) goto out;
  if (str_cats(m, "\nDate: ") < 0 || str_catb(m, date, date822(date, (long long)time(0))) < 0 ||
      str_cats(m, "\nSubject: Report Domain: ") < 0 || str_cats(m, domain) < 0 ||
      str_cats(m, " Submitter: ") < 0 || str_catb(m, org.s, org.len) < 0 || str_cats(m, " Report-ID: <") < 0 ||
      str_cats(m, id) < 0 || str_cats(m, ">\nTLS-Report-Domain: ") < 0 || str_cats(m, domain) < 0 ||
      str_cats(m, "\nTLS-Report-Submitter: ") < 0 || str_catb(m, org.s, org.len) < 0 ||
      str_cats(m, "\nMessage-ID: <") < 0 || str_cats(m, id) < 0 ||
      str_cats(m, ">\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=\"tlsrpt\";\n"
                  " boundary=\"=_tlsrpt\"\n\n--=_tlsrpt\nContent-Type: text/plain; charset=us-ascii\n\n"
                  "This is an aggregate TLS report (RFC 8460) from ") < 0 ||
      str_catb(m, org.s, org.len) < 0 || str_cats(m, " for ") < 0 || str_cats(m, domain) < 0 ||
      str_cats(m, ", ") < 0 || str_cats(m, day) < 0 ||
      str_cats(m, " UTC.\n\n--=_tlsrpt\nContent-Type: application/tlsrpt+gzip\n"
                  "Content-Transfer-Encoding: base64\nContent-Disposition: attachment;\n filename=\"") < 0 ||
      str_catb(m, org.s, org.len) < 0 || str_catc(m, '!') < 0 || str_cats(m, domain) < 0 ||
      str_catc(m, '!') < 0 || str_catu(m, (unsigned long long)t0) < 0 || str_catc(m, '!') < 0 ||
      str_catu(m, (unsigned long long)(t0 + 86399)) < 0 || str_cats(m, ".json.gz\"\n\n") < 0)
    goto out;
  for (i = 0; i < b64.len; i += k) {
    k = b64.len - i > 76 ? 76 : b64.len - i;
    if (str_catb(m, b64.s + i, k) < 0 || str_catc(m, '\n') < 0) goto out;
  }
  r = str_cats(m, "\n--=_tlsrpt--\n");
out:
  str_free(&b64);
  return r;
}

/* Queues m from the report address to the nto addresses in to; the
 * qmail-queue code (0: queued). */
static int submit(const str *m, const str *to, size_t nto)
{
  struct qq q = QQ_INIT;
  str env = STR_INIT;
  const char *a;
  size_t i;
  int code;

  if (str_catc(&env, 'F') < 0 || str_catb(&env, from.s, from.len) < 0 || str_catc(&env, 0) < 0) goto nomem;
  for (i = 0, a = to->s; i < nto; i++, a += strlen(a) + 1)
    if (str_catc(&env, 'T') < 0 || str_cats(&env, a) < 0 || str_catc(&env, 0) < 0) goto nomem;
  if (str_catc(&env, 0) < 0) goto nomem;
  if (qq_open(&q, 0) < 0) { str_free(&env); return QQ_BUG; }
  if (fd_write_all(q.msg, m->s, m->len, 0) == 0) {
    close(q.msg);
    q.msg = -1;
    if (fd_write_all(q.env, env.s, env.len, 0) < 0) { close(q.env); q.env = -1; }
  }
  code = qq_wait(&q);
  str_free(&env);
  return code;
nomem:
  str_free(&env);
  return QQ_NOMEM;
}

static void log_report(const char *domain, const char *day, const char *result, const char *reason)
{
  log_begin(PROG, "report");
  log_kv("domain", domain);
  log_kv("day", day);
  log_kv("result", result);
  if (reason) log_kv("reason", reason);
  log_end();
}

/* One policy domain's report of day from its n records. */
static void report(const char *day, const char *domain, const struct rec *r, size_t n)
{
  char name[STS_HOSTMAX + 16], dom[STS_HOSTMAX];
  str rua = STR_INIT, to = STR_INIT, json = STR_INIT, gz = STR_INIT, m = STR_INIT, id = STR_INIT;
  size_t nto;
  int code;

  if (!sts_domain_ok(domain, dom)) { log_report(domain, day, "skipped", "not a domain name"); return; }
  memcpy(name, "_smtp._tls.", 11);
  memcpy(name + 11, dom, strlen(dom) + 1);
  code = dns_txt(name, rua_each, &rua);
  if (code == DNS_TEMP) { temp = 1; log_report(dom, day, "deferred", "temporary DNS failure for _smtp._tls"); goto out; }
  if (!(nto = mailtos(&rua, &to))) { log_report(dom, day, "skipped", "no mailto: rua in _smtp._tls"); goto out; }
  if (str_copys(&id, day) < 0 || str_catc(&id, '.') < 0 || str_cats(&id, dom) < 0 || str_catc(&id, '@') < 0 ||
      str_catb(&id, me.s, me.len) < 0 || str_0(&id) < 0 ||
      json_report(&json, day, dom, id.s, r, n) < 0 || gzip(&gz, json.s, json.len) < 0 ||
      mail(&m, dom, day, id.s, &to, nto, &gz) < 0) {
    temp = 1;
    log_report(dom, day, "deferred", "out of memory");
    goto out;
  }
  code = submit(&m, &to, nto);
  if (code) {
    if (!qq_permanent(code)) temp = 1;
    log_report(dom, day, "failed", qq_text(code));
  } else {
    log_begin(PROG, "report");
    log_kv("domain", dom);
    log_kv("day", day);
    log_kv("result", "queued");
    log_kb("rua", rua.s, rua.len);
    log_ku("sessions", n);
    log_ku("bytes", m.len);
    log_end();
  }
out:
  str_free(&rua);
  str_free(&to);
  str_free(&json);
  str_free(&gz);
  str_free(&m);
  str_free(&id);
}

static int day_ok(const char *s)
{
  int i;
  for (i = 0; i < 10; i++)
    if (i == 4 || i == 7 ? s[i] != '-' : s[i] < '0' || s[i] > '9') return 0;
  return s[10] == 0;
}

/* Every report of one day file; renamed <day>.sent when all went. */
static void report_day(const char *day)
{
  str path = STR_INIT, sent = STR_INIT, data = STR_INIT;
  struct rec *r = 0;
  size_t n = 0, i, j, lines = 0;
  char *p, *end;
  int before = temp;

  temp = 0;
  if (str_copys(&path, RPT_DIR "/") < 0 || str_cats(&path, day) < 0 || str_0(&path) < 0 ||
      str_copyb(&sent, path.s, path.len) < 0 || str_cats(&sent, ".sent") < 0 || str_0(&sent) < 0)
    log_die(PROG, EXIT_TEMP, "out of memory");
  if (file_read(path.s, &data, RPT_DAYMAX) < 0 || str_0(&data) < 0) {
    if (errno != ENOENT) temp = 1;
    log_begin(PROG, "day");
    log_kv("day", day);
    log_kv("result", errno == ENOENT ? "no sessions" : "unreadable");
    log_end();
    goto out;
  }
  for (i = 0; i < data.len; i++) lines += data.s[i] == '\n';
  if (lines && !(r = calloc(lines, sizeof *r))) log_die(PROG, EXIT_TEMP, "out of memory");
  for (p = data.s, end = data.s + data.len; p < end && n < lines; p++) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) break;               /* a line cut by a crash: dropped */
    *nl = 0;
    if (split(p, &r[n]) == 0) n++;
    p = nl;
  }
  qsort(r, n, sizeof *r, cmp_rec);
  for (i = 0; i < n; i = j) {
    for (j = i + 1; j < n && !strcmp(r[j].f[F_DOMAIN], r[i].f[F_DOMAIN]); j++) ;
    report(day, r[i].f[F_DOMAIN], r + i, j - i);
  }
  if (!temp && rename(path.s, sent.s) < 0) temp = 1;
out:
  temp |= before;
  free(r);
  str_free(&path);
  str_free(&sent);
  str_free(&data);
}

/* A day that could not be sent for TRY_DAYS: its reports would be stale,
 * and each run would try it again for good. */
static void give_up(const char *day)
{
  str path = STR_INIT, sent = STR_INIT;
  int ok;

  if (str_copys(&path, RPT_DIR "/") < 0 || str_cats(&path, day) < 0 || str_0(&path) < 0 ||
      str_copyb(&sent, path.s, path.len) < 0 || str_cats(&sent, ".sent") < 0 || str_0(&sent) < 0)
    log_die(PROG, EXIT_TEMP, "out of memory");
  ok = rename(path.s, sent.s) == 0;
  if (!ok) temp = 1;
  log_begin(PROG, "day");
  log_kv("day", day);
  log_kv("result", ok ? "given up" : "cannot give up");
  log_end();
  str_free(&path);
  str_free(&sent);
}

/* 1 for "<day>.sent" of a day before old. */
static int sent_old(const char *name, const char *old)
{
  char day[11];
  if (strlen(name) != 15 || strcmp(name + 10, ".sent")) return 0;
  memcpy(day, name, 10);
  day[10] = 0;
  return day_ok(day) && strcmp(day, old) < 0;
}

int main(int argc, char **argv)
{
  char today[11], old[11], stale[11];
  str dnsserver = STR_INIT;
  DIR *d;
  struct dirent *e;
  int r;

  if (argc > 2 || (argc == 2 && !day_ok(argv[1]))) log_usage(PROG, "usage: qmail-tlsrpt [YYYY-MM-DD]");
  signal(SIGPIPE, SIG_IGN);
  if (prefix_chdir() < 0) log_fatal(PROG, EXIT_TEMP, "cannot chdir to the prefix");
  if (control_line(&me, "control/me") <= 0 || !me.len) log_die(PROG, EXIT_TEMP, "cannot read control/me");
  if ((r = control_line(&org, "control/tlsrptorg")) < 0 || (!r && str_copyb(&org, me.s, me.len) < 0))
    log_die(PROG, EXIT_TEMP, "cannot read control/tlsrptorg");
  if ((r = control_line(&from, "control/tlsrptfrom")) < 0 ||
      (!r && (str_copys(&from, "postmaster@") < 0 || str_catb(&from, me.s, me.len) < 0)))
    log_die(PROG, EXIT_TEMP, "cannot read control/tlsrptfrom");
  if (control_line(&dnsserver, "control/dnsserver") < 0 || dns_init(&dnsserver) < 0)
    log_die(PROG, EXIT_TEMP, "cannot set up the resolver");
  dns_limits(5, 2);
  if (argc == 2) {
    report_day(argv[1]);
  } else {
    rpt_day(today, (unsigned long long)time(0));
    rpt_day(old, (unsigned long long)time(0) - KEEP_DAYS * 86400ull);
    rpt_day(stale, (unsigned long long)time(0) - TRY_DAYS * 86400ull);
    if (!(d = opendir(RPT_DIR))) log_fatal(PROG, EXIT_TEMP, "cannot open " RPT_DIR);
    /* Old reports go first: a day sent by this run is kept whatever its
     * date, and readdir need not see the names renamed while it reads. */
    while ((e = readdir(d)))
      if (sent_old(e->d_name, old)) unlinkat(dirfd(d), e->d_name, 0);
    rewinddir(d);
    while ((e = readdir(d)))
      if (day_ok(e->d_name) && strcmp(e->d_name, stale) < 0) give_up(e->d_name);
      else if (day_ok(e->d_name) && strcmp(e->d_name, today) < 0) report_day(e->d_name);
    closedir(d);
  }
  str_free(&dnsserver);
  return temp ? EXIT_TEMP : EXIT_OK;
}
