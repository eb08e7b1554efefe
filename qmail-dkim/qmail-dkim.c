/* qmail-dkim: the DKIM signer, a stage on the qmail-queue interface
 * (QMAILQUEUE=PREFIX/bin/qmail-dkim): the message on fd 0, the envelope
 * on fd 1, left unread for qmail-queue, which it execs with the signed
 * message. Installed setuid to the DKIM uid, the only uid that can read
 * control/dkim/, so the key is never in the memory of a process that
 * parses SMTP; it runs before the queue, so a signing failure is an exit
 * code qmail-smtpd turns into an SMTP reply, never a bounce.
 *
 * Signs only mail from a local injector (a caller whose real uid is not
 * the SMTP server's and that has no TCPREMOTEIP), or from an SMTP client
 * with RELAYCLIENT set or SMTPAUTHENTICATED=1 (qmail-smtpd sets it after
 * AUTH). The key is chosen by the first From: address's domain or its
 * nearest parent with a directory under control/dkim/; that directory's
 * file "selector" names the selectors to sign with, one a line (an RSA and
 * an Ed25519 key: dual signing), read per message, so rotation needs no
 * restart. A selector whose signature (same d= and s=) is already on the
 * message is skipped: a message is signed once.
 *
 * Before signing, a message with a line over 998 octets or an 8-bit byte
 * is converted as qmail-remote would convert it for a 7-bit server
 * (qmail-remote/mime8.c, seven set): what is signed is then what any
 * server gets. See qmail-dkim(8). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "control.h"
#include "dkim.h"
#include "../qmail-remote/mime8.h"
#include "str.h"

#define MSG_MAX (256u << 20)
#define KEY_MAX 16384

/* qmail-queue's exit codes (qmail-queue(8)). */
enum { QQ_NOMEM = 51, QQ_READ = 54, QQ_CONFIG = 55, QQ_BUG = 81, QQ_REFUSE = 31 };

static void die(int code) { _exit(code); }

