/* One SMTP session with one server (RFC 5321), as the client.
 *
 * Stages, each a function: greeting, hello (EHLO, HELO fallback),
 * transaction (MAIL, RCPTs, DATA, the message), quit. A failure before the
 * transaction is the server's or the network's, not the message's: the
 * caller may try the next host (SMTP_NEXTHOST). From MAIL on, every result
 * is final (SMTP_FINAL).
 *
 * STARTTLS goes between hello() and transaction() (starttls()): after
 * the handshake, s->rfd/s->wfd become the plaintext side of a relay
 * child (tlsclient.c), and EHLO is said again, everything learnt before
 * forgotten (CVE-2011-0411). Implicit TLS (port 465) does the same
 * handshake before the greeting instead.
 *
 * AUTH (RFC 4954) goes after TLS, before MAIL (authenticate()):
 * PLAIN when offered, else LOGIN. Credentials never go over a connection
 * without TLS unless the route allows it, and every buffer that held the
 * password is wiped. A failure there is a deferral tagged "auth", never
 * a bounce: the message is fine, the configuration or the relay is not.
 *
 * The message goes as stored unless this server could not take it: a
 * line over 998 octets, or an 8-bit byte without 8BITMIME (RFC 6152 3).
 * Then it is converted on the way (mime8.h: a scan and a count for SIZE
 * before MAIL, the conversion while sending); what cannot be converted
 * is bounced (5.6.3), never sent as it is. A message flagged SMTPUTF8
 * goes without the flag to a server lacking it when its envelope and top
 * header are ASCII; otherwise it bounces (5.6.7).
 *
 * A worker of qmail-rspawn keeps the connection after a transaction that
 * left the server ready for another (no QUIT), under the key the caller
 * gives (struct sessopts: the destination, the route, the TLS and AUTH
 * parameters), and smtp_reuse starts the next transaction on it with MAIL
 * (RFC 5321 3.3), after an RSET only when the last one did not complete.
 * TLS and AUTH belong to the connection: only a request with the very
 * same key gets it. A kept connection that fails before any recipient is
 * accepted (closed, 421, I/O error) is dropped without a trace in the
 * results, and the caller connects afresh: a stale connection never costs
 * a delivery. One connection at a time per process.
 *
 * LMTP (RFC 2033) is the same session with LHLO for EHLO (no HELO
 * fallback) and, after the message, one reply per accepted recipient in
 * RCPT order instead of one for all: each is that recipient's result
 * alone. When the connection fails among those replies, the recipients
 * already answered keep their results (a 2xx one is delivered and must
 * not be sent again) and the rest are deferred.
 *
 * Deadlines: a per-read timeout alone lets a tarpit that sends a byte
 * every few seconds hold a delivery (and its slot) for ever. So each
 * reply, the greeting included, must be whole within control/timeoutreply
 * (RFC 5321 4.5.3.2's 5 minutes by default; twice that for the reply
 * after the message, its 10 minutes), each command must be written within
 * it, and the message as a whole within timeoutreply plus its size over
 * control/datarate (bytes per second); so must a TLS handshake, the
 * server's flight being its reply. control/timeoutremote still bounds
 * each read and write.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "date.h"
#include "base64.h"
#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "mime8.h"
#include "qfile.h"
#include "remote.h"

#define EXT_PIPELINING 1u
#define EXT_SIZE       2u
#define EXT_8BITMIME   4u
#define EXT_SMTPUTF8   8u
#define EXT_STARTTLS  16u
#define EXT_AUTH      32u
#define EXT_AUTH_PLAIN 64u
#define EXT_AUTH_LOGIN 128u
#define EXT_DSN      256u

#define REPLY_LINE 2048      /* longer than RFC 5321's 512: be lenient */
#define REPLY_LINES 200      /* a reply of more lines is an attack */
#define REPLY_KEEP (2 * SPAWN_TEXT)
#define CHUNK 65536

/* A kept connection serves at most KEEP_USES transactions and is not
 * reused past KEEP_AGE_MS (Postfix's smtp_connection_reuse_time_limit),
 * so that a destination's DNS and our control files take effect; idle,
 * it is closed after SMTP_KEEP_IDLE_MS, see remote.h. */
#define KEEP_USES 100
#define KEEP_AGE_MS 300000

/* What the last transaction left the connection fit for. */
enum { STATE_DEAD = 0, STATE_READY, STATE_RSET };

struct smtp {
  int fd;                    /* the TCP socket */
  int rfd, wfd;              /* fd, or the TLS relay's socket */
  buf in;
  char inx[4096];
  char ip[ROUTE_PATHMAX];    /* the server's address, or an LMTP socket's path */
  int lmtp;                  /* LMTP (RFC 2033): LHLO, a reply per recipient */
  const struct rconf *c;     /* during a delivery only */
  int timeout;               /* seconds per read or write */
  long long reply_ms;        /* deadline of a reply or a command */
  int broken;                /* a read or write failed or timed out: no QUIT,
                              * which would only wait for the deadline again */
  unsigned long datarate;    /* bytes per second the message needs at least */
  int state;                 /* STATE_*, after a transaction */
  size_t accepted;           /* recipients accepted in the last transaction */
  str key;                   /* what the connection was made for (may hold a password) */
  unsigned long uses;        /* transactions */
  long long born, idle_since; /* monotonic ms */
  unsigned ext;
  int code;                  /* of the last reply; -1 after an I/O error */
  str reply;                 /* the last reply, sanitised, lines LF-separated */
  str line, cmd;
  const char *err;           /* what went wrong when code is -1 */
  struct tlsconn tls;        /* fd -1 without TLS */
  int tlsfail;               /* from STARTTLS to the EHLO over TLS, not done */
};


/* Waits until s->in holds a whole line (or EOF or an error is next),
 * each read bounded by what is left before deadline. 0, or -1 with errno
 * (ETIMEDOUT past the deadline, ENOBUFS for a line longer than the
 * buffer, which is longer than REPLY_LINE). */
