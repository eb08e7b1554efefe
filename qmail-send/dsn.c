/* Permanent failures and the deliveries that asked for a notice: their
 * records in queue/bounce/<qid>, and the RFC 3464 delivery status
 * notification built from them once a message is final; delay notices.
 *
 * A record is one line, "\n<i>\0<kind>\0<rcpt>\0<text>\n": the recipient's
 * index in the queue file, its kind ('L', 'R': failed on the local or
 * remote channel; 'S' delivered, 'Y' relayed, both asked for by
 * NOTIFY=SUCCESS; 'W' a delay notice went), its address (queue addresses
 * hold no NUL, CR or LF) and the text with control bytes made spaces.
 * The leading "\n" ends any torn record a crash left behind, so a torn
 * record spoils only itself. A recipient may have several records (a crash
 * between the fsync of its record and the mark of its state byte repeats
 * the attempt); the last one wins, 'W' aside.
 *
 * Which recipients a report names follows their NOTIFY (RFC 3461), kept
 * in the queue file: none means qmail's behaviour, failures only.
 *
 * The third part of the report is text/rfc822-headers, the original
 * header section (at most DSN_HEAD_MAX bytes, cut at a line end). With
 * control/bouncemaxbytes N > 0 it is message/rfc822 instead: the headers
 * and the first N bytes of the body (at most DSN_BODY_MAX). The default is
 * 0, headers only: a report never doubles the traffic of a large message,
 * and the headers are what a sender needs to identify it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "atomic.h"
#include "buf.h"
#include "date.h"
#include "log.h"
#include "metrics.h"
#include "qq.h"
#include "send.h"

#define DSN_HEAD_MAX (64u * 1024)
#define DSN_BODY_MAX (16ull * 1024 * 1024)
#define DSN_RET_FULL (64ull * 1024)     /* body quoted for RET=FULL at least */
#define BOUNCE_FILE_MAX (256u * 1024 * 1024)
#define INJECT_TIMEOUT 120
#define FOLD 76

static int bounce_path(str *p, const char *qid)
{
  p->len = 0;
  return str_cats(p, "queue/bounce/") < 0 || str_cats(p, qid) < 0 || str_0(p) < 0 ? -1 : 0;
}

static int notice_append(const char *qid, size_t i, char kind, const char *rcpt, size_t rn,
                         const char *text, size_t tn);

int bounce_append(const char *qid, size_t i, int ch, const char *rcpt, size_t rn,
                  const char *text, size_t tn)
{
  return notice_append(qid, i, ch == CH_LOCAL ? 'L' : 'R', rcpt, rn, text, tn);
}

int success_append(const char *qid, size_t i, int ch, const char *rcpt, size_t rn,
                   const char *text, size_t tn)
{
  return notice_append(qid, i, ch == CH_LOCAL ? 'S' : 'Y', rcpt, rn, text, tn);
}

