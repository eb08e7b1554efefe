/* lib/spawnreq.c: the spawners' request parser against well-formed and
 * hostile datagrams, and the reply items. */
#include <string.h>
#include "check.h"
#include "qfile.h"
#include "spawnreq.h"

static char pkt[SPAWN_PKT_MAX];
static struct spawnreq r;
static const char *why;

/* Parses the n bytes at s (copied: the parser may write) with maxrcpt. */
static int parse(const char *s, size_t n, size_t maxrcpt)
{
  memcpy(pkt, s, n);
  return spawnreq_parse(&r, pkt, n, maxrcpt, &why);
}
#define P(lit, maxrcpt) parse(lit, sizeof lit - 1, maxrcpt)
#define QID "1795420800.000001.4242"

/* A request of nrcpt recipients "rK@d.example" into pkt; its length. */
static size_t many(size_t nrcpt)
{
  size_t n = 0, k;
  static const char head[] = "7\0" QID "\0" "11\0" "5\0" "0\0s@x\0";

  memcpy(pkt, head, sizeof head - 1);
  n = sizeof head - 1;
  for (k = 0; k < nrcpt; k++) {
    memcpy(pkt + n, "3\0r@d.example\0", 14);
    n += 14;
  }
  return n;
}

/* The DSN suffixes (spawnproto.h): ENVID after opts, NOTIFY and ORCPT
 * after a recipient's index; checked as strictly as the queue file's. */
static void dsn(void)
{
  CHECK(P("1\0" QID "\0" "0\0" "0\0" "4/id+2B/x\0" "s\0" "0/3/rfc822;a+2Bb@c/d\0" "a@b\0" "1\0" "c@b\0"
          "2/8\0" "e@b\0", 3) == SPAWNREQ_OK);
  CHECK(r.opts == 4 && r.envid && r.envidn == 7 && !memcmp(r.envid, "id+2B/x", 7));
  CHECK(r.rcpt[0].i == 0 && r.rcpt[0].notify == 3 && r.rcpt[0].orcpt && r.rcpt[0].orcptn == 16 &&
        !memcmp(r.rcpt[0].orcpt, "rfc822;a+2Bb@c/d", 16));
  /* Left as it was: the spawner passes the datagram on. */
  CHECK(!memcmp(pkt + 2 + sizeof QID + 4, "4/id+2B/x", 9));
  CHECK(r.rcpt[1].i == 1 && !r.rcpt[1].notify && !r.rcpt[1].orcpt);
  {
    /* qmail-rspawn's copy for its worker says the same. */
    str d = STR_INIT;
    CHECK(spawnreq_cat_opts(&d, &r) == 0 && d.len == 10 && !memcmp(d.s, "4/id+2B/x", 10));
    d.len = 0;
    CHECK(spawnreq_cat_index(&d, &r.rcpt[0]) == 0 && d.len == 21 && !memcmp(d.s, "0/3/rfc822;a+2Bb@c/d", 21));
    d.len = 0;
    CHECK(spawnreq_cat_index(&d, &r.rcpt[1]) == 0 && d.len == 2 && !memcmp(d.s, "1", 2));
    d.len = 0;
    CHECK(spawnreq_cat_index(&d, &r.rcpt[2]) == 0 && d.len == 4 && !memcmp(d.s, "2/8", 4));
    str_free(&d);
  }
  CHECK(r.rcpt[2].i == 2 && r.rcpt[2].notify == 8 && !r.rcpt[2].orcpt);
  CHECK(P("1\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0", 1) == SPAWNREQ_OK && !r.envid);
  CHECK(P("1\0" QID "\0" "0\0" "0\0" "0/\0" "s\0" "0\0" "a@b\0", 1) == SPAWNREQ_BAD);      /* empty ENVID */
  CHECK(P("1\0" QID "\0" "0\0" "0\0" "0/a b\0" "s\0" "0\0" "a@b\0", 1) == SPAWNREQ_BAD);   /* not xtext */
  CHECK(P("1\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0/9\0" "a@b\0", 1) == SPAWNREQ_BAD);     /* NEVER+SUCCESS */
  CHECK(P("1\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0/16\0" "a@b\0", 1) == SPAWNREQ_BAD);
  CHECK(P("1\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0/x\0" "a@b\0", 1) == SPAWNREQ_BAD);
  CHECK(P("1\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0/2/rfc822\0" "a@b\0", 1) == SPAWNREQ_BAD);
  CHECK(P("1\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0/2/rfc822;a+0Ab\0" "a@b\0", 1) == SPAWNREQ_BAD);
}

