# shellcheck shell=sh
# The fixed library of every pyclan activation script (see build/activation.py).
# The generated functions gen_groups, gen_users, gen_tree, gen_secrets, gen_passwords,
# gen_hooks and gen_checks follow it in the rendered script, then `main "$@"`.
# Runs as root on the host under `set -eu`; needs only POSIX sh and Debian's base tools.

R=/var/lib/pyclan  # build/layout.py HOST_ROOT (checked when loaded)
STATIC=$R/static
STATE=$R/state
GEN_DIR=$(cd "$(dirname "$0")" && pwd -P)
GEN_NO=${GEN_DIR##*/}
W=$GEN_DIR/.work
REPAIR=${1:-}  # `repair`: the update found drift; every step runs, none is skipped
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
umask 022
STEP=start

step() { STEP=$1; echo "@@pyclan-step $1"; }
fail() { echo "pyclan: $*" >&2; exit 1; }
on_exit() {
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "@@pyclan-failed $STEP $rc"
        printf '%s %s\n' "$STEP" "$rc" > "$GEN_DIR/failed" || true
    fi
    rm -rf "$W"
}
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- line lists (state/ and the generation's *.list files) ------------------------------
has() { [ -f "$2" ] && grep -qxF -- "$1" "$2"; }
record() { has "$1" "$2" || printf '%s\n' "$1" >> "$2"; }
forget() {
    if [ -f "$2" ]; then grep -vxF -- "$1" "$2" > "$2.tmp" || true; mv -f "$2.tmp" "$2"; fi
}
minus() {  # lines of file $1 that are not lines of file $2
    if [ -s "$2" ]; then grep -vxF -f "$2" -- "$1" || true; else cat -- "$1"; fi
}
ours() { [ -L "$1" ] && [ "$(readlink -- "$1")" = "$STATIC$1" ]; }
present() { [ -e "$1" ] || [ -L "$1" ]; }
apt_get() {
    apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        -o Dpkg::Use-Pty=0 --no-install-recommends "$@"
}
dpkg_state() {  # the packages named in file $1 whose dpkg state's second letter is in $2
    # shellcheck disable=SC2046
    dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $(cat "$1") 2>/dev/null \
        | awk -v want="$2" 'index(want, substr($1, 2, 1)) { print $2 }' || true
}
dpkg_recover() {  # an earlier activation may have been killed inside dpkg
    if [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ]; then
        echo "pyclan: finishing an interrupted dpkg run"
        dpkg --force-confdef --force-confold --configure -a
    fi
}

preflight() {
    step preflight
    [ "$(id -u)" = 0 ] || fail "the activation must run as root"
    chmod 755 "$GEN_DIR"
    mkdir -p "$STATE" "$R/backup"
    chmod 700 "$STATE" "$R/backup"
    for f in paths users groups packages units reloads steps; do [ -f "$STATE/$f" ] || : > "$STATE/$f"; done
    if [ -s "$GEN_DIR/packages.list" ] && ! command -v apt-get >/dev/null 2>&1; then
        fail "unsupported package manager: this host has no apt-get;" \
            "pyclan installs packages with apt (Debian and its derivatives)"
    fi
    if [ -s "$GEN_DIR/units.list" ] && ! [ -d /run/systemd/system ]; then
        fail "this host does not run systemd, which the configuration's units need"
    fi
    rm -rf "$W"; mkdir -p "$W"
    printf '%s\n' "$GEN_NO" > "$R/journal.new"; mv -f "$R/journal.new" "$R/journal"
    plan
}

# --- steps skipped when their inputs did not change ------------------------------------------
# steps.list holds a digest of each skippable step's inputs (packages, users, units, reloads,
# hooks); state/steps those of the last activation that finished. A step whose digest is there
# is skipped, unless this run repairs drift. The records of the steps that will run are dropped
# before anything is touched, so a run killed half-way, or a failed one, does them again.
# state/steps names the generation whose activation wrote it (`@generation N`); it counts only
# while that generation, or this one, is current: an activation by an older pyclan (a rollback
# to a generation it made) changes the host without knowing of these records.
plan() {
    RUN=" packages users units reloads hooks "  # a generation without steps.list: every step
    [ -f "$GEN_DIR/steps.list" ] || return 0
    cur=$(readlink "$R/current" 2>/dev/null || true)
    # one awk: the steps to run (into $W/run), the records of the others (kept in state/steps)
    awk -v repair="$REPAIR" -v keep="$STATE/steps.tmp" -v run="$W/run" -v gen="$GEN_NO" -v cur="${cur##*/}" '
        FILENAME == ARGV[1] { if ($1 == "@generation") owner = $2; else done[$0] = 1; next }
        FNR == 1 && owner != cur && owner != gen { split("", done) }
        repair == "repair" || !($0 in done) { todo[$1] = 1; printf "%s ", $1 > run; step[++n] = $0; next }
        { print "@@pyclan-skipped " $1; step[++n] = $0 }
        END { printf "" > run; print "@generation " gen > keep
              for (i = 1; i <= n; i++) { split(step[i], w, " "); if (!(w[1] in todo)) print step[i] > keep } }
    ' "$STATE/steps" "$GEN_DIR/steps.list"
    mv -f "$STATE/steps.tmp" "$STATE/steps"
    read -r RUN < "$W/run" || true
    RUN=" $RUN "
}
runs() { case $RUN in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

packages() {
    step packages
    [ -s "$GEN_DIR/packages.list" ] || return 0
    dpkg_state "$GEN_DIR/packages.list" i > "$W/installed"
    minus "$GEN_DIR/packages.list" "$W/installed" > "$W/missing"
    [ -s "$W/missing" ] || return 0
    dpkg_recover
    while IFS= read -r p; do record "$p" "$STATE/packages"; done < "$W/missing"
    echo "installing: $(tr '\n' ' ' < "$W/missing")"
    ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt_get update
    # shellcheck disable=SC2046
    if ! apt_get install $(cat "$W/missing"); then
        echo "pyclan: retrying after apt-get update"
        apt_get update
        # shellcheck disable=SC2046
        apt_get install $(cat "$W/missing")
    fi
}

put() {  # put REL SHA MODE OWNER GROUP: a file of the tree being built
    install -m "$3" -o "$4" -g "$5" -- "$R/objects/$2" "$T/$1"
}
plink() { ln -s -- "$2" "$T/$1"; }
secret() {  # secret REL OWNER GROUP MODE
    f=$GEN_DIR/secrets/$1
    [ -f "$f" ] || fail "secret $1 was not uploaded"
    chown -- "$2:$3" "$f"
    chmod -- "$4" "$f"
}
add_own_user() {  # add_own_user NAME ARG...: useradd with its own group (-U), or -g NAME when a
    # group NAME is left over (useradd killed half-way)
    n=$1; shift
    if getent group "$n" >/dev/null; then useradd -g "$n" "$@" -- "$n"; else useradd -U "$@" -- "$n"; fi
}
set_password() {  # the hash goes through a pipe, never through a command line
    [ -f "$2" ] || fail "password file $2 of user $1 does not exist"
    printf '%s:%s\n' "$1" "$(cat -- "$2")" | chpasswd -e
}

verify_tree() {
    # A hand edit through a managed path would land in this tree: when a generation is activated
    # again (rollback, retry, repair), every file is checked against its declared hash, mode and
    # owner and put back from its object where it differs, so a generation always means what it said.
    drift_files "$GEN_DIR" "$W" tree > "$W/tree.drift"
    while read -r kind rest; do
        [ "$kind" != mode ] || rest=${rest#* * * }
        restore_file "$rest"
    done < "$W/tree.drift"
}

restore_file() {  # restore_file /PATH: this generation's file put back from its object
    awk -v p="$1" '{ rel = $0; for (i = 0; i < 4; i++) rel = substr(rel, index(rel, " ") + 1)
                     if (rel == p) print $1, $2, $3, $4 }' "$GEN_DIR/files.list" | {
        read -r sha mode owner group
        echo "restoring $1 (changed on this host)"
        f=$GEN_DIR/tree$1
        mkdir -p -- "${f%/*}"
        install -m "$mode" -o "$owner" -g "$group" -- "$R/objects/$sha" "$f.pyclan-new"
        mv -f -- "$f.pyclan-new" "$f"
    }
}

files() {
    step files
    if ! [ -d "$GEN_DIR/tree" ]; then
        T=$GEN_DIR/tree.tmp
        rm -rf "$T"; mkdir -m 755 "$T"
        gen_tree
        mv -f "$T" "$GEN_DIR/tree"
    else
        verify_tree
    fi
    mkdir -p "$GEN_DIR/secrets"
    gen_secrets
    find "$GEN_DIR/secrets" -type d -exec chmod 711 {} +
}

take() {  # make path $1 a managed symlink (before the switch)
    p=$1
    record "$p" "$STATE/paths"
    ours "$p" && return 0
    if [ -d "$p" ] && ! [ -L "$p" ]; then
        fail "$p is a directory on this host, but the configuration declares a file there"
    fi
    [ -z "${p%/*}" ] || mkdir -p -- "${p%/*}"
    if present "$p"; then
        # keep what was there: as a backup restored when pyclan lets go of the path, and in
        # the current generation's tree, so the path shows the old content until the switch
        if ! present "$R/backup$p"; then
            mkdir -p -- "$R/backup${p%/*}"
            cp -a -- "$p" "$R/backup$p"
        fi
        # (not when this generation is the current one: its tree must keep the declared file)
        if [ -d "$R/current/tree" ] && [ "$(cd "$R/current" && pwd -P)" != "$GEN_DIR" ]; then
            mkdir -p -- "$R/current/tree${p%/*}"
            rm -f -- "$R/current/tree$p"
            cp -a -- "$p" "$R/current/tree$p"
        fi
    fi
    ln -sfn -- "$STATIC$p" "$p.pyclan-new"
    mv -Tf -- "$p.pyclan-new" "$p"
}

links() {
    step links
    sort -u "$STATE/paths" > "$W/state.paths"
    comm -13 "$W/state.paths" "$GEN_DIR/paths.list" > "$W/new.paths"
    while IFS= read -r p; do take "$p"; done < "$W/new.paths"
    comm -12 "$W/state.paths" "$GEN_DIR/paths.list" > "$W/kept.paths"
    while IFS= read -r p; do [ -L "$p" ] || take "$p"; done < "$W/kept.paths"
    # paths let go of that had a file before pyclan: the new tree shows that file again
    comm -23 "$W/state.paths" "$GEN_DIR/paths.list" > "$W/gone.paths"
    while IFS= read -r p; do
        if present "$R/backup$p"; then
            mkdir -p -- "$GEN_DIR/tree${p%/*}"
            rm -f -- "$GEN_DIR/tree$p"
            cp -a -- "$R/backup$p" "$GEN_DIR/tree$p"
        fi
    done < "$W/gone.paths"
}

stop_removed_units() {
    step stop-units
    cut -d' ' -f1 "$STATE/units" | sort -u > "$W/state.units"
    cut -d' ' -f1 "$GEN_DIR/units.list" | sort -u > "$W/want.units"
    comm -23 "$W/state.units" "$W/want.units" > "$W/gone.units"
    while IFS= read -r u; do
        echo "stopping $u"
        systemctl stop -- "$u" || true
        systemctl reset-failed -- "$u" 2>/dev/null || true  # no failed unit is left behind
    done < "$W/gone.units"
}

switch() {
    step switch
    [ -L "$R/static" ] || ln -sfn current/tree "$R/static"
    if ! [ -L "$R/secrets" ]; then
        if present "$R/secrets"; then mv -f "$R/secrets" "$R/secrets.before-pyclan"; fi
        ln -sfn current/secrets "$R/secrets"
    fi
    ln -sfn "generations/$GEN_NO" "$R/current.new"
    mv -Tf "$R/current.new" "$R/current"
}

release() {
    p=$1
    if ours "$p"; then
        if present "$R/backup$p"; then
            rm -f -- "$p.pyclan-new"
            cp -a -- "$R/backup$p" "$p.pyclan-new"
            mv -Tf -- "$p.pyclan-new" "$p"
            rm -f -- "$R/backup$p"
        else
            rm -f -- "$p"
        fi
    fi
    forget "$p" "$STATE/paths"
}

release_paths() {
    step release
    sort -u "$STATE/paths" > "$W/state.paths"
    comm -23 "$W/state.paths" "$GEN_DIR/paths.list" > "$W/gone.paths"
    while IFS= read -r p; do release "$p"; done < "$W/gone.paths"
}

unit_failed() {
    systemctl status --no-pager --lines=20 -- "$1" || true
    fail "unit $1 failed to $2"
}

set_unit() {  # set_unit UNIT STAMP ENABLED: the unit's line in state/units ("-": must be (re)started)
    awk -v u="$1" '$1 != u' "$STATE/units" > "$STATE/units.tmp"
    printf '%s %s %s\n' "$1" "$2" "$3" >> "$STATE/units.tmp"
    mv -f "$STATE/units.tmp" "$STATE/units"
}

units() {
    step units
    # other files below /etc/systemd (drop-ins, system.conf.d, …) need a reload as well
    if ! cmp -s "$GEN_DIR/systemd.stamp" "$STATE/systemd.stamp"; then
        if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
        cp "$GEN_DIR/systemd.stamp" "$STATE/systemd.stamp"
    fi
    [ -s "$GEN_DIR/units.list" ] || [ -s "$STATE/units" ] || return 0
    awk '{ print $1 " " $2 " " $4 }' "$GEN_DIR/units.list" > "$W/want.stamps"
    cmp -s "$W/want.stamps" "$STATE/units" || systemctl daemon-reload
    while read -r u stamp start enabled; do
        [ "$start" = 1 ] || continue
        old=$(awk -v u="$u" '$1 == u { print $2 }' "$STATE/units")
        if [ "$old" = "$stamp" ]; then
            # unchanged, but stopped by hand or failed: start it again (a oneshot unit may be done)
            systemctl is-active -q -- "$u" && continue
            [ "$(systemctl show -p Type --value -- "$u")" != oneshot ] || systemctl is-failed -q -- "$u" || continue
        fi
        # recorded before it is touched: a failure here leaves it to be stopped or restarted by
        # whichever activation runs next (the rollback included)
        set_unit "$u" - "$enabled"
        if systemctl is-active -q -- "$u"; then
            echo "restarting $u"
            systemctl restart -- "$u" || unit_failed "$u" restart
        else
            echo "starting $u"
            systemctl start -- "$u" || unit_failed "$u" start
        fi
        set_unit "$u" "$stamp" "$enabled"
    done < "$GEN_DIR/units.list"
    mv -f "$W/want.stamps" "$STATE/units"
}

reloads() {
    # units pyclan does not own (a package's ssh.service) whose watched files changed — also
    # those only the generation being left declared, so that a rollback converges too
    [ -s "$GEN_DIR/reloads.list" ] || [ -s "$STATE/reloads" ] || return 0
    step reloads
    cat "$GEN_DIR/reloads.list" "$STATE/reloads" | cut -d' ' -f1 | sort -u > "$W/reload.units"
    while IFS= read -r u; do
        new=$(awk -v u="$u" '$1 == u { print $2 " " $3 }' "$GEN_DIR/reloads.list")
        old=$(awk -v u="$u" '$1 == u { print $2 " " $3 }' "$STATE/reloads")
        [ "$new" != "$old" ] || continue
        how=${new#* }; [ -n "$new" ] || how=${old#* }
        if [ -d /run/systemd/system ] && systemctl is-active -q -- "$u"; then
            echo "$how $u"
            systemctl "$how" -- "$u" || unit_failed "$u" "$how"
        fi
    done < "$W/reload.units"
    cp "$GEN_DIR/reloads.list" "$STATE/reloads"
}

check_once() {  # check_once KIND TARGET TIMEOUT: one attempt, its output on stdout
    case $1 in
        unit) systemctl is-active -- "$2" ;;
        tcp) [ -n "$(ss -Hltn "sport = :$2")" ] ;;
        udp) [ -n "$(ss -Hlun "sport = :$2")" ] ;;
        http)
            if command -v curl >/dev/null 2>&1; then curl -fsS -o /dev/null --max-time "$3" -- "$2"
            elif command -v wget >/dev/null 2>&1; then wget -q -O /dev/null -T "$3" -- "$2"
            else echo "an http check needs curl or wget on the host (neither is installed)"; return 2
            fi ;;
        command) (cd / && exec timeout "$3" sh -c "$2") ;;
        *) echo "unknown check kind $1"; return 2 ;;
    esac
}

