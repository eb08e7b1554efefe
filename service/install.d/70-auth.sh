# Sourced by service/install after 60-tls.sh: SMTP AUTH. See
# SECURITY, "SMTP AUTH".
#
#   - bin/qmail-authcheck: setuid to the auth uid, mode 4710, group the
#     SMTP session's own (QMAIL_SMTPDGROUP): no other daemon's uid, and no
#     local user, may run it as a password oracle; control/authusers.cdb (written by
#     bin/qmail-passwd from users/authusers, root 0600) is the auth uid's,
#     mode 0400: qmail-smtpd cannot read it.
#   - service/qmail-submission: qmail-smtpd-listen -t on
#     SUBMISSION_PORT (default 587) with SMTPD_AUTH=required (MAIL needs
#     AUTH first); AUTH itself needs STARTTLS there, or a loopback client
#     with control/authloopback "1". A down file is written at install
#     when neither a certificate nor authloopback allows any AUTH.
#   - service/qmail-smtps (465, 60-tls.sh) gets SMTPD_AUTH=required too:
#     RFC 8314 makes it the implicit-TLS submission port.

SUBMISSION_PORT=${SUBMISSION_PORT:-587}
case $SUBMISSION_PORT in ''|*[!0-9]*) echo "install: not a number: $SUBMISSION_PORT" >&2; exit 100 ;; esac

if [ "$MODE" = multi ]; then
  chown "$u_p:$g_d" "$D/bin/qmail-authcheck"; chmod 4710 "$D/bin/qmail-authcheck"
  chmod 0700 "$D/bin/qmail-passwd"
fi
[ -e "$D/control/authusers.cdb" ] && { chown "$u_p:$g_n" "$D/control/authusers.cdb"; chmod 0400 "$D/control/authusers.cdb"; }
[ -e "$D/users/authusers" ] && { chown "$u_root:$g_root" "$D/users/authusers"; chmod 0600 "$D/users/authusers"; }

# authrun service port [-i]: tlsrun (60-tls.sh) with AUTH required.
authrun() { tlsrun "$1" "$2" "$3" SMTPD_AUTH=required; }
dir "$u_root" "$g_root" 0755 "$D/service/qmail-submission"
setting "$D/service/qmail-submission/notification-fd" 3
authrun qmail-submission "$SUBMISSION_PORT" ""
if [ ! -e "$D/control/tls/cert.pem" ] && [ "$(head -n 1 "$D/control/authloopback" 2>/dev/null)" != 1 ]; then
  [ -e "$D/service/qmail-submission/down" ] || : > "$D/service/qmail-submission/down"
fi
logservice qmail-submission
authrun qmail-smtps "$SMTPS_PORT" -i
