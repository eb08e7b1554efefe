/* The fsync of mess/, in a child of qmail-queued: see qsync.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>    /* PIPE_BUF */
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "log.h"
#include "qsync.h"
#include "qwrite.h"

#define PROG "qmail-queued"

static int wfd = -1;
static pid_t child = -1;

static void sync_mess(void)
{
  if (qw_sync_mess()) {
    log_begin(PROG, "error"); log_kv("op", "fsync"); log_kv("dir", "mess");
    log_kv("error", strerror(errno)); log_end();
  }
}

/* Reads what is there, keeping an unfinished line for the next read;
 * one fsync for all of it. */
static void run(int rfd) __attribute__((noreturn));
static void run(int rfd)
{
  static char b[65536];
  size_t have = 0;

  for (;;) {
    ssize_t r = read(rfd, b + have, sizeof b - have);
    size_t end, whole;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) _exit(0);
    end = have + (size_t)r;
    for (whole = end; whole && b[whole - 1] != '\n'; whole--) {}
    if (whole) sync_mess();
    have = end - whole;
    if (have == sizeof b) have = 0;   /* no qid is that long: never from qs_send */
    memmove(b, b + whole, have);
  }
}

void qs_start(void)
{
  int p[2];

  if (pipe2(p, O_CLOEXEC) < 0) log_fatal(PROG, 111, "cannot make the sync pipe");
  child = fork();
  if (child < 0) log_fatal(PROG, 111, "cannot fork the sync process");
  if (child == 0) {
    if (dup2(p[0], 3) < 0 || close_range(4, ~0U, 0) < 0) log_fatal(PROG, 111, "cannot set up the sync process");
    prctl(PR_SET_NAME, "qmail-qsync");     /* what ps and top show for it */
    run(3);
  }
  close(p[0]);
  wfd = p[1];
}

void qs_send(const char *lines, size_t n)
{
  ssize_t w;
  if (!n) return;
  if (wfd >= 0) {
    do w = write(wfd, lines, n); while (w < 0 && errno == EINTR);
    if (w == (ssize_t)n) return;   /* a pipe write of at most PIPE_BUF is whole or nothing */
    log_begin(PROG, "error"); log_kv("op", "sync process"); log_kv("error", strerror(errno)); log_end();
    close(wfd);
    wfd = -1;
  }
  sync_mess();
}

void qs_stop(void)
{
  int status;
  if (wfd >= 0) close(wfd);
  wfd = -1;
  if (child > 0) while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
  child = -1;
}
