/* qmail-mtasts domain [id]: fetches domain's MTA-STS policy (RFC 8461)
 * into the cache, mtasts/<domain> (mtasts.h); see qmail-mtasts(8).
 *
 * Run by qmail-remote, in its uid, when the cache cannot serve a
 * delivery; its own process so that the HTTP and policy parsers never
 * share memory with a delivery, and so that an alarm bounds the whole
 * fetch whatever the server does. Without id, the id comes from the
 * _mta-sts TXT record.
 *
 * The fetch: https://mta-sts.<domain>/.well-known/mta-sts.txt, TLS 1.2
 * with BearSSL, the chain verified against control/tlsca or the system
 * bundle and the name mta-sts.<domain> (also the SNI); HTTP/1.0, so no
 * chunked body; status 200 only (a redirect is not followed); Content-Type
 * text/plain; at most STS_POLICYMAX bytes of body; the policy must parse
 * before it replaces the cached one. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "dns.h"
#include "log.h"
#include "mtasts.h"
#include "tlsio.h"

#define PROG "qmail-mtasts"
#define SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"
/* The whole fetch (RFC 8461 3.3 asks for a timeout; Postfix's
 * mta-sts-resolver uses 10 s per request): DNS, connection, TLS and body. */
#define FETCH_SECONDS 60
#define IO_SECONDS 20
#define HEADMAX 16384

static br_ssl_client_context cc;
static br_x509_minimal_context xc;
static br_sslio_context ioc;
static struct tls_anchors anchors;
static unsigned char iobuf[TLS_IOBUF];
static char resp[HEADMAX + STS_POLICYMAX + 1];
static const char *dom;

static void fail(int code, const char *why, const char *detail)
{
  log_begin(PROG, "fetch");
  log_kv("domain", dom);
  log_kv("result", code == STS_FETCH_INVALID ? "invalid" : code == STS_FETCH_WEBPKI ? "webpki" : "failed");
  log_kv("reason", why);
  if (detail) log_kv("detail", detail);
  log_end();
  _exit(code);
}

static int sock_read(void *ctx, unsigned char *b, size_t len)
{
  int fd = *(int *)ctx;
  ssize_t r;
  for (;;) {
    if (fd_wait(fd, 0, IO_SECONDS) < 0) return -1;
    r = read(fd, b, len);
    if (r < 0 && errno == EINTR) continue;
    return r > 0 ? (int)r : -1;
  }
}

static int sock_write(void *ctx, const unsigned char *b, size_t len)
{
  int fd = *(int *)ctx;
  ssize_t r;
  for (;;) {
    if (fd_wait(fd, 1, IO_SECONDS) < 0) return -1;
    r = write(fd, b, len);
    if (r < 0 && errno == EINTR) continue;
    return r > 0 ? (int)r : -1;
  }
}

/* Connects to host's addresses in order, on port; the socket or -1. */
static int connect_host(const char *host, unsigned long port)
{
  struct raddr a[DNS_ADDRMAX];
  size_t n = 0, i;
  int r = dns_addrs(host, a, DNS_ADDRMAX, &n), fd;

  if (r != DNS_OK) fail(STS_FETCH_ERROR, r == DNS_TEMP ? "temporary DNS failure for the policy host" : "the policy host has no address", host);
  for (i = 0; i < n; i++) {
    struct sockaddr_storage sa = a[i].sa;
    if (sa.ss_family == AF_INET) ((struct sockaddr_in *)&sa)->sin_port = htons((unsigned short)port);
    else ((struct sockaddr_in6 *)&sa)->sin6_port = htons((unsigned short)port);
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (connect(fd, (struct sockaddr *)&sa, a[i].len) == 0) return fd;
    close(fd);
  }
  fail(STS_FETCH_ERROR, "cannot connect to the policy host", host);
  return -1;
}

/* The value of header name in the header block h (n bytes), or NULL;
 * *vn its length. */
static const char *header(const char *h, size_t n, const char *name, size_t *vn)
{
  const char *p = h, *end = h + n;
  size_t nl = strlen(name);
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
    if (len && p[len - 1] == '\r') len--;
    if (len > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
      const char *v = p + nl + 1;
      size_t k = len - nl - 1;
      while (k && (*v == ' ' || *v == '\t')) { v++; k--; }
      while (k && (v[k - 1] == ' ' || v[k - 1] == '\t')) k--;
      *vn = k;
      return v;
    }
    p = eol ? eol + 1 : end;
  }
  return 0;
}

/* The body of the response (n bytes in resp), checked as RFC 8461 3.3
 * says; *bn its length. */
static const char *body(size_t n, int clean, size_t *bn)
{
  const char *sep = memmem(resp, n, "\r\n\r\n", 4), *v;
  size_t hl, vn;
  unsigned long long cl;

  if (!sep) fail(STS_FETCH_ERROR, "no complete HTTP header", 0);
  hl = (size_t)(sep - resp) + 2;
  if (n < 12 || (memcmp(resp, "HTTP/1.0 ", 9) && memcmp(resp, "HTTP/1.1 ", 9)))
    fail(STS_FETCH_ERROR, "not an HTTP/1 response", 0);
  if (memcmp(resp + 9, "200", 3) || (n > 12 && resp[12] != ' ' && resp[12] != '\r'))
    fail(STS_FETCH_ERROR, "HTTP status is not 200 (redirects are not followed)", 0);
  if (header(resp, hl, "Transfer-Encoding", &vn)) fail(STS_FETCH_ERROR, "a Transfer-Encoding", 0);
  v = header(resp, hl, "Content-Type", &vn);
  if (!v || vn < 10 || strncasecmp(v, "text/plain", 10) || (vn > 10 && v[10] != ';' && v[10] != ' '))
    fail(STS_FETCH_INVALID, "Content-Type is not text/plain", 0);
  *bn = n - hl - 2;
  v = header(resp, hl, "Content-Length", &vn);
  if (v) {
    if (scan_ulong(v, vn, &cl) < 0) fail(STS_FETCH_ERROR, "bad Content-Length", 0);
    if (cl > STS_POLICYMAX) fail(STS_FETCH_INVALID, "policy larger than 64 KiB (its Content-Length)", 0);
    if (*bn < cl) fail(STS_FETCH_ERROR, "body shorter than its Content-Length", 0);
    *bn = (size_t)cl;
  } else if (!clean) {
    fail(STS_FETCH_ERROR, "body without Content-Length cut without close_notify", 0);
  }
  if (*bn > STS_POLICYMAX) fail(STS_FETCH_INVALID, "policy larger than 64 KiB", 0);
  return sep + 4;
}

