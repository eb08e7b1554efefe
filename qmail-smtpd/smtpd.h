#ifndef SMTPD_H
#define SMTPD_H
/* qmail-smtpd internals: one session per process, so its state is a few
 * globals owned by smtpd.c, read by the other files.
 *
 *   smtpd.c  main, command table and state machine
 *   reply.c  client I/O: replies, flushing, timeouts, bad-command limit
 *   rcpt.c   control files, relay control, recipient and sender checks
 *   data.c   DATA and BDAT, the Received: line, running qmail-queue
 *   proto.c  the pure grammar (also driven by the fuzz target)
 */
#include <sys/types.h>
#include "addr.h"
#include "buf.h"
#include "str.h"

#define PROG "qmail-smtpd"

/* The default of control/databytes: 35 MiB. A 25 MB attachment, what the
 * large providers let their users send, is about 34.2 MB once base64
 * encoded with its line ends; Microsoft 365 takes 36 MB by default.
 * Postfix's 10 MB refuses such mail. */
#define DATABYTES 36700160UL

struct config {
  str me;              /* control/me */
  str greeting;        /* control/smtpgreeting, default me */
  str rcpthosts;       /* control/rcpthosts lines, each NUL-terminated */
  str locals;          /* control/locals lines, default me */
  str badmailfrom;     /* control/badmailfrom lines */
  unsigned long databytes;     /* 0: no limit */
  unsigned long timeoutidle;   /* seconds per read or write outside a transaction */
  unsigned long timeoutcmd;    /* the same in a transaction, between commands */
  unsigned long timeout;       /* the same inside a message (DATA, BDAT chunk) */
  unsigned long timeoutsession;/* seconds per connection */
  unsigned long maxrcpt;
  unsigned long maxbadcmds;
  unsigned long maxbadrcpts;   /* refused recipients before 421 */
  unsigned long softbadrcpts;  /* refused recipients answered without delay */
  unsigned long errordelay;    /* milliseconds: the unit of the delays below */
  unsigned long timeoutpredata;/* seconds from the greeting to the first DATA or BDAT; 0: none */
  int validrcptto_cdb; /* control/validrcptto.cdb exists */
};

struct session {
  const char *remoteip;
  const char *remotehost;
  const char *relayclient;     /* NULL unless RELAYCLIENT is set */
  str helo;                    /* as given, for Received: */
  int seenhelo;
  int esmtp;                   /* EHLO rather than HELO */
  int tls;                     /* TLS is active (starttls.c) */
  char tlsinfo[100];           /* "<version> <cipher>" from qmail-tlsd */
  int authed;                  /* AUTH succeeded (auth.c); cleared by STARTTLS */
  unsigned long badcmds;
  unsigned long badrcpts;      /* refused recipients in this session */
  /* The transaction, cleared by txn_reset(). */
  int inmail;
  int utf8;                    /* MAIL ... SMTPUTF8 */
  int bdat;                    /* a BDAT chunk was taken in this transaction */
  str sender;
  str mailp;                   /* the sender's "P<param>\0" DSN fields */
  str env;                     /* "T<rcpt>\0" records for qmail-queue,
                                  each with its "P<param>\0" DSN fields */
  unsigned long nrcpt;
};

extern struct config cf;
extern struct session ss;
extern buf in, out;

/* reply.c */
void out_put(const char *s, size_t n);
void out_puts(const char *s);
void reply(const char *line);            /* one line, CRLF appended */
void out_flush(void);
/* Reads one command line (at most CMD_MAX octets); LINE_OK or LINE_LONG.
 * End of input and timeouts end the session here. */
int in_cmd(str *line);
/* Makes sure unread input is buffered (flushing replies first when none
 * is); returns 0 at end of input. Timeouts end the session here. */
int in_more(void);
/* A 5xx reply to a bad command, delayed as bad_rcpt's beyond half of
 * maxbadcmds; ends the session once there were maxbadcmds. */
void bad_command(const char *line);
/* The reply to a refused recipient. After softbadrcpts of them each one
 * waits longer (k * errordelay for the k-th beyond, at most ten units),
 * and the session ends with 421 at maxbadrcpts: recipient probing gets
 * slow and short. */
void bad_rcpt(const char *line);
/* Flushes the replies, then waits ms milliseconds. */
void error_delay(unsigned long ms);
/* Ends the session: aborts any message, logs, exits. */
void quit(int code, const char *why) __attribute__((noreturn));
void session_deadline(unsigned long seconds);
/* The first DATA or BDAT is due within seconds (0: no such deadline):
 * a client that only talks cannot hold its session for timeoutsession. */
void predata_deadline(unsigned long seconds);

/* rcpt.c */
void config_load(void);
/* NULL when the recipient is accepted (its final form in final), else the
 * reply line; *why gets a short reason for the log. */
const char *rcpt_check(const addr *a, str *final, const char **why);
/* 1 if control/badmailfrom names the sender. */
int sender_bad(const addr *a);
/* 1 if domain d[0..n) matches a line of list (NUL-separated lines,
 * "example.test" exact, ".example.test" any subdomain, any case). */
int domain_in_list(const str *list, const char *d, size_t n);

/* mailspf.c: SPF (RFC 7208) at MAIL. */
void spf_reset(void);          /* drops SPF_RESULT, SPF_SCOPE, SPF_DOMAIN */
/* Checks the HELO and MAIL FROM identities of a client that is neither
 * RELAYCLIENT nor authenticated, within control/spftimeout, and sets
 * SPF_* for the queue stage. NULL, or the reply refusing the sender by
 * control/spfpolicy (*why then says why, for the log). */
const char *spf_mail(const addr *a, const char **why);

/* starttls.c: the control socket to qmail-tlsd (tlsctl.h). */
void tls_init(void);           /* before the greeting; waits for implicit TLS */
int tls_offered(void);         /* STARTTLS goes in the EHLO reply */
void smtp_starttls(const char *arg, size_t n);

/* data.c */
void smtp_data(const char *arg, size_t n);
void smtp_bdat(const char *arg, size_t n);
void txn_reset(void);          /* forgets the transaction, aborting qmail-queue */

#endif
