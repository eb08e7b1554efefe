#ifndef RCPTFIND_H
#define RCPTFIND_H
/* Is a local part a deliverable local address, and whose? The one answer
 * that qmail-lspawn (root, routing a delivery) and qmail-smtpd (qmaild, at
 * RCPT time) both use, so that nothing passes RCPT that delivery would
 * bounce. Paths are relative to the prefix, the caller's cwd.
 *
 * The local part (lowercased, at most QF_ADDR_MAX bytes) is looked up in
 * this order, the first that knows it deciding:
 *   1. users/aliases.cdb (qmail-newaliases: /etc/aliases): delivered by
 *      the alias account with the entry's instructions (dot-qmail lines);
 *   2. users/cdb: an exact entry, then the longest prefix entry;
 *   3. a system account named by the local part up to its first '-',
 *      not uid 0, whose home directory exists and belongs to it;
 *   4. users/cdb's catch-all "+" entry;
 *   5. the alias account (the owner of c->alias, never root) with the
 *      whole local part as its extension: alias/.qmail-<local>, its
 *      -default forms, alias/.qmail-default (qmail's fallback);
 *   6. "postmaster" (RFC 5321 4.5.1) always: the alias account without
 *      an extension (alias/.qmail, else the default delivery).
 * An account found with an extension (dash "-") is deliverable only if one
 * of its .qmail candidates (dq_candidate) exists in its home, as deliver()
 * bounces otherwise; found in 2-4 without one, the answer is "no mailbox"
 * (no later step is tried, as delivery would not try it either). A
 * candidate that cannot be stat()ed for another reason than ENOENT or
 * ENAMETOOLONG (a home qmaild may not search) counts as present:
 * delivery decides, and at worst defers.
 *
 * Everything consulted is readable by qmaild in a root install:
 * users/cdb and users/aliases.cdb (0644), /etc/passwd, PREFIX/alias
 * (2755) and stat() of home directories (their parents searchable). */
#include <cdb.h>
#include <pwd.h>
#include <stddef.h>
#include "str.h"
#include "users.h"

struct rf_ctx {
  struct cdb *users;     /* users/cdb, or NULL when there is none */
  struct cdb *aliases;   /* users/aliases.cdb, or NULL */
  /* The system account of that name, or NULL: getpwnam (qmail-lspawn),
   * a scan of /etc/passwd (static qmail-smtpd, which cannot load NSS). */
  struct passwd *(*getpw)(const char *name);
  long long only_uid;    /* >= 0: single-uid mode, only this uid receives */
  const char *alias;     /* the alias account's home: rf_alias_home() */
};

/* PREFIX/alias (auto_prefix), the alias account's home. */
const char *rf_alias_home(void);

struct rf_dest {
  struct uent u;         /* the account, its dash and extension */
  const char *text;      /* instructions replacing .qmail files, or "" */
  str tbuf;
};

#define RF_FOUND 0
#define RF_NONE 100
#define RF_ERROR 111

/* Looks local[0..n) up (see above). RF_FOUND with d filled; RF_NONE or
 * RF_ERROR with *why set ("no such user here", ...). */
int rf_find(const struct rf_ctx *c, const char *local, size_t n, struct rf_dest *d,
            const char **why);

/* The instructions of one alias entry are at most this long (JOB_MAX). */
#define RF_ALIAS_MAX 8192

#endif
