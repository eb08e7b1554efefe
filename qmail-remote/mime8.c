/* Message conversion for strict receivers (mime8.h).
 *
 * A byte-at-a-time state machine over the stored message: S_HEAD, a
 * header (the top one, a part's, or an encapsulated message's); S_BODY, a
 * leaf part's body in one of the modes below; S_FREE, a preamble or an
 * epilogue; S_BTAIL, what follows a boundary on its line. In the bodies,
 * the start of every line is held in l until it is known not to be a
 * boundary of an enclosing multipart (prefix match, as Postfix and most
 * readers do), so that no byte of a boundary line is ever encoded.
 *
 * Invariant: both passes walk the same states over the same bytes; only
 * the write pass emits, and it acts on need[], which the scan filled. */
#include <string.h>
#include <strings.h>
#include "mime8.h"

enum { S_HEAD, S_BODY, S_FREE, S_BTAIL };
enum { M_SCAN, M_PASS, M_QPENC, M_QPFIX, M_B64FIX };
enum { T_TEXT, T_MULTI, T_RFC822, T_GLOBAL, T_MSGOTHER };
enum { C_ID, C_QP, C_B64, C_OTHER };
enum { K_ENC, K_QP, K_B64, K_OPAQUE };   /* a leaf, by what may be done to it */
#define F_LONG 1u                        /* need[]: a line over MIME8_LINE */
#define F_EIGHT 2u                       /*   an 8-bit byte */
#define F_ENC 4u                         /*   re-encoded in quoted-printable */
#define QP_MAX 76                        /* RFC 2045 6.7 (5) */
#define B64_MAX 76

static const char hexd[] = "0123456789ABCDEF";

int mime8_needed(size_t longest, int eight, int peer8bit)
{
  return longest > MIME8_LINE || (eight && !peer8bit);
}

static void put(struct mime8 *m, str *out, const char *p, size_t n)
{
  if (m->write && !m->err && str_catb(out, p, n) < 0) m->err = MIME8_NOMEM;
}

static void putc1(struct mime8 *m, str *out, char c) { put(m, out, &c, 1); }

static int wsp(char c) { return c == ' ' || c == '\t'; }

static int needs(const struct mime8 *m, unsigned char fl)
{
  return (fl & F_LONG) || (m->seven && (fl & F_EIGHT));
}

/* ---- a part's header ---- */

static void part_begin(struct mime8 *m, int msg, int dflt_msg)
{
  m->idx = m->parts++;
  m->msg = msg;
  m->dflt_msg = dflt_msg;
  m->seen_ver = m->seen_type = 0;
  m->type = dflt_msg ? T_RFC822 : T_TEXT;
  m->cte = C_ID;
  m->digest = 0;
  m->bndlen = 0;
  m->hlen = m->flen = 0;
  m->hfold = 0;
  m->drop = -1;
  m->state = S_HEAD;
}

/* The field name of f[0..n) (up to ':', blanks trimmed) is name. */
static int named(const char *f, size_t n, const char *name, size_t *val)
{
  const char *colon = memchr(f, ':', n);
  size_t k, nl = strlen(name);

  if (!colon) return 0;
  for (k = (size_t)(colon - f); k && wsp(f[k - 1]); k--) ;
  if (k != nl || strncasecmp(f, name, nl)) return 0;
  *val = (size_t)(colon - f) + 1;
  return 1;
}

static size_t token(const char *p, size_t i, size_t n)
{
  while (i < n && !wsp(p[i]) && p[i] != ';' && p[i] != '/' && p[i] != '(' && p[i] != '"') i++;
  return i;
}

static int tok_is(const char *p, size_t a, size_t b, const char *w)
{
  return b - a == strlen(w) && !strncasecmp(p + a, w, b - a);
}