static void good(void)
{
  CHECK(P("12\0" QID "\0" "11\0" "40\0" "1\0" "s@x.example\0" "0\0" "a@b.example\0", 1) == SPAWNREQ_OK);
  CHECK(r.slot == 12 && !strcmp(r.qid, QID) && r.off == 11 && r.len == 40 && r.opts == 1);
  CHECK(!strcmp(r.sender, "s@x.example") && r.nrcpt == 1 && r.rcpt[0].i == 0);
  CHECK(!strcmp(r.rcpt[0].addr, "a@b.example") && !strcmp(r.rcpt[0].domain, "b.example"));
  CHECK(r.rcpt[0].addr >= pkt && r.rcpt[0].addr < pkt + sizeof pkt);   /* in place */
  CHECK(why == 0);
  /* Null sender, two recipients, the last '@' names the domain. */
  CHECK(P("999\0" QID "\0" "0\0" "0\0" "0\0" "\0" "5\0" "\"a@b\"@c.example\0" "100000\0" "d@c.example\0", 2) == SPAWNREQ_OK);
  CHECK(r.slot == 999 && !*r.sender && r.nrcpt == 2 && r.rcpt[1].i == QF_RCPT_MAX);
  CHECK(!strcmp(r.rcpt[0].domain, "c.example"));
  /* An empty domain is the spawner's business (rspawn refuses it). */
  CHECK(P("1\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@\0", 1) == SPAWNREQ_OK && !*r.rcpt[0].domain);
  /* Exactly SPAWN_RCPTS is fine. */
  CHECK(spawnreq_parse(&r, pkt, many(SPAWN_RCPTS), SPAWN_RCPTS, &why) == SPAWNREQ_OK && r.nrcpt == SPAWN_RCPTS);
}

static void noslot(void)
{
  CHECK(parse("", 0, 1) == SPAWNREQ_NOSLOT);
  CHECK(P("\0", 1) == SPAWNREQ_NOSLOT);                              /* empty slot */
  CHECK(P("12", 1) == SPAWNREQ_NOSLOT);                              /* no NUL at all */
  CHECK(P("9\0" QID "\0no-final-nul", 1) == SPAWNREQ_NOSLOT);        /* cut */
  CHECK(P("1000\0" QID "\0", 1) == SPAWNREQ_NOSLOT);                 /* SPAWN_SLOTS */
  CHECK(P("99999999999999999999999\0" QID "\0", 1) == SPAWNREQ_NOSLOT);   /* overflows */
  CHECK(P("18446744073709551616\0", 1) == SPAWNREQ_NOSLOT);           /* 2^64 */
  CHECK(P("-1\0", 1) == SPAWNREQ_NOSLOT);
  CHECK(P("+1\0", 1) == SPAWNREQ_NOSLOT);
  CHECK(P(" 1\0", 1) == SPAWNREQ_NOSLOT);
  CHECK(P("1 \0", 1) == SPAWNREQ_NOSLOT);
  CHECK(P("0x1\0", 1) == SPAWNREQ_NOSLOT);
  CHECK(P("12x\0" QID "\0", 1) == SPAWNREQ_NOSLOT);
  CHECK(why && *why);
}

/* Each is refused with the slot known; why contains want. */
static void bad(const char *s, size_t n, size_t maxrcpt, const char *want, int line)
{
  int rc = parse(s, n, maxrcpt);
  if (rc != SPAWNREQ_BAD || r.slot != 3 || !why || !strstr(why, want))
    printf("line %d: rc %d slot %lu why %s\n", line, rc, r.slot, why ? why : "(null)");
  CHECK(rc == SPAWNREQ_BAD && r.slot == 3 && why && strstr(why, want));
}
#define B(lit, maxrcpt, want) bad(lit, sizeof lit - 1, maxrcpt, want, __LINE__)

static void hostile(void)
{
  B("3\0", 1, "qid");                                                 /* nothing after the slot */
  B("3\0" "12.34\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0", 1, "qid");
  B("3\0" "1.2.3/../x\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0", 1, "qid");
  B("3\0" "../../etc\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0", 1, "qid");
  B("3\0" "..\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0", 1, "qid");
  B("3\0" "\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0", 1, "qid");
  B("3\0" "1111111111111111111111.2.3\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0", 1, "qid");  /* birth overflows */
  B("3\0" QID "\0" "18446744073709551616\0" "0\0" "0\0" "s\0" "0\0" "a@b\0", 1, "number");
  B("3\0" QID "\0" "0\0" "-1\0" "0\0" "s\0" "0\0" "a@b\0", 1, "number");
  B("3\0" QID "\0" "0\0" "0\0" "\0" "s\0" "0\0" "a@b\0", 1, "number");
  B("3\0" QID "\0" "0\0" "0\0" "1x\0" "s\0" "0\0" "a@b\0", 1, "number");
  B("3\0" QID "\0" "0\0" "0\0", 1, "number");                         /* fields missing */
  B("3\0" QID "\0" "0\0" "0\0" "0\0", 1, "sender");
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0", 1, "no recipient");
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0\0", 1, "recipient");      /* index without address */
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0\0" "\0", 1, "recipient");  /* empty recipient */
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0\0" "nobody\0", 1, "recipient");
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "x\0" "a@b\0", 1, "index");
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "100001\0" "a@b\0", 1, "index");   /* > QF_RCPT_MAX */
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "99999999999999999999999\0" "a@b\0", 1, "index");
  /* Trailing junk: a stray field after a complete request. */
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0" "x\0", 2, "index");
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0" "1\0", 2, "recipient");
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0" "\0", 2, "index");
  /* A second recipient where one is allowed. */
  B("3\0" QID "\0" "0\0" "0\0" "0\0" "s\0" "0\0" "a@b\0" "1\0" "c@d\0", 1, "too many");
  CHECK(r.nanswer == 2);
}

