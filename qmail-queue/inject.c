/* The injector: read the message, fix its header, collect the envelope,
 * hand both to qmail-queue. Contract in inject.h.
 *
 * The header is held in memory (at most INJECT_HDR_MAX) because the
 * envelope may depend on it (-t) and fields are added after it; the body
 * is streamed through a fixed buffer, so a message of any size costs
 * bounded memory. Each process injects one message, so the state below
 * is file-static, and every failure ends the process. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "addr.h"
#include "buf.h"
#include "control.h"
#include "log.h"
#include "qfile.h"
#include "qq.h"
#include "str.h"
#include "inject.h"
#include "alist.h"

#define HDR_LINE_MAX 998     /* RFC 5322 2.1.1, without the line end */
#define HDR_READ_MAX 65536   /* longest line read while in the header */

static const char *prog;
static const struct inject *opt;
static str defaulthost = STR_INIT, defaultdomain = STR_INIT, idhost = STR_INIT;
static str rcpts = STR_INIT;           /* each qualified, NUL-terminated */
static size_t nrcpt;
static str sender = STR_INIT;
static str hdr = STR_INIT;             /* fields kept, LF line ends */
static str field = STR_INIT;           /* the field being read */
static int has_date, has_from, has_msgid;
static str rewrite = STR_INIT;         /* control/rewritesender, qualified; empty: none */
static str localdoms = STR_INIT;       /* domains of local accounts, NUL-terminated each */
static str tmp = STR_INIT;
static struct qq qq = QQ_INIT;
static char inspace[65536], outspace[65536];
static buf in, out;

static void fatal(int code, const char *msg, const char *detail) __attribute__((noreturn));
static void fatal(int code, const char *msg, const char *detail)
{
  /* qmail-queue, if running, gets no envelope: it queues nothing. */
  if (qq.pid) qq_wait(&qq);
  log_begin(prog, "fatal");
  log_kv("msg", msg);
  if (detail) log_kv("detail", detail);
  log_ku("exit", (unsigned)code);
  log_end();
  _exit(code);
}

static void fatal_sys(int code, const char *msg) __attribute__((noreturn));
static void fatal_sys(int code, const char *msg)
{
  fatal(code, msg, strerror(errno));
}

static void nomem(void) __attribute__((noreturn));
static void nomem(void) { fatal(111, "out of memory", 0); }

static void cat(str *s, const void *p, size_t n) { if (str_catb(s, p, n) < 0) nomem(); }
static void cats(str *s, const char *p) { if (str_cats(s, p) < 0) nomem(); }

/* --- configuration ---------------------------------------------------- */

static void control(str *outv, const char *name, const str *def)
{
  str path = STR_INIT;
  int r;

  cats(&path, auto_prefix);
  cats(&path, "/control/");
  cats(&path, name);
  if (str_0(&path) < 0) nomem();
  r = control_line(outv, path.s);
  if (r < 0) fatal(111, "unable to read control file", name);
  if (r == 0 || outv->len == 0) {
    if (!def || !def->len) fatal(111, "control file missing (and control/me too)", name);
    if (str_copyb(outv, def->s, def->len) < 0) nomem();
  }
  str_free(&path);
}

static void read_rewrite(const str *me);

static void read_controls(void)
{
  str me = STR_INIT;

  control(&me, "me", 0);
  control(&defaultdomain, "defaultdomain", &me);
  control(&defaulthost, "defaulthost", &me);
  control(&idhost, "idhost", &me);
  if (!memchr(defaulthost.s, '.', defaulthost.len)) {
    cats(&defaulthost, ".");
    cat(&defaulthost, defaultdomain.s, defaultdomain.len);
  }
  read_rewrite(&me);
  str_free(&me);
}

/* --- addresses ---------------------------------------------------------- */

