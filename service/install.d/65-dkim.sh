# Sourced by service/install after 60-tls.sh: DKIM keys. See SECURITY,
# "DKIM".
#
#   - the DKIM signer's uid ($QMAIL_DKIM, default qmailk), and
#     control/dkim/, that uid's, mode 0700: DOMAIN/SELECTOR.key (0400) and
#     SELECTOR.pub (0444), made by qmail-dkimkey, which gives them to the
#     directory's owner. Only that uid (and root) can read a key.
#   - bin/qmail-dkim, setuid to that uid (4711).

QMAIL_DKIM=${QMAIL_DKIM:-qmailk}
if [ "$MODE" = multi ]; then
  u_k=$(uid_of "$QMAIL_DKIM" "$PREFIX" "$g_n")
else
  u_k=$u_q
fi
echo "dkim=$u_k:$g_n" >> "$D/control/ids"
if [ -L "$D/control/dkim" ]; then
  echo "install: control/dkim is a link: left alone, and qmail-dkimkey will refuse it" >&2
else
  dir "$u_k" "$g_n" 0700 "$D/control/dkim"
fi
# qmail-dkim, the signer (a qmail-queue stage): setuid to the DKIM uid,
# which alone reads the keys; it gives that uid up before it execs
# qmail-queue.
if [ "$MODE" = multi ]; then
  file "$u_k" "$g_n" 4711 "$BUILD/bin/qmail-dkim" "$D/bin/qmail-dkim"
fi

# DKIM_DEMO=yes (the demo): at the first install, keys for mail from
# @localhost (RSA rsa1 and Ed25519 ed1, both signing), and the loopback
# lines of tcp.smtp run qmail-dkim as their queue program, so that mail
# submitted from 127.0.0.1 or ::1 is signed. qmail-dkimkey -p localhost
# rsa1 prints a record.
dk=$D/control/dkim
if [ "${DKIM_DEMO:-no}" = yes ] && [ -z "$DESTDIR" ] && [ ! -e "$dk/localhost" ]; then
  "$D/bin/qmail-dkimkey" localhost rsa1 rsa >/dev/null
  "$D/bin/qmail-dkimkey" localhost ed1 ed25519 >/dev/null
  printf 'rsa1\ned1\n' > "$dk/localhost/selector"
  chown "$u_k:$g_n" "$dk/localhost/selector"
  chmod 0644 "$dk/localhost/selector"
fi
if [ "${DKIM_DEMO:-no}" = yes ] && ! grep -q '^127\.0\.0\.1:.*QMAILQUEUE' "$D/control/tcp.smtp"; then
  sed -i -e "s|^\\(127\\.0\\.0\\.1:allow,RELAYCLIENT=\"\"\\)\$|\\1,QMAILQUEUE=\"$PREFIX/bin/qmail-dkim\"|" \
    -e "s|^\\(::1:allow,RELAYCLIENT=\"\"\\)\$|\\1,QMAILQUEUE=\"$PREFIX/bin/qmail-dkim\"|" "$D/control/tcp.smtp"
  tcprules "$D/control/tcp.smtp.cdb" "$D/control/tcp.smtp.tmp" < "$D/control/tcp.smtp"
  chmod 0644 "$D/control/tcp.smtp.cdb"
fi
