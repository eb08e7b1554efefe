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
#define SPAWN_PKT_MAX (256 * 1024)

#endif
