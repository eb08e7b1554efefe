/* qmail-smtpd-state: the state SMTP sessions share across connections,
 * greylisting triplets, AUTH failures and unknown recipients, as Postfix's anvil and
 * Postgrey keep them. Usage, log events: qmail-smtpd-state(8); the
 * protocol: stateproto.h. Runs as its own uid, never root; alone it
 * writes PREFIX/smtpdstate/state, so a session (the uid that parses
 * network input) can change the table only through the requests below.
 *
 * The table: STATE_SLOTS entries of fixed size, open addressing; a key
 * lives in one of the STATE_PROBE slots from its hash (XXH64 with a
 * random seed kept in the file, so that clients cannot aim at one
 * slot). When they are all taken the entry to go is the first expired
 * one, else a greylisted triplet not yet passed, else the least
 * recently used: what a flood of new triplets can push out is mostly
 * other waiting triplets, which then wait once more.
 *
 * The file: rewritten whole (atomic_write: temporary file, fsync,
 * rename, fsync of the directory) at most every STATE_SAVE seconds when
 * something changed, and at SIGTERM. A power cut loses at most that
 * much: a few triplets greylisted again, a few failures forgotten. A
 * file that does not check (size, magic, checksum) is logged and left
 * for a fresh table. Times are wall-clock seconds, so that they survive
 * a reboot. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include "atomic.h"
#include "buf.h"
#include "control.h"
#include "log.h"
#include "ready.h"
#include "seqsock.h"
#include "stateproto.h"

#define PROG "qmail-smtpd-state"
#define DIR "smtpdstate"
#define FILE_NAME "state"
#define STATE_SLOTS 65536        /* 40 octets each: 2.5 MB */
#define STATE_PROBE 8
#define STATE_SAVE 30            /* seconds between writes of a changed table */
#define CLIENTS 128
#define CLIENT_IDLE 10           /* seconds a client connection may stay quiet */
#define MAX_SECONDS (400UL * 86400)   /* bound of every time a request gives */
#define MAX_COUNT 1000000UL

enum { K_FREE = 0, K_TRIPLET = 'T', K_NET = 'N', K_AUTH = 'A', K_RCPT = 'R' };

struct ent {
  uint64_t key;
  uint64_t first;     /* triplet: first seen; auth: the window's start */
  uint64_t last;      /* last use */
  uint64_t expires;   /* forgotten from then on */
  uint32_t count;     /* triplet: times passed; net: triplets passed; auth: failures;
                         rcpt: unknown recipients */
  uint32_t kind;
};

static struct ent table[STATE_SLOTS];
static uint64_t seed;
static int dirty;
static unsigned long evicted;
static volatile sig_atomic_t stop;

static uint64_t now(void) { return (uint64_t)time(0); }

/* ---- the table */

/* n <= STATE_REQ_MAX: a key is part of one request. */
static uint64_t hash(int kind, const char *k, size_t n)
{
  char b[1 + STATE_REQ_MAX];
  b[0] = (char)kind;
  memcpy(b + 1, k, n);
  return XXH64(b, 1 + n, seed) | 1;   /* never 0: 0 marks nothing */
}

static int live(const struct ent *e, uint64_t t) { return e->kind != K_FREE && e->expires > t; }

/* The entry of (kind, key), or NULL. */
static struct ent *find(int kind, uint64_t key, uint64_t t)
{
  size_t i;
  for (i = 0; i < STATE_PROBE; i++) {
    struct ent *e = &table[(key + i) & (STATE_SLOTS - 1)];
    if (live(e, t) && e->kind == (uint32_t)kind && e->key == key) return e;
  }
  return 0;
}

/* A slot for a new (kind, key), evicting as the header says. */
static struct ent *make(int kind, uint64_t key, uint64_t t)
{
  struct ent *best = 0, *e;
  size_t i;
  for (i = 0; i < STATE_PROBE; i++) {
    e = &table[(key + i) & (STATE_SLOTS - 1)];
    if (!live(e, t)) { best = e; break; }
    if (!best) { best = e; continue; }
    {
      int waiting = e->kind == K_TRIPLET && !e->count;
      int bwaiting = best->kind == K_TRIPLET && !best->count;
      if (waiting > bwaiting || (waiting == bwaiting && e->last < best->last)) best = e;
    }
  }
  if (live(best, t)) evicted++;
  memset(best, 0, sizeof *best);
  best->kind = (uint32_t)kind;
  best->key = key;
  best->first = best->last = t;
  dirty = 1;
  return best;
}

