/* libFuzzer target for qmail-remote's reading of DNS answers (make
 * fuzz-remote): the input is a whole answer as a server would send it,
 * parsed as libresolv's res_nquery would have returned it, for MX, A,
 * AAAA and TXT, CNAMEs followed within it, under the name of its question (or a
 * fixed one). dns.c is included so that its static parser is driven as
 * it is, without a resolver or a socket.
 *
 * Checks besides memory safety: no more records than the arrays hold,
 * every MX name NUL-terminated and not the root, every address of the
 * family and length its record type gives, MX sorted by preference. */
#include <stdint.h>
#include <stdlib.h>
#include "dns.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int txt_check(const char *txt, size_t len, void *ctx)
{
  (void)ctx;
  if (len > DNS_TXTMAX || txt[len]) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct mx mx[DNS_MXMAX];
  struct raddr a[DNS_ADDRMAX];
  char name[DNS_NAMEMAX] = "a.test", next[DNS_NAMEMAX];
  struct mxctx mc = { mx, DNS_MXMAX, 0, 0 };
  struct addrctx ac = { a, DNS_ADDRMAX, 0 };
  ns_msg m;
  ns_rr rr;
  size_t i;
  int r;

  if (size > sizeof ans) return 0;
  memcpy(ans, data, size);
  if (ns_initparse(ans, (int)size, &m) == 0 && ns_msg_count(m, ns_s_qd) &&
      ns_parserr(&m, ns_s_qd, 0, &rr) == 0 && strlen(ns_rr_name(rr)) < sizeof name)
    strcpy(name, ns_rr_name(rr));
  r = walk((int)size, name, ns_t_mx, next, each_mx, &mc);
  if (mc.n > DNS_MXMAX || (r >= 0 && (size_t)r < mc.n)) abort();
  for (i = 0; i < mc.n; i++)
    if (!memchr(mx[i].name, 0, sizeof mx[i].name) || !mx[i].name[0]) abort();
  sort_mx(mx, mc.n);
  for (i = 1; i < mc.n; i++)
    if (mx[i - 1].pref > mx[i].pref) abort();
  if (next[0] && !memchr(next, 0, sizeof next)) abort();
  walk((int)size, name, ns_t_a, next, each_addr, &ac);
  walk((int)size, name, ns_t_aaaa, next, each_addr, &ac);
  if (ac.n > DNS_ADDRMAX) abort();
  {
    struct txtctx tc = { txt_check, 0 };
    walk((int)size, name, ns_t_txt, next, each_txt, &tc);
  }
  for (i = 0; i < ac.n; i++) {
    if (a[i].sa.ss_family == AF_INET && a[i].len == sizeof(struct sockaddr_in)) continue;
    if (a[i].sa.ss_family == AF_INET6 && a[i].len == sizeof(struct sockaddr_in6)) continue;
    abort();
  }
  return 0;
}
