#ifndef METRICS_H
#define METRICS_H
/* Event counters for qmail-metrics(8): one fixed-layout file per writer
 * under PREFIX/metrics/, mapped MAP_SHARED and bumped with atomic adds.
 *
 * A file is METRICS_SLOTS u64 counters in host byte order, nothing else:
 * slot i of file f means what this header's enum for f says. service/install
 * makes each file (zeros, METRICS_BYTES long) owned by its writer's uid,
 * mode 0644; the writer opens it O_RDWR|O_NOFOLLOW after dropping root and
 * maps it once. Short-lived processes that add into the same file (the
 * SMTP sessions) inherit the mapping across fork, or map it at start.
 *
 * Cost per event: one relaxed atomic add into a mapped page; no syscall.
 * A counter never goes backwards while its file exists; reinstalling
 * makes the files again (a reset, which Prometheus handles).
 *
 * Nothing here decides anything: a missing or foreign file (wrong size,
 * wrong owner, a link) leaves the counters unmapped and every add a no-op,
 * so mail flows exactly as without metrics. qmail-metrics reads the files
 * as numbers only; a writer can falsify only its own counters. */
#include <stdint.h>

#define METRICS_BYTES 4096
#define METRICS_SLOTS (METRICS_BYTES / 8)

enum metrics_file { MF_SEND = 0, MF_SMTPD, MF_REMOTE, MF_N };

/* The file names under PREFIX/metrics/, by enum metrics_file. */
extern const char *const metrics_names[MF_N];

/* MF_SEND, written by qmail-send. Channels: 0 local, 1 remote (CH_*). */
enum {
  MS_DELIVERED,                      /* + channel */
  MS_FAILED = MS_DELIVERED + 2,      /* + channel: permanent, expired included */
  MS_DEFERRED = MS_FAILED + 2,       /* + channel */
  MS_DEFER_CLASS = MS_DEFERRED + 2,  /* + MD_*: the deferral's reason class */
  MS_BOUNCES = MS_DEFER_CLASS + 8,   /* failure reports queued */
  MS_DEST_HELD,                      /* gauge: destinations held now (dead included) */
  MS_DEST_DEAD,                      /* gauge: of those, dead */
  MS_N
};
/* Deferral reason classes, from the spawn protocol's tags (spawnproto.h). */
enum { MD_CONNECT = 0, MD_TLS, MD_DNS, MD_4XX, MD_LOCAL, MD_AUTH, MD_OTHER, MD_N };

/* MF_SMTPD, written by the SMTP sessions (qmaild) and their listener. */
enum {
  MP_SESSIONS,                       /* sessions greeted or refused at connect */
  MP_ACCEPTED,                       /* messages queued */
  MP_REFUSED,                        /* + MR_*: refusals, by reason class */
  MP_TLS_IN = MP_REFUSED + 16,       /* + MT_*: inbound TLS */
  MP_N = MP_TLS_IN + 8
};
enum {
  MR_RELAY = 0,                      /* relaying denied */
  MR_UNKNOWN,                        /* unknown recipient, or domain */
  MR_LIMITS,                         /* session, rate, size, recipient, queue space limits */
  MR_DNSBL,
  MR_SPF,
  MR_DMARC,
  MR_GREYLIST,
  MR_CONTENT,                        /* bare CR/LF, NUL, long lines, loops */
  MR_AUTH,                           /* AUTH required or sender not owned */
  MR_PREGREET,                       /* talked before the greeting (qmail-smtpd-listen -p) */
  MR_OTHER,                          /* syntax, UTF-8, badmailfrom, queue refusals */
  MR_N
};
enum { MT_STARTTLS_OK = 0, MT_STARTTLS_FAILED, MT_IMPLICIT_OK, MT_IMPLICIT_FAILED, MT_N };

/* MF_REMOTE, written by qmail-rspawn's workers and qmail-remote: TLS
 * sessions out, by policy (remote.h TLS_NONE..TLS_DANE_ONLY, 6 of them)
 * and outcome. */
enum { MO_OK = 0, MO_FAILED, MO_PLAIN, MO_N };
enum { MX_TLS_OUT = 0, MX_N = MX_TLS_OUT + 6 * MO_N };

/* Maps PREFIX/metrics/<name of f> for this process (and its later forks);
 * a second call is a no-op. 0, or -1 with errno when the file is missing
 * or unusable: adds are then no-ops. */
int metrics_open(enum metrics_file f);

/* Adds 1 to slot (ignored when unmapped or out of range). */
void metrics_inc(unsigned slot);
/* Sets gauge slot to v. */
void metrics_set(unsigned slot, uint64_t v);

/* For the reader: copies f's slots into out with one pread (never a
 * mapping: the writer's uid could truncate its file under a reader's map
 * and kill it with SIGBUS). 0, or -1 with errno. */
int metrics_read(enum metrics_file f, uint64_t out[METRICS_SLOTS]);

#endif
