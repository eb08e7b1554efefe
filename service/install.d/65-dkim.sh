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
