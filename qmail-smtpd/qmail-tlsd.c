/* qmail-tlsd [-i] tlsuid:gid smtpduid:gid: qmail-smtpd with TLS, for
 * tcpserver (qmail-tlsd(8)). The session and its privilege split are
 * tlsd.h's; qmail-smtpd-listen -t does the same without this exec. */
#include <string.h>
#include "log.h"
#include "tlsd.h"

int main(int argc, char **argv)
{
  struct tlsd_ids tls, smtpd;
  int implicit = 0;

  if (argc > 1 && !strcmp(argv[1], "-i")) { implicit = 1; argv++; argc--; }
  if (argc != 3 || tlsd_ids(argv[1], &tls) < 0 || tlsd_ids(argv[2], &smtpd) < 0)
    log_usage("qmail-tlsd", "usage: qmail-tlsd [-i] tlsuid:gid smtpduid:gid");
  tlsd_prepare();
  tlsd_session(implicit, &tls, &smtpd);
}
