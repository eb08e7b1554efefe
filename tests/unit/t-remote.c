/* Unit tests of the SMTP client's pure parts: DATA transparency (byte for
 * byte, and a property test over random messages cut at random places)
 * and control/smtproutes parsing. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "../../qmail-remote/remote.h"

/* The whole message through smtp_blast in pieces of step bytes. */
static int wire(str *out, const char *m, size_t n, size_t step)
{
  int sol = 1, cr = 0;
  size_t i, k;

  out->len = 0;
  for (i = 0; i < n; i += k) {
    k = n - i < step ? n - i : step;
    if (smtp_blast(out, m + i, k, &sol, &cr) < 0) return -1;
  }
  return smtp_blast_end(out, &sol, &cr);
}

static int is(const char *m, const char *want)
{
  str out = STR_INIT;
  size_t step;
  int ok = 1;
  for (step = 1; step <= strlen(m) + 1; step++) {
    if (wire(&out, m, strlen(m), step) < 0 || out.len != strlen(want) || memcmp(out.s, want, out.len))
      ok = 0;
  }
  str_free(&out);
  return ok;
}

/* The property: in the wire form, every line ends in CRLF, there is no
 * lone CR or LF, every line starting with '.' starts with ".." except the
 * final ".", and so "CRLF.CRLF" occurs only at the very end. */
static int wire_ok(const str *w)
{
  size_t i;
  if (w->len < 3 || memcmp(w->s + w->len - 3, ".\r\n", 3)) return 0;
  for (i = 0; i < w->len; i++) {
    if (w->s[i] == '\r' && (i + 1 == w->len || w->s[i + 1] != '\n')) return 0;
    if (w->s[i] == '\n' && (i == 0 || w->s[i - 1] != '\r')) return 0;
    if (w->s[i] == '\n') {
      size_t next = i + 1;
      if (next < w->len && w->s[next] == '.' && next != w->len - 3 &&
          (next + 1 >= w->len || w->s[next + 1] != '.')) return 0;
    }
  }
  if (w->len > 3 && w->s[0] == '.' && w->s[1] != '.') return 0;
  for (i = 0; i + 5 <= w->len; i++)
    if (!memcmp(w->s + i, "\r\n.\r\n", 5) && i + 5 != w->len) return 0;
  return 1;
}

static void blast_tests(void)
{
  str out = STR_INIT;
  char m[64];
  int round, bad = 0;
  size_t k, n;

  CHECK(is("", ".\r\n"));
  CHECK(is("a\n", "a\r\n.\r\n"));
  CHECK(is("a", "a\r\n.\r\n"));                         /* no final LF */
  CHECK(is(".\n", "..\r\n.\r\n"));
  CHECK(is("a\n.\nb\n", "a\r\n..\r\nb\r\n.\r\n"));
  CHECK(is("..x\n", "...x\r\n.\r\n"));
  CHECK(is("a\r\n.b\r\n", "a\r\n..b\r\n.\r\n"));        /* stored CRLF stays one */
  CHECK(is("x\r.\n", "x\r\n..\r\n.\r\n"));              /* lone CR then dot: stuffed */
  CHECK(is("x\r.\r\nQUIT\n", "x\r\n..\r\nQUIT\r\n.\r\n"));
  CHECK(is("x\r", "x\r\n.\r\n"));
  CHECK(is("\r\r\n", "\r\n\r\n.\r\n"));
  CHECK(is("caf\xc3\xa9\n", "caf\xc3\xa9\r\n.\r\n"));
  CHECK(is("a\n.", "a\r\n..\r\n.\r\n"));

  /* Property test over random messages of '.', CR, LF and 'x'. */
  srandom(42);
  for (round = 0; round < 20000; round++) {
    n = (size_t)(random() % (long)sizeof m);
    for (k = 0; k < n; k++) m[k] = ".\r\nx"[random() % 4];
    if (wire(&out, m, n, 1 + (size_t)(random() % 8)) < 0 || !wire_ok(&out)) bad++;
  }
  CHECK(bad == 0);
  str_free(&out);
}

