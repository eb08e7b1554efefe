#!/bin/bash
# The contracts the compiler checks: with the build's warning flags, gcc
# and clang (where installed) refuse code that drops a MUST_USE result of
# lib/ (str.h, buf.h), accept the (void)! that says so on purpose, and
# refuse a size that breaks a _Static_assert (qwrite.h's QW_OUT_MIN).
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/mustuse.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
p=0 f=0 s=0
# As the Makefile (unused parameters allowed), so that only the checked
# contract can fail a probe; -c, as gcc gives no unused-result warning
# under -fsyntax-only.
FLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -Ilib -c -o /dev/null"

check() {   # name, want (ok|fail), compiler, file
  if "$3" $FLAGS "$4" >"$tmp/err" 2>&1; then got=ok; else got=fail; fi
  if [ "$got" = "$2" ]; then echo "ok   $3: $1"; p=$((p + 1))
  else echo "FAIL $3: $1 (compiled: $got)"; cat "$tmp/err"; f=$((f + 1)); fi
}

printf '#include "buf.h"\nint f(str *x, buf *b);\nint f(str *x, buf *b) { str_0(x); return 0; }\n' > "$tmp/drop_str.c"
printf '#include "buf.h"\nint f(str *x, buf *b);\nint f(str *x, buf *b) { buf_puts(b, "x"); return 0; }\n' > "$tmp/drop_buf.c"
printf '#include "buf.h"\nint f(str *x, buf *b);\nint f(str *x, buf *b) { str_cats(x, "x"); return 0; }\n' > "$tmp/drop_cat.c"
printf '#include "buf.h"\nint f(str *x, buf *b);\nint f(str *x, buf *b) { (void)!buf_flush(b); (void)!str_cats(x, "x"); return str_0(x); }\n' > "$tmp/void.c"
sed 's/#define QW_OUT_MIN 4096/#define QW_OUT_MIN 1000/' qmail-queue/qwrite.h > "$tmp/qwrite.h"
printf '#include "qwrite.h"\n' > "$tmp/small.c"
for cc in gcc clang; do
  if ! command -v "$cc" >/dev/null; then echo "skip $cc: not installed"; s=$((s + 1)); continue; fi
  check "a dropped str_0 result is an error" fail "$cc" "$tmp/drop_str.c"
  check "a dropped buf_puts result is an error" fail "$cc" "$tmp/drop_buf.c"
  check "a dropped str_cats result is an error" fail "$cc" "$tmp/drop_cat.c"
  check "(void)! and a used result compile" ok "$cc" "$tmp/void.c"
  check "QW_OUT_MIN under a record is an error" fail "$cc" "$tmp/small.c"
done
if [ "$s" -gt 0 ]; then echo "$p passed, $f failed, $s skipped"; else echo "$p passed, $f failed"; fi
[ "$f" -eq 0 ]
