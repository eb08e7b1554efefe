# Sourced by service/install after 70-auth.sh: the client side of SMTP
# AUTH. control/smtpauth ("host:user:password" lines, see
# qmail-remote/routes.c) holds the passwords qmail-remote gives to a
# smarthost: only the remote uid may read it. Install never writes it;
# when it exists, its owner and mode are fixed here on every install.
if [ -e "$D/control/smtpauth" ]; then
  chown "$u_r:$g_n" "$D/control/smtpauth"; chmod 0400 "$D/control/smtpauth"
fi
