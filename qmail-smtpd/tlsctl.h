#ifndef TLSCTL_H
#define TLSCTL_H
/* The contract between qmail-tlsd and qmail-smtpd (see qmail-tlsd.c).
 *
 * qmail-smtpd offers STARTTLS only when the environment has
 * TLSCTL_ENV=starttls and fd TLSCTL_FD is a socket; with
 * TLSCTL_ENV=implicit the session is TLS from the start (port 465) and
 * qmail-smtpd waits for the handshake's datagram before its greeting.
 *
 *   qmail-smtpd -> qmail-tlsd   "Y<the 220 reply, CRLF>": qmail-tlsd
 *                               sends that reply itself, after every
 *                               earlier one (at most TLSCTL_INFO_MAX)
 *   qmail-tlsd -> qmail-smtpd   "<version> <cipher>" (at most
 *                               TLSCTL_INFO_MAX bytes), with STARTTLS
 *                               carrying the new plaintext descriptor
 *
 * The end of the control socket means the handshake failed. */
#define TLSCTL_FD 5
#define TLSCTL_ENV "SMTPD_TLS"
#define TLSCTL_INFO_MAX 96

#endif
