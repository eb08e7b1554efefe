# Sourced by service/install after 50-services.sh: the event counters and
# qmail-metrics (qmail-metrics/qmail-metrics.8, lib/metrics.h).
#
#   - PREFIX/metrics/, root's, 0755; in it one counter file per writer,
#     owned by the writer's uid, mode 0644, made (METRICS_BYTES of zeros)
#     only when missing or of the wrong size: send (qmail-send), smtpd
#     (the SMTP sessions), remote (qmail-rspawn, qmail-remote)
#   - bin/qmail-metrics setgid to the queue's group (2755): it counts the
#     queue as qmail-qstat does, then gives the group up before it reads a
#     request or opens its output file
#   - its uid ($QMAIL_METRICS, default qmailm), group nofiles
#   - service/qmail-metrics: tcpserver on METRICS_ADDR:METRICS_PORT
#     (default 127.0.0.1:2590) running qmail-metrics as that uid, one
#     request per connection; down (a down file written when the service
#     is first made) unless METRICS_HTTP=yes
#
# Uses install's variables and 50-services.sh's helpers.

METRICS_ADDR=${METRICS_ADDR:-127.0.0.1}
METRICS_PORT=${METRICS_PORT:-2590}
case $METRICS_PORT in ''|*[!0-9]*) echo "install: not a number: $METRICS_PORT" >&2; exit 100 ;; esac
case $METRICS_ADDR in ''|*[!0-9a-fA-F.:]*) echo "install: bad METRICS_ADDR: $METRICS_ADDR" >&2; exit 100 ;; esac

QMAIL_METRICS=${QMAIL_METRICS:-qmailm}
if [ "$MODE" = multi ]; then
  u_m=$(uid_of "$QMAIL_METRICS" "$PREFIX" "$g_n")
  metrics_ids="-u ${u_m} -g ${g_n} "
  chown "$u_root:$g_q" "$D/bin/qmail-metrics"; chmod 2755 "$D/bin/qmail-metrics"
else
  u_m=$u_q metrics_ids=
fi
echo "metrics=$u_m:$g_n" >> "$D/control/ids"

# metricsfile name owner: the counter file, kept when it is one already.
metricsfile() {
  f="$D/metrics/$1"
  if [ ! -f "$f" ] || [ -h "$f" ] || [ "$(wc -c < "$f")" != 4096 ]; then
    head -c 4096 /dev/zero > "$f.new"; mv -f "$f.new" "$f"
  fi
  chown "$2:$g_root" "$f"; chmod 0644 "$f"
}
dir "$u_root" "$g_root" 0755 "$D/metrics"
metricsfile send "$u_s"
metricsfile smtpd "$u_d"
metricsfile remote "$u_r"

new_service=no
[ -e "$D/service/qmail-metrics/run" ] || new_service=yes
dir "$u_root" "$g_root" 0755 "$D/service/qmail-metrics"
# -R -H: no ident or DNS lookup of the client; -c 4: a scrape at a time
# and a few stragglers, never a pile of queue counts.
script "$D/service/qmail-metrics/run" <<EOF
#!/bin/sh
exec 2>&1
exec tcpserver -R -H -l 0 -c 4 ${metrics_ids}${METRICS_ADDR} ${METRICS_PORT} ${PREFIX}/bin/qmail-metrics
EOF
if [ "${METRICS_HTTP:-no}" = yes ]; then
  rm -f "$D/service/qmail-metrics/down"
elif [ $new_service = yes ]; then
  : > "$D/service/qmail-metrics/down"
fi
logservice qmail-metrics
