#ifndef SEND_H
#define SEND_H
/* qmail-send's parts: recipient rewriting (rewrite.c), the retry schedule
 * and the message index (sched.c), destination state (dest.c), failure
 * records and delivery status notifications (dsn.c). The event loop is
 * qmail-send.c. */
#include <stddef.h>
#include <stdint.h>
#include "dsnparam.h"
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

/* Times in struct send_msg and struct dest are seconds on the scheduler's clock
 * (qmail-send.c: the monotonic clock, offset to read as the wall clock did
 * at start), so that a step of the wall clock moves no timer. In struct
 * msg they take 32 bits, which last until 2106; a later time saturates to
 * T_NEVER, which also means "none". */
#define T_NEVER UINT32_MAX
static inline uint32_t t32(unsigned long long t) { return t >= T_NEVER ? T_NEVER : (uint32_t)t; }

/* Per-message state, small and fixed-size (52 bytes) so that 100,000
 * queued messages cost a few MB: the envelope is read only while a
 * message is being delivered (struct send_job in qmail-send.c), and the qid is
 * kept as its three numbers (qf_qid_split). A qid that does not split, made
 * by hand, has q[1] == Q_ODD and its text in mtab.odd. */
#define Q_ODD UINT32_MAX
struct send_msg {
  uint32_t q[3];                     /* sec, usec, pid of the qid */
  uint32_t due[CH_N];                /* next attempt per channel; 0 = now */
  uint32_t when;                     /* heap key: min over channels with work */
  uint32_t heap;                     /* position in the timer heap, or NIL */
  uint32_t next;                     /* ready list / free list link */
  uint32_t dest;                     /* M_HELD: the destination it is parked on;
                                        otherwise a hint (see DEST_MANY) */
  uint32_t pprev, pnext;             /* M_HELD: links in that destination's list;
                                        M_READY: pprev links the ready list back */
  uint32_t born;                     /* its arrival on the scheduler's clock: the
                                        qid's age when first seen, then counted on
                                        that clock; retries and lifetime run from it */
  uint8_t tries[CH_N];               /* attempts since qmail-send started, up to
                                        255: the schedule makes about 80 a week */
  uint8_t state;                     /* M_* */
  uint8_t logged;                    /* its event=message line is written */
};

/* M_READY: in the ready list; M_WAIT: in the heap; M_OPEN: has a job;
 * M_STUCK: finished but its file could not be removed, in no list: known
 * so that a scan does not take it up again (which would repeat its
 * report), its removal retried on its own (qmail-send.c); M_HELD: parked on a destination's list
 * (waiting for its hold to end or for room under its concurrency limit)
 * and also in the heap, keyed by the end of its lifetime, so that it gets
 * its last attempt however long the destination stays down. */
enum { M_FREE = 0, M_READY, M_WAIT, M_OPEN, M_STUCK, M_HELD };

/* A destination's parked messages: a doubly linked FIFO through msg.pprev
 * and msg.pnext. */
struct plist { uint32_t head, tail; size_t n; };

struct mtab {
  struct send_msg *m;
  size_t n, cap;                     /* slots used (incl. free list), allocated */
  uint32_t freel;                    /* free list head */
  uint32_t *hash;                    /* open addressing, NIL = empty, cap hcap */
  size_t hcap, live;
  uint32_t *heap;                    /* binary min-heap of message indexes by when */
  size_t nheap;
  uint32_t rhead, rtail;             /* ready FIFO */
  size_t nready;
  struct plist *(*plist)(uint32_t dest); /* the list of an M_HELD message */
  char **odd;                        /* by index: the text of a Q_ODD qid; cap
                                        entries, allocated with the first one */
};

#define MTAB_INIT { 0, 0, 0, NIL, 0, 0, 0, 0, 0, NIL, NIL, 0, 0, 0 }

void mt_free(struct mtab *t);
/* Index of qid, or NIL. */
uint32_t mt_find(const struct mtab *t, const char *qid, size_t n);
/* Writes message i's qid, NUL-terminated, into buf; returns buf. */
const char *mt_qid(const struct mtab *t, uint32_t i, char buf[QF_QID_MAX]);
/* Message i's birth (the seconds of its qid). */
unsigned long long mt_birth(const struct mtab *t, uint32_t i);
/* Adds a new message in state M_READY at the ready list's tail; its index
 * or NIL (ENOMEM). born is 0: the caller sets it. */
