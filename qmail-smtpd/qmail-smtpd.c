/* qmail-smtpd: one SMTP session on fds 0 and 1, for tcpserver (UCSPI)
 * and sendmail -bs (qmail-smtpd(8)). The session itself is smtpd.c's,
 * linked into qmail-smtpd-listen and qmail-tlsd too. */
#include "session.h"

int main(void)
{
  smtpd_session();
}
