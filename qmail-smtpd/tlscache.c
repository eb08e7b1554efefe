/* The shared TLS session cache: see tlscache.h. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "date.h"
#include "tlscache.h"

#define WAYS 4
#define LOCK_MS 50      /* longer than any holder needs: a few memcpy */

struct entry {
  unsigned char id[32];
  unsigned char master[48];
  uint16_t version, suite;
  unsigned long long expires;   /* mono_ms; 0: free */
};

struct tlscache {
  pthread_mutex_t lock;
  unsigned long long ttl_ms;
  struct entry e[TLSCACHE_SIZE];
};

struct user {
  const br_ssl_session_cache_class *vtable;
  struct tlscache *c;
};

static size_t cache_bytes(void)
{
  size_t pg = 4096;
  return (sizeof(struct tlscache) + pg - 1) / pg * pg;
}

struct tlscache *tlscache_new(unsigned long ttl)
{
  pthread_mutexattr_t a;
  struct tlscache *c = mmap(0, cache_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  int r;

  if (c == MAP_FAILED) return 0;
  (void)madvise(c, cache_bytes(), MADV_DONTDUMP);     /* master secrets */
  c->ttl_ms = (unsigned long long)ttl * 1000;
  if ((r = pthread_mutexattr_init(&a)) == 0) {
    if ((r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0
        && (r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0)
      r = pthread_mutex_init(&c->lock, &a);
    pthread_mutexattr_destroy(&a);
  }
  if (r) {
    munmap(c, cache_bytes());
    errno = r;
    return 0;
  }
  return c;
}

int tlscache_nofork(struct tlscache *c)
{
  return c ? madvise(c, cache_bytes(), MADV_DONTFORK) : 0;
}

/* 0 with the lock held, -1 when it could not be had in time. A holder
 * that died may have left an entry half written: all are dropped. */
static int lock(struct tlscache *c)
{
  struct timespec t;
  int r;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_nsec += LOCK_MS * 1000000L;
  if (t.tv_nsec >= 1000000000L) { t.tv_sec++; t.tv_nsec -= 1000000000L; }
  r = pthread_mutex_timedlock(&c->lock, &t);
  if (r == EOWNERDEAD) {
    explicit_bzero(c->e, sizeof c->e);
    r = pthread_mutex_consistent(&c->lock);
  }
  return r ? -1 : 0;
}

/* The first entry of id's bucket. */
static struct entry *bucket(struct tlscache *c, const unsigned char id[32])
{
  uint64_t h;
  memcpy(&h, id, sizeof h);
  return c->e + (size_t)(h % (TLSCACHE_SIZE / WAYS)) * WAYS;
}

static void save(const br_ssl_session_cache_class **ctx, br_ssl_server_context *sc,
                 const br_ssl_session_parameters *p)
{
  struct tlscache *c = ((struct user *)(void *)ctx)->c;
  unsigned long long now = mono_ms();
  struct entry *b, *victim;
  size_t i;

  (void)sc;
  if (p->session_id_len != 32 || !c->ttl_ms || lock(c) < 0) return;
  b = bucket(c, p->session_id);
  victim = b;
  for (i = 0; i < WAYS; i++) {
    if (b[i].expires <= now || !memcmp(b[i].id, p->session_id, 32)) { victim = b + i; break; }
    if (b[i].expires < victim->expires) victim = b + i;
  }
  memcpy(victim->id, p->session_id, 32);
  memcpy(victim->master, p->master_secret, 48);
  victim->version = p->version;
  victim->suite = p->cipher_suite;
  victim->expires = now + c->ttl_ms;
  pthread_mutex_unlock(&c->lock);
}

static int load(const br_ssl_session_cache_class **ctx, br_ssl_server_context *sc,
                br_ssl_session_parameters *p)
{
  struct tlscache *c = ((struct user *)(void *)ctx)->c;
  unsigned long long now = mono_ms();
  struct entry *b;
  size_t i;
  int found = 0;

  (void)sc;
  if (p->session_id_len != 32 || lock(c) < 0) return 0;
  b = bucket(c, p->session_id);
  for (i = 0; i < WAYS && !found; i++) {
    if (b[i].expires <= now || memcmp(b[i].id, p->session_id, 32)) continue;
    memcpy(p->master_secret, b[i].master, 48);
    p->version = b[i].version;
    p->cipher_suite = b[i].suite;
    found = 1;
  }
  pthread_mutex_unlock(&c->lock);
  return found;
}

static const br_ssl_session_cache_class vtable = { sizeof(struct user), save, load };

const br_ssl_session_cache_class **tlscache_class(struct tlscache *c)
{
  static struct user u;
  u.vtable = &vtable;
  u.c = c;
  return &u.vtable;
}
