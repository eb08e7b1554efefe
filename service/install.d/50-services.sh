# Sourced by service/install after the binaries, control/ and the queue are
# in place: the s6 service directories under $D/service, their log
# directories under $D/log, and the tcprules table for qmail-smtpd.
#
# Uses install's variables (D, PREFIX, MODE, u_*/g_* numeric ids) and its
# helpers dir/default. Run scripts carry numeric ids, fixed here, so that
# starting a service never consults the password database. Variables:
#
#   SMTP_ADDR      address qmail-smtpd's listener binds (default 0, like
#                  "::": every IPv6 and IPv4 address, as Debian's
#                  ucspi-tcp-ipv6 tcpserver binds 0; or one address)
#   SMTP_PORT      its port (default 25)
#   SMTP_LIMIT     concurrent SMTP sessions (default 40)
#   SMTP_MEMLIMIT  bytes of memory per SMTP session, set with s6-softlimit
#                  (default 64000000; 0: no limit, needed under ASan)
#   LOG_SCRIPT     the s6-log directives before the log directory
#                  (default "T n10 s1000000": ISO 8601 stamps, 10 archives
#                  of 1 MB)
#
# Run scripts are rewritten on every install (they hold no local
# configuration); a service's down file and control/tcp.smtp are written
# only when absent, so an operator's choice survives a reinstall.

SMTP_ADDR=${SMTP_ADDR:-0}
SMTP_PORT=${SMTP_PORT:-25}
SMTP_LIMIT=${SMTP_LIMIT:-40}
SMTP_MEMLIMIT=${SMTP_MEMLIMIT:-64000000}
LOG_SCRIPT=${LOG_SCRIPT:-T n10 s1000000}

for v in "$SMTP_PORT" "$SMTP_LIMIT" "$SMTP_MEMLIMIT"; do
  case $v in ''|*[!0-9]*) echo "install: not a number: $v" >&2; exit 100 ;; esac
done
# Run scripts are sh: keep the prefix free of anything the shell would split.
case $PREFIX in *[!A-Za-z0-9/._+-]*) echo "install: PREFIX must be a plain path: $PREFIX" >&2; exit 100 ;; esac
case $SMTP_ADDR in ''|*[!0-9a-fA-F.:]*) echo "install: bad SMTP_ADDR: $SMTP_ADDR" >&2; exit 100 ;; esac

# script path: writes stdin to path as an executable, atomically.
script() {
  cat > "$1.new"
  chown "$u_root:$g_root" "$1.new"; chmod 0755 "$1.new"; mv -f "$1.new" "$1"
}
# setting path value: a one-line service setting file, rewritten.
setting() {
  printf '%s\n' "$2" > "$1.new"
  chown "$u_root:$g_root" "$1.new"; chmod 0644 "$1.new"; mv -f "$1.new" "$1"
}

# As root, the logger drops to the log uid with no supplementary group;
# in single-uid mode everything already runs as the installing user.
if [ "$MODE" = multi ]; then
  as_log="s6-applyuidgid -u ${u_l} -g ${g_n} -G \"\" "
  smtpd_ids="-u ${u_d} -g ${g_d} "
else
  as_log= smtpd_ids=
fi

# logservice name: service/name/log and log/name. s6-log signals
# readiness on fd 3 once its log directory is open. The directory is the
# log uid's and the log group's (QMAIL_LOGGROUP, an admin group), mode
# 2750: the logs say who mails whom, and no daemon's uid or group (the
# SMTP session's included) may read them. Its files take the group; those
# of an earlier install (group nofiles) are given it here.
logservice() {
  dir "$u_root" "$g_root" 0755 "$D/service/$1/log"
  dir "$u_l" "$g_adm" 2750 "$D/log/$1"
  find "$D/log/$1" -mindepth 1 -maxdepth 1 -type f -exec chgrp -h "$g_adm" {} +
  setting "$D/service/$1/log/notification-fd" 3
  script "$D/service/$1/log/run" <<EOF
#!/bin/sh
exec ${as_log}s6-log -d 3 -- ${LOG_SCRIPT} ${PREFIX}/log/$1
EOF
}

dir "$u_root" "$g_root" 0755 "$D/service"
dir "$u_root" "$g_root" 0755 "$D/log"

# qmail-send: qmail-start (root) makes the spawners and becomes qmail-send.
# Its log lines (and those of the spawners) go to stderr, into the log
# pipe. SIGTERM (s6-svc -d, -t) stops it; a kill at any moment loses
# nothing (see README, Life of a message). SIGUSR1 (s6-svc -1) makes it read
# qmail-qdest's requests. Readiness on fd 5 (qmail-start -d5, passed to
# qmail-send): written once qmail-send holds the mutex, has opened the
# trigger and scanned the queue. A message queued before that waits for it.
dir "$u_root" "$g_root" 0755 "$D/service/qmail-send"
setting "$D/service/qmail-send/notification-fd" 5
script "$D/service/qmail-send/run" <<EOF
#!/bin/sh
exec 2>&1
cd ${PREFIX}
exec ${PREFIX}/bin/qmail-start -d5 ${u_s}:${g_q} ${u_r}:${g_n} ./Maildir/
EOF
logservice qmail-send

# qmail-smtpd under qmail-smtpd-listen: it binds as root, takes the smtpd
# uid and gid (no supplementary group) before accepting, and forks one
# qmail-smtpd session per connection without exec (no tcpserver). Its
# environment, -c limit and tcprules table are tcpserver's; no DNS or
# ident lookups on the way in (tcpserver's -H -R -l). -1 prints the bound
# port on its stdout once it listens: that stdout is the notification fd,
# so s6 reports the service ready only when connections are accepted.
# Each session runs under the memory limit; the tcprules table sets
# RELAYCLIENT for trusted clients. -p: the public MX makes a client not
# seen recently wait for the greeting (the pregreet test); submission and
# smtps do not. 60-tls.sh keeps this for a start without
# control/tls/cert.pem.
default "$D/control/tcp.smtp" '# tcprules(1) source for qmail-smtpd; compiled into tcp.smtp.cdb by install
# (or: tcprules tcp.smtp.cdb tcp.smtp.tmp < tcp.smtp). RELAYCLIENT="" lets a
# client send to any domain; everyone else may send only to rcpthosts, and
# their mail goes through qmail-verify (DKIM, Authentication-Results).
127.0.0.1:allow,RELAYCLIENT=""
::1:allow,RELAYCLIENT=""
:allow,QMAILQUEUE="'"$PREFIX"'/bin/qmail-verify"'
tcprules "$D/control/tcp.smtp.cdb" "$D/control/tcp.smtp.tmp" < "$D/control/tcp.smtp"
chmod 0644 "$D/control/tcp.smtp.cdb"

if [ "$SMTP_MEMLIMIT" = 0 ]; then limit=; else limit="s6-softlimit -m ${SMTP_MEMLIMIT} "; fi
dir "$u_root" "$g_root" 0755 "$D/service/qmail-smtpd"
setting "$D/service/qmail-smtpd/notification-fd" 3
smtpd_listen="exec ${limit}${PREFIX}/bin/qmail-smtpd-listen -1 -p -l \"\${me:-localhost}\" -c ${SMTP_LIMIT} \\
  -x ${PREFIX}/control/tcp.smtp.cdb ${smtpd_ids}${SMTP_ADDR} ${SMTP_PORT} 1>&3 3>&-"
script "$D/service/qmail-smtpd/run" <<EOF
#!/bin/sh
exec 2>&1
me=\$(head -n 1 ${PREFIX}/control/me)
${smtpd_listen}
EOF
logservice qmail-smtpd
