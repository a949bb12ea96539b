# shellcheck shell=sh
# What on this host no longer matches a generation: the one check behind `machines status`, the
# update's probe (a plain update repairs what it finds) and the activation's verification of a
# generation's tree. Read-only: it writes only into the scratch folder it is given.
#
# `drift G W` prints one line per item (G: a generation folder, W: an empty scratch folder):
#   removed PATH          a managed path (or its file in G's tree) is gone
#   replaced PATH         a managed path is no longer pyclan's symlink
#   modified PATH         the file in G's tree has other content than its generation declared
#   mode M OWNER GROUP PATH   ... or another mode or owner (M, OWNER, GROUP: what it has now)
#   failed-unit UNIT | stopped-unit UNIT | missing-package PACKAGE
# The caller sets R (pyclan's root on the host) and LC_ALL=C. Paths hold no newline or tab.

drift_links() {  # managed paths that are not pyclan's symlink into $R/static
    [ -s "$1/paths.list" ] || return 0
    tr '\n' '\0' < "$1/paths.list" \
        | xargs -0 sh -c 'exec find "$@" -maxdepth 0 -printf "%p\t%l\n"' find > "$2/got.links" 2>/dev/null || true
    awk -v static="$R/static" -F '\t' '
        NR == FNR { target[$1] = $2; next }
        !($0 in target) { print "removed " $0; next }
        target[$0] != static $0 { print "replaced " $0 }
    ' "$2/got.links" "$1/paths.list"
}

drift_tree() {  # files of G's tree whose content, mode or owner differ from its files.list
    [ -s "$1/files.list" ] || return 0
    # files.list: SHA MODE OWNER GROUP /PATH (the path last: it may hold spaces)
    awk '{ rel = $0; for (i = 0; i < 4; i++) rel = substr(rel, index(rel, " ") + 1); printf "%s%c", substr(rel, 2), 0 }' \
        "$1/files.list" > "$2/tree.names"
    (cd "$1/tree" && xargs -0 sha256sum -- < "$2/tree.names" 2>/dev/null) > "$2/got.sums" || true
    (cd "$1/tree" && xargs -0 stat -c '%a %U %G %n' -- < "$2/tree.names" 2>/dev/null) > "$2/got.stat" || true
    # sha256sum escapes a name holding a backslash (a leading \, and \\ for \): undone here
    awk -v sums="$2/got.sums" -v stats="$2/got.stat" '
        function rest(line, n) { for (i = 0; i < n; i++) line = substr(line, index(line, " ") + 1); return line }
        BEGIN {
            while ((getline line < sums) > 0) {
                if (substr(line, 1, 1) == "\\") { line = substr(line, 2); gsub(/\\\\/, "\\", line) }
                sum["/" substr(line, 67)] = substr(line, 1, 64)
            }
            while ((getline line < stats) > 0) { rel = rest(line, 3); now["/" rel] = substr(line, 1, length(line) - length(rel) - 1) }
        }
        { p = rest($0, 4); m = $2; sub(/^0+/, "", m); if (m == "") m = "0"
          if (!(p in now)) print "removed " p
          else if (sum[p] != $1) print "modified " p
          else if (now[p] != m " " $3 " " $4) print "mode " now[p] " " p }
    ' "$1/files.list"
}

drift_units() {  # managed units that failed, or that should run and were stopped (a finished oneshot was not)
    [ -s "$1/units.list" ] && [ -d /run/systemd/system ] || return 0
    # shellcheck disable=SC2046  # unit names are checked at build time: one word each
    systemctl show -p ActiveState -p Type -- $(cut -d' ' -f1 "$1/units.list") > "$2/units.show" 2>/dev/null || true
    awk -v list="$1/units.list" '
        BEGIN { RS = ""; FS = "\n"; while ((getline line < list) > 0) { split(line, w, " "); n++; unit[n] = w[1]; start[n] = w[3] } }
        { i++; state = ""; type = ""
          for (f = 1; f <= NF; f++) { if ($f ~ /^ActiveState=/) state = substr($f, 13); if ($f ~ /^Type=/) type = substr($f, 6) }
          if (state == "failed") print "failed-unit " unit[i]
          else if (start[i] == 1 && state == "inactive" && type != "oneshot") print "stopped-unit " unit[i] }
    ' "$2/units.show"
}

drift_packages() {  # declared packages that are not installed
    [ -s "$1/packages.list" ] || return 0
    # shellcheck disable=SC2046  # package names are checked at build time: one word each
    dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $(cat "$1/packages.list") 2>/dev/null \
        | awk '$1 ~ /^.i/ { print $2 }' | sort > "$2/installed" || true
    sort "$1/packages.list" | comm -23 - "$2/installed" | sed 's/^/missing-package /'
}

drift() {  # drift G W: everything on this host that no longer matches generation folder G
    drift_links "$1" "$2"
    drift_tree "$1" "$2"
    drift_units "$1" "$2"
    drift_packages "$1" "$2"
}
