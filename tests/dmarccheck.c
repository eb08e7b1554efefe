/* dmarccheck PSL DNSSERVER ROLL [spf=DOMAIN] [dkim=DOMAIN | dkimfail=DOMAIN]...
 * Reads a message on stdin, finds its From: domain and evaluates DMARC
 * with the SPF and DKIM outcomes given (spf= is an SPF pass for DOMAIN),
 * the pct= sample ROLL, the Public Suffix List file PSL, and the DNS
 * server DNSSERVER (IP:port). Prints one line:
 *   from=<why> | result=<r> policy=<p> applied=<a> spf_aligned=0|1
 *   dkim_aligned=0|1 org=<domain> where=<domain>
 * A test helper for tests/t-dmarc.py; never installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "dmarc.h"

#define MSG_MAX (1u << 20)

int main(int argc, char **argv)
{
  struct psl p = PSL_INIT;
  struct dmarc_dkim dk[16];
  struct dmarc_in in = { 0, 0, 0, dk, 0, 0 };
  struct dmarc_out out;
  char from[DNS_NAMEMAX];
  str msg = STR_INIT, server = STR_INIT;
  int i, r;

  if (argc < 4) { fprintf(stderr, "usage: dmarccheck psl dnsserver roll [spf=D] [dkim=D] [dkimfail=D]...\n"); return 2; }
  if (psl_load(&p, argv[1], 0) < 0) { perror("psl"); return 2; }
  if (str_copys(&server, argv[2]) < 0 || dns_init(&server) < 0) { perror("dns"); return 2; }
  dns_limits(2, 1);
  in.roll = (unsigned)atoi(argv[3]);
  for (i = 4; i < argc && in.ndkim < 16; i++) {
    if (!strncmp(argv[i], "spf=", 4)) { in.spf_pass = 1; in.spf_domain = argv[i] + 4; }
    else if (!strncmp(argv[i], "dkim=", 5)) { dk[in.ndkim].pass = 1; dk[in.ndkim++].d = argv[i] + 5; }
    else if (!strncmp(argv[i], "dkimfail=", 9)) { dk[in.ndkim].pass = 0; dk[in.ndkim++].d = argv[i] + 9; }
    else { fprintf(stderr, "dmarccheck: bad argument %s\n", argv[i]); return 2; }
  }
  if (fd_read_file(0, &msg, MSG_MAX) < 0) { perror("read"); return 2; }
  r = dmarc_from(msg.s, msg.len, from);
  if (r != DMARC_FROM_OK) {
    printf("from=%s\n", dmarc_from_why(r));
  } else {
    in.from = from;
    dmarc_eval(&p, &in, &out);
    printf("result=%s policy=%s applied=%s spf_aligned=%d dkim_aligned=%d org=%s where=%s\n",
           dmarc_result_name(out.result), dmarc_policy_name(out.policy),
           dmarc_policy_name(out.applied), out.spf_aligned, out.dkim_aligned, out.org, out.where);
  }
  psl_free(&p);
  str_free(&msg);
  str_free(&server);
  return 0;
}
