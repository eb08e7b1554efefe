/* qmail-send: the scheduler, see qmail-send(8). Runs as qmails, started
 * by qmail-start with qmail-lspawn's socket on fd 3 and qmail-rspawn's on
 * fd 4.
 *
 * One explicit event loop over poll(): the trigger fifo (a new message),
 * the two spawner sockets (results), a self-pipe (signals) and timers.
 *
 * Each queued message has a small fixed record in memory (sched.c). A
 * message being delivered is a job: its queue file open twice (read-write
 * for our state bytes, read-only for the spawners), its envelope read, and
 * its pending recipients ordered by channel (remote ones sorted by domain,
 * so one request carries one domain's recipients). A job lives for one
 * round: every due recipient is handed out once, and when the last result
 * is in the message is finished or goes back to wait for its next retry.
 * The number of open jobs is bounded, so memory and descriptors are too.
 *
 * Remote recipients also answer to their destination (dest.c): a request
 * goes out only while the destination is not held and has fewer requests
 * in flight than its limit. Connection failures hold it for a growing
 * time, then mark it dead; its messages meanwhile are parked on its list
 * (no job, no slot, no timer of their own but their lifetime) and one
 * probe is released when the hold ends, more as it answers again. A
 * message that would only wait in a job for a busy destination is parked
 * too, so one slow domain cannot take every job.
 *
 * qmail-qdest's requests (queue/flushdest/<domain>) are read on SIGUSR1,
 * SIGALRM and every SCAN_EVERY. Signals, options, files and log events:
 * qmail-send(8).
 *
 * Crash safety comes from the queue file: a recipient's state byte is
 * written (in place, by qf_mark) after the spawner reports, and a failure
 * is fsynced to queue/bounce/<qid> before its byte says F. A restart
 * rereads mess/ and delivers the recipients still P, after two things:
 * qmail-rspawn's journal (journal.c) marks done the remote deliveries it
 * finished whose result never reached us, and the schedule kept in
 * queue/sched (keep.c) puts back each message's retry time and each
 * destination's hold, so that a restart does not retry the whole queue at
 * once. Neither is needed for correctness: without them, a restart repeats
 * more and retries sooner. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "date.h"
#include "atomic.h"
#include "control.h"
#include "fdpass.h"
#include "log.h"
#include "metrics.h"
#include "qspace.h"
#include "ready.h"
#include "send.h"
#include "spawnproto.h"
#include "../qmail-remote/remote.h"

#define PROG "qmail-send"
#define JOB_MAX (2 * SPAWN_SLOTS + 64)
#define JOB_SPARE 16                 /* open jobs beyond the concurrency */
#define RETRY_SYSTEM 123             /* after a local error, as qmail does */
#define RETRY_BROKEN 3600            /* after finding a malformed queue file */
#define SCAN_EVERY 600               /* mess/ is rescanned at least this often */
#define TRIGGER_FRESH 3600           /* a notice for an older qid is checked by a scan */
#define SCAN_BATCH 65536             /* names looked up in queue/sched/later per pass */
#define SCAN_SPACE (SCAN_BATCH * (QF_QID_MAX + 1))   /* their names and marks: 3 MB */
#define CLEAN_EVERY 3600
#define TMP_OLD (36 * 3600)          /* tmp/ debris older than this is removed */
#define STOP_WAIT 60                 /* seconds SIGTERM waits for results */
#define KEEP_EVERY 5                 /* seconds between saves of a changed schedule, at least */
#define STUCK_FIRST 2                /* seconds before a stuck removal is first retried */
#define STUCK_MAX 600                /* and the longest wait between retries */
#define LIFETIME_TEXT DSN_EXPIRED
#define WINDOW_MIN 32                /* control/queuewindow, at least */

static const unsigned skip[CH_N] = { 10, 20 };
static const char *const chname[CH_N] = { "local", "remote" };
static const int chfd[CH_N] = { 3, 4 };

struct send_job {
  uint32_t m;                        /* its message, while the job is open */
  char qid[QF_QID_MAX];              /* that message's */
  int wfd, rfd;
  qf_env env;
  uint32_t *order;                   /* [0,nl) local, [nl,nl+nr) remote by domain */
  size_t nl, nr;
  size_t cur[CH_N], end[CH_N];       /* next to hand out, end, in order[] */
  size_t inflight;
  uint32_t *dst;                     /* destination of order[nl + k], k < nr */
  uint32_t skipdest;                 /* the first held destination skipped, or NIL */
  uint8_t sent;                      /* a remote request went out in this round */
  uint8_t run[CH_N];                 /* channel due in this round */
  uint8_t z[CH_N];                   /* a temporary failure in this round */
  uint8_t waiting[CH_N];             /* in channel ch's waiting list */
  uint32_t wnext[CH_N];              /* waiting-list link */
  uint32_t fnext;                    /* free-list link */
  str why;                           /* this round's deferral reasons (why.c) */
};

struct slot { uint32_t job; uint32_t pos; uint32_t n; uint32_t dest, gen; };

static struct mtab msgtab = MTAB_INIT;
static struct rw rw = RW_INIT;
static struct send_job jobs[JOB_MAX];
static uint32_t jfree = NIL;
static size_t jtop;                  /* jobs[jtop..] never used, their pages untouched */
static size_t njobs, jobmax;
/* Per channel, the jobs with deliveries still to hand out, in order (wnext). */
static uint32_t waiting_head[CH_N] = { NIL, NIL }, waiting_tail[CH_N] = { NIL, NIL };
static struct slot slots[CH_N][SPAWN_SLOTS];
static uint32_t sfree[CH_N][SPAWN_SLOTS];
static size_t nsfree[CH_N], inuse[CH_N];
static int blocked[CH_N];

static unsigned long conc[CH_N];
static struct backoff bo;
static unsigned long long lifetime, maxbytes;
/* control/queuewindow: messages kept in memory (see "the window"). */
static size_t window;
static str bouncefrom, bouncehost, dbto, dbhost, bounceto, rwsender;
/* control/smtproutes, as qmail-remote reads it: a routed domain's
 * destination is its relay (hop_get). */
static str routes;
static struct dsn_cfg dcfg;

static int sigpipe_[2] = { -1, -1 };
static volatile sig_atomic_t got_sig;
static int stopping;
static unsigned long long stop_by;
static str scratch, req, path;
static char rbuf[SPAWN_PKT_MAX];

/* Two clocks. wall() is for people and for what others stamp: dates,
 * qids, file times. now() is the scheduler's: CLOCK_MONOTONIC seconds plus
 * an offset fixed at start, so that it reads as the wall clock did then
 * and a step of the wall clock (by hand, or NTP's at boot) moves no timer,
 * retry or lifetime. wall() - now() is the skew; clock_check logs changes. */
static unsigned long long clock_base;
static long long clock_skew;

static unsigned long long wall(void) { return (unsigned long long)time(0); }
static unsigned long long now(void) { return mono_ms() / 1000 + clock_base; }

static void clock_init(void)
{
  unsigned long long m = mono_ms() / 1000, w = wall();
  clock_base = w > m ? w - m : 0;
}

/* The arrival of message i on the scheduler's clock: now minus its qid's
 * age on the wall clock (0 for a qid in the future). */
static uint32_t born_now(uint32_t i)
{
  unsigned long long t = now(), w = wall(), b = mt_birth(&msgtab, i), age = w > b ? w - b : 0;
  return t32(age < t ? t - age : 0);
}

static const char *mpath(const char *dir, const char *qid)
{
  path.len = 0;
  if (str_cats(&path, dir) < 0 || str_cats(&path, qid) < 0 || str_0(&path) < 0)
    log_fatal(PROG, 111, "out of memory");
  return path.s;
}

static void oom(void) { log_fatal(PROG, 111, "out of memory"); }

/* ---- the schedule kept across restarts (keep.c) */

static int keep_dirty;               /* changed since the last save */
static unsigned long long keep_next_ms, keep_last_ms, keep_cost_ms;

/* Saves the schedule. A change that makes a retry later (a deferral, a
 * hold) is saved lazily (keep_dirty: within KEEP_EVERY seconds), a change
 * that makes one sooner (a recovery, a reset, SIGALRM) as soon as the
 * spacing allows (keep_soon): so a file lagging behind means an earlier
 * retry after a crash, never a later one, but for that short spacing.
 * Saves are spaced by ten times the cost of the last one, so a huge queue
 * spends at most a tenth of the time on them. */
static void keep_now(void)
{
  static str buf;
  unsigned long long t0 = mono_ms();
  int r = keep_save(&buf, &msgtab, now(), wall());
  keep_last_ms = mono_ms();
  keep_cost_ms = keep_last_ms - t0;
  keep_next_ms = keep_last_ms + (keep_cost_ms * 10 > KEEP_EVERY * 1000 ? keep_cost_ms * 10 : KEEP_EVERY * 1000);
  str_free(&buf);                    /* a large queue's file is megabytes: not kept resident */
  if (r < 0) {
    log_begin(PROG, "error"); log_kv("op", "save schedule"); log_kv("error", strerror(errno)); log_end();
    return;
  }
  keep_dirty = 0;
}

static void keep_soon(void)
{
  keep_dirty = 1;
  keep_next_ms = keep_last_ms + 10 * keep_cost_ms;
}

/* ---- configuration */

static int ctl_str(str *s, const char *file, const char *def)
{
  int r = control_line(s, file);
  if (r < 0) return -1;
  if ((r == 0 || !s->len) && str_copys(s, def) < 0) return -1;
  return str_0(s);
}

