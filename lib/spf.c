/* lib/spf.h's check_host(). A record is checked for syntax as a whole
 * (terms(), pass CHECK), then evaluated term by term (pass EVAL) with
 * the same parser, so both passes see the same terms. Every DNS-querying
 * term goes through count(); every lookup through lookup(), which counts
 * void answers. Records are copied out of the DNS layer's buffer before
 * anything else is asked. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "dns.h"
#include "spf.h"

enum { CHECK, EVAL };
/* What evaluating a term gives: a match or not, or an error result. */
enum { M_NO = 0, M_YES = 1, M_TEMP = 2, M_PERM = 3 };
/* Mechanisms, then the modifiers we know, then any other modifier. */
enum { M_ALL, M_INCLUDE, M_A, M_MX, M_PTR, M_IP4, M_IP6, M_EXISTS,
       MOD_REDIRECT, MOD_EXP, MOD_OTHER };
/* The longest value a macro splits (a sender is at most 1 KB in SMTP). */
#define SPF_VALMAX 1024

struct ip {
  int v6;
  unsigned char b[16];
};

struct ctx {
  const struct spf_req *q;
  struct ip ip;
  unsigned lookups, voids;
  int ptr_done;             /* %{p} computed */
  char p[DNS_NAMEMAX];
  /* The validated names (5.5), looked up once per check: the same
   * answers would come again. nvalid is their count or -M_TEMP/-M_PERM,
   * valid_done whether they were looked up, valid_voids the void lookups
   * that took, charged again at each use as a new lookup would be. */
  int valid_done, nvalid;
  unsigned valid_voids;
  char valid[SPF_NAMES][DNS_NAMEMAX];
};

struct term {
  char qual;                /* '+', '-', '~', '?' */
  int type;
  const char *arg;          /* the domain-spec, ip or modifier value */
  size_t argn;
  int has_arg;
  unsigned c4, c6;          /* CIDR lengths */
  struct ip net;            /* ip4 and ip6 */
};

const char *spf_result_name(enum spf_result r)
{
  static const char *const names[] = {
    "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" };
  return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "permerror";
}

static enum spf_result qual_result(char q)
{
  switch (q) {
  case '-': return SPF_FAIL;
  case '~': return SPF_SOFTFAIL;
  case '?': return SPF_NEUTRAL;
  default: return SPF_PASS;
  }
}

static int ip_of(const char *s, struct ip *ip)
{
  unsigned char b[16];
  static const unsigned char mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };

  memset(ip, 0, sizeof *ip);
  if (inet_pton(AF_INET, s, ip->b) == 1) return 0;
  if (inet_pton(AF_INET6, s, b) != 1) return -1;
  if (!memcmp(b, mapped, 12)) { memcpy(ip->b, b + 12, 4); return 0; }
  ip->v6 = 1;
  memcpy(ip->b, b, 16);
  return 0;
}

/* Whether a and b agree in their first bits bits. */
static int prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
  unsigned full = bits / 8, rest = bits % 8;
  if (memcmp(a, b, full)) return 0;
  if (!rest) return 1;
  return ((a[full] ^ b[full]) & (0xff00 >> rest) & 0xff) == 0;
}

/* --- DNS, counted. */

/* A name we would never query (an empty or over-long label, too long
 * altogether) answers nothing, as RFC 7208 4.3 has it for the domain,
 * without counting as a void lookup (nothing was looked up; pyspf
 * agrees). */
static int name_ok(const char *n)
{
  size_t len = strlen(n), lab = 0, i;
  if (!len || len > 253) return 0;
  for (i = 0; i < len; i++) {
    if (n[i] != '.') { if (++lab > 63) return 0; continue; }
    if (!lab) return 0;
    lab = 0;
  }
  return lab > 0;
}

/* One lookup: the record count (0 for none), or M_TEMP / M_PERM negated
 * (the void lookup limit). void_counts: whether an empty answer counts
 * against SPF_VOIDS (not for exp=, 6.2). */