/* The boundary parameter of a Content-Type value p[i..n). */
static void boundary_param(struct mime8 *m, const char *p, size_t i, size_t n)
{
  size_t a, b;

  while (i < n) {
    while (i < n && p[i] != ';') {          /* to the next parameter */
      if (p[i] == '"') for (i++; i < n && p[i] != '"'; i++) if (p[i] == '\\') i++;
      i++;
    }
    for (i++; i < n && wsp(p[i]); i++) ;
    a = i;
    while (i < n && p[i] != '=' && p[i] != ';' && !wsp(p[i])) i++;
    b = i;
    while (i < n && wsp(p[i])) i++;
    if (i >= n || p[i] != '=' || !tok_is(p, a, b, "boundary")) continue;
    for (i++; i < n && wsp(p[i]); i++) ;
    m->bndlen = 0;
    if (i < n && p[i] == '"') {
      for (i++; i < n && p[i] != '"'; i++) {
        if (p[i] == '\\' && i + 1 < n) i++;
        if (m->bndlen == sizeof m->bnd) { m->bndlen = 0; return; }
        m->bnd[m->bndlen++] = p[i];
      }
    } else {
      for (; i < n && p[i] != ';' && !wsp(p[i]); i++) {
        if (m->bndlen == sizeof m->bnd) { m->bndlen = 0; return; }
        m->bnd[m->bndlen++] = p[i];
      }
    }
    return;
  }
}

static void content_type(struct mime8 *m, const char *p, size_t i, size_t n)
{
  size_t a, b, c, d;

  while (i < n && wsp(p[i])) i++;
  a = i;
  b = token(p, i, n);
  if (b >= n || p[b] != '/') return;        /* not type/subtype: the default stays */
  c = b + 1;
  d = token(p, c, n);
  m->seen_type = 1;
  if (tok_is(p, a, b, "multipart")) {
    m->type = T_MULTI;
    m->digest = tok_is(p, c, d, "digest");
    boundary_param(m, p, d, n);
  } else if (tok_is(p, a, b, "message")) {
    m->type = tok_is(p, c, d, "rfc822") ? T_RFC822 : tok_is(p, c, d, "global") ? T_GLOBAL : T_MSGOTHER;
  } else {
    m->type = T_TEXT;
  }
}

/* The field in f is complete: what it says about the part. */
static void field_end(struct mime8 *m)
{
  size_t v, a, b;

  if (named(m->f, m->flen, "content-type", &v)) content_type(m, m->f, v, m->flen);
  else if (named(m->f, m->flen, "mime-version", &v)) m->seen_ver = 1;
  else if (named(m->f, m->flen, "content-transfer-encoding", &v)) {
    for (a = v; a < m->flen && wsp(m->f[a]); a++) ;
    b = token(m->f, a, m->flen);
    m->cte = tok_is(m->f, a, b, "quoted-printable") ? C_QP : tok_is(m->f, a, b, "base64") ? C_B64
           : tok_is(m->f, a, b, "7bit") || tok_is(m->f, a, b, "8bit") || tok_is(m->f, a, b, "binary") ? C_ID
           : C_OTHER;
  }
  m->flen = 0;
}

static int part_needs(const struct mime8 *m)
{
  return m->idx < MIME8_PARTS && needs(m, m->need[m->idx]);
}

static int part_enc(const struct mime8 *m)
{
  return m->write && m->idx < MIME8_PARTS && (m->need[m->idx] & F_ENC);
}

/* Emits h[0..n): the field's first emission decides whether it is the
 * Content-Transfer-Encoding being replaced. */
static void head_emit(struct mime8 *m, str *out, size_t n)
{
  size_t v;

  if (m->drop < 0)
    m->drop = part_enc(m) && named(m->h, m->hlen, "content-transfer-encoding", &v);
  if (!m->drop) put(m, out, m->h, n);
}

/* h is full and the line goes on: fold before its last blank that has
 * text before it, else break it with LF and a space. */
static void head_fold(struct mime8 *m, str *out)
{
  size_t k, first = 0;

  m->hfold = 1;
  while (first < m->hlen && wsp(m->h[first])) first++;
  for (k = m->hlen - 1; k > first && !wsp(m->h[k]); k--) ;
  if (k > first) {
    head_emit(m, out, k);
    if (!m->drop) putc1(m, out, '\n');
    memmove(m->h, m->h + k, m->hlen - k);
    m->hlen -= k;
  } else {
    head_emit(m, out, m->hlen);
    if (!m->drop) putc1(m, out, '\n');
    m->h[0] = ' ';
    m->hlen = 1;
  }
}

