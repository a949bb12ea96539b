#!/usr/bin/env bash
# Install what pyclan and its tests need on a fresh Debian 12 machine (as root), then
# pyclan itself into .venv. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  git openssl ca-certificates python3-venv
  openssh-server openssh-client          # sshd checks, ssh client
  debootstrap systemd-container          # local test hosts (pyclan hosts)
  iproute2 iputils-ping apt-cacher-ng    # host networking and the apt proxy
  wireguard-tools wireguard-go           # VPN checks (userspace WireGuard)
  bubblewrap                             # sandbox for vars generator scripts
  borgbackup libsodium23                 # borgbackup service tests; fast ZeroTier identities
  tor                                    # tor service: tor --verify-config of the rendered torrc
  syncthing                              # syncthing service: device ids as syncthing computes them
  yggdrasil nftables                     # yggdrasil service: addresses as yggdrasil derives them; nft -c
  rsnapshot                              # localbackup service tests
  ddclient                               # dyndns service: real ddclient against a dyndns2 endpoint
  chromium                               # pyclan serve: the web UI's browser test (Playwright)
  shellcheck                             # CI: every packaged .sh file (scripts/test.sh)
)

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "setup: not root (or no apt-get): skipping system packages ${APT_PACKAGES[*]}" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v -i "warning" || true
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v -i "warning" || true
.venv/bin/pyclan --help >/dev/null
echo "setup: ok ($(.venv/bin/python --version), pyclan in .venv)"