check() {  # check NAME TIMEOUT KIND TARGET: retried until it passes or TIMEOUT seconds are over
    STEP="check:$1"
    echo "@@pyclan-step check:$1"
    end=$(( $(date +%s) + $2 ))
    while :; do
        if out=$(check_once "$3" "$4" "$2" 2>&1); then return 0; fi
        [ "$(date +%s)" -lt "$end" ] || break
        sleep 0.5
    done
    [ -z "$out" ] || printf '%s\n' "$out"
    case $3 in
        unit) systemctl status --no-pager --lines=15 -- "$4" || true ;;
        tcp) echo "listening TCP ports:"; ss -Hltn | awk '{ print "  " $4 }' ;;
        udp) echo "listening UDP ports:"; ss -Hlun | awk '{ print "  " $4 }' ;;
    esac
    case $3 in
        unit) what="unit $4 is not active" ;;
        tcp) what="nothing listens on TCP port $4" ;;
        udp) what="nothing listens on UDP port $4" ;;
        http) what="$4 did not answer with 2xx" ;;
        *) what="the command did not exit 0" ;;
    esac
    fail "health check $1 failed after $2 s: $what"
}

run_hook() {
    STEP="hook:$1"
    echo "@@pyclan-step hook:$1"
    (cd / && PYCLAN_GENERATION=$GEN_NO exec sh -e "$R/objects/$2") || fail "hook $1 exited with status $?"
}