/* What the part is, once its header is read. Sets kind for a leaf. */
static int part_kind(struct mime8 *m)
{
  if (m->cte == C_QP) return K_QP;
  if (m->cte == C_B64) return K_B64;
  if (m->cte == C_OTHER) return K_OPAQUE;
  if (m->type == T_MULTI) return m->bndlen && m->depth < MIME8_DEPTH ? -1 : K_OPAQUE;
  if (m->type == T_RFC822) return -2;
  if (m->type == T_MSGOTHER) return K_OPAQUE;
  return K_ENC;
}

static void lneed_set(struct mime8 *m)
{
  size_t k, max = 0;

  for (k = 0; k < m->depth; k++)
    if (m->stack[k].blen > max) max = m->stack[k].blen;
  m->lneed = 2 + max + 2;
}

static void body_begin(struct mime8 *m)
{
  m->state = S_BODY;
  m->flags = 0;
  m->col = 0;
  m->cr = m->ws = m->soft = m->esc = 0;
  m->chk = 1;
  m->llen = 0;
  if (!m->write) m->mode = M_SCAN;
  else if (!part_needs(m)) m->mode = M_PASS;
  else m->mode = part_enc(m) ? M_QPENC : m->kind == K_QP ? M_QPFIX : M_B64FIX;
}

/* The blank line ending a header (b[0..n), "\n" or "\r\n"). */
static void head_end(struct mime8 *m, str *out, const char *b, size_t n)
{
  int k;

  if (m->flen) field_end(m);
  k = part_kind(m);
  m->kind = k < 0 ? K_OPAQUE : k;
  if (k == K_ENC && part_enc(m)) {
    put(m, out, "Content-Transfer-Encoding: quoted-printable\n", 44);
    if (m->msg && !m->seen_ver) put(m, out, "MIME-Version: 1.0\n", 18);
    if (!m->seen_type && (m->need[m->idx] & F_EIGHT))
      put(m, out, "Content-Type: text/plain; charset=unknown-8bit\n", 47);
  }
  put(m, out, b, n);
  if (k == -1) {                            /* a multipart: its preamble next */
    struct mime8_level *lv = &m->stack[m->depth++];
    memcpy(lv->b, m->bnd, m->bndlen);
    lv->blen = m->bndlen;
    lv->digest = m->digest;
    lneed_set(m);
    m->state = S_FREE;
    m->col = 0;
    m->chk = 1;
    m->llen = 0;
  } else if (k == -2) {                     /* message/rfc822: its header next */
    part_begin(m, 1, 0);
  } else {
    body_begin(m);
  }
}

static int boundary(struct mime8 *m, str *out, const char *p, size_t n);
static void free_byte(struct mime8 *m, str *out, char c);

static void head_byte(struct mime8 *m, str *out, char c)
{
  if (c == '\n') {
    if (m->hlen == 0 || (m->hlen == 1 && m->h[0] == '\r')) {
      head_end(m, out, m->hlen ? "\r\n" : "\n", m->hlen + 1);
      return;
    }
    /* A part cut short by a boundary before its blank line: the part
     * ends empty, and the boundary is one (RFC 2046 allows no header). */
    if (m->depth && !m->hfold && boundary(m, out, m->h, m->hlen)) {
      free_byte(m, out, '\n');
      return;
    }
    head_emit(m, out, m->hlen);
    if (!m->drop) putc1(m, out, '\n');
    m->hlen = 0;
    m->hfold = 0;
    return;
  }
  if (m->hlen == 0 && !wsp(c)) {            /* a new field */
    if (m->flen) field_end(m);
    m->drop = -1;
  }
  if ((c & 0x80) && m->seven && !m->err) m->err = MIME8_HEADER8;
  if (c != '\r' && m->flen < sizeof m->f) m->f[m->flen++] = c;
  /* A line of MIME8_LINE is fine, also with a CR before its LF. */
  if (m->hlen >= MIME8_LINE && !(m->hlen == MIME8_LINE && c == '\r')) head_fold(m, out);
  m->h[m->hlen++] = c;
}

/* ---- bodies ---- */

