#!/usr/bin/env bash
# Installs what the moss-nat real-NAT suite needs (idempotent): iproute2,
# nftables, conntrack, coturn (STUN server) and miniupnpd (NAT-PMP/PCP/UPnP
# on a lab router). Services are kept from starting in the root namespace.
set -euo pipefail
miss=()
command -v ip >/dev/null 2>&1 || miss+=(iproute2)
command -v nft >/dev/null 2>&1 || miss+=(nftables)
command -v conntrack >/dev/null 2>&1 || miss+=(conntrack)
command -v turnserver >/dev/null 2>&1 || miss+=(coturn)
command -v miniupnpd >/dev/null 2>&1 || [ -x /usr/sbin/miniupnpd ] || miss+=(miniupnpd-nftables)
command -v upnpc >/dev/null 2>&1 || miss+=(miniupnpc)
[ ${#miss[@]} -eq 0 ] && exit 0
made=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made=1
fi
export DEBIAN_FRONTEND=noninteractive
echo "moss-nat: installing ${miss[*]}"
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${miss[@]}" >/dev/null 2>&1 || {
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${miss[@]}" >/dev/null
}
[ $made = 1 ] && rm -f /usr/sbin/policy-rc.d
exit 0