int main(int argc, char **argv)
{
  char domain[STS_HOSTMAX], host[STS_HOSTMAX + 8], id[STS_IDMAX] = "";
  str dnsserver = STR_INIT, req = STR_INIT;
  unsigned long port;
  const char *file, *err, *b;
  struct sts_policy pol;
  size_t n = 0, bn;
  int fd, r, e;

  if (argc < 2 || argc > 3) log_usage(PROG, "usage: qmail-mtasts domain [id]");
  alarm(FETCH_SECONDS);
  dom = argv[1];
  if (!sts_domain_ok(argv[1], domain) || strlen(domain) + 8 >= STS_HOSTMAX) log_die(PROG, EXIT_PERM, "bad domain");
  if (argc == 3) {
    /* The id the caller read from the TXT record, checked as that is. */
    str t = STR_INIT;
    if (str_copys(&t, "v=STSv1; id=") < 0 || str_cats(&t, argv[2]) < 0 || sts_txt_id(t.s, t.len, id) != 1)
      log_die(PROG, EXIT_PERM, "bad id");
    str_free(&t);
  }
  if (prefix_chdir() < 0) log_fatal(PROG, EXIT_TEMP, "cannot chdir to the prefix");
  if (control_line(&dnsserver, "control/dnsserver") < 0 || dns_init(&dnsserver) < 0)
    fail(STS_FETCH_ERROR, "cannot set up the resolver", 0);
  dns_limits(5, 2);
  if (argc == 2) {
    char *sts = host;
    memcpy(sts, "_mta-sts.", 9);
    memcpy(sts + 9, domain, strlen(domain) + 1);
    r = dns_txt(sts, sts_txt_collect, id);
    if (r < 0 || !id[0] || id[0] == 1) fail(STS_FETCH_ERROR, "no single valid _mta-sts TXT record", 0);
  }
  /* Test and expert use only: another port than 443 for every fetch. */
  if (control_ulong(&port, "control/mtastsport", 443) < 0 || !port || port > 65535)
    fail(STS_FETCH_ERROR, "cannot use control/mtastsport", 0);
  file = access("control/tlsca", F_OK) == 0 ? "control/tlsca" : SYSTEM_CA;
  if (tls_anchors_load(&anchors, file, &err) < 0) fail(STS_FETCH_ERROR, err, file);
  memcpy(host, "mta-sts.", 8);
  memcpy(host + 8, domain, strlen(domain) + 1);
  fd = connect_host(host, port);

  br_ssl_client_init_full(&cc, &xc, anchors.ta, anchors.n);
  br_ssl_engine_set_versions(&cc.eng, BR_TLS12, BR_TLS12);
  br_ssl_engine_set_buffer(&cc.eng, iobuf, sizeof iobuf, 1);
  if (!br_ssl_client_reset(&cc, host, 0)) fail(STS_FETCH_ERROR, "cannot seed the random generator", 0);
  br_sslio_init(&ioc, &cc.eng, sock_read, &fd, sock_write, &fd);
  if (str_copys(&req, "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: ") < 0 || str_cats(&req, host) < 0 ||
      str_cats(&req, "\r\nUser-Agent: qmail-mtasts\r\nConnection: close\r\n\r\n") < 0)
    fail(STS_FETCH_ERROR, "out of memory", 0);
  if (br_sslio_write_all(&ioc, req.s, req.len) < 0 || br_sslio_flush(&ioc) < 0) {
    e = br_ssl_engine_last_error(&cc.eng);
    fail(e > BR_ERR_X509_OK && e < 64 ? STS_FETCH_WEBPKI : STS_FETCH_ERROR,
         e ? tls_error_text(e) : "connection closed", host);
  }
  while (n < sizeof resp && (r = br_sslio_read(&ioc, resp + n, sizeof resp - n)) > 0) n += (size_t)r;
  if (n == sizeof resp) fail(STS_FETCH_INVALID, "response larger than 64 KiB of policy", 0);
  e = br_ssl_engine_last_error(&cc.eng);
  b = body(n, e == BR_ERR_OK, &bn);
  if (sts_parse(b, bn, &pol, &err) < 0) fail(STS_FETCH_INVALID, "the policy does not parse", err);
  if (sts_cache_write(domain, (unsigned long long)time(0), id, b, bn) < 0)
    fail(STS_FETCH_ERROR, "cannot write the cache", strerror(errno));
  log_begin(PROG, "fetch");
  log_kv("domain", domain);
  log_kv("result", "ok");
  log_kv("id", id);
  log_kv("mode", pol.mode == STS_MODE_ENFORCE ? "enforce" : pol.mode == STS_MODE_TESTING ? "testing" : "none");
  log_ku("max_age", pol.max_age);
  log_ku("mx", pol.nmx);
  log_end();
  close(fd);
  str_free(&req);
  str_free(&dnsserver);
  return 0;
}