remove_users() {
    step remove-users
    minus "$STATE/users" "$GEN_DIR/users.list" > "$W/gone.users"
    while IFS= read -r u; do
        if getent passwd "$u" >/dev/null; then
            echo "removing user $u"
            if ! userdel -- "$u"; then
                pkill -KILL -u "$u" 2>/dev/null || true
                sleep 0.3
                userdel -f -- "$u"
            fi
        fi
        # its own group, if userdel was killed before removing it
        if getent group "$u" >/dev/null && ! has "$u" "$GEN_DIR/groups.list" && ! has "$u" "$STATE/groups"; then
            groupdel -- "$u" 2>/dev/null || true
        fi
        forget "$u" "$STATE/users"
    done < "$W/gone.users"
    minus "$STATE/groups" "$GEN_DIR/groups.list" > "$W/gone.groups"
    while IFS= read -r g; do
        if getent group "$g" >/dev/null; then
            echo "removing group $g"
            groupdel -- "$g"
        fi
        forget "$g" "$STATE/groups"
    done < "$W/gone.groups"
}

remove_packages() {
    step remove-packages
    minus "$STATE/packages" "$GEN_DIR/packages.list" > "$W/gone.packages"
    [ -s "$W/gone.packages" ] || return 0
    dpkg_state "$W/gone.packages" cHUFWti > "$W/purge"  # anything but not-installed
    if [ -s "$W/purge" ]; then
        dpkg_recover
        dpkg_state "$W/gone.packages" H > "$W/broken"  # half-installed: dpkg must be forced
        if [ -s "$W/broken" ]; then
            # shellcheck disable=SC2046
            dpkg --purge --force-remove-reinstreq $(cat "$W/broken")
        fi
        echo "removing: $(tr '\n' ' ' < "$W/purge")"
        # shellcheck disable=SC2046
        apt_get purge --autoremove $(cat "$W/purge")
    fi
    while IFS= read -r p; do forget "$p" "$STATE/packages"; done < "$W/gone.packages"
}

finish() {
    step "done"
    if [ -f "$GEN_DIR/steps.list" ]; then
        { echo "@generation $GEN_NO"; cat "$GEN_DIR/steps.list"; } > "$STATE/steps.tmp"
        mv -f "$STATE/steps.tmp" "$STATE/steps"
    fi
    date -u '+%Y-%m-%dT%H:%M:%SZ' > "$GEN_DIR/activated"
    rm -f "$GEN_DIR/failed" "$R/journal"
}

main() {
    preflight
    if runs packages; then packages; fi
    if runs users; then gen_groups; gen_users; fi
    files
    if runs users; then gen_passwords; fi
    links
    if runs units; then stop_removed_units; fi
    switch
    release_paths
    if runs units; then units; fi
    if runs reloads; then reloads; fi
    if runs hooks; then gen_hooks; fi
    if runs users; then remove_users; fi
    if runs packages; then remove_packages; fi
    gen_checks
    finish
}
