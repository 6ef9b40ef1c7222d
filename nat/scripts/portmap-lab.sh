#!/usr/bin/env bash
# Port mapping by real Moss nodes through real miniupnpd (UPnP IGD, NAT-PMP
# and PCP in one daemon, nftables build) on a port-restricted cone router
# (natlab site "mapped": WAN 192.0.32.107, LAN 192.168.7.0/24). For each
# protocol on its own:
#   1. a node (engine/examples/nat_peer) in h-mapped with only that protocol
#      on, no static peers and no discovery: it sends nothing beyond its LAN;
#   2. its status must show a mapping (protocol, external address on the
#      router's WAN), and miniupnpd's nftables chain the DNAT for it;
#   3. a node on pub2 whose only static peer is that external address must
#      get a session with it, both ways (inbound through the mapping: the
#      port-restricted NAT drops any unsolicited datagram otherwise);
#   4. the mapping must be renewed at half its lifetime (asked: MAP_LIFETIME s);
#   5. on SIGTERM the node deletes it: the DNAT is gone from miniupnpd's chain.
# And the control: with port mapping off, the same dial to the router's WAN
# address at the node's port gets no session.
# Runs on its own (sets up and tears down its own lab, prefix mpm-) or is
# sourced by extra-tests.sh (then LAB is set, and it still uses its own lab).
# Without namespaces: SKIP (exit 0), or FAIL under CI=true.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PM_LAB=nat/scripts/natlab
MAP_LIFETIME=${MAP_LIFETIME:-6}
PM_SOURCED=0; [ "${BASH_SOURCE[0]}" != "$0" ] && PM_SOURCED=1
pm_skip() {
  echo "SKIP: port-mapping lab: $*"
  [ "${CI:-}" = true ] && { echo "FAIL: CI=true and the port-mapping lab cannot run"; exit 1; }
  [ $PM_SOURCED = 1 ] && return 0
  exit 0
}
pm_main() {
  [ "$(id -u)" = 0 ] || { pm_skip "needs root for network namespaces"; return 0; }
  for tool in ip nft miniupnpd; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || { pm_skip "$tool missing (nat/scripts/install-test-deps.sh)"; return 0; }
  done
  [ -x target/debug/examples/nat_peer ] || nice -n 10 cargo build -q -p moss --example nat_peer
  local PEER=$PWD/target/debug/examples/nat_peer
  export NATLAB_PREFIX=mpm-
  local STATE=/run/moss-natlab-mpm
  local dir; dir=$(mktemp -d -t moss-portmap-lab.XXXXXX)
  "$PM_LAB" down >/dev/null 2>&1 || true
  "$PM_LAB" up --kinds mapped --no-twins
  "$PM_LAB" portmap nat-mapped 192.168.7.0/24
  local pm_fail=0 port=4300 proto
  printf '%-7s %-22s %-8s %-9s %-8s %-8s %s\n' proto external session renewals deleted requests verdict
  for proto in pcp natpmp upnp; do
    port=$((port + 1))
    rm -f "$dir"/*.json "$dir"/*.stopped
    "$PM_LAB" bg h-mapped "pm-in-$proto" "$PEER" --port "$port" --map "$proto" --map-lifetime "$MAP_LIFETIME" \
        --seconds 60 --status "$dir/in.json"
    local ext=""
    for _ in $(seq 1 100); do
      ext=$(python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["port_mapping"]["external"] or "")
except Exception: print("")' "$dir/in.json")
      [ -n "$ext" ] && break
      sleep 0.2
    done
    local dnat_during
    dnat_during=$("$PM_LAB" exec nat-mapped nft list chain inet miniupnpd prerouting_miniupnpd 2>/dev/null | grep -c "dport ${ext##*:}" || true)
    if [ -n "$ext" ]; then
      "$PM_LAB" bg pub2 "pm-out-$proto" "$PEER" --port "$port" --map none --static "$ext" --seconds 40 --status "$dir/out.json"
    fi
    local session=no
    for _ in $(seq 1 60); do
      [ -n "$ext" ] || break
      if python3 - "$dir/in.json" "$dir/out.json" <<'PY'
import json, sys
try:
    a, b = (json.load(open(f)) for f in sys.argv[1:3])
except Exception:
    sys.exit(1)
sys.exit(0 if b["id"] in a["peers"] and a["id"] in b["peers"] else 1)
PY
      then session=yes; break; fi
      sleep 0.5
    done
    # Renewal at half the lifetime: wait for at least one.
    local renewed=0
    for _ in $(seq 1 $((MAP_LIFETIME * 4))); do
      renewed=$(python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["port_mapping"]["renewed"])
except Exception: print(0)' "$dir/in.json")
      [ "$renewed" -ge 1 ] && break
      sleep 0.5
    done
    local requests
    requests=$(python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["port_mapping"]["requests"])
except Exception: print(0)' "$dir/in.json")
    [ -f "$STATE/pm-in-$proto.pid" ] && kill "$(cat "$STATE/pm-in-$proto.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -f "$dir/in.json.stopped" ] && break; sleep 0.1; done
    local dnat_after
    dnat_after=$("$PM_LAB" exec nat-mapped nft list chain inet miniupnpd prerouting_miniupnpd 2>/dev/null | grep -c "dport ${ext##*:}" || true)
    [ -f "$STATE/pm-out-$proto.pid" ] && kill "$(cat "$STATE/pm-out-$proto.pid")" 2>/dev/null || true
    local deleted=no verdict=ok
    [ -f "$dir/in.json.stopped" ] && [ "$dnat_after" = 0 ] && deleted=yes
    case "$ext" in 192.0.32.107:*) ;; *) verdict="<-- no mapping on the WAN address"; pm_fail=1;; esac
    if [ "$verdict" = ok ]; then
      [ "$dnat_during" -ge 1 ] || { verdict="<-- no DNAT in miniupnpd's chain"; pm_fail=1; }
      [ $session = yes ] || { verdict="<-- no inbound session through the mapping"; pm_fail=1; }
      [ "$renewed" -ge 1 ] || { verdict="<-- not renewed"; pm_fail=1; }
      [ $deleted = yes ] || { verdict="<-- not deleted at stop"; pm_fail=1; }
    fi
    printf '%-7s %-22s %-8s %-9s %-8s %-8s %s\n' "$proto" "${ext:--}" "$session" "$renewed" "$deleted" "$requests" "$verdict"
    [ "$verdict" = ok ] || { echo "--- in.json:"; cat "$dir/in.json" 2>/dev/null; echo; tail -n 20 "$STATE/miniupnpd-nat-mapped.log" 2>/dev/null; }
  done
  # Control: no mapping, no inbound session.
  port=$((port + 1))
  rm -f "$dir"/*.json "$dir"/*.stopped
  "$PM_LAB" bg h-mapped pm-in-none "$PEER" --port "$port" --map none --seconds 30 --status "$dir/in.json"
  sleep 1
  "$PM_LAB" bg pub2 pm-out-none "$PEER" --port "$port" --map none --static "192.0.32.107:$port" --seconds 20 --status "$dir/out.json"
  local reached=no
  for _ in $(seq 1 20); do
    python3 -c 'import json,sys
a=json.load(open(sys.argv[1])); sys.exit(0 if a["peers"] else 1)' "$dir/in.json" 2>/dev/null && { reached=yes; break; }
    sleep 0.5
  done
  for n in pm-in-none pm-out-none; do [ -f "$STATE/$n.pid" ] && kill "$(cat "$STATE/$n.pid")" 2>/dev/null || true; done
  if [ $reached = no ]; then
    echo "control (mapping off): no inbound session in 10 s, as expected"
  else
    echo "control (mapping off): <-- an inbound session without a mapping"; pm_fail=1
  fi
  "$PM_LAB" down >/dev/null 2>&1 || true
  rm -rf "$dir"
  if [ $pm_fail = 0 ]; then echo "port-mapping lab: all as expected"; else echo "FAIL: port-mapping lab"; fi
  return $pm_fail
}
if [ $PM_SOURCED = 1 ]; then
  (pm_main) || fail=1
else
  pm_main
fi