static void forget(struct ent *e) { memset(e, 0, sizeof *e); dirty = 1; }

/* ---- requests */

struct req {
  char *f[9];
  size_t len[9];
  size_t n;
};

/* Splits p (n octets) at single spaces; -1 when a field is empty or
 * holds a byte the protocol forbids, or there are too many. */
static int split(char *p, size_t n, struct req *r)
{
  size_t i, start = 0;
  r->n = 0;
  for (i = 0; i <= n; i++) {
    if (i < n && p[i] != ' ') {
      if ((unsigned char)p[i] < ' ' || (unsigned char)p[i] == 0x7f) return -1;
      continue;
    }
    if (i == start || r->n == 9 || i - start > STATE_KEY_MAX) return -1;
    r->f[r->n] = p + start;
    r->len[r->n++] = i - start;
    start = i + 1;
  }
  return 0;
}

static int num(const struct req *r, size_t i, unsigned long max, uint64_t *out)
{
  unsigned long long v;
  if (scan_ulong(r->f[i], r->len[i], &v) < 0 || v > max) return -1;
  *out = v;
  return 0;
}

static void answer(char *rep, size_t max, const char *word, uint64_t v)
{
  snprintf(rep, max, "%s %llu", word, (unsigned long long)v);
}

static void greylist(const struct req *r, char *rep, size_t max, uint64_t t)
{
  uint64_t delay, window, expiry, clients, key, nkey;
  struct ent *e, *net;

  if (r->n != 8 || num(r, 1, MAX_SECONDS, &delay) < 0 || num(r, 2, MAX_SECONDS, &window) < 0
      || num(r, 3, MAX_SECONDS, &expiry) < 0 || num(r, 4, MAX_COUNT, &clients) < 0) {
    snprintf(rep, max, "ERR syntax");
    return;
  }
  nkey = hash(K_NET, r->f[5], r->len[5]);
  net = find(K_NET, nkey, t);
  if (clients && net && net->count >= clients) {
    net->last = t;
    net->expires = t + expiry;
    dirty = 1;
    snprintf(rep, max, "PASS auto");
    return;
  }
  /* The triplet's key covers the three fields and their separators. */
  key = hash(K_TRIPLET, r->f[5], (size_t)(r->f[7] + r->len[7] - r->f[5]));
  e = find(K_TRIPLET, key, t);
  if (!e) {
    e = make(K_TRIPLET, key, t);
    e->expires = t + (window > delay ? window : delay + 1);
    answer(rep, max, "WAIT", delay);
    return;
  }
  if (!e->count && t < e->first + delay) {
    answer(rep, max, "WAIT", e->first + delay - t);
    return;
  }
  if (!e->count) {
    if (!net) net = make(K_NET, nkey, t);
    net->count++;
    net->last = t;
    net->expires = t + expiry;
  }
  e->count++;
  e->last = t;
  e->expires = t + expiry;
  dirty = 1;
  snprintf(rep, max, "PASS");
}

/* The counts per client address: AUTH failures (A, F, S) and unknown
 * recipients (R, U). */
