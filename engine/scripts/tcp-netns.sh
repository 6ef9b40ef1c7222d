#!/usr/bin/env bash
# The TCP carrier where UDP is blocked (run by extra-tests.sh): two network namespaces joined by a
# veth pair; nftables in namespace A drops every UDP packet on the veth.
# Two real moss-gateways (B has A as a static peer) still connect: B's UDP
# handshake times out, B dials A over TCP at the same port number, and
# pub/sub flows both ways over TCP (a `moss pub` on each side's loopback).
# Skips visibly without root/namespaces/nft; fails instead under CI=true.
# Every step is bounded by `timeout`; everything it starts is killed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
P=${MOSS_TCP_NS_PREFIX:-mtcp$$-}
A=${P}a
B=${P}b

# The lab preflight shared with the NAT labs (root, ip, nft, a namespace).
# shellcheck source=../../nat/scripts/lab-preflight.sh
source nat/scripts/lab-preflight.sh
lab_preflight "netns TCP test" "$P"

bin_dir=${MOSS_BIN_DIR:-$ROOT/target/debug}
if [ ! -x "$bin_dir/moss" ] || [ ! -x "$bin_dir/moss-gateway" ]; then
  echo "-- building moss and moss-gateway"
  cargo build -q -p moss-cli -p moss-gateway
  bin_dir=$ROOT/target/debug
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $1"
  for f in "$work"/*.log; do echo "---- $f"; tail -n 30 "$f" || true; done
  exit 1
}

ip netns add "$A"
ip netns add "$B"
ip -n "$A" link set lo up
ip -n "$B" link set lo up
ip -n "$A" link add va type veth peer name vb netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev va
ip -n "$B" addr add 10.77.0.2/24 dev vb
ip -n "$A" link set va up
ip -n "$B" link set vb up
ip netns exec "$A" nft -f - <<'NFT'
table inet moss_tcp_test {
  chain input  { type filter hook input priority 0;  iifname "va" meta l4proto udp counter drop; }
  chain output { type filter hook output priority 0; oifname "va" meta l4proto udp counter drop; }
}
NFT

# The TCP carrier runs in unsharded engines.
echo '{"engine": {"shards": 1}}' >"$work/config.json"
common=(-mesh tcp-lab -trackers=false -dht=false -lan=false -subscribe chat -config "$work/config.json")
ip netns exec "$A" env RUST_LOG=info timeout 120 "$bin_dir/moss-gateway" "${common[@]}" \
  -http 127.0.0.1:8810 -listen-port 41001 >"$work/gw-a.log" 2>&1 &
pids+=($!)
ip netns exec "$B" env RUST_LOG=info timeout 120 "$bin_dir/moss-gateway" "${common[@]}" \
  -http 127.0.0.1:8811 -listen-port 41002 -static 10.77.0.1:41001 >"$work/gw-b.log" 2>&1 &
pids+=($!)

http() {  # ns port path
  ip netns exec "$1" timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$2 && printf 'GET $3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 && cat <&3" 2>/dev/null | sed '1,/^\r$/d'
}

echo "-- waiting for B to reach A over TCP (its UDP handshake must time out first)"
# tcp_peer NS PORT: the node has one peer, one open TCP connection that
# carried records both ways.
tcp_peer() {
  http "$1" "$2" /api/stats | python3 -c '
import json, sys
n = json.load(sys.stdin)["node"]
t = n.get("tcp") or {}
ok = n["peer_count"] == 1 and t.get("open") == 1 and t.get("records_in", 0) > 0 and t.get("records_out", 0) > 0
sys.exit(0 if ok else 1)' 2>/dev/null
}
ok=0
for _ in $(seq 1 60); do
  if tcp_peer "$B" 8811 && tcp_peer "$A" 8810; then ok=1; break; fi
  sleep 0.5
done
[ $ok = 1 ] || fail "the gateways did not connect over TCP"

pub() {  # ns port text
  ip netns exec "$1" timeout 30 "$bin_dir/moss" pub chat "$3" --mesh tcp-lab \
    --static "127.0.0.1:$2" --no-trackers --no-dht --no-lan >>"$work/pub.log" 2>&1
}
pub "$B" 41002 "hello from b" || fail "moss pub in B failed"
pub "$A" 41001 "hello from a" || fail "moss pub in A failed"

got_a=0; got_b=0
for _ in $(seq 1 40); do
  http "$A" 8810 '/api/messages?topic=chat' | grep -q 'hello from b' && got_a=1
  http "$B" 8811 '/api/messages?topic=chat' | grep -q 'hello from a' && got_b=1
  [ $got_a = 1 ] && [ $got_b = 1 ] && break
  sleep 0.5
done
[ $got_a = 1 ] || fail "B's message did not reach A"
[ $got_b = 1 ] || fail "A's message did not reach B"

drops=$(ip netns exec "$A" nft list table inet moss_tcp_test | grep -o 'packets [0-9]*' | awk '{s+=$2} END {print s+0}')
[ "$drops" -gt 0 ] || fail "nftables dropped no UDP: the test did not block UDP"
http "$A" 8810 /api/stats >"$work/stats-a.json"
echo "-- A's TCP counters: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["node"]["tcp"])' "$work/stats-a.json")"
echo "PASS: gateways behind a UDP drop connected over TCP and exchanged pub/sub both ways ($drops UDP packets dropped)"
