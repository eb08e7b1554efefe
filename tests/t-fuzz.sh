#!/bin/bash
# Short libFuzzer runs over every parser of network and DNS input, when
# clang's libFuzzer is available (skips otherwise): qmail-smtpd's grammar
# (make fuzz), qmail-remote's DNS answers and SMTP replies (make
# fuzz-remote), lib/dkim's tags and canonicalizers (make fuzz-dkim), the
# DKIM verifier and authserv-id parser (make fuzz-verify).
# FUZZ_SECONDS sets each target's length (10 here; the make targets alone
# run 60).
set -u
cd "$(dirname "$0")/.."
: "${BUILD:=build-check}"
secs=${FUZZ_SECONDS:-10}
tmp=$(mktemp -d /tmp/fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# make target, then the targets it runs, in order
CAMPAIGNS=("fuzz smtpd" "fuzz-remote dns reply" "fuzz-dkim dkim" "fuzz-verify verify")

printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > "$tmp/probe.c"
if ! clang -fsanitize=fuzzer -o "$tmp/probe" "$tmp/probe.c" >/dev/null 2>&1; then
  echo "skip fuzz: clang with libFuzzer not available"
  echo "0 passed, 0 failed, 5 skipped"
  exit 0
fi
p=0 f=0
for c in "${CAMPAIGNS[@]}"; do
  set -- $c
  target=$1; shift
  if make --no-print-directory BUILD="$BUILD" FUZZ_SECONDS="$secs" "$target" > "$tmp/out" 2>&1; then
    mapfile -t done < <(grep -E '^Done [0-9]+ runs' "$tmp/out")
    i=0
    for name in "$@"; do
      if [ -n "${done[$i]:-}" ]; then
        echo "ok   fuzz-$name ran $secs s: ${done[$i]}"
        p=$((p + 1))
      else
        echo "FAIL fuzz-$name did not run"
        f=$((f + 1))
      fi
      i=$((i + 1))
    done
  else
    echo "FAIL make $target"
    tail -n 40 "$tmp/out"
    f=$((f + $#))
  fi
done
echo "$p passed, $f failed"
