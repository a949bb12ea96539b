"""The POSIX-sh activation script of a generation (targets need no Python).

The script is a fixed library (`LIBRARY`) followed by functions generated from the manifest.
It is convergent: running it again, after a failure, a SIGKILL or on another generation,
brings the host to that generation. What pyclan created is recorded on the host (state/),
and removal compares those records, not the previous manifest, so nothing half-made is lost.

"Old or new, never a mix": every managed path is a symlink into `static/` →
`current/tree`. New paths are linked before the switch (they resolve into the old tree, where
they do not exist — or, for a file that was on the host before, to a copy of it); then one
rename of `current` switches every file and secret at once; then paths no longer declared are
released. Packages, users and units are applied around that point, and a journal marks an
unfinished activation so the next update runs it again.

Last come the health checks (`check:NAME` steps): a failing check fails the activation like
any step, and the caller switches the host back. A failed activation leaves `failed` (step and
status) in its generation folder; a successful one removes it.

Output: each step prints `@@pyclan-step NAME`; a failure ends with `@@pyclan-failed NAME RC`,
so the controller can show the failing step's output. Secret values are never printed.
"""

from __future__ import annotations

import hashlib
import shlex

from pyclan.build.layout import HOST_ROOT, SECRETS, UNIT_DIR
from pyclan.build.manifest import Manifest

LIBRARY = r"""
R=__ROOT__
STATIC=$R/static
STATE=$R/state
GEN_DIR=$(cd "$(dirname "$0")" && pwd -P)
GEN_NO=${GEN_DIR##*/}
W=$GEN_DIR/.work
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
    for f in paths users groups packages units reloads; do [ -f "$STATE/$f" ] || : > "$STATE/$f"; done
    if [ -s "$GEN_DIR/packages.list" ] && ! command -v apt-get >/dev/null 2>&1; then
        fail "unsupported package manager: this host has no apt-get;" \
            "pyclan installs packages with apt (Debian and its derivatives)"
    fi
    if [ -s "$GEN_DIR/units.list" ] && ! [ -d /run/systemd/system ]; then
        fail "this host does not run systemd, which the configuration's units need"
    fi
    rm -rf "$W"; mkdir -p "$W"
    printf '%s\n' "$GEN_NO" > "$R/journal.new"; mv -f "$R/journal.new" "$R/journal"
}

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
own_group() {  # -U, or -g NAME when a group NAME is left over (useradd killed half-way)
    if getent group "$1" >/dev/null; then printf '%s\n' "-g" "$1"; else echo "-U"; fi
}
set_password() {  # the hash goes through a pipe, never through a command line
    [ -f "$2" ] || fail "password file $2 of user $1 does not exist"
    printf '%s:%s\n' "$1" "$(cat -- "$2")" | chpasswd -e
}

verify_tree() {
    # A hand edit through a managed path lands in this tree: when a generation is activated again
    # (rollback, retry, repair), every file is checked against its declared hash, mode and owner
    # and put back from its object where it differs, so a generation always means what it said.
    [ -s "$GEN_DIR/files.list" ] || return 0
    awk -v sums="$W/want.sums" -v stats="$W/want.stat" -v names="$W/tree.names" '
        { rel = $0; for (i = 0; i < 4; i++) rel = substr(rel, index(rel, " ") + 1); rel = substr(rel, 2)
          m = $2; sub(/^0+/, "", m); if (m == "") m = "0"
          print $1 "  " rel > sums; print m " " $3 " " $4 " " rel > stats; printf "%s%c", rel, 0 > names }
    ' "$GEN_DIR/files.list"
    (cd "$GEN_DIR/tree" && xargs -0 sha256sum -- < "$W/tree.names" 2>/dev/null) > "$W/got.sums" || true
    (cd "$GEN_DIR/tree" && xargs -0 stat -c '%a %U %G %n' -- < "$W/tree.names" 2>/dev/null) > "$W/got.stat" || true
    { sort "$W/want.sums" | comm -23 - "$(sort "$W/got.sums" > "$W/got.sums.s"; echo "$W/got.sums.s")" \
        | cut -c67-
      sort "$W/want.stat" | comm -23 - "$(sort "$W/got.stat" > "$W/got.stat.s"; echo "$W/got.stat.s")" \
        | cut -d' ' -f4-; } | sort -u > "$W/drifted"
    while IFS= read -r rel; do
        awk -v p="/$rel" '{ rel = $0; for (i = 0; i < 4; i++) rel = substr(rel, index(rel, " ") + 1)
                            if (rel == p) print $1, $2, $3, $4 }' "$GEN_DIR/files.list" | {
            read -r sha mode owner group
            echo "restoring /$rel (changed on this host)"
            f=$GEN_DIR/tree/$rel
            mkdir -p -- "${f%/*}"
            install -m "$mode" -o "$owner" -g "$group" -- "$R/objects/$sha" "$f.pyclan-new"
            mv -f -- "$f.pyclan-new" "$f"
        }
    done < "$W/drifted"
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
        if [ -d "$R/current/tree" ] && ! [ "$R/current" -ef "$GEN_DIR" ]; then
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
    step done
    date -u '+%Y-%m-%dT%H:%M:%SZ' > "$GEN_DIR/activated"
    rm -f "$GEN_DIR/failed" "$R/journal"
}

main() {
    preflight
    packages
    gen_groups
    gen_users
    files
    gen_passwords
    links
    stop_removed_units
    switch
    release_paths
    units
    reloads
    gen_hooks
    remove_users
    remove_packages
    gen_checks
    finish
}
""".replace("__ROOT__", HOST_ROOT)