static void readall(int fd, str *s, size_t max, int code)
{
  for (;;) {
    ssize_t r;
    if (s->len >= max) die(code);
    if (str_readyplus(s, 65536) < 0) die(QQ_NOMEM);
    r = read(fd, s->s + s->len, s->cap - s->len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die(code);
    if (r == 0) return;
    s->len += (size_t)r;
  }
}

/* The SMTP server's uid, from control/ids ("smtpd=uid:gid"); -1 if none
 * or in single-uid mode, where every program has the same uid. */
static long smtpd_uid(void)
{
  str ids = STR_INIT;
  int fd = open("control/ids", O_RDONLY | O_CLOEXEC);
  size_t i = 0;

  if (fd < 0) die(QQ_CONFIG);
  readall(fd, &ids, 65536, QQ_CONFIG);
  close(fd);
  while (i < ids.len) {
    const char *nl = memchr(ids.s + i, '\n', ids.len - i);
    size_t end = nl ? (size_t)(nl - ids.s) : ids.len;
    if (end - i == 11 && !memcmp(ids.s + i, "mode=single", 11)) break;
    if (end - i > 6 && !memcmp(ids.s + i, "smtpd=", 6)) {
      long u = 0;
      for (i += 6; i < end && ids.s[i] >= '0' && ids.s[i] <= '9'; i++) u = u * 10 + (ids.s[i] - '0');
      str_free(&ids);
      return u;
    }
    i = end + 1;
  }
  str_free(&ids);
  return -1;
}

static int may_sign(void)
{
  const char *a = getenv("SMTPAUTHENTICATED");
  long su = smtpd_uid();
  int smtp = getenv("TCPREMOTEIP") || (su >= 0 && (long)getuid() == su);
  if (!smtp) return 1;
  return getenv("RELAYCLIENT") != 0 || (a && !strcmp(a, "1"));
}

/* Just after the '@' of the first address in m[s..e): the last '@' inside
 * the first angle brackets when there are some, else the first one; never
 * one in a quoted string or a comment (a display name "a@b" or a comment
 * (old@other) is not the address). 0 when there is none. */
static size_t from_at(const char *m, size_t s, size_t e)
{
  size_t j, first = 0, angle = 0, in = 0;
  unsigned comment = 0;
  int quoted = 0;

  for (j = s; j < e; j++) {
    char c = m[j];
    if ((quoted || comment) && c == '\\') { j++; continue; }
    if (quoted) { quoted = c != '"'; continue; }
    if (c == '(') { comment++; continue; }
    if (comment) { comment -= c == ')'; continue; }
    if (c == '"') quoted = 1;
    else if (c == '<' && !angle) angle = j + 1;
    else if (c == '>' && angle) break;
    else if (c == '@' && angle) in = j + 1;
    else if (c == '@' && !first) first = j + 1;
  }
  return angle ? in : first;
}

/* The domain of the first From: field's address, lower case, into d. */
static int from_domain(const char *m, const struct dkim_field *f, size_t nf, char *d, size_t dmax)
{
  size_t i, at, end, n = 0;

  for (i = 0; i < nf; i++)
    if (f[i].nlen == 4 && !strncasecmp(m + f[i].off, "from", 4)) break;
  if (i == nf) return -1;
  at = from_at(m, f[i].off + f[i].nlen + 1, f[i].off + f[i].len);
  if (!at) return -1;
  for (end = at; end < f[i].off + f[i].len; end++) {
    char c = m[end];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
      break;
    if (n + 1 >= dmax) return -1;
    d[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  while (n && d[n - 1] == '.') n--;
  d[n] = 0;
  return n && d[0] != '.' && !strstr(d, "..") ? 0 : -1;
}

/* 1 when msg already has a DKIM-Signature with this d= and s=. */
static int signed_by(const char *m, const struct dkim_field *f, size_t nf, const char *d, const char *s)
{
  struct dkim_tag t[DKIM_TAGS_MAX];
  size_t i, n, end;

  for (i = 0; i < nf; i++) {
    const struct dkim_tag *td, *ts;
    size_t v = f[i].off + f[i].nlen;
    if (f[i].nlen != 14 || strncasecmp(m + f[i].off, "DKIM-Signature", 14)) continue;
    while (m[v] != ':') v++;
    v++;
    end = f[i].off + f[i].len;
    while (end > v && (m[end - 1] == '\n' || m[end - 1] == '\r')) end--;
    if (dkim_tags_parse(m + v, end - v, t, DKIM_TAGS_MAX, &n) < 0) continue;
    td = dkim_tag_get(t, n, "d");
    ts = dkim_tag_get(t, n, "s");
    if (td && ts && td->vlen == strlen(d) && !strncasecmp(td->val, d, td->vlen)
        && ts->vlen == strlen(s) && !memcmp(ts->val, s, ts->vlen))
      return 1;
  }
  return 0;
}

/* Opens the key directory of d or its nearest parent; its fd, and *dom
 * points at the domain found, or -1. */
static int keydir(const char *d, const char **dom)
{
  int top = open("control/dkim", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (top < 0) return -1;
  for (;;) {
    int fd = openat(top, d, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const char *dot = strchr(d, '.');
    if (fd >= 0) { close(top); *dom = d; return fd; }
    if (!dot || !strchr(dot + 1, '.')) break;   /* never a top-level domain */
    d = dot + 1;
  }
  close(top);
  return -1;
}

/* Reads name in dir: a regular file of ours, no link; private ones must
 * give group and others no access. */
static void readkey(int dir, const char *name, str *out, int private)
{
  struct stat st;
  int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()
      || (st.st_mode & (private ? 077 : 022)))
    die(QQ_CONFIG);
  out->len = 0;
  readall(fd, out, KEY_MAX, QQ_CONFIG);
  close(fd);
}

/* The message as qmail-remote would send it to a 7-bit server. */
static void seven_bit(str *msg)
{
  static struct mime8 m;
  str out = STR_INIT;
  size_t i, col = 0, longest = 0;
  int eight = 0;

  for (i = 0; i < msg->len; i++) {
    unsigned char c = (unsigned char)msg->s[i];
    if (c == '\n') { if (col > longest) longest = col; col = 0; continue; }
    col++;
    if (c & 0x80) eight = 1;
  }
  if (col > longest) longest = col;
  if (!mime8_needed(longest, eight, 0)) return;
  mime8_init(&m, 1);
  if (mime8_feed(&m, msg->s, msg->len, &out) != MIME8_OK || mime8_end(&m, &out) != MIME8_OK) {
    str_free(&out);      /* cannot be made 7-bit: signed as it is (qmail-remote(8)) */
    return;
  }
  mime8_rewind(&m);
  out.len = 0;
  if (mime8_feed(&m, msg->s, msg->len, &out) != MIME8_OK || mime8_end(&m, &out) != MIME8_OK) {
    str_free(&out);
    return;
  }
  str_free(msg);
  *msg = out;
}

static int writeall(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void sign(str *msg, str *sigs)
{
  static struct dkim_field f[512];
  static struct dkim_key k;
  str sel = STR_INIT, pem = STR_INIT, name = STR_INIT;
  char d[256];
  const char *dom, *err;
  size_t nf, hl, i = 0;
  int dir;

  if (dkim_fields(msg->s, msg->len, f, 512, &nf, &hl) < 0) return;
  if (from_domain(msg->s, f, nf, d, sizeof d) < 0) return;
  dir = keydir(d, &dom);
  if (dir < 0) return;
  readkey(dir, "selector", &sel, 0);
  seven_bit(msg);
  if (dkim_fields(msg->s, msg->len, f, 512, &nf, &hl) < 0) die(QQ_REFUSE);
  while (i < sel.len) {
    const char *nl = memchr(sel.s + i, '\n', sel.len - i);
    size_t end = nl ? (size_t)(nl - sel.s) : sel.len;
    struct dkim_sign_opts o;
    if (end == i) { i = end + 1; continue; }
    if (str_copyb(&name, sel.s + i, end - i) || str_0(&name)) die(QQ_NOMEM);
    if (strspn(name.s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != name.len || name.s[0] == '.')
      die(QQ_CONFIG);            /* never a path: a selector is a DNS label list */
    i = end + 1;
    if (signed_by(msg->s, f, nf, dom, name.s)) continue;
    if (str_cats(&name, ".key") || str_0(&name)) die(QQ_NOMEM);
    readkey(dir, name.s, &pem, 1);
    if (dkim_key_parse(&k, pem.s, pem.len, &err) < 0) die(QQ_CONFIG);
    explicit_bzero(pem.s, pem.cap);
    name.len -= 4;
    name.s[name.len] = 0;
    o.domain = dom;
    o.selector = name.s;
    o.hrelaxed = o.brelaxed = DKIM_RELAXED;
    o.t = (unsigned long long)time(0);
    if (dkim_sign(sigs, &k, &o, msg->s, msg->len, &err) < 0)
      die(!strcmp(err, "out of memory") ? QQ_NOMEM : QQ_REFUSE);
    dkim_key_wipe(&k);
  }
  close(dir);
  str_free(&sel);
  str_free(&pem);
  str_free(&name);
}

int main(void)
{
  static str msg, sigs;
  char path[4096];
  char *argv[] = { "qmail-queue", 0 };
  uid_t r = getuid();
  gid_t g = getgid();
  int fd;

  if (prefix_chdir() < 0) die(QQ_CONFIG);
  readall(0, &msg, MSG_MAX, QQ_READ);
  if (may_sign()) sign(&msg, &sigs);
  /* the key is gone; so is the DKIM uid before qmail-queue runs */
  if (setresgid(g, g, g) < 0 || setresuid(r, r, r) < 0) die(QQ_BUG);
  fd = memfd_create("qmail-dkim", MFD_CLOEXEC);
  if (fd < 0) die(QQ_NOMEM);
  if (writeall(fd, sigs.s, sigs.len) < 0 || writeall(fd, msg.s, msg.len) < 0 || lseek(fd, 0, SEEK_SET) < 0)
    die(QQ_NOMEM);
  if (dup2(fd, 0) < 0) die(QQ_BUG);
  if (snprintf(path, sizeof path, "%s/bin/qmail-queue", auto_prefix) >= (int)sizeof path) die(QQ_BUG);
  execv(path, argv);
  die(QQ_BUG);
}