static int lookup(struct ctx *c, const char *name, int type, spf_each *each, void *arg,
                  int void_counts)
{
  int r;

  if (!name_ok(name)) return 0;
  r = c->q->dns->lookup(c->q->dns->ctx, name, type, each, arg);
  if (r == DNS_TEMP) return -M_TEMP;
  if (r > 0) return r;
  if (void_counts && ++c->voids > SPF_VOIDS) return -M_PERM;
  return 0;
}

/* 4.6.4: the eleventh DNS-querying term is a permerror. */
static int count(struct ctx *c)
{
  return ++c->lookups > SPF_LOOKUPS ? M_PERM : M_NO;
}

struct addrs {
  const struct ip *want;
  unsigned bits;
  int match;
};

static int each_addr(void *v, const char *rd, size_t len)
{
  struct addrs *a = v;
  if (len != (a->want->v6 ? 16u : 4u)) return 0;
  if (prefix_eq((const unsigned char *)rd, a->want->b, a->bits)) a->match = 1;
  return 0;
}

/* Whether name has an address of the client's family within bits of it:
 * M_YES, M_NO, or an error. */
static int addr_match(struct ctx *c, const char *name, unsigned bits, int void_counts)
{
  struct addrs a = { &c->ip, bits, 0 };
  int r = lookup(c, name, c->ip.v6 ? ns_t_aaaa : ns_t_a, each_addr, &a, void_counts);
  if (r < 0) return -r;
  return a.match ? M_YES : M_NO;
}

struct names {
  char (*n)[DNS_NAMEMAX];
  size_t max, count;        /* count may exceed max: the records seen */
};

static int each_name(void *v, const char *rd, size_t len)
{
  struct names *x = v;
  if (x->count < x->max && len < DNS_NAMEMAX) {
    memcpy(x->n[x->count], rd, len);
    x->n[x->count][len] = 0;
  } else if (x->count < x->max) {
    x->n[x->count][0] = 0;
  }
  x->count++;
  return 0;
}

/* The client's reverse name: in-addr.arpa or ip6.arpa nibbles. */
static void rev_name(const struct ip *ip, char *out)
{
  static const char hex[] = "0123456789abcdef";
  char *o = out;
  int i;
  if (!ip->v6) {
    for (i = 3; i >= 0; i--) o = fmt_u(o, ip->b[i], 1), *o++ = '.';
    strcpy(o, "in-addr.arpa");
    return;
  }
  for (i = 15; i >= 0; i--) {
    *o++ = hex[ip->b[i] & 15]; *o++ = '.';
    *o++ = hex[ip->b[i] >> 4]; *o++ = '.';
  }
  strcpy(o, "ip6.arpa");
}

/* The validated names of the client (5.5): at most SPF_NAMES PTR names,
 * each kept if it has the client's address, in c->valid. A name whose
 * address lookup fails is skipped. Returns their count, or -M_TEMP /
 * -M_PERM. */
static int validated(struct ctx *c)
{
  static char names[SPF_NAMES][DNS_NAMEMAX];
  struct names x = { names, SPF_NAMES, 0 };
  char rev[80];
  unsigned voids = c->voids;
  size_t i;
  int r;

  if (c->valid_done) {
    c->voids += c->valid_voids;
    return c->valid_voids && c->voids > SPF_VOIDS ? -M_PERM : c->nvalid;
  }
  c->valid_done = 1;
  c->nvalid = 0;
  rev_name(&c->ip, rev);
  r = lookup(c, rev, ns_t_ptr, each_name, &x, 1);
  if (r < 0) c->nvalid = r;
  for (i = 0; r >= 0 && i < x.count && i < SPF_NAMES; i++) {
    if (!names[i][0]) continue;
    r = addr_match(c, names[i], c->ip.v6 ? 128 : 32, 1);
    if (r == M_PERM) c->nvalid = -M_PERM;
    else if (r == M_YES) strcpy(c->valid[c->nvalid++], names[i]);
    r = c->nvalid;
  }
  c->valid_voids = c->voids - voids;
  return c->nvalid;
}

static int suffix_of(const char *name, const char *dom)
{
  size_t n = strlen(name), d = strlen(dom);
  if (n == d) return !strcasecmp(name, dom);
  return n > d && name[n - d - 1] == '.' && !strcasecmp(name + n - d, dom);
}

