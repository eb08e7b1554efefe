#!/bin/bash
# A short libFuzzer run over lib/dkim's tag parser, header splitter and
# canonicalizers (make fuzz-dkim), when clang's libFuzzer is available; a skip otherwise. FUZZ_SECONDS sets the
# length (10 here; make fuzz-dkim alone runs 60).
set -u
cd "$(dirname "$0")/.."
: "${BUILD:=build-check}"
secs=${FUZZ_SECONDS:-10}
tmp=$(mktemp -d /tmp/dkim-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > "$tmp/probe.c"
if ! clang -fsanitize=fuzzer -o "$tmp/probe" "$tmp/probe.c" >/dev/null 2>&1; then
  echo "skip fuzz: clang with libFuzzer not available"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
p=0 f=0
if make --no-print-directory BUILD="$BUILD" FUZZ_SECONDS="$secs" fuzz-dkim > "$tmp/out" 2>&1; then
  echo "ok   fuzz-dkim ran $secs s: $(grep -E '^Done [0-9]+ runs' "$tmp/out")"
  p=$((p + 1))
else
  echo "FAIL fuzz-dkim"
  tail -n 40 "$tmp/out"
  f=$((f + 1))
fi
echo "$p passed, $f failed"
