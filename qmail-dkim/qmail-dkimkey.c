/* qmail-dkimkey [-p] DOMAIN SELECTOR [rsa|ed25519] [bits]: makes a DKIM
 * key pair in PREFIX/control/dkim/DOMAIN/SELECTOR.key (private, mode 0400)
 * and SELECTOR.pub (the record's text, 0444), both owned by the owner of
 * control/dkim, which is the signer's uid (make install creates it, mode
 * 0700): the tool takes the owner from the directory instead of from a
 * name, so it needs no configuration and cannot give the key to another
 * uid. It prints the zone-file line to publish; -p prints it again from
 * SELECTOR.pub. An existing key is never replaced. See qmail-dkimkey(8). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "control.h"
#include "dkim.h"
#include "str.h"

#define PROG "qmail-dkimkey"

static void die(int code, const char *what, const char *detail)
{
  fprintf(stderr, PROG ": %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(code);
}

static void nomem(void) { die(111, "out of memory", 0); }

static void usage(void)
{
  die(100, "usage: qmail-dkimkey DOMAIN SELECTOR [rsa|ed25519] [bits]\n"
           "       qmail-dkimkey -p DOMAIN SELECTOR", 0);
}

/* A domain or selector: lower-case labels of letters, digits, '-', '_'. */
static int name_ok(const char *s)
{
  size_t i, n = strlen(s);
  if (!n || n > 200 || s[0] == '.' || s[n - 1] == '.' || s[0] == '-') return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') continue;
    if (c == '.' && s[i + 1] != '.') continue;
    return 0;
  }
  return 1;
}

/* The zone-file line: TXT strings of at most 255 bytes each (RFC 1035). */
static void print_record(const char *domain, const char *sel, const char *txt, size_t n)
{
  size_t i;
  printf("%s._domainkey.%s. IN TXT", sel, domain);
  for (i = 0; i < n; i += 255) printf(" \"%.*s\"", (int)(n - i < 255 ? n - i : 255), txt + i);
  printf("\n");
  if (fflush(stdout) || ferror(stdout)) die(111, "cannot write the record", strerror(errno));
}

static void readall(int fd, str *s, size_t max)
{
  for (;;) {
    ssize_t r;
    if (str_readyplus(s, 4096) < 0) nomem();
    r = read(fd, s->s + s->len, s->cap - s->len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die(111, "cannot read", strerror(errno));
    if (r == 0) break;
    s->len += (size_t)r;
    if (s->len > max) die(111, "file too large", 0);
  }
}

/* Writes name in dir as a new file (never over an existing one), owned
 * by uid:gid with mode, synced. */
static void put(int dir, const char *name, const void *p, size_t n, mode_t mode,
                uid_t uid, gid_t gid)
{
  char tmp[300];
  int fd;

  snprintf(tmp, sizeof tmp, ".%s.%ld.tmp", name, (long)getpid());
  fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) die(111, "cannot create", tmp);
  if (fchown(fd, uid, gid) < 0 || write(fd, p, n) != (ssize_t)n || fchmod(fd, mode) < 0
      || fsync(fd) < 0 || close(fd) < 0) {
    unlinkat(dir, tmp, 0);
    die(111, "cannot write", name);
  }
  if (linkat(dir, tmp, dir, name, 0) < 0) {
    int e = errno;
    unlinkat(dir, tmp, 0);
    die(e == EEXIST ? 100 : 111, e == EEXIST ? "already exists (qmail-dkimkey -p prints its record)"
                                              : "cannot link", name);
  }
  unlinkat(dir, tmp, 0);
  if (fsync(dir) < 0) die(111, "cannot sync the key directory", strerror(errno));
}

static size_t seed_add(const br_prng_class **ctx, unsigned char *p, size_t n)
{
  randombytes_buf(p, n);
  (void)ctx;
  return n;
}

/* A new RSA key as PEM ("RSA PRIVATE KEY"). */
static void make_rsa(str *pem, unsigned bits)
{
  static unsigned char skbuf[BR_RSA_KBUF_PRIV_SIZE(DKIM_RSA_MAX)], pkbuf[BR_RSA_KBUF_PUB_SIZE(DKIM_RSA_MAX)];
  static unsigned char d[DKIM_RSA_MAX / 8], der[5 * DKIM_RSA_MAX / 8 + 64];
  br_hmac_drbg_context rng;
  br_rsa_private_key sk;
  br_rsa_public_key pk;
  unsigned char seed[48];
  size_t dlen, derlen, plen;

  seed_add(0, seed, sizeof seed);
  br_hmac_drbg_init(&rng, &br_sha256_vtable, seed, sizeof seed);
  sodium_memzero(seed, sizeof seed);
  if (!br_rsa_keygen_get_default()(&rng.vtable, &sk, skbuf, &pk, pkbuf, bits, 65537))
    die(111, "RSA key generation failed", 0);
  dlen = br_rsa_compute_privexp_get_default()(d, &sk, 65537);
  if (!dlen) die(111, "RSA key generation failed", 0);
  derlen = br_encode_rsa_raw_der(der, &sk, &pk, d, dlen);
  if (!derlen || derlen > sizeof der) die(111, "RSA key encoding failed", 0);
  plen = br_pem_encode(0, der, derlen, "RSA PRIVATE KEY", BR_PEM_LINE64);
  if (str_ready(pem, plen + 1) < 0) nomem();
  pem->len = br_pem_encode(pem->s, der, derlen, "RSA PRIVATE KEY", BR_PEM_LINE64);
  sodium_memzero(der, sizeof der);
  sodium_memzero(d, sizeof d);
  sodium_memzero(skbuf, sizeof skbuf);
  sodium_memzero(&rng, sizeof rng);
}

