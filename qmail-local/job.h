#ifndef JOB_H
#define JOB_H
/* A delivery job, qmail-lspawn -> the worker of one uid and gid
 * (qmail-local/worker.h): one SOCK_SEQPACKET datagram with the message fd
 * attached, fifteen fields, each followed by a NUL:
 *   uid gid qid rcptno off len opts sender local domain user home dash ext text
 * uid, gid, rcptno, off, len and opts in decimal, the rest as struct
 * delivery holds them; the message fd and defaultdelivery are not in it.
 * The worker answers one item "<c><text>\0" (lib/spawnreq.h), c 'K'
 * delivered, 'D' permanent failure, 'Z' temporary failure.
 */
#include <stddef.h>
#include "deliver.h"
#include "str.h"

/* The longest job: three addresses (sender, local, domain) of at most
 * QF_ADDR_MAX bytes, the extension (part of an address), a users/cdb
 * entry's user and home, and the numbers fit with room to spare; a longer
 * one means a users/cdb entry nobody should have. */
#define JOB_MAX 16384

struct local_job {
  unsigned long long uid, gid;
  struct delivery d;   /* all but fd and defaultdelivery */
};

/* Writes j into out. 0, or -1 with errno ENOMEM, or EMSGSIZE when the job
 * would be longer than JOB_MAX. */
int job_make(str *out, const struct local_job *j);
/* Reads the n-byte job at p into j, whose strings point into p. 0, or -1
 * when it is malformed: not fifteen fields, a number that is not
 * decimal, a bad qid, dash neither "" nor "-". */
int job_parse(char *p, size_t n, struct local_job *j);

#endif