uint32_t mt_add(struct mtab *t, const char *qid, size_t n);
/* The same, in state M_WAIT in the heap at key when. */
uint32_t mt_add_wait(struct mtab *t, const char *qid, size_t n, unsigned long long when);
/* The same, in state M_STUCK, in no list. */
uint32_t mt_add_stuck(struct mtab *t, const char *qid, size_t n);
void mt_del(struct mtab *t, uint32_t i);
void mt_ready_push(struct mtab *t, uint32_t i);
uint32_t mt_ready_pop(struct mtab *t);
/* Takes i, in state M_READY, out of the ready list (anywhere in it). */
void mt_ready_remove(struct mtab *t, uint32_t i);
/* Puts i (not in the heap) into the heap at key when, state M_WAIT. */
void mt_wait(struct mtab *t, uint32_t i, unsigned long long when);
/* Moves every waiting message whose time has come (or all with all) to
 * the ready list, unparking M_HELD ones; returns the earliest remaining
 * key, or ~0ULL. */
unsigned long long mt_due(struct mtab *t, unsigned long long now, int all);
/* Puts i at the front of the ready list (a message released by its
 * destination goes before the ones that have not waited). */
void mt_ready_push_front(struct mtab *t, uint32_t i);
/* Parks i (neither ready, waiting nor open) at the tail of l, for
 * destination d, and puts it in the heap at expire. */
void mt_park(struct mtab *t, uint32_t i, struct plist *l, uint32_t d, unsigned long long expire);
/* Takes the head of l out of the list and the heap, in state M_READY but
 * in no list; NIL if l is empty. */
uint32_t mt_unpark_head(struct mtab *t, struct plist *l);
/* Moves i, in state M_WAIT, from the heap to the ready list now. */
void mt_ready_now(struct mtab *t, uint32_t i);

/* ---- dest.c: per-destination backoff, dead marking, concurrency. */

#define DEST_FAILS_MAX 64
enum { DEST_HELD = 1, DEST_DEAD = 2 };

struct backoff {
  unsigned long long min, max;       /* first hold, longest hold (seconds) */
  unsigned long long deadtime;       /* hold of a dead destination */
  unsigned long deadthreshold;       /* consecutive failures that make it dead */
  unsigned long perdest;             /* concurrency limit of a healthy destination */
};

struct dest {
  char *name;                        /* lowercased domain, not terminated; 0 = free */
  size_t len;
  struct plist park;                 /* messages waiting for it */
  unsigned long long hold;           /* no new request before this time; 0 = none */
  unsigned long long delay;          /* the length of the current hold */
  uint32_t fails;                    /* connection failures, halved by a success */
  uint32_t gen;                      /* counts failures: a request sent before the
                                        last counted failure cannot count again */
  uint32_t active;                   /* requests in flight */
  uint32_t queued;                   /* unsent groups of open jobs */
  uint32_t heap;                     /* position in the hold heap, or NIL */
  uint32_t hnext;                    /* hash chain / free list link */
  uint8_t dead;
};

/* The hold after fails consecutive failures: min doubled fails-1 times,
 * at most max; 0 for none. */
unsigned long long dest_delay(unsigned fails, unsigned long long min, unsigned long long max);
/* Counts a connection failure at now: a longer hold, or the dead time once
 * there were deadthreshold of them. DEST_HELD or DEST_DEAD. The caller
 * puts it in the hold heap (dest_sethold). */
int dest_fail(struct dest *x, unsigned long long now, const struct backoff *b);
/* Counts a sign of life: the failure count halves (recovery is gradual),
 * the hold and the dead mark end. 1 if it had failures or a hold. The
 * caller takes it out of the heap (dest_unhold). */
int dest_ok(struct dest *x);
/* Requests a destination may have in flight: perdest halved per
 * remembered failure, at least 1 (a probe). */
unsigned long dest_limit(const struct dest *x, unsigned long perdest);