/* --- macros (7). */

/* The value of macro letter l (lower case) in out. 0 or an M_ error. */
static int macro_value(struct ctx *c, char l, const char *domain, str *out)
{
  const struct spf_req *q = c->q;
  char buf[INET6_ADDRSTRLEN + 64];
  int i;

  out->len = 0;
  switch (l) {
  case 's':
    return str_cats(out, q->local) < 0 || str_catc(out, '@') < 0 ||
           str_cats(out, q->domain) < 0 ? M_PERM : 0;
  case 'l': return str_cats(out, q->local) < 0 ? M_PERM : 0;
  case 'o': return str_cats(out, q->domain) < 0 ? M_PERM : 0;
  case 'd': return str_cats(out, domain) < 0 ? M_PERM : 0;
  case 'h': return str_cats(out, q->helo) < 0 ? M_PERM : 0;
  case 'v': return str_cats(out, c->ip.v6 ? "ip6" : "in-addr") < 0 ? M_PERM : 0;
  case 'r': return str_cats(out, q->receiver && *q->receiver ? q->receiver : "unknown") < 0 ? M_PERM : 0;
  case 't': {
    char *e = fmt_u(buf, (unsigned long long)time(0), 1);
    return str_catb(out, buf, (size_t)(e - buf)) < 0 ? M_PERM : 0;
  }
  case 'c':
    if (!inet_ntop(c->ip.v6 ? AF_INET6 : AF_INET, c->ip.b, buf, sizeof buf)) return M_PERM;
    return str_cats(out, buf) < 0 ? M_PERM : 0;
  case 'i':
    if (!c->ip.v6) {
      if (!inet_ntop(AF_INET, c->ip.b, buf, sizeof buf)) return M_PERM;
      return str_cats(out, buf) < 0 ? M_PERM : 0;
    }
    for (i = 0; i < 32; i++) {
      static const char hex[] = "0123456789abcdef";
      buf[2 * i] = hex[(c->ip.b[i / 2] >> (i % 2 ? 0 : 4)) & 15];
      buf[2 * i + 1] = '.';
    }
    return str_catb(out, buf, 63) < 0 ? M_PERM : 0;
  case 'p':
    if (!c->ptr_done) {
      int n = validated(c), k, pick = -1;
      if (n < 0) return -n;
      for (k = 0; k < n && pick < 0; k++) if (!strcasecmp(c->valid[k], domain)) pick = k;
      for (k = 0; k < n && pick < 0; k++) if (suffix_of(c->valid[k], domain)) pick = k;
      if (pick < 0 && n) pick = 0;
      strcpy(c->p, pick < 0 ? "unknown" : c->valid[pick]);
      c->ptr_done = 1;
    }
    return str_cats(out, c->p) < 0 ? M_PERM : 0;
  default: return M_PERM;
  }
}

static int is_delim(char ch)
{
  return ch && strchr(".-+,/_=", ch) != 0;
}

/* Splits v at any of delims, optionally reversed, keeps the rightmost
 * keep parts (0: all) and joins them with '.' onto out. */
static int transform(const str *v, const char *delims, size_t dn, int rev, unsigned long keep, str *out)
{
  size_t st[SPF_VALMAX + 1], en[SPF_VALMAX + 1], k = 0, i, first, j;

  if (v->len > SPF_VALMAX) return M_PERM;
  st[0] = 0;
  for (i = 0; i < v->len; i++)
    if (memchr(delims, v->s[i], dn)) { en[k++] = i; st[k] = i + 1; }
  en[k++] = v->len;
  first = keep && keep < k ? k - keep : 0;
  for (i = first; i < k; i++) {
    j = rev ? k - 1 - i : i;
    if (i > first && str_catc(out, '.') < 0) return M_PERM;
    if (str_catb(out, v->s + st[j], en[j] - st[j]) < 0) return M_PERM;
  }
  return 0;
}

