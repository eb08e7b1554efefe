#ifndef STATEPROTO_H
#define STATEPROTO_H
/* qmail-smtpd-state's protocol: the state SMTP sessions share across
 * connections (greylisting, AUTH failures, unknown recipients), kept by
 * one resident process
 * under its own uid, which alone writes its file.
 *
 * A session connects to PREFIX/STATE_SOCKET (SOCK_SEQPACKET) and sends
 * requests, one datagram each, of at most STATE_REQ_MAX octets: ASCII
 * fields separated by one space, none empty, numbers in decimal. Each
 * gets one datagram back, at most STATE_REP_MAX octets:
 *
 *   G delay window expiry clients net sender rcpt   greylisting
 *       -> "PASS" | "PASS auto" (net allowlisted after clients passes)
 *          | "WAIT <seconds left>"
 *   A window max addr     -> "LOCK <failures>" | "OK <failures>"
 *   F window addr         -> "OK <failures>"   (one more failure)
 *   S addr                -> "OK 0"            (a success: forgotten)
 *   R window max addr     -> "LOCK <count>" | "OK <count>"  (unknown
 *                            recipients: the address is refused)
 *   U window max addr     -> the same after one more unknown recipient;
 *                            the one that reaches max locks for window
 *   anything else         -> "ERR <why>"
 *
 * Times are seconds: a triplet first seen waits delay, must come back
 * within window, and once passed is remembered for expiry after its last
 * use. The session sends the values of its control files, so that they
 * take effect at its next connection; the server bounds each. net, addr,
 * sender and rcpt are opaque keys (STATE_KEY_MAX octets, no byte <= ' ').
 */
#define STATE_SOCKET "smtpdstate/socket"   /* under the prefix */
#define STATE_REQ_MAX 1024
#define STATE_REP_MAX 64
#define STATE_KEY_MAX 320

/* Client side (stateclient.c): one request, its answer in rep (NUL-
 * terminated), within timeout seconds in all. The answer's length, or
 * -1 with errno when the service cannot be reached or did not answer. */
int state_ask(const char *req, size_t n, char *rep, size_t max, int timeout);

#endif