/* All of it or none of it: a failed reload keeps the running values. */
static int config(void)
{
  struct rw nrw = RW_INIT;
  str f = STR_INIT, h = STR_INIT, dt = STR_INIT, dh = STR_INIT, ro = STR_INIT, bt = STR_INIT, rs = STR_INIT;
  unsigned long c[CH_N], lt, mb, pd, bmin, bmax, dth, dtime, dw, win;
  int e;

  if (rw_load(&nrw) < 0) return -1;
  if (control_ulong(&c[CH_LOCAL], "control/concurrencylocal", 10) < 0 ||
      /* Postfix's 100 and 20: one slow destination never holds every slot. */
      control_ulong(&c[CH_REMOTE], "control/concurrencyremote", 100) < 0 ||
      control_ulong(&lt, "control/queuelifetime", 604800) < 0 ||
      control_ulong(&mb, "control/bouncemaxbytes", 0) < 0 ||
      control_ulong(&dw, "control/delaywarningtime", 0) < 0 ||
      control_ulong(&pd, "control/concurrencyperdest", 20) < 0 ||
      control_ulong(&bmin, "control/backoffmin", 60) < 0 ||
      control_ulong(&bmax, "control/backoffmax", 3600) < 0 ||
      control_ulong(&dth, "control/deadthreshold", 5) < 0 ||
      control_ulong(&dtime, "control/deadtime", 600) < 0 ||
      /* Postfix's qmgr_message_active_limit: about 1.3 MB of table. */
      control_ulong(&win, "control/queuewindow", 20000) < 0 ||
      ctl_str(&f, "control/bouncefrom", "MAILER-DAEMON") < 0 ||
      ctl_str(&h, "control/bouncehost", "") < 0 ||
      ctl_str(&dt, "control/doublebounceto", "postmaster") < 0 ||
      ctl_str(&dh, "control/doublebouncehost", "") < 0 ||
      ctl_str(&bt, "control/bounceto", "") < 0 || ctl_str(&rs, "control/rewritesender", "") < 0 ||
      control_lines(&ro, "control/smtproutes") < 0)
    goto fail;
  if (str_0(&nrw.me) < 0) goto fail;
  if (!h.len && (str_copyb(&h, nrw.me.s, nrw.me.len) < 0 || str_0(&h) < 0)) goto fail;
  if (!dh.len && (str_copyb(&dh, nrw.me.s, nrw.me.len) < 0 || str_0(&dh) < 0)) goto fail;
  rw_free(&rw);
  rw = nrw;
  str_free(&bouncefrom); bouncefrom = f;
  str_free(&bouncehost); bouncehost = h;
  str_free(&dbto); dbto = dt;
  str_free(&dbhost); dbhost = dh;
  str_free(&routes); routes = ro;
  str_free(&bounceto); bounceto = bt;
  str_free(&rwsender); rwsender = rs;
  for (e = 0; e < CH_N; e++) {
    if (c[e] < 1) c[e] = 1;
    if (c[e] > SPAWN_SLOTS) c[e] = SPAWN_SLOTS;
    conc[e] = c[e];
  }
  lifetime = lt;
  maxbytes = mb;
  window = win < WINDOW_MIN ? WINDOW_MIN : win > NIL / 4 ? NIL / 4 : win;
  bo.perdest = pd ? pd : 1;
  bo.min = bmin ? bmin : 1;
  bo.max = bmax < bo.min ? bo.min : bmax;
  bo.deadthreshold = dth ? dth : 1;
  bo.deadtime = dtime;
  dcfg.me = rw.me.s;
  dcfg.bouncefrom = bouncefrom.s;
  dcfg.bouncehost = bouncehost.s;
  dcfg.dbto = dbto.s;
  dcfg.dbhost = dbhost.s;
  dcfg.bounceto = bounceto.s;
  dcfg.rewritesender = rwsender.s;
  dcfg.maxbytes = maxbytes;
  dcfg.delaywarn = dw;
  dcfg.lifetime = lifetime;
  return 0;
fail:
  e = errno;
  rw_free(&nrw);
  str_free(&f); str_free(&h); str_free(&dt); str_free(&dh); str_free(&ro);
  str_free(&bt); str_free(&rs);
  errno = e;
  return -1;
}

static size_t job_limit(void)
{
  struct rlimit rl;
  size_t n = (size_t)conc[CH_LOCAL] + conc[CH_REMOTE] + JOB_SPARE, fds;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    /* Two descriptors per job, and room for the rest of the program. */
    fds = rl.rlim_cur > 64 ? (size_t)(rl.rlim_cur - 64) / 2 : 1;
    if (n > fds) n = fds;
  }
  return n > JOB_MAX ? JOB_MAX : n;
}

/* ---- jobs: open, order, waiting lists */

static const char *domain_of(const char *a, size_t n, size_t *dn)
{
  const char *at = memrchr(a, '@', n);
  if (!at) { *dn = rw.envnoathost.len; return rw.envnoathost.s; }
  *dn = n - (size_t)(at + 1 - a);
  return at + 1;
}

static int domcmp(const char *a, size_t an, const char *b, size_t bn)
{
  size_t i, n = an < bn ? an : bn;
  for (i = 0; i < n; i++) {
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (x >= 'A' && x <= 'Z') x += 32;
    if (y >= 'A' && y <= 'Z') y += 32;
    if (x != y) return x < y ? -1 : 1;
  }
  return an < bn ? -1 : an > bn;
}

static int bydomain(const void *x, const void *y, void *arg)
{
  const qf_env *e = arg;
  uint32_t i = *(const uint32_t *)x, k = *(const uint32_t *)y;
  size_t an, bn;
  const char *a = domain_of(e->rcpt[i].addr, e->rcpt[i].len, &an);
  const char *b = domain_of(e->rcpt[k].addr, e->rcpt[k].len, &bn);
  int c = domcmp(a, an, b, bn);
  return c ? c : (i < k ? -1 : i > k);
}

/* The destination of domain d[0..n), in key (NUL-terminated): its
 * route's relay when control/smtproutes sends it to one, so that every
 * domain through a smarthost shares the smarthost's backoff (one hold,
 * not one per domain), as Postfix keys by next hop; else the domain. A
 * relay's key is its host ("[IPv6]" for an IPv6 literal), then ":port"
 * when the route names one: what qmail-qdest accepts (dest_name_ok). */
#define HOP_KEYMAX (ROUTE_HOSTMAX + 8)
static size_t hop_key(const char *d, size_t n, char *key)
{
  char dom[DNS_NAMEMAX];
  struct route rt;
  size_t k = 0, hl;
  int v6;

  if (!routes.len || !n || n >= sizeof dom || n >= HOP_KEYMAX) goto domain;
  memcpy(dom, d, n);
  dom[n - (n > 1 && d[n - 1] == '.')] = 0;
  if (route_find(&routes, dom, &rt) != 1 || rt.mx) goto domain;
  hl = strlen(rt.host);
  v6 = rt.literal && strchr(rt.host, ':');
  if (v6) key[k++] = '[';
  memcpy(key + k, rt.host, hl);
  k += hl;
  if (v6) key[k++] = ']';
  if (rt.port) { key[k++] = ':'; k = (size_t)(fmt_u(key + k, rt.port, 1) - key); }
  key[k] = 0;
  return k;
domain:
  if (n >= HOP_KEYMAX) n = HOP_KEYMAX - 1;
  memcpy(key, d, n);
  key[n] = 0;
  return n;
}

static uint32_t hop_get(const char *d, size_t n)
{
  char key[HOP_KEYMAX];
  if (n >= HOP_KEYMAX) return dest_get(d, n);
  n = hop_key(d, n, key);
  return dest_get(key, n);
}

/* 1 when recipients a and b of job have the same domain. */
static int same_domain(const struct send_job *job, size_t a, size_t b)
{
  const struct qf_rcpt *x = job->env.rcpt + job->order[a], *y = job->env.rcpt + job->order[b];
  size_t xn, yn;
  const char *xd = domain_of(x->addr, x->len, &xn), *yd = domain_of(y->addr, y->len, &yn);
  return !domcmp(xd, xn, yd, yn);
}

static void wl_add(uint32_t j, int ch)
{
  jobs[j].wnext[ch] = NIL;
  jobs[j].waiting[ch] = 1;
  if (waiting_tail[ch] == NIL) waiting_head[ch] = j; else jobs[waiting_tail[ch]].wnext[ch] = j;
  waiting_tail[ch] = j;
}

static void wl_pop(int ch)
{
  uint32_t j = waiting_head[ch];
  waiting_head[ch] = jobs[j].wnext[ch];
  if (waiting_head[ch] == NIL) waiting_tail[ch] = NIL;
  jobs[j].waiting[ch] = 0;
}

static void job_release(uint32_t j)
{
  struct send_job *job = jobs + j;
  if (job->wfd >= 0) close(job->wfd);
  if (job->rfd >= 0) close(job->rfd);
  qf_free(&job->env);
  free(job->order);
  free(job->dst);
  job->order = 0;
  job->dst = 0;
  job->why.len = 0;                  /* the buffer is kept for the next job */
  job->fnext = jfree;
  jfree = j;
  njobs--;
  /* Not on a waiting list: a job is released only when both are done. */
}

static void finish(uint32_t j);
static void round_end(uint32_t j);

/* A lifetime runs on the scheduler's clock from the message's arrival: a
 * step of the wall clock never expires a message early nor keeps it. */
static int expired(uint32_t i, unsigned long long t) { return t >= (unsigned long long)msgtab.m[i].born + lifetime; }

/* Parks message i, whose job (if any) is released, on destination d: it
 * has only remote recipients, all waiting for d. */
