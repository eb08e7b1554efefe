/* The TLS half of a server session: see tlsd.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "buf.h"
#include "control.h"
#include "fdpass.h"
#include "ids.h"
#include "log.h"
#include "session.h"
#include "tlsio.h"
#include "tlscache.h"
#include "tlsctl.h"
#include "tlsd.h"

#define PROG "qmail-tlsd"

static struct tls_creds creds;  /* loaded per connection: no preload, or stale */
static const struct tls_creds *cr = &creds;     /* what the handshake uses */

/* What a resident listener decoded at start (tlsd_preload): the files'
 * identities when they were read, and their contents, decoded. */
#define STAMPS 3
static const char *const stamped[STAMPS] = { "control/tls", "control/tls/cert.pem", "control/tls/key.pem" };
struct stamp { dev_t dev; ino_t ino; mode_t mode; uid_t uid; off_t size; struct timespec mtim, ctim; };
struct preload {
  struct stamp st[STAMPS];
  int ok;
  struct tls_creds creds;
};
static struct preload *pre;     /* NULL: none */
static struct tlscache *cache;  /* NULL: no resumption */
static br_ssl_server_context sc;
static unsigned char iobuf[TLS_IOBUF];
static const char *remoteip = "unknown";
static int timeout = 600;     /* the relay's: the longest of qmail-smtpd's */
static int hs_timeout = 60;    /* the whole handshake's: timeoutidle, as before MAIL */

int tlsd_ids(const char *s, struct tlsd_ids *id)
{
  const char *c = strchr(s, ':');
  if (!c || scan_ulong(s, (size_t)(c - s), &id->uid) < 0
      || scan_ulong(c + 1, strlen(c + 1), &id->gid) < 0
      || id->uid > 0x7fffffffu || id->gid > 0x7fffffffu) return -1;
  return 0;
}

/* Takes the ids for good, with no supplementary group. A non-root run (a
 * single-uid instance) must already have them. */
static void become(const struct tlsd_ids *id, const char *who)
{
  uid_t u = (uid_t)id->uid;
  gid_t g = (gid_t)id->gid;
  if (getuid() == 0 ? ids_drop(u, g) < 0 : !ids_are(u, g)) log_fatal(PROG, 111, who);
}

/* What exec'ing qmail-smtpd did, without the exec. */
static void run_smtpd(const struct tlsd_ids *smtpdid) __attribute__((noreturn));
static void run_smtpd(const struct tlsd_ids *smtpdid)
{
  become(smtpdid, "cannot take the smtpd ids");
  prctl(PR_SET_NAME, "qmail-smtpd");    /* what ps and top show for a session */
  smtpd_session();
}

/* The child of the fork: fds 0/1 its end of the plaintext pair, fd 5 the
 * control socket, and no other descriptor of the parent's, as the exec
 * left qmail-smtpd. */
static void child(const int pl[2], const int ct[2], int implicit, const struct tlsd_ids *smtpdid)
  __attribute__((noreturn));
static void child(const int pl[2], const int ct[2], int implicit, const struct tlsd_ids *smtpdid)
{
  close(pl[0]);
  close(ct[0]);
  if (dup2(pl[1], 0) < 0 || dup2(pl[1], 1) < 0 || dup2(ct[1], TLSCTL_FD) < 0)
    log_fatal(PROG, 111, "cannot set up qmail-smtpd's descriptors");
  if (pl[1] != TLSCTL_FD) close(pl[1]);
  if (ct[1] != TLSCTL_FD) close(ct[1]);
  if (setenv(TLSCTL_ENV, implicit ? "implicit" : "starttls", 1) < 0) log_fatal(PROG, 111, "nomem");
  run_smtpd(smtpdid);
}