static int unreserved(unsigned char ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/* Expands the macro-string s[0..n) onto out (7.1). pass CHECK only checks
 * its syntax (no value is looked up); exp: the letters c, r, t are
 * allowed (exp= text). 0, or M_PERM / M_TEMP. */
static int expand(struct ctx *c, int pass, const char *s, size_t n, int exp,
                  const char *domain, str *out)
{
  static str v, t, scratch;
  size_t i = 0, j;

  if (!out) { scratch.len = 0; out = &scratch; }   /* CHECK: the text is dropped */
  while (i < n) {
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x21 || ch > 0x7e) { if (!(exp && ch == ' ')) return M_PERM; }
    if (ch != '%') {
      if (str_catc(out, (char)ch) < 0) return M_PERM;
      i++;
    } else {
      if (i + 1 >= n) return M_PERM;
      ch = (unsigned char)s[i + 1];
      if (ch == '%' || ch == '_' || ch == '-') {
        if (str_cats(out, ch == '%' ? "%" : ch == '_' ? " " : "%20") < 0) return M_PERM;
        i += 2;
      } else if (ch == '{') {
        char l;
        unsigned long keep = 0;
        int rev = 0, upper, r;
        const char *dl;
        size_t dn;
        if (i + 2 >= n) return M_PERM;
        l = s[i + 2];
        upper = l >= 'A' && l <= 'Z';
        if (upper) l = (char)(l - 'A' + 'a');
        if (!strchr(exp ? "slodiphvcrt" : "slodiphv", l) || !l) return M_PERM;
        j = i + 3;
        if (j < n && s[j] == '0') return M_PERM;
        while (j < n && s[j] >= '0' && s[j] <= '9') {
          keep = keep * 10 + (unsigned long)(s[j] - '0');
          if (keep > 1000) return M_PERM;
          j++;
        }
        if (j < n && (s[j] == 'r' || s[j] == 'R')) { rev = 1; j++; }
        dl = s + j;
        while (j < n && is_delim(s[j])) j++;
        dn = (size_t)(s + j - dl);
        if (j >= n || s[j] != '}') return M_PERM;
        i = j + 1;
        if (pass == CHECK) continue;
        if ((r = macro_value(c, l, domain, &v))) return r;
        t.len = 0;
        if ((r = transform(&v, dn ? dl : ".", dn ? dn : 1, rev, keep, &t))) return r;
        for (j = 0; j < t.len; j++) {
          unsigned char x = (unsigned char)t.s[j];
          if (!upper || unreserved(x)) { if (str_catc(out, (char)x) < 0) return M_PERM; continue; }
          char hx[4] = { '%', "0123456789ABCDEF"[x >> 4], "0123456789ABCDEF"[x & 15], 0 };
          if (str_cats(out, hx) < 0) return M_PERM;
        }
      } else {
        return M_PERM;
      }
    }
    if (out->len > SPF_EXPMAX) return exp ? 0 : M_PERM;
  }
  return 0;
}

/* 7.3 and 4.8: a domain-spec ends in "." toplabel ["."] or a macro. */
static int domain_end_ok(const char *s, size_t n)
{
  size_t e, b, i;
  int alpha = 0, dash = 0;

  if (n >= 2 && s[n - 1] == '}') return 1;      /* %{...} at the end */
  if (n >= 2 && s[n - 2] == '%' && (s[n - 1] == '%' || s[n - 1] == '_' || s[n - 1] == '-')) {
    /* an escape at the end, unless that '%' is itself escaped */
    size_t k = 0;
    for (i = n - 1; i > 0 && s[i - 1] == '%'; i--) k++;
    if (k % 2) return 1;
  }
  e = n && s[n - 1] == '.' ? n - 1 : n;
  for (b = e; b > 0 && s[b - 1] != '.'; b--) {}
  if (b == 0 || b == e) return 0;                /* no "." before it, or empty */
  for (i = b; i < e; i++) {
    char ch = s[i];
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) alpha = 1;
    else if (ch == '-') dash = 1;
    else if (!(ch >= '0' && ch <= '9')) return 0;
  }
  if (s[b] == '-' || s[e - 1] == '-') return 0;
  return alpha || dash;
}

