/* STARTTLS for qmail-remote, in its own uid: policies and the client
 * handshake (remote.h, "tlsclient.c").
 *
 * After the handshake a forked child of the same process runs the TLS
 * engine (tls_relay) between the server's socket and a socketpair, and
 * the SMTP client goes on over the socketpair: the client code stays a
 * plain descriptor reader. The child keeps only the two descriptors it
 * relays (and stderr), so no pipe of qmail-rspawn's waits for it.
 *
 * Certificates: a wrapper around BearSSL's X.509 "minimal" engine also
 * decodes the server's own certificate, for the subject in the log and,
 * under may/encrypt, for its key: there the chain's verdict is logged
 * but not enforced. Under verify the minimal engine decides: chain to a
 * trust anchor of control/tlsca (tests) or the system bundle, validity
 * dates, and the name of the host connected to (also sent as SNI). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "log.h"
#include "metrics.h"
#include "dane.h"
#include "remote.h"
#include "tlsio.h"

#define SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

static br_ssl_client_context cc;
static br_x509_minimal_context xc;
static struct tls_anchors anchors;
static unsigned char iobuf[TLS_IOBUF];

static const char *const names[] = { "none", "may", "encrypt", "verify", "dane", "dane-only" };

const char *tls_policy_name(int policy)
{
  return policy >= 0 && policy < (int)(sizeof names / sizeof names[0]) ? names[policy] : "?";
}

int tls_policy(const str *lines, const char *domain, int *policy)
{
  const char *p = lines->s, *end;
  size_t dl = strlen(domain);
  int found = 0, k;

  *policy = TLS_MAY;
  if (!lines->len) return 0;    /* no file: s may be NULL */
  end = lines->s + lines->len;
  for (; p < end; p += strlen(p) + 1) {
    const char *colon = strrchr(p, ':');
    size_t kl;
    if (!colon) return -1;
    kl = (size_t)(colon - p);
    if (kl ? kl == dl && !strncasecmp(p, domain, dl) : !found) {
      for (k = 0; k < (int)(sizeof names / sizeof names[0]); k++)
        if (!strcasecmp(colon + 1, names[k])) break;
      if (k == (int)(sizeof names / sizeof names[0])) return -1;
      *policy = k;
      if (kl) return 1;          /* the domain's own line wins */
      found = 1;
    }
  }
  return found;
}

/* ---- the X.509 wrapper ---- */
struct xwrap {
  const br_x509_class *vtable;
  const br_x509_class **inner;     /* the minimal engine, or dane.c's */
  int verify;                      /* the inner engine decides */
  int n;                           /* certificates seen */
  unsigned verdict;                /* the minimal engine's */
  br_x509_decoder_context dec;     /* the server's own certificate */
  unsigned char dn[1024];
  size_t dnlen;
  int dnover;
};
static struct xwrap xw;
#define XMIN (xw.inner)

static void dn_add(void *ctx, const void *p, size_t n)
{
  struct xwrap *w = ctx;
  if (w->dnover || n > sizeof w->dn - w->dnlen) { w->dnover = 1; return; }
  memcpy(w->dn + w->dnlen, p, n);
  w->dnlen += n;
}

static void x_start_chain(const br_x509_class **ctx, const char *name)
{
  xw.n = 0;
  xw.dnlen = 0;
  xw.dnover = 0;
  br_x509_decoder_init(&xw.dec, dn_add, &xw);
  (*XMIN)->start_chain(XMIN, name);
}
static void x_start_cert(const br_x509_class **ctx, uint32_t len) { (*XMIN)->start_cert(XMIN, len); }
static void x_append(const br_x509_class **ctx, const unsigned char *b, size_t len)
{
  if (xw.n == 0) br_x509_decoder_push(&xw.dec, b, len);
  (*XMIN)->append(XMIN, b, len);
}
static void x_end_cert(const br_x509_class **ctx) { xw.n++; (*XMIN)->end_cert(XMIN); }
static unsigned x_end_chain(const br_x509_class **ctx)
{
  xw.verdict = (*XMIN)->end_chain(XMIN);
  if (xw.verify) return xw.verdict;
  return br_x509_decoder_get_pkey(&xw.dec) ? 0 : BR_ERR_X509_EMPTY_CHAIN;
}
static const br_x509_pkey *x_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
  if (xw.verify) return (*XMIN)->get_pkey((const br_x509_class *const *)XMIN, usages);
  if (usages) *usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
  return br_x509_decoder_get_pkey(&xw.dec);
}
static const br_x509_class xwrap_class = {
  sizeof(struct xwrap), x_start_chain, x_start_cert, x_append, x_end_cert, x_end_chain, x_get_pkey
};

/* The subject's CN (2.5.4.3) from the DER DN, printable bytes only. */
static void subject_cn(char *out, size_t max)
{
  static const unsigned char oid[] = { 0x06, 0x03, 0x55, 0x04, 0x03 };
  size_t i, k, len;
  *out = 0;
  if (xw.dnover) return;
  for (i = 0; i + sizeof oid + 2 <= xw.dnlen; i++) {
    if (memcmp(xw.dn + i, oid, sizeof oid)) continue;
    len = xw.dn[i + sizeof oid + 1];
    if (len >= 0x80 || i + sizeof oid + 2 + len > xw.dnlen) return;
    for (k = 0; k < len && k + 1 < max; k++) {
      unsigned char c = xw.dn[i + sizeof oid + 2 + k];
      out[k] = (char)(c > ' ' && c < 127 ? c : '?');
    }
    out[k] = 0;
    return;
  }
}

