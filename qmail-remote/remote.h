#ifndef REMOTE_H
#define REMOTE_H
/* The outbound SMTP client shared by qmail-rspawn (which runs it in
 * resident workers, rworker.c) and the standalone qmail-remote program:
 * one implementation, two front ends.
 *
 *   routes.c      control/smtproutes: where a domain's mail goes
 *   smtpclient.c  one SMTP session with one server, DATA transparency
 *   mime8.c       converting a message the server cannot take as stored
 *   deliver.c     configuration, the host list, connecting, the results
 *   ipme.c        which addresses are this host's (MX pointing back here)
 *   dane.c        DANE (RFC 7672): TLSA lookups, the X.509 engine (dane.h)
 *   rworker.c     qmail-rspawn's worker: deliveries one after another,
 *                 the connection kept between them
 *
 * Results: every recipient gets a code ('K' accepted, 'Z' temporary
 * failure, 'D' permanent failure) and a text "<tag>: <detail>", the tags
 * as documented in lib/spawnproto.h (SPAWN_TAG_*).
 */
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "dns.h"
#include "spawnreq.h"
#include "str.h"

/* ---- configuration (control files, read per delivery) ---- */
struct rconf {
  unsigned long timeoutconnect;   /* control/timeoutconnect, default 60 s */
  unsigned long timeoutremote;    /* control/timeoutremote, default 1200 s */
  unsigned long port;             /* control/smtpport, default 25 */
  str helohost;                   /* control/helohost, default control/me */
  struct sockaddr_storage bind;   /* control/outgoingip; family 0 if unset */
  str routes;                     /* control/smtproutes, control_lines form */
  str dnsserver;                  /* control/dnsserver, empty if unset */
  str tlspolicy;                  /* control/tlspolicy, control_lines form */
  unsigned long dnsloopback;      /* control/dnsloopback, default 0: 1 lets MX
                                   * deliveries use loopback addresses */
  unsigned long timeoutreply;     /* control/timeoutreply, default 300 s: each
                                   * whole reply or command (smtpclient.c) */
  unsigned long datarate;         /* control/datarate, default 500 bytes/s: the
                                   * slowest a message may be sent, >= 1 */
};
#define RCONF_INIT { 60, 1200, 25, STR_INIT, { 0 }, STR_INIT, STR_INIT, STR_INIT, 0, 300, 500 }

/* Loads every control file; 0, or -1 with a reason in err. */
int rconf_load(struct rconf *c, str *err);
void rconf_free(struct rconf *c);

/* ---- one delivery ---- */
struct rresult {
  char code;                      /* 'K', 'Z' or 'D' */
  size_t len;
  char text[SPAWN_TEXT];          /* no NUL inside, not NUL-terminated */
};

struct rjob {
  const char *domain;             /* where to: the recipients' domain */
  const char *sender;             /* may be "" (null sender) */
  const char *const *rcpt;        /* nrcpt addresses, 1..SPAWN_RCPTS */
  size_t nrcpt;
  int msgfd;                      /* the message is [msgoff, msgoff+msglen) */
  off_t msgoff;                   /*   of msgfd, read with pread: LF line ends */
  unsigned long long msglen;
  int utf8;                       /* the envelope needs SMTPUTF8 */
  /* The spawner's request, for its DSN parameters (RET in opts, ENVID,
   * each rcpt[i]'s NOTIFY and ORCPT), passed on to a server that
   * announces DSN; NULL: none. */
  const struct spawnreq *req;
  /* 1: a worker's delivery: use the connection kept from an earlier one
   * when it was made for exactly this, and keep this one (smtp_reuse);
   * 0: QUIT at the end. */
  int keep;
  struct rresult *res;            /* nrcpt results, filled by remote_deliver */
  /* Called exactly once, as soon as every result is final and before the
   * session's polite QUIT, so that a spawner can report without waiting
   * for the server to say goodbye. */
  void (*done)(struct rjob *j);
};

/* Delivers j: routes, DNS, connections, SMTP. Always fills every result
 * and calls j->done. */
void remote_deliver(struct rjob *j);

/* ---- rworker.c ---- */
/* qmail-rspawn's worker (lib/spawnpool.h): on fd 0, per datagram a
 * request in lib/spawnproto.h's form (slot ignored) with the message fd
 * attached, answered by one datagram of the reply's items. Keeps the
 * connection of a delivery for the next one (smtp_reuse) while it is
 * healthy and used; at EOF on fd 0, QUIT and exit 0. Does not return. */
void rworker_serve(void);

/* Sets a result: code and "<tag>: " followed by the parts, cut to
 * SPAWN_TEXT bytes; control bytes other than LF become '?'. */