/* local@domain into tmp, qualified as inject.h says. */
static void qualify(const struct alist_addr *a)
{
  tmp.len = 0;
  cat(&tmp, a->local, a->llen);
  cats(&tmp, "@");
  if (!a->domain) {
    cat(&tmp, defaulthost.s, defaulthost.len);
  } else {
    cat(&tmp, a->domain, a->dlen);
    if (!a->literal && !memchr(a->domain, '.', a->dlen)) {
      cats(&tmp, ".");
      cat(&tmp, defaultdomain.s, defaultdomain.len);
    }
  }
  if (tmp.len > QF_ADDR_MAX) fatal(100, "address too long", 0);
}

/* An envelope address must go out as one RFC 5321 path (qmail-queue
 * refuses anything else with 12): said here, with the address. */
static void envelope_ok(const char *what)
{
  if (addr_check(tmp.s, tmp.len, 0) != ADDR_BAD) return;
  log_begin(prog, "bad_address");
  log_kb("address", tmp.s, (unsigned long)tmp.len);
  log_end();
  fatal(100, what, "not an RFC 5321 mailbox");
}

static int add_rcpt(void *ctx, const struct alist_addr *a)
{
  qualify(a);
  envelope_ok("bad recipient address");
  if (++nrcpt > QF_RCPT_MAX) fatal(100, "too many recipients", 0);
  cat(&rcpts, tmp.s, tmp.len);
  cat(&rcpts, "", 1);
  return 0;
}

static void parse_rcpts(const char *s, size_t n, const char *where)
{
  const char *why = 0;
  int r = alist_parse(s, n, add_rcpt, 0, &why);

  if (r == ALIST_NOMEM) nomem();
  if (r != ALIST_OK) {
    log_begin(prog, "bad_address");
    log_kv("in", where);
    log_kb("text", s, (unsigned long)n);
    log_end();
    fatal(100, "cannot parse recipient addresses", why);
  }
}

static int set_one(void *ctx, const struct alist_addr *a)
{
  str *dst = ctx;
  if (dst->len) return 1;   /* a second address: not a single mailbox */
  qualify(a);
  envelope_ok("bad envelope address");
  if (str_copyb(dst, tmp.s, tmp.len) < 0) nomem();
  return 0;
}

/* Exactly one address from s, qualified, into dst. */
static void parse_one(str *dst, const char *s, size_t n, const char *what)
{
  const char *why = 0;
  int r;

  dst->len = 0;
  r = alist_parse(s, n, set_one, dst, &why);
  if (r == ALIST_NOMEM) nomem();
  if (r == ALIST_STOP) fatal(100, what, "more than one address");
  if (r != ALIST_OK) fatal(100, what, why);
  if (!dst->len) fatal(100, what, "no address");
}

/* --- rewriting local senders (control/rewritesender) -------------------- */

/* control/rewritesender: an address that replaces the envelope sender and
 * the From: of mail from local accounts (root, cron, daemons), so that a
 * smarthost accepts it. Local means: a domain of control/locals, me,
 * defaulthost, "localhost" or "localhost." defaultdomain (what a bare
 * "localhost" qualifies to). Absent: nothing is rewritten. */
static void read_rewrite(const str *me)
{
  str path = STR_INIT, line = STR_INIT;
  int r;

  cats(&path, auto_prefix);
  cats(&path, "/control/rewritesender");
  if (str_0(&path) < 0) nomem();
  r = control_line(&line, path.s);
  if (r < 0) fatal(111, "unable to read control file", "rewritesender");
  if (r > 0 && line.len) {
    parse_one(&rewrite, line.s, line.len, "bad control/rewritesender");
    path.len -= strlen("rewritesender");
    cats(&path, "locals");
    if (str_0(&path) < 0) nomem();
    if (control_lines(&localdoms, path.s) < 0) fatal(111, "unable to read control file", "locals");
    cat(&localdoms, me->s, me->len);
    cat(&localdoms, "", 1);
    cat(&localdoms, defaulthost.s, defaulthost.len);
    cat(&localdoms, "", 1);
    cats(&localdoms, "localhost");
    cat(&localdoms, "", 1);
    cats(&localdoms, "localhost.");
    cat(&localdoms, defaultdomain.s, defaultdomain.len);
    cat(&localdoms, "", 1);
  }
  str_free(&path);
  str_free(&line);
}

