#!/bin/sh
# Managed by pyclan (dyndns service): points Porkbun DNS records at this machine's address.
#
# Usage: porkbun-update LIST. One record a line of LIST, fields separated by one space:
#   BASE DOMAIN TYPE NAME APIKEY CREDENTIAL TTL SOURCE
# BASE is the API's address (https://api.porkbun.com), TYPE A or AAAA, NAME '@' for the domain
# itself, TTL '-' to keep Porkbun's, SOURCE 'if:IFACE' or 'url:URL' (where the address comes from).
# The secret API key is the file CREDENTIAL in $CREDENTIALS_DIRECTORY (systemd's LoadCredential);
# it reaches curl only on its standard input, never on a command line. A record is sent again only
# when its address changed (the cache in $STATE_DIRECTORY).
set -eu
list=$1
: "${CREDENTIALS_DIRECTORY:?dyndns: no credentials directory: run this from dyndns-porkbun.service}"
cache=${STATE_DIRECTORY:-/var/lib/dyndns}/porkbun.cache
[ -e "$cache" ] || : > "$cache"
status=0
last_source=
last_type=
ip=

family() {  # family TYPE: the ip/curl option of the record type's address family
    if [ "$1" = A ]; then echo -4; else echo -6; fi
}

address() {  # address TYPE SOURCE: print the machine's address
    case $2 in
        if:*) ip -o "$(family "$1")" addr show dev "${2#if:}" scope global |
                  awk '{ sub("/.*", "", $4); print $4; exit }' ;;
        url:*) curl -q -fsS --max-time 30 "$(family "$1")" --url "${2#url:}" | tr -d ' \t\r\n' ;;
        *) return 1 ;;
    esac
}

valid() {  # valid TYPE ADDRESS: the address looks like one of its family
    case $1:$2 in
        A: | A:*[!0-9.]* | AAAA: | AAAA:*[!0-9A-Fa-f:]*) return 1 ;;
        A:* | AAAA:*) return 0 ;;
        *) return 1 ;;
    esac
}

remember() {  # remember KEY IP: the cache says KEY has IP now
    awk -v key="$1" 'index($0, key " ") != 1' "$cache" > "$cache.new"
    printf '%s %s\n' "$1" "$2" >> "$cache.new"
    mv "$cache.new" "$cache"
}

while IFS=' ' read -r base domain type name apikey credential ttl source <&3; do
    case $base in '' | '#'*) continue ;; esac
    record="$name.$domain $type"
    if [ "$source" != "$last_source" ] || [ "$type" != "$last_type" ]; then
        ip=$(address "$type" "$source") || ip=
        last_source=$source
        last_type=$type
    fi
    if ! valid "$type" "$ip"; then
        echo "dyndns: porkbun $record: no $type address from ${source#*:} (got '$ip')" >&2
        status=1
        continue
    fi
    key="$base $domain $type $name"
    if grep -Fxq -e "$key $ip" "$cache"; then
        continue  # unchanged since the last update
    fi
    secret=$(cat "$CREDENTIALS_DIRECTORY/$credential") || secret=
    case $secret in
        '' | *[!A-Za-z0-9_-]*)
            echo "dyndns: porkbun $record: the secret API key $credential is empty or has characters" \
                 "Porkbun keys do not have" >&2
            status=1
            continue ;;
    esac
    url="$base/api/json/v3/dns/editByNameType/$domain/$type"
    [ "$name" = @ ] || url="$url/$name"
    ttl_field=
    [ "$ttl" = - ] || ttl_field=",\"ttl\":\"$ttl\""
    # printf is the shell's own: the keys are in no process's arguments
    if answer=$(printf '{"apikey":"%s","secretapikey":"%s","content":"%s"%s}' \
                    "$apikey" "$secret" "$ip" "$ttl_field" |
                curl -q -sS --max-time 30 -X POST -H 'Content-Type: application/json' \
                     --data-binary @- --url "$url") &&
       printf '%s' "$answer" | grep -Eq '"status"[[:space:]]*:[[:space:]]*"SUCCESS"'; then
        echo "dyndns: porkbun $record: set to $ip"
        remember "$key" "$ip"
    else
        echo "dyndns: porkbun $record: the update to $ip failed: ${answer:-no answer}" >&2
        status=1
    fi
done 3< "$list"
exit "$status"
