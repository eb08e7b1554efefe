/* lib/qfile.c: round trip through the writer and the reader, qf_mark, qid
 * syntax, and every kind of damage the reader must refuse. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "dsnparam.h"
#include "qfile.h"

static char path[] = "/tmp/t-qfile.XXXXXX";

/* Writes header + msg + env to the test file; returns an fd open O_RDWR. */
static int make(const unsigned char *hdr, const char *msg, size_t mlen, const str *env)
{
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return -1;
  if (write(fd, hdr, QF_HDR) != QF_HDR) return -1;
  if (mlen && write(fd, msg, mlen) != (ssize_t)mlen) return -1;
  if (env->len && write(fd, env->s, env->len) != (ssize_t)env->len) return -1;
  return fd;
}

/* The standard test envelope. */
static void env_std(str *s)
{
  s->len = 0;
  qf_record(s, 'F', "a@b.example", 11);
  qf_record(s, 'O', "SMTPUTF8", 8);
  qf_record(s, 'R', "Pc@d.example", 12);
  qf_record(s, 'R', "De@f.example", 12);
  qf_record(s, 'E', "", 0);
}

/* Reads a file made of msg and env with a correct header: 0 or -1 (errno). */
static int try_env(const str *env)
{
  static const char msg[] = "Subject: t\n\nbody\n";
  unsigned char hdr[QF_HDR];
  qf_env e = QF_ENV_INIT;
  int fd, r;

  qf_header(hdr, sizeof msg - 1, 0);
  fd = make(hdr, msg, sizeof msg - 1, env);
  if (fd < 0) return -2;
  r = qf_read(fd, &e);
  if (r < 0) r = errno == EINVAL ? -1 : -3;
  close(fd);
  qf_free(&e);
  return r;
}

static int try_raw(const void *p, size_t n)
{
  qf_env e = QF_ENV_INIT;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), r;
  if (fd < 0 || write(fd, p, n) != (ssize_t)n) return -2;
  r = qf_read(fd, &e);
  if (r < 0) r = errno == EINVAL ? -1 : -3;
  close(fd);
  qf_free(&e);
  return r;
}

static void round_trip(void)
{
  static const char msg[] = "Received: x\nSubject: t\n\nbody\n";
  unsigned char hdr[QF_HDR];
  qf_env e = QF_ENV_INIT;
  str env = STR_INIT;
  int fd;

  env_std(&env);
  qf_header(hdr, sizeof msg - 1, 0);
  CHECK(!memcmp(hdr, "QMQ1", 4) && !memcmp(hdr + 28, "DONE", 4));
  fd = make(hdr, msg, sizeof msg - 1, &env);
  CHECK(fd >= 0);
  CHECK(qf_read(fd, &e) == 0);
  CHECK(e.msg_len == sizeof msg - 1);
  CHECK(e.env_off == QF_HDR + sizeof msg - 1);
  CHECK(e.opts == QF_OPT_UTF8);
  CHECK(e.sender_len == 11 && !memcmp(e.sender, "a@b.example", 11));
  CHECK(e.nrcpt == 2);
  CHECK(e.rcpt[0].state == QF_PENDING && e.rcpt[0].len == 11 && !memcmp(e.rcpt[0].addr, "c@d.example", 11));
  CHECK(e.rcpt[1].state == QF_DONE && !memcmp(e.rcpt[1].addr, "e@f.example", 11));

  /* qf_mark writes exactly the state byte, and a re-read sees it. */
  CHECK(qf_mark(fd, &e, 0, QF_FAILED) == 0);
  CHECK(e.rcpt[0].state == QF_FAILED);
  CHECK(qf_mark(fd, &e, 2, QF_DONE) == -1 && errno == EINVAL);
  CHECK(qf_mark(fd, &e, 1, 'X') == -1 && errno == EINVAL);
  CHECK(qf_read(fd, &e) == 0);   /* re-reading into a used qf_env */
  CHECK(e.nrcpt == 2 && e.rcpt[0].state == QF_FAILED && e.rcpt[1].state == QF_DONE);
  {
    char c = 0;
    CHECK(pread(fd, &c, 1, e.rcpt[0].state_off) == 1 && c == QF_FAILED);
  }
  close(fd);
  qf_free(&e);
  qf_free(&e);   /* idempotent */

  /* Null sender, no options, one recipient, empty message. */
  env.len = 0;
  qf_record(&env, 'F', "", 0);
  qf_record(&env, 'R', "Px", 2);
  qf_record(&env, 'E', "", 0);
  qf_header(hdr, 0, 0);
  fd = make(hdr, "", 0, &env);
  CHECK(qf_read(fd, &e) == 0 && e.sender_len == 0 && e.nrcpt == 1 && e.opts == 0 && e.msg_len == 0);
  CHECK(e.qid == 0 && e.qid_len == 0);
  close(fd);
  /* The end record's qid, as qmail-queue(d) write it. */
  env.len = 0;
  qf_record(&env, 'F', "", 0);
  qf_record(&env, 'R', "Px", 2);
  qf_record(&env, 'E', "1795420800.004211.3117", 22);
  fd = make(hdr, "", 0, &env);
  CHECK(qf_read(fd, &e) == 0 && e.qid_len == 22 && !memcmp(e.qid, "1795420800.004211.3117", 22));
  close(fd);
  qf_free(&e);
  str_free(&env);
}

