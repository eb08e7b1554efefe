/* qmail-newaliases: compiles PREFIX/control/aliases, or /etc/aliases when
 * that does not exist, into PREFIX/users/aliases.cdb (format in
 * aliases.h); see qmail-newaliases(8).
 *
 * As qmail-newu: a temporary file, fsynced, renamed, the directory
 * fsynced. A malformed entry keeps the old table; a name given twice
 * keeps its first entry (as Postfix's postalias). */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "aliases.h"
#include "atomic.h"
#include "buf.h"
#include "control.h"
#include "log.h"

#define PROG "qmail-newaliases"
#define LINE_MAX_ 8192
#define TMP "users/aliases.cdb.tmp"

static const char *source = "control/aliases";

static void die_line(unsigned long no, const char *why)
{
  unlink(TMP);
  log_die_line(PROG, 111, source, no, why);
}

static void die(const char *msg)
{
  int e = errno;
  unlink(TMP);
  errno = e;
  log_fatal(PROG, 111, msg);
}

/* Compiles the entry in e (starting at line no) into cm. */
static void put(struct cdb_make *cm, const str *e, unsigned long no, unsigned long *n)
{
  static str key, val;
  const char *why = 0;
  int r;

  if (alias_entry(e->s, e->len, &key, &val, &why) < 0) die_line(no, why);
  if (key.len > 0xffffffffu) die_line(no, "entry too long");
  r = cdb_make_put(cm, key.s, (unsigned)key.len, val.s, (unsigned)val.len, CDB_PUT_INSERT);
  if (r < 0) die("cannot write " TMP);
  if (r > 0) {
    log_begin(PROG, "warning");
    log_kv("file", source);
    log_ku("line", no);
    log_kv("msg", "the name appears twice: the first entry is kept");
    log_end();
    return;
  }
  (*n)++;
}

int main(void)
{
  static char inb[8192];
  struct cdb_make cm;
  str line = STR_INIT, entry = STR_INIT;
  unsigned long no = 0, start = 0, n = 0;
  int in, out, r;
  buf b;

  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  in = open(source, O_RDONLY | O_CLOEXEC);
  if (in < 0 && errno == ENOENT) {
    source = "/etc/aliases";
    in = open(source, O_RDONLY | O_CLOEXEC);
  }
  if (in < 0 && errno != ENOENT) log_fatal(PROG, 111, "cannot open the aliases file");
  /* Read-write: tinycdb reads back what it wrote to find duplicates. */
  out = open(TMP, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (out < 0) log_fatal(PROG, 111, "cannot create " TMP);
  if (fchmod(out, 0644) < 0) die("cannot chmod " TMP);
  if (cdb_make_start(&cm, out) < 0) die("cannot start " TMP);

  if (in >= 0) buf_init(&b, in, inb, sizeof inb);
  for (;;) {
    r = in >= 0 ? buf_line(&b, &line, LINE_MAX_) : LINE_EOF;
    if (r == LINE_ERR) die("cannot read the aliases file");
    if (r != LINE_EOF) no++;
    if (r == LINE_LONG) die_line(no, "line too long");
    if (r == LINE_OK) line.len--;
    if (r != LINE_EOF && line.len && line.s[0] == '#') continue;
    /* A line starting with a blank continues the entry. */
    if (r != LINE_EOF && line.len && (line.s[0] == ' ' || line.s[0] == '\t')) {
      if (!entry.len) die_line(no, "continuation line without an entry");
      if (entry.len + line.len > LINE_MAX_) die_line(no, "entry too long");
      if (str_catb(&entry, line.s, line.len) < 0) die("out of memory");
      continue;
    }
    if (entry.len) put(&cm, &entry, start, &n);
    entry.len = 0;
    if (r == LINE_EOF) break;
    start = no;
    if (line.len && str_copyb(&entry, line.s, line.len) < 0) die("out of memory");
  }
  if (cdb_make_finish(&cm) < 0 || fsync(out) < 0) die("cannot write " TMP);
  if (close(out) < 0) die("cannot write " TMP);
  if (rename(TMP, "users/aliases.cdb") < 0) die("cannot rename " TMP " to users/aliases.cdb");
  if (fsync_dir("users") < 0) log_fatal(PROG, 111, "cannot fsync users/");
  log_begin(PROG, "done");
  log_kv("file", source);
  log_ku("aliases", n);
  log_end();
  str_free(&line);
  str_free(&entry);
  return 0;
}
