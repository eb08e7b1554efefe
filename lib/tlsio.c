/* Driving a BearSSL engine over descriptors (see tlsio.h).
 *
 * The engine says what it can do next (br_ssl_engine_current_state):
 * send records, take records, take plaintext, give plaintext. Each turn
 * polls exactly the descriptors that can serve one of those wants, then
 * does one read or write per ready descriptor and acknowledges it to the
 * engine. Descriptors are non-blocking, so a partial write never stalls
 * the other direction; a turn with nothing ready within the timeout ends
 * the relay. A handshake also ends at its overall deadline: a peer that
 * sends its flight a byte at a time makes progress at every turn, and
 * would otherwise hold the connection for ever. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "buf.h"
#include "date.h"
#include "tlsio.h"

/* A flight ends with records of different types (ChangeCipherSpec, then
 * Finished), each its own write. With Nagle on, the second waits for the
 * peer's ACK of the first, and the peer, waiting for Finished, delays that
 * ACK (40 ms on Linux): a handshake then costs 40 ms of idle time. Not a
 * TCP socket (a test's socketpair): nothing to do. */
static void nodelay(int fd)
{
  int on = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

/* A resumed handshake ends with the client's flight, which the server
 * does not answer: its ACK is delayed (40 ms on Linux), and a client with
 * Nagle's algorithm on holds its first command until that ACK. Acked at
 * once when the handshake is done. */
static void ack_now(int fd)
{
  int on = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

static int again(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

static int proto_error(void)
{
  errno = EPROTO;
  return -1;
}

/* One engine loop. handshake: stop as soon as application data may flow
 * (pr/pw unused), at the latest total seconds from now. Otherwise relay
 * until an end. */
static int run(br_ssl_engine_context *e, int nr, int nw, int pr, int pw, int timeout,
               int total, int handshake)
{
  int in_open = !handshake, out_open = !handshake, closing = 0;
  int ms = timeout > 0 && timeout < 86400 ? timeout * 1000 : 86400 * 1000;
  /* The handshake's end, on the monotonic clock. */
  long long end = (long long)mono_ms() + 1000LL * (total > 0 && total < 86400 ? total : 86400);

  if (fd_nonblock(nr) < 0 || fd_nonblock(nw) < 0) return -1;
  if (handshake) nodelay(nw);   /* a relay always follows a handshake on nw */
  if (!handshake && (fd_nonblock(pr) < 0 || fd_nonblock(pw) < 0)) return -1;
  for (;;) {
    struct pollfd p[4];
    int np = 0, isr = -1, isw = -1, ipr = -1, ipw = -1, r, wait = ms;
    long long left = handshake ? end - (long long)mono_ms() : 0;
    unsigned st = br_ssl_engine_current_state(e);
    unsigned char *b;
    size_t len;
    ssize_t k;

    if (st & BR_SSL_CLOSED) return br_ssl_engine_last_error(e) == BR_ERR_OK ? 0 : proto_error();
    if (handshake && (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP))) {
      ack_now(nr);
      return 0;
    }
    /* After our close_notify is out, the peer's answer is not awaited. */
    if (closing && !(st & BR_SSL_SENDREC)) return 0;
    if (st & BR_SSL_SENDREC) { isw = np; p[np].fd = nw; p[np++].events = POLLOUT; }
    if (st & BR_SSL_RECVREC) { isr = np; p[np].fd = nr; p[np++].events = POLLIN; }
    if ((st & BR_SSL_SENDAPP) && in_open) { ipr = np; p[np].fd = pr; p[np++].events = POLLIN; }
    if (st & BR_SSL_RECVAPP) {
      if (!out_open) {        /* nobody reads: drop it */
        br_ssl_engine_recvapp_buf(e, &len);
        br_ssl_engine_recvapp_ack(e, len);
        continue;
      }
      ipw = np; p[np].fd = pw; p[np++].events = POLLOUT;
    }
    if (!np) return proto_error();   /* the engine wants nothing we can give */
    if (handshake && left <= 0) { errno = ETIMEDOUT; return -1; }
    if (handshake && left < wait) wait = (int)left;
    r = poll(p, (nfds_t)np, wait);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) { errno = ETIMEDOUT; return -1; }

    if (isw >= 0 && p[isw].revents) {
      b = br_ssl_engine_sendrec_buf(e, &len);
      k = write(nw, b, len);
      if (k > 0) br_ssl_engine_sendrec_ack(e, (size_t)k);
      else if (k < 0 && !again()) return -1;
      continue;               /* the state changed: look again */
    }
    if (isr >= 0 && p[isr].revents) {
      b = br_ssl_engine_recvrec_buf(e, &len);
      k = read(nr, b, len);
      if (k > 0) br_ssl_engine_recvrec_ack(e, (size_t)k);
      else if (k == 0) {
        if (handshake) { errno = EPIPE; return -1; }
        return 0;             /* the peer is gone; SMTP has its own end */
      } else if (!again()) return -1;
      continue;
    }
    if (ipw >= 0 && p[ipw].revents) {
      b = br_ssl_engine_recvapp_buf(e, &len);
      k = write(pw, b, len);
      if (k > 0) br_ssl_engine_recvapp_ack(e, (size_t)k);
      else if (k < 0 && !again()) {
        out_open = 0;         /* the reader left: say goodbye */
        in_open = 0;
        closing = 1;
        br_ssl_engine_close(e);
      }
      continue;
    }
    if (ipr >= 0 && p[ipr].revents) {
      b = br_ssl_engine_sendapp_buf(e, &len);
      k = read(pr, b, len);
      if (k > 0) {
        br_ssl_engine_sendapp_ack(e, (size_t)k);
        br_ssl_engine_flush(e, 0);
      } else if (k == 0 || !again()) {
        in_open = 0;
        closing = 1;
        br_ssl_engine_close(e);
      }
    }
  }
}

int tls_handshake(br_ssl_engine_context *e, int nr, int nw, int timeout, int total)
{
  return run(e, nr, nw, -1, -1, timeout, total, 1);
}

int tls_relay(br_ssl_engine_context *e, int nr, int nw, int pr, int pw, int timeout)
{
  return run(e, nr, nw, pr, pw, timeout, 0, 0);
}

const char *tls_version_name(unsigned v)
{
  switch (v) {
  case BR_TLS12: return "TLS1.2";
  case BR_TLS11: return "TLS1.1";
  case BR_TLS10: return "TLS1.0";
  default: return "TLS?";
  }
}

static const struct { unsigned id; const char *name; } suites[] = {
  { BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-ECDSA-CHACHA20-POLY1305" },
  { BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-RSA-CHACHA20-POLY1305" },
  { BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ECDHE-ECDSA-AES256-GCM-SHA384" },
  { BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "ECDHE-RSA-AES256-GCM-SHA384" },
  { BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256" },
  { BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ECDHE-RSA-AES128-GCM-SHA256" },
};
#define NSUITES (sizeof suites / sizeof suites[0])

const char *tls_suite_name(unsigned suite, char hex[8])
{
  size_t i;
  for (i = 0; i < NSUITES; i++)
    if (suites[i].id == suite) return suites[i].name;
  snprintf(hex, 8, "0x%04X", suite & 0xffffu);
  return hex;
}

const char *tls_error_text(int err)
{
  switch (err) {
  case BR_ERR_OK: return "ok";
  case BR_ERR_BAD_VERSION: return "unsupported protocol version";
  case BR_ERR_BAD_CIPHER_SUITE: return "no shared cipher suite";
  case BR_ERR_X509_EXPIRED: return "certificate expired or not yet valid";
  case BR_ERR_X509_BAD_SERVER_NAME: return "certificate does not match the host name";
  case BR_ERR_X509_NOT_TRUSTED: return "certificate not trusted";
  case BR_ERR_X509_EMPTY_CHAIN: return "no certificate";
  case BR_ERR_X509_BAD_SIGNATURE: return "bad certificate signature";
  case BR_ERR_X509_UNSUPPORTED: return "unsupported certificate";
  case BR_ERR_NO_CLIENT_AUTH: return "no client authentication";
  default: break;
  }
  if (err >= BR_ERR_SEND_FATAL_ALERT) return "alert sent";
  if (err >= BR_ERR_RECV_FATAL_ALERT) return "alert received from the peer";
  if (err >= BR_ERR_X509_OK) return "certificate rejected";
  return "protocol error";
}

void tls_server_policy(br_ssl_server_context *sc, unsigned char *iobuf, size_t n)
{
  uint16_t ids[NSUITES];
  size_t i;
  for (i = 0; i < NSUITES; i++) ids[i] = (uint16_t)suites[i].id;
  br_ssl_engine_set_versions(&sc->eng, BR_TLS12, BR_TLS12);
  br_ssl_engine_set_suites(&sc->eng, ids, NSUITES);
  br_ssl_engine_add_flags(&sc->eng, BR_OPT_ENFORCE_SERVER_PREFERENCES | BR_OPT_NO_RENEGOTIATION);
  br_ssl_engine_set_buffer(&sc->eng, iobuf, n, 1);
}