#: changes whenever the library changes, so a new pyclan re-activates every host once
ACTIVATOR = hashlib.sha256(LIBRARY.encode()).hexdigest()[:16]


def q(value: str) -> str:
    return shlex.quote(value)


def _activation_path(manifest: Manifest, path: str) -> str:
    """A shell word for `path` as it will be after the switch, valid before it."""
    if path.startswith(SECRETS + "/"):
        return '"$GEN_DIR"/secrets/' + q(path[len(SECRETS) + 1 :])
    if path in manifest.files:
        return '"$GEN_DIR"/tree' + q(path)
    return q(path)


def _function(name: str, body: list[str]) -> str:
    lines = [f"{name}() {{", *(f"    {line}" for line in body or [":"]), "}"]
    return "\n".join(lines)


def _groups(m: Manifest) -> list[str]:
    out: list[str] = []
    if m.groups:
        out.append("step groups")
    for g in m.groups.values():
        args = ["groupadd"] + (["-g", str(g.gid)] if g.gid is not None else []) + (["-r"] if g.system else [])
        out.append(
            f"if ! getent group {q(g.name)} >/dev/null; then record {q(g.name)} \"$STATE/groups\"; "
            f"{' '.join(q(a) for a in [*args, g.name])}; fi"
        )
        if g.gid is not None:
            out.append(
                f'[ "$(getent group {q(g.name)} | cut -d: -f3)" = {g.gid} ] || groupmod -g {g.gid} {q(g.name)}'
            )
    return out


def _users(m: Manifest) -> list[str]:
    out: list[str] = []
    if m.users:
        out.append("step users")
    for u in m.users.values():
        common: list[str] = ["-d", u.home] if u.set_home else []
        if u.shell:
            common += ["-s", u.shell]
        if u.description is not None:
            common += ["-c", u.description]
        if u.uid is not None:
            common += ["-u", str(u.uid)]
        add = ["useradd", *([] if u.set_home else ["-d", u.home]), *common, "-m" if u.create_home else "-M"]
        add += ["-g", u.group] if u.group else []
        if u.system:
            add.append("-r")
        if u.groups:
            add += ["-G", ",".join(u.groups)]
        mod = ["usermod", *common] + (["-g", u.group] if u.group else [])
        name = q(u.name)
        own = "" if u.group else f"$(own_group {name}) "
        out.append(
            f"if ! getent passwd {name} >/dev/null; then record {name} \"$STATE/users\"; "
            f"{q(add[0])} {own}{' '.join(q(a) for a in [*add[1:], u.name])}; fi"
        )
        exact = " ".join(q(a) for a in [*mod, "-G", ",".join(u.groups), u.name])
        extra = [*mod[1:], *(["-a", "-G", ",".join(u.groups)] if u.groups else [])]
        # a user pyclan did not create (root, a package's user): only what is declared is changed
        additive = " ".join(q(a) for a in ["usermod", *extra, u.name]) if extra else ":"
        out.append(f'if has {name} "$STATE/users"; then {exact} >/dev/null; else {additive} >/dev/null; fi')
        keys = f"{u.home.rstrip('/')}/.ssh/authorized_keys"
        if keys in m.files:
            group = q(u.group or u.name)
            out.append(f"install -d -m 700 -o {name} -g {group} {q(u.home.rstrip('/') + '/.ssh')}")
    for g in m.groups.values():
        for member in g.members:
            out.append(f"gpasswd -a {q(member)} {q(g.name)} >/dev/null")
    return out


