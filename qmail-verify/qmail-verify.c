/* qmail-verify: the inbound authentication stage on the qmail-queue
 * interface (QMAILQUEUE=PREFIX/bin/qmail-verify): the message on fd 0,
 * the envelope on fd 1, passed on untouched. It runs as the SMTP
 * server's uid, holds no key and no privilege.
 *
 * Only mail from the outside is judged: TCPREMOTEIP set, no RELAYCLIENT,
 * SMTPAUTHENTICATED not 1. For such mail it checks the DKIM signatures
 * (lib/dkimverify.h, keys through lib/dns.h and control/dnsserver), takes
 * qmail-smtpd's SPF verdict from SPF_RESULT, SPF_SCOPE and SPF_DOMAIN,
 * writes ONE Authentication-Results header naming control/me at the top,
 * and drops every received Authentication-Results that claims control/me,
 * so that a sender cannot forge our verdict. Any other mail passes
 * through unread.
 *
 * The message is spooled in a memfd (not the heap), since the header
 * goes first; the header block is held in memory up to HDR_MAX, the body
 * is streamed. The spool starts at GAP, a hole that costs no memory: the
 * new header block is written just before the body and the next stage
 * reads from there, so the body is copied once. A DNS failure is a temperror in the header, never a
 * refusal. Then it execs the next stage, fixed at build time:
 * PREFIX/bin/qmail-dkim when installed (it signs only what it should),
 * else PREFIX/bin/qmail-queue. See qmail-verify(8). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "authres.h"
#include "buf.h"
#include "date.h"
#include "control.h"
#include "dkimverify.h"
#include "dmarc.h"
#include "dns.h"
#include "exitcode.h"
#include "log.h"
#include "str.h"
#include "verify-dmarc.h"

#define PROG "qmail-verify"
#define HDR_MAX (1u << 20)             /* a header block beyond this is refused */
#define HASH_MAX (64ull << 20)         /* body bytes hashed, all signatures together */
#define DNS_BUDGET 15                  /* seconds of DNS per message */
#define TXT_MAX 16384
#define SPOOL_MAX (1ull << 30)         /* a larger message is refused */
/* Room before the spooled message for the new header block, which is the
 * received one (less what strip drops) plus our header and mark: those
 * are bounded by DKIM_VERIFY_MAX results of bounded size, far below this. */
#define GAP (1ull << 20)

/* Becomes the next stage, fixed at build time. */
static void next_stage(void)
{
  char path[4096];
  char *argv[] = { "qmail-queue", 0 };
  if (snprintf(path, sizeof path, "%s/bin/qmail-dkim", auto_prefix) >= (int)sizeof path)
    log_die(PROG, QQ_BUG, "prefix too long");
  if (access(path, X_OK) == 0) {     /* installed: mail it should sign never skips it */
    execv(path, argv);
    log_fatal(PROG, QQ_BUG, "cannot run qmail-dkim");
  }
  if (snprintf(path, sizeof path, "%s/bin/qmail-queue", auto_prefix) >= (int)sizeof path)
    log_die(PROG, QQ_BUG, "prefix too long");
  execv(path, argv);
  log_fatal(PROG, QQ_BUG, "cannot run qmail-queue");
}

static int judged(void)
{
  const char *a = getenv("SMTPAUTHENTICATED");
  return getenv("TCPREMOTEIP") && !getenv("RELAYCLIENT") && !(a && !strcmp(a, "1"));
}

static void refuse(const char *why)
{
  log_begin(PROG, "dkim.verify");
  log_kv("result", "refused");
  log_kv("reason", why);
  log_end();
  _exit(QQ_REFUSED);
}

/* Copies fd 0 into a new memfd at offset GAP; its size in *size. */
static int spool(unsigned long long *size)
{
  static char chunk[65536];
  int fd = memfd_create(PROG, MFD_CLOEXEC);
  if (fd < 0) log_fatal(PROG, QQ_NOMEM, "memfd_create");
  if (lseek(fd, (off_t)GAP, SEEK_SET) < 0) log_fatal(PROG, QQ_WRITE, "cannot spool the message");
  *size = 0;
  for (;;) {
    ssize_t r = read(0, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) log_fatal(PROG, QQ_READ_MSG, "cannot read the message");
    if (r == 0) return fd;
    if ((*size += (unsigned long long)r) > SPOOL_MAX) refuse("message-too-large");
    if (fd_write_all(fd, chunk, (size_t)r, 0) < 0) log_fatal(PROG, QQ_WRITE, "cannot spool the message");
  }
}

/* Where the header block ends in s (after its empty line), or 0 when
 * none ends within n bytes. */
static size_t header_end(const char *s, size_t n)
{
  size_t i = 0;
  while (i < n) {
    const char *nl;
    if (s[i] == '\n') return i + 1;
    if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') return i + 2;
    nl = memchr(s + i, '\n', n - i);
    if (!nl) return 0;
    i = (size_t)(nl - s) + 1;
  }
  return 0;
}

