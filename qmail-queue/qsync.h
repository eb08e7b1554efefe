#ifndef QSYNC_H
#define QSYNC_H
/* qmail-queued's second fsync, off its loop: the fsync of queue/mess
 * after a turn's renames (qpool.h: it makes them durable, so that no
 * recovery has to bring them back) is made by a child process, so that the loop takes in and commits the next messages
 * while the disk works. The lines that arrive during one fsync share the
 * next: a group commit of its own. The trigger does not wait for it:
 * qmail-queued pulls it itself, right after the renames.
 *
 * Contract: the child is forked by qs_start, as the same uid, in
 * PREFIX/queue, with no descriptor but fds 0-2 and its end of a pipe on
 * fd 3 (not the socket, not s6's notification fd). It reads
 * "<qid>\n" lines, written by qs_send only after their renames; for
 * everything read it fsyncs mess/ once. On EOF it finishes what it has
 * and exits 0. If the child is gone, qs_send does the same in the caller's process. A full pipe
 * (some 3,000 qids behind a slow disk) blocks the caller: backpressure.
 */
#include <stddef.h>

/* Forks the child. Exits 111 if it cannot. */
void qs_start(void);
/* Hands on whole lines, n <= PIPE_BUF, in one atomic write. */
void qs_send(const char *lines, size_t n);
/* Closes the pipe and waits for the child to finish. */
void qs_stop(void);

#endif
