/* users/assign parsing (qmail-newu) and users/cdb lookups (qmail-lspawn). */
#include <errno.h>
#include <string.h>
#include "control.h"
#include "users.h"

#define FIELDS 7   /* local user uid gid home dash ext */
#define ID_MAX 4294967294ull   /* (uid_t)-1 means "no change" to setuid */

static int bad(const char **why, const char *w) { *why = w; return -1; }

static int ok_bytes(const char *s, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++)
    if ((unsigned char)s[i] < ' ' || s[i] == 127) return 0;
  return 1;
}

int assign_line(const char *s, size_t n, str *key, str *val, const char **why)
{
  const char *f[FIELDS];
  size_t len[FIELDS], i, k;
  unsigned long long id;
  const char *p = s + 1, *end = s + n, *c;

  if (n == 1 && s[0] == '.') return 0;
  if (!n || (s[0] != '=' && s[0] != '+')) return bad(why, "a line must start with '=' or '+', or be '.'");
  if (!ok_bytes(s, n)) return bad(why, "control character in line");
  /* Exactly FIELDS fields, each ended by ':', and nothing after. */
  for (k = 0; k < FIELDS; k++) {
    c = memchr(p, ':', (size_t)(end - p));
    if (!c) return bad(why, "expected 7 fields, each followed by ':'");
    f[k] = p;
    len[k] = (size_t)(c - p);
    p = c + 1;
  }
  if (p != end) return bad(why, "text after the 7th field");
  if (s[0] == '=' && !len[0]) return bad(why, "empty address in an '=' line");
  if (!len[1]) return bad(why, "empty user name");
  for (k = 2; k <= 3; k++) {
    if (scan_ulong(f[k], len[k], &id) < 0 || id > ID_MAX)
      return bad(why, k == 2 ? "uid is not a decimal number" : "gid is not a decimal number");
    if (k == 2 && id == 0) return bad(why, "uid 0: root never receives mail");
  }
  if (!len[4] || f[4][0] != '/') return bad(why, "home directory must be an absolute path");
  if (!(len[5] == 0 || (len[5] == 1 && f[5][0] == '-'))) return bad(why, "dash must be empty or '-'");

  key->len = 0;
  if (str_catc(key, s[0]) < 0) return bad(why, "out of memory");
  for (i = 0; i < len[0]; i++) {
    char ch = f[0][i];
    if (str_catc(key, ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch) < 0) return bad(why, "out of memory");
  }
  val->len = 0;
  for (k = 1; k < FIELDS; k++)
    if (str_catb(val, f[k], len[k]) < 0 || str_catc(val, 0) < 0) return bad(why, "out of memory");
  return 1;
}

int uent_fill(struct uent *u, const char *user, size_t usern, unsigned long long uid,
              unsigned long long gid, const char *home, const char *dash,
              const char *ext, size_t extn, const char *rest, size_t restn)
{
  u->uid = uid;
  u->gid = gid;
  u->buf.len = 0;
  if (str_catb(&u->buf, user, usern) < 0 || str_catc(&u->buf, 0) < 0 ||
      str_cats(&u->buf, home) < 0 || str_catc(&u->buf, 0) < 0 ||
      str_cats(&u->buf, dash) < 0 || str_catc(&u->buf, 0) < 0 ||
      str_catb(&u->buf, ext, extn) < 0 || str_catb(&u->buf, rest, restn) < 0 ||
      str_catc(&u->buf, 0) < 0)
    return -1;
  /* Pointers only once buf has stopped moving. */
  u->user = u->buf.s;
  u->home = u->user + strlen(u->user) + 1;
  u->dash = u->home + strlen(u->home) + 1;
  u->ext = u->dash + strlen(u->dash) + 1;
  return 0;
}

/* Splits a value into u; rest (NULL for exact entries) follows the ext. */
static int parse_value(const char *v, size_t n, const char *rest, size_t restn, struct uent *u)
{
  const char *f[FIELDS - 1];
  unsigned long long uid, gid;
  size_t i = 0, k;

  if (n == 0 || v[n - 1] != 0) { errno = EINVAL; return -1; }
  for (k = 0; k < FIELDS - 1; k++) {
    if (i >= n) { errno = EINVAL; return -1; }
    f[k] = v + i;
    i += strlen(v + i) + 1;
  }
  if (i != n) { errno = EINVAL; return -1; }
  if (scan_ulong(f[1], strlen(f[1]), &uid) < 0 || scan_ulong(f[2], strlen(f[2]), &gid) < 0 ||
      uid > ID_MAX || gid > ID_MAX) { errno = EINVAL; return -1; }
  return uent_fill(u, f[0], strlen(f[0]), uid, gid, f[3], f[4], f[5], strlen(f[5]), rest, restn);
}

static int get(struct cdb *c, const str *key, const char *rest, size_t restn, struct uent *u)
{
  const char *v;
  size_t vn;
  int r = cdb_value(c, key->s, key->len, &v, &vn);

  if (r <= 0) return r;
  return parse_value(v, vn, rest, restn, u) < 0 ? -1 : 1;
}

int users_find(struct cdb *c, const char *local, size_t n, int catchall, struct uent *u)
{
  str key = STR_INIT;
  size_t k;
  int r = 0;

  if (catchall) {
    if (str_catc(&key, '+') == 0) r = get(c, &key, local, n, u);
    else r = -1;
    str_free(&key);
    return r;
  }
  if (str_catc(&key, '=') < 0 || str_catb(&key, local, n) < 0) { str_free(&key); return -1; }
  r = get(c, &key, "", 0, u);
  key.s[0] = '+';
  for (k = n; r == 0 && k > 0; k--) {
    key.len = 1 + k;
    r = get(c, &key, local + k, n - k, u);
  }
  str_free(&key);
  return r;
}
