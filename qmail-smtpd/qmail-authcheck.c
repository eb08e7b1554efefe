/* qmail-authcheck: the password checker for SMTP AUTH, with the
 * checkpassword interface (qmail-authcheck(8)): the request on fd 3;
 * exit 0 right, 1 wrong or unknown user, 2 malformed, 111 cannot tell.
 *
 * Installed setuid to the auth uid (mode 4710, the smtpd group), the
 * only uid that can read control/authusers.cdb (user -> crypt(3) hash,
 * mode 0400, written by qmail-passwd). qmail-smtpd runs it per attempt,
 * so the process that parses SMTP never holds a password hash.
 *
 * It reads nothing from the environment or the command line; paths are
 * relative to the compiled-in prefix. A wrong password costs the caller
 * AUTH_FAIL_DELAY seconds here, and an unknown user costs the same crypt
 * work as a known one, so neither timing nor speed tells them apart. */
#include <crypt.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "authlib.h"
#include "buf.h"
#include "control.h"
#include "log.h"
#include "str.h"

#define PROG "qmail-authcheck"
#define AUTH_FAIL_DELAY 1
#define READ_TIMEOUT 30

/* A yescrypt setting for unknown users: the same cost as a real hash. */
static const char dummy[] = "$y$j9T$Cl.4dvJkvmBlZdtjxpQ1N.$Rzha0nYsbqrZh5B9b2UcrbFd3Py0a/aZSaUteOFMvAD";

static char req[AUTH_CP_MAX + 1];
static struct crypt_data cd;

static void wipe(void)
{
  explicit_bzero(req, sizeof req);
  explicit_bzero(&cd, sizeof cd);
}

static void fail(int code) __attribute__((noreturn));
static void fail(int code)
{
  wipe();
  if (code == 1) sleep(AUTH_FAIL_DELAY);
  _exit(code);
}

static void fatal(const char *msg) __attribute__((noreturn));
static void fatal(const char *msg)
{
  wipe();
  log_fatal(PROG, 111, msg);
}

/* Reads fd 3 to its end; the length, or exits 2 when over the limit. */
static size_t read_request(void)
{
  size_t n = 0;
  for (;;) {
    ssize_t r;
    if (fd_wait(3, 0, READ_TIMEOUT) < 0) fatal("read fd 3");
    r = read(3, req + n, sizeof req - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fatal("read fd 3");
    if (r == 0) return n;
    n += (size_t)r;
    if (n > AUTH_CP_MAX) fail(2);
  }
}

int main(void)
{
  static str hash;
  const char *user, *pass, *out;
  size_t un, pn, n;
  int r;

  /* Become the auth uid for real (the caller keeps no hold on us), and
   * its group-less self: only the file owner's bit grants the read. */
  if (setreuid(geteuid(), geteuid()) < 0) fatal("setreuid");
  n = read_request();
  close(3);
  if (cp_parse(req, n, &user, &un, &pass, &pn) < 0) fail(2);
  if (prefix_chdir() < 0) fatal("chdir prefix");
  r = cdb_lookup("control/authusers.cdb", user, un, &hash);
  if (r < 0) fatal("control/authusers.cdb");
  if (r == 0 || str_0(&hash) < 0) {
    if (str_copys(&hash, dummy) < 0) fatal("nomem");
    r = 0;
  }
  out = crypt_rn(pass, hash.s, &cd, sizeof cd);
  if (r && out && out[0] != '*' && hash_equal(out, hash.s)) {
    wipe();
    _exit(0);
  }
  fail(1);
}
