/* Test helper: dkimsign KEY DOMAIN SELECTOR HCANON BCANON TIME < msg
 * writes the DKIM-Signature header for stdin; dkimsign -p KEY writes the
 * key's p= value. Canonicalizations are "relaxed" or "simple". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dkim.h"

static void slurp(FILE *f, str *s)
{
  char buf[65536];
  size_t r;
  while ((r = fread(buf, 1, sizeof buf, f)) > 0)
    if (str_catb(s, buf, r)) exit(111);
}

int main(int argc, char **argv)
{
  static struct dkim_key k;
  str pem = STR_INIT, msg = STR_INIT, out = STR_INIT;
  const char *err;
  FILE *f;

  if (argc < 3) return 100;
  f = fopen(argv[argc == 3 ? 2 : 1], "r");
  if (!f) { perror("key"); return 111; }
  slurp(f, &pem);
  fclose(f);
  if (dkim_key_parse(&k, pem.s, pem.len, &err) < 0) { fprintf(stderr, "key: %s\n", err); return 100; }
  if (argc == 3 && !strcmp(argv[1], "-p")) {
    if (dkim_key_public(&out, &k)) return 111;
  } else if (argc == 7) {
    struct dkim_sign_opts o;
    o.domain = argv[2];
    o.selector = argv[3];
    o.hrelaxed = !strcmp(argv[4], "relaxed");
    o.brelaxed = !strcmp(argv[5], "relaxed");
    o.t = strtoull(argv[6], 0, 10);
    slurp(stdin, &msg);
    if (dkim_sign(&out, &k, &o, msg.s, msg.len, &err) < 0) { fprintf(stderr, "sign: %s\n", err); return 100; }
  } else {
    return 100;
  }
  if (write(1, out.s, out.len) != (ssize_t)out.len) return 111;
  return 0;
}
