# Sourced by service/install after 55-queued.sh: qmail-smtpd-state, the
# resident keeper of greylisting and AUTH failures for the SMTP sessions
# (qmail-smtpd/stateproto.h). See SECURITY.
#
#   - its uid ($QMAIL_STATE, default qmailv), group nofiles
#   - PREFIX/smtpdstate/, that uid's, group the SMTP sessions' group,
#     mode 0750: the sessions may reach the socket in it (0666), nobody
#     else; the state file in it (0600) is the service's alone
#   - service/qmail-smtpd-state: ready (notification-fd 3) once it listens
#
# Without it (down, not installed) sessions accept what it would decide
# (greylisting off, no AUTH lockout) and log event=state.

QMAIL_STATE=${QMAIL_STATE:-qmailv}
if [ "$MODE" = multi ]; then
  u_v=$(uid_of "$QMAIL_STATE" "$PREFIX" "$g_n")
  as_state="s6-applyuidgid -u ${u_v} -g ${g_n} -G \"\" "
else
  u_v=$u_q as_state=
fi
echo "smtpdstate=$u_v:$g_n" >> "$D/control/ids"
dir "$u_v" "$g_d" 0750 "$D/smtpdstate"
dir "$u_root" "$g_root" 0755 "$D/service/qmail-smtpd-state"
setting "$D/service/qmail-smtpd-state/notification-fd" 3
script "$D/service/qmail-smtpd-state/run" <<EOF2
#!/bin/sh
exec 2>&1
exec ${as_state}${PREFIX}/bin/qmail-smtpd-state -d3
EOF2
logservice qmail-smtpd-state