void result_set(struct rresult *r, char code, const char *tag, const char *a,
                const char *b, size_t blen);

/* ---- routes.c ---- */
#define ROUTE_HOSTMAX 256
struct route {
  int mx;                         /* 1: look up the domain's MX (no route) */
  char host[ROUTE_HOSTMAX];       /* relay host name or literal, brackets removed */
  int literal;                    /* host is an IP address */
  unsigned long port;             /* 0: the default port */
  /* Options after the relay, separated by white space:
   * tls=starttls|implicit|none|dane, verify=no, auth=plain-ok. */
  int tls;                        /* ROUTE_TLS_* */
  int noverify;                   /* verify=no: encrypt, certificate unchecked */
  int plainauth;                  /* auth=plain-ok: AUTH allowed without TLS */
  /* "lmtp:" before the relay: LMTP (RFC 2033) instead of SMTP, to a TCP
   * relay (port LMTP_PORT by default), or to a unix socket whose absolute
   * path is in host. No credentials; TLS only when an option asks. */
  int lmtp;                       /* ROUTE_LMTP_* */
};
enum { ROUTE_LMTP_NONE = 0, ROUTE_LMTP_TCP, ROUTE_LMTP_UNIX };
#define LMTP_PORT 24
/* A socket path must fit a sockaddr_un's sun_path (108 bytes on Linux,
 * the NUL included). */
#define ROUTE_PATHMAX 108
enum { ROUTE_TLS_DEFAULT = 0, ROUTE_TLS_STARTTLS, ROUTE_TLS_IMPLICIT, ROUTE_TLS_NONE, ROUTE_TLS_DANE };
/* Finds domain's route in routes (control_lines form): the exact domain,
 * then ".parent" wildcards from the longest, then the ":" default entry.
 * A relay "lmtp:/path" or "lmtp:host[:port]" is an LMTP route (r->lmtp);
 * "lmtp:" followed by digits only stays the relay host "lmtp" and a port,
 * as before LMTP routes existed. A unix socket takes no option, an LMTP
 * relay no auth=plain-ok.
 * 1 found (r filled), 0 no entry (deliver by MX), -1 malformed entry
 * (EINVAL). */
int route_find(const str *routes, const char *domain, struct route *r);
/* Parses a relay "host", "host:port", "[v6]" or "[v6]:port" (n bytes). */
int route_parse_relay(const char *s, size_t n, struct route *r);
/* Parses the options of a route (n bytes, words separated by blanks) into
 * r's option fields; 0, or -1 (EINVAL) for an unknown or repeated one. */
int route_parse_opts(const char *s, size_t n, struct route *r);

/* ---- routes.c: credentials for a smarthost (control/smtpauth) ---- */
#define SPAWN_TAG_AUTH "auth"
/* control/smtpauth, lines "host:user:password" (host as in smtproutes,
 * "[literal]" or a name, "*" for any relay; the password is the rest of
 * the line). The credentials for host (the exact host first, then "*"):
 * 1 with *user and *pass pointing into buf, 0 none, -1 unreadable or
 * malformed file. The caller wipes buf with str_wipe. */
int auth_find(str *buf, const char *host, const char **user, const char **pass);

/* What a session does beyond plain SMTP: TLS and AUTH. */
struct sessopts {
  int policy;                     /* TLS_* */
  int implicit;                   /* TLS right after connect (port 465) */
  int plainauth;                  /* credentials may go without TLS */
  const char *user, *pass;        /* both NULL: no AUTH */
  int lmtp;                       /* LHLO, and one reply per accepted RCPT
                                   * after the message (RFC 2033 4.2) */
  /* What a kept connection must have been made for to serve the delivery
   * (keylen bytes, deliver.c), and the key a new one is kept under; NULL:
   * never kept. */
  const char *key;
  size_t keylen;
};

/* ---- ipme.c ---- */
/* Reads this host's interface addresses (getifaddrs); 0 or -1. */
int ipme_load(void);
/* 1 if a is this host's (as of ipme_load): an interface's address, or
 * loopback or unspecified (ip_loopback) unless loopback_ok (then those
 * are not this host, for tests that run their peers on loopback). */
int ipme(const struct raddr *a, int loopback_ok);
/* 1 for 127.0.0.0/8, 0.0.0.0/8, ::1, :: and their IPv4-mapped forms. */
int ip_loopback(const struct raddr *a);