/* Whether the qualified address a[0..n) belongs to a local account. */
static int is_local(const char *a, size_t n)
{
  const char *at = 0, *d;
  size_t i, dl;

  for (i = n; i > 0; i--)
    if (a[i - 1] == '@') { at = a + i; break; }
  if (!at) return 1;
  dl = n - (size_t)(at - a);
  for (i = 0; i < localdoms.len; i += strlen(d) + 1) {
    d = localdoms.s + i;
    if (strlen(d) == dl && !strncasecmp(d, at, dl)) return 1;
  }
  return 0;
}

/* Counts the addresses of a From: field and the local ones among them. */
struct fromcount { size_t all, local; };
static int count_from(void *ctx, const struct alist_addr *a)
{
  struct fromcount *c = ctx;
  qualify(a);
  c->all++;
  if (is_local(tmp.s, tmp.len)) c->local++;
  return 0;
}

/* A From: value whose every address is local; an unparsable one is left
 * alone (it is the author's, not an address this host made up). */
static int from_is_local(const char *s, size_t n)
{
  struct fromcount c = { 0, 0 };
  return alist_parse(s, n, count_from, &c, 0) == ALIST_OK && c.all && c.local == c.all;
}

static int is_atext(unsigned char c)
{
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != 0;
}

/* s as an RFC 5322 word: a dot-atom (dots allowed) or phrase of atoms
 * and spaces as it is, anything else as a quoted string. Control bytes
 * could forge header lines: refused. */
static void cat_word(str *dst, const char *s, int dots, const char *what)
{
  size_t i, n = strlen(s);
  int plain = n > 0;

  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 32 || c == 127) fatal(100, what, "control character");
    if (is_atext(c)) continue;
    if (dots && c == '.' && i > 0 && i + 1 < n && s[i + 1] != '.') continue;
    if (!dots && c == ' ' && i > 0 && i + 1 < n) continue;
    plain = 0;
  }
  if (plain) { cat(dst, s, n); return; }
  cats(dst, "\"");
  for (i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\') cats(dst, "\\");
    cat(dst, s + i, 1);
  }
  cats(dst, "\"");
}

static const char *env_first(const char *const *names)
{
  for (; *names; names++) {
    const char *v = getenv(*names);
    if (v && *v) return v;
  }
  return 0;
}

static const char *user_name(const char *const *names)
{
  const char *u = env_first(names);
  struct passwd *pw;

  if (u) return u;
  pw = getpwuid(getuid());
  if (!pw || !pw->pw_name || !*pw->pw_name) fatal(111, "cannot tell the user name", 0);
  return pw->pw_name;
}

/* user@host from the environment (inject.h), qualified, into dst. */
static void identity(str *dst, const char *const *users, const char *const *hosts, const char *what)
{
  str s = STR_INIT;
  const char *host = env_first(hosts);

  cat_word(&s, user_name(users), 1, what);
  cats(&s, "@");
  if (host) cats(&s, host);
  else cat(&s, defaulthost.s, defaulthost.len);
  parse_one(dst, s.s, s.len, what);
  str_free(&s);
}

static void set_sender(void)
{
  static const char *const users[] = { "QMAILSUSER", "QMAILUSER", "USER", "LOGNAME", 0 };
  static const char *const hosts[] = { "QMAILSHOST", "QMAILHOST", 0 };
  const char *f = opt->sender;

  if (!f) { identity(&sender, users, hosts, "bad envelope sender from the environment"); return; }
  if (!*f || !strcmp(f, "<>")) { sender.len = 0; return; }
  parse_one(&sender, f, strlen(f), "bad envelope sender");
}

/* After set_sender: a local sender becomes control/rewritesender. The
 * null sender stays null. */
static void rewrite_sender(void)
{
  if (rewrite.len && sender.len && is_local(sender.s, sender.len) &&
      str_copyb(&sender, rewrite.s, rewrite.len) < 0) nomem();
}