static int line_by(struct smtp *s, long long deadline)
{
  long long left;

  for (;;) {
    size_t have = s->in.end - s->in.pos;
    if (have && memchr(s->in.x + s->in.pos, '\n', have)) return 0;
    if (have == s->in.cap) { errno = ENOBUFS; return -1; }
    left = deadline - (long long)mono_ms();
    if (left <= 0) { errno = ETIMEDOUT; return -1; }
    s->in.timeout = left / 1000 + 1 < s->timeout ? (int)(left / 1000 + 1) : s->timeout;
    switch (buf_fill(&s->in)) {
    case -1: return -1;
    case 0: return 0;             /* buf_line reports the EOF */
    }
  }
}

/* Reads one reply, multi-line or not, whole within ms milliseconds.
 * Returns its code (200..599 style three digits), or -1 with s->err
 * set. */
static int get_reply_within(struct smtp *s, long long ms)
{
  int n, code = -1;
  size_t i, len;
  long long deadline = (long long)mono_ms() + ms;

  s->reply.len = 0;
  for (n = 0; n < REPLY_LINES; n++) {
    int r = line_by(s, deadline) < 0 ? LINE_ERR : buf_line(&s->in, &s->line, REPLY_LINE), c;
    if (r == LINE_ERR && errno == ENOBUFS) r = LINE_LONG;
    if (r == LINE_ERR) {
      s->err = errno == ETIMEDOUT ? "timed out waiting for a reply" : strerror(errno);
      s->broken = 1;
      return s->code = -1;
    }
    if (r == LINE_LONG) { s->err = "reply line too long"; return s->code = -1; }
    if (r != LINE_OK) { s->err = "connection closed by the server"; return s->code = -1; }
    len = s->line.len - 1;
    if (len && s->line.s[len - 1] == '\r') len--;
    if (len < 3 || (len > 3 && s->line.s[3] != ' ' && s->line.s[3] != '-')) break;
    for (c = 0, i = 0; i < 3; i++) {
      if (s->line.s[i] < '0' || s->line.s[i] > '9') { c = -1; break; }
      c = c * 10 + (s->line.s[i] - '0');
    }
    if (c < 100 || (n && c != code)) break;
    code = c;
    if (s->reply.len && s->reply.len < REPLY_KEEP && str_catc(&s->reply, '\n') < 0) break;
    for (i = 0; i < len && s->reply.len < REPLY_KEEP; i++) {
      unsigned char b = (unsigned char)s->line.s[i];
      if (str_catc(&s->reply, (char)(b < 32 || b == 127 ? '?' : b)) < 0) { s->err = "out of memory"; return s->code = -1; }
    }
    if (len == 3 || s->line.s[3] == ' ') return s->code = code;
  }
  s->err = "malformed reply";
  return s->code = -1;
}

static int get_reply(struct smtp *s)
{
  return get_reply_within(s, s->reply_ms);
}

/* Writes n bytes at p, all before deadline, each write also bounded by
 * the per-write timeout (SO_SNDTIMEO: a blocking write to a server that
 * reads slowly returns what it could send when the time is up). 0, or -1
 * with errno (ETIMEDOUT when the time ran out). */
