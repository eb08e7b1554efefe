#ifndef SVC_H
#define SVC_H
/* Sending a command to an s6-supervised service: runs s6-svc (never
 * looked up in $PATH: the caller may be root) with one option on a
 * service directory, and waits for it.
 *
 *   svc_send("-a", "/var/qmail/service/qmail-send")   SIGALRM: flush
 *
 * 1 when s6-svc ran and exited 0; 0 when the directory is missing, no
 * s6-svc could be run, or it failed (typically: no supervisor, or the
 * caller may not write its control fifo, which is root's). */
int svc_send(const char *option, const char *dir);

#endif
