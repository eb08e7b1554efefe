/* Addresses and tcprules tables the way ucspi-tcp-ipv6's tcpserver
 * reads them (tcprules.h). The lookups go through tinycdb. */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "control.h"
#include "tcprules.h"

static const unsigned char mapped_prefix[12] = { 0,0,0,0, 0,0,0,0, 0,0,0xff,0xff };

int ip_mapped(const unsigned char ip[16])
{
  return memcmp(ip, mapped_prefix, sizeof mapped_prefix) == 0;
}

static size_t fmt_ulong(char *s, unsigned long u, unsigned base)
{
  char tmp[20];
  size_t i = sizeof tmp, n;
  do { tmp[--i] = "0123456789abcdef"[u % base]; u /= base; } while (u);
  n = sizeof tmp - i;
  memcpy(s, tmp + i, n);
  return n;
}

static size_t ip4_fmt(char *s, const unsigned char *ip4)
{
  size_t n = 0;
  int i;
  for (i = 0; i < 4; i++) {
    if (i) s[n++] = '.';
    n += fmt_ulong(s + n, ip4[i], 10);
  }
  s[n] = 0;
  return n;
}

size_t ip6_fmt(char *s, const unsigned char ip[16])
{
  int k, run = -1, best = -1, bestlen = 0;
  size_t n = 0;

  /* The longest run of zero groups; strictly longer, so the first wins. */
  for (k = 0; k <= 16; k += 2) {
    if (k < 16 && !ip[k] && !ip[k + 1]) {
      if (run < 0) run = k;
    } else if (run >= 0) {
      if (k - run > bestlen) { bestlen = k - run; best = run; }
      run = -1;
    }
  }
  for (k = 0; k < 16; k += 2) {
    if (k == 12 && ip_mapped(ip)) return n + ip4_fmt(s + n, ip + 12);
    if (k == best) {
      if (k == 0) s[n++] = ':';
      s[n++] = ':';
      k += bestlen - 2;
      continue;
    }
    n += fmt_ulong(s + n, (unsigned long)ip[k] << 8 | ip[k + 1], 16);
    if (k < 14) s[n++] = ':';
  }
  s[n] = 0;
  return n;
}

size_t ip_fmt(char *s, const unsigned char ip[16])
{
  return ip_mapped(ip) ? ip4_fmt(s, ip + 12) : ip6_fmt(s, ip);
}

int tcprules_find(const char *path, const char *ip, str *rule)
{
  size_t n = strlen(ip);
  int fd, r;

  rule->len = 0;
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) return -1;
  r = cdb_getfd(fd, ip, n, rule);
  while (r == 0 && n > 0) {
    if (ip[n - 1] == '.' || ip[n - 1] == ':') r = cdb_getfd(fd, ip, n, rule);
    n--;
  }
  if (r == 0) r = cdb_getfd(fd, "", 0, rule);
  close(fd);
  return r;
}

int tcprules_apply(str *rule)
{
  size_t i = 0;
  int deny = 0;

  /* Each record ends in a NUL; an unterminated tail is not a record. */
  while (i < rule->len) {
    char *rec = rule->s + i, *nul = memchr(rec, 0, rule->len - i), *eq;
    if (!nul) break;
    if (rec[0] == 'D') deny = 1;
    else if (rec[0] == '+' && (eq = strchr(rec + 1, '='))) {
      *eq = 0;                 /* setenv copies both halves */
      if (setenv(rec + 1, eq + 1, 1) < 0 && errno == ENOMEM) return -1;
      *eq = '=';
    }
    i = (size_t)(nul - rule->s) + 1;
  }
  return deny;
}