/* Marks a repeated recipient: no address holds a line feed. */
#define DUP '\n'

static int cmp_rcpt(const void *a, const void *b)
{
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  int r = strcmp(rcpts.s + x, rcpts.s + y);
  return r ? r : (x > y) - (x < y);
}

/* Marks every repeat of an earlier recipient (an address in both To and
 * Cc, say), so that it is delivered once. Sorting offsets keeps this
 * O(n log n) for QF_RCPT_MAX recipients; equal addresses sort by offset,
 * so the first of each run is the one kept. */
static void dedup(void)
{
  size_t *off, i, k = 0, bytes, first;

  if (nrcpt < 2) return;
  if (size_mul(&bytes, nrcpt, sizeof *off) < 0 || !(off = malloc(bytes))) nomem();
  for (i = 0; i < rcpts.len; i += strlen(rcpts.s + i) + 1) off[k++] = i;
  qsort(off, k, sizeof *off, cmp_rcpt);
  first = off[0];
  for (i = 1; i < k; i++) {
    if (!strcmp(rcpts.s + off[i], rcpts.s + first)) rcpts.s[off[i]] = DUP;
    else first = off[i];
  }
  free(off);
}

/* --- the header --------------------------------------------------------- */

static int named(const char *name, size_t n, const char *want)
{
  return n == strlen(want) && !strncasecmp(name, want, n);
}

/* Length of the field name if line starts a field (name, optional white
 * space (obs-FWS), ':'), else 0. */
static size_t field_name(const char *s, size_t n)
{
  size_t i = 0, end;

  while (i < n && s[i] > 32 && s[i] < 127 && s[i] != ':') i++;
  end = i;
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  return end && i < n && s[i] == ':' ? end : 0;
}

/* Fields whose value is an address list, qualified as qmail-inject(8)
 * does. */
static int address_field(const char *name, size_t n)
{
  static const char *const names[] = {
    "from", "sender", "reply-to", "to", "cc", "bcc", "apparently-to",
    "resent-from", "resent-sender", "resent-reply-to", "resent-to", "resent-cc", "resent-bcc",
    "mail-reply-to", "mail-followup-to", "errors-to", "return-receipt-to",
    "disposition-notification-to", 0 };
  size_t i;
  for (i = 0; names[i]; i++) if (named(name, n, names[i])) return 1;
  return 0;
}

/* The field value being qualified: the value, the new one, and how much
 * of the old one has been copied. */
struct requal { const char *s; str out; size_t done; };

static int requal_addr(void *ctx, const struct alist_addr *a)
{
  struct requal *q = ctx;
  if (a->domain && (a->literal || memchr(a->domain, '.', a->dlen))) return 0;
  qualify(a);
  cat(&q->out, q->s + q->done, a->start - q->done);
  cat(&q->out, tmp.s, tmp.len);
  q->done = a->end;
  return 0;
}

/* Qualifies, in the complete field in `field` (value from v), every
 * address without "@domain" or with a dotless domain, as the envelope's
 * are; everything else (display names, comments, folds) stays as
 * written. A value that does not parse is left alone: it is the
 * author's, and no recipient came from it. */
static void qualify_field(size_t v)
{
  struct requal q = { field.s + v, STR_INIT, 0 };
  size_t n = field.len - v - 1;

  if (alist_parse(q.s, n, requal_addr, &q, 0) == ALIST_OK && q.done) {
    cat(&q.out, q.s + q.done, n - q.done);
    field.len = v;
    cat(&field, q.out.s, q.out.len);
    cat(&field, "\n", 1);
  }
  str_free(&q.out);
}

/* Files away the complete field in `field`: noted, used for recipients,
 * dropped or kept. */