/* ---- smtpclient.c ---- */
enum { SMTP_FINAL = 1, SMTP_NEXTHOST = 0, SMTP_NOTLS = 2 };
/* Runs one SMTP session on the connected socket fd, which it owns, with
 * the server whose address text is ip, host being the name the
 * certificate must carry (literal: an address, no name check or SNI).
 * SMTP_FINAL: every result of j is set and j->done was called.
 * SMTP_NEXTHOST: the connection or the handshake failed before any
 * transaction began; why is in why, and the next host may be tried.
 * With the options o: implicit TLS under o->policy before the greeting,
 * else STARTTLS under o->policy (when the policy requires TLS and it fails
 * or is not offered, the session ends before any transaction:
 * SMTP_NEXTHOST, never plaintext; under exactly TLS_MAY, a STARTTLS that
 * was offered but failed, from its reply to the EHLO over TLS, gives
 * SMTP_NOTLS: the caller may retry this address at once without TLS on
 * a new connection), then AUTH (PLAIN, else LOGIN) before
 * MAIL. Never sends credentials without TLS unless o->plainauth. An AUTH
 * failure (not offered, refused, no TLS) is final: every result 'Z' with
 * the tag "auth". With o->key set, a connection the transaction left
 * ready for another is kept instead of QUIT (any kept before is dropped
 * first). */
int smtp_session_opts(int fd, const char *ip, const char *host, int literal,
                      const struct sessopts *o, const struct rconf *c, struct rjob *j, str *why);
/* One transaction on the kept connection, if it was kept under o's key
 * and is still healthy: SMTP_FINAL as above, the connection kept again
 * or QUIT. Otherwise SMTP_NEXTHOST: the kept connection (if any) is
 * dropped, and the caller connects afresh; whatever this attempt wrote in
 * j's results is to be overwritten, j->done was not called. */
int smtp_reuse(const struct sessopts *o, const struct rconf *c, struct rjob *j);
/* Closes the kept connection, if any, after a QUIT when polite. */
void smtp_drop(int polite);
/* A kept connection is closed after this long idle: Postfix keeps its
 * cached connections 2 s; 5 s covers the gap between a queue run's
 * deliveries to a destination and qmail-send's retries a few seconds
 * apart, and stays well under the 5 minutes a server waits for a command
 * (RFC 5321 4.5.3.2.7), so the server rarely closes first. */
#define SMTP_KEEP_IDLE_MS 5000
/* The kept connection's socket to watch while idle (*fd, -1 when none is
 * kept), and the milliseconds until it must be dropped (-1 when none). */
int smtp_kept(int *fd);
/* 1 if the address a can go between the "<" and ">" of MAIL FROM or RCPT
 * TO as it is: no byte that would end the path or the command line, or
 * start a parameter (space, '<', '>', control bytes, DEL). A quoted local
 * part with a space is refused too: it fails rather than risk a server
 * that reads the space as the end of the path. */
int smtp_path_ok(const char *a);
/* DATA transparency, exposed for the unit test: converts n bytes of the
 * stored message to wire form, appending to out; *sol carries "at the
 * start of a line" and *cr "a CR is pending" from one call to the next.
 * smtp_blast_end finishes the message: line end if needed, then ".\r\n". */
int smtp_blast(str *out, const char *p, size_t n, int *sol, int *cr);
int smtp_blast_end(str *out, int *sol, int *cr);

/* ---- tlsclient.c ---- */
/* TLS_DANE in a session: TLS with a chain matching the TLSA records of
 * dane.h's last lookup. In control/tlspolicy, dane and dane-only are
 * resolved per host by deliver.c into a session policy. */
enum { TLS_NONE = 0, TLS_MAY, TLS_ENCRYPT, TLS_VERIFY, TLS_DANE, TLS_DANE_ONLY };
/* control/tlspolicy (lines "domain:policy", ":policy" the default, which
 * is otherwise may): the policy for domain. 1 when a line gave it, 0
 * when none did (*policy is may), -1 for a malformed file. */
int tls_policy(const str *lines, const char *domain, int *policy);
/* "none", "may", ... as written in control/tlspolicy. */
const char *tls_policy_name(int policy);
struct tlsconn {
  int fd;                         /* plaintext side, or -1 */
  int pid;                        /* the relay child, or -1 */
};
/* Handshake on fd, each wait within timeout seconds and the whole within
 * total, then a relay child: t->fd carries the plaintext. 0, or -1 with
 * *err. Logs the version, suite, subject and chain verdict. */
int tls_client_start(int fd, const char *ip, const char *host, int literal, int policy,
                     int timeout, int total, struct tlsconn *t, const char **err);
/* Closes t->fd and waits for the relay child: at once when abort (the
 * session timed out or failed on I/O), else after its close_notify. */
void tls_client_end(struct tlsconn *t, int abort);

#endif