/* Reads the header block of the spool into hdr (all of a message that
 * has no empty line). */
static void read_header(int fd, unsigned long long size, str *hdr)
{
  size_t want = size < HDR_MAX ? (size_t)size : HDR_MAX, end;
  if (str_ready(hdr, want + 1) < 0) log_fatal(PROG, QQ_NOMEM, "out of memory");
  while (hdr->len < want) {
    ssize_t r = pread(fd, hdr->s + hdr->len, want - hdr->len, (off_t)(GAP + hdr->len));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) log_fatal(PROG, QQ_READ_MSG, "cannot read the spool");
    hdr->len += (size_t)r;
  }
  end = header_end(hdr->s, hdr->len);
  if (end) hdr->len = end;
  else if (size > HDR_MAX) refuse("header-too-large");
}

/* Passes the message's bytes from off to size to fn, in pieces. */
static void body(int in, unsigned long long off, unsigned long long size,
                 void (*fn)(void *ctx, const char *p, size_t n), void *ctx)
{
  static char chunk[65536];
  while (off < size) {
    ssize_t r = pread(in, chunk, sizeof chunk, (off_t)(GAP + off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) log_fatal(PROG, QQ_READ_MSG, "cannot read the spool");
    fn(ctx, chunk, (size_t)r);
    off += (unsigned long long)r;
  }
}

static void to_verifier(void *v, const char *p, size_t n) { dkim_verify_body(v, p, n); }

/* --- key lookups ------------------------------------------------------ */

struct keyctx { struct timespec start; int budget_gone; };

static int txt_each(const char *txt, size_t len, void *ctx)
{
  str *out = ctx;
  if (out->len + len + 1 > TXT_MAX) return 0;        /* the first records suffice */
  if (out->len && str_catc(out, 0)) return -1;
  return str_catb(out, txt, len);
}

static int key_lookup(const char *name, str *txt, void *ctx)
{
  struct keyctx *k = ctx;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (k->budget_gone || now.tv_sec - k->start.tv_sec >= DNS_BUDGET) {
    k->budget_gone = 1;
    return DNS_TEMP;
  }
  txt->len = 0;
  return dns_txt(name, txt_each, txt);
}

/* --- the header ------------------------------------------------------- */

static int domainish(const char *s)
{
  return *s && strlen(s) < 254 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == strlen(s);
}

/* The SPF fragment from qmail-smtpd's environment; 0 when there is none. */
static int spf_frag(str *f)
{
  static const char *const ok[] = {
    "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", 0
  };
  const char *r = getenv("SPF_RESULT"), *scope = getenv("SPF_SCOPE"), *d = getenv("SPF_DOMAIN");
  size_t i;
  if (!r) return 0;
  for (i = 0; ok[i] && strcmp(ok[i], r); i++) ;
  if (!ok[i]) return 0;
  if (str_cats(f, "spf=") || str_cats(f, r)) return -1;
  if (d && domainish(d)
      && (str_cats(f, scope && !strcmp(scope, "helo") ? " smtp.helo=" : " smtp.mailfrom=")
          || str_cats(f, d)))
    return -1;
  return 1;
}

/* The Authentication-Results header for the results of v, and DMARC's
 * entry dmarc when there is one. */
static void build(str *out, const char *me, const struct dkim_verify *v, const str *dmarc)
{
  str frags[2 + DKIM_VERIFY_MAX];
  size_t n = 0, i;
  int s;

  memset(frags, 0, sizeof frags);
  s = spf_frag(&frags[0]);
  if (s < 0) log_fatal(PROG, QQ_NOMEM, "out of memory");
  if (s > 0) n++;
  for (i = 0; i < (v->n ? v->n : 1); i++, n++)
    if (dkim_resinfo(&frags[n], v->n ? &v->r[i] : 0) < 0) log_fatal(PROG, QQ_NOMEM, "out of memory");
  if (dmarc->len && str_copyb(&frags[n++], dmarc->s, dmarc->len) < 0)
    log_fatal(PROG, QQ_NOMEM, "out of memory");
  if (ar_header(out, me, frags, n) < 0) log_fatal(PROG, QQ_NOMEM, "out of memory");
  for (i = 0; i < n; i++) str_free(&frags[i]);
}

/* Whether the field name s[0..n) is name (lower case). */
static int named(const char *s, size_t n, const char *name)
{
  return n == strlen(name) && !strncasecmp(s, name, n);
}

/* Appends the header block hdr to out without the Authentication-Results
 * fields that claim me and the quarantine marks (verify-dmarc.h), which
 * only this host may set; their number. */
static unsigned long strip(str *out, const str *hdr, const char *me)
{
  static const char ar[] = "authentication-results";
  unsigned long dropped = 0;
  size_t i = 0;

  while (i < hdr->len) {
    size_t s = i, j, c;
    const char *nl;
    /* one field: its first line and every continuation line */
    do {
      nl = memchr(hdr->s + i, '\n', hdr->len - i);
      i = nl ? (size_t)(nl - hdr->s) + 1 : hdr->len;
    } while (i < hdr->len && (hdr->s[i] == ' ' || hdr->s[i] == '\t'));
    for (c = s; c < i && hdr->s[c] != ':' && hdr->s[c] != '\n'; c++) ;
    for (j = c; j > s && (hdr->s[j - 1] == ' ' || hdr->s[j - 1] == '\t'); j--) ;
    if (c < i && hdr->s[c] == ':' && j - s == sizeof ar - 1 && !strncasecmp(hdr->s + s, ar, j - s)
        && ar_claims(hdr->s + c + 1, i - c - 1, me)) {
      dropped++;
      continue;
    }
    if (c < i && hdr->s[c] == ':' && named(hdr->s + s, j - s, "x-quarantine")) {
      dropped++;
      continue;
    }
    if (str_catb(out, hdr->s + s, i - s) < 0) log_fatal(PROG, QQ_NOMEM, "out of memory");
  }
  return dropped;
}

static void log_result(const struct dkim_verify *v, unsigned long dropped)
{
  const struct dkim_sigresult *r = 0;
  size_t i;
  for (i = 0; i < v->n; i++)
    if (!r || (v->r[i].result == DKIM_PASS && r->result != DKIM_PASS)) r = &v->r[i];
  log_begin(PROG, "dkim.verify");
  log_kv("result", dkim_result_name(r ? r->result : DKIM_NONE));
  if (r && r->d[0]) log_kv("d", r->d);
  if (r && r->s[0]) log_kv("s", r->s);
  if (r && r->b[0]) log_kv("b", r->b);
  if (r && r->why) log_kv("reason", r->why);
  log_ku("sigs", v->nsigs);
  if (getenv("SPF_RESULT")) log_kv("spf", getenv("SPF_RESULT"));
  if (dropped) log_ku("forged", dropped);
  log_end();
}

int main(void)
{
  static str me, dnsserver, hdr, out, dmarc, mark;
  struct dkim_verify v;
  struct dkim_verify_opts o;
  struct keyctx kc;
  unsigned long long size;
  unsigned long long start;
  unsigned long dropped;
  int in;

  if (prefix_chdir() < 0) log_fatal(PROG, QQ_CHDIR, "cannot chdir to the prefix");
  if (!judged()) next_stage();
  if (control_line(&me, "control/me") <= 0 || !me.len || str_0(&me) < 0)
    log_die(PROG, QQ_BUG, "control/me is missing");
  if (control_line(&dnsserver, "control/dnsserver") < 0)
    log_fatal(PROG, QQ_BUG, "cannot read control/dnsserver");

  in = spool(&size);
  read_header(in, size, &hdr);

  memset(&o, 0, sizeof o);
  o.now = (unsigned long long)time(0);
  o.maxhash = HASH_MAX;
  o.key = key_lookup;
  o.keyctx = &kc;
  memset(&kc, 0, sizeof kc);
  clock_gettime(CLOCK_MONOTONIC, &kc.start);
  if (dns_init(&dnsserver) < 0) kc.budget_gone = 1;    /* every key: temperror */
  dns_limits(2, 2);
  /* One bound for every query of the message, DMARC's included: each
   * query's tries are fitted into what is left (lib/dns.h). */
  dns_deadline(mono_ms() + DNS_BUDGET * 1000ULL);
  if (dkim_verify_start(&v, hdr.s, hdr.len, &o) < 0) {
    if (errno == ENOMEM) log_fatal(PROG, QQ_NOMEM, "out of memory");
    /* a header dkim_fields cannot split (or of over 512 fields): no
     * signature in it can be checked */
    memset(&v, 0, sizeof v);
    v.n = 1;
    v.r[0].result = DKIM_PERMERROR;
    v.r[0].why = "header not parsed";
  } else {
    body(in, hdr.len, size, to_verifier, &v);
    dkim_verify_finish(&v);
  }

  if (vdmarc_check(&hdr, &v, &dmarc, &mark) == DMARC_ACT_REJECT) {
    log_result(&v, 0);
    _exit(QQ_DMARC);
  }
  build(&out, me.s, &v, &dmarc);
  if (str_catb(&out, mark.s, mark.len) < 0) log_fatal(PROG, QQ_NOMEM, "out of memory");
  dropped = strip(&out, &hdr, me.s);
  log_result(&v, dropped);

  /* The new header block ends where the body starts: the next stage
   * reads it and then the body, from one offset on. */
  if (out.len > GAP + hdr.len) log_fatal(PROG, QQ_BUG, "header block over its room");
  start = GAP + hdr.len - out.len;
  if (lseek(in, (off_t)start, SEEK_SET) < 0 || fd_write_all(in, out.s, out.len, 0) < 0)
    log_fatal(PROG, QQ_WRITE, "cannot spool the message");
  if (lseek(in, (off_t)start, SEEK_SET) < 0 || dup2(in, 0) < 0)
    log_fatal(PROG, QQ_BUG, "cannot pass the message on");
  close(in);
  next_stage();
}
