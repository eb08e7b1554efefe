#ifndef ATOMIC_H
#define ATOMIC_H
/* Durable replacement of a whole file: write dir/.name.<pid>.tmp, fsync it,
 * rename it over dir/name, fsync dir. Either the old or the new contents
 * survive a crash at any instant, never a mix. 0, or -1 with errno set and
 * the temporary file removed. */
#include <stddef.h>
#include <sys/types.h>

int atomic_write(const char *dir, const char *name, const void *p, size_t n, mode_t mode);

/* fsync the directory at path; 0 or -1. */
int fsync_dir(const char *path);

#endif
