# Sourced by service/install after 50-services.sh: qmail-queued, the
# resident queue writer that qmail-smtpd hands its messages to instead of
# starting qmail-queue for each (lib/qqclient.h). Without it (service
# down, or not installed) qmail-smtpd runs qmail-queue as before.
#
#   - PREFIX/queued/, the queue uid's, mode 0755: qmail-queued binds
#     queued/socket there (mode 0666; any local user may queue, as any
#     local user may run the setuid qmail-queue)
#   - service/qmail-queued: qmail-queued as the queue uid and group, no
#     supplementary group; ready (notification-fd 3) once it listens
#
# Uses install's variables and 50-services.sh's helpers (dir, script,
# setting, logservice).

dir "$u_q" "$g_q" 0755 "$D/queued"

if [ "$MODE" = multi ]; then
  as_queue="s6-applyuidgid -u ${u_q} -g ${g_q} -G \"\" "
else
  as_queue=
fi
dir "$u_root" "$g_root" 0755 "$D/service/qmail-queued"
setting "$D/service/qmail-queued/notification-fd" 3
script "$D/service/qmail-queued/run" <<EOF
#!/bin/sh
exec 2>&1
exec ${as_queue}${PREFIX}/bin/qmail-queued -d3
EOF
logservice qmail-queued
