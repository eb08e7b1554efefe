#ifndef RJOURNAL_H
#define RJOURNAL_H
/* qmail-rspawn's journal of finished remote deliveries, PREFIX/rjournal/
 * (the remote uid's, group qmail, 2750; files 0640).
 *
 * qmail-send records a result in the queue only when the reply reaches
 * it; killed in between, it would hand the delivery out again and the
 * recipient would get it twice. So every delivery a worker reports done
 * ('K') is first appended here, fsynced, and only then answered:
 *
 *   "K <qid> <index>\n"        one line per delivered recipient
 *
 * Each run of qmail-rspawn writes its own file, "<ppid>.<pid>" (its parent
 * is qmail-start, which became qmail-send: the name tells qmail-send its
 * own spawner's file), and holds an exclusive flock on it while it lives.
 * qmail-send reads every other file at start, before it hands anything
 * out, waiting for the lock of a spawner still finishing deliveries, and
 * marks those recipients done (replaying twice is harmless). It cannot
 * write here and the remote uid cannot write the queue: files are removed
 * by qmail-rspawn, a file of an earlier run when qmail-send's first
 * request shows that it has read it, and its own file, rotated past
 * RJ_ROTATE bytes, once every reply it holds has been followed by a new
 * request on the same slot (qmail-send frees a slot only after it has
 * recorded the slot's reply). A torn last line is ignored by the reader.
 *
 * Without the directory (an instance installed before it existed) the
 * journal is off, logged once, and deliveries go on as before. */
#include <stddef.h>

#define RJ_DIR "rjournal"
#define RJ_ROTATE (1024 * 1024)

/* Creates and locks this run's file; logs and disables the journal on
 * failure. */
void rj_open(const char *prog);
/* spawner.h's answered and asked hooks. */
void rj_answered(unsigned long slot, const char *qid, const unsigned long long *idx, size_t n,
                 const char *items, size_t len);
void rj_asked(unsigned long slot);

#endif