static int notice_append(const char *qid, size_t i, char kind, const char *rcpt, size_t rn,
                         const char *text, size_t tn)
{
  str p = STR_INIT, r = STR_INIT;
  int fd = -1, created = 0, ret = -1, e;
  size_t k;

  if (bounce_path(&p, qid) < 0) goto out;
  if (str_catc(&r, '\n') < 0 || str_catu(&r, i) < 0 || str_catc(&r, 0) < 0 ||
      str_catc(&r, kind) < 0 || str_catc(&r, 0) < 0 ||
      str_catb(&r, rcpt, rn) < 0 || str_catc(&r, 0) < 0)
    goto out;
  k = r.len;
  if (str_catb(&r, text, tn) < 0 || str_catc(&r, '\n') < 0) goto out;
  for (; k < r.len - 1; k++)
    if ((unsigned char)r.s[k] < 32 || r.s[k] == 127) r.s[k] = ' ';
  fd = open(p.s, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    fd = open(p.s, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    created = 1;
  }
  if (fd < 0) goto out;
  if (fd_write_all(fd, r.s, r.len, 0) < 0 || fsync(fd) < 0) goto out;
  /* A new name must be durable too before the state byte says F. */
  if (created && fsync_dir("queue/bounce") < 0) goto out;
  ret = 0;
out:
  e = errno;
  if (fd >= 0) close(fd);
  str_free(&p);
  str_free(&r);
  errno = e;
  return ret;
}

void dsn_parse(const char *p, size_t n, struct dsn_fail *f, size_t nrcpt)
{
  size_t i = 0;

  while (i < n) {
    const char *l = p + i, *nl = memchr(l, '\n', n - i), *z[3], *q;
    size_t len = nl ? (size_t)(nl - l) : n - i, k = 0, d = 0;
    unsigned long long idx = 0;

    i += len + 1;
    if (!nl) break;   /* a torn last record */
    for (q = l; q < l + len && k < 4; q++) if (!*q) { if (k < 3) z[k] = q; k++; }
    if (k != 3) continue;
    while (l + d < z[0] && l[d] >= '0' && l[d] <= '9') d++;
    if (!d || l + d != z[0] || d > 9) continue;
    while (d--) idx = idx * 10 + (unsigned)(*l++ - '0');
    if (z[1] != z[0] + 2 || !memchr("LRSYW", z[0][1], 5) || z[2] == z[1] + 1) continue;
    if (idx >= nrcpt) continue;
    if (z[0][1] == 'W') { f[idx].warned = 1; continue; }
    f[idx].ch = z[0][1] == 'L' || z[0][1] == 'S' ? CH_LOCAL : CH_REMOTE;
    f[idx].action = z[0][1] == 'S' ? DSN_DELIVERED : z[0][1] == 'Y' ? DSN_RELAYED : DSN_FAILED;
    f[idx].rcpt = z[1] + 1;
    f[idx].rn = (size_t)(z[2] - z[1] - 1);
    f[idx].text = z[2] + 1;
    f[idx].tn = (size_t)(nl - z[2] - 1);
  }
}

static size_t num(const char *s, size_t n, size_t max)
{
  size_t i = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  return i > max ? 0 : i;
}

/* The length of the enhanced code (RFC 3463, class 2, 4 or 5) t starts
 * with, ended by the text's end, a space or punctuation; else 0. */
static size_t enh(const char *t, size_t n)
{
  size_t a, b, k;

  if (n < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.') return 0;
  a = num(t + 2, n - 2, 3);
  if (!a || 2 + a >= n || t[2 + a] != '.') return 0;
  b = num(t + 3 + a, n - 3 - a, 3);
  k = 3 + a + b;
  if (!b || (k < n && t[k] != ' ' && t[k] != ';' && t[k] != ')' && t[k] != ',')) return 0;
  return k;
}

static void setcode(char out[16], const char *t, size_t k, char cls)
{
  memcpy(out, t, k);
  out[k] = 0;
  out[0] = cls;
}

void dsn_status(const char *t, size_t n, char out[16])
{
  size_t k;

  memcpy(out, "5.0.0", 6);
  /* An SMTP reply code first, as in "550 5.1.1 unknown user". */
  if (n >= 4 && num(t, n, 3) == 3 && (t[3] == ' ' || t[3] == '-')) { t += 4; n -= 4; }
  if ((k = enh(t, n))) setcode(out, t, k, '5');
}

/* A reply "ddd" alone or followed by ' ' or '-', of class 2, 4 or 5. */
static int reply_code(const char *t, size_t n)
{
  return n >= 3 && num(t, n, 3) == 3 && (t[0] == '2' || t[0] == '4' || t[0] == '5') &&
         (n == 3 || t[3] == ' ' || t[3] == '-');
}

void dsn_why(const char *t, size_t n, int ch, struct dsn_why *w)
{
  static const char said[] = " said: ";
  const size_t xl = sizeof DSN_EXPIRED - 1;
  int expired = n >= xl && !memcmp(t, DSN_EXPIRED, xl);
  const char *r = 0, *b;
  size_t tag = 0, k, bn, i;

  if (expired) { t += xl; n -= xl; }
  w->type = "X-qmail";
  w->text = t;
  w->tn = n;
  memcpy(w->status, "5.0.0", 6);
  while (tag < n && t[tag] >= 'a' && t[tag] <= 'z') tag++;
  tag = tag && tag + 1 < n && t[tag] == ':' && t[tag + 1] == ' ' ? tag + 2 : 0;
  if (ch == CH_REMOTE && tag) r = memmem(t + tag, n - tag, said, sizeof said - 1);
  if (r) r += sizeof said - 1;
  else if (ch == CH_REMOTE) r = t + tag;   /* a bare reply */
  if (r) {
    const char *rep = r;
    size_t rn = n - (size_t)(rep - t);
    if (reply_code(rep, rn)) {
      w->type = "smtp";
      w->text = rep;
      w->tn = rn;
      w->status[0] = rep[0];
      /* The enhanced code counts only with the reply's class. */
      if (rn > 4 && (k = enh(rep + 4, rn - 4)) && rep[4] == rep[0]) setcode(w->status, rep + 4, k, rep[0]);
    }
  }
  if (w->type[0] != 's') {
    /* "5.1.1 ..." after the tag, or "... (5.1.10, RFC 7505)". */
    b = t + tag;
    bn = n - tag;
    if ((k = enh(b, bn))) setcode(w->status, b, k, '5');
    else
      for (i = 0; i + 1 < bn; i++)
        if (b[i] == '(' && (k = enh(b + i + 1, bn - i - 1))) { setcode(w->status, b + i + 1, k, '5'); break; }
  }
  if (expired) memcpy(w->status, "4.4.7", 6);
}

static int ascii(const char *s, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++) if ((unsigned char)s[i] >= 128) return 0;
  return 1;
}

static int catdate(str *s, unsigned long long t)
{
  char d[DATE822_MAX];
  return str_catb(s, d, date822(d, (long long)t));
}

/* Appends t, folded at spaces so that no line passes FOLD columns where a
 * space allows it (col: the column it starts at). A word too long for a
 * header line (over 900 bytes) is broken. Folding inserts "\n" before an
 * existing space, so unfolding restores t. */
static int catfold(str *s, const char *t, size_t n, size_t col)
{
  size_t i = 0;

  while (i < n) {
    size_t w = 1;
    while (i + w < n && t[i + w] != ' ') w++;
    if (w > 900) w = 900;
    if (t[i] == ' ' && col + w > FOLD && col > 1) {
      if (str_catc(s, '\n') < 0) return -1;
      col = 0;
    } else if (t[i] != ' ' && col + w > 998) {
      if (str_cats(s, "\n ") < 0) return -1;
      col = 1;
    }
    if (str_catb(s, t + i, w) < 0) return -1;
    col += w;
    i += w;
  }
  return 0;
}

static int contains(const str *s, const char *pat, size_t pn, const char *orig, size_t on,
                    const struct dsn_fail *f, size_t nf)
{
  size_t k;
  /* memmem wants non-NULL pointers even for empty ranges. */
  if ((on && memmem(orig, on, pat, pn)) || (s->len && memmem(s->s, s->len, pat, pn))) return 1;
  for (k = 0; k < nf; k++)
    if ((f[k].tn && memmem(f[k].text, f[k].tn, pat, pn)) ||
        (f[k].rn && memmem(f[k].rcpt, f[k].rn, pat, pn)))
      return 1;
  return 0;
}

static const char *const act_name[] = { "failed", "delivered", "relayed", "delayed" };

/* The per-recipient fields of f (RFC 3464 2.3, RFC 6533 for UTF-8). */
static int cat_rcpt(str *out, const struct dsn_fail *f, str *tmp)
{
  struct dsn_why w;
  size_t col;

  dsn_why(f->text, f->tn, f->ch, &w);
  if (f->action == DSN_DELAYED) memcpy(w.status, "4.0.0", 6);
  else if (f->action != DSN_FAILED && w.status[0] != '2') memcpy(w.status, "2.0.0", 6);
  if (str_catc(out, '\n') < 0) return -1;
  if (f->orcpt) {
    const char *semi = memchr(f->orcpt, ';', f->orn);
    size_t tn = semi ? (size_t)(semi - f->orcpt) : 0;
    tmp->len = 0;
    if (xtext_decode(tmp, f->orcpt + tn + 1, f->orn - tn - 1) < 0 ||
        str_cats(out, "Original-Recipient: ") < 0 || str_catb(out, f->orcpt, tn + 1) < 0 ||
        str_catb(out, tmp->s, tmp->len) < 0 || str_catc(out, '\n') < 0)
      return -1;
  }
  if (str_cats(out, "Final-Recipient: ") < 0 ||
      str_cats(out, ascii(f->rcpt, f->rn) ? "rfc822; " : "utf-8; ") < 0 ||
      str_catb(out, f->rcpt, f->rn) < 0 ||
      str_cats(out, "\nAction: ") < 0 || str_cats(out, act_name[f->action]) < 0 ||
      str_cats(out, "\nStatus: ") < 0 || str_cats(out, w.status) < 0 || str_catc(out, '\n') < 0)
    return -1;
  if (f->action == DSN_DELAYED)
    return str_cats(out, "Will-Retry-Until: ") < 0 || catdate(out, f->until) < 0 ||
           str_catc(out, '\n') < 0 ? -1 : 0;
  /* A delivery's text is no diagnosis, except the next hop's reply. */
  if (f->action != DSN_FAILED && w.type[0] != 's') return 0;
  col = strlen("Diagnostic-Code: ; ") + strlen(w.type);
  return str_cats(out, "Diagnostic-Code: ") < 0 || str_cats(out, w.type) < 0 ||
         str_cats(out, "; ") < 0 || catfold(out, w.text, w.tn, col) < 0 || str_catc(out, '\n') < 0 ? -1 : 0;
}

/* Part 1's paragraph for the recipients of action a, if any. */
static int cat_people(str *out, const struct dsn_fail *f, size_t nf, int a)
{
  static const char *const intro[] = {
    "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
    "This is a permanent error; I've given up. Sorry it didn't work out.\n\n",
    "Your message was delivered to the following addresses, as you asked to be told.\n\n",
    "Your message was passed on to the following addresses. The next hop does not\n"
    "report deliveries, so this is the last notice you will get about them.\n\n",
    "Your message has not been delivered yet to the following addresses. I'm still\n"
    "trying; this is only a warning, you need not send it again.\n\n" };
  size_t k, n = 0;

  for (k = 0; k < nf; k++) if (f[k].action == a) n++;
  if (!n) return 0;
  if (str_cats(out, intro[a]) < 0) return -1;
  for (k = 0; k < nf; k++)
    if (f[k].action == a &&
        (str_catc(out, '<') < 0 || str_catb(out, f[k].rcpt, f[k].rn) < 0 ||
         str_cats(out, ">:\n") < 0 || catfold(out, f[k].text, f[k].tn, 0) < 0 ||
         str_cats(out, f[k].tn ? "\n\n" : "\n") < 0))
      return -1;
  return 0;
}

int dsn_build(str *out, const struct dsn_cfg *c, const char *qid, const char *to,
              unsigned long long birth, unsigned long long now,
              const struct dsn_fail *f, size_t nf, const char *envid, size_t en,
              const char *orig, size_t on, int withbody)
{
  static const char hex[] = "0123456789abcdef";
  unsigned char rnd[8] = { 0 };
  str b = STR_INIT, tmp = STR_INIT;
  size_t k, nfail = 0, ndelay = 0;
  int r = -1, global = 0;

  out->len = 0;
  /* An unpredictable boundary, and checked: no part may contain it. */
  do {
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
      rnd[0] ^= (unsigned char)now;
      rnd[1]++;
    }
    b.len = 0;
    if (str_cats(&b, "--=_") < 0 || str_cats(&b, qid) < 0 || str_catc(&b, '_') < 0) goto out;
    for (k = 0; k < sizeof rnd; k++)
      if (str_catc(&b, hex[rnd[k] >> 4]) < 0 || str_catc(&b, hex[rnd[k] & 15]) < 0) goto out;
  } while (contains(out, b.s, b.len, orig, on, f, nf));

  for (k = 0; k < nf; k++) if (f[k].action == DSN_FAILED) nfail++;
  for (k = 0; k < nf; k++) if (f[k].action == DSN_DELAYED) ndelay++;
  if (str_cats(out, "Date: ") < 0 || catdate(out, now) < 0 ||
      str_cats(out, "\nFrom: ") < 0 || str_cats(out, c->bouncefrom) < 0 ||
      str_catc(out, '@') < 0 || str_cats(out, c->bouncehost) < 0 ||
      str_cats(out, "\nTo: ") < 0 || str_cats(out, to) < 0 ||
      str_cats(out, nfail == nf ? "\nSubject: failure notice" : ndelay == nf ? "\nSubject: delivery delayed"
                    : !nfail ? "\nSubject: delivery notice" : "\nSubject: delivery status notification") < 0 ||
      str_cats(out, "\nMessage-ID: <") < 0 ||
      str_cats(out, qid) < 0 || str_cats(out, ".dsn@") < 0 || str_cats(out, c->bouncehost) < 0 ||
      str_cats(out, ">\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n"
                    "Content-Type: multipart/report; report-type=delivery-status;\n"
                    " boundary=\"") < 0 ||
      str_catb(out, b.s + 2, b.len - 2) < 0 ||
      str_cats(out, "\"\n\nThis is a delivery status notification (RFC 3464) in MIME format.\n\n") < 0)
    goto out;

  /* 1: for people. */
  if (str_catb(out, b.s, b.len) < 0 ||
      str_cats(out, "\nContent-Type: text/plain; charset=utf-8\n"
                    "Content-Transfer-Encoding: 8bit\n\n"
                    "Hi. This is the qmail-send program at ") < 0 ||
      str_cats(out, c->bouncehost) < 0 || str_cats(out, ".\n") < 0 ||
      cat_people(out, f, nf, DSN_FAILED) < 0 || cat_people(out, f, nf, DSN_DELIVERED) < 0 ||
      cat_people(out, f, nf, DSN_RELAYED) < 0 || cat_people(out, f, nf, DSN_DELAYED) < 0)
    goto out;

  /* 2: for programs; message/global-delivery-status (RFC 6533) when a
   * field would hold UTF-8, which message/delivery-status may not. */
  for (k = 0; k < nf && !global; k++) {
    struct dsn_why w;
    dsn_why(f[k].text, f[k].tn, f[k].ch, &w);
    tmp.len = 0;
    if (f[k].orcpt && xtext_decode(&tmp, f[k].orcpt, f[k].orn) < 0) goto out;
    global = !ascii(f[k].rcpt, f[k].rn) || !ascii(w.text, w.tn) || !ascii(tmp.s, tmp.len);
  }
  if (str_catb(out, b.s, b.len) < 0 ||
      str_cats(out, global ? "\nContent-Type: message/global-delivery-status\n"
                           : "\nContent-Type: message/delivery-status\n") < 0)
    goto out;
  /* ENVID decodes to printable ASCII (dsnparam.h). */
  tmp.len = 0;
  if (envid && (xtext_decode(&tmp, envid, en) < 0 || str_cats(out, "\nOriginal-Envelope-Id: ") < 0 ||
                str_catb(out, tmp.s, tmp.len) < 0))
    goto out;
  if (str_cats(out, "\nReporting-MTA: dns; ") < 0 ||
      str_cats(out, c->me) < 0 || str_cats(out, "\nArrival-Date: ") < 0 ||
      catdate(out, birth) < 0 || str_catc(out, '\n') < 0)
    goto out;
  for (k = 0; k < nf; k++)
    if (cat_rcpt(out, f + k, &tmp) < 0) goto out;

  /* 3: what was sent. */
  if (str_catc(out, '\n') < 0 || str_catb(out, b.s, b.len) < 0 ||
      str_cats(out, !ascii(orig, on) ? (withbody ? "\nContent-Type: message/global\n\n"
                                                 : "\nContent-Type: message/global-headers\n\n")
                    : withbody ? "\nContent-Type: message/rfc822\n\n"
                               : "\nContent-Type: text/rfc822-headers\n\n") < 0 ||
      str_catb(out, orig, on) < 0 ||
      (on && orig[on - 1] != '\n' && str_catc(out, '\n') < 0) ||
      str_catc(out, '\n') < 0 || str_catb(out, b.s, b.len) < 0 || str_cats(out, "--\n") < 0)
    goto out;
  r = 0;
out:
  str_free(&b);
  str_free(&tmp);
  return r;
}


