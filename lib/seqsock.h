#ifndef SEQSOCK_H
#define SEQSOCK_H
/* The unix SOCK_SEQPACKET sockets of the resident services
 * (qmail-queued, qmail-smtpd-state): one datagram per message, the
 * peer's hang-up seen as a zero read.
 *
 * seqsock_connect connects to PREFIX/rel (rel relative to the compiled-in
 * prefix), non-blocking, so that a server whose backlog is full gives
 * EAGAIN at once instead of holding the caller. The socket
 * (close-on-exec), or -1 with errno (ENAMETOOLONG, ENOENT, ECONNREFUSED,
 * EAGAIN, ...).
 *
 * seqsock_listen binds a fresh socket at tmp, makes it mode 0666 (the
 * directory decides who may reach it), listens, and renames it over
 * name, so that a restart never leaves a moment without a socket file.
 * Both paths are relative to the current directory. The socket
 * (non-blocking, close-on-exec), or -1 with errno; *step names what
 * failed, for the log. */
int seqsock_connect(const char *rel);
int seqsock_listen(const char *tmp, const char *name, const char **step);

#endif