static void route_tests(void)
{
  str r = STR_INIT;
  struct route rt;
  static const char table[] =
    "exact.test:relay.test\0"
    ".sub.test:[::1]:2525\0"
    "mx.sub.test:\0"
    "port.test:127.0.0.1:26\0"
    "BAD.test:[notanip]\0"
    ":smart.test:587\0";

  CHECK(str_copyb(&r, table, sizeof table - 1) == 0);
  CHECK(route_find(&r, "exact.test", &rt) == 1 && !rt.mx && !strcmp(rt.host, "relay.test") && rt.port == 0 && !rt.literal);
  CHECK(route_find(&r, "EXACT.test", &rt) == 1 && !strcmp(rt.host, "relay.test"));
  CHECK(route_find(&r, "a.b.sub.test", &rt) == 1 && !strcmp(rt.host, "::1") && rt.port == 2525 && rt.literal);
  CHECK(route_find(&r, "mx.sub.test", &rt) == 1 && rt.mx);
  CHECK(route_find(&r, "sub.test", &rt) == 1 && !strcmp(rt.host, "smart.test") && rt.port == 587);
  CHECK(route_find(&r, "port.test", &rt) == 1 && !strcmp(rt.host, "127.0.0.1") && rt.port == 26 && rt.literal);
  CHECK(route_find(&r, "bad.test", &rt) == -1);
  CHECK(route_find(&r, "other.test", &rt) == 1 && !strcmp(rt.host, "smart.test"));
  /* An address literal domain: the default route, never a "parent". */
  CHECK(route_find(&r, "[192.0.2.7]", &rt) == 1 && !strcmp(rt.host, "smart.test"));
  CHECK(str_copyb(&r, ".0.2.7]:x.test\0[192.0.2.8]:\0:smart.test\0", 40) == 0);
  CHECK(route_find(&r, "[192.0.2.7]", &rt) == 1 && !strcmp(rt.host, "smart.test"));
  CHECK(route_find(&r, "[192.0.2.8]", &rt) == 1 && rt.mx);
  CHECK(str_copyb(&r, "a.test:b.test\0", 14) == 0);
  CHECK(route_find(&r, "other.test", &rt) == 0);

  {
    static const char lm[] =
      "sock.test:lmtp:/run/dovecot/lmtp\0"
      "tcp.test:lmtp:127.0.0.1:2424\0"
      "dflt.test:LMTP:[::1] tls=starttls\0"
      "name.test:lmtp:lmtp.example.test\0"
      "old.test:lmtp:2525\0"
      "opt.test:lmtp:/s tls=none\0"
      "auth.test:lmtp:127.0.0.1 auth=plain-ok\0"
      "rel.test:lmtp:run/lmtp\0"
      "empty.test:lmtp:\0";
    CHECK(str_copyb(&r, lm, sizeof lm - 1) == 0);
    CHECK(route_find(&r, "sock.test", &rt) == 1 && rt.lmtp == ROUTE_LMTP_UNIX && !strcmp(rt.host, "/run/dovecot/lmtp") && !rt.mx);
    CHECK(route_find(&r, "tcp.test", &rt) == 1 && rt.lmtp == ROUTE_LMTP_TCP && !strcmp(rt.host, "127.0.0.1") && rt.port == 2424 && rt.literal);
    CHECK(route_find(&r, "dflt.test", &rt) == 1 && rt.lmtp == ROUTE_LMTP_TCP && !strcmp(rt.host, "::1") && rt.port == 0 && rt.tls == ROUTE_TLS_STARTTLS);
    CHECK(route_find(&r, "name.test", &rt) == 1 && rt.lmtp == ROUTE_LMTP_TCP && !strcmp(rt.host, "lmtp.example.test") && !rt.literal);
    /* Digits alone after "lmtp:": the host lmtp and a port, as ever. */
    CHECK(route_find(&r, "old.test", &rt) == 1 && !rt.lmtp && !strcmp(rt.host, "lmtp") && rt.port == 2525);
    CHECK(route_find(&r, "opt.test", &rt) == -1);
    CHECK(route_find(&r, "auth.test", &rt) == -1);
    /* A socket path must be absolute; no host name has a '/'. */
    CHECK(route_find(&r, "rel.test", &rt) == -1);
    CHECK(route_find(&r, "empty.test", &rt) == -1);
  }
  {
    char lm[200] = "long.test:lmtp:/";
    memset(lm + 16, 'p', 120);
    CHECK(str_copyb(&r, lm, strlen(lm) + 1) == 0);
    CHECK(route_find(&r, "long.test", &rt) == -1);
  }

  CHECK(route_parse_relay("h:0", 3, &rt) == -1);
  CHECK(route_parse_relay("h:65536", 7, &rt) == -1);
  CHECK(route_parse_relay("h:", 2, &rt) == -1);
  CHECK(route_parse_relay("[::1", 4, &rt) == -1);
  CHECK(route_parse_relay("[::1]x", 6, &rt) == -1);
  CHECK(route_parse_relay("[127.0.0.1]:25", 14, &rt) == 0 && rt.literal && rt.port == 25);
  str_free(&r);
}

