#!/usr/bin/env bash
# The main job on the bundled example: the quickstart clan (examples/quickstart) on three local
# Debian hosts (systemd-nspawn, each with its own network namespace and sshd), deployed by
# `pyclan machines update`, then checked on the hosts: hello-world, users, and a ping across
# the WireGuard VPN. Needs root. `pyclan hosts down` removes the hosts again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export PYCLAN_AGE_KEY_FILE="$PWD/examples/quickstart-demo-admin.age.key"  # demo key, never do this for real
chmod 600 "$PYCLAN_AGE_KEY_FILE"  # git keeps no 0600, and pyclan refuses a key others can read
pyclan() { .venv/bin/pyclan -C examples/quickstart "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "pyclan check"
pyclan check
step "pyclan hosts up --all   (a Debian rootfs is built once, ~40 s)"
pyclan hosts up --all
step "pyclan machines update --all"
pyclan machines update --all
step "on fred-laptop: greet-world (hello-world service)"
pyclan ssh fred-laptop -c greet-world
step "on sally-laptop: id sally (users service)"
pyclan ssh sally-laptop -c id sally
step "on sally-laptop: ping fred-laptop across the WireGuard VPN"
pyclan ssh sally-laptop -c ping -4 -c 3 fred-laptop.wireguard
step "pyclan machines update --all again: nothing to change"
pyclan machines update --all
step "done: the hosts keep running; 'bash scripts/demo.sh' again is a no-op update, '.venv/bin/pyclan hosts down' removes them"
