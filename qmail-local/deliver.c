/* deliver(): one local delivery by the rules of dot-qmail(5). Runs as the
 * recipient; everything it reads (.qmail, the message) is the recipient's
 * or the message's, and nothing here is trusted to be well-formed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "deliver.h"
#include "local.h"
#include "qfile.h"

#define DOTQMAIL_MAX (1u << 20)   /* a .qmail file bigger than this is a mistake */
#define REPORT_MAX 900            /* fits in a spawner reply (SPAWN_TEXT) */

/* Appends s with every byte below ' ' (and DEL) replaced by '_', so that
 * no address can add a header line. */
static int cat_clean(str *out, const char *s)
{
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (str_catc(out, c < ' ' || c == 127 ? '_' : (char)c) < 0) return -1;
  }
  return 0;
}

static int make_lines(struct lines *l, const struct delivery *d)
{
  char date[64];
  time_t now = time(0);
  struct tm tm;
  const char *s;

  if (!gmtime_r(&now, &tm) || !strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm))
    strcpy(date, "Thu Jan  1 00:00:00 1970");
  if (str_cats(&l->rp, "Return-Path: <") < 0 || cat_clean(&l->rp, d->sender) < 0 ||
      str_cats(&l->rp, ">\n") < 0)
    return -1;
  if (str_cats(&l->dt, "Delivered-To: ") < 0 || cat_clean(&l->dt, d->local) < 0 ||
      str_catc(&l->dt, '@') < 0 || cat_clean(&l->dt, d->domain) < 0 || str_catc(&l->dt, '\n') < 0)
    return -1;
  /* The mbox separator: blanks in the sender would break "From " parsing. */
  if (str_cats(&l->uf, "From ") < 0) return -1;
  s = *d->sender ? d->sender : "MAILER-DAEMON";
  for (; *s; s++)
    if (str_catc(&l->uf, (unsigned char)*s <= ' ' || *s == 127 ? '-' : *s) < 0) return -1;
  if (str_catc(&l->uf, ' ') < 0 || str_cats(&l->uf, date) < 0 || str_catc(&l->uf, '\n') < 0)
    return -1;
  return 0;
}

/* The environment of "|command" lines (qmail-command(8)). */
#define NENV 24
struct env {
  str s;                 /* "NAME=value\0" ... */
  char *v[NENV + 1];
};

static int env_put(str *s, const char *name, const char *v, size_t n)
{
  if (str_cats(s, name) < 0 || str_catc(s, '=') < 0 || str_catb(s, v, n) < 0) return -1;
  return str_catc(s, 0);
}

static int env_puts(str *s, const char *name, const char *v) { return env_put(s, name, v, strlen(v)); }

static int make_env(struct env *e, const struct delivery *d, const struct lines *l, long deflen)
{
  static const char *const hosts[] = { "HOST2", "HOST3", "HOST4" };
  static const char *const exts[] = { "EXT2", "EXT3", "EXT4" };
  str *s = &e->s;
  size_t i, k;
  unsigned j;

  if (env_puts(s, "PATH", "/usr/local/bin:/usr/bin:/bin") < 0 ||
      env_puts(s, "USER", d->user) < 0 || env_puts(s, "HOME", d->home) < 0 ||
      env_puts(s, "LOCAL", d->local) < 0 || env_puts(s, "HOST", d->domain) < 0 ||
      env_puts(s, "EXT", d->ext) < 0 || env_puts(s, "SENDER", d->sender) < 0 ||
      env_puts(s, "NEWSENDER", d->sender) < 0 ||
      env_put(s, "RPLINE", l->rp.s, l->rp.len) < 0 || env_put(s, "DTLINE", l->dt.s, l->dt.len) < 0 ||
      env_put(s, "UFLINE", l->uf.s, l->uf.len) < 0)
    return -1;
  if (str_cats(s, "RECIPIENT=") < 0 || str_cats(s, d->local) < 0 || str_catc(s, '@') < 0 ||
      str_cats(s, d->domain) < 0 || str_catc(s, 0) < 0)
    return -1;
  for (j = 0; j < 3; j++)
    if (env_puts(s, exts[j], dq_extn(d->ext, j + 2)) < 0 ||
        env_put(s, hosts[j], d->domain, dq_hostn(d->domain, j + 2)) < 0)
      return -1;
  if (deflen >= 0 && env_put(s, "DEFAULT", d->ext + strlen(d->ext) - (size_t)deflen, (size_t)deflen) < 0)
    return -1;
  /* Pointers only once s has stopped moving. */
  for (i = k = 0; i < s->len && k < NENV; i += strlen(s->s + i) + 1) e->v[k++] = s->s + i;
  e->v[k] = 0;
  return 0;
}

/* Finds and reads the .qmail file into text. 1 found (non-empty), 0 none
 * or empty (use defaultdelivery), or a failure code. */
