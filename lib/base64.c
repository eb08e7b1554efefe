#include <errno.h>
#include "base64.h"

static const char alphabet[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of c, or -1 outside the alphabet. */
static int value(unsigned char c)
{
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int base64_decode(str *out, const char *s, size_t n)
{
  size_t i, pad = 0;

  out->len = 0;
  if (n % 4) { errno = EINVAL; return -1; }
  if (n && s[n - 1] == '=') pad++;
  if (n > 1 && s[n - 2] == '=') pad++;
  /* n / 4 * 3 cannot overflow: it is less than n. */
  if (str_ready(out, n / 4 * 3) < 0) return -1;
  for (i = 0; i < n; i += 4) {
    int v[4], k, last = i + 4 == n;
    unsigned long w = 0;
    for (k = 0; k < 4; k++) {
      v[k] = value((unsigned char)s[i + k]);
      /* '=' only in the last group's final pad positions. */
      if (v[k] < 0) {
        if (!(last && s[i + k] == '=' && (size_t)k >= 4 - pad)) { errno = EINVAL; return -1; }
        v[k] = 0;
      }
      w = w << 6 | (unsigned long)v[k];
    }
    /* The bits under the padding must be zero (canonical encoding). */
    if (last && ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))) {
      errno = EINVAL;
      return -1;
    }
    out->s[out->len++] = (char)(w >> 16);
    if (!last || pad < 2) out->s[out->len++] = (char)(w >> 8 & 0xff);
    if (!last || pad < 1) out->s[out->len++] = (char)(w & 0xff);
  }
  return 0;
}

int base64_encode(str *out, const void *p, size_t n)
{
  const unsigned char *b = p;
  size_t i, need;

  out->len = 0;
  /* 4 * ceil(n / 3), checked. */
  if (size_mul(&need, n / 3 + (n % 3 != 0), 4) < 0) return -1;
  if (str_ready(out, need) < 0) return -1;
  for (i = 0; i < n; i += 3) {
    unsigned long w = (unsigned long)b[i] << 16;
    size_t left = n - i;
    if (left > 1) w |= (unsigned long)b[i + 1] << 8;
    if (left > 2) w |= b[i + 2];
    out->s[out->len++] = alphabet[w >> 18];
    out->s[out->len++] = alphabet[w >> 12 & 63];
    out->s[out->len++] = left > 1 ? alphabet[w >> 6 & 63] : '=';
    out->s[out->len++] = left > 2 ? alphabet[w & 63] : '=';
  }
  return 0;
}
