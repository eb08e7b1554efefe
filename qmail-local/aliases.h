#ifndef ALIASES_H
#define ALIASES_H
/* /etc/aliases (sendmail's aliases(5)) as qmail-newaliases compiles it
 * into users/aliases.cdb, read by rf_find (qmail-local/rcptfind.h).
 *
 * An entry is "name: value, value, ..."; a line starting with a blank
 * continues the entry above; '#' at the start of a line makes a comment.
 * The name is lowercased and may not hold blanks, '@', '/' or control
 * characters. Each value, trimmed, one of:
 *   address, <address>     forwarded (an address without '@' gets
 *                          envnoathost, as in qmail: a local user);
 *   |command, "|command"   run by /bin/sh as the alias account (quotes
 *                          protect commas);
 *   /path                  appended to that mbox file, or delivered to
 *                          that Maildir when it ends in '/', as the alias
 *                          account.
 * Refused (the line is named, nothing is written): ":include:" (it would
 * let the owner of any file name recipients), "\user" (sendmail's "no
 * further aliasing", which has no meaning here), an empty value list.
 * The cdb key is the name; the value is the instructions as dot-qmail(5)
 * lines: "&address\n", "|command\n", "/path\n". */
#include <stddef.h>
#include "str.h"

/* Parses the entry s[0..n) (continuations joined, no "\n"): 1 with key
 * and val set, -1 with *why set. */
int alias_entry(const char *s, size_t n, str *key, str *val, const char **why);

#endif