static void logtls(const char *result, const char *why)
{
  char hex[8];
  log_begin(PROG, "tls");
  log_kv("ip", remoteip);
  log_kv("result", result);
  if (why) log_kv("reason", why);
  else {
    log_kv("version", tls_version_name(br_ssl_engine_get_version(&sc.eng)));
    log_kv("cipher", tls_suite_name(sc.eng.session.cipher_suite, hex));
    if (*br_ssl_engine_get_server_name(&sc.eng)) log_kv("sni", br_ssl_engine_get_server_name(&sc.eng));
  }
  log_end();
}

/* Before STARTTLS: bytes both ways, until qmail-smtpd asks for TLS (1) or
 * either side ends (0). At most one chunk per direction is held here. */
static int plain_phase(int p, int ctl)
{
  static char n2p[8192], p2n[8192];
  size_t nlen = 0, plen = 0;
  int ctl_open = 1;

  if (fd_nonblock(0) < 0 || fd_nonblock(1) < 0 || fd_nonblock(p) < 0) return 0;
  for (;;) {
    struct pollfd f[5];
    int k = 0, i_nr = -1, i_pw = -1, i_pr = -1, i_nw = -1, i_c = -1, r;
    ssize_t n;
    char c[TLSCTL_INFO_MAX];
    int passed = -1;

    if (!nlen) { i_nr = k; f[k].fd = 0; f[k++].events = POLLIN; }
    else { i_pw = k; f[k].fd = p; f[k++].events = POLLOUT; }
    if (!plen) { i_pr = k; f[k].fd = p; f[k++].events = POLLIN; }
    else { i_nw = k; f[k].fd = 1; f[k++].events = POLLOUT; }
    if (ctl_open) { i_c = k; f[k].fd = ctl; f[k++].events = POLLIN; }
    r = poll(f, (nfds_t)k, timeout * 1000);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    if (i_c >= 0 && f[i_c].revents) {
      n = pkt_recv(ctl, c, sizeof c, &passed);
      if (passed >= 0) close(passed);     /* never expected from qmail-smtpd */
      if (n <= 0) ctl_open = 0;
      else if (c[0] == 'Y') {
        /* Every earlier reply is in p or p2n: qmail-smtpd wrote them
         * before "Y". Then the 220, and not one more plaintext byte. */
        ssize_t m;
        if (plen && fd_write_all(1, p2n, plen, timeout) < 0) return 0;
        while ((m = read(p, p2n, sizeof p2n)) > 0)
          if (fd_write_all(1, p2n, (size_t)m, timeout) < 0) return 0;
        if (fd_write_all(1, c + 1, (size_t)n - 1, timeout) < 0) return 0;
        return 1;             /* n2p, read but not forwarded, is dropped */
      }
      continue;
    }
    if (i_nr >= 0 && f[i_nr].revents) {
      n = read(0, n2p, sizeof n2p);
      if (n > 0) nlen = (size_t)n;
      else if (n == 0 || errno != EAGAIN) return 0;
    }
    if (i_pr >= 0 && f[i_pr].revents) {
      n = read(p, p2n, sizeof p2n);
      if (n > 0) plen = (size_t)n;
      else if (n == 0 || errno != EAGAIN) return 0;
    }
    if (i_pw >= 0 && f[i_pw].revents) {
      if (fd_write_all(p, n2p, nlen, timeout) < 0) return 0;
      nlen = 0;
    }
    if (i_nw >= 0 && f[i_nw].revents) {
      if (fd_write_all(1, p2n, plen, timeout) < 0) return 0;
      plen = 0;
    }
  }
}

/* The handshake, then the news for qmail-smtpd: the datagram "<version>
 * <cipher>", carrying pass (or no descriptor when pass < 0). 0 or -1. */