/* msg.dest of a message that is not parked: the destination of its
 * pending remote recipients at the end of its last round, DEST_MANY when
 * they have several, NIL when none or not yet known. Only a hint for
 * resetting one destination (qmail-qdest): the record may have been freed
 * and reused since, which costs an early retry, nothing more. Never an
 * index: the table stops growing below it. */
#define DEST_MANY (NIL - 1)

/* The record of domain dom (any case), made if new; NIL on ENOMEM. */
uint32_t dest_get(const char *dom, size_t n);
/* The record of dom (any case) if there is one, else NIL; makes none. */
uint32_t dest_find(const char *dom, size_t n);
/* 1 if s[0..n) is a destination qmail-qdest accepts: a domain name (1 to
 * 255 bytes of letters, digits, '-' and '.', no empty label, so never "."
 * or ".."), or a relay's key: such a name or "[IPv6]", then optionally
 * ":port" (qmail-send's hop_get). Never '/', never a leading '.'. */
int dest_name_ok(const char *s, size_t n);
/* Valid until the next dest_get. */
struct dest *dest_at(uint32_t i);
struct plist *dest_plist(uint32_t i);
size_t dest_count(void);
/* Slots of the table, free ones included: dest_at(i) for i below is valid,
 * a free one has name 0. */
size_t dest_slots(void);
/* Destinations dead now, and held (in the hold heap) but not dead. */
void dest_counts(size_t *held, size_t *dead);
/* Frees i if nothing refers to it and it remembers no failure. */
void dest_maybe_free(uint32_t i);
void dest_sethold(uint32_t i);       /* (re)places i in the heap at its hold */
void dest_unhold(uint32_t i);        /* takes i out of the heap, if there */
unsigned long long dest_next(void);  /* the earliest hold, or ~0ULL */
/* Takes out and returns one destination whose hold has ended, or NIL. */
uint32_t dest_expired(unsigned long long now);
/* Ends every hold and dead mark now (SIGALRM). The failure counts stay:
 * a destination still down is held again by its first failure, and one
 * that is back regains its concurrency gradually. */
void dest_clear_all(void);
/* Ends i's dead mark and hold by making the hold expire at now, so that
 * dest_expired returns it and its parked messages are released as after
 * any hold (qmail-qdest). Its failure count stays, as with SIGALRM. */
void dest_reset(uint32_t i, unsigned long long now);

/* ---- keep.c: the schedule kept across restarts, queue/sched/schedule. */

/* Writes every queued message's age, due times and attempt counts and
 * every destination's failures and hold (times relative to now, on the
 * scheduler's clock; wall, the wall clock, dates the file), atomically,
 * through the buffer s. 0 or -1. */
int keep_save(str *s, const struct mtab *t, unsigned long long now, unsigned long long wall);
/* Reads it at start, before the first scan of mess/: each message still
 * in mess/ is added to t (in the heap when not yet due) with its age and
 * due times shortened by the wall time elapsed since the write; each
 * destination gets its failures and what is left of its hold. Returns the
 * messages added, 0 without a file, -1 (errno) for a file that is
 * unreadable or not whole (nothing then is taken from it, but what was
 * added before an ENOMEM stays). */
long keep_load(struct mtab *t, unsigned long long now, unsigned long long wall);

/* ---- keep.c: the messages kept out of memory, queue/sched/later.
 *
 * qmail-send keeps in memory at most a window of messages (qmail-send.c),
 * the ones due soonest; the others are lines of this file, with what
 * the schedule would say of them, and come back in order of due time
 * when the window has room or their time comes (qmail-queuefile(5)). */

struct later {
  size_t n;                          /* lines in the file (duplicates and
                                        finished messages count until taken) */
  unsigned long long min;            /* their earliest due, scheduler's clock;
                                        ~0ULL when none */
};

/* Appends messages v[0..n) of t (each in no job) to the file and fsyncs
 * it, through the buffer s: 0, after which the caller may drop them from
 * memory, or -1 (errno; nothing appended). */
int later_put(struct later *l, str *s, const struct mtab *t, const uint32_t *v, size_t n,
              unsigned long long now, unsigned long long wall);
/* Adds to t at most max messages of the file due at or before upto, the
 * earliest first (then in file order), skipping those t has; sets l from
 * the rest. The lines stay until later_compact. The added, or -1 (errno:
 * what was added before the error stays added). */