/* Cuts n to the last line end at or before max (0 if none). */
static size_t cut(const char *s, size_t n, size_t max)
{
  const char *nl;
  if (n <= max) return n;
  nl = memrchr(s, '\n', max);
  return nl ? (size_t)(nl - s) + 1 : 0;
}

/* The original's head: the header section (at most DSN_HEAD_MAX, cut at a
 * line end), and with maxbytes > 0 the blank line and the first maxbytes
 * of the body, cut at a line end. */
static int read_orig(int fd, const qf_env *e, unsigned long long maxbytes, str *o, int *withbody)
{
  unsigned long long body = maxbytes > DSN_BODY_MAX ? DSN_BODY_MAX : maxbytes;
  unsigned long long want = DSN_HEAD_MAX + 1 + body;
  size_t n = (size_t)(want < e->msg_len ? want : e->msg_len), h;
  const char *end;

  *withbody = maxbytes > 0;
  o->len = 0;
  if (str_ready(o, n + 1) < 0 || pread_all(fd, o->s, n, QF_HDR) < 0) return -1;
  if (n && o->s[0] == '\n') h = 0;
  else if ((end = memmem(o->s, n, "\n\n", 2))) h = (size_t)(end - o->s) + 1;
  else h = n == e->msg_len ? n : cut(o->s, n, n - 1);
  if (h > DSN_HEAD_MAX) { h = cut(o->s, h, DSN_HEAD_MAX); *withbody = 0; }
  o->len = h;
  if (*withbody && h < n) {
    size_t b = h + 1;   /* o->s[h] is the blank line */
    o->len = b + cut(o->s + b, n - b, (size_t)body);
  }
  return 0;
}