/* Expands a domain-spec into out (a NUL-terminated name without its
 * trailing dot, cut from the left to 253 octets, 4.8). */
static int target(struct ctx *c, const struct term *t, const char *domain, str *out)
{
  int r;
  size_t cut = 0;

  out->len = 0;
  if (!t->has_arg) return str_copys(out, domain) < 0 || str_0(out) < 0 ? M_PERM : 0;
  if ((r = expand(c, EVAL, t->arg, t->argn, 0, domain, out))) return r;
  if (out->len && out->s[out->len - 1] == '.') out->len--;
  while (out->len - cut > 253) {
    char *dot = memchr(out->s + cut, '.', out->len - cut);
    if (!dot) break;
    cut = (size_t)(dot - out->s) + 1;
  }
  if (cut) { memmove(out->s, out->s + cut, out->len - cut); out->len -= cut; }
  return str_0(out) < 0 ? M_PERM : 0;
}

/* --- parsing terms (4.6.1, 5, 6). */

/* Strict CIDR digits at s[0..n): 0 or a number without a leading zero,
 * at most max. */
static int cidr_num(const char *s, size_t n, unsigned max, unsigned *out)
{
  unsigned v = 0;
  size_t i;
  if (!n || n > 3 || (n > 1 && s[0] == '0')) return -1;
  for (i = 0; i < n; i++) v = v * 10 + (unsigned)(s[i] - '0');   /* digits: cidrs() */
  if (v > max) return -1;
  *out = v;
  return 0;
}

/* Takes "/n" and "//n" off the end of t[0..*n) when they are there:
 * *c4 and *c6 set, *n shortened; dual says whether "//" may appear. */
static int cidrs(const char *t, size_t *n, int dual, unsigned *c4, unsigned *c6, int *seen)
{
  size_t i = *n;
  *seen = 0;
  while (i > 0 && t[i - 1] >= '0' && t[i - 1] <= '9') i--;
  if (i == *n || i == 0 || t[i - 1] != '/') return 0;
  if (i >= 2 && t[i - 2] == '/') {
    if (!dual || cidr_num(t + i, *n - i, 128, c6) < 0) return -1;
    *n = i - 2;
    *seen = 1;
    i = *n;
    while (i > 0 && t[i - 1] >= '0' && t[i - 1] <= '9') i--;
    if (i == *n || i == 0 || t[i - 1] != '/') return 0;
  }
  if (cidr_num(t + i, *n - i, dual ? 32 : 128, c4) < 0) return -1;
  *n = i - 1;
  *seen = 1;
  return 0;
}

static const struct { const char *name; int type; } mechs[] = {
  { "all", M_ALL }, { "include", M_INCLUDE }, { "a", M_A }, { "mx", M_MX },
  { "ptr", M_PTR }, { "ip4", M_IP4 }, { "ip6", M_IP6 }, { "exists", M_EXISTS },
};