/* A preamble's, an epilogue's or a boundary line's text. */
static void free_byte(struct mime8 *m, str *out, char c)
{
  if (c == '\n') {
    putc1(m, out, c);
    m->col = 0;
    m->chk = 1;
    if (m->state == S_BTAIL) m->state = m->next;
    return;
  }
  if (m->col >= MIME8_LINE && !(m->col == MIME8_LINE && c == '\r')) return;
  m->col++;
  putc1(m, out, (c & 0x80) && m->seven ? '?' : c);
}

static void qp_emit(struct mime8 *m, str *out, unsigned char c, int lit)
{
  char e[3];

  if (lit && c == '-' && m->col == 0 && m->soft) lit = 0;   /* never "--" after a soft break */
  if (m->col + (lit ? 1 : 3) > QP_MAX - 1) {
    put(m, out, "=\n", 2);
    m->col = 0;
    m->soft = 1;
    if (lit && c == '-') lit = 0;
  } else {
    m->soft = 0;
  }
  if (lit) { putc1(m, out, (char)c); m->col++; return; }
  e[0] = '=';
  e[1] = hexd[c >> 4];
  e[2] = hexd[c & 15];
  put(m, out, e, 3);
  m->col += 3;
}

/* A pending CR and blank go out encoded: nothing follows on the line. */
static void qp_flush(struct mime8 *m, str *out)
{
  if (m->ws) qp_emit(m, out, (unsigned char)m->ws, 0);
  m->ws = 0;
  if (m->cr) qp_emit(m, out, '\r', 0);
  m->cr = 0;
}

static void qp_byte(struct mime8 *m, str *out, unsigned char c)
{
  if (m->cr) {
    m->cr = 0;
    if (c == '\n') {                        /* CRLF stored: one line end */
      if (m->ws) qp_emit(m, out, (unsigned char)m->ws, 0);
      m->ws = 0;
      goto eol;
    }
    if (m->ws) qp_emit(m, out, (unsigned char)m->ws, 1);
    m->ws = 0;
    qp_emit(m, out, '\r', 0);
  }
  if (c == '\n') { qp_flush(m, out); goto eol; }
  if (c == '\r') { m->cr = 1; return; }
  if (m->ws) qp_emit(m, out, (unsigned char)m->ws, 1);
  m->ws = 0;
  if (c == ' ' || c == '\t') { m->ws = c; return; }
  qp_emit(m, out, c, c >= 33 && c <= 126 && c != '=');
  return;
eol:
  putc1(m, out, '\n');
  m->col = 0;
  m->soft = 0;
  m->chk = 1;
}

/* Quoted-printable already: soft breaks where a line is too long (never
 * inside an =XX), 8-bit bytes escaped. */
static void qpfix_byte(struct mime8 *m, str *out, unsigned char c)
{
  char e[3] = { '=', hexd[c >> 4], hexd[c & 15] };
  size_t n = c & 0x80 ? 3 : 1;

  if (c == '\n') { putc1(m, out, '\n'); m->col = 0; m->esc = 0; m->chk = 1; return; }
  /* Room for the whole =XX an '=' starts, and the soft break's '='. */
  if (!m->esc && m->col + (c == '=' ? 3 : n) > MIME8_LINE - 1) { put(m, out, "=\n", 2); m->col = 0; }
  if (n == 3) put(m, out, e, 3);
  else putc1(m, out, (char)c);
  m->col += n;
  if (n == 1 && c == '=') m->esc = 2;
  else if (m->esc) m->esc--;
}

static void body_byte(struct mime8 *m, str *out, char c)
{
  switch (m->mode) {
  case M_SCAN:
    if (c == '\n') {
      if (m->col > MIME8_LINE + (m->cr ? 1u : 0u)) m->flags |= F_LONG;
      m->col = 0;
      m->chk = 1;
    } else {
      m->col++;
      if (c & 0x80) m->flags |= F_EIGHT;
    }
    m->cr = c == '\r';
    return;
  case M_PASS:
    putc1(m, out, c);
    if (c == '\n') m->chk = 1;
    return;
  case M_QPENC: qp_byte(m, out, (unsigned char)c); return;
  case M_QPFIX: qpfix_byte(m, out, (unsigned char)c); return;
  default:                                  /* base64: rewrapped */
    if (c == '\n') { m->col = 0; m->chk = 1; }
    else if (m->col++ >= B64_MAX) { putc1(m, out, '\n'); m->col = 1; }
    putc1(m, out, c);
  }
}

