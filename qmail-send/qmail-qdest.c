/* qmail-qdest DOMAIN...: asks qmail-send to reset the backoff of each
 * destination now; see qmail-qdest(8).
 *
 * A request is an empty file queue/flushdest/<domain>, the name checked
 * (dest_name_ok) and lowercased, then SIGUSR1 through s6-svc.
 * queue/flushdest belongs to a less trusted uid than root, so the request
 * is made relative to a descriptor of it opened without following a
 * symbolic link, with O_CREAT|O_EXCL|O_NOFOLLOW: an existing name (a
 * pending request, or anything planted) is never opened. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "control.h"
#include "log.h"
#include "send.h"
#include "svc.h"

#define PROG "qmail-qdest"
#define SERVICE "service/qmail-send"

static void lower(char *s)
{
  for (; *s; s++) if (*s >= 'A' && *s <= 'Z') *s = (char)(*s + 32);
}

int main(int argc, char **argv)
{
  int dir, i, fd, bad = 0;

  if (argc < 2) {
    errno = 0;
    log_usage(PROG, "usage: qmail-qdest DOMAIN...");
  }
  for (i = 1; i < argc; i++) {
    if (dest_name_ok(argv[i], strlen(argv[i]))) { lower(argv[i]); continue; }
    log_begin(PROG, "error"); log_kv("domain", argv[i]);
    log_kv("error", "not a domain name (letters, digits, '-', '.'; at most 255 bytes)"); log_end();
    bad = 1;
  }
  if (bad) return 100;
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  dir = open("queue/flushdest", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir < 0)
    log_fatal(PROG, 111, errno == ENOENT ? "no queue/flushdest (install, or qmail-qfix, creates it)"
                                      : "cannot open queue/flushdest (run as root or the instance's user)");
  for (i = 1; i < argc; i++) {
    fd = openat(dir, argv[i], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
      log_begin(PROG, "error"); log_kv("domain", argv[i]); log_kv("op", "request");
      log_kv("error", strerror(errno)); log_end();
      return 111;
    }
    if (fd >= 0) close(fd);
    log_begin(PROG, "request"); log_kv("domain", argv[i]); log_end();
  }
  close(dir);
  if (svc_send("-1", SERVICE)) {
    log_begin(PROG, "wake"); log_kv("via", "s6-svc -1 " SERVICE); log_end();
  } else {
    log_begin(PROG, "wake"); log_kv("via", "none");
    log_kv("msg", "could not signal qmail-send: send it SIGUSR1 (s6-svc -1 PREFIX/" SERVICE
                  "); else it acts on the request within 10 minutes");
    log_end();
  }
  return 0;
}
