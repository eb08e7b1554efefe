/* spf_dns_real: lib/spf's DNS interface on lib/dns, under a deadline.
 * Apart from lib/spf.c so that a fuzz target links the checker without a
 * resolver. */
#include <arpa/nameser.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include "date.h"
#include "dns.h"
#include "spf.h"

struct fwd {
  spf_each *each;
  void *arg;
};

static int fwd_txt(const char *txt, size_t len, void *v)
{
  struct fwd *f = v;
  return f->each(f->arg, txt, len);
}

/* A, AAAA: the address octets; MX, PTR: the target name. */
static int fwd_rr(const ns_msg *m, const ns_rr *rr, void *v)
{
  struct fwd *f = v;
  const unsigned char *rd = ns_rr_rdata(*rr);
  char name[DNS_NAMEMAX];
  size_t n;

  switch (ns_rr_type(*rr)) {
  case ns_t_a: case ns_t_aaaa:
    return f->each(f->arg, (const char *)rd, ns_rr_rdlen(*rr));
  case ns_t_mx:
    if (ns_rr_rdlen(*rr) < 3) return -1;
    rd += 2;
    break;
  case ns_t_ptr: break;
  default: return 0;
  }
  if (ns_name_uncompress(ns_msg_base(*m), ns_msg_end(*m), rd, name, sizeof name) < 0) return -1;
  n = strlen(name);
  if (n && name[n - 1] == '.') name[--n] = 0;
  if (n == 1 && name[0] == '.') name[--n] = 0;
  return f->each(f->arg, name, n);
}

static void on_alarm(int sig)
{
  (void)sig;
  dns_interrupt();
}

/* libresolv bounds its UDP waits (dns_deadline fits them in), but not
 * the TCP retry of a truncated answer: its connect and reads block. At
 * the deadline, and each second after, SIGALRM (without SA_RESTART:
 * connect fails with EINTR) shuts the TCP socket down (the reads, which
 * libresolv retries after EINTR, see its end), so the query ends
 * DNS_TEMP in time. */
static int arm(unsigned long long left_ms, struct sigaction *old)
{
  struct sigaction sa;
  struct itimerval it = { { 1, 0 }, { (time_t)(left_ms / 1000), (suseconds_t)(left_ms % 1000 * 1000) } };

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGALRM, &sa, old) < 0) return -1;
  if (setitimer(ITIMER_REAL, &it, 0) < 0) { sigaction(SIGALRM, old, 0); return -1; }
  return 0;
}

static void disarm(const struct sigaction *old)
{
  struct itimerval off;

  memset(&off, 0, sizeof off);
  setitimer(ITIMER_REAL, &off, 0);
  sigaction(SIGALRM, old, 0);
}

int spf_dns_real(void *ctx, const char *name, int type, spf_each *each, void *arg)
{
  struct spf_realdns *d = ctx;
  struct fwd f = { each, arg };
  struct sigaction old;
  unsigned long long now = mono_ms();
  int r;

  if (d->deadline_ms && now >= d->deadline_ms) return DNS_TEMP;
  if (d->deadline_ms && arm(d->deadline_ms - now, &old) < 0) return DNS_TEMP;
  dns_limits(d->per_query ? d->per_query : 1, 2);
  dns_deadline(d->deadline_ms);
  r = type == ns_t_txt ? dns_txt(name, fwd_txt, &f) : dns_lookup(name, type, fwd_rr, &f);
  dns_deadline(0);
  if (d->deadline_ms) disarm(&old);
  return r;
}
