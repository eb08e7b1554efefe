/* qmail-inject: fix a message's header and queue it. Options:
 * qmail-inject(8); everything else is inject.h's shared injector. */
#include <unistd.h>
#include "buf.h"
#include "inject.h"

static void usage(void)
{
  static const char u[] =
    "usage: qmail-inject [-a|-h|-t] [-n|-N] [-f sender] [-F name] [--] [rcpt ...]\n";
  (void)!fd_write_all(2, u, sizeof u - 1, 0);   /* exit 100 says it too */
  _exit(100);
}

int main(int argc, char **argv)
{
  struct inject in = { "qmail-inject", 0, 0, 0, 0, 0, 0, 0, 0 };
  unsigned mode = 0;
  int c;

  opterr = 0;
  while ((c = getopt(argc, argv, "+ahtnNf:F:")) != -1) {
    switch (c) {
    case 'a': mode = INJ_ARGS; break;
    case 'h': case 't': mode = INJ_HEADER; break;
    case 'n': in.flags |= INJ_PRINT; break;
    case 'N': in.flags &= ~INJ_PRINT; break;
    case 'f': in.sender = optarg; break;
    case 'F': in.name = optarg; break;
    default: usage();
    }
  }
  in.args = argv + optind;
  in.nargs = (size_t)(argc - optind);
  if (!mode) mode = in.nargs ? INJ_ARGS : INJ_HEADER;
  in.flags |= mode;
  inject_run(&in);
}
