# Manual pages: every NAME.N beside the sources goes to $D/man/manN/, so
# that `man -M PREFIX/man NAME` (or PREFIX/man in MANPATH) finds it. The
# sendmail front end's other names (mailq, newaliases) get a .so link to
# its page when they have none of their own.
src=$(cd "$(dirname "$0")/.." && pwd)
for page in "$src"/*/*.[1-8]; do
  [ -f "$page" ] || continue
  sec=${page##*.}
  dir "$u_root" "$g_root" 0755 "$D/man"
  dir "$u_root" "$g_root" 0755 "$D/man/man$sec"
  file "$u_root" "$g_root" 0644 "$page" "$D/man/man$sec/${page##*/}"
done
for page in "$src"/*/sendmail.[1-8]; do
  [ -f "$page" ] || continue
  sec=${page##*.}
  for n in mailq newaliases; do
    [ -e "$D/man/man$sec/$n.$sec" ] && continue
    printf '.so man%s/sendmail.%s\n' "$sec" "$sec" > "$D/man/man$sec/$n.$sec"
    chmod 0644 "$D/man/man$sec/$n.$sec"
  done
done
