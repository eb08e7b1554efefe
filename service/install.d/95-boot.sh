# Boot: a systemd unit that starts s6-svscan on this instance's service
# directory, written to $D/etc/qmail.service with the paths filled in.
# Nothing is enabled here: `systemctl enable --now PREFIX/etc/qmail.service`
# links and starts it (README). Hosts without systemd start
# `s6-svscan PREFIX/service` from their own init (qmail-start(8)).
src=$(cd "$(dirname "$0")" && pwd)
svscan=$(command -v s6-svscan || echo /usr/bin/s6-svscan)
dir "$u_root" "$g_root" 0755 "$D/etc"
sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@S6SVSCAN@|$svscan|g" "$src/qmail.service.in" > "$D/etc/qmail.service.new"
chown "$u_root:$g_root" "$D/etc/qmail.service.new"; chmod 0644 "$D/etc/qmail.service.new"
mv -f "$D/etc/qmail.service.new" "$D/etc/qmail.service"
