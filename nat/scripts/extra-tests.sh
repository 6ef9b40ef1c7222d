#!/usr/bin/env bash
# moss-nat real-NAT suite: builds the lab (nat/scripts/natlab: real Linux NATs
# in network namespaces, coturn STUN on pub1), runs the sans-IO classifier
# (examples/natlab.rs, std UDP sockets) in every h-<kind> host and asserts the
# class of each kind. miniupnpd (NAT-PMP) runs on the cgnat home router: its
# WAN is RFC 6598 space, so it answers "network failure" (no public address)
# while STUN sees a public one, which is how the host detects the NAT beyond.
# (miniupnpd also counts the lab's documentation ranges as reserved, so it
# cannot serve as a mapper on the other routers here.) Tears the lab down on exit.
# Without network namespaces: SKIP (exit 0), or FAIL under CI=true.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=nat/scripts/natlab
export NATLAB_PREFIX=${NATLAB_PREFIX:-mnt-}

skip() {
  echo "SKIP: moss-nat real-NAT suite: $*"
  [ "${CI:-}" = true ] && { echo "FAIL: CI=true and the real-NAT suite cannot run"; exit 1; }
  exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
for tool in ip nft turnserver miniupnpd; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || skip "$tool missing (run nat/scripts/install-test-deps.sh)"
done
probe_ns="${NATLAB_PREFIX}probe-$$"
ip netns add "$probe_ns" 2>/dev/null || skip "cannot create network namespaces"
ip netns del "$probe_ns"

nice -n 10 cargo build -q -p moss-nat --example natlab
BIN=$PWD/target/debug/examples/natlab
WORK=$(mktemp -d -t moss-nat-lab.XXXXXX)
cleanup() { "$LAB" down || true; rm -rf "$WORK"; }
trap cleanup EXIT
"$LAB" up --no-twins

# NAT-PMP on the cgnat home router (real miniupnpd, nftables build).
upnp() {  # router-ns lan-subnet id
  cat >"$WORK/$1.conf" <<EOF
ext_ifname=wan0
listening_ip=lan0
enable_natpmp=yes
enable_upnp=no
secure_mode=yes
uuid=3f1b5c2e-0000-4000-8000-00000000a00$3
allow 1024-65535 $2 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
  "$LAB" bg "$1" "upnp-$1" miniupnpd -f "$WORK/$1.conf" -P "$WORK/$1.pid" -d
}
upnp nat-cgnat 192.168.5.0/24 5
"$LAB" bg pub2 prober "$BIN" probe-server --listen 203.0.113.20:4000 --from 198.51.100.20 --seconds 600
sleep 1

expect() {
  case $1 in symmetric) echo symmetric_nat;; *) echo "$1";; esac
}
fail=0
printf '%-22s %-22s %-20s %-26s %-10s %-18s %s\n' kind class mapping filtering reachable gateway ms
for kind in full_cone restricted_cone port_restricted_cone symmetric cgnat public; do
  case $kind in full_cone) n=1;; restricted_cone) n=2;; port_restricted_cone) n=3;; symmetric) n=4;; cgnat) n=5;; public) n=6;; esac
  gw=192.168.$n.1; [ $kind = public ] && gw=203.0.113.1
  out=$("$LAB" exec "h-$kind" "$BIN" classify --stun 203.0.113.10:3478 --stun-alt 198.51.100.10:3478 \
        --prober 203.0.113.20:4000 --gateway "$gw:5351" 2>&1) || true
  echo "$out" >"$WORK/$kind.json"
  got=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["class"])' "$out" 2>/dev/null || echo "error")
  row=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("%-20s %-26s %-10s %-18s %s" % (d["mapping"], d["filtering"], d["reachable"], d["gateway"], d["ms"]))' "$out" 2>/dev/null || echo "$out")
  want=$(expect "$kind")
  mark=ok; [ "$got" = "$want" ] || { mark="<-- expected $want"; fail=1; }
  printf '%-22s %-22s %s %s\n' "$kind" "$got" "$row" "$mark"
done
if [ $fail = 0 ]; then echo "moss-nat real-NAT classification: all kinds as expected"; else echo "FAIL: moss-nat real-NAT classification"; exit 1; fi
