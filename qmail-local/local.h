#ifndef LOCAL_H
#define LOCAL_H
/* Internals of the local delivery (deliver.c and the files it is split
 * into). Every function that delivers returns a qmail-local(8) exit code:
 * 0 done, 100 permanent failure, 111 temporary failure; report receives
 * the reason (deliver() cleans it into one line at the end).
 */
#include <stddef.h>
#include "buf.h"
#include "str.h"

/* --- the message -------------------------------------------------------
 * A window [off, off+len) of a seekable fd, read only with pread: the fd
 * passed by qmail-send shares its file offset with every other delivery of
 * the message, so nothing here may move it. */
struct local_msg {
  int fd;
  unsigned long long off;
  unsigned long long len;
};

/* Makes m from fd/off/len: DELIVER_TO_EOF becomes the length up to EOF; a
 * pipe is first copied into an unlinked temporary file. 0 or 111. */
int msg_open(struct local_msg *m, int fd, unsigned long long off, unsigned long long len, str *report);
/* Reads up to n bytes at pos (relative to the window); returns bytes read,
 * 0 at the end of the window, -1 on error (EIO if the file is shorter than
 * the window). */
long msg_read(const struct local_msg *m, unsigned long long pos, char *p, size_t n);
/* Writes the message to out; with fromquote, body lines starting "From "
 * get a '>' (mbox). *lastnl tells whether the last byte written was "\n"
 * (or nothing was). 0 or -1 with errno. */
int msg_copy(const struct local_msg *m, buf *out, int fromquote, int *lastnl);
/* 1 if a header line of the message equals line[0..n) (no "\n"), ignoring
 * ASCII case; 0 if not; -1 on read error. */
int msg_header_has(const struct local_msg *m, const char *line, size_t n);

/* --- what every delivery adds ------------------------------------------ */
struct lines {
  str rp;    /* "Return-Path: <sender>\n" */
  str dt;    /* "Delivered-To: local@domain\n" */
  str uf;    /* "From sender date\n" (mbox) */
};

/* --- .qmail names and lines (dotqmail.c) -------------------------------- */
/* Candidate i (0, 1, ...) of the .qmail search for dash/ext, as dot-qmail(5):
 * ".qmail" dash ext, then ".qmail" dash ext-prefix "default" for each
 * prefix ending at a '-', longest first, then ".qmail" dash "default". The
 * extension is lowercased and '.' becomes ':'. *deflen receives the length
 * of ext matched by "default" (the $DEFAULT part), or -1 for the exact
 * name. Returns 1 with the name in out, 0 when there are no more
 * candidates, -1 on ENOMEM. Names that would hold '/' are left out of
 * the numbering. */
int dq_candidate(str *out, const char *dash, const char *ext, unsigned i, long *deflen);

enum { DQ_SKIP, DQ_PROGRAM, DQ_FORWARD, DQ_MBOX, DQ_MAILDIR };
/* Classifies one line (without "\n"); *arg and *argn receive the command, the
 * address or the path (trailing blanks removed except for programs). */
int dq_line(const char *s, size_t n, const char **arg, size_t *argn);

/* $EXT2..$EXT4: ext after its (k-1)th '-'; "" when there is none. */
const char *dq_extn(const char *ext, unsigned k);
/* $HOST2..$HOST4: the length of host without its last k-1 labels. */
size_t dq_hostn(const char *host, unsigned k);

/* --- deliveries --------------------------------------------------------- */
/* The deterministic Maildir name of delivery (qid, rcptno) on host, or the
 * unique one "sec.M<usec>P<pid>.host" when qid is NULL. '/' and ':' in the
 * host become "\057" and "\072". 0 or -1 (ENOMEM). */
int maildir_name(str *out, const char *qid, unsigned long rcptno,
                 unsigned long long sec, unsigned long usec, unsigned long pid,
                 const char *host);
int maildir_deliver(const struct local_msg *m, const char *dir, const struct lines *l,
                    const char *qid, unsigned long rcptno, str *report);
int mbox_deliver(const struct local_msg *m, const char *path, const struct lines *l, str *report);

/* Runs cmd with /bin/sh -c in a process group of its own, the message
 * (after Return-Path and Delivered-To) on its stdin, envp as its
 * environment; its output goes to report. After timeout seconds (SIGALRM,
 * whose disposition it changes) the whole group is killed and the result
 * is 111. Returns 0, 99 (done, stop), 100 or 111. */
int prog_deliver(const struct local_msg *m, const char *cmd, const struct lines *l,
                 char *const envp[], unsigned long timeout, str *report);
/* Reinjects the message (after Delivered-To) to the NUL-terminated
 * addresses in addrs (count of them) with PREFIX/bin/qmail-queue, in an
 * environment holding only SMTPUTF8=1 when utf8 is set. */
int forward_deliver(const struct local_msg *m, const char *sender, const str *addrs,
                    unsigned long count, int utf8, const struct lines *l, str *report);

/* Appends "what: strerror(errno)" to report; returns code. */
int fail(str *report, int code, const char *what, int err);

#endif
