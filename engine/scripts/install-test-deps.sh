#!/usr/bin/env bash
# Installs what the engine's netns suite (extra-tests.sh) needs, idempotent:
# iproute2 (namespaces, veth) and nftables (the UDP drop rule).
set -euo pipefail
miss=()
command -v ip >/dev/null 2>&1 || miss+=(iproute2)
command -v nft >/dev/null 2>&1 || miss+=(nftables)
[ ${#miss[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
echo "moss engine: installing ${miss[*]}"
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${miss[@]}" >/dev/null 2>&1 || {
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${miss[@]}" >/dev/null
}
