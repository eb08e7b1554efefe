#ifndef TLSIO_H
#define TLSIO_H
/* TLS with BearSSL, shared by the server's TLS relay (qmail-tlsd and
 * qmail-smtpd-listen -t, both tlsd.c) and qmail-remote's client. Nothing
 * here allocates: the caller owns the engine context, its I/O buffer
 * (TLS_IOBUF bytes) and the credential stores below.
 *
 *   tlsio.c   drives an engine between a network fd pair and a plaintext
 *             fd pair, with an idle timeout (and an overall one for a
 *             handshake); suite and version names
 *   tlspem.c  PEM files: a certificate chain, an RSA or EC private key,
 *             a bundle of trust anchors; every size checked
 *
 * Versions and suites: the server speaks TLS 1.2 only, ECDHE with AES-GCM
 * or ChaCha20-Poly1305 only (tls_server_policy). Randomness comes from
 * BearSSL's own OS seeder (getrandom or /dev/urandom), run at each
 * br_ssl_*_reset; a reset fails if it cannot seed.
 */
#include <stddef.h>
#include <bearssl.h>

#define TLS_IOBUF BR_SSL_BUFSIZE_BIDI

/* ---- tlsio.c ---- */

/* Runs the engine until the handshake is done (0) or failed (-1: errno
 * ETIMEDOUT, EPIPE at end of input, or EPROTO with the engine's error in
 * br_ssl_engine_last_error). Each wait for the peer ends after timeout
 * seconds, the whole handshake after total seconds (ETIMEDOUT): a peer
 * that drips its flight a byte at a time cannot hold it longer. nr/nw may
 * be the same descriptor. */
int tls_handshake(br_ssl_engine_context *e, int nr, int nw, int timeout, int total);

/* Relays plaintext: what arrives on pr is sent over TLS, what TLS brings
 * is written to pw. Ends when the peer closes (its close_notify or EOF),
 * or after end of input on pr or a failed write to pw (then close_notify
 * is sent). 0 on a clean end, -1 on a failure as tls_handshake. Both
 * functions give up with ETIMEDOUT after timeout seconds with no
 * progress (a day when timeout is 0 or longer). Sets every descriptor
 * non-blocking. */
int tls_relay(br_ssl_engine_context *e, int nr, int nw, int pr, int pw, int timeout);

/* "TLS1.2", "TLS1.1", "TLS1.0" or "TLS?"; an OpenSSL-style suite name such
 * as "ECDHE-RSA-AES128-GCM-SHA256", or "0xHHHH" in a caller buffer of 8. */
const char *tls_version_name(unsigned v);
const char *tls_suite_name(unsigned suite, char hex[8]);
/* A short text for an engine or X.509 error code. */
const char *tls_error_text(int err);

/* The server's policy on an initialised server context: TLS 1.2, ECDHE
 * AEAD suites, server preferences, no renegotiation; sets the buffer. */
void tls_server_policy(br_ssl_server_context *sc, unsigned char *iobuf, size_t n);

/* ---- tlspem.c ---- */
#define TLS_CHAIN_MAX 8
#define TLS_CERT_MAX 16384          /* one DER certificate or key */
#define TLS_CREDS_ARENA 65536       /* the chain's DER bytes */

struct tls_creds {
  br_x509_certificate chain[TLS_CHAIN_MAX];
  size_t nchain;
  br_skey_decoder_context key;      /* holds the decoded private key */
  int keytype;                      /* BR_KEYTYPE_RSA or BR_KEYTYPE_EC */
  size_t used;
  unsigned char arena[TLS_CREDS_ARENA];
};

/* Loads the chain (leaf first) from dir/cert.pem and the key from
 * dir/key.pem. A process of another uid must not be able to make root
 * read something else, block, or parse its bytes: dir is opened without
 * following a link and must be a directory owned by the effective uid and
 * writable by no one else; each file is opened relative to it with
 * O_NOFOLLOW|O_NONBLOCK (a FIFO cannot hang the caller) and must be a
 * regular file of the effective uid, writable by no one else; key.pem
 * must give group and others no access at all. 0, or -1 with *err saying
 * what is wrong. Key bytes that passed through intermediate buffers are
 * wiped. */
int tls_creds_load(struct tls_creds *c, const char *dir, const char **err);

#define TLS_ANCHORS_MAX 512
#define TLS_ANCHORS_ARENA (1u << 20)

struct tls_anchors {
  br_x509_trust_anchor ta[TLS_ANCHORS_MAX];
  size_t n;
  size_t used;
  unsigned char arena[TLS_ANCHORS_ARENA];
};

/* Adds every CERTIFICATE of a PEM bundle as a trust anchor (CA flag as
 * the certificate says). 0, or -1 with *err. An undecodable certificate
 * is skipped, so one odd entry does not disable a system bundle. */
int tls_anchors_load(struct tls_anchors *a, const char *file, const char **err);

#endif
