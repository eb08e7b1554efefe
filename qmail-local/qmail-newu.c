/* qmail-newu: compiles PREFIX/users/assign (format in users.h) into
 * PREFIX/users/cdb; see qmail-newu(8).
 *
 * Written to users/cdb.tmp, fsynced, renamed over users/cdb and the
 * directory fsynced: qmail-lspawn sees the old table or the new one. Any
 * bad line keeps the old table. */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic.h"
#include "buf.h"
#include "control.h"
#include "log.h"
#include "users.h"

#define PROG "qmail-newu"
#define LINE_MAX_ 4096

static void die_line(unsigned long no, const char *why)
{
  unlink("users/cdb.tmp");
  log_die_line(PROG, 111, "users/assign", no, why);
}

static void die(const char *msg)
{
  int e = errno;
  unlink("users/cdb.tmp");
  errno = e;
  log_fatal(PROG, 111, msg);
}

int main(void)
{
  static char inb[8192];
  struct cdb_make cm;
  str line = STR_INIT, key = STR_INIT, val = STR_INIT;
  unsigned long no = 0;
  const char *why = 0;
  int in, out, r, ended = 0;
  buf b;

  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  in = open("users/assign", O_RDONLY | O_CLOEXEC);
  if (in < 0) log_fatal(PROG, 111, "cannot open users/assign");
  /* Read-write: tinycdb reads back what it wrote to find duplicates. */
  out = open("users/cdb.tmp", O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (out < 0) log_fatal(PROG, 111, "cannot create users/cdb.tmp");
  if (fchmod(out, 0644) < 0) die("cannot chmod users/cdb.tmp");
  if (cdb_make_start(&cm, out) < 0) die("cannot start users/cdb.tmp");

  buf_init(&b, in, inb, sizeof inb);
  while (!ended) {
    r = buf_line(&b, &line, LINE_MAX_);
    if (r == LINE_EOF) break;
    no++;
    if (r == LINE_ERR) die("cannot read users/assign");
    if (r == LINE_LONG) die_line(no, "line too long");
    if (r == LINE_OK) line.len--;
    if (!line.len || line.s[0] == '#') continue;
    r = assign_line(line.s, line.len, &key, &val, &why);
    if (r < 0) die_line(no, why);
    if (r == 0) { ended = 1; break; }
    if (key.len > 0xffffffffu || val.len > 0xffffffffu) die_line(no, "line too long");
    r = cdb_make_put(&cm, key.s, (unsigned)key.len, val.s, (unsigned)val.len, CDB_PUT_INSERT);
    if (r < 0) die("cannot write users/cdb.tmp");
    if (r > 0) die_line(no, "the same address or prefix appears twice");
  }
  if (!ended) die_line(no, "missing the final line '.'");
  if (cdb_make_finish(&cm) < 0 || fsync(out) < 0) die("cannot write users/cdb.tmp");
  if (close(out) < 0) die("cannot write users/cdb.tmp");
  if (rename("users/cdb.tmp", "users/cdb") < 0) die("cannot rename users/cdb.tmp to users/cdb");
  if (fsync_dir("users") < 0) log_fatal(PROG, 111, "cannot fsync users/");
  str_free(&line);
  str_free(&key);
  str_free(&val);
  return 0;
}