static void park(uint32_t i, uint32_t d)
{
  msgtab.m[i].due[CH_LOCAL] = T_NEVER;
  keep_dirty = 1;
  mt_park(&msgtab, i, dest_plist(d), d, (unsigned long long)msgtab.m[i].born + lifetime);
}

/* The end of the group of recipients starting at pos: one domain (a
 * request to qmail-rspawn is for one domain), so one destination. */
static size_t group_end(const struct send_job *job, size_t pos)
{
  size_t k = pos;
  while (k < job->end[CH_REMOTE] && job->dst[k - job->nl] == job->dst[pos - job->nl] &&
         same_domain(job, k, pos))
    k++;
  return k;
}

/* 1 when every remote recipient of job waits for one destination. */
static int one_dest(const struct send_job *job)
{
  size_t k;
  for (k = 1; k < job->nr; k++) if (job->dst[k] != job->dst[0]) return 0;
  return 1;
}

/* Marks every group in [pos, end) as no longer waiting for its destination. */
static void groups_gone(struct send_job *job, size_t pos)
{
  while (pos < job->end[CH_REMOTE]) {
    dest_at(job->dst[pos - job->nl])->queued--;
    pos = group_end(job, pos);
  }
}

/* Opens message i's job. Returns 0, or -1 when it was rescheduled or
 * dropped instead. */
static int job_open(uint32_t i)
{
  struct send_msg *m = msgtab.m + i;
  unsigned long long t = now();
  struct send_job *job;
  uint32_t j = jfree != NIL ? jfree : jtop < JOB_MAX ? (uint32_t)jtop : NIL;
  size_t k, np = 0, nl = 0, sz;
  int ch;

  if (j == NIL) return -1;   /* callers check njobs < jobmax first */
  job = jobs + j;
  mt_qid(&msgtab, i, job->qid);
  job->wfd = open(mpath("queue/mess/", job->qid), O_RDWR | O_CLOEXEC);
  if (job->wfd < 0) {
    if (errno == ENOENT) { mt_del(&msgtab, i); return -1; }
    log_begin(PROG, "error"); log_kv("qid", job->qid); log_kv("op", "open");
    log_kv("error", strerror(errno)); log_end();
    mt_wait(&msgtab, i, t + RETRY_SYSTEM);
    return -1;
  }
  if (qf_read(job->wfd, &job->env) < 0) {
    int bad = errno == EINVAL;
    log_begin(PROG, "error"); log_kv("qid", job->qid); log_kv("op", "read");
    log_kv("error", bad ? "malformed queue file" : strerror(errno)); log_end();
    close(job->wfd);
    qf_free(&job->env);
    mt_wait(&msgtab, i, t + (bad ? RETRY_BROKEN : RETRY_SYSTEM));
    return -1;
  }
  if (j == jfree) jfree = job->fnext; else jtop++;
  njobs++;
  job->m = i;
  job->rfd = -1;
  job->inflight = 0;
  m->state = M_OPEN;
  for (k = 0; k < job->env.nrcpt; k++) if (job->env.rcpt[k].state == QF_PENDING) np++;
  /* Once per message and run, before it may be parked on a destination. */
  if (!m->logged) {
    m->logged = 1;
    log_begin(PROG, "message"); log_kv("qid", job->qid);
    log_kb("sender", job->env.sender, job->env.sender_len);
    log_ku("rcpts", job->env.nrcpt); log_ku("pending", np); log_ku("bytes", job->env.msg_len);
    log_end();
  }
  job->order = 0;
  if (np) {
    if (size_mul(&sz, np, sizeof *job->order) < 0 || !(job->order = malloc(sz))) oom();
    /* Locals fill order[] from the front, remotes from the back. */
    for (k = 0, sz = np; k < job->env.nrcpt; k++) {
      int c;
      if (job->env.rcpt[k].state != QF_PENDING) continue;
      c = rw_classify(&rw, job->env.rcpt[k].addr, job->env.rcpt[k].len, &scratch);
      if (c < 0) oom();
      if (c == CH_LOCAL) job->order[nl++] = (uint32_t)k;
      else job->order[--sz] = (uint32_t)k;
    }
    qsort_r(job->order + nl, np - nl, sizeof *job->order, bydomain, &job->env);
  }
  job->nl = nl;
  job->nr = np - nl;
  job->dst = 0;
  job->skipdest = NIL;
  job->sent = 0;
  if (job->nr) {
    if (size_mul(&sz, job->nr, sizeof *job->dst) < 0 || !(job->dst = malloc(sz))) oom();
    for (k = 0; k < job->nr; k++) {
      const struct qf_rcpt *r = job->env.rcpt + job->order[nl + k], *q;
      size_t an, pn;
      const char *da = domain_of(r->addr, r->len, &an), *dp;
      if (k) {
        q = job->env.rcpt + job->order[nl + k - 1];
        dp = domain_of(q->addr, q->len, &pn);
        if (!domcmp(da, an, dp, pn)) { job->dst[k] = job->dst[k - 1]; continue; }
      }
      if ((job->dst[k] = hop_get(da, an)) == NIL) oom();
    }
    /* Remote only, for one destination that is held or already has enough
     * jobs waiting: no job for it now. */
    if (!nl && one_dest(job) && m->due[CH_REMOTE] <= t && !expired(i, t)) {
      struct dest *x = dest_at(job->dst[0]);
      if (x->hold > t || x->queued >= dest_limit(x, bo.perdest)) {
        uint32_t d = job->dst[0];
        job_release(j);
        park(i, d);
        return -1;
      }
    }
  }
  job->cur[CH_LOCAL] = 0;
  job->end[CH_LOCAL] = nl;
  job->cur[CH_REMOTE] = nl;
  job->end[CH_REMOTE] = np;
  for (ch = 0; ch < CH_N; ch++) {
    job->z[ch] = 0;
    job->waiting[ch] = 0;
    job->run[ch] = job->cur[ch] < job->end[ch] && m->due[ch] <= t;
    if (!job->run[ch]) { job->cur[ch] = job->end[ch]; continue; }
    if (m->tries[ch] < UINT8_MAX) m->tries[ch]++;
    if (ch == CH_REMOTE)
      for (k = job->cur[ch]; k < job->end[ch]; k = group_end(job, k)) dest_at(job->dst[k - nl])->queued++;
    wl_add(j, ch);
  }
  if (!np) finish(j);
  else if (!job->run[CH_LOCAL] && !job->run[CH_REMOTE]) round_end(j);
  return 0;
}

/* ---- the end of a round, and of a message */

/* The msg.dest hint of a message going back to wait: the destination of
 * its pending remote recipients, DEST_MANY when there are several. */
static uint32_t remote_dest(const struct send_job *job)
{
  uint32_t d = NIL;
  size_t k;
  for (k = 0; k < job->nr; k++) {
    if (job->env.rcpt[job->order[job->nl + k]].state != QF_PENDING) continue;
    if (d == NIL) d = job->dst[k];
    else if (d != job->dst[k]) return DEST_MANY;
  }
  return d;
}

/* Replaces queue/sched/why.<qid> with this round's deferral reasons and
 * the older ones of recipients still pending that were not tried in this
 * round. Only for qmail-qread: a failure is logged and forgotten. */
static void why_flush(struct send_job *job)
{
  static str old;
  size_t pos = 0, n = job->env.nrcpt;
  struct why_rec r;
  unsigned char *seen;

  if (!job->why.len) return;
  if (!(seen = calloc(n ? n : 1, 1))) return;
  while (why_next(job->why.s, job->why.len, &pos, &r)) if (r.k < n) seen[r.k] = 1;
  why_read(job->qid, &old);
  for (pos = 0; why_next(old.s, old.len, &pos, &r) && job->why.len <= WHY_MAX - WHY_LINE;) {
    if (r.k >= n || seen[r.k] || job->env.rcpt[r.k].state != QF_PENDING) continue;
    seen[r.k] = 1;
    if (why_add(&job->why, r.k, r.t, r.text, r.tn) < 0) break;
  }
  free(seen);
  if (why_save(job->qid, job->why.s, job->why.len) < 0) {
    log_begin(PROG, "error"); log_kv("qid", job->qid); log_kv("op", "deferral reasons");
    log_kv("error", strerror(errno)); log_end();
  }
}

static void round_end(uint32_t j)
{
  struct send_job *job = jobs + j;
  uint32_t i = job->m;
  struct send_msg *m = msgtab.m + i;
  unsigned long long t = now(), when = ~0ULL;
  size_t pend[CH_N] = { 0, 0 }, k;
  int ch;

  for (ch = 0; ch < CH_N; ch++) {
    size_t lo = ch == CH_LOCAL ? 0 : job->nl, hi = ch == CH_LOCAL ? job->nl : job->nl + job->nr;
    for (k = lo; k < hi; k++) if (job->env.rcpt[job->order[k]].state == QF_PENDING) pend[ch]++;
  }
  if (!pend[CH_LOCAL] && !pend[CH_REMOTE]) { finish(j); return; }
  why_flush(job);
  if (dsn_delay(&dcfg, job->qid, job->wfd, &job->env, t) < 0) {
    log_begin(PROG, "error"); log_kv("qid", job->qid); log_kv("op", "delay notice");
    log_kv("error", strerror(errno)); log_end();
  }
  /* Nothing went out because every remote group met a hold: not an
   * attempt. A remote-only message waits on the destination's list; one
   * with local work waits for the hold's end in the heap. */
  if (job->run[CH_REMOTE] && pend[CH_REMOTE] && !job->sent && job->skipdest != NIL &&
      dest_at(job->skipdest)->name && dest_at(job->skipdest)->hold > t) {
    uint32_t d = job->skipdest;
    if (m->tries[CH_REMOTE]) m->tries[CH_REMOTE]--;
    if (!pend[CH_LOCAL]) {
      job_release(j);
      park(i, d);
      return;
    }
    job->run[CH_REMOTE] = 0;
    m->due[CH_REMOTE] = t32(dest_at(d)->hold);
  }
  for (ch = 0; ch < CH_N; ch++) {
    if (!pend[ch]) { m->due[ch] = T_NEVER; continue; }
    if (job->run[ch]) {
      /* Attempted and still pending: a temporary failure. The last
       * attempt falls at the end of the lifetime, not after it. */
      unsigned long long birth = m->born, d = retry_next(birth, t, skip[ch]), end = birth + lifetime;
      if (end > t && d > end) d = end;
      if (d <= t) d = t + 1;
      m->due[ch] = t32(d);
    }
    if (m->due[ch] < when) when = m->due[ch];
  }
  m->dest = pend[CH_REMOTE] ? remote_dest(job) : NIL;
  job_release(j);
  mt_wait(&msgtab, i, when);
  keep_dirty = 1;
}