def _tree(m: Manifest) -> list[str]:
    dirs = sorted({p.rsplit("/", 1)[0][1:] for p in m.managed_paths()} - {""})
    out: list[str] = []
    if dirs:
        out.append('(cd "$T" && mkdir -p -- ' + " ".join(q(d) for d in dirs) + ")")
    for path, f in m.files.items():
        out.append(f"put {q(path[1:])} {f.sha256} {f.mode} {q(f.owner)} {q(f.group)}")
    for path, target in m.links.items():
        out.append(f"plink {q(path[1:])} {q(target)}")
    return out


def _secrets(m: Manifest) -> list[str]:
    return [
        f"secret {q(f'{s.generator}/{s.file}')} {q(s.owner)} {q(s.group)} {s.mode}" for s in m.secrets.values()
    ]


def _passwords(m: Manifest) -> list[str]:
    out = [
        f"set_password {q(u.name)} {_activation_path(m, u.password_file)}"
        for u in m.users.values()
        if u.password_file
    ]
    return ["step passwords", *out] if out else []


def _hooks(m: Manifest) -> list[str]:
    return [f"run_hook {q(h.name)} {h.sha256}" for h in m.hooks]


def _checks(m: Manifest) -> list[str]:
    return [f"check {q(c.name)} {c.timeout} {q(c.kind)} {q(c.target)}" for c in m.checks]


def render(manifest: Manifest) -> str:
    """The complete activation script of `manifest`'s generation."""
    header = [
        "#!/bin/sh",
        f"# pyclan activation of machine {manifest.machine}. Generated by pyclan; do not edit.",
        "# Runs as root on the host; needs only POSIX sh and Debian's base tools.",
        "set -eu",
    ]
    generated = [
        _function("gen_groups", _groups(manifest)),
        _function("gen_users", _users(manifest)),
        _function("gen_tree", _tree(manifest)),
        _function("gen_secrets", _secrets(manifest)),
        _function("gen_passwords", _passwords(manifest)),
        _function("gen_hooks", _hooks(manifest)),
        _function("gen_checks", _checks(manifest)),
    ]
    return "\n".join(header) + "\n" + LIBRARY.strip("\n") + "\n\n" + "\n\n".join(generated) + '\n\nmain "$@"\n'


def lists(manifest: Manifest) -> dict[str, bytes]:
    """The generation's line lists that the script compares with the host's records."""

    def lines(items: list[str]) -> bytes:
        return "".join(f"{i}\n" for i in items).encode()

    units = [f"{u.name} {u.stamp} {int(u.start)} {int(u.enabled)}" for _, u in sorted(manifest.units.items())]
    unit_files = {f"{UNIT_DIR}/{name}" for name in manifest.units}
    systemd = [
        f"{path} {manifest.files[path].sha256 if path in manifest.files else manifest.links[path]}"
        for path in manifest.managed_paths()
        if path.startswith("/etc/systemd/") and path not in unit_files
    ]
    return {
        "paths.list": lines(manifest.managed_paths()),
        # for `machines status`: what each file must be (the path last: it may hold spaces)
        "files.list": lines([f"{f.sha256} {f.mode} {f.owner} {f.group} {path}" for path, f in manifest.files.items()]),
        "packages.list": lines(sorted(manifest.packages)),
        "users.list": lines(sorted(manifest.users)),
        "groups.list": lines(sorted(manifest.groups)),
        "units.list": lines(units),
        "reloads.list": lines([f"{r.unit} {r.stamp} {r.action}" for _, r in sorted(manifest.reloads.items())]),
        "objects.list": lines(manifest.object_ids()),
        "systemd.stamp": hashlib.sha256(lines(systemd)).hexdigest().encode() + b"\n",
    }
