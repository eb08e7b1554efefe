/* qmail-smtpd/tcprules.c against what Debian's tcpserver (ucspi-tcp-ipv6
 * 1:0.88-7) does. The expected values were taken from the real tcpserver
 * with accept() rewritten by an LD_PRELOAD shim to report each address:
 * TCPREMOTEIP and TCP6REMOTEIP as it set them, and the order in which its
 * -x table matched, found by giving it a rule for every prefix of the
 * address and removing the one that matched until "" did. Tables are
 * built here with tinycdb's cdb_make, in a fresh temporary directory. */
#include <arpa/inet.h>
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "../../qmail-smtpd/tcprules.h"

static const struct { const char *in, *ip, *ip6; } formats[] = {
  { "::", "::", "::" },
  { "1::", "1::", "1::" },
  { "::1", "::1", "::1" },
  { "::ffff:1.2.3.4", "1.2.3.4", "::ffff:1.2.3.4" },
  { "::ffff:0.0.0.1", "0.0.0.1", "::ffff:0.0.0.1" },
  { "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8" },
  { "ffff::", "ffff::", "ffff::" },
  { "0:0:1::", "0:0:1::", "0:0:1::" },
  { "1:0:0:0:1:0:0:0", "1::1:0:0:0", "1::1:0:0:0" },
  { "0:1:0:1:0:1:0:1", "::1:0:1:0:1:0:1", "::1:0:1:0:1:0:1" },
  { "::ffff", "::ffff", "::ffff" },
  { "2001:db8::ffff:1.2.3.4", "2001:db8::ffff:102:304", "2001:db8::ffff:102:304" },
  { "ABCD:EF01:0:0:0:0:0:0A", "abcd:ef01::a", "abcd:ef01::a" },
  { "2001:db8:0:1:1:1:1:1", "2001:db8::1:1:1:1:1", "2001:db8::1:1:1:1:1" },
  { "::1.2.3.4", "::102:304", "::102:304" },
  { "1:0:0:2:0:0:3:4", "1::2:0:0:3:4", "1::2:0:0:3:4" },
  { "fe80::1", "fe80::1", "fe80::1" },
  { "1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7::", "1:2:3:4:5:6:7::" },
  { "0:2:3:4:5:6:7:8", "::2:3:4:5:6:7:8", "::2:3:4:5:6:7:8" },
  { "::ffff:255.255.255.255", "255.255.255.255", "::ffff:255.255.255.255" },
  { "0:0:0:0:0:fffe:1.2.3.4", "::fffe:102:304", "::fffe:102:304" },
  { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
};

static void fmt(void)
{
  size_t i;
  for (i = 0; i < sizeof formats / sizeof formats[0]; i++) {
    unsigned char ip[16];
    char s[IP_FMT];
    CHECK(inet_pton(AF_INET6, formats[i].in, ip) == 1);
    CHECK(ip_fmt(s, ip) == strlen(formats[i].ip) && !strcmp(s, formats[i].ip));
    if (strcmp(s, formats[i].ip)) printf("  %s: got %s\n", formats[i].in, s);
    CHECK(ip6_fmt(s, ip) == strlen(formats[i].ip6) && !strcmp(s, formats[i].ip6));
    if (strcmp(s, formats[i].ip6)) printf("  %s: got %s (IPv6 form)\n", formats[i].in, s);
  }
}

/* The keys tcpserver tried, in order, when every prefix had a rule. */
static const struct { const char *ip; const char *order[10]; } orders[] = {
  { "2001:db8::1:1:1:1:1", { "2001:db8::1:1:1:1:1", "2001:db8::1:1:1:1:", "2001:db8::1:1:1:",
      "2001:db8::1:1:", "2001:db8::1:", "2001:db8::", "2001:db8:", "2001:", "" } },
  { "10.1.2.3", { "10.1.2.3", "10.1.2.", "10.1.", "10.", "" } },
  { "::1", { "::1", "::", ":", "" } },
  { "1::", { "1::", "1:", "" } },
  { "::", { "::", ":", "" } },
  { "fe80::1", { "fe80::1", "fe80::", "fe80:", "" } },
  { "1::2:0:0:3:4", { "1::2:0:0:3:4", "1::2:0:0:3:", "1::2:0:0:", "1::2:0:", "1::2:",
      "1::", "1:", "" } },
  { "::102:304", { "::102:304", "::102:", "::", ":", "" } },
};

/* A table with a rule "+K=<key>" for each prefix of ip still in have[]. */
static void table(const char *ip, const char *have)
{
  struct cdb_make m;
  size_t n, len = strlen(ip);
  int fd = open("t.cdb", O_WRONLY | O_CREAT | O_TRUNC, 0644);

  CHECK(fd >= 0 && cdb_make_start(&m, fd) == 0);
  for (n = 0; n <= len; n++) {
    char v[64];
    if (!have[n]) continue;
    memcpy(v, "+K=", 3);
    memcpy(v + 3, ip, n);
    v[3 + n] = 0;
    cdb_make_add(&m, ip, (unsigned)n, v, (unsigned)(n + 4));
  }
  CHECK(cdb_make_finish(&m) == 0);
  close(fd);
}

static void order(void)
{
  size_t i, k;
  str rule = STR_INIT;
  for (i = 0; i < sizeof orders / sizeof orders[0]; i++) {
    const char *ip = orders[i].ip;
    char have[64];
    memset(have, 1, sizeof have);
    for (k = 0; k < 10; k++) {
      const char *want = orders[i].order[k], *got;
      table(ip, have);
      CHECK(tcprules_find("t.cdb", ip, &rule) == 1);
      CHECK(tcprules_apply(&rule) == 0);
      got = getenv("K");
      if (!got || strcmp(got, want)) {
        printf("  %s: step %zu got %s, want %s\n", ip, k, got ? got : "(none)", want);
        CHECK(0);
        break;
      }
      if (!*want) break;
      have[strlen(want)] = 0;
    }
    CHECK(k < 10 && orders[i].order[k] && !*orders[i].order[k]);
  }
  str_free(&rule);
}

static void apply(void)
{
  static const char v[] = "+A=1\0+B=x=y\0junk\0+NOEQ\0D\0+C=2";  /* "+C=2" unterminated */
  str rule = STR_INIT;
  CHECK(str_copyb(&rule, v, sizeof v - 1) == 0);
  unsetenv("C");
  CHECK(tcprules_apply(&rule) == 1);
  CHECK(getenv("A") && !strcmp(getenv("A"), "1"));
  CHECK(getenv("B") && !strcmp(getenv("B"), "x=y"));
  CHECK(!getenv("NOEQ") && !getenv("C"));
  CHECK(rule.len == sizeof v - 1 && !memcmp(rule.s, v, rule.len));   /* left as it was */
  CHECK(str_copyb(&rule, "+A=\0", 4) == 0);
  CHECK(tcprules_apply(&rule) == 0 && getenv("A") && !*getenv("A"));
  rule.len = 0;
  CHECK(tcprules_apply(&rule) == 0);                 /* ":allow" alone */
  str_free(&rule);
}

static void missing(void)
{
  str rule = STR_INIT;
  unlink("t.cdb");
  errno = 0;
  CHECK(tcprules_find("t.cdb", "127.0.0.1", &rule) == -1 && errno == ENOENT);
  table("127.0.0.1", "\0\0\0\0\0\0\0\0\0\0");       /* an empty table: no rule */
  CHECK(tcprules_find("t.cdb", "127.0.0.1", &rule) == 0 && rule.len == 0);
  str_free(&rule);
}

int main(void)
{
  char dir[] = "/tmp/t-listen-rules.XXXXXX";

  CHECK(mkdtemp(dir) != 0 && chdir(dir) == 0);
  fmt();
  order();
  apply();
  missing();
  unlink("t.cdb");
  CHECK(chdir("/") == 0 && rmdir(dir) == 0);
  DONE();
}
