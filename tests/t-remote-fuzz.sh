#!/bin/bash
# A short libFuzzer run over qmail-remote's DNS answer and SMTP reply
# parsers (make fuzz-remote), when clang's libFuzzer is available; a skip
# otherwise. FUZZ_SECONDS sets each target's length (10 here; make
# fuzz-remote alone runs 60).
set -u
cd "$(dirname "$0")/.."
: "${BUILD:=build-check}"
secs=${FUZZ_SECONDS:-10}
tmp=$(mktemp -d /tmp/remote-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > "$tmp/probe.c"
if ! clang -fsanitize=fuzzer -o "$tmp/probe" "$tmp/probe.c" >/dev/null 2>&1; then
  echo "skip fuzz: clang with libFuzzer not available"
  echo "0 passed, 0 failed, 2 skipped"
  exit 0
fi
p=0 f=0
if make --no-print-directory BUILD="$BUILD" FUZZ_SECONDS="$secs" fuzz-remote > "$tmp/out" 2>&1; then
  for t in dns reply; do
    runs=$(sed -n "/^fuzz-$t:/,/^Done [0-9]* runs/p" "$tmp/out" | grep -E '^Done [0-9]+ runs')
    if [ -n "$runs" ]; then
      echo "ok   fuzz-$t ran $secs s: $runs"
      p=$((p + 1))
    else
      echo "FAIL fuzz-$t did not run"
      f=$((f + 1))
    fi
  done
else
  echo "FAIL fuzz-remote"
  tail -n 40 "$tmp/out"
  f=$((f + 1))
fi
echo "$p passed, $f failed"
