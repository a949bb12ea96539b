#!/bin/sh
# Managed by pyclan (service zerotier): installs @SRC_DIR@ into zerotier-one's home.
set -eu
ZT=@ZT_HOME@
SRC=@SRC_DIR@
STATE=@HOOK_STATE_DIR@/zerotier
changed=0
put() {  # put SOURCE REL MODE: install SOURCE as $ZT/REL if it changed since the last run
    if [ ! -e "$ZT/$2" ] || ! cmp -s "$1" "$STATE/$2"; then
        mkdir -p "$(dirname "$ZT/$2")" "$(dirname "$STATE/$2")"
        cp "$1" "$ZT/$2.pyclan-tmp" && chmod "$3" "$ZT/$2.pyclan-tmp" && mv "$ZT/$2.pyclan-tmp" "$ZT/$2"
        cp "$1" "$STATE/$2" && chmod 0600 "$STATE/$2"
        changed=1
    fi
}
drop() {  # drop REL: remove $ZT/REL (and a member directory next to a network file)
    rm -rf "${ZT:?}/${1:?}" "${STATE:?}/${1:?}"
    case "$1" in *.json) rm -rf "${ZT:?}/${1%.json}" "${STATE:?}/${1%.json}" ;; esac
    changed=1
}
mkdir -p "$ZT/networks.d" "$STATE"
chmod 0700 "$ZT" "$STATE"
put @IDENTITY_SECRET@ identity.secret 0600
pub=$(mktemp)
cut -d: -f1-3 @IDENTITY_SECRET@ > "$pub"  # identity.public: the secret without its private part
put "$pub" identity.public 0644
rm -f "$pub"
# join the declared networks; leave networks that are no longer declared (as Clan does)
for f in "$SRC"/join/*; do
    [ -e "$f" ] || continue
    nwid=$(basename "$f")
    [ -e "$ZT/networks.d/$nwid.conf" ] || { : > "$ZT/networks.d/$nwid.conf"; changed=1; }
done
for f in "$ZT"/networks.d/*.conf; do
    [ -e "$f" ] || continue
    nwid=$(basename "$f" .conf)
    case "$nwid" in *.local) continue ;; esac
    [ -e "$SRC/join/$nwid" ] || { rm -f "$f" "$ZT/networks.d/$nwid.local.conf"; changed=1; }
done
# the controller's database: networks and authorised members, as rendered by pyclan
for f in "$SRC"/controller/*.json "$SRC"/controller/*/member/*.json; do
    [ -e "$f" ] || continue
    put "$f" "controller.d/network/${f#"$SRC"/controller/}" 0600
done
for f in "$STATE"/controller.d/network/*.json "$STATE"/controller.d/network/*/member/*.json; do
    [ -e "$f" ] || continue
    rel=${f#"$STATE"/}
    [ -e "$SRC/controller/${rel#controller.d/network/}" ] || drop "$rel"
done
# moons: sign this machine's moon definition with zerotier-idtool when it is installed
for f in "$SRC"/moon/*.json; do
    [ -e "$f" ] || continue
    if command -v zerotier-idtool >/dev/null 2>&1; then
        [ -e "$ZT/moon.json" ] || zerotier-idtool initmoon "$ZT/identity.public" > "$ZT/moon.json"
        endpoints=$(cat "$f")
        sed "s|\"stableEndpoints\": *\[[^]]*\]|\"stableEndpoints\": $endpoints|" \
            "$ZT/moon.json" > "$ZT/moon.json.new"
        mv "$ZT/moon.json.new" "$ZT/moon.json"
        mkdir -p "$ZT/moons.d"
        (cd "$ZT/moons.d" && zerotier-idtool genmoon "$ZT/moon.json" >/dev/null)
    else
        echo "zerotier: zerotier-idtool is not installed; moon $f is not signed" >&2
    fi
done
if @SYSTEMD_BOOTED@ && systemctl cat zerotier-one.service >/dev/null 2>&1; then
    if [ "$changed" = 1 ]; then
        systemctl restart zerotier-one.service
    else
        systemctl start zerotier-one.service
    fi
    if command -v zerotier-cli >/dev/null 2>&1; then
        for f in "$SRC"/orbit/*; do
            [ -e "$f" ] || continue
            moon=$(basename "$f")
            zerotier-cli orbit "$moon" "$moon" >/dev/null || echo "zerotier: cannot orbit moon $moon" >&2
        done
    fi
else
    echo "zerotier: zerotier-one is not installed; its configuration is staged in $ZT" >&2
fi
