#ifndef SESSION_H
#define SESSION_H
/* One SMTP session (smtpd.c), the whole of a qmail-smtpd process: the
 * client on fds 0 and 1, fd 2 the log, the environment as tcpserver sets
 * it. It ends the process (exit 0 after QUIT or EOF, 1 after a failed
 * session, 111 on a configuration error) and never returns. */
void smtpd_session(void) __attribute__((noreturn));

#endif
