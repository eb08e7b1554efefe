/* PEM files for TLS (see tlsio.h): certificate chains, private keys and
 * trust anchor bundles, decoded with BearSSL's PEM, X.509 and key
 * decoders. Files are read whole into a bounded buffer; each PEM object
 * is decoded into a DER buffer of TLS_CERT_MAX bytes, and an object that
 * does not fit is an error, never truncated. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "buf.h"
#include "str.h"
#include "tlsio.h"

#define FILE_MAX (4u << 20)          /* a CA bundle is ~250 KB */

/* Reads fd whole into out and closes it. */
static int slurp_fd(int fd, str *out)
{
  int r = fd_read_file(fd, out, FILE_MAX), e = errno;
  close(fd);
  errno = e;
  return r;
}

static int slurp(const char *path, str *out)
{
  return file_read(path, out, FILE_MAX);
}

/* Checks what fd (just opened) is: of type `type`, owned by the caller's
 * effective uid, writable by no one else, and with none of the mode bits
 * `forbid`. 0, or -1 with *err (fd is then closed). */
static int owned(int fd, mode_t type, mode_t forbid, const char *what[4], const char **err)
{
  struct stat st;

  if (fstat(fd, &st) < 0) { *err = what[0]; close(fd); return -1; }
  if ((st.st_mode & S_IFMT) != type) *err = what[1];
  else if (st.st_uid != geteuid()) *err = what[2];
  else if (st.st_mode & (S_IWGRP | S_IWOTH | forbid)) *err = what[3];
  else return 0;
  close(fd);
  errno = EPERM;
  return -1;
}

/* name in dir, opened as tlsio.h says: never through a link, never
 * blocking (a FIFO opens at once, and is then refused by owned). */
static int open_creds(int dir, const char *name, mode_t forbid, const char *what[4],
                      const char **err)
{
  int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno == ELOOP ? what[1] : what[0];
    return -1;
  }
  return owned(fd, S_IFREG, forbid, what, err) < 0 ? -1 : fd;
}

/* The DER of the PEM object being decoded. */
struct der {
  unsigned char buf[TLS_CERT_MAX];
  size_t len;
  int over;
};

static void der_add(void *ctx, const void *p, size_t n)
{
  struct der *d = ctx;
  if (d->over || n > sizeof d->buf - d->len) { d->over = 1; return; }
  memcpy(d->buf + d->len, p, n);
  d->len += n;
}

/* Calls each(ctx, name, der, len) for every PEM object of data; stops at
 * the first nonzero return. 0, or -1 with *err. */
static int pem_each(const str *data, struct der *d, const char **err,
                    int (*each)(void *ctx, const char *name, const unsigned char *der, size_t n,
                                const char **err),
                    void *ctx)
{
  static br_pem_decoder_context pc;
  char name[128];
  size_t off = 0;
  int inobj = 0;

  br_pem_decoder_init(&pc);
  while (off < data->len) {
    off += br_pem_decoder_push(&pc, data->s + off, data->len - off);
    switch (br_pem_decoder_event(&pc)) {
    case BR_PEM_BEGIN_OBJ:
      if (strlen(br_pem_decoder_name(&pc)) >= sizeof name) { *err = "PEM name too long"; return -1; }
      strcpy(name, br_pem_decoder_name(&pc));
      d->len = 0;
      d->over = 0;
      br_pem_decoder_setdest(&pc, der_add, d);
      inobj = 1;
      break;
    case BR_PEM_END_OBJ:
      inobj = 0;
      if (d->over) { *err = "PEM object too large"; return -1; }
      if (each(ctx, name, d->buf, d->len, err) < 0) return -1;
      break;
    case BR_PEM_ERROR:
      *err = "malformed PEM";
      return -1;
    default:
      break;
    }
  }
  if (inobj) { *err = "PEM object not terminated"; return -1; }
  return 0;
}

static int chain_add(void *ctx, const char *name, const unsigned char *der, size_t n,
                     const char **err)
{
  struct tls_creds *c = ctx;
  if (strcmp(name, "CERTIFICATE") && strcmp(name, "X509 CERTIFICATE")) return 0;
  if (c->nchain >= TLS_CHAIN_MAX) { *err = "too many certificates in the chain"; return -1; }
  if (n > sizeof c->arena - c->used) { *err = "certificate chain too large"; return -1; }
  memcpy(c->arena + c->used, der, n);
  c->chain[c->nchain].data = c->arena + c->used;
  c->chain[c->nchain].data_len = n;
  c->nchain++;
  c->used += n;
  return 0;
}

static int key_add(void *ctx, const char *name, const unsigned char *der, size_t n,
                   const char **err)
{
  struct tls_creds *c = ctx;
  if (strcmp(name, "RSA PRIVATE KEY") && strcmp(name, "EC PRIVATE KEY") && strcmp(name, "PRIVATE KEY"))
    return 0;
  if (c->keytype) { *err = "more than one private key"; return -1; }
  br_skey_decoder_init(&c->key);
  br_skey_decoder_push(&c->key, der, n);
  if (br_skey_decoder_last_error(&c->key)) { *err = "cannot decode the private key"; return -1; }
  c->keytype = br_skey_decoder_key_type(&c->key);
  if (c->keytype != BR_KEYTYPE_RSA && c->keytype != BR_KEYTYPE_EC) { *err = "unsupported key type"; return -1; }
  return 0;
}

