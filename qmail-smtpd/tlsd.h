#ifndef TLSD_H
#define TLSD_H
/* The TLS half of an SMTP server session (tlsd.c), in the UCSPI-TLS
 * spirit. Run as root with the client on fds 0 and 1 and the environment
 * as tcpserver sets it, by qmail-tlsd (under tcpserver) or by
 * qmail-smtpd-listen -t (resident). qmail-smtpd's session code (session.h)
 * is linked in, so that no exec follows the fork. tlsd_session
 *
 *   1. makes a plaintext socketpair and a control socket (SEQPACKET) and
 *      forks, before it has read the key: the child never has it in its
 *      memory. The child puts its end of the plaintext pair on fds 0/1
 *      and the control socket on fd 5, sets SMTPD_TLS=starttls (or
 *      implicit), takes the smtpd ids (no supplementary group) and runs
 *      the SMTP session as qmail-smtpd would;
 *   2. reads control/tls/cert.pem (the chain, leaf first) and
 *      control/tls/key.pem (RSA or EC) as root (or, under a resident
 *      listener, uses what tlsd_preload decoded), relative to the prefix,
 *      root's files in a root directory, opened as tls_creds_load
 *      (tlsio.h) says: no link, no FIFO, no file another uid could write;
 *      takes the TLS ids, then only relays. Neither process has read a
 *      byte from the network before dropping root.
 *
 * So the process that parses SMTP never holds the key, and the one that
 * holds the key never parses SMTP. The client reaches the session only
 * through the relay: when the key cannot be loaded, the relay closes its
 * ends of both sockets without relaying a byte, and the session ends on
 * EOF unseen by the client.
 *
 * STARTTLS: qmail-smtpd flushes its replies and sends "Y" followed by
 * its 220 reply on fd 5. The relay forwards what qmail-smtpd wrote
 * before that, drops any plaintext it read from the client but did not
 * forward, stops reading plaintext, writes the 220, closes the plaintext
 * pair and runs the handshake. The 220 travels with "Y" so that no
 * byte the client sends after seeing it (its ClientHello) can be read by
 * the plaintext relay. On success it makes a fresh plaintext pair and
 * passes one end with the datagram "TLS1.2 <cipher>"; qmail-smtpd puts it
 * on fds 0 and 1. Nothing sent in plaintext can reach the TLS session
 * (CVE-2011-0411): the channel it travelled on is gone. Implicit TLS: the
 * handshake comes first and the datagram carries no descriptor. A failed
 * handshake ends both processes.
 *
 * Without control/tls/cert.pem there is no TLS: the process takes the
 * smtpd ids and runs the session itself on the client (implicit refuses).
 *
 * Exit codes: 0 after a session, 1 after a failed one, 111 when it cannot
 * set up (a missing or bad key, ids, fork); the process that runs the
 * session exits as qmail-smtpd does (session.h). Logs as qmail-tlsd.
 */

struct tlsd_ids { unsigned long long uid, gid; };

/* "uid:gid", numeric: 0, or -1 when malformed. */
int tlsd_ids(const char *s, struct tlsd_ids *id);

/* Sets up the TLS engine without a key or a random generator: its
 * implementations (BearSSL's CPU feature tests, which trap to the
 * hypervisor in a VM), suites and buffer. Once, before tlsd_session; a
 * resident listener does it before its forks. The generator is seeded by
 * each session (br_ssl_server_reset), so no two forks share its state. */
void tlsd_prepare(void);

/* A resident listener (qmail-smtpd-listen -t), once at start, as root,
 * after tlsd_prepare: decodes control/tls's certificate chain and key in
 * a child that then exits, into a shared mapping made read-only, so that
 * no session decodes them again; and makes the session cache shared by
 * every connection's TLS process (tlscache.h; ttl seconds, 0: none). A
 * connection uses the decoded key only while the directory and both
 * files are what they were then (type, inode, size, owner, mode, times,
 * never through a link); after any change it reads them itself, as
 * qmail-tlsd does, until the listener is restarted. Files that cannot
 * be loaded at start are left to each connection (which logs why). */
void tlsd_preload(unsigned long ttl);
/* Each of the listener's spares, before it forks anything: the key and
 * the cache are MADV_DONTFORK there, so no child of the spare (the SMTP
 * session, the DNSBL lookup) ever maps them. Exits 111 if it cannot. */
void tlsd_spare(void);
void tlsd_session(int implicit, const struct tlsd_ids *tls, const struct tlsd_ids *smtpd)
  __attribute__((noreturn));

#endif