/* ---- finished messages whose file cannot be removed */

static size_t nstuck;                /* messages in M_STUCK */
static unsigned long long stuck_at, stuck_delay;   /* the next retry, and the wait before it */

/* Message i (qid) is finished, its report sent, but mess/<qid> could not
 * be removed (errno e: typically queue/mess lost its group write). It is
 * kept as M_STUCK, saved as such soon so that a restart does not send
 * its report again, and its removal is retried on its own (after 2 s,
 * then doubling to 10 minutes) and on SIGALRM. */
static void stuck(uint32_t i, const char *qid, int e)
{
  msgtab.m[i].state = M_STUCK;
  if (!nstuck++) {
    stuck_delay = STUCK_FIRST;
    stuck_at = now() + stuck_delay;
  }
  log_begin(PROG, "stuck"); log_kv("qid", qid); log_kv("error", strerror(e));
  log_kv("msg", "finished, but its file in queue/mess cannot be removed; kept and retried (SIGALRM: now); check queue/mess with qmail-qfix");
  log_end();
  keep_soon();
}

/* Tries again to remove every stuck message, and logs what is left. */
static void stuck_retry(void)
{
  size_t i, left = 0, gone = 0;
  char q[QF_QID_MAX];
  int e = 0;

  for (i = 0; i < msgtab.n && left + gone < nstuck; i++) {
    if (msgtab.m[i].state != M_STUCK) continue;
    mt_qid(&msgtab, (uint32_t)i, q);
    if (unlink(mpath("queue/mess/", q)) < 0 && errno != ENOENT) { e = errno; left++; continue; }
    if (unlink(mpath("queue/bounce/", q)) < 0 && errno != ENOENT) {
      log_begin(PROG, "error"); log_kv("qid", q); log_kv("op", "unlink bounce");
      log_kv("error", strerror(errno)); log_end();
    }
    unlink(mpath("queue/sched/" WHY_PREFIX, q));
    log_begin(PROG, "done"); log_kv("qid", q); log_kv("msg", "its file removed at last"); log_end();
    mt_del(&msgtab, (uint32_t)i);
    gone++;
  }
  nstuck = left;
  if (gone) keep_dirty = 1;
  if (!left) return;
  stuck_delay = stuck_delay * 2 > STUCK_MAX ? STUCK_MAX : stuck_delay * 2;
  stuck_at = now() + stuck_delay;
  log_begin(PROG, "stuck"); log_ku("messages", left); log_kv("error", strerror(e));
  log_ku("retry", stuck_delay);
  log_kv("msg", "finished messages whose files in queue/mess cannot be removed; check queue/mess with qmail-qfix");
  log_end();
}

static void finish(uint32_t j)
{
  struct send_job *job = jobs + j;
  uint32_t i = job->m;
  const char *qid = job->qid;
  size_t k, nf = 0, owed = dsn_owed(&job->env);

  for (k = 0; k < job->env.nrcpt; k++) if (job->env.rcpt[k].state == QF_FAILED) nf++;
  if (owed && dsn_send(&dcfg, qid, job->wfd, &job->env, wall()) < 0) {
    log_begin(PROG, "error"); log_kv("qid", qid); log_kv("op", "bounce");
    log_kv("error", qspace_why(errno, QSPACE_DIR)); log_end();
    job_release(j);
    mt_wait(&msgtab, i, now() + RETRY_SYSTEM);
    return;
  }
  /* mess/ first: a crash between the two leaves a bounce/ file without a
   * message, which the cleanup removes; the other order could report a
   * failure with its text lost. */
  if (unlink(mpath("queue/mess/", qid)) < 0 && errno != ENOENT) {
    /* Kept in the index but never scheduled: a new round would repeat
     * the report. */
    stuck(i, qid, errno);
    job_release(j);
    return;
  }
  /* Failures, notices owed, or delay notices (of any past setting of
   * delaywarningtime) may have left records: always looked for. */
  if (unlink(mpath("queue/bounce/", qid)) < 0 && errno != ENOENT) {
    log_begin(PROG, "error"); log_kv("qid", qid); log_kv("op", "unlink bounce");
    log_kv("error", strerror(errno)); log_end();
  }
  unlink(mpath("queue/sched/" WHY_PREFIX, qid));   /* none, or cleanup() retries */
  log_begin(PROG, "done"); log_kv("qid", qid); log_ku("failed", nf); log_end();
  job_release(j);
  mt_del(&msgtab, i);
}

static void maybe_end(uint32_t j)
{
  struct send_job *job = jobs + j;
  if (!job->inflight && job->cur[CH_LOCAL] == job->end[CH_LOCAL] && job->cur[CH_REMOTE] == job->end[CH_REMOTE])
    round_end(j);
}

/* ---- requests */

/* Hands out the next request of job j on channel ch. 1 sent, 0 the socket
 * is full (try again on POLLOUT). */
static int send_one(uint32_t j, int ch)
{
  struct send_job *job = jobs + j;
  size_t pos = job->cur[ch], n = 0, gend = ch == CH_REMOTE ? group_end(job, pos) : pos + 1;
  uint32_t s;

  if (job->rfd < 0) {
    job->rfd = open(mpath("queue/mess/", job->qid), O_RDONLY | O_CLOEXEC);
    if (job->rfd < 0) {
      /* Everything still to hand out waits for the next round. */
      log_begin(PROG, "error"); log_kv("qid", job->qid); log_kv("op", "open");
      log_kv("error", strerror(errno)); log_end();
      job->z[ch] = 1;
      if (ch == CH_REMOTE) groups_gone(job, job->cur[ch]);
      job->cur[ch] = job->end[ch];
      return 1;
    }
  }
  s = sfree[ch][nsfree[ch] - 1];
  req.len = 0;
  if (str_catu(&req, s) < 0 || str_catc(&req, 0) < 0 || str_cats(&req, job->qid) < 0 ||
      str_catc(&req, 0) < 0 || str_catu(&req, QF_HDR) < 0 || str_catc(&req, 0) < 0 ||
      str_catu(&req, job->env.msg_len) < 0 || str_catc(&req, 0) < 0 ||
      str_catu(&req, job->env.opts) < 0 || (ch == CH_REMOTE && dsn_req_envid(&req, &job->env) < 0) ||
      str_catc(&req, 0) < 0 ||
      str_catb(&req, job->env.sender, job->env.sender_len) < 0 || str_catc(&req, 0) < 0)
    oom();
  do {
    const struct qf_rcpt *r = job->env.rcpt + job->order[pos + n];
    if (rw_classify(&rw, r->addr, r->len, &scratch) < 0 ||
        str_catu(&req, job->order[pos + n]) < 0 || (ch == CH_REMOTE && dsn_req_rcpt(&req, r) < 0) ||
        str_catc(&req, 0) < 0 ||
        str_catb(&req, scratch.s, scratch.len) < 0 || str_catc(&req, 0) < 0)
      oom();
    n++;
  } while (ch == CH_REMOTE && n < SPAWN_RCPTS && pos + n < gend);

  if (pkt_send(chfd[ch], req.s, req.len, job->rfd) < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) { blocked[ch] = 1; return 0; }
    log_fatal(PROG, 111, ch == CH_LOCAL ? "cannot talk to qmail-lspawn" : "cannot talk to qmail-rspawn");
  }
  nsfree[ch]--;
  inuse[ch]++;
  slots[ch][s].job = j;
  slots[ch][s].pos = (uint32_t)pos;
  slots[ch][s].n = (uint32_t)n;
  slots[ch][s].dest = NIL;
  if (ch == CH_REMOTE) {
    uint32_t d = job->dst[pos - job->nl];
    struct dest *x = dest_at(d);
    slots[ch][s].dest = d;
    slots[ch][s].gen = x->gen;
    x->active++;
    job->sent = 1;
    if (pos + n == gend) x->queued--;
  }
  job->cur[ch] += n;
  job->inflight++;
  return 1;
}

static int open_next(void)
{
  uint32_t i;
  if (njobs >= jobmax) return 0;
  i = mt_ready_pop(&msgtab);
  if (i == NIL) return 0;
  job_open(i);
  return 1;
}

static void wl_unlink(int ch, uint32_t prev, uint32_t j)
{
  if (prev == NIL) { wl_pop(ch); return; }
  jobs[prev].wnext[ch] = jobs[j].wnext[ch];
  if (waiting_tail[ch] == j) waiting_tail[ch] = prev;
  jobs[j].waiting[ch] = 0;
}

