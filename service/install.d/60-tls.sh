# Sourced by service/install after 50-services.sh: TLS for the SMTP
# server. See SECURITY, "TLS".
#
#   - the TLS uid ($QMAIL_TLS, default qmailt), and control/tls/, root's,
#     mode 0700: key.pem (root, 0400) and cert.pem (root, 0444; the chain,
#     leaf first). Each connection's process reads them as root, before it
#     takes the TLS uid, and refuses a link, a non-regular file, one not
#     root's, one writable by another uid, or a key readable by another
#     uid (lib/tlsio.h): no other uid can make root read or parse anything
#     else. A file there that is a link or not a regular file is reported
#     and left alone: copy the key in (a certificate renewal hook can).
#   - qmail-smtpd's run script, when it finds control/tls/cert.pem at
#     start, runs qmail-smtpd-listen -t: the parent stays root, and each
#     connection's process reads the key, then splits into a TLS relay
#     (TLS uid) and qmail-smtpd (smtpd uid). Without a certificate there
#     is no STARTTLS and it runs qmail-smtpd-listen as 50-services.sh
#     wrote it (smtpd uid from the start). Neither uses tcpserver or an
#     exec per connection. s6-svc -t after adding or removing the
#     certificate switches.
#   - service/qmail-smtps: implicit TLS (RFC 8314) on SMTPS_PORT (default
#     465), with a down file while there is no certificate at install.
#
# Variables: QMAIL_TLS, SMTPS_PORT, and TLS_SELFSIGNED=yes to make a
# self-signed certificate for control/me when there is none (the demo).

QMAIL_TLS=${QMAIL_TLS:-qmailt}
SMTPS_PORT=${SMTPS_PORT:-465}
TLS_SELFSIGNED=${TLS_SELFSIGNED:-no}
case $SMTPS_PORT in ''|*[!0-9]*) echo "install: not a number: $SMTPS_PORT" >&2; exit 100 ;; esac

if [ "$MODE" = multi ]; then
  u_t=$(uid_of "$QMAIL_TLS" "$PREFIX" "$g_n")
  tls_ids="-t ${u_t}:${g_n} -u ${u_d} -g ${g_d}"
else
  u_t=$u_q
  tls_ids="-t ${u_q}:${g_n} -u ${u_q} -g ${g_n}"
fi
echo "tls=$u_t:$g_n" >> "$D/control/ids"

dir "$u_root" "$g_root" 0700 "$D/control/tls"
if [ "$TLS_SELFSIGNED" = yes ] && [ ! -e "$D/control/tls/cert.pem" ]; then
  tls_cn=$(head -n 1 "$D/control/me")
  # The demo calls itself localhost on 127.0.0.1: both names are in it.
  tls_san="DNS:${tls_cn:-localhost}"
  [ "${tls_cn:-localhost}" = localhost ] || tls_san="$tls_san,DNS:localhost"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=${tls_cn:-localhost}" -addext "subjectAltName=${tls_san},IP:127.0.0.1" \
    -keyout "$D/control/tls/key.pem" -out "$D/control/tls/cert.pem" 2>/dev/null
fi
# tlsfile name mode: root's, that mode; never through a link (an earlier
# install left the directory to the TLS uid, which could have put one).
tlsfile() {
  if [ -L "$D/control/tls/$1" ] || { [ -e "$D/control/tls/$1" ] && [ ! -f "$D/control/tls/$1" ]; }; then
    echo "install: control/tls/$1 is a link or not a regular file: left alone, and TLS will refuse it" >&2
  elif [ -e "$D/control/tls/$1" ]; then
    chown "$u_root:$g_root" "$D/control/tls/$1"; chmod "$2" "$D/control/tls/$1"
  fi
}
tlsfile key.pem 0400
tlsfile cert.pem 0444

# tlsrun service port [-i|-p] [VAR=value] [command]: qmail-smtpd-listen -t
# as root (each connection drops), the same limits and readiness as
# 50-services.sh's qmail-smtpd; the optional assignment is exported to
# qmail-smtpd (70-auth.sh uses it); the optional command runs first.
tlsrun() {
  script "$D/service/$1/run" <<EOF
#!/bin/sh
exec 2>&1
me=\$(head -n 1 ${PREFIX}/control/me)
${4:+export $4}
${5:+$5}
exec ${limit}${PREFIX}/bin/qmail-smtpd-listen -1 -l "\${me:-localhost}" -c ${SMTP_LIMIT} \\
  -x ${PREFIX}/control/tcp.smtp.cdb ${tls_ids} $3 ${SMTP_ADDR} $2 1>&3 3>&-
EOF
}
tlsrun qmail-smtpd "$SMTP_PORT" -p "" "[ -e ${PREFIX}/control/tls/cert.pem ] || ${smtpd_listen}"

dir "$u_root" "$g_root" 0755 "$D/service/qmail-smtps"
setting "$D/service/qmail-smtps/notification-fd" 3
tlsrun qmail-smtps "$SMTPS_PORT" -i
[ -e "$D/control/tls/cert.pem" ] || [ -e "$D/service/qmail-smtps/down" ] || : > "$D/service/qmail-smtps/down"
logservice qmail-smtps