static int mod_name_ok(const char *s, size_t n)
{
  size_t i;
  if (!n || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return 0;
  for (i = 1; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.')) return 0;
  }
  return 1;
}

/* Parses one term s[0..n) into t; checks the syntax of its macros. 0 or
 * M_PERM. */
static int parse_term(struct ctx *c, const char *s, size_t n, struct term *t)
{
  const char *eq = memchr(s, '=', n), *colon;
  size_t i, nl, an;
  int seen;
  char ip[INET6_ADDRSTRLEN + 1];

  memset(t, 0, sizeof *t);
  t->qual = '+';
  /* A modifier: name "=" macro-string, the name before any ':' or '/'. */
  if (eq && mod_name_ok(s, (size_t)(eq - s))) {
    nl = (size_t)(eq - s);
    t->arg = eq + 1;
    t->argn = n - nl - 1;
    t->has_arg = 1;
    if (nl == 8 && !strncasecmp(s, "redirect", 8)) t->type = MOD_REDIRECT;
    else if (nl == 3 && !strncasecmp(s, "exp", 3)) t->type = MOD_EXP;
    else t->type = MOD_OTHER;
    if (t->type != MOD_OTHER && (!t->argn || !domain_end_ok(t->arg, t->argn))) return M_PERM;
    return expand(c, CHECK, t->arg, t->argn, 0, "", 0);
  }
  if (n && strchr("+-~?", s[0])) { t->qual = s[0]; s++; n--; }
  for (nl = 0; nl < n && s[nl] != ':' && s[nl] != '/'; nl++) {}
  t->type = -1;
  for (i = 0; i < sizeof mechs / sizeof mechs[0]; i++)
    if (strlen(mechs[i].name) == nl && !strncasecmp(s, mechs[i].name, nl)) t->type = mechs[i].type;
  if (t->type < 0) return M_PERM;
  t->c4 = 32;
  t->c6 = 128;
  an = n;
  switch (t->type) {
  case M_A: case M_MX:
    if (cidrs(s, &an, 1, &t->c4, &t->c6, &seen) < 0) return M_PERM;
    break;
  case M_IP4: case M_IP6:
    if (t->type == M_IP6) t->c4 = 128;
    if (cidrs(s, &an, 0, &t->c4, &t->c6, &seen) < 0) return M_PERM;
    if (t->type == M_IP6) { t->c6 = t->c4; t->c4 = 32; }
    else if (t->c4 > 32) return M_PERM;
    break;
  default: break;
  }
  colon = nl < an && s[nl] == ':' ? s + nl : 0;
  if (!colon && nl != an) return M_PERM;        /* "all/24", "ptr/8" */
  if (colon) {
    t->arg = colon + 1;
    t->argn = an - nl - 1;
    t->has_arg = 1;
    if (!t->argn) return M_PERM;
  }
  switch (t->type) {
  case M_ALL:
    return t->has_arg ? M_PERM : 0;
  case M_IP4: case M_IP6:
    if (!t->has_arg || t->argn >= sizeof ip) return M_PERM;
    memcpy(ip, t->arg, t->argn);
    ip[t->argn] = 0;
    memset(&t->net, 0, sizeof t->net);
    t->net.v6 = t->type == M_IP6;
    return inet_pton(t->net.v6 ? AF_INET6 : AF_INET, ip, t->net.b) == 1 ? 0 : M_PERM;
  case M_INCLUDE: case M_EXISTS:
    if (!t->has_arg) return M_PERM;
    /* fall through */
  default:
    if (t->has_arg && !domain_end_ok(t->arg, t->argn)) return M_PERM;
    return t->has_arg ? expand(c, CHECK, t->arg, t->argn, 0, "", 0) : 0;
  }
}

/* Calls the parser on each term of rec (after "v=spf1"). With pass
 * CHECK, only parses (sets *redirect, *exp to their terms); with EVAL,
 * evaluates mechanisms until one matches: M_YES with *hit set, M_NO, or
 * an error. */
static int terms(struct ctx *c, const char *rec, size_t n, int pass, const char *domain,
                 struct term *redirect, struct term *exp, struct term *hit, int depth);

/* --- records. */

struct recs {
  str *rec;
  unsigned count;
  int nonascii;
};

static int each_txt(void *v, const char *rd, size_t len)
{
  struct recs *x = v;
  size_t i;
  if (len < 6 || strncasecmp(rd, "v=spf1", 6) || (len > 6 && rd[6] != ' ')) return 0;
  if (++x->count > 1) return 0;
  for (i = 0; i < len; i++) if ((unsigned char)rd[i] >= 0x80) x->nonascii = 1;
  return str_copyb(x->rec, rd, len) < 0 ? -1 : 0;
}

/* The SPF record of domain (4.4, 4.5): 1 into rec, 0 none, or -M_TEMP,
 * -M_PERM (two records, or one not ASCII). */
static int fetch(struct ctx *c, const char *domain, str *rec)
{
  struct recs x = { rec, 0, 0 };
  int r = lookup(c, domain, ns_t_txt, each_txt, &x, 1);
  if (r < 0) return r;
  if (x.count > 1 || x.nonascii) return -M_PERM;
  return x.count ? 1 : 0;
}

static int to_result(int m)
{
  return m == M_TEMP ? SPF_TEMPERROR : SPF_PERMERROR;
}

static int each_any_txt(void *v, const char *rd, size_t len)
{
  struct recs *x = v;
  if (++x->count == 1 && str_copyb(x->rec, rd, len) < 0) return -1;
  return 0;
}

/* 6.2: the exp= text of a fail: exactly one TXT record, expanded with
 * the letters c, r and t too; any problem means no explanation. */
static void explain_fail(struct ctx *c, const struct term *e, const char *domain, str *explain)
{
  static str name, text;
  struct recs x = { &text, 0, 0 };
  size_t i;

  explain->len = 0;
  if (target(c, e, domain, &name)) return;
  if (lookup(c, name.s, ns_t_txt, each_any_txt, &x, 0) <= 0 || x.count != 1) return;
  if (expand(c, EVAL, text.s, text.len, 1, domain, explain)) { explain->len = 0; return; }
  if (explain->len > SPF_EXPLAIN_MAX) explain->len = SPF_EXPLAIN_MAX;
  for (i = 0; i < explain->len; i++)
    if ((unsigned char)explain->s[i] < 0x20 || (unsigned char)explain->s[i] > 0x7e) explain->s[i] = '?';
}

/* Evaluates rec for domain: 4.6 to 4.7, with redirect (6.1); depth is
 * the include nesting (exp= counts only outside includes). */
static enum spf_result eval_record(struct ctx *c, const char *rec, size_t n, const char *domain,
                                   int depth, str *explain)
{
  struct term redirect, exp, hit;
  str next = STR_INIT, rd = STR_INIT;
  int m;
  enum spf_result res;

  memset(&hit, 0, sizeof hit);
  redirect.type = exp.type = -1;
  if ((m = terms(c, rec, n, CHECK, domain, &redirect, &exp, 0, depth))) return to_result(m);
  m = terms(c, rec, n, EVAL, domain, 0, 0, &hit, depth);
  if (m == M_YES) {
    res = qual_result(hit.qual);
    if (res == SPF_FAIL && !depth && exp.type == MOD_EXP) explain_fail(c, &exp, domain, explain);
    return res;
  }
  if (m) return to_result(m);
  if (redirect.type != MOD_REDIRECT) return SPF_NEUTRAL;
  if ((m = count(c)) || (m = target(c, &redirect, domain, &rd))) { res = to_result(m); goto out; }
  m = fetch(c, rd.s, &next);
  if (m < 0) { res = to_result(-m); goto out; }
  if (!m) { res = SPF_PERMERROR; goto out; }    /* 6.1: no record there */
  res = eval_record(c, next.s, next.len, rd.s, depth, explain);
out:
  str_free(&next);
  str_free(&rd);
  return res;
}

static int eval_include(struct ctx *c, const char *name, int depth)
{
  str rec = STR_INIT;
  int m = fetch(c, name, &rec);
  enum spf_result r;

  if (m < 0) { str_free(&rec); return -m; }
  if (!m) { str_free(&rec); return M_PERM; }   /* 5.2: include of none */
  r = eval_record(c, rec.s, rec.len, name, depth + 1, 0);
  str_free(&rec);
  switch (r) {
  case SPF_PASS: return M_YES;
  case SPF_TEMPERROR: return M_TEMP;
  case SPF_PERMERROR: case SPF_NONE: return M_PERM;
  default: return M_NO;
  }
}

static int eval_mx(struct ctx *c, const char *name, unsigned bits)
{
  /* Nothing below recurses: one array serves every mx term. */
  static char mx[SPF_NAMES][DNS_NAMEMAX];
  struct names nm;
  size_t i;
  int r, match = 0;

  nm.n = mx;
  nm.max = SPF_NAMES;
  nm.count = 0;
  r = lookup(c, name, ns_t_mx, each_name, &nm, 1);
  if (r < 0) return -r;
  if (nm.count > SPF_NAMES) return M_PERM;   /* 4.6.4 */
  for (i = 0; i < nm.count; i++) {
    if (!mx[i][0]) continue;                  /* a null MX has no address */
    r = addr_match(c, mx[i], bits, 1);
    if (r == M_YES) match = 1;
    else if (r) return r;
  }
  return match ? M_YES : M_NO;
}

struct exists {
  int any;
};

static int each_exists(void *v, const char *rd, size_t len)
{
  ((struct exists *)v)->any = 1;
  return 0;
}

/* One mechanism against the client: M_YES, M_NO or an error. */
static int eval_term(struct ctx *c, const struct term *t, const char *domain, int depth)
{
  str name = STR_INIT;
  int m;
  unsigned bits = c->ip.v6 ? t->c6 : t->c4;

  switch (t->type) {
  case M_ALL: return M_YES;
  case M_IP4: case M_IP6:
    if (t->net.v6 != c->ip.v6) return M_NO;
    return prefix_eq(t->net.b, c->ip.b, t->type == M_IP6 ? t->c6 : t->c4) ? M_YES : M_NO;
  default: break;
  }
  if ((m = count(c)) || (m = target(c, t, domain, &name))) { str_free(&name); return m; }
  switch (t->type) {
  case M_INCLUDE: m = eval_include(c, name.s, depth); break;
  case M_A: m = addr_match(c, name.s, bits, 1); break;
  case M_MX: m = eval_mx(c, name.s, bits); break;
  case M_EXISTS: {
    struct exists e = { 0 };
    int r = lookup(c, name.s, ns_t_a, each_exists, &e, 1);
    m = r < 0 ? -r : e.any ? M_YES : M_NO;
    break;
  }
  case M_PTR: {
    int n = validated(c), k;
    m = n < 0 ? -n : M_NO;
    for (k = 0; k < n; k++) if (suffix_of(c->valid[k], name.s)) m = M_YES;
    break;
  }
  default: m = M_PERM; break;
  }
  str_free(&name);
  return m;
}

static int terms(struct ctx *c, const char *rec, size_t n, int pass, const char *domain,
                 struct term *redirect, struct term *exp, struct term *hit, int depth)
{
  size_t i = 6, b;
  struct term t;
  int m;

  for (;;) {
    while (i < n && rec[i] == ' ') i++;
    if (i >= n) return M_NO;
    for (b = i; i < n && rec[i] != ' '; i++) {}
    if ((m = parse_term(c, rec + b, i - b, &t))) return m;
    if (pass == CHECK) {
      if (t.type == MOD_REDIRECT || t.type == MOD_EXP) {
        struct term *slot = t.type == MOD_REDIRECT ? redirect : exp;
        if (slot->type >= 0) return M_PERM;    /* 6: at most once */
        *slot = t;
      }
      continue;
    }
    if (t.type >= MOD_REDIRECT) continue;
    if ((m = eval_term(c, &t, domain, depth)) == M_YES) { *hit = t; return M_YES; }
    if (m) return m;
  }
}

/* 4.3: a domain that cannot be one is "none" without a query. */
static int domain_ok(const char *d)
{
  return name_ok(d) && strchr(d, '.');
}

static enum spf_result check_host(struct ctx *c, const char *domain, int depth, str *explain)
{
  str rec = STR_INIT;
  int m;
  enum spf_result r;

  if (!domain_ok(domain)) return SPF_NONE;
  m = fetch(c, domain, &rec);
  if (m <= 0) { str_free(&rec); return m < 0 ? to_result(-m) : SPF_NONE; }
  r = eval_record(c, rec.s, rec.len, domain, depth, explain);
  str_free(&rec);
  return r;
}

enum spf_result spf_check(const struct spf_req *q, str *exp)
{
  struct ctx c;
  char dom[256];
  size_t n = strlen(q->domain);

  exp->len = 0;
  memset(&c, 0, sizeof c);
  c.q = q;
  if (ip_of(q->ip, &c.ip) < 0) return SPF_PERMERROR;
  /* A trailing dot names the same domain. */
  if (n && q->domain[n - 1] == '.') n--;
  if (n >= sizeof dom) return SPF_NONE;
  memcpy(dom, q->domain, n);
  dom[n] = 0;
  return check_host(&c, dom, 0, exp);
}
