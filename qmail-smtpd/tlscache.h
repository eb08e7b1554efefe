#ifndef TLSCACHE_H
#define TLSCACHE_H
/* TLS session resumption (RFC 5246 session IDs) shared by the TLS
 * processes of one resident listener (qmail-smtpd-listen -t): BearSSL's
 * br_ssl_session_cache_class over one shared anonymous mapping.
 *
 * The listener's parent makes the mapping at start (MAP_SHARED |
 * MAP_ANONYMOUS: no file, no name, no uid can open it) and never reads
 * it; its spares inherit it and mark it MADV_DONTFORK before any fork
 * (tlscache_nofork), so the SMTP session and every other child of a
 * spare never map it. Only the per-connection TLS processes, under the
 * TLS uid, read and write it.
 *
 * Entries: a session ID (32 random bytes, made by BearSSL's generator
 * for each new session), version, suite, master secret, expiry. A
 * lookup is by the whole ID only: a client learns nothing of an entry
 * whose ID it does not present, and resuming one it overheard still
 * needs the master secret. Bounded: TLSCACHE_SIZE entries in 4-way
 * buckets chosen by the ID (random, so no client can aim at a bucket),
 * the entry nearest expiry replaced; entries expire ttl seconds after
 * the full handshake that made them (the monotonic clock, which all
 * processes share).
 *
 * Locking: a process-shared, robust mutex, taken with a deadline: a TLS
 * process that dies holding it leaves the cache wiped, one that keeps it
 * costs the others their resumption (a full handshake), never a hang. */
#include <bearssl.h>

#define TLSCACHE_SIZE 4096

struct tlscache;

/* The shared mapping for ttl seconds per entry: NULL (errno) when it
 * cannot be made. */
struct tlscache *tlscache_new(unsigned long ttl);
/* Keeps the mapping out of this process's future children. 0 or -1. */
int tlscache_nofork(struct tlscache *c);
/* The object to pass to br_ssl_server_set_cache: one per process (its
 * vtable pointer lives in this process's memory, not in the mapping). */
const br_ssl_session_cache_class **tlscache_class(struct tlscache *c);

#endif
