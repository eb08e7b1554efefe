#ifndef WORKER_H
#define WORKER_H
/* The delivery worker of qmail-lspawn (lib/spawnpool.h): forked by the
 * resident qmail-lspawn for one uid and gid, it takes them at once and
 * then delivers job after job (qmail-local/job.h) read from fd 0, until
 * EOF there (exit 0).
 *
 * As root it sets gid, no supplementary groups and uid before reading a
 * job, and refuses uid 0; not root (single-uid mode) it only checks that
 * uid is its own. A job for another uid or gid is refused ('Z'). When it
 * cannot take the uid, it answers its first job 'Z' and exits 111.
 *
 * Nothing of one delivery reaches the next: at start and after each job,
 * before it answers, it returns to the same state: every descriptor but
 * 0, 1 and 2 closed (the message with them), cwd "/", the umask it
 * started with, no alarm pending, no signal blocked, SIGPIPE ignored and SIGALRM at its default
 * (the only dispositions deliver() changes). deliver() keeps nothing else
 * between calls but scratch buffers, and never touches the environment:
 * programs and qmail-queue get environments of their own. */

/* timeout: seconds a "|program" may run (struct delivery). */
void worker_serve(unsigned long long uid, unsigned long long gid, const char *defaultdelivery,
                  unsigned long timeout, int root) __attribute__((noreturn));

#endif
