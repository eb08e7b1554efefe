#ifndef USERS_H
#define USERS_H
/* users/assign (qmail-users(5)) and the users/cdb that qmail-newu makes
 * of it. Lines, ended by a line ".":
 *   =local:user:uid:gid:home:dash:ext:     the address local exactly
 *   +prefix:user:uid:gid:home:dash:pre:    any address starting with prefix;
 *                                          ext is pre followed by the rest
 * Keys: '=' or '+' then the lowercased local part or prefix. Value:
 * "user\0uid\0gid\0home\0dash\0ext\0". The longest prefix wins, an exact
 * entry beats every prefix, and "+" alone (the empty prefix) is the
 * catch-all, consulted only after the system accounts.
 */
#include <cdb.h>
#include <stddef.h>
#include "str.h"

struct uent {
  const char *user, *home, *dash, *ext;   /* point into buf */
  unsigned long long uid, gid;
  str buf;
};

/* One line of users/assign, without its "\n": 1 with key and value set, 0
 * for the final ".", -1 with *why set for a malformed line. */
int assign_line(const char *s, size_t n, str *key, str *val, const char **why);

/* Sets u to user[0..usern), uid, gid, home, dash and the extension
 * ext[0..extn) followed by rest[0..restn), copied into u->buf. 0, or -1
 * (ENOMEM). */
int uent_fill(struct uent *u, const char *user, size_t usern, unsigned long long uid,
              unsigned long long gid, const char *home, const char *dash,
              const char *ext, size_t extn, const char *rest, size_t restn);

/* Looks local[0..n) (already lowercased) up in c: with catchall 0, the
 * exact entry then the non-empty prefixes, longest first; with catchall 1,
 * only the empty prefix. 1 found (u filled), 0 not, -1 error (EINVAL for
 * a malformed value, ENOMEM). */
int users_find(struct cdb *c, const char *local, size_t n, int catchall, struct uent *u);

#endif
