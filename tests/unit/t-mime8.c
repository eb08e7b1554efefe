/* qmail-remote/mime8: conversion for strict receivers. Exact outputs for
 * the cases that matter (a plain 8-bit message, a long line, multipart
 * with one part to convert, folding), what cannot be converted, and
 * properties over random messages cut at random places: no output line
 * over 998 octets, no 8-bit byte when seven, the same output whatever the
 * cutting, quoted-printable that decodes to the original, and a message
 * needing no change left byte for byte alone. */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "../../qmail-remote/mime8.h"

static struct mime8 m;

/* Both passes over in[0..n) in pieces of step bytes: the error, out set. */
static int conv(const char *in, size_t n, int seven, size_t step, str *out)
{
  size_t i, k;
  int pass, r = 0;

  out->len = 0;
  mime8_init(&m, seven);
  for (pass = 0; pass < 2; pass++) {
    if (pass) mime8_rewind(&m);
    for (i = 0; i < n && !r; i += k) {
      k = n - i < step ? n - i : step;
      r = mime8_feed(&m, in + i, k, out);
    }
    if (!r) r = mime8_end(&m, out);
    if (r) return r;
  }
  return 0;
}

static int conv_is(const char *in, int seven, const char *want)
{
  str o = STR_INIT;
  int ok = conv(in, strlen(in), seven, 3, &o) == 0 && o.len == strlen(want) && !memcmp(o.s, want, o.len);
  if (!ok) printf("got: %.*s\n", (int)o.len, o.s ? o.s : "");
  str_free(&o);
  return ok;
}

static int conv_err(const char *in, int seven)
{
  str o = STR_INIT;
  int r = conv(in, strlen(in), seven, 5, &o);
  str_free(&o);
  return r;
}