/* Finds the first job on the remote waiting list whose next group may go
 * out now. Groups whose destination is held are skipped on the way (they
 * wait for the next round, or the message parks), and jobs left with
 * nothing to hand out leave the list. The list holds at most the open
 * jobs, never the whole queue. */
static int pick_remote(uint32_t *jp, uint32_t *prevp)
{
  unsigned long long t = now();
  uint32_t j = waiting_head[CH_REMOTE], prev = NIL;

  while (j != NIL) {
    struct send_job *job = jobs + j;
    uint32_t next = job->wnext[CH_REMOTE];
    while (job->cur[CH_REMOTE] < job->end[CH_REMOTE]) {
      uint32_t d = job->dst[job->cur[CH_REMOTE] - job->nl];
      struct dest *x = dest_at(d);
      if (x->hold > t && !expired(job->m, t)) {
        x->queued--;
        if (job->skipdest == NIL) job->skipdest = d;
        job->cur[CH_REMOTE] = group_end(job, job->cur[CH_REMOTE]);
        continue;
      }
      if (x->active >= dest_limit(x, bo.perdest)) break;
      *jp = j;
      *prevp = prev;
      return 1;
    }
    if (job->cur[CH_REMOTE] == job->end[CH_REMOTE]) {
      wl_unlink(CH_REMOTE, prev, j);
      maybe_end(j);
    } else prev = j;
    j = next;
  }
  return 0;
}

static void dispatch_local(void)
{
  while (inuse[CH_LOCAL] < conc[CH_LOCAL] && nsfree[CH_LOCAL] && !blocked[CH_LOCAL]) {
    uint32_t j = waiting_head[CH_LOCAL];
    if (j == NIL) {
      if (!open_next()) break;
      continue;
    }
    if (!send_one(j, CH_LOCAL)) break;
    if (jobs[j].cur[CH_LOCAL] == jobs[j].end[CH_LOCAL]) {
      wl_pop(CH_LOCAL);
      maybe_end(j);
    }
  }
}

static int dispatch_remote(void)
{
  int opened = 0;
  while (inuse[CH_REMOTE] < conc[CH_REMOTE] && nsfree[CH_REMOTE] && !blocked[CH_REMOTE]) {
    uint32_t j, prev;
    if (!pick_remote(&j, &prev)) {
      if (!open_next()) break;
      opened = 1;
      continue;
    }
    if (!send_one(j, CH_REMOTE)) break;
    if (jobs[j].cur[CH_REMOTE] == jobs[j].end[CH_REMOTE]) {
      wl_unlink(CH_REMOTE, prev, j);
      maybe_end(j);
    }
  }
  return opened;
}

/* A job opened for one channel may have work for the other too. */
static void dispatch(void)
{
  if (stopping) return;
  do dispatch_local(); while (dispatch_remote());
}

/* ---- results */

static int tagged(const char *t, size_t n, const char *tag);

/* The class of a deferral's reason, from the spawner's tag (spawnproto.h):
 * what an operator asks first of a growing queue. A connect failure whose
 * text names TLS (a refused or failed STARTTLS, a policy that needs TLS)
 * is TLS's. */
static unsigned defer_class(int ch, const char *t, size_t n)
{
  if (ch == CH_LOCAL || tagged(t, n, SPAWN_TAG_LOCAL)) return MD_LOCAL;
  if (tagged(t, n, SPAWN_TAG_CONNECT)) return memmem(t, n, "TLS", 3) ? MD_TLS : MD_CONNECT;
  if (tagged(t, n, SPAWN_TAG_DNS)) return MD_DNS;
  if (tagged(t, n, SPAWN_TAG_MAIL) || tagged(t, n, SPAWN_TAG_RCPT) || tagged(t, n, SPAWN_TAG_DATA)) return MD_4XX;
  if (tagged(t, n, SPAWN_TAG_AUTH)) return MD_AUTH;
  return MD_OTHER;
}

/* One result's counters (metrics.h): an add into a mapped page each. */
static void count_result(int ch, char c, const char *t, size_t n)
{
  if (c == 'K') metrics_inc(MS_DELIVERED + (unsigned)ch);
  else if (c == 'D') metrics_inc(MS_FAILED + (unsigned)ch);
  else {
    metrics_inc(MS_DEFERRED + (unsigned)ch);
    metrics_inc(MS_DEFER_CLASS + defer_class(ch, t, n));
  }
}

static void result(uint32_t j, int ch, uint32_t k, char c, const char *text, size_t tn)
{
  struct send_job *job = jobs + j;
  struct send_msg *m = msgtab.m + job->m;
  const struct qf_rcpt *r = job->env.rcpt + k;
  unsigned long long t = now();
  const char *what = c == 'K' ? "delivered" : c == 'D' ? "failed" : "deferred";

  if (c == 'Z' && expired(job->m, t)) {
    scratch.len = 0;
    if (str_cats(&scratch, LIFETIME_TEXT) < 0 || str_catb(&scratch, text, tn) < 0) oom();
    text = scratch.s;
    tn = scratch.len;
    c = 'D';
    what = "expired";
  }
  if (c == 'D' && bounce_append(job->qid, k, ch, r->addr, r->len, text, tn) < 0) {
    log_begin(PROG, "error"); log_kv("qid", job->qid); log_kv("op", "bounce record");
    log_kv("error", strerror(errno)); log_end();
    c = 'Z';
    what = "deferred";
  }
  if (c == 'K' && (r->notify & DSN_NOTIFY_SUCCESS) && !tagged(text, tn, SPAWN_TAG_OK_DSN) &&
      success_append(job->qid, k, ch, r->addr, r->len, text, tn) < 0) {
    /* The notice is lost; delivering again to make it would be worse. */
    log_begin(PROG, "error"); log_kv("qid", job->qid); log_kv("op", "success record");
    log_kv("error", strerror(errno)); log_end();
  }
  if (c != 'Z' && qf_mark(job->wfd, &job->env, k, c == 'K' ? QF_DONE : QF_FAILED) < 0) {
    log_begin(PROG, "error"); log_kv("qid", job->qid); log_kv("op", "mark");
    log_kv("error", strerror(errno)); log_end();
    c = 'Z';
  }
  if (c == 'Z') {
    size_t at = job->why.len;
    job->z[ch] = 1;
    if (at <= WHY_MAX - WHY_LINE && why_add(&job->why, k, wall(), text, tn) < 0) job->why.len = at;
  }
  count_result(ch, c, text, tn);
  log_begin(PROG, "delivery");
  log_kv("qid", job->qid);
  log_ku("i", k);
  log_kb("rcpt", r->addr, r->len);
  log_kv("channel", chname[ch]);
  log_kv("result", what);
  log_ku("attempt", m->tries[ch]);
  log_kb("text", text, tn);
  log_end();
}

/* ---- destinations */

enum { OUT_NONE = 0, OUT_FAIL, OUT_ALIVE };

static int tagged(const char *t, size_t n, const char *tag)
{
  size_t k = strlen(tag);
  return n > k && !memcmp(t, tag, k) && t[k] == ':';
}

/* Begins d's event=dest line; the caller may add keys and ends it. */
/* The held and dead gauges, after any change of a destination's state
 * (each is logged; a walk of the table, not per delivery). */
static void dest_gauges(void)
{
  size_t held, dead;
  dest_counts(&held, &dead);
  metrics_set(MS_DEST_HELD, held);
  metrics_set(MS_DEST_DEAD, dead);
}

static void dest_line(uint32_t d, const char *state)
{
  struct dest *x = dest_at(d);
  dest_gauges();
  log_begin(PROG, "dest");
  log_kb("domain", x->name, x->len);
  log_kv("state", state);
  log_ku("fails", x->fails);
  if (x->hold) log_ku("delay", x->delay);
  if (x->park.n) log_ku("parked", x->park.n);
}

static void dest_log(uint32_t d, const char *state)
{
  dest_line(d, state);
  log_end();
}

/* Lets parked messages of d go while it is not held and has room under
 * its limit; they go before the other ready messages. A message released
 * too early parks again when opened: cheap, and it cannot loop, because
 * each release follows a result or the end of a hold. */
static void release(uint32_t d)
{
  struct dest *x = dest_at(d);
  unsigned long lim = dest_limit(x, bo.perdest), busy = (unsigned long)x->active + x->queued;
  if (x->hold > now()) return;
  while (busy < lim) {
    uint32_t i = mt_unpark_head(&msgtab, &x->park);
    if (i == NIL) break;
    mt_ready_push_front(&msgtab, i);
    busy++;
  }
}

/* A request to d that went out at failure count gen has ended with o. */
static void dest_outcome(uint32_t d, uint32_t gen, int o)
{
  struct dest *x = dest_at(d);
  x->active--;
  if (o == OUT_FAIL && gen == x->gen) {
    int r = dest_fail(x, now(), &bo);
    dest_sethold(d);
    keep_dirty = 1;
    dest_log(d, r == DEST_DEAD ? "dead" : "held");
  } else if (o == OUT_ALIVE && dest_ok(x)) {
    dest_unhold(d);
    dest_log(d, "recovered");
    keep_soon();
  }
  release(d);
  dest_maybe_free(d);
}

