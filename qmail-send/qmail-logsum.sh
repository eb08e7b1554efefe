#!/bin/sh
# qmail-logsum [logdir|file ...]: a summary of the key=value logs of
# qmail-smtpd and qmail-send, over s6-log directories, files or stdin;
# see qmail-logsum(8), which lists the events it reads.
set -eu
TOP=${QMAIL_LOGSUM_TOP:-10}
case $TOP in ''|*[!0-9]*) echo "qmail-logsum: QMAIL_LOGSUM_TOP must be a number" >&2; exit 100 ;; esac

for a in "$@"; do
  [ -d "$a" ] || [ -f "$a" ] || { echo "qmail-logsum: no such log: $a" >&2; exit 111; }
done

inputs() {
  if [ $# -eq 0 ]; then cat; return; fi
  for a in "$@"; do
    if [ -d "$a" ]; then
      for f in "$a"/@*.s "$a"/@*.u; do [ -f "$f" ] && cat "$f"; done
      [ -f "$a/current" ] && cat "$a/current"
    else
      cat "$a"
    fi
  done
}

inputs "$@" | LC_ALL=C awk -v top="$TOP" '
# kv[key] = value for the event on the current line; prog its program.
function parse(line,    p, s, k, v, c, n) {
  split("", kv)
  p = index(line, " event=")
  if (!p) return 0
  s = substr(line, 1, p - 1)
  n = split(s, w, " ")
  prog = w[n]
  # The period is the earliest and the latest stamp, whatever the order
  # of the arguments (each file is in order, the files need not be).
  # Both stamp forms sort as strings (LC_ALL=C below).
  if (n > 1) {
    st = "" w[1] (n > 2 ? " " w[2] : "")
    if (stamp0 == "" || st < stamp0) stamp0 = st
    if (stamp1 == "" || st > stamp1) stamp1 = st
  }
  s = substr(line, p + 1)
  while (length(s)) {
    while (substr(s, 1, 1) == " ") s = substr(s, 2)
    p = index(s, "=")
    if (!p) break
    k = substr(s, 1, p - 1)
    s = substr(s, p + 1)
    v = ""
    if (substr(s, 1, 1) == "\"") {
      s = substr(s, 2)
      while (length(s)) {
        c = substr(s, 1, 1)
        if (c == "\\") { v = v substr(s, 2, 1); s = substr(s, 3); continue }
        s = substr(s, 2)
        if (c == "\"") break
        v = v c
      }
    } else {
      p = index(s, " ")
      if (p) { v = substr(s, 1, p - 1); s = substr(s, p) } else { v = s; s = "" }
    }
    kv[k] = v
  }
  return 1
}
function bump(arr, key) { arr[key]++ }
# Prints the top entries of arr, largest first, at most top lines.
function best(title, arr, extra,    k, i, m, mk, done, shown) {
  print ""
  print title
  split("", done)
  shown = 0
  for (i = 0; i < top; i++) {
    m = 0; mk = ""
    for (k in arr) if (!(k in done) && arr[k] > m) { m = arr[k]; mk = k }
    if (mk == "") break
    done[mk] = 1
    printf "%7d  %s%s\n", m, mk, extra[mk]
    shown++
  }
  if (!shown) print "      (none)"
}
{
  lines++
  if (!parse($0)) { other++; next }
  ev = kv["event"]
  if (prog == "qmail-smtpd") {
    if (ev == "connect") conn++
    else if (ev == "message") bump(smtpmsg, kv["result"])
    else if (ev == "spf") {
      bump(spf, kv["result"])
      if (kv["result"] != "pass") bump(spfbad, tolower(kv["domain"]) " " kv["result"])
    }
  } else if (prog == "qmail-send") {
    if (ev == "message") queued++
    else if (ev == "done") { finished++; if (kv["failed"] + 0 > 0) withfail++ }
    else if (ev == "bounce") { bounces++; if (kv["type"] == "double") dbl++ }
    else if (ev == "error") errors++
    else if (ev == "start") starts++
    else if (ev == "delivery") {
      r = kv["result"]
      bump(res, r)
      bump(chres, kv["channel"] " " r)
      if (kv["channel"] == "remote") {
        d = kv["rcpt"]; sub(/.*@/, "", d); d = tolower(d)
        bump(dest, d)
        bump(dest_r, d SUBSEP r)
      }
      if (r != "delivered") bump(why, kv["text"])
    }
  }
  if (ev == "fatal") fatal++
}
END {
  printf "log lines: %d", lines
  if (stamp0 != "") printf " (%s .. %s)", stamp0, stamp1
  print ""
  printf "smtp: %d connections, messages:", conn
  n = 0
  for (k in smtpmsg) { printf " %s %d", k, smtpmsg[k]; n++ }
  if (!n) printf " none"
  print ""
  printf "spf checks:"
  n = 0
  for (k in spf) { printf " %s %d", k, spf[k]; n++ }
  if (!n) printf " none"
  print ""
  printf "queue: %d messages picked up, %d finished (%d with failures), %d bounces sent (%d double)\n", \
    queued, finished, withfail, bounces, dbl
  printf "deliveries: delivered %d (local %d, remote %d), deferred %d, failed %d, expired %d\n", \
    res["delivered"], chres["local delivered"], chres["remote delivered"], \
    res["deferred"], res["failed"], res["expired"]
  printf "qmail-send starts: %d, errors: %d, fatal: %d\n", starts, errors, fatal
  for (d in dest)
    label[d] = sprintf("  (delivered %d, deferred %d, failed %d)", \
      dest_r[d, "delivered"], dest_r[d, "deferred"], dest_r[d, "failed"] + dest_r[d, "expired"])
  best("top remote destinations (attempts):", dest, label)
  best("top failure and deferral reasons:", why, none)
  if (n) best("top SPF domains not passing (domain result):", spfbad, none)
}'