long later_take(struct later *l, struct mtab *t, size_t max, unsigned long long upto,
                unsigned long long now, unsigned long long wall);
/* Replaces the file with its lines of messages t does not have (alarm:
 * each due now), and sets l. To be called only after the schedule listing
 * what later_take added is saved. 0 or -1 (errno; the file unchanged). */
int later_compact(struct later *l, const struct mtab *t, int alarm, unsigned long long now,
                  unsigned long long wall);
/* Sorts qids for later_known. */
void later_sort(char (*q)[QF_QID_MAX], size_t n);
/* known[k] = 1 when q[k] (q sorted by later_sort) has a line. 0 or -1. */
int later_known(const char (*q)[QF_QID_MAX], size_t n, unsigned char *known);

/* ---- journal.c: qmail-rspawn's journal (qmail-remote/rjournal.h). */

/* At start, before anything is handed out: marks done every pending
 * recipient that a journal file of an earlier qmail-rspawn says was
 * delivered and that r classifies as remote, fsyncing each file it
 * changes. A file still locked by a
 * spawner finishing its deliveries is waited for up to wait seconds, then
 * read as it is (logged). The files are not ours to remove. */
void journal_replay(const struct rw *r, unsigned wait);

/* ---- dsn.c: failure records and bounces. */

/* Appends "\n<i>\0<ch>\0<rcpt>\0<text>\n" to queue/bounce/<qid> and fsyncs
 * it (and the directory when the file is new). Control bytes in text
 * become spaces, so a record is one line. 0 or -1. */
int bounce_append(const char *qid, size_t i, int ch, const char *rcpt, size_t rn,
                  const char *text, size_t tn);

struct dsn_cfg {
  const char *me, *bouncefrom, *bouncehost, *dbto, *dbhost;
  unsigned long long maxbytes;       /* body bytes to include; 0: headers only */
  unsigned long long delaywarn;      /* seconds before a delay notice; 0: none */
  unsigned long long lifetime;       /* queuelifetime, for Will-Retry-Until */
  /* control/bounceto: where the notices about mail whose envelope sender
   * is control/rewritesender go (that address is nobody's: a container's
   * no-reply); "" for none. */
  const char *bounceto, *rewritesender;
};

/* Builds one RFC 3464 report for a message whose recipients are all final,
 * using the records of queue/bounce/<qid> for the failed ones, and injects
 * it with bin/qmail-queue. Returns 1 injected, 0 nothing to send (no
 * failure, or a failed double bounce: logged and dropped), -1 error (the
 * caller retries later). fd is the queue file. */
int dsn_send(const struct dsn_cfg *c, const char *qid, int fd, const qf_env *e,
             unsigned long long now);

/* Records a delivery that asked for a notice (NOTIFY=SUCCESS): kind 'S'
 * (delivered here, local) or 'Y' (relayed: the next hop is not asked for
 * notices, remote) in the same file and format, before the state byte
 * says D. 0 or -1. */
int success_append(const char *qid, size_t i, int ch, const char *rcpt, size_t rn,
                   const char *text, size_t tn);
/* The DSN suffixes of a remote request (spawnproto.h): "/<ENVID>" after
 * opts, "/<NOTIFY>[/<ORCPT>]" after a recipient's index, when there is
 * anything to say. 0 or -1. */
int dsn_req_envid(str *req, const qf_env *e);
int dsn_req_rcpt(str *req, const struct qf_rcpt *r);
/* How many recipients of e are owed a notice now: failed ones that did
 * not decline it (NOTIFY=NEVER, or without FAILURE), delivered ones that
 * asked for it. Old queue files (no NOTIFY) report every failure. */
size_t dsn_owed(const qf_env *e);

/* Once a message is delaywarn seconds old, one delay notice (Action:
 * delayed) to its sender for the pending recipients that want it (NOTIFY
 * with DELAY, or no NOTIFY) and were not warned yet; they are then marked
 * warned with 'W' records in queue/bounce/<qid> (after the injection: a
 * crash may repeat a warning, never lose it). Never for the null or the
 * double-bounce sender. 1 sent, 0 nothing due, -1 error (retried at the
 * next round). */
int dsn_delay(const struct dsn_cfg *c, const char *qid, int fd, const qf_env *e,
              unsigned long long now);

