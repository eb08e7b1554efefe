#ifndef BUF_H
#define BUF_H
/* Buffered I/O on a file descriptor, with an optional per-operation timeout.
 *
 * A buf owns no memory: the caller supplies the array (static or on the
 * stack), so a program's I/O costs no allocation. One buf is used either
 * for reading or for writing, never both. EINTR and short writes are
 * handled here once, so callers never see them.
 *
 * Invariant (read side): 0 <= pos <= end <= cap; bytes [pos,end) are unread.
 * Invariant (write side): bytes [0,end) are waiting to be written.
 */
#include <stddef.h>
#include <sys/types.h>
#include "str.h"

typedef struct {
  int fd;
  char *x;
  size_t cap;
  size_t pos;
  size_t end;
  int timeout;   /* seconds; 0 means wait for ever */
} buf;

#define BUF_INIT(fd, array, size) { (fd), (array), (size), 0, 0, 0 }

void buf_init(buf *b, int fd, char *array, size_t size);

/* Reading. buf_fill returns bytes added (>0), 0 at EOF, -1 on error with
 * errno set (ETIMEDOUT when the timeout passed with nothing to read). */
MUST_USE ssize_t buf_fill(buf *b);
/* Copies up to n bytes; returns as buf_fill. */
MUST_USE ssize_t buf_get(buf *b, void *dst, size_t n);
/* Bytes already buffered and not yet consumed. */
size_t buf_ready(const buf *b);

/* buf_line reads one line into line (replacing its contents), including
 * its terminating "\n". A line of more than max bytes (terminator included)
 * is consumed up to and including its "\n" and discarded: line is left
 * empty and LINE_LONG is returned, so an overlong line is reported, never
 * silently truncated or split. */
enum {
  LINE_OK = 0,       /* a whole line ending in "\n" */
  LINE_LONG = 1,     /* over max; consumed and discarded */
  LINE_EOF = 2,      /* clean EOF before any byte of a line */
  LINE_PARTIAL = 3,  /* EOF after some bytes without "\n"; they are in line */
  LINE_ERR = -1      /* read error, ENOMEM, or ETIMEDOUT; errno set */
};
MUST_USE int buf_line(buf *b, str *line, size_t max);

/* Writing. All return 0 or -1 with errno set. */
MUST_USE int buf_put(buf *b, const void *p, size_t n);
MUST_USE int buf_puts(buf *b, const char *s);
MUST_USE int buf_putu(buf *b, unsigned long long u);
MUST_USE int buf_flush(buf *b);

/* Whole-fd helpers that retry on EINTR and short counts. */
MUST_USE int fd_write_all(int fd, const void *p, size_t n, int timeout);
/* Waits until fd is readable (want_write 0) or writable; 0, or -1 with
 * errno ETIMEDOUT or poll's error. timeout 0 waits for ever. */
int fd_wait(int fd, int want_write, int timeout);
/* Sets O_NONBLOCK, keeping fd's other status flags. 0 or -1. */
int fd_nonblock(int fd);
/* Reads n bytes at offset off: 0, or -1 with errno; EINVAL when the file
 * ends first (it is shorter than what described it, or shrank). */
int pread_all(int fd, void *p, size_t n, off_t off);
/* Reads fd from its offset to its end into out, replacing out's contents,
 * and never more than max bytes into memory: 0, or -1 with errno; EFBIG
 * when there is more, out then holding the first max bytes. fd stays open. */
int fd_read_file(int fd, str *out, size_t max);
/* The same for the file at path (opened O_RDONLY | O_CLOEXEC | O_NONBLOCK,
 * so that a FIFO cannot block, and closed); errno ENOENT when there is none. */
int file_read(const char *path, str *out, size_t max);

#endif
