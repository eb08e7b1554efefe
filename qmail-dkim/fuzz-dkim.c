/* libFuzzer target for lib/dkim's parsers (make fuzz-dkim): the tag-list
 * parser, the header splitter and both canonicalizers. Besides memory
 * safety it checks contracts: parsed tags lie inside the input, field
 * ranges tile the header block, and the body canonicalizer gives the same
 * bytes whatever the split of its input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void cat_sink(void *ctx, const void *p, size_t n)
{
  if (str_catb(ctx, p, n)) abort();
}

static void body(const char *s, size_t n, int relaxed)
{
  str a = STR_INIT, b = STR_INIT;
  struct dkim_body c;
  size_t i, step = n ? (unsigned char)s[0] % 7 + 1 : 1;

  dkim_body_init(&c, relaxed, cat_sink, &a);
  dkim_body_update(&c, s, n);
  dkim_body_final(&c);
  dkim_body_init(&c, relaxed, cat_sink, &b);
  for (i = 0; i < n; i += step) dkim_body_update(&c, s + i, n - i < step ? n - i : step);
  dkim_body_final(&c);
  if (a.len != b.len || (a.len && memcmp(a.s, b.s, a.len))) abort();
  for (i = 0; i < a.len; i++)     /* CR only in CRLF, LF only after CR */
    if ((a.s[i] == '\n' && (i == 0 || a.s[i - 1] != '\r'))) abort();
  if (a.len && (a.len < 2 || a.s[a.len - 1] != '\n')) abort();
  str_free(&a);
  str_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data;
  struct dkim_tag t[DKIM_TAGS_MAX];
  struct dkim_field f[64];
  size_t n, i, hl;
  str o = STR_INIT;

  if (dkim_tags_parse(s, size, t, DKIM_TAGS_MAX, &n) == 0) {
    if (!n || n > DKIM_TAGS_MAX) abort();
    for (i = 0; i < n; i++)
      if (t[i].name < s || t[i].val + t[i].vlen > s + size || !t[i].nlen) abort();
  }
  if (dkim_fields(s, size, f, 64, &n, &hl) == 0) {
    size_t at = 0;
    if (hl > size) abort();
    for (i = 0; i < n; i++) {
      if (f[i].off != at || f[i].nlen == 0 || f[i].nlen > f[i].len) abort();
      at += f[i].len;
      dkim_canon_header(&o, s + f[i].off, f[i].len, 1);
      dkim_canon_header(&o, s + f[i].off, f[i].len, 0);
    }
  }
  body(s, size, 1);
  body(s, size, 0);
  str_free(&o);
  return 0;
}
