#ifndef QFILE_H
#define QFILE_H
/* The queue file: one file per message, queue/mess/<qid>.
 *
 * qmail-queue writes it in queue/tmp/<qid>, fsyncs it, renames it into
 * queue/mess/ and fsyncs queue/mess/: the rename is the commit, and a file
 * in mess/ is always complete. qmail-queued writes it in a name of its
 * pool (tmp/p<n>) and answers before mess/ is fsynced: its sum lets a
 * file whose rename a power cut undid be told from one that was never
 * finished (qmail-queue/qwrite.h). Layout:
 *
 *   [0, QF_HDR)            header, written last:
 *                            "QMQ1"                      magic
 *                            u64 big-endian  msg_len     message bytes
 *                            u64 big-endian  env_off     = QF_HDR + msg_len
 *                            u64 big-endian  sum         XXH64 (seed 0) of
 *                                                        [QF_HDR, EOF) as
 *                                                        committed; checked
 *                                                        only by recovery,
 *                                                        since state bytes
 *                                                        change afterwards
 *                            "DONE"                      completion marker
 *   [QF_HDR, env_off)      the message, LF line ends, starting with the
 *                          Received: line qmail-queue adds
 *   [env_off, EOF)         envelope records, then the end record
 *
 * A record is: 1 type byte, u32 big-endian length n, n data bytes. Nothing
 * in the data is ever interpreted as structure, so no address can forge a
 * record. Types, in this order:
 *   'F'  exactly one: the envelope sender (may be empty: the null sender)
 *   'O'  zero or more options: "SMTPUTF8", "RET=FULL", "RET=HDRS" (at
 *        most one RET), each at most once
 *   'V'  at most one, among the 'O' records: ENVID (lib/dsnparam.h), the
 *        xtext as the client sent it
 *   'R'  one or more recipients: data[0] is the state byte, data[1..] the
 *        address. States: QF_PENDING, QF_DONE, QF_FAILED. Only the state
 *        byte is ever changed after commit (by qmail-send, in place).
 *     each 'R' may be followed by, in any order, at most one of each:
 *   'N'  its NOTIFY: one byte of DSN_NOTIFY_* bits, a valid combination
 *   'Q'  its ORCPT, "<type>;<xtext>" as the client sent it
 *   'E'  the end record, last in the file: empty, or the qid the file was
 *        written for (qmail-queue(d) write it), so that a file whose rename
 *        a power cut undid comes back under the same qid (qmail-queue/qpool.h)
 *        and a delivery repeated then is still recognised as a repeat.
 * Addresses are 1..QF_ADDR_MAX bytes (the sender may be 0), hold no NUL,
 * CR or LF. 'V' and 'Q' values pass dsnp_check. Anything else makes the
 * file invalid. A file without 'V', 'N', 'Q' or a RET option (older ones)
 * asks for no DSN: qmail's behaviour, failures reported.
 *
 * qid: "<seconds>.<microseconds>.<pid>" of qmail-queue at creation, in
 * decimal, e.g. "1795420800.004211.3117"; seconds is the message's birth.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "str.h"

#define QF_HDR 32
#define QF_ADDR_MAX 1000
#define QF_RCPT_MAX 100000
#define QF_QID_MAX 48

#define QF_PENDING 'P'   /* not yet delivered */
#define QF_DONE    'D'   /* delivered, or dropped on purpose */
#define QF_FAILED  'F'   /* failed for good; reported in queue/bounce/<qid> */

#define QF_OPT_UTF8 1u
#define QF_OPT_RET_FULL 2u
#define QF_OPT_RET_HDRS 4u

struct qf_rcpt {
  off_t state_off;       /* file offset of the state byte */
  char state;
  const char *addr;      /* points into qf_env.env; not NUL-terminated */
  size_t len;
  unsigned notify;       /* DSN_NOTIFY_* bits, 0 when not given */
  const char *orcpt;     /* ORCPT as sent, or NULL; into qf_env.env */
  size_t orcpt_len;
};