static void sizes(void)
{
  static char big[2 * QF_ADDR_MAX + 200];
  size_t n, k;

  /* Addresses of QF_ADDR_MAX bytes pass, one more does not. */
  for (k = 0; k < 2; k++) {
    memcpy(big, "3\0" QID "\0" "0\0" "0\0" "0\0", n = 2 + sizeof QID + 6);
    memset(big + n, 's', QF_ADDR_MAX + k);
    n += QF_ADDR_MAX + k;
    memcpy(big + n, "\0" "0\0" "a@b\0", 7);
    n += 7;
    CHECK(parse(big, n, 1) == (k ? SPAWNREQ_BAD : SPAWNREQ_OK));
    if (k) CHECK(!strcmp(why, "bad sender"));
    memcpy(big, "3\0" QID "\0" "0\0" "0\0" "0\0" "\0" "0\0", n = 2 + sizeof QID + 9);
    memset(big + n, 'a', QF_ADDR_MAX + k);
    big[n] = '@';
    n += QF_ADDR_MAX + k;
    big[n++] = 0;
    CHECK(parse(big, n, 1) == (k ? SPAWNREQ_BAD : SPAWNREQ_OK));
  }
  /* Too many recipients: refused, with one answer per recipient up to
   * SPAWN_RCPTS; nothing is written beyond the fixed array. */
  CHECK(spawnreq_parse(&r, pkt, many(SPAWN_RCPTS + 1), SPAWN_RCPTS, &why) == SPAWNREQ_BAD);
  CHECK(r.nrcpt == SPAWN_RCPTS && r.nanswer == SPAWN_RCPTS && strstr(why, "too many"));
  CHECK(spawnreq_parse(&r, pkt, many(5000), SPAWN_RCPTS, &why) == SPAWNREQ_BAD && r.nanswer == SPAWN_RCPTS);
  CHECK(spawnreq_parse(&r, pkt, many(3), 1, &why) == SPAWNREQ_BAD && r.nanswer == 3 && r.nrcpt == 1);
  /* A huge maxrcpt is still bounded by the array. */
  CHECK(spawnreq_parse(&r, pkt, many(SPAWN_RCPTS + 1), (size_t)-1, &why) == SPAWNREQ_BAD);
  CHECK(P("3\0" QID "\0", 1) == SPAWNREQ_BAD && r.nanswer == 1);
}

static void items(void)
{
  static char text[SPAWN_TEXT + 50];
  char out[SPAWN_TEXT + 2];
  size_t n;

  n = spawnreq_item(out, 'K', "ok\0x", 4);
  CHECK(n == 6 && !memcmp(out, "Kok x\0", 6));
  memset(text, 'y', sizeof text);
  n = spawnreq_item(out, 'Z', text, sizeof text);
  CHECK(n == SPAWN_TEXT + 2 && out[0] == 'Z' && out[SPAWN_TEXT] == 'y' && !out[SPAWN_TEXT + 1]);
  CHECK(spawnreq_items_ok(out, n, 1));
  CHECK(!spawnreq_items_ok(out, n, 2));
  CHECK(!spawnreq_items_ok(out, n - 1, 1));                 /* no final NUL */
  CHECK(spawnreq_items_ok("Ka\0Zb\0D\0", 8, 3));
  CHECK(!spawnreq_items_ok("Ka\0Zb\0D\0", 8, 2));           /* trailing item */
  CHECK(!spawnreq_items_ok("Ka\0\0", 4, 2));                /* empty item */
  CHECK(!spawnreq_items_ok("Xa\0", 3, 1));                  /* bad code */
  CHECK(spawnreq_items_ok("", 0, 0));
  CHECK(!spawnreq_items_ok("", 0, 1));
  {
    /* The text limit exactly: SPAWN_TEXT passes, SPAWN_TEXT + 1 does not. */
    static char big[SPAWN_TEXT + 3];
    memset(big, 'y', sizeof big);
    big[0] = 'K';
    big[SPAWN_TEXT + 1] = 0;
    CHECK(spawnreq_items_ok(big, SPAWN_TEXT + 2, 1));
    big[SPAWN_TEXT + 1] = 'y';
    big[SPAWN_TEXT + 2] = 0;
    CHECK(!spawnreq_items_ok(big, SPAWN_TEXT + 3, 1));
  }
}

int main(void)
{
  dsn();
  good();
  noslot();
  hostile();
  sizes();
  items();
  DONE();
}
