#ifndef SEND_H
#define SEND_H
/* qmail-send's parts: recipient rewriting (rewrite.c), the retry schedule
 * and the message index (sched.c), failure records and delivery status
 * notifications (dsn.c). The event loop is qmail-send.c. */
#include <stddef.h>
#include <stdint.h>
#include "qfile.h"
#include "str.h"

enum { CH_LOCAL = 0, CH_REMOTE = 1, CH_N = 2 };

/* ---- rewrite.c: which channel delivers a recipient, under which name. */

struct rw_ent { const char *key; size_t klen; const char *val; size_t vlen; };

struct rw {
  str me, envnoathost;
  str locals_raw, vd_raw;            /* control_lines() buffers, keys lowercased */
  struct rw_ent *locals, *vd;        /* sorted by key, pointing into *_raw */
  size_t nlocals, nvd;
};

#define RW_INIT { STR_INIT, STR_INIT, STR_INIT, STR_INIT, 0, 0, 0, 0 }

/* Reads control/me, locals, envnoathost, virtualdomains (relative to the
 * current directory). On error r is left as it was: a bad reload keeps the
 * old tables. 0 or -1 (errno). */
int rw_load(struct rw *r);
void rw_free(struct rw *r);
/* Classifies the queue-file address a[0..n): returns CH_LOCAL or CH_REMOTE
 * and puts in out the address to hand to the spawner: "@envnoathost"
 * appended when there is no '@', and for a virtual domain's local
 * recipient "prepend-address". -1 on ENOMEM. qmail semantics: locals
 * first; then virtualdomains by whole address, by domain, by ".suffix" of
 * the domain, by the empty key; an empty prepend means "not local". */
int rw_classify(const struct rw *r, const char *a, size_t n, str *out);

/* ---- sched.c: retry times and the in-memory index of the queue. */

/* qmail's schedule: birth + (floor(sqrt(now - birth)) + skip)^2. */
unsigned long long retry_next(unsigned long long birth, unsigned long long now, unsigned skip);

#define NIL UINT32_MAX

/* Per-message state, small and fixed-size so that 100,000 queued
 * messages cost a few MB: the envelope is read only while a message is
 * being delivered (struct job in qmail-send.c). */
struct msg {
  char qid[QF_QID_MAX];
  unsigned long long birth;
  unsigned long long due[CH_N];      /* next attempt per channel; 0 = now */
  unsigned long long when;           /* heap key: min over channels with work */
  uint32_t heap;                     /* position in the timer heap, or NIL */
  uint32_t next;                     /* ready list / free list link */
  uint32_t job;                      /* index of its job while open, or NIL */
  uint16_t tries[CH_N];              /* attempts since qmail-send started */
  uint8_t state;                     /* M_* */
};

/* M_READY: in the ready list; M_WAIT: in the heap; M_OPEN: has a job;
 * M_STUCK: finished but its file could not be removed, known only so that
 * a scan does not take it up again. */
enum { M_FREE = 0, M_READY, M_WAIT, M_OPEN, M_STUCK };

struct mtab {
  struct msg *m;
  size_t n, cap;                     /* slots used (incl. free list), allocated */
  uint32_t freel;                    /* free list head */
  uint32_t *hash;                    /* open addressing, NIL = empty, cap hcap */
  size_t hcap, live;
  uint32_t *heap;                    /* binary min-heap of message indexes by when */
  size_t nheap;
  uint32_t rhead, rtail;             /* ready FIFO */
  size_t nready;
};

#define MTAB_INIT { 0, 0, 0, NIL, 0, 0, 0, 0, 0, NIL, NIL, 0 }

/* Index of qid, or NIL. */
uint32_t mt_find(const struct mtab *t, const char *qid, size_t n);
/* Adds a new message in state M_READY at the ready list's tail; its index
 * or NIL (ENOMEM). */
uint32_t mt_add(struct mtab *t, const char *qid, size_t n);
void mt_del(struct mtab *t, uint32_t i);
void mt_ready_push(struct mtab *t, uint32_t i);
uint32_t mt_ready_pop(struct mtab *t);
/* Puts i (not in the heap) into the heap at key when, state M_WAIT. */
void mt_wait(struct mtab *t, uint32_t i, unsigned long long when);
/* Moves every waiting message whose time has come (or all with all) to
 * the ready list; returns the earliest remaining key, or ~0ULL. */
unsigned long long mt_due(struct mtab *t, unsigned long long now, int all);

/* ---- dsn.c: failure records and bounces. */

/* Appends "\n<i>\0<ch>\0<rcpt>\0<text>\n" to queue/bounce/<qid> and fsyncs
 * it (and the directory when the file is new). Control bytes in text
 * become spaces, so a record is one line. 0 or -1. */
int bounce_append(const char *qid, size_t i, int ch, const char *rcpt, size_t rn,
                  const char *text, size_t tn);

struct dsn_cfg {
  const char *me, *bouncefrom, *bouncehost, *dbto, *dbhost;
  unsigned long long maxbytes;       /* body bytes to include; 0: headers only */
};

/* Builds one RFC 3464 report for a message whose recipients are all final,
 * using the records of queue/bounce/<qid> for the failed ones, and injects
 * it with bin/qmail-queue. Returns 1 injected, 0 nothing to send (no
 * failure, or a failed double bounce: logged and dropped), -1 error (the
 * caller retries later). fd is the queue file. */
int dsn_send(const struct dsn_cfg *c, const char *qid, int fd, const qf_env *e,
             unsigned long long now);

/* The pieces of dsn_send, for unit tests. */
struct dsn_fail { const char *rcpt; size_t rn; int ch; const char *text; size_t tn; };
/* Parses bounce-file records (torn or malformed lines are skipped); for
 * each recipient index < nrcpt the last record wins: f[i].rcpt is NULL if
 * none. */
void dsn_parse(const char *p, size_t n, struct dsn_fail *f, size_t nrcpt);
/* The report message: to is the recipient of the report, orig the
 * original message's head (headers, and the body part if any). */
int dsn_build(str *out, const struct dsn_cfg *c, const char *qid, const char *to,
              unsigned long long birth, unsigned long long now,
              const struct dsn_fail *f, size_t nf, const char *orig, size_t on, int withbody);
/* RFC 3463 status from a failure text: the enhanced code it starts with
 * (after an optional SMTP reply code), forced to class 5; else "5.0.0". */
void dsn_status(const char *text, size_t n, char out[16]);

#endif