static int hexv(char c)
{
  return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* RFC 2045 6.7 decoding of p[0..n) (LF line ends), strictly: an '='
 * not followed by two upper-case hex digits or a line end fails. */
static int qp_decode(str *out, const char *p, size_t n)
{
  size_t i;

  out->len = 0;
  for (i = 0; i < n; i++) {
    if (p[i] != '=') { if (str_catc(out, p[i]) < 0) return -1; continue; }
    if (i + 1 < n && p[i + 1] == '\n') { i++; continue; }
    if (i + 2 >= n || hexv(p[i + 1]) < 0 || hexv(p[i + 2]) < 0) return -1;
    if (str_catc(out, (char)(hexv(p[i + 1]) * 16 + hexv(p[i + 2]))) < 0) return -1;
    i += 2;
  }
  return 0;
}

/* Every line of o on the wire at most 998 octets; with seven, no 8-bit
 * byte. On the wire (smtp_blast) a CR ends a line too, before LF or not. */
static int strict_ok(const str *o, int seven)
{
  size_t i, col = 0;

  for (i = 0; i < o->len; i++) {
    if (o->s[i] == '\n' || o->s[i] == '\r') { col = 0; continue; }
    if (++col > MIME8_LINE) return 0;
    if (seven && (o->s[i] & 0x80)) return 0;
  }
  return 1;
}

static unsigned long long rnd_state = 88172645463325252ull;
static unsigned rnd(unsigned n)
{
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return (unsigned)(rnd_state % n);
}

/* A random line: printable, blanks, '=', '-', 8-bit bytes, CRs; short or
 * (rarely) long, sometimes a dot, "--" or a boundary of rnd_msg first. */
static void rnd_line(str *s, int eight, int longok)
{
  static const char pool[] = "abc xyz=-.\t";
  size_t n = longok && !rnd(6) ? 990 + rnd(2500) : rnd(90), i;

  static const char *const first[] = { ".", "--", "--b-1", "--b-1--" };

  if (!rnd(10)) MUST(str_cats(s, first[rnd(4)]));
  for (i = 0; i < n; i++) {
    unsigned r = rnd(40);
    if (eight && r == 0) MUST(str_catc(s, (char)(0x80 + rnd(128))));
    else if (r == 1 && i + 1 < n) MUST(str_catc(s, '\r'));
    else MUST(str_catc(s, pool[rnd(sizeof pool - 1)]));
  }
  if (!rnd(15)) MUST(str_catc(s, ' '));
  MUST(str_catc(s, '\n'));
}

/* A random message: a header, then a plain body or a multipart with a
 * text part, a quoted-printable part and a base64 part. *body gets the
 * first text part's content (what decoding the output must give). */
static void rnd_msg(str *s, str *body, int eight, int longok)
{
  size_t i, n = 1 + rnd(8), at;
  int multi = rnd(2);

  s->len = body->len = 0;
  MUST(str_cats(s, "From: a@example.test\nSubject: x\n"));
  if (multi) MUST(str_cats(s, "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b-1\"\n\npreamble\n--b-1\n"
                              "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"));
  MUST(str_catc(s, '\n'));
  at = s->len;
  for (i = 0; i < n; i++) rnd_line(s, eight, longok);
  MUST(str_catb(body, s->s + at, s->len - at));
  if (multi) {
    MUST(str_cats(s, "--b-1\nContent-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n"));
    for (i = 0; i < 3; i++) MUST(str_cats(s, "abc=3D=E9 def\n"));
    if (longok && rnd(2)) { for (i = 0; i < 1500; i++) MUST(str_catc(s, (char)(i % 7 ? 'q' : '='))); MUST(str_catc(s, '\n')); }
    MUST(str_cats(s, "--b-1\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n"));
    for (i = 0; i < (longok && rnd(2) ? 2000 : 60); i++) MUST(str_catc(s, "AbCd"[i % 4]));
    MUST(str_cats(s, "\n--b-1--\nepilogue\n"));
  }
}

/* The first text part's QP-encoded content in o, decoded, is body (the
 * CRs of CRLF line ends are the wire's, not content: dropped). */
static int first_part_decodes(const str *o, const str *body, int multi)
{
  str d = STR_INIT, want = STR_INIT;
  const char *p = o->s, *end = o->s + o->len, *q;
  size_t i;
  int ok;

  q = memmem(p, o->len, "\n\n", 2);       /* the top header's end */
  if (!q) return 0;
  p = q + 2;
  if (multi) {
    q = memmem(p, (size_t)(end - p), "\n\n", 2);   /* the part's header's end */
    if (!q) return 0;
    p = q + 2;
    q = memmem(p, (size_t)(end - p), "\n--b-1\n", 7);
    if (!q) return 0;
    end = q + 1;
  }
  for (i = 0; i < body->len; i++)
    if (!(body->s[i] == '\r' && i + 1 < body->len && body->s[i + 1] == '\n')) MUST(str_catc(&want, body->s[i]));
  ok = qp_decode(&d, p, (size_t)(end - p)) == 0 && d.len == want.len && !memcmp(d.s, want.s, d.len);
  str_free(&d);
  str_free(&want);
  return ok;
}

static void properties(void)
{
  str msg = STR_INIT, body = STR_INIT, a = STR_INIT, b = STR_INIT;
  int iter, bad_strict = 0, bad_same = 0, bad_ident = 0, bad_decode = 0, errs = 0, decoded = 0, ident = 0;

  for (iter = 0; iter < 400; iter++) {
    int eight = rnd(2), longok = rnd(2), seven = rnd(2), multi;
    rnd_msg(&msg, &body, eight, longok);
    multi = memmem(msg.s, msg.len, "boundary", 8) != 0;
    if (conv(msg.s, msg.len, seven, 1 + rnd(100), &a) || conv(msg.s, msg.len, seven, 65536, &b)) {
      /* Only a stray boundary (prefix matched, as by Postfix), making
       * body lines a part's header, may fail. */
      if (!memmem(body.s, body.len, "\n--b-1", 6) && (body.len < 5 || memcmp(body.s, "--b-1", 5))) errs++;
      continue;
    }
    if (!strict_ok(&a, seven)) bad_strict++;
    if (a.len != b.len || memcmp(a.s, b.s, a.len)) bad_same++;
    if (!mime8_needed(longok ? MIME8_LINE + 1 : 0, eight, !seven)) {
      /* Nothing to convert: what goes in comes out. */
      if (a.len != msg.len || memcmp(a.s, msg.s, a.len)) bad_ident++;
      ident++;
    }
    if (memmem(a.s, a.len, "quoted-printable\n", 17) && memmem(body.s, body.len, "\n", 1) &&
        !memmem(body.s, body.len, "--b-1", 5) &&
        (memmem(a.s, a.len, "Content-Transfer-Encoding: quoted-printable\nMIME-Version", 56) ||
         (multi && memmem(a.s, a.len, "charset=utf-8\nContent-Transfer-Encoding: quoted-printable", 57)))) {
      decoded++;
      if (!first_part_decodes(&a, &body, multi)) bad_decode++;
    }
  }
  CHECK(errs == 0);
  CHECK(bad_strict == 0);
  CHECK(bad_same == 0);
  CHECK(bad_ident == 0);
  CHECK(bad_decode == 0);
  CHECK(decoded > 50 && ident > 50);   /* both kinds were drawn */
  printf("%d converted and decoded, %d left alone\n", decoded, ident);
  str_free(&msg);
  str_free(&body);
  str_free(&a);
  str_free(&b);
}

int main(void)
{
  str big = STR_INIT, o = STR_INIT, d = STR_INIT;
  size_t i;

  /* A plain 8-bit message to a 7-bit receiver. */
  CHECK(conv_is("Subject: x\n\nh\xe9llo \nend", 1,
                "Subject: x\nContent-Transfer-Encoding: quoted-printable\nMIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=unknown-8bit\n\nh=E9llo=20\nend"));
  /* Declared 8bit with a type: the encoding is replaced, nothing added. */
  CHECK(conv_is("MIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\nContent-Type: text/plain; charset=utf-8\n"
                "\n\xc3\xa9=\r\n", 1,
                "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: quoted-printable\n\n=C3=A9=3D\n"));
  /* The same to an 8BITMIME receiver: nothing to do. */
  CHECK(conv_is("Subject: x\n\nh\xe9llo\n", 0, "Subject: x\n\nh\xe9llo\n"));
  /* A folded Content-Transfer-Encoding goes whole. */
  CHECK(conv_is("Content-Transfer-Encoding:\n 8bit\nX: y\n\n\xff\n", 1,
                "X: y\nContent-Transfer-Encoding: quoted-printable\nMIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=unknown-8bit\n\n=FF\n"));

  /* A multipart: only the 8-bit part changes; boundaries, the 7-bit part
   * and the base64 part stay as they are. */
  CHECK(conv_is("Content-Type: multipart/mixed; boundary=\"=_b\"\n\npre\n--=_b\n"
                "Content-Type: text/plain\n\nplain\n--=_b\nContent-Type: text/plain; charset=latin1\n"
                "Content-Transfer-Encoding: 8bit\n\ncaf\xe9\n--=_b\nContent-Transfer-Encoding: base64\n\nAAAA\n--=_b--\n", 1,
                "Content-Type: multipart/mixed; boundary=\"=_b\"\n\npre\n--=_b\n"
                "Content-Type: text/plain\n\nplain\n--=_b\nContent-Type: text/plain; charset=latin1\n"
                "Content-Transfer-Encoding: quoted-printable\n\ncaf=E9\n--=_b\nContent-Transfer-Encoding: base64\n\nAAAA\n--=_b--\n"));
  /* Nested multipart and message/rfc822: the inner message's part. */
  CHECK(conv_is("Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n\n"
                "Subject: in\n\n\xe9\n--o--\n", 1,
                "Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n\n"
                "Subject: in\nContent-Transfer-Encoding: quoted-printable\nMIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=unknown-8bit\n\n=E9\n--o--\n"));

  /* A part's header cut short by the next boundary: that part ends there
   * and the next one is converted as usual. */
  CHECK(conv_is("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n--b\n\n\xe9\n--b--\n", 1,
                "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n--b\n"
                "Content-Transfer-Encoding: quoted-printable\nContent-Type: text/plain; charset=unknown-8bit\n"
                "\n=E9\n--b--\n"));

  /* A long line, 7-bit: quoted-printable at 76 columns, decoding back. */
  MUST(str_cats(&big, "Subject: long\n\n"));
  for (i = 0; i < 2500; i++) MUST(str_catc(&big, (char)('a' + i % 26)));
  MUST(str_cats(&big, "\n.\n"));
  CHECK(conv(big.s, big.len, 0, 100, &o) == 0);
  CHECK(strict_ok(&o, 1));
  {
    const char *b = memmem(o.s, o.len, "\n\n", 2);
    size_t k, col = 0, maxcol = 0;
    CHECK(b && qp_decode(&d, b + 2, o.len - (size_t)(b + 2 - o.s)) == 0 && d.len == 2503 &&
          !memcmp(d.s, big.s + 15, 2503));
    for (k = 0; k < o.len; k++) { if (o.s[k] == '\n') col = 0; else if (++col > maxcol) maxcol = col; }
    CHECK(maxcol == 76);
  }

  /* A long header line is folded before a blank; one without blanks gets
   * LF and a space inserted. */
  big.len = 0;
  MUST(str_cats(&big, "To: "));
  for (i = 0; i < 300; i++) MUST(str_cats(&big, "abcd@example.test, "));
  MUST(str_cats(&big, "\nX-Long: "));
  for (i = 0; i < 1500; i++) MUST(str_catc(&big, 'z'));
  MUST(str_cats(&big, "\n\nbody\n"));
  CHECK(conv(big.s, big.len, 1, 7, &o) == 0);
  CHECK(strict_ok(&o, 1));
  CHECK(memmem(o.s, o.len, "test,\n abcd@", 12) != 0);
  CHECK(memmem(o.s, o.len, "\n\nbody\n", 7) != 0 && !memmem(o.s, o.len, "Content-Transfer", 16));
  {
    /* Unfolded (LF before a blank removed), the To: field is unchanged. */
    str u = STR_INIT;
    size_t k;
    for (k = 0; k < o.len; k++) if (!(o.s[k] == '\n' && k + 1 < o.len && o.s[k + 1] == ' ')) MUST(str_catc(&u, o.s[k]));
    CHECK(u.len >= 4 + 300 * 19 && !memcmp(u.s, big.s, 4 + 300 * 19));
    str_free(&u);
  }

  /* A line of exactly 998 octets (also with CR LF) is fine as it is. */
  big.len = 0;
  MUST(str_cats(&big, "Subject: x\n\n"));
  for (i = 0; i < MIME8_LINE; i++) MUST(str_catc(&big, 'y'));
  MUST(str_cats(&big, "\r\n"));
  CHECK(conv(big.s, big.len, 1, 64, &o) == 0 && o.len == big.len && !memcmp(o.s, big.s, o.len));

  /* What cannot be converted, only when it must be. */
  CHECK(conv_err("Subject: caf\xe9\n\nx\n", 1) == MIME8_HEADER8);
  CHECK(conv_err("Subject: caf\xe9\n\nx\n", 0) == MIME8_OK);
  CHECK(conv_err("Content-Transfer-Encoding: x-uuencode\n\n\xe9\n", 1) == MIME8_CANNOT);
  CHECK(conv_err("Content-Transfer-Encoding: base64\n\n\xe9\n", 1) == MIME8_CANNOT);
  CHECK(conv_err("Content-Type: message/partial; id=1\n\n\xe9\n", 1) == MIME8_CANNOT);
  CHECK(conv_err("Content-Type: message/partial; id=1\n\nplain\n", 1) == MIME8_OK);

  /* Quoted-printable already, with a long line and an 8-bit byte. */
  big.len = 0;
  MUST(str_cats(&big, "Content-Transfer-Encoding: quoted-printable\n\n"));
  for (i = 0; i < 1200; i++) MUST(str_cats(&big, i % 3 ? "a" : "=41"));
  MUST(str_cats(&big, "\xe9\n"));
  CHECK(conv(big.s, big.len, 1, 9, &o) == 0 && strict_ok(&o, 1));
  {
    const char *b = memmem(o.s, o.len, "\n\n", 2), *w = memmem(big.s, big.len, "\n\n", 2);
    str d2 = STR_INIT;
    CHECK(b && w && qp_decode(&d, b + 2, o.len - (size_t)(b + 2 - o.s)) == 0 &&
          qp_decode(&d2, w + 2, big.len - (size_t)(w + 2 - big.s) - 2) == 0 &&
          d.len == d2.len + 2 && !memcmp(d.s, d2.s, d2.len) && (unsigned char)d.s[d2.len] == 0xe9);
    str_free(&d2);
  }

  /* A soft break never leaves "--" at the start of a line. */
  big.len = 0;
  MUST(str_cats(&big, "Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\n"));
  for (i = 0; i < 75; i++) MUST(str_catc(&big, 'x'));
  MUST(str_cats(&big, "--zz\xe9\n--zz--\n"));
  CHECK(conv(big.s, big.len, 1, 1, &o) == 0 && !memmem(o.s, o.len, "\n--zz\xe9", 6) &&
        memmem(o.s, o.len, "=\n=2D-zz=E9\n--zz--\n", 19));

  properties();
  str_free(&big);
  str_free(&o);
  str_free(&d);
  DONE();
}