static int write_by(struct smtp *s, const char *p, size_t n, long long deadline)
{
  struct timeval tv;
  long long left;
  ssize_t r;

  while (n) {
    left = deadline - (long long)mono_ms();
    if (left <= 0) { errno = ETIMEDOUT; return -1; }
    if (left > (long long)s->timeout * 1000) left = (long long)s->timeout * 1000;
    tv.tv_sec = (time_t)(left / 1000);
    tv.tv_usec = (suseconds_t)(left % 1000 * 1000);
    if (setsockopt(s->wfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) return -1;
    r = write(s->wfd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { errno = ETIMEDOUT; return -1; }
    if (r < 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Sends s->cmd before deadline. */
static int send_by(struct smtp *s, long long deadline)
{
  if (write_by(s, s->cmd.s, s->cmd.len, deadline) < 0) {
    s->err = errno == ETIMEDOUT ? "timed out sending" : strerror(errno);
    s->broken = 1;
    s->code = -1;
    return -1;
  }
  return 0;
}

static int send_cmd(struct smtp *s)
{
  return send_by(s, (long long)mono_ms() + s->reply_ms);
}

/* "<ip> said: <reply>", or "<ip>: <error>" after an I/O failure. */
static int what(struct smtp *s, const char *stage, str *out)
{
  out->len = 0;
  if (str_cats(out, s->ip) < 0) return -1;
  if (s->code < 0)
    return str_cats(out, stage) < 0 || str_cats(out, ": ") < 0 || str_cats(out, s->err) < 0 ? -1 : 0;
  if (str_cats(out, " said: ") < 0) return -1;
  return str_catb(out, s->reply.s, s->reply.len);
}

static void set_one(struct smtp *s, struct rresult *r, char code, const char *tag, const char *stage)
{
  str t = STR_INIT;
  if (what(s, stage, &t) < 0) result_set(r, 'Z', SPAWN_TAG_LOCAL, "out of memory", "", 0);
  else result_set(r, code, tag, "", t.s, t.len);
  str_free(&t);
}

/* Every recipient gets the same result (ignoring the accepted marks). */
static void set_all(struct smtp *s, struct rjob *j, char code, const char *tag, const char *stage)
{
  size_t i;
  for (i = 0; i < j->nrcpt; i++) set_one(s, &j->res[i], code, tag, stage);
}

/* The result a failure reply or an I/O error means: 'Z' or 'D'. */
static char failcode(const struct smtp *s)
{
  return s->code >= 500 && s->code < 600 ? 'D' : 'Z';
}

static int is2xx(const struct smtp *s) { return s->code >= 200 && s->code < 300; }

/* The mechanisms of an "AUTH mech mech ..." line, words of p[0..n). */
static void auth_mechs(struct smtp *s, const char *p, size_t n)
{
  size_t i = 0, w;

  while (i < n) {
    if (p[i] == ' ') { i++; continue; }
    for (w = i; i < n && p[i] != ' '; i++) ;
    if (i - w == 5 && !strncasecmp(p + w, "PLAIN", 5)) s->ext |= EXT_AUTH_PLAIN;
    if (i - w == 5 && !strncasecmp(p + w, "LOGIN", 5)) s->ext |= EXT_AUTH_LOGIN;
  }
}

/* The EHLO reply's keywords: every line but the first, "250-KEYWORD ...". */
static void parse_ehlo(struct smtp *s)
{
  static const struct { const char *kw; unsigned bit; } kws[] = {
    { "PIPELINING", EXT_PIPELINING }, { "SIZE", EXT_SIZE }, { "8BITMIME", EXT_8BITMIME },
    { "SMTPUTF8", EXT_SMTPUTF8 }, { "STARTTLS", EXT_STARTTLS }, { "AUTH", EXT_AUTH },
    { "DSN", EXT_DSN },
  };
  const char *p = s->reply.s, *end = s->reply.s + s->reply.len, *nl;
  size_t k, n;

  s->ext = 0;
  nl = memchr(p, '\n', s->reply.len);   /* the first line names the server */
  for (p = nl ? nl + 1 : end; p < end; p = nl ? nl + 1 : end) {
    nl = memchr(p, '\n', (size_t)(end - p));
    n = (size_t)((nl ? nl : end) - p);
    if (n <= 4) continue;
    for (k = 0; k < sizeof kws / sizeof kws[0]; k++) {
      size_t kl = strlen(kws[k].kw);
      if (n - 4 >= kl && !strncasecmp(p + 4, kws[k].kw, kl) && (n - 4 == kl || p[4 + kl] == ' '))
        s->ext |= kws[k].bit;
    }
    if (n > 9 && !strncasecmp(p + 4, "AUTH ", 5)) auth_mechs(s, p + 9, n - 9);
  }
}

static int greeting(struct smtp *s)
{
  return get_reply(s) >= 0 && is2xx(s) ? 0 : -1;
}

static int hello(struct smtp *s)
{
  s->cmd.len = 0;
  if (str_cats(&s->cmd, s->lmtp ? "LHLO " : "EHLO ") < 0 || str_catb(&s->cmd, s->c->helohost.s, s->c->helohost.len) < 0 ||
      str_cats(&s->cmd, "\r\n") < 0) { s->err = "out of memory"; s->code = -1; return -1; }
  if (send_cmd(s) < 0 || get_reply(s) < 0) return -1;
  if (is2xx(s)) { parse_ehlo(s); return 0; }
  if (s->code == 421 || s->lmtp) return -1;
  /* An old server: try HELO, which offers no extensions. */
  s->cmd.len = 0;
  if (str_cats(&s->cmd, "HELO ") < 0 || str_catb(&s->cmd, s->c->helohost.s, s->c->helohost.len) < 0 ||
      str_cats(&s->cmd, "\r\n") < 0) { s->err = "out of memory"; s->code = -1; return -1; }
  if (send_cmd(s) < 0 || get_reply(s) < 0) return -1;
  s->ext = 0;
  return is2xx(s) ? 0 : -1;
}

/* What one pass over the stored message tells. */
struct scan {
  unsigned long long wire;   /* the wire size estimate (LF becomes CRLF) */
  int eight;                 /* a byte has the high bit set */
  int head8;                 /*   one in the top header */
  size_t longest;            /* the longest line, a CR before its LF not counted */
};

/* The pass over the message filling sc. 0, or -1 on a read error. */
static int prescan(const struct rjob *j, struct scan *sc, char *chunk)
{
  unsigned long long done = 0, lfs = 0;
  size_t i, col = 0;
  int head = 1, cr = 0;

  memset(sc, 0, sizeof *sc);
  while (done < j->msglen) {
    size_t want = j->msglen - done > CHUNK ? CHUNK : (size_t)(j->msglen - done);
    ssize_t r = pread(j->msgfd, chunk, want, j->msgoff + (off_t)done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    for (i = 0; i < (size_t)r; i++) {
      if (chunk[i] == '\n') {
        lfs++;
        if (col - (size_t)cr > sc->longest) sc->longest = col - (size_t)cr;
        if (col - (size_t)cr == 0) head = 0;     /* the blank line ending the header */
        col = 0;
        cr = 0;
        continue;
      }
      col++;
      cr = chunk[i] == '\r';
      if (chunk[i] & 0x80) {
        sc->eight = 1;
        if (head) sc->head8 = 1;
      }
    }
    done += (unsigned long long)r;
  }
  if (col > sc->longest) sc->longest = col;
  sc->wire = j->msglen + lfs;
  return 0;
}

/* The envelope has a byte over 127: only SMTPUTF8 can carry it. */
static int envelope8(const struct rjob *j)
{
  size_t i;
  const char *p;

  for (i = 0; i <= j->nrcpt; i++)
    for (p = i < j->nrcpt ? j->rcpt[i] : j->sender; *p; p++)
      if (*p & 0x80) return 1;
  return 0;
}

/* Conversion for a strict receiver (mime8.h): the message goes through
 * mconv into mout, a chunk at a time. */
static struct mime8 mconv;
static str mout;

/* One pass of mconv over the message; with wire, adds the output's wire
 * size. MIME8_OK, a MIME8_* error, or 1 when the message cannot be read. */
static int conv_pass(const struct rjob *j, char *chunk, unsigned long long *wire)
{
  unsigned long long done = 0;
  size_t i;
  int r = MIME8_OK, end = 0;

  while (r == MIME8_OK && !end) {
    size_t want = j->msglen - done > CHUNK ? CHUNK : (size_t)(j->msglen - done);
    ssize_t n = 0;
    if (want) {
      n = pread(j->msgfd, chunk, want, j->msgoff + (off_t)done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return 1;
    }
    done += (unsigned long long)n;
    mout.len = 0;
    r = mime8_feed(&mconv, chunk, (size_t)n, &mout);
    if (r == MIME8_OK && done == j->msglen) { r = mime8_end(&mconv, &mout); end = 1; }
    for (i = 0; wire && i < mout.len; i++) *wire += mout.s[i] == '\n' ? 2 : 1;
  }
  return r;
}

/* Before MAIL: decides whether the message must be converted for this
 * server and, if so, runs the scan and counts the converted size into
 * sc->wire. 0 (*conv set), or -1 with every result set. */
static int conv_prepare(struct smtp *s, struct rjob *j, struct scan *sc, char *chunk, int *conv)
{
  static const char head8[] = " does not support 8BITMIME and the message has 8-bit bytes in a header,"
                              " which cannot be converted (5.6.3)";
  static const char cannot[] = " does not support 8BITMIME or lines over 998 octets, and the message has"
                               " a part that cannot be converted (5.6.3)";
  int seven = !(s->ext & EXT_8BITMIME), r;
  size_t i;

  *conv = mime8_needed(sc->longest, sc->eight, !seven);
  if (!*conv) return 0;
  mime8_init(&mconv, seven);
  r = conv_pass(j, chunk, 0);
  if (r == MIME8_OK) {
    mime8_rewind(&mconv);
    sc->wire = 0;
    r = conv_pass(j, chunk, &sc->wire);
  }
  log_begin("qmail-remote", "convert");
  log_kv("ip", s->ip);
  log_kv("why", sc->longest > MIME8_LINE ? "long-lines" : "8bit-no-8bitmime");
  log_kv("result", r == MIME8_OK ? "ok" : r == 1 ? "unreadable" : r == MIME8_NOMEM ? "out of memory" : "cannot");
  log_end();
  if (r == MIME8_OK) { mime8_rewind(&mconv); return 0; }
  for (i = 0; i < j->nrcpt; i++) {
    if (r == MIME8_HEADER8) result_set(&j->res[i], 'D', SPAWN_TAG_MAIL, s->ip, head8, sizeof head8 - 1);
    else if (r == MIME8_CANNOT) result_set(&j->res[i], 'D', SPAWN_TAG_MAIL, s->ip, cannot, sizeof cannot - 1);
    else result_set(&j->res[i], 'Z', SPAWN_TAG_LOCAL, r == 1 ? "cannot read the message" : "out of memory", "", 0);
  }
  return -1;
}

int smtp_blast(str *out, const char *p, size_t n, int *sol, int *cr)
{
  size_t i, max;

  /* Each byte becomes at most 2 on the wire, plus a pending CR's 2. */
  if (size_mul(&max, n, 2) < 0 || size_add(&max, max, 2) < 0 || str_readyplus(out, max) < 0) return -1;
  for (i = 0; i < n; i++) {
    char c = p[i];
    if (*cr) {
      /* A CR ends a line in any case: before LF they are one CRLF. A lone
       * CR becomes CRLF too, and what follows it starts a new wire line,
       * so a '.' after it is stuffed: "x\r.\n" must never become the
       * end-of-data "x\r\n.\r\n" at the next hop (SMTP smuggling). */
      *cr = 0;
      out->s[out->len++] = '\r';
      out->s[out->len++] = '\n';
      *sol = 1;
      if (c == '\n') continue;
    }
    if (c == '\r') { *cr = 1; continue; }
    if (c == '\n') {
      out->s[out->len++] = '\r';
      out->s[out->len++] = '\n';
      *sol = 1;
      continue;
    }
    if (*sol && c == '.') out->s[out->len++] = '.';
    *sol = 0;
    out->s[out->len++] = c;
  }
  return 0;
}

int smtp_blast_end(str *out, int *sol, int *cr)
{
  /* A pending CR, or a last line without its LF, still ends in CRLF. */
  if ((*cr || !*sol) && str_cats(out, "\r\n") < 0) return -1;
  *cr = 0;
  *sol = 1;
  return str_cats(out, ".\r\n");
}

/* Sends the message and the final dot. 0, or -1 with s->err set (a read
 * error of the message sets local to 1). The dot goes out in the same
 * write as the last of the message: alone, it would wait under Nagle's
 * algorithm for the ACK of the previous segment, which the server delays
 * (40 ms on Linux) since it has nothing to answer before the dot. */
static int body(struct smtp *s, const struct rjob *j, unsigned long long wire, char *chunk, int conv,
                int *local)
{
  unsigned long long done = 0;
  int sol = 1, cr = 0;
  /* The whole message within timeoutreply plus its size at datarate. */
  long long deadline = (long long)mono_ms() + s->reply_ms + (long long)(wire / s->datarate * 1000 + wire % s->datarate * 1000 / s->datarate);
  const char *p = chunk;
  size_t n;

  *local = 0;
  for (;;) {
    size_t want = j->msglen - done > CHUNK ? CHUNK : (size_t)(j->msglen - done);
    ssize_t r = 0;
    s->cmd.len = 0;
    if (want) {
      r = pread(j->msgfd, chunk, want, j->msgoff + (off_t)done);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) { *local = 1; s->err = "cannot read the message"; return -1; }
      done += (unsigned long long)r;
    }
    n = (size_t)r;
    if (conv) {          /* the converted text instead (conv_prepare ran the scan) */
      mout.len = 0;
      if (mime8_feed(&mconv, chunk, n, &mout) != MIME8_OK ||
          (done == j->msglen && mime8_end(&mconv, &mout) != MIME8_OK)) {
        *local = 1; s->err = "converting the message failed"; return -1;
      }
      p = mout.s;
      n = mout.len;
    }
    if (n && smtp_blast(&s->cmd, p, n, &sol, &cr) < 0) { *local = 1; s->err = "out of memory"; return -1; }
    if (done == j->msglen && smtp_blast_end(&s->cmd, &sol, &cr) < 0) {
      *local = 1; s->err = "out of memory"; return -1;
    }
    if (send_by(s, deadline) < 0) return -1;
    if (done == j->msglen) return 0;
  }
}

int smtp_path_ok(const char *a)
{
  const unsigned char *p;

  for (p = (const unsigned char *)a; *p; p++)
    if (*p <= ' ' || *p == 127 || *p == '<' || *p == '>') return 0;
  return 1;
}

/* Appends to s->cmd; remembers a failure in *bad so that a command is
 * built with a straight sequence of calls and checked once. */
static void cat(struct smtp *s, const char *p, int *bad)
{
  if (str_cats(&s->cmd, p) < 0) *bad = 1;
}

/* 1 when j's DSN parameters go to this server (RFC 3461 5.2.2: only to
 * one that announced DSN). */
static int dsn_on(const struct smtp *s, const struct rjob *j) { return j->req && (s->ext & EXT_DSN); }

/* " NOTIFY=..." and " ORCPT=..." of recipient i, when it has them. */
static void rcpt_dsn(struct smtp *s, const struct rjob *j, size_t i, int *bad)
{
  static const char *const words[] = { "SUCCESS", "FAILURE", "DELAY", "NEVER" };
  const struct spawnrcpt *x;
  int k, first = 1;

  if (!dsn_on(s, j)) return;
  x = &j->req->rcpt[i];
  if (x->notify) {
    cat(s, " NOTIFY=", bad);
    for (k = 0; k < 4; k++)
      if (x->notify & (1u << k)) {
        if (!first) cat(s, ",", bad);
        cat(s, words[k], bad);
        first = 0;
      }
  }
  if (x->orcpt) {
    cat(s, " ORCPT=", bad);
    if (str_catb(&s->cmd, x->orcpt, x->orcptn) < 0) *bad = 1;
  }
}

/* "RCPT TO:<rcpt i>[ DSN parameters]\r\n" */
static void rcpt_line(struct smtp *s, const struct rjob *j, size_t i, int *bad)
{
  cat(s, "RCPT TO:<", bad);
  cat(s, j->rcpt[i], bad);
  cat(s, ">", bad);
  rcpt_dsn(s, j, i, bad);
  cat(s, "\r\n", bad);
}

static int mail_cmd(struct smtp *s, const struct rjob *j, unsigned long long wire, int eight)
{
  size_t i;
  int bad = 0;

  s->cmd.len = 0;
  /* remote_deliver refused such addresses: never let one through. */
  for (i = 0; i < j->nrcpt; i++)
    if (!smtp_path_ok(j->rcpt[i])) bad = 1;
  if (bad || !smtp_path_ok(j->sender)) { s->err = "address breaks the SMTP path"; s->code = -1; return -1; }
  cat(s, "MAIL FROM:<", &bad);
  cat(s, j->sender, &bad);
  cat(s, ">", &bad);
  if (s->ext & EXT_SIZE) {
    cat(s, " SIZE=", &bad);
    if (str_catu(&s->cmd, wire) < 0) bad = 1;
  }
  if (eight && (s->ext & EXT_8BITMIME)) cat(s, " BODY=8BITMIME", &bad);
  if (j->utf8 && (s->ext & EXT_SMTPUTF8)) cat(s, " SMTPUTF8", &bad);
  if (dsn_on(s, j) && (j->req->opts & QF_OPT_RET_FULL)) cat(s, " RET=FULL", &bad);
  if (dsn_on(s, j) && (j->req->opts & QF_OPT_RET_HDRS)) cat(s, " RET=HDRS", &bad);
  if (dsn_on(s, j) && j->req->envid) {
    cat(s, " ENVID=", &bad);
    if (str_catb(&s->cmd, j->req->envid, j->req->envidn) < 0) bad = 1;
  }
  cat(s, "\r\n", &bad);
  /* With PIPELINING, every RCPT goes in the same write (RFC 2920). */
  for (i = 0; (s->ext & EXT_PIPELINING) && i < j->nrcpt; i++) rcpt_line(s, j, i, &bad);
  if (bad) { s->err = "out of memory"; s->code = -1; return -1; }
  return 0;
}

static int rcpt_cmd(struct smtp *s, const struct rjob *j, size_t i)
{
  int bad = 0;
  s->cmd.len = 0;
  rcpt_line(s, j, i, &bad);
  if (bad) { s->err = "out of memory"; s->code = -1; return -1; }
  return send_cmd(s);
}

/* LMTP after the message: a reply for each accepted recipient, in RCPT
 * order, each its recipient's result. A failure to read one (or a 421)
 * defers that recipient and every later one; the earlier stand. */
static void lmtp_replies(struct smtp *s, struct rjob *j, const char *accepted)
{
  size_t i;
  int lost = 0;

  for (i = 0; i < j->nrcpt; i++) {
    if (!accepted[i]) continue;
    if (!lost && (get_reply_within(s, 2 * s->reply_ms) < 0 || s->code == 421)) lost = 1;
    if (lost) set_one(s, &j->res[i], 'Z', SPAWN_TAG_DATA, " after the message");
    else set_one(s, &j->res[i], is2xx(s) ? 'K' : failcode(s),
                 !is2xx(s) ? SPAWN_TAG_DATA : dsn_on(s, j) ? SPAWN_TAG_OK_DSN : SPAWN_TAG_OK, "");
  }
  s->state = lost ? STATE_DEAD : STATE_READY;
}

/* MAIL, RCPTs, DATA. Sets every result. */
static void transaction(struct smtp *s, struct rjob *j, char *chunk)
{
  struct scan sc;
  int local, conv;
  size_t i, ok = 0;
  char accepted[SPAWN_RCPTS];

  if (prescan(j, &sc, chunk) < 0) {
    for (i = 0; i < j->nrcpt; i++) result_set(&j->res[i], 'Z', SPAWN_TAG_LOCAL, "cannot read the message", "", 0);
    return;
  }
  /* A message flagged SMTPUTF8 needs it only for a non-ASCII envelope or
   * top header (RFC 6531 3.2, RFC 6532); otherwise it goes without, as
   * Postfix sends it, its 8-bit body left to 8BITMIME or conversion. */
  if (j->utf8 && !(s->ext & EXT_SMTPUTF8) && (envelope8(j) || sc.head8)) {
    static const char no8[] = " does not support SMTPUTF8, which this message needs (5.6.7)";
    for (i = 0; i < j->nrcpt; i++) result_set(&j->res[i], 'D', SPAWN_TAG_MAIL, s->ip, no8, sizeof no8 - 1);
    return;
  }
  if (conv_prepare(s, j, &sc, chunk, &conv) < 0) return;
  s->state = STATE_DEAD;      /* until the server is known to be ready again */
  s->accepted = 0;
  if (mail_cmd(s, j, sc.wire, sc.eight) < 0 || send_cmd(s) < 0 || get_reply(s) < 0) {
    set_all(s, j, 'Z', SPAWN_TAG_MAIL, " MAIL");
    return;
  }
  if (!is2xx(s)) {
    set_all(s, j, failcode(s), SPAWN_TAG_MAIL, "");
    /* Pipelined RCPTs still get their (negative) replies; read them so
     * that QUIT's reply is QUIT's. */
    for (i = 0; (s->ext & EXT_PIPELINING) && s->code != 421 && i < j->nrcpt; i++)
      if (get_reply(s) < 0) break;
    if (s->code >= 0 && s->code != 421) s->state = STATE_RSET;
    return;
  }
  for (i = 0; i < j->nrcpt; i++) {
    if (!(s->ext & EXT_PIPELINING) && rcpt_cmd(s, j, i) < 0) break;
    if (get_reply(s) < 0 || s->code == 421) break;
    accepted[i] = (char)is2xx(s);
    if (accepted[i]) s->accepted = ++ok;
    else set_one(s, &j->res[i], failcode(s), SPAWN_TAG_RCPT, "");
  }
  if (i < j->nrcpt) {   /* lost the connection or 421: nothing is final */
    set_all(s, j, 'Z', SPAWN_TAG_RCPT, " RCPT");
    return;
  }
  if (!ok) { s->state = STATE_RSET; return; }
  s->cmd.len = 0;
  if (str_cats(&s->cmd, "DATA\r\n") < 0) { s->code = -1; s->err = "out of memory"; }
  if (s->code < 0 || send_cmd(s) < 0 || get_reply(s) < 0 || s->code == 421) {
    set_all(s, j, 'Z', SPAWN_TAG_DATA, " DATA");
    return;
  }
  if (s->code != 354) {
    for (i = 0; i < j->nrcpt; i++)
      if (accepted[i]) set_one(s, &j->res[i], failcode(s), SPAWN_TAG_DATA, "");
    s->state = STATE_RSET;
    return;
  }
  if (body(s, j, sc.wire, chunk, conv, &local) < 0) {
    if (local)
      for (i = 0; i < j->nrcpt; i++) result_set(&j->res[i], 'Z', SPAWN_TAG_LOCAL, s->err, "", 0);
    else
      set_all(s, j, 'Z', SPAWN_TAG_DATA, " sending the message");
    return;
  }
  if (s->lmtp) { lmtp_replies(s, j, accepted); return; }
  if (get_reply_within(s, 2 * s->reply_ms) < 0 || s->code == 421) {
    set_all(s, j, 'Z', SPAWN_TAG_DATA, " after the message");
    return;
  }
  for (i = 0; i < j->nrcpt; i++)
    if (accepted[i]) set_one(s, &j->res[i], is2xx(s) ? 'K' : failcode(s),
                             !is2xx(s) ? SPAWN_TAG_DATA : dsn_on(s, j) ? SPAWN_TAG_OK_DSN : SPAWN_TAG_OK, "");
  s->state = STATE_READY;     /* the final reply ends the transaction, whatever it says */
}

/* Politeness only: the results are already out, so a server slow to say
 * goodbye holds this process for at most QUIT_WAIT seconds. */
#define QUIT_WAIT 10
static void quit(struct smtp *s)
{
  if (s->broken) return;
  s->cmd.len = 0;
  if (s->timeout > QUIT_WAIT) s->timeout = QUIT_WAIT;
  if (s->reply_ms > QUIT_WAIT * 1000) s->reply_ms = QUIT_WAIT * 1000;
  if (str_cats(&s->cmd, "QUIT\r\n") < 0 || send_cmd(s) < 0) return;
  if (s->in.timeout > QUIT_WAIT) s->in.timeout = QUIT_WAIT;
  get_reply(s);
}

/* STARTTLS as the policy says: 0 to go on (with TLS, or without when
 * the policy allows), -1 to give up this host (s->err set when code is
 * -1; a polite QUIT is still possible when *polite). */
static int starttls(struct smtp *s, const char *host, int literal, int policy, int *polite)
{
  const char *err = 0;

  *polite = 1;
  if (s->tls.fd >= 0) return 0;   /* implicit TLS */
  if (policy == TLS_NONE) { metrics_inc(MX_TLS_OUT + TLS_NONE * MO_N + MO_PLAIN); return 0; }
  if (!(s->ext & EXT_STARTTLS)) {
    if (policy == TLS_MAY) { metrics_inc(MX_TLS_OUT + TLS_MAY * MO_N + MO_PLAIN); return 0; }
    err = policy == TLS_VERIFY ? "TLS required (policy verify) but STARTTLS not offered"
        : policy == TLS_DANE ? "TLS required (DANE: the host has TLSA records) but STARTTLS not offered"
                               : "TLS required (policy encrypt) but STARTTLS not offered";
  }
  if (err) { s->code = -1; s->err = err; return -1; }
  s->cmd.len = 0;
  if (str_cats(&s->cmd, "STARTTLS\r\n") < 0) { s->code = -1; s->err = "out of memory"; return -1; }
  s->tlsfail = 1;
  if (send_cmd(s) < 0 || get_reply(s) < 0) { *polite = 0; return -1; }
  if (s->code != 220) return -1;
  /* Bytes after the 220 were sent in plaintext: an injection attempt. */
  if (buf_ready(&s->in)) { *polite = 0; s->code = -1; s->err = "data after the 220 to STARTTLS"; return -1; }
  *polite = 0;                 /* from here on the socket speaks TLS or nothing */
  if (tls_client_start(s->rfd, s->ip, host, literal, policy, s->timeout, (int)(s->reply_ms / 1000),
                       &s->tls, &err) < 0) {
    s->code = -1;
    s->err = err;
    return -1;
  }
  s->rfd = s->wfd = s->tls.fd;
  buf_init(&s->in, s->rfd, s->inx, sizeof s->inx);
  s->in.timeout = s->timeout;
  *polite = 1;
  if (hello(s) < 0) return -1;
  s->tlsfail = 0;
  return 0;
}

/* Sends s->cmd (which holds credentials) and wipes it. */
static int send_secret(struct smtp *s)
{
  int r = send_cmd(s);
  str_wipe(&s->cmd);
  return r;
}

/* s->cmd = prefix base64(p[0..n)) CRLF; 0 or -1 (s->err set). */
static int b64_cmd(struct smtp *s, const char *prefix, const void *p, size_t n)
{
  str b = STR_INIT;
  int bad = base64_encode(&b, p, n) < 0;

  s->cmd.len = 0;
  if (!bad && (str_cats(&s->cmd, prefix) < 0 || str_catb(&s->cmd, b.s, b.len) < 0 ||
               str_cats(&s->cmd, "\r\n") < 0)) bad = 1;
  str_wipe(&b);
  if (bad) { s->code = -1; s->err = "out of memory"; return -1; }
  return 0;
}

/* AUTH PLAIN with an initial response: "\0user\0password". */
static int auth_plain(struct smtp *s, const struct sessopts *o)
{
  str t = STR_INIT;
  int r = -1;

  if (str_catc(&t, 0) == 0 && str_cats(&t, o->user) == 0 && str_catc(&t, 0) == 0 &&
      str_cats(&t, o->pass) == 0)
    r = b64_cmd(s, "AUTH PLAIN ", t.s, t.len);
  else { s->code = -1; s->err = "out of memory"; }
  str_wipe(&t);
  if (r < 0 || send_secret(s) < 0) return -1;
  return get_reply(s);
}

/* AUTH LOGIN: the user and the password, each after a 334. */
static int auth_login(struct smtp *s, const struct sessopts *o)
{
  s->cmd.len = 0;
  if (str_cats(&s->cmd, "AUTH LOGIN\r\n") < 0) { s->code = -1; s->err = "out of memory"; return -1; }
  if (send_cmd(s) < 0 || get_reply(s) < 0 || s->code != 334) return s->code;
  if (b64_cmd(s, "", o->user, strlen(o->user)) < 0 || send_cmd(s) < 0 || get_reply(s) < 0 ||
      s->code != 334) return s->code;
  if (b64_cmd(s, "", o->pass, strlen(o->pass)) < 0 || send_secret(s) < 0) return -1;
  return get_reply(s);
}

/* AUTH before MAIL. 0 authenticated (or nothing to do), -1 failed: the
 * reason in s (code -1 with s->err for a local refusal or an I/O error;
 * *alive says whether the connection can still say QUIT). */
static int authenticate(struct smtp *s, const struct sessopts *o, const char *host, int *alive)
{
  const char *mech = "none", *err = 0;

  if (!o->user) return 0;
  if (s->tls.fd < 0 && !o->plainauth) err = "credentials are never sent without TLS (route has no auth=plain-ok)";
  else if (!(s->ext & (EXT_AUTH_PLAIN | EXT_AUTH_LOGIN)))
    err = s->ext & EXT_AUTH ? "AUTH offered without PLAIN or LOGIN" : "AUTH not offered";
  *alive = 1;
  if (err) {
    s->code = -1;
    s->err = err;
  } else if (s->ext & EXT_AUTH_PLAIN) {
    mech = "PLAIN";
    auth_plain(s, o);
  } else {
    mech = "LOGIN";
    auth_login(s, o);
  }
  if (!err && s->code < 0) *alive = 0;
  log_begin("qmail-remote", "auth");
  log_kv("ip", s->ip);
  log_kv("host", host);
  log_kv("user", o->user);
  log_kv("mech", mech);
  log_kv("tls", s->tls.fd >= 0 ? "yes" : "no");
  log_kv("result", s->code == 235 ? "ok" : "failed");
  if (s->code < 0) log_kv("reason", s->err);
  else if (s->code != 235) log_kb("reply", s->reply.s, s->reply.len);
  log_end();
  return s->code == 235 ? 0 : -1;
}

/* TLS right after connecting (RFC 8314): the greeting comes over it. */
static int implicit_tls(struct smtp *s, const char *host, int literal, int policy)
{
  const char *err = 0;

  if (tls_client_start(s->rfd, s->ip, host, literal, policy, s->timeout, (int)(s->reply_ms / 1000),
                            &s->tls, &err) == 0) {
    s->rfd = s->wfd = s->tls.fd;
    buf_init(&s->in, s->rfd, s->inx, sizeof s->inx);
    s->in.timeout = s->timeout;
    return 0;
  }
  s->code = -1;
  s->err = err;
  return -1;
}

static char chunk[CHUNK];
static struct smtp conn;    /* the session; kept between deliveries when kept is 1 */
static int kept;

static void begin(struct smtp *s, int fd, const char *ip, const struct rconf *c)
{
  size_t n = strnlen(ip, sizeof s->ip - 1);

  memset(s, 0, sizeof *s);
  s->fd = s->rfd = s->wfd = fd;
  s->tls.fd = s->tls.pid = -1;
  memcpy(s->ip, ip, n);
  s->c = c;
  s->timeout = (int)c->timeoutremote;
  s->reply_ms = (long long)c->timeoutreply * 1000;
  s->datarate = c->datarate;
  buf_init(&s->in, s->rfd, s->inx, sizeof s->inx);
  s->in.timeout = s->timeout;
  s->born = (long long)mono_ms();
}

/* Closes the connection and frees (wiping) what the session held. */
static void end(struct smtp *s)
{
  tls_client_end(&s->tls, s->broken);
  close(s->fd);
  s->fd = -1;
  str_free(&s->reply);
  str_free(&s->line);
  str_wipe(&s->cmd);
  str_wipe(&s->key);
  kept = 0;
}

/* After a transaction: kept for the next one under o's key, if the server
 * is ready for it and the connection young enough; else QUIT. */
static void keep_or_quit(struct smtp *s, const struct sessopts *o)
{
  s->uses++;
  if (o->key && s->state != STATE_DEAD && s->uses < KEEP_USES && (long long)mono_ms() - s->born < KEEP_AGE_MS &&
      (s->key.len || str_catb(&s->key, o->key, o->keylen) == 0)) {
    s->c = 0;
    s->idle_since = (long long)mono_ms();
    kept = 1;
    return;
  }
  quit(s);
  end(s);
}

int smtp_session_opts(int fd, const char *ip, const char *host, int literal,
                      const struct sessopts *o, const struct rconf *c, struct rjob *j, str *why)
{
  struct smtp *s = &conn;
  int polite = 1, alive = 1;

  smtp_drop(1);
  begin(s, fd, ip, c);
  s->lmtp = o->lmtp;
  if (o->implicit && implicit_tls(s, host, literal, o->policy) < 0) {
    if (what(s, " TLS", why) < 0) why->len = 0;
    end(s);
    return SMTP_NEXTHOST;
  }
  if (greeting(s) < 0 || hello(s) < 0 || starttls(s, host, literal, o->policy, &polite) < 0) {
    int code = s->code, notls = s->tlsfail && o->policy == TLS_MAY;
    /* "TLS" in the text: qmail-send counts the deferral as TLS's. */
    if (what(s, s->tlsfail ? " TLS handshake" : " handshake", why) < 0) why->len = 0;
    if (code < 0 && polite && s->tls.fd < 0) s->code = 0;   /* a policy refusal: still say QUIT */
    if (s->code >= 0 && polite) quit(s);
    end(s);
    return notls ? SMTP_NOTLS : SMTP_NEXTHOST;
  }
  if (authenticate(s, o, host, &alive) < 0) {
    set_all(s, j, 'Z', SPAWN_TAG_AUTH, " AUTH");
    j->done(j);
    if (alive) quit(s);
    end(s);
    return SMTP_FINAL;
  }
  transaction(s, j, chunk);
  j->done(j);
  keep_or_quit(s, o);
  return SMTP_FINAL;
}

/* A kept connection the server has closed, or spoken on unasked (a 421
 * before closing, or garbage), is readable: the next reply read would not
 * be the answer to our next command. */
static int readable(const struct smtp *s)
{
  struct pollfd p = { s->rfd, POLLIN, 0 };

  return buf_ready(&s->in) || poll(&p, 1, 0) != 0;
}

static int rset(struct smtp *s)
{
  s->cmd.len = 0;
  if (str_cats(&s->cmd, "RSET\r\n") < 0) { s->code = -1; s->err = "out of memory"; return -1; }
  if (send_cmd(s) < 0 || get_reply(s) < 0) return -1;
  return is2xx(s) ? 0 : -1;
}

int smtp_reuse(const struct sessopts *o, const struct rconf *c, struct rjob *j)
{
  struct smtp *s = &conn;
  const char *stale = 0;

  if (!kept) return SMTP_NEXTHOST;
  if (!o->key || s->key.len != o->keylen || memcmp(s->key.s, o->key, o->keylen)) {
    smtp_drop(1);
    return SMTP_NEXTHOST;
  }
  kept = 0;
  s->c = c;
  s->timeout = s->in.timeout = (int)c->timeoutremote;
  s->reply_ms = (long long)c->timeoutreply * 1000;
  s->datarate = c->datarate;
  if (readable(s)) stale = "closed by the server, or spoken on while idle";
  else if (s->state == STATE_RSET && rset(s) < 0) stale = s->code < 0 ? s->err : "RSET refused";
  else {
    transaction(s, j, chunk);
    if (s->state == STATE_DEAD && !s->accepted) stale = s->code < 0 ? s->err : "421 before any recipient";
  }
  if (stale) {
    log_begin("qmail-remote", "reuse_failed");
    log_kv("ip", s->ip);
    log_kv("reason", stale);
    log_end();
    end(s);
    return SMTP_NEXTHOST;
  }
  j->done(j);
  keep_or_quit(s, o);
  return SMTP_FINAL;
}

void smtp_drop(int polite)
{
  if (!kept) return;
  if (polite) quit(&conn);
  end(&conn);
}

int smtp_kept(int *fd)
{
  long long left;

  *fd = -1;
  if (!kept) return -1;
  *fd = conn.rfd;
  left = conn.idle_since + SMTP_KEEP_IDLE_MS - (long long)mono_ms();
  return left < 0 ? 0 : left > SMTP_KEEP_IDLE_MS ? SMTP_KEEP_IDLE_MS : (int)left;
}
