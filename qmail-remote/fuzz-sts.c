/* libFuzzer target for the MTA-STS grammar (make fuzz-sts): the input is
 * a policy body as an HTTPS server would send it, also read as an
 * _mta-sts and an _smtp._tls TXT record, and its first line as an MX
 * host to match. Checks besides memory safety: a parsed policy has a
 * mode, a max_age in range, patterns that are NUL-terminated and fit,
 * and mx unless mode is none; an id is 1..32 alphanumerics. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "mtasts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct sts_policy p;
  char id[STS_IDMAX], host[STS_HOSTMAX];
  const char *s = (const char *)data, *err;
  const char *nl = memchr(s, '\n', size);
  size_t i, hl = nl ? (size_t)(nl - s) : size;
  str rua = STR_INIT;

  if (size > STS_POLICYMAX) return 0;
  if (sts_parse(s, size, &p, &err) == 0) {
    if (p.mode < STS_MODE_NONE || p.mode > STS_MODE_ENFORCE || p.max_age > STS_MAXAGE_MAX) abort();
    if (p.nmx > STS_MXMAX || (p.mode != STS_MODE_NONE && !p.nmx)) abort();
    for (i = 0; i < p.nmx; i++)
      if (!memchr(p.mx[i], 0, STS_HOSTMAX)) abort();
    if (hl < sizeof host) {
      memcpy(host, s, hl);
      host[hl] = 0;
      (void)sts_mx_match(&p, host);
    }
  }
  if (sts_txt_id(s, size, id) == 1) {
    size_t n = strlen(id);
    if (!n || n >= STS_IDMAX) abort();
  }
  (void)rpt_txt_rua(s, size, &rua);
  str_free(&rua);
  return 0;
}
