/* spfcheck: lib/spf's check_host() on real DNS, for tests/t-spf.py to
 * compare with pyspf. argv: the DNS server ("IP:port"), the bound in
 * seconds. Each stdin line "ip<TAB>sender<TAB>helo" (sender empty for
 * <>, the HELO identity) gives a line "result<TAB>explanation<TAB>n",
 * n the PTR queries the check made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "date.h"
#include "dns.h"
#include "spf.h"

static unsigned ptrq;

static int counted(void *ctx, const char *name, int type, spf_each *each, void *arg)
{
  if (type == ns_t_ptr) ptrq++;
  return spf_dns_real(ctx, name, type, each, arg);
}

int main(int argc, char **argv)
{
  char line[4096];
  str server = STR_INIT, exp = STR_INIT;
  struct spf_realdns rd = { 0, 5 };
  struct spf_dns dns = { counted, &rd };

  if (argc < 3 || str_copys(&server, argv[1]) < 0 || dns_init(&server) < 0) {
    fprintf(stderr, "usage: spfcheck IP:port seconds\n");
    return 100;
  }
  while (fgets(line, sizeof line, stdin)) {
    char *ip = line, *sender, *helo, *at;
    struct spf_req q;
    enum spf_result r;

    line[strcspn(line, "\n")] = 0;
    if (!(sender = strchr(ip, '\t')) || !(helo = strchr(sender + 1, '\t'))) return 100;
    *sender++ = 0;
    *helo++ = 0;
    q.ip = ip;
    q.helo = helo;
    q.receiver = "receiver.test";
    q.dns = &dns;
    at = strrchr(sender, '@');
    if (!*sender) { q.local = "postmaster"; q.domain = helo; }
    else if (!at) { q.local = "postmaster"; q.domain = sender; }
    else { *at = 0; q.local = *sender ? sender : "postmaster"; q.domain = at + 1; }
    rd.deadline_ms = mono_ms() + strtoull(argv[2], 0, 10) * 1000;
    ptrq = 0;
    r = spf_check(&q, &exp);
    printf("%s\t%.*s\t%u\n", spf_result_name(r), (int)exp.len, exp.s ? exp.s : "", ptrq);
    fflush(stdout);
  }
  str_free(&server);
  str_free(&exp);
  return 0;
}
