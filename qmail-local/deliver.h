#ifndef DELIVER_H
#define DELIVER_H
/* One local delivery, done in the calling process, which already runs as
 * the recipient's uid (qmail-lspawn's child after setuid, or qmail-local).
 * Follows the user's .qmail files (dot-qmail(5) semantics: Maildir "./dir/",
 * mbox "./file", "|program", "&forward"), or defaultdelivery when there is
 * none, adding Return-Path: and Delivered-To:.
 */
#include "str.h"

struct delivery {
  const char *user;            /* account name ($USER) */
  const char *home;            /* home directory; the delivery chdirs there */
  const char *local;           /* whole local part, e.g. "joe-list" */
  const char *dash;            /* "-" when ext is meaningful, else "" */
  const char *ext;             /* extension, e.g. "list" */
  const char *domain;
  const char *sender;          /* envelope sender; "" for a bounce */
  const char *defaultdelivery; /* e.g. "./Maildir/" */
  const char *text;            /* non-empty: these dot-qmail lines (an
                                  /etc/aliases entry) instead of .qmail files */
  const char *qid;             /* with rcptno names this delivery uniquely, so a
                                  repeat after a crash is recognised; NULL when
                                  run standalone */
  unsigned long rcptno;
  int fd;                      /* the message */
  unsigned long long off;      /* where it starts in fd */
  unsigned long long len;      /* its length; DELIVER_TO_EOF reads to EOF */
  unsigned opts;               /* QF_OPT_* of the message: with QF_OPT_UTF8
                                  a forward is queued as SMTPUTF8 too */
  unsigned long timeout;       /* seconds a "|program" may run (its process
                                  group is then killed: temporary failure);
                                  0: DELIVER_TIMEOUT */
};

#define DELIVER_TO_EOF (~0ULL)
#define DELIVER_TIMEOUT 1000   /* control/timeoutprogram's default, Postfix's */

/* Returns 0 delivered, 100 permanent failure, 111 temporary failure (the
 * qmail-local(8) exit codes); report receives one line saying what
 * happened, without NUL or newline. */
int deliver(const struct delivery *d, str *report);

/* qmail-local -n: what deliver() would do, without doing it or reading the
 * message: one line per instruction ("maildir ./Maildir/", "mbox ./Mailbox",
 * "program cmd", "forward addr"), or the reason of a failure. Returns as
 * deliver(). */
int deliver_plan(const struct delivery *d, str *plan);

#endif
