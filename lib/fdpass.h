#ifndef FDPASS_H
#define FDPASS_H
/* One datagram on a SOCK_SEQPACKET unix socket, optionally carrying one
 * file descriptor (SCM_RIGHTS). Datagrams keep record boundaries, so a
 * reader never sees half a request.
 *
 * pkt_send: fd < 0 sends no descriptor. 0 or -1 (errno).
 * pkt_recv: returns the datagram's length (0 means the peer closed), or -1.
 *   *fd receives the passed descriptor (close-on-exec) or -1. A datagram
 *   longer than n is an error (EMSGSIZE) and its descriptor is closed. */
#include <stddef.h>
#include <sys/types.h>

int pkt_send(int sock, const void *p, size_t n, int fd);
ssize_t pkt_recv(int sock, void *p, size_t n, int *fd);

#endif
