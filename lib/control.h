#ifndef CONTROL_H
#define CONTROL_H
/* Control files and cdb tables, read relative to the current directory.
 * Programs chdir to the compiled-in prefix first (prefix_chdir), so every
 * path is fixed at build time and none comes from the environment.
 *
 * Return convention: 1 found, 0 absent (ENOENT), -1 other error (errno).
 */
#include <stddef.h>
#include "str.h"

extern const char auto_prefix[];

/* chdir(auto_prefix); 0 or -1. */
int prefix_chdir(void);

/* First line of path, without its line end and trailing white space. */
int control_line(str *out, const char *path);
/* Like control_line, as an unsigned decimal; *out = def when absent.
 * A malformed number is an error (EINVAL), never silently 0. */
int control_ulong(unsigned long *out, const char *path, unsigned long def);
/* Every non-empty line not starting with '#', trailing white space removed,
 * each followed by a NUL, concatenated in out. */
int control_lines(str *out, const char *path);

/* cdb lookups: 1 found, 0 not, -1 with errno (EIO: a damaged table;
 * EINVAL: a key over 4 GB; EFBIG: a value over 2 GB). */
struct cdb;
/* In the cdb file at path (none: 0); the value goes to val. */
int cdb_lookup(const char *path, const void *key, size_t klen, str *val);
/* In the cdb file open on fd; the value goes to val. */
int cdb_getfd(int fd, const void *key, size_t klen, str *val);
/* In an open table (cdb_init); *v points into its map, *vn bytes. */
int cdb_value(struct cdb *c, const void *key, size_t klen, const char **v, size_t *vn);

/* Strict unsigned decimal: digits only, no sign, no overflow; 0 or -1. */
int scan_ulong(const char *s, size_t n, unsigned long long *out);

#endif