static int slurp_bounce(const char *qid, str *out)
{
  str p = STR_INIT;
  int r;

  out->len = 0;
  if (bounce_path(&p, qid) < 0) return -1;
  r = file_read(p.s, out, BOUNCE_FILE_MAX);
  str_free(&p);
  /* None: no records. Over the limit: the rest get default texts. */
  return r < 0 && errno != ENOENT && errno != EFBIG ? -1 : 0;
}

/* Runs qmail-queue (lib/qq.h; through the DKIM signer when installed, so
 * that a bounce from a domain with a key is signed) with the message and
 * one recipient; utf8:
 * with the SMTPUTF8 option. -1 with errno EINVAL when qmail-queue refuses
 * an address for good (12: not one RFC 5321 path), ENOSPC when it failed
 * to write (53) or create (64) and the queue's file system is short now
 * (its own log line says which), EIO for any other refusal. */
static int inject(const char *msg, size_t n, const char *sender, const char *rcpt, int utf8)
{
  int ok, broken, code;
  str env = STR_INIT;
  struct qq q;

  if (str_catc(&env, 'F') < 0 || str_cats(&env, sender) < 0 || str_catc(&env, 0) < 0 ||
      str_catc(&env, 'T') < 0 || str_cats(&env, rcpt) < 0 || str_catc(&env, 0) < 0 ||
      str_catc(&env, 0) < 0 || qq_open(&q, (utf8 ? QQ_UTF8 : 0) | QQ_SIGN) < 0) { str_free(&env); return -1; }
  /* EPIPE: qmail-queue stopped reading because it failed; its exit code
   * says why. Anything else (a timeout): it hangs, and is killed. */
  ok = fd_write_all(q.msg, msg, n, INJECT_TIMEOUT) == 0;
  broken = !ok && errno == EPIPE;
  close(q.msg);
  q.msg = -1;
  ok = ok && fd_write_all(q.env, env.s, env.len, INJECT_TIMEOUT) == 0;
  broken = broken || (!ok && errno == EPIPE);
  str_free(&env);
  if (!ok && !broken) kill(q.pid, SIGKILL);
  code = qq_wait(&q);
  if (code < 0 || (!ok && !broken)) return -1;
  if (code != 0 || broken) {
    errno = code == 12 ? EINVAL : qq_short(code, n) ? ENOSPC : EIO;
    return -1;
  }
  return 0;
}

