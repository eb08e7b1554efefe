/* RFC 5322 address-list parser; grammar and departures in alist.h.
 *
 * Recursive descent over s[0..n) with one cursor. Nothing recurses on the
 * input's shape: comments nest by a bounded counter and groups may not
 * nest, so hostile input costs at most linear time and stack. Every loop
 * either consumes a byte or returns. */
#include <string.h>
#include "str.h"
#include "alist.h"

typedef struct {
  const char *s;
  size_t n;
  size_t i;            /* cursor: s[i] is the next unread byte */
  str local;           /* the words of the current local part / phrase */
  str domain;
  size_t a_start, a_end; /* the current addr-spec's first and last token */
  const char *why;
  int nomem;
  int stopped;
  alist_fn *fn;
  void *ctx;
} parser;

/* What collect() saw: enough to tell a display name from a local part. */
struct words {
  int nword;           /* atoms and quoted strings */
  int ndot;
  int quoted;          /* how many words were quoted strings */
  int adjacent;        /* two words with no dot between: a phrase */
  int dotbad;          /* a dot first, after a dot, or last */
  int eight;           /* a byte over 127 appeared */
  int first_word;      /* the first token was a word (phrase rule) */
};

static int bad(parser *p, const char *why)
{
  if (!p->why) p->why = why;
  return -1;
}

static int nomem(parser *p)
{
  p->nomem = 1;
  return -1;
}

