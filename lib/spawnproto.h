#ifndef SPAWNPROTO_H
#define SPAWNPROTO_H
/* qmail-send <-> qmail-lspawn / qmail-rspawn.
 *
 * qmail-start makes one SOCK_SEQPACKET socketpair per spawner: qmail-send
 * holds fd 3 (local) and fd 4 (remote); each spawner holds its end as fd 0.
 * One request and one reply are each exactly one datagram (lib/fdpass.h).
 *
 * Request, qmail-send -> spawner, with the queue file's fd attached
 * (opened read-only by qmail-send; spawners never open the queue):
 *   "<slot>\0<qid>\0<msg_off>\0<msg_len>\0<opts>\0<sender>\0<i>\0<rcpt>\0[<i>\0<rcpt>\0...]"
 *   slot      decimal, < SPAWN_SLOTS: echoed in the reply
 *   msg_off   decimal file offset of the message, msg_len its length
 *   opts      decimal QF_OPT_* bits
 *   i         decimal index of the recipient in the queue file; with the
 *             qid it names a delivery uniquely, so a repeated delivery
 *             after a crash can be recognised (qmail-local's Maildir names)
 *   rcpt      local: exactly one, "local@domain" after virtual-domain
 *             rewriting; remote: 1..SPAWN_RCPTS, all for one domain
 *   The reply keeps the request's order.
 *   DSN (RFC 3461, lib/dsnparam.h), for qmail-remote to pass on: opts may
 *   be followed by "/<ENVID>", and i by "/<NOTIFY bits, decimal>" and then
 *   "/<ORCPT>", values as in the queue file (qfile.h); RET is in opts.
 *
 * Reply, spawner -> qmail-send, no fd:
 *   "<slot>\0" then per recipient, in request order, "<c><text>\0" where
 *   c is 'K' delivered, 'Z' temporary failure, 'D' permanent failure, and
 *   text (at most SPAWN_TEXT bytes, no NUL) says what happened, e.g. the
 *   remote server's reply. A spawner that cannot run a delivery at all
 *   answers 'Z' for every recipient.
 * Spawners exit when fd 0 reaches EOF, after their children finish.
 */
#define SPAWN_SLOTS 1000
#define SPAWN_RCPTS 100
#define SPAWN_TEXT 1000
/* The largest request, SPAWN_RCPTS addresses of QF_ADDR_MAX bytes and
 * ORCPTs of DSN_ORCPT_MAX plus the fixed fields, is about 153 KB; this
 * must stay below the default unix socket send buffer (208 KB here), or
 * a datagram fails with EMSGSIZE. */
#define SPAWN_PKT_MAX (192 * 1024)
/* net.core.wmem_default's usual 212992: the buffer a datagram must fit. */
_Static_assert(SPAWN_PKT_MAX < 212992, "a request must fit the default unix socket send buffer");

/* Remote replies (qmail-rspawn), additive: each text is "<tag>: <detail>"
 * so that qmail-send can tell a failure of the destination from a refusal
 * of one recipient. The detail names the server's address and carries its
 * full reply (lines of a multi-line reply separated by LF), e.g.
 *   "rcpt: 192.0.2.1 said: 550 5.1.1 no such user"
 * Tags:
 *   connect  no host of the destination could be reached, or every one
 *            failed before a mail transaction began (connection refused or
 *            timed out, greeting or EHLO/HELO refused, 421, dropped).
 *            Always 'Z'. This, and only this, counts against the
 *            destination for backoff and "dead destination" marking.
 *   dns      the destination's DNS lookup failed: 'Z' temporary (SERVFAIL,
 *            timeout), 'D' permanent (no such domain, null MX, no address).
 *   mail     MAIL FROM was refused (the same result for every recipient).
 *   rcpt     RCPT TO for this recipient was refused.
 *   data     DATA or the end of data was refused, or the connection was
 *            lost or timed out during the transaction (a 421 from the
 *            server after the handshake also lands here or in mail/rcpt).
 *   ok       accepted ('K'); the detail is the server's final reply. As
 *            "ok: dsn: <detail>" when the server announced DSN and took
 *            the request's DSN parameters: it reports from now on, so
 *            qmail-send sends no "relayed" notice.
 *   local    this side could not run the delivery (bad request, cannot
 *            read the message, out of memory): 'Z'; or an envelope
 *            address holds a control byte, which it never sends: 'D'.
 */
#define SPAWN_TAG_CONNECT "connect"
#define SPAWN_TAG_DNS "dns"
#define SPAWN_TAG_MAIL "mail"
#define SPAWN_TAG_RCPT "rcpt"
#define SPAWN_TAG_DATA "data"
#define SPAWN_TAG_OK "ok"
#define SPAWN_TAG_OK_DSN "ok: dsn"
#define SPAWN_TAG_LOCAL "local"

#endif