/* Closes every descriptor but a, b and stderr (the relay child): close_range
 * over the gaps, not a close per possible descriptor (up to the limit on
 * open files, 65,536 system calls a connection). */
static void close_others(int a, int b)
{
  int keep[3] = { 2, a < b ? a : b, a < b ? b : a }, i, t;
  unsigned lo = 0;
  if (keep[1] < 2) { t = keep[1]; keep[1] = keep[0]; keep[0] = t; }
  if (keep[2] < keep[1]) { t = keep[2]; keep[2] = keep[1]; keep[1] = t; }
  for (i = 0; i < 3; i++) {
    if (keep[i] < 0 || (unsigned)keep[i] < lo) continue;
    if ((unsigned)keep[i] > lo) close_range(lo, (unsigned)keep[i] - 1, 0);
    lo = (unsigned)keep[i] + 1;
  }
  close_range(lo, ~0U, 0);
}

int tls_client_start(int fd, const char *ip, const char *host, int literal, int policy,
                     int timeout, int total, struct tlsconn *t, const char **err)
{
  char hex[8], cn[128];
  int sp[2], e;
  const char *why = 0;

  t->fd = -1;
  t->pid = -1;
  xw.verify = policy == TLS_VERIFY || policy == TLS_DANE;
  xw.verdict = 0;
  /* No name to check: any valid certificate would pass (deliver.c refuses
   * such a route before connecting). */
  if (policy == TLS_VERIFY && literal) { *err = "TLS policy verify needs a host name, not an address literal"; return -1; }
  if (policy == TLS_VERIFY) {
    const char *file = access("control/tlsca", F_OK) == 0 ? "control/tlsca" : SYSTEM_CA;
    if (tls_anchors_load(&anchors, file, err) < 0) return -1;
  } else {
    anchors.n = 0;
  }
  br_ssl_client_init_full(&cc, &xc, anchors.ta, anchors.n);
  /* Required TLS gets TLS 1.2 only; opportunistic TLS takes what it can. */
  if (policy >= TLS_ENCRYPT) br_ssl_engine_set_versions(&cc.eng, BR_TLS12, BR_TLS12);
  xw.vtable = &xwrap_class;
  /* DANE: the TLSA records of deliver.c's last dane_lookup decide. */
  xw.inner = policy == TLS_DANE ? dane_x509() : &xc.vtable;
  br_ssl_engine_set_x509(&cc.eng, &xw.vtable);
  br_ssl_engine_set_buffer(&cc.eng, iobuf, sizeof iobuf, 1);
  if (!br_ssl_client_reset(&cc, literal ? 0 : policy == TLS_DANE ? dane_base() : host, 0)) { *err = "cannot seed the random generator"; return -1; }
  if (tls_handshake(&cc.eng, fd, fd, timeout, total) < 0) {
    e = br_ssl_engine_last_error(&cc.eng);
    why = errno == EPROTO ? (xw.verdict && policy == TLS_DANE ? dane_error()
                             : tls_error_text(xw.verdict && xw.verify ? (int)xw.verdict : e))
        : errno == ETIMEDOUT ? "timeout" : errno == EPIPE ? "connection closed" : strerror(errno);
  }
  subject_cn(cn, sizeof cn);
  metrics_inc(MX_TLS_OUT + (unsigned)policy * MO_N + (why ? MO_FAILED : MO_OK));
  log_begin("qmail-remote", "tls");
  log_kv("ip", ip);
  log_kv("host", host);
  log_kv("policy", names[policy]);
  log_kv("result", why ? "failed" : "ok");
  if (why) log_kv("reason", why);
  else {
    log_kv("version", tls_version_name(br_ssl_engine_get_version(&cc.eng)));
    log_kv("cipher", tls_suite_name(cc.eng.session.cipher_suite, hex));
  }
  if (*cn) log_kv("subject", cn);
  log_kv("chain", !xw.verify ? "unchecked" : xw.verdict == 0 ? "verified"
                 : policy == TLS_DANE ? dane_error() : tls_error_text((int)xw.verdict));
  log_kv("tls", policy != TLS_DANE ? names[policy] : dane_matched() ? dane_matched() : "dane");
  log_end();
  if (why) { *err = why; return -1; }

  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) { *err = "cannot make a socketpair"; return -1; }
  t->pid = fork();
  if (t->pid < 0) { close(sp[0]); close(sp[1]); *err = "cannot fork"; return -1; }
  if (t->pid == 0) {
    signal(SIGPIPE, SIG_IGN);
    close_others(fd, sp[1]);
    _exit(tls_relay(&cc.eng, fd, fd, sp[1], sp[1], timeout) < 0 ? 1 : 0);
  }
  close(sp[1]);
  t->fd = sp[0];
  return 0;
}

void tls_client_end(struct tlsconn *t, int abort)
{
  int status;
  if (t->fd >= 0) close(t->fd);
  t->fd = -1;
  /* The relay would go on sending what the socketpair still holds, at
   * the pace of the server that made us give up. */
  if (abort && t->pid > 0) kill(t->pid, SIGKILL);
  if (t->pid > 0) while (waitpid(t->pid, &status, 0) < 0 && errno == EINTR) ;
  t->pid = -1;
}