/* The content of a line, the boundary check done. */
static void content_byte(struct mime8 *m, str *out, char c)
{
  if (m->state == S_HEAD) head_byte(m, out, c);
  else if (m->state == S_BODY) body_byte(m, out, c);
  else free_byte(m, out, c);
}

/* A leaf's body ends (a boundary, the end): the scan records its flags
 * and whether it can be converted; the write pass flushes. */
static void part_end(struct mime8 *m, str *out)
{
  if (m->state != S_BODY) return;
  if (m->mode == M_SCAN) {
    if (m->col > MIME8_LINE + (m->cr ? 1u : 0u)) m->flags |= F_LONG;
    if (m->idx < MIME8_PARTS)
      m->need[m->idx] = (unsigned char)(m->flags | (m->kind == K_ENC && needs(m, m->flags) ? F_ENC : 0));
    if (needs(m, m->flags) && !m->err &&
        (m->idx >= MIME8_PARTS || m->kind == K_OPAQUE || (m->kind == K_B64 && (m->flags & F_EIGHT))))
      m->err = MIME8_CANNOT;
  } else if (m->mode == M_QPENC) {
    qp_flush(m, out);
  }
}

/* p[0..n) is a line's start (its LF last, if there): 1 if it is a
 * boundary, then gone out as it is and the state moved on. */
static int boundary(struct mime8 *m, str *out, const char *p, size_t n)
{
  size_t k, bl;
  int close;

  for (k = m->depth; k-- > 0;) {
    bl = m->stack[k].blen;
    if (n < 2 + bl || p[0] != '-' || p[1] != '-' || memcmp(p + 2, m->stack[k].b, bl)) continue;
    close = n >= 4 + bl && p[2 + bl] == '-' && p[3 + bl] == '-';
    part_end(m, out);
    m->depth = close ? k : k + 1;
    if (close) {
      m->next = S_FREE;
    } else {
      part_begin(m, 0, m->stack[k].digest);   /* h is left as it was: p may be h */
      m->next = S_HEAD;
    }
    lneed_set(m);
    m->state = S_BTAIL;
    m->col = 0;
    for (k = 0; k < n; k++) free_byte(m, out, p[k]);
    m->chk = m->state != S_HEAD && m->state != S_BTAIL;
    return 1;
  }
  return 0;
}

static void step(struct mime8 *m, str *out, char c)
{
  size_t k, n;

  if (m->chk && m->depth && m->state != S_HEAD) {
    m->l[m->llen++] = c;
    if (c != '\n' && m->llen < m->lneed) return;
    m->chk = 0;
    n = m->llen;
    m->llen = 0;
    if (boundary(m, out, m->l, n)) return;
    for (k = 0; k < n; k++) content_byte(m, out, m->l[k]);
    return;
  }
  m->chk = 0;
  content_byte(m, out, c);
}

void mime8_init(struct mime8 *m, int seven)
{
  memset(m, 0, sizeof *m);
  m->seven = seven;
  part_begin(m, 1, 0);
}

void mime8_rewind(struct mime8 *m)
{
  int seven = m->seven, err = m->err;
  unsigned char need[MIME8_PARTS];

  memcpy(need, m->need, sizeof need);
  mime8_init(m, seven);
  memcpy(m->need, need, sizeof need);
  m->err = err;
  m->write = 1;
}

int mime8_feed(struct mime8 *m, const char *p, size_t n, str *out)
{
  size_t i;

  if (m->write && !m->err && str_readyplus(out, n + n / 2 + 64) < 0) m->err = MIME8_NOMEM;
  for (i = 0; i < n && !m->err; i++) step(m, out, p[i]);
  return m->err;
}

int mime8_end(struct mime8 *m, str *out)
{
  size_t k, n;

  n = m->llen;
  m->llen = 0;
  if (n && !boundary(m, out, m->l, n)) {
    m->chk = 0;
    for (k = 0; k < n; k++) content_byte(m, out, m->l[k]);
  }
  if (m->state == S_HEAD && m->hlen) head_emit(m, out, m->hlen);
  part_end(m, out);
  return m->err;
}
