/* qmail-local [-nN] [-q qid -r rcptno] user homedir local dash ext domain
 * sender defaultdelivery: one local delivery of fd 0 as the caller (the
 * recipient), deliver() in deliver.c; see qmail-local(8). -q and -r name
 * the delivery as qmail-lspawn does, so that the Maildir name of a
 * repeated delivery is the same. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "deliver.h"
#include "log.h"
#include "qfile.h"

#define PROG "qmail-local"
#define USAGE "usage: qmail-local [-nN] [-q qid -r rcptno] user homedir local dash ext domain sender defaultdelivery"

int main(int argc, char **argv)
{
  struct delivery d;
  unsigned long long u;
  str out = STR_INIT;
  const char *qid = 0, *rcpt = 0;
  int dry = 0, c, fd;
  off_t at;

  while ((c = getopt(argc, argv, "+nNq:r:")) != -1) {
    switch (c) {
    case 'n': dry = 1; break;
    case 'N': dry = 0; break;
    case 'q': qid = optarg; break;
    case 'r': rcpt = optarg; break;
    default: log_usage(PROG, USAGE);
    }
  }
  if (argc - optind != 8 || !!qid != !!rcpt) log_usage(PROG, USAGE);
  argv += optind;
  if (qid && !qf_qid_ok(qid, strlen(qid))) log_die(PROG, EXIT_TEMP, "bad qid");
  if (rcpt && (scan_ulong(rcpt, strlen(rcpt), &u) < 0 || u > QF_RCPT_MAX))
    log_die(PROG, EXIT_TEMP, "bad recipient index");
  /* fds 1 and 2 must be open, or a file opened later could take their number. */
  while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2) {}
  if (fd > 2) close(fd);

  memset(&d, 0, sizeof d);
  d.user = argv[0]; d.home = argv[1]; d.local = argv[2]; d.dash = argv[3];
  d.ext = argv[4]; d.domain = argv[5]; d.sender = argv[6]; d.defaultdelivery = argv[7];
  d.qid = qid;
  d.rcptno = rcpt ? (unsigned long)u : 0;
  d.fd = 0;
  at = lseek(0, 0, SEEK_CUR);
  d.off = at > 0 ? (unsigned long long)at : 0;
  d.len = DELIVER_TO_EOF;
  if (getenv("SMTPUTF8") && *getenv("SMTPUTF8")) d.opts = QF_OPT_UTF8;
  {
    str tp = STR_INIT;
    if (str_copys(&tp, auto_prefix) < 0 || str_cats(&tp, "/control/timeoutprogram") < 0 ||
        str_0(&tp) < 0 || control_ulong(&d.timeout, tp.s, DELIVER_TIMEOUT) < 0)
      log_fatal(PROG, 111, "cannot read control/timeoutprogram");
    str_free(&tp);
  }

  c = dry ? deliver_plan(&d, &out) : deliver(&d, &out);
  /* The exit code says the outcome as well: a line that cannot be
   * completed or written leaves the caller that. */
  if (!dry && str_catc(&out, '\n') < 0) return c;
  (void)!fd_write_all(1, out.s, out.len, 0);
  return c;
}
