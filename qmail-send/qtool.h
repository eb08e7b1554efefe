#ifndef QTOOL_H
#define QTOOL_H
/* What the read-only queue tools (qmail-qstat, qmail-qread) share: the
 * sorted list of a queue directory and output that a hostile address
 * cannot turn into terminal escapes. The local/remote split of recipients
 * is qmail-send's own (rewrite.c, send.h), so the tools count exactly what
 * qmail-send will do.
 *
 * The tools run in the prefix (prefix_chdir) as root or as a member of the
 * queue's group; they open queue files read-only and never write.
 */
#include <stddef.h>
#include "buf.h"
#include "qfile.h"
#include "str.h"

/* The valid qids in directory dir, each followed by a NUL, in names;
 * entries that are not qids are counted in *other. Sorted by birth
 * time, then by the rest of the qid. *n receives the count, *at an array
 * (malloc'd, free it) of offsets into names->s. 0, or -1 with errno. */
int qtool_list(const char *dir, str *names, size_t **at, size_t *n, size_t *other);

/* Calls fn for each message of queue/mess in birth order, with the open
 * file and its envelope. A file that vanished since the listing (it was
 * delivered) is skipped; one that cannot be opened or parsed is passed
 * with e NULL and errno saying why. *other counts names in queue/mess
 * that are not qids. 0, or -1 when the listing failed or fn returned -1. */
typedef int qtool_fn(void *ctx, const char *qid, int fd, const qf_env *e);
int qtool_each(qtool_fn *fn, void *ctx, size_t *other);

/* What the queue holds, counted as qmail-send sees it: messages it can
 * read, their recipients by state (pending ones split local/remote by
 * rewrite.c), files it cannot use, files being written in queue/tmp (not
 * qmail-queued's unused pool names), and the birth (qid seconds) of the
 * oldest usable message, 0 when there is none. */
struct qtool_stat {
  unsigned long long msgs, local, remote, failed, done, damaged, tmp, oldest;
};
/* Fills *s from the queue (in the prefix), with control/me, locals,
 * virtualdomains and qmail-send's ids from control/ids. 0, or -1 with
 * *why saying what could not be read. */
int qtool_stat(struct qtool_stat *s, const char **why);

/* Writes a[0..n) with every byte outside printable ASCII as \xHH (and
 * '\' as "\\"), so that no queued address can drive the terminal. */
int qtool_put_safe(buf *b, const char *a, size_t n);

#endif