int dsn_req_envid(str *req, const qf_env *e)
{
  return !e->envid ? 0 : str_catc(req, '/') < 0 || str_catb(req, e->envid, e->envid_len) < 0 ? -1 : 0;
}

int dsn_req_rcpt(str *req, const struct qf_rcpt *r)
{
  if (!r->notify && !r->orcpt) return 0;
  if (str_catc(req, '/') < 0 || str_catu(req, r->notify) < 0) return -1;
  return !r->orcpt ? 0 : str_catc(req, '/') < 0 || str_catb(req, r->orcpt, r->orcpt_len) < 0 ? -1 : 0;
}

/* 1 if recipient r is owed a notice: a failure it did not decline (a
 * NOTIFY without FAILURE), or a delivery it asked about (SUCCESS). */
static int owed(const struct qf_rcpt *r)
{
  if (r->state == QF_FAILED) return !r->notify || (r->notify & DSN_NOTIFY_FAILURE);
  return r->state == QF_DONE && (r->notify & DSN_NOTIFY_SUCCESS);
}

size_t dsn_owed(const qf_env *e)
{
  size_t i, n = 0;
  for (i = 0; i < e->nrcpt; i++) n += (size_t)owed(e->rcpt + i);
  return n;
}

/* 1 if pending recipient r of a message from sender (n bytes) wants a
 * delay notice: DELAY asked, or no NOTIFY at all (RFC 3461 4.1 leaves
 * that to the MTA; Postfix warns them too); never for the null sender. */
