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
# The caller sets R (pyclan's root on the host) and LC_ALL=C. Paths hold no newline. Each part
# runs a handful of commands whatever the number of files (the update's probe runs it every time).

drift_files() {  # managed paths that are not pyclan's symlink; tree files with other content, mode or owner
    # (drift_files G W tree: the tree's files only)
    : > "$2/tree.names"
    paths=$1/paths.list
    [ "${3:-}" != tree ] || paths=/dev/null
    [ -s "$1/files.list" ] || [ -s "$paths" ] || return 0
    # files.list: SHA MODE OWNER GROUP /PATH (the path last: it may hold spaces); one stat for the
    # tree's files and the managed paths (a symlink shows as `PATH -> TARGET`), one sha256sum
    awk -v tree="$1/tree" -v names="$2/tree.names" '
        FILENAME == ARGV[1] { p = $0; for (i = 0; i < 4; i++) p = substr(p, index(p, " ") + 1)
                              printf "%s%c", tree p, 0 > names; printf "%s%c", tree p, 0; next }
        { printf "%s%c", $0, 0 }
    ' "$1/files.list" "$paths" \
        | QUOTING_STYLE=literal xargs -0 stat -c '%a %U %G %N' -- > "$2/got.stat" 2>/dev/null || true
    xargs -0 sha256sum -- < "$2/tree.names" > "$2/got.sums" 2>/dev/null || true
    # sha256sum escapes a name holding a backslash (a leading \, and \\ for \): undone here
    awk -v tree="$1/tree" -v static="$R/static" -v sums="$2/got.sums" -v stats="$2/got.stat" '
        function rest(line, n) { for (i = 0; i < n; i++) line = substr(line, index(line, " ") + 1); return line }
        BEGIN {
            while ((getline line < sums) > 0) {
                if (substr(line, 1, 1) == "\\") { line = substr(line, 2); gsub(/\\\\/, "\\", line) }
                sum[substr(line, 67)] = substr(line, 1, 64)
            }
            while ((getline line < stats) > 0) {
                r = rest(line, 3); now[r] = substr(line, 1, length(line) - length(r) - 1)
                a = index(r, " -> "); named[a ? substr(r, 1, a - 1) : r] = 1
            }
        }
        FILENAME == ARGV[1] {
            p = rest($0, 4); t = tree p; m = $2; sub(/^0+/, "", m); if (m == "") m = "0"
            if (!(t in now)) print "removed " p
            else if (sum[t] != $1) print "modified " p
            else if (now[t] != m " " $3 " " $4) print "mode " now[t] " " p
            next
        }
        (($0 " -> " static $0) in now) { next }
        { print ($0 in named ? "replaced " : "removed ") $0 }
    ' "$1/files.list" "$paths"
}

drift_units() {  # managed units that failed, or that should run and were stopped (a finished oneshot was not)
    [ -s "$1/units.list" ] && [ -d /run/systemd/system ] || return 0
    units=
    while read -r u _; do units="$units $u"; done < "$1/units.list"
    # shellcheck disable=SC2086  # unit names are checked at build time: one word each
    systemctl show -p ActiveState -p Type -- $units > "$2/units.show" 2>/dev/null || true
    awk -v list="$1/units.list" '
        BEGIN { RS = ""; FS = "\n"
                while ((getline line < list) > 0) { split(line, w, " "); n++; unit[n] = w[1]; start[n] = w[3] } }
        { i++; state = ""; type = ""
          for (f = 1; f <= NF; f++) { if ($f ~ /^ActiveState=/) state = substr($f, 13); if ($f ~ /^Type=/) type = substr($f, 6) }
          if (state == "failed") print "failed-unit " unit[i]
          else if (start[i] == 1 && state == "inactive" && type != "oneshot") print "stopped-unit " unit[i] }
    ' "$2/units.show"
}

drift_packages() {  # declared packages that are not installed
    [ -s "$1/packages.list" ] || return 0
    packages=
    while read -r p; do packages="$packages $p"; done < "$1/packages.list"
    # shellcheck disable=SC2016,SC2086  # a dpkg format, not a shell expansion; names are one word each
    dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $packages > "$2/dpkg" 2>/dev/null || true
    awk -v got="$2/dpkg" '
        BEGIN { while ((getline line < got) > 0) { split(line, w, " "); if (w[1] ~ /^.i/) installed[w[2]] = 1 } }
        !($0 in installed) { print "missing-package " $0 }
    ' "$1/packages.list"
}

drift() {  # drift G W: everything on this host that no longer matches generation folder G
    drift_files "$1" "$2"
    drift_units "$1" "$2"
    drift_packages "$1" "$2"
}