static void hostile_header(void)
{
  static const char msg[] = "hello\n";
  unsigned char hdr[QF_HDR], h2[QF_HDR];
  unsigned char whole[4096];
  str env = STR_INIT;
  size_t n, cut;

  env_std(&env);
  qf_header(hdr, sizeof msg - 1, 0);
  memcpy(whole, hdr, QF_HDR);
  memcpy(whole + QF_HDR, msg, sizeof msg - 1);
  memcpy(whole + QF_HDR + sizeof msg - 1, env.s, env.len);
  n = QF_HDR + sizeof msg - 1 + env.len;
  CHECK(try_raw(whole, n) == 0);

  /* Every truncation is refused, from the empty file up. */
  for (cut = 0; cut < n; cut++) {
    if (try_raw(whole, cut) != -1) { CHECK(0 && "truncated file accepted"); break; }
  }
  CHECK(cut == n);
  /* Trailing junk after E, even one byte. */
  whole[n] = 0;
  CHECK(try_raw(whole, n + 1) == -1);

  memcpy(h2, hdr, QF_HDR); h2[0] = 'X';          /* magic */
  memcpy(whole, h2, QF_HDR); CHECK(try_raw(whole, n) == -1);
  memcpy(h2, hdr, QF_HDR); h2[31] = 'X';         /* completion marker */
  memcpy(whole, h2, QF_HDR); CHECK(try_raw(whole, n) == -1);
  memcpy(h2, hdr, QF_HDR); memset(h2 + 28, 0, 4); /* never completed */
  memcpy(whole, h2, QF_HDR); CHECK(try_raw(whole, n) == -1);
  memcpy(h2, hdr, QF_HDR); h2[20] = 1;           /* the sum: only recovery checks it */
  memcpy(whole, h2, QF_HDR); CHECK(try_raw(whole, n) == 0);
  memcpy(h2, hdr, QF_HDR); h2[11]++;             /* msg_len != env_off - QF_HDR */
  memcpy(whole, h2, QF_HDR); CHECK(try_raw(whole, n) == -1);
  memcpy(h2, hdr, QF_HDR); h2[19]++;             /* env_off alone */
  memcpy(whole, h2, QF_HDR); CHECK(try_raw(whole, n) == -1);
  /* Lengths past the file, and ones chosen to wrap QF_HDR + msg_len. */
  qf_header(h2, 1ull << 40, 0);
  memcpy(whole, h2, QF_HDR); CHECK(try_raw(whole, n) == -1);
  qf_header(h2, ~0ull - 10, 0);
  memcpy(whole, h2, QF_HDR); CHECK(try_raw(whole, n) == -1);
  qf_header(h2, ~0ull - 31, 0);
  memcpy(whole, h2, QF_HDR); CHECK(try_raw(whole, n) == -1);
  /* msg_len covering the whole envelope: no room left for records. */
  qf_header(h2, n - QF_HDR, 0);
  memcpy(whole, h2, QF_HDR); CHECK(try_raw(whole, n) == -1);
  str_free(&env);
}