static int handshake(int ctl, int pass)
{
  char info[TLSCTL_INFO_MAX], hex[8];
  size_t n;

  if (!br_ssl_server_reset(&sc)) { logtls("failed", "cannot seed the random generator"); return -1; }
  if (tls_handshake(&sc.eng, 0, 1, hs_timeout, hs_timeout) < 0) {
    logtls("failed", errno == EPROTO ? tls_error_text(br_ssl_engine_last_error(&sc.eng))
                   : errno == ETIMEDOUT ? "timeout" : errno == EPIPE ? "eof" : strerror(errno));
    return -1;
  }
  logtls("ok", 0);
  n = strlen(tls_version_name(br_ssl_engine_get_version(&sc.eng)));
  memcpy(info, tls_version_name(br_ssl_engine_get_version(&sc.eng)), n);
  info[n++] = ' ';
  {
    const char *cn = tls_suite_name(sc.eng.session.cipher_suite, hex);
    size_t k = strlen(cn);
    if (k > sizeof info - n) k = sizeof info - n;
    memcpy(info + n, cn, k);
    n += k;
  }
  return pkt_send(ctl, info, n, pass);
}

void tlsd_prepare(void)
{
  br_ssl_server_init_full_ec(&sc, 0, 0, BR_KEYTYPE_EC, 0);
  tls_server_policy(&sc, iobuf, sizeof iobuf);
}

/* The key's half of what tlsd_prepare left out. */
static void server_init(void)
{
  const br_x509_certificate *ch = cr->chain;
  if (cr->keytype == BR_KEYTYPE_RSA)
    br_ssl_server_set_single_rsa(&sc, ch, cr->nchain, br_skey_decoder_get_rsa(&cr->key),
                                 BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN, br_rsa_private_get_default(),
                                 br_rsa_pkcs1_sign_get_default());
  else
    br_ssl_server_set_single_ec(&sc, ch, cr->nchain, br_skey_decoder_get_ec(&cr->key),
                                BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN, BR_KEYTYPE_EC,
                                br_ssl_engine_get_ec(&sc.eng), br_ecdsa_i31_sign_asn1);
  if (cache) br_ssl_server_set_cache(&sc, tlscache_class(cache));
}

/* The identities of control/tls and its files, never through a link:
 * any change to them (a new file, a write, chmod, chown) changes one. */
static int stamp_all(struct stamp st[STAMPS])
{
  size_t i;
  memset(st, 0, STAMPS * sizeof *st);       /* compared whole, padding too */
  for (i = 0; i < STAMPS; i++) {
    struct stat s;
    if (fstatat(AT_FDCWD, stamped[i], &s, AT_SYMLINK_NOFOLLOW) < 0) return -1;
    st[i].dev = s.st_dev;
    st[i].ino = s.st_ino;
    st[i].mode = s.st_mode;
    st[i].uid = s.st_uid;
    st[i].size = s.st_size;
    st[i].mtim = s.st_mtim;
    st[i].ctim = s.st_ctim;
  }
  return 0;
}

static size_t preload_bytes(void) { return (sizeof(struct preload) + 4095) / 4096 * 4096; }

void tlsd_preload(unsigned long ttl)
{
  int status;
  pid_t pid;
  struct preload *p = mmap(0, preload_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

  if (ttl && !(cache = tlscache_new(ttl))) log_fatal(PROG, 111, "cannot make the TLS session cache");
  if (p == MAP_FAILED) log_fatal(PROG, 111, "nomem");
  (void)madvise(p, preload_bytes(), MADV_DONTDUMP);
  /* Decoded in a child that then exits: no byte of the PEM or DER, no
   * decoder state, stays in the listener's stack or heap, which every
   * fork copies; only this mapping holds the key. */
  pid = fork();
  if (pid < 0) log_fatal(PROG, 111, "cannot fork");
  if (pid == 0) {
    const char *err;
    if (prefix_chdir() == 0 && stamp_all(p->st) == 0 && tls_creds_load(&p->creds, "control/tls", &err) == 0)
      p->ok = 1;
    _exit(0);
  }
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) ;
  if (p->ok && mprotect(p, preload_bytes(), PROT_READ) == 0) { pre = p; return; }
  /* Unusable at start: each connection loads the files, and says why. */
  explicit_bzero(p, sizeof *p);
  munmap(p, preload_bytes());
}

