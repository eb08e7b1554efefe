/* sendmail: the command line applications expect, translated into the
 * shared injector (inject.h); not setuid. Options, modes (-bp -bs -bi -q),
 * the mailq and newaliases names and exit codes: sendmail(8). -bp, -bi and
 * -bs exec PREFIX/bin/qmail-qread, qmail-newaliases and qmail-smtpd; -q
 * asks s6 (svc.h), which only root may, and fails loudly otherwise. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "log.h"
#include "dsnparam.h"
#include "str.h"
#include "svc.h"
#include "inject.h"

static void usage(const char *why)
{
  static const char u[] =
    "usage: sendmail [-t] [-i|-oi] [-f sender] [-F name] [-bm|-bp|-bs|-bi] [--] [rcpt ...]\n";
  log_begin("sendmail", "usage");
  log_kv("msg", why);
  log_end();
  (void)!fd_write_all(2, u, sizeof u - 1, 0);   /* logged above; exit 100 says it too */
  _exit(100);
}

/* Replaces this process with PREFIX/bin/name; returns only on failure. */
static void run(const char *name, char **argv0)
{
  str path = STR_INIT;

  if (str_copys(&path, auto_prefix) < 0 || str_cats(&path, "/bin/") < 0 ||
      str_cats(&path, name) < 0 || str_0(&path) < 0) {
    errno = ENOMEM;
    log_fatal("sendmail", 111, "out of memory");
  }
  argv0[0] = (char *)name;
  execv(path.s, argv0);
  if (errno == ENOENT) {
    log_begin("sendmail", "fatal");
    log_kv("msg", "not installed");
    log_kv("program", path.s);
    log_end();
    _exit(100);
  }
  log_fatal("sendmail", 111, "unable to run a helper program");
}

/* sendmail -q: SIGALRM to qmail-send through its supervisor. */
static void flush_queue(void)
{
  str dir = STR_INIT;

  if (str_copys(&dir, auto_prefix) < 0 || str_cats(&dir, "/service/qmail-send") < 0 || str_0(&dir) < 0) {
    errno = ENOMEM;
    log_fatal("sendmail", 111, "out of memory");
  }
  if (svc_send("-a", dir.s)) _exit(0);    /* silent, as a cron job wants it */
  log_begin("sendmail", "fatal");
  log_kv("msg", "cannot flush the queue: s6-svc -a failed (it needs root, and qmail-send under s6); "
                "qmail-send retries deferred mail on its own schedule");
  log_kv("service", dir.s);
  log_ku("exit", 111);
  log_end();
  _exit(111);
}

/* "<key><value>" checked as DSN keyword kw, into *out; -V's value is
 * xtext-encoded first. Exits 100 on a bad value. */
static void dsn_opt(const char **out, const char *key, int kw, const char *v)
{
  static const char hex[] = "0123456789ABCDEF";
  str s = STR_INIT;
  unsigned bits;
  size_t k = strlen(key), i;

  if (str_copys(&s, key) < 0) log_fatal("sendmail", 111, "out of memory");
  for (i = 0; v[i]; i++) {
    unsigned char c = (unsigned char)v[i];
    int enc = kw == DSNP_ENVID && (c < 33 || c > 126 || c == '+' || c == '=');
    if ((enc ? str_catc(&s, '+') < 0 || str_catc(&s, hex[c >> 4]) < 0 || str_catc(&s, hex[c & 15]) < 0
             : str_catc(&s, (char)c) < 0))
      log_fatal("sendmail", 111, "out of memory");
  }
  if (str_0(&s) < 0) log_fatal("sendmail", 111, "out of memory");
  if (dsnp_check(kw, s.s + k, s.len - k, &bits)) usage(dsnp_check(kw, s.s + k, s.len - k, &bits));
  *out = s.s;   /* kept until exit */
}

int main(int argc, char **argv)
{
  struct inject in = { "sendmail", INJ_ARGS | INJ_DOT, 0, 0, 0, 0, 0, 0, 0 };
  char *args[2] = { 0, 0 };
  const char *base = argc > 0 ? strrchr(argv[0], '/') : 0;
  char mode = 'm';
  int flush = 0;
  int c;

  base = base ? base + 1 : argc > 0 ? argv[0] : "";
  if (!strcmp(base, "mailq")) mode = 'p';
  if (!strcmp(base, "newaliases")) mode = 'i';
  opterr = 0;
  while ((c = getopt(argc, argv, "+tif:r:F:o:b:q::B:N:R:V:L:O:e:h:vUG")) != -1) {
    switch (c) {
    case 't': in.flags |= INJ_HEADER; break;
    case 'i': in.flags &= ~INJ_DOT; break;
    case 'o': if (!strcmp(optarg, "i")) in.flags &= ~INJ_DOT; break;
    case 'f': case 'r': in.sender = optarg; break;
    case 'F': in.name = optarg; break;
    case 'b':
      if (strlen(optarg) != 1 || !strchr("mpsi", optarg[0])) usage("unsupported -b mode");
      mode = optarg[0];
      break;
    case 'q': mode = 'q'; flush = !optarg; break;
    case 'N': dsn_opt(&in.notify, "NOTIFY=", DSNP_NOTIFY, optarg); break;
    case 'R': dsn_opt(&in.ret, "RET=", DSNP_RET, optarg); break;
    case 'V': dsn_opt(&in.envid, "ENVID=", DSNP_ENVID, optarg); break;
    case 'B': case 'L': case 'O': case 'e': case 'h':
    case 'v': case 'U': case 'G':
      break;
    default: usage("unknown option or missing argument");
    }
  }
  if (mode == 'q') {
    if (flush) flush_queue();
    _exit(0);
  }
  if (mode == 'p') run("qmail-qread", args);
  if (mode == 'i') run("qmail-newaliases", args);
  if (mode == 's') {
    if (setenv("RELAYCLIENT", "", 1) < 0 || setenv("TCPREMOTEIP", "127.0.0.1", 1) < 0 ||
        setenv("TCPLOCALIP", "127.0.0.1", 1) < 0)
      log_fatal("sendmail", 111, "out of memory");
    unsetenv("TCPREMOTEHOST");
    unsetenv("TCPREMOTEINFO");
    run("qmail-smtpd", args);
  }
  in.args = argv + optind;
  in.nargs = (size_t)(argc - optind);
  if (!in.nargs && !(in.flags & INJ_HEADER)) usage("no recipients given (and no -t)");
  inject_run(&in);
}