static void result_tests(void)
{
  struct rresult r;
  char big[3000];
  memset(big, 'a', sizeof big);
  result_set(&r, 'D', "rcpt", "1.2.3.4 said: ", "550 no\r\x01", 8);
  CHECK(r.code == 'D' && r.len == 28 && !memcmp(r.text, "rcpt: 1.2.3.4 said: 550 no??", 28));
  result_set(&r, 'Z', "data", "", big, sizeof big);
  CHECK(r.len == SPAWN_TEXT);
}

/* Envelope paths (smtp_path_ok) and addresses that are this host. */
static void path_tests(void)
{
  struct raddr a;
  static const char *const bad[] = {
    "u@x.test> NOTIFY=NEVER", "u@x.test\r\nRSET", "<u@x.test", "u@x.test>", "\"a b\"@x.test",
    "u@x.test\t", "u\x7f@x.test", "u@x.test\n",
  };
  size_t i;

  CHECK(smtp_path_ok("") && smtp_path_ok("u@x.test") && smtp_path_ok("j\xc3\xbcrgen@x.test") &&
        smtp_path_ok("\"a.b\"@[192.0.2.1]"));
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK(!smtp_path_ok(bad[i]));
  CHECK(ip_parse("127.0.0.2", &a) && ip_loopback(&a));
  CHECK(ip_parse("0.0.0.0", &a) && ip_loopback(&a));
  CHECK(ip_parse("::1", &a) && ip_loopback(&a));
  CHECK(ip_parse("::", &a) && ip_loopback(&a));
  CHECK(ip_parse("::ffff:127.0.0.1", &a) && ip_loopback(&a));
  CHECK(ip_parse("192.0.2.1", &a) && !ip_loopback(&a));
  CHECK(ip_parse("2001:db8::1", &a) && !ip_loopback(&a));
  CHECK(ipme_load() == 0);
  CHECK(ip_parse("127.0.0.1", &a) && ipme(&a, 0) && !ipme(&a, 1));
  CHECK(ip_parse("192.0.2.255", &a) && !ipme(&a, 0));
}

static const char *addr_text(const struct raddr *a, char *b, size_t n)
{
  const void *p = a->sa.ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)&a->sa)->sin_addr
                                             : (const void *)&((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
  return inet_ntop(a->sa.ss_family, p, b, (socklen_t)n) ? b : "";
}

/* /etc/hosts' format (dns_hosts): comments, aliases, any case, both families. */
static void hosts_tests(void)
{
  char path[] = "/tmp/t-remote-hosts.XXXXXX";
  static const char text[] =
    "# docker --add-host\n127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n"
    "192.0.2.25  smtp.example.test smtp # the relay\n2001:db8::25 SMTP.Example.TEST\n"
    "not-an-ip other.test\n#192.0.2.99 commented.test\n";
  struct raddr a[4];
  size_t n;
  char ip[64];
  int fd = mkstemp(path);

  CHECK(fd >= 0 && write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1) && close(fd) == 0);
  CHECK(dns_hosts(path, "smtp.example.test", a, 4, &n) == DNS_OK && n == 2);
  CHECK(!strcmp(addr_text(&a[0], ip, sizeof ip), "192.0.2.25"));
  CHECK(!strcmp(addr_text(&a[1], ip, sizeof ip), "2001:db8::25"));
  CHECK(dns_hosts(path, "smtp.example.test.", a, 1, &n) == DNS_OK && n == 1);
  CHECK(dns_hosts(path, "smtp", a, 4, &n) == DNS_OK && n == 1);
  CHECK(dns_hosts(path, "other.test", a, 4, &n) == DNS_NX && n == 0);
  CHECK(dns_hosts(path, "commented.test", a, 4, &n) == DNS_NX);
  CHECK(dns_hosts(path, "example.test", a, 4, &n) == DNS_NX);
  CHECK(dns_hosts("/nonexistent/hosts", "smtp", a, 4, &n) == DNS_NX);
  unlink(path);
}

int main(void)
{
  hosts_tests();
  blast_tests();
  route_tests();
  result_tests();
  path_tests();
  DONE();
}
