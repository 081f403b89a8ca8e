#!/usr/bin/env bash
# Install the Debian 12 packages sluice needs to build and test, if missing.
# Usage: scripts/deps.sh [extra-package ...]
set -euo pipefail

packages=(
  gcc meson ninja-build pkg-config
  libuv1-dev libyaml-dev libssl-dev node-llhttp
  libcmocka-dev python3 python3-pytest python3-websockets python3-cryptography
  openssl curl procps strace
)
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

echo "installing: ${missing[*]}" >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