static void end_field(void)
{
  size_t nlen = field_name(field.s, field.len), v;
  const char *name = field.s;
  int keep = 1, rcpt = 0;

  if (!field.len) return;
  v = (size_t)((const char *)memchr(field.s, ':', field.len) - field.s) + 1;
  if (named(name, nlen, "bcc") || named(name, nlen, "resent-bcc")) {
    keep = 0;
    rcpt = named(name, nlen, "bcc");
  } else if (named(name, nlen, "return-path") || named(name, nlen, "content-length")) {
    keep = 0;
  } else if (named(name, nlen, "to") || named(name, nlen, "cc")) {
    rcpt = 1;
  } else if (named(name, nlen, "date")) {
    has_date = 1;
  } else if (named(name, nlen, "from")) {
    has_from = 1;
    if (rewrite.len && from_is_local(field.s + v, field.len - v - 1)) {
      /* The whole field goes, display name included: it may name the
       * local account, which the rewriting is meant to hide. */
      cats(&hdr, "From: ");
      cat(&hdr, rewrite.s, rewrite.len);
      cats(&hdr, "\n");
      keep = 0;
    }
  } else if (named(name, nlen, "message-id")) {
    has_msgid = 1;
  }
  if (rcpt && (opt->flags & INJ_HEADER)) {
    char where[16];
    size_t k = nlen < sizeof where - 1 ? nlen : sizeof where - 1;
    memcpy(where, name, k);
    where[k] = 0;
    parse_rcpts(field.s + v, field.len - v - 1, where);
  }
  if (keep && address_field(name, nlen)) qualify_field(v);
  if (keep) cat(&hdr, field.s, field.len);
  field.len = 0;
}

enum { BODY_NONE, BODY_LINE, BODY_REST };

/* Reads the header. Returns BODY_NONE when the input ended, BODY_LINE
 * when `line` holds the body's first line, BODY_REST when the body (if
 * any) is still unread. */
static int read_header(str *line)
{
  int r, first = 1;

  for (;;) {
    r = buf_line(&in, line, HDR_READ_MAX);
    if (r == LINE_ERR) fatal_sys(111, "unable to read the message");
    if (r == LINE_LONG) fatal(100, "header line too long", 0);
    if (r == LINE_EOF) { end_field(); return BODY_NONE; }
    if (r == LINE_PARTIAL) cat(line, "\n", 1);
    if (line->len >= 2 && line->s[line->len - 2] == '\r') {
      line->s[line->len - 2] = '\n';
      line->len--;
    }
    if (memchr(line->s, 0, line->len)) fatal(100, "NUL byte in the message", 0);
    /* An mbox "From " separator first is not part of the message. */
    if (first && line->len >= 5 && !memcmp(line->s, "From ", 5)) { first = 0; continue; }
    first = 0;
    if ((opt->flags & INJ_DOT) && line->len == 2 && line->s[0] == '.') {
      end_field();
      return BODY_NONE;
    }
    if (line->len == 1) { end_field(); return BODY_REST; }
    if ((line->s[0] == ' ' || line->s[0] == '\t') && field.len) {
      /* continuation of the field in progress */
    } else if (field_name(line->s, line->len)) {
      end_field();
    } else {
      end_field();
      return BODY_LINE;
    }
    if (line->len - 1 > HDR_LINE_MAX) fatal(100, "header line longer than 998 bytes", 0);
    if (hdr.len + field.len + line->len > INJECT_HDR_MAX) fatal(100, "header too large", 0);
    cat(&field, line->s, line->len);
  }
}

