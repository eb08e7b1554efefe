# Sourced by service/install last, once every service directory exists:
# s6's volatile state (each service's supervise/ and event/) goes where a
# full disk under the prefix cannot reach it, as s6's documentation
# recommends for supervise directories: a tmpfs, /run. On a full queue
# disk s6-supervise could otherwise not make or update its status file,
# and s6-svstat reported qmail-send down while it ran.
#
# supervise and event become symbolic links to
# VOLATILE_DIR/qmail-<checksum of PREFIX>.<service>[.log].supervise|event:
# flat names in VOLATILE_DIR, because s6-supervise makes the directory a
# dangling link points to (as after a reboot empties /run) but not its
# parents, so nothing has to recreate them. The checksum keeps instances
# apart. s6-supervise (2.11) insists on making that directory itself: it
# refuses to start where it exists. So .s6-svscan/finish, which s6-svscan
# runs as it exits, removes the state of every service no longer
# supervised; install runs it too (after a crash of s6-svscan: run it, or
# install again).
#
#   VOLATILE_DIR   default /run as root; for the single-uid instance of a
#                  normal user, who cannot write /run, none: supervise/
#                  and event/ stay real directories in the service
#                  directory. Give e.g. VOLATILE_DIR=$XDG_RUNTIME_DIR.
#
# A supervise/ or event/ that is already a directory (an instance
# installed before, perhaps running) is left as it is: replacing it under
# a running s6-supervise would cut it off. Remove it while the service's
# supervisor is stopped and install again to move it.

if [ "$(id -u)" = 0 ]; then VOLATILE_DIR=${VOLATILE_DIR-/run}; else VOLATILE_DIR=${VOLATILE_DIR-}; fi
if [ -n "$VOLATILE_DIR" ]; then
  case $VOLATILE_DIR in /*) ;; *) echo "install: VOLATILE_DIR must be absolute: $VOLATILE_DIR" >&2; exit 100 ;; esac
  vtag=qmail-$(printf %s "$PREFIX" | cksum | cut -d' ' -f1)
  for sv in "$D"/service/*/ "$D"/service/*/log/; do
    [ -f "$sv/run" ] || continue
    sv=${sv%/}
    name=${sv#"$D"/service/}
    name=$(printf %s "$name" | tr / .)
    for part in supervise event; do
      if [ -L "$sv/$part" ] || [ ! -e "$sv/$part" ]; then
        ln -sfn "$VOLATILE_DIR/$vtag.$name.$part" "$sv/$part"
      fi
    done
  done
fi

# s6-svscan's own .s6-svscan/ (its control fifo and lock) cannot be a
# dangling link: it is made here, whole, so that a start on a full disk
# has nothing to create.
dir "$u_root" "$g_root" 0700 "$D/service/.s6-svscan"
[ -p "$D/service/.s6-svscan/control" ] || mkfifo -m 0600 "$D/service/.s6-svscan/control"
[ -e "$D/service/.s6-svscan/lock" ] || : > "$D/service/.s6-svscan/lock"
chown "$u_root:$g_root" "$D/service/.s6-svscan/control" "$D/service/.s6-svscan/lock"

# s6-svscan runs .s6-svscan/finish as it exits; install runs it too, for
# the state a crash of s6-svscan left.
script "$D/service/.s6-svscan/finish" <<EOF
#!/bin/sh
# Written by service/install (install.d/90-volatile.sh). Removes the
# linked supervise/ and event/ of every service no longer supervised:
# s6-supervise makes them anew, and refuses to start where they exist.
for sv in ${PREFIX}/service/*/ ${PREFIX}/service/*/log/; do
  [ -L "\$sv/supervise" ] || continue
  s6-svok "\$sv" 2>/dev/null && continue
  for part in supervise event; do
    t=\$(readlink "\$sv/\$part") || continue
    case \$t in */qmail-[0-9]*.*.\$part) rm -rf -- "\$t" ;; esac
  done
done
exit 0
EOF
[ -n "$DESTDIR" ] || "$D/service/.s6-svscan/finish"
