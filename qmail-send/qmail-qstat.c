/* qmail-qstat: counts of what the queue holds; see qmail-qstat(8).
 *
 * The counting is qtool_stat's, shared with qmail-metrics: unreadable
 * means by qmail-send (qf_send_cannot, the check qmail-qfix reports as
 * "unusable"), whoever runs qmail-qstat. Read-only. */
#include "buf.h"
#include "control.h"
#include "log.h"
#include "qtool.h"

#define PROG "qmail-qstat"

/* Every write to stdout is checked: a listing cut short must not exit 0. */
static void wr(int r)
{
  if (r < 0) log_fatal(PROG, 111, "cannot write to stdout");
}

static void line(buf *b, const char *label, unsigned long long n)
{
  wr(buf_puts(b, label));
  wr(buf_putu(b, n));
  wr(buf_puts(b, "\n"));
}

int main(int argc, char **argv)
{
  static char space[4096];
  buf out = BUF_INIT(1, space, sizeof space);
  struct qtool_stat c;
  const char *why;

  (void)argv;
  if (argc > 1) log_usage(PROG, "usage: qmail-qstat (no arguments)");
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  if (qtool_stat(&c, &why) < 0) log_fatal(PROG, 111, why);

  line(&out, "messages in queue: ", c.msgs);
  wr(buf_puts(&out, "recipients pending: "));
  wr(buf_putu(&out, c.local + c.remote));
  wr(buf_puts(&out, " (local "));
  wr(buf_putu(&out, c.local));
  wr(buf_puts(&out, ", remote "));
  wr(buf_putu(&out, c.remote));
  wr(buf_puts(&out, ")\n"));
  line(&out, "recipients failed, bounce not yet sent: ", c.failed);
  line(&out, "recipients done, message not yet removed: ", c.done);
  line(&out, "messages being written (queue/tmp): ", c.tmp);
  line(&out, "damaged or unreadable queue files: ", c.damaged);
  if (buf_flush(&out) < 0) log_fatal(PROG, 111, "cannot write to stdout");
  return 0;
}
