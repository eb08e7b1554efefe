/* rf_find(): the deliverable local addresses (qmail-local/rcptfind.h). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include "control.h"
#include "local.h"
#include "rcptfind.h"

#define NAME_MAX_ 32   /* longest system account name looked up */

static int fill(struct uent *u, const char *user, size_t usern, unsigned long long uid,
                unsigned long long gid, const char *home, const char *dash, const char *ext,
                size_t extn)
{
  return uent_fill(u, user, usern, uid, gid, home, dash, ext, extn, "", 0);
}

/* 1 if one of u's .qmail candidates exists or cannot be ruled out; 0 if
 * none does; -1 (ENOMEM). Without a dash there is nothing to check. */
static int has_dotqmail(const struct uent *u)
{
  str name = STR_INIT, path = STR_INIT;
  struct stat st;
  unsigned i;
  long deflen;
  int c, r = 0;

  if (!*u->dash) return 1;
  if (stat(u->home, &st) < 0) return 1;   /* delivery defers: not ours to judge */
  for (i = 0; r == 0; i++) {
    c = dq_candidate(&name, u->dash, u->ext, i, &deflen);
    if (c <= 0) { if (c < 0) r = -1; break; }
    if (str_copys(&path, u->home) < 0 || str_catc(&path, '/') < 0 ||
        str_cats(&path, name.s) < 0 || str_0(&path) < 0) { r = -1; break; }
    /* A name too long for the filesystem cannot exist: deliver() skips
     * it too, so an overlong local part is no address. */
    if (stat(path.s, &st) == 0 || (errno != ENOENT && errno != ENAMETOOLONG)) r = 1;
  }
  str_free(&name);
  str_free(&path);
  return r;
}

const char *rf_alias_home(void)
{
  static str h;

  if (!h.len && (str_copys(&h, auto_prefix) < 0 || str_cats(&h, "/alias") < 0 || str_0(&h) < 0))
    return 0;
  return h.s;
}

/* The alias account: the owner of c->alias. 1 found, 0 none. */
static int alias_account(const struct rf_ctx *c, unsigned long long *uid, unsigned long long *gid)
{
  struct stat st;

  if (!c->alias || stat(c->alias, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid == 0) return 0;
  if (c->only_uid >= 0 && (unsigned long long)c->only_uid != st.st_uid) return 0;
  *uid = st.st_uid;
  *gid = st.st_gid;
  return 1;
}

/* 1. users/aliases.cdb. 1 found, 0 not, -1 error (errno). */
static int from_aliases(const struct rf_ctx *c, const char *local, size_t n, struct rf_dest *d)
{
  unsigned long long uid, gid;
  const char *v;
  size_t vn;
  int r;

  if (!c->aliases) return 0;
  r = cdb_value(c->aliases, local, n, &v, &vn);
  if (r <= 0) return r;
  if (vn > RF_ALIAS_MAX) { errno = EINVAL; return -1; }
  if (!alias_account(c, &uid, &gid)) return 0;
  d->tbuf.len = 0;
  if (str_catb(&d->tbuf, v, vn) < 0 || str_0(&d->tbuf) < 0 ||
      fill(&d->u, "alias", 5, uid, gid, c->alias, "", "", 0) < 0)
    return -1;
  d->text = d->tbuf.s;
  return 1;
}

/* 3. A system account. 1 found, 0 not, -1 error. */
static int from_system(const struct rf_ctx *c, const char *local, size_t n, struct uent *u)
{
  const char *dash = memchr(local, '-', n);
  size_t un = dash ? (size_t)(dash - local) : n;
  char name[NAME_MAX_ + 1];
  struct passwd *pw;
  struct stat st;

  if (!un || un > NAME_MAX_ || !c->getpw) return 0;
  memcpy(name, local, un);
  name[un] = 0;
  pw = c->getpw(name);
  if (!pw || pw->pw_uid == 0 || strcmp(pw->pw_name, name)) return 0;
  if (c->only_uid >= 0 && (unsigned long long)c->only_uid != pw->pw_uid) return 0;
  /* A home it does not own (daemon's /usr/sbin, nobody's /nonexistent):
   * delivery would refuse it, so it is no address. */
  if (!pw->pw_dir || pw->pw_dir[0] != '/' || stat(pw->pw_dir, &st) < 0 ||
      !S_ISDIR(st.st_mode) || st.st_uid != pw->pw_uid) return 0;
  if (fill(u, name, un, pw->pw_uid, pw->pw_gid, pw->pw_dir, dash ? "-" : "",
           dash ? dash + 1 : "", dash ? n - un - 1 : 0) < 0) return -1;
  return 1;
}

static int none(const char **why, const char *w) { *why = w; return RF_NONE; }

int rf_find(const struct rf_ctx *c, const char *local, size_t n, struct rf_dest *d,
            const char **why)
{
  unsigned long long uid, gid;
  int r, step;

  d->text = "";
  r = from_aliases(c, local, n, d);
  if (r) goto found;
  for (step = 2; step <= 4 && !r; step++) {
    if (step == 3) r = from_system(c, local, n, &d->u);
    else if (c->users) r = users_find(c->users, local, n, step == 4, &d->u);
  }
  if (r > 0) {
    r = has_dotqmail(&d->u);
    if (r == 0) return none(why, "no mailbox here by that name (5.1.1)");
    goto found;
  }
  if (r < 0) goto found;
  if (!alias_account(c, &uid, &gid)) return none(why, "no such user here (5.1.1)");
  r = fill(&d->u, "alias", 5, uid, gid, c->alias, "-", local, n) < 0 ? -1 : has_dotqmail(&d->u);
  if (r == 0 && n == 10 && !memcmp(local, "postmaster", 10))
    r = fill(&d->u, "alias", 5, uid, gid, c->alias, "", "", 0) < 0 ? -1 : 1;
  if (r == 0) return none(why, "no such user here (5.1.1)");
found:
  if (r > 0) return RF_FOUND;
  *why = errno == EINVAL ? "users/cdb or users/aliases.cdb holds a malformed entry"
                         : errno == ENOMEM ? "out of memory" : "cannot read users/cdb or users/aliases.cdb";
  return RF_ERROR;
}