int tls_creds_load(struct tls_creds *c, const char *dirname, const char **err)
{
  static const char *dirwhat[4] = {
    "cannot open the TLS directory",
    "the TLS directory is a link or not a directory",
    "the TLS directory is not owned by the uid reading it",
    "the TLS directory is writable by group or others" };
  static const char *certwhat[4] = {
    "cannot open cert.pem",
    "cert.pem is a link or not a regular file",
    "cert.pem is not owned by the uid reading it",
    "cert.pem is writable by group or others" };
  static const char *keywhat[4] = {
    "cannot open key.pem",
    "key.pem is a link or not a regular file",
    "key.pem is not owned by the uid reading it",
    "key.pem is accessible to group or others" };
  static struct der d;
  str data = STR_INIT;
  int dir, fd, r;

  c->nchain = 0;
  c->used = 0;
  c->keytype = 0;
  dir = open(dirname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir < 0) { *err = errno == ENOTDIR || errno == ELOOP ? dirwhat[1] : dirwhat[0]; return -1; }
  if (owned(dir, S_IFDIR, 0, dirwhat, err) < 0) return -1;
  fd = open_creds(dir, "cert.pem", 0, certwhat, err);
  if (fd < 0) { close(dir); return -1; }
  if (slurp_fd(fd, &data) < 0) { close(dir); str_free(&data); *err = "cannot read cert.pem"; return -1; }
  r = pem_each(&data, &d, err, chain_add, c);
  str_free(&data);
  if (r < 0) { close(dir); return -1; }
  if (!c->nchain) { close(dir); *err = "no certificate in the certificate file"; return -1; }
  fd = open_creds(dir, "key.pem", S_IRWXG | S_IRWXO, keywhat, err);
  close(dir);
  if (fd < 0) return -1;
  if (slurp_fd(fd, &data) < 0) { str_wipe(&data); *err = "cannot read key.pem"; return -1; }
  r = pem_each(&data, &d, err, key_add, c);
  str_wipe(&data);
  explicit_bzero(&d, sizeof d);
  if (r < 0) return -1;
  if (!c->keytype) { *err = "no private key in the key file"; return -1; }
  return 0;
}

/* ---- trust anchors ---- */

struct anchor_ctx {
  struct tls_anchors *a;
  unsigned char dn[4096];
  size_t dnlen;
  int dnover;
};

static void dn_add(void *ctx, const void *p, size_t n)
{
  struct anchor_ctx *x = ctx;
  if (x->dnover || n > sizeof x->dn - x->dnlen) { x->dnover = 1; return; }
  memcpy(x->dn + x->dnlen, p, n);
  x->dnlen += n;
}

/* Copies n bytes into the arena; NULL when it is full. */
static unsigned char *arena_put(struct tls_anchors *a, const void *p, size_t n)
{
  unsigned char *q;
  if (n > sizeof a->arena - a->used) return 0;
  q = a->arena + a->used;
  memcpy(q, p, n);
  a->used += n;
  return q;
}

static int anchor_add(void *ctx, const char *name, const unsigned char *der, size_t n,
                      const char **err)
{
  static br_x509_decoder_context dc;
  struct anchor_ctx *x = ctx;
  struct tls_anchors *a = x->a;
  br_x509_trust_anchor *ta;
  br_x509_pkey *pk;

  if (strcmp(name, "CERTIFICATE") && strcmp(name, "X509 CERTIFICATE") && strcmp(name, "TRUSTED CERTIFICATE"))
    return 0;
  x->dnlen = 0;
  x->dnover = 0;
  br_x509_decoder_init(&dc, dn_add, x);
  br_x509_decoder_push(&dc, der, n);
  pk = br_x509_decoder_get_pkey(&dc);
  if (!pk || x->dnover) return 0;        /* skipped, see tlsio.h */
  if (a->n >= TLS_ANCHORS_MAX) { *err = "too many trust anchors"; return -1; }
  ta = &a->ta[a->n];
  ta->flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
  ta->dn.len = x->dnlen;
  if (!(ta->dn.data = arena_put(a, x->dn, x->dnlen))) goto full;
  ta->pkey.key_type = pk->key_type;
  if (pk->key_type == BR_KEYTYPE_RSA) {
    ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
    ta->pkey.key.rsa.elen = pk->key.rsa.elen;
    if (!(ta->pkey.key.rsa.n = arena_put(a, pk->key.rsa.n, pk->key.rsa.nlen))) goto full;
    if (!(ta->pkey.key.rsa.e = arena_put(a, pk->key.rsa.e, pk->key.rsa.elen))) goto full;
  } else if (pk->key_type == BR_KEYTYPE_EC) {
    ta->pkey.key.ec.curve = pk->key.ec.curve;
    ta->pkey.key.ec.qlen = pk->key.ec.qlen;
    if (!(ta->pkey.key.ec.q = arena_put(a, pk->key.ec.q, pk->key.ec.qlen))) goto full;
  } else {
    return 0;
  }
  a->n++;
  return 0;
full:
  *err = "trust anchors too large";
  return -1;
}

int tls_anchors_load(struct tls_anchors *a, const char *file, const char **err)
{
  static struct der d;
  static struct anchor_ctx x;
  str data = STR_INIT;
  int r;

  a->n = 0;
  a->used = 0;
  x.a = a;
  if (slurp(file, &data) < 0) { str_free(&data); *err = "cannot read the CA file"; return -1; }
  r = pem_each(&data, &d, err, anchor_add, &x);
  str_free(&data);
  if (r < 0) return -1;
  if (!a->n) { *err = "no usable certificate in the CA file"; return -1; }
  return 0;
}
