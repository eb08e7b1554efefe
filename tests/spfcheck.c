/* spfcheck: lib/spf's check_host() on real DNS, for tests/t-spf.py to
 * compare with pyspf. argv: the DNS server ("IP:port"), the bound in
 * seconds. Each stdin line "ip<TAB>sender<TAB>helo" (sender empty for
 * <>, the HELO identity) gives a line "result<TAB>explanation". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "date.h"
#include "dns.h"
#include "spf.h"

int main(int argc, char **argv)
{
  char line[4096];
  str server = STR_INIT, exp = STR_INIT;
  struct spf_realdns rd = { 0, 5 };
  struct spf_dns dns = { spf_dns_real, &rd };

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
    r = spf_check(&q, &exp);
    printf("%s\t%.*s\n", spf_result_name(r), (int)exp.len, exp.s ? exp.s : "");
    fflush(stdout);
  }
  str_free(&server);
  str_free(&exp);
  return 0;
}