static int find_dotqmail(const struct delivery *d, str *text, long *deflen, int *fwdonly, str *report)
{
  str name = STR_INIT;
  struct stat st;
  unsigned i;
  int r;
  int fd = -1, c;

  for (i = 0;; i++) {
    c = dq_candidate(&name, d->dash, d->ext, i, deflen);
    if (c < 0) { str_free(&name); return fail(report, 111, ".qmail", errno); }
    if (c == 0) break;
    fd = open(name.s, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0) break;
    if (errno != ENOENT && errno != ENAMETOOLONG) {
      fail(report, 111, "cannot open ", 0);
      (void)!str_cats(report, name.s);  /* best effort, as in fail() */
      str_free(&name);
      return fail(report, 111, "", errno);
    }
  }
  str_free(&name);
  if (fd < 0) {
    /* An address with an extension nobody asked for does not exist. */
    if (*d->dash) return fail(report, 100, "no mailbox here by that name (5.1.1)", 0);
    return 0;
  }
  if (fstat(fd, &st) < 0) { c = errno; close(fd); return fail(report, 111, "cannot stat .qmail", c); }
  if (!S_ISREG(st.st_mode)) { close(fd); return fail(report, 111, ".qmail is not a regular file", 0); }
  if (st.st_mode & 022) { close(fd); return fail(report, 111, ".qmail is writable by group or others", 0); }
  if (st.st_size > DOTQMAIL_MAX) { close(fd); return fail(report, 111, ".qmail is too big", 0); }
  *fwdonly = (st.st_mode & S_IXUSR) != 0;
  r = fd_read_file(fd, text, DOTQMAIL_MAX);
  c = errno;
  close(fd);
  if (r < 0) return fail(report, 111, "cannot read .qmail", c);
  return text->len ? 1 : 0;
}

/* Appends "; " (unless first), what, and arg[0..n) to the success report.
 * Best effort, like fail(): the report only describes, the exit code is
 * the result, and a delivery done must not turn into a failure. */
static void note(str *done, const char *what, const char *arg, size_t n)
{
  if (done->len) (void)!str_cats(done, "; ");
  (void)!str_cats(done, what);
  (void)!str_catb(done, arg, n);
}

struct run {
  const struct delivery *d;
  const struct local_msg *m;
  const struct lines *l;
  struct env *e;
  str *plan;       /* non-NULL: only describe what would be done */
  str *report;
  str done;        /* what succeeded, for the report */
  str fwd;         /* forward addresses, each followed by NUL */
  unsigned long nfwd;
};

/* One instruction; 0 to go on, 99 to stop, or a failure code. */
static int one(struct run *r, int kind, const char *arg, size_t n, int fwdonly)
{
  str a = STR_INIT, sub = STR_INIT;
  int code = 0;

  if (fwdonly && kind != DQ_FORWARD)
    return fail(r->report, 111, ".qmail has the execute bit set: only forwarding is allowed", 0);
  if (memchr(arg, 0, n)) return fail(r->report, 111, ".qmail holds a NUL byte", 0);
  if (str_copyb(&a, arg, n) < 0 || str_0(&a) < 0) return fail(r->report, 111, ".qmail", errno);
  if (r->plan) {
    static const char *const what[] = { "", "program ", "forward ", "mbox ", "maildir " };
    if (str_cats(r->plan, what[kind]) < 0 || str_cats(r->plan, a.s) < 0 || str_catc(r->plan, '\n') < 0)
      code = fail(r->report, 111, ".qmail", errno);
    str_free(&a);
    return code;
  }
  switch (kind) {
  case DQ_FORWARD:
    if (n > QF_ADDR_MAX) { code = fail(r->report, 111, "forwarding address too long", 0); break; }
    if (str_catb(&r->fwd, a.s, n + 1) < 0) { code = fail(r->report, 111, "forward", errno); break; }
    r->nfwd++;
    break;
  case DQ_MAILDIR:
    code = maildir_deliver(r->m, a.s, r->l, r->d->qid, r->d->rcptno, &sub);
    if (code == 0) note(&r->done, "maildir ", a.s, n);
    if (code == 0 && sub.len) note(&r->done, "", sub.s, sub.len);
    break;
  case DQ_MBOX:
    code = mbox_deliver(r->m, a.s, r->l, &sub);
    if (code == 0) note(&r->done, "mbox ", a.s, n);
    break;
  case DQ_PROGRAM:
    code = prog_deliver(r->m, a.s, r->l, r->e->v, r->d->timeout ? r->d->timeout : DELIVER_TIMEOUT, &sub);
    if (code == 0 || code == 99) note(&r->done, "program", "", 0);
    break;
  }
  if (code != 0 && code != 99) {
    static const char *const where[] = { "", "program: ", "", "mbox ", "maildir " };
    /* Best effort, as in fail(): code is the result. */
    if (kind == DQ_MBOX || kind == DQ_MAILDIR) {
      (void)!str_cats(r->report, where[kind]);
      (void)!str_cats(r->report, a.s);
      (void)!str_cats(r->report, ": ");
    } else if (kind == DQ_PROGRAM) {
      (void)!str_cats(r->report, where[kind]);
    }
    (void)!str_catb(r->report, sub.s, sub.len);
  }
  str_free(&a);
  str_free(&sub);
  return code;
}