static int wants_delay(const struct qf_rcpt *r, size_t n)
{
  return r->state == QF_PENDING && n && (!r->notify || (r->notify & DSN_NOTIFY_DELAY));
}

/* The recipient of a notice: the envelope sender, or control/bounceto for
 * mail sent as control/rewritesender (compared without case). */
static int notice_to(str *to, const struct dsn_cfg *c, const qf_env *e)
{
  size_t rn = c->rewritesender ? strlen(c->rewritesender) : 0;
  to->len = 0;
  if (c->bounceto && *c->bounceto && rn && rn == e->sender_len && !strncasecmp(e->sender, c->rewritesender, rn))
    return str_cats(to, c->bounceto) < 0 || str_0(to) < 0 ? -1 : 0;
  return str_catb(to, e->sender, e->sender_len) < 0 || str_0(to) < 0 ? -1 : 0;
}

int dsn_delay(const struct dsn_cfg *c, const char *qid, int fd, const qf_env *e,
              unsigned long long now)
{
  str recs = STR_INIT, orig = STR_INIT, msg = STR_INIT, to = STR_INIT, w = STR_INIT;
  struct dsn_fail *f = 0;
  unsigned long long birth = qf_qid_birth(qid);
  size_t i, nf = 0;
  int withbody, r = -1, e2, fdw = -1;

  if (!c->delaywarn || now < birth + c->delaywarn) return 0;
  if (e->sender_len == 4 && !memcmp(e->sender, "#@[]", 4)) return 0;
  for (i = 0; i < e->nrcpt && !nf; i++) nf = (size_t)wants_delay(e->rcpt + i, e->sender_len);
  if (!nf) return 0;
  f = calloc(e->nrcpt, sizeof *f);
  if (!f) { errno = ENOMEM; goto out; }
  if (slurp_bounce(qid, &recs) < 0) goto out;
  dsn_parse(recs.s, recs.len, f, e->nrcpt);
  for (i = 0, nf = 0; i < e->nrcpt; i++) {
    const struct qf_rcpt *q = e->rcpt + i;
    if (!wants_delay(q, e->sender_len) || f[i].warned) continue;
    memset(f + nf, 0, sizeof *f);
    f[nf].rcpt = q->addr;
    f[nf].rn = q->len;
    f[nf].text = "";
    f[nf].action = DSN_DELAYED;
    f[nf].until = birth + c->lifetime;
    f[nf].orcpt = q->orcpt;
    f[nf].orn = q->orcpt_len;
    /* The 'W' record: this recipient is warned (dsn_parse). */
    if (str_catc(&w, '\n') < 0 || str_catu(&w, i) < 0 || str_catc(&w, 0) < 0 ||
        str_catc(&w, 'W') < 0 || str_catc(&w, 0) < 0 || str_catb(&w, q->addr, q->len) < 0 ||
        str_catc(&w, 0) < 0 || str_catc(&w, '\n') < 0)
      goto out;
    nf++;
  }
  if (!nf) { r = 0; goto out; }
  if (notice_to(&to, c, e) < 0) goto out;
  if (read_orig(fd, e, 0, &orig, &withbody) < 0) goto out;
  if (dsn_build(&msg, c, qid, to.s, birth, now, f, nf, e->envid, e->envid_len,
                orig.s, orig.len, withbody) < 0)
    goto out;
  if (inject(msg.s, msg.len, "", to.s, (e->opts & QF_OPT_UTF8) || !ascii(to.s, to.len)) < 0) goto out;
  /* After the injection: a crash in between repeats the warning rather
   * than losing it. */
  if (bounce_path(&recs, qid) < 0) goto out;
  fdw = open(recs.s, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fdw < 0 || fd_write_all(fdw, w.s, w.len, 0) < 0 || fsync(fdw) < 0 ||
      fsync_dir("queue/bounce") < 0)
    goto out;
  log_begin("qmail-send", "bounce");
  log_kv("qid", qid);
  log_kv("to", to.s);
  log_kv("type", "delay");
  log_ku("delayed", nf);
  log_ku("bytes", msg.len);
  log_end();
  r = 1;
out:
  e2 = errno;
  if (fdw >= 0) close(fdw);
  free(f);
  str_free(&recs);
  str_free(&orig);
  str_free(&msg);
  str_free(&to);
  str_free(&w);
  errno = e2;
  return r;
}

