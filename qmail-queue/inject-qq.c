/* The injector's exit for qmail-queue's answer (lib/qq.h). */
#include <unistd.h>
#include "log.h"
#include "qq.h"
#include "inject.h"

void qq_exit(const char *prog, int code)
{
  int out;

  if (code == 0) _exit(0);
  out = qq_permanent(code) ? 100 : 111;
  log_begin(prog, "fatal");
  log_kv("msg", code < 0 ? "lost track of qmail-queue" : qq_text(code));
  if (code >= QQ_SIGNAL) log_ku("signal", (unsigned)(code - QQ_SIGNAL));
  else if (code >= 0) log_ku("qq", (unsigned)code);
  log_ku("exit", (unsigned)out);
  log_end();
  _exit(out);
}
