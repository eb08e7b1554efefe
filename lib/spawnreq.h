#ifndef SPAWNREQ_H
#define SPAWNREQ_H
/* The spawner's side of lib/spawnproto.h: parsing a request, building and
 * sending a reply. Shared by qmail-lspawn (root) and qmail-rspawn.
 *
 * The parser trusts no field and allocates nothing: a request is checked
 * in place and described by pointers into the datagram, at most
 * SPAWN_RCPTS recipients in a fixed array. */
#include <stddef.h>
#include "spawnproto.h"
#include "str.h"

struct spawnrcpt {
  unsigned long long i;     /* index in the queue file, <= QF_RCPT_MAX */
  char *addr;               /* 1..QF_ADDR_MAX bytes, NUL-terminated, holds '@' */
  const char *domain;       /* in addr, after its last '@' (may be "") */
  unsigned notify;          /* DSN_NOTIFY_* bits, 0 when none */
  const char *orcpt;        /* ORCPT, valid (dsnp_check), or NULL; */
  size_t orcptn;            /*   in the datagram, not NUL-terminated */
};

struct spawnreq {
  unsigned long slot;       /* < SPAWN_SLOTS */
  const char *qid;          /* qf_qid_ok */
  unsigned long long off, len, opts;
  const char *envid;        /* ENVID, valid (dsnp_check), or NULL; in the */
  size_t envidn;            /*   datagram, not NUL-terminated */
  const char *sender;       /* 0..QF_ADDR_MAX bytes, may be "" */
  size_t nrcpt;             /* 1..maxrcpt on success */
  /* How many 'Z' items a refusal carries: one per recipient the request
   * appears to hold, at least 1, at most SPAWN_RCPTS. Set whenever the
   * slot is. */
  size_t nanswer;
  struct spawnrcpt rcpt[SPAWN_RCPTS];
};

/* Parses the n-byte datagram p (modifiable: the spawner may edit the
 * recipients in place) allowing 1..maxrcpt recipients (maxrcpt at most
 * SPAWN_RCPTS). Decimal fields are strict (lib/control.h scan_ulong).
 * Returns
 *   SPAWNREQ_OK      r is complete;
 *   SPAWNREQ_BAD     r->slot and r->nanswer are set, *why says what is wrong;
 *   SPAWNREQ_NOSLOT  nobody to answer: the datagram does not end in a NUL
 *                    (it was cut or forged) or has no valid slot; *why set. */
enum { SPAWNREQ_OK = 0, SPAWNREQ_BAD = 1, SPAWNREQ_NOSLOT = 2 };
int spawnreq_parse(struct spawnreq *r, char *p, size_t n, size_t maxrcpt, const char **why);

/* For a spawner that passes a request on (qmail-rspawn): appends the
 * opts field "<opts>[/<ENVID>]\0", and recipient x's index field
 * "<i>[/<NOTIFY>[/<ORCPT>]]\0", as parsed. 0 or -1. */
MUST_USE int spawnreq_cat_opts(str *d, const struct spawnreq *r);
MUST_USE int spawnreq_cat_index(str *d, const struct spawnrcpt *x);

/* The most a reply's items can take: SPAWN_RCPTS of "<c><text>\0". */
#define SPAWN_ITEMS_MAX (SPAWN_RCPTS * (SPAWN_TEXT + 2))

/* Writes the item "<c><text>\0" at out, which has room for SPAWN_TEXT + 2
 * bytes: text cut to SPAWN_TEXT bytes, its NULs turned into spaces.
 * Returns the item's length. */
size_t spawnreq_item(char *out, char c, const char *text, size_t n);
/* 1 if [p, p+n) is exactly count items "<c><text>\0", c one of K Z D and
 * text at most SPAWN_TEXT bytes; else 0. */
int spawnreq_items_ok(const char *p, size_t n, size_t count);

/* Sends the reply "<slot>\0" + items (n <= SPAWN_ITEMS_MAX bytes) on fd 0;
 * a failure is logged as prog's event reply_failed. */
void spawnreq_reply(const char *prog, unsigned long slot, const char *items, size_t n);
/* Answers count items (1..SPAWN_RCPTS) "Z<tag><why>\0": a delivery that
 * cannot run. */
void spawnreq_refuse(const char *prog, unsigned long slot, size_t count, const char *tag,
                     const char *why);

#endif