static int run_lines(struct run *r, const str *text, int fwdonly)
{
  size_t i = 0, n;
  const char *arg = 0;
  size_t argn = 0;
  int kind, code;

  while (i < text->len) {
    const char *s = text->s + i;
    const char *nl = memchr(s, '\n', text->len - i);
    n = nl ? (size_t)(nl - s) : text->len - i;
    i += n + 1;
    kind = dq_line(s, n, &arg, &argn);
    if (kind == DQ_SKIP) continue;
    code = one(r, kind, arg, argn, fwdonly);
    if (code == 99) break;
    if (code) return code;
  }
  if (r->nfwd && !r->plan) {
    str sub = STR_INIT;
    code = forward_deliver(r->m, r->d->sender, &r->fwd, r->nfwd,
                           (r->d->opts & QF_OPT_UTF8) != 0, r->l, &sub);
    if (code == 0) note(&r->done, "", sub.s, sub.len);
    else (void)!str_catb(r->report, sub.s, sub.len);  /* best effort: code is the result */
    str_free(&sub);
    if (code) return code;
  }
  return 0;
}

/* The report becomes one printable line of at most REPORT_MAX bytes. */
static void clean_report(str *report)
{
  size_t i;

  if (report->len > REPORT_MAX) report->len = REPORT_MAX;
  for (i = 0; i < report->len; i++) {
    unsigned char c = (unsigned char)report->s[i];
    if (c == '\n' || c == '\t') report->s[i] = ' ';
    else if (c < ' ' || c == 127) report->s[i] = '?';
  }
  while (report->len && report->s[report->len - 1] == ' ') report->len--;
}

static int run(const struct delivery *d, str *report, str *plan)
{
  struct lines l = { STR_INIT, STR_INIT, STR_INIT };
  struct env e;
  struct local_msg m;
  struct run r;
  struct stat st;
  str text = STR_INIT;
  long deflen = -1;
  int fwdonly = 0, code, found;

  memset(&e, 0, sizeof e);
  memset(&r, 0, sizeof r);
  m.fd = -1;
  if (chdir(d->home) < 0) return fail(report, 111, "cannot chdir to the home directory", errno);
  if (stat(".", &st) < 0) return fail(report, 111, "cannot stat the home directory", errno);
  if (st.st_mode & 022) return fail(report, 111, "home directory is writable by group or others", 0);
  if (st.st_mode & S_ISVTX)
    return fail(report, 111, "home directory is sticky: the user is editing .qmail files", 0);

  if (d->text && *d->text) found = str_copys(&text, d->text) < 0 ? fail(report, 111, "alias", errno) : 1;
  else found = find_dotqmail(d, &text, &deflen, &fwdonly, report);
  if (found > 1) { str_free(&text); return found; }
  if (!found) {
    fwdonly = 0;
    if (str_copys(&text, d->defaultdelivery) < 0) return fail(report, 111, "defaultdelivery", errno);
  }
  code = 111;
  if (make_lines(&l, d) < 0 || make_env(&e, d, &l, deflen) < 0) {
    fail(report, 111, "out of memory", 0);
    goto out;
  }
  r.d = d; r.l = &l; r.e = &e; r.plan = plan; r.report = report; r.m = &m;
  if (!plan) {
    code = msg_open(&m, d->fd, d->off, d->len, report);
    if (code) goto out;
    /* The one line we would add is already there: this message has been
     * here before, and delivering it again would go round for ever. */
    code = msg_header_has(&m, l.dt.s, l.dt.len - 1);
    if (code) {
      code = code < 0 ? fail(report, 111, "cannot read the message", errno)
                      : fail(report, 100, "message is looping: it already has our Delivered-To line (5.4.6)", 0);
      goto out;
    }
  }
  code = run_lines(&r, &text, fwdonly);
  if (code == 0 && !plan) {
    /* Best effort, as in note(): the delivery is done. */
    if (r.done.len) (void)!str_catb(report, r.done.s, r.done.len);
    else (void)!str_cats(report, "no delivery instructions: message dropped");
  }
out:
  if (m.fd >= 0 && m.fd != d->fd) close(m.fd);
  str_free(&l.rp); str_free(&l.dt); str_free(&l.uf);
  str_free(&e.s); str_free(&text); str_free(&r.done); str_free(&r.fwd);
  return code;
}

int deliver(const struct delivery *d, str *report)
{
  int code;

  /* A program or qmail-queue that stops reading must not kill us. */
  signal(SIGPIPE, SIG_IGN);
  report->len = 0;
  code = run(d, report, 0);
  if (code == 99) code = 0;
  clean_report(report);
  return code;
}

int deliver_plan(const struct delivery *d, str *plan)
{
  str report = STR_INIT;
  int code;

  plan->len = 0;
  code = run(d, &report, plan);
  if (code) {
    /* Best effort: the code returned already says the plan failed. */
    if (str_catb(plan, report.s, report.len) == 0) (void)!str_catc(plan, '\n');
  }
  str_free(&report);
  return code == 99 ? 0 : code;
}
