/* STARTTLS (RFC 3207) and implicit TLS (RFC 8314) for qmail-smtpd. The
 * TLS engine and the key live in qmail-tlsd, another process under
 * another uid (tlsctl.h); this side only asks for the switch, checks the
 * answer and resets the session.
 *
 * Invariant: once ss.tls is set, nothing read before it is ever parsed:
 * the input buffer is emptied, and fds 0/1 are replaced by the fresh
 * channel qmail-tlsd passes (so bytes still queued on the old one are
 * dropped with it). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fdpass.h"
#include "log.h"
#include "metrics.h"
#include "smtpd.h"
#include "tlsctl.h"

static int ctl = -1;           /* the control socket, or -1 */

/* The datagram "<version> <cipher>" from qmail-tlsd, kept for Received:
 * and the log; *fd gets the passed descriptor. Ends the session when the
 * handshake failed (the socket closed) or nothing came in time. */
static void tls_result(int *fd, int implicit)
{
  char info[TLSCTL_INFO_MAX + 1];
  ssize_t n;
  size_t i;

  if (fd_wait(ctl, 0, (int)(cf.timeoutidle > 86400 ? 86400 : cf.timeoutidle)) < 0) {
    metrics_inc(MP_TLS_IN + (implicit ? MT_IMPLICIT_FAILED : MT_STARTTLS_FAILED));
    quit(1, "tls timeout");
  }
  n = pkt_recv(ctl, info, TLSCTL_INFO_MAX, fd);
  if (n <= 0) {
    metrics_inc(MP_TLS_IN + (implicit ? MT_IMPLICIT_FAILED : MT_STARTTLS_FAILED));
    quit(1, "tls failed");
  }
  metrics_inc(MP_TLS_IN + (implicit ? MT_IMPLICIT_OK : MT_STARTTLS_OK));
  for (i = 0; i < (size_t)n; i++)
    if ((unsigned char)info[i] <= ' ' && info[i] != ' ') info[i] = '?';
  info[n] = 0;
  memcpy(ss.tlsinfo, info, (size_t)n + 1);
  ss.tls = 1;
  log_begin(PROG, "tls");
  log_kv("ip", ss.remoteip);
  log_kv("tls", ss.tlsinfo);
  log_end();
}

void tls_init(void)
{
  const char *mode = getenv(TLSCTL_ENV);
  struct stat st;

  if (!mode || fstat(TLSCTL_FD, &st) < 0 || !S_ISSOCK(st.st_mode)) return;
  if (!strcmp(mode, "starttls")) ctl = TLSCTL_FD;
  else if (!strcmp(mode, "implicit")) {
    int fd = -1;
    ctl = TLSCTL_FD;
    tls_result(&fd, 1);
    if (fd >= 0) close(fd);   /* implicit TLS keeps fds 0 and 1 */
  }
}

int tls_offered(void) { return ctl >= 0 && !ss.tls; }

void smtp_starttls(const char *arg, size_t n)
{
  static const char go[] = "Y220 2.0.0 ready to start TLS\r\n";
  int fd = -1;

  if (ctl < 0) { reply("502 5.5.1 command not implemented"); return; }
  if (ss.tls) { reply("503 5.5.1 TLS already active"); return; }
  if (n) { bad_command("501 5.5.4 syntax: STARTTLS takes no argument"); return; }
  out_flush();
  /* CVE-2011-0411: whatever the client pipelined after STARTTLS came in
   * plaintext and is never executed. The 220 goes through qmail-tlsd,
   * which stops relaying plaintext before it sends it (tlsctl.h). */
  in.pos = in.end = 0;
  if (pkt_send(ctl, go, sizeof go - 1, -1) < 0) quit(1, "tls control");
  tls_result(&fd, 0);
  if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0) quit(1, "tls channel");
  close(fd);
  /* RFC 3207 4.2: the client must start over with EHLO. */
  txn_reset();
  ss.seenhelo = 0;
  ss.esmtp = 0;
  /* RFC 3207 4.2: nothing learnt before TLS survives it, a login neither. */
  ss.authed = 0;
  ss.helo.len = 0;
}
