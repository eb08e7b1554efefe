/* libFuzzer target for lib/spf (make fuzz-spf): the record and macro
 * parser and the evaluator, on a zone the input serves. Input: the first
 * line is "local@domain", each further line a record "<type><name>
 * <value>" (type T: TXT, A: four octets, 6: sixteen, M: MX, P: PTR, !:
 * the name fails temporarily). Besides memory safety it checks
 * contracts: the result is one of the seven, an explanation is printable
 * ASCII within its bound, and no zone makes one check ask more queries
 * than the processing limits allow (no amplification). */
#include <arpa/nameser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dns.h"
#include "spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 + 10 terms * (1 + 10 names) + %{p} (1 + 10) + a redirect + exp= */
#define MAX_QUERIES (1 + SPF_LOOKUPS * (1 + SPF_NAMES) + 1 + SPF_NAMES + 2)

struct zone {
  const char *s;
  size_t n;
  unsigned queries;
};

static char type_char(int type)
{
  switch (type) {
  case ns_t_txt: return 'T';
  case ns_t_a: return 'A';
  case ns_t_aaaa: return '6';
  case ns_t_mx: return 'M';
  case ns_t_ptr: return 'P';
  default: return '?';
  }
}

static int lookup(void *ctx, const char *name, int type, spf_each *each, void *arg)
{
  struct zone *z = ctx;
  size_t i = 0, nl = strlen(name), found = 0, exists = 0;
  char tc = type_char(type);

  if (++z->queries > MAX_QUERIES) abort();
  while (i < z->n) {
    const char *line = z->s + i, *end = memchr(line, '\n', z->n - i), *sp;
    size_t len = end ? (size_t)(end - line) : z->n - i;
    i += len + 1;
    if (len < 2 || !(sp = memchr(line, ' ', len))) continue;
    if ((size_t)(sp - line - 1) != nl || memcmp(line + 1, name, nl)) continue;
    exists = 1;
    if (line[0] == '!') return DNS_TEMP;
    if (line[0] != tc) continue;
    {
      const char *v = sp + 1;
      size_t vn = len - (size_t)(v - line);
      char buf[DNS_NAMEMAX];
      if (tc == 'A' && vn < 4) continue;
      if (tc == '6' && vn < 16) continue;
      if (tc == 'A') vn = 4;
      if (tc == '6') vn = 16;
      if ((tc == 'M' || tc == 'P')) {
        if (vn >= sizeof buf) continue;
        memcpy(buf, v, vn);
        buf[vn] = 0;
        v = buf;
      }
      found++;
      if (each(arg, v, vn) < 0) return DNS_TEMP;
    }
  }
  return found ? (int)found : exists ? DNS_NODATA : DNS_NX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char *const ips[] = { "192.0.2.3", "2001:db8::1", "::ffff:10.0.0.1", "10.0.0.10" };
  const char *s = (const char *)data, *nl, *at;
  char local[256], domain[256];
  struct zone z;
  struct spf_dns dns = { lookup, &z };
  struct spf_req q;
  str exp = STR_INIT;
  size_t first, i, ln;
  enum spf_result r;

  if (size < 2) return 0;
  nl = memchr(s + 1, '\n', size - 1);
  first = nl ? (size_t)(nl - s) : size;
  at = memchr(s + 1, '@', first - 1);
  if (!at) return 0;
  ln = (size_t)(at - s - 1);
  if (ln >= sizeof local || first - ln - 2 >= sizeof domain) return 0;
  memcpy(local, s + 1, ln);
  local[ln] = 0;
  memcpy(domain, at + 1, first - ln - 2);
  domain[first - ln - 2] = 0;
  if (memchr(local, 0, ln) || strlen(domain) != first - ln - 2) return 0;
  z.s = nl ? nl + 1 : s + size;
  z.n = nl ? size - first - 1 : 0;
  z.queries = 0;
  q.ip = ips[(unsigned char)s[0] % 4];
  q.helo = "helo.test";
  q.local = local;
  q.domain = domain;
  q.receiver = "receiver.test";
  q.dns = &dns;
  r = spf_check(&q, &exp);
  if ((unsigned)r > SPF_PERMERROR) abort();
  if (exp.len > SPF_EXPLAIN_MAX || (exp.len && r != SPF_FAIL)) abort();
  for (i = 0; i < exp.len; i++)
    if ((unsigned char)exp.s[i] < 0x20 || (unsigned char)exp.s[i] > 0x7e) abort();
  str_free(&exp);
  return 0;
}