void tlsd_spare(void)
{
  if ((pre && madvise(pre, preload_bytes(), MADV_DONTFORK) < 0) || tlscache_nofork(cache) < 0)
    log_fatal(PROG, 111, "cannot keep the key out of the session");
}

/* As root, after the fork: the session process never maps the key. The
 * preloaded key while the files are those it was read from; else the
 * files, now. */
static int load_creds(void)
{
  const char *err = 0;
  struct stamp now[STAMPS];
  if (pre && stamp_all(now) == 0 && !memcmp(now, pre->st, sizeof now)) {
    cr = &pre->creds;
    return 0;
  }
  if (tls_creds_load(&creds, "control/tls", &err) == 0) return 0;
  log_begin(PROG, "fatal");
  log_kv("msg", err);
  log_end();
  return -1;
}

/* The relay for one session, on p (the plaintext pair, closed here) and
 * ctl: 0, or 1 when it failed. */
static int serve(int p, int ctl, int implicit)
{
  int fresh[2], r = 0;

  if (implicit) {
    if (handshake(ctl, -1) < 0) r = 1;
    else if (tls_relay(&sc.eng, 0, 1, p, p, timeout) < 0) r = 1;
    close(p);
    return r;
  }
  if (!plain_phase(p, ctl)) { close(p); return 0; }
  close(p);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fresh) < 0) return 1;
  if (handshake(ctl, fresh[1]) < 0) r = 1;
  close(fresh[1]);
  if (!r && tls_relay(&sc.eng, 0, 1, fresh[0], fresh[0], timeout) < 0) r = 1;
  close(fresh[0]);
  return r;
}

/* A timeout control file as qmail-smtpd reads it (0 or absent: def). */
static int seconds(const char *file, unsigned long def)
{
  unsigned long t;
  if (control_ulong(&t, file, def) < 0) log_fatal(PROG, 111, file);
  if (t == 0) t = def;
  return t > 86400 ? 86400 : (int)t;
}

void tlsd_session(int implicit, const struct tlsd_ids *tlsid, const struct tlsd_ids *smtpdid)
{
  int pl[2], ct[2], status, r, cmd;
  struct stat st;
  const char *ip;
  pid_t pid;

  signal(SIGPIPE, SIG_IGN);
  if ((ip = getenv("TCPREMOTEIP")) && *ip) remoteip = ip;
  if (prefix_chdir() < 0) log_fatal(PROG, 111, "cannot chdir to the prefix");
  /* qmail-smtpd times each phase out itself; the relay only outlasts it.
   * An idle client that never starts its handshake holds the listener's
   * slot no longer than one idle before MAIL would. */
  hs_timeout = seconds("control/timeoutidle", 60);
  timeout = seconds("control/timeoutsmtpd", 600);
  cmd = seconds("control/timeoutcommand", 300);
  if (timeout < cmd) timeout = cmd;
  if (timeout < hs_timeout) timeout = hs_timeout;

  if (fstatat(AT_FDCWD, "control/tls/cert.pem", &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
    if (implicit) log_die(PROG, EXIT_TEMP, "no control/tls/cert.pem for implicit TLS");
    run_smtpd(smtpdid);
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pl) < 0
      || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ct) < 0)
    log_fatal(PROG, 111, "cannot make socketpairs");
  pid = fork();
  if (pid < 0) log_fatal(PROG, 111, "cannot fork");
  if (pid == 0) child(pl, ct, implicit, smtpdid);
  close(pl[1]);
  close(ct[1]);
  if (load_creds() < 0) {
    close(pl[0]);
    r = 111;
  } else {
    become(tlsid, "cannot take the tls ids");
    server_init();
    r = serve(pl[0], ct[0], implicit);
  }
  /* The session sees the end of its input and quits; wait for it, so
   * that the count of sessions (tcpserver's, the listener's) stays true. */
  close(ct[0]);
  close(0);
  close(1);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) ;
  _exit(r);
}