/* Record-level damage, each on an otherwise valid file. */
static void hostile_records(void)
{
  str s = STR_INIT;
  char big[QF_ADDR_MAX + 2];
  unsigned char rec[5];

  memset(big, 'a', sizeof big);
  big[0] = 'P';

#define ENV(...) do { s.len = 0; __VA_ARGS__; } while (0)
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == 0);
  /* Missing E. */
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2));
  CHECK(try_env(&s) == -1);
  /* E with data other than a qid; E with its qid. */
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "x", 1));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "1.000002.3x", 11));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "1.000002.3", 10));
  CHECK(try_env(&s) == 0);
  /* Records after E (E not at EOF). */
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "", 0); qf_record(&s, 'R', "Py", 2));
  CHECK(try_env(&s) == -1);
  /* Zero recipients. */
  ENV(qf_record(&s, 'F', "a", 1); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "a", 1); qf_record(&s, 'O', "SMTPUTF8", 8); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  /* Out of order: R before F, O after R, two F, F after R, no F. */
  ENV(qf_record(&s, 'R', "Px", 2); qf_record(&s, 'F', "", 0); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'O', "SMTPUTF8", 8); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'F', "", 0); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'O', "SMTPUTF8", 8); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  /* Unknown record type, unknown option. */
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'X', "", 0); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'O', "BOGUS", 5); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  /* Recipient: empty address, no state, bad state. */
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "P", 1); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "", 0); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Zx", 2); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  /* Addresses with NUL, CR, LF, in the sender and in a recipient. */
  ENV(qf_record(&s, 'F', "a\0b", 3); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "a\rb", 3); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px\ny", 4); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px\0y", 4); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  /* Length limits: exactly QF_ADDR_MAX is fine, one more is not. */
  ENV(qf_record(&s, 'F', big + 1, QF_ADDR_MAX); qf_record(&s, 'R', big, QF_ADDR_MAX + 1); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == 0);
  ENV(qf_record(&s, 'F', big + 1, QF_ADDR_MAX + 1); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', big, QF_ADDR_MAX + 2); qf_record(&s, 'E', "", 0));
  CHECK(try_env(&s) == -1);
  /* A record length pointing past EOF, and one near 2^32. */
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2); qf_record(&s, 'E', "", 0));
  s.s[5 + 4] = 9;   /* the R record's length byte: 2 -> 9 */
  CHECK(try_env(&s) == -1);
  ENV(qf_record(&s, 'F', "", 0));
  rec[0] = 'R'; rec[1] = rec[2] = rec[3] = rec[4] = 0xff;
  MUST(str_catb(&s, rec, 5));
  MUST(str_catb(&s, "Px", 2));
  qf_record(&s, 'E', "", 0);
  CHECK(try_env(&s) == -1);
  /* A record header cut short. */
  ENV(qf_record(&s, 'F', "", 0); qf_record(&s, 'R', "Px", 2); MUST(str_catb(&s, "E\0\0", 3)));
  CHECK(try_env(&s) == -1);
#undef ENV
  str_free(&s);
}

static void writer(void)
{
  str s = STR_INIT;
  CHECK(qf_record(&s, 'R', "Pab", 3) == 0);
  CHECK(s.len == 8 && !memcmp(s.s, "R\0\0\0\3Pab", 8));
  /* An impossible length is refused and leaves s unchanged. */
  CHECK(qf_record(&s, 'R', "x", (size_t)1 << 33) == -1 && errno == EINVAL && s.len == 8);
  CHECK(qf_record(&s, 'R', "x", (size_t)-2) == -1 && s.len == 8);
  str_free(&s);
}

static void qids(void)
{
  char big[64];

  CHECK(qf_qid_ok("1795420800.004211.3117", 22));
  CHECK(qf_qid_birth("1795420800.004211.3117") == 1795420800ull);
  CHECK(qf_qid_ok("0.0.0", 5));
  CHECK(!qf_qid_ok("", 0));
  CHECK(!qf_qid_ok("1.2", 3));
  CHECK(!qf_qid_ok("1.2.", 4));
  CHECK(!qf_qid_ok(".1.2", 4));
  CHECK(!qf_qid_ok("1..2", 4));
  CHECK(!qf_qid_ok("1.2.3.4", 7));
  CHECK(!qf_qid_ok("1.2.3/", 6));
  CHECK(!qf_qid_ok("../1.2", 6));
  CHECK(!qf_qid_ok("1.2.-3", 6));
  CHECK(!qf_qid_ok("1.2.3\n", 6));
  CHECK(!qf_qid_ok("1.2.3\0", 6));
  CHECK(qf_qid_ok("1.2.3xyz", 5));   /* n bounds the name */
  /* Fields of at most 20 digits; seconds must fit in 64 bits. */
  CHECK(!qf_qid_ok("99999999999999999999.1.1", 24));
  CHECK(!qf_qid_ok("1.123456789012345678901.1", 25));
  CHECK(qf_qid_ok("18446744073709551615.1.1", 24));
  CHECK(qf_qid_birth("18446744073709551615.1.1") == 18446744073709551615ull);
  /* At most QF_QID_MAX - 1 bytes: 20 + 1 + 6 + 1 + 19 = 47. */
  memset(big, '1', sizeof big);
  memcpy(big, "10000000000000000000", 20);
  big[20] = '.'; big[27] = '.';
  CHECK(qf_qid_ok(big, QF_QID_MAX - 1));
  CHECK(!qf_qid_ok(big, QF_QID_MAX));
}