/* Reads every reply waiting on channel ch. */
static void replies(int ch)
{
  for (;;) {
    int pfd;
    ssize_t n = pkt_recv(chfd[ch], rbuf, sizeof rbuf, &pfd);
    unsigned long long s;
    const char *p, *e, *z;
    struct slot *sl;
    size_t k, nconn, nalive, nbare;

    if (pfd >= 0) close(pfd);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EMSGSIZE) { log_begin(PROG, "error"); log_kv("op", "reply too long"); log_end(); continue; }
    if (n <= 0) log_fatal(PROG, 111, ch == CH_LOCAL ? "lost qmail-lspawn" : "lost qmail-rspawn");
    p = rbuf;
    e = rbuf + n;
    z = memchr(p, 0, (size_t)(e - p));
    if (!z || scan_ulong(p, (size_t)(z - p), &s) < 0 || s >= SPAWN_SLOTS ||
        slots[ch][s].job == NIL) {
      log_begin(PROG, "error"); log_kv("op", "reply with a bad slot"); log_kv("channel", chname[ch]); log_end();
      continue;
    }
    sl = &slots[ch][s];
    p = z + 1;
    nconn = nalive = nbare = 0;
    for (k = 0; k < sl->n; k++) {
      uint32_t idx = jobs[sl->job].order[sl->pos + k];
      char c = 'Z';
      const char *t = "malformed reply from the spawner";
      size_t tn = strlen(t);
      z = p < e ? memchr(p, 0, (size_t)(e - p)) : 0;
      if (z && z > p && (*p == 'K' || *p == 'Z' || *p == 'D') && (size_t)(z - p - 1) <= SPAWN_TEXT) {
        c = *p;
        t = p + 1;
        tn = (size_t)(z - p - 1);
        p = z + 1;
        if (tagged(t, tn, SPAWN_TAG_CONNECT)) nconn++;
        else if (tagged(t, tn, SPAWN_TAG_OK) || tagged(t, tn, SPAWN_TAG_RCPT) ||
                 tagged(t, tn, SPAWN_TAG_MAIL) || tagged(t, tn, SPAWN_TAG_DATA)) nalive++;
        else if (c == 'Z' && !tagged(t, tn, SPAWN_TAG_DNS) && !tagged(t, tn, SPAWN_TAG_LOCAL)) nbare++;
      } else p = e;
      result(sl->job, ch, idx, c, t, tn);
    }
    /* Only a failure to reach the destination counts against it: a
     * "connect" reply, or an untagged temporary failure of the whole
     * request. A refused recipient proves the destination alive. */
    if (sl->dest != NIL)
      dest_outcome(sl->dest, sl->gen, nconn ? OUT_FAIL : nalive ? OUT_ALIVE :
                   nbare == sl->n ? OUT_FAIL : OUT_NONE);
    jobs[sl->job].inflight--;
    {
      uint32_t j = sl->job;
      sl->job = NIL;
      sfree[ch][nsfree[ch]++] = (uint32_t)s;
      inuse[ch]--;
      maybe_end(j);
    }
  }
}

/* ---- the window: the messages kept in memory
 *
 * At most window messages have a record in memory, and window/4 more
 * taken in between two moves; the open jobs, which never move, come on
 * top when the window is smaller than they are. The others are lines of
 * queue/sched/later (keep.c), so that memory stays flat however long the
 * queue. What stays: the open, ready and parked messages before the
 * waiting ones, and of these the soonest due; so a new message is taken
 * in at the same cost, by name, whatever the queue. A message outside
 * comes back when its time comes (looked at every second; the waiting
 * messages due later make room for it), or earlier when the window has
 * drained to half; it is never retried earlier than its schedule says.
 * Moving out costs an append and an fsync for a batch; coming back a pass
 * over the file, for an eighth of the window or more at once. */

static struct later later = { 0, ~0ULL };
static str later_buf;

struct cand { uint32_t cls, key, i; };

/* The order of leaving: waiting before parked before ready; the latest
 * due, then the newest slot, first. */
static int cand_cmp(const void *x, const void *y)
{
  const struct cand *a = x, *b = y;
  if (a->cls != b->cls) return a->cls > b->cls ? -1 : 1;
  if (a->key != b->key) return a->key > b->key ? -1 : 1;
  return a->i > b->i ? -1 : a->i < b->i;
}

/* Moves messages out until at most target are in memory: the waiting
 * ones due after above, and with all also parked and ready ones. Those
 * out of memory are in the file first (fsynced), so a crash at any point
 * leaves each one in the schedule or the file. Returns how many moved. */
static size_t spill(size_t target, unsigned long long above, int all)
{
  unsigned long long t = now();
  struct cand *c;
  uint32_t *v;
  size_t i, n = 0, k, want, sz;

  if (msgtab.live <= target) return 0;
  if (size_mul(&sz, msgtab.n, sizeof *c) < 0 || !(c = malloc(sz ? sz : 1))) return 0;
  for (i = 0; i < msgtab.n; i++) {
    const struct send_msg *m = msgtab.m + i;
    if (m->state == M_WAIT && m->when > above) c[n++] = (struct cand){ 2, m->when, (uint32_t)i };
    else if (all && m->state == M_HELD) c[n++] = (struct cand){ 1, m->when, (uint32_t)i };
    else if (all && m->state == M_READY) c[n++] = (struct cand){ 0, 0, (uint32_t)i };
  }
  want = msgtab.live - target;
  if (want > n) want = n;
  if (!want || !(v = malloc(want * sizeof *v))) { free(c); return 0; }
  qsort(c, n, sizeof *c, cand_cmp);
  for (k = 0; k < want; k++) {
    struct send_msg *m = msgtab.m + (v[k] = c[k].i);
    /* A parked message is due when its destination's hold ends: its
     * remote recipients then go as soon as there is room. */
    if (m->state == M_HELD) {
      unsigned long long h = dest_at(m->dest)->hold;
      m->due[CH_REMOTE] = t32(h > t ? h : t);
    }
  }
  free(c);
  if (later_put(&later, &later_buf, &msgtab, v, want, t, wall()) < 0) {
    log_begin(PROG, "error"); log_kv("op", "move out of memory"); log_kv("error", strerror(errno));
    log_end();
    want = 0;
  }
  str_free(&later_buf);
  for (k = 0; k < want; k++) {
    if (msgtab.m[v[k]].state == M_READY) mt_ready_remove(&msgtab, v[k]);
    mt_del(&msgtab, v[k]);
  }
  free(v);
  if (!want) return 0;
  /* Soon: until the schedule without them is saved, a crash would take
   * its older copy of them over the file's. */
  keep_soon();
  log_begin(PROG, "spill"); log_ku("moved", want); log_ku("memory", msgtab.live);
  log_ku("later", later.n); log_end();
  return want;
}

/* Takes back at most max messages due at or before upto, the earliest
 * first: saves the schedule with them, then drops them from the file. */
static void refill(size_t max, unsigned long long upto)
{
  unsigned long long t = now();
  long got = later_take(&later, &msgtab, max, upto, t, wall());

  if (got < 0) {
    log_begin(PROG, "error"); log_kv("op", "take back into memory"); log_kv("error", strerror(errno));
    log_end();
  }
  if (got <= 0) return;
  keep_now();
  if (!keep_dirty && later_compact(&later, &msgtab, 0, t, wall()) < 0) {
    log_begin(PROG, "error"); log_kv("op", "rewrite queue/sched/later"); log_kv("error", strerror(errno));
    log_end();
  }
  log_begin(PROG, "refill"); log_ku("moved", (unsigned long long)got); log_ku("memory", msgtab.live);
  log_ku("later", later.n); log_end();
}

/* Keeps the window: over it, the latest move out; once a second, when a
 * message outside is due, the waiting ones due later make room for it;
 * below half, the earliest outside come back. The thresholds are an
 * eighth of the window apart, so each file pass moves that many. */
static void balance(unsigned long long t)
{
  static unsigned long long last = ~0ULL;
  size_t half = window / 2, mid = window - window / 4, low = window - 3 * (window / 8);

  if (msgtab.live > window) spill(mid, 0, 1);
  if (!later.n || t == last) return;
  last = t;
  if (later.min <= t && msgtab.live > low) spill(half, t, 0);
  if (msgtab.live <= half) refill(mid - msgtab.live, ~0ULL);
  else if (later.min <= t && msgtab.live <= low) refill(mid - msgtab.live, t);
}

/* ---- the queue directory */

/* A message just found in mess/, due now. */
static void msg_add(const char *qid, size_t n)
{
  uint32_t i = mt_add(&msgtab, qid, n);
  if (i == NIL) oom();
  msgtab.m[i].born = born_now(i);
  if (msgtab.live > window + window / 4) spill(window - window / 4, 0, 1);
}

/* Adds the qids of q[0..n) that queue/sched/later does not list: the
 * others are known, with their schedule. Returns how many. On an error
 * none is added (the next scan tries again): a message taken for new
 * would be retried early. */
static size_t scan_new(char (*q)[QF_QID_MAX], size_t n, unsigned char *known)
{
  size_t k, added = 0;
  later_sort(q, n);
  if (later_known((const char (*)[QF_QID_MAX])q, n, known) < 0) {
    log_begin(PROG, "error"); log_kv("op", "read queue/sched/later"); log_kv("error", strerror(errno));
    log_end();
    return 0;
  }
  for (k = 0; k < n; k++)
    if (!known[k] && mt_find(&msgtab, q[k], strlen(q[k])) == NIL) { msg_add(q[k], strlen(q[k])); added++; }
  return added;
}

static unsigned long long scan_cost_ms, scan_next_ms;

/* Picks up messages not yet known. The cost of a scan grows with the
 * queue, so scans are spaced by four times the last one's duration: with
 * a huge queue at most a fifth of the time goes to scanning, however
 * often the trigger is pulled. */