static int peek(const parser *p)
{
  return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

static int is_atext(int c)
{
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c > 0 && c < 128 && strchr("!#$%&'*+-/=?^_`{|}~", c) != 0;
}

static int is_ctl(int c) { return (c < 32 && c != '\t') || c == 127; }

/* A line break is acceptable only as a fold: [CR] LF followed by SP or HT.
 * Returns the bytes of the break at s[i], or 0 if it is not a fold. */
static size_t fold(const parser *p, size_t i)
{
  size_t j = i;
  if (j < p->n && p->s[j] == '\r') j++;
  if (j >= p->n || p->s[j] != '\n') return 0;
  j++;
  if (j < p->n && (p->s[j] == ' ' || p->s[j] == '\t')) return j - i;
  return 0;
}

static int skip_fold(parser *p)
{
  size_t f = fold(p, p->i);
  if (!f) return bad(p, "line break not followed by white space");
  p->i += f;
  return 0;
}

/* "\" followed by a visible byte or white space; appended to out if given. */
static int quoted_pair(parser *p, str *out, int *eight)
{
  int c;
  if (p->i + 1 >= p->n) return bad(p, "backslash at end of input");
  c = (unsigned char)p->s[p->i + 1];
  if (is_ctl(c)) return bad(p, "control character after backslash");
  if (c > 127) *eight = 1;
  if (out && str_catb(out, p->s + p->i, 2) < 0) return nomem(p);
  p->i += 2;
  return 0;
}

static int comment(parser *p)
{
  int depth = 0, eight = 0, c;

  do {
    c = peek(p);
    if (c < 0) return bad(p, "unterminated comment");
    if (c == '(') {
      if (++depth > ALIST_DEPTH) return bad(p, "comments nested too deeply");
      p->i++;
    } else if (c == ')') {
      depth--;
      p->i++;
    } else if (c == '\\') {
      if (quoted_pair(p, 0, &eight) < 0) return -1;
    } else if (c == '\r' || c == '\n') {
      if (skip_fold(p) < 0) return -1;
    } else if (is_ctl(c)) {
      return bad(p, "control character in comment");
    } else {
      p->i++;
    }
  } while (depth);
  return 0;
}

static int cfws(parser *p)
{
  for (;;) {
    int c = peek(p);
    if (c == ' ' || c == '\t') p->i++;
    else if (c == '\r' || c == '\n') { if (skip_fold(p) < 0) return -1; }
    else if (c == '(') { if (comment(p) < 0) return -1; }
    else return 0;
  }
}

/* A quoted string, appended to out with its quotes and quoted pairs as
 * written; folds inside it are removed, their white space kept. */
static int qstring(parser *p, str *out, int *eight)
{
  int c;

  if (str_catc(out, '"') < 0) return nomem(p);
  p->i++;
  for (;;) {
    c = peek(p);
    if (c < 0) return bad(p, "unterminated quoted string");
    if (c == '"') break;
    if (c == '\\') {
      if (quoted_pair(p, out, eight) < 0) return -1;
      continue;
    }
    if (c == '\r' || c == '\n') {
      if (skip_fold(p) < 0) return -1;
      continue;
    }
    if (is_ctl(c)) return bad(p, "control character in quoted string");
    if (c > 127) *eight = 1;
    if (str_catc(out, (char)c) < 0) return nomem(p);
    p->i++;
  }
  if (str_catc(out, '"') < 0) return nomem(p);
  p->i++;
  return 0;
}

/* An atom; bytes over 127 are taken too (they may only end up in a
 * display name: the caller checks eight before using it as an address). */
static int atom(parser *p, str *out, int *eight)
{
  size_t start = p->i;
  int c;

  while ((c = peek(p)) >= 0 && (is_atext(c) || c > 127)) {
    if (c > 127) *eight = 1;
    p->i++;
  }
  if (str_catb(out, p->s + start, p->i - start) < 0) return nomem(p);
  return 0;
}

/* Reads word / "." tokens with CFWS between them into p->local, stopping
 * at the first byte that is neither. */
static int collect(parser *p, struct words *w)
{
  int last = 0;  /* 0 nothing yet, 1 a word, 2 a dot */
  int tok, c;

  memset(w, 0, sizeof *w);
  p->local.len = 0;
  for (;;) {
    if (cfws(p) < 0) return -1;
    c = peek(p);
    if (last == 0) p->a_start = p->i;
    if (c == '"') {
      if (qstring(p, &p->local, &w->eight) < 0) return -1;
      w->quoted++;
      tok = 1;
    } else if (c == '.') {
      if (str_catc(&p->local, '.') < 0) return nomem(p);
      p->i++;
      w->ndot++;
      tok = 2;
    } else if (c >= 0 && (is_atext(c) || c > 127)) {
      if (atom(p, &p->local, &w->eight) < 0) return -1;
      tok = 1;
    } else {
      break;
    }
    p->a_end = p->i;
    if (tok == 1) {
      if (last == 0) w->first_word = 1;
      if (last == 1) w->adjacent = 1;
      w->nword++;
    } else if (last != 1) {
      w->dotbad = 1;
    }
    last = tok;
  }
  if (last == 2) w->dotbad = 1;
  return 0;
}

static int local_ok(const struct words *w)
{
  if (w->nword < 1 || w->adjacent || w->dotbad || w->eight) return 0;
  return !w->quoted || (w->nword == 1 && w->ndot == 0);
}

static int is_ldh(int c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

/* domain = "[" dtext "]" / label *("." label), labels of letters, digits,
 * '-' and '_' (what the envelope can carry to DNS), CFWS around dots
 * (obs-domain). Consumes trailing CFWS. Sets *literal. */
static int domain(parser *p, int *literal)
{
  int c;

  p->domain.len = 0;
  *literal = 0;
  if (cfws(p) < 0) return -1;
  if (peek(p) == '[') {
    *literal = 1;
    for (;;) {
      c = peek(p);
      if (c < 0) return bad(p, "unterminated domain literal");
      if (p->domain.len && (c == '[' || c == '\\')) return bad(p, "bad character in domain literal");
      if (c < 33 || c > 126) return bad(p, "bad character in domain literal");
      if (str_catc(&p->domain, (char)c) < 0) return nomem(p);
      p->i++;
      if (c == ']') break;
    }
    p->a_end = p->i;
  } else {
    for (;;) {
      size_t start = p->i;
      while ((c = peek(p)) >= 0 && is_ldh(c)) p->i++;
      if (p->i == start) return bad(p, c > 127 ? "non-ASCII domain" : "bad domain");
      if (str_catb(&p->domain, p->s + start, p->i - start) < 0) return nomem(p);
      p->a_end = p->i;
      if (cfws(p) < 0) return -1;
      if (peek(p) != '.') break;
      if (str_catc(&p->domain, '.') < 0) return nomem(p);
      p->i++;
      if (cfws(p) < 0) return -1;
    }
  }
  if (p->domain.len > ALIST_DOMAIN_MAX) return bad(p, "domain too long");
  return cfws(p);
}

static int emit(parser *p, int has_domain, int literal)
{
  struct alist_addr a;
  size_t total = p->local.len;

  if (has_domain && size_add(&total, total, 1 + p->domain.len) < 0) return bad(p, "address too long");
  if (total > ALIST_ADDR_MAX) return bad(p, "address too long");
  a.local = p->local.s;
  a.llen = p->local.len;
  a.domain = has_domain ? p->domain.s : 0;
  a.dlen = has_domain ? p->domain.len : 0;
  a.literal = literal;
  a.start = p->a_start;
  a.end = p->a_end;
  if (p->fn(p->ctx, &a)) {
    p->stopped = 1;
    return -1;
  }
  return 0;
}

/* "<" addr-spec ">", the '<' at the cursor. */
static int angle(parser *p)
{
  struct words w;
  int literal = 0, has_domain = 0;

  p->i++;
  if (cfws(p) < 0) return -1;
  if (peek(p) == '@') return bad(p, "source route not accepted");
  if (collect(p, &w) < 0) return -1;
  if (!w.nword && !w.ndot) return bad(p, "empty address");
  if (!local_ok(&w)) return bad(p, "bad local part");
  if (peek(p) == '@') {
    p->i++;
    if (domain(p, &literal) < 0) return -1;
    has_domain = 1;
  }
  if (peek(p) != '>') return bad(p, "missing '>'");
  p->i++;
  return emit(p, has_domain, literal);
}

static int address(parser *p, int in_group);

/* After "display-name :", through the closing ';'. */
static int group(parser *p)
{
  int c;

  p->i++;
  for (;;) {
    if (cfws(p) < 0) return -1;
    c = peek(p);
    if (c < 0) return bad(p, "unterminated group");
    if (c == ';') { p->i++; return 0; }
    if (c == ',') { p->i++; continue; }
    if (address(p, 1) < 0) return -1;
    if (cfws(p) < 0) return -1;
    c = peek(p);
    if (c == ',') p->i++;
    else if (c != ';') return bad(p, c < 0 ? "unterminated group" : "expected ',' or ';' in group");
  }
}

/* One mailbox or group; an empty member consumes nothing and succeeds,
 * leaving the caller to check what follows. */
static int address(parser *p, int in_group)
{
  struct words w;
  int literal, c;

  if (collect(p, &w) < 0) return -1;
  c = peek(p);
  if (c == '<') {
    if ((w.nword || w.ndot) && !w.first_word) return bad(p, "bad display name");
    return angle(p);
  }
  if (c == ':') {
    if (in_group) return bad(p, "group inside a group");
    if (!w.first_word) return bad(p, "bad group name");
    return group(p);
  }
  if (!w.nword && !w.ndot) return 0;
  if (!local_ok(&w)) return bad(p, w.adjacent ? "words without an address" : "bad local part");
  if (c == '@') {
    p->i++;
    if (domain(p, &literal) < 0) return -1;
    return emit(p, 1, literal);
  }
  return emit(p, 0, 0);
}

int alist_parse(const char *s, size_t n, alist_fn *fn, void *ctx, const char **why)
{
  parser p;
  int r = ALIST_OK, c;

  memset(&p, 0, sizeof p);
  p.s = s;
  p.n = n;
  p.fn = fn;
  p.ctx = ctx;
  for (;;) {
    if (cfws(&p) < 0) { r = -1; break; }
    c = peek(&p);
    if (c < 0) break;
    if (c == ',') { p.i++; continue; }
    if (address(&p, 0) < 0 || cfws(&p) < 0) { r = -1; break; }
    c = peek(&p);
    if (c < 0) break;
    if (c != ',') { r = bad(&p, "expected ','"); break; }
    p.i++;
  }
  if (r < 0) r = p.stopped ? ALIST_STOP : p.nomem ? ALIST_NOMEM : ALIST_BAD;
  if (why) *why = r == ALIST_BAD ? p.why : r == ALIST_NOMEM ? "out of memory" : 0;
  str_free(&p.local);
  str_free(&p.domain);
  return r;
}
