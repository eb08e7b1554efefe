/* rf_find (qmail-local/rcptfind.h), the one answer qmail-lspawn and
 * qmail-smtpd's RCPT check share: the alias account's fallback,
 * postmaster, system accounts only with a home of their own, extensions
 * only with their .qmail file, and an overlong local part refused. Runs
 * in a scratch directory standing for the prefix; as root the alias
 * directory is given to another uid, as it is in an install. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "../../qmail-local/rcptfind.h"

#define ALIAS_UID 64011

static char top[] = "/tmp/t-local-rcptfind.XXXXXX";
static char home[300], nohome[300];
static struct passwd pw;

/* A fake passwd: "joe" (uid 64012, home owned by it), "daemon" (uid 1,
 * a home owned by root), anything else unknown. */
static struct passwd *fake_getpw(const char *name)
{
  memset(&pw, 0, sizeof pw);
  pw.pw_name = (char *)name;
  if (!strcmp(name, "joe")) { pw.pw_uid = pw.pw_gid = 64012; pw.pw_dir = home; return &pw; }
  if (!strcmp(name, "daemon")) { pw.pw_uid = pw.pw_gid = 1; pw.pw_dir = nohome; return &pw; }
  if (!strcmp(name, "root")) { pw.pw_uid = 0; pw.pw_dir = nohome; return &pw; }
  return 0;
}

static void touch(const char *path, uid_t u)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) { if (write(fd, "./Maildir/\n", 11) < 0) {} if (fchown(fd, u, u)) {} close(fd); }
}

static char aliasdir[300];
static struct rf_ctx ctx = { 0, 0, fake_getpw, -1, aliasdir };
static struct rf_dest d;

static int find(const char *local)
{
  const char *why = 0;
  return rf_find(&ctx, local, strlen(local), &d, &why);
}

int main(void)
{
  char p[400], lng[301];
  int root = geteuid() == 0;

  if (!mkdtemp(top) || chdir(top) < 0) { CHECK(0); DONE(); }
  mkdir("alias", 0755);
  snprintf(aliasdir, sizeof aliasdir, "%s/alias", top);
  snprintf(home, sizeof home, "%s/joe", top);
  snprintf(nohome, sizeof nohome, "%s/daemon", top);
  mkdir(home, 0755);
  mkdir(nohome, 0755);
  if (root) {
    CHECK(chown("alias", ALIAS_UID, ALIAS_UID) == 0);
    CHECK(chown(home, 64012, 64012) == 0);
  } else {
    /* Single-uid: everything is ours; daemon's home is "not its own" only
     * through uid 1, which is not ours either. */
    ctx.only_uid = geteuid();
    pw.pw_uid = geteuid();
  }
  touch("alias/.qmail-sales", ALIAS_UID);
  touch("alias/.qmail-list-default", ALIAS_UID);
  snprintf(p, sizeof p, "%s/.qmail-news", home);
  touch(p, 64012);

  if (root) {
    CHECK(find("joe") == RF_FOUND && d.u.uid == 64012 && !strcmp(d.u.dash, ""));
    CHECK(find("joe-news") == RF_FOUND && !strcmp(d.u.ext, "news"));
    CHECK(find("joe-nothing") == RF_NONE);          /* no .qmail-nothing: deliver() bounces */
  } else SKIP(3);
  CHECK(find("daemon") == RF_NONE);                 /* a home it does not own */
  CHECK(find("root") == RF_NONE);                   /* uid 0, and no .qmail-root */
  CHECK(find("sales") == RF_FOUND && !strcmp(d.u.dash, "-") && !strcmp(d.u.ext, "sales") &&
        !strcmp(d.u.user, "alias"));
  CHECK(find("list-anything") == RF_FOUND);         /* alias/.qmail-list-default */
  CHECK(find("nosuchuser") == RF_NONE);
  CHECK(find("postmaster") == RF_FOUND && !strcmp(d.u.dash, "") && !strcmp(d.text, ""));
  if (root) CHECK(d.u.uid == ALIAS_UID);
  else SKIP(1);
  memset(lng, 'x', 300);
  lng[300] = 0;
  CHECK(find(lng) == RF_NONE);                      /* no such file name can exist */
  touch("alias/.qmail-default", ALIAS_UID);
  CHECK(find("nosuchuser") == RF_FOUND);            /* the alias catch-all */
  if (root) {
    /* An alias directory of root's is no alias account. */
    CHECK(chown("alias", 0, 0) == 0);
    CHECK(find("sales") == RF_NONE && find("postmaster") == RF_NONE);
  } else SKIP(2);

  if (chdir("/") == 0) {
    snprintf(p, sizeof p, "rm -rf '%s'", top);
    if (system(p)) {}
  }
  DONE();
}