static void scan(void)
{
  unsigned long long t0 = mono_ms();
  size_t added = 0, nq = 0, maxq = SCAN_BATCH;
  char (*q)[QF_QID_MAX] = 0;         /* names to look up in queue/sched/later */
  unsigned char *known = 0;          /* a mark per name, after them */
  struct dirent *d;
  DIR *dir = opendir("queue/mess");

  if (!dir) {
    log_begin(PROG, "error"); log_kv("op", "scan"); log_kv("error", strerror(errno)); log_end();
    return;
  }
  while ((d = readdir(dir))) {
    size_t n = strlen(d->d_name);
    if (d->d_name[0] == '.') continue;
    if (!qf_qid_ok(d->d_name, n)) {
      log_begin(PROG, "error"); log_kv("op", "scan"); log_kv("name", d->d_name);
      log_kv("error", "not a queue file name"); log_end();
      continue;
    }
    if (mt_find(&msgtab, d->d_name, n) != NIL) continue;
    if (!later.n) { msg_add(d->d_name, n); added++; continue; }
    /* Out of memory, or new: looked up in batches, one pass each. */
    if (!q) {
      /* Mapped for this scan alone, not malloc'd: a freed block this
       * size would stay resident in the heap between scans. */
      void *p = mmap(0, SCAN_SPACE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) oom();
      q = p;
      known = (unsigned char *)(q + maxq);
    }
    memcpy(q[nq++], d->d_name, n + 1);
    if (nq == maxq) { added += scan_new(q, nq, known); nq = 0; }
  }
  closedir(dir);
  if (nq) added += scan_new(q, nq, known);
  if (q) munmap(q, SCAN_SPACE);
  /* A writer that answers before its fsync of mess/ (qmail-queued) may
   * still owe it for a name just read: no delivery before it is done. */
  if (added && fsync_dir("queue/mess") < 0) {
    log_begin(PROG, "error"); log_kv("op", "fsync"); log_kv("dir", "mess");
    log_kv("error", strerror(errno)); log_end();
  }
  scan_cost_ms = mono_ms() - t0;
  scan_next_ms = mono_ms() + 4 * scan_cost_ms;
  if (added > 1) {
    log_begin(PROG, "scan"); log_ku("new", added); log_ku("queued", msgtab.live); log_ku("later", later.n);
    log_end();
  }
}

/* Reads the trigger fifo. qmail-queue writes "<qid>\n" for each message it
 * commits, atomically; such a message is picked up by name, at the cost of
 * one lookup instead of a scan of mess/. Anything else, or a fifo that may
 * have filled up (a writer then lost its notice), asks for a scan: returns
 * 1. A forged qid costs one failed open when the message is loaded. */
static int trigger(int fd)
{
  static char b[65536 + QF_QID_MAX];
  static size_t have;               /* an unfinished line kept from the last read */
  size_t total = 0, added = 0;
  int want_scan = 0;
  ssize_t r;

  while ((r = read(fd, b + have, sizeof b - have)) > 0) {
    size_t start = 0, k, end = have + (size_t)r;
    total += (size_t)r;
    for (k = have; k < end; k++) {
      if (b[k] != '\n') continue;
      if (qf_qid_ok(b + start, k - start)) {
        if (mt_find(&msgtab, b + start, k - start) != NIL) {}
        /* A notice comes as its message is committed: an old name may be
         * one held out of memory (the fifo is writable by anyone), which
         * must not be taken for new and retried early; the scan looks it
         * up in queue/sched/later. */
        else if (later.n && qf_qid_birth(b + start) + TRIGGER_FRESH < wall()) want_scan = 1;
        else {
          msg_add(b + start, k - start);
          added++;
        }
      } else {
        want_scan = 1;
      }
      start = k + 1;
    }
    have = end - start;
    if (have >= QF_QID_MAX) { have = 0; want_scan = 1; }
    else memmove(b, b + start, have);
  }
  /* The fifo holds 64 KB: a drain near that size may have dropped notices. */
  if (total >= 65536 - 2 * QF_QID_MAX) want_scan = 1;
  if (added > 1) {
    log_begin(PROG, "pickup"); log_ku("new", added); log_ku("queued", msgtab.live); log_ku("later", later.n);
    log_end();
  }
  return want_scan;
}

/* Removes tmp/ files older than TMP_OLD (qmail-queue died mid-write), and
 * bounce/ files and sched/ deferral reasons (why.c, with their temporary
 * files) whose message is gone (a crash between two unlinks). */