/* qf_qid_split takes exactly what qf_qid_fmt writes, within 32 bits. */
static void qid_split(void)
{
  char q[QF_QID_MAX];
  uint32_t v[3];

  *qf_qid_fmt(q, 1795420800, 4211, 3117) = 0;
  CHECK(!strcmp(q, "1795420800.004211.3117"));
  CHECK(qf_qid_split(q, strlen(q), v) && v[0] == 1795420800 && v[1] == 4211 && v[2] == 3117);
  *qf_qid_fmt(q, 18446744073709551615ull, 999999, 4294967295u) = 0;
  CHECK(strlen(q) == 38 && qf_qid_ok(q, strlen(q)));   /* the longest */
  CHECK(!qf_qid_split(q, strlen(q), v));
  CHECK(qf_qid_split("0.000000.0", 10, v) && !v[0] && !v[1] && !v[2]);
  *qf_qid_fmt(q, 7, 1000000, 9) = 0;                 /* usec out of range */
  CHECK(!strcmp(q, "7.999999.9") && qf_qid_split(q, strlen(q), v) && v[1] == 999999);
  CHECK(qf_qid_split("4294967295.999999.4294967295", 28, v) && v[0] == 4294967295u && v[2] == 4294967295u);
  CHECK(!qf_qid_split("4294967296.000000.1", 19, v));
  CHECK(!qf_qid_split("1.000000.4294967296", 19, v));
  CHECK(!qf_qid_split("1.2.3", 5, v));            /* usec not six digits */
  CHECK(!qf_qid_split("1.0000001.3", 11, v));
  CHECK(!qf_qid_split("01.000002.3", 11, v));     /* leading zeros */
  CHECK(!qf_qid_split("1.000002.03", 11, v));
  CHECK(!qf_qid_split("1.000002.3x", 11, v));
  CHECK(!qf_qid_split("1.000002", 8, v));
}

/* qmail-queued's pool names: never a qid, never a qid's prefix. */
static void pool_names(void)
{
  CHECK(qf_pool_ok("p0", 2));
  CHECK(qf_pool_ok("p18446744073709551615", 21));
  CHECK(!qf_pool_ok("p184467440737095516150", 22));   /* 21 digits */
  CHECK(!qf_pool_ok("p", 1));
  CHECK(!qf_pool_ok("p12a", 4));
  CHECK(!qf_pool_ok("p1.2.3", 6));
  CHECK(!qf_pool_ok("q1", 2));
  CHECK(!qf_pool_ok("1795420800.004211.3117", 22));
  CHECK(!qf_qid_ok("p1", 2));
  {
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_mode = S_IFREG | 0660;
    CHECK(qf_pool_unused("p7", &st));
    CHECK(!qf_pool_unused("1.2.3", &st));          /* not a pool name */
    st.st_size = 1;
    CHECK(!qf_pool_unused("p7", &st));             /* written to */
    st.st_size = 0;
    st.st_mode = S_IFDIR | 0770;
    CHECK(!qf_pool_unused("p7", &st));             /* not a file */
  }
}

