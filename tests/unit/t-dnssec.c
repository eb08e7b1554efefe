/* lib/dns's DNSSEC trust rule: the AD bit is believed only from a single
 * resolver named in control/dnsserver on loopback, never from one
 * elsewhere or from resolv.conf's (dns_dnssec). dns_init runs once per
 * process, so each case runs in a child. */
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "dns.h"
#include "str.h"

/* dns_dnssec() under control/dnsserver s ("" for resolv.conf), or -1. */
static int trusted(const char *s)
{
  int status;
  pid_t pid = fork();

  if (pid < 0) return -1;
  if (pid == 0) {
    str server = STR_INIT;
    if (str_cats(&server, s) < 0 || dns_init(&server) < 0) _exit(2);
    _exit(dns_dnssec());
  }
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

int main(void)
{
  CHECK(trusted("127.0.0.1") == 1);
  CHECK(trusted("127.0.0.1:5353") == 1);
  CHECK(trusted("127.53.0.9:53") == 1);
  CHECK(trusted("192.0.2.1") == 0);
  CHECK(trusted("192.0.2.1:53") == 0);
  CHECK(trusted("10.127.0.1") == 0);
  CHECK(trusted("128.0.0.1") == 0);
  CHECK(trusted("") == 0);     /* resolv.conf's servers: never, even on loopback */
  DONE();
}