static void cleanup(void)
{
  unsigned long long t = wall();
  struct dirent *d;
  struct stat st;
  DIR *dir = opendir("queue/tmp");

  if (dir) {
    while ((d = readdir(dir))) {
      if (!qf_qid_ok(d->d_name, strlen(d->d_name))) continue;
      if (fstatat(dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
      if ((unsigned long long)st.st_mtime + TMP_OLD < t && unlinkat(dirfd(dir), d->d_name, 0) == 0) {
        log_begin(PROG, "cleanup"); log_kv("tmp", d->d_name); log_end();
      }
    }
    closedir(dir);
  }
  dir = opendir("queue/bounce");
  if (dir) {
    while ((d = readdir(dir))) {
      if (!qf_qid_ok(d->d_name, strlen(d->d_name))) continue;
      if (stat(mpath("queue/mess/", d->d_name), &st) == 0 || errno != ENOENT) continue;
      if (unlinkat(dirfd(dir), d->d_name, 0) == 0) {
        log_begin(PROG, "cleanup"); log_kv("bounce", d->d_name); log_end();
      }
    }
    closedir(dir);
  }
  dir = opendir("queue/sched");
  if (dir) {
    while ((d = readdir(dir))) {
      const char *q = d->d_name + (d->d_name[0] == '.');
      if (strncmp(q, WHY_PREFIX, strlen(WHY_PREFIX))) continue;
      q += strlen(WHY_PREFIX);
      if (!qf_qid_ok(q, strlen(q))) continue;
      if (stat(mpath("queue/mess/", q), &st) == 0 || errno != ENOENT) continue;
      unlinkat(dirfd(dir), d->d_name, 0);
    }
    closedir(dir);
  }
}

/* ---- resetting one destination (qmail-qdest) */

/* Ends d's hold and dead mark now (the main loop then logs its "retry"
 * and releases its parked messages) and makes the messages whose pending
 * remote recipients were last for d (or for several destinations) due
 * now. Its failure count stays: a destination still down is held again
 * by its first failure. */
static void dest_flush(uint32_t d)
{
  size_t i, n = 0;
  dest_reset(d, now());
  for (i = 0; i < msgtab.n; i++) {
    struct send_msg *m = msgtab.m + i;
    if (m->state != M_WAIT || (m->dest != d && m->dest != DEST_MANY) || m->due[CH_REMOTE] == T_NEVER)
      continue;
    m->due[CH_REMOTE] = 0;
    mt_ready_now(&msgtab, (uint32_t)i);
    n++;
  }
  dest_line(d, "reset");
  log_ku("waiting", n);
  log_end();
  keep_soon();
}

/* Reads the requests in queue/flushdest: one empty file per domain, made
 * by qmail-qdest. The names are checked again here; a domain routed to a
 * relay names the relay's record (hop_key). A request for a
 * domain without a record (no failure, nothing queued for it) has
 * nothing to reset. Each request is removed once acted on: one repeated
 * after a crash is harmless. */
static void flushdest(void)
{
  struct dirent *e;
  DIR *dir = opendir("queue/flushdest");

  if (!dir) {
    if (errno != ENOENT) {
      log_begin(PROG, "error"); log_kv("op", "flushdest"); log_kv("error", strerror(errno)); log_end();
    }
    return;
  }
  while ((e = readdir(dir))) {
    const char *s = e->d_name;
    size_t n = strlen(s);
    uint32_t d;
    char hop[HOP_KEYMAX];
    if (!strcmp(s, ".") || !strcmp(s, "..")) continue;
    if (!dest_name_ok(s, n)) {
      log_begin(PROG, "error"); log_kv("op", "flushdest"); log_kv("name", s);
      log_kv("error", "not a domain name"); log_end();
    } else if ((d = dest_find(s, n)) == NIL && (d = dest_find(hop, hop_key(s, n, hop))) == NIL) {
      log_begin(PROG, "dest"); log_kv("domain", s); log_kv("state", "unknown"); log_end();
    } else dest_flush(d);
    if (unlinkat(dirfd(dir), s, 0) < 0 && errno != ENOENT) {
      log_begin(PROG, "error"); log_kv("op", "flushdest unlink"); log_kv("name", s);
      log_kv("error", strerror(errno)); log_end();
    }
  }
  closedir(dir);
}

/* ---- the wall clock */

#define CLOCK_STEP 5                 /* seconds of change in the skew logged as a step */

/* Logs a step of the wall clock against the scheduler's: it changes
 * nothing scheduled, but dates shown and qids made from now on move by
 * it, and an operator should know. */
static void clock_check(void)
{
  long long k = (long long)wall() - (long long)now(), d = k - clock_skew;
  if (d > -CLOCK_STEP && d < CLOCK_STEP) return;
  log_begin(PROG, "clock");
  log_kv("step", d < 0 ? "backward" : "forward");
  log_ku("seconds", (unsigned long long)(d < 0 ? -d : d));
  log_kv("msg", "the wall clock stepped; retries and lifetimes run on the monotonic clock and are unchanged");
  log_end();
  clock_skew = k;
}

/* ---- signals */

static void on_signal(int sig)
{
  int e = errno;
  char c = (char)sig;
  got_sig = 1;
  if (write(sigpipe_[1], &c, 1) < 0) {}   /* full pipe: a wakeup is already pending */
  errno = e;
}

static void alarm_all(void)
{
  size_t i;
  for (i = 0; i < msgtab.n; i++)
    if (msgtab.m[i].state == M_WAIT) {
      msgtab.m[i].due[CH_LOCAL] = msgtab.m[i].due[CH_LOCAL] == T_NEVER ? T_NEVER : 0;
      msgtab.m[i].due[CH_REMOTE] = msgtab.m[i].due[CH_REMOTE] == T_NEVER ? T_NEVER : 0;
    }
  mt_due(&msgtab, 0, 1);
}

static void signals(void)
{
  char c[64];
  ssize_t n, k;

  while ((n = read(sigpipe_[0], c, sizeof c)) > 0)
    for (k = 0; k < n; k++) {
      if (c[k] == SIGTERM && !stopping) {
        stopping = 1;
        stop_by = now() + STOP_WAIT;
        log_begin(PROG, "stopping"); log_ku("inflight", inuse[0] + inuse[1]); log_end();
      } else if (c[k] == SIGHUP) {
        if (config() < 0) {
          log_begin(PROG, "error"); log_kv("op", "reload"); log_kv("error", strerror(errno)); log_end();
        } else {
          jobmax = job_limit();
          log_begin(PROG, "reload"); log_ku("concurrencylocal", conc[0]);
          log_ku("concurrencyremote", conc[1]); log_ku("concurrencyperdest", bo.perdest); log_end();
        }
      } else if (c[k] == SIGALRM) {
        log_begin(PROG, "retry"); log_ku("waiting", msgtab.nheap); log_ku("later", later.n); log_end();
        dest_clear_all();
        dest_gauges();
        alarm_all();
        if (later.n && later_compact(&later, &msgtab, 1, now(), wall()) < 0) {
          log_begin(PROG, "error"); log_kv("op", "rewrite queue/sched/later"); log_kv("error", strerror(errno));
          log_end();
        }
        flushdest();
        if (nstuck) { stuck_delay = STUCK_FIRST / 2; stuck_retry(); }
        keep_soon();
      } else if (c[k] == SIGUSR1) flushdest();
    }
}

/* ---- setup and the loop */

static int ready_fd = -1;

static void args(int argc, char **argv)
{
  if (argc == 1) return;
  if (argc != 2) log_usage(PROG, "usage: qmail-send [-dFD] (FD from 5 to 1023)");
  ready_fd = ready_arg(PROG, argv[1], 5, "usage: qmail-send [-dFD] (FD from 5 to 1023)");
}

static void setup_fds(void)
{
  struct stat st;
  struct sigaction sa;
  struct rlimit rl;
  int ch, fd;

  for (ch = 0; ch < CH_N; ch++) {
    if (fstat(chfd[ch], &st) < 0 || !S_ISSOCK(st.st_mode))
      log_die(PROG, EXIT_TEMP, "fd 3 and 4 must be the spawner sockets (run qmail-start)");
    /* Non-blocking: a full socket must never stop us reading replies.
     * Close-on-exec: qmail-queue (for bounces) must not hold them. */
    if (fcntl(chfd[ch], F_SETFL, fcntl(chfd[ch], F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(chfd[ch], F_SETFD, FD_CLOEXEC) < 0)
      log_fatal(PROG, 111, "cannot set up the spawner sockets");
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (pipe2(sigpipe_, O_CLOEXEC | O_NONBLOCK) < 0) log_fatal(PROG, 111, "cannot make the signal pipe");
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, 0);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, 0);
  sigaction(SIGHUP, &sa, 0);
  sigaction(SIGALRM, &sa, 0);
  sigaction(SIGUSR1, &sa, 0);

  fd = open("queue/lock/sendmutex", O_RDWR | O_CLOEXEC);
  if (fd < 0) log_fatal(PROG, 111, "cannot open queue/lock/sendmutex");
  if (flock(fd, LOCK_EX | LOCK_NB) < 0)
    log_fatal(PROG, 111, errno == EWOULDBLOCK ? "another qmail-send is running" : "cannot lock queue/lock/sendmutex");
}

int main(int argc, char **argv)
{
  struct pollfd pf[4];
  int trig, trigw, ch, scan_pending = 0;
  unsigned long long next_clean, next_scan, next_flush;
  size_t k;

  args(argc, argv);
  clock_init();
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  metrics_open(MF_SEND);       /* without its file, counting is off */
  msgtab.plist = dest_plist;
  setup_fds();
  if (config() < 0) log_fatal(PROG, 111, "cannot read the control files");
  jobmax = job_limit();
  for (ch = 0; ch < CH_N; ch++)
    for (k = 0; k < SPAWN_SLOTS; k++) {
      slots[ch][k].job = NIL;
      sfree[ch][nsfree[ch]++] = (uint32_t)(SPAWN_SLOTS - 1 - k);
    }
  /* The write end keeps the fifo from reporting EOF when qmail-queue
   * closes it. */
  trig = open("queue/lock/trigger", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  trigw = open("queue/lock/trigger", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (trig < 0 || trigw < 0) log_fatal(PROG, 111, "cannot open queue/lock/trigger");

  log_begin(PROG, "start"); log_ku("uid", getuid()); log_ku("concurrencylocal", conc[0]);
  log_ku("concurrencyremote", conc[1]); log_end();
  cleanup();
  journal_replay(&rw, STOP_WAIT);
  {
    long got = keep_load(&msgtab, now(), wall());
    if (got < 0) {
      log_begin(PROG, "error"); log_kv("op", "load schedule"); log_kv("error", strerror(errno));
      log_kv("msg", "ignored: every message is due now"); log_end();
    } else if (got) { log_begin(PROG, "schedule"); log_ku("loaded", (unsigned long long)got); log_end(); }
    for (k = 0; k < msgtab.n; k++) nstuck += msgtab.m[k].state == M_STUCK;
    /* The messages outside memory: counted, and their lines that the
     * schedule also has (a crash between a move and a save) dropped. */
    if (later_compact(&later, &msgtab, 0, now(), wall()) < 0) {
      log_begin(PROG, "error"); log_kv("op", "rewrite queue/sched/later"); log_kv("error", strerror(errno));
      log_end();
      later.n = 1;                   /* unknown: the scan looks names up there */
      later.min = now();
    }
    stuck_at = now();
    stuck_delay = STUCK_FIRST / 2;
    dest_gauges();
  }
  scan();
  ready_notify(PROG, ready_fd);
  flushdest();
  next_clean = now() + CLEAN_EVERY;
  next_scan = next_flush = now() + SCAN_EVERY;

  for (;;) {
    unsigned long long t, wake, ms;
    int timeout, r;

    if (got_sig) { got_sig = 0; signals(); }
    clock_check();
    t = now();
    if (!stopping) {
      if (t >= next_clean) { cleanup(); next_clean = t + CLEAN_EVERY; }
      if (t >= next_flush) { flushdest(); next_flush = t + SCAN_EVERY; }
      if (nstuck && t >= stuck_at) stuck_retry();
      if (t >= next_scan) scan_pending = 1;
      if (scan_pending && mono_ms() >= scan_next_ms) {
        scan_pending = 0;
        scan();
        next_scan = t + SCAN_EVERY;
      }
    }
    {
      uint32_t d;
      while ((d = dest_expired(t)) != NIL) {
        dest_log(d, "retry");
        release(d);
        dest_maybe_free(d);
      }
    }
    if (!stopping) balance(t);
    wake = mt_due(&msgtab, t, 0);
    if (later.n && !stopping) {
      unsigned long long w = later.min > t ? later.min : t + 1;
      if (w < wake) wake = w;
    }
    if (dest_next() < wake) wake = dest_next();
    dispatch();
    if (keep_dirty && mono_ms() >= keep_next_ms) keep_now();
    if (stopping && (!(inuse[0] + inuse[1]) || t >= stop_by)) {
      if (keep_dirty) keep_now();
      log_begin(PROG, "stop"); log_ku("inflight", inuse[0] + inuse[1]); log_end();
      return 0;
    }

    if (stopping) wake = stop_by;
    else {
      if (next_clean < wake) wake = next_clean;
      if (next_scan < wake) wake = next_scan;
      if (next_flush < wake) wake = next_flush;
      if (nstuck && stuck_at < wake) wake = stuck_at;
    }
    ms = wake <= t ? 0 : (wake - t) * 1000;
    if (scan_pending && !stopping) {
      unsigned long long m0 = mono_ms(), d = scan_next_ms > m0 ? scan_next_ms - m0 : 0;
      if (d < ms) ms = d;
    }
    if (keep_dirty) {
      unsigned long long m0 = mono_ms(), d = keep_next_ms > m0 ? keep_next_ms - m0 : 0;
      if (d < ms) ms = d;
    }
    /* Ready work that could not start waits for a result, not a timer. */
    timeout = ms > 60000 ? 60000 : (int)ms;

    pf[0].fd = sigpipe_[0]; pf[0].events = POLLIN;
    pf[1].fd = trig; pf[1].events = POLLIN;
    for (ch = 0; ch < CH_N; ch++) {
      pf[2 + ch].fd = chfd[ch];
      pf[2 + ch].events = (short)(POLLIN | (blocked[ch] ? POLLOUT : 0));
    }
    r = poll(pf, 4, timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      log_fatal(PROG, 111, "poll failed");
    }
    if (pf[0].revents) got_sig = 1;
    if (pf[1].revents & POLLIN && trigger(trig) && !stopping) scan_pending = 1;
    for (ch = 0; ch < CH_N; ch++) {
      if (pf[2 + ch].revents & POLLOUT) blocked[ch] = 0;
      if (pf[2 + ch].revents & (POLLIN | POLLHUP | POLLERR)) replies(ch);
    }
  }
}