/* A new Ed25519 key as PKCS#8 PEM ("PRIVATE KEY", RFC 8410). */
static void make_ed25519(str *pem)
{
  static const unsigned char prefix[16] = {
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20
  };
  unsigned char der[48], pk[32], sk[64];
  size_t plen;

  crypto_sign_keypair(pk, sk);
  memcpy(der, prefix, sizeof prefix);
  memcpy(der + sizeof prefix, sk, 32);
  plen = br_pem_encode(0, der, sizeof der, "PRIVATE KEY", BR_PEM_LINE64);
  if (str_ready(pem, plen + 1) < 0) nomem();
  pem->len = br_pem_encode(pem->s, der, sizeof der, "PRIVATE KEY", BR_PEM_LINE64);
  sodium_memzero(der, sizeof der);
  sodium_memzero(sk, sizeof sk);
}

int main(int argc, char **argv)
{
  static struct dkim_key k;
  str pem = STR_INIT, txt = STR_INIT, name = STR_INIT;
  const char *domain, *sel, *type = "rsa", *err;
  unsigned bits = 2048;
  int print = 0, top, dir, fd;
  struct stat st;

  if (argc > 1 && !strcmp(argv[1], "-p")) { print = 1; argv++; argc--; }
  if (argc < 3 || argc > (print ? 3 : 5)) usage();
  domain = argv[1];
  sel = argv[2];
  if (argc > 3) type = argv[3];
  if (argc > 4) {
    char *end;
    unsigned long b = strtoul(argv[4], &end, 10);
    if (*end || (b != 2048 && b != 3072 && b != 4096))
      die(100, "RSA keys are of 2048, 3072 or 4096 bits (1024 is refused: RFC 8301)", 0);
    bits = (unsigned)b;
  }
  if (strcmp(type, "rsa") && strcmp(type, "ed25519")) usage();
  if (argc > 4 && strcmp(type, "rsa")) die(100, "bits apply to rsa keys only", 0);
  if (!name_ok(domain) || !name_ok(sel)) die(100, "bad domain or selector (lower case, letters, digits, - and _)", 0);
  if (sodium_init() < 0) die(111, "libsodium failed to start", 0);

  if (prefix_chdir() < 0) die(111, "cannot chdir to the prefix", auto_prefix);
  top = open("control/dkim", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (top < 0) die(111, "cannot open control/dkim (made by make install)", strerror(errno));
  if (fstat(top, &st) < 0) die(111, "cannot stat control/dkim", strerror(errno));
  if (st.st_mode & 077) die(111, "control/dkim must give group and others no access", 0);

  if (str_copys(&name, sel) || str_cats(&name, ".pub") || str_0(&name)) nomem();
  if (print) {
    dir = openat(top, domain, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0) die(111, "no keys for", domain);
    fd = openat(dir, name.s, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) die(111, "no such key", name.s);
    readall(fd, &txt, 8192);
    close(fd);
    while (txt.len && txt.s[txt.len - 1] == '\n') txt.len--;
    print_record(domain, sel, txt.s, txt.len);
    return 0;
  }

  if (mkdirat(top, domain, 0700) < 0 && errno != EEXIST) die(111, "cannot make the directory for", domain);
  dir = openat(top, domain, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir < 0) die(111, "cannot open the directory for", domain);
  if (fchown(dir, st.st_uid, st.st_gid) < 0 || fchmod(dir, 0700) < 0)
    die(111, "cannot give the key directory to the signer's uid", strerror(errno));

  if (str_copys(&name, sel) || str_cats(&name, ".key") || str_0(&name)) nomem();
  if (faccessat(dir, name.s, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
    die(100, "already exists (qmail-dkimkey -p prints its record)", name.s);
  if (!strcmp(type, "rsa")) make_rsa(&pem, bits);
  else make_ed25519(&pem);
  if (dkim_key_parse(&k, pem.s, pem.len, &err) < 0) die(111, "the new key does not decode", err);
  if (str_cats(&txt, "v=DKIM1; k=") || str_cats(&txt, type) || str_cats(&txt, "; p=")
      || dkim_key_public(&txt, &k) || str_catc(&txt, '\n'))
    nomem();
  dkim_key_wipe(&k);
  if (str_copys(&name, sel) || str_cats(&name, ".key") || str_0(&name)) nomem();
  put(dir, name.s, pem.s, pem.len, 0400, st.st_uid, st.st_gid);
  sodium_memzero(pem.s, pem.cap);
  if (str_copys(&name, sel) || str_cats(&name, ".pub") || str_0(&name)) nomem();
  unlinkat(dir, name.s, 0);    /* a .pub without its .key is stale */
  put(dir, name.s, txt.s, txt.len, 0444, st.st_uid, st.st_gid);
  print_record(domain, sel, txt.s, txt.len - 1);
  return 0;
}
