/* qmail-smtpd: one SMTP session on fds 0 and 1, run per connection by
 * tcpserver (UCSPI) or qmail-tlsd as the smtpd uid. The session itself is
 * smtpd.c's, shared with qmail-smtpd-listen. */
#include "session.h"

int main(void)
{
  smtpd_session();
}