/* The DSN records (V, RET options, N, Q): read back, and validated. */
static void dsn_records(void)
{
  static const char msg[] = "Subject: t\n\nbody\n";
  unsigned char hdr[QF_HDR], nb = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, never = DSN_NOTIFY_NEVER;
  unsigned char bad = DSN_NOTIFY_NEVER | DSN_NOTIFY_SUCCESS, zero = 0, high = 16;
  qf_env e = QF_ENV_INIT;
  str s = STR_INIT;
  int fd;

  qf_record(&s, 'F', "a@b", 3);
  qf_record(&s, 'O', "RET=HDRS", 8);
  qf_record(&s, 'V', "id+2B1", 6);
  qf_record(&s, 'O', "SMTPUTF8", 8);
  qf_record(&s, 'R', "Px@y", 4);
  qf_record(&s, 'Q', "rfc822;o+2Bx@y", 14);
  qf_record(&s, 'N', &nb, 1);
  qf_record(&s, 'R', "Pz@y", 4);
  qf_record(&s, 'R', "Pw@y", 4);
  qf_record(&s, 'N', &never, 1);
  qf_record(&s, 'E', "", 0);
  qf_header(hdr, sizeof msg - 1, 0);
  fd = make(hdr, msg, sizeof msg - 1, &s);
  CHECK(fd >= 0 && qf_read(fd, &e) == 0);
  if (fd >= 0) close(fd);
  CHECK(e.opts == (QF_OPT_UTF8 | QF_OPT_RET_HDRS));
  CHECK(e.envid && e.envid_len == 6 && !memcmp(e.envid, "id+2B1", 6));
  CHECK(e.nrcpt == 3);
  if (e.nrcpt == 3) {
    CHECK(e.rcpt[0].notify == nb && e.rcpt[0].orcpt_len == 14 && !memcmp(e.rcpt[0].orcpt, "rfc822;o+2Bx@y", 14));
    CHECK(e.rcpt[1].notify == 0 && !e.rcpt[1].orcpt);
    CHECK(e.rcpt[2].notify == DSN_NOTIFY_NEVER && !e.rcpt[2].orcpt);
  }
  qf_free(&e);

#define ENV(...) do { s.len = 0; __VA_ARGS__; } while (0)
#define FR qf_record(&s, 'F', "", 0)
#define R1 qf_record(&s, 'R', "Px", 2)
#define END qf_record(&s, 'E', "", 0)
  ENV(FR; qf_record(&s, 'V', "a", 1); qf_record(&s, 'V', "b", 1); R1; END);
  CHECK(try_env(&s) == -1);   /* two ENVIDs */
  ENV(FR; qf_record(&s, 'V', "a b", 3); R1; END);
  CHECK(try_env(&s) == -1);   /* not xtext */
  ENV(FR; R1; qf_record(&s, 'V', "a", 1); END);
  CHECK(try_env(&s) == -1);   /* after a recipient */
  ENV(FR; qf_record(&s, 'O', "RET=FULL", 8); qf_record(&s, 'O', "RET=HDRS", 8); R1; END);
  CHECK(try_env(&s) == -1);   /* two RETs */
  ENV(FR; qf_record(&s, 'N', &nb, 1); R1; END);
  CHECK(try_env(&s) == -1);   /* NOTIFY before any recipient */
  ENV(FR; R1; qf_record(&s, 'N', &nb, 1); qf_record(&s, 'N', &nb, 1); END);
  CHECK(try_env(&s) == -1);   /* two for one recipient */
  ENV(FR; R1; qf_record(&s, 'N', &bad, 1); END);
  CHECK(try_env(&s) == -1);   /* NEVER with SUCCESS */
  ENV(FR; R1; qf_record(&s, 'N', &zero, 1); END);
  CHECK(try_env(&s) == -1);
  ENV(FR; R1; qf_record(&s, 'N', &high, 1); END);
  CHECK(try_env(&s) == -1);
  ENV(FR; R1; qf_record(&s, 'N', "\1\2", 2); END);
  CHECK(try_env(&s) == -1);
  ENV(FR; R1; qf_record(&s, 'Q', "rfc822", 6); END);
  CHECK(try_env(&s) == -1);   /* no ';' */
  ENV(FR; R1; qf_record(&s, 'Q', "rfc822;a+0Ab", 12); END);
  CHECK(try_env(&s) == -1);   /* LF */
  ENV(FR; R1; qf_record(&s, 'Q', "rfc822;a", 8); qf_record(&s, 'Q', "rfc822;b", 8); END);
  CHECK(try_env(&s) == -1);
  ENV(FR; R1; qf_record(&s, 'Q', "rfc822;a", 8); R1; qf_record(&s, 'Q', "rfc822;b", 8); END);
  CHECK(try_env(&s) == 0);    /* one per recipient */
#undef ENV
#undef FR
#undef R1
#undef END
  str_free(&s);
}

int main(void)
{
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  round_trip();
  hostile_header();
  hostile_records();
  dsn_records();
  writer();
  qids();
  qid_split();
  pool_names();
  /* A directory and an empty file are not queue files. */
  {
    qf_env e = QF_ENV_INIT;
    int d = open("/tmp", O_RDONLY | O_DIRECTORY);
    CHECK(qf_read(d, &e) == -1 && errno == EINVAL);
    close(d);
    CHECK(try_raw("", 0) == -1);
    qf_free(&e);
  }
  unlink(path);
  DONE();
}