typedef struct {
  unsigned long long msg_len;
  unsigned long long env_off;
  unsigned opts;         /* QF_OPT_* */
  const char *sender;
  size_t sender_len;
  size_t nrcpt;
  struct qf_rcpt *rcpt;
  str env;               /* the envelope bytes, as read */
  const char *envid;     /* ENVID as sent, or NULL; into env */
  size_t envid_len;
  const char *qid;       /* the end record's qid (qf_qid_ok), or NULL; into env */
  size_t qid_len;
} qf_env;

#define QF_ENV_INIT { 0, 0, 0, 0, 0, 0, 0, STR_INIT, 0, 0, 0, 0 }

/* Reads and validates the header and the envelope of an open queue file.
 * 0, or -1 with errno EINVAL (malformed), ENOMEM, or a read error. */
int qf_read(int fd, qf_env *e);
/* Sets recipient i's state byte on disk and in e. 0 or -1. */
int qf_mark(int fd, qf_env *e, size_t i, char state);
void qf_free(qf_env *e);

/* Writer side, used by qmail-queue only. */
/* Appends one record to s. 0 or -1 (ENOMEM/EOVERFLOW, or EINVAL if n is
 * over 2^32-1). */
int qf_record(str *s, char type, const void *data, size_t n);
/* Fills hdr[QF_HDR] for a message of msg_len bytes whose file after the
 * header hashes to sum. */
void qf_header(unsigned char hdr[QF_HDR], unsigned long long msg_len, unsigned long long sum);
/* 0 if hdr is complete (magic, completion marker) and its lengths agree
 * with each other and with a file of size bytes, the sum then in *sum;
 * -1 with errno EINVAL if not. */
int qf_header_ok(const unsigned char hdr[QF_HDR], unsigned long long size,
                 unsigned long long *msg_len, unsigned long long *sum);

/* Checks a qid's syntax (digits '.' digits '.' digits, at most
 * QF_QID_MAX-1 bytes): 1 valid, 0 not. Used on every name read from a
 * directory or a peer before it becomes a path. */
int qf_qid_ok(const char *s, size_t n);
/* A name of qmail-queued's pool in tmp/ (qmail-queue/qpool.h): "p" and 1
 * to QF_POOL_DIGITS digits. 1 valid, 0 not; never a qid. */
#define QF_POOL_DIGITS 20
int qf_pool_ok(const char *s, size_t n);
/* 1 if name, of a file whose stat is st, is a pool name never used: an
 * empty regular file. Such a name is no message, finished or not. */
struct stat;
int qf_pool_unused(const char *name, const struct stat *st);
/* Whether qmail-send, as send_uid with queue_gid among its groups, can
 * open the mess/ file st describes read-write, as it must to record
 * results: 0 when it can, else why not, as a word: "type" (not a regular
 * file), "links" (more than one), "access" (no owner, group or other
 * bits give it read and write). One check for qmail-qstat (as root, which
 * could read any of them) and qmail-qfix. */
const char *qf_send_cannot(const struct stat *st, uid_t send_uid, gid_t queue_gid);
/* "role=<uid>:<gid>" among the NUL-separated lines of control/ids in
 * ids (control_lines): 0 with *u and *g set, or -1. */
int qf_ids_role(const str *ids, const char *role, uid_t *u, gid_t *g);
/* Writes the qid of a message begun at sec.usec (usec < 10^6) by pid,
 * "<sec>.<usec in six digits>.<pid>", without a NUL (a usec over 999999
 * is written 999999); returns the end. At
 * most 20 + 1 + 6 + 1 + 10 bytes, under QF_QID_MAX. */
char *qf_qid_fmt(char *dst, unsigned long long sec, uint32_t usec, uint32_t pid);
_Static_assert(20 + 1 + 6 + 1 + 10 < QF_QID_MAX, "a qid and its NUL must fit QF_QID_MAX");
/* Splits a qid that qf_qid_fmt spells byte for byte, with sec and pid
 * below 2^32, into v = { sec, usec, pid }: 1. Any other string: 0. */
int qf_qid_split(const char *s, size_t n, uint32_t v[3]);
/* Birth time (the seconds field) of a valid qid. */
unsigned long long qf_qid_birth(const char *qid);

#endif