static const char *const wdays[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static void cat2(str *s, unsigned v)
{
  char d[2];
  fmt_u(d, v % 100, 2);
  cat(s, d, 2);
}

static void catu(str *s, unsigned long long u) { if (str_catu(s, u) < 0) nomem(); }

/* Date, From, Message-ID when missing, appended to hdr. */
static void add_fields(void)
{
  static const char *const users[] = { "QMAILUSER", "USER", "LOGNAME", 0 };
  static const char *const hosts[] = { "QMAILHOST", 0 };
  static const char *const names[] = { "QMAILNAME", "NAME", 0 };
  struct timeval tv;
  struct tm tm;

  gettimeofday(&tv, 0);
  if (!has_date) {
    long off;
    if (!localtime_r(&tv.tv_sec, &tm)) fatal(111, "cannot convert the time", 0);
    off = tm.tm_gmtoff / 60;
    cats(&hdr, "Date: ");
    cats(&hdr, wdays[tm.tm_wday % 7]);
    cats(&hdr, ", ");
    catu(&hdr, (unsigned)tm.tm_mday);
    cats(&hdr, " ");
    cats(&hdr, months[tm.tm_mon % 12]);
    cats(&hdr, " ");
    catu(&hdr, (unsigned long long)tm.tm_year + 1900);
    cats(&hdr, " ");
    cat2(&hdr, (unsigned)tm.tm_hour); cats(&hdr, ":");
    cat2(&hdr, (unsigned)tm.tm_min); cats(&hdr, ":");
    cat2(&hdr, (unsigned)tm.tm_sec);
    cats(&hdr, off < 0 ? " -" : " +");
    if (off < 0) off = -off;
    cat2(&hdr, (unsigned)(off / 60));
    cat2(&hdr, (unsigned)(off % 60));
    cats(&hdr, "\n");
  }
  if (!has_from) {
    str from = STR_INIT;
    const char *name = opt->name ? opt->name : env_first(names);
    identity(&from, users, hosts, "bad From address from the environment");
    if (rewrite.len && is_local(from.s, from.len) && str_copyb(&from, rewrite.s, rewrite.len) < 0) nomem();
    cats(&hdr, "From: ");
    if (name && *name) {
      cat_word(&hdr, name, 0, "bad full name");
      cats(&hdr, " <");
      cat(&hdr, from.s, from.len);
      cats(&hdr, ">\n");
    } else {
      cat(&hdr, from.s, from.len);
      cats(&hdr, "\n");
    }
    str_free(&from);
  }
  if (!has_msgid) {
    char us[7];
    *fmt_u(us, (unsigned long long)tv.tv_usec % 1000000, 6) = 0;
    cats(&hdr, "Message-ID: <");
    catu(&hdr, (unsigned long long)tv.tv_sec);
    cats(&hdr, ".");
    cats(&hdr, us);
    cats(&hdr, ".");
    catu(&hdr, (unsigned long long)getpid());
    cats(&hdr, "@");
    cat(&hdr, idhost.s, idhost.len);
    cats(&hdr, ">\n");
  }
}

/* --- output -------------------------------------------------------------- */

static void write_failed(void) __attribute__((noreturn));
static void write_failed(void)
{
  /* qmail-queue stopped reading: its exit code says why. */
  if (qq.pid && errno == EPIPE) qq_exit(prog, qq_wait(&qq));
  fatal_sys(111, "unable to write the message");
}

static void put(const char *p, size_t n)
{
  if (buf_put(&out, p, n) < 0) write_failed();
}

/* Streams the rest of stdin: CRLF becomes LF, NUL is refused, and with
 * INJ_DOT a line holding only "." (or ".\r") ends the input. `held` keeps
 * the bytes whose meaning depends on what follows: "", "\r", "." (only at
 * a line start, INJ_DOT) or ".\r". */
static void copy_body(void)
{
  char held[2], c;
  size_t nheld = 0, i;
  int bol = 1, last_nl = 1;
  ssize_t r;

  for (;;) {
    if (in.pos == in.end) {
      r = buf_fill(&in);
      if (r < 0) fatal_sys(111, "unable to read the message");
      if (r == 0) break;
    }
    for (i = in.pos; i < in.end; i++) {
      c = in.x[i];
      if (c != 0 && c != '\n' && c != '\r' && !(c == '.' && bol)) {
        /* A run of ordinary bytes goes out in one piece. */
        size_t j = i + 1;
        while (j < in.end && in.x[j] != 0 && in.x[j] != '\n' && in.x[j] != '\r') j++;
        if (nheld) { put(held, nheld); nheld = 0; }
        put(in.x + i, j - i);
        bol = last_nl = 0;
        i = j - 1;
        continue;
      }
      if (c == 0) fatal(100, "NUL byte in the message", 0);
      if (c == '\n') {
        if (nheld && held[0] == '.') return;   /* "." line: end of input */
        put("\n", 1);
        nheld = 0;
        bol = last_nl = 1;
        continue;
      }
      if (c == '\r') {
        if (nheld && held[nheld - 1] == '\r') { put(held, nheld); nheld = 0; }
        held[nheld++] = '\r';
        bol = 0;
        continue;
      }
      if (c == '.' && bol && (opt->flags & INJ_DOT)) {
        held[nheld++] = '.';
        bol = 0;
        continue;
      }
      if (nheld) { put(held, nheld); nheld = 0; }
      put(&c, 1);   /* a '.' starting a line without INJ_DOT */
      bol = last_nl = 0;
    }
    in.pos = in.end;
  }
  if (nheld) { put(held, nheld); last_nl = 0; }
  if (!last_nl) put("\n", 1);
}

static void open_std(void)
{
  int fd;
  for (;;) {
    fd = open("/dev/null", O_RDWR);
    if (fd < 0) fatal_sys(111, "cannot open /dev/null");
    if (fd > 2) { close(fd); return; }
  }
}

void inject_run(const struct inject *in_opt)
{
  str line = STR_INIT, env = STR_INIT;
  size_t i;
  int body;

  opt = in_opt;
  prog = opt->prog;
  open_std();
  read_controls();
  set_sender();
  rewrite_sender();
  if (opt->flags & INJ_ARGS)
    for (i = 0; i < opt->nargs; i++) parse_rcpts(opt->args[i], strlen(opt->args[i]), "argument");

  buf_init(&in, 0, inspace, sizeof inspace);
  body = read_header(&line);
  if (!nrcpt && !(opt->flags & INJ_PRINT)) fatal(100, "no recipients", 0);
  add_fields();

  cats(&env, "F");
  cat(&env, sender.s, sender.len);
  cat(&env, "", 1);
  if (opt->ret) { cats(&env, "P"); cat(&env, opt->ret, strlen(opt->ret) + 1); }
  if (opt->envid) { cats(&env, "P"); cat(&env, opt->envid, strlen(opt->envid) + 1); }
  dedup();
  for (i = 0; i < rcpts.len; i += strlen(rcpts.s + i) + 1) {
    if (rcpts.s[i] == DUP) continue;
    cats(&env, "T");
    cat(&env, rcpts.s + i, strlen(rcpts.s + i) + 1);
    if (opt->notify) { cats(&env, "P"); cat(&env, opt->notify, strlen(opt->notify) + 1); }
  }
  cat(&env, "", 1);

  if (opt->flags & INJ_PRINT) {
    buf_init(&out, 1, outspace, sizeof outspace);
  } else {
    const char *u = getenv("SMTPUTF8");
    /* Injection is unprivileged, so a replacement qmail-queue (a filter)
     * is the caller's business, as in qmail. A qmail-queue that stops
     * reading makes a write fail with EPIPE: its exit code says why. */
    signal(SIGPIPE, SIG_IGN);
    if (qq_open(&qq, QQ_QMAILQUEUE | QQ_SIGN | (u && *u ? QQ_UTF8 : 0)) < 0)
      fatal_sys(111, "unable to start qmail-queue");
    buf_init(&out, qq.msg, outspace, sizeof outspace);
  }
  put(hdr.s, hdr.len);
  put("\n", 1);
  if (body == BODY_LINE) put(line.s, line.len);
  if (body != BODY_NONE) copy_body();
  if (buf_flush(&out) < 0) write_failed();
  if (opt->flags & INJ_PRINT) _exit(0);

  close(qq.msg);
  qq.msg = -1;
  if (fd_write_all(qq.env, env.s, env.len, 0) < 0 && errno != EPIPE)
    fatal_sys(111, "unable to write the envelope");
  qq_exit(prog, qq_wait(&qq));
}