/* to = doublebounceto@doublebouncehost, NUL-terminated. 0 or -1. */
static int double_to(const struct dsn_cfg *c, str *to)
{
  to->len = 0;
  return str_cats(to, c->dbto) < 0 || str_catc(to, '@') < 0 || str_cats(to, c->dbhost) < 0 ||
         str_0(to) < 0 ? -1 : 0;
}

int dsn_send(const struct dsn_cfg *c, const char *qid, int fd, const qf_env *e,
             unsigned long long now)
{
  str recs = STR_INIT, orig = STR_INIT, msg = STR_INIT, to = STR_INIT;
  struct dsn_fail *f = 0;
  const char *envsender;
  size_t i, nf = 0, nfail = 0;
  unsigned long long maxbytes;
  int withbody, utf8, r = -1, e2;

  if (!dsn_owed(e)) return 0;
  if (e->sender_len == 4 && !memcmp(e->sender, "#@[]", 4)) {
    /* A failed double bounce: reported in the log, never bounced again. */
    for (i = 0; i < e->nrcpt; i++)
      if (e->rcpt[i].state == QF_FAILED) {
        log_begin("qmail-send", "bounce.drop");
        log_kv("qid", qid);
        log_kb("rcpt", e->rcpt[i].addr, e->rcpt[i].len);
        log_kv("why", "triple bounce");
        log_end();
      }
    return 0;
  }
  if (!e->sender_len) {
    envsender = "#@[]";
    if (double_to(c, &to) < 0) goto out;
  } else {
    envsender = "";
    if (notice_to(&to, c, e) < 0) goto out;
  }

  f = calloc(e->nrcpt, sizeof *f);
  if (!f) { errno = ENOMEM; goto out; }
  if (slurp_bounce(qid, &recs) < 0) goto out;
  dsn_parse(recs.s, recs.len, f, e->nrcpt);
  /* Compact to the recipients owed a notice, in queue order; a failure
   * whose record is missing still gets reported, a delivery whose record
   * is missing (logged when it could not be written) does not. A message
   * from the null sender gets no delivery notice (RFC 3461 6.2). */
  for (i = 0; i < e->nrcpt; i++) {
    const struct qf_rcpt *q = e->rcpt + i;
    if (!owed(q)) continue;
    if (q->state == QF_DONE && (!e->sender_len || !f[i].rcpt || f[i].action == DSN_FAILED)) continue;
    if (q->state == QF_FAILED && (!f[i].rcpt || f[i].action != DSN_FAILED)) {
      f[i].rcpt = q->addr;
      f[i].rn = q->len;
      f[i].ch = CH_REMOTE;
      f[i].action = DSN_FAILED;
      f[i].text = "5.0.0 the failure was not recorded";
      f[i].tn = strlen(f[i].text);
    }
    f[i].orcpt = q->orcpt;
    f[i].orn = q->orcpt_len;
    nfail += f[i].action == DSN_FAILED;
    f[nf++] = f[i];
  }
  if (!nf) { r = 0; goto out; }
  /* What to quote (dsn.c's head): RET=HDRS, and a report of deliveries
   * only, quote the headers; RET=FULL at least DSN_RET_FULL bytes of body. */
  maxbytes = c->maxbytes;
  if ((e->opts & QF_OPT_RET_HDRS) || !nfail) maxbytes = 0;
  else if ((e->opts & QF_OPT_RET_FULL) && maxbytes < DSN_RET_FULL) maxbytes = DSN_RET_FULL;
  if (read_orig(fd, e, maxbytes, &orig, &withbody) < 0) goto out;
  if (dsn_build(&msg, c, qid, to.s, qf_qid_birth(qid), now, f, nf, e->envid, e->envid_len,
                orig.s, orig.len, withbody) < 0)
    goto out;
  /* UTF-8 addresses need SMTPUTF8 on the way back, and so do the global
   * report types (RFC 6533), used for an SMTPUTF8 message's report. */
  utf8 = (e->opts & QF_OPT_UTF8) || !ascii(to.s, to.len);
  for (i = 0; i < nf && !utf8; i++) utf8 = !ascii(f[i].rcpt, f[i].rn);
  if (inject(msg.s, msg.len, envsender, to.s, utf8) < 0) {
    /* A sender that cannot take a report (queued before qmail-queue
     * checked addresses) gets none: the report becomes a double bounce,
     * as qmail sends what it cannot return to the postmaster. */
    if (errno != EINVAL || *envsender) goto out;
    log_begin("qmail-send", "bounce.redirect");
    log_kv("qid", qid);
    log_kb("sender", e->sender, e->sender_len);
    log_kv("why", "the sender is not a deliverable address");
    log_end();
    envsender = "#@[]";
    msg.len = 0;
    if (double_to(c, &to) < 0 ||
        dsn_build(&msg, c, qid, to.s, qf_qid_birth(qid), now, f, nf, e->envid, e->envid_len,
                  orig.s, orig.len, withbody) < 0 ||
        inject(msg.s, msg.len, envsender, to.s, utf8) < 0)
      goto out;
  }
  /* A report of failures (a double bounce too); delivery notices only
   * ("relayed") are not bounces. */
  if (nfail) metrics_inc(MS_BOUNCES);
  log_begin("qmail-send", "bounce");
  log_kv("qid", qid);
  log_kv("to", to.s);
  log_kv("type", *envsender ? "double" : "dsn");
  log_ku("failed", nfail);
  if (nf > nfail) log_ku("delivered", nf - nfail);
  log_ku("bytes", msg.len);
  log_end();
  r = 1;
out:
  e2 = errno;
  free(f);
  str_free(&recs);
  str_free(&orig);
  str_free(&msg);
  str_free(&to);
  errno = e2;
  return r;
}