static void counter(const struct req *r, char *rep, size_t max, uint64_t t)
{
  uint64_t window = 0, lim = 0, key;
  struct ent *e;
  char c = r->f[0][0];
  int kind = c == 'R' || c == 'U' ? K_RCPT : K_AUTH;
  size_t a = c == 'A' || c == 'R' || c == 'U' ? 3 : c == 'F' ? 2 : 1;

  if (r->n != a + 1 || (c != 'S' && num(r, 1, MAX_SECONDS, &window) < 0)
      || (a == 3 && num(r, 2, MAX_COUNT, &lim) < 0)) {
    snprintf(rep, max, "ERR syntax");
    return;
  }
  key = hash(kind, r->f[a], r->len[a]);
  e = find(kind, key, t);
  if (c == 'A' || c == 'R') {
    answer(rep, max, e && lim && e->count >= lim ? "LOCK" : "OK", e ? e->count : 0);
    return;
  }
  if (c == 'S') {
    if (e) forget(e);
    snprintf(rep, max, "OK 0");
    return;
  }
  /* A fixed window from the first one: N failures lock the address
   * until it ends, whatever it does meanwhile. The recipient count that
   * reaches its limit locks for a whole window from then on. */
  if (!e) {
    e = make(kind, key, t);
    e->expires = t + (window ? window : 1);
  }
  if (e->count < UINT32_MAX) e->count++;
  e->last = t;
  if (c == 'U' && lim && e->count == lim) e->expires = t + (window ? window : 1);
  dirty = 1;
  answer(rep, max, c == 'U' && lim && e->count >= lim ? "LOCK" : "OK", e->count);
}

static void serve(char *p, size_t n, char *rep, size_t max)
{
  struct req r;
  uint64_t t = now();
  if (split(p, n, &r) < 0 || r.len[0] != 1) { snprintf(rep, max, "ERR syntax"); return; }
  switch (r.f[0][0]) {
  case 'G': greylist(&r, rep, max, t); return;
  case 'A': case 'F': case 'S': case 'R': case 'U': counter(&r, rep, max, t); return;
  default: snprintf(rep, max, "ERR unknown request");
  }
}

/* ---- the file */

struct head {
  char magic[8];
  uint64_t seed, count, sum;
};
static const char magic[8] = "QSTATE1\n";

static void save(void)
{
  static struct ent live_ents[STATE_SLOTS];
  static char out[sizeof(struct head) + sizeof live_ents];
  struct head h;
  size_t i, n = 0;
  uint64_t t = now();

  for (i = 0; i < STATE_SLOTS; i++) if (live(&table[i], t)) live_ents[n++] = table[i];
  memcpy(h.magic, magic, 8);
  h.seed = seed;
  h.count = n;
  h.sum = XXH64(live_ents, n * sizeof *live_ents, seed);
  memcpy(out, &h, sizeof h);
  memcpy(out + sizeof h, live_ents, n * sizeof *live_ents);
  if (atomic_write(".", FILE_NAME, out, sizeof h + n * sizeof *live_ents, 0600) < 0) {
    log_begin(PROG, "warning");
    log_kv("msg", "cannot write " DIR "/" FILE_NAME);
    log_kv("errno", strerror(errno));
    log_end();
    return;
  }
  dirty = 0;
  if (evicted) {
    log_begin(PROG, "evict");
    log_ku("entries", n);
    log_ku("evicted", evicted);
    log_end();
    evicted = 0;
  }
}

static void put(const struct ent *x)
{
  size_t i;
  for (i = 0; i < STATE_PROBE; i++) {
    struct ent *e = &table[(x->key + i) & (STATE_SLOTS - 1)];
    if (e->kind == K_FREE) { *e = *x; return; }
  }
}

/* Loads the file; 1 when it was there and sound. */
static int load(void)
{
  static char in[sizeof(struct head) + sizeof table];
  struct head h;
  ssize_t r;
  size_t got = 0, i;
  int fd = open(FILE_NAME, O_RDONLY | O_CLOEXEC);
  const char *bad = 0;

  if (fd < 0) {
    if (errno != ENOENT) log_fatal(PROG, 111, "cannot open " DIR "/" FILE_NAME);
    return 0;
  }
  while ((r = read(fd, in + got, sizeof in - got)) > 0) got += (size_t)r;
  if (r < 0) log_fatal(PROG, 111, "cannot read " DIR "/" FILE_NAME);
  close(fd);
  memcpy(&h, in, got < sizeof h ? got : sizeof h);
  if (got < sizeof h || memcmp(h.magic, magic, 8)) bad = "not a state file";
  else if (h.count > STATE_SLOTS || got != sizeof h + h.count * sizeof(struct ent)) bad = "wrong size";
  else if (XXH64(in + sizeof h, h.count * sizeof(struct ent), h.seed) != h.sum) bad = "wrong checksum";
  if (bad) {
    log_begin(PROG, "warning");
    log_kv("msg", "state file refused, starting empty");
    log_kv("reason", bad);
    log_end();
    return 0;
  }
  seed = h.seed;
  for (i = 0; i < h.count; i++) {
    struct ent e;
    memcpy(&e, in + sizeof h + i * sizeof e, sizeof e);
    if (e.kind == K_TRIPLET || e.kind == K_NET || e.kind == K_AUTH || e.kind == K_RCPT) put(&e);
  }
  return 1;
}