/* The pieces of dsn_send, for unit tests. */
enum { DSN_FAILED = 0, DSN_DELIVERED = 1, DSN_RELAYED = 2, DSN_DELAYED = 3 };
struct dsn_fail {
  const char *rcpt; size_t rn; int ch; const char *text; size_t tn;
  int action;                        /* DSN_* from the record's kind */
  const char *orcpt; size_t orn;     /* ORCPT as sent, or NULL */
  int warned;                        /* a 'W' record: a delay notice went */
  unsigned long long until;          /* DSN_DELAYED: Will-Retry-Until */
};
/* Parses bounce-file records (torn or malformed lines are skipped); for
 * each recipient index < nrcpt the last record wins: f[i].rcpt is NULL if
 * none. Kinds: 'L', 'R' failures, 'S' delivered, 'Y' relayed; 'W' (a
 * delay notice went) only sets warned. */
void dsn_parse(const char *p, size_t n, struct dsn_fail *f, size_t nrcpt);
/* The report message: to is the recipient of the report, envid the
 * ENVID as sent (or NULL), orig the original message's head (headers,
 * and the body part if any). One report may mix actions. */
int dsn_build(str *out, const struct dsn_cfg *c, const char *qid, const char *to,
              unsigned long long birth, unsigned long long now,
              const struct dsn_fail *f, size_t nf, const char *envid, size_t en,
              const char *orig, size_t on, int withbody);
/* RFC 3463 status from a failure text: the enhanced code it starts with
 * (after an optional SMTP reply code), forced to class 5; else "5.0.0". */
void dsn_status(const char *text, size_t n, char out[16]);

/* The text qmail-send gives a temporary failure past the queue lifetime,
 * the last error appended: its status is 4.4.7 (sendmail's and Postfix's
 * choice: the last try failed temporarily). */
#define DSN_EXPIRED "4.4.7 I'm not going to try again; this message has been in the queue too long. Last error: "

/* What a failure text of channel ch says, for the per-recipient fields:
 * status the enhanced code (RFC 3463); type "smtp" and text the remote
 * reply itself when the text carries one (spawnproto.h's "<tag>: <ip>
 * said: <reply>", or a bare reply), else type "X-qmail" and the whole text (DNS, local
 * delivery, connection errors are no SMTP replies). A code is taken from
 * the reply, or from the text's start or a "(x.y.z" in it, else x.0.0;
 * a DSN_EXPIRED text is 4.4.7 with the last error as diagnostic. */
struct dsn_why { char status[16]; const char *type; const char *text; size_t tn; };
void dsn_why(const char *text, size_t n, int ch, struct dsn_why *w);

/* ---- why.c: the last deferral reason of each pending recipient, for
 * qmail-qread: queue/sched/why.<qid>, one line "index wallclock text" per
 * recipient (qmail-queuefile(5)). Not durable and never read by
 * qmail-send: a missing, stale or cut file costs only the text. */

#define WHY_PREFIX "why."
#define WHY_TEXT 200                 /* bytes of a reason kept */
#define WHY_MAX 65536                /* bytes of a file written or read */
#define WHY_LINE (WHY_TEXT + 64)     /* bytes of a record, at most */

struct why_rec { size_t k; unsigned long long t; const char *text; size_t tn; };

/* Appends the record of recipient k deferred at wall time t to s: text cut
 * to WHY_TEXT bytes, control bytes made spaces. 0 or -1 (ENOMEM). */
int why_add(str *s, size_t k, unsigned long long t, const char *text, size_t tn);
/* The next record of b[*pos..n) into r (pointing into b): 1, or 0 at the
 * end. Lines that do not parse are skipped. */
int why_next(const char *b, size_t n, size_t *pos, struct why_rec *r);
/* Reads queue/sched/why.<qid> (at most WHY_MAX bytes) into out: 0, or -1
 * (errno; ENOENT: none) with out empty. */
int why_read(const char *qid, str *out);
/* Replaces queue/sched/why.<qid> with p[0..n) through
 * queue/sched/.why.<qid> and rename(2), without fsync. 0 or -1 (errno). */
int why_save(const char *qid, const char *p, size_t n);

#endif
