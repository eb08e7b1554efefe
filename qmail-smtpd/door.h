#ifndef SMTPD_DOOR_H
#define SMTPD_DOOR_H
/* qmail-smtpd's checks at the door that reach beyond one session:
 *
 *   dnsbl.c  DNS block- and allowlists (control/dnsbl), before the greeting
 *   door.c   greylisting at RCPT, the AUTH failure lockout and the
 *            memory of unknown recipients, kept by
 *            qmail-smtpd-state over its socket (stateproto.h)
 *
 * Each fails open: a list that does not answer in time, or a state
 * service that is down, lets the client through and is logged. */
#include <stddef.h>

/* dnsbl.c. Looks the client up in every zone of control/dnsbl at once
 * (bounded by control/dnsbltimeout seconds), once per process: later
 * calls return the first result. Skipped for RELAYCLIENT clients.
 * DNSBL_LISTED: the score reached control/dnsblthreshold (the greeting
 * must be dnsbl_refuse's); DNSBL_ALLOWED: the score is negative (an
 * allowlist matched: greylisting and other tests are skipped, and DNSWL=1
 * is set in the environment for any later stage); DNSBL_NONE otherwise. */
enum { DNSBL_NONE = 0, DNSBL_LISTED = 1, DNSBL_ALLOWED = 2 };
int dnsbl_run(const char *ip);
/* 1 after dnsbl_run found the client allowlisted. */
int dnsbl_allowed(void);
/* The session of a listed client: a 554 greeting with the list's text,
 * then 503 to everything but QUIT (RFC 5321 3.1), until QUIT, EOF, a
 * timeout or ten commands; when PREGREETED says that the listener sent
 * a "220-" line, the greeting ends as 220 and the commands get 550 with
 * the list's text instead. Never returns. */
void dnsbl_refuse(void) __attribute__((noreturn));

/* door.c. At RCPT, for an accepted recipient: NULL, or the 451 reply
 * while the (client network, sender, recipient) triplet is greylisted.
 * Greylisting is on when control/greylist holds a delay > 0; never for
 * RELAYCLIENT, authenticated or allowlisted clients, nor for a sender
 * whose domain passed SPF and is in control/greylistskip. */
const char *door_greylist(const char *sender, size_t sn, const char *rcpt, size_t rn);
/* At AUTH: 1 when the client's address had control/authmaxfail failures
 * within control/authfailwindow seconds (any connection): 454. */
int door_auth_locked(void);
/* After an AUTH verdict: a failure is counted, a success resets. */
void door_auth_result(int ok);
/* Unknown recipients per client address (IPv6: its /64) across
 * connections: door_rcpt_unknown counts one (after its 550), and both
 * return 1 once control/rcptfailmax were counted within
 * control/rcptfailwindow seconds (which the one reaching the limit
 * restarts, and logs as event=dictionary): the session then answers
 * 421 4.7.0 and ends. Never for RELAYCLIENT, authenticated or
 * allowlisted clients. */
int door_rcpt_locked(void);
int door_rcpt_unknown(void);

#endif