/* ---- setup and the loop */

static void on_term(int sig) { (void)sig; stop = 1; }

/* The socket, 0666 (seqsock.h): the directory, the SMTP group's to
 * enter, is what limits who connects. */
static int listen_socket(void)
{
  const char *step;
  int fd = seqsock_listen("socket.new", "socket", &step);
  if (fd < 0) {
    log_begin(PROG, "fatal");
    log_kv("msg", "cannot listen on " DIR "/socket");
    log_kv("step", step);
    log_kv("error", strerror(errno));
    log_end();
    _exit(111);
  }
  return fd;
}

static int setup(int argc, char **argv)
{
  static const char usage[] = "usage: qmail-smtpd-state [-dFD] (FD from 3 to 1023)";
  struct sigaction sa;
  sigset_t term;
  int ready_fd = -1, fd, had;

  if (argc > 2) log_usage(PROG, usage);
  if (argc == 2) ready_fd = ready_arg(PROG, argv[1], 3, usage);
  if (getuid() == 0 || geteuid() == 0) log_die(PROG, 100, "refusing to run as root");
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, 0);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, 0);
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, 0);   /* delivered only inside ppoll */
  umask(077);
  if (prefix_chdir() < 0 || chdir(DIR) < 0) log_fatal(PROG, 111, "cannot chdir to " DIR);
  had = load();
  if (!had && getrandom(&seed, sizeof seed, 0) != sizeof seed) log_fatal(PROG, 111, "getrandom");
  fd = listen_socket();
  log_begin(PROG, "start");
  log_kv("file", had ? "loaded" : "new");
  log_end();
  ready_notify(PROG, ready_fd);
  return fd;
}

int main(int argc, char **argv)
{
  static struct pollfd pf[1 + CLIENTS];
  static uint64_t seen[1 + CLIENTS];
  char req[STATE_REQ_MAX + 1], rep[STATE_REP_MAX];
  uint64_t last_save = now();
  sigset_t none;
  size_t n = 1, i;
  int lfd = setup(argc, argv);

  sigemptyset(&none);
  pf[0].fd = lfd;
  pf[0].events = POLLIN;
  while (!stop) {
    struct timespec ts = { 1, 0 };
    uint64_t t;
    if (ppoll(pf, n, &ts, &none) < 0 && errno != EINTR) log_fatal(PROG, 111, "poll");
    t = now();
    if (pf[0].revents & POLLIN) {
      int c;
      while ((c = accept4(lfd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        if (n == 1 + CLIENTS) { close(c); continue; }   /* the session fails open */
        pf[n].fd = c;
        pf[n].events = POLLIN;
        pf[n].revents = 0;
        seen[n++] = t;
      }
    }
    for (i = 1; i < n; i++) {
      ssize_t r = 0;
      int drop = t > seen[i] + CLIENT_IDLE;
      if (!drop && pf[i].revents) {
        r = recv(pf[i].fd, req, sizeof req, MSG_TRUNC);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        drop = r <= 0;
      }
      if (!drop && r > 0) {
        if ((size_t)r > STATE_REQ_MAX) snprintf(rep, sizeof rep, "ERR too long");
        else serve(req, (size_t)r, rep, sizeof rep);
        drop = send(pf[i].fd, rep, strlen(rep), MSG_NOSIGNAL) < 0;
        seen[i] = t;
      }
      if (drop) {
        close(pf[i].fd);
        pf[i] = pf[--n];
        seen[i] = seen[n];
        i--;
      }
    }
    if (dirty && t >= last_save + STATE_SAVE) { save(); last_save = t; }
  }
  if (dirty) save();
  log_begin(PROG, "stop");
  log_end();
  return 0;
}
